"""Any Go release for a builder image: Go's download site, simulated on loopback.

The download tests need no engine; the builder-image tests make (or refuse to make) a real
image from the downloaded archive.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from longcert import godownload, gotrace
from longcert.errors import ImageError
from tests import go_download_site
from tests.integration.conftest import Cli


@pytest.fixture
def site() -> Iterator[go_download_site.DownloadSite]:
    with go_download_site.serve() as served:
        served.add("1.12.17")
        served.add("1.12.16", listed_sha256="ab" * 32)  # the index disagrees with the file
        served.add("1.13.15")
        yield served


def test_download_checks_the_published_sha256(site: go_download_site.DownloadSite,
                                              tmp_path: Path) -> None:
    path, listed = godownload.fetch_go("1.12.17", "amd64", site.base_url, tmp_path, print)
    assert path.read_bytes() == site.files["go1.12.17.linux-amd64.tar.gz"]
    assert listed.url == site.base_url + "go1.12.17.linux-amd64.tar.gz"

    with pytest.raises(ImageError, match=r"has sha256 .* but the release index says abab"):
        godownload.fetch_go("1.12.16", "amd64", site.base_url, tmp_path, print)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["go1.12.17.linux-amd64.tar.gz"]

    with pytest.raises(ImageError, match=r"not a Go release .*nearest releases: 1\.12\.17, "
                                         r"1\.12\.16, 1\.13\.15"):
        godownload.fetch_go("1.12.99", "amd64", site.base_url, tmp_path, print)
    with pytest.raises(ImageError, match=r"lists Go 1\.12\.17 but no go1\.12\.17\.linux-arm64"):
        godownload.fetch_go("1.12.17", "arm64", site.base_url, tmp_path, print)


def test_a_site_that_does_not_answer(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/dl/"
    with pytest.raises(ImageError, match="does not answer"):
        godownload.fetch_go("1.12.17", "amd64", closed, tmp_path, print)


def _images(engine: docker.DockerClient) -> set[str]:
    return {image.id for image in engine.images.list(all=True)}


@pytest.mark.docker
def test_builder_image_from_the_download_site(
    cli: Cli, site: go_download_site.DownloadSite, engine: docker.DockerClient, tmp_path: Path
) -> None:
    tag = "longcert-test/golang-dl:1.12.17"
    made = cli("builder-image", "--go-version", "1.12.17", "--tag", tag,
               "--go-download-url", site.base_url)
    try:
        assert made.returncode == 0, made.stderr
        assert "sha256" in made.stdout and "matches the release index" in made.stdout
        image = engine.images.get(tag)
        assert image.labels["org.longcert.go-version"] == "1.12.17"
        digest = go_download_site.hashlib.sha256(
            site.files["go1.12.17.linux-amd64.tar.gz"]).hexdigest()
        assert image.labels["org.longcert.go-sha256"] == digest
        assert image.labels["org.longcert.go-source"].endswith("go1.12.17.linux-amd64.tar.gz")
        # the official archive is its own trace; the tree digest is the installed go/ tree's
        assert image.labels[gotrace.LABEL_KIND] == "go.dev-release-archive"
        assert image.labels[gotrace.LABEL_OFFICIAL_FILE] == "go1.12.17.linux-amd64.tar.gz"
        assert image.labels[gotrace.LABEL_OFFICIAL_SHA256] == digest
        archive = tmp_path / "go1.12.17.linux-amd64.tar.gz"
        archive.write_bytes(site.files[archive.name])
        assert image.labels[gotrace.LABEL_TREE] == gotrace.tree_digest(
            gotrace.tar_tree(archive))
        out = engine.containers.run(tag, ["go", "version"], remove=True, network_mode="none")
        assert out.decode().strip() == "go version go1.12.17 linux/amd64"
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            engine.images.remove(tag, force=True)


@pytest.mark.docker
@pytest.mark.parametrize(("go", "code", "message"), [
    ("1.12.16", 4, "the release index says abab"),
    ("1.12.99", 4, "nearest releases: 1.12.17, 1.12.16, 1.13.15"),
    ("1.12.x", 2, "--go-version must be a Go version"),
])
def test_builder_image_refusals_leave_nothing(
    cli: Cli, site: go_download_site.DownloadSite, engine: docker.DockerClient,
    go: str, code: int, message: str,
) -> None:
    before = _images(engine)
    result = cli("builder-image", "--go-version", go, "--go-download-url", site.base_url)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert _images(engine) == before


@pytest.mark.docker
@pytest.mark.parametrize(("url", "code", "message"), [
    ("http://127.0.0.1:9/dl/", 4, "does not answer"),
    ("http://downloads.example/dl/", 2, "plain HTTP to another host"),
    ("ftp://example/dl/", 2, "must be an http(s) URL"),
])
def test_bad_download_urls(cli: Cli, engine: docker.DockerClient, url: str, code: int,
                           message: str) -> None:
    result = cli("builder-image", "--go-version", "1.12.17", "--go-download-url", url)
    assert result.returncode == code, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
