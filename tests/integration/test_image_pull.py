"""A builder image that is missing locally is pulled (through --registry-mirror), then used."""

from __future__ import annotations

import contextlib
from pathlib import Path

import docker
import pytest

from tests import local_registry
from tests.integration.conftest import TEST_GO, TEST_IMAGE, Cli

pytestmark = pytest.mark.docker

PULL_TEST_IMAGE = "longcert-pulltest/golang"


def test_missing_image_is_pulled_through_the_mirror(
    cli: Cli, standin_repo: Path, tmp_path: Path, engine: docker.DockerClient,
    registry: local_registry.LocalRegistry,
) -> None:
    mirrored = f"{registry.host}/{PULL_TEST_IMAGE}"
    image = engine.images.get(TEST_IMAGE)
    image.tag(mirrored, TEST_GO)
    try:
        # Docker treats registries on 127.0.0.0/8 as plain-HTTP registries, so no daemon setup.
        for line in engine.images.push(mirrored, TEST_GO, stream=True, decode=True):
            assert "error" not in line, line
        engine.images.remove(f"{mirrored}:{TEST_GO}")
        with contextlib.suppress(docker.errors.ImageNotFound):
            engine.images.remove(f"{PULL_TEST_IMAGE}:{TEST_GO}")

        result = cli("compile", "--version", "v1.33.7", "--years", "3", "--repo",
                     str(standin_repo), "--image", PULL_TEST_IMAGE + ":{go_version}",
                     "--registry-mirror", registry.host)
        assert result.returncode == 0, result.stderr
        assert f"pulling {mirrored}:{TEST_GO}" in result.stdout
        pulled = engine.images.get(f"{PULL_TEST_IMAGE}:{TEST_GO}")
        assert pulled.id == image.id  # the same image, now under the name the pipeline uses
    finally:
        for name in (f"{mirrored}:{TEST_GO}", f"{PULL_TEST_IMAGE}:{TEST_GO}"):
            with contextlib.suppress(docker.errors.ImageNotFound):
                engine.images.remove(name)
