"""From binary to cluster: the rollout kit of one verified build (``builds/<id>/kit/``).

A patched kubeadm alone does not give a running cluster long certificates. The kit holds what an
operator otherwise writes by hand for the exact Kubernetes version of the build: renewing the
existing certificates (with a backup), making kubelets rotate their own certificates, making the
controller-manager sign kubelet certificates for as long as the control plane's, letting nodes'
CSRs be approved, from v1.31 the kubeadm-config ConfigMap edit, installing the binary, a
kubespray snippet, and what a later stock kubeadm would undo.

Planning is pure (:func:`facts_for`, :func:`plan_kit`: version facts in, file texts out). Every
version-specific fact names the upstream change or file it comes from. :func:`write_kit` writes
the planned files into ``builds/<id>/kit/`` through a temporary directory and a rename.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from longcert import runs, verify
from longcert.errors import ConfigError, PublishError
from longcert.versions import KubeVersion

KIT_DIR = "kit"
# The kit as one file, beside the binaries: what publish carries (a release asset, a file in the
# shared directory). Reproducible: sorted members, fixed times and owners.
KIT_ARCHIVE = "kit.tar.gz"
DEFAULT_INSTALL_PATH = "/usr/bin/kubeadm"
HOURS_PER_YEAR = 8760  # kubeadm's 365-day year
# A registry host[:port] with an optional path: what kubeadm's imageRepository takes.
_REGISTRY = re.compile(
    r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*"
)
_INSTALL_PATH = re.compile(r"/[A-Za-z0-9._/+-]+")


# --- what differs between versions (pure data) ---------------------------------------------


@dataclass(frozen=True)
class KitFacts:
    """What one Kubernetes minor spells differently, each with its upstream source below."""

    version: KubeVersion
    config_api: str  # kubeadm.k8s.io/<version>: the API of the kit's cluster configuration
    cluster_kind: str  # MasterConfiguration (v1alpha1/2) or ClusterConfiguration
    # How controller-manager extra args are written: "controllerManagerExtraArgs" (a map at the
    # top level, v1alpha1-v1alpha3), "map" (controllerManager.extraArgs, v1beta1-v1beta3) or
    # "list" (controllerManager.extraArgs as [{name, value}], v1beta4 and v1).
    extra_args: str
    signing_flag: str  # kube-controller-manager's signing-duration flag
    old_signing_flag: str  # the flag this one replaces, removed from the manifest ("" if none)
    # "phases": `alpha phase certs all` on moved-away leaves (v1.9-v1.11); "phase-renew":
    # `alpha phase certs renew all` (v1.12); "alpha-certs" (v1.13-v1.19); "certs" (v1.20+).
    renewal: str
    renews_kubeconfigs: bool  # whether `certs renew all` re-makes the kubeconfigs (v1.15+)
    needs_config: bool  # the renewal needs the cluster's kubeadm config (kubeconfig phases)
    check_expiration: str  # kubeadm subcommand, "" where kubeadm has none (before v1.15)
    images_list: bool  # `kubeadm config images list` exists (v1.11+)
    # "dropin": kubelet flags in a systemd drop-in (v1.9, v1.10); "config-gate": kubelet config
    # fields plus the RotateKubeletServerCertificate gate (v1.11); "config": fields only.
    kubelet: str
    kubelet_configmap: str  # the kube-system ConfigMap kubeadm keeps the kubelet config in
    selfnodeserver: bool  # controller-manager can auto-approve serving CSRs (v1.9, v1.10)
    validity_fields: bool  # ClusterConfiguration has certificateValidityPeriod (v1.31+)
    upgrade_renewal_flag: bool  # `kubeadm upgrade apply --certificate-renewal` (v1.15+)
    etcd_certs: bool  # kubeadm makes etcd certificates (v1.10+)
    super_admin: bool  # super-admin.conf exists (v1.29+)

    @property
    def phase(self) -> str:
        """The phase command path: `alpha phase` up to v1.12, `init phase` after."""
        return "alpha phase" if self.version.minor < 13 else "init phase"

    @property
    def renew_all(self) -> str:
        """`certs renew all` as this version spells it ("" when it has none)."""
        return {
            "phases": "",
            "phase-renew": "alpha phase certs renew all",
            "alpha-certs": "alpha certs renew all",
            "certs": "certs renew all",
        }[self.renewal]


def facts_for(version: KubeVersion, config_api: str | None = None) -> KitFacts:
    """The kit facts of ``version``; ``config_api`` is the API the built binary printed (from
    manifest.json), else verify's table."""
    minor = (version.major, version.minor)
    api = config_api or verify.config_api(version)
    api_version = api.rsplit("/", 1)[-1]
    # Config API field layout: v1alpha1/v1alpha2 MasterConfiguration and v1alpha3
    # ClusterConfiguration carry `controllerManagerExtraArgs map[string]string`
    # (cmd/kubeadm/app/apis/kubeadm/v1alpha{1,2,3}/types.go); v1beta1 moved it to
    # `controllerManager: ControlPlaneComponent{extraArgs map}` (v1beta1/types.go,
    # kubernetes/kubernetes#70564); v1beta4 made extraArgs a list of {name, value}
    # (v1beta4/types.go `ExtraArgs []Arg`, kubernetes/kubernetes#119156); v1 is a copy of v1beta4
    # (kubernetes/kubernetes#136016).
    if api_version in ("v1alpha1", "v1alpha2"):
        kind, extra = "MasterConfiguration", "controllerManagerExtraArgs"
    elif api_version == "v1alpha3":
        kind, extra = "ClusterConfiguration", "controllerManagerExtraArgs"
    elif api_version in ("v1beta1", "v1beta2", "v1beta3"):
        kind, extra = "ClusterConfiguration", "map"
    else:
        kind, extra = "ClusterConfiguration", "list"
    # kube-controller-manager: --cluster-signing-duration came in v1.19 and deprecated
    # --experimental-cluster-signing-duration (kubernetes/kubernetes#91154), which v1.25
    # removed (kubernetes/kubernetes#108476).
    if minor >= (1, 19):
        signing = "--cluster-signing-duration"
        old = "--experimental-cluster-signing-duration"
    else:
        signing, old = "--experimental-cluster-signing-duration", ""
    # Renewal: v1.12 added `kubeadm alpha phase certs renew` (website release-1.12 generated
    # docs kubeadm_alpha_phase_certs_renew_all.md); v1.13 moved it to `kubeadm alpha certs
    # renew` (kubernetes/kubernetes#68924 comment of 2018-10-26, kubeadm-certs.md of the v1beta1
    # era); from v1.15 it also renews the kubeconfigs (kubernetes/kubernetes#77180,
    # kubernetes/kubeadm#1361); v1.20 added top-level `kubeadm certs` (kubernetes/kubernetes#94938)
    # and v1.21 removed `alpha certs` (kubernetes/kubernetes#97706, kubernetes/kubeadm#2291).
    if minor >= (1, 20):
        renewal = "certs"
    elif minor >= (1, 13):
        renewal = "alpha-certs"
    elif minor == (1, 12):
        renewal = "phase-renew"
    else:
        renewal = "phases"
    renews_kubeconfigs = minor >= (1, 15)
    # `certs check-expiration`: v1.15 as `alpha certs` (kubernetes/kubernetes#77863,
    # cmd/kubeadm/app/cmd/alpha/certs.go newCmdCertsExpiration), top-level from v1.20.
    if minor >= (1, 20):
        check = "certs check-expiration"
    elif minor >= (1, 15):
        check = "alpha certs check-expiration"
    else:
        check = ""
    # kubelet rotation: client rotation (--rotate-certificates, gate RotateKubeletClientCertificate
    # beta and on by default since v1.8); serving rotation behind RotateKubeletServerCertificate
    # (kubernetes/kubernetes#45059), beta and on by default from v1.12 (pkg/features/
    # kube_features.go); the KubeletConfiguration fields rotateCertificates/serverTLSBootstrap
    # (staging/src/k8s.io/kubelet/config/v1beta1/types.go) are what kubeadm writes to
    # /var/lib/kubelet/config.yaml from v1.11 (kubeadm's kubelet phase); v1.9/v1.10 kubeadm
    # configures the kubelet by flags in 10-kubeadm.conf.
    if minor >= (1, 12):
        kubelet = "config"
    elif minor == (1, 11):
        kubelet = "config-gate"
    else:
        kubelet = "dropin"
    # kubeadm keeps the kubelet config in kube-system ConfigMap kubelet-config-1.X from v1.11,
    # and in the unversioned kubelet-config from v1.24 (UnversionedKubeletConfigMap,
    # kubernetes/kubeadm#1582).
    if minor >= (1, 24):
        configmap = "kubelet-config"
    elif minor >= (1, 11):
        configmap = f"kubelet-config-{version.minor_str}"
    else:
        configmap = ""
    return KitFacts(
        version=version,
        config_api=api,
        cluster_kind=kind,
        extra_args=extra,
        signing_flag=signing,
        old_signing_flag=old,
        renewal=renewal,
        renews_kubeconfigs=renews_kubeconfigs,
        needs_config=not renews_kubeconfigs,
        check_expiration=check,
        # `kubeadm config images list` came with v1.11 (cmd/kubeadm/app/cmd/config.go
        # NewCmdConfigImagesList, kubernetes/kubernetes#61810).
        images_list=minor >= (1, 11),
        kubelet=kubelet,
        kubelet_configmap=configmap,
        # The controller-manager auto-approved kubelet serving CSRs (subresource selfnodeserver,
        # behind RotateKubeletServerCertificate) from v1.8 (kubernetes/kubernetes#46884) until
        # v1.11 removed it (kubernetes/kubernetes#62471).
        selfnodeserver=minor < (1, 11),
        # v1beta4 (v1.31) added certificateValidityPeriod / caCertificateValidityPeriod
        # (kubernetes/kubernetes#124652).
        validity_fields=verify.has_validity_config(version),
        # v1.15 made `kubeadm upgrade apply` renew every certificate, with
        # --certificate-renewal=false to opt out (kubernetes/kubernetes#76862).
        upgrade_renewal_flag=minor >= (1, 15),
        etcd_certs=minor >= (1, 10),
        super_admin=minor >= (1, 29),
    )


def duration(years: int) -> str:
    """A Go duration string of ``years`` 365-day years, as kubeadm prints it (87600h0m0s)."""
    return f"{years * HOURS_PER_YEAR}h0m0s"


def leaf_files(facts: KitFacts) -> tuple[str, ...]:
    """Leaf certificate files (relative to /etc/kubernetes/pki, without .crt) renew.sh re-makes
    and prints."""
    return tuple(n for n in verify.expected_certs(facts.version) if n not in verify.CA_CERTS)


def kubeconfig_files(facts: KitFacts) -> tuple[str, ...]:
    """Kubeconfigs with an embedded client certificate that renewal re-makes; kubelet.conf is
    handled on its own (it points at the kubelet's rotated certificate once rotation is on)."""
    return tuple(c for c in verify.expected_kubeconfigs(facts.version) if c != "kubelet.conf")


# --- the kit's inputs ------------------------------------------------------------------------


@dataclass(frozen=True)
class KitInputs:
    """What a kit is written from: the build (checked by load_build) and the flags."""

    build_id: str
    tag: str
    leaf_years: int
    ca_years: int
    pinned: bool
    binaries: Mapping[str, str]  # linux platform -> sha256 of kubeadm-linux-<arch>
    config_api: str = ""  # the API the binary printed in verification, "" if unknown
    image_repository: str = ""
    install_path: str = DEFAULT_INSTALL_PATH
    images: tuple[str, ...] = field(default=())  # `kubeadm config images list` output lines

    @property
    def version(self) -> KubeVersion:
        return KubeVersion.parse(self.tag)


def check_image_repository(value: str | None) -> str:
    """``--image-repository``: a registry host[:port][/path], no tag, no scheme."""
    if not value:
        return ""
    if not _REGISTRY.fullmatch(value):
        raise ConfigError(
            f"--image-repository {value!r} is not a registry path",
            "give HOST[:PORT][/PATH] such as registry.example.com/k8s, without a scheme or tag",
        )
    return value


def check_install_path(value: str | None) -> str:
    """``--install-path``: an absolute path without spaces or shell characters."""
    if not value:
        return DEFAULT_INSTALL_PATH
    if not _INSTALL_PATH.fullmatch(value) or "/../" in value + "/" or value.endswith("/"):
        raise ConfigError(
            f"--install-path {value!r} is not an absolute file path",
            "for example /usr/bin/kubeadm or /usr/local/bin/kubeadm",
        )
    return value


def inputs_from_build(
    build: Any, image_repository: str = "", install_path: str = DEFAULT_INSTALL_PATH
) -> KitInputs:
    """KitInputs of a loaded :class:`longcert.publish.Build` (already checked by load_build)."""
    manifest = build.manifest
    pinned = str(manifest.get("config_override", "")).startswith("ignored")
    binaries = {
        f.platform: f.sha256 for f in build.binaries if f.platform.startswith("linux/")
    }
    if not binaries:
        raise ConfigError(
            f"{build.path}: the build has no linux binary, and a kit installs one",
            "build with a linux platform (--platforms linux/amd64)",
        )
    platforms = (manifest.get("verification") or {}).get("platforms") or {}
    native = platforms.get(verify.NATIVE_PLATFORM) or {}
    api = str(native.get("config_api", ""))
    return KitInputs(
        build_id=build.build_id,
        tag=build.tag,
        leaf_years=build.leaf_years,
        ca_years=build.ca_years,
        pinned=pinned,
        binaries=binaries,
        config_api=api if verify.CONFIG_API.fullmatch(api) else "",
        image_repository=image_repository,
        install_path=install_path,
    )


# --- the planned files (pure) ----------------------------------------------------------------


def cluster_configuration(inputs: KitInputs, facts: KitFacts) -> dict[str, Any]:
    """The ClusterConfiguration (MasterConfiguration before v1alpha3) the kit hands kubeadm:
    kubernetesVersion, imageRepository, the controller-manager signing duration and (v1.31+)
    the validity periods."""
    value = duration(inputs.leaf_years)
    flag = facts.signing_flag.removeprefix("--")
    doc: dict[str, Any] = {
        "apiVersion": facts.config_api,
        "kind": facts.cluster_kind,
        "kubernetesVersion": inputs.tag,
    }
    if inputs.image_repository:
        doc["imageRepository"] = inputs.image_repository
    if facts.extra_args == "controllerManagerExtraArgs":
        doc["controllerManagerExtraArgs"] = {flag: value}
    elif facts.extra_args == "map":
        doc["controllerManager"] = {"extraArgs": {flag: value}}
    else:
        doc["controllerManager"] = {"extraArgs": [{"name": flag, "value": value}]}
    if facts.validity_fields:
        doc["certificateValidityPeriod"] = value
        doc["caCertificateValidityPeriod"] = duration(inputs.ca_years)
    return doc


def kubelet_settings(facts: KitFacts) -> tuple[str, str]:
    """(file name, text) of the kubelet rotation settings for the version."""
    if facts.kubelet == "dropin":
        text = (
            "# systemd drop-in: /etc/systemd/system/kubelet.service.d/20-longcert-rotation.conf\n"
            f"# kubelet {facts.version.minor_str}: client and serving certificate rotation by\n"
            "# flag (kubeadm of this version configures the kubelet by flags in 10-kubeadm.conf).\n"
            "# Serving rotation is alpha here: the feature gate must be on, on the kubelet and\n"
            "# (for auto-approval) on the controller-manager.\n"
            "[Service]\n"
            'Environment="KUBELET_EXTRA_ARGS=--rotate-certificates=true '
            '--feature-gates=RotateKubeletServerCertificate=true"\n'
        )
        return "kubelet-rotation.conf", text
    doc: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "rotateCertificates": True,
        "serverTLSBootstrap": True,
    }
    if facts.kubelet == "config-gate":
        doc["featureGates"] = {"RotateKubeletServerCertificate": True}
    header = (
        "# Merge these fields into /var/lib/kubelet/config.yaml on every node (then\n"
        "# `systemctl restart kubelet`), and into the kube-system ConfigMap\n"
        f"# {facts.kubelet_configmap} so that joins and upgrades keep them.\n"
    )
    return "kubelet-rotation.yaml", header + yaml.safe_dump(doc, sort_keys=False)


SERVING_SECURITY_NOTE = (
    "Auto-approving kubelet serving certificates lets any node that holds a valid node client "
    "certificate obtain a serving certificate for the names and IP addresses it asks for: "
    "nothing checks that the node really owns them, so a compromised node can pose as another "
    "endpoint to every client that trusts the cluster CA for serving (kube-apiserver -> kubelet "
    "with --kubelet-certificate-authority, metrics-server). Approve serving CSRs by hand "
    "(`kubectl get csr`, check the SANs, `kubectl certificate approve NAME`) or with an approver "
    "that checks names against your inventory."
)


def rbac_manifest(facts: KitFacts) -> str:
    """ClusterRoleBindings letting nodes' client (and, v1.9/v1.10, serving) CSRs be approved."""
    docs: list[dict[str, Any]] = []
    # The bindings kubeadm itself makes at init (cmd/kubeadm/app/phases/bootstraptoken/node/
    # tlsbootstrap.go: kubeadm:node-autoapprove-bootstrap, kubeadm:node-autoapprove-certificate-
    # rotation), to the bootstrap policy roles .../nodeclient and .../selfnodeclient that the
    # controller-manager's csrapproving controller checks (pkg/controller/certificates/approver/
    # sarapprove.go). Re-applying them is harmless; they repair a cluster that lost them.
    for name, role, kind, subject in (
        (
            "kubeadm:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            "Group",
            "system:bootstrappers:kubeadm:default-node-token",
        ),
        (
            "kubeadm:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            "Group",
            "system:nodes",
        ),
    ):
        docs.append(_binding(name, role, kind, subject))
    if facts.selfnodeserver:
        # v1.9/v1.10: sarapprove.go approves a node's own serving CSR when the node may create
        # certificatesigningrequests/selfnodeserver (kubernetes/kubernetes#46884; removed in
        # v1.11 by kubernetes/kubernetes#62471). No bootstrap role grants it: this one does.
        role = "longcert:certificatesigningrequests:selfnodeserver"
        docs.append({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": role},
            "rules": [{
                "apiGroups": ["certificates.k8s.io"],
                "resources": ["certificatesigningrequests/selfnodeserver"],
                "verbs": ["create"],
            }],
        })
        docs.append(_binding("longcert:node-autoapprove-serving", role, "Group", "system:nodes"))
    note = "\n".join(f"# {line}" for line in _wrap(SERVING_SECURITY_NOTE, 96))
    serving = (
        "# Serving CSRs: the controller-manager of this version approves them itself once the\n"
        "# RotateKubeletServerCertificate gate is on there (binding below).\n"
        if facts.selfnodeserver
        else "# Serving CSRs: since v1.11 no controller-manager approves them\n"
        "# (kubernetes/kubernetes#62471); approve them by hand or run an approver.\n"
    )
    return (
        "# Node CSR approval for kubelet certificate rotation. Apply: kubectl apply -f rbac.yaml\n"
        + serving
        + note
        + "\n"
        + yaml.safe_dump_all(docs, sort_keys=False)
    )


def _binding(name: str, role: str, kind: str, subject: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject}],
    }


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines


def kubeadm_config_patch(inputs: KitInputs) -> str:
    """v1.31+: the ClusterConfiguration fields to store in the kubeadm-config ConfigMap."""
    doc = {
        "certificateValidityPeriod": duration(inputs.leaf_years),
        "caCertificateValidityPeriod": duration(inputs.ca_years),
    }
    return (
        "# Fields to set in the ClusterConfiguration of ConfigMap kube-system/kubeadm-config\n"
        "# (data.ClusterConfiguration). kubeadm-config.sh does it; see README.md.\n"
        + yaml.safe_dump(doc, sort_keys=False)
    )


def kubeadm_config_script(inputs: KitInputs) -> str:
    """v1.31+: a ready script that sets the two fields in the kubeadm-config ConfigMap."""
    leaf, ca = duration(inputs.leaf_years), duration(inputs.ca_years)
    return f"""#!/usr/bin/env bash
# Set certificateValidityPeriod={leaf} and caCertificateValidityPeriod={ca} in the
# ClusterConfiguration kubeadm stores in ConfigMap kube-system/kubeadm-config. kubeadm {inputs.tag}
# (v1.31+) takes the validity from there on `certs renew` and `upgrade`, and every existing
# cluster stores 8760h0m0s / 87600h0m0s, which would win over the patched defaults.
# --dry-run prints the new ClusterConfiguration instead of applying it. Needs kubectl with
# cluster-admin (KUBECONFIG or /etc/kubernetes/admin.conf).
set -euo pipefail
export KUBECONFIG="${{KUBECONFIG:-/etc/kubernetes/admin.conf}}"
current="$(kubectl -n kube-system get configmap kubeadm-config \\
  -o jsonpath='{{.data.ClusterConfiguration}}')"
[ -n "$current" ] || {{ echo "kubeadm-config.sh: no data.ClusterConfiguration in" \\
  "kube-system/kubeadm-config" >&2; exit 1; }}
updated="$(printf '%s\\n' "$current" \\
  | grep -v -E '^(certificateValidityPeriod|caCertificateValidityPeriod):'
  printf 'certificateValidityPeriod: {leaf}\\ncaCertificateValidityPeriod: {ca}\\n')"
if [ "${{1:-}}" = "--dry-run" ]; then
  printf '%s\\n' "$updated"
  exit 0
fi
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
printf '%s\\n' "$updated" > "$tmp"
kubectl -n kube-system create configmap kubeadm-config --from-file=ClusterConfiguration="$tmp" \\
  --dry-run=client -o yaml | kubectl -n kube-system patch configmap kubeadm-config \\
  --type merge --patch-file /dev/stdin
echo "kubeadm-config: certificateValidityPeriod={leaf} caCertificateValidityPeriod={ca}"
"""


def _arch(platform: str) -> str:
    return platform.split("/", 1)[1]


def _uname_arch(arch: str) -> str:
    return {"amd64": "x86_64", "arm64": "aarch64", "arm": "armv7l", "386": "i686"}.get(arch, arch)


def install_script(inputs: KitInputs) -> str:
    """install.sh: check the binary's sha256, check `kubeadm version`, keep the old one beside."""
    cases = "\n".join(
        f"  {_uname_arch(_arch(p))}) arch={_arch(p)}; sum={s} ;;"
        for p, s in sorted(inputs.binaries.items())
    )
    return f"""#!/usr/bin/env bash
# Install the longcert kubeadm {inputs.tag} ({inputs.build_id}) as {inputs.install_path}.
# Order: the binary's sha256 is checked first (sha256sum -c), then `kubeadm version` must
# report {inputs.tag}; only then is the old binary kept beside it (<path>.pre-longcert-<time>)
# and the new one moved into place. Re-running with the same binary changes nothing.
# Usage: install.sh [--dry-run] [--from DIR] [--to PATH]
#   --from DIR  where kubeadm-linux-<arch> is (default: the build directory above the kit)
set -euo pipefail
tag={inputs.tag}
target={inputs.install_path}
from="$(cd "$(dirname "$0")/.." && pwd)"
dry_run=0
die() {{ echo "install.sh: $*" >&2; exit 1; }}
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --from) from="${{2:?--from needs a directory}}"; shift ;;
    --to) target="${{2:?--to needs a path}}"; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
case "$(uname -m)" in
{cases}
  *) die "no kubeadm of this build for $(uname -m)" ;;
esac
binary="kubeadm-linux-$arch"
[ -f "$from/$binary" ] || die "$from/$binary is missing (pass --from DIR)"
(cd "$from" && echo "$sum  $binary" | sha256sum -c --quiet -) \\
  || die "$from/$binary does not have the sha256 this kit was made for"
reported="$("$from/$binary" version -o short 2>/dev/null || true)"
[ "$reported" = "$tag" ] || die "$from/$binary reports version '$reported', not $tag"
if [ -f "$target" ] && echo "$sum  $target" | sha256sum -c --quiet - >/dev/null 2>&1; then
  echo "$target is already the longcert kubeadm $tag: nothing to do"
  exit 0
fi
[ "$dry_run" = 1 ] || [ "$(id -u)" = 0 ] || [ -w "$(dirname "$target")" ] \\
  || die "cannot write $(dirname "$target"): run as root"
run() {{ echo "+ $*"; [ "$dry_run" = 1 ] || "$@"; }}
if [ -e "$target" ]; then
  run cp -p "$target" "$target.pre-longcert-$(date -u +%Y%m%dT%H%M%SZ)"
fi
run install -m 0755 "$from/$binary" "$target.longcert-new"
run mv -f "$target.longcert-new" "$target"
[ "$dry_run" = 1 ] || echo "installed $target: $("$target" version -o short)"
"""


def kubespray_snippet(inputs: KitInputs) -> str:
    """group_vars lines: where kubespray downloads kubeadm, and the checksum it must accept."""
    arches = {_arch(p): s for p, s in sorted(inputs.binaries.items())}
    checksums = "\n".join(
        f"  {arch}:\n    {inputs.tag}: {s}" for arch, s in arches.items()
    )
    return f"""# kubespray group_vars, e.g. inventory/<cluster>/group_vars/k8s_cluster/longcert.yml.
# kubespray checks every download against kubeadm_checksums[image_arch][kube_version]
# (roles/kubespray_defaults/defaults/main/download.yml) and refuses a binary that is not the
# official one: point kubeadm_download_url at this build and add its checksum.
# Set longcert_download_base to where the build's files are served; newer kubespray spells
# kube_version without the "v" (then use {inputs.tag.removeprefix("v")} as the key).
kube_version: {inputs.tag}
longcert_download_base: "https://CHANGE-ME.example/{inputs.build_id}"
kubeadm_download_url: "{{{{ longcert_download_base }}}}/kubeadm-linux-{{{{ image_arch }}}}"
kubeadm_checksums:
{checksums}
"""


def upgrade_note(facts: KitFacts, inputs: KitInputs) -> str:
    """What a stock kubeadm run later does to the certificates, and both ways out."""
    minor = facts.version.minor_str
    flag = (
        "`kubeadm upgrade apply vNEW --certificate-renewal=false` (and the same flag on "
        "`kubeadm upgrade node`) keeps the long certificates through an upgrade with a stock "
        "binary (the flag exists from v1.15, kubernetes/kubernetes#76862)"
        if facts.upgrade_renewal_flag
        else f"kubeadm {minor} has no `--certificate-renewal` flag (it came with v1.15): a stock "
        "`kubeadm upgrade apply` re-issues the API server certificate when it expires within "
        "180 days and the etcd certificates when it upgrades etcd, so the only way out here is "
        "the patched binary"
    )
    renew = f"`kubeadm {facts.renew_all}`" if facts.renew_all else "`kubeadm alpha phase certs`"
    return (
        "## Upgrades: a stock kubeadm undoes this\n\n"
        f"A stock kubeadm run later ({renew}, `kubeadm upgrade apply`) re-issues certificates "
        "for one year. Two ways out:\n\n"
        "1. Upgrade with the patched kubeadm of the new version: build it (`invoke build "
        f"--version vNEW --years {inputs.leaf_years}`), write its kit, install it with its "
        "`install.sh`, then `kubeadm upgrade apply vNEW`.\n"
        f"2. {flag[0].upper()}{flag[1:]}.\n"
    )


def _check_command(facts: KitFacts, kubeadm: str) -> str:
    if facts.check_expiration:
        return f"{kubeadm} {facts.check_expiration}"
    return (
        "for f in /etc/kubernetes/pki/*.crt /etc/kubernetes/pki/etcd/*.crt; do "
        'echo "$f $(openssl x509 -noout -enddate -in "$f")"; done'
    )


def readme(inputs: KitInputs, facts: KitFacts, files: list[str]) -> str:
    """The kit's README.md: order of steps, what each does, checking, rolling back."""
    tag, minor = inputs.tag, facts.version.minor_str
    kubeadm = inputs.install_path
    kubelet_file, _ = kubelet_settings(facts)
    steps = [
        f"1. **Install the binary** on every control-plane node: `sudo ./install.sh`. It checks "
        f"the sha256 (`sha256sum -c`), that `kubeadm version` says {tag}, keeps the old binary "
        f"as `{kubeadm}.pre-longcert-<time>` and puts the new one at `{kubeadm}`.",
    ]
    if facts.validity_fields:
        if inputs.pinned:
            stored = (
                "This build is `--pin-validity`: it ignores the stored periods, so this step "
                "is optional; it still makes a stock kubeadm of this version issue long "
                "certificates."
            )
        else:
            stored = (
                "**Required for this build** (not `--pin-validity`): every existing cluster "
                "stores `certificateValidityPeriod: 8760h0m0s`, which wins over the patched "
                "defaults, so without this edit the renewal still gives one year."
            )
        steps.append(
            "2. **Store the validity in the cluster's configuration** (once per cluster): "
            "`./kubeadm-config.sh` (or `--dry-run` first) sets `certificateValidityPeriod: "
            f"{duration(inputs.leaf_years)}` and `caCertificateValidityPeriod: "
            f"{duration(inputs.ca_years)}` in ConfigMap kube-system/kubeadm-config "
            f"(`kubeadm-config-patch.yaml` holds the fields). {stored}"
        )
    steps += [
        f"{len(steps) + 1}. **Renew** on every control-plane node, one at a time: "
        "`sudo ./renew.sh --dry-run`, then `sudo ./renew.sh`. It checks the node (root, a "
        f"control plane of {minor}, the longcert kubeadm installed), backs up /etc/kubernetes "
        f"to `/etc/kubernetes.longcert-backup-<time>`, runs {_renew_words(facts)}, sets "
        f"`{facts.signing_flag}={duration(inputs.leaf_years)}` in the kube-controller-manager "
        "manifest, prints each file's new expiry and says which static pods to restart. "
        "A second run finds every certificate long already and changes nothing but the backup.",
        f"{len(steps) + 2}. **Restart** the control-plane static pods as renew.sh prints "
        "(kube-apiserver, kube-controller-manager, kube-scheduler, etcd): move each manifest "
        "out of /etc/kubernetes/manifests, wait until the pod is gone (`crictl ps`), move it "
        "back. Copy the new admin.conf to `~/.kube/config`.",
        f"{len(steps) + 3}. **Kubelet rotation** on every node: `{kubelet_file}` "
        + (
            "is a systemd drop-in; put it in /etc/systemd/system/kubelet.service.d/, "
            "`systemctl daemon-reload && systemctl restart kubelet`."
            if facts.kubelet == "dropin"
            else f"holds the KubeletConfiguration fields; merge them into "
            f"/var/lib/kubelet/config.yaml and ConfigMap kube-system/{facts.kubelet_configmap}, "
            "then `systemctl restart kubelet`."
        ),
        f"{len(steps) + 4}. **CSR approval**: `kubectl apply -f rbac.yaml`. Read its note on "
        "serving certificates first.",
        f"{len(steps) + 5}. **New clusters and upgrades** use `cluster-configuration.yaml` "
        f"({facts.cluster_kind}, {facts.config_api}): `kubeadm init --config` it (with your "
        "own InitConfiguration), or keep its fields in kubeadm-config.",
    ]
    images = ""
    if inputs.image_repository:
        if inputs.images:
            listed = "\n".join(inputs.images)
            images = (
                f"\n## Images to mirror to {inputs.image_repository}\n\n"
                f"`kubeadm config images list --config cluster-configuration.yaml`, run with "
                f"this build's kubeadm (offline), lists what the cluster will pull "
                f"(also in `images.txt`):\n\n```\n{listed}\n```\n"
            )
        else:
            images = (
                f"\n## Images to mirror to {inputs.image_repository}\n\n"
                f"kubeadm {minor} has no `kubeadm config images list` (it came with v1.11); "
                "mirror kube-apiserver, kube-controller-manager, kube-scheduler and kube-proxy "
                f"(`-amd64` names) at {tag}, and the etcd, pause and kube-dns images this "
                "release's constants name.\n"
            )
    check = _check_command(facts, kubeadm)
    years = f"leaf certificates {inputs.leaf_years}y, CAs {inputs.ca_years}y"
    return f"""# Rollout kit: kubeadm {tag}, {years}

Build `{inputs.build_id}`. Everything here is written for Kubernetes {minor} only:
its commands, flags and config fields differ from other versions'.

Files: {", ".join(f"`{f}`" for f in files)}.

## Order of steps

{chr(10).join(steps)}

The CAs are never renewed by kubeadm: an existing cluster keeps the CA it has (10 years from
its creation with a stock kubeadm). Leaves cannot outlive their CA.

## Checking expiry

```
{check}
openssl x509 -noout -enddate -in /etc/kubernetes/pki/apiserver.crt
```

Kubeconfigs: `grep client-certificate-data /etc/kubernetes/admin.conf | awk '{{print $2}}' |
base64 -d | openssl x509 -noout -enddate`.
{images}
## Rolling back

renew.sh printed its backup directory. To go back on that node:

```
sudo mv /etc/kubernetes /etc/kubernetes.longcert-failed
sudo cp -a /etc/kubernetes.longcert-backup-<time> /etc/kubernetes
```

then restart the static pods and the kubelet as above. install.sh kept the old kubeadm as
`{kubeadm}.pre-longcert-<time>`: move it back to `{kubeadm}`.

{upgrade_note(facts, inputs)}"""


def _renew_words(facts: KitFacts) -> str:
    if facts.renewal == "phases":
        return (
            f"`kubeadm {facts.phase} certs all` and `kubeadm {facts.phase} kubeconfig all` "
            "on the leaves and kubeconfigs it first moves away (this version has no renew "
            "command)"
        )
    words = f"`kubeadm {facts.renew_all}`"
    if not facts.renews_kubeconfigs:
        words += f" then `kubeadm {facts.phase} kubeconfig all` for the kubeconfigs it moved away"
    return words


def renew_script(inputs: KitInputs, facts: KitFacts) -> str:
    """renew.sh for the version: checks, backup, renewal, controller-manager flag, expiries."""
    sums = " ".join(sorted(inputs.binaries.values()))
    leaves = " ".join(leaf_files(facts))
    confs = " ".join(kubeconfig_files(facts))
    signing = f"{facts.signing_flag}={duration(inputs.leaf_years)}"
    renew_body = _renew_body(facts)
    etcd = " and etcd" if facts.etcd_certs else ""
    config_body = _config_body(facts) if facts.needs_config else ""
    config_default = (
        "(default: read with `kubeadm config view`)"
        if facts.needs_config
        else "(default: kubeadm reads kubeadm-config)"
    )
    return f"""#!/usr/bin/env bash
# longcert rollout kit: renew the certificates of a kubeadm {facts.version.minor_str} control-plane
# node with the patched kubeadm {inputs.tag} ({inputs.build_id}): leaves {inputs.leaf_years}y.
#
# Usage: renew.sh [--dry-run] [--force] [--config FILE] [--kubeadm PATH]
#   --dry-run      print every command instead of running it (no root needed)
#   --force        renew even when every certificate is long already
#   --config FILE  the cluster's kubeadm config {config_default}
#   --kubeadm PATH the patched kubeadm (default {inputs.install_path})
# LONGCERT_KUBERNETES_DIR overrides /etc/kubernetes for the checks (kubeadm uses its defaults).
set -euo pipefail
TAG={inputs.tag}
MINOR={facts.version.minor_str}
LEAF_DAYS={inputs.leaf_years * 365}
KIT_SHA256S="{sums}"
LEAVES="{leaves}"
KUBECONFIGS="{confs}"
SIGNING_FLAG={facts.signing_flag}
OLD_SIGNING_FLAG={facts.old_signing_flag or '""'}
SIGNING_ARG={signing}
KUBE_DIR="${{LONGCERT_KUBERNETES_DIR:-/etc/kubernetes}}"
SEMVER='(v[0-9]+\\.[0-9]+\\.[0-9]+)'
IMAGE_TAG="^[[:space:]]*image:[[:space:]]*[^[:space:]]*kube-apiserver[^:]*:$SEMVER.*"
KUBEADM={inputs.install_path}
DRY_RUN=0
FORCE=0
CONFIG=""
die() {{ echo "renew.sh: $*" >&2; exit 1; }}
note() {{ echo "renew.sh: $*"; }}
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --force) FORCE=1 ;;
    --config) CONFIG="${{2:?--config needs a file}}"; shift ;;
    --kubeadm) KUBEADM="${{2:?--kubeadm needs a path}}"; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
# run: print the command; run it unless --dry-run.
run() {{ echo "+ $*"; [ "$DRY_RUN" = 1 ] || "$@"; }}

# --- the node: a control plane of $MINOR, root, the patched kubeadm ------------------------
node_version() {{
  local manifest="$KUBE_DIR/manifests/kube-apiserver.yaml" found=""
  if [ -f "$manifest" ]; then
    found="$(sed -n -E "s/$IMAGE_TAG/\\1/p" "$manifest" | head -n 1)"
  fi
  if [ -z "$found" ] && command -v kubectl >/dev/null 2>&1 && [ -f "$KUBE_DIR/admin.conf" ]; then
    found="$(kubectl --kubeconfig "$KUBE_DIR/admin.conf" version -o json 2>/dev/null \\
      | sed -n -E "/serverVersion/,\\$ s/.*\\"gitVersion\\": *\\"$SEMVER.*/\\1/p" | head -n 1)"
  fi
  echo "$found"
}}
if [ ! -f "$KUBE_DIR/manifests/kube-apiserver.yaml" ]; then
  if [ "$DRY_RUN" = 1 ]; then
    note "dry run: $KUBE_DIR/manifests/kube-apiserver.yaml is missing (not a control-plane node?)"
  else
    die "$KUBE_DIR/manifests/kube-apiserver.yaml is missing: run this on a control-plane node"
  fi
else
  running="$(node_version)"
  [ -n "$running" ] || die "cannot tell the Kubernetes version of this node (no kube-apiserver"\\
" image tag in $KUBE_DIR/manifests/kube-apiserver.yaml, no kubectl version)"
  case "$running" in
    "v$MINOR".*) ;;
    *) die "this node runs Kubernetes $running, this kit is for $MINOR ($TAG):"\\
" use the kit of a build of $running" ;;
  esac
fi
if [ "$DRY_RUN" != 1 ] && [ "$(id -u)" != 0 ]; then
  die "must run as root (sudo ./renew.sh), or pass --dry-run to see the commands"
fi
installed=""
if [ -f "$KUBEADM" ]; then installed="$(sha256sum "$KUBEADM" | awk '{{print $1}}')"; fi
case " $KIT_SHA256S " in
  *" $installed "*) [ -n "$installed" ] || installed=none ;;
  *) installed=none ;;
esac
if [ "$installed" = none ]; then
  if [ "$DRY_RUN" = 1 ]; then
    note "dry run: $KUBEADM is not the longcert kubeadm $TAG yet (install.sh installs it)"
  else
    die "$KUBEADM is not the longcert kubeadm $TAG of this kit: run install.sh first"\\
" (a stock kubeadm renews for one year)"
  fi
fi

# --- is there anything to renew? -----------------------------------------------------------
days_of() {{  # total validity in days of a PEM certificate on stdin
  local pem start end
  pem="$(cat)"
  start="$(printf '%s\\n' "$pem" | openssl x509 -noout -startdate | cut -d= -f2)"
  end="$(printf '%s\\n' "$pem" | openssl x509 -noout -enddate | cut -d= -f2)"
  echo $(( ($(date -u -d "$end" +%s) - $(date -u -d "$start" +%s)) / 86400 ))
}}
kubeconfig_cert() {{  # the client certificate a kubeconfig embeds, as PEM
  sed -n -E 's/^[[:space:]]*client-certificate-data:[[:space:]]*//p' "$1" | head -n 1 | base64 -d
}}
short_files() {{  # every leaf or kubeconfig certificate shorter than LEAF_DAYS
  local name days
  for name in $LEAVES; do
    [ -f "$KUBE_DIR/pki/$name.crt" ] || continue
    days="$(days_of < "$KUBE_DIR/pki/$name.crt")"
    [ "$days" -ge $((LEAF_DAYS - 1)) ] || echo "pki/$name.crt"
  done
  for name in $KUBECONFIGS; do
    [ -f "$KUBE_DIR/$name" ] && grep -q client-certificate-data "$KUBE_DIR/$name" || continue
    days="$(kubeconfig_cert "$KUBE_DIR/$name" | days_of)"
    [ "$days" -ge $((LEAF_DAYS - 1)) ] || echo "$name"
  done
}}
RENEW=1
if [ "$FORCE" != 1 ] && [ -d "$KUBE_DIR/pki" ] && command -v openssl >/dev/null 2>&1; then
  short="$(short_files)"
  if [ -z "$short" ]; then
    RENEW=0
    note "every certificate is valid for $LEAF_DAYS days already: nothing to renew"\\
" (--force renews anyway)"
  else
    note "to renew: $(echo $short)"
  fi
fi

# --- backup ----------------------------------------------------------------------------------
BACKUP="$KUBE_DIR.longcert-backup-$(date -u +%Y%m%dT%H%M%SZ)"
if [ -d "$KUBE_DIR" ]; then
  need_kb="$(du -sk "$KUBE_DIR" | awk '{{print $1}}')"
  free_kb="$(df -Pk "$(dirname "$KUBE_DIR")" | awk 'NR==2 {{print $4}}')"
  if [ "$free_kb" -lt $((need_kb * 2 + 10240)) ]; then
    die "not enough free space for the backup: $need_kb KiB needed twice,"\\
" $free_kb KiB free on $(dirname "$KUBE_DIR")"
  fi
fi
run cp -a "$KUBE_DIR" "$BACKUP"

# --- renewal ---------------------------------------------------------------------------------
{config_body}if [ "$RENEW" = 1 ]; then
{renew_body}fi

# --- kube-controller-manager: sign kubelet certificates for as long ---------------------------
KCM="$KUBE_DIR/manifests/kube-controller-manager.yaml"
if [ ! -f "$KCM" ] && [ "$DRY_RUN" != 1 ]; then
  note "$KCM is missing: set $SIGNING_ARG on this node's kube-controller-manager yourself"
elif [ -f "$KCM" ] && grep -q -- "- $SIGNING_ARG\\$" "$KCM"; then
  note "kube-controller-manager already has $SIGNING_ARG"
else
  if [ -n "$OLD_SIGNING_FLAG" ]; then
    run sed -i -e "/- $OLD_SIGNING_FLAG=/d" "$KCM"
  fi
  run sed -i -e "/- $SIGNING_FLAG=/d" "$KCM"
  run sed -i -E -e "s|^([[:space:]]*)- kube-controller-manager\\$|&\\n\\1- $SIGNING_ARG|" "$KCM"
fi

# --- what it gave ----------------------------------------------------------------------------
if [ "$DRY_RUN" != 1 ] && command -v openssl >/dev/null 2>&1; then
  for name in $LEAVES; do
    [ -f "$KUBE_DIR/pki/$name.crt" ] || continue
    echo "pki/$name.crt expires $(openssl x509 -noout -enddate -in "$KUBE_DIR/pki/$name.crt" \\
      | cut -d= -f2)"
  done
  for name in $KUBECONFIGS kubelet.conf; do
    [ -f "$KUBE_DIR/$name" ] && grep -q client-certificate-data "$KUBE_DIR/$name" || continue
    echo "$name expires $(kubeconfig_cert "$KUBE_DIR/$name" | openssl x509 -noout -enddate \\
      | cut -d= -f2)"
  done
fi
echo "backup: $BACKUP"
if [ "$RENEW" = 1 ]; then
  cat <<'EOF'
Restart the static pods so they load the new certificates: kube-apiserver,
kube-controller-manager, kube-scheduler{etcd}.
For each: mv /etc/kubernetes/manifests/<name>.yaml /tmp/, wait until
`crictl ps --name <name>` (or `docker ps`) shows it gone, mv it back. Then
`systemctl restart kubelet` (kubelet.conf) and copy /etc/kubernetes/admin.conf to ~/.kube/config.
EOF
fi
"""


def _config_body(facts: KitFacts) -> str:
    """Shell that sets CONFIG to the cluster's kubeadm config for the kubeconfig phases."""
    if facts.renewal in ("phases",) or facts.cluster_kind == "MasterConfiguration":
        extra = ""
    else:
        # `kubeadm config view` shows the ClusterConfiguration only from v1alpha3 on; the
        # kubeconfig phase also needs this node's advertise address and name.
        endpoint = "apiEndpoint" if facts.config_api.endswith("v1alpha3") else "localAPIEndpoint"
        extra = f"""    address="$(sed -n -E 's/.*--advertise-address=([^[:space:]"]+).*/\\1/p' \\
      "$KUBE_DIR/manifests/kube-apiserver.yaml" 2>/dev/null | head -n 1)" || true
    node="$(uname -n | tr 'A-Z' 'a-z')"
    if [ "$DRY_RUN" = 1 ]; then
      echo "+ append an InitConfiguration ({endpoint}.advertiseAddress $address,"\\
" nodeRegistration.name $node) to $CONFIG"
    else
      printf -- '---\\napiVersion: %s\\nkind: InitConfiguration\\n' {facts.config_api} >> "$CONFIG"
      printf '%s:\\n  advertiseAddress: %s\\n' {endpoint} "$address" >> "$CONFIG"
      printf 'nodeRegistration:\\n  name: %s\\n' "$node" >> "$CONFIG"
    fi
"""
    return f"""if [ "$RENEW" = 1 ] && [ -z "$CONFIG" ]; then
  # kubeadm {facts.version.minor_str} makes kubeconfigs only from a config: the cluster's, as
  # stored.
  CONFIG="$BACKUP.kubeadm-config.yaml"
  echo "+ $KUBEADM config view > $CONFIG"
  if [ "$DRY_RUN" != 1 ]; then
    "$KUBEADM" config view > "$CONFIG" 2>/dev/null \\
      || die "cannot read the cluster's kubeadm config (is the API server up?): pass --config FILE"
  fi
{extra}fi
"""


def _renew_body(facts: KitFacts) -> str:
    """The version's renewal commands (indented for the if block)."""
    config = ' ${CONFIG:+--config "$CONFIG"}'
    lines: list[str] = []
    if facts.renewal == "phases":
        lines += [
            "  # No renew command before v1.12: kubeadm's certs phase keeps an existing file, so",
            "  # the leaves are moved away (they are in the backup) and made again from the CA.",
            "  for name in $LEAVES; do",
            '    run rm -f "$KUBE_DIR/pki/$name.crt" "$KUBE_DIR/pki/$name.key"',
            "  done",
            f'  run "$KUBEADM" {facts.phase} certs all{config}',
        ]
    else:
        lines.append(f'  run "$KUBEADM" {facts.renew_all}{config}')
    if not facts.renews_kubeconfigs:
        lines += [
            "  # This version's renewal leaves the kubeconfigs: they are made again.",
            "  for name in $KUBECONFIGS; do",
            '    run rm -f "$KUBE_DIR/$name"',
            "  done",
            "  # kubelet.conf only while it embeds its own certificate (no rotation yet).",
            '  if grep -q client-certificate-data "$KUBE_DIR/kubelet.conf" 2>/dev/null; then',
            '    run rm -f "$KUBE_DIR/kubelet.conf"',
            "  fi",
            f'  run "$KUBEADM" {facts.phase} kubeconfig all{config}',
        ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class KitFile:
    """One planned file of the kit."""

    name: str
    text: str
    executable: bool = False


def plan_kit(inputs: KitInputs) -> list[KitFile]:
    """Every file of the kit, in the order the README lists them."""
    facts = facts_for(inputs.version, inputs.config_api or None)
    kubelet_name, kubelet_text = kubelet_settings(facts)
    files = [
        KitFile("install.sh", install_script(inputs), executable=True),
        KitFile("renew.sh", renew_script(inputs, facts), executable=True),
        KitFile(
            "cluster-configuration.yaml",
            "# kubeadm config for this version: kubeadm init --config / upgrades\n"
            + yaml.safe_dump(cluster_configuration(inputs, facts), sort_keys=False),
        ),
        KitFile(kubelet_name, kubelet_text),
        KitFile("rbac.yaml", rbac_manifest(facts)),
        KitFile("kubespray.yml", kubespray_snippet(inputs)),
    ]
    if facts.validity_fields:
        files += [
            KitFile("kubeadm-config-patch.yaml", kubeadm_config_patch(inputs)),
            KitFile("kubeadm-config.sh", kubeadm_config_script(inputs), executable=True),
        ]
    if inputs.image_repository and inputs.images:
        files.append(KitFile("images.txt", "\n".join(inputs.images) + "\n"))
    names = ["README.md", *(f.name for f in files)]
    return [KitFile("README.md", readme(inputs, facts, names)), *files]


# --- writing ---------------------------------------------------------------------------------


def write_kit(build_dir: Path, files: list[KitFile]) -> Path:
    """Write ``files`` to ``build_dir/kit`` through a temporary directory renamed into place (an
    existing kit is replaced only once the new one is complete). Temporary names carry the run
    id and the build directory is noted with the run, so a sweep after a kill -9 removes them
    (and puts the old kit back when the kill fell between its two renames)."""
    target = build_dir / KIT_DIR
    runs.note_builds_dir(build_dir)
    archive_temp = runs.temp_path(build_dir / KIT_ARCHIVE)
    try:
        staging = Path(tempfile.mkdtemp(prefix=runs.tagged(".kit-"), dir=build_dir))
    except OSError as exc:
        raise PublishError(f"cannot write the kit into {build_dir}: {exc.strerror or exc}") from exc
    try:
        for item in files:
            path = staging / item.name
            path.write_text(item.text)
            path.chmod(0o755 if item.executable else 0o644)
        staging.chmod(0o755)
        archive = staging / KIT_ARCHIVE  # moved out before the directory takes the kit's name
        archive.write_bytes(kit_archive(files))
        archive.chmod(0o644)
        with runs.signals_deferred():
            archive.rename(archive_temp)
            if target.exists():
                old = runs.aside_path(target)  # the sweep restores it if "kit" is missing
                target.rename(old)
                staging.rename(target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                staging.rename(target)
            os.replace(archive_temp, build_dir / KIT_ARCHIVE)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        archive_temp.unlink(missing_ok=True)
        raise
    return target


def kit_archive(files: list[KitFile]) -> bytes:
    """``kit/<file>`` for every file, as a gzipped tar that is the same for the same kit."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for item in sorted(files, key=lambda f: f.name):
            data = item.text.encode()
            info = tarfile.TarInfo(f"{KIT_DIR}/{item.name}")
            info.size, info.mtime = len(data), 0
            info.mode = 0o755 if item.executable else 0o644
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def make_kit(
    build_path: str | None,
    image_repository: str | None = None,
    install_path: str | None = None,
    *,
    image: str | None = None,
) -> Path:
    """`invoke kit`: load and check the build, list its images if asked, write its kit."""
    from longcert import publish

    if not build_path:
        raise ConfigError("--build is required", "give builds/<id> as written by `invoke build`")
    registry = check_image_repository(image_repository)
    target = check_install_path(install_path)
    try:
        build = publish.load_build(Path(build_path))
    except PublishError as err:
        raise ConfigError(
            f"no kit for {build_path}: {err.message}",
            "a kit is written only for a verified build directory made by `invoke build`",
        ) from None
    inputs = inputs_from_build(build, registry, target)
    facts = facts_for(inputs.version, inputs.config_api or None)
    if registry and facts.images_list and verify.NATIVE_PLATFORM in inputs.binaries:
        config = yaml.safe_dump(cluster_configuration(inputs, facts), sort_keys=False)
        listed = verify.list_images(
            build.path / "kubeadm-linux-amd64",
            config,
            image=image or verify.DEFAULT_VERIFY_IMAGE,
        )
        inputs = replace(inputs, images=tuple(listed))
    path = write_kit(build.path, plan_kit(inputs))
    print(f"kit for {inputs.tag} written to {path}")
    for name in sorted(p.name for p in path.iterdir()):
        print(f"  {name}")
    return path
