#!/usr/bin/env bash
# The real-install branch of install.sh (no DESTDIR: user and groups created, ownership, systemd not running) on a
# clean Debian 12 root made with debootstrap, then the installed edgevit run as the edgevit user, systemd-analyze
# verify/security on the installed unit inside that root, a second install (idempotent) and uninstall.sh --purge.
#
#   sudo deploy/chroot-install-test.sh [PUBLISH_DIR]      (default: artifacts/x64-check, else a fresh x64 publish)
#
# Needs root and debootstrap (Debian package; it downloads about 60 MB of Debian packages). About 2-3 minutes.
# Not part of CI; deploy/validate.sh covers the DESTDIR path.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "chroot-install-test: error: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (chroot, mount)"
command -v debootstrap >/dev/null || die "debootstrap missing (apt-get install debootstrap)"

publish=${1:-artifacts/x64-check}
if [ ! -x "$publish/edgevit" ]; then
  publish=artifacts/chroot-publish
  dotnet publish src/EdgeHost -c Release -r linux-x64 --self-contained -o "$publish" -nologo -clp:ErrorsOnly >/dev/null
fi
shared=${EDGEVIT_SHARED:-$(cd .. && pwd)/shared}
[ -f "$shared/models/deit_tiny_patch16_224.safetensors" ] || die "shared assets not found: set EDGEVIT_SHARED"

root=$(mktemp -d /tmp/edgevit-chroot.XXXXXX)
chmod 0755 "$root"   # the new root directory: mktemp makes it 0700
cleanup() { umount "$root/proc" 2>/dev/null || true; rm -rf "$root"; }
trap cleanup EXIT
echo "debootstrap bookworm (minbase + systemd) into $root..."
debootstrap --variant=minbase --include=systemd bookworm "$root" http://deb.debian.org/debian >"$root.log" 2>&1 \
  || { tail -20 "$root.log" >&2; die "debootstrap failed"; }
rm -f "$root.log"
mkdir -p "$root/src/edgevit" "$root/src/in"
git archive HEAD | tar -x -C "$root/src/edgevit"
cp deploy/systemd/*.sh "$root/src/edgevit/deploy/systemd/"   # the working copy's scripts
cp -a "$publish" "$root/src/publish"
cp "$shared/models/deit_tiny_patch16_224.safetensors" "$shared/data/imagenet-sample/synsets.txt" "$root/src/in/"
find "$shared/data/imagenet-sample/images" -maxdepth 1 -type f | LC_ALL=C sort | sed -n 1p | xargs -I{} cp {} "$root/tmp/image.jpg"
chmod 0644 "$root/tmp/image.jpg"
mount -t proc proc "$root/proc"

# shellcheck disable=SC2016  # this script runs inside the chroot, its $ are its own
chroot "$root" /bin/bash -euo pipefail -c '
cd /src/edgevit
args=(--rid linux-x64 --from /src/publish --model /src/in/deit_tiny_patch16_224.safetensors --synsets /src/in/synsets.txt)
deploy/systemd/install.sh "${args[@]}"
id edgevit | grep -q "(video)" && id edgevit | grep -q "(gpio)" || { echo "FAIL edgevit not in video and gpio"; exit 1; }
[ "$(stat -c %U /var/lib/edgevit/model.safetensors)" = edgevit ] || { echo "FAIL model not owned by edgevit"; exit 1; }
getent passwd edgevit | grep -q ":/var/lib/edgevit:/usr/sbin/nologin$" || { echo "FAIL home/shell"; exit 1; }
runuser -u edgevit -- /opt/edgevit/edgevit predict --model /var/lib/edgevit/model.safetensors \
  --synsets /var/lib/edgevit/synsets.txt --top 1 /tmp/image.jpg
out=$(systemd-analyze verify /etc/systemd/system/edgevit.service 2>&1) && [ -z "$out" ] || { echo "$out"; echo "FAIL verify"; exit 1; }
systemd-analyze security --offline=yes --threshold=30 edgevit.service | tail -n 1
before=$(find /opt/edgevit /etc/edgevit /etc/systemd/system/edgevit.service /var/lib/edgevit -type f -exec sha256sum {} + | sort)
second=$(deploy/systemd/install.sh "${args[@]}")
if grep -q "^install.sh: installed" <<<"$second"; then echo "$second"; echo "FAIL second run reinstalled"; exit 1; fi
after=$(find /opt/edgevit /etc/edgevit /etc/systemd/system/edgevit.service /var/lib/edgevit -type f -exec sha256sum {} + | sort)
[ "$before" = "$after" ] || { echo "FAIL second run changed files"; exit 1; }
deploy/systemd/uninstall.sh --purge
if id edgevit 2>/dev/null || [ -e /opt/edgevit ] || [ -e /etc/edgevit ]; then echo "FAIL purge left things"; exit 1; fi
'
echo "chroot-install-test: real install, run as edgevit, verify, idempotent re-run and purge all passed"
