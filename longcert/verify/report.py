"""How the report is written: :class:`VerifyReport` (everything verification saw for one
platform's binary, and its JSON); how many certificates were checked, said one way everywhere
(:func:`count_checks`, :func:`checks_phrase`); the verdict (:func:`verdict_lines`); the grouped
summary ``verify`` prints, fitted to a width (:func:`summary_lines`); and the error that
summarises every failing file of every platform in one line, the files following
(:func:`require_pass`, :func:`failure_summary`). report.html and REPORT.md are
:mod:`longcert.verify.document`'s.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from longcert.errors import VerifyError
from longcert.verify.judge import DAYS_PER_YEAR, TOLERANCE_DAYS, CertCheck


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


def scenario_groups(report: VerifyReport) -> list[tuple[str, tuple[CertCheck, ...]]]:
    """The report's checks by scenario, in the order they ran: a check's ``stage`` is the
    scenario that made it ("init", "config-8760h-ecdsa") or renewed it ("init-renew")."""
    groups: dict[str, list[CertCheck]] = {}
    for check in report.checks:
        groups.setdefault(check.stage, []).append(check)
    return [(name, tuple(checks)) for name, checks in groups.items()]


def count_checks(reports: VerifyReport | Sequence[VerifyReport]) -> tuple[int, int]:
    """(certificates and kubeconfigs checked, scenarios they were checked in), over every
    platform: the one count the build's lines, manifest.json, the release notes, REPORT.md and
    report.html all give."""
    reports = (reports,) if isinstance(reports, VerifyReport) else tuple(reports)
    return (
        sum(len(r.checks) for r in reports),
        sum(len(scenario_groups(r)) for r in reports),
    )


def checks_phrase(checks: int, scenarios: int) -> str:
    """The count said in words: "52 certificates and kubeconfigs in 4 scenarios"."""
    what = "certificate or kubeconfig" if checks == 1 else "certificates and kubeconfigs"
    return f"{checks} {what} in {scenarios} scenario{'' if scenarios == 1 else 's'}"


def years_text(days: float) -> str:
    """Validity in 365-day years, one decimal ("10.0")."""
    return f"{days / DAYS_PER_YEAR:.1f}"


def verdict_lines(reports: VerifyReport | Sequence[VerifyReport]) -> list[str]:
    """Two short lines, first and last wherever a verdict is shown: passed or FAILED with the
    tag, the asked validities and the platforms; then what was checked."""
    reports = (reports,) if isinstance(reports, VerifyReport) else tuple(reports)
    passed = bool(reports) and all(r.passed for r in reports)
    tag = next((r.tag for r in reports if r.tag), "kubeadm (unknown version)")
    first = reports[0] if reports else None
    leaf = f"{first.leaf_years}y" if first else "?"
    ca = f"{first.ca_years}y" if first else "?"
    platforms = ", ".join(f"{r.platform} {r.status}" for r in reports)
    checks, scenarios = count_checks(reports)
    failed = sum(1 for r in reports for c in r.checks if not c.ok)
    other = sum(len(r.problems) for r in reports)
    second = checks_phrase(checks, scenarios)
    if passed:
        second += ", all as asked"
    else:
        second += f": {failed} failed" + (f", {other} other problem(s)" if other else "")
    return [
        f"{'passed' if passed else 'FAILED'}: {tag}, leaf {leaf}, CA {ca}; {platforms}",
        second,
    ]


# --- the summary `invoke verify` prints -----------------------------------------------------

SUMMARY_HEADER = ("file", "years", "days", "expected", "result", "issuer")
_ELLIPSIS = "..."


def printable(text: str) -> str:
    """``text`` safe for a terminal: a certificate's subject is the binary's (any bytes), so
    control characters (escape sequences) become '?'."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, "..." marking the cut."""
    if len(text) <= width:
        return text
    if width <= len(_ELLIPSIS):
        return text[: max(width, 0)]
    return text[: width - len(_ELLIPSIS)] + _ELLIPSIS


def _summary_row(check: CertCheck) -> list[str]:
    return [
        check.file,
        years_text(check.days),
        str(round(check.days)),
        str(check.expected_days),
        "ok" if check.ok else "FAIL",
        check.issuer,
    ]


def _table(rows: list[list[str]], width: int, indent: str = "    ") -> list[str]:
    """Rows as aligned columns, no line longer than ``width``: the last column (the issuer)
    takes what is left and is cut, then the first (the file) when even that is not enough."""
    cells = [[printable(cell) for cell in row] for row in [list(SUMMARY_HEADER), *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(SUMMARY_HEADER))]
    gap = 2
    # Numbers right-aligned; text left.
    right = {1, 2, 3}
    fixed = len(indent) + sum(widths[1:-1]) + gap * (len(widths) - 1)
    room = width - fixed - widths[0]
    widths[-1] = max(0, min(widths[-1], room))
    if room < 0:  # too narrow for the whole file column: cut it too
        widths[0] = max(4, widths[0] + room)
    lines = []
    for row in cells:
        parts = []
        for index, (cell, size) in enumerate(zip(row, widths, strict=True)):
            cell = fit(cell, size)
            parts.append(cell.rjust(size) if index in right else cell.ljust(size))
        lines.append(fit((indent + (" " * gap).join(parts)).rstrip(), width))
    return lines


def summary_lines(
    reports: VerifyReport | Sequence[VerifyReport], width: int, title: str = ""
) -> list[str]:
    """What `invoke verify` prints, no line longer than ``width``: the verdict, then per
    platform and scenario a compact table (file, years, days, expected, ok/FAIL, issuer; the
    issuer cut to fit, never wrapped) with the platform's other problems, then the verdict
    again. ``title`` (what was checked) comes after the first verdict."""
    reports = (reports,) if isinstance(reports, VerifyReport) else tuple(reports)
    width = max(width, 40)
    verdict = [fit(printable(line), width) for line in verdict_lines(reports)]
    lines = list(verdict)
    if title:
        lines.append(fit(printable(title), width))
    for report in reports:
        how = report.executed_with or f"not executed, header {report.header}"
        lines.append("")
        lines.append(
            fit(
                printable(
                    f"{report.platform}: {report.status} ({how}), kubeadm "
                    f"{report.reported_version or '?'}"
                ),
                width,
            )
        )
        for problem in report.problems:
            lines.append(fit(printable(f"  problem: {problem}"), width))
        for scenario, checks in scenario_groups(report):
            bad = sum(1 for c in checks if not c.ok)
            state = f"{bad} FAILED" if bad else "all ok"
            lines.append(fit(printable(f"  {scenario}: {len(checks)} checked, {state}"), width))
            lines += _table([_summary_row(c) for c in checks], width)
    lines.append("")
    lines += verdict
    return lines


def report_rows(report: VerifyReport) -> list[list[str]]:
    """The full table, one row per certificate (file with its scenario, subject, issuer,
    dates, days, expected days, result), for a wide screen or a file."""
    return [
        [
            check.label,
            check.subject,
            check.issuer,
            check.not_before,
            check.not_after,
            str(round(check.days)),
            str(check.expected_days),
            "ok" if check.ok else "FAIL: " + "; ".join(check.problems),
        ]
        for check in report.checks
    ]


# --- failing ---------------------------------------------------------------------------------

MAX_DETAILS = 20  # failing files listed after the summary line; the rest are counted


def _kind_words(kind: str, count: int) -> str:
    if kind == "ca":
        return "CA" if count == 1 else "CAs"
    return "leaf certificate" if count == 1 else "leaf certificates"


def _whole_years(days: float) -> int | None:
    years = round(days / DAYS_PER_YEAR)
    return years if years and abs(days - years * DAYS_PER_YEAR) <= TOLERANCE_DAYS else None


def _only_validity_wrong(check: CertCheck) -> bool:
    """Fails on its validity alone (not its kind, signer or chain)."""
    return (
        len(check.problems) == 1
        and abs(check.days - check.expected_days) > TOLERANCE_DAYS
        and check.problems[0].startswith("valid ")
    )


def _uniform_validity(reports: Sequence[VerifyReport]) -> str:
    """One sentence when every failure is the same wrong validity per kind, for every
    certificate of that kind asked to have it ("all 26 leaf certificates are 10y; asked 100y:
    this binary was built with --years 10"); "" when the failures differ."""
    if any(r.problems for r in reports):
        return ""
    checks = [c for r in reports for c in r.checks]
    failing = [c for c in checks if not c.ok]
    if not failing or not all(_only_validity_wrong(c) for c in failing):
        return ""
    parts: list[tuple[str, int, float, int]] = []  # kind, count, days, asked days
    for kind in ("leaf", "ca"):
        wrong = [c for c in failing if c.kind == kind]
        if not wrong:
            continue
        asked = {c.expected_days for c in wrong}
        if len(asked) != 1:
            return ""
        asked_days = asked.pop()
        every = [c for c in checks if c.kind == kind and c.expected_days == asked_days]
        lengths = [c.days for c in wrong]
        if len(wrong) != len(every) or max(lengths) - min(lengths) > 2 * TOLERANCE_DAYS:
            return ""
        parts.append((kind, len(wrong), sum(lengths) / len(lengths), asked_days))
    said = []
    built = []
    for kind, count, days, asked_days in parts:
        years = _whole_years(days)
        made = f"{years}y" if years else f"{days:.0f} days"
        asked_years = _whole_years(asked_days)
        asked_text = f"{asked_years}y" if asked_years else f"{asked_days} days"
        said.append((f"all {count} {_kind_words(kind, count)} are {made}", asked_text))
        if years:
            built.append(f"--{'years' if kind == 'leaf' else 'ca-years'} {years}")
    if len(said) == 1:
        text = f"{said[0][0]}; asked {said[0][1]}"
    else:
        text = " and ".join(f"{made} (asked {asked})" for made, asked in said)
    if len(built) == len(said):
        text += f": this binary was built with {' '.join(built)}"
        if parts[0][0] == "leaf" and built[0] == "--years 1":
            text += " (or is unpatched: upstream kubeadm makes 1y leaf certificates)"
    return text


def failure_summary(reports: Sequence[VerifyReport]) -> str:
    """The one line a failed verification starts with."""
    tag = next((r.tag for r in reports if r.tag), "kubeadm")
    uniform = _uniform_validity(reports)
    if uniform:
        return f"verification of {tag} failed: {uniform}"
    checks, _ = count_checks(reports)
    failed = sum(1 for r in reports for c in r.checks if not c.ok)
    other = sum(len(r.problems) for r in reports)
    first = next(f"{r.platform}: {line}" for r in reports for line in r.failures())
    counts = []
    if failed:
        counts.append(f"{failed} of {checks} certificates and kubeconfigs failed")
    if other:
        counts.append(f"{other} other problem{'' if other == 1 else 's'}")
    return f"verification of {tag} failed: {' and '.join(counts)}; first: {first}"


def require_pass(reports: VerifyReport | tuple[VerifyReport, ...]) -> None:
    """VerifyError unless all passed: one summarising line (:func:`failure_summary`), then
    every failing file of every platform as the error's details (the first
    :data:`MAX_DETAILS`, the rest counted)."""
    reports = reports if isinstance(reports, tuple) else (reports,)
    failures = [f"{r.platform}: {line}" for r in reports for line in r.failures()]
    if failures:
        details = failures[:MAX_DETAILS]
        if len(failures) > MAX_DETAILS:
            details.append(
                f"... and {len(failures) - MAX_DETAILS} more (every one is in the "
                "report: --json, or verify.json and REPORT.md of a build)"
            )
        raise VerifyError(failure_summary(reports), details=details)
    if not any(r.executed for r in reports):
        raise VerifyError(
            "no binary could be executed here, so nothing is verified", "build linux/amd64 too"
        )
