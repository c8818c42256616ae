"""Ctrl-C during a compile: exit 130, container removed, nothing half-written, tree cleaned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import docker
import pytest

from tests.cli import ROOT
from tests.integration.conftest import go_flags

pytestmark = pytest.mark.docker


def test_ctrl_c_during_compile(standin_repo: Path, shared_cache: Path, tmp_path: Path,
                               engine: docker.DockerClient) -> None:
    tag = "v1.28.7"
    volume = f"longcert-test-{uuid.uuid4().hex[:8]}"  # empty cache: the compile takes a while
    env = {k: v for k, v in os.environ.items() if not k.startswith("LONGCERT_")}
    env.update({"LONGCERT_CACHE_DIR": str(shared_cache),
                "LONGCERT_BUILDS_DIR": str(tmp_path / "builds"),
                "LONGCERT_BUILD_CACHE_VOLUME": volume, "PYTHONUNBUFFERED": "1"})
    work = shared_cache / "work"
    before = set(work.iterdir()) if work.exists() else set()
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "-r", str(ROOT), "build", "--version", tag,
         "--repo", str(standin_repo), *go_flags(standin_repo, tag)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("==> compile"):
                break
        time.sleep(3)  # inside `make`
        running = [  # this run's (its id starts with its pid): other runs may share the engine
            c for c in engine.containers.list(filters={"label": "org.longcert.purpose=build"})
            if c.labels.get("org.longcert.run", "").startswith(f"{proc.pid}-")]
        assert running, "the build container should be running now"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 130, stderr
        assert "longcert: interrupted" in stderr
        assert "Traceback" not in stderr
        # this run's containers are gone
        remaining = {c.id for c in engine.containers.list(all=True)}
        assert not {c.id for c in running} & remaining
        assert not (tmp_path / "builds").exists() or not any((tmp_path / "builds").iterdir())
        assert (set(work.iterdir()) if work.exists() else set()) == before
    finally:
        if proc.poll() is None:
            proc.kill()
        engine.volumes.get(volume).remove(force=True)


@pytest.mark.parametrize("purpose", ["build", "verify", "renew-check", "kit"])
def test_a_stop_while_a_container_is_created_leaves_none(
    tmp_path: Path, engine: docker.DockerClient, purpose: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM between the engine creating a container and the create call returning: the
    container is the engine's, not yet this process's (issue 22). The run, ending, removes
    what carries its label, and keeps its record for the next sweep to look once more."""
    from longcert import container, runs
    from tests.integration.conftest import TEST_IMAGE

    client = container.connect()
    collection = docker.models.containers.ContainerCollection
    real_create = collection.create

    def create_then_stop(self: object, *args: object, **kwargs: object) -> object:
        real_create(self, *args, **kwargs)  # type: ignore[arg-type]
        raise runs.Terminated(signal.SIGTERM)  # the engine made it; the answer never came

    monkeypatch.setattr(collection, "create", create_then_stop)
    cache = tmp_path / "cache"
    with pytest.raises(runs.Terminated), runs.registered(cache) as run:
        run_id = run.id
        with container.BuildContainer(client, TEST_IMAGE,
                                      labels={"org.longcert.purpose": purpose}):
            pass  # never reached
    label = {"label": f"{runs.RUN_LABEL}={run_id}"}
    assert not engine.containers.list(all=True, filters=label)
    assert (cache / "runs" / f"{run_id}.lock").exists()  # for the next sweep
    assert runs.sweep(cache, lambda rid: container.remove_run_containers(engine, rid)) == []
    assert not (cache / "runs" / f"{run_id}.lock").exists()
