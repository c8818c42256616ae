#!/usr/bin/env bash
# Set certificateValidityPeriod=@@LEAF_DURATION@@ and caCertificateValidityPeriod=@@CA_DURATION@@ in
# the ClusterConfiguration kubeadm stores in ConfigMap kube-system/kubeadm-config. kubeadm @@TAG@@
# (v1.31+) takes the validity from there on `certs renew` and `upgrade`, and every existing
# cluster stores 8760h0m0s / 87600h0m0s, which would win over the patched defaults.
# --dry-run prints the new ClusterConfiguration instead of applying it. Needs kubectl with
# cluster-admin (KUBECONFIG or /etc/kubernetes/admin.conf).
set -euo pipefail
export KUBECONFIG="${KUBECONFIG:-/etc/kubernetes/admin.conf}"
die() { echo "kubeadm-config.sh: $*" >&2; exit 1; }
current="$(kubectl -n kube-system get configmap kubeadm-config \
  -o jsonpath='{.data.ClusterConfiguration}')"
[ -n "$current" ] || die "no data.ClusterConfiguration in kube-system/kubeadm-config"
api="$(printf '%s\n' "$current" | sed -n -E 's/^apiVersion:[[:space:]]*([^[:space:]]+).*/\1/p')"
case "$api" in
  kubeadm.k8s.io/v1beta4|kubeadm.k8s.io/v1) ;;
  *) die "the stored ClusterConfiguration is ${api:-of no apiVersion}, not v1beta4 or later:" \
  "it has no certificateValidityPeriod (upgrade the cluster to v1.31 first)" ;;
esac
updated="$(printf '%s\n' "$current" \
  | grep -v -E '^(certificateValidityPeriod|caCertificateValidityPeriod):'
  printf 'certificateValidityPeriod: @@LEAF_DURATION@@\ncaCertificateValidityPeriod: @@CA_DURATION@@\n')"
if [ "${1:-}" = "--dry-run" ]; then
  printf '%s\n' "$updated"
  exit 0
fi
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
printf '%s\n' "$updated" > "$tmp"
kubectl -n kube-system create configmap kubeadm-config --from-file=ClusterConfiguration="$tmp" \
  --dry-run=client -o yaml | kubectl -n kube-system patch configmap kubeadm-config \
  --type merge --patch-file /dev/stdin
echo "kubeadm-config: certificateValidityPeriod=@@LEAF_DURATION@@ caCertificateValidityPeriod=@@CA_DURATION@@"
