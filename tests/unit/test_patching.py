from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from longcert import patching, source
from longcert.errors import ConfigError, PatchError
from longcert.patching import go_duration_expr, load_patch_sets
from longcert.versions import KubeVersion

CONSTANTS_E4 = """package constants

const (
\t// CertificateValidityPeriod defines the validity period for all the signed certificates.
\tCertificateValidityPeriod = time.Hour * 24 * 365
\t// CACertificateValidityPeriod defines the validity period for all the signed CA certificates.
\tCACertificateValidityPeriod = time.Hour * 24 * 365 * 10
)
"""

CERT_GO = """package cert

const duration365d = time.Hour * 24 * 365

func NewSelfSignedCACert() {
\ttmpl := x509.Certificate{
\t\tNotBefore:             now.UTC(),
\t\tNotAfter:              now.Add(duration365d * 10).UTC(),
\t}
}

func GenerateSelfSignedCertKey() {
\tmaxAge := time.Hour * 24 * 365 // one year self-signed certs
}
"""


def e4() -> patching.PatchSet:
    return next(s for s in load_patch_sets() if s.name == "e4-validity-period")


def tree_with(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


V133 = KubeVersion.parse("v1.33.7")


def test_duration_expression() -> None:
    assert go_duration_expr(1) == "time.Hour * 24 * 365"
    assert go_duration_expr(100) == "time.Hour * 24 * 365 * 100"
    with pytest.raises(ConfigError):
        go_duration_expr(293)


def test_e4_writes_both_values_and_keeps_alignment(tmp_path: Path) -> None:
    tree = tree_with(tmp_path, {"cmd/kubeadm/app/constants/constants.go": CONSTANTS_E4})
    result = patching.plan(e4(), tree, V133, leaf_years=10, ca_years=100)
    after = result.changes[0].after
    assert "\tCertificateValidityPeriod = time.Hour * 24 * 365 * 10\n" in after
    assert "\tCACertificateValidityPeriod = time.Hour * 24 * 365 * 100\n" in after
    assert result.diff.startswith("diff --git a/cmd/kubeadm/app/constants/constants.go")
    assert len(result.diff_sha256) == 64


def test_value_is_written_not_multiplied(tmp_path: Path) -> None:
    tree = tree_with(tmp_path, {"cmd/kubeadm/app/constants/constants.go": CONSTANTS_E4})
    after = patching.plan(e4(), tree, V133, 100, 100).changes[0].after
    # the CA's upstream "* 10" is replaced, not multiplied into 1000 years
    assert "365 * 10 * 100" not in after
    assert "CACertificateValidityPeriod = time.Hour * 24 * 365 * 100\n" in after


def test_missing_anchor_names_file_anchor_and_version(tmp_path: Path) -> None:
    text = CONSTANTS_E4.replace("CertificateValidityPeriod = time.Hour * 24 * 365\n",
                                "CertificateValidityPeriod = 365 * 24 * time.Hour\n")
    tree = tree_with(tmp_path, {"cmd/kubeadm/app/constants/constants.go": text})
    with pytest.raises(PatchError) as err:
        patching.plan(e4(), tree, V133, 10, 10)
    message = str(err.value)
    assert "v1.33.7" in message
    assert "cmd/kubeadm/app/constants/constants.go" in message
    assert "'CertificateValidityPeriod = time.Hour * 24 * 365'" in message
    assert "matched 0 times" in message


def test_anchor_matching_twice_is_refused(tmp_path: Path) -> None:
    text = CONSTANTS_E4 + "\nconst CertificateValidityPeriod = time.Hour * 24 * 365\n"
    text = text.replace("\nconst CertificateValidityPeriod", "\nCertificateValidityPeriod")
    tree = tree_with(tmp_path, {"cmd/kubeadm/app/constants/constants.go": text})
    with pytest.raises(PatchError, match="matched 2 times"):
        patching.plan(e4(), tree, V133, 10, 10)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PatchError, match="does not exist"):
        patching.plan(e4(), tmp_path, V133, 10, 10)


def test_already_patched_tree_is_detected(tmp_path: Path) -> None:
    tree = tree_with(tmp_path, {"cmd/kubeadm/app/constants/constants.go": CONSTANTS_E4})
    first = patching.plan(e4(), tree, V133, 10, 20)
    (tree / first.changes[0].path).write_text(first.changes[0].after)
    with pytest.raises(PatchError, match="which is what this patch set writes: the tree was "
                       "patched before"):
        patching.plan(e4(), tree, V133, 10, 20)


def test_an_upstream_change_names_the_closest_line_and_patches_dir(tmp_path: Path) -> None:
    """A clean tree whose line upstream rewrote is never called "already patched"."""
    changed = CONSTANTS_E4.replace("CertificateValidityPeriod = time.Hour * 24 * 365\n",
                                   "CertificateValidityPeriod = 365 * 24 * time.Hour\n")
    tree = tree_with(tmp_path, {"cmd/kubeadm/app/constants/constants.go": changed})
    with pytest.raises(PatchError) as err:
        patching.plan(e4(), tree, V133, 10, 20)
    message = str(err.value)
    assert "already" not in message and "patched before" not in message
    assert ("matched 0 times, expected 1 (patch set e4-validity-period): upstream changed the "
            "line; the closest is line 5: 'CertificateValidityPeriod = 365 * 24 * time.Hour'"
            ) in message
    assert "pass --patches-dir DIR" in message


def test_client_go_ca_edit_ignores_the_kubelet_maxage_trap(tmp_path: Path) -> None:
    e3 = next(s for s in load_patch_sets() if s.name == "e3-certificate-validity")
    constants = "const (\n\tCertificateValidity = time.Hour * 24 * 365\n)\n"
    tree = tree_with(tmp_path, {
        "cmd/kubeadm/app/constants/constants.go": constants,
        "staging/src/k8s.io/client-go/util/cert/cert.go": CERT_GO,
    })
    result = patching.plan(e3, tree, KubeVersion.parse("v1.28.7"), 5, 50)
    cert = next(c for c in result.changes if c.path.endswith("cert.go")).after
    assert "\t\tNotAfter:              now.Add(duration365d * 50).UTC(),\n" in cert
    assert "maxAge := time.Hour * 24 * 365 // one year" in cert
    assert "const duration365d = time.Hour * 24 * 365\n" in cert


def test_one_year_leaf_changes_nothing_for_e3(tmp_path: Path) -> None:
    e3 = next(s for s in load_patch_sets() if s.name == "e3-certificate-validity")
    tree = tree_with(tmp_path, {
        "cmd/kubeadm/app/constants/constants.go": "\tCertificateValidity = time.Hour * 24 * 365\n",
        "staging/src/k8s.io/client-go/util/cert/cert.go": CERT_GO,
    })
    result = patching.plan(e3, tree, KubeVersion.parse("v1.28.7"), 1, 10)
    assert result.changes == ()
    assert result.diff == ""


def test_diff_applies_with_git_and_twice_is_refused(tmp_path: Path) -> None:
    tree = tree_with(tmp_path / "k", {"cmd/kubeadm/app/constants/constants.go": CONSTANTS_E4})
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", str(tree)], check=True)
    subprocess.run([*git, "-C", str(tree), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(tree), "commit", "-qm", "x"], check=True)
    result = patching.plan(e4(), tree, V133, 10, 10)
    handle = source.SourceTree(tree, "v1.33.7", "0" * 40, 0, "file:///x", tmp_path)
    source.apply_diff(handle, result.diff)
    assert (tree / result.changes[0].path).read_text() == result.changes[0].after
    with pytest.raises(PatchError, match="already modified"):
        source.apply_diff(handle, result.diff)


def test_every_patch_set_is_well_formed() -> None:
    sets = load_patch_sets()
    assert [s.name for s in sets] == ["e1-clientgo-cert", "e2-pkiutil-local",
                                      "e3-certificate-validity", "e4-validity-period"]
    for patch_set in sets:
        assert {e.governs for e in patch_set.edits} == {"leaf", "ca"}, patch_set.name
        for edit in patch_set.edits:
            # an anchor is a whole statement, never a bare multiplication substring
            assert patching.normalize(edit.anchor) != "time.Hour * 24 * 365"
            assert not edit.anchor.startswith(("time.", "*"))


def test_bad_patch_set_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.yaml"
    bad.write_text("name: x\nfirst: '1.9'\nlast: '1.9'\nedits:\n  - file: a\n    governs: leaf\n"
                   "    anchor: b\n    replace: c\n")
    with pytest.raises(ConfigError, match="neither"):
        patching.load_patch_set(bad)


BASE_SET = """name: custom
first: "1.28"
last: "1.30"
edits:
  - file: cmd/kubeadm/app/constants/constants.go
    governs: leaf
    anchor: "CertificateValidity = time.Hour * 24 * 365"
    replace: "CertificateValidity = {duration}"
"""


@pytest.mark.parametrize(("old", "new", "message"), [
    ("file: cmd/kubeadm", "file: /etc/passwd#", "must be a relative path inside the Kubernetes"),
    ("file: cmd/kubeadm/app", "file: ../../etc/app", "must be a relative path"),
    ('governs: leaf', 'governs: leaf\n    count: many', "count must be a whole number"),
    ('governs: leaf', 'governs: leaf\n    count: 0', "count must be a whole number"),
    ('last: "1.30"', "last: 1.40", 'last must be a quoted version such as "1.31"'),
    ('first: "1.28"', 'first: "1.31"', "first 1.31 is after last 1.30"),
    ("edits:\n  - file", "edits: []\nold:\n  - file", "unknown key(s) old"),
    ("    replace:", "    colour: red\n    replace:", "unknown key(s) colour in an edit"),
    ("name: custom", "name: [1, 2]", "name must be a non-empty text"),
])
def test_bad_patch_sets_name_the_file_and_key(tmp_path: Path, old: str, new: str,
                                              message: str) -> None:
    path = tmp_path / "custom.yaml"
    text = BASE_SET.replace(old, new, 1)
    assert text != BASE_SET
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        patching.load_patch_set(path)
    assert str(path) in str(caught.value) and message in str(caught.value)


def test_empty_edits_and_a_symlink_out_of_the_tree(tmp_path: Path) -> None:
    path = tmp_path / "custom.yaml"
    path.write_text(BASE_SET.split("edits:")[0] + "edits: []\n")
    with pytest.raises(ConfigError, match="edits must be a non-empty list"):
        patching.load_patch_set(path)
    path.write_text(BASE_SET)
    tree = tmp_path / "tree"
    (tree / "cmd/kubeadm/app/constants").mkdir(parents=True)
    secret = tmp_path / "secret.go"
    secret.write_text("CertificateValidity = time.Hour * 24 * 365\n")
    (tree / "cmd/kubeadm/app/constants/constants.go").symlink_to(secret)
    with pytest.raises(PatchError, match="leads outside the tree"):
        patching.plan(patching.load_patch_set(path), tree, KubeVersion.parse("v1.28.7"), 10, 10)
