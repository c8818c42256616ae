"""The warm path on a real build (the session's shared multi-platform build: no build of its own):
verification scenarios run at once yet log and report in order; the tag's worktree is kept."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from longcert import source
from tests.fixtures import standin
from tests.integration.conftest import RealBuild

pytestmark = pytest.mark.docker

SCENARIO = ["init phase certs ca", "init phase certs all", "init phase kubeconfig all",
            "certs renew all"]


def test_parallel_scenarios_log_and_report_in_order(real_build: RealBuild) -> None:
    log = (real_build.path / "build.log").read_text()
    commands = [line.split("/longcert/bin/kubeadm ", 1)[1].split(" --config")[0]
                for line in log.splitlines()
                if line.startswith("$ ") and "/longcert/bin/kubeadm " in line]
    # linux/amd64 natively, then linux/arm64 under qemu (windows: header only); each platform's
    # two scenarios one after the other in the log, never interleaved
    one = ["version -o json", "config print init-defaults", *SCENARIO, *SCENARIO]
    assert commands == one * 2
    # `certs all` and `kubeconfig all` run at once, yet each one's output follows its own line
    certs_all = log.index("init phase certs all")
    kubeconfig_all = log.index("init phase kubeconfig all")
    assert certs_all < log.index('Generating "apiserver" certificate') < kubeconfig_all
    assert kubeconfig_all < log.index('Writing "admin.conf" kubeconfig file')
    report = json.loads((real_build.path / "verify.json").read_text())
    for platform in report["platforms"]:
        if platform["status"] == "not-executed":
            continue
        stages = list(dict.fromkeys(check["stage"] for check in platform["checks"]))
        assert stages == ["init", "init-renew", "config-8760h-ecdsa", "config-8760h-ecdsa-renew"]


def test_the_tags_worktree_is_kept_for_the_next_build(real_build: RealBuild, shared_cache: Path,
                                                      standin_repo: Path) -> None:
    # the tag's kept worktree for this remote (other tests build the tag from other remotes)
    mirror = source.mirror_path(shared_cache, source.normalize_remote(str(standin_repo)))
    kept = [source.reusable_path(shared_cache, mirror, standin.DEMO_TAG)]
    assert (kept[0] / ".git").is_file()

    def head(repo: Path, rev: str) -> str:
        return subprocess.run(["git", "-C", str(repo), "rev-parse", rev], capture_output=True,
                              text=True, check=True).stdout.strip()

    # a worktree of the mirror at the tag's commit (the next build of the tag resets it)
    assert head(kept[0], "HEAD") == head(standin_repo, f"{standin.DEMO_TAG}^{{commit}}")
