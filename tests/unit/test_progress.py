"""What the user sees while the pipeline runs."""

from __future__ import annotations

import io
import time

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
