"""Prove a kubeadm binary's certificates: generate them all, read each one, fail closed.

The binary runs in the builder container with no network and a scratch directory mounted at
/etc/kubernetes (kubeadm's default paths, so no flag differences between versions matter). Every
``.crt`` and every client certificate embedded in a kubeconfig is then read with
``cryptography`` on the host.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import re
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.utils import CryptographyDeprecationWarning

from longcert import container, runs
from longcert.errors import ConfigError, VerifyError
from longcert.progress import Reporter
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
    # "init": made by the init phases; "config-8760h-ecdsa": made with a config that stores the
    # upstream periods and picks ECDSA-P256 keys (v1.31+); "<stage>-renew": re-made by certs
    # renew all afterwards.
    stage: str = "init"
    serial: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def label(self) -> str:
        """The file, with the stage when it is not the plain init run."""
        return self.file if self.stage == "init" else f"{self.file} ({self.stage})"


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


# --- what each version makes and how to ask for it (pure) ---------------------------------


CONFIG_API = re.compile(r"kubeadm\.k8s\.io/v\d+(?:(?:alpha|beta)\d+)?")


def can_print_defaults(version: KubeVersion) -> bool:
    """`kubeadm config print init-defaults` exists from v1.13 (v1.11/v1.12 had `print-default`,
    whose output does not start with the apiVersion)."""
    return (version.major, version.minor) >= (1, 13)


def api_from_defaults(output: str) -> str:
    """The apiVersion of the InitConfiguration `config print init-defaults` printed, "" if none.

    Asking the binary instead of a table keyed by minor means a kubeadm whose newest API is
    one this table has never heard of (v1 beside v1beta4) is verified with that API."""
    try:
        documents = list(yaml.safe_load_all(output))
    except yaml.YAMLError:
        return ""
    for document in documents:
        if isinstance(document, dict) and document.get("kind") == "InitConfiguration":
            api = str(document.get("apiVersion", ""))
            return api if CONFIG_API.fullmatch(api) else ""
    return ""


def config_api(version: KubeVersion) -> str:
    """The kubeadm config API the release reads (the newest it supports), for binaries that
    cannot print their defaults (before v1.13)."""
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


def has_validity_config(version: KubeVersion) -> bool:
    """v1.31's v1beta4 ClusterConfiguration can set certificate validity itself."""
    return (version.major, version.minor) >= (1, 31)


# What an existing cluster's kubeadm-config ConfigMap holds: the upstream defaults, explicitly.
STORED_LEAF_HOURS, STORED_CA_HOURS = 8760, 87600


def kubeadm_config(
    version: KubeVersion,
    *,
    stored_periods: bool = False,
    api: str | None = None,
    encryption_algorithm: str = "",
) -> str:
    """A config that pins kubernetesVersion (so kubeadm never asks dl.k8s.io) and the node.

    ``stored_periods`` adds certificateValidityPeriod: 8760h and caCertificateValidityPeriod:
    87600h (v1.31+), as the kubeadm-config ConfigMap of an existing cluster carries them;
    ``encryption_algorithm`` sets ClusterConfiguration.encryptionAlgorithm (v1beta4+).
    """
    api = api or config_api(version)
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
        + (
            f"certificateValidityPeriod: {STORED_LEAF_HOURS}h0m0s\n"
            f"caCertificateValidityPeriod: {STORED_CA_HOURS}h0m0s\n"
            if stored_periods
            else ""
        )
        + (f"encryptionAlgorithm: {encryption_algorithm}\n" if encryption_algorithm else "")
    )


def _phase(version: KubeVersion) -> list[str]:
    return ["alpha", "phase"] if (version.major, version.minor) < (1, 13) else ["init", "phase"]


def generate_commands(version: KubeVersion, config_path: str) -> list[list[str]]:
    """Commands that write every certificate and kubeconfig: `alpha phase` until v1.12."""
    return [
        [f"{BIN_MOUNT}/kubeadm", *_phase(version), "certs", "all", "--config", config_path],
        [f"{BIN_MOUNT}/kubeadm", *_phase(version), "kubeconfig", "all", "--config", config_path],
    ]


def generate_steps(version: KubeVersion, config_path: str) -> list[list[list[str]]]:
    """:func:`generate_commands` as steps whose commands run at once: the cluster CA first
    (`certs ca`, a subphase in every era), then `certs all` (which uses that CA, as init's
    own phases do) together with `kubeconfig all` (which needs only that CA; `alpha phase
    certs ca` in v1.9-v1.12). Every RSA-2048 key kubeadm makes costs about 150 ms, so on two
    cores the kubeconfigs' keys are made while the certificates' are."""
    ca = [f"{BIN_MOUNT}/kubeadm", *_phase(version), "certs", "ca", "--config", config_path]
    return [[ca], generate_commands(version, config_path)]


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
        issuer = signing_ca(cert, cas)
        if issuer is None:
            problems.append(f"not signed by any CA in this directory (issuer {_name(cert.issuer)})")
        else:
            # Leaves made seconds after their CA with the same lifetime end seconds later;
            # only outliving the CA by more than the tolerance is a broken chain.
            slack = timedelta(days=TOLERANCE_DAYS)
            if cert.not_valid_after_utc > issuer.not_valid_after_utc + slack:
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
        serial=serial_number(cert),
    )


def signing_ca(cert: x509.Certificate, cas: dict[str, x509.Certificate]) -> x509.Certificate | None:
    """The CA whose key signed ``cert``; names alone are not enough (v1.9 calls every CA
    "kubernetes")."""
    for ca in cas.values():
        if ca.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return ca
    return None


def load_certificate(data: bytes) -> x509.Certificate:
    """Parse PEM; old kubeadm gives its CAs serial number 0, which cryptography warns about."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return x509.load_pem_x509_certificate(data)


def serial_number(cert: x509.Certificate) -> int:
    """The serial, read without cryptography's warning about upstream's serial 0."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return int(cert.serial_number)


def kubeconfig_client_certs(path: Path) -> list[x509.Certificate]:
    """Client certificates embedded (client-certificate-data) in a kubeconfig."""
    data = yaml.safe_load(path.read_text()) or {}
    certs = []
    for user in data.get("users") or []:
        embedded = (user.get("user") or {}).get("client-certificate-data")
        if embedded:
            certs.append(load_certificate(base64.b64decode(embedded)))
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
            loaded[name] = load_certificate(crt.read_bytes())
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


def key_type(cert: x509.Certificate) -> str:
    """The certificate key's type as kubeadm's encryptionAlgorithm names it (RSA-2048,
    ECDSA-P256, ...), or the key class's name."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA-P{key.curve.key_size}"
    return type(key).__name__


def key_type_problems(
    root: Path, version: KubeVersion, algorithm: str, *, skip: frozenset[str] = frozenset()
) -> list[str]:
    """Every certificate kubeadm made under ``root`` (files in ``skip`` were not made by it)
    whose key is not of ``algorithm``: a config's encryptionAlgorithm that did not reach a file
    would leave that file unverified for the key type it claims to cover."""
    found: list[tuple[str, x509.Certificate]] = []
    for name in expected_certs(version):
        path = root / "pki" / f"{name}.crt"
        if path.is_file() and f"pki/{name}.crt" not in skip:
            found.append((f"pki/{name}.crt", load_certificate(path.read_bytes())))
    for conf in expected_kubeconfigs(version):
        if (root / conf).is_file():
            found += [(conf, cert) for cert in kubeconfig_client_certs(root / conf)]
    return [
        f"{file}: {key_type(cert)} key, the config asked for {algorithm}"
        for file, cert in found
        if key_type(cert) != algorithm
    ]


def reported_version(output: str) -> str:
    """gitVersion out of ``kubeadm version -o json``."""
    try:
        return str(json.loads(output)["clientVersion"]["gitVersion"])
    except (ValueError, KeyError, TypeError):
        return ""


# --- executable headers (pure) ------------------------------------------------------------

_ELF_MACHINES = {62: "amd64", 183: "arm64", 40: "arm", 3: "386", 21: "ppc64le", 22: "s390x"}
_PE_MACHINES = {0x8664: "amd64", 0x14C: "386", 0xAA64: "arm64"}
_MACHO_CPUS = {0x01000007: "amd64", 0x0100000C: "arm64"}
QEMU_BINARIES = {
    "arm64": "qemu-aarch64-static",
    "arm": "qemu-arm-static",
    "386": "qemu-i386-static",
    "ppc64le": "qemu-ppc64le-static",
    "s390x": "qemu-s390x-static",
}
NATIVE_PLATFORM = "linux/amd64"


def binary_platform(data: bytes) -> tuple[str, str]:
    """(GOOS/GOARCH, description) from an executable's first bytes; ("", why) if unknown."""
    if data[:4] == b"\x7fELF" and len(data) >= 20:
        machine = int.from_bytes(data[18:20], "little" if data[5] == 1 else "big")
        arch = _ELF_MACHINES.get(machine)
        return (f"linux/{arch}", f"ELF {arch}") if arch else ("", f"ELF machine {machine}")
    if data[:2] == b"MZ" and len(data) >= 64:
        offset = int.from_bytes(data[60:64], "little")
        if data[offset : offset + 4] == b"PE\0\0":
            machine = int.from_bytes(data[offset + 4 : offset + 6], "little")
            arch = _PE_MACHINES.get(machine)
            return (f"windows/{arch}", f"PE {arch}") if arch else ("", f"PE machine {machine:#x}")
        return "", "MZ header without a PE signature"
    if data[:4] == b"\xcf\xfa\xed\xfe" and len(data) >= 8:
        cpu = int.from_bytes(data[4:8], "little")
        arch = _MACHO_CPUS.get(cpu)
        return (f"darwin/{arch}", f"Mach-O {arch}") if arch else ("", f"Mach-O cpu {cpu:#x}")
    return "", "not an ELF, PE or Mach-O executable"


def renew_command(version: KubeVersion, config_path: str) -> list[str] | None:
    """`certs renew all` as this version spells it; None where it is not known to exist.

    v1.14 has `kubeadm alpha certs renew` (cmd/alpha/certs.go at v1.14.8), v1.20 moved it to the
    top level; whether v1.12/v1.13 had it is not verified, so they are not asked.
    """
    minor = (version.major, version.minor)
    if minor >= (1, 20):
        return [f"{BIN_MOUNT}/kubeadm", "certs", "renew", "all", "--config", config_path]
    if minor >= (1, 14):
        return [f"{BIN_MOUNT}/kubeadm", "alpha", "certs", "renew", "all", "--config", config_path]
    return None


def renewed_files(version: KubeVersion) -> tuple[str, ...]:
    """Files `certs renew all` re-makes: every leaf, and (from v1.15, when renewal moved to the
    renewal manager) the kubeconfigs other than kubelet.conf."""
    leaves = tuple(f"pki/{n}.crt" for n in expected_certs(version) if n not in CA_CERTS)
    if (version.major, version.minor) < (1, 15):
        return leaves
    confs = tuple(c for c in expected_kubeconfigs(version) if c != "kubelet.conf")
    return leaves + confs


# --- running the binary (needs the engine) ------------------------------------------------


def _executor(platform: str) -> tuple[list[str], list[container.BindMount], str]:
    """Argv prefix, extra mounts and a name for running ``platform``'s binary here."""
    if platform == NATIVE_PLATFORM:
        return [], [], "native"
    qemu_name = QEMU_BINARIES.get(platform.split("/")[1], "")
    qemu = shutil.which(qemu_name) if qemu_name else None
    if qemu is None:
        raise VerifyError(
            f"cannot execute the {platform} binary here: {qemu_name or 'no emulator'}"
            " is not installed",
            "apt-get install qemu-user-static",
        )
    target = f"/longcert/qemu/{qemu_name}"
    return [target], [container.BindMount(target, qemu, read_only=True)], qemu_name


def verify_binary(
    binary: Path,
    version: KubeVersion | None,
    leaf_years: int,
    ca_years: int,
    *,
    image: str,
    pinned: bool = False,
    log_path: Path | None = None,
    on_line: LineFn | None = None,
    limits: container.Limits | None = None,
    seed_pki: Path | None = None,
) -> VerifyReport:
    """Check ``binary``: run it (natively or under qemu) to make the PKI, kubeconfigs and a
    renewal, and check every certificate; darwin/windows get a header check only.

    ``version`` None means: use what the binary reports. The scenarios (:func:`scenarios`) are
    independent and run at once where the cores allow (:func:`scenario_workers`), each in its
    own container and directory; the report, the log and ``on_line`` get them in order, and
    the report (errors included) is the one running them one after the other gives.
    ``seed_pki``: a certificatesDir (CAs of your own) copied into each scenario's pki/ first.
    """
    platform, header = binary_platform(binary.read_bytes()[:4096])
    if not platform:
        raise VerifyError(f"{binary} is not a kubeadm executable: {header}")
    tag = version.tag if version else ""
    if not platform.startswith("linux/"):
        return VerifyReport(tag, platform, "", leaf_years, ca_years, (), (), "", header)
    prefix, extra_mounts, executed_with = _executor(platform)
    client = container.connect()
    with tempfile.TemporaryDirectory(prefix=runs.tagged("longcert-verify-")) as scratch:
        root = Path(scratch)
        bin_dir = root / "bin"
        bin_dir.mkdir()
        shutil.copyfile(binary, bin_dir / "kubeadm")
        (bin_dir / "kubeadm").chmod(0o755)
        labels = {"org.longcert.purpose": "verify", "org.longcert.platform": platform}
        user = f"{os.getuid()}:{os.getgid()}"

        def open_box(index: int, log: Path | None) -> tuple[container.BuildContainer, _Dirs]:
            """A container with scenario ``index``'s own /etc/kubernetes and config."""
            dirs = _Dirs(root / f"kubernetes-{index}", root / f"config-{index}")
            dirs.kube.mkdir()
            dirs.config.mkdir()
            mounts = [
                container.BindMount(KUBERNETES_DIR, str(dirs.kube)),
                container.BindMount(CONFIG_MOUNT, str(dirs.config), read_only=True),
                container.BindMount(BIN_MOUNT, str(bin_dir), read_only=True),
                *extra_mounts,
            ]
            box = container.BuildContainer(
                client, image, mounts=mounts, labels=labels, log_path=log, limits=limits,
                user=user,
            )
            return box, dirs

        problems: list[str] = []
        main, main_dirs = open_box(0, log_path)
        with main as box:
            run = _Runner(box, prefix, user, on_line)
            output = run([f"{BIN_MOUNT}/kubeadm", "version", "-o", "json"], "version", problems)
            reported = reported_version(output or "")
            if version is None and not reported:
                raise VerifyError(
                    f"{binary} is not kubeadm: `{binary.name} version -o json` answered no "
                    "kubeadm version",
                    "pass a kubeadm binary to --binary",
                )
            if version is None:
                try:
                    version = KubeVersion.parse(reported)
                except ConfigError as exc:
                    raise VerifyError(
                        f"{binary} reports version {reported!r}, not a release tag",
                        "pass the tag it was built from with --version",
                    ) from exc
            elif reported != version.tag:
                problems.append(f"kubeadm version reports {reported!r}, expected {version.tag}")
            api, api_source = config_api(version), "table (no `config print init-defaults`)"
            if can_print_defaults(version):
                printed = run(
                    [f"{BIN_MOUNT}/kubeadm", "config", "print", "init-defaults"],
                    "config print init-defaults",
                    problems,
                )
                asked = api_from_defaults(printed or "")
                if asked:
                    api, api_source = asked, "config print init-defaults"
                elif printed is not None:
                    problems.append("`kubeadm config print init-defaults` printed no "
                                    "InitConfiguration with a kubeadm.k8s.io apiVersion")
            plan = [replace(s, seed_pki=seed_pki)
                    for s in scenarios(version, leaf_years, ca_years, pinned)]
            known = version
            workers = scenario_workers(len(plan))
            if workers <= 1:  # one after the other, in this container, as always
                results: list[ScenarioResult] = []
                for scenario in plan:
                    results.append(_run_scenario(
                        run, main_dirs, known, api, scenario,
                        renew_allowed=not problems and not any(r.problems() for r in results),
                    ))
            else:
                results = _parallel_scenarios(
                    plan, workers, run, main_dirs, open_box, root, log_path, on_line,
                    known, api, renew_allowed=not problems, prefix=prefix, user=user,
                )
    checks, problems, missing = merge_scenarios(problems, results)
    return VerifyReport(
        version.tag,
        platform,
        reported,
        leaf_years,
        ca_years,
        tuple(checks),
        tuple(problems + missing),
        executed_with,
        header,
        api,
        api_source,
    )


CRASHED = "crashed in the Go runtime"


def go_crash(output: str) -> str:
    """The first line of a Go runtime panic or fatal error in ``output`` ("" if none): what a
    kubeadm built with a Go its vendored code does not support prints before its stack trace."""
    for line in output.splitlines():
        text = line.strip()
        if text.startswith(("panic: ", "fatal error: ")):
            return text
    return ""


def scenario_workers(count: int) -> int:
    """How many scenarios run at once: one per core, at most one per scenario."""
    return max(1, min(count, os.cpu_count() or 1))


@dataclass(frozen=True)
class _Dirs:
    """A scenario's host directories: /etc/kubernetes and the config."""

    kube: Path
    config: Path


class _Runner:
    """Runs kubeadm commands in one container: the output of a successful command, or None
    and a problem noted in the list given."""

    def __init__(
        self,
        box: container.BuildContainer,
        prefix: list[str],
        user: str,
        on_line: LineFn | None,
    ) -> None:
        self.box, self.prefix, self.user, self.on_line = box, prefix, user, on_line

    def __call__(self, argv: list[str], what: str, problems: list[str]) -> str | None:
        code, output = self.box.capture(
            [*self.prefix, *argv], user=self.user, on_line=self.on_line
        )
        if code == 0:
            return output or "(no output)"
        return self._failed(code, output, what, problems)

    def together(self, commands: list[list[str]], problems: list[str]) -> list[str | None]:
        """Several kubeadm commands at once (one after the other on a single core); each
        named by its words after the binary."""
        if len(commands) == 1 or (os.cpu_count() or 1) < 2:
            return [self(argv, " ".join(argv[1:5]), problems) for argv in commands]
        results = self.box.capture_together(
            [[*self.prefix, *argv] for argv in commands], user=self.user, on_line=self.on_line
        )
        return [
            (output or "(no output)") if code == 0
            else self._failed(code, output, " ".join(argv[1:5]), problems)
            for argv, (code, output) in zip(commands, results, strict=True)
        ]

    @staticmethod
    def _failed(code: int, output: str, what: str, problems: list[str]) -> None:
        crash = go_crash(output)
        if crash:
            problems.append(f"`kubeadm {what}` {CRASHED}: {crash}")
            return None
        last = output.strip().splitlines()[-1:] or ["(no output)"]
        problems.append(f"`kubeadm {what}` failed (exit {code}): {last[0]}")
        return None


@dataclass(frozen=True)
class ScenarioResult:
    """What one scenario found: its checks and problems before the renewal, and the renewal's
    (``renewed`` None when it did not run)."""

    name: str
    made: tuple[CertCheck, ...]
    absent: tuple[str, ...]
    made_problems: tuple[str, ...]
    renewed: tuple[CertCheck, ...] | None = None
    renew_problems: tuple[str, ...] = ()

    def problems(self) -> tuple[str, ...]:
        return self.made_problems + self.renew_problems


def _run_scenario(
    run: _Runner,
    dirs: _Dirs,
    version: KubeVersion,
    api: str,
    scenario: Scenario,
    *,
    renew_allowed: bool,
) -> ScenarioResult:
    """Generate everything with the scenario's config, check it, then (when nothing failed
    so far and ``renew_allowed``) renew all and check what was re-issued."""
    for old in dirs.kube.iterdir():
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    if scenario.seed_pki is not None:
        # kubeadm reuses CAs it finds in its certificatesDir (phases/certs/certs.go).
        shutil.copytree(scenario.seed_pki, dirs.kube / "pki", symlinks=False)
    (dirs.config / "kubeadm.yaml").write_text(
        kubeadm_config(version, stored_periods=scenario.stored_periods, api=api,
                       encryption_algorithm=scenario.encryption_algorithm)
    )
    config_path = f"{CONFIG_MOUNT}/kubeadm.yaml"
    problems: list[str] = []
    for step in generate_steps(version, config_path):
        run.together(step, problems)
    made, absent = check_directory(dirs.kube, version, scenario.leaf_years, scenario.ca_years)
    seeded = frozenset(f"pki/{n}.crt" for n in CA_CERTS) if scenario.seed_pki else frozenset()
    if scenario.encryption_algorithm and not problems:
        problems += key_type_problems(dirs.kube, version, scenario.encryption_algorithm,
                                      skip=seeded)
    made = [replace(c, stage=scenario.name) for c in made]
    result = ScenarioResult(scenario.name, tuple(made), tuple(absent), tuple(problems))
    renew = renew_command(version, config_path)
    if not (renew and renew_allowed and not problems and not absent):
        return result
    renew_problems: list[str] = []
    if not run(renew, "certs renew all", renew_problems):
        return replace(result, renew_problems=tuple(renew_problems))
    renewed = renewal_checks(
        dirs.kube, version, scenario.leaf_years, scenario.ca_years, made, renew_problems
    )
    if scenario.encryption_algorithm:
        renew_problems += [
            f"after certs renew all: {problem}"
            for problem in key_type_problems(dirs.kube, version, scenario.encryption_algorithm,
                                             skip=seeded)
        ]
    return replace(
        result,
        renewed=tuple(replace(c, stage=f"{scenario.name}-renew") for c in renewed),
        renew_problems=tuple(renew_problems),
    )


def merge_scenarios(
    problems: list[str], results: list[ScenarioResult]
) -> tuple[list[CertCheck], list[str], list[str]]:
    """(checks, problems, missing files) of the scenarios in order, as running them one after
    the other gives: a scenario renews only when nothing failed before it (``problems``: what
    the version checks found). A renewal run at the same time as an earlier scenario that
    then failed is left out, as if it never ran."""
    checks: list[CertCheck] = []
    problems = list(problems)
    missing: list[str] = []
    for result in results:
        problems += result.made_problems
        checks += result.made
        missing += result.absent
        ran = result.renewed is not None or bool(result.renew_problems)
        if ran and not problems:
            problems += result.renew_problems
            checks += result.renewed or ()
    return checks, problems, missing


def _parallel_scenarios(
    plan: list[Scenario],
    workers: int,
    run: _Runner,
    main_dirs: _Dirs,
    open_box: Callable[[int, Path | None], tuple[container.BuildContainer, _Dirs]],
    root: Path,
    log_path: Path | None,
    on_line: LineFn | None,
    version: KubeVersion,
    api: str,
    *,
    renew_allowed: bool,
    prefix: list[str],
    user: str,
) -> list[ScenarioResult]:
    """Scenario 0 in the open container ``run`` uses, the others each in a new one, on a pool
    of ``workers`` threads. Their output reaches the log and ``on_line`` in scenario order;
    the first scenario (in order) that raised raises here. Ctrl-C or SIGTERM here removes
    every container at once (what runs in them ends) before the error goes on."""
    boxes: list[container.BuildContainer] = [run.box]
    lines: list[list[str]] = [[] for _ in plan]
    logs = [None] + [root / f"verify-{i}.log" if log_path else None for i in range(1, len(plan))]
    stopping = threading.Event()

    def task(index: int) -> ScenarioResult:
        scenario = plan[index]
        if index == 0:
            main = _Runner(run.box, prefix, user, lines[0].append)
            return _run_scenario(main, main_dirs, version, api, scenario,
                                 renew_allowed=renew_allowed)
        box, dirs = open_box(index, logs[index])
        with box:
            boxes.append(box)
            if stopping.is_set():
                raise VerifyError("verification stopped")
            own = _Runner(box, prefix, user, lines[index].append)
            return _run_scenario(own, dirs, version, api, scenario, renew_allowed=renew_allowed)

    pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="longcert-verify")
    futures = []
    try:
        futures = [pool.submit(task, index) for index in range(len(plan))]
        results = [future.result() for future in futures]
    except BaseException:
        stopping.set()
        for future in futures:
            future.cancel()
        for box in list(boxes):
            box.kill()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    for index in range(len(plan)):
        log = logs[index]
        if log_path is not None and log is not None and log.is_file():
            with log_path.open("a", encoding="utf-8") as handle:
                handle.write(log.read_text(encoding="utf-8"))
        if on_line is not None:
            for line in lines[index]:
                on_line(line)
    return results


@dataclass(frozen=True)
class Scenario:
    """One run of the binary: a config, and the validity it must then produce."""

    name: str
    stored_periods: bool
    leaf_years: int
    ca_years: int
    # A certificatesDir (CAs of your own, `invoke ca`) copied into pki/ before kubeadm runs.
    seed_pki: Path | None = None
    # ClusterConfiguration.encryptionAlgorithm ("" = the version's default, RSA-2048).
    encryption_algorithm: str = ""


# The stored-config scenario's key type. kubeadm sets NotAfter the same way for every key type
# (pkiutil.NewSignedCert, kubeconfig client certs), so the validity checks hold for both.
# ECDSA-P256 is the other type v1.31+ offers (v1beta4 encryptionAlgorithm, kubernetes/kubernetes
# #120417 and #123054; kubeconfig keys follow it from v1.31, #125388), so verification covers
# both, and its keys take microseconds where an RSA-2048 key takes about 150 ms.
STORED_CONFIG_ALGORITHM = "ECDSA-P256"


def scenarios(version: KubeVersion, leaf_years: int, ca_years: int, pinned: bool) -> list[Scenario]:
    """``init`` (the default config, RSA keys) always; from v1.31 also a config that stores
    8760h/87600h, as existing clusters do, with ECDSA-P256 keys: upstream (not pinned) honours
    the periods, a --pin-validity build ignores them."""
    runs = [Scenario("init", False, leaf_years, ca_years)]
    if has_validity_config(version):
        leaf, ca = (
            (leaf_years, ca_years)
            if pinned
            else (STORED_LEAF_HOURS // 8760, STORED_CA_HOURS // 8760)
        )
        runs.append(Scenario("config-8760h-ecdsa", True, leaf, ca,
                             encryption_algorithm=STORED_CONFIG_ALGORITHM))
    return runs


def renewal_checks(
    kube_dir: Path,
    version: KubeVersion,
    leaf_years: int,
    ca_years: int,
    before: list[CertCheck],
    problems: list[str],
) -> list[CertCheck]:
    """Checks of the files `certs renew all` re-made; a file it did not re-make is a problem."""
    after, _ = check_directory(kube_dir, version, leaf_years, ca_years)
    old_serials = {c.file: c.serial for c in before}
    renewed = []
    for check in after:
        if check.file in renewed_files(version):
            if check.serial == old_serials.get(check.file):
                problems.append(f"{check.file}: not re-issued by certs renew all")
            renewed.append(replace(check, stage="renew"))
    return renewed


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


DEFAULT_VERIFY_IMAGE = "longcert/debian-base:bookworm"


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
    """`invoke verify`: check one binary, print the table, write JSON, raise on failure."""
    if not binary:
        raise ConfigError("--binary is required", "the path of the kubeadm binary to check")
    if not Path(binary).is_file():
        raise ConfigError(f"--binary {binary!r} is not a file")
    kube_version = KubeVersion.parse(version) if version else None
    report = verify_binary(
        Path(binary),
        kube_version,
        leaf_years,
        ca_years,
        image=image or DEFAULT_VERIFY_IMAGE,
        pinned=pinned,
    )
    how = report.executed_with or f"not executed, header {report.header}"
    Reporter().summary(
        f"{binary}: {report.tag or 'unknown version'} {report.platform} ({how}): {report.status}",
        report_rows(report),
        ["file", "subject", "issuer", "not before", "not after", "days", "expected", "result"],
    )
    if json_path:
        Path(json_path).write_text(report.to_json())
    require_pass(report)
    return report


def list_images(binary: Path, config: str, *, image: str = DEFAULT_VERIFY_IMAGE) -> list[str]:
    """`kubeadm config images list --config CONFIG` run with ``binary`` (linux/amd64, v1.11+)
    in a network-less container: the images a cluster made from ``config`` pulls, one per line.
    ``--config`` rather than ``--image-repository``: every version with the command reads it
    (the flag came later), and the config pins kubernetesVersion so nothing is looked up."""
    client = container.connect()
    with tempfile.TemporaryDirectory(prefix=runs.tagged("longcert-images-")) as scratch:
        root = Path(scratch)
        (root / "bin").mkdir()
        (root / "config").mkdir()
        shutil.copyfile(binary, root / "bin" / "kubeadm")
        (root / "bin" / "kubeadm").chmod(0o755)
        (root / "config" / "kubeadm.yaml").write_text(config)
        user = f"{os.getuid()}:{os.getgid()}"
        mounts = [
            container.BindMount(BIN_MOUNT, str(root / "bin"), read_only=True),
            container.BindMount(CONFIG_MOUNT, str(root / "config"), read_only=True),
        ]
        labels = {"org.longcert.purpose": "images", "org.longcert.platform": NATIVE_PLATFORM}
        with container.BuildContainer(client, image, mounts=mounts, labels=labels,
                                      user=user) as box:
            code, output = box.capture(
                [f"{BIN_MOUNT}/kubeadm", "config", "images", "list",
                 "--config", f"{CONFIG_MOUNT}/kubeadm.yaml"],
                user=user,
            )
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if code != 0:
        raise VerifyError(
            f"`kubeadm config images list` failed (exit {code}): "
            f"{(lines or ['(no output)'])[-1]}"
        )
    # kubeadm may print warnings before the list; an image reference has a ':' tag or '@'.
    return [line for line in lines if re.fullmatch(r"[a-z0-9][^\s]*[:@][^\s]+", line)]
