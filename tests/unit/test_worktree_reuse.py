"""The kept worktree of a tag: reset between builds, byte-identical to a fresh clone of the tag,
never shared by two runs, never used dirty after a kill."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from longcert import source
from longcert.versions import KubeVersion

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
TAG = "v1.33.7"
VERSION = KubeVersion.parse(TAG)
ROOT = Path(__file__).resolve().parents[2]


def git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A repository whose tag has nested files, an executable, a symlink and a .gitignore."""
    repo = tmp_path / "remote"
    git(tmp_path, "init", "-q", str(repo))
    (repo / "cmd" / "kubeadm" / "app").mkdir(parents=True)
    (repo / "cmd" / "kubeadm" / "app" / "constants.go").write_text(
        "package constants\n\nconst CertificateValidity = time.Hour * 24 * 365\n")
    (repo / "hack").mkdir()
    (repo / "hack" / "build.sh").write_text("#!/bin/sh\necho build\n")
    (repo / "hack" / "build.sh").chmod(0o755)
    (repo / "README.md").write_text("stand-in\n")
    (repo / "LICENSE").symlink_to("README.md")
    (repo / ".gitignore").write_text("/_output/\n*.o\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", TAG)
    git(repo, "tag", "-a", TAG, "-m", TAG)
    return repo


def snapshot(tree: Path) -> dict[str, tuple[str, str]]:
    """Every entry below ``tree`` but .git: (kind and mode, content hash or link target)."""
    found: dict[str, tuple[str, str]] = {}
    for path in sorted(tree.rglob("*")):
        rel = path.relative_to(tree).as_posix()
        if rel == ".git" or rel.startswith(".git/"):
            continue
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            found[rel] = ("link", os.readlink(path))
        elif stat.S_ISDIR(mode):
            found[rel] = ("dir", "")
        else:
            found[rel] = (f"file {stat.S_IMODE(mode) & 0o111:o}",
                          hashlib.sha256(path.read_bytes()).hexdigest())
    return found


def fresh_clone(remote: Path, dest: Path) -> Path:
    subprocess.run(["git", "-c", "advice.detachedHead=false", "clone", "-q", "--branch", TAG,
                    str(remote), str(dest)], check=True)
    return dest


def dirty(tree: Path) -> None:
    """What a build (and a user poking around) leaves in a worktree."""
    (tree / "cmd" / "kubeadm" / "app" / "constants.go").write_text("patched\n")  # modified
    (tree / "README.md").unlink()  # deleted tracked file
    (tree / "hack" / "build.sh").chmod(0o644)  # mode changed
    (tree / "LICENSE").unlink()
    (tree / "LICENSE").write_text("a file where a link was\n")  # type changed
    (tree / "notes.txt").write_text("untracked\n")  # untracked
    (tree / "hack" / "tool.o").write_text("ignored\n")  # ignored
    out = tree / "_output" / "local" / "bin" / "linux" / "amd64"  # build output, ignored
    out.mkdir(parents=True)
    (out / "kubeadm").write_bytes(b"\x7fELF" + bytes(100))
    (out.parent / "ro").mkdir()
    (out.parent / "ro" / "file").write_text("x")
    (out.parent / "ro").chmod(0o555)  # read-only, as Go's module cache makes them
    (tree / "vendor-repo").mkdir()  # a nested repository
    subprocess.run(["git", "init", "-q", str(tree / "vendor-repo")], check=True)


def test_a_reused_worktree_equals_a_fresh_clone_of_the_tag(remote: Path,
                                                           tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = source.checkout(str(remote), VERSION, cache)
    assert first.path == source.reusable_path(cache, first.mirror, TAG)
    expected = snapshot(fresh_clone(remote, tmp_path / "fresh"))
    assert snapshot(first.path) == expected
    source.apply_diff(first, (
        "--- a/cmd/kubeadm/app/constants.go\n+++ b/cmd/kubeadm/app/constants.go\n"
        "@@ -3 +3 @@\n-const CertificateValidity = time.Hour * 24 * 365\n"
        "+const CertificateValidity = time.Hour * 24 * 365 * 10\n"))
    dirty(first.path)
    source.remove_worktree(first)
    assert first.path.exists()  # kept for the next build of the tag

    lines: list[str] = []
    second = source.checkout(str(remote), VERSION, cache, lines.append)
    assert second.path == first.path
    assert f"kept worktree reset to the tag: {second.path}" in lines
    assert snapshot(second.path) == expected
    assert source.is_clean(second)
    assert git(second.path, "rev-parse", "HEAD").strip() == second.commit
    assert git(second.path, "status", "--porcelain", "--ignored").strip() == ""
    source.remove_worktree(second)


def test_a_busy_worktree_is_never_shared(remote: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    held = source.checkout(str(remote), VERSION, cache)
    lines: list[str] = []
    other = source.checkout(str(remote), VERSION, cache, lines.append)
    assert other.path != held.path
    assert other.path.parent.parent == cache / "work"  # fresh, named with the run
    assert any("in use by another run: checking out a fresh one" in line for line in lines)
    assert snapshot(other.path) == snapshot(held.path)
    source.remove_worktree(other)
    assert not other.path.parent.exists()
    source.remove_worktree(held)
    again = source.checkout(str(remote), VERSION, cache)
    assert again.path == held.path
    source.remove_worktree(again)


def test_no_reuse_checks_out_a_fresh_worktree(remote: Path, tmp_path: Path) -> None:
    tree = source.checkout(str(remote), VERSION, tmp_path / "cache", reuse=False)
    assert tree.path.parent.parent == tmp_path / "cache" / "work"
    source.remove_worktree(tree)
    assert not tree.path.parent.exists()


KILLED_RUN = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from longcert import source
    from longcert.versions import KubeVersion
    from tests.unit.test_worktree_reuse import dirty
    tree = source.checkout(sys.argv[1], KubeVersion.parse("v1.33.7"), Path(sys.argv[2]))
    dirty(tree.path)
    admin = Path(source.git.Repo(tree.path).git.rev_parse("--absolute-git-dir"))
    (admin / "index.lock").write_text("")  # as git leaves it when killed mid-write
    print(tree.path, flush=True)
    time.sleep(60)
""")


def test_a_killed_runs_worktree_is_reset_before_use(remote: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(remote), str(cache),
                             str(ROOT)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    path = Path(proc.stdout.readline().strip())
    try:
        busy = source.checkout(str(remote), VERSION, cache)  # the live run holds it
        assert busy.path != path
        source.remove_worktree(busy)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    assert (path / "notes.txt").exists()  # left dirty by the kill
    tree = source.checkout(str(remote), VERSION, cache)
    assert tree.path == path
    assert snapshot(tree.path) == snapshot(fresh_clone(remote, tmp_path / "fresh"))
    source.remove_worktree(tree)


def test_a_moved_tag_or_a_broken_worktree_is_made_again(remote: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    tree = source.checkout(str(remote), VERSION, cache)
    source.remove_worktree(tree)
    (remote / "README.md").write_text("moved\n")
    git(remote, "commit", "-qam", "moved")
    git(remote, "tag", "-f", "-a", TAG, "-m", "moved")
    moved = source.checkout(str(remote), VERSION, cache)
    assert moved.path == tree.path and moved.commit != tree.commit
    assert (moved.path / "README.md").read_text() == "moved\n"
    source.remove_worktree(moved)
    (moved.path / ".git").write_text("gitdir: /nowhere\n")  # no longer a worktree
    lines: list[str] = []
    again = source.checkout(str(remote), VERSION, cache, lines.append)
    assert f"kept worktree made: {again.path}" in lines
    assert snapshot(again.path) == snapshot(fresh_clone(remote, tmp_path / "fresh"))
    source.remove_worktree(again)


def test_clean_trees_removes_the_kept_worktrees_no_build_holds(remote: Path,
                                                                tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    git(remote, "tag", "-a", "v1.33.8", "-m", "v1.33.8")
    other = KubeVersion.parse("v1.33.8")
    released = source.checkout(str(remote), other, cache)
    dirty(released.path)  # read-only build output included
    source.remove_worktree(released)
    held = source.checkout(str(remote), VERSION, cache)

    removed = source.remove_kept_worktrees(cache)

    assert removed == [str(released.path.parent)]
    assert not released.path.parent.exists()
    assert released.path.parent.with_name(released.path.parent.name + ".lock").is_file()
    assert held.path.is_dir() and source.is_clean(held)  # in use: untouched
    registered = git(held.mirror, "worktree", "list", "--porcelain")
    assert str(held.path) in registered and str(released.path) not in registered
    source.remove_worktree(held)
    again = source.checkout(str(remote), other, cache)  # made again where it was
    assert again.path == released.path and source.is_clean(again)
    source.remove_worktree(again)
