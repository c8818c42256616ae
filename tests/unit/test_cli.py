"""The CLI: bad input is one clear line and a non-zero exit, before anything is cloned."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli import invoke_without_engine

invoke = invoke_without_engine


@pytest.fixture
def existing_build(tmp_path: Path) -> Path:
    old = tmp_path / "builds" / "kubeadm-v1.9.4-leaf10y-ca10y"
    old.mkdir(parents=True)
    (old / "kubeadm-linux-amd64").write_text("an earlier build\n")
    return old


BAD_INPUTS = [
    (["--version", "1.9"], "is not a Kubernetes release tag"),
    (["--version", "v1.9"], "is not a Kubernetes release tag"),
    (["--version", "banana"], "is not a Kubernetes release tag"),
    (["--version", "v1.9.4; rm -rf /"], "is not a Kubernetes release tag"),
    (["--version", "v1.8.4"], "older than any patch set"),
    (["--version", "v1.9.4", "--years", "0"], "at least 1 year"),
    (["--version", "v1.9.4", "--years", "-3"], "at least 1 year"),
    (["--version", "v1.9.4", "--years", "abc"], "whole number of years"),
    (["--version", "v1.9.4", "--years", "2.5"], "whole number of years"),
    (["--version", "v1.9.4", "--years", "293", "--ca-years", "293"], "time.Duration"),
    (["--version", "v1.9.4", "--years", "20", "--ca-years", "10"], "longer than --ca-years"),
    (["--version", "v1.9.4", "--platforms", "linux/amd64,plan9/mips"], "unknown platform"),
    (["--version", "v1.9.4", "--force"], "no Docker engine answers"),
    ([], "--version is required"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS)
def test_bad_input(args: list[str], message: str, tmp_path: Path, existing_build: Path) -> None:
    result = invoke("build", *args, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert lines[0].startswith("longcert: ")
    # nothing cloned, nothing lost
    assert not (tmp_path / "cache" / "mirrors").exists()
    assert (existing_build / "kubeadm-linux-amd64").read_text() == "an earlier build\n"
    assert sorted(p.name for p in (tmp_path / "builds").iterdir()) == [existing_build.name]


def test_existing_build_is_not_overwritten(tmp_path: Path, existing_build: Path) -> None:
    result = invoke("build", "--version", "v1.9.4", tmp_path=tmp_path)
    assert result.returncode == 9
    assert "already exists" in result.stderr
    assert (existing_build / "kubeadm-linux-amd64").read_text() == "an earlier build\n"


def test_exit_codes_by_class(tmp_path: Path) -> None:
    assert invoke("build", "--version", "banana", tmp_path=tmp_path).returncode == 2
    no_engine = invoke("build", "--version", "v1.28.7", tmp_path=tmp_path)
    assert no_engine.returncode == 3


def test_unknown_env_setting(tmp_path: Path) -> None:
    result = invoke("build", "--version", "v1.9.4", tmp_path=tmp_path,
                    env={"LONGCERT_PLATFORM": "linux/amd64"})
    assert result.returncode == 2
    assert "did you mean 'platforms'" in result.stderr


def test_list_and_help(tmp_path: Path) -> None:
    listing = invoke("--list", tmp_path=tmp_path).stdout
    for name in ("build", "fetch", "patch", "compile", "verify", "builder-image", "demo",
                 "versions", "errors"):
        assert f"  {name} " in listing
    helptext = invoke("--help", "build", tmp_path=tmp_path).stdout
    for flag in ("--years", "--ca-years", "--repo", "--platforms", "--go-version", "--image",
                 "--registry-mirror", "--force"):
        assert flag in helptext


def test_versions_and_errors_tables(tmp_path: Path) -> None:
    out = invoke("versions", tmp_path=tmp_path).stdout
    assert "e4-validity-period: v1.31 - v1.37" in out
    assert "cmd/kubeadm/app/constants/constants.go" in out
    assert "  1.22   1.16.6   floor  1.16.15  " in out  # minor, go, rule, ceiling, sources
    assert "github.com/modern-go/reflect2 v1.0.1, 05fbef0ca5da, 94122c33edd3: Go 1.18" in out
    errors_out = invoke("errors", tmp_path=tmp_path).stdout
    assert "VerifyError" in errors_out and "130" in errors_out


def test_patch_dry_run_prints_the_diff_and_applies_nothing(tmp_path: Path) -> None:
    from tests.fixtures import standin

    repo = standin.make_standin_repo(tmp_path / "k8s", ["v1.28.7"])
    result = invoke("patch", "--version", "v1.28.7", "--years", "5", "--ca-years", "40",
                    "--repo", str(repo), "--dry-run", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "+\tCertificateValidity = time.Hour * 24 * 365 * 5\n" in result.stdout
    assert "+\t\tNotAfter:              now.Add(duration365d * 40).UTC(),\n" in result.stdout
    assert "==> patch" in result.stdout
    assert not (tmp_path / "builds").exists()



@pytest.mark.parametrize(("args", "code", "message"), [
    ([], 2, "--binary is required"),
    (["--binary", "/nonexistent/kubeadm"], 2, "is not a file"),
    (["--binary", "pyproject.toml"], 8, "is not a kubeadm executable"),
    (["--binary", "pyproject.toml", "--years", "0"], 2, "at least 1 year"),
])
def test_verify_bad_input(args: list[str], code: int, message: str, tmp_path: Path) -> None:
    from tests.cli import ROOT

    result = invoke("verify", *[str(ROOT / a) if a == "pyproject.toml" else a for a in args],
                    tmp_path=tmp_path)
    assert result.returncode == code, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0]


@pytest.mark.parametrize(("stage", "error"), [
    ("fetch", "SourceError"), ("compile", "BuildError"), ("package", "PublishError")])
def test_an_os_error_in_a_stage_is_that_stages_error(stage: str, error: str) -> None:
    import errno
    import io

    from longcert import pipeline
    from longcert.progress import Reporter

    with pytest.raises(pipeline.STAGE_ERRORS[stage]) as caught, \
            pipeline._stage(Reporter(io.StringIO()), stage):
        raise OSError(errno.ENOSPC, "No space left on device", "/cache/work/x")
    assert type(caught.value).__name__ == error
    assert str(caught.value) == (f"{stage} failed: No space left on device: /cache/work/x (free "
                                 "disk space there and run again; nothing already built was "
                                 "replaced)")


def test_every_task_has_sensible_flags(tmp_path: Path) -> None:
    """No task shows Invoke's automatic short flags, which can pick `-` itself
    (`--=STRING, --go-archive-sha256=STRING`): a short flag, if any, is one letter."""
    import json

    listing = invoke("--list", "--list-format", "json", tmp_path=tmp_path)
    assert listing.returncode == 0, listing.stderr
    names = [t["name"] for t in json.loads(listing.stdout)["tasks"]]
    assert {"build", "builder-image", "publish", "verify"} <= set(names)
    seen: dict[str, list[str]] = {}
    for name in names:
        helptext = invoke("--help", name, tmp_path=tmp_path)
        assert helptext.returncode == 0, helptext.stderr
        options = helptext.stdout.partition("Options:")[2]
        # a flag's line is indented two spaces; deeper lines continue its help text
        flags = [ln.strip().split("  ")[0] for ln in options.splitlines()
                 if re.match(r"  -", ln)]
        seen[name] = flags
        for line in flags:
            for flag in line.split(", "):
                assert not re.match(r"-{1,2}[=\s]|-{1,2}$", flag), f"invoke {name}: {line}"
                if not flag.startswith("--"):
                    assert re.fullmatch(r"-[A-Za-z]( \S+)?", flag), f"invoke {name}: {line}"
                else:
                    assert re.fullmatch(r"--[a-z][a-z0-9-]*(=\S+|\[=\S+\])?", flag), (
                        f"invoke {name}: {line}")
    assert "--go-archive-sha256=STRING" in seen["builder-image"]  # the lines were found


def test_clean_trees_removes_kept_worktrees(tmp_path: Path) -> None:
    kept = tmp_path / "cache" / "trees" / "kubernetes-v1.33.7"
    (kept / "kubernetes" / "cmd").mkdir(parents=True)
    (kept / "meta").mkdir()
    plain = invoke("clean", tmp_path=tmp_path)
    assert plain.returncode == 0 and kept.is_dir()  # only with --trees
    result = invoke("clean", "--trees", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"removed {kept}" in result.stdout
    assert "clean: 1 kept worktree(s) removed" in result.stdout
    assert not kept.exists()


def test_clean_go_caches_without_an_engine_is_one_line(tmp_path: Path) -> None:
    result = invoke("clean", "--go-caches", tmp_path=tmp_path)
    assert result.returncode == 3
    assert result.stderr.strip().startswith("longcert: EngineError: no Docker engine answers")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_after_a_stop_threads_winding_down_print_nothing() -> None:
    """SIGHUP during a fetch: GitPython's pump threads fail on the pipes the stop closed
    ("I/O operation on closed file"); that noise must not follow the exit line (issue 22)."""
    import subprocess
    import sys

    from tests.cli import ROOT

    script = (
        "import sys, threading, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from invoke.exceptions import Exit\n"
        "from longcert import runs\n"
        "from longcert.taskbase import cli\n"
        "def pump():\n"
        "    time.sleep(0.3)\n"
        "    raise ValueError('I/O operation on closed file')\n"
        "@cli\n"
        "def task(c, debug=False):\n"
        "    threading.Thread(target=pump).start()\n"
        "    raise runs.Terminated(1)\n"
        "try:\n"
        "    task(None)\n"
        "except Exit as stop:\n"
        "    print(stop.message, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.stderr.strip() == "longcert: stopped by SIGHUP", result.stderr
