"""longcert as people install it: a wheel in a fresh venv, run from outside the checkout.

The wheel carries config/ and patches/ (as longcert/data/), the `longcert` console script runs
the same tasks as `invoke` in a checkout, and a stand-in build goes end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from longcert import __version__
from longcert.package import build_id
from tests.cli import ROOT, TEST_GO_CACHES
from tests.fixtures import standin

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no system site-packages) with the wheel built from this checkout."""
    work = tmp_path_factory.mktemp("installed")
    # --no-build-isolation: the setuptools .ci/run installed builds it, with no download
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(work / "wheel"), str(ROOT)],
                   check=True, capture_output=True)
    wheel = next((work / "wheel").glob("longcert-*.whl"))
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # its dependencies as the release jobs install them: requirements/release.txt with
    # --require-hashes, which refuses a dependency the lock lacks or a file whose hash differs
    # (so this proves the lock complete and right, issue 20); then the wheel alone
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
    locked = subprocess.run([*pip, "--require-hashes", "-r",
                             str(ROOT / "requirements" / "release.txt")],
                            capture_output=True, text=True, check=False)
    assert locked.returncode == 0, locked.stderr[-2000:]
    subprocess.run([*pip, "--no-deps", str(wheel)], check=True, capture_output=True)
    return venv


def _longcert(venv: Path, *args: str, cwd: Path, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items()
            if not k.startswith("LONGCERT_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    full.update({"HOME": str(cwd / "home"), **TEST_GO_CACHES, **(env or {})})
    result = subprocess.run([str(venv / "bin" / "longcert"), *args], capture_output=True,
                            text=True, cwd=cwd, env=full, check=False, timeout=1800)
    print(result.stdout[-3000:], result.stderr[-3000:])
    return result


def test_the_wheel_runs_from_anywhere(installed: Path, tmp_path: Path, standin_repo: Path,
                                      shared_cache: Path) -> None:
    where = _longcert(installed, "config", cwd=tmp_path)  # no checkout in sight
    assert where.returncode == 0, where.stderr
    module = subprocess.run([str(installed / "bin" / "python"), "-c",
                             "import longcert; print(longcert.__file__)"],
                            capture_output=True, text=True, check=True, cwd=tmp_path)
    assert module.stdout.startswith(str(installed)), "the venv's own copy runs, not the checkout"

    version = _longcert(installed, "--version", cwd=tmp_path)
    assert version.stdout.strip() == f"longcert {__version__}"  # no checkout, no commit

    versions = _longcert(installed, "versions", cwd=tmp_path)
    assert versions.returncode == 0, versions.stderr
    assert "e4-validity-period: v1.31" in versions.stdout  # patches/ travelled with the wheel
    assert "1.22   1.16.6" in versions.stdout  # and config/go-versions.yaml

    help_text = _longcert(installed, "--help", "build", cwd=tmp_path)
    assert help_text.returncode == 0 and "--years" in help_text.stdout

    demo = _longcert(installed, "demo", cwd=tmp_path)
    assert demo.returncode == 2 and "run it from a checkout" in demo.stderr

    tag = standin.DEMO_TAG
    built = _longcert(installed, "build", tag, "--years", "4", "--repo", str(standin_repo),
                      cwd=tmp_path, env={"LONGCERT_CACHE_DIR": str(shared_cache)})
    assert built.returncode == 0, built.stderr
    out = tmp_path / "builds" / build_id(tag, 4, 10)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["verification"]["passed"] is True
    subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, check=True, capture_output=True)


def test_the_sdist_carries_config_and_patches(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-c",
                    "import sys; from setuptools import build_meta; "
                    "build_meta.build_sdist(sys.argv[1])", str(tmp_path)],
                   cwd=ROOT, check=True, capture_output=True)
    sdist = next(tmp_path.glob("longcert-*.tar.gz"))
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for path in ("config/defaults.yaml", "config/go-versions.yaml", "config/go-wheels.lock",
                 "config/go-incompatibilities.yaml", "patches/e1-clientgo-cert.yaml",
                 "patches/e4-validity-period.yaml", "longcert/kit/templates/renew.sh",
                 "tasks.py"):
        assert path in names, path
