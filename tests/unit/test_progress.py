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
