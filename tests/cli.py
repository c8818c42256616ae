"""Running `invoke` as a user would, for the tests of the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# Every stand-in repository a test makes is another remote, and builds give each remote Go
# cache volumes of its own (a cold compile each). The tests share one pair instead (the Go cache
# is content-addressed, so this changes no binary); a test that wants the per-remote default
# passes these keys with "" (see invoke_environ), and --no-cache still gets fresh volumes.
TEST_GO_CACHES = {
    "LONGCERT_BUILD_CACHE_VOLUME": "longcert-test-go-build",
    "LONGCERT_MODULE_CACHE_VOLUME": "longcert-test-go-mod",
}


def invoke_environ(env: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ without LONGCERT_* or GITHUB_TOKEN from outside, plus the shared test Go
    caches and ``env``; a key given as "" is left unset."""
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith("LONGCERT_") and k != "GITHUB_TOKEN"}
    full_env.update(TEST_GO_CACHES)
    full_env.update(env or {})
    return {k: v for k, v in full_env.items() if v != "" or k not in TEST_GO_CACHES}


def run_invoke(*args: str, cwd: Path, env: dict[str, str], timeout: float = 120
               ) -> subprocess.CompletedProcess[str]:
    """`invoke -r <repo> ARGS` in ``cwd``, with no LONGCERT_* or GITHUB_TOKEN from outside."""
    full_env = invoke_environ(env)
    return subprocess.run([sys.executable, "-m", "invoke", "-r", str(ROOT), *args],
                          capture_output=True, text=True, env=full_env, cwd=cwd, check=False,
                          timeout=timeout)


def invoke_without_engine(*args: str, tmp_path: Path, env: dict[str, str] | None = None
                          ) -> subprocess.CompletedProcess[str]:
    """`invoke` with cache and builds in ``tmp_path`` and DOCKER_HOST pointing at nothing."""
    return run_invoke(*args, cwd=tmp_path, env={
        "LONGCERT_CACHE_DIR": str(tmp_path / "cache"),
        "LONGCERT_BUILDS_DIR": str(tmp_path / "builds"),
        "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock",
        **(env or {}),
    })
