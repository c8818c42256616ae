"""What the user sees: a preamble, one line per stage with its duration, progress, a summary.

Two forms of the same events:

- **On a terminal** (stdout is a TTY, ``TERM`` is not ``dumb``): a live status line per running
  stage, drawn by `rich <https://rich.readthedocs.io>`_ in place and redrawn four times a second
  (elapsed time, what is being compiled or verified, scenario n of m), cut to the terminal's
  width; every other line is wrapped to that width. Pass and fail are coloured unless
  ``NO_COLOR`` is set (rich reads it). Ctrl-C ends the status line with "interrupted".
- **Anywhere else** (a pipe, a file, CI): plain lines, and during long quiet work a heartbeat
  every ``heartbeat_seconds`` with the last thing the work said. On GitHub Actions each stage is
  folded with ``::group::`` and the summary is also written to ``$GITHUB_STEP_SUMMARY``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

# How often the live status line is redrawn; the issue asks for a tick at least every 2 s.
LIVE_REFRESH_PER_SECOND = 4


def short_hash(value: str, length: int = 12) -> str:
    """A sha256 (or image id) shortened for a table; the files keep the full value."""
    prefix, _, digest = value.rpartition(":")
    return (f"{prefix}:" if prefix else "") + digest[:length]


def _elapsed(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60}m{whole % 60:02d}s" if whole >= 60 else f"{whole}s"


class _StatusLine:
    """The live line of the running stage; rendered afresh on every refresh, so the elapsed
    time moves even while the work prints nothing."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.started = time.monotonic()
        self.detail = ""

    def __rich__(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        text.append(f"==> {self.stage}", style="bold")
        text.append(f" {_elapsed(time.monotonic() - self.started)}", style="cyan")
        if self.detail:
            text.append(f"  {self.detail}", style="dim")
        return text


class Reporter:
    """Prints progress to ``stream`` (stdout by default), live on a terminal."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        quiet: bool = False,
        verbose: bool = False,
        heartbeat_seconds: float = 15.0,
        live: bool | None = None,
    ) -> None:
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self.verbose = verbose
        self.github = os.environ.get("GITHUB_ACTIONS") == "true"
        self.tty = self.stream.isatty()
        self.console = Console(file=self.stream, highlight=False, soft_wrap=False)
        if live is None:
            live = self.tty and not self.github and not self.console.is_dumb_terminal
        self.live = live and not quiet
        self.heartbeat_seconds = heartbeat_seconds
        self._status: _StatusLine | None = None
        self._live: Live | None = None
        self._stage_started = 0.0
        self._last_beat = 0.0
        self._lines_seen = 0
        self._last_line = ""
        self.timings: list[tuple[str, float]] = []
        self._run_started = 0.0
        self._last_end = 0.0
        self._between = 0.0

    def say(self, text: str, style: str | None = None) -> None:
        if self.quiet:
            return
        if self.live:
            # wrapped to the width, above the status line when one is drawn
            self.console.print(text, style=style, markup=False, emoji=False, overflow="fold")
        else:
            print(text, file=self.stream, flush=True)

    def table(self, rows: Sequence[Sequence[str]], header: Sequence[str] | None = None) -> None:
        """Print rows as aligned columns."""
        all_rows = [list(header)] if header else []
        all_rows += [list(r) for r in rows]
        if not all_rows:
            return
        if self.live:  # fitted to the terminal: long cells wrap inside their column
            grid = Table(box=None, show_header=bool(header), header_style="bold",
                         pad_edge=False, padding=(0, 0, 0, 2))
            for _ in all_rows[0]:
                grid.add_column(overflow="fold")
            for row in all_rows[1 if header else 0:]:
                grid.add_row(*row)
            if header:
                for column, title in zip(grid.columns, header, strict=True):
                    column.header = title
            self.console.print(grid)
            return
        widths = [max(len(r[i]) for r in all_rows) for i in range(len(all_rows[0]))]
        for row in all_rows:
            self.say(
                "  "
                + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            )

    def preamble(self, title: str, rows: Sequence[tuple[str, str, str]]) -> None:
        """The resolved settings and where each came from: only those not at their default,
        every one with ``verbose``."""
        self.say(f"longcert: {title}")
        shown = [row for row in rows if self.verbose or row[2] != "default"]
        self.table([(name, value, f"({source})") for name, value, source in shown])
        hidden = len(rows) - len(shown)
        if hidden:
            self.say(f"  ({hidden} more at their defaults: --verbose shows them)", style="dim")

    def start_run(self) -> None:
        """A run begins: what happens before its first stage is timed as ``prepare``, between
        stages as ``between stages``, after the last as ``cleanup`` (see :meth:`end_run`)."""
        self.timings = []
        self._run_started = time.monotonic()
        self._last_end = self._between = 0.0

    def end_run(self) -> dict[str, Any]:
        """The run's timings, every second of it in one entry: prepare (settings, sweep,
        engine, image, an existing build), each stage, the time between stages, and cleanup
        after the last stage; printed in one line and returned for a JSON record."""
        now = time.monotonic()
        total = now - self._run_started if self._run_started else 0.0
        entries = list(self.timings)
        if not any(name == "prepare" for name, _ in entries):
            entries.insert(0, ("prepare", total))  # no stage ran (an existing build, an error)
        elif self._last_end:
            entries += [("between stages", self._between), ("cleanup", now - self._last_end)]
        self._run_started = 0.0
        self.say(
            f"    total {total:.1f}s: "
            + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in entries),
            style="dim",
        )
        return {
            "total": round(total, 3),
            "stages": [{"name": name, "seconds": round(s, 3)} for name, s in entries],
        }

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Announce a stage, fold it on GitHub Actions, keep a live status line on a terminal,
        and print how it ended: done, FAILED, or interrupted (Ctrl-C, SIGTERM, SIGHUP)."""
        self._stage_started = self._last_beat = time.monotonic()
        if self._run_started and not self.timings:
            prepared = self._stage_started - self._run_started
            self.timings.append(("prepare", prepared))
            self.say(f"    prepare (settings, sweep, engine, image) took {prepared:.1f}s",
                     style="dim")
        elif self._last_end:
            self._between += self._stage_started - self._last_end
        self._lines_seen = 0
        self._last_line = ""
        if self.github:
            self.say(f"::group::{name}")
        self.say(f"==> {name}", style="bold")
        self._start_status(name)
        ending, style = "FAILED", "bold red"
        try:
            yield
            ending, style = "done", "green"
        except KeyboardInterrupt as stop:  # Ctrl-C, and runs.Terminated for SIGTERM/SIGHUP
            signal_name = str(stop) if stop.args else ""
            ending = f"stopped by {signal_name}" if signal_name else "interrupted"
            style = "yellow"
            raise
        finally:
            self._stop_status()
            self._last_end = time.monotonic()
            elapsed = self._last_end - self._stage_started
            self.timings.append((name, elapsed))
            if self.github:
                self.say("::endgroup::")
            self.say(f"    {name} {ending} after {elapsed:.1f}s" if style == "yellow"
                     else f"    {name} {ending} in {elapsed:.1f}s", style=style)

    def _start_status(self, stage: str) -> None:
        if not self.live:
            return
        self._status = _StatusLine(stage)
        self._live = Live(
            self._status,
            console=self.console,
            refresh_per_second=LIVE_REFRESH_PER_SECOND,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def _stop_status(self) -> None:
        live, self._live, self._status = self._live, None, None
        if live is not None:
            live.stop()

    def activity(self, text: str) -> None:
        """What the running stage is doing now: the status line's text on a terminal, the
        heartbeat's "last" otherwise (never a line of its own)."""
        self._last_line = text
        status = self._status
        if status is not None:
            status.detail = text

    def step(self, text: str) -> None:
        """A progress message inside a stage."""
        self.say(f"    {text}")

    def passed(self, text: str) -> None:
        """A check that held (green on a colour terminal)."""
        self.say(f"    {text}", style="green")

    def warn(self, text: str) -> None:
        """Something the user must know but that does not stop the run (annotated on Actions)."""
        self.say(f"::warning::{text}" if self.github else f"longcert: warning: {text}",
                 style="yellow")

    @contextmanager
    def ticking(self, what: str) -> Iterator[None]:
        """While long, quiet work runs (a compile prints nothing for minutes): on a terminal
        the status line names it and its clock moves; elsewhere say every
        ``heartbeat_seconds`` that it is still going, with the last line it printed."""
        done = threading.Event()
        self.activity(what)

        def beat() -> None:
            while not done.wait(self.heartbeat_seconds):
                if time.monotonic() - self._last_beat >= self.heartbeat_seconds:
                    self._last_beat = time.monotonic()
                    elapsed = int(self._last_beat - self._stage_started)
                    last = self._last_line if self._last_line != what else ""
                    self.say(
                        f"    ... {what}: {elapsed}s, {self._lines_seen} lines of output"
                        + (f", last: {last[:90]}" if last else "")
                    )

        thread = threading.Thread(target=beat, daemon=True) if not self.live else None
        if thread is not None:
            thread.start()
        try:
            yield
        finally:
            done.set()
            if thread is not None:
                thread.join()

    def output_line(self, line: str) -> None:
        """A line of build output (the log keeps all): the status line's text on a terminal,
        otherwise kept for the next :meth:`ticking` heartbeat."""
        self._lines_seen += 1
        self.activity(line.strip())

    def end_output(self) -> None:
        """The work's output ended (the status line is cleared with its stage)."""

    def summary(self, title: str, rows: Sequence[Sequence[str]], header: Sequence[str]) -> None:
        """The closing summary; on GitHub Actions also a Markdown table in the step summary."""
        self.say(title, style="bold")
        self.table(rows, header)
        path = os.environ.get("GITHUB_STEP_SUMMARY")
        if self.github and path:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(f"### {title}\n\n| {' | '.join(header)} |\n")
                handle.write("|" + "---|" * len(header) + "\n")
                for row in rows:
                    handle.write(f"| {' | '.join(row)} |\n")
