"""requirements/release.txt, the hash-locked dependencies every release job installs (issue 20):
it pins every dependency pyproject.toml names, within pyproject's range, with hashes; and the
workflow installs nothing else. (tests/integration/test_installed.py installs it into a fresh
venv with --require-hashes, which proves it complete and its hashes right.)"""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "release.txt"
REGENERATE = ("pip-compile --allow-unsafe --generate-hashes --no-emit-find-links "
              "--no-emit-index-url --output-file=requirements/release.txt --strip-extras "
              "pyproject.toml")


def locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of every requirement in the lock."""
    pins: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=\S)", LOCK.read_text()):
        first = block.split("\\", 1)[0].strip()
        if not first or first.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", first)
        assert match, f"not a pinned requirement: {first!r}"
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", block)
        pins[canonicalize_name(match.group(1))] = (match.group(2), hashes)
    return pins


def test_every_dependency_is_locked_within_its_range_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = locked()
    for line in project["dependencies"]:
        wanted = Requirement(line)
        name = canonicalize_name(wanted.name)
        assert name in pins, f"{wanted.name} is not in {LOCK.name}: run `{REGENERATE}`"
        version, _ = pins[name]
        assert wanted.specifier.contains(version, prereleases=True), (
            f"{LOCK.name} pins {wanted.name}=={version}, outside pyproject's {wanted.specifier}: "
            f"run `{REGENERATE}`")
    assert all(hashes for _, hashes in pins.values()), "every pin needs --hash"
    assert REGENERATE in LOCK.read_text(), "the lock says how it was made"


def test_the_workflow_installs_only_the_lock() -> None:
    data = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    installs = [line.strip() for job in data["jobs"].values() for step in job["steps"]
                for line in str(step.get("run", "")).splitlines() if "pip install" in line]
    assert installs, "the jobs install longcert's dependencies"
    for line in installs:
        assert line == "python -m pip install --require-hashes -r requirements/release.txt", line
