"""The ``verify`` command: check one kubeadm binary, print the grouped summary fitted to the
terminal (:func:`show_summary`), write the JSON, fail closed (:func:`check_file`); needs the
engine.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from longcert.errors import ConfigError, VerifyError
from longcert.progress import Reporter
from longcert.verify.document import markdown_report
from longcert.verify.header import file_platform
from longcert.verify.report import VerifyReport, require_pass, summary_lines
from longcert.verify.run import resolve_run_image, verify_binary
from longcert.versions import KubeVersion


def terminal_width() -> int:
    """The terminal's width (``COLUMNS``, else the terminal, else 80)."""
    return shutil.get_terminal_size((80, 24)).columns


def show_summary(
    reports: VerifyReport | Sequence[VerifyReport],
    title: str,
    *,
    width: int | None = None,
    reporter: Reporter | None = None,
) -> None:
    """Print :func:`~longcert.verify.report.summary_lines` (the verdict first and last, a
    table per platform and scenario) cut to ``width`` (default: the terminal's); on GitHub
    Actions also REPORT.md's text into the step summary."""
    reports = (reports,) if isinstance(reports, VerifyReport) else tuple(reports)
    reporter = reporter or Reporter()
    lines = summary_lines(reports, width or terminal_width(), title)
    passed = all(r.passed for r in reports)
    verdict_style = "bold green" if passed else "bold red"
    for index, line in enumerate(lines):
        verdict = index == 0 or index == len(lines) - 2
        reporter.say(line, style=verdict_style if verdict else None)
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if reporter.github and path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(markdown_report(reports) + "\n")


def check_file(
    binary: str | None,
    version: str | None,
    leaf_years: int,
    ca_years: int,
    *,
    image: str | None = None,
    json_path: str | None = None,
    pinned: bool = False,
) -> VerifyReport:
    """`invoke verify`: check one binary, print the summary, write JSON, raise on failure
    (one summarising line, the failing files after it)."""
    if not binary:
        raise ConfigError("--binary is required", "the path of the kubeadm binary to check")
    if not Path(binary).is_file():
        raise ConfigError(f"--binary {binary!r} is not a file")
    kube_version = KubeVersion.parse(version) if version else None
    platform, header = file_platform(Path(binary))
    if not platform:  # said before any engine or image is needed
        raise VerifyError(f"{binary} is not a kubeadm executable: {header}")
    report = verify_binary(
        Path(binary),
        kube_version,
        leaf_years,
        ca_years,
        # darwin and windows binaries get a header check only: no image to run them in
        image=resolve_run_image(image) if platform.startswith("linux/") else "",
        pinned=pinned,
    )
    conclude(report, f"checked {binary}", json_path)
    return report


def conclude(report: VerifyReport, title: str, json_path: str | None) -> None:
    """How every ``verify`` ends: the summary, the JSON when asked, then fail closed."""
    show_summary(report, title)
    if json_path:
        Path(json_path).write_text(report.to_json())
    require_pass(report)
