"""The SBOM validators a security review runs, as the tests' one check: the SPDX tools' own
parser and validator (``pyspdxtools``) and the NTIA minimum elements checker."""

from __future__ import annotations

import json
from pathlib import Path

from ntia_conformance_checker.ntia_checker import NTIAChecker
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document


def sbom_problems(path: Path) -> list[str]:
    """Everything either validator finds wrong with the SPDX JSON at ``path``, and any purl a
    scanner could not match (a tree directory or ``(devel)`` instead of a module version)."""
    problems = [m.validation_message for m in validate_full_spdx_document(parse_file(str(path)))]
    checker = NTIAChecker(str(path), validate=True)
    if not checker.compliant:
        problems.append(f"not NTIA conformant: {checker.get_components_without_suppliers()} "
                        "lack a supplier" if checker.get_components_without_suppliers()
                        else "not NTIA conformant")
    for package in json.loads(path.read_text())["packages"]:
        for ref in package.get("externalRefs", []):
            locator = ref["referenceLocator"]
            if "(devel)" in locator or "/./" in locator or "@v0.0.0" in locator:
                problems.append(f"{package['name']}: purl {locator} names no release")
    return problems
