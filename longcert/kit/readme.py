"""The kit's README.md for one build: the order of the steps, what each does and refuses, how
to check expiry and roll back, and what a later stock kubeadm, package manager or kubespray would
undo (pure: version facts + inputs in, Markdown out)."""

from __future__ import annotations

from longcert.kit.facts import KitFacts, duration
from longcert.kit.inputs import KitInputs
from longcert.kit.render import kubelet_settings


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
    if not facts.renew_all:
        return (
            f"`kubeadm {facts.phase} certs all` and `kubeadm {facts.phase} kubeconfig all` "
            "on the leaves and kubeconfigs it first moves away (this version has no renew "
            "command)"
        )
    words = f"`kubeadm {facts.renew_all}`"
    if not facts.renews_kubeconfigs:
        words += f" then `kubeadm {facts.phase} kubeconfig all` for the kubeconfigs it moved away"
    return words
