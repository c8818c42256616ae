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
    local: str = ""  # the tree's directory a `=> ./staging/...` replace built it from


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
    the replacement's path and version; a replacement by a directory of the tree (Kubernetes'
    ``./staging/src/k8s.io/...``) keeps the module's own path, with the directory noted."""
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
        elif kind == "=>" and rest and deps:
            if rest[0].startswith(("./", "../", "/")):
                deps[-1] = Module(deps[-1].path, deps[-1].version, deps[-1].sum, rest[0])
            elif len(rest) >= 2:
                deps[-1] = Module(rest[0], rest[1], _at(rest, 2))
        elif kind == "build" and rest:
            key, _, value = rest[0].partition("=")
            settings.append((key, value))
    return BinaryInfo(go_version, package, main, tuple(deps), tuple(settings))


def _at(values: list[str], index: int) -> str:
    return values[index] if len(values) > index else ""


def staging_version(tag: str) -> str:
    """The version Kubernetes publishes its staging modules (k8s.io/client-go, k8s.io/api, ...)
    under for release ``tag``: v1.28.7 -> v0.28.7, the versions vulnerability databases and
    scanners match (https://github.com/kubernetes/kubernetes/tree/master/staging#readme)."""
    return "v0." + tag.removeprefix("v").partition(".")[2] if tag.startswith("v1.") else tag


def module_version(module: Module, tag: str) -> str:
    """What a dependency is, for a scanner: a module built from the tree's own staging
    directory (or recorded as ``(devel)`` / ``v0.0.0`` under k8s.io) is the staging release of
    ``tag``; any other keeps the version the binary records."""
    own = module.local or module.version in ("(devel)", "v0.0.0", "")
    if own and module.path.startswith("k8s.io/"):
        return staging_version(tag)
    return module.version


# Who supplies a module, from its path (NTIA minimum elements ask for a supplier). The
# known prefixes are their projects' own; any other is named by its host and owner.
_SUPPLIERS = (
    ("k8s.io/", "The Kubernetes Authors"),
    ("sigs.k8s.io/", "The Kubernetes Authors"),
    ("golang.org/x/", "The Go Authors"),
    ("google.golang.org/", "Google LLC"),
    ("go.etcd.io/", "The etcd Authors"),
    ("go.opentelemetry.io/", "The OpenTelemetry Authors"),
)


def supplier(path: str) -> str:
    """The SPDX supplier of module ``path``: ``Organization: NAME``."""
    for prefix, name in _SUPPLIERS:
        if path.startswith(prefix):
            return f"Organization: {name}"
    parts = path.split("/")
    owner = "/".join(parts[:2]) if len(parts) > 2 and "." in parts[0] else parts[0]
    return f"Organization: {_SUPPLIER_TEXT.sub('-', owner) or 'unknown'}"


_SUPPLIER_TEXT = re.compile(r"[^A-Za-z0-9._/~+-]")


def download_location(remote: str, tag: str) -> str:
    """SPDX's downloadLocation for the source: ``git+URL@tag`` for a remote others can reach
    (https, ssh, git), NOASSERTION for a path or file:// URL on this machine (which SPDX has
    no form for; sourceInfo names it)."""
    if re.match(r"(https|http|ssh|git)://", remote) or re.match(r"[\w.-]+@[\w.-]+:", remote):
        return f"git+{remote}@{tag}"
    return "NOASSERTION"


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
            "supplier": "Organization: The Kubernetes Authors, patched by longcert",
            "filesAnalyzed": False,
            "checksums": [{"algorithm": "SHA256", "checksumValue": sha256}],
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "Apache-2.0",
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "APPLICATION",
            "comment": f"kubeadm {tag} for {platform}, certificate validity patched by longcert",
        },
        {
            "SPDXID": "SPDXRef-Source",
            "name": MAIN_MODULE,
            "versionInfo": tag,
            "downloadLocation": download_location(remote, tag),
            "sourceInfo": f"git commit {commit} of {remote}",
            "supplier": "Organization: The Kubernetes Authors",
            "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "Apache-2.0",
            "copyrightText": "NOASSERTION",
            "externalRefs": [_purl(MAIN_MODULE, tag)],
        },
    ]
    relationships = [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
         "relatedSpdxElement": binary_id},
        {"spdxElementId": binary_id, "relationshipType": "GENERATED_FROM",
         "relatedSpdxElement": "SPDXRef-Source"},
        # the main module's code is in the binary: this ties it into the dependency tree
        {"spdxElementId": binary_id, "relationshipType": "CONTAINS",
         "relatedSpdxElement": "SPDXRef-Source"},
    ]
    if info.go_version:
        packages.append({
            "SPDXID": "SPDXRef-Go-stdlib",
            "name": "stdlib",
            "versionInfo": f"go{info.go_version}",
            "downloadLocation": "https://go.dev/dl/",
            "supplier": "Organization: The Go Authors",
            "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "BSD-3-Clause",
            "copyrightText": "NOASSERTION",
            "externalRefs": [_purl("stdlib", f"go{info.go_version}")],
        })
        relationships.append({"spdxElementId": binary_id, "relationshipType": "CONTAINS",
                              "relatedSpdxElement": "SPDXRef-Go-stdlib"})
    for number, dep in enumerate(sorted(set(info.deps), key=lambda m: (m.path, m.version))):
        dep_id = f"SPDXRef-Module-{number}"
        version = module_version(dep, tag)
        entry: dict[str, Any] = {
            "SPDXID": dep_id,
            "name": dep.path,
            "versionInfo": version,
            "downloadLocation": "NOASSERTION",
            "supplier": supplier(dep.path),
            "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "externalRefs": [_purl(dep.path, version)],
        }
        notes = [f"go.sum {dep.sum}"] if dep.sum else []
        if dep.local:
            notes.append(f"built from the tree's {dep.local} (recorded as {dep.version})")
        if notes:
            entry["comment"] = "; ".join(notes)
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
