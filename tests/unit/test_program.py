"""The installed `longcert` command (longcert/program.py): the same tasks as `invoke` in a
checkout, a positional version, usage errors with a "did you mean" and exit code 64."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from longcert import __version__, program
from longcert.tasks import namespace
from tests.cli import ROOT, invoke_environ


def longcert(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = invoke_environ({"HOME": str(cwd / "home"), "LONGCERT_CACHE_DIR": str(cwd / "cache"),
                          "DOCKER_HOST": f"unix://{cwd}/no-engine.sock"})
    return subprocess.run([sys.executable, "-m", "longcert", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, check=False, timeout=120)


def test_version_names_the_commit_in_a_checkout(tmp_path: Path) -> None:
    result = longcert("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert result.stdout.strip() == f"longcert {__version__} (git {commit})"


def test_the_same_tasks_as_invoke_and_every_summary_is_a_sentence(tmp_path: Path) -> None:
    assert set(program.command_namespace().task_names) == set(namespace.task_names)
    for name in namespace.task_names:
        doc = (namespace[name].__doc__ or "").strip()
        first = doc.splitlines()[0] if doc else ""
        assert first.endswith("."), f"{name}: --list shows {first!r}, not a whole sentence"
        assert len(first) <= 100, name
    listing = longcert("--list", cwd=tmp_path)
    assert listing.returncode == 0 and "build" in listing.stdout and "config" in listing.stdout


@pytest.mark.parametrize(("args", "said"), [
    (("build", "v1.33.7", "--yeers", "3"), "No idea what '--yeers' is! (did you mean --years?)"),
    (("biuld", "v1.33.7"), "No idea what 'biuld' is! (did you mean `longcert build`?)"),
    (("v1.33.7",), "(a version goes right after the task: `longcert build v1.33.7`)"),
    (("build",), "did not receive required positional arguments: 'version' (e.g. "
                 "`longcert build v1.33.7`)"),
])
def test_a_command_line_that_does_not_parse_is_a_usage_error(
    tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    result = longcert(*args, cwd=tmp_path)
    assert result.returncode == program.USAGE_EXIT_CODE, result.stderr
    assert result.stderr.startswith("longcert: usage: ") and said in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_version_may_be_positional_and_task_help_still_works(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "empty"], check=True)
    positional = longcert("fetch", "v1.9.5", "--repo", str(repo), cwd=tmp_path)
    flag = longcert("fetch", "--version", "v1.9.5", "--repo", str(repo), cwd=tmp_path)
    for result in (positional, flag):
        assert result.returncode == 5, result.stderr  # SourceError: the tag is not there
        assert "v1.9.5" in result.stderr
    help_text = longcert("build", "--help", cwd=tmp_path)
    assert help_text.returncode == 0, help_text.stderr
    assert "Usage: longcert [--core-opts] build" in help_text.stdout
    assert "--years" in help_text.stdout


def test_config_prints_every_setting_with_its_source(tmp_path: Path) -> None:
    (tmp_path / "longcert.yaml").write_text("years: 4\n")
    result = longcert("config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"project settings file: {tmp_path / 'longcert.yaml'}" in result.stdout
    assert "(none)" in result.stdout  # the user's file does not exist
    line = next(ln for ln in result.stdout.splitlines() if ln.split()[:1] == ["years"])
    assert line.split()[1] == "4" and f"(project {tmp_path / 'longcert.yaml'})" in line


def _flags(task: str) -> set[str]:
    import copy

    return {name for argument in copy.deepcopy(namespace[task]).get_arguments()
            for name in argument.names}


def test_one_name_per_idea() -> None:
    """--image is only the builder image, --publish the only publish target, --to only a
    range's end, --go-version the only Go, --ca-years the only CA validity; old names are
    aliases of the new ones only (longcert.tasks.OLD_FLAGS)."""
    from longcert.tasks import OLD_FLAGS

    old = {(task, name.replace("_", "-")) for (task, _), names in OLD_FLAGS.items()
           for name in names}
    flags = {task: {f for f in _flags(task) if (task, f) not in old}
             for task in namespace.task_names}
    assert {t for t, names in flags.items() if "image" in names} == {
        "build", "compile", "release"}
    assert {t for t, names in flags.items() if "run-image" in names} == {
        "verify", "kit", "renew-check"}
    assert {t for t, names in flags.items() if "to" in names} == {"release", "matrix"}
    assert {t for t, names in flags.items() if "publish" in names} == {
        "build", "release", "matrix", "publish", "oci-refs"}
    assert not any("go" in names for names in flags.values())
    assert "years" not in flags["ca"] and "ca-years" in flags["ca"]
    for task, names in flags.items():  # the short forms, wherever the long flag is
        for long, short in (("years", "y"), ("repo", "r"), ("platforms", "p"), ("build", "b")):
            assert (long in names) == (short in names), (task, long)


def test_old_flag_names_still_work_with_a_note_and_are_not_in_help(tmp_path: Path) -> None:
    shown = longcert("--help", "publish", cwd=tmp_path)
    assert "--publish=STRING" in shown.stdout and "--to" not in shown.stdout
    old = longcert("publish", "-b", str(tmp_path / "nowhere"), "--to", "dir:out", cwd=tmp_path)
    assert old.returncode == 2, old.stderr
    assert "longcert: note: --to of publish is now --publish (the old name works until " \
           "longcert 0.3)" in old.stderr
    assert "is not a build directory" in old.stderr
    short = longcert("--help", "build", cwd=tmp_path)
    assert "-y STRING, --years=STRING" in short.stdout


def test_the_demo_finds_the_clone_it_runs_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    """`pipx install .` then `longcert demo` inside the clone: the package is not the checkout,
    the working directory (or a parent) is."""
    from longcert import demo, settings

    monkeypatch.setattr(settings, "PROJECT_ROOT", None)
    monkeypatch.chdir(ROOT / "tests" / "unit")
    assert demo.checkout() == ROOT
    monkeypatch.chdir(tmp_path)
    assert demo.checkout() is None
