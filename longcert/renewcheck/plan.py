"""What the dry run runs: the Kubernetes version that made the directory, the renewal of that
version (:func:`plan_for`, the one the kit's renew.sh runs) and its command lines, and the
config the renewal reads, made from the node's settings as its certificates show them when no
``--config`` is given (:func:`derived_settings`, :func:`render_config`); pure.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from longcert import kit, verify
from longcert.errors import ConfigError
from longcert.renewcheck.certs import Seen, read_file
from longcert.versions import KubeVersion

CONFIG_FILE = f"{verify.CONFIG_MOUNT}/kubeadm.yaml"


# --- which version made the directory, and which files the renewal re-issues --------------


def pki_version(root: Path, config_text: str | None) -> tuple[KubeVersion, str]:
    """(version, where it was read) of the cluster ``root`` was taken from."""
    manifest = root / "manifests" / "kube-apiserver.yaml"
    if manifest.is_file():
        try:
            pod = yaml.safe_load(read_file(manifest, root).decode()) or {}
            images = [str(c.get("image", "")) for c in pod["spec"]["containers"]]
        except (yaml.YAMLError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
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


# --- the node's settings, read back from its certificates ---------------------------------


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
        data = yaml.safe_load(read_file(admin, admin.parent).decode()) or {}
        return str(data["clusters"][0]["name"])
    except (OSError, yaml.YAMLError, UnicodeDecodeError, KeyError, IndexError, TypeError):
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
