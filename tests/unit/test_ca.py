"""`invoke ca` and the checks of `invoke verify --ca-dir` (no engine: the pure parts)."""

from __future__ import annotations

import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from longcert import ca, verify
from longcert.errors import ConfigError
from longcert.versions import KubeVersion
from tests.cli import invoke_without_engine

FILES = ["ca.crt", "ca.key", "etcd/ca.crt", "etcd/ca.key", "front-proxy-ca.crt",
         "front-proxy-ca.key", "sa.key", "sa.pub"]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ca") / "pki"
    ca.make_ca_dir(out, 100)
    return out


def test_layout_modes_and_subjects(made: Path) -> None:
    assert sorted(p.relative_to(made).as_posix() for p in made.rglob("*") if p.is_file()) == FILES
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    for path in made.rglob("*.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert path.read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    subjects = {}
    for base, _ in ca.CA_SUBJECTS:
        cert = verify.load_certificate((made / f"{base}.crt").read_bytes())
        subjects[base] = cert.subject.rfc4514_string()
        assert cert.subject == cert.issuer
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical and usage.value.key_cert_sign
        assert abs(verify._days(cert) - 36500) < 1
        assert cert.not_valid_before_utc <= datetime.now(UTC) - timedelta(minutes=4)
        cert.verify_directly_issued_by(cert)
        assert stat.S_IMODE((made / f"{base}.crt").stat().st_mode) == 0o644
    assert subjects == {"ca": "CN=kubernetes", "front-proxy-ca": "CN=front-proxy-ca",
                        "etcd/ca": "CN=etcd-ca"}
    loaded = ca.load_ca_dir(made, 100)
    assert set(loaded.certs) == {"ca", "front-proxy-ca", "etcd/ca"}


def test_refuses_an_existing_directory_with_files(tmp_path: Path, made: Path) -> None:
    before = ca.checksums(made)
    with pytest.raises(ConfigError, match="already exists"):
        ca.make_ca_dir(made, 10)
    assert ca.checksums(made) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    ca.make_ca_dir(empty, 10)
    assert (empty / "etcd" / "ca.key").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["empty"]  # no staging directory left


def test_algorithm_follows_the_version(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="RSA-2048 keys only"):
        ca.make("100", str(tmp_path / "a"), "ecdsa", "v1.28.7")
    with pytest.raises(ConfigError, match="rsa or ecdsa"):
        ca.make("100", str(tmp_path / "a"), "dsa", None)
    assert not (tmp_path / "a").exists()
    ca.make("100", str(tmp_path / "b"), "ecdsa", "v1.33.7")
    cert = verify.load_certificate((tmp_path / "b" / "ca.crt").read_bytes())
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert (tmp_path / "b" / "ca.key").read_bytes().startswith(b"-----BEGIN EC PRIVATE KEY")
    sa = serialization.load_pem_private_key((tmp_path / "b" / "sa.key").read_bytes(), None)
    assert isinstance(sa, rsa.RSAPrivateKey)  # kubeadm's sa key is RSA whatever the CAs are
    assert ca.supports_ecdsa(KubeVersion.parse("v1.31.0"))
    assert not ca.supports_ecdsa(KubeVersion.parse("v1.30.14"))


@pytest.mark.parametrize("years", ["0", "293", "ten"])
def test_years_within_gos_limit(years: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        ca.make(years, str(tmp_path / "x"), None, None)


def _copy(made: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(made, target)
    return target


def test_a_key_of_another_certificate_is_refused(made: Path, tmp_path: Path) -> None:
    bad = _copy(made, tmp_path)
    (bad / "front-proxy-ca.key").write_bytes((made / "ca.key").read_bytes())
    before = ca.checksums(bad)
    with pytest.raises(ConfigError, match=r"front-proxy-ca\.key does not match front-proxy-ca"):
        ca.load_ca_dir(bad, 10)
    assert ca.checksums(bad) == before


def test_a_ca_shorter_than_the_leaves_is_refused(tmp_path: Path) -> None:
    short = tmp_path / "short"
    ca.make_ca_dir(short, 5)
    with pytest.raises(ConfigError, match="shorter than the asked leaf validity of 10 years"):
        ca.load_ca_dir(short, 10)
    ca.load_ca_dir(short, 5)


@pytest.mark.parametrize("missing", ["etcd/ca.key", "front-proxy-ca.crt"])
def test_missing_files_are_refused(missing: str, made: Path, tmp_path: Path) -> None:
    bad = _copy(made, tmp_path)
    (bad / missing).unlink()
    with pytest.raises(ConfigError, match=f"{missing} is missing"):
        ca.load_ca_dir(bad, 10)


def test_an_unreadable_key_is_named_never_shown(made: Path, tmp_path: Path) -> None:
    bad = _copy(made, tmp_path)
    secret = (bad / "ca.key").read_text().splitlines()[1]
    (bad / "ca.key").write_text("-----BEGIN RSA PRIVATE KEY-----\n" + secret[:40] + "\n")
    with pytest.raises(ConfigError) as caught:
        ca.load_ca_dir(bad, 10)
    assert "ca.key is not an unencrypted PEM private key" in str(caught.value)
    assert secret[:20] not in str(caught.value)


def _check(file: str, kind: str, cert: x509.Certificate, stage: str = "init",
           expected_days: int = 3650) -> verify.CertCheck:
    return verify.CertCheck(
        file, kind, cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(),
        verify._iso(cert.not_valid_before_utc), verify._iso(cert.not_valid_after_utc),
        round(verify._days(cert), 2), expected_days, (), stage, verify.serial_number(cert))


def test_judge_accepts_the_given_cas_and_flags_a_replaced_one(made: Path) -> None:
    cas = ca.load_ca_dir(made, 10)
    now = datetime.now(UTC)
    checks = [_check(f"pki/{name}.crt", "ca", cert, expected_days=3650)
              for name, cert in cas.certs.items()]
    leaf_key = ca.new_key("rsa")
    issuer_key = serialization.load_pem_private_key((made / "ca.key").read_bytes(), None)
    name = x509.Name.from_rfc4514_string("CN=kube-apiserver")
    leaf = (x509.CertificateBuilder().subject_name(name)
            .issuer_name(cas.certs["ca"].subject).public_key(leaf_key.public_key())
            .serial_number(1).not_valid_before(cas.certs["ca"].not_valid_before_utc)
            .not_valid_after(now + timedelta(days=3650))
            .sign(issuer_key, hashes.SHA256()))  # type: ignore[arg-type]
    # verify measured the span from the CA's start: judged by its end from now instead
    leaf_check = replace(_check("admin.conf", "leaf", leaf),
                         problems=("valid 3650.1 days, expected 3650 (10y)",))
    report = verify.VerifyReport("v1.33.7", "linux/amd64", "v1.33.7", 10, 100,
                                 (*checks, leaf_check))
    judged = ca.judge(report, cas, now)
    assert judged.passed, judged.failures()
    assert {c.expected_days for c in judged.checks if c.kind == "ca"} == {36500}

    other = ca.new_ca_certificate("kubernetes", ca.new_key("rsa"), 10)
    replaced = replace(report, checks=(_check("pki/ca.crt", "ca", other), *checks[1:],
                                       replace(leaf_check, issuer="CN=someone")))
    failures = ca.judge(replaced, cas, now).failures()
    assert any("pki/ca.crt: replaced by kubeadm" in f for f in failures)
    assert any("admin.conf: issued by CN=someone, not by a --ca-dir CA" in f for f in failures)

    gone = replace(report, checks=tuple(checks[1:]))
    assert any("pki/ca.crt (init): the --ca-dir CA is gone" in f
               for f in ca.judge(gone, cas, now).failures())


def test_invoke_ca_prints_no_key(tmp_path: Path) -> None:
    result = invoke_without_engine("ca", "--ca-years", "100", "--out", str(tmp_path / "pki"),
                                   tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "PRIVATE KEY" not in result.stdout + result.stderr
    for key in (tmp_path / "pki").rglob("*.key"):
        body = key.read_text().splitlines()[1]
        assert body not in result.stdout + result.stderr
    again = invoke_without_engine("ca", "--ca-years", "100", "--out", str(tmp_path / "pki"),
                                  tmp_path=tmp_path)
    assert again.returncode == 2
    assert again.stderr.strip().count("\n") == 0 and "already exists" in again.stderr
    assert "Traceback" not in again.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--years", "10", "--ca-dir", "{tmp}/nothing"], "is not a directory"),
    (["--years", "10", "--ca-dir", "{short}"], "shorter than the asked leaf validity"),
])
def test_verify_ca_dir_bad_input_before_any_engine(args: list[str], message: str,
                                                   tmp_path: Path) -> None:
    short = tmp_path / "short"
    ca.make_ca_dir(short, 5)
    before = ca.checksums(short)
    binary = tmp_path / "kubeadm"
    binary.write_bytes(b"\x7fELF")
    filled = [a.format(tmp=tmp_path, short=short) for a in args]
    result = invoke_without_engine("verify", "--binary", str(binary), *filled, tmp_path=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert ca.checksums(short) == before


@pytest.mark.parametrize("hostile", ["loop", "fifo", "huge", "outside"])
def test_a_hostile_ca_dir_is_one_short_line(tmp_path: Path, hostile: str) -> None:
    """verify --ca-dir: a symlink loop, a FIFO, a huge file or a link out (issue 22)."""
    import os

    cas = tmp_path / "pki"
    ca.make_ca_dir(cas, 100)
    bad = cas / "etcd" / "extra.crt"
    if hostile == "loop":
        bad.symlink_to(cas / "etcd" / "other.crt")
        (cas / "etcd" / "other.crt").symlink_to(bad)
    elif hostile == "fifo":
        os.mkfifo(bad)
    elif hostile == "huge":
        with bad.open("wb") as handle:
            handle.truncate(3 << 30)
    else:
        bad.symlink_to("/etc/passwd")
    with pytest.raises(ConfigError) as err:
        ca.load_ca_dir(cas, 10)
    assert "etcd/extra.crt" in str(err.value) and len(str(err.value)) < 300
