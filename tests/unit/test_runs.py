"""runs.write_atomic: the new contents or the old, never part, and no temporary file left; a
dead run's temporary files in the cache are swept, a live run's are not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from longcert import runs


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
