"""Builder images from the other toolchain source: Debian's golang package."""

from __future__ import annotations

import json
from pathlib import Path

import docker
import pytest

from longcert.package import build_id
from tests.integration.conftest import Cli

pytestmark = pytest.mark.docker


def test_debian_go_image_builds_the_gopath_era(cli: Cli, standin_repo: Path, tmp_path: Path,
                                              engine: docker.DockerClient) -> None:
    made = cli("builder-image", "--go-debian", "1.19", "--tag", "longcert-test/golang-deb:1.19")
    assert made.returncode == 0, made.stderr
    image = engine.images.get("longcert-test/golang-deb:1.19")
    version = image.labels["org.longcert.go-version"]
    assert version.startswith("1.19.")
    try:
        result = cli("build", "--version", "v1.9.4", "--years", "5", "--repo", str(standin_repo),
                     "--go-version", version, "--image", "longcert-test/golang-deb:1.19")
        assert result.returncode == 0, result.stderr
        manifest = json.loads(
            (tmp_path / "builds" / build_id("v1.9.4", 5, 10) / "manifest.json").read_text())
        assert manifest["go"]["version"] == version
        assert manifest["go"]["source"] == "setting go_version"
        assert manifest["image"]["probe"]["go_env"]["GOROOT"] == "/usr/lib/go-1.19"
        assert manifest["verification"]["passed"] is True
    finally:
        engine.images.remove("longcert-test/golang-deb:1.19", force=True)


def test_label_values_with_spaces_and_quotes_survive_the_commit(
    engine: docker.DockerClient,
) -> None:
    """A label is a quoted LABEL change: a --go-archive path with a space (or a quote) is one
    label with that value, not two labels or a refused commit."""
    from longcert import container

    base = container.image_id(engine, "longcert/debian-base:bookworm")
    assert base, "the debian base image is built by .ci/run"
    value = '/home/op/Go archives/go1.24.11 "x".linux-amd64.tar.gz'
    image_id = container.commit_with_archive(
        engine, base, b"\0" * 1024, "longcert-test/labels", "spaces", [],
        {"org.longcert.go-source": value},
    )
    try:
        labels = engine.images.get(image_id).labels
        assert labels["org.longcert.go-source"] == value
    finally:
        engine.images.remove(image_id, force=True)
