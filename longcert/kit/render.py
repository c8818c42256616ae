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


def _arch(platform: str) -> str:
    return platform.split("/", 1)[1]


def _uname_arch(arch: str) -> str:
    return {"amd64": "x86_64", "arm64": "aarch64", "arm": "armv7l", "386": "i686"}.get(arch, arch)


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


def kubeadm_config_script(inputs: KitInputs) -> str:
    """v1.31+: a ready script that sets the two fields in the kubeadm-config ConfigMap."""
    return render_template("kubeadm-config.sh", {
        "TAG": inputs.tag,
        "LEAF_DURATION": duration(inputs.leaf_years),
        "CA_DURATION": duration(inputs.ca_years),
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
    })
