#!/usr/bin/env bash
# Removes what deploy/systemd/install.sh laid down. Keeps the configuration (/etc/edgevit), the state
# (/var/lib/edgevit: model, thresholds), the verdict logs (/var/log/edgevit) and the edgevit account unless --purge.
#
#   deploy/systemd/uninstall.sh [--destdir DIR] [--unit-dir DIR] [--purge]
set -euo pipefail
prog=uninstall.sh
die() { echo "$prog: error: $*" >&2; exit 1; }
note() { echo "$prog: $*"; }

destdir=${DESTDIR:-} unit_dir=/etc/systemd/system purge=0
while [ $# -gt 0 ]; do
  case $1 in
    --destdir) destdir=${2?--destdir needs a directory}; shift 2 ;;
    --unit-dir) unit_dir=${2:?--unit-dir needs a directory}; shift 2 ;;
    --purge) purge=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
if [ -n "$destdir" ]; then
  [ -d "$destdir" ] || die "DESTDIR $destdir does not exist"
  destdir=$(cd "$destdir" && pwd)
  [ "$destdir" != / ] || destdir=""
fi
real=0; [ -n "$destdir" ] || real=1
if [ "$real" = 1 ] && [ "$(id -u)" != 0 ]; then die "uninstalling from this machine needs root (or set --destdir)"; fi

if [ "$real" = 1 ] && [ -d /run/systemd/system ]; then
  systemctl disable --now edgevit.service 2>/dev/null || true
fi

remove() { # remove PATH...: files or directories, quiet when absent
  local p
  for p in "$@"; do
    if [ -e "$p" ] || [ -L "$p" ]; then rm -rf "$p"; note "removed ${p#"$destdir"}"; fi
  done
}
remove "$destdir/opt/edgevit" "$destdir/opt/.edgevit.new" "$destdir$unit_dir/edgevit.service" \
  "$destdir/etc/sysusers.d/edgevit.conf" "$destdir/etc/udev/rules.d/60-edgevit-gpio.rules"
if [ "$purge" = 1 ]; then
  remove "$destdir/etc/edgevit" "$destdir/var/lib/edgevit" "$destdir/var/log/edgevit"
  if [ "$real" = 1 ] && getent passwd edgevit >/dev/null; then
    userdel edgevit && note "removed user edgevit"
  fi
else
  note "kept /etc/edgevit, /var/lib/edgevit, /var/log/edgevit and the edgevit user (--purge removes them)"
fi

if [ "$real" = 1 ]; then
  [ ! -d /run/systemd/system ] || systemctl daemon-reload
  if command -v udevadm >/dev/null && [ -d /run/udev ]; then udevadm control --reload || true; fi
fi
