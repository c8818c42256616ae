"""What the benchmarks share: a stand-in repository and a fresh, removed-after cache volume."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker

from tests.fixtures import standin


@contextmanager
def standin_with_volume(tag: str) -> Iterator[tuple[Path, Path, str]]:
    """(scratch directory, stand-in repository holding ``tag``, an unused build-cache volume
    name); the volume is removed afterwards."""
    volume = f"longcert-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        repo = standin.make_standin_repo(tmp / "k8s", [tag])
        try:
            yield tmp, repo, volume
        finally:
            for found in docker.from_env().volumes.list(filters={"name": volume}):
                found.remove(force=True)
