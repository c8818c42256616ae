"""What the user sees while the pipeline runs."""

from __future__ import annotations

import io
import re
import time

import pytest

from longcert.progress import Reporter


def test_quiet_compile_gets_a_heartbeat() -> None:
    out = io.StringIO()
    reporter = Reporter(out, heartbeat_seconds=0.05)
    with reporter.stage("compile"), reporter.ticking("compiling"):
        reporter.output_line("+++ Building go targets for linux/amd64")
        time.sleep(0.3)
    text = out.getvalue()
    assert "... compiling: 0s, 1 lines of output, last: +++ Building go targets" in text
    assert "compile done in" in text


def test_every_second_of_a_run_is_in_one_timing() -> None:
    out = io.StringIO()
    reporter = Reporter(out)
    reporter.start_run()
    time.sleep(0.05)  # settings, sweep, engine, image
    with reporter.stage("fetch"):
        time.sleep(0.02)
    time.sleep(0.03)  # between stages
    with reporter.stage("patch"):
        pass
    time.sleep(0.02)  # the worktree released
    record = reporter.end_run()
    stages = {entry["name"]: entry["seconds"] for entry in record["stages"]}
    assert list(stages) == ["prepare", "fetch", "patch", "between stages", "cleanup"]
    assert stages["prepare"] >= 0.05 and stages["between stages"] >= 0.03
    assert abs(sum(stages.values()) - record["total"]) < 0.01
    text = out.getvalue()
    assert "prepare (settings, sweep, engine, image) took" in text
    assert "total " in text and "between stages" in text


def test_a_run_without_stages_is_all_prepare() -> None:
    reporter = Reporter(io.StringIO())
    reporter.start_run()
    record = reporter.end_run()  # an existing build answered the run
    assert [e["name"] for e in record["stages"]] == ["prepare"]


class _Terminal(io.StringIO):
    """A stream that says it is a terminal, as a pseudo-terminal would."""

    def isatty(self) -> bool:
        return True


def test_the_preamble_shows_only_changed_settings_unless_verbose() -> None:
    rows = [("years", "10", "flag --years"), ("repo", "https://x", "default"),
            ("cache_dir", "/c", "default")]
    out = io.StringIO()
    Reporter(out).preamble("build v1.33.7", rows)
    text = out.getvalue()
    assert "longcert: build v1.33.7" in text and "years" in text
    assert "repo" not in text and "(2 more at their defaults: --verbose shows them)" in text
    out = io.StringIO()
    Reporter(out, verbose=True).preamble("build v1.33.7", rows)
    assert "repo" in out.getvalue() and "more at their defaults" not in out.getvalue()


def test_git_progress_is_activity_not_lines() -> None:
    out = io.StringIO()
    reporter = Reporter(out, heartbeat_seconds=0.05)
    with reporter.stage("fetch"), reporter.ticking("fetching v1.33.7"):
        for percent in (10, 50, 100):
            reporter.activity(f"git: Receiving objects: {percent}%")
        time.sleep(0.2)
    text = out.getvalue()
    assert "Receiving objects: 10%" not in text  # no line per update
    assert "last: git: Receiving objects: 100%" in text  # the heartbeat says the latest


def test_on_a_terminal_a_stop_says_interrupted_and_lines_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = _Terminal()
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    reporter = Reporter(out)
    reporter.console.width = 40
    assert reporter.live
    try:
        with reporter.stage("compile"), reporter.ticking("compiling"):
            reporter.output_line("k8s.io/kubernetes/cmd/kubeadm/app/phases/certs/pkiutil " * 3)
            reporter.step("a step that is much longer than forty columns, so it wraps")
            time.sleep(0.6)  # a few redraws of the status line
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    text = out.getvalue()
    assert "compile interrupted after" in text and "FAILED" not in text
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    assert all(len(piece) <= 40 for piece in re.split(r"[\r\n]", plain)), plain
    assert "==> compile 0s" in plain  # the status line was drawn


def test_short_hashes_keep_their_algorithm() -> None:
    from longcert.progress import short_hash

    assert short_hash("ab" * 32) == "ab" * 6
    assert short_hash("sha256:" + "cd" * 32) == "sha256:" + "cd" * 6


def test_scenario_progress_counts_running_and_done() -> None:
    from longcert.verify.run import ScenarioProgress

    heard: list[str] = []
    progress = ScenarioProgress(["init", "pinned", "ecdsa"], heard.append)
    with progress.running(0), progress.running(2):
        pass
    assert heard == [
        "scenario 1 of 3 (init) running",
        "scenario 1 of 3 (init), 3 of 3 (ecdsa) running",
        "scenario 1 of 3 (init) running; 1 of 3 done",
        "2 of 3 done",
    ]
