"""How the report is written: :class:`VerifyReport` (everything verification saw for one
platform's binary, and its JSON), the table ``verify`` prints (:func:`report_rows`) and the
error that lists every failing file of every platform (:func:`require_pass`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from longcert.errors import VerifyError
from longcert.verify.judge import CertCheck


@dataclass(frozen=True)
class VerifyReport:
    """Everything verification saw for one platform's binary.

    ``status`` is "verified" only for a binary that was executed and whose every check held;
    a binary that cannot run here (darwin, windows) is "not-executed" after its header check,
    never "verified".
    """

    tag: str
    platform: str
    reported_version: str
    leaf_years: int
    ca_years: int
    checks: tuple[CertCheck, ...]
    problems: tuple[str, ...] = field(default=())
    executed_with: str = "native"  # "native", a qemu binary, or "" when not executed
    header: str = ""  # what the executable header says, e.g. "ELF x86-64"
    config_api: str = ""  # the kubeadm config API the checks used
    config_api_source: str = ""  # "config print init-defaults" or "table (before v1.13)"

    @property
    def executed(self) -> bool:
        return bool(self.executed_with)

    @property
    def passed(self) -> bool:
        return not self.problems and all(c.ok for c in self.checks)

    @property
    def status(self) -> str:
        if not self.passed:
            return "failed"
        return "verified" if self.executed else "not-executed"

    def failures(self) -> list[str]:
        """One line per failing file or check."""
        lines = list(self.problems)
        lines += [f"{c.label}: {'; '.join(c.problems)}" for c in self.checks if not c.ok]
        return lines

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["passed"] = self.passed
        data["status"] = self.status
        for check, raw in zip(self.checks, data["checks"], strict=True):
            raw["ok"] = check.ok
            raw["serial"] = format(check.serial, "x")
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"


def report_rows(report: VerifyReport) -> list[list[str]]:
    """The table `invoke verify` prints: one row per certificate."""
    return [
        [
            check.label,
            check.subject,
            check.issuer,
            check.not_before,
            check.not_after,
            f"{check.days:.1f}",
            str(check.expected_days),
            "ok" if check.ok else "FAIL: " + "; ".join(check.problems),
        ]
        for check in report.checks
    ]


def require_pass(reports: VerifyReport | tuple[VerifyReport, ...]) -> None:
    """VerifyError listing every failing file of every platform, unless all passed."""
    reports = reports if isinstance(reports, tuple) else (reports,)
    failures = [f"{r.platform}: {line}" for r in reports for line in r.failures()]
    if failures:
        tag = next((r.tag for r in reports if r.tag), "kubeadm")
        raise VerifyError(
            f"verification of {tag} failed for {len(failures)} item(s):\n  " + "\n  ".join(failures)
        )
    if not any(r.executed for r in reports):
        raise VerifyError(
            "no binary could be executed here, so nothing is verified", "build linux/amd64 too"
        )
