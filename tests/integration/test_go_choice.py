"""A stand-in Go must never build a kubeadm that crashes (issue 21).

Old trees vendor code that reads the Go runtime's internals (modern-go/reflect2 v1.0.1, whose
map iterator panics on Go 1.18 and newer): a tree that vendors it is refused before anything
compiles, `--go-version auto` passes such a Go over (and any Go above the minor's ceiling) and
takes the nearest one allowed, and a kubeadm that crashes anyway is one line naming the command
that makes the tree's own Go.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from longcert import container, image, versions
from longcert.errors import ImageError
from longcert.versions import GoVersion, KubeVersion
from tests.integration.conftest import NEWEST_GO, TEST_GO, Cli

pytestmark = pytest.mark.docker

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
IMAGE_ERROR, VERIFY_ERROR = 4, 8
REFLECT2_V101 = ("# github.com/modern-go/reflect2 v1.0.1\n## explicit\n"
                 "github.com/modern-go/reflect2\n")

# Stand-in for vendored code that reads runtime internals of the Go it was released with: under
# any other Go minor, `kubeadm init ...` and `kubeadm config ...` die as the real v1.22 kubeadm
# does under Go 1.18+ (a nil pointer dereference in reflect2's map iterator); `kubeadm version`
# still answers.
CRASHING_STANDIN = """package cmd

import (
\t"os"
\t"runtime"
\t"strings"
)

type unsafeMapIterator struct{ hiter *int }

func init() {
\tif len(os.Args) > 1 && (os.Args[1] == "init" || os.Args[1] == "config") &&
\t\t!strings.HasPrefix(runtime.Version(), "go1.21.") {
\t\tvar iterator *unsafeMapIterator
\t\t_ = *iterator.hiter
\t}
}
"""


def _derived_repo(standin_repo: Path, work: Path, base: str, tag: str,
                  files: dict[str, str], append: dict[str, str] | None = None) -> Path:
    """A clone of the stand-in repository with ``tag`` on ``base`` plus these file contents."""
    repo = work / "derived"
    subprocess.run(["git", "clone", "-q", str(standin_repo), str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", base], check=True)
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    for path, text in (append or {}).items():
        (repo / path).write_text((repo / path).read_text() + text)
    subprocess.run([*GIT, "-C", str(repo), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(repo), "commit", "-qm", tag], check=True)
    subprocess.run([*GIT, "-C", str(repo), "tag", "-a", tag, "-m", tag], check=True)
    return repo


@pytest.fixture
def only_newer_gos(engine: docker.DockerClient) -> Iterator[str]:
    """An image name template under which this machine has Go TEST_GO and NEWEST_GO only."""
    repository = "longcert-test/reflect"
    for go in (TEST_GO, NEWEST_GO):
        engine.images.get(f"golang:{go}").tag(repository, go)
    yield repository + ":{go_version}"
    for go in (TEST_GO, NEWEST_GO):
        engine.images.remove(f"{repository}:{go}", noprune=True)


def test_a_tree_vendoring_reflect2_v101_is_refused_before_compiling(
    cli: Cli, standin_repo: Path, tmp_path: Path, only_newer_gos: str,
    engine: docker.DockerClient,
) -> None:
    """A v1.22-like tree (Go 1.16.15, go.mod go 1.16, reflect2 v1.0.1 in vendor/modules.txt)
    with only newer Go images: auto passes each over (the vendored module, the ceiling) and the
    error is the command that makes the tree's own Go; an explicit too-new Go is refused the
    same way. Nothing compiles, no container is left."""
    repo = _derived_repo(standin_repo, tmp_path, "v1.28.7", "v1.22.15", {
        ".go-version": "1.16.15\n",
    }, append={"vendor/modules.txt": REFLECT2_V101})
    go_mod = repo / "go.mod"
    go_mod.write_text(go_mod.read_text().replace("\ngo 1.20\n", "\ngo 1.16\n"))
    subprocess.run([*GIT, "-C", str(repo), "commit", "-qam", "go 1.16"], check=True)
    subprocess.run([*GIT, "-C", str(repo), "tag", "-f", "-a", "v1.22.15", "-m", "v1.22.15"],
                   check=True, capture_output=True)
    own_image = only_newer_gos.format(go_version="1.16.15")
    make = f"`longcert builder-image --go-version 1.16.15 --tag {own_image}`"

    auto = cli("build", "--version", "v1.22.15", "--repo", str(repo), "--image", only_newer_gos)
    assert auto.returncode == IMAGE_ERROR, auto.stdout + auto.stderr
    line = auto.stderr.strip()
    assert len(line.splitlines()) == 1, line
    assert "no local image may stand in for it" in line
    assert (f"passed over longcert-test/reflect:{TEST_GO}, longcert-test/reflect:{NEWEST_GO}: "
            "github.com/modern-go/reflect2 v1.0.1 breaks on Go 1.18 and newer (make it") in line
    assert make in line

    explicit = cli("build", "--version", "v1.22.15", "--repo", str(repo), "--image",
                   only_newer_gos, "--go-version", TEST_GO)
    assert explicit.returncode == IMAGE_ERROR, explicit.stdout + explicit.stderr
    line = explicit.stderr.strip()
    assert len(line.splitlines()) == 1, line
    assert f"v1.22.15 with Go {TEST_GO} would build a kubeadm that crashes" in line
    assert "github.com/modern-go/reflect2 v1.0.1 breaks on Go 1.18 and newer" in line
    assert f"build with the tree's own Go 1.16.15: {make}" in line

    for result in (auto, explicit):
        assert "==> patch" in result.stdout  # refused at the compile stage, before make
        assert "go build" not in result.stdout and "+++ [" not in result.stdout
    assert not (tmp_path / "builds").exists()
    assert not engine.containers.list(all=True, filters={"label": "org.longcert.purpose=build"})


def _choose(engine: docker.DockerClient, template: str, wanted: str, tree: Path,
            cache: Path) -> image.ImageChoice:
    """image.choose as the pipeline calls it for --go-version auto on a v1.38 tree."""
    return image.choose(
        engine, wanted=GoVersion(wanted, ".go-version"),
        policy=versions.go_policy(KubeVersion.parse("v1.38.0")), template=template,
        registry_mirror="", cache_dir=cache,
        engine_platform=container.engine_platform(engine), floor=None,
        breaks=lambda go: versions.vendored_incompatibilities(tree, go, detail=False))


def test_auto_takes_the_nearest_go_the_vendored_code_runs_with(
    engine: docker.DockerClient, tmp_path: Path, shared_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a table row whose module breaks from Go 1.25 (the real reflect2 row breaks from
    1.18, older than any Go this machine can have): only Go 1.27.1 present -> refused with the
    command for the tree's Go; Go 1.24.11 present too -> chosen, 1.27.1 passed over, said why."""
    table = tmp_path / "go-incompatibilities.yaml"
    table.write_text(
        "- module: example.com/unsafemap\n  versions: [v0.3.0]\n  breaks_from: '1.25'\n"
        "  why: its map iterator reads runtime internals\n  sources: [test]\n")
    monkeypatch.setattr(versions, "GO_INCOMPATIBILITIES_FILE", table)
    tree = tmp_path / "tree"
    (tree / "vendor").mkdir(parents=True)
    (tree / "vendor" / "modules.txt").write_text(
        "# example.com/unsafemap v0.3.0\n## explicit\nexample.com/unsafemap\n")
    newest_only, both = "longcert-test/nearest-a", "longcert-test/nearest-b"
    engine.images.get(f"golang:{NEWEST_GO}").tag(newest_only, NEWEST_GO)
    for go in (TEST_GO, NEWEST_GO):
        engine.images.get(f"golang:{go}").tag(both, go)
    try:
        with pytest.raises(ImageError) as refused:
            _choose(engine, newest_only + ":{go_version}", "1.23.9", tree, shared_cache)
        assert refused.value.message.endswith(
            f"passed over {newest_only}:{NEWEST_GO}: example.com/unsafemap v0.3.0 breaks on Go "
            "1.25 and newer")
        assert refused.value.hint == (
            f"make it with `longcert builder-image --go-version 1.23.9 --tag {newest_only}:1.23.9`")

        chosen = _choose(engine, both + ":{go_version}", "1.23.9", tree, shared_cache)
        assert chosen.image == f"{both}:{TEST_GO}" and chosen.go.version == TEST_GO
        assert f"so the nearest allowed, Go {TEST_GO}; passed over {both}:{NEWEST_GO}: " \
               "example.com/unsafemap v0.3.0 breaks on Go 1.25" in chosen.chosen_by

        # without the row, the ceiling alone decides: v1.38's is 1.27.1, so both are allowed
        # and the nearest (the next minor up from 1.23) comes first
        table.write_text("[]\n")
        chosen = _choose(engine, both + ":{go_version}", "1.23.9", tree, shared_cache)
        assert chosen.image == f"{both}:{TEST_GO}" and "passed over" not in chosen.chosen_by
    finally:
        for name in (f"{newest_only}:{NEWEST_GO}", f"{both}:{TEST_GO}", f"{both}:{NEWEST_GO}"):
            engine.images.remove(name, noprune=True)


def test_a_kubeadm_crashing_under_a_stand_in_go_is_one_line(
    cli: Cli, standin_repo: Path, tmp_path: Path,
) -> None:
    """A v1.28 tree (Go 1.21.7) whose kubeadm crashes in the Go runtime under any other Go
    minor, built with --go-version TEST_GO (above v1.28's ceiling: warned): verification fails
    in one line naming the tree's Go and the command that makes it; the stack trace is in the
    build log."""
    repo = _derived_repo(standin_repo, tmp_path, "v1.28.7", "v1.28.8", {
        "cmd/kubeadm/app/cmd/reflect2_standin.go": CRASHING_STANDIN})
    result = cli("build", "--version", "v1.28.8", "--repo", str(repo), "--go-version", TEST_GO)
    assert result.returncode == VERIFY_ERROR, result.stdout + result.stderr
    assert f"Go {TEST_GO} is newer than any Go v1.28 is known to run with (1.22.8" in (
        result.stdout + result.stderr)
    line = result.stderr.strip().splitlines()[-1]
    assert line.count("\n") == 0
    assert (f"kubeadm v1.28.8 built with Go {TEST_GO} instead of the tree's Go 1.21.7 crashes "
            "(panic: runtime error: invalid memory address or nil pointer dereference)") in line
    assert "`longcert builder-image --go-version 1.21.7" in line
    log = Path(line.rsplit("the stack trace is in ", 1)[1].rstrip(")"))
    assert "goroutine 1 [running]" in log.read_text()
    assert not (tmp_path / "builds").exists()
