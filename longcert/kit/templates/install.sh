#!/usr/bin/env bash
# Install the longcert kubeadm @@TAG@@ (@@BUILD_ID@@) as @@INSTALL_PATH@@.
# Order: the binary's sha256 is checked first (sha256sum -c), then `kubeadm version` must
# report @@TAG@@; only then is the old binary kept beside it (<path>.pre-longcert-<time>)
# and the new one moved into place. Re-running with the same binary changes nothing.
# Usage: install.sh [--dry-run] [--from DIR] [--to PATH]
#   --from DIR  where kubeadm-linux-<arch> is (default: the build directory above the kit)
# A package manager would put a stock kubeadm back: hold it (apt-mark hold kubeadm,
# dnf versionlock add kubeadm / yum versionlock kubeadm).
set -euo pipefail
tag=@@TAG@@
target=@@INSTALL_PATH@@
from="$(cd "$(dirname "$0")/.." && pwd)"
dry_run=0
die() { echo "install.sh: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --from) from="${2:?--from needs a directory}"; shift ;;
    --to) target="${2:?--to needs a path}"; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
case "$(uname -m)" in
@@ARCH_CASES@@
  *) die "no kubeadm of this build for $(uname -m)" ;;
esac
binary="kubeadm-linux-$arch"
[ -f "$from/$binary" ] || die "$from/$binary is missing (pass --from DIR)"
(cd "$from" && echo "$sum  $binary" | sha256sum -c --quiet -) \
  || die "$from/$binary does not have the sha256 this kit was made for"
reported="$("$from/$binary" version -o short 2>/dev/null || true)"
[ "$reported" = "$tag" ] || die "$from/$binary reports version '$reported', not $tag"
if [ -f "$target" ] && echo "$sum  $target" | sha256sum -c --quiet - >/dev/null 2>&1; then
  echo "$target is already the longcert kubeadm $tag: nothing to do"
  exit 0
fi
[ "$dry_run" = 1 ] || [ "$(id -u)" = 0 ] || [ -w "$(dirname "$target")" ] \
  || die "cannot write $(dirname "$target"): run as root"
run() { echo "+ $*"; [ "$dry_run" = 1 ] || "$@"; }
if [ -e "$target" ]; then
  run cp -p "$target" "$target.pre-longcert-$(date -u +%Y%m%dT%H%M%SZ)"
fi
run install -m 0755 "$from/$binary" "$target.longcert-new"
run mv -f "$target.longcert-new" "$target"
[ "$dry_run" = 1 ] || echo "installed $target: $("$target" version -o short)"
if command -v apt-mark >/dev/null 2>&1; then
  echo "hold it against apt upgrades: apt-mark hold kubeadm"
elif command -v dnf >/dev/null 2>&1 || command -v yum >/dev/null 2>&1; then
  echo "hold it against dnf/yum upgrades: dnf versionlock add kubeadm (or yum versionlock kubeadm)"
fi
