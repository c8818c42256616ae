#!/usr/bin/env bash
# Store in the cluster's own configuration (ConfigMap kube-system/kubeadm-config, key
# @@DATA_KEY@@) what this kit sets on each node, so that `kubeadm upgrade`, which re-renders the
# static pod manifests and renews certificates from it (kubeadm-reconfigure.md), keeps it:
#   - kube-controller-manager's @@SIGNING_FLAG@@=@@LEAF_DURATION@@ (and no @@OLD_FLAG_WORDS@@)
#   - from v1.31: certificateValidityPeriod=@@LEAF_DURATION@@ and
#     caCertificateValidityPeriod=@@CA_DURATION@@ (every existing cluster stores 8760h0m0s /
#     87600h0m0s there, which kubeadm takes over its own defaults, kubernetes/kubernetes#124652)
# Usage: kubeadm-config.sh [--dry-run]   (--dry-run prints the new configuration, applies nothing)
# Needs kubectl with cluster-admin (KUBECONFIG, default /etc/kubernetes/admin.conf). It refuses
# a stored configuration of another API than this kit's (@@APIS@@), changing nothing.
set -euo pipefail
export KUBECONFIG="${KUBECONFIG:-/etc/kubernetes/admin.conf}"
DATA_KEY=@@DATA_KEY@@
LAYOUT=@@LAYOUT@@
APIS="@@APIS@@"
FLAG=@@FLAG@@
OLD_FLAG="@@OLD_FLAG@@"
VALUE=@@LEAF_DURATION@@
VALIDITY_FIELDS=@@VALIDITY_FIELDS@@
CA_VALUE=@@CA_DURATION@@
die() { echo "kubeadm-config.sh: $*" >&2; exit 1; }
dry_run=0
case "${1:-}" in
  --dry-run) dry_run=1 ;;
  "") ;;
  -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
  *) die "unknown argument $1 (see --help)" ;;
esac

# The controller-manager's extra arguments as this API lays them out: a top-level
# controllerManagerExtraArgs map (v1alpha1-v1alpha3), controllerManager.extraArgs as a map
# (v1beta1-v1beta3) or as a list of {name, value} (v1beta4, v1; kubernetes/kubernetes#119156).
# Any entry for the flag (or the one it replaced) is dropped and the flag written once.
with_signing_flag() {
  awk -v layout="$LAYOUT" -v flag="$FLAG" -v old="$OLD_FLAG" -v value="$VALUE" '
    function ours(line) {
      sub(/^[[:space:]]*(- )?(name:[[:space:]]*)?/, "", line)
      sub(/:.*$/, "", line)
      sub(/[[:space:]].*$/, "", line)
      return line == flag || (old != "" && line == old)
    }
    function entries(indent) {
      if (layout == "list") { print indent "- name: " flag; print indent "  value: " value }
      else { print indent flag ": " value }
    }
    function close_block() {
      if (layout == "top" && in_top && !done) { entries("  "); done = 1 }
      if (layout != "top" && in_cm && !done) { print "  extraArgs:"; entries(layout == "list" ? "  " : "    "); done = 1 }
      in_top = 0; in_cm = 0; in_args = 0; skip_value = 0
    }
    /^[^[:space:]#-]/ { close_block() }
    layout == "top" && /^controllerManagerExtraArgs:[[:space:]]*(\{\})?[[:space:]]*$/ {
      print "controllerManagerExtraArgs:"; entries("  "); done = 1; in_top = 1; next }
    layout == "top" && in_top && ours($0) { next }
    layout != "top" && /^controllerManager:[[:space:]]*(\{\})?[[:space:]]*$/ {
      print "controllerManager:"; in_cm = 1; next }
    in_cm && /^  [^[:space:]-]/ { in_args = 0 }
    in_cm && /^  extraArgs:[[:space:]]*(\{\}|\[\])?[[:space:]]*$/ {
      print "  extraArgs:"; entries(layout == "list" ? "  " : "    "); done = 1; in_args = 1
      next }
    in_args && skip_value && /^[[:space:]]+value:/ { skip_value = 0; next }
    in_args { skip_value = 0 }
    in_args && layout == "list" && /^[[:space:]]*- name:/ && ours($0) { skip_value = 1; next }
    in_args && layout == "map" && /^    [^[:space:]]/ && ours($0) { next }
    { print }
    END {
      close_block()
      if (!done && layout == "top") { print "controllerManagerExtraArgs:"; entries("  ") }
      if (!done && layout != "top") {
        print "controllerManager:"; print "  extraArgs:"; entries(layout == "list" ? "  " : "    ")
      }
    }'
}
with_validity() {
  if [ "$VALIDITY_FIELDS" = 1 ]; then
    grep -v -E '^(certificateValidityPeriod|caCertificateValidityPeriod):' || true
    printf 'certificateValidityPeriod: %s\ncaCertificateValidityPeriod: %s\n' "$VALUE" "$CA_VALUE"
  else
    cat
  fi
}
json_string() {  # text on stdin -> its JSON string body (quotes, backslashes, tabs, newlines)
  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/\t/\\t/g' | awk '{ printf "%s\\n", $0 }'
}

current="$(kubectl -n kube-system get configmap kubeadm-config \
  -o "jsonpath={.data.$DATA_KEY}")" || die "cannot read ConfigMap kube-system/kubeadm-config"
[ -n "$current" ] || die "no data.$DATA_KEY in kube-system/kubeadm-config"
api="$(printf '%s\n' "$current" | sed -n -E 's/^apiVersion:[[:space:]]*([^[:space:]]+).*/\1/p' \
  | head -n 1)"
case " $APIS " in
  *" $api "*) ;;
  *) die "the stored configuration is ${api:-of no apiVersion}, not one of $APIS: use the kit" \
    "of the cluster's own version; nothing was changed" ;;
esac
updated="$(printf '%s\n' "$current" | with_signing_flag | with_validity)"
[ "$(printf '%s\n' "$updated" | grep -c -E "^[[:space:]]*(- name: |)$FLAG(: |\$)")" = 1 ] \
  || die "could not write $FLAG into the stored configuration exactly once; nothing was changed"
if [ "$dry_run" = 1 ]; then
  printf '%s\n' "$updated"
  exit 0
fi
patch="{\"data\":{\"$DATA_KEY\":\"$(printf '%s\n' "$updated" | json_string)\"}}"
kubectl -n kube-system patch configmap kubeadm-config --type merge -p "$patch" >/dev/null
echo "kubeadm-config: $FLAG=$VALUE in the controller-manager's extraArgs$(
  [ "$VALIDITY_FIELDS" = 1 ] && echo ", certificateValidityPeriod=$VALUE," \
    "caCertificateValidityPeriod=$CA_VALUE")"
