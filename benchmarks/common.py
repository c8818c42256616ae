"""What the benchmarks share: a stand-in repository and fresh, removed-after cache volumes."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker

from tests.fixtures import standin


@contextmanager
def fresh_volumes(count: int) -> Iterator[list[str]]:
    """``count`` unused volume names (a build starts with empty Go caches); removed after."""
    names = [f"longcert-bench-{uuid.uuid4().hex[:8]}" for _ in range(count)]
    try:
        yield names
    finally:
        client = docker.from_env()
        for name in names:
            for found in client.volumes.list(filters={"name": name}):
                found.remove(force=True)


@contextmanager
def standin_with_volume(tag: str) -> Iterator[tuple[Path, Path, str]]:
    """(scratch directory, stand-in repository holding ``tag``, an unused build-cache volume
    name); the volume is removed afterwards."""
    with tempfile.TemporaryDirectory() as name, fresh_volumes(1) as (volume,):
        tmp = Path(name)
        repo = standin.make_standin_repo(tmp / "k8s", [tag])
        yield tmp, repo, volume
