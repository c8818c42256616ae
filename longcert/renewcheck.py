"""A dry run of a certificate renewal against a copy of a real cluster's /etc/kubernetes.

``invoke renew-check --binary K --etc DIR`` copies DIR (read only: it is never written, and its
checksums are compared afterwards), runs the renewal of K's version on the copy in a container
with no network, and compares every certificate and kubeconfig before and after.

The renewal is the one the kit's ``renew.sh`` runs, decided by one function for both
(:func:`longcert.kit.renew_plan`):

* v1.20 and later: ``kubeadm certs renew all``; v1.15 - v1.19: ``kubeadm alpha certs renew
  all``. Both renew every leaf and the kubeconfigs but kubelet.conf, whose client certificate
  the kubelet rotates itself (renewal/manager.go). A kubelet.conf that still embeds its
  certificate (nodes initialised before v1.17) and ends before the asked validity fails the
  check: nothing renews it (renew.sh points it at the kubelet's rotated certificate).
* v1.13, v1.14: ``kubeadm alpha certs renew all`` renews the PKI leaves only
  (cmd/alpha/certs.go at v1.14.8); v1.12: ``kubeadm alpha phase certs renew all``. The
  kubeconfigs (kubelet.conf only while it embeds its certificate) are moved aside and written
  again by the kubeconfig phase.
* v1.9 - v1.11: no renew command, so the leaves and kubeconfigs are moved aside and written
  again by ``kubeadm alpha phase certs all`` and ``kubeadm alpha phase kubeconfig all``, which
  keep the CAs.

Those phases need the node's settings (node name, advertise address, SANs). They come from
``--config`` (the cluster's own, e.g. ``kubeadm config view``) or are read back from the
certificates themselves (:func:`derived_settings`); either way every certificate must keep its
subject and SANs and every kubeconfig its server, or the check fails. From v1.31 a renewal reads
the cluster's ``kubeadm-config`` ConfigMap, which stores ``certificateValidityPeriod: 8760h``;
without ``--config`` that is what the dry run assumes, as the real renewal would.

The Kubernetes version of DIR is read from ``manifests/kube-apiserver.yaml`` (the image tag the
node runs), else from ``--config``'s ``kubernetesVersion``; the binary's from ``kubeadm version``.
A different minor is refused: kubeadm only manages the PKI of its own minor.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from longcert import container, kit, runs, verify
from longcert.ca import checksums
from longcert.errors import ConfigError, VerifyError
from longcert.settings import parse_years
from longcert.versions import KubeVersion

CA_FILES = tuple(f"pki/{name}.crt" for name in verify.CA_CERTS)
TOLERANCE_DAYS = verify.TOLERANCE_DAYS
DAYS_PER_YEAR = verify.DAYS_PER_YEAR
CONFIG_FILE = f"{verify.CONFIG_MOUNT}/kubeadm.yaml"
KUBELET_CURRENT = "/var/lib/kubelet/pki/kubelet-client-current.pem"
ASIDE = "renew-check-aside"  # scratch directory (outside the copy) for files moved aside


# --- what one certificate looks like (pure) -----------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One certificate as found in the directory: a pki .crt or a kubeconfig's client cert."""

    file: str
    subject: str
    issuer: str
    not_after: datetime
    serial: int
    public_key: str  # sha256 of the SubjectPublicKeyInfo: tells a reused key from a new one
    sans: tuple[str, ...]
    is_ca: bool
    signer: str  # the CA file whose key signed it ("" when none here did)
    server: str = ""  # a kubeconfig's cluster server
    problems: tuple[str, ...] = ()  # what makes it unusable (key or CA mismatch)

    def days_left(self, now: datetime) -> float:
        return (self.not_after - now).total_seconds() / 86400


def _spki(public: Any) -> bytes:
    return public.public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _sans(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    dns = [f"DNS:{n}" for n in names.get_values_for_type(x509.DNSName)]
    ips = [f"IP:{ip}" for ip in names.get_values_for_type(x509.IPAddress)]
    return tuple(dns + ips)


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    if ca.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _key_matches(key_pem: bytes, cert: x509.Certificate) -> bool:
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return False
    return _spki(key.public_key()) == _spki(cert.public_key())


def _seen(
    file: str,
    cert: x509.Certificate,
    cas: dict[str, x509.Certificate],
    *,
    server: str = "",
    problems: Iterable[str] = (),
) -> Seen:
    signer = next((name for name, ca in cas.items() if _signed_by(cert, ca)), "")
    return Seen(
        file,
        cert.subject.rfc4514_string(),
        cert.issuer.rfc4514_string(),
        cert.not_valid_after_utc,
        verify.serial_number(cert),
        hashlib.sha256(_spki(cert.public_key())).hexdigest(),
        _sans(cert),
        verify._is_ca(cert),
        signer,
        server,
        tuple(problems),
    )


def inventory(root: Path) -> tuple[dict[str, Seen], list[str]]:
    """Every certificate under ``root`` (an /etc/kubernetes): ``pki/**/*.crt`` and the client
    certificate of every ``*.conf`` kubeconfig; plus notes on what could not be read."""
    pki = root / "pki"
    certs: dict[str, x509.Certificate] = {}
    notes: list[str] = []
    for crt in sorted(pki.rglob("*.crt")) if pki.is_dir() else []:
        name = crt.relative_to(root).as_posix()
        try:
            certs[name] = verify.load_certificate(crt.read_bytes())
        except ValueError:
            notes.append(f"{name}: not a PEM certificate, left out")
    cas = {name: cert for name, cert in certs.items() if name in CA_FILES}
    seen: dict[str, Seen] = {}
    for name, cert in certs.items():
        problems = []
        key = root / (name.removesuffix(".crt") + ".key")
        if name not in CA_FILES and key.is_file() and not _key_matches(key.read_bytes(), cert):
            problems.append(f"{key.name} does not match the certificate")
        seen[name] = _seen(name, cert, cas, problems=problems)
    for conf in sorted(root.glob("*.conf")):
        found, note = _kubeconfig(conf, cas.get("pki/ca.crt"), cas)
        if found is not None:
            seen[conf.name] = found
        if note:
            notes.append(note)
    return seen, notes


def _kubeconfig(
    path: Path, ca: x509.Certificate | None, cas: dict[str, x509.Certificate]
) -> tuple[Seen | None, str]:
    """The client certificate of a kubeconfig, with what would make it unusable: a client key
    that is not the certificate's, a cluster CA that is not pki/ca.crt."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
        user = ((data.get("users") or [{}])[0].get("user")) or {}
        cluster = ((data.get("clusters") or [{}])[0].get("cluster")) or {}
    except (yaml.YAMLError, AttributeError, IndexError):
        return None, f"{path.name}: not a kubeconfig, left out"
    if not user.get("client-certificate-data"):
        where = user.get("client-certificate") or "no client certificate"
        return None, f"{path.name}: client certificate in {where}, not embedded (not renewed)"
    try:
        cert = verify.load_certificate(base64.b64decode(user["client-certificate-data"]))
    except ValueError:
        return None, f"{path.name}: its client-certificate-data is not a certificate"
    problems = []
    if not _key_matches(base64.b64decode(user.get("client-key-data") or ""), cert):
        problems.append("client-key-data does not match the client certificate")
    authority = cluster.get("certificate-authority-data")
    if ca is not None and authority:
        try:
            same = verify.load_certificate(base64.b64decode(authority)) == ca
        except ValueError:
            same = False
        if not same:
            problems.append("certificate-authority-data is not pki/ca.crt")
    if ca is not None and not _signed_by(cert, ca):
        problems.append("client certificate does not chain to pki/ca.crt")
    return _seen(path.name, cert, cas, server=str(cluster.get("server", "")),
                 problems=problems), ""


# --- which version made the directory, and which files the renewal re-issues (pure) --------


def pki_version(root: Path, config_text: str | None) -> tuple[KubeVersion, str]:
    """(version, where it was read) of the cluster ``root`` was taken from."""
    manifest = root / "manifests" / "kube-apiserver.yaml"
    if manifest.is_file():
        try:
            pod = yaml.safe_load(manifest.read_text()) or {}
            images = [c.get("image", "") for c in pod["spec"]["containers"]]
        except (yaml.YAMLError, KeyError, TypeError, AttributeError):
            images = []
        for image in images:
            tag = image.split("@")[0].rsplit(":", 1)[-1] if ":" in image else ""
            if "kube-apiserver" in image and tag:
                return KubeVersion.parse(tag), "manifests/kube-apiserver.yaml"
    if config_text:
        try:
            for document in yaml.safe_load_all(config_text):
                if isinstance(document, dict) and document.get("kubernetesVersion"):
                    return KubeVersion.parse(str(document["kubernetesVersion"])), "--config"
        except yaml.YAMLError:
            raise ConfigError("--config is not YAML") from None
    raise ConfigError(
        f"cannot tell which Kubernetes version made {root}: no manifests/kube-apiserver.yaml",
        "pass --config with the cluster's ClusterConfiguration (its kubernetesVersion)",
    )


def kubelet_conf_embeds(seen: dict[str, Seen]) -> bool:
    """Whether kubelet.conf carries its client certificate inside (nodes initialised before
    v1.17; :func:`inventory` reads only embedded kubeconfig certificates)."""
    return "kubelet.conf" in seen


def plan_for(version: KubeVersion, before: dict[str, Seen]) -> kit.RenewPlan:
    """The renewal renew.sh runs on this node (:func:`longcert.kit.renew_plan`, one decision
    for both): kubelet.conf is written again when it embeds its certificate and the version's
    kubeconfig phase can (up to v1.14); renew.sh would first point it at the kubelet's rotated
    certificate if the node had one, which a copy of /etc/kubernetes does not show."""
    regenerate = kubelet_conf_embeds(before) and kit.regenerates_kubelet_conf(version)
    return kit.renew_plan(version, regenerate_kubelet_conf=regenerate)


def renew_argv(step: kit.RenewStep) -> list[str]:
    """The kubeadm command line of one renewal step, in the dry run's container."""
    return [f"{verify.BIN_MOUNT}/kubeadm", *step.words, "--config", CONFIG_FILE]


# --- the node's settings, read back from its certificates (pure) ---------------------------


@dataclass(frozen=True)
class NodeSettings:
    """What the certs and kubeconfig phases need to write the same certificates again."""

    node_name: str
    advertise_address: str
    bind_port: int
    control_plane_endpoint: str
    service_subnet: str
    dns_domain: str
    cert_sans: tuple[str, ...]
    cluster_name: str


STANDARD_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc")


def derived_settings(seen: dict[str, Seen], root: Path) -> NodeSettings:
    """Node name, addresses and SANs as kubeadm put them into the certificates it made:
    the apiserver certificate's IPs are (service VIP, advertise address, extra...) and its DNS
    names (node name, kubernetes..., kubernetes.default.svc.<domain>, extra...)
    (certs.go apiServerAltNames / pkiutil.GetAPIServerAltNames)."""
    apiserver = seen.get("pki/apiserver.crt")
    if apiserver is None:
        raise ConfigError("the copy has no pki/apiserver.crt to read the node's settings from",
                          "pass --config with the cluster's configuration")
    dns = [s[4:] for s in apiserver.sans if s.startswith("DNS:")]
    ips = [s[3:] for s in apiserver.sans if s.startswith("IP:")]
    kubelet = seen.get("kubelet.conf")
    node = ""
    if kubelet and kubelet.subject.startswith("CN=system:node:"):
        node = kubelet.subject.split(",")[0].removeprefix("CN=system:node:")
    node = node or (dns[0] if dns else "")
    domain = next((d.removeprefix("kubernetes.default.svc.") for d in dns
                   if d.startswith("kubernetes.default.svc.")), "cluster.local")
    vip = ipaddress.ip_address(ips[0]) if ips else ipaddress.ip_address("10.96.0.1")
    advertise = ips[1] if len(ips) > 1 else ""
    server = ""
    admin = seen.get("admin.conf")
    if admin is not None:
        server = admin.server
    host, port = _host_port(server)
    endpoint = "" if not host or host == advertise else f"{host}:{port}"
    standard = {node, *STANDARD_NAMES, f"kubernetes.default.svc.{domain}", host}
    extra = [d for d in dns if d not in standard] + [i for i in ips[2:] if i != host]
    cluster = _cluster_name(root / "admin.conf")
    return NodeSettings(node, advertise, port if not endpoint else 6443, endpoint,
                        _service_subnet(vip), domain, tuple(extra), cluster)


def _host_port(server: str) -> tuple[str, int]:
    rest = server.removeprefix("https://").split("/")[0]
    if not rest:
        return "", 6443
    if rest.startswith("["):  # [IPv6]:port
        host, _, port = rest[1:].partition("]:")
    else:
        host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
    return host, int(port) if port.isdigit() else 6443


def _service_subnet(vip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The widest network starting right before the VIP (kubeadm's VIP is the subnet's first
    address + 1): 10.96.0.1 gives 10.96.0.0/12."""
    base = vip - 1
    first = 12 if vip.version == 4 else 108
    for prefix in range(first, vip.max_prefixlen):
        network = ipaddress.ip_network(f"{base}/{prefix}", strict=False)
        if network.network_address == base:
            return str(network)
    return f"{base}/{vip.max_prefixlen - 1}"


def _cluster_name(admin: Path) -> str:
    try:
        data = yaml.safe_load(admin.read_text()) or {}
        return str(data["clusters"][0]["name"])
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError):
        return "kubernetes"


def render_config(version: KubeVersion, node: NodeSettings, stored_periods: bool) -> str:
    """The config the dry run's renewal reads: the node's settings, ``kubernetesVersion`` pinned
    (never a lookup on dl.k8s.io) and, from v1.31 with ``stored_periods``, the 8760h/87600h the
    cluster's kubeadm-config ConfigMap stores."""
    api = verify.config_api(version)
    endpoint = {"advertiseAddress": node.advertise_address, "bindPort": node.bind_port}
    networking = {"serviceSubnet": node.service_subnet, "dnsDomain": node.dns_domain}
    cluster: dict[str, Any] = {"apiVersion": api}
    if api.endswith(("v1alpha1", "v1alpha2")):
        api_section: dict[str, Any] = dict(endpoint)
        if node.control_plane_endpoint:
            api_section["controlPlaneEndpoint"] = node.control_plane_endpoint
        master: dict[str, Any] = {
            "apiVersion": api, "kind": "MasterConfiguration",
            "kubernetesVersion": version.tag, "api": api_section, "networking": networking,
        }
        if api.endswith("v1alpha1"):
            master["nodeName"] = node.node_name
        else:
            master["nodeRegistration"] = {"name": node.node_name}
        if node.cert_sans:
            master["apiServerCertSANs"] = list(node.cert_sans)
        return yaml.safe_dump(master, sort_keys=False)
    init = {"apiVersion": api, "kind": "InitConfiguration",
            "apiEndpoint" if api.endswith("v1alpha3") else "localAPIEndpoint": endpoint,
            "nodeRegistration": {"name": node.node_name}}
    cluster.update({"kind": "ClusterConfiguration", "kubernetesVersion": version.tag,
                    "networking": networking, "clusterName": node.cluster_name})
    if node.control_plane_endpoint:
        cluster["controlPlaneEndpoint"] = node.control_plane_endpoint
    if node.cert_sans:
        if api.endswith("v1alpha3"):
            cluster["apiServerCertSANs"] = list(node.cert_sans)
        else:
            cluster["apiServer"] = {"certSANs": list(node.cert_sans)}
    if stored_periods and verify.has_validity_config(version):
        cluster["certificateValidityPeriod"] = f"{verify.STORED_LEAF_HOURS}h0m0s"
        cluster["caCertificateValidityPeriod"] = f"{verify.STORED_CA_HOURS}h0m0s"
    return yaml.safe_dump_all([init, cluster], sort_keys=False)


def with_init_document(config_text: str, version: KubeVersion, node: NodeSettings) -> str:
    """The user's --config, with an InitConfiguration of the node's settings in front when it
    has none (a kubeadm-config ConfigMap holds the ClusterConfiguration only)."""
    kinds = {d.get("kind") for d in yaml.safe_load_all(config_text) if isinstance(d, dict)}
    if kinds & {"InitConfiguration", "MasterConfiguration"}:
        return config_text
    init = render_config(version, node, False).split("---\n")[0]
    if "MasterConfiguration" in init:
        return config_text
    return init + "---\n" + config_text


# --- judging before against after (pure) --------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One file's line in the table."""

    file: str
    before: Seen | None
    after: Seen | None
    renewed: bool  # the renewal is meant to re-issue it
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class RenewReport:
    """What a dry run found."""

    etc: str
    binary_version: str
    pki_version: str
    pki_version_from: str
    leaf_years: int
    commands: tuple[str, ...]
    rows: tuple[Row, ...]
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return not self.problems and all(r.ok for r in self.rows)

    def failures(self) -> list[str]:
        return list(self.problems) + [f"{r.file}: {'; '.join(r.problems)}"
                                      for r in self.rows if not r.ok]


def judge(
    before: dict[str, Seen],
    after: dict[str, Seen],
    renewed: Iterable[str],
    leaf_years: int,
    now: datetime,
) -> list[Row]:
    """Compare every certificate before and after the renewal: each one meant to be renewed
    must be re-issued, last at least ``leaf_years`` from ``now``, be signed by the same CA
    as before, keep its subject, SANs and server, and be usable (key and CA match); CAs must
    be untouched. A leaf that outlives its CA is noted: it works only until the CA ends."""
    wanted = set(renewed)
    asked_days = leaf_years * DAYS_PER_YEAR
    rows = []
    for file in sorted(set(before) | set(after), key=_order):
        old, new = before.get(file), after.get(file)
        problems: list[str] = []
        notes: list[str] = []
        meant = file in wanted and old is not None
        if new is None:
            problems.append("gone after the renewal")
        elif old is None:
            notes.append("made by the renewal")
        elif file in CA_FILES or old.is_ca:
            if (old.serial, old.public_key, old.not_after) != (
                new.serial, new.public_key, new.not_after):
                problems.append("a CA changed: renewal must never replace a CA")
        elif meant:
            if new.serial == old.serial:
                problems.append("not re-issued by the renewal")
            left = new.days_left(now)
            if left < asked_days - TOLERANCE_DAYS:
                problems.append(f"ends in {left:.0f} days, shorter than the asked "
                                f"{asked_days} ({leaf_years}y)")
            if not new.signer:
                problems.append(f"not signed by any CA in pki/ (issuer {new.issuer})")
            elif old.signer and new.signer != old.signer:
                problems.append(f"now signed by {new.signer}, was {old.signer}")
            if (new.subject, new.sans) != (old.subject, old.sans):
                problems.append(f"identity changed: {old.subject} {list(old.sans)} -> "
                                f"{new.subject} {list(new.sans)}")
            if new.server != old.server:
                problems.append(f"server changed: {old.server} -> {new.server}")
            ca = after.get(new.signer)
            slack = timedelta(days=TOLERANCE_DAYS)  # made seconds after a CA of equal span
            if ca is not None and new.not_after > ca.not_after + slack:
                notes.append(f"outlives its CA, which ends {verify._iso(ca.not_after)}: "
                             "usable until then")
        elif file == "kubelet.conf" and old.days_left(now) < asked_days - TOLERANCE_DAYS:
            # Only an embedded certificate is in the inventory: a node initialised before v1.17
            # keeps it, and nothing renews it (kubernetes/kubeadm#1753).
            problems.append(
                f"embeds its client certificate, which ends in {old.days_left(now):.0f} days and "
                f"which nothing renews: point it at {KUBELET_CURRENT} (renew.sh does when the "
                "kubelet rotates its certificate, kubeadm-certs.md)")
        else:
            notes.append("not renewed by kubeadm"
                         + (" (the kubelet rotates its own client certificate)"
                            if file == "kubelet.conf" else ""))
        if new is not None and (meant or file in CA_FILES):
            problems += list(new.problems)
        rows.append(Row(file, old, new, meant, tuple(problems), tuple(notes)))
    return rows


def _order(file: str) -> tuple[int, str]:
    return (0 if file in CA_FILES else 1 if file.startswith("pki/") else 2, file)


def report_rows(report: RenewReport, now: datetime) -> list[list[str]]:
    """The table renew-check prints: one row per certificate and kubeconfig."""
    rows = []
    for row in report.rows:
        old, new = row.before, row.after
        seen = new or old
        assert seen is not None
        key = ("-" if old is None or new is None or not row.renewed
               else "reused" if old.public_key == new.public_key else "new")
        result = ("ok" if row.ok else "FAIL: " + "; ".join(row.problems))
        if row.notes:
            result += " (" + "; ".join(row.notes) + ")"
        rows.append([
            row.file, seen.subject, seen.issuer,
            verify._iso(old.not_after) if old else "-",
            f"{old.days_left(now):.0f}" if old else "-",
            verify._iso(new.not_after) if new else "-",
            f"{new.days_left(now):.0f}" if new else "-",
            (new.signer or "NONE") if new else "-",
            key, result,
        ])
    return rows


HEADER = ["file", "subject", "issuer", "expires before", "days", "expires after", "days",
          "signed by", "key", "result"]


# --- running it (needs the engine) --------------------------------------------------------


def asked_years(years: str | None, binary: Path) -> int:
    """--years, else the leaf validity in the manifest.json of the build the binary is in."""
    if years is not None:
        return parse_years(years, "years")
    manifest = binary.parent / "manifest.json"
    try:
        return int(json.loads(manifest.read_text())["validity"]["leaf_years"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError("--years is required",
                          "the leaf validity the renewed certificates must have") from None


def _move_aside(kube: Path, aside: Path, names: Iterable[str]) -> None:
    """Move the files a phase would otherwise keep ("Using existing ...") out of the copy."""
    for name in names:
        source = kube / name
        if source.exists():
            target = aside / name
            target.parent.mkdir(parents=True, exist_ok=True)
            source.rename(target)


def check(
    binary: str | None,
    etc: str | None,
    years: str | None,
    *,
    config: str | None = None,
    image: str | None = None,
    json_path: str | None = None,
    now: datetime | None = None,
) -> RenewReport:
    """`invoke renew-check`: the dry run; prints the table, raises VerifyError on failure."""
    if not binary:
        raise ConfigError("--binary is required", "the patched kubeadm to renew with")
    binary_path = Path(binary)
    if not binary_path.is_file():
        raise ConfigError(f"--binary {binary!r} is not a file")
    if not etc:
        raise ConfigError("--etc is required", "a copy of a control-plane node's /etc/kubernetes")
    root = Path(etc)
    if not (root / "pki" / "ca.crt").is_file():
        raise ConfigError(f"--etc {etc} has no pki/ca.crt",
                          "point it at a copy of a kubeadm control-plane node's /etc/kubernetes")
    config_text = Path(config).read_text() if config else None
    if config and not config_text:
        raise ConfigError(f"--config {config} is empty")
    leaf_years = asked_years(years, binary_path)
    version, version_from = pki_version(root, config_text)
    platform, header = verify.binary_platform(binary_path.read_bytes()[:4096])
    if not platform.startswith("linux/"):
        raise ConfigError(f"--binary {binary} cannot run here ({header or 'unknown format'})",
                          "renew-check needs a linux kubeadm")
    prefix, extra_mounts, _ = verify._executor(platform)
    sums = checksums(root)
    before, notes = inventory(root)
    report = _run(binary_path, root, version, version_from, leaf_years, config_text, before,
                  notes, image or verify.DEFAULT_VERIFY_IMAGE, prefix, extra_mounts, now)
    if checksums(root) != sums:
        raise VerifyError(f"--etc {etc} changed during the dry run")  # never: only a copy ran
    from longcert.progress import Reporter

    reporter = Reporter()
    moment = now or datetime.now(UTC)
    for note in report.notes:
        reporter.say(f"note: {note}")
    reporter.summary(
        f"renew-check of {etc} (Kubernetes {report.pki_version}, from {report.pki_version_from})"
        f" with kubeadm {report.binary_version}, leaves asked {leaf_years}y: "
        + ("passed" if report.passed else "FAILED"),
        report_rows(report, moment),
        HEADER,
    )
    if json_path:
        Path(json_path).write_text(json.dumps(_to_dict(report), indent=2) + "\n")
    failures = report.failures()
    if failures:
        raise VerifyError(f"renew-check of {etc} failed for {len(failures)} item(s):\n  "
                          + "\n  ".join(failures))
    return report


def _run(
    binary: Path,
    root: Path,
    version: KubeVersion,
    version_from: str,
    leaf_years: int,
    config_text: str | None,
    before: dict[str, Seen],
    notes: list[str],
    image: str,
    prefix: list[str],
    extra_mounts: list[container.BindMount],
    now: datetime | None,
) -> RenewReport:
    client = container.connect()
    with tempfile.TemporaryDirectory(prefix=runs.tagged("longcert-renew-check-")) as scratch:
        work = Path(scratch)
        kube, bin_dir, config_dir, aside = (work / "etc", work / "bin", work / "config",
                                            work / ASIDE)
        shutil.copytree(root, kube, symlinks=True)
        bin_dir.mkdir()
        shutil.copyfile(binary, bin_dir / "kubeadm")
        (bin_dir / "kubeadm").chmod(0o755)
        config_dir.mkdir()
        mounts = [
            container.BindMount(verify.KUBERNETES_DIR, str(kube)),
            container.BindMount(verify.CONFIG_MOUNT, str(config_dir), read_only=True),
            container.BindMount(verify.BIN_MOUNT, str(bin_dir), read_only=True),
            *extra_mounts,
        ]
        user = f"{os.getuid()}:{os.getgid()}"
        box = container.BuildContainer(client, image, mounts=mounts, user=user,
                                       labels={"org.longcert.purpose": "renew-check"})
        commands: list[str] = []
        with box:
            code, output = box.capture([*prefix, f"{verify.BIN_MOUNT}/kubeadm", "version",
                                        "-o", "json"], user=user)
            reported = verify.reported_version(output) if code == 0 else ""
            try:
                binary_version = KubeVersion.parse(reported)
            except ConfigError:
                raise ConfigError(f"--binary {binary} is not a kubeadm that reports its version "
                                  f"(`kubeadm version` gave {reported or 'nothing'!r})") from None
            if (binary_version.major, binary_version.minor) != (version.major, version.minor):
                raise ConfigError(
                    f"--etc {root} is a v{version.major}.{version.minor} cluster ({version.tag}, "
                    f"from {version_from}) but the binary is kubeadm {binary_version.tag}",
                    f"renew with a patched kubeadm of v{version.major}.{version.minor}; "
                    "kubeadm manages only the PKI of its own minor",
                )
            if config_text is None:
                node = derived_settings(before, root)
                text = render_config(binary_version, node, stored_periods=True)
                if verify.has_validity_config(binary_version):
                    notes.append(
                        "no --config: assuming the cluster's kubeadm-config ConfigMap stores "
                        f"certificateValidityPeriod: {verify.STORED_LEAF_HOURS}h, as kubeadm "
                        "writes it from v1.31 (pass --config with its ClusterConfiguration "
                        "after editing it, or renew with a --pin-validity build)")
            else:
                text = config_text
                if "pki/apiserver.crt" in before:
                    text = with_init_document(config_text, binary_version,
                                              derived_settings(before, root))
            (config_dir / "kubeadm.yaml").write_text(text)
            plan = plan_for(binary_version, before)
            for step in plan.steps:
                if step.aside:
                    _move_aside(kube, aside, step.aside)
                    commands.append(f"(move {' '.join(step.aside)} aside)")
                argv = renew_argv(step)
                commands.append(" ".join(["kubeadm", *argv[1:]]))
                code, output = box.capture([*prefix, *argv], user=user)
                if code != 0:
                    last = (output.strip().splitlines() or ["(no output)"])[-1]
                    raise VerifyError(f"`kubeadm {' '.join(argv[1:5])}` failed on the copy "
                                      f"(exit {code}): {last}")
        after, after_notes = inventory(kube)
    moment = now or datetime.now(UTC)
    rows = judge(before, after, plan.renewed, leaf_years, moment)
    return RenewReport(str(root), binary_version.tag, version.tag, version_from, leaf_years,
                       tuple(commands), tuple(rows), (),
                       tuple(notes + [n for n in after_notes if n not in notes]))


def _to_dict(report: RenewReport) -> dict[str, Any]:
    def seen(item: Seen | None) -> dict[str, Any] | None:
        if item is None:
            return None
        return {"subject": item.subject, "issuer": item.issuer,
                "not_after": verify._iso(item.not_after), "serial": format(item.serial, "x"),
                "public_key_sha256": item.public_key, "sans": list(item.sans),
                "signer": item.signer, "server": item.server}

    return {
        "etc": report.etc, "binary_version": report.binary_version,
        "pki_version": report.pki_version, "pki_version_from": report.pki_version_from,
        "leaf_years": report.leaf_years, "commands": list(report.commands),
        "passed": report.passed, "problems": list(report.problems), "notes": list(report.notes),
        "files": [{"file": r.file, "renewed": r.renewed, "ok": r.ok,
                   "problems": list(r.problems), "notes": list(r.notes),
                   "before": seen(r.before), "after": seen(r.after)} for r in report.rows],
    }
