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

One module per question: :mod:`~longcert.renewcheck.certs` reads what a directory holds,
:mod:`~longcert.renewcheck.plan` decides what the dry run runs (version, renewal, config),
:mod:`~longcert.renewcheck.verdict` judges before against after,
:mod:`~longcert.renewcheck.report` writes the table and the JSON, and
:mod:`~longcert.renewcheck.run` runs it all in a container. Every name is used as
``renewcheck.NAME``, as when this was one module.
"""

from __future__ import annotations

from longcert.renewcheck.certs import (
    CA_FILES,
    Seen,
    inventory,
)
from longcert.renewcheck.plan import (
    CONFIG_FILE,
    STANDARD_NAMES,
    NodeSettings,
    derived_settings,
    kubelet_conf_embeds,
    pki_version,
    plan_for,
    render_config,
    renew_argv,
    with_init_document,
)
from longcert.renewcheck.report import (
    HEADER,
    RenewReport,
    report_dict,
    report_rows,
)
from longcert.renewcheck.run import (
    ASIDE,
    asked_years,
    check,
)
from longcert.renewcheck.verdict import (
    DAYS_PER_YEAR,
    KUBELET_CURRENT,
    TOLERANCE_DAYS,
    Row,
    judge,
)

__all__ = [
    "ASIDE",
    "CA_FILES",
    "CONFIG_FILE",
    "DAYS_PER_YEAR",
    "HEADER",
    "KUBELET_CURRENT",
    "STANDARD_NAMES",
    "TOLERANCE_DAYS",
    "NodeSettings",
    "RenewReport",
    "Row",
    "Seen",
    "asked_years",
    "check",
    "derived_settings",
    "inventory",
    "judge",
    "kubelet_conf_embeds",
    "pki_version",
    "plan_for",
    "render_config",
    "renew_argv",
    "report_dict",
    "report_rows",
    "with_init_document",
]
