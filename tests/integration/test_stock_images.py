"""The connected-machine path: a stock (official-shaped) golang image from a registry.

The image has no rsync, as Docker Hub's golang images; it is pushed to the local registry that
stands in for Docker Hub and pulled through --registry-mirror. Every era's build with it is in
test_pipeline.py (test_build_every_era); here are the pull itself and the refusals.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import docker
import pytest

from longcert.package import build_id
from tests import local_registry, stock_image
from tests.integration.conftest import TEST_GO, TEST_IMAGE, Cli

pytestmark = pytest.mark.docker


def test_stock_image_is_pulled_probed_and_builds(cli: Cli, standin_repo: Path, tmp_path: Path,
                                                 stock: str, engine: docker.DockerClient) -> None:
    mirror, template = stock.split("/", 1)
    stock_image.remove(engine, template.format(go_version=TEST_GO))
    result = cli("build", "--version", "v1.33.7", "--years", "7", "--repo", str(standin_repo),
                 "--image", template, "--registry-mirror", mirror)
    assert result.returncode == 0, result.stderr
    assert f"pulling {mirror}/{template.format(go_version=TEST_GO)}" in result.stdout
    # what the probe found and what was supplied: in the compile stage and the manifest
    assert "lacks rsync" in result.stdout and "supplied: rsync" in result.stdout
    manifest = json.loads(
        (tmp_path / "builds" / build_id("v1.33.7", 7, 10) / "manifest.json").read_text())
    image = manifest["image"]
    assert image["probe"]["tools"]["rsync"] == ""
    assert image["probe"]["go_env"]["GOPATH"] == "/go"
    assert image["supplied"] and image["supplied"][0].startswith("rsync")
    assert manifest["go"]["version"] == TEST_GO
    assert manifest["verification"]["passed"] is True


@pytest.mark.parametrize(("removed", "lacks"), [
    (("/usr/bin/make",), "lacks make (upstream's hack scripts need it)"),
    (("/usr/local/go",), "lacks a Go toolchain that runs"),
    (("/bin/bash", "/usr/bin/bash"), "lacks bash"),
])
def test_an_image_that_cannot_build_is_refused_before_fetch(
    cli: Cli, standin_repo: Path, tmp_path: Path, engine: docker.DockerClient,
    removed: tuple[str, ...], lacks: str,
) -> None:
    name = "longcert-test/golang-broken:" + TEST_GO
    stock_image.make(engine, TEST_IMAGE, name, ("/usr/bin/rsync", *removed))
    cache = tmp_path / "cache"
    try:
        result = cli("build", "--version", "v1.33.7", "--repo", str(standin_repo),
                     "--image", name, env={"LONGCERT_CACHE_DIR": str(cache)})
    finally:
        stock_image.remove(engine, name)
    assert result.returncode == 4, result.stderr
    assert f"builder image {name} cannot build kubeadm" in result.stderr
    assert lacks in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "==> fetch" not in result.stdout
    assert not (cache / "mirrors").exists() and not (cache / "work").exists()
    assert not engine.containers.list(all=True, filters={"label": "org.longcert"})


def test_missing_go_image_names_the_command_that_makes_it(cli: Cli, standin_repo: Path) -> None:
    """v1.15 to v1.17 may only use their own Go: with none present, the error is the exact
    builder-image command. (The v1.14.8 stand-in asks for Go 1.12.10; a template no image
    matches stands in for 'nothing present'.)"""
    result = cli("build", "--version", "v1.14.8", "--repo", str(standin_repo),
                 "--image", "longcert-test/none:{go_version}")
    assert result.returncode == 4, result.stderr
    assert ("make it with `longcert builder-image --go-version 1.12.10 --tag "
            "longcert-test/none:1.12.10`") in result.stderr
    assert "rule 'gopath'" in result.stderr


def test_an_image_of_another_architecture_is_refused_before_fetch(
    cli: Cli, standin_repo: Path, engine: docker.DockerClient,
) -> None:
    name = "longcert-test/golang-arm64:" + TEST_GO
    stock_image.load_foreign(engine, name)
    try:
        result = cli("build", "--version", "v1.33.7", "--repo", str(standin_repo),
                     "--image", name)
    finally:
        stock_image.remove(engine, name)
    assert result.returncode == 4, result.stderr
    assert f"builder image {name} cannot build kubeadm: it is an image for linux/arm64" in (
        result.stderr)
    assert "==> fetch" not in result.stdout


def test_an_image_named_by_digest(cli: Cli, standin_repo: Path, tmp_path: Path, stock: str,
                                  registry: local_registry.LocalRegistry) -> None:
    """`--image repo@sha256:...` is pulled by digest (through the mirror) and recorded so."""
    mirror, template = stock.split("/", 1)
    repository = template.split(":")[0]
    raw = registry.get(f"{repository}/manifests/{TEST_GO}",
                       "application/vnd.docker.distribution.manifest.v2+json")
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    result = cli("build", "--version", "v1.33.7", "--years", "9", "--repo", str(standin_repo),
                 "--image", f"{repository}@{digest}", "--registry-mirror", mirror)
    assert result.returncode == 0, result.stderr
    manifest = json.loads(
        (tmp_path / "builds" / build_id("v1.33.7", 9, 10) / "manifest.json").read_text())
    assert manifest["image"]["name"] == f"{repository}@{digest}"
    assert f"{mirror}/{repository}@{digest}" in manifest["image"]["digests"]
    assert manifest["verification"]["passed"] is True
