"""The report people open, written beside the binaries of every build: ``report.html`` and
``REPORT.md`` (:func:`html_report`, :func:`markdown_report`), made from the
:class:`~longcert.verify.report.VerifyReport` of each platform.

Both start with the verdict, then give per platform and scenario a table of every certificate
and kubeconfig (validity in years and days, issuer, key type, ok or FAIL). report.html also
draws a validity timeline per scenario as inline SVG: each certificate a bar from NotBefore to
NotAfter (``<rect class="cert-bar" data-label=...>``, one per certificate), its CA's bar above
its leaves with the CA's span behind them, and a dashed line where the asked validity ends.

report.html is self-contained: inline CSS, no scripts, nothing fetched (a Content-Security-Policy
says so to the browser). Every text is escaped: a certificate's subject is whatever the binary
wrote. Pure: reports in, text out, the same text for the same reports.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from longcert import __version__
from longcert.verify.judge import DAYS_PER_YEAR, CertCheck
from longcert.verify.report import (
    VerifyReport,
    checks_phrase,
    count_checks,
    scenario_groups,
    verdict_lines,
    years_text,
)

HTML_FILE = "report.html"
MARKDOWN_FILE = "REPORT.md"
REPORT_FILES = (HTML_FILE, MARKDOWN_FILE)

TABLE_HEADER = (
    "file",
    "kind",
    "subject",
    "issuer",
    "not before",
    "not after",
    "years",
    "days",
    "expected",
    "key",
    "result",
)


def _clean(text: str) -> str:
    """One line of text: control characters (line breaks, escapes) become '?'."""
    return "".join(ch if ch.isprintable() else "?" for ch in str(text))


def _h(text: object) -> str:
    """Escaped for HTML text and attribute values (quotes too)."""
    return html.escape(_clean(str(text)), quote=True)


def _md(text: object) -> str:
    """Escaped for a Markdown table cell: no HTML (GitHub renders raw HTML in Markdown), no
    emphasis, links or code spans, no cell break."""
    escaped = _clean(str(text)).replace("\\", "\\\\")
    escaped = html.escape(escaped, quote=False)
    for ch in "|`*_[]#~!":
        escaped = escaped.replace(ch, "\\" + ch)
    return escaped


def _row(check: CertCheck) -> list[str]:
    """A table row, unescaped: the same cells in both files."""
    expected_years = check.expected_days / DAYS_PER_YEAR
    expected = f"{check.expected_days} ({expected_years:g}y)"
    return [
        check.file,
        "CA" if check.kind == "ca" else ("kubeconfig" if check.file.endswith(".conf") else "leaf"),
        check.subject,
        check.issuer,
        check.not_before,
        check.not_after,
        years_text(check.days),
        str(round(check.days)),
        expected,
        check.key_type or "?",
        "ok" if check.ok else "FAIL: " + "; ".join(check.problems),
    ]


def _platform_line(report: VerifyReport) -> str:
    how = report.executed_with or f"not executed here, header {report.header}"
    parts = [f"{report.platform}: {report.status} ({how})"]
    if report.reported_version:
        parts.append(f"kubeadm version {report.reported_version}")
    if report.config_api:
        parts.append(f"config API {report.config_api} ({report.config_api_source})")
    checks, scenarios = count_checks(report)
    parts.append(checks_phrase(checks, scenarios))
    return "; ".join(parts)


def _reports(reports: VerifyReport | Sequence[VerifyReport]) -> tuple[VerifyReport, ...]:
    return (reports,) if isinstance(reports, VerifyReport) else tuple(reports)


# --- REPORT.md ---------------------------------------------------------------------------------


def markdown_report(reports: VerifyReport | Sequence[VerifyReport]) -> str:
    """REPORT.md: the verdict first, then per platform and scenario the table."""
    reports = _reports(reports)
    verdict, counted = verdict_lines(reports)
    lines = [
        f"# {_md(verdict)}",
        "",
        f"{_md(counted)}.",
        "",
        f"Written by longcert {_md(__version__)}; `{HTML_FILE}` beside this file draws the "
        "validity timeline. Validity is in 365-day years, as kubeadm counts them.",
    ]
    for report in reports:
        lines += ["", f"## {_md(report.platform)}", "", _md(_platform_line(report)) + "."]
        if report.problems:
            lines.append("")
            lines += [f"- problem: {_md(problem)}" for problem in report.problems]
        for scenario, checks in scenario_groups(report):
            failed = sum(1 for c in checks if not c.ok)
            state = f"{failed} failed" if failed else "all as asked"
            lines += [
                "",
                f"### {_md(scenario)}: {len(checks)} checked, {state}",
                "",
                "| " + " | ".join(TABLE_HEADER) + " |",
                "|"
                + "|".join("---:" if h in ("years", "days") else "---" for h in TABLE_HEADER)
                + "|",
            ]
            lines += ["| " + " | ".join(_md(cell) for cell in _row(c)) + " |" for c in checks]
    lines += ["", f"**{_md(verdict)}**: {_md(counted)}."]
    return "\n".join(lines) + "\n"


# --- the validity timeline (SVG) ----------------------------------------------------------------


def _moment(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


# kubeadm's layout: which CA signs a leaf, by file (v1.9 calls every CA "kubernetes", so the
# issuer's name alone cannot tell).
def _ca_file_for(check: CertCheck) -> str:
    name = check.file.removeprefix("pki/")
    if name.startswith("etcd/") or name == "apiserver-etcd-client.crt":
        return "pki/etcd/ca.crt"
    if name.startswith("front-proxy"):
        return "pki/front-proxy-ca.crt"
    return "pki/ca.crt"


@dataclass(frozen=True)
class _Bar:
    check: CertCheck
    start: datetime
    end: datetime
    counted: bool = True  # False: a CA drawn for context (a renewal's CA, made in its scenario)


def _bar(check: CertCheck, counted: bool = True) -> _Bar | None:
    start, end = _moment(check.not_before), _moment(check.not_after)
    if start is None or end is None:
        return None
    return _Bar(check, start, end, counted)


def _ordered(
    checks: Sequence[CertCheck], context_cas: Sequence[CertCheck]
) -> list[tuple[_Bar | None, list[_Bar]]]:
    """(CA bar, its leaves' bars) in drawing order: each CA of the scenario (or, for a
    renewal, of the scenario that made it) with the leaves it signed; leaves whose CA is not
    there last, under None."""
    own = [c for c in checks if c.kind == "ca"]
    cas = own + [c for c in context_cas if c.file not in {o.file for o in own}]
    ca_bars = {ca.file: _bar(ca, counted=any(ca is o for o in own)) for ca in cas}
    groups: dict[str, list[_Bar]] = {file: [] for file in ca_bars}
    orphans: list[_Bar] = []
    for check in checks:
        if check.kind == "ca":
            continue
        leaf = _bar(check)
        if leaf is None:
            continue
        by_layout = _ca_file_for(check)
        by_name = next((c.file for c in cas if c.subject == check.issuer), "")
        signer = by_layout if by_layout in groups else by_name
        groups.get(signer, orphans).append(leaf)
    ordered: list[tuple[_Bar | None, list[_Bar]]] = []
    for file, leaves in groups.items():
        ca_bar = ca_bars[file]
        if ca_bar is None:
            orphans = leaves + orphans
        else:
            ordered.append((ca_bar, leaves))
    if orphans:
        ordered.append((None, orphans))
    return ordered


SVG_WIDTH = 1000
LABEL_WIDTH = 250
ROW = 20
AXIS = 28


def _year_step(span_years: float) -> int:
    for step in (1, 2, 5, 10, 20, 25, 50, 100):
        if span_years / step <= 10:
            return step
    return 100


def _bar_svg(
    item: _Bar, scenario: str, left: float, right: float, asked: float, y: int
) -> list[str]:
    """One certificate's row: its bar (``cert-bar``, or ``ca-context`` for a CA drawn only
    for context) with a tooltip, the dashed asked-validity line, its label."""
    check = item.check
    kind = "ca" if check.kind == "ca" else "leaf"
    title = (
        f"{check.label}: {check.not_before} to {check.not_after}, "
        f"{years_text(check.days)}y ({round(check.days)} days), asked "
        f"{check.expected_days} days: {'ok' if check.ok else 'FAIL'}"
    )
    box = f'x="{left:.1f}" y="{y + 4}" width="{max(right - left, 2.0):.1f}" height="{ROW - 8}"'
    if item.counted:
        rect = (
            f'<rect class="cert-bar {kind} {"ok" if check.ok else "fail"}" '
            f'data-label="{_h(check.label)}" data-scenario="{_h(scenario)}" {box}>'
            f"<title>{_h(title)}</title></rect>"
        )
    else:
        rect = (
            f'<rect class="ca-context" data-label="{_h(check.label)}" {box}>'
            f"<title>{_h(title)} (made in an earlier scenario)</title></rect>"
        )
    label = check.file if kind == "ca" else f"  {check.file}"
    shown = label if len(label) <= 38 else label[:35] + "..."
    return [
        rect,
        f'<line class="asked" x1="{asked:.1f}" x2="{asked:.1f}" y1="{y + 1}" y2="{y + ROW - 1}"/>',
        f'<text class="{kind}-label" x="4" y="{y + ROW - 6}" xml:space="preserve">{_h(shown)}'
        "</text>",
    ]


def timeline_svg(
    scenario: str, checks: Sequence[CertCheck], context_cas: Sequence[CertCheck] = ()
) -> str:
    """The scenario's validity timeline: one ``cert-bar`` per check (CAs and their leaves),
    the renewal's CAs from ``context_cas`` drawn as ``ca-context`` bars, the asked validity
    as a dashed ``asked`` line per bar, a year axis."""
    groups = _ordered(checks, context_cas)
    bars = [b for ca, leaves in groups for b in ([ca] if ca else []) + leaves]
    if not bars:
        return ""
    start = min(b.start for b in bars)
    asked_ends = [b.start + timedelta(days=b.check.expected_days) for b in bars]
    end = max([b.end for b in bars] + asked_ends)
    total = max((end - start).total_seconds(), 1.0)
    plot = SVG_WIDTH - LABEL_WIDTH - 10

    def x(moment: datetime) -> float:
        return LABEL_WIDTH + plot * (moment - start).total_seconds() / total

    out: list[str] = []
    y = AXIS
    for ca, leaves in groups:
        if ca is None:
            out.append(
                f'<text class="group" x="4" y="{y + ROW - 6}">signed by no CA checked here:</text>'
            )
            y += ROW
        elif leaves:  # the CA's span behind its leaves
            out.append(
                f'<rect class="ca-span" x="{x(ca.start):.1f}" y="{y + ROW}" '
                f'width="{max(x(ca.end) - x(ca.start), 1):.1f}" height="{ROW * len(leaves)}"/>'
            )
        for item in ([ca] if ca else []) + leaves:
            out += _bar_svg(
                item,
                scenario,
                x(item.start),
                x(item.end),
                x(item.start + timedelta(days=item.check.expected_days)),
                y,
            )
            y += ROW
    height = y + 6
    axis = []
    step = _year_step(total / 86400 / DAYS_PER_YEAR)
    year = start.year - start.year % step + step
    while True:
        tick = datetime(year, 1, 1, tzinfo=timezone.utc)
        if tick > end:
            break
        tx = x(tick)
        axis.append(
            f'<line class="tick" x1="{tx:.1f}" x2="{tx:.1f}" y1="{AXIS - 6}" '
            f'y2="{height}"/><text class="year" x="{tx:.1f}" y="{AXIS - 10}">'
            f"{year}</text>"
        )
        year += step
    label = f"validity timeline, {scenario}"
    return (
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="{_h(label)}" viewBox="0 0 {SVG_WIDTH} {height}" '
        f'width="{SVG_WIDTH}" height="{height}">'
        f"<title>{_h(label)}</title>" + "".join(axis) + "".join(out) + "</svg>"
    )


# --- report.html ---------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:1280px;padding:1.5em;color:#1b1f24;background:#fff}
h1{margin:.2em 0;font-size:1.7em}h2{margin-top:2em;border-bottom:1px solid #d0d7de}
h3{margin:1.6em 0 .4em}
.verdict{padding:1em 1.3em;border-radius:8px;border:2px solid}
.verdict.passed{background:#dafbe1;border-color:#1a7f37}
.verdict.failed{background:#ffebe9;border-color:#cf222e}
.verdict p{margin:.3em 0}
table{border-collapse:collapse;width:100%;font-size:12.5px;margin:.4em 0 1em}
th,td{border:1px solid #d0d7de;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.subject,td.issuer{word-break:break-all;max-width:22em}
tr.fail td{background:#ffebe9}td.result.ok{color:#1a7f37}td.result.fail{color:#cf222e}
.problems li{color:#cf222e}
svg.timeline{display:block;max-width:100%;height:auto;margin:.5em 0;font-size:11px;
font-family:ui-monospace,SFMono-Regular,Menlo,monospace}
.cert-bar.ca{fill:#0969da}.cert-bar.leaf{fill:#54aeff}.cert-bar.fail{fill:#cf222e}
.ca-context{fill:#8c959f}.ca-span{fill:#ddf4ff}
.asked{stroke:#1b1f24;stroke-width:1.5;stroke-dasharray:3 2}
.tick{stroke:#eaeef2}.year{fill:#57606a;text-anchor:middle}
.ca-label{fill:#0550ae;font-weight:bold}.leaf-label,.group{fill:#1b1f24}
.legend span{display:inline-block;margin-right:1.2em}
.swatch{display:inline-block;width:1.6em;height:.8em;margin-right:.3em;vertical-align:middle}
footer{margin-top:3em;color:#57606a;font-size:12px}
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _html_table(checks: Sequence[CertCheck]) -> str:
    head = "".join(f"<th>{_h(h)}</th>" for h in TABLE_HEADER)
    body = []
    numeric = {"years", "days", "expected"}
    for check in checks:
        cells = []
        for name, cell in zip(TABLE_HEADER, _row(check), strict=True):
            classes = []
            if name in numeric:
                classes.append("num")
            if name in ("subject", "issuer"):
                classes.append(name)
            if name == "result":
                classes += ["result", "ok" if check.ok else "fail"]
            attr = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{attr}>{_h(cell)}</td>")
        body.append(f'<tr class="{"ok" if check.ok else "fail"}">{"".join(cells)}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _context_cas(report: VerifyReport, scenario: str) -> tuple[CertCheck, ...]:
    """The CAs a renewal scenario ("init-renew") re-signed its leaves with: those its own
    scenario ("init") made; kubeadm's `certs renew all` leaves CAs as they are."""
    if not scenario.endswith("-renew"):
        return ()
    made_in = scenario.removesuffix("-renew")
    return tuple(c for c in report.checks if c.stage == made_in and c.kind == "ca")


def html_report(reports: VerifyReport | Sequence[VerifyReport]) -> str:
    """report.html: the verdict, then per platform and scenario the validity timeline and the
    table; self-contained and escaped."""
    reports = _reports(reports)
    verdict, counted = verdict_lines(reports)
    passed = bool(reports) and all(r.passed for r in reports)
    state = "passed" if passed else "failed"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_h(verdict)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f'<header class="verdict {state}"><h1>{_h(verdict)}</h1><p>{_h(counted)}</p>',
        "<p>Validity in 365-day years, as kubeadm counts them; the timeline draws each "
        "certificate from NotBefore to NotAfter, its CA above it, and a dashed line where the "
        "asked validity ends.</p></header>",
        '<p class="legend"><span><i class="swatch" style="background:#0969da"></i>CA</span>'
        '<span><i class="swatch" style="background:#54aeff"></i>leaf or kubeconfig</span>'
        '<span><i class="swatch" style="background:#cf222e"></i>FAIL</span>'
        '<span><i class="swatch" style="background:#8c959f"></i>CA made in an earlier '
        'scenario</span><span><svg width="24" height="10"><line class="asked" x1="12" '
        'x2="12" y1="0" y2="10"/></svg> asked validity</span></p>',
    ]
    for report in reports:
        parts.append(f"<section><h2>{_h(report.platform)}</h2><p>{_h(_platform_line(report))}</p>")
        if report.problems:
            items = "".join(f"<li>{_h(p)}</li>" for p in report.problems)
            parts.append(f'<ul class="problems">{items}</ul>')
        for scenario, checks in scenario_groups(report):
            failed = sum(1 for c in checks if not c.ok)
            status = f"{failed} failed" if failed else "all as asked"
            parts.append(f"<h3>{_h(scenario)}: {len(checks)} checked, {_h(status)}</h3>")
            parts.append(timeline_svg(scenario, checks, _context_cas(report, scenario)))
            parts.append(_html_table(checks))
        parts.append("</section>")
    parts.append(
        f'<footer><p class="verdict-last">{_h(verdict)}: {_h(counted)}.</p>'
        f"<p>Written by longcert {_h(__version__)}.</p></footer></body></html>"
    )
    return "\n".join(parts) + "\n"
