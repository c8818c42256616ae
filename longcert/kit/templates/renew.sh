#!/usr/bin/env bash
# longcert rollout kit: renew the certificates of a kubeadm @@MINOR@@ control-plane node with the
# patched kubeadm @@TAG@@ (@@BUILD_ID@@): leaves @@LEAF_YEARS@@y (@@LEAF_DAYS@@ days).
#
# Usage: renew.sh [--dry-run] [--force] [--restart] [--config FILE] [--kubeadm PATH]
#                 [--margin-days N]
#   --dry-run        check the node and print every command instead of running it (no root)
#   --force          renew even when every certificate has its asked life left
#   --config FILE    the cluster's kubeadm config (default: @@CONFIG_DEFAULT@@)
#   --kubeadm PATH   the patched kubeadm (default @@INSTALL_PATH@@)
#   --margin-days N  a certificate with at least @@LEAF_DAYS@@ - N days left needs no renewal
#                    (default 30)
#   --restart        then restart the static pods one at a time (crictl or docker) and check
#                    that each endpoint serves the renewed certificate; stops at the first
#                    mismatch and says how to go back
#
# It refuses, changing nothing, unless: it runs as root on a control plane of @@MINOR@@, the
# installed kubeadm is this kit's, openssl is there, the cluster's stored certificate validity
# gives @@LEAF_DAYS@@ days (v1.31+), and kubelet.conf can be taken care of. Once it has changed a
# file it either proves the result (every renewed certificate has @@LEAF_DAYS@@ days left and the
# same subject, SANs, key usage, issuer and signing CA as before, every kubeconfig the same
# server, the controller-manager flag set) or puts /etc/kubernetes back from its backup, byte for
# byte, and exits 1. Ctrl-C or SIGTERM while it changes files also puts everything back.
# LONGCERT_KUBERNETES_DIR overrides /etc/kubernetes for --dry-run only.
set -euo pipefail
TAG=@@TAG@@
MINOR=@@MINOR@@
LEAF_DAYS=@@LEAF_DAYS@@
LEAF_SECONDS=@@LEAF_SECONDS@@
LEAF_DURATION=@@LEAF_DURATION@@
KIT_SHA256S="@@KIT_SHA256S@@"
RENEWED="@@RENEWED@@"
CA_FILES="@@CA_FILES@@"
# --restart: name:port:certificate it serves (no certificate: one the component makes itself)
STATIC_PODS="@@STATIC_PODS@@"
SIGNING_FLAG=@@SIGNING_FLAG@@
OLD_SIGNING_FLAG="@@OLD_SIGNING_FLAG@@"
SIGNING_ARG="$SIGNING_FLAG=$LEAF_DURATION"
# v1.9/v1.10 with serving rotation: the controller-manager approves serving CSRs only with this
# gate (kubernetes/kubernetes#46884).
KCM_GATE_ARG="@@KCM_GATE_ARG@@"
CHECK_STORED_PERIODS=@@CHECK_STORED_PERIODS@@
REGENERATES_KUBELET_CONF=@@REGENERATES_KUBELET_CONF@@
NEEDS_CONFIG=@@NEEDS_CONFIG@@
NODE_CONFIG_STYLE=@@NODE_CONFIG_STYLE@@
CONFIG_API=@@CONFIG_API@@
KUBELET_CURRENT=/var/lib/kubelet/pki/kubelet-client-current.pem
KUBE_DIR=/etc/kubernetes
SEMVER='(v[0-9]+\.[0-9]+\.[0-9]+)'
IMAGE_TAG="^[[:space:]]*image:[[:space:]]*[^[:space:]]*kube-apiserver[^:]*:$SEMVER.*"
KUBEADM=@@INSTALL_PATH@@
DRY_RUN=0
FORCE=0
CONFIG=""
MARGIN_DAYS=30
RESTART=0
RESTART_TIMEOUT="${LONGCERT_RESTART_TIMEOUT:-180}"  # seconds per wait
RESTART_POLL="${LONGCERT_RESTART_POLL:-2}"  # seconds between looks (the kubelet checks every 20)
MOVED_OUT=""  # a static pod manifest --restart has moved out (put back on any exit)
die() { echo "renew.sh: $*" >&2; exit 1; }
note() { echo "renew.sh: $*"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --force) FORCE=1 ;;
    --restart) RESTART=1 ;;
    --config) CONFIG="${2:?--config needs a file}"; shift ;;
    --kubeadm) KUBEADM="${2:?--kubeadm needs a path}"; shift ;;
    --margin-days) MARGIN_DAYS="${2:?--margin-days needs a number of days}"; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
case "$RESTART_TIMEOUT$RESTART_POLL" in
  *[!0-9.]*) die "LONGCERT_RESTART_TIMEOUT and LONGCERT_RESTART_POLL are numbers of seconds" ;;
esac
case "$RESTART_TIMEOUT" in ''|*[!0-9]*) die "LONGCERT_RESTART_TIMEOUT is whole seconds" ;; esac
case "$MARGIN_DAYS" in
  ''|*[!0-9]*) die "--margin-days $MARGIN_DAYS is not a whole number of days" ;;
esac
[ "$MARGIN_DAYS" -lt "$LEAF_DAYS" ] \
  || die "--margin-days $MARGIN_DAYS must be below the asked validity of $LEAF_DAYS days"
if [ "$DRY_RUN" = 1 ]; then
  KUBE_DIR="${LONGCERT_KUBERNETES_DIR:-$KUBE_DIR}"
elif [ -n "${LONGCERT_KUBERNETES_DIR:-}" ] && [ "$LONGCERT_KUBERNETES_DIR" != "$KUBE_DIR" ]; then
  die "LONGCERT_KUBERNETES_DIR is for --dry-run only: kubeadm renews $KUBE_DIR"
fi
if [ -n "$CONFIG" ] && [ ! -f "$CONFIG" ]; then die "--config $CONFIG is not a file"; fi
# run: print the command; run it unless --dry-run.
run() { echo "+ $*"; [ "$DRY_RUN" = 1 ] || "$@"; }

# --- reading certificates (openssl only) ---------------------------------------------------
kubeconfig_field() {  # $1 kubeconfig, $2 field: the first value of that field
  sed -n -E "s/^[[:space:]]*$2:[[:space:]]*//p" "$1" | head -n 1 | tr -d '"'
}
kubeconfig_pem() {  # $1 kubeconfig, $2 client-certificate or client-key -> that PEM on stdout
  local data path
  data="$(kubeconfig_field "$1" "$2-data")"
  if [ -n "$data" ]; then printf '%s' "$data" | base64 -d; return; fi
  path="$(kubeconfig_field "$1" "$2")"
  [ -n "$path" ] && [ -f "$path" ] && cat "$path"
}
kubeconfig_cert() { kubeconfig_pem "$1" client-certificate; }
kubeconfig_key() { kubeconfig_pem "$1" client-key; }
embeds_cert() { grep -q '^[[:space:]]*client-certificate-data:' "$1" 2>/dev/null; }
pem_of() {  # $1 a file under KUBE_DIR (pki/x.crt or x.conf) -> its certificate (PEM)
  case "$1" in
    *.conf) kubeconfig_cert "$KUBE_DIR/$1" ;;
    *) cat "$KUBE_DIR/$1" ;;
  esac
}
days_left() {  # PEM on stdin -> whole days until NotAfter
  local end
  end="$(openssl x509 -noout -enddate | cut -d= -f2)"
  echo $(( ($(date -u -d "$end" +%s) - $(date -u +%s)) / 86400 ))
}
expiry() { openssl x509 -noout -enddate | cut -d= -f2; }
extension() {  # $1 certificate text, $2 extension name -> its value, entries sorted
  printf '%s\n' "$1" | sed -n "/X509v3 $2:/{n;p;}" | head -n 1 | tr ',' '\n' \
    | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' | sort | paste -s -d, -
}
signer_of() {  # $1 certificate file -> the CA file (relative) that verifies it, or "none"
  local ca
  for ca in $CA_FILES; do
    [ -f "$KUBE_DIR/$ca" ] || continue
    if openssl verify -CAfile "$KUBE_DIR/$ca" "$1" >/dev/null 2>&1; then echo "$ca"; return; fi
  done
  echo none
}
identity() {  # $1 file under KUBE_DIR -> what must not change when it is renewed
  local pem ext tmp
  tmp="$WORK/identity.pem"
  pem_of "$1" > "$tmp" 2>/dev/null || true
  if ! openssl x509 -in "$tmp" -noout -text -nameopt RFC2253 > "$tmp.text" 2>/dev/null; then
    echo "unreadable certificate"; return
  fi
  # Subject, issuer, and each extension's value with its entries sorted, from one -text.
  awk '
    function sorted(value,   parts, n, i, j, t, out) {
      n = split(value, parts, /, */)
      for (i = 2; i <= n; i++) for (j = i; j > 1 && parts[j - 1] > parts[j]; j--) {
        t = parts[j]; parts[j] = parts[j - 1]; parts[j - 1] = t }
      out = parts[1]; for (i = 2; i <= n; i++) out = out "," parts[i]
      return out
    }
    /^ *Issuer: / { sub(/^ *Issuer: */, ""); print "issuer=" $0; next }
    /^ *Subject: / { sub(/^ *Subject: */, ""); print "subject=" $0; next }
    /X509v3 (Subject Alternative Name|Key Usage|Extended Key Usage|Basic Constraints):/ {
      name = $0; sub(/^ */, "", name); sub(/ *$/, "", name)
      getline value; sub(/^ */, "", value); sub(/ *$/, "", value)
      print name " " sorted(value)
    }' "$tmp.text"
  echo "signed by: $(signer_of "$tmp")"
  case "$1" in
    *.conf)
      echo "server: $(kubeconfig_field "$KUBE_DIR/$1" server)"
      echo "cluster CA: $(kubeconfig_field "$KUBE_DIR/$1" certificate-authority-data \
        | sha256sum | cut -c1-64)"
      ;;
  esac
  pem="$(openssl x509 -in "$tmp" -noout -pubkey | sha256sum | cut -c1-64)"
  case "$1" in
    *.conf) ext="$(kubeconfig_key "$KUBE_DIR/$1" | openssl pkey -pubout 2>/dev/null \
      | sha256sum | cut -c1-64)" ;;
    *) ext="$(openssl pkey -in "$KUBE_DIR/${1%.crt}.key" -pubout 2>/dev/null \
      | sha256sum | cut -c1-64)" ;;
  esac
  [ "$pem" = "$ext" ] && echo "key: matches" || echo "key: DOES NOT MATCH the certificate"
}

# --- checks that change nothing ------------------------------------------------------------
command -v openssl >/dev/null 2>&1 \
  || die "openssl is missing: it reads every certificate before and after; install it first"
for tool in awk base64 cmp diff find mktemp sed sha256sum stat; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing: install it first (nothing was changed)"
done
node_version() {
  local manifest="$KUBE_DIR/manifests/kube-apiserver.yaml" found=""
  if [ -f "$manifest" ]; then
    found="$(sed -n -E "s/$IMAGE_TAG/\\1/p" "$manifest" | head -n 1)"
  fi
  if [ -z "$found" ] && command -v kubectl >/dev/null 2>&1 && [ -f "$KUBE_DIR/admin.conf" ]; then
    found="$(kubectl --kubeconfig "$KUBE_DIR/admin.conf" version -o json 2>/dev/null \
      | sed -n -E "/serverVersion/,\$ s/.*\"gitVersion\": *\"$SEMVER.*/\\1/p" | head -n 1)"
  fi
  echo "$found"
}
if [ ! -f "$KUBE_DIR/manifests/kube-apiserver.yaml" ]; then
  if [ "$DRY_RUN" = 1 ]; then
    note "dry run: $KUBE_DIR/manifests/kube-apiserver.yaml is missing (not a control-plane node?)"
  else
    die "$KUBE_DIR/manifests/kube-apiserver.yaml is missing: run this on a control-plane node"
  fi
else
  running="$(node_version)"
  [ -n "$running" ] || die "cannot tell the Kubernetes version of this node (no kube-apiserver" \
  "image tag in $KUBE_DIR/manifests/kube-apiserver.yaml, no kubectl version)"
  case "$running" in
    "v$MINOR".*) ;;
    *) die "this node runs Kubernetes $running, this kit is for $MINOR ($TAG):" \
  "use the kit of a build of $running" ;;
  esac
fi
if [ "$DRY_RUN" != 1 ] && [ "$(id -u)" != 0 ]; then
  die "must run as root (sudo ./renew.sh), or pass --dry-run to see the commands"
fi
if [ "$DRY_RUN" != 1 ] && [ ! -f "$KUBE_DIR/pki/ca.crt" ]; then
  die "$KUBE_DIR/pki/ca.crt is missing: not a kubeadm control-plane node"
fi
installed=none
if [ -f "$KUBEADM" ]; then
  sum="$(sha256sum "$KUBEADM" | cut -c1-64)"
  case " $KIT_SHA256S " in *" $sum "*) installed="$sum" ;; esac
fi
if [ "$installed" = none ]; then
  if [ "$DRY_RUN" = 1 ]; then
    note "dry run: $KUBEADM is not the longcert kubeadm $TAG yet (install.sh installs it)"
  else
    die "$KUBEADM is not the longcert kubeadm $TAG of this kit: run install.sh first" \
  "(a stock kubeadm renews for one year)"
  fi
fi
if [ "$RESTART" = 1 ]; then
  if command -v crictl >/dev/null 2>&1; then RUNTIME=crictl
  elif command -v docker >/dev/null 2>&1; then RUNTIME=docker
  else die "--restart needs crictl or docker to see the static pods; nothing was changed"; fi
fi
WORK="$(mktemp -d)"
CHANGING=0
BACKUP=""
on_exit() {
  local code=$?
  trap - EXIT INT TERM HUP
  if [ -n "$MOVED_OUT" ]; then
    mv -f "$WORK/restart/$(basename "$MOVED_OUT")" "$MOVED_OUT" \
      && echo "renew.sh: put $MOVED_OUT back" >&2
  fi
  if [ "$CHANGING" = 1 ]; then
    [ "$code" != 0 ] || code=1
    echo "renew.sh: failed while changing $KUBE_DIR: putting it back from $BACKUP" >&2
    if restore_backup; then
      echo "renew.sh: $KUBE_DIR is as it was before (byte for byte); the backup stays in" \
        "$BACKUP" >&2
    else
      echo "renew.sh: COULD NOT PUT EVERYTHING BACK: copy $BACKUP over $KUBE_DIR by hand" \
        "(cp -a $BACKUP/. $KUBE_DIR/) before restarting anything" >&2
    fi
  fi
  rm -rf "$WORK"
  exit "$code"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# From v1.31 kubeadm renews with the certificateValidityPeriod the cluster stores in ConfigMap
# kube-system/kubeadm-config (or in --config), over its own default (kubernetes/kubernetes#124652):
# a cluster that still stores 8760h0m0s would get one-year certificates.
seconds_of() {  # a Go duration (87600h0m0s, 876000h, 90m) -> whole seconds, "" if not one
  local rest="$1" total=0 number unit
  [ -n "$rest" ] || return 0
  while [ -n "$rest" ]; do
    number="$(printf '%s' "$rest" | sed -n -E 's/^([0-9]+)(\.[0-9]+)?(h|m|s|ms|us|ns).*/\1/p')"
    unit="$(printf '%s' "$rest" | sed -n -E 's/^[0-9]+(\.[0-9]+)?(h|m|s|ms|us|ns).*/\2/p')"
    [ -n "$number" ] && [ -n "$unit" ] || return 0
    case "$unit" in
      h) total=$((total + number * 3600)) ;;
      m) total=$((total + number * 60)) ;;
      s) total=$((total + number)) ;;
    esac
    rest="$(printf '%s' "$rest" | sed -E 's/^[0-9]+(\.[0-9]+)?(h|m|s|ms|us|ns)//')"
  done
  echo "$total"
}
if [ "$CHECK_STORED_PERIODS" = 1 ]; then
  stored=""
  if [ -n "$CONFIG" ]; then
    stored="$(cat "$CONFIG")"; stored_from="--config $CONFIG"
  elif command -v kubectl >/dev/null 2>&1 && [ -f "$KUBE_DIR/admin.conf" ]; then
    stored_from="ConfigMap kube-system/kubeadm-config"
    stored="$(kubectl --kubeconfig "$KUBE_DIR/admin.conf" -n kube-system get configmap \
      kubeadm-config -o jsonpath='{.data.ClusterConfiguration}' 2>/dev/null)" \
      || die "cannot read ConfigMap kube-system/kubeadm-config (is the API server up?):" \
  "pass --config with the cluster's ClusterConfiguration"
  else
    stored_from=""
  fi
  if [ -z "$stored_from" ]; then
    if [ "$DRY_RUN" = 1 ]; then
      note "dry run: no kubectl and no --config: a real run refuses until it can read the" \
  "stored ClusterConfiguration"
    else
      die "cannot read the cluster's stored ClusterConfiguration (no kubectl or" \
  "$KUBE_DIR/admin.conf): pass --config with it; kubeadm renews with its certificateValidityPeriod"
    fi
  else
    period="$(printf '%s\n' "$stored" | sed -n -E \
      's/^certificateValidityPeriod:[[:space:]]*"?([0-9a-z.]+)"?[[:space:]]*$/\1/p' | head -n 1)"
    if [ -z "$period" ]; then
      note "$stored_from stores no certificateValidityPeriod: this kubeadm's own $LEAF_DURATION" \
  "applies"
    elif [ "$(seconds_of "$period")" != "$LEAF_SECONDS" ]; then
      die "$stored_from stores certificateValidityPeriod: $period, so kubeadm would renew" \
  "for that, not $LEAF_DURATION: run ./kubeadm-config.sh first (or pass --config with" \
  "certificateValidityPeriod: $LEAF_DURATION); nothing was changed"
    else
      note "$stored_from stores certificateValidityPeriod: $period"
    fi
  fi
fi

# kubelet.conf: from v1.17 kubeadm points it at the kubelet's rotated certificate. A node
# initialised before that keeps the certificate inside, and nothing renews it (kubeadm-certs.md,
# kubernetes/kubeadm#1753): point it at kubelet-client-current.pem (upstream's documented fix),
# or (up to v1.14) let the kubeconfig phase write it again, or refuse.
KUBELET_PLAN=keep
KUBELET_CONF="$KUBE_DIR/kubelet.conf"
if embeds_cert "$KUBELET_CONF"; then
  embedded_cn="$(kubeconfig_cert "$KUBELET_CONF" | openssl x509 -noout -subject -nameopt RFC2253 \
    | sed -n -E 's/.*CN=([^,]*).*/\1/p')"
  current_cn=""
  if [ -f "$KUBELET_CURRENT" ] && openssl x509 -in "$KUBELET_CURRENT" -noout -checkend 86400 \
    >/dev/null 2>&1 && openssl verify -CAfile "$KUBE_DIR/pki/ca.crt" "$KUBELET_CURRENT" \
    >/dev/null 2>&1; then
    current_cn="$(openssl x509 -in "$KUBELET_CURRENT" -noout -subject -nameopt RFC2253 \
      | sed -n -E 's/.*CN=([^,]*).*/\1/p')"
  fi
  if [ -n "$current_cn" ] && [ "$current_cn" = "$embedded_cn" ]; then
    KUBELET_PLAN=repoint
    note "kubelet.conf embeds its client certificate ($embedded_cn, ends" \
  "$(kubeconfig_cert "$KUBELET_CONF" | expiry)): it will point at $KUBELET_CURRENT, which the" \
  "kubelet rotates"
  elif [ "$REGENERATES_KUBELET_CONF" = 1 ]; then
    KUBELET_PLAN=regenerate
    note "kubelet.conf embeds its client certificate and there is no valid $KUBELET_CURRENT" \
  "for $embedded_cn: the kubeconfig phase writes it again"
  else
    die "kubelet.conf embeds its client certificate ($embedded_cn, ends" \
  "$(kubeconfig_cert "$KUBELET_CONF" | expiry)) and nothing renews it, and $KUBELET_CURRENT is" \
  "missing, expired or not $embedded_cn under pki/ca.crt: turn on kubelet client rotation," \
  "let the kubelet write it, then run this again (kubeadm-certs.md, kubelet.conf); nothing was" \
  "changed"
  fi
fi

if [ "$KUBELET_PLAN" = regenerate ]; then RENEWED="$RENEWED kubelet.conf"; fi
SNAPSHOT_FILES="$RENEWED $CA_FILES"
case " $RENEWED " in *" kubelet.conf "*) ;; *) SNAPSHOT_FILES="$SNAPSHOT_FILES kubelet.conf" ;; esac

# --- what needs renewing: NotAfter - now, not the certificate's span ------------------------
RENEW=0
TO_RENEW=""
for name in $RENEWED; do
  [ -f "$KUBE_DIR/$name" ] || continue
  case "$name" in *.conf) embeds_cert "$KUBE_DIR/$name" || continue ;; esac
  left="$(pem_of "$name" | days_left)"
  if [ "$left" -lt $((LEAF_DAYS - MARGIN_DAYS)) ]; then TO_RENEW="$TO_RENEW $name"; fi
done
if [ "$KUBELET_PLAN" = regenerate ] && [ "$FORCE" != 1 ]; then
  # Only a kubelet.conf that is short is written again (a long one it wrote before stays).
  case " $TO_RENEW " in *" kubelet.conf "*) ;; *) KUBELET_PLAN=keep ;; esac
fi
if [ "$FORCE" = 1 ] || [ -n "$TO_RENEW" ] || [ ! -d "$KUBE_DIR/pki" ]; then
  RENEW=1
  if [ "$FORCE" = 1 ]; then note "--force: renewing every certificate"; else
    note "to renew (less than $((LEAF_DAYS - MARGIN_DAYS)) days left):$TO_RENEW"; fi
else
  note "every certificate has at least $((LEAF_DAYS - MARGIN_DAYS)) of $LEAF_DAYS days left:" \
  "nothing to renew (--force renews anyway, --margin-days changes the margin)"
fi
KCM="$KUBE_DIR/manifests/kube-controller-manager.yaml"
KCM_EDIT=1
kcm_has() {  # $1 flag=value: the manifest passes it (a line "- flag=value")
  [ -f "$KCM" ] && grep -q -- "^[[:space:]]*- $1\$" "$KCM"
}
if [ -f "$KCM" ] && kcm_has "$SIGNING_ARG" && { [ -z "$KCM_GATE_ARG" ] || kcm_has "$KCM_GATE_ARG"; }
then
  KCM_EDIT=0
  note "kube-controller-manager already has $SIGNING_ARG${KCM_GATE_ARG:+ $KCM_GATE_ARG}"
elif [ ! -f "$KCM" ] && [ "$DRY_RUN" != 1 ]; then
  die "$KCM is missing: this node's controller-manager cannot be given $SIGNING_ARG"
fi
if [ "$RENEW" = 0 ] && [ "$KCM_EDIT" = 0 ] && [ "$KUBELET_PLAN" = keep ]; then
  note "nothing to do"
  exit 0
fi

# --- the node's identity, from its own files (the kubeconfig phases up to v1.14) -------------
node_name() {
  local cn=""
  if [ -f "$KUBELET_CONF" ]; then
    cn="$(kubeconfig_cert "$KUBELET_CONF" 2>/dev/null | openssl x509 -noout -subject \
      -nameopt RFC2253 2>/dev/null | sed -n -E 's/.*CN=system:node:([^,]*).*/\1/p')"
  fi
  if [ -z "$cn" ] && [ -f "$KUBE_DIR/pki/apiserver.crt" ]; then
    # kubeadm puts the node name first among the apiserver certificate's DNS names.
    cn="$(extension "$(openssl x509 -in "$KUBE_DIR/pki/apiserver.crt" -noout -text)" \
      "Subject Alternative Name" | tr ',' '\n' | sed -n 's/^DNS://p' | grep -v '^kubernetes' \
      | head -n 1)"
  fi
  echo "$cn"
}
manifest_flag() {  # $1 flag of kube-apiserver -> its value in the static pod manifest
  sed -n -E "s/.*--$1=([^[:space:]\"]+).*/\\1/p" "$KUBE_DIR/manifests/kube-apiserver.yaml" \
    2>/dev/null | head -n 1
}
node_config() {  # the cluster's config on stdin -> the same with this node's identity
  case "$NODE_CONFIG_STYLE" in
    master)
      awk -v node="$NODE" -v address="$ADDRESS" -v port="$PORT" -v api_version="$CONFIG_API" '
        /^[^[:space:]#]/ { block = "" }
        /^nodeName:/ { next }
        /^api:/ { block = "api"; print; print "  advertiseAddress: " address;
                  print "  bindPort: " port; seen_api = 1; next }
        /^nodeRegistration:/ { block = "nr"; print; print "  name: " node; seen_nr = 1; next }
        block == "api" && /^  (advertiseAddress|bindPort):/ { next }
        block == "nr" && /^  name:/ { next }
        { print }
        END {
          if (!seen_api) { print "api:"; print "  advertiseAddress: " address;
                           print "  bindPort: " port }
          if (api_version ~ /v1alpha1$/) { print "nodeName: " node }
          else if (!seen_nr) { print "nodeRegistration:"; print "  name: " node }
        }'
      ;;
    *)
      # v1alpha3 on: the ClusterConfiguration (what `kubeadm config view` prints) with this
      # node's InitConfiguration instead of any other.
      awk 'function flush() { if (doc != "" && ("\n" doc) !~ /\nkind:[[:space:]]*InitConfiguration/)
                                { printf "%s", doc; sep = 1 } doc = "" }
           /^---/ { flush(); next }
           { if (doc == "" && sep) doc = "---\n"; doc = doc $0 "\n" }
           END { flush() }'
      printf -- '---\napiVersion: %s\nkind: InitConfiguration\n' "$CONFIG_API"
      printf '%s:\n  advertiseAddress: %s\n  bindPort: %s\n' "$NODE_CONFIG_STYLE" "$ADDRESS" "$PORT"
      printf 'nodeRegistration:\n  name: %s\n' "$NODE"
      ;;
  esac
}
if [ "$NEEDS_CONFIG" = 1 ] && [ "$RENEW" = 1 ]; then
  NODE="$(node_name)"
  ADDRESS="$(manifest_flag advertise-address)"
  PORT="$(manifest_flag secure-port)"
  PORT="${PORT:-6443}"
  if [ -z "$NODE" ] || [ -z "$ADDRESS" ]; then
    if [ "$DRY_RUN" = 1 ]; then
      note "dry run: cannot read this node's name or advertise address yet"
    else
      die "cannot read this node's name (kubelet.conf, pki/apiserver.crt) or advertise address" \
  "(--advertise-address in manifests/kube-apiserver.yaml); nothing was changed"
    fi
  fi
  node_config_file="$WORK/kubeadm-config.yaml"
  if [ -z "$CONFIG" ]; then
    # kubeadm @@MINOR@@ makes kubeconfigs only from a config: the cluster's, as stored.
    echo "+ $KUBEADM config view > $node_config_file"
    if [ "$DRY_RUN" != 1 ]; then
      "$KUBEADM" config view > "$WORK/stored.yaml" 2>/dev/null \
        || die "cannot read the cluster's kubeadm config (is the API server up?): pass --config FILE"
    fi
  else
    cp "$CONFIG" "$WORK/stored.yaml"
  fi
  note "this node: name ${NODE:-?}, advertise address ${ADDRESS:-?}:$PORT (from its own files)"
  if [ "$DRY_RUN" != 1 ]; then node_config < "$WORK/stored.yaml" > "$node_config_file"; fi
  CONFIG="$node_config_file"
fi

# --- backup, and everything put back on any failure from here ------------------------------
BACKUP="$KUBE_DIR.longcert-backup-$(date -u +%Y%m%dT%H%M%SZ)"
if [ "$DRY_RUN" != 1 ]; then
  [ ! -e "$BACKUP" ] || die "$BACKUP exists already: wait a second and run again"
  need_kb="$(du -sk "$KUBE_DIR" | cut -f1)"
  free_kb="$(df -Pk "$(dirname "$KUBE_DIR")" | awk 'NR==2 {print $4}')"
  if [ "$free_kb" -lt $((need_kb * 2 + 10240)) ]; then
    die "not enough free space for the backup: $need_kb KiB needed twice," \
  "$free_kb KiB free on $(dirname "$KUBE_DIR")"
  fi
  if command -v flock >/dev/null 2>&1 && [ -d /run/lock ]; then
    exec 9>/run/lock/longcert-renew.lock
    flock -n 9 || die "another renew.sh runs on this node"
  fi
fi
run cp -a "$KUBE_DIR" "$BACKUP"
files_of() {  # $1 directory -> every file and link under it, relative, NUL-separated
  (cd "$1" && find . \( -type f -o -type l \) -print0)
}
same_file() {  # $1 $2: same bytes (or link target), mode and owner
  if [ -L "$1" ] || [ -L "$2" ]; then
    [ -L "$1" ] && [ -L "$2" ] && [ "$(readlink "$1")" = "$(readlink "$2")" ]; return
  fi
  [ -f "$2" ] && cmp -s "$1" "$2" && [ "$(stat -c %a:%u:%g "$1")" = "$(stat -c %a:%u:%g "$2")" ]
}
restore_backup() {  # put KUBE_DIR back from BACKUP, touching only files that differ
  local rel
  while IFS= read -r -d '' rel; do
    same_file "$BACKUP/$rel" "$KUBE_DIR/$rel" && continue
    mkdir -p "$(dirname "$KUBE_DIR/$rel")"
    rm -f "$KUBE_DIR/$rel.longcert-restore"
    cp -a "$BACKUP/$rel" "$KUBE_DIR/$rel.longcert-restore"
    mv -f "$KUBE_DIR/$rel.longcert-restore" "$KUBE_DIR/$rel"
  done < <(files_of "$BACKUP")
  while IFS= read -r -d '' rel; do
    [ -e "$BACKUP/$rel" ] || [ -L "$BACKUP/$rel" ] || rm -f "$KUBE_DIR/$rel"
  done < <(files_of "$KUBE_DIR")
  (cd "$KUBE_DIR" && find . -mindepth 1 -depth -type d -empty -print0) \
    | while IFS= read -r -d '' rel; do [ -d "$BACKUP/$rel" ] || rmdir "$KUBE_DIR/$rel"; done
  diff -r --no-dereference "$BACKUP" "$KUBE_DIR" >/dev/null 2>&1
}
snapshot() {  # $1 output file: the identity of every certificate and kubeconfig, one block each
  local name
  for name in $SNAPSHOT_FILES; do
    [ -f "$KUBE_DIR/$name" ] || continue
    case "$name" in *.conf) [ -n "$(kubeconfig_cert "$KUBE_DIR/$name" 2>/dev/null)" ] \
      || continue ;; esac
    echo "== $name"
    identity "$name"
  done > "$1"
}
if [ "$DRY_RUN" != 1 ]; then
  snapshot "$WORK/before"
  CHANGING=1
fi

# --- renewal --------------------------------------------------------------------------------
move_aside() {  # take files out of the way of a phase that keeps existing ones (backup has them)
  local name
  for name in "$@"; do
    if [ "$name" = kubelet.conf ] && [ "$KUBELET_PLAN" != regenerate ]; then continue; fi
    run rm -f "$KUBE_DIR/$name"
  done
}
if [ "$RENEW" = 1 ]; then
@@RENEW_STEPS@@fi
if [ "$KUBELET_PLAN" = repoint ]; then
  echo "+ point $KUBELET_CONF at $KUBELET_CURRENT"
  if [ "$DRY_RUN" != 1 ]; then
    sed -E -e "s|^([[:space:]]*)client-certificate-data:.*|\\1client-certificate: $KUBELET_CURRENT|" \
      -e "s|^([[:space:]]*)client-key-data:.*|\\1client-key: $KUBELET_CURRENT|" \
      "$KUBELET_CONF" > "$KUBELET_CONF.longcert-new"
    chmod --reference="$KUBELET_CONF" "$KUBELET_CONF.longcert-new"
    mv -f "$KUBELET_CONF.longcert-new" "$KUBELET_CONF"
  fi
fi

# --- kube-controller-manager: sign kubelet certificates for as long ---------------------------
if [ "$KCM_EDIT" = 1 ]; then
  if [ -n "$OLD_SIGNING_FLAG" ]; then
    run sed -i -e "/- $OLD_SIGNING_FLAG=/d" "$KCM"
  fi
  run sed -i -e "/- $SIGNING_FLAG=/d" "$KCM"
  run sed -i -E -e "s|^([[:space:]]*)- kube-controller-manager\$|&\\n\\1- $SIGNING_ARG|" "$KCM"
  if [ -n "$KCM_GATE_ARG" ] && ! kcm_has "$KCM_GATE_ARG"; then
    run sed -i -E -e "s|^([[:space:]]*)- kube-controller-manager\$|&\\n\\1- $KCM_GATE_ARG|" "$KCM"
  fi
fi

# --- proof: what the renewal gave, or everything put back -----------------------------------
if [ "$DRY_RUN" = 1 ]; then
  echo "dry run: backup would be $BACKUP; nothing was changed"
  exit 0
fi
snapshot "$WORK/after"
problems=""
problem() { problems="$problems
  $*"; }
for arg in $SIGNING_ARG $KCM_GATE_ARG; do
  if [ "$KCM_EDIT" = 1 ] && ! kcm_has "$arg"; then
    problem "manifests/kube-controller-manager.yaml: no '- $arg' after the edit (no line" \
    "'- kube-controller-manager' to put it after)"
  fi
done
block_of() {  # $1 snapshot, $2 file: the file's lines in the snapshot
  awk -v want="== $2" '$0 == want { on = 1; next } /^== / { on = 0 } on' "$1"
}
compare_identity() {  # $1 file: its block in the before and after snapshots
  local before after
  before="$(block_of "$WORK/before" "$1")"
  after="$(block_of "$WORK/after" "$1")"
  if [ "$1" = kubelet.conf ] && [ "$KUBELET_PLAN" = repoint ]; then
    # The kubelet's rotated certificate: same subject, issuer and CA; its own key and usages.
    before="$(printf '%s\n' "$before" | grep -E '^(subject|issuer|signed by|server|cluster CA)')"
    after="$(printf '%s\n' "$after" | grep -E '^(subject|issuer|signed by|server|cluster CA)')"
  fi
  [ "$before" = "$after" ] && return
  problem "$1: changed: $(diff <(printf '%s\n' "$before") <(printf '%s\n' "$after") \
    | sed -n -e 's/^< /was /p' -e 's/^> /now /p' | paste -s -d ';' -)"
}
for name in $SNAPSHOT_FILES; do
  grep -qxF "== $name" "$WORK/before" || continue
  if ! grep -qxF "== $name" "$WORK/after"; then problem "$name: gone after the renewal"; continue; fi
  compare_identity "$name"
  if block_of "$WORK/after" "$name" | grep -q 'DOES NOT MATCH'; then
    problem "$name: its key does not match its certificate"
  fi
done
for name in $CA_FILES; do
  if [ -f "$BACKUP/$name" ] && ! cmp -s "$BACKUP/$name" "$KUBE_DIR/$name"; then
    problem "$name: a CA changed: renewal must never replace a CA"
  fi
done
if [ "$RENEW" = 1 ]; then
  for name in $RENEWED; do
    case " $TO_RENEW " in *" $name "*) ;; *) [ "$FORCE" = 1 ] || continue ;; esac
    [ -f "$KUBE_DIR/$name" ] || continue
    left="$(pem_of "$name" | days_left)"
    if [ "$left" -lt $((LEAF_DAYS - 1)) ]; then
      problem "$name: $left days left after the renewal, asked $LEAF_DAYS"
    fi
    if cmp -s <(pem_of "$name") <(cd "$BACKUP" && KUBE_DIR="$BACKUP" pem_of "$name"); then
      problem "$name: not re-issued by the renewal"
    fi
  done
fi
if [ -n "$problems" ]; then
  echo "renew.sh: the renewal did not give what was asked:$problems" >&2
  exit 1
fi
CHANGING=0

# --- what it gave ----------------------------------------------------------------------------
for name in $SNAPSHOT_FILES; do
  case " $CA_FILES " in *" $name "*) continue ;; esac
  [ -f "$KUBE_DIR/$name" ] || continue
  case "$name" in *.conf) [ -n "$(kubeconfig_cert "$KUBE_DIR/$name" 2>/dev/null)" ] \
    || continue ;; esac
  echo "$name expires $(pem_of "$name" | expiry) ($(pem_of "$name" | days_left) days left)"
done
for name in $CA_FILES; do
  [ -f "$KUBE_DIR/$name" ] || continue
  echo "$name (CA) expires $(expiry < "$KUBE_DIR/$name") ($(days_left < "$KUBE_DIR/$name") days left)"
done
echo "kubeadm never renews a CA: nothing a CA signed (leaves; kubelet certificates, which the" \
  "controller-manager cuts to its CA's end) works past that CA's end, whatever its own validity."
echo "backup: $BACKUP"
cat <<'EOF'
admin.conf (and super-admin.conf from v1.29) now hold @@LEAF_YEARS@@-year cluster-admin
(system:masters) credentials that RBAC cannot revoke, and user credentials this kubeadm makes
(`kubeadm kubeconfig user`, `alpha kubeconfig user` on older versions) default to @@LEAF_YEARS@@
years too. Keep those files off shared machines; give people short credentials of their own
(`--validity-period 24h` where the command has it) and RBAC roles.
EOF
# --- --restart: one static pod at a time, then what each endpoint serves -------------------
running() {  # $1 static pod name: its container runs
  if [ "$RUNTIME" = crictl ]; then
    [ -n "$(crictl ps --name "^$1\$" --state running -q 2>/dev/null)" ]
  else
    [ -n "$(docker ps --filter "name=^k8s_$1_" -q 2>/dev/null)" ]
  fi
}
fingerprint() { openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2; }
served() {  # $1 port -> the fingerprint of the certificate served on 127.0.0.1:$1
  openssl s_client -connect "127.0.0.1:$1" </dev/null 2>/dev/null | fingerprint
}
wait_for() {  # $1 what, then a command: wait until it succeeds, or fail after RESTART_TIMEOUT
  local what="$1" deadline=$(($(date +%s) + RESTART_TIMEOUT))
  shift
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep "$RESTART_POLL"
  done
  note "$what"
}
serves_file() {  # $1 port, $2 certificate file: the endpoint serves exactly that certificate
  [ "$(served "$1")" = "$(fingerprint < "$KUBE_DIR/$2")" ]
}
answers_tls() { [ -n "$(served "$1")" ]; }
not_running() { ! running "$1"; }
way_back() {
  echo "renew.sh: $*" >&2
  echo "renew.sh: the renewed files are in place and were checked; the running pods are not" \
    "all on them. To go back: cp -a $BACKUP/. $KUBE_DIR/ and restart the static pods again" \
    "(the backup holds the files as they were)" >&2
  exit 1
}
restart_static_pods() {
  local entry name port file manifest
  mkdir -p "$WORK/restart"
  for entry in $STATIC_PODS; do
    IFS=: read -r name port file <<< "$entry"
    manifest="$KUBE_DIR/manifests/$name.yaml"
    if [ ! -f "$manifest" ]; then note "no $manifest: $name not restarted"; continue; fi
    if [ "$name" = kube-apiserver ]; then port="$(manifest_flag secure-port)"; port="${port:-6443}"; fi
    echo "+ restart $name: mv $manifest out, wait until it is gone, mv it back"
    MOVED_OUT="$manifest"
    mv "$manifest" "$WORK/restart/"
    wait_for "$name stopped" not_running "$name" \
      || way_back "$name did not stop within ${RESTART_TIMEOUT}s after its manifest was moved out"
    mv "$WORK/restart/$name.yaml" "$manifest"
    MOVED_OUT=""
    wait_for "$name running again" running "$name" \
      || way_back "$name did not come back within ${RESTART_TIMEOUT}s"
    if [ -n "$file" ]; then
      if ! wait_for "$name serves $file on :$port" serves_file "$port" "$file"; then
        way_back "$name serves $(served "$port" || true) on :$port, not $file" \
          "($(fingerprint < "$KUBE_DIR/$file"))"
      fi
    elif [ -n "$port" ]; then
      wait_for "$name answers TLS on :$port" answers_tls "$port" \
        || way_back "$name does not answer TLS on :$port"
    fi
  done
}
if [ "$RESTART" = 1 ]; then
  restart_static_pods
  echo "every static pod restarted and serving what it should"
elif [ "$RENEW" = 1 ] || [ "$KCM_EDIT" = 1 ]; then
  cat <<'EOF'
Restart the static pods so they load the new certificates: kube-apiserver,
kube-controller-manager, kube-scheduler@@ETCD@@ (or run renew.sh --restart).
For each: mv /etc/kubernetes/manifests/<name>.yaml /tmp/, wait until
`crictl ps --name <name>` (or `docker ps`) shows it gone, mv it back.
EOF
fi
if [ "$KUBELET_PLAN" != keep ]; then
  echo "kubelet.conf changed: systemctl restart kubelet"
fi
echo "Copy /etc/kubernetes/admin.conf to ~/.kube/config where you use it."
