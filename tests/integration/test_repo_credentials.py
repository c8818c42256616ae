"""Credentials in --repo reach git for the fetch, and nothing else ever sees them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests import git_http_server
from tests.integration.conftest import TEST_GO, Cli

TOKEN = "s3cr3t-t0ken-4242"


@pytest.fixture
def served(standin_repo: Path, tmp_path: Path) -> git_http_server.GitServer:
    root = tmp_path / "srv"
    root.mkdir()
    subprocess.run(["git", "clone", "-q", "--bare", str(standin_repo),
                    str(root / "kubernetes.git")], check=True)
    with git_http_server.serve(root, "builder", TOKEN) as server:
        yield server  # type: ignore[misc]


def _everything_written(where: Path) -> str:
    text = []
    for path in where.rglob("*"):
        if path.is_file() and not path.is_symlink():
            text.append(path.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(text)


@pytest.mark.docker
def test_credentials_are_used_for_the_fetch_and_never_shown_or_stored(
    cli: Cli, served: git_http_server.GitServer, tmp_path: Path
) -> None:
    url = served.url.replace("http://", f"http://builder:{TOKEN}@") + "kubernetes.git"
    cache = tmp_path / "own-cache"
    result = cli("build", "--version", "v1.28.7", "--years", "2", "--repo", url,
                 "--go-version", TEST_GO, env={"LONGCERT_CACHE_DIR": str(cache)})
    assert result.returncode == 0, result.stderr
    assert served.authorizations, "the token was needed and sent to the git server"
    for output in (result.stdout, result.stderr):
        assert TOKEN not in output and "builder:" not in output
    assert f"{served.url}kubernetes.git" in result.stdout  # shown without userinfo
    assert TOKEN not in _everything_written(cache)  # mirror config, logs, probes
    build = tmp_path / "builds" / "kubeadm-v1.28.7-leaf2y-ca10y"
    assert TOKEN not in _everything_written(build)
    manifest = json.loads((build / "manifest.json").read_text())
    assert manifest["kubernetes"]["remote"] == f"{served.url}kubernetes.git"


def test_a_wrong_token_fails_without_showing_it(served: git_http_server.GitServer,
                                                tmp_path: Path) -> None:
    from tests.cli import run_invoke

    url = served.url.replace("http://", "http://builder:wrong-t0ken@") + "kubernetes.git"
    result = run_invoke("fetch", "--version", "v1.28.7", "--repo", url, cwd=tmp_path,
                        env={"LONGCERT_CACHE_DIR": str(tmp_path / "c")}, timeout=120)
    assert result.returncode == 5, result.stderr
    assert "wrong-t0ken" not in result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("repo", "message"), [
    ("--upload-pack=touch /tmp/pwned", "is not a repository"),
    ("-c", "is not a repository"),
    ("ext::sh -c touch% /tmp/pwned", "remote helper"),
    ("fd::17", "remote helper"),
    ("ftp://example.com/k.git", "scheme 'ftp' is not allowed"),
    ("http://git.example.com/k.git", "plain http is only allowed to this machine"),
    ("https://example.com/k\n.git", "is not a repository"),
])
def test_repo_values_that_are_not_repositories(repo: str, message: str, tmp_path: Path) -> None:
    from tests.cli import run_invoke

    # through the environment: invoke's own parser already refuses some of these as flags
    result = run_invoke("fetch", "--version", "v1.28.7", cwd=tmp_path, timeout=60,
                        env={"LONGCERT_CACHE_DIR": str(tmp_path / "c"), "LONGCERT_REPO": repo})
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "(from env LONGCERT_REPO)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not Path("/tmp/pwned").exists()
