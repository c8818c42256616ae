"""From binary to cluster: the rollout kit of one verified build (``builds/<id>/kit/``).

A patched kubeadm alone does not give a running cluster long certificates. The kit holds what an
operator otherwise writes by hand for the exact Kubernetes version of the build: renewing the
existing certificates (refusing, or proving the result, or putting everything back), making
kubelets rotate their own certificates, making the controller-manager sign kubelet certificates
for as long as the control plane's, letting nodes' CSRs be approved, from v1.31 the
kubeadm-config ConfigMap edit, installing the binary, a kubespray snippet, and what a later stock
kubeadm would undo.

``facts`` (what each minor spells differently, and the renewal plan renew-check shares),
``inputs`` (the build and flags, checked), ``render`` (scripts and manifests from
``templates/``), ``readme`` (the kit's README) and ``write`` (the kit on disk) each answer one
question; this module names what callers use.
"""

from longcert.kit.facts import (
    HOURS_PER_YEAR,
    KitFacts,
    RenewPlan,
    RenewStep,
    duration,
    facts_for,
    regenerates_kubelet_conf,
    renew_plan,
)
from longcert.kit.inputs import (
    DEFAULT_INSTALL_PATH,
    KitInputs,
    check_image_repository,
    check_install_path,
    inputs_from_build,
)
from longcert.kit.render import render_template, renew_script
from longcert.kit.write import KIT_DIR, KitFile, kit_archive, make_kit, plan_kit, write_kit
from longcert.package import KIT_ARCHIVE

__all__ = [
    "DEFAULT_INSTALL_PATH",
    "HOURS_PER_YEAR",
    "KIT_ARCHIVE",
    "KIT_DIR",
    "KitFacts",
    "KitFile",
    "KitInputs",
    "RenewPlan",
    "RenewStep",
    "check_image_repository",
    "check_install_path",
    "duration",
    "facts_for",
    "inputs_from_build",
    "kit_archive",
    "make_kit",
    "plan_kit",
    "regenerates_kubelet_conf",
    "render_template",
    "renew_plan",
    "renew_script",
    "write_kit",
]
