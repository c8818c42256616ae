"""How the report is written: :class:`RenewReport` (what a dry run found), the table
renew-check prints (:func:`report_rows`, :data:`HEADER`) and the JSON it writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from longcert import verify
from longcert.renewcheck.certs import Seen
from longcert.renewcheck.verdict import Row


@dataclass(frozen=True)
class RenewReport:
    """What a dry run found."""

    etc: str
    binary_version: str
    pki_version: str
    pki_version_from: str
    leaf_years: int
    commands: tuple[str, ...]
    rows: tuple[Row, ...]
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return not self.problems and all(r.ok for r in self.rows)

    def failures(self) -> list[str]:
        return list(self.problems) + [f"{r.file}: {'; '.join(r.problems)}"
                                      for r in self.rows if not r.ok]


def report_rows(report: RenewReport, now: datetime) -> list[list[str]]:
    """The table renew-check prints: one row per certificate and kubeconfig."""
    rows = []
    for row in report.rows:
        old, new = row.before, row.after
        seen = new or old
        assert seen is not None
        key = ("-" if old is None or new is None or not row.renewed
               else "reused" if old.public_key == new.public_key else "new")
        result = ("ok" if row.ok else "FAIL: " + "; ".join(row.problems))
        if row.notes:
            result += " (" + "; ".join(row.notes) + ")"
        rows.append([
            row.file, seen.subject, seen.issuer,
            verify._iso(old.not_after) if old else "-",
            f"{old.days_left(now):.0f}" if old else "-",
            verify._iso(new.not_after) if new else "-",
            f"{new.days_left(now):.0f}" if new else "-",
            (new.signer or "NONE") if new else "-",
            key, result,
        ])
    return rows


HEADER = ["file", "subject", "issuer", "expires before", "days", "expires after", "days",
          "signed by", "key", "result"]


def report_dict(report: RenewReport) -> dict[str, Any]:
    """The report as the JSON renew-check writes: every file before and after."""

    def seen(item: Seen | None) -> dict[str, Any] | None:
        if item is None:
            return None
        return {"subject": item.subject, "issuer": item.issuer,
                "not_after": verify._iso(item.not_after), "serial": format(item.serial, "x"),
                "public_key_sha256": item.public_key, "sans": list(item.sans),
                "signer": item.signer, "server": item.server}

    return {
        "etc": report.etc, "binary_version": report.binary_version,
        "pki_version": report.pki_version, "pki_version_from": report.pki_version_from,
        "leaf_years": report.leaf_years, "commands": list(report.commands),
        "passed": report.passed, "problems": list(report.problems), "notes": list(report.notes),
        "files": [{"file": r.file, "renewed": r.renewed, "ok": r.ok,
                   "problems": list(r.problems), "notes": list(r.notes),
                   "before": seen(r.before), "after": seen(r.after)} for r in report.rows],
    }
