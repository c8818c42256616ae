"""Kubernetes source: a bare mirror cache per remote, a shallow fetch of one tag, a worktree.

The only module that imports git (GitPython). The mirror keeps every tag fetched so far, so a
second build of the same tag fetches nothing, and a build never downloads the whole history.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import git

from longcert import runs
from longcert.errors import PatchError, SourceError
from longcert.versions import KubeVersion

ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class SourceTree:
    """A clean worktree of ``tag`` at ``path``, checked out from the mirror."""

    path: Path
    tag: str
    commit: str
    commit_time: int  # seconds since the epoch: SOURCE_DATE_EPOCH for reproducible stamps
    remote: str
    mirror: Path


def display_remote(remote: str) -> str:
    """The remote as recorded: a local path as its file:// URL (credentials were already split
    off by settings); a path that does not exist stays as given."""
    if _is_url(remote):
        return remote
    try:
        return normalize_remote(remote)
    except SourceError:
        return remote


def _is_url(remote: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*://", remote) or re.match(r"^[^/]+@[^:]+:", remote))


def normalize_remote(remote: str) -> str:
    """Plain local paths become file:// URLs (so --depth is honoured); URLs stay as given."""
    if _is_url(remote):
        return remote
    path = Path(remote).expanduser()
    if not path.exists():
        raise SourceError(f"repository {remote!r} is neither a URL nor an existing path")
    return path.resolve().as_uri()


def mirror_path(cache_dir: Path, remote: str) -> Path:
    """One bare mirror per remote URL, named so a human can tell which is which."""
    parsed = urlparse(remote)
    tail = Path(parsed.path or remote).name.removesuffix(".git") or "repo"
    digest = hashlib.sha256(remote.encode()).hexdigest()[:12]
    return cache_dir / "mirrors" / f"{tail}-{digest}.git"


class _CloneProgress(git.RemoteProgress):
    """Hands git's progress ("Receiving objects: 45%") to ``activity``: the live status line
    on a terminal, the heartbeat's last line elsewhere, never a line of its own."""

    def __init__(self, activity: ProgressFn) -> None:
        super().__init__()
        self._activity = activity

    def update(
        self, op_code: int, cur_count: object, max_count: object = None, message: str = ""
    ) -> None:
        try:
            percent = 100.0 * float(str(cur_count)) / float(str(max_count))
        except (TypeError, ValueError, ZeroDivisionError):
            return
        stage = str(self._cur_line or "fetching").split(":")[0].strip()
        self._activity(f"git: {stage}: {percent:.0f}%")


def mirror_lock(
    mirror: Path, progress: ProgressFn | None = None
) -> contextlib.AbstractContextManager[None]:
    """The OS lock every run takes before touching ``mirror`` (fetch, worktree add/prune)."""
    return runs.file_lock(
        mirror.with_name(mirror.name + ".lock"), f"the mirror {mirror.name}", on_wait=progress
    )


def recover_stale_git_locks(mirror: Path) -> list[str]:
    """Remove git's own ``*.lock`` files (shallow.lock, config.lock, refs...) from a mirror.

    Called only while holding :func:`mirror_lock`: every run touches the mirror under that OS
    lock, which the kernel drops when its holder dies, so a git lock file seen then was left by
    a process that was killed mid-fetch."""
    removed: list[str] = []
    if not mirror.is_dir():
        return removed
    candidates = [mirror / name for name in GIT_LOCK_FILES]
    if (mirror / "refs").is_dir():
        candidates += sorted((mirror / "refs").rglob("*.lock"))
    # an interrupted fetch's partial pack, and an interrupted `git worktree add`, which
    # registers the worktree locked ("initializing") until its checkout ends: prune never
    # removes a locked registration, so the next add of that path would fail
    pack = mirror / "objects" / "pack"
    if pack.is_dir():
        candidates += sorted(pack.glob("tmp_pack_*")) + sorted(pack.glob("tmp_idx_*"))
    if (mirror / "worktrees").is_dir():
        candidates += [lock for lock in sorted((mirror / "worktrees").glob("*/locked"))
                       if _reads(lock).startswith("initializing")]
    found = [path for path in candidates if path.is_file()]
    if not found:
        return removed
    # A git child of a killed run may outlive it for a moment: never take a lock file that a
    # live process still has open.
    busy = _open_files()
    for path in found:
        if str(path) not in busy:
            path.unlink(missing_ok=True)
            removed.append(str(path.relative_to(mirror)))
    return removed


GIT_LOCK_FILES = ("shallow.lock", "config.lock", "packed-refs.lock", "HEAD.lock", "index.lock")


def _reads(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[:64]
    except OSError:
        return ""


def _open_files() -> set[str]:
    """Paths any process has open (Linux /proc; empty where there is none)."""
    opened: set[str] = set()
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        with contextlib.suppress(OSError):
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    opened.add(os.readlink(fd))
    return opened


def _open_mirror(path: Path) -> git.Repo:
    if (path / "HEAD").is_file():
        try:
            return git.Repo(path)
        except git.GitError as exc:
            raise SourceError(f"mirror {path} is damaged: {exc}", "delete it and retry") from exc
    path.mkdir(parents=True, exist_ok=True)
    return git.Repo.init(path, bare=True)


Credentials = tuple[str, str] | None

# Transports git may use for a remote (git's own allow-list, so nothing else runs even if a
# value slipped through settings' checks).
ALLOWED_PROTOCOLS = "https:http:ssh:git:file"
# Answers git's username and password prompts from the environment it is given: credentials
# never appear in an argument list, a URL or the mirror's config.
ASKPASS = """#!/bin/sh
case "$1" in
  Username*) printf '%s\n' "$LONGCERT_GIT_USERNAME" ;;
  *) printf '%s\n' "$LONGCERT_GIT_PASSWORD" ;;
esac
"""


@contextlib.contextmanager
def git_environment(credentials: Credentials = None) -> Iterator[dict[str, str]]:
    """Environment for git commands that reach a remote: no prompts, only allowed transports,
    and the credentials (if any) through a private GIT_ASKPASS helper removed afterwards."""
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS}
    if credentials is None:
        yield env
        return
    with tempfile.TemporaryDirectory(prefix=runs.tagged("longcert-askpass-")) as tmp:
        helper = Path(tmp) / "askpass"
        helper.write_text(ASKPASS)
        helper.chmod(0o700)
        yield {
            **env,
            "GIT_ASKPASS": str(helper),
            "LONGCERT_GIT_USERNAME": credentials[0],
            "LONGCERT_GIT_PASSWORD": credentials[1],
        }


def ls_remote(credentials: Credentials, *args: str) -> str:
    """``git ls-remote ARGS`` in :func:`git_environment` (pass ``--`` before the URL)."""
    command = git.cmd.Git()
    with git_environment(credentials) as env, command.custom_environment(**env):
        return str(command.ls_remote(*args))


def tag_commit(remote: str, tag: str, credentials: Credentials = None) -> str | None:
    """The commit ``tag`` names on ``remote`` now (an annotated tag peeled); "" when the remote
    has no such tag, None when the remote cannot be asked."""
    url = normalize_remote(remote)
    ref = f"refs/tags/{tag}"
    try:
        out = ls_remote(credentials, "--", url, ref, f"{ref}^{{}}")
    except git.GitCommandError:
        return None
    found: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, name = line.partition("\t")
        found[name.strip()] = sha.strip()
    return found.get(f"{ref}^{{}}") or found.get(ref) or ""


def remote_tags(remote: str, credentials: Credentials = None) -> list[str]:
    """Every tag name on ``remote`` (``git ls-remote --tags``)."""
    try:
        out = ls_remote(credentials, "--tags", "--refs", "--", remote)
    except git.GitCommandError as exc:
        raise SourceError(f"cannot list tags of {remote}: {_git_reason(exc)}") from exc
    return [line.split("refs/tags/", 1)[1] for line in out.splitlines() if "refs/tags/" in line]


def nearest_tags(wanted: KubeVersion, tags: list[str], limit: int = 3) -> list[str]:
    """Release tags closest to ``wanted``: same minor first, then by distance."""
    versions = []
    for tag in tags:
        try:
            versions.append(KubeVersion.parse(tag))
        except Exception:
            continue

    def distance(v: KubeVersion) -> tuple[int, int, int]:
        return (
            abs(v.minor - wanted.minor) + 100 * abs(v.major - wanted.major),
            abs(v.patch - wanted.patch),
            0 if not v.pre else 1,
        )

    return [v.tag for v in sorted(versions, key=distance)[:limit]]


def _git_reason(exc: git.GitCommandError) -> str:
    """The line of git's stderr that says what went wrong, without GitPython's wrapping."""
    lines = []
    for raw in str(exc.stderr or exc).splitlines():
        line = raw.strip().removeprefix("stderr:").strip().strip("'").strip()
        if line:
            lines.append(line)
    for line in lines:
        if line.startswith(("fatal:", "error:")):
            return line
    return lines[-1] if lines else str(exc)


def fetch_tag(
    remote: str,
    version: KubeVersion,
    cache_dir: Path,
    progress: ProgressFn | None = None,
    credentials: Credentials = None,
    activity: ProgressFn | None = None,
) -> tuple[Path, str]:
    """Make sure the mirror holds ``version``'s tag (shallow, that tag only); return mirror, sha.

    The caller holds :func:`mirror_lock`."""
    url = normalize_remote(remote)
    path = mirror_path(cache_dir, url)
    stale = recover_stale_git_locks(path)
    if stale and progress is not None:
        progress(f"removed git lock files a killed run left in the mirror: {', '.join(stale)}")
    repo = _open_mirror(path)
    ref = f"refs/tags/{version.tag}"
    have = _local_ref(repo, ref)
    if have is not None:
        # Tags should never move, but a mirror must not serve a stale one: ask the remote for
        # this one ref (cheap), and keep the cached copy when the remote cannot be reached.
        try:
            remote_sha = ls_remote(credentials, "--", url, ref).split("\t", 1)[0].strip()
        except git.GitCommandError:
            remote_sha = have
        if remote_sha in (have, ""):
            return path, repo.git.rev_parse(f"{ref}^{{commit}}")
    if "origin" in repo.remotes:
        origin = repo.remote("origin")
        if origin.url != url:  # e.g. a mirror made before credentials were split off
            origin.set_url(url)
    else:
        origin = repo.create_remote("origin", url)
    try:
        with git_environment(credentials) as env, repo.git.custom_environment(**env):
            origin.fetch(
                f"+{ref}:{ref}",
                depth=1,
                no_tags=True,
                progress=_CloneProgress(activity) if activity else None,
            )
    except git.GitCommandError as exc:
        raise _fetch_error(exc, url, version, credentials) from exc
    return path, repo.git.rev_parse(f"{ref}^{{commit}}")


def _local_ref(repo: git.Repo, ref: str) -> str | None:
    try:
        return str(repo.git.rev_parse("--verify", "-q", ref))
    except git.GitCommandError:
        return None


def _fetch_error(
    exc: git.GitCommandError, url: str, version: KubeVersion, credentials: Credentials
) -> SourceError:
    reason = _git_reason(exc)
    if credentials is not None:
        reason = reason.replace(credentials[1], "***") if credentials[1] else reason
    if "couldn't find remote ref" in reason or "not our ref" in reason:
        try:
            near = nearest_tags(version, remote_tags(url, credentials))
        except SourceError:
            near = []
        hint = f"nearest tags: {', '.join(near)}" if near else "check the version and --repo"
        return SourceError(f"tag {version.tag} does not exist in {url}", hint)
    return SourceError(
        f"cannot fetch {version.tag} from {url}: {reason}",
        "check --repo and the network, or point --repo at a local mirror",
    )


def checkout(
    remote: str,
    version: KubeVersion,
    cache_dir: Path,
    progress: ProgressFn | None = None,
    credentials: Credentials = None,
    *,
    reuse: bool = True,
    activity: ProgressFn | None = None,
) -> SourceTree:
    """Fetch ``version`` into the mirror and give a detached worktree of it, exactly the tag.

    With ``reuse`` (the default) the tag's worktree kept in the cache is taken and reset
    (:func:`reset_worktree`: far cheaper than writing every file again), made the first time;
    when another run holds it, a fresh one is checked out instead, as without ``reuse``.
    Release it with :func:`remove_worktree`. Git's progress goes to ``activity``, the rest
    (locks waited for, what was reused) to ``progress``."""
    url = normalize_remote(remote)
    mirror = mirror_path(cache_dir, url)
    held = None
    if reuse:
        held = _take_reusable(cache_dir, mirror, version.tag)
        if held is None and progress is not None:
            progress(f"the kept worktree of {version.tag} is in use by another run: "
                     "checking out a fresh one")
    if held is not None:
        path = held[0]
    else:
        work_root = cache_dir / "work"
        work_root.mkdir(parents=True, exist_ok=True)
        # Named with the run id: a sweep after this run's death knows it is a leftover.
        path = Path(tempfile.mkdtemp(prefix=runs.tagged(f"{version.tag}-"), dir=work_root))
        path = path / "kubernetes"
    reused = False
    try:
        with mirror_lock(mirror, progress):
            mirror, commit = fetch_tag(url, version, cache_dir, progress, credentials, activity)
            repo = git.Repo(mirror)
            repo.git.worktree("prune")
            if held is not None:
                reused = reset_worktree(path, mirror, commit)
                if not reused:
                    repo.git.worktree("prune")  # what reset_worktree discarded
            if not reused:
                repo.git.worktree("add", "--detach", str(path), commit)
            commit_time = int(repo.git.log("-1", "--format=%ct", commit))
    except BaseException as exc:
        if held is not None:
            os.close(held[1])  # whatever state it is in, the next run resets it
        else:
            shutil.rmtree(path.parent, ignore_errors=True)
        if isinstance(exc, git.GitCommandError):
            raise SourceError(f"cannot check out {version.tag}: {_git_reason(exc)}") from exc
        raise
    if held is not None:
        _held[path] = held[1]
        if progress is not None:
            how = "kept worktree reset to the tag" if reused else "kept worktree made"
            progress(f"{how}: {path}")
    return SourceTree(path, version.tag, commit, commit_time, url, mirror)


# Kept worktrees this process holds: path -> the fd of its flock.
_held: dict[Path, int] = {}


def reusable_path(cache_dir: Path, mirror: Path, tag: str) -> Path:
    """Where the worktree of ``tag`` from ``mirror`` is kept between builds (``<dir>/kubernetes``,
    with the build's ``meta`` beside it); its flock is ``<dir>.lock``."""
    return cache_dir / "trees" / f"{mirror.name.removesuffix('.git')}-{tag}" / "kubernetes"


def _take_reusable(cache_dir: Path, mirror: Path, tag: str) -> tuple[Path, int] | None:
    """(path, locked fd) of the kept worktree, or None when another run holds it.

    The lock is an OS lock: a killed run's is dropped by the kernel, and whatever that run
    left in the tree is undone by :func:`reset_worktree` before anyone builds in it."""
    path = reusable_path(cache_dir, mirror, tag)
    fd = _lock_kept(path.parent)
    return None if fd is None else (path, fd)


def _lock_kept(kept: Path) -> int | None:
    """The fd holding the flock of a kept worktree's directory (``<dir>.lock``), or None when
    another run holds it."""
    lock = kept.with_name(kept.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def remove_kept_worktrees(cache_dir: Path) -> list[str]:
    """Remove every kept worktree (and the build state beside it) that no run holds now; a
    tree in use is left alone. The next build of such a tag checks it out again. The lock
    files stay: removing one while a run opens it would let two runs hold the same tree."""
    trees = cache_dir / "trees"
    removed = []
    for kept in sorted(trees.iterdir()) if trees.is_dir() else []:
        if not kept.is_dir() or kept.is_symlink():
            continue
        fd = _lock_kept(kept)
        if fd is None:
            continue
        try:
            for item in sorted(kept.iterdir()):
                _discard(item) if item.is_dir() and not item.is_symlink() else item.unlink()
            kept.rmdir()
            removed.append(str(kept))
        finally:
            os.close(fd)
    if removed:
        prune_all(cache_dir)
    return removed


def reset_worktree(path: Path, mirror: Path, commit: str) -> bool:
    """Make the kept worktree at ``path`` exactly ``commit`` again: HEAD detached there,
    ``git reset --hard`` (tracked files: modified, deleted, mode or type changed) and
    ``git clean -ffdx`` (untracked and ignored files, build output, nested repositories).

    True when done; False when there was nothing usable (never made, half made by a killed
    run, registered with another mirror, or git cannot reset it): the directory is then
    removed and the caller adds a fresh worktree there. Called under the mirror's lock and
    the worktree's own."""
    if not (path / ".git").is_file():
        _discard(path)
        return False
    try:
        tree = git.Repo(path)
        common = Path(tree.git.rev_parse("--git-common-dir"))
        if not common.is_absolute():
            common = path / common
        if common.resolve() != mirror.resolve():
            raise git.GitError(f"{path} belongs to {common}")
        admin = Path(tree.git.rev_parse("--git-dir"))
        admin = admin if admin.is_absolute() else path / admin
        for name in ("index.lock", "HEAD.lock"):  # a killed run's git left them
            (admin / name).unlink(missing_ok=True)
        tree.git.update_ref("--no-deref", "HEAD", commit)
        tree.git.reset("-q", "--hard", commit)
        tree.git.clean("-q", "-ffdx")
        if tree.git.status("--porcelain", "--ignored", "--untracked-files=all"):
            raise git.GitError(f"{path} is not clean after the reset")
    except (git.GitError, OSError, ValueError):
        _discard(path)
        return False
    return True


def _discard(path: Path) -> None:
    """Remove a kept worktree's directory (read-only directories a build made included) and
    its registration in the mirror (``git worktree prune``, by the caller or the next run)."""
    shutil.rmtree(path, ignore_errors=True)
    if path.is_dir() and not path.is_symlink():
        for root, dirs, _ in os.walk(path):
            for name in dirs:
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(root, name), 0o755, follow_symlinks=False)
        shutil.rmtree(path, ignore_errors=True)
    elif path.is_symlink():
        path.unlink()


def remove_worktree(tree: SourceTree) -> None:
    """Release the worktree: a kept one is unlocked (the next build of its tag resets it),
    any other is deleted with its registration in the mirror."""
    fd = _held.pop(tree.path, None)
    if fd is not None:
        os.close(fd)
        return
    shutil.rmtree(tree.path.parent, ignore_errors=True)
    prune_worktrees(tree.mirror)


def prune_worktrees(mirror: Path) -> None:
    """Forget worktrees whose directory is gone (under the mirror's lock)."""
    if not (mirror / "HEAD").is_file():
        return
    with mirror_lock(mirror), contextlib.suppress(git.GitError):
        recover_stale_git_locks(mirror)
        git.Repo(mirror).git.worktree("prune")


def prune_all(cache_dir: Path) -> None:
    """prune_worktrees for every mirror in the cache."""
    mirrors = cache_dir / "mirrors"
    for mirror in sorted(mirrors.glob("*.git")) if mirrors.is_dir() else []:
        prune_worktrees(mirror)


def is_clean(tree: SourceTree) -> bool:
    """Whether the worktree still equals its tag (nothing patched or generated yet)."""
    return not git.Repo(tree.path).git.status("--porcelain", "--untracked-files=no")


def apply_diff(tree: SourceTree, diff: str) -> None:
    """``git apply --check`` then ``git apply``; a tree that is not clean is refused."""
    if not diff:
        return
    if not is_clean(tree):
        raise PatchError(
            f"{tree.tag}: worktree {tree.path} is already modified",
            "refusing to patch twice; start from a clean checkout",
        )
    repo = git.Repo(tree.path)
    with tempfile.NamedTemporaryFile("w", suffix=".diff", delete=False) as handle:
        handle.write(diff)
    try:
        repo.git.apply("--check", handle.name)
        repo.git.apply(handle.name)
    except git.GitCommandError as exc:
        raise PatchError(
            f"{tree.tag}: the rendered diff does not apply: {_git_reason(exc)}",
            "upstream changed the patched lines",
        ) from exc
    finally:
        Path(handle.name).unlink(missing_ok=True)
