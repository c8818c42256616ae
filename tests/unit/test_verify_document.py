"""The report people open (report.html, REPORT.md), the summary `verify` prints and its one-line
failure, from reports made of real certificates; publishing carries the reports."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest
from cryptography import x509

from longcert import publish, verify
from longcert.errors import PublishError, VerifyError
from longcert.package import EVIDENCE_FILES, REPORT_FILES
from longcert.publish.directory import DirectoryTarget
from longcert.verify import document
from tests.standin_build import make_build
from tests.unit.test_verify import V128, make_cert, pem, write_pki

HOSTILE = '<script>alert("x")</script>'
HOSTILE_FILE = "pki/<img src=x onerror=alert(1)>.crt"


def scenario_checks(
    root: Path, stage: str, leaf_days: int, ca_days: int, years: int, ca_years: int,
    *, leaves_only: bool = False,
) -> list[verify.CertCheck]:
    write_pki(root, V128, leaf_days, ca_days)
    checks, problems = verify.check_directory(root, V128, years, ca_years)
    assert problems == []
    return [replace(c, stage=stage) for c in checks if not (leaves_only and c.kind == "ca")]


def make_report(tmp_path: Path, *, leaf_days: int = 3650, ca_days: int = 3650, years: int = 10,
                ca_years: int = 10, hostile: bool = False) -> verify.VerifyReport:
    """Three scenarios as a v1.28 build's verification has them (init, its renewal, a config
    storing upstream's periods that the build honours), each from real certificates."""
    checks = scenario_checks(tmp_path / "init", "init", leaf_days, ca_days, years, ca_years)
    checks += scenario_checks(tmp_path / "renew", "init-renew", leaf_days, ca_days, years,
                              ca_years, leaves_only=True)
    checks += scenario_checks(tmp_path / "config", "config-8760h-ecdsa", 365, 3650, 1, 10)
    if hostile:
        ca_cert = verify.load_certificate((tmp_path / "init/pki/ca.crt").read_bytes())
        # the CA's key is not kept by write_pki: a self-made issuer named like it will do
        evil, _ = make_cert(HOSTILE, leaf_days, None, False)
        check = verify.check_cert(HOSTILE_FILE, evil, "leaf", years, ca_years,
                                  {"ca": ca_cert})
        checks.append(check)
    return verify.VerifyReport("v1.28.7", "linux/amd64", "v1.28.7", years, ca_years,
                               tuple(checks), executed_with="native", header="ELF amd64",
                               config_api="kubeadm.k8s.io/v1beta3",
                               config_api_source="config print init-defaults")


class Page(HTMLParser):
    """What a browser would see of report.html."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: Counter[str] = Counter()
        self.bars: list[dict[str, str | None]] = []
        self.urls: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        values = dict(attrs)
        if tag == "rect" and "cert-bar" in (values.get("class") or "").split():
            self.bars.append(values)
        for name in ("src", "href", "xlink:href", "action", "poster", "data"):
            if values.get(name):
                self.urls.append(str(values[name]))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


def test_report_html_has_every_certificate_and_one_bar_each(tmp_path: Path) -> None:
    report = make_report(tmp_path)
    text = document.html_report(report)
    page = parse(text)
    assert page.tags["svg"] == 1 + 3  # the legend's line, and one timeline per scenario
    assert len(page.bars) == len(report.checks) == 14 + 11 + 14
    assert Counter(b["data-label"] for b in page.bars) == Counter(c.label for c in report.checks)
    for check in report.checks:  # each in its table too
        assert check.file in page.text
    # self-contained: no script, no stylesheet or image fetched, a CSP that forbids them
    assert page.tags["script"] == 0 and page.tags["link"] == 0 and page.tags["img"] == 0
    assert page.urls == []
    assert "default-src 'none'" in text and "http://" not in text.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    # the verdict first, then the counts: the same words the build and the notes use
    first = "".join(page.text).split("passed: v1.28.7", 1)
    assert len(first) == 2 and "39 certificates and kubeconfigs in 3 scenarios" in first[1]
    # the renewal's CAs are drawn for context, not counted as its certificates
    assert text.count('class="ca-context"') == 3
    # the asked validity: a dashed line per bar, the years and days as whole numbers
    assert text.count('class="asked"') == len(report.checks) + 3 + 1
    assert ">3650<" in text and "3650.0" not in text and ">10.0<" in text


def test_report_escapes_hostile_subjects_and_file_names(tmp_path: Path) -> None:
    report = make_report(tmp_path, hostile=True)
    (evil,) = [c for c in report.checks if c.file == HOSTILE_FILE]
    assert "<script>" in evil.subject.replace("\\", "")  # RFC 4514 escapes < and > with \\
    text = document.html_report(report)
    page = parse(text)
    assert page.tags["script"] == 0 and page.tags["img"] == 0
    assert "<script>" not in text and "<img" not in text
    assert evil.subject in page.text  # shown, as text
    assert HOSTILE_FILE in [b["data-label"] for b in page.bars]
    markdown = document.markdown_report(report)
    assert "<script>" not in markdown and "<img" not in markdown
    assert "&lt;script" in markdown
    # a hostile row cannot break its Markdown table
    rows = [line for line in markdown.splitlines() if "alert" in line]
    assert rows and all(line.count(" | ") == len(document.TABLE_HEADER) - 1 for line in rows)


def test_report_md_gives_the_verdict_first_and_every_table(tmp_path: Path) -> None:
    report = make_report(tmp_path)
    markdown = document.markdown_report(report)
    lines = markdown.splitlines()
    assert lines[0] == "# passed: v1.28.7, leaf 10y, CA 10y; linux/amd64 verified"
    assert lines[2] == "39 certificates and kubeconfigs in 3 scenarios, all as asked."
    for scenario in ("init", "init-renew", "config-8760h-ecdsa"):
        assert any(line.startswith(f"### {scenario}: ") for line in lines)
    assert "| pki/apiserver.crt | leaf | CN=apiserver | CN=ca |" in markdown
    assert "| 10.0 | 3650 | 3650 (10y) | ECDSA-P256 | ok |" in markdown
    assert "| 1.0 | 365 | 365 (1y) | ECDSA-P256 | ok |" in markdown
    assert lines[-1].startswith("**passed: v1.28.7")


def test_all_leaves_10y_asked_100y_says_so_in_one_line(tmp_path: Path) -> None:
    report = make_report(tmp_path, leaf_days=3650, ca_days=36500, years=100, ca_years=100)
    with pytest.raises(VerifyError) as caught:
        verify.require_pass(report)
    err = caught.value
    assert err.message == (
        "verification of v1.28.7 failed: all 22 leaf certificates are 10y; asked 100y: this "
        "binary was built with --years 10")
    assert str(err).splitlines()[0] == err.message
    assert len(err.details) == verify.report.MAX_DETAILS + 1
    assert err.details[0].startswith(
        "linux/amd64: pki/apiserver-etcd-client.crt: valid 3650.0 days")
    assert err.details[-1].startswith("... and 2 more")
    markdown = document.markdown_report(report)
    assert markdown.startswith("# FAILED: v1.28.7, leaf 100y, CA 100y; linux/amd64 failed\n")
    assert "39 certificates and kubeconfigs in 3 scenarios: 22 failed." in markdown
    assert 'class="verdict failed"' in document.html_report(report)


def test_mixed_failures_name_the_count_and_the_first(tmp_path: Path) -> None:
    report = make_report(tmp_path)
    broken = [replace(c, problems=("is a leaf certificate, expected a ca",))
              if c.file == "pki/etcd/ca.crt" and c.stage == "init" else c for c in report.checks]
    report = replace(report, checks=tuple(broken), problems=("pki/foo.crt: missing",))
    with pytest.raises(VerifyError) as caught:
        verify.require_pass(report)
    assert caught.value.message == (
        "verification of v1.28.7 failed: 1 of 39 certificates and kubeconfigs failed and 1 "
        "other problem; first: linux/amd64: pki/foo.crt: missing")
    assert caught.value.details == ("linux/amd64: pki/foo.crt: missing",
                                    "linux/amd64: pki/etcd/ca.crt: is a leaf certificate, "
                                    "expected a ca")


@pytest.mark.parametrize("width", [80, 120])
def test_verify_summary_fits_the_width(tmp_path: Path, width: int) -> None:
    report = make_report(tmp_path, leaf_days=3650, ca_days=36500, years=100, ca_years=100,
                         hostile=True)
    lines = verify.summary_lines(report, width, f"checked {tmp_path / ('x' * 200)}")
    assert all(len(line) <= width for line in lines), max(lines, key=len)
    assert lines[0].startswith("FAILED: v1.28.7") and lines[-2] == lines[0]
    assert lines[1] == lines[-1] == "40 certificates and kubeconfigs in 3 scenarios: 23 failed"
    for scenario in ("init", "init-renew", "config-8760h-ecdsa"):
        assert any(line.startswith(f"  {scenario}: ") for line in lines)
    rows = [line.split() for line in lines if line.startswith("    pki/apiserver.crt ")]
    assert rows[0][1:5] == ["10.0", "3650", "36500", "FAIL"]
    assert not any("\x1b" in line or "3650.0" in line for line in lines)


def test_verify_summary_is_printed_within_the_terminal(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    verify.show_summary(make_report(tmp_path), "checked ./kubeadm")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "passed: v1.28.7, leaf 10y, CA 10y; linux/amd64 verified"
    assert out[-2] == out[0] and all(len(line) <= 80 for line in out)


def test_verify_summary_goes_to_the_github_step_summary(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    verify.show_summary(make_report(tmp_path), "checked ./kubeadm")
    assert summary.read_text().startswith("# passed: v1.28.7")


def test_an_old_report_without_key_types_still_renders(tmp_path: Path) -> None:
    report = make_report(tmp_path)
    old = replace(report, checks=tuple(replace(c, key_type="") for c in report.checks))
    assert "| ? | ok |" in document.markdown_report(old)
    assert len(parse(document.html_report(old)).bars) == len(report.checks)


def test_a_timeline_of_a_leaf_whose_ca_is_not_there(tmp_path: Path) -> None:
    ca, key = make_cert("elsewhere", 3650, None, True)
    leaf, _ = make_cert("orphan", 365, (ca, key), False)
    check = verify.check_cert("pki/orphan.crt", leaf, "leaf", 1, 10, {"x": ca})
    svg = document.timeline_svg("init", [check])
    assert svg.count('class="cert-bar') == 1 and "signed by no CA checked here" in svg
    assert isinstance(x509.load_pem_x509_certificate(pem(leaf)), x509.Certificate)


def test_report_opens_in_headless_chromium(tmp_path: Path) -> None:
    """report.html as a browser draws it: a screenshot, kept in $CI_ARTIFACTS_DIR."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no chromium binary (apt-get install chromium)")
    out = Path(os.environ.get("CI_ARTIFACTS_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    page = out / "report.html"
    report = make_report(tmp_path / "pki", leaf_days=3650, ca_days=36500, years=100,
                         ca_years=100, hostile=True)
    page.write_text(document.html_report(report), encoding="utf-8")
    shot = out / "report.png"
    shot.unlink(missing_ok=True)
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         "--window-size=1200,900", page.resolve().as_uri()],
        check=True, capture_output=True, timeout=180,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


# --- the build directory and publishing ------------------------------------------------------


def test_reports_are_evidence_of_the_build() -> None:
    assert set(REPORT_FILES) <= set(EVIDENCE_FILES)


def test_publish_carries_the_reports_and_still_takes_older_builds(tmp_path: Path) -> None:
    new = publish.load_build(make_build(tmp_path / "new", with_reports=True))
    names = [f.name for f in new.files]
    assert names.index("report.html") < names.index("SHA256SUMS") and names[-1] == "manifest.json"
    assert {"report.html", "REPORT.md"} <= set(names)
    old = publish.load_build(make_build(tmp_path / "old"))
    assert "report.html" not in {f.name for f in old.files}
    share = tmp_path / "share"
    DirectoryTarget(share).push(new)
    published = share / new.build_id
    assert (published / "report.html").read_bytes() == (new.path / "report.html").read_bytes()
    assert (published / "REPORT.md").is_file()


def test_a_changed_report_is_refused(tmp_path: Path) -> None:
    out = make_build(tmp_path / "builds", with_reports=True)
    (out / "report.html").write_text("<p>changed</p>\n")
    with pytest.raises(PublishError, match=r"report\.html changed after the build"):
        publish.load_build(out)


def test_release_notes_count_and_install(tmp_path: Path) -> None:
    build = publish.load_build(make_build(tmp_path / "builds", with_reports=True))
    notes = publish.release_notes(build, "acme/kubeadm")
    assert "linux/amd64 verified (52 certificates and kubeconfigs in 4 scenarios)" in notes
    assert "| `report.html` | - |" in notes and "| `REPORT.md` | - |" in notes
    base = f"https://github.com/acme/kubeadm/releases/download/{build.build_id}"
    lines = notes.splitlines()
    for line in (f"curl -fLO {base}/kubeadm-linux-amd64", f"curl -fLO {base}/SHA256SUMS",
                 "sha256sum -c SHA256SUMS --ignore-missing",
                 "gh attestation verify kubeadm-linux-amd64 --repo acme/kubeadm \\",
                 "  --signer-workflow acme/kubeadm/.github/workflows/release.yml",
                 "sudo install -m 0755 kubeadm-linux-amd64 /usr/local/bin/kubeadm"):
        assert line in lines
    assert publish.github.CONTENT_TYPES["report.html"].startswith("text/html")
