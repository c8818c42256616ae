from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from longcert import source
from longcert.errors import SourceError
from longcert.versions import KubeVersion

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    repo = tmp_path / "remote"
    subprocess.run([*GIT, "init", "-q", str(repo)], check=True)
    for tag in ("v1.9.3", "v1.9.4", "v1.10.0", "v1.28.7"):
        (repo / "VERSION").write_text(tag + "\n")
        (repo / f"history-{tag}").write_text("x\n")
        subprocess.run([*GIT, "-C", str(repo), "add", "-A"], check=True)
        subprocess.run([*GIT, "-C", str(repo), "commit", "-qm", tag], check=True)
        subprocess.run([*GIT, "-C", str(repo), "tag", "-a", tag, "-m", tag], check=True)
    return repo


def test_checkout_is_shallow_and_exact(remote: Path, tmp_path: Path) -> None:
    tree = source.checkout(str(remote), KubeVersion.parse("v1.9.4"), tmp_path / "cache",
                           reuse=False)
    assert (tree.path / "VERSION").read_text() == "v1.9.4\n"
    assert not (tree.path / "history-v1.10.0").exists()
    assert tree.remote == remote.resolve().as_uri()
    assert source.is_clean(tree)
    shallow = subprocess.run(["git", "-C", str(tree.mirror), "rev-list", "--all", "--count"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert shallow == "1"  # one commit: the tag's, not the history
    source.remove_worktree(tree)
    assert not tree.path.exists()


def test_second_checkout_reuses_the_mirror(remote: Path, tmp_path: Path) -> None:
    version = KubeVersion.parse("v1.9.4")
    first = source.checkout(str(remote), version, tmp_path / "cache")
    second = source.checkout(remote.as_uri(), version, tmp_path / "cache")
    assert first.mirror == second.mirror
    assert first.commit == second.commit
    assert first.path != second.path


def test_missing_tag_names_nearest(remote: Path, tmp_path: Path) -> None:
    with pytest.raises(SourceError) as err:
        source.checkout(str(remote), KubeVersion.parse("v1.9.9"), tmp_path / "cache")
    assert "tag v1.9.9 does not exist" in str(err.value)
    assert "nearest tags: v1.9.4, v1.9.3" in str(err.value)


def test_missing_repository(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="neither a URL nor an existing path"):
        source.checkout(str(tmp_path / "nope"), KubeVersion.parse("v1.9.4"), tmp_path / "c")


def test_git_errors_are_one_clean_line() -> None:
    import git

    exc = git.GitCommandError(["git", "fetch"], 128, stderr=(
        "\n  stderr: 'fatal: unable to access 'https://example.invalid/k.git/': Could not "
        "resolve host: example.invalid'"))
    assert source._git_reason(exc) == (
        "fatal: unable to access 'https://example.invalid/k.git/': Could not resolve host: "
        "example.invalid")


def test_what_a_killed_fetch_or_worktree_add_left_in_the_mirror_is_cleared(
    remote: Path, tmp_path: Path
) -> None:
    """kill -9 mid-fetch leaves objects/pack/tmp_pack_*; mid `git worktree add`, a registration
    locked "initializing" that `git worktree prune` never removes (issue 22). The next run
    clears both under the mirror's lock, and checks out the same path again."""
    cache, version = tmp_path / "cache", KubeVersion.parse("v1.9.4")
    tree = source.checkout(str(remote), version, cache)
    source.remove_worktree(tree)  # the kept worktree stays for reuse
    mirror = tree.mirror
    (mirror / "objects" / "pack" / "tmp_pack_Ab12Cd").write_bytes(b"\0" * 4096)
    (mirror / "objects" / "pack" / "tmp_idx_Ab12Cd").write_bytes(b"\0" * 64)
    # the state `git worktree add` leaves when killed before its checkout ends
    half = tmp_path / "half" / "kubernetes"
    subprocess.run(["git", "-C", str(mirror), "worktree", "add", "--detach", "--lock",
                    str(half), tree.commit], check=True, capture_output=True)
    registration = next(p for p in (mirror / "worktrees").iterdir()
                        if (p / "gitdir").read_text().strip() == str(half / ".git"))
    (registration / "locked").write_text("initializing")
    subprocess.run(["rm", "-rf", str(half.parent)], check=True)

    removed = source.recover_stale_git_locks(mirror)
    assert sorted(removed) == sorted([
        "objects/pack/tmp_idx_Ab12Cd", "objects/pack/tmp_pack_Ab12Cd",
        f"worktrees/{registration.name}/locked"])
    source.prune_worktrees(mirror)
    assert not registration.exists()  # prune could remove it once unlocked
    again = subprocess.run(["git", "-C", str(mirror), "worktree", "add", "--detach", str(half),
                            tree.commit], capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    # a registration locked on purpose (not "initializing") is left alone
    (registration.parent / "kept-on-purpose").mkdir()
    (registration.parent / "kept-on-purpose" / "locked").write_text("a reason\n")
    assert source.recover_stale_git_locks(mirror) == []
