"""Running `invoke` as a user would, for the tests of the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_invoke(*args: str, cwd: Path, env: dict[str, str], timeout: float = 120
               ) -> subprocess.CompletedProcess[str]:
    """`invoke -r <repo> ARGS` in ``cwd``, with no LONGCERT_* or GITHUB_TOKEN from outside."""
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith("LONGCERT_") and k != "GITHUB_TOKEN"}
    full_env.update(env)
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
