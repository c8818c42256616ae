"""The kit's file texts for one build: version facts + inputs in, text out (pure). Scripts are
template files in ``templates/`` (shell that shellcheck reads as shell), with ``@@NAME@@``
placeholders filled from the facts; YAML documents are built as data and dumped."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import yaml

from longcert import verify
from longcert.kit.facts import (
    KitFacts,
    duration,
    regenerates_kubelet_conf,
    renew_plan,
)
from longcert.kit.inputs import KitInputs

_PLACEHOLDER = re.compile(r"@@([A-Z0-9_]+)@@")
KCM_SERVING_GATE = "RotateKubeletServerCertificate=true"


def render_template(name: str, values: dict[str, str]) -> str:
    """``templates/<name>`` with every ``@@KEY@@`` replaced by ``values[KEY]``; a placeholder
    without a value, or a value without a placeholder, is a programming error."""
    text = resources.files("longcert.kit").joinpath("templates", name).read_text()
    wanted = set(_PLACEHOLDER.findall(text))
    if wanted != set(values):
        raise ValueError(f"template {name}: placeholders {sorted(wanted)} but values for "
                         f"{sorted(values)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


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
        if facts.selfnodeserver and inputs.serving_rotation:
            # v1.9/v1.10: the controller-manager approves a node's own serving CSR only with
            # this gate on (kubernetes/kubernetes#46884), which rbac.yaml's binding relies on.
            doc["controllerManagerExtraArgs"]["feature-gates"] = KCM_SERVING_GATE
    elif facts.extra_args == "map":
        doc["controllerManager"] = {"extraArgs": {flag: value}}
    else:
        doc["controllerManager"] = {"extraArgs": [{"name": flag, "value": value}]}
    if facts.validity_fields:
        doc["certificateValidityPeriod"] = value
        doc["caCertificateValidityPeriod"] = duration(inputs.ca_years)
    return doc


def kubelet_settings(facts: KitFacts, serving: bool) -> tuple[str, str] | None:
    """(file name, text) of the kubelet rotation settings for the version; None where there is
    nothing to add (v1.9/v1.10 without serving rotation: kubeadm's own 10-kubeadm.conf passes
    --rotate-certificates=true already)."""
    if facts.kubelet == "dropin":
        # kubeadm 1.9/1.10's own 10-kubeadm.conf already passes --rotate-certificates=true and
        # expands the operator's $KUBELET_EXTRA_ARGS, so the gate goes into a variable of its
        # own, added to that ExecStart instead of replacing what the operator set.
        if not serving:
            return None
        return "kubelet-rotation.conf", render_template(
            "kubelet-rotation.conf", {"MINOR": facts.version.minor_str})
    fields = ""
    if serving:
        fields = "serverTLSBootstrap: true\n"
        if facts.kubelet == "config-gate":
            fields += "featureGates:\n  RotateKubeletServerCertificate: true\n"
    note = (
        "# serverTLSBootstrap: after every restart the kubelet waits for its kubelet-serving\n"
        "# CSR to be approved; until then kubectl logs/exec/port-forward and metrics-server\n"
        "# fail on that node (README.md, CSR approval).\n" if serving else
        "# Serving certificates stay the kubelet's self-signed ones (`invoke kit\n"
        "# --serving-rotation` adds serverTLSBootstrap, with CSRs to approve).\n"
    )
    return "kubelet-rotation.yaml", render_template("kubelet-rotation.yaml", {
        "CONFIGMAP": facts.kubelet_configmap, "SERVING_NOTE": note, "SERVING_FIELDS": fields})


def rbac_manifest(facts: KitFacts, serving: bool) -> str:
    """ClusterRoleBindings letting nodes' client (and, v1.9/v1.10 with serving rotation,
    serving) CSRs be approved, with what auto-approving serving certificates means."""
    if not serving:
        words = "# Serving CSRs: none (the kit was made without --serving-rotation).\n"
    elif facts.selfnodeserver:
        words = (
            "# Serving CSRs: the controller-manager of this version approves them itself once\n"
            "# the RotateKubeletServerCertificate gate is on there (renew.sh sets it; binding\n"
            "# below).\n")
    else:
        words = (
            "# Serving CSRs: since v1.11 no controller-manager approves them\n"
            "# (kubernetes/kubernetes#62471); approve them by hand or run an approver.\n")
    extra = render_template("rbac-selfnodeserver.yaml", {}) if (
        facts.selfnodeserver and serving) else ""
    return render_template("rbac.yaml", {"SERVING_WORDS": words, "SELFNODESERVER": extra})


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


def _arch(platform: str) -> str:
    return platform.split("/", 1)[1]


def _uname_arch(arch: str) -> str:
    return {"amd64": "x86_64", "arm64": "aarch64", "arm": "armv7l", "386": "i686"}.get(arch, arch)


def kubespray_snippet(inputs: KitInputs, facts: KitFacts) -> str:
    """group_vars lines: where kubespray downloads kubeadm and the checksum it must accept, the
    controller-manager signing duration and kubelet rotation it renders into kubeadm's config,
    and (v1.31+) the validity periods it stores."""
    arches = {_arch(p): s for p, s in sorted(inputs.binaries.items())}
    checksums = "\n".join(
        f"  {arch}:\n    {inputs.tag}: {s}" for arch, s in arches.items()
    )
    leaf = duration(inputs.leaf_years)
    validity = (
        "# v1.31+: what kubespray stores as certificateValidityPeriod / caCertificateValidity-\n"
        "# Period in kubeadm-config (kubernetes-sigs/kubespray#12272); without them a stock\n"
        "# renewal goes back to one year.\n"
        f"kube_cert_validity_period: {leaf.removesuffix('0m0s')}\n"
        f"kube_ca_cert_validity_period: {duration(inputs.ca_years).removesuffix('0m0s')}\n"
        if facts.validity_fields else ""
    )
    return f"""# kubespray group_vars, e.g. inventory/<cluster>/group_vars/k8s_cluster/longcert.yml.
# kubespray checks every download against kubeadm_checksums[image_arch][kube_version]
# (roles/kubespray_defaults/defaults/main/download.yml) and refuses a binary that is not the
# official one: point kubeadm_download_url at this build and add its checksum. Setting
# kubeadm_checksums here replaces kubespray's whole table: keep only the versions you deploy.
# Set longcert_download_base to where the build's files are served; newer kubespray spells
# kube_version without the "v" (then use {inputs.tag.removeprefix("v")} as the key).
kube_version: {inputs.tag}
longcert_download_base: "https://CHANGE-ME.example/{inputs.build_id}"
kubeadm_download_url: "{{{{ longcert_download_base }}}}/kubeadm-linux-{{{{ image_arch }}}}"
kubeadm_checksums:
{checksums}
# The controller-manager signs kubelet certificates for as long (kubespray renders these into
# kubeadm's ClusterConfiguration, so upgrades keep the flag).
kube_kubeadm_controller_extra_args:
  {facts.signing_flag.removeprefix("--")}: {leaf}
# Kubelet client rotation; serving rotation only with an approver for its CSRs (kubespray's
# kubelet_csr_approver_enabled follows kubelet_rotate_server_certificates): read rbac.yaml's note.
kubelet_rotate_certificates: true
kubelet_rotate_server_certificates: {"true" if inputs.serving_rotation else "false"}
{validity}# kubespray's auto_renew_certificates timer runs `kubeadm certs renew all` monthly on the
# control plane: it renews with this binary once kubespray installed it.
"""


# The config APIs of each extra-args layout (KitFacts.extra_args), as kubeadm-config stores them.
_LAYOUT_APIS = {
    "controllerManagerExtraArgs": ("top", "v1alpha1 v1alpha2 v1alpha3"),
    "map": ("map", "v1beta1 v1beta2 v1beta3"),
    "list": ("list", "v1beta4 v1"),
}


def kubeadm_config_script(inputs: KitInputs, facts: KitFacts) -> str:
    """kubeadm-config.sh: the controller-manager's signing flag (every version) and, v1.31+,
    the validity periods, stored in the kubeadm-config ConfigMap so upgrades keep them."""
    layout, apis = _LAYOUT_APIS[facts.extra_args]
    old = facts.old_signing_flag.removeprefix("--")
    # kubeadm-config keeps a MasterConfiguration up to v1.11 and a ClusterConfiguration from
    # v1.12 (v1alpha3, cmd/kubeadm/app/constants ClusterConfigurationConfigMapKey).
    data_key = "MasterConfiguration" if facts.cluster_kind == "MasterConfiguration" else (
        "ClusterConfiguration")
    return render_template("kubeadm-config.sh", {
        "DATA_KEY": data_key,
        "LAYOUT": layout,
        "APIS": " ".join(f"kubeadm.k8s.io/{a}" for a in apis.split()),
        "FLAG": facts.signing_flag.removeprefix("--"),
        "SIGNING_FLAG": facts.signing_flag,
        "OLD_FLAG": old,
        "OLD_FLAG_WORDS": facts.old_signing_flag or "older spelling",
        "LEAF_DURATION": duration(inputs.leaf_years),
        "CA_DURATION": duration(inputs.ca_years),
        "VALIDITY_FIELDS": "1" if facts.validity_fields else "0",
    })


def install_script(inputs: KitInputs) -> str:
    """install.sh: check the binary's sha256, check `kubeadm version`, keep the old one beside."""
    cases = "\n".join(
        f"  {_uname_arch(_arch(p))}) arch={_arch(p)}; sum={s} ;;"
        for p, s in sorted(inputs.binaries.items())
    )
    return render_template("install.sh", {
        "TAG": inputs.tag,
        "BUILD_ID": inputs.build_id,
        "INSTALL_PATH": inputs.install_path,
        "ARCH_CASES": cases,
    })


def renew_steps_shell(facts: KitFacts) -> str:
    """The version's renewal (:func:`longcert.kit.facts.renew_plan`) as renew.sh lines. The plan
    is taken with kubelet.conf regenerated where the version can; renew.sh's ``move_aside``
    leaves kubelet.conf in place unless the node needs it written again."""
    plan = renew_plan(facts.version, regenerate_kubelet_conf=regenerates_kubelet_conf(
        facts.version))
    lines: list[str] = []
    for step in plan.steps:
        if step.aside:
            lines.append("  move_aside " + " ".join(step.aside))
        lines.append(f'  run "$KUBEADM" {" ".join(step.words)} ${{CONFIG:+--config "$CONFIG"}}')
    return "\n".join(lines) + "\n"


def _static_pods(facts: KitFacts) -> list[str]:
    """renew.sh --restart's static pods in kubeadm upgrade's order, as name:port:certificate.
    etcd serves pki/etcd/server.crt on 2379 from v1.10 (kubeadm's etcd TLS; v1.9's local etcd
    has none), kube-apiserver pki/apiserver.crt (port from its manifest). The controller-manager
    (10257, from v1.12: kubernetes/kubernetes#67069) and the scheduler (10259, from v1.13:
    kubernetes/kubernetes#69663) serve certificates they make themselves, so from v1.13 only
    their TLS answer is checked; before, only that they run again."""
    secure = (facts.version.major, facts.version.minor) >= (1, 13)
    return [
        "etcd:2379:pki/etcd/server.crt" if facts.etcd_certs else "etcd::",
        "kube-apiserver:6443:pki/apiserver.crt",
        "kube-controller-manager:10257:" if secure else "kube-controller-manager::",
        "kube-scheduler:10259:" if secure else "kube-scheduler::",
    ]


def _node_config_style(facts: KitFacts) -> str:
    """How renew.sh writes this node's identity into the config of the kubeconfig phases:
    "master" (v1alpha1/v1alpha2 MasterConfiguration: nodeName or nodeRegistration.name, and
    api.advertiseAddress/bindPort), else the InitConfiguration endpoint field (v1alpha3
    apiEndpoint, v1beta1 on localAPIEndpoint)."""
    if facts.cluster_kind == "MasterConfiguration":
        return "master"
    return "apiEndpoint" if facts.config_api.endswith("v1alpha3") else "localAPIEndpoint"


def renew_script(inputs: KitInputs, facts: KitFacts) -> str:
    """renew.sh for the version: refuse, or renew and prove it, or put everything back."""
    plan = renew_plan(facts.version)
    checks_periods = facts.validity_fields and not inputs.pinned
    return render_template("renew.sh", {
        "MINOR": facts.version.minor_str,
        "TAG": inputs.tag,
        "BUILD_ID": inputs.build_id,
        "LEAF_YEARS": str(inputs.leaf_years),
        "LEAF_DAYS": str(inputs.leaf_years * verify.DAYS_PER_YEAR),
        "LEAF_SECONDS": str(inputs.leaf_years * verify.DAYS_PER_YEAR * 86400),
        "LEAF_DURATION": duration(inputs.leaf_years),
        "KIT_SHA256S": " ".join(sorted(inputs.binaries.values())),
        "RENEWED": " ".join(plan.renewed),
        "CA_FILES": " ".join(f"pki/{n}.crt" for n in verify.CA_CERTS
                             if n in verify.expected_certs(facts.version)),
        "SIGNING_FLAG": facts.signing_flag,
        "OLD_SIGNING_FLAG": facts.old_signing_flag,
        "CHECK_STORED_PERIODS": "1" if checks_periods else "0",
        "REGENERATES_KUBELET_CONF": "1" if regenerates_kubelet_conf(facts.version) else "0",
        "NEEDS_CONFIG": "1" if facts.needs_config else "0",
        "NODE_CONFIG_STYLE": _node_config_style(facts),
        "CONFIG_API": facts.config_api,
        "CONFIG_DEFAULT": "read with `kubeadm config view`" if facts.needs_config
        else "kubeadm reads kubeadm-config",
        "INSTALL_PATH": inputs.install_path,
        "RENEW_STEPS": renew_steps_shell(facts),
        "ETCD": " and etcd" if facts.etcd_certs else "",
        "STATIC_PODS": " ".join(_static_pods(facts)),
        "KCM_GATE_ARG": f"--feature-gates={KCM_SERVING_GATE}"
        if facts.selfnodeserver and inputs.serving_rotation else "",
    })
