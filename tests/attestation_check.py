"""The in-toto Statement and SLSA v1 provenance schemas, checked with the in-toto project's
own library (``in-toto-attestation`` on PyPI: the protobuf definitions the specifications are
written in, and their validators), not with longcert's code."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"


def statement_problems(document: Any) -> list[str]:
    """What is wrong with ``document`` as an in-toto v1 Statement (and, when it says it is
    one, its SLSA v1 provenance predicate): unknown or mistyped fields, missing required ones,
    resource descriptors without a name, URI or digest. [] when it conforms."""
    try:
        parsed = statement_pb2.Statement()
        json_format.ParseDict(document, parsed)  # unknown fields and wrong types raise
        Statement.copy_from_pb(parsed).validate()
        if document.get("predicateType") != SLSA_PROVENANCE_V1:
            return []
        predicate = provenance_pb2.Provenance()
        json_format.ParseDict(document["predicate"], predicate)
        definition, details = predicate.build_definition, predicate.run_details
        if not definition.build_type:
            return ["buildDefinition.buildType is required"]
        if not details.builder.id:
            return ["runDetails.builder.id is required"]
        for dependency in definition.resolved_dependencies:
            ResourceDescriptor.copy_from_pb(dependency).validate()
    except (json_format.ParseError, ValueError, KeyError, TypeError) as exc:
        return [str(exc)]
    return []
