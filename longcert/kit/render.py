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
        if not serving:
            return None
        # kubeadm 1.9/1.10's own 10-kubeadm.conf (build/debs/10-kubeadm.conf of those releases)
        # already passes --rotate-certificates=true (KUBELET_CERTIFICATE_ARGS) and expands the
        # operator's $KUBELET_EXTRA_ARGS, so the gate goes into a variable of its own, added
        # to that ExecStart instead of replacing what the operator set.
        text = (
            "# systemd drop-in: /etc/systemd/system/kubelet.service.d/20-longcert-rotation.conf\n"
            f"# kubelet {facts.version.minor_str}: serving certificate rotation is alpha here and\n"
            "# needs the RotateKubeletServerCertificate gate on the kubelet (and on the\n"
            "# controller-manager, which approves serving CSRs on this version). Client rotation\n"
            "# (--rotate-certificates=true) is in kubeadm's own 10-kubeadm.conf already.\n"
            "# The ExecStart below is kubeadm's own plus $LONGCERT_KUBELET_ARGS; your\n"
            "# $KUBELET_EXTRA_ARGS (--node-ip, --cloud-provider, ...) stays as it is. If\n"
            "# `systemctl cat kubelet` shows another ExecStart, add $LONGCERT_KUBELET_ARGS to\n"
            "# yours instead of using the two ExecStart lines here.\n"
            "[Service]\n"
            'Environment="LONGCERT_KUBELET_ARGS=--feature-gates=RotateKubeletServerCertificate=true"\n'
            "ExecStart=\n"
            "ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_SYSTEM_PODS_ARGS "
            "$KUBELET_NETWORK_ARGS $KUBELET_DNS_ARGS $KUBELET_AUTHZ_ARGS $KUBELET_CADVISOR_ARGS "
            "$KUBELET_CERTIFICATE_ARGS $KUBELET_EXTRA_ARGS $LONGCERT_KUBELET_ARGS\n"
        )
        return "kubelet-rotation.conf", text
    doc: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "rotateCertificates": True,
    }
    if serving:
        doc["serverTLSBootstrap"] = True
        if facts.kubelet == "config-gate":
            doc["featureGates"] = {"RotateKubeletServerCertificate": True}
    header = (
        "# Merge these fields into /var/lib/kubelet/config.yaml on every node (then\n"
        "# `systemctl restart kubelet`), and into the kube-system ConfigMap\n"
        f"# {facts.kubelet_configmap} so that joins and upgrades keep them.\n"
        + ("# serverTLSBootstrap: after every restart the kubelet waits for its kubelet-serving\n"
           "# CSR to be approved; until then kubectl logs/exec/port-forward and metrics-server\n"
           "# fail on that node (README.md, CSR approval).\n" if serving else
           "# Serving certificates stay the kubelet's self-signed ones (`invoke kit\n"
           "# --serving-rotation` adds serverTLSBootstrap, with CSRs to approve).\n")
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


def rbac_manifest(facts: KitFacts, serving: bool) -> str:
    """ClusterRoleBindings letting nodes' client (and, v1.9/v1.10 with serving rotation,
    serving) CSRs be approved."""
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
    if facts.selfnodeserver and serving:
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
    if not serving:
        serving_words = ("# Serving CSRs: none (the kit was made without --serving-rotation).\n")
    elif facts.selfnodeserver:
        serving_words = (
            "# Serving CSRs: the controller-manager of this version approves them itself once\n"
            "# the RotateKubeletServerCertificate gate is on there (renew.sh sets it; binding\n"
            "# below).\n")
    else:
        serving_words = (
            "# Serving CSRs: since v1.11 no controller-manager approves them\n"
            "# (kubernetes/kubernetes#62471); approve them by hand or run an approver.\n")
    return (
        "# Node CSR approval for kubelet certificate rotation. Apply: kubectl apply -f rbac.yaml\n"
        + serving_words
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


def upgrade_note(facts: KitFacts, inputs: KitInputs) -> str:
    """What a stock kubeadm, a package manager or kubespray does later, and the ways out."""
    minor = facts.version.minor_str
    if facts.upgrade_renewal_flag:
        flag = (
            "`kubeadm upgrade apply vNEW --certificate-renewal=false` (and the same flag on "
            "`kubeadm upgrade node`) keeps the long certificates through an upgrade with a stock "
            "binary (the flag exists from v1.15, kubernetes/kubernetes#76862)"
        )
    else:
        flag = (
            f"kubeadm {minor} has no `--certificate-renewal` flag (it came with v1.15), and a "
            "stock `kubeadm upgrade apply` replaces the API server certificate once it is "
            "*older* than 180 days (`BackupAPIServerCertIfNeeded` in phases/upgrade/"
            "postupgrade.go compares now with its NotBefore, not its end): every long "
            "certificate older than that becomes a one-year one, so the only way out here is "
            "the patched binary"
        )
    renew = f"`kubeadm {facts.renew_all}`" if facts.renew_all else "`kubeadm alpha phase certs`"
    if facts.validity_fields:
        stock = (
            f"From v1.31 a stock kubeadm renews and upgrades with the periods stored in "
            "kubeadm-config (kubernetes/kubernetes#124652): once `kubeadm-config.sh` has stored "
            f"`certificateValidityPeriod: {duration(inputs.leaf_years)}`, a stock `{renew[1:-1]}` "
            "and `kubeadm upgrade apply` keep the long leaves, and the patched binary matters "
            "only for what has no stored period (the CA default of a new cluster, `kubeadm "
            "kubeconfig user`)."
        )
    else:
        stock = (
            f"A stock kubeadm run later ({renew}, `kubeadm upgrade apply`) re-issues "
            "certificates for one year."
        )
    return (
        "## Upgrades: a stock kubeadm undoes this\n\n"
        f"{stock} Ways out:\n\n"
        "1. Upgrade with the patched kubeadm of the new version: build it (`invoke build "
        f"--version vNEW --years {inputs.leaf_years}`), write its kit, install it with its "
        "`install.sh`, then `kubeadm upgrade apply vNEW`.\n"
        f"2. {flag[0].upper()}{flag[1:]}.\n"
        "3. Keep the package manager from putting a stock kubeadm back: `apt-mark hold kubeadm` "
        "(Debian, Ubuntu), `dnf versionlock add kubeadm` or `yum versionlock kubeadm` (RHEL "
        "family); release the hold only to install the next patched build.\n\n"
        "`kubeadm upgrade` re-renders the static pod manifests from the stored "
        "ClusterConfiguration (kubeadm-reconfigure.md), so the controller-manager flag renew.sh "
        "sets in the manifest is lost unless kubeadm-config carries it too: keep "
        f"`cluster-configuration.yaml`'s controller-manager `extraArgs` ({facts.signing_flag}) "
        "in ConfigMap kube-system/kubeadm-config (`kubectl -n kube-system edit configmap "
        "kubeadm-config`).\n\n"
        "**kubespray** downloads kubeadm itself: `kubespray.yml` points it at this build, and "
        "sets the controller-manager flag and kubelet rotation variables kubespray renders "
        "into its own kubeadm config; kubespray's `auto_renew_certificates` timer runs "
        "`kubeadm certs renew all` monthly, which renews with this binary once it is the one "
        "installed.\n"
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
    kubelet = kubelet_settings(facts, inputs.serving_rotation)
    steps = [
        f"1. **Install the binary** on every control-plane node: `sudo ./install.sh`. It checks "
        f"the sha256 (`sha256sum -c`), that `kubeadm version` says {tag}, keeps the old binary "
        f"as `{kubeadm}.pre-longcert-<time>` and puts the new one at `{kubeadm}`.",
    ]
    keeps = (
        f"`{facts.signing_flag}={duration(inputs.leaf_years)}` in the controller-manager's "
        "extraArgs, so that `kubeadm upgrade`, which re-renders the static pod manifests from "
        "there, keeps what renew.sh sets in the manifest"
    )
    if facts.validity_fields:
        if inputs.pinned:
            stored = (
                "The validity periods: this build is `--pin-validity` and ignores them, so they "
                "matter only to a stock kubeadm of this version, which then issues long "
                "certificates too."
            )
        else:
            stored = (
                "The validity periods are **required for this build** (not `--pin-validity`): "
                "every existing cluster stores `certificateValidityPeriod: 8760h0m0s`, which "
                "wins over the patched defaults, and renew.sh refuses until it is changed."
            )
        keeps += (
            f", and `certificateValidityPeriod: {duration(inputs.leaf_years)}` / "
            f"`caCertificateValidityPeriod: {duration(inputs.ca_years)}` "
            f"(`kubeadm-config-patch.yaml` holds the two fields). {stored}"
        )
    else:
        keeps += "."
    steps.append(
        "2. **Store the settings in the cluster's configuration** (once per cluster): "
        "`./kubeadm-config.sh --dry-run`, then `./kubeadm-config.sh`, writes into ConfigMap "
        f"kube-system/kubeadm-config {keeps}"
    )
    steps += [
        f"{len(steps) + 1}. **Renew** on every control-plane node, one at a time: "
        "`sudo ./renew.sh --dry-run`, then `sudo ./renew.sh`. It refuses, changing nothing, "
        f"unless it runs as root on a control plane of {minor} with the longcert kubeadm "
        "installed and openssl"
        + (", and the cluster's stored `certificateValidityPeriod` gives this build's validity"
           if facts.validity_fields and not inputs.pinned else "")
        + ". It renews what has less than the asked validity left (`--margin-days`, default 30; "
        "`--force` for all), backs up /etc/kubernetes to "
        f"`/etc/kubernetes.longcert-backup-<time>`, runs {_renew_words(facts)}, points a "
        "kubelet.conf that embeds its certificate at the kubelet's rotated one, sets "
        f"`{facts.signing_flag}={duration(inputs.leaf_years)}` in the kube-controller-manager "
        "manifest, then reads every file back: each renewed certificate must have the asked "
        "days left and keep its subject, SANs, key usage, issuer and CA, or every file is put "
        "back from the backup and it exits 1. It prints each file's new expiry, each CA's end "
        "and which static pods to restart. A second run finds nothing to do and changes "
        "nothing.",
        f"{len(steps) + 2}. **Restart** the control-plane static pods as renew.sh prints "
        "(kube-apiserver, kube-controller-manager, kube-scheduler, etcd): move each manifest "
        "out of /etc/kubernetes/manifests, wait until the pod is gone (`crictl ps`), move it "
        "back. Copy the new admin.conf to `~/.kube/config`.",
        f"{len(steps) + 3}. **CSR approval, before any kubelet restart**: `kubectl apply -f "
        "rbac.yaml` (the bindings that let kubelets' client CSRs be approved"
        + (", and on this version their serving CSRs" if facts.selfnodeserver
           and inputs.serving_rotation else "")
        + ").",
        f"{len(steps) + 4}. **Kubelet rotation**, one node at a time: "
        + _kubelet_step(facts, inputs, kubelet),
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
        images += _registry_move(facts, inputs.image_repository)
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


SERVING_APPROVERS = (
    "An approver can take the by-hand step over: kubespray's `kubelet_csr_approver_enabled` "
    "deploys postfinance/kubelet-csr-approver, which approves a kubelet-serving CSR only when "
    "its names match a pattern and its IPs fall in ranges you configure; set both tightly. "
    "Approvers that approve every kubelet-serving CSR (rubber stamps) give any node that holds "
    "a node client certificate a serving certificate for any name it asks for."
)


def _kubelet_step(facts: KitFacts, inputs: KitInputs,
                  kubelet: tuple[str, str] | None) -> str:
    """The kit README's kubelet step: where the settings go, and with serving rotation the CSR
    each restart leaves, approved node by node."""
    if kubelet is None:
        where = (
            f"nothing to change: kubeadm {facts.version.minor_str}'s own 10-kubeadm.conf passes "
            "`--rotate-certificates=true`, and the controller-manager signs the rotated client "
            "certificates for as long as renew.sh set."
        )
    elif facts.kubelet == "dropin":
        where = (
            f"`{kubelet[0]}` is a systemd drop-in (read its comment: it adds "
            "`$LONGCERT_KUBELET_ARGS`, it does not replace your `KUBELET_EXTRA_ARGS`); put it in "
            "/etc/systemd/system/kubelet.service.d/20-longcert-rotation.conf, then `systemctl "
            "daemon-reload && systemctl restart kubelet`."
        )
    else:
        where = (
            f"`{kubelet[0]}` holds the KubeletConfiguration fields; merge them into "
            f"/var/lib/kubelet/config.yaml and ConfigMap kube-system/{facts.kubelet_configmap}, "
            "then `systemctl restart kubelet`."
        )
    if not inputs.serving_rotation:
        return where + (
            " Serving certificates stay the kubelets' self-signed ones: this kit was made "
            "without `--serving-rotation`, so no kubelet-serving CSR appears and `kubectl "
            "logs/exec` keep working through every restart."
        )
    if facts.selfnodeserver:
        return where + (
            " With serving rotation, the controller-manager of this version approves each "
            "node's own serving CSR (the RotateKubeletServerCertificate gate renew.sh sets on "
            "it); check with `kubectl get csr` that none stays Pending."
        )
    return where + (
        " **Serving rotation**: every kubelet restart now leaves a kubelet-serving CSR that "
        "nothing approves, and until it is approved `kubectl logs/exec/port-forward` and "
        "metrics-server fail on that node. Right after restarting a node's kubelet: `kubectl "
        "get csr` (the newest one requested by `system:node:<node>`), check that its names "
        "and IPs are that node's (`kubectl get csr NAME -o jsonpath='{.spec.request}' | "
        "base64 -d | openssl req -noout -text`), then `kubectl certificate approve NAME`; then "
        "the next node. " + SERVING_APPROVERS
    )


def _registry_move(facts: KitFacts, registry: str) -> str:
    """The rest of a custom registry: the sandbox (pause) image, which is the container
    runtime's or the kubelet's setting, not kubeadm's, and moving an existing cluster."""
    # The kubelet's --pod-infra-container-image chose the sandbox image for dockershim, which
    # v1.24 removed (kubernetes/kubernetes#97252); with CRI runtimes it is the runtime's
    # setting, and kubeadm warns when it differs from its own (kubernetes/kubernetes#115610).
    kubelet_flag = (
        f"; with Docker (dockershim, up to v1.23) it is the kubelet's "
        f"`--pod-infra-container-image={registry}/pause:<tag>` (in KUBELET_EXTRA_ARGS or "
        "/var/lib/kubelet/kubeadm-flags.env)"
        if facts.version.minor < 24 else ""
    )
    return (
        "\n### The sandbox (pause) image\n\n"
        "kubeadm's `imageRepository` does not move the pod sandbox image: with containerd set "
        f"`sandbox_image = \"{registry}/pause:<tag>\"` (the tag kubeadm lists) under "
        "`[plugins.\"io.containerd.grpc.v1.cri\"]` in /etc/containerd/config.toml (containerd 2: "
        "`sandbox` under `[plugins.\"io.containerd.cri.v1.images\".pinned_images]`), with CRI-O "
        f"`pause_image` in /etc/crio/crio.conf{kubelet_flag}; restart the runtime, then the "
        "kubelet, on every node.\n\n"
        "### Moving an existing cluster to the registry\n\n"
        "1. Mirror every image above (and the pause image) into the registry.\n"
        f"2. Set `imageRepository: {registry}` in ConfigMap kube-system/kubeadm-config "
        "(`kubectl -n kube-system edit configmap kubeadm-config`), so upgrades and joins use it.\n"
        "3. On each control-plane node, one at a time, change the `image:` of each static pod "
        "manifest in /etc/kubernetes/manifests to the registry (the kubelet restarts the pod).\n"
        "4. `kubectl -n kube-system set image daemonset/kube-proxy` and `deployment/coredns` (or "
        "kube-dns) to the registry's images, or let the next `kubeadm upgrade apply` re-render "
        "them from kubeadm-config.\n"
        "5. Move the sandbox image as above.\n"
    )


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
