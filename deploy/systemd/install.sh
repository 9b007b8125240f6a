#!/usr/bin/env bash
# Installs the EdgeViT service on a systemd machine (Raspberry Pi OS, Debian, Ubuntu, Jetson Linux), or into a staging
# tree when DESTDIR is set (packaging, tests). Re-runnable: a second run with the same inputs changes nothing, and a
# configuration the administrator edited is never overwritten (the new example goes beside it as *.new).
#
#   deploy/systemd/install.sh [--rid linux-arm64|linux-x64|linux-arm] [--from PUBLISH_DIR]
#                             [--model FILE] [--thresholds FILE] [--synsets FILE]
#                             [--destdir DIR] [--unit-dir DIR] [--ready-to-run] [--enable]
#
#   --rid RID        runtime to build for (default: this machine's: aarch64 -> linux-arm64, x86_64 -> linux-x64)
#   --from DIR       install this prebuilt self-contained publish instead of building
#                    (dotnet publish src/EdgeHost -c Release -r RID -p:EdgeVitDevice=true -o DIR); must contain ./edgevit
#   --model FILE     weights (.safetensors or .onnx) -> /var/lib/edgevit/model.EXT
#   --thresholds F   RCTP thresholds from 'edgevit calibrate' -> /var/lib/edgevit/thresholds.json
#   --synsets FILE   class names -> /var/lib/edgevit/synsets.txt
#   --destdir DIR    staging root (also read from $DESTDIR); empty = this machine, which also creates the edgevit
#                    user and groups, reloads systemd and udev
#   --unit-dir DIR   where the unit goes (default /etc/systemd/system; packagers: /lib/systemd/system)
#   --ready-to-run   when building: -p:PublishReadyToRun=true (faster start, bigger; see deploy/README.md)
#   --enable         real install only: systemctl enable --now edgevit (otherwise only printed)
#
# Lays down (under DESTDIR):
#   /opt/edgevit/                       the publish (edgevit + runtime + native libs) and README.md
#   UNIT_DIR/edgevit.service            the unit
#   /etc/edgevit/edgevit.json           service options (kept if edited: new example -> edgevit.json.new)
#   /etc/edgevit/edgevit.env            OTEL_*/DOTNET_* environment (kept if edited: -> edgevit.env.new)
#   /etc/sysusers.d/edgevit.conf        the edgevit user, groups video and gpio (systemd-sysusers)
#   /etc/udev/rules.d/60-edgevit-gpio.rules   /dev/gpiochip* and /dev/gpiomem to group gpio
#   /var/lib/edgevit/{model.*,thresholds.json,synsets.txt}   when given
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
prog=install.sh

die() { echo "$prog: error: $*" >&2; exit 1; }
note() { echo "$prog: $*"; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

rid="" from="" model="" thresholds="" synsets="" unit_dir=/etc/systemd/system r2r=0 enable=0
destdir=${DESTDIR:-}
while [ $# -gt 0 ]; do
  case $1 in
    --rid) rid=${2:?--rid needs a value}; shift 2 ;;
    --from) from=${2:?--from needs a directory}; shift 2 ;;
    --model) model=${2:?--model needs a file}; shift 2 ;;
    --thresholds) thresholds=${2:?--thresholds needs a file}; shift 2 ;;
    --synsets) synsets=${2:?--synsets needs a file}; shift 2 ;;
    --destdir) destdir=${2?--destdir needs a directory}; shift 2 ;;
    --unit-dir) unit_dir=${2:?--unit-dir needs a directory}; shift 2 ;;
    --ready-to-run) r2r=1; shift ;;
    --enable) enable=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

# --- inputs ---------------------------------------------------------------------------------------------------------
if [ -z "$rid" ]; then
  case $(uname -m) in
    aarch64|arm64) rid=linux-arm64 ;;
    x86_64|amd64) rid=linux-x64 ;;
    armv7l|armv6l) rid=linux-arm ;;
    *) die "cannot tell the runtime for machine '$(uname -m)': give --rid" ;;
  esac
fi
case $rid in linux-arm64|linux-x64|linux-arm) ;; *) die "--rid must be linux-arm64, linux-x64 or linux-arm (got '$rid')" ;; esac
for f in "$model" "$thresholds" "$synsets"; do
  [ -z "$f" ] || [ -f "$f" ] || die "file not found: $f"
done
if [ -n "$model" ]; then
  case $model in
    *.safetensors) model_name=model.safetensors ;;
    *.onnx) model_name=model.onnx ;;
    *) die "--model must be a .safetensors or .onnx file (got '$model')" ;;
  esac
fi
if [ -n "$destdir" ]; then
  mkdir -p "$destdir" || die "cannot create DESTDIR $destdir"
  destdir=$(cd "$destdir" && pwd)
  [ "$destdir" != / ] || destdir=""
fi
real=0; [ -n "$destdir" ] || real=1
if [ "$real" = 1 ] && [ "$(id -u)" != 0 ]; then die "installing onto this machine needs root (or set --destdir)"; fi
for f in edgevit.service etc/edgevit/edgevit.json etc/edgevit/edgevit.env sysusers.d/edgevit.conf udev/60-edgevit-gpio.rules; do
  [ -f "$here/$f" ] || die "missing $here/$f (run the script from the repository)"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- the publish --------------------------------------------------------------------------------------------------
if [ -n "$from" ]; then
  [ -d "$from" ] || die "--from: not a directory: $from"
  if [ ! -f "$from/edgevit" ] || [ ! -x "$from/edgevit" ]; then
    die "--from $from has no executable 'edgevit' (expected a self-contained publish)"
  fi
  if command -v file >/dev/null && file -b "$from/edgevit" | grep -q '^ELF'; then
    want=$(case $rid in linux-arm64) echo aarch64 ;; linux-x64) echo x86-64 ;; linux-arm) echo 'ARM,' ;; esac)
    file -b "$from/edgevit" | grep -q -- "$want" || die "--from $from holds a $(file -b "$from/edgevit" | cut -d, -f2 | sed 's/^ //') binary, not one for $rid"
  fi
  publish=$from
else
  command -v dotnet >/dev/null || die "dotnet SDK not found: install it, or publish elsewhere and pass --from DIR"
  publish=$work/publish
  # The device build: no ONNX Runtime, no plotting, no bench/compare; trimmed (src/EdgeHost/EdgeHost.csproj).
  note "building: dotnet publish src/EdgeHost -c Release -r $rid -p:EdgeVitDevice=true (a few minutes)"
  args=(publish "$repo/src/EdgeHost" -c Release -r "$rid" --self-contained -p:EdgeVitDevice=true -o "$publish" -nologo -clp:ErrorsOnly)
  [ "$r2r" = 0 ] || args+=(-p:PublishReadyToRun=true)
  DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 dotnet "${args[@]}" >"$work/publish.log" 2>&1 \
    || { cat "$work/publish.log" >&2; die "dotnet publish failed"; }
fi

# --- helpers ------------------------------------------------------------------------------------------------------
# put SRC DEST MODE: install when absent or different (atomic rename); quiet when already identical.
put() {
  local src=$1 dest=$2 mode=$3
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then return 0; fi
  mkdir -p "$(dirname "$dest")"
  install -m "$mode" "$src" "$dest.tmp.$$"
  mv -f "$dest.tmp.$$" "$dest"
  note "installed ${dest#"$destdir"}"
}
# put_config SRC DEST: a configuration file, handled like dpkg's conffiles. The checksum of what this script last
# installed is kept in DIR/.NAME.installed.sha256: a file still equal to it was not edited and is replaced by a newer
# example; a file that differs (edited by the administrator) is kept, and the example goes beside it as DEST.new.
put_config() {
  local src=$1 dest=$2 stamp sum
  stamp=$(dirname "$dest")/.$(basename "$dest").installed.sha256
  if [ -f "$dest" ] && ! cmp -s "$src" "$dest"; then
    sum=$(sha256sum <"$dest" | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sum" ]; then
      if [ -f "$dest.new" ] && cmp -s "$src" "$dest.new"; then return 0; fi
      install -m 0644 "$src" "$dest.new"
      note "kept your edited ${dest#"$destdir"}; the shipped example is ${dest#"$destdir"}.new (merge by hand)"
      return 0
    fi
  fi
  put "$src" "$dest" 0644
  rm -f "$dest.new"
  sha256sum <"$dest" | cut -d' ' -f1 >"$stamp"
}

# --- /opt/edgevit -------------------------------------------------------------------------------------------------
opt=$destdir/opt/edgevit
stage=$destdir/opt/.edgevit.new
rm -rf "$stage"
mkdir -p "$stage"
cp -R "$publish/." "$stage/"
rm -f "$stage"/*.pdb "$stage"/*.dbg
install -m 0644 "$repo/deploy/README.md" "$stage/README.md" 2>/dev/null || true
chmod -R u=rwX,go=rX "$stage"
chmod 0755 "$stage/edgevit"
if [ -d "$opt" ] && diff -r -q "$stage" "$opt" >/dev/null 2>&1; then
  rm -rf "$stage"
else
  rm -rf "$opt.old"
  [ ! -d "$opt" ] || mv "$opt" "$opt.old"
  mv "$stage" "$opt"
  rm -rf "$opt.old"
  note "installed /opt/edgevit ($(du -sh "$opt" | cut -f1), $rid)"
fi

# --- unit, configuration, account, udev ----------------------------------------------------------------------------
put "$here/edgevit.service" "$destdir$unit_dir/edgevit.service" 0644
put "$here/sysusers.d/edgevit.conf" "$destdir/etc/sysusers.d/edgevit.conf" 0644
put "$here/udev/60-edgevit-gpio.rules" "$destdir/etc/udev/rules.d/60-edgevit-gpio.rules" 0644

# The example config, adjusted to what is installed: model.onnx when the model is ONNX, no Thresholds line when no
# thresholds file was given and none is installed (the service then runs dense instead of failing to start).
config=$work/edgevit.json
cp "$here/etc/edgevit/edgevit.json" "$config"
if [ "${model_name:-}" = model.onnx ] || { [ -z "$model" ] && [ -f "$destdir/var/lib/edgevit/model.onnx" ] && [ ! -f "$destdir/var/lib/edgevit/model.safetensors" ]; }; then
  sed -i 's#"/var/lib/edgevit/model.safetensors"#"/var/lib/edgevit/model.onnx"#' "$config"
fi
if [ -z "$thresholds" ] && [ ! -f "$destdir/var/lib/edgevit/thresholds.json" ]; then
  sed -i '/"Thresholds": /d' "$config"
fi
if [ -z "$synsets" ] && [ ! -f "$destdir/var/lib/edgevit/synsets.txt" ]; then
  sed -i '/"Synsets": /d' "$config"
fi
mkdir -p "$destdir/etc/edgevit"
chmod 0755 "$destdir/etc/edgevit"
put_config "$config" "$destdir/etc/edgevit/edgevit.json"
put_config "$here/etc/edgevit/edgevit.env" "$destdir/etc/edgevit/edgevit.env"

# --- account (real install only) -----------------------------------------------------------------------------------
if [ "$real" = 1 ]; then
  if command -v systemd-sysusers >/dev/null; then
    systemd-sysusers /etc/sysusers.d/edgevit.conf
  else
    for g in video gpio; do getent group "$g" >/dev/null || groupadd --system "$g"; done
    getent passwd edgevit >/dev/null || useradd --system --user-group --home-dir /var/lib/edgevit --no-create-home \
      --shell /usr/sbin/nologin --comment "EdgeViT inference service" edgevit
    usermod -a -G video,gpio edgevit
  fi
  id edgevit >/dev/null || die "user edgevit was not created"
fi

# --- model, thresholds, synsets ------------------------------------------------------------------------------------
state=$destdir/var/lib/edgevit
if [ -n "$model$thresholds$synsets" ]; then
  mkdir -p "$state"
  chmod 0750 "$state"
  [ -z "$model" ] || put "$model" "$state/$model_name" 0640
  [ -z "$thresholds" ] || put "$thresholds" "$state/thresholds.json" 0640
  [ -z "$synsets" ] || put "$synsets" "$state/synsets.txt" 0640
  if [ "$real" = 1 ]; then chown -R edgevit:edgevit "$state"; fi
fi

# What the installed config refers to must exist (else the service would stop at start with one error line).
installed_config=$destdir/etc/edgevit/edgevit.json
missing=0
for key in Model Thresholds Synsets; do
  path=$(sed -n "s#^ *\"$key\": *\"\([^\"]*\)\".*#\1#p" "$installed_config" | head -n 1)
  if [ -n "$path" ] && [ ! -f "$destdir$path" ]; then
    note "warning: $key in /etc/edgevit/edgevit.json is $path, which is not installed (give --$(echo "$key" | tr '[:upper:]' '[:lower:]') FILE)"
    missing=1
  fi
done

# --- activate (real install only) ----------------------------------------------------------------------------------
if [ "$real" = 1 ]; then
  if command -v udevadm >/dev/null && [ -d /run/udev ]; then
    udevadm control --reload || true
    udevadm trigger --subsystem-match=gpio || true
  fi
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    if [ "$enable" = 1 ]; then
      [ "$missing" = 0 ] || die "not enabling: the configuration refers to files that are not installed (see above)"
      systemctl enable edgevit.service
      systemctl restart edgevit.service
      note "edgevit is running: systemctl status edgevit; journalctl -u edgevit -f"
    else
      note "next: systemctl enable --now edgevit   (logs: journalctl -u edgevit -f)"
    fi
  else
    note "systemd is not running here: the unit is installed but not started"
  fi
else
  note "staged into $destdir (no user, udev or systemd changes with DESTDIR)"
fi
