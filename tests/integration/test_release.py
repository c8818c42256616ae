"""`invoke release` and `invoke matrix` over a stand-in remote with several minors and patches."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.fixtures import standin
from tests.integration.conftest import TEST_GO, Cli

pytestmark = pytest.mark.docker

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
# Extra tags on the two stand-in release commits: older and newer patches, and pre-releases.
EXTRA_TAGS = {"v1.28.7": ["v1.28.6", "v1.28.9", "v1.28.10-rc.0"],
              "v1.33.7": ["v1.33.2", "v1.34.0-alpha.1"]}
NEWEST = ["v1.28.9", "v1.33.7"]


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    repo = standin.make_standin_repo(tmp_path / "remote", list(EXTRA_TAGS))
    for base, tags in EXTRA_TAGS.items():
        for tag in tags:
            subprocess.run([*GIT, "-C", str(repo), "tag", "-a", tag, f"{base}^{{commit}}",
                            "-m", tag], check=True)
    return repo


def test_release_builds_each_newest_patch_once(cli: Cli, remote: Path, tmp_path: Path) -> None:
    share = tmp_path / "share"
    select = ("--from", "1.27", "--to", "1.33", "--repo", str(remote))
    ids = [f"kubeadm-{t}-leaf10y-ca10y" for t in NEWEST]

    matrix = cli("matrix", *select, "--publish", f"dir:{share}")
    assert matrix.returncode == 0, matrix.stderr
    assert json.loads(matrix.stdout) == [{"version": t, "build_id": i}
                                         for t, i in zip(NEWEST, ids, strict=True)]

    first = cli("release", *select, "--publish", f"dir:{share}", "--go-version", TEST_GO)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("==> compile") == 2  # one build per minor
    assert "release to dir:" in first.stdout and "2 built, 0 failed" in first.stdout
    assert sorted(p.name for p in share.iterdir()) == ids
    for build in ids:
        manifest = json.loads((share / build / "manifest.json").read_text())
        assert manifest["verification"]["passed"] is True
        subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=share / build, check=True)

    second = cli("release", *select, "--publish", f"dir:{share}", "--go-version", TEST_GO)
    assert second.returncode == 0, second.stderr
    assert "==> compile" not in second.stdout and "==> fetch" not in second.stdout
    assert second.stdout.count("already published") == 2
    assert "0 built, 0 failed" in second.stdout

    assert json.loads(cli("matrix", *select, "--publish", f"dir:{share}").stdout) == []

    # To a new target the builds are answered from the existing ones, each binary run before it
    # leaves (issue 20), as `publish` does
    other = tmp_path / "other-share"
    third = cli("release", *select, "--publish", f"dir:{other}", "--go-version", TEST_GO)
    assert third.returncode == 0, third.stderr
    assert "==> compile" not in third.stdout
    for tag in NEWEST:
        assert f"kubeadm-linux-amd64 runs and reports {tag}" in third.stdout + third.stderr
    assert sorted(p.name for p in other.iterdir()) == ids

    # One version failing (a tag the remote lacks) does not stop the next; the exit code says so.
    mixed = cli("release", "--versions", "v1.30.2,v1.28.9", "--repo", str(remote),
                "--publish", f"dir:{share}", "--go-version", TEST_GO)
    assert mixed.returncode == 5, mixed.stderr
    rows = [ln.split()[:3] for ln in mixed.stdout.splitlines() if ln.startswith("  v1.")]
    assert rows == [["v1.30.2", "kubeadm-v1.30.2-leaf10y-ca10y", "failed"],
                    ["v1.28.9", "kubeadm-v1.28.9-leaf10y-ca10y", "already"]]
    assert "1 of 2 version(s) failed: v1.30.2 (SourceError)" in mixed.stderr


def test_an_os_error_in_one_version_does_not_stop_the_next(cli: Cli, remote: Path,
                                                          tmp_path: Path) -> None:
    cache = tmp_path / "own-cache"
    # The second version's log path is a directory: writing it raises IsADirectoryError, an
    # OSError as a full disk or a permission would.
    (cache / "logs" / "kubeadm-v1.33.2-leaf10y-ca10y.log").mkdir(parents=True)
    result = cli("release", "--versions", "v1.28.6,v1.33.2,v1.28.7", "--repo", str(remote),
                 "--publish", f"dir:{tmp_path / 'share'}", "--go-version", TEST_GO,
                 env={"LONGCERT_CACHE_DIR": str(cache)})
    assert result.returncode == 1, result.stderr
    rows = [ln.split()[:3] for ln in result.stdout.splitlines() if ln.startswith("  v1.")]
    assert [r[0] for r in rows] == ["v1.28.6", "v1.33.2", "v1.28.7"]
    assert [r[2] for r in rows] == ["built", "failed", "built"]
    assert "IsADirectoryError" in result.stdout
    assert "1 of 3 version(s) failed: v1.33.2" in result.stderr
    assert "internal error" not in result.stderr
