"""What the user sees: a preamble, one line per stage with its duration, progress, a summary.

On GitHub Actions each stage is folded with ``::group::`` and the summary is also written to
``$GITHUB_STEP_SUMMARY``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO


class Reporter:
    """Prints progress to ``stream`` (stdout by default)."""

    def __init__(
        self, stream: TextIO | None = None, *, quiet: bool = False, heartbeat_seconds: float = 15.0
    ) -> None:
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self.github = os.environ.get("GITHUB_ACTIONS") == "true"
        self.tty = self.stream.isatty()
        self.heartbeat_seconds = heartbeat_seconds
        self._stage_started = 0.0
        self._last_beat = 0.0
        self._lines_seen = 0
        self._last_line = ""
        self.timings: list[tuple[str, float]] = []
        self._run_started = 0.0
        self._last_end = 0.0
        self._between = 0.0

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def table(self, rows: Sequence[Sequence[str]], header: Sequence[str] | None = None) -> None:
        """Print rows as aligned columns."""
        all_rows = [list(header)] if header else []
        all_rows += [list(r) for r in rows]
        if not all_rows:
            return
        widths = [max(len(r[i]) for r in all_rows) for i in range(len(all_rows[0]))]
        for row in all_rows:
            self.say(
                "  "
                + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            )

    def preamble(self, title: str, rows: Sequence[tuple[str, str, str]]) -> None:
        """The resolved settings and where each came from."""
        self.say(f"longcert: {title}")
        self.table([(name, value, f"({source})") for name, value, source in rows])

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
            + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in entries)
        )
        return {
            "total": round(total, 3),
            "stages": [{"name": name, "seconds": round(s, 3)} for name, s in entries],
        }

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Announce a stage, fold it on GitHub Actions, and print its duration."""
        self._stage_started = self._last_beat = time.monotonic()
        if self._run_started and not self.timings:
            prepared = self._stage_started - self._run_started
            self.timings.append(("prepare", prepared))
            self.say(f"    prepare (settings, sweep, engine, image) took {prepared:.1f}s")
        elif self._last_end:
            self._between += self._stage_started - self._last_end
        self._lines_seen = 0
        self._last_line = ""
        if self.github:
            self.say(f"::group::{name}")
        self.say(f"==> {name}")
        ok = False
        try:
            yield
            ok = True
        finally:
            self._last_end = time.monotonic()
            elapsed = self._last_end - self._stage_started
            self.timings.append((name, elapsed))
            if self.github:
                self.say("::endgroup::")
            self.say(f"    {name} {'done' if ok else 'FAILED'} in {elapsed:.1f}s")

    def step(self, text: str) -> None:
        """A progress message inside a stage."""
        self.say(f"    {text}")

    def warn(self, text: str) -> None:
        """Something the user must know but that does not stop the run (annotated on Actions)."""
        self.say(f"::warning::{text}" if self.github else f"longcert: warning: {text}")

    @contextmanager
    def ticking(self, what: str) -> Iterator[None]:
        """While long, quiet work runs (a compile prints nothing for minutes), say every
        ``heartbeat_seconds`` that it is still going, with the last line it printed."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.heartbeat_seconds):
                if time.monotonic() - self._last_beat >= self.heartbeat_seconds:
                    self._last_beat = time.monotonic()
                    elapsed = int(self._last_beat - self._stage_started)
                    self.say(
                        f"    ... {what}: {elapsed}s, {self._lines_seen} lines of output"
                        + (f", last: {self._last_line[:90]}" if self._last_line else "")
                    )

        thread = threading.Thread(target=beat, daemon=True) if not self.tty else None
        if thread is not None:
            thread.start()
        try:
            yield
        finally:
            done.set()
            if thread is not None:
                thread.join()

    def output_line(self, line: str) -> None:
        """A line of build output (the log keeps all): live on a terminal, otherwise kept for
        the next :meth:`ticking` heartbeat."""
        self._lines_seen += 1
        self._last_line = line
        if self.tty and not self.quiet:
            elapsed = int(time.monotonic() - self._stage_started)
            print(f"\r    {elapsed:>4}s  {line[:90]:<90}", end="", file=self.stream, flush=True)

    def end_output(self) -> None:
        if self.tty and not self.quiet:
            print("\r" + " " * 100 + "\r", end="", file=self.stream, flush=True)

    def summary(self, title: str, rows: Sequence[Sequence[str]], header: Sequence[str]) -> None:
        """The closing summary; on GitHub Actions also a Markdown table in the step summary."""
        self.say(title)
        self.table(rows, header)
        path = os.environ.get("GITHUB_STEP_SUMMARY")
        if self.github and path:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(f"### {title}\n\n| {' | '.join(header)} |\n")
                handle.write("|" + "---|" * len(header) + "\n")
                for row in rows:
                    handle.write(f"| {' | '.join(row)} |\n")
