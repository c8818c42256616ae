from __future__ import annotations

import os
from pathlib import Path

from longcert import build
from longcert.source import SourceTree
from longcert.versions import KubeVersion


def tree(tmp_path: Path, files: dict[str, str]) -> SourceTree:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return SourceTree(tmp_path, "v1.28.7", "ab" * 20, 1700000000, "file:///k", tmp_path)


def test_module_era_plan(tmp_path: Path) -> None:
    src = tree(tmp_path, {".go-version": "1.21.7\n", "go.mod": "module k8s.io/kubernetes\n"})
    plan = build.plan(src, KubeVersion.parse("v1.28.7"), ("linux/arm64",), "auto",
                      "golang:{go_version}")
    env = dict(plan.environment)
    assert plan.image == "golang:1.21.7"
    assert plan.go.source == ".go-version"
    assert plan.argv == ("make", "all", "WHAT=cmd/kubeadm",
                         "KUBE_BUILD_PLATFORMS=linux/arm64 linux/amd64")
    assert plan.build_platforms == ("linux/arm64", "linux/amd64")
    assert env["FORCE_HOST_GO"] == "y" and env["GOTOOLCHAIN"] == "local"
    assert env["GOPROXY"] == "off"
    assert env["SOURCE_DATE_EPOCH"] == "1700000000"
    assert "GO111MODULE" not in env
    assert plan.user == f"{os.getuid()}:{os.getgid()}"  # nothing in the tree owned by root
    assert plan.output_path("windows/amd64") == "_output/local/bin/windows/amd64/kubeadm.exe"


def test_gopath_era_plan_and_go_override(tmp_path: Path) -> None:
    src = tree(tmp_path, {"build/build-image/cross/VERSION": "v1.9.3-2\n"})
    plan = build.plan(src, KubeVersion.parse("v1.9.4"), ("linux/amd64",), "1.24.11",
                      "mirror.local/golang:{go_version}")
    assert dict(plan.environment)["GO111MODULE"] == "off"
    assert plan.image == "mirror.local/golang:1.24.11"
    assert plan.go.source == "setting go_version"
    assert plan.build_platforms == ("linux/amd64",)


def test_version_file_is_the_exact_tag() -> None:
    text = build.version_file(KubeVersion.parse("v1.37.0-beta.0"), "c" * 40)
    assert "KUBE_GIT_VERSION='v1.37.0-beta.0'\n" in text
    assert "KUBE_GIT_TREE_STATE='dirty'\n" in text
    assert "KUBE_GIT_MINOR='37+'\n" in text
    assert "-dirty" not in text
