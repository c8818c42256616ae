"""runs.write_atomic: the new contents or the old, never part, and no temporary file left; a
dead run's temporary files in the cache and in a build directory are swept, a live run's are
not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from longcert import runs

ROOT = Path(__file__).resolve().parents[2]


def test_write_atomic_replaces_and_leaves_nothing_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "x.json"
    runs.write_atomic(target, "old")
    runs.write_atomic(target, "new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["x.json"]

    def fail(src: object, dst: object) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(runs.os, "replace", fail)
    with pytest.raises(OSError, match="No space left"):
        runs.write_atomic(target, "newer")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["x.json"]


def test_a_dead_runs_temporary_files_in_logs_and_probes_are_swept(tmp_path: Path) -> None:
    dead, alive = runs.DeadRun("111-aaaaaa", ()), "222-bbbbbb"
    for folder in ("logs", "probes"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / f".b.json.new-{dead.id}-0a0b0c").write_text("part")
        (tmp_path / folder / f".b.json.new-{alive}-0a0b0c").write_text("part")
        (tmp_path / folder / "b.json").write_text("whole")
    removed: list[str] = []
    runs.sweep_files(dead, tmp_path, removed)
    assert len(removed) == 2
    for folder in ("logs", "probes"):
        assert sorted(os.listdir(tmp_path / folder)) == [f".b.json.new-{alive}-0a0b0c", "b.json"]


KILLED_KIT_WRITE = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from longcert import kit, runs
    build = Path(sys.argv[2])
    files = [kit.KitFile("README.md", "new kit\\n")]
    with runs.registered(Path(sys.argv[1])):
        real_rename = Path.rename
        def rename(self, target):
            if Path(target).name == "kit":  # the old kit is moved aside: die before the new one
                os.kill(os.getpid(), signal.SIGKILL)
            return real_rename(self, target)
        Path.rename = rename
        kit.write_kit(build, files)
""")


def test_a_kit_write_killed_between_its_renames_is_undone_by_the_sweep(tmp_path: Path) -> None:
    cache, build = tmp_path / "cache", tmp_path / "builds" / "kubeadm-v1.33.7-leaf10y-ca10y"
    (build / "kit").mkdir(parents=True)
    (build / "kit" / "README.md").write_text("old kit\n")
    (build / "kit.tar.gz").write_bytes(b"old archive")
    child = subprocess.run([sys.executable, "-c", KILLED_KIT_WRITE, str(cache), str(build),
                            str(ROOT)], capture_output=True, text=True, check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert not (build / "kit").exists()  # killed with the old kit moved aside
    leftovers = sorted(p.name for p in build.iterdir() if p.name.startswith("."))
    assert len(leftovers) == 3  # staging, archive, old kit: each named with the run

    removed = runs.sweep(cache)

    assert len(removed) == 3
    assert (build / "kit" / "README.md").read_text() == "old kit\n"  # put back
    assert (build / "kit.tar.gz").read_bytes() == b"old archive"
    assert sorted(os.listdir(build)) == ["kit", "kit.tar.gz"]


def _forge(cache: Path, run_id: str, builds_dirs: list[str]) -> None:
    import json

    (cache / "runs").mkdir(parents=True, exist_ok=True)
    (cache / "runs" / f"{run_id}.lock").write_text(json.dumps({"builds_dirs": builds_dirs}))


def test_a_forged_run_record_touches_nothing_that_is_not_longcerts(tmp_path: Path) -> None:
    """A record in <cache>/runs naming a home directory: clean removes or renames only files
    with the exact names a run of that id makes, and nothing for an id no run has."""
    cache, home = tmp_path / "cache", tmp_path / "home"
    home.mkdir()
    precious = [".bashrc", ".x-1-y", ".profile.old-1-aaaaaa.txt", ".ssh.new-1-zz",
                ".config.old-7-abcdef", ".kit-1-aaaaaa", "notes-1-aaaaaa-x"]
    for name in precious:
        (home / name).write_text("mine")
    _forge(cache, "x", [str(home)])  # not a run id: ignored whatever it names
    _forge(cache, "1", [str(home)])
    _forge(cache, "7-abcdef", [str(home), "relative/dir"])  # a well-formed id
    (home / ".gitconfig.new-7-abcdef-0a0b0c").write_text("a run's temporary file")
    (home / ".docs.old-7-abcdef-0a0b0c").write_text("a run's aside copy")
    removed = runs.sweep(cache)
    assert sorted(os.listdir(home)) == sorted([*precious, "docs"])
    assert (home / "docs").read_text() == "a run's aside copy"  # put back, as for --force
    assert len(removed) == 2


KILLED_DIRECTORY_PUBLISH = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[4])
    from longcert import publish, runs, settings
    from longcert.progress import Reporter
    from longcert.publish import directory
    build = publish.load_build(Path(sys.argv[2]))
    real_copy = directory._copy_checked
    copied = []
    def copy(item, dest):
        real_copy(item, dest)
        copied.append(dest)
        if len(copied) == 2:
            os.kill(os.getpid(), signal.SIGKILL)  # kill -9 halfway through the staging
    directory._copy_checked = copy
    with runs.registered(Path(sys.argv[1])):
        target = directory.DirectoryTarget(Path(sys.argv[3]))
        target.push(build, progress=Reporter().step)
""")


def test_a_directory_publish_killed_midway_leaves_staging_a_sweep_removes(
    tmp_path: Path,
) -> None:
    from tests.standin_build import make_build

    cache, share = tmp_path / "cache", tmp_path / "share"
    share.mkdir()
    build = make_build(tmp_path / "builds")
    child = subprocess.run([sys.executable, "-c", KILLED_DIRECTORY_PUBLISH, str(cache),
                            str(build), str(share), str(ROOT)],
                           capture_output=True, text=True, check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr
    staged = [p.name for p in share.iterdir()]
    assert len(staged) == 1 and staged[0].startswith(f".{build.name}.staging-"), staged
    removed = runs.sweep(cache)
    assert removed == [str(share / staged[0])]
    assert list(share.iterdir()) == []
