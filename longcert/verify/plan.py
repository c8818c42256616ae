"""What scenarios run: for each kubeadm version, the config API it reads, the config it is
given (:func:`kubeadm_config`), the commands that make every certificate and kubeconfig and
renew them, where they see their files in the container, and the scenarios (a config and the
validity it must produce, :func:`scenarios`) a binary is verified with; pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from longcert.verify.judge import (
    CA_CERTS,
    CertCheck,
    check_directory,
    expected_certs,
    expected_kubeconfigs,
)
from longcert.versions import KubeVersion

KUBERNETES_DIR = "/etc/kubernetes"
BIN_MOUNT = "/longcert/bin"
CONFIG_MOUNT = "/longcert/config"
NODE_NAME = "longcert-verify"
# TEST-NET-1 (RFC 5737): never routed, and kubeadm only writes it into SANs.
ADVERTISE_ADDRESS = "192.0.2.10"


# --- the config API each version reads, and the config it is given ------------------------


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


# --- the commands that make the certificates, and renew them ------------------------------


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


# --- the scenarios a binary is run with ---------------------------------------------------


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
