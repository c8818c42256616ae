"""What a person at a terminal sees (issue 19), through a real pseudo-terminal (pexpect).

The raw bytes are checked, not a screen: with the escape sequences taken out, every piece
between line ends and carriage returns must fit the terminal's width (so nothing wraps and
leaves stale rows), the status line must be redrawn with a new elapsed time at least every
2 s while the compile prints nothing, and Ctrl-C must end the line with "interrupted".
"""

from __future__ import annotations

import itertools
import re
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pexpect
import pytest

from tests.cli import invoke_environ
from tests.integration.conftest import go_flags

pytestmark = pytest.mark.docker

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
COLOUR = re.compile(r"\x1b\[[0-9;]*3[0-7]m|\x1b\[[0-9;]*38;")
ELAPSED = re.compile(r"==> compile (\d+m\d\ds|\d+s)")


def pieces(raw: str) -> list[str]:
    """What the terminal shows as separate runs of text: split at line ends and returns."""
    return [p for p in re.split(r"[\r\n]", ANSI.sub("", raw)) if p]


def run_in_terminal(
    args: list[str], env: dict[str, str], cwd: Path, columns: int
) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable, ["-m", "longcert", *args], env=env, cwd=str(cwd),
        dimensions=(40, columns), encoding="utf-8", codec_errors="replace", timeout=600,
    )


def read_timed(child: pexpect.spawn, until: str | None = None, limit: float = 900
               ) -> Iterator[tuple[float, str]]:
    """(time, chunk) as the terminal receives them, until EOF or ``until`` appears."""
    seen = ""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            chunk = child.read_nonblocking(65536, timeout=0.5)
        except pexpect.TIMEOUT:
            continue
        except pexpect.EOF:
            return
        seen += chunk
        yield time.monotonic(), chunk
        if until is not None and until in ANSI.sub("", seen):
            return


def terminal_env(shared_cache: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = invoke_environ({
        "LONGCERT_CACHE_DIR": str(shared_cache),
        "LONGCERT_BUILDS_DIR": str(tmp_path / "builds"),
        "TERM": "xterm-256color",
        "PYTHONUNBUFFERED": "1",
        **extra,
    })
    for sized in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "GITHUB_ACTIONS"):
        if sized not in extra:
            env.pop(sized, None)
    return env


def test_ctrl_c_during_a_quiet_compile_at_80_columns(
    standin_repo: Path, shared_cache: Path, tmp_path: Path, engine: docker.DockerClient
) -> None:
    """A cold compile (its own empty Go cache) at 80 columns: no piece wider than 80, the
    status line ticks at least every 2 s, and Ctrl-C ends it with "interrupted", exit 130,
    leaving no container of this run and no build."""
    tag = "v1.28.7"
    volume = f"longcert-test-{uuid.uuid4().hex[:8]}"  # empty cache: the compile takes a while
    env = terminal_env(shared_cache, tmp_path, LONGCERT_BUILD_CACHE_VOLUME=volume)
    child = run_in_terminal(
        ["build", tag, "--repo", str(standin_repo), *go_flags(standin_repo, tag)],
        env, tmp_path, 80,
    )
    try:
        chunks = list(read_timed(child, until="==> compile"))
        started = time.monotonic()
        while time.monotonic() - started < 8:  # watch the status line for a while
            chunks += list(read_timed(child, limit=0.5))
        running = [  # this run's (its id starts with its pid)
            c for c in engine.containers.list(filters={"label": "org.longcert.purpose=build"})
            if c.labels.get("org.longcert.run", "").startswith(f"{child.pid}-")]
        assert running, "the compile should still be running after 8 s on an empty cache"
        child.sendintr()
        chunks += list(read_timed(child, limit=120))
        child.close()
    finally:
        if child.isalive():
            child.terminate(force=True)
        engine.volumes.get(volume).remove(force=True)
    raw = "".join(chunk for _, chunk in chunks)
    text = ANSI.sub("", raw)
    assert child.exitstatus == 130, text[-2000:]
    assert "Traceback" not in text
    too_wide = [p for p in pieces(raw) if len(p) > 80]
    assert not too_wide, too_wide[:3]
    assert "longcert: build v1.28.7" in text  # the title names the task
    assert "at their defaults" in text  # the preamble shows only changed settings
    # the status line: a new elapsed time at least every 2 s once the compile began
    ticks: list[tuple[float, str]] = []
    for moment, chunk in chunks:
        for shown in ELAPSED.findall(ANSI.sub("", chunk)):
            if not ticks or ticks[-1][1] != shown:
                ticks.append((moment, shown))
    assert len(ticks) >= 5, ticks
    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(ticks)]
    assert max(gaps) <= 2.0, (gaps, ticks)
    # Ctrl-C: the line ends as interrupted, on a line of its own, never as FAILED
    ended = [p for p in pieces(raw) if "compile" in p and "after" in p]
    assert ended and ended[-1].startswith("    compile interrupted after"), ended
    assert "compile FAILED" not in text
    assert "longcert: interrupted" in text
    assert not engine.containers.list(all=True, filters={"id": [c.id for c in running]})
    assert not (tmp_path / "builds").exists() or not any((tmp_path / "builds").iterdir())


@pytest.mark.parametrize("no_color", [False, True], ids=["colour", "NO_COLOR"])
def test_a_build_at_120_columns(
    standin_repo: Path, shared_cache: Path, tmp_path: Path, no_color: bool
) -> None:
    """A whole build (warm caches) at 120 columns: every piece fits, the summary table has
    short hashes, the verify stage's status line names the scenarios; colour for pass
    unless NO_COLOR is set; then the identical rebuild says "up to date"."""
    tag = "v1.33.7"
    extra = {"NO_COLOR": "1"} if no_color else {}
    env = terminal_env(shared_cache, tmp_path, **extra)
    args = ["build", tag, "--repo", str(standin_repo), "--years", "4" if no_color else "3",
            *go_flags(standin_repo, tag)]
    child = run_in_terminal(args, env, tmp_path, 120)
    chunks = list(read_timed(child))
    child.close()
    raw = "".join(chunk for _, chunk in chunks)
    text = ANSI.sub("", raw)
    assert child.exitstatus == 0, text[-3000:]
    too_wide = [p for p in pieces(raw) if len(p) > 120]
    assert not too_wide, too_wide[:3]
    assert re.search(r"verify \S+  linux/amd64: scenario 1 of \d+", text), text[-3000:]
    assert re.search(r"kubeadm-linux-amd64 +\S+ MiB +[0-9a-f]{12} +verified", text), text
    assert not re.search(r"[0-9a-f]{64}", text)  # the full sha256 stays in the files
    assert "    verify done in" in text
    if no_color:
        assert not COLOUR.search(raw)
    else:
        assert COLOUR.search(raw)
    if no_color:  # once is enough: the same build again is up to date
        again = run_in_terminal(args, env, tmp_path, 120)
        again_text = ANSI.sub("", "".join(chunk for _, chunk in read_timed(again)))
        again.close()
        assert again.exitstatus == 0, again_text[-2000:]
        assert "up to date" in again_text
        assert re.search(r"kubeadm-linux-amd64 +\S+ MiB +[0-9a-f]{12}", again_text)
