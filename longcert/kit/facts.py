"""What each Kubernetes minor spells differently for the rollout kit, with its upstream source,
and the one decision of which kubeadm commands renew a node's certificates (:func:`renew_plan`),
used by the kit's renew.sh and by ``invoke renew-check`` alike."""

from __future__ import annotations

from dataclasses import dataclass

from longcert import verify
from longcert.versions import KubeVersion

HOURS_PER_YEAR = 8760  # kubeadm's 365-day year


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
        """`certs renew all` as this version spells it ("" when it has none), from
        :func:`renew_plan`, the one place that decides the renewal."""
        return next((" ".join(step.words) for step in renew_plan(self.version).steps
                     if "renew" in step.words), "")

    @property
    def renews_kubeconfigs(self) -> bool:
        """Whether the renewal re-makes the kubeconfigs itself (v1.15+): no kubeconfig phase."""
        return not self.needs_config

    @property
    def needs_config(self) -> bool:
        """The renewal runs a kubeconfig phase, which needs the cluster's kubeadm config."""
        return any("kubeconfig" in step.words for step in renew_plan(self.version).steps)


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


# --- which kubeadm commands renew a node (one decision for renew.sh and renew-check) --------


@dataclass(frozen=True)
class RenewStep:
    """One kubeadm command of a renewal, and the files taken out of /etc/kubernetes before it
    (kubeadm's phases keep a file that exists: "Using existing ...")."""

    aside: tuple[str, ...]  # paths relative to /etc/kubernetes
    words: tuple[str, ...]  # kubeadm's words; the runner adds --config


@dataclass(frozen=True)
class RenewPlan:
    """How a version's kubeadm renews a control-plane node, and what it re-issues."""

    steps: tuple[RenewStep, ...]
    renewed: tuple[str, ...]  # files whose certificate the steps re-issue (pki/x.crt, admin.conf)


def regenerates_kubelet_conf(version: KubeVersion) -> bool:
    """Whether this version's renewal can write kubelet.conf again (with an embedded, long
    certificate): up to v1.14 the renewal runs the kubeconfig phase, which writes kubelet.conf
    too. From v1.15 `certs renew` leaves kubelet.conf alone (renewal/manager.go lists no
    kubelet.conf: the kubelet rotates its own client certificate), so an embedded one can only
    be pointed at the kubelet's rotated certificate (kubeadm-certs.md, kubernetes/kubeadm#1753)."""
    return (version.major, version.minor) < (1, 15)


def renew_plan(version: KubeVersion, regenerate_kubelet_conf: bool = False) -> RenewPlan:
    """The renewal of ``version``: `certs renew all` where it renews everything, otherwise the
    leaves and/or kubeconfigs taken aside and made again by the phases (which keep the CAs).

    ``regenerate_kubelet_conf``: kubelet.conf embeds its own certificate and there is no rotated
    one to point it at; only up to v1.14 (:func:`regenerates_kubelet_conf`).
    """
    minor = (version.major, version.minor)
    if regenerate_kubelet_conf and not regenerates_kubelet_conf(version):
        raise ValueError(f"kubeadm {version.tag} cannot write kubelet.conf again")
    leaf_names = [n for n in verify.expected_certs(version) if n not in verify.CA_CERTS]
    leaves = tuple(f"pki/{n}.crt" for n in leaf_names)
    confs = tuple(c for c in verify.expected_kubeconfigs(version)
                  if c != "kubelet.conf" or regenerate_kubelet_conf)
    phase = ("alpha", "phase") if minor < (1, 13) else ("init", "phase")
    kubeconfig_step = RenewStep(confs, (*phase, "kubeconfig", "all"))
    # Renewal commands: v1.12 added `kubeadm alpha phase certs renew` (website release-1.12
    # generated docs kubeadm_alpha_phase_certs_renew_all.md), v1.13 moved it to `kubeadm alpha
    # certs renew` (kubeadm-certs.md of the v1beta1 era), v1.15 made it renew the kubeconfigs
    # too (kubernetes/kubernetes#77180, kubernetes/kubeadm#1361), v1.20 added top-level
    # `kubeadm certs` (kubernetes/kubernetes#94938) and v1.21 removed `alpha certs`
    # (kubernetes/kubernetes#97706).
    words: tuple[str, ...]
    if minor >= (1, 15):
        words = ("certs", "renew", "all") if minor >= (1, 20) else ("alpha", "certs", "renew",
                                                                    "all")
        kubeconfigs = tuple(c for c in confs if c != "kubelet.conf")
        return RenewPlan((RenewStep((), words),), leaves + kubeconfigs)
    if minor >= (1, 12):
        words = ("alpha", "certs", "renew", "all") if minor >= (1, 13) else (
            "alpha", "phase", "certs", "renew", "all")
        return RenewPlan((RenewStep((), words), kubeconfig_step), leaves + confs)
    # Up to v1.11 there is no renew command: the leaves (certificate and key) are taken aside
    # and `alpha phase certs all` makes them again from the CAs it keeps.
    aside = tuple(f"pki/{n}.{ext}" for n in leaf_names for ext in ("crt", "key"))
    return RenewPlan((RenewStep(aside, (*phase, "certs", "all")), kubeconfig_step),
                     leaves + confs)
