"""The report a real build writes (report.html, REPORT.md): one timeline bar per certificate
verify.json lists, the count the manifest gives, and the page as headless Chromium draws it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from longcert.verify.report import checks_phrase
from tests.integration.conftest import RealBuild
from tests.unit.test_verify_document import parse

pytestmark = pytest.mark.docker


def test_a_build_writes_its_report(real_build: RealBuild, tmp_path: Path) -> None:
    out = real_build.path
    platforms = json.loads((out / "verify.json").read_text())["platforms"]
    checks = [c for p in platforms for c in p["checks"]]
    page = parse((out / "report.html").read_text(encoding="utf-8"))
    assert len(page.bars) == len(checks) > 0
    assert sorted(str(b["data-label"]) for b in page.bars) == sorted(
        c["file"] if c["stage"] == "init" else f"{c['file']} ({c['stage']})" for c in checks)
    assert page.tags["script"] == 0 and page.urls == []
    manifest = json.loads((out / "manifest.json").read_text())
    native = manifest["verification"]["platforms"]["linux/amd64"]
    phrase = checks_phrase(native["checks"], native["scenarios"])
    markdown = (out / "REPORT.md").read_text(encoding="utf-8")
    assert markdown.startswith("# passed: ") and phrase in markdown
    assert {e["file"] for e in manifest["reports"]} == {"report.html", "REPORT.md"}
    published = real_build.share / out.name
    assert (published / "report.html").read_bytes() == (out / "report.html").read_bytes()

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no chromium binary (apt-get install chromium)")
    artifacts = Path(os.environ.get("CI_ARTIFACTS_DIR") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / f"{out.name}.report.png"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         "--window-size=1200,900", (out / "report.html").resolve().as_uri()],
        check=True, capture_output=True, timeout=180, env={**os.environ, "HOME": str(tmp_path)},
    )
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
