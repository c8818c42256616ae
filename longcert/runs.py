"""Runs that share a cache: OS file locks, signals, and a sweep of what dead runs left behind.

Every long run may be killed at any line (Ctrl-C, SIGTERM from CI, kill -9) and may share its
cache with other runs. So:

* each shared resource (a mirror, a build id) has an OS file lock (``flock``): the kernel drops
  it when its holder dies, so a dead run can never hold one, and lock files are never deleted;
* each run registers itself as ``<cache>/runs/<run-id>.lock``, flock-held for its lifetime, and
  names everything it leaves on disk or in the engine with its run id (worktrees, staging and
  scratch directories, ``org.longcert.run`` container labels);
* :func:`sweep` (at the start of every pipeline run, and ``invoke clean``) takes the lock of each
  registered run it finds: only a dead run's can be taken, and only that run's leftovers are
  removed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

LineFn = Callable[[str], None]
RUN_LABEL = "org.longcert.run"
# Signals that end a run like Ctrl-C: containers removed, nothing half-written.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the main thread is, so every cleanup path runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP raise :class:`Terminated` (Ctrl-C already
    raises KeyboardInterrupt)."""
    previous = {s: signal.signal(s, _raise_terminated) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP back for a few syscalls that must not be split (two renames);
    they are delivered when the block ends."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def file_lock(path: Path, what: str, *, on_wait: LineFn | None = None) -> Iterator[None]:
    """Hold an exclusive OS lock on ``path`` (created if needed, never deleted); when another
    run holds it, say so through ``on_wait`` and wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(f"waiting for another longcert run that holds {what}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# --- this process's run -------------------------------------------------------------------


@dataclass
class Run:
    """This process's registration: the flock-held file ``<cache>/runs/<id>.lock``."""

    cache_dir: Path
    id: str = field(default_factory=lambda: f"{os.getpid()}-{secrets.token_hex(3)}")
    _fd: int = -1
    builds_dirs: list[str] = field(default_factory=list)
    # Called with the run id when the run ends (container.remove_run_containers, once the run
    # has labelled a container): a container whose create call a stop interrupted is the
    # engine's, not yet this process's, and only its label finds it.
    exit_hooks: list[Callable[[str], object]] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.cache_dir / "runs" / f"{self.id}.lock"

    def start(self) -> None:
        runs = self.path.parent
        runs.mkdir(parents=True, exist_ok=True)
        # Locked before it appears under its name, so a sweep never sees it unlocked.
        fd, temp = tempfile.mkstemp(prefix=".new-", dir=runs)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        self._write()
        os.replace(temp, self.path)

    def _write(self) -> None:
        record = {"pid": os.getpid(), "started": int(time.time()), "builds_dirs": self.builds_dirs}
        data = json.dumps(record).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def note_builds_dir(self, path: Path) -> None:
        """Remember a directory this run stages into (a builds directory, a build's kit, a
        directory publish target), for a sweep after its death."""
        text = str(path.resolve())
        if self._fd >= 0 and text not in self.builds_dirs:
            self.builds_dirs.append(text)
            self._write()

    def stop(self, *, stopped: bool = False) -> None:
        """End the registration: run the exit hooks; unless the run was ``stopped`` (an
        exception, a signal) with exit hooks, drop the record. After a stop the record stays,
        unlocked, so the next sweep looks once more for what a request still in flight at
        the engine made after the hooks ran."""
        for hook in self.exit_hooks:
            with contextlib.suppress(Exception):
                hook(self.id)
        if self._fd >= 0:
            if not (stopped and self.exit_hooks):
                self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = -1


_current: Run | None = None


def current_id() -> str:
    """This process's run id ("" outside a run: tests and library use)."""
    return _current.id if _current is not None else ""


@contextlib.contextmanager
def registered(cache_dir: Path) -> Iterator[Run]:
    """Register this process as a run for the block (nested calls share the outer run)."""
    global _current
    if _current is not None:
        yield _current
        return
    run = Run(cache_dir)
    run.start()
    _current = run
    stopped = True
    try:
        yield run
        stopped = False
    finally:
        _current = None
        run.stop(stopped=stopped)


def at_exit(hook: Callable[[str], object]) -> None:
    """Have the current run call ``hook(run_id)`` when it ends (once per hook)."""
    if _current is not None and hook not in _current.exit_hooks:
        _current.exit_hooks.append(hook)


def note_builds_dir(path: Path) -> None:
    if _current is not None:
        _current.note_builds_dir(path)


# How a run registers (os.getpid()-6 hex digits): a record under another name is not a run's.
RUN_ID = re.compile(r"[0-9]{1,10}-[0-9a-f]{6}")


def tagged(prefix: str) -> str:
    """A temp-name prefix carrying the run id, so a sweep can tell whose leftovers it is."""
    run = current_id()
    return f"{prefix}{run}-" if run else prefix


def temp_path(path: Path) -> Path:
    """A temporary name beside ``path`` (``.<name>.new-<run id>-<hex>``): a sweep after this
    run's death knows it for a leftover."""
    return path.with_name(tagged(f".{path.name}.new-") + secrets.token_hex(3))


def aside_path(path: Path) -> Path:
    """Where ``path`` waits while its replacement is renamed in (``.<name>.old-<run id>-<hex>``):
    a sweep after this run's death puts it back if ``path`` is then missing (sweep_files)."""
    return path.with_name(tagged(f".{path.name}.old-") + secrets.token_hex(3))


def write_atomic(path: Path, text: str) -> None:
    """Write ``path`` through a temporary file beside it, renamed into place: readers see the
    old contents or the new, never part; the temporary file is removed if anything fails."""
    temp = temp_path(path)
    try:
        temp.write_text(text)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


# --- sweeping dead runs -------------------------------------------------------------------


@dataclass(frozen=True)
class DeadRun:
    id: str
    builds_dirs: tuple[str, ...]


def dead_runs(cache_dir: Path) -> Iterator[tuple[DeadRun, int]]:
    """Each registered run whose lock can be taken (it is dead), with the locked fd."""
    runs = cache_dir / "runs"
    for path in sorted(runs.glob("*.lock")) if runs.is_dir() else []:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # alive
            continue
        if not RUN_ID.fullmatch(path.stem):
            os.close(fd)  # not a name a run registers under: not ours to act on
            continue
        try:
            record = json.loads(os.pread(fd, 1 << 16, 0) or b"{}")
            dirs = tuple(str(d) for d in record.get("builds_dirs", []) if isinstance(d, str))
        except (ValueError, AttributeError):
            dirs = ()
        yield DeadRun(path.stem, dirs), fd


def _remove(path: Path, removed: list[str]) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    removed.append(str(path))


def sweep_files(run: DeadRun, cache_dir: Path, removed: list[str]) -> None:
    """A dead run's worktrees, scratch and staging directories; an interrupted --force swap
    is finished backwards (the old build restored) or forwards (the old copy dropped)."""
    marker = f"-{run.id}-"
    work = cache_dir / "work"
    for path in work.iterdir() if work.is_dir() else []:
        if marker in path.name:
            _remove(path, removed)
    for path in Path(tempfile.gettempdir()).glob(f"longcert-*{marker}*"):
        _remove(path, removed)
    for kept in ("logs", "probes"):  # write_atomic's temporary files
        folder = cache_dir / kept
        for path in folder.glob(f".*{marker}*") if folder.is_dir() else []:
            _remove(path, removed)
    own = _leftover_names(run.id)
    for text in run.builds_dirs:
        builds = Path(text)
        # a record is a file in the cache, which whoever can write the cache could forge: act
        # only on the exact names this run's id gives what it stages, whatever the record says
        if not builds.is_absolute() or builds.is_symlink() or not builds.is_dir():
            continue
        for path in builds.iterdir():
            found = own.fullmatch(path.name)
            if found is None:
                continue
            if found.group("old"):
                build = builds / found.group("old")
                if not build.exists():
                    path.rename(build)  # killed between the two renames of --force
                    removed.append(f"{path} (restored as {build})")
                    continue
            _remove(path, removed)


def _leftover_names(run_id: str) -> re.Pattern[str]:
    """The names a run makes in a directory it stages into: temp_path's, aside_path's (group
    ``old``: what it stands aside for) and the mkdtemp staging directories (tagged prefixes
    ``.kit-`` and ``.NAME.staging-``, then mkdtemp's 8 characters)."""
    run = re.escape(run_id)
    return re.compile(
        rf"\.(?:[^/]+?)\.new-{run}-[0-9a-f]{{6}}"
        rf"|\.(?P<old>[^/]+?)\.old-{run}-[0-9a-f]{{6}}"
        rf"|\.(?:kit|[^/]+?\.staging)-{run}-[a-z0-9_]{{8}}"
    )


def sweep(
    cache_dir: Path,
    remove_containers: Callable[[str], list[str]] | None = None,
    prune: Callable[[], None] | None = None,
) -> list[str]:
    """Remove what runs that are no longer alive left behind, and only that; returns what.

    ``remove_containers(run_id)`` removes that run's labelled containers; when it fails (no
    engine now) the run's record is kept for a later sweep. ``prune`` unregisters removed
    worktrees from the mirrors."""
    removed: list[str] = []
    for run, fd in dead_runs(cache_dir):
        try:
            sweep_files(run, cache_dir, removed)
            keep = False
            if remove_containers is not None:
                try:
                    removed += remove_containers(run.id)
                except Exception:  # no engine now: try again on a later sweep
                    keep = True
            if not keep:
                (cache_dir / "runs" / f"{run.id}.lock").unlink(missing_ok=True)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.EBUSY):
                raise
        finally:
            os.close(fd)
    if removed and prune is not None:
        prune()
    return removed

