"""The publish, release and matrix tasks: help, JSON output, and bad input as one clear line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.cli import invoke_without_engine
from tests.standin_build import make_build

invoke = invoke_without_engine


def one_line_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("longcert: "), result.stderr
    assert text in lines[0]


def test_help_lists_every_flag(tmp_path: Path) -> None:
    listing = invoke("--list", tmp_path=tmp_path).stdout
    for name in ("publish", "release", "matrix"):
        assert f"  {name} " in listing
    expected = {
        "publish": ("--build", "--publish", "--dry-run", "--github-api-url", "--oci-insecure",
                    "--no-run-check"),
        "release": ("--versions", "--from", "--to", "--publish", "--years", "--go-version",
                    "--dry-run", "--force"),
        "matrix": ("--versions", "--from", "--to", "--publish", "--repo"),
        "build": ("--publish", "--github-api-url"),
    }
    for task, flags in expected.items():
        text = invoke("--help", task, tmp_path=tmp_path).stdout
        for flag in flags:
            assert flag in text, (task, flag)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["publish", "--publish", "dir:out"], 2, "--build is required"),
        (["publish", "--build", "builds/x"], 2, "--publish is required"),
        (["publish", "--build", "nowhere", "--publish", "dir:out"], 2, "is not a build directory"),
        (["kit", "--build", "nowhere"], 2, "is not a build directory"),
        (["release", "--publish", "dir:out"], 2, "no versions to release"),
        (["release", "--versions", "v1.28.7"], 2, "a release needs a target"),
        (["release", "--versions", "v1.28.7", "--publish", "github:o/r"], 2,
         "needs a token in the GITHUB_TOKEN"),
        (["matrix", "--versions", "banana"], 2, "is not a Kubernetes release tag"),
        (["build", "--version", "v1.28.7", "--publish", "ftp://host/x"], 2,
         "unknown publish target kind 'ftp'"),
        (["build", "--version", "v1.28.7", "--publish", "github:o/r"], 2,
         "needs a token in the GITHUB_TOKEN"),
    ],
)
def test_bad_input(args: list[str], code: int, message: str, tmp_path: Path) -> None:
    result = invoke(*args, tmp_path=tmp_path)
    one_line_error(result, code, message)
    assert not (tmp_path / "cache" / "mirrors").exists()  # refused before cloning anything


def test_unverified_build_is_not_published(tmp_path: Path) -> None:
    out = make_build(tmp_path / "builds", passed=False)
    result = invoke("publish", "--build", str(out), "--publish", "dir:share", tmp_path=tmp_path)
    one_line_error(result, 9, "verification did not pass; only a verified build can be published")
    assert not (tmp_path / "share").exists()


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("SHA256SUMS", b"\xff\xfe not text", "cannot read"),  # was an internal error
        ("manifest.json", b'{"kubernetes": "v1.33.7"}', "manifest.json kubernetes is "),
        ("verify.json", b'{"passed": true, "platforms": {"linux/amd64": 1}}',
         "verify.json platforms is {"),
    ],
)
def test_hostile_build_files_are_one_line(tmp_path: Path, file: str, content: bytes,
                                          message: str) -> None:
    out = make_build(tmp_path / "builds")
    (out / file).write_bytes(content)
    result = invoke("publish", "--build", str(out), "--publish", "dir:share", tmp_path=tmp_path)
    one_line_error(result, 9, message)
    assert str(out) in result.stderr
    assert not (tmp_path / "share").exists()


def test_matrix_prints_json(tmp_path: Path) -> None:
    result = invoke("matrix", "--versions", "v1.28.7,v1.33.7", "--years", "20", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {"version": "v1.28.7", "build_id": "kubeadm-v1.28.7-leaf20y-ca20y"},
        {"version": "v1.33.7", "build_id": "kubeadm-v1.33.7-leaf20y-ca20y"},
    ]


def test_publish_without_an_engine_says_how_to_go_on(tmp_path: Path) -> None:
    """Each Linux binary runs before anything is uploaded: with no engine, one line saying so
    and naming the opt-out, and nothing published (not even with --dry-run)."""
    out = make_build(tmp_path / "builds")
    for dry in ((), ("--dry-run",)):
        result = invoke("publish", "--build", str(out), "--publish", "share", *dry,
                        tmp_path=tmp_path)
        one_line_error(result, 3, "publish runs each Linux binary")
        assert "--no-run-check" in result.stderr
        assert not (tmp_path / "share").exists()


def test_publish_dry_run_then_publish_to_a_directory(tmp_path: Path) -> None:
    """(The stand-in binaries are not kubeadm: --no-run-check, said as such.)"""
    out = make_build(tmp_path / "builds")
    dry = invoke("publish", "--build", str(out), "--publish", "share", "--dry-run",
                 "--no-run-check", tmp_path=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "would copy kubeadm-linux-amd64" in dry.stdout and not (tmp_path / "share").exists()
    assert "binaries not run (--no-run-check)" in dry.stdout
    real = invoke("publish", "--build", str(out), "--publish", "share", "--no-run-check",
                  tmp_path=tmp_path)
    assert real.returncode == 0, real.stderr
    published = tmp_path / "share" / out.name
    assert f"published {out.name} to {published} (binaries not run: --no-run-check)" \
        in real.stdout
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=published,
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout
