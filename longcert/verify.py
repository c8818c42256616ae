"""Prove a kubeadm binary's certificates: generate them all, read each one, fail closed.

The binary runs in the builder container with no network and a scratch directory mounted at
/etc/kubernetes (kubeadm's default paths, so no flag differences between versions matter). Every
``.crt`` and every client certificate embedded in a kubeconfig is then read with
``cryptography`` on the host.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import yaml
from cryptography import x509

from longcert import container
from longcert.errors import VerifyError
from longcert.versions import KubeVersion

KUBERNETES_DIR = "/etc/kubernetes"
BIN_MOUNT = "/longcert/bin"
CONFIG_MOUNT = "/longcert/config"
NODE_NAME = "longcert-verify"
# TEST-NET-1 (RFC 5737): never routed, and kubeadm only writes it into SANs.
ADVERTISE_ADDRESS = "192.0.2.10"
TOLERANCE_DAYS = 1.0
DAYS_PER_YEAR = 365  # kubeadm's duration365d

LineFn = Callable[[str], None]


@dataclass(frozen=True)
class CertCheck:
    """One certificate's verdict."""

    file: str  # relative to the kubernetes dir; "admin.conf" for an embedded client cert
    kind: str  # "ca" or "leaf"
    subject: str
    issuer: str
    not_before: str
    not_after: str
    days: float
    expected_days: int
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class VerifyReport:
    """Everything verification saw; ``passed`` only when every check held."""

    tag: str
    platform: str
    reported_version: str
    leaf_years: int
    ca_years: int
    checks: tuple[CertCheck, ...]
    problems: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return not self.problems and all(c.ok for c in self.checks)

    def failures(self) -> list[str]:
        """One line per failing file or check."""
        lines = list(self.problems)
        lines += [f"{c.file}: {'; '.join(c.problems)}" for c in self.checks if not c.ok]
        return lines

    def to_json(self) -> str:
        data = asdict(self)
        data["passed"] = self.passed
        for check, raw in zip(self.checks, data["checks"], strict=True):
            raw["ok"] = check.ok
        return json.dumps(data, indent=2) + "\n"


# --- what each version makes and how to ask for it (pure) ---------------------------------


def config_api(version: KubeVersion) -> str:
    """The kubeadm config API the release reads (the newest it supports)."""
    minor = (version.major, version.minor)
    if minor >= (1, 31):
        return "kubeadm.k8s.io/v1beta4"
    if minor >= (1, 22):
        return "kubeadm.k8s.io/v1beta3"
    if minor >= (1, 15):
        return "kubeadm.k8s.io/v1beta2"
    if minor >= (1, 13):
        return "kubeadm.k8s.io/v1beta1"
    if minor >= (1, 12):
        return "kubeadm.k8s.io/v1alpha3"
    if minor >= (1, 11):
        return "kubeadm.k8s.io/v1alpha2"
    return "kubeadm.k8s.io/v1alpha1"


def kubeadm_config(version: KubeVersion) -> str:
    """A config that pins kubernetesVersion (so kubeadm never asks dl.k8s.io) and the node."""
    api = config_api(version)
    if api in ("kubeadm.k8s.io/v1alpha1", "kubeadm.k8s.io/v1alpha2"):
        node = (
            f"nodeName: {NODE_NAME}\n"
            if api.endswith("v1alpha1")
            else f"nodeRegistration:\n  name: {NODE_NAME}\n"
        )
        return (
            f"apiVersion: {api}\nkind: MasterConfiguration\n"
            f"kubernetesVersion: {version.tag}\n"
            f"api:\n  advertiseAddress: {ADVERTISE_ADDRESS}\n{node}"
        )
    endpoint = "apiEndpoint" if api.endswith("v1alpha3") else "localAPIEndpoint"
    return (
        f"apiVersion: {api}\nkind: InitConfiguration\n"
        f"{endpoint}:\n  advertiseAddress: {ADVERTISE_ADDRESS}\n"
        f"nodeRegistration:\n  name: {NODE_NAME}\n"
        f"---\napiVersion: {api}\nkind: ClusterConfiguration\n"
        f"kubernetesVersion: {version.tag}\n"
    )


def generate_commands(version: KubeVersion, config_path: str) -> list[list[str]]:
    """Commands that write every certificate and kubeconfig: `alpha phase` until v1.12."""
    phase = ["alpha", "phase"] if (version.major, version.minor) < (1, 13) else ["init", "phase"]
    return [
        [f"{BIN_MOUNT}/kubeadm", *phase, "certs", "all", "--config", config_path],
        [f"{BIN_MOUNT}/kubeadm", *phase, "kubeconfig", "all", "--config", config_path],
    ]


CA_CERTS = ("ca", "front-proxy-ca", "etcd/ca")


def expected_certs(version: KubeVersion) -> tuple[str, ...]:
    """Certificate files (without .crt) kubeadm makes in this version."""
    certs = ["ca", "apiserver", "apiserver-kubelet-client", "front-proxy-ca", "front-proxy-client"]
    if (version.major, version.minor) >= (1, 10):
        # kubeadm v1.10 started securing etcd with its own CA.
        certs += [
            "etcd/ca",
            "etcd/server",
            "etcd/peer",
            "etcd/healthcheck-client",
            "apiserver-etcd-client",
        ]
    return tuple(certs)


def expected_kubeconfigs(version: KubeVersion) -> tuple[str, ...]:
    """Kubeconfig files kubeadm writes in this version."""
    confs = ["admin.conf", "kubelet.conf", "controller-manager.conf", "scheduler.conf"]
    if (version.major, version.minor) >= (1, 29):
        # v1.29 split the break-glass super-admin.conf off admin.conf.
        confs.append("super-admin.conf")
    return tuple(confs)


# --- reading what was generated (pure: files in, checks out) ------------------------------


def _name(name: x509.Name) -> str:
    return name.rfc4514_string()


def _days(cert: x509.Certificate) -> float:
    delta = cert.not_valid_after_utc - cert.not_valid_before_utc
    return delta.total_seconds() / 86400


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def check_cert(
    file: str,
    cert: x509.Certificate,
    expected_kind: str,
    leaf_years: int,
    ca_years: int,
    cas: dict[str, x509.Certificate],
) -> CertCheck:
    """Validity, CA-ness, signer and expiry against the signer, for one certificate."""
    kind = "ca" if _is_ca(cert) else "leaf"
    expected_days = (ca_years if expected_kind == "ca" else leaf_years) * DAYS_PER_YEAR
    days = _days(cert)
    problems = []
    if kind != expected_kind:
        problems.append(f"is a {kind} certificate, expected a {expected_kind}")
    if abs(days - expected_days) > TOLERANCE_DAYS:
        problems.append(
            f"valid {days:.1f} days, expected {expected_days} ({expected_days // DAYS_PER_YEAR}y)"
        )
    if expected_kind == "leaf":
        issuer = next((ca for ca in cas.values() if ca.subject == cert.issuer), None)
        if issuer is None:
            problems.append(f"issuer {_name(cert.issuer)} is not a CA in this directory")
        else:
            try:
                cert.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, Exception) as exc:
                problems.append(f"signature does not verify against its CA: {exc}")
            if cert.not_valid_after_utc > issuer.not_valid_after_utc:
                problems.append(
                    "leaf outlives its CA "
                    f"({_iso(cert.not_valid_after_utc)} > "
                    f"{_iso(issuer.not_valid_after_utc)})"
                )
    return CertCheck(
        file,
        kind,
        _name(cert.subject),
        _name(cert.issuer),
        _iso(cert.not_valid_before_utc),
        _iso(cert.not_valid_after_utc),
        round(days, 2),
        expected_days,
        tuple(problems),
    )


def kubeconfig_client_certs(path: Path) -> list[x509.Certificate]:
    """Client certificates embedded (client-certificate-data) in a kubeconfig."""
    data = yaml.safe_load(path.read_text()) or {}
    certs = []
    for user in data.get("users") or []:
        embedded = (user.get("user") or {}).get("client-certificate-data")
        if embedded:
            certs.append(x509.load_pem_x509_certificate(base64.b64decode(embedded)))
    return certs


def check_directory(
    root: Path, version: KubeVersion, leaf_years: int, ca_years: int
) -> tuple[list[CertCheck], list[str]]:
    """Every certificate under ``root`` (pki/ and *.conf) checked; plus missing-file problems."""
    pki = root / "pki"
    problems: list[str] = []
    cas: dict[str, x509.Certificate] = {}
    loaded: dict[str, x509.Certificate] = {}
    for crt in sorted(pki.rglob("*.crt")) if pki.is_dir() else []:
        name = crt.relative_to(pki).as_posix().removesuffix(".crt")
        try:
            loaded[name] = x509.load_pem_x509_certificate(crt.read_bytes())
        except ValueError as exc:
            problems.append(f"pki/{name}.crt: not a PEM certificate ({exc})")
            continue
        if name in CA_CERTS:
            cas[name] = loaded[name]
    for name in expected_certs(version):
        if name not in loaded:
            problems.append(f"pki/{name}.crt: missing (kubeadm {version.tag} makes it)")
    checks = [
        check_cert(
            f"pki/{name}.crt", cert, "ca" if name in CA_CERTS else "leaf", leaf_years, ca_years, cas
        )
        for name, cert in loaded.items()
    ]
    for conf in expected_kubeconfigs(version):
        path = root / conf
        if not path.is_file():
            problems.append(f"{conf}: missing (kubeadm {version.tag} makes it)")
            continue
        client_certs = kubeconfig_client_certs(path)
        if not client_certs:
            problems.append(f"{conf}: holds no embedded client certificate")
        checks += [
            check_cert(conf, cert, "leaf", leaf_years, ca_years, cas) for cert in client_certs
        ]
    return checks, problems


def reported_version(output: str) -> str:
    """gitVersion out of ``kubeadm version -o json``."""
    try:
        return str(json.loads(output)["clientVersion"]["gitVersion"])
    except (ValueError, KeyError, TypeError):
        return ""


# --- running the binary (needs the engine) ------------------------------------------------


def verify_binary(
    binary: Path,
    version: KubeVersion,
    leaf_years: int,
    ca_years: int,
    *,
    image: str,
    platform: str = "linux/amd64",
    log_path: Path | None = None,
    on_line: LineFn | None = None,
) -> VerifyReport:
    """Run ``binary`` to generate the PKI and kubeconfigs, then check every certificate."""
    client = container.connect()
    with tempfile.TemporaryDirectory(prefix="longcert-verify-") as scratch:
        kube_dir = Path(scratch) / "kubernetes"
        config_dir = Path(scratch) / "config"
        bin_dir = Path(scratch) / "bin"
        for directory in (kube_dir, config_dir, bin_dir):
            directory.mkdir()
        (bin_dir / "kubeadm").write_bytes(binary.read_bytes())
        (bin_dir / "kubeadm").chmod(0o755)
        (config_dir / "kubeadm.yaml").write_text(kubeadm_config(version))
        mounts = [
            container.BindMount(KUBERNETES_DIR, str(kube_dir)),
            container.BindMount(CONFIG_MOUNT, str(config_dir), read_only=True),
            container.BindMount(BIN_MOUNT, str(bin_dir), read_only=True),
        ]
        labels = {"org.longcert.purpose": "verify", "org.longcert.tag": version.tag}
        problems: list[str] = []
        user = f"{os.getuid()}:{os.getgid()}"
        with container.BuildContainer(
            client, image, mounts=mounts, labels=labels, log_path=log_path
        ) as box:
            code, output = box.capture([f"{BIN_MOUNT}/kubeadm", "version", "-o", "json"], user=user)
            reported = reported_version(output) if code == 0 else ""
            if reported != version.tag:
                problems.append(
                    f"kubeadm version reports {reported or output[-200:]!r}, expected {version.tag}"
                )
            for argv in generate_commands(version, f"{CONFIG_MOUNT}/kubeadm.yaml"):
                code, output = box.capture(argv, user=user, on_line=on_line)
                if code != 0:
                    last = output.strip().splitlines()[-1:] or ["(no output)"]
                    problems.append(
                        f"`kubeadm {' '.join(argv[1:4])}` failed (exit {code}): {last[0]}"
                    )
        checks, missing = check_directory(kube_dir, version, leaf_years, ca_years)
    return VerifyReport(
        version.tag,
        platform,
        reported,
        leaf_years,
        ca_years,
        tuple(checks),
        tuple(problems + missing),
    )


def require_pass(report: VerifyReport) -> None:
    """VerifyError listing every failing file, unless the report passed."""
    if not report.passed:
        failures = report.failures()
        raise VerifyError(
            f"verification of {report.tag} ({report.platform}) failed for {len(failures)} "
            "item(s):\n  " + "\n  ".join(failures)
        )
