""".github/workflows/release.yml: actionlint-clean, actions pinned by commit, least privilege,
and every `invoke` command in it is a real task with real flags."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"


def workflow() -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return data


def test_actionlint_passes() -> None:
    binary = shutil.which("actionlint")
    if binary is None:
        pytest.fail("actionlint is missing: pip install -e '.[test]' installs it")
    result = subprocess.run([binary, "-no-color", str(WORKFLOW)], capture_output=True,
                            text=True, cwd=ROOT, check=False, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actions_are_pinned_by_full_commit_sha() -> None:
    uses = re.findall(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", WORKFLOW.read_text(), re.MULTILINE)
    assert uses, "the workflow uses no actions?"
    for ref, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), ref
        assert re.fullmatch(r"\s*# v\d+(\.\d+)*", comment), f"{ref}: say which version"


def test_least_privilege_permissions() -> None:
    data = workflow()
    assert data["permissions"] == {}
    jobs = data["jobs"]
    assert jobs["plan"]["permissions"] == {"contents": "read"}
    assert jobs["build"]["permissions"] == {"contents": "write"}  # releases and their assets
    triggers = data[True] if True in data else data["on"]  # YAML 1.1 reads `on` as true
    assert set(triggers) == {"schedule", "workflow_dispatch"}
    for job in jobs.values():
        for step in job["steps"]:
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def test_matrix_comes_from_invoke_matrix() -> None:
    jobs = workflow()["jobs"]
    assert "invoke matrix" in jobs["plan"]["steps"][-1]["run"]
    assert jobs["build"]["strategy"]["matrix"]["include"] == (
        "${{ fromJSON(needs.plan.outputs.matrix) }}")
    runs = "\n".join(step.get("run", "") for step in jobs["build"]["steps"])
    assert "invoke build --version" in runs and "invoke publish --build" in runs


def test_every_invoke_command_is_a_real_task_and_flag() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LONGCERT_")}
    text = WORKFLOW.read_text().replace("\\\n", " ")
    commands = re.findall(r"invoke ([a-z-]+)([^\n)]*)", text)
    assert len(commands) >= 4
    for task, rest in commands:
        helptext = subprocess.run(
            [sys.executable, "-m", "invoke", "-r", str(ROOT), "--help", task],
            capture_output=True, text=True, env=env, check=False, timeout=60,
        )
        assert helptext.returncode == 0, f"no task {task!r}: {helptext.stderr}"
        for flag in re.findall(r"(--[a-z-]+)", rest):
            assert re.search(rf"{flag}[=\s]", helptext.stdout), f"invoke {task} has no {flag}"
