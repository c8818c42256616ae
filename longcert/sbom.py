"""An SPDX 2.3 SBOM of each built kubeadm, from what the binary itself records.

The compile stage runs ``go version -m <binary>`` inside the builder container (the same Go that
built it). Go 1.13 and later embed the main module, every dependency module (path, version,
go.sum hash) and, from Go 1.18, the build settings; binaries from GOPATH-era trees or older Go
record only the Go version, and the SBOM says so instead of guessing from the tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from longcert import __version__

SBOM_SUFFIX = ".spdx.json"
MAIN_MODULE = "k8s.io/kubernetes"
_GO_VERSION = re.compile(r"go(\d+\.\d+(?:\.\d+)?)")
_SPDX_ID = re.compile(r"[^A-Za-z0-9.-]")


@dataclass(frozen=True)
class Module:
    path: str
    version: str
    sum: str = ""  # go.sum's h1: hash, when the binary records one


@dataclass(frozen=True)
class BinaryInfo:
    """What ``go version -m`` reports for one binary."""

    go_version: str  # "1.24.11"; "" when unknown
    package: str  # the main package, e.g. k8s.io/kubernetes/cmd/kubeadm; "" when not recorded
    main: Module | None
    deps: tuple[Module, ...]
    settings: tuple[tuple[str, str], ...]

    @property
    def records_modules(self) -> bool:
        return self.main is not None


def parse_go_version_m(output: str) -> BinaryInfo:
    """Parse ``go version -m`` output (pure). Replaced modules (``=>``) count as what was built:
    the replacement's path and version."""
    go_version, package, main = "", "", None
    deps: list[Module] = []
    settings: list[tuple[str, str]] = []
    for number, line in enumerate(output.splitlines()):
        if number == 0:
            found = _GO_VERSION.search(line.rpartition(":")[2])
            go_version = found.group(1) if found else ""
            continue
        fields = line.strip().split("\t")
        kind, rest = fields[0], fields[1:]
        if kind == "path" and rest:
            package = rest[0]
        elif kind == "mod" and rest:
            main = Module(rest[0], rest[1] if len(rest) > 1 else "", _at(rest, 2))
        elif kind == "dep" and len(rest) >= 2:
            deps.append(Module(rest[0], rest[1], _at(rest, 2)))
        elif kind == "=>" and len(rest) >= 2 and deps:
            deps[-1] = Module(rest[0], rest[1], _at(rest, 2))
        elif kind == "build" and rest:
            key, _, value = rest[0].partition("=")
            settings.append((key, value))
    return BinaryInfo(go_version, package, main, tuple(deps), tuple(settings))


def _at(values: list[str], index: int) -> str:
    return values[index] if len(values) > index else ""


def _purl(path: str, version: str) -> dict[str, str]:
    return {
        "referenceCategory": "PACKAGE-MANAGER",
        "referenceType": "purl",
        "referenceLocator": f"pkg:golang/{path}@{version}" if version else f"pkg:golang/{path}",
    }


def spdx_document(
    *,
    file_name: str,
    sha256: str,
    platform: str,
    tag: str,
    commit: str,
    remote: str,
    info: BinaryInfo,
    created: int,
) -> dict[str, Any]:
    """The SPDX 2.3 JSON document for one binary. ``created`` is the tag's commit time, so the
    same build gives the same SBOM byte for byte."""
    stamp = datetime.fromtimestamp(created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    binary_id = "SPDXRef-Binary-" + _SPDX_ID.sub("-", file_name)
    packages: list[dict[str, Any]] = [
        {
            "SPDXID": binary_id,
            "name": file_name,
            "versionInfo": tag,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "checksums": [{"algorithm": "SHA256", "checksumValue": sha256}],
            "primaryPackagePurpose": "APPLICATION",
            "comment": f"kubeadm {tag} for {platform}, certificate validity patched by longcert",
        },
        {
            "SPDXID": "SPDXRef-Source",
            "name": MAIN_MODULE,
            "versionInfo": tag,
            "downloadLocation": f"git+{remote}@{tag}",
            "sourceInfo": f"git commit {commit}",
            "filesAnalyzed": False,
            "externalRefs": [_purl(MAIN_MODULE, tag)],
        },
    ]
    relationships = [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
         "relatedSpdxElement": binary_id},
        {"spdxElementId": binary_id, "relationshipType": "GENERATED_FROM",
         "relatedSpdxElement": "SPDXRef-Source"},
    ]
    if info.go_version:
        packages.append({
            "SPDXID": "SPDXRef-Go-stdlib",
            "name": "stdlib",
            "versionInfo": f"go{info.go_version}",
            "downloadLocation": "https://go.dev/dl/",
            "filesAnalyzed": False,
            "externalRefs": [_purl("stdlib", f"go{info.go_version}")],
        })
        relationships.append({"spdxElementId": binary_id, "relationshipType": "CONTAINS",
                              "relatedSpdxElement": "SPDXRef-Go-stdlib"})
    for number, dep in enumerate(sorted(set(info.deps), key=lambda m: (m.path, m.version))):
        dep_id = f"SPDXRef-Module-{number}"
        entry: dict[str, Any] = {
            "SPDXID": dep_id,
            "name": dep.path,
            "versionInfo": dep.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "externalRefs": [_purl(dep.path, dep.version)],
        }
        if dep.sum:
            entry["comment"] = f"go.sum {dep.sum}"
        packages.append(entry)
        relationships.append({"spdxElementId": binary_id, "relationshipType": "CONTAINS",
                              "relatedSpdxElement": dep_id})
    if info.records_modules:
        recorded = f"go version -m: {len(info.deps)} dependency modules"
    else:
        recorded = (
            "the binary records no module list (a GOPATH build or Go before 1.13); only its "
            "Go version is known"
        )
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": file_name,
        "documentNamespace": f"urn:longcert:spdx:{file_name}:{sha256}",
        "creationInfo": {
            "created": stamp,
            "creators": [f"Tool: longcert-{__version__}"],
            "comment": recorded,
        },
        "documentDescribes": [binary_id],
        "packages": packages,
        "relationships": relationships,
    }
