"""Runs that share a cache, and runs that are killed: locks, signals, sweeps, full disks."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from longcert import source
from longcert.package import build_id
from tests.cli import ROOT, invoke_environ
from tests.fixtures import standin
from tests.integration.conftest import TEST_IMAGE, go_flags

FETCH_TAGS = [t for t in standin.STANDIN_TAGS if t != standin.NEWEST_TAG]


def invoke(*args: str, cache: Path, builds: Path, cwd: Path,
           extra: dict[str, str] | None = None) -> subprocess.Popen[str]:
    env = invoke_environ({"LONGCERT_CACHE_DIR": str(cache), "LONGCERT_BUILDS_DIR": str(builds),
                        "PYTHONUNBUFFERED": "1", **(extra or {})})
    return subprocess.Popen([sys.executable, "-m", "invoke", "-r", str(ROOT), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=cwd)


def finish(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str, str]]:
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        out.append((proc.returncode, stdout, stderr))
    return out


def test_parallel_fetches_on_a_fresh_cache(standin_repo: Path, tmp_path: Path) -> None:
    """Six fetches of different tags (and two of the same) at once, one fresh mirror."""
    tags = [*FETCH_TAGS, FETCH_TAGS[-1], FETCH_TAGS[0]]
    procs = [invoke("fetch", "--version", tag, "--repo", str(standin_repo),
                    cache=tmp_path / "cache", builds=tmp_path / "builds", cwd=tmp_path)
             for tag in tags]
    for code, _, stderr in finish(procs):
        assert code == 0, stderr
    mirrors = list((tmp_path / "cache" / "mirrors").glob("*.git"))
    assert len(mirrors) == 1
    listed = subprocess.run(["git", "-C", str(mirrors[0]), "tag"], capture_output=True,
                            text=True, check=True).stdout.split()
    assert sorted(listed) == sorted(FETCH_TAGS)
    assert not any((tmp_path / "cache" / "work").iterdir())  # every worktree cleaned up


def test_git_lock_files_a_killed_fetch_left_are_recovered(standin_repo: Path,
                                                         tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = finish([invoke("fetch", "--version", "v1.9.4", "--repo", str(standin_repo),
                           cache=cache, builds=tmp_path, cwd=tmp_path)])[0]
    assert first[0] == 0, first[2]
    mirror = next((cache / "mirrors").glob("*.git"))
    for name in ("shallow.lock", "config.lock"):
        (mirror / name).write_text("")  # what git leaves when killed mid-fetch
    (mirror / "refs" / "tags").mkdir(parents=True, exist_ok=True)
    (mirror / "refs" / "tags" / "v1.13.5.lock").write_text("")
    held = mirror / "packed-refs.lock"
    with held.open("w"):  # a live process still holds this one: it must stay
        assert source.recover_stale_git_locks(mirror) == [
            "shallow.lock", "config.lock", "refs/tags/v1.13.5.lock"]
    assert held.exists()
    held.unlink()
    (mirror / "shallow.lock").write_text("")
    code, stdout, stderr = finish([invoke("fetch", "--version", "v1.13.5", "--repo",
                                          str(standin_repo), cache=cache, builds=tmp_path,
                                          cwd=tmp_path)])[0]
    assert code == 0, stderr
    assert "removed git lock files a killed run left in the mirror: shallow.lock" in stdout


def _slow_upload_pack(tmp_path: Path) -> dict[str, str]:
    """PATH with a git-upload-pack that waits, so a fetch can be killed in the middle."""
    bin_dir = tmp_path / "slowbin"
    bin_dir.mkdir()
    real = subprocess.run(["git", "--exec-path"], capture_output=True, text=True,
                          check=True).stdout.strip()
    wrapper = bin_dir / "git-upload-pack"
    wrapper.write_text(f"#!/bin/sh\nsleep 3\nexec {real}/git-upload-pack \"$@\"\n")
    wrapper.chmod(0o755)
    # git puts its own exec-path first on PATH, so name the program through configuration
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "remote.origin.uploadpack",
            "GIT_CONFIG_VALUE_0": str(wrapper)}


def test_kill_9_mid_fetch_then_a_fetch_succeeds(standin_repo: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    slow = invoke("fetch", "--version", "v1.28.7", "--repo", str(standin_repo), cache=cache,
                  builds=tmp_path, cwd=tmp_path, extra=_slow_upload_pack(tmp_path))
    assert slow.stdout is not None
    for line in slow.stdout:
        if line.startswith("==> fetch"):
            break
    time.sleep(1)  # the fetch is running, waiting on the remote, with the mirror locked
    os.kill(slow.pid, signal.SIGKILL)
    slow.communicate(timeout=30)
    runs_left = list((cache / "runs").glob("*.lock"))
    assert runs_left, "the killed run's registration stays until a sweep"
    code, stdout, stderr = finish([invoke("fetch", "--version", "v1.28.7", "--repo",
                                          str(standin_repo), cache=cache, builds=tmp_path,
                                          cwd=tmp_path)])[0]
    assert code == 0, stderr
    # the killed run's registration is swept; its worktree was the tag's kept one, which the
    # next run reset (nothing else of it is left to remove)
    assert not list((cache / "runs").glob("*.lock"))
    assert not (cache / "work").exists() or not any((cache / "work").iterdir())
    assert "kept worktree" in stdout


# --- builds (Docker) ----------------------------------------------------------------------


@pytest.fixture
def volume(engine: docker.DockerClient) -> Iterator[str]:
    name = f"longcert-test-{uuid.uuid4().hex[:8]}"
    yield name
    for volume in engine.volumes.list(filters={"name": name}):
        volume.remove(force=True)


@pytest.mark.docker
def test_parallel_builds_of_different_and_of_the_same_version(
    standin_repo: Path, tmp_path: Path, shared_cache: Path, engine: docker.DockerClient
) -> None:
    builds = tmp_path / "builds"
    runs = [("v1.28.7", "3"), ("v1.33.7", "3"), ("v1.33.7", "3"), ("v1.14.8", "3")]
    procs = [invoke("build", "--version", tag, "--years", years, "--repo", str(standin_repo),
                    *go_flags(standin_repo, tag), cache=shared_cache, builds=builds,
                    cwd=tmp_path) for tag, years in runs]
    results = finish(procs)
    codes = [code for code, _, _ in results]
    # the two runs of one build id never interleave: one builds, the other waits for it and
    # then finds that very build there (nothing to do)
    assert codes == [0, 0, 0, 0], results
    outputs = [results[1][1], results[2][1]]
    assert sum("nothing to do" in out for out in outputs) == 1, outputs
    assert sum("==> compile" in out for out in outputs) == 1, outputs
    for tag in ("v1.28.7", "v1.33.7", "v1.14.8"):
        out = builds / build_id(tag, 3, 10)
        subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, check=True,
                       capture_output=True)
    assert sorted(p.name for p in builds.iterdir()) == sorted(
        build_id(t, 3, 10) for t in ("v1.28.7", "v1.33.7", "v1.14.8"))
    assert not engine.containers.list(all=True, filters={"label": "org.longcert"})


def build_until_make(repo: Path, cache: Path, tmp_path: Path,
                     volume: str) -> subprocess.Popen[str]:
    """`invoke build` of v1.28.7 on an empty cache volume, returned while make runs."""
    proc = invoke("build", "--version", "v1.28.7", "--repo", str(repo),
                  *go_flags(repo, "v1.28.7"), cache=cache,
                  builds=tmp_path / "builds", cwd=tmp_path,
                  extra={"LONGCERT_BUILD_CACHE_VOLUME": volume})
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("==> compile"):
            break
    time.sleep(3)  # inside make, in the container
    return proc


@pytest.mark.docker
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_during_compile(signum: int, code: int, standin_repo: Path,
                                           tmp_path: Path, shared_cache: Path, volume: str,
                                           engine: docker.DockerClient) -> None:
    work = shared_cache / "work"
    before = set(work.iterdir()) if work.exists() else set()
    proc = build_until_make(standin_repo, shared_cache, tmp_path, volume)
    running = engine.containers.list(filters={"label": "org.longcert.purpose=build"})
    assert running
    # what the build container may do (README, "What the containers can do")
    host = running[0].attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert sorted(c.removeprefix("CAP_") for c in host["CapAdd"]) == [
        "CHOWN", "DAC_OVERRIDE", "FOWNER"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["PidsLimit"] == 4096 and host["Memory"] == 8 * 2**30
    assert host["NetworkMode"] == "none"
    assert running[0].attrs["Config"]["User"] == f"{os.getuid()}:{os.getgid()}"
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert f"longcert: stopped by {signal.Signals(signum).name}" in stderr
    assert "Traceback" not in stderr
    assert not engine.containers.list(all=True, filters={"label": "org.longcert"})
    assert (set(work.iterdir()) if work.exists() else set()) == before
    assert not (tmp_path / "builds").exists() or not any((tmp_path / "builds").iterdir())


@pytest.mark.docker
def test_clean_removes_what_a_killed_build_left_and_only_that(
    standin_repo: Path, tmp_path: Path, volume: str, engine: docker.DockerClient
) -> None:
    cache = tmp_path / "cache"
    # a live run of this cache: its registration and worktree must survive the clean
    from longcert import runs as runs_mod
    live = runs_mod.Run(cache)
    live.start()
    live_work = cache / "work" / f"v1.9.4-{live.id}-keep"
    live_work.mkdir(parents=True)
    try:
        proc = build_until_make(standin_repo, cache, tmp_path, volume)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        left = engine.containers.list(all=True, filters={"label": "org.longcert.purpose=build"})
        assert left, "kill -9 leaves the build container running"
        # its worktree is the tag's kept one (reset by the next build that takes it, see
        # tests/unit/test_worktree_reuse.py), not a per-run one for the sweep
        assert len(list((cache / "trees").glob("*/kubernetes"))) == 1
        assert [p.name for p in (cache / "work").iterdir()] == [live_work.name]
        cleaned = finish([invoke("clean", cache=cache, builds=tmp_path, cwd=tmp_path)])[0]
        assert cleaned[0] == 0, cleaned[2]
        assert "container" in cleaned[1] and "left by dead runs removed" in cleaned[1]
        assert not engine.containers.list(all=True, filters={"label": "org.longcert"})
        assert [p.name for p in (cache / "work").iterdir()] == [live_work.name]
        assert live.path.exists()
    finally:
        live.stop()


@pytest.mark.docker
def test_clean_go_caches_removes_every_remotes_volumes_but_one_in_use(
    tmp_path: Path, engine: docker.DockerClient
) -> None:
    base = f"lc-clean-{uuid.uuid4().hex[:8]}"
    build, module = f"{base}-build", f"{base}-mod"
    names = [f"{build}-0123456789ab", f"{module}-0123456789ab", build, f"{module}-ba9876543210",
             f"{base}-unrelated"]
    for name in names:
        engine.volumes.create(name)
    busy = engine.containers.run(TEST_IMAGE, ["sleep", "600"], detach=True, network_mode="none",
                                 volumes={f"{module}-ba9876543210": {"bind": "/c", "mode": "rw"}})
    try:
        done = finish([invoke("clean", "--all-go-caches", cache=tmp_path / "cache",
                              builds=tmp_path / "builds", cwd=tmp_path,
                              extra={"LONGCERT_BUILD_CACHE_VOLUME": build,
                                     "LONGCERT_MODULE_CACHE_VOLUME": module})])[0]
        assert done[0] == 0, done[2]
        assert f"kept volume {module}-ba9876543210: a running build uses it" in done[1]
        assert "clean: 3 Go cache volume(s) of every remote on the engine removed" in done[1]
        left = {v.name for v in engine.volumes.list() if v.name.startswith(base)}
        assert left == {f"{module}-ba9876543210", f"{base}-unrelated"}
    finally:
        busy.remove(force=True)
        for name in names:
            with contextlib.suppress(docker.errors.NotFound):
                engine.volumes.get(name).remove(force=True)


@pytest.mark.docker
def test_clean_go_caches_removes_only_this_cache_directorys_volumes(
    tmp_path: Path, engine: docker.DockerClient
) -> None:
    """Two jobs, two cache directories, one engine (issue 19): --go-caches removes the volumes
    builds from its own --cache-dir used, never the other job's; --dry-run removes nothing."""
    from longcert import build

    base = f"lc-scope-{uuid.uuid4().hex[:8]}"
    mine, theirs = f"{base}-build-0123456789ab", f"{base}-build-ba9876543210"
    for name in (mine, theirs):
        engine.volumes.create(name)
    caches = {"mine": tmp_path / "mine", "theirs": tmp_path / "theirs"}
    for job, volume in (("mine", mine), ("theirs", theirs)):
        build.note_cache_volumes(caches[job], build.CacheVolumes(volume, f"{base}-mod-x",
                                                                 False, "remote x"))
    env = {"LONGCERT_BUILD_CACHE_VOLUME": f"{base}-build",
           "LONGCERT_MODULE_CACHE_VOLUME": f"{base}-mod"}
    try:
        dry = finish([invoke("clean", "--go-caches", "--dry-run", cache=caches["mine"],
                             builds=tmp_path / "builds", cwd=tmp_path, extra=env)])[0]
        assert dry[0] == 0, dry[2]
        assert f"would remove volume {mine}" in dry[1] and theirs not in dry[1]
        assert {mine, theirs} <= {v.name for v in engine.volumes.list()}
        done = finish([invoke("clean", "--go-caches", cache=caches["mine"],
                              builds=tmp_path / "builds", cwd=tmp_path, extra=env)])[0]
        assert done[0] == 0, done[2]
        assert f"removed volume {mine}" in done[1]
        assert "clean: 1 Go cache volume(s) of" in done[1]
        left = {v.name for v in engine.volumes.list() if v.name.startswith(base)}
        assert left == {theirs}
        assert build.noted_cache_volumes(caches["mine"]) == {f"{base}-mod-x"}
        assert theirs in build.noted_cache_volumes(caches["theirs"])
    finally:
        for name in (mine, theirs):
            with contextlib.suppress(docker.errors.NotFound):
                engine.volumes.get(name).remove(force=True)


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                   check=True)


@pytest.mark.docker
def test_full_disk_while_packaging_keeps_the_previous_build(
    standin_repo: Path, tmp_path: Path, shared_cache: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    builds = tmp_path / "small"
    _mount_tmpfs(builds, "6m")  # one stand-in build fits, a second copy of it does not
    try:
        args = ("build", "--version", "v1.33.7", "--years", "4", "--repo", str(standin_repo))
        first = finish([invoke(*args, cache=shared_cache, builds=builds, cwd=tmp_path)])[0]
        assert first[0] == 0, first[2]
        out = builds / build_id("v1.33.7", 4, 10)
        before = hashlib.sha256((out / "kubeadm-linux-amd64").read_bytes()).hexdigest()
        code, _, stderr = finish([invoke(*args, "--force", cache=shared_cache, builds=builds,
                                         cwd=tmp_path)])[0]
        assert code == 9, stderr
        assert stderr.strip().startswith("longcert: PublishError: package failed: No space "
                                         "left on device")
        assert len(stderr.strip().splitlines()) == 1
        after = hashlib.sha256((out / "kubeadm-linux-amd64").read_bytes()).hexdigest()
        assert after == before
        subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, check=True,
                       capture_output=True)
        assert [p.name for p in builds.iterdir()] == [out.name]  # no staging left behind
    finally:
        subprocess.run(["umount", str(builds)], check=False)
