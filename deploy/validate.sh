#!/usr/bin/env bash
# Validates the deployment files with the tools made for them, without a Docker engine or real hardware:
#   systemd   systemd-analyze verify on the unit inside a scratch root (unit + a stand-in ExecStart binary + the
#             edgevit user created by systemd-sysusers from our sysusers.d file + the host's own system units),
#             every message counts as a failure; systemd-analyze security --offline (exposure must stay <= 3.0)
#   install   install.sh into a scratch DESTDIR twice with a tiny fake publish (--from): the exact file list, modes,
#             byte-identical second run, an edited config kept (example as .new), uninstall.sh
#   shell     shellcheck on every deploy/ script
#   YAML      yamllint (strict) on compose, collector, Prometheus and Grafana provisioning files
#   compose   dclint (npm: compose-spec schema + rules); `docker compose config -q` when the compose plugin exists
#   Docker    hadolint when installed; else dockerfile-utils lint (npm) plus grep rules for hadolint's main checks
#   Prometheus  promtool check config; every dashboard query: promtool check rules (syntax) and promtool test rules
#             against synthetic series named from grafana/metrics.json (each query must return data)
#   mosquitto compose's broker config, started by Debian's mosquitto on a scratch port
#   dashboard JSON validity (jq), datasource uid = provisioned uid, every metric/label in a query is in metrics.json
#             (edgevit.json and the fleet view fleet.json)
#   collector otel-collector.yaml: pipelines only use defined components, ports agree with compose/prometheus.yml
#             (no otelcol binary in Debian or npm: a structural check, not the collector's own validation)
#
# Tools: Debian systemd, shellcheck, yamllint, prometheus (promtool), jq, python3; npm dclint, dockerfile-utils.
# A missing tool fails the run when CI=true or VALIDATE_STRICT=1, and is reported as skipped otherwise.
# Ends with the line "N passed, N failed, N skipped"; exit status non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
strict=0
if [ "${CI:-}" = true ] || [ "${VALIDATE_STRICT:-0}" = 1 ]; then strict=1; fi

passed=0 failed=0 skipped=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ok() { echo "ok   $*"; passed=$((passed + 1)); }
bad() { echo "FAIL $*"; failed=$((failed + 1)); }
skip() {
  if [ "$strict" = 1 ]; then bad "$* (tool missing; required with CI=true)"
  else echo "skip $*"; skipped=$((skipped + 1)); fi
}
have() { command -v "$1" >/dev/null 2>&1; }
# check NAME CMD...: run CMD, pass when it exits 0 (its output is shown on failure)
check() {
  local name=$1; shift
  if "$@" >"$work/out" 2>&1; then ok "$name"
  else bad "$name"; sed 's/^/     | /' "$work/out" | head -40; fi
}

py=python3; if [ -x /usr/bin/python3 ]; then py=/usr/bin/python3; fi  # Debian python3 has PyYAML (yamllint needs it)
scripts=(deploy/validate.sh deploy/arm64-check.sh deploy/publish-measure.sh deploy/chroot-install-test.sh
         deploy/systemd/install.sh deploy/systemd/uninstall.sh)
yaml=(deploy/docker/compose.yaml deploy/docker/compose.devices.yaml deploy/docker/compose.fleet.yaml deploy/docker/otel-collector.yaml
      deploy/docker/prometheus.yml deploy/docker/grafana/provisioning/datasources/prometheus.yaml
      deploy/docker/grafana/provisioning/dashboards/edgevit.yaml deploy/docker/.dclintrc)
dashboard=deploy/docker/grafana/dashboards/edgevit.json
fleet_dashboard=deploy/docker/grafana/dashboards/fleet.json
catalog=deploy/docker/grafana/metrics.json

# --- shell -----------------------------------------------------------------------------------------------------
if have shellcheck; then check "shellcheck ${scripts[*]}" shellcheck "${scripts[@]}"
else skip "shellcheck (apt-get install shellcheck)"; fi

# --- install.sh into a scratch DESTDIR, twice ----------------------------------------------------------------------
install_test() {
  local d=$work/destdir fake=$work/publish src=deploy/systemd
  mkdir -p "$fake"
  printf '#!/bin/sh\necho "fake edgevit $*"\n' >"$fake/edgevit"
  chmod 0755 "$fake/edgevit"
  echo fake >"$fake/libSkiaSharp.so"
  echo fake >"$fake/edgevit.pdb"
  echo model >"$work/m.safetensors"; echo '{}' >"$work/t.json"; echo n01440764 >"$work/s.txt"
  local args=(--destdir "$d" --rid linux-arm64 --from "$fake" --model "$work/m.safetensors" --thresholds "$work/t.json" --synsets "$work/s.txt")

  bash $src/install.sh "${args[@]}" >"$work/i1" 2>&1 || { cat "$work/i1"; echo "first install failed"; return 1; }
  # exactly these files, nothing else (the .pdb of the publish is dropped)
  (cd "$d" && find . -type f | sed 's#^\./#/#' | LC_ALL=C sort) >"$work/files"
  LC_ALL=C sort >"$work/expected" <<'EOF'
/etc/edgevit/.edgevit.env.installed.sha256
/etc/edgevit/.edgevit.json.installed.sha256
/etc/edgevit/edgevit.env
/etc/edgevit/edgevit.json
/etc/systemd/system/edgevit.service
/etc/sysusers.d/edgevit.conf
/etc/udev/rules.d/60-edgevit-gpio.rules
/opt/edgevit/README.md
/opt/edgevit/edgevit
/opt/edgevit/libSkiaSharp.so
/var/lib/edgevit/model.safetensors
/var/lib/edgevit/synsets.txt
/var/lib/edgevit/thresholds.json
EOF
  diff -u "$work/expected" "$work/files" || { echo "installed file list differs (- expected, + found)"; return 1; }
  cmp -s $src/edgevit.service "$d/etc/systemd/system/edgevit.service" || { echo "unit differs from source"; return 1; }
  cmp -s $src/etc/edgevit/edgevit.json "$d/etc/edgevit/edgevit.json" || { echo "config differs from example (all inputs given)"; return 1; }
  [ "$(stat -c %a "$d/opt/edgevit/edgevit")" = 755 ] || { echo "/opt/edgevit/edgevit not 0755"; return 1; }
  [ "$(stat -c %a "$d/var/lib/edgevit/model.safetensors")" = 640 ] || { echo "model not 0640"; return 1; }
  grep -q "no user, udev or systemd changes" "$work/i1" || { echo "DESTDIR run did not say it skipped the account"; return 1; }

  # second run: nothing changes (byte-identical tree, nothing reported as installed)
  (cd "$d" && find . -type f -exec sha256sum {} + | LC_ALL=C sort) >"$work/sum1"
  bash $src/install.sh "${args[@]}" >"$work/i2" 2>&1 || { cat "$work/i2"; echo "second install failed"; return 1; }
  (cd "$d" && find . -type f -exec sha256sum {} + | LC_ALL=C sort) >"$work/sum2"
  diff -u "$work/sum1" "$work/sum2" || { echo "second run changed the tree"; return 1; }
  if grep -q "^install.sh: installed" "$work/i2"; then cat "$work/i2"; echo "second run reinstalled files"; return 1; fi

  # an edited config survives a re-run; the example lands beside it as .new; the unit is still refreshed
  sed -i 's/"Threads": 4/"Threads": 2/' "$d/etc/edgevit/edgevit.json"
  echo "# local edit" >>"$d/etc/edgevit/edgevit.env"
  echo "# stale" >>"$d/etc/systemd/system/edgevit.service"
  bash $src/install.sh "${args[@]}" >"$work/i3" 2>&1 || { cat "$work/i3"; echo "third install failed"; return 1; }
  grep -q '"Threads": 2' "$d/etc/edgevit/edgevit.json" || { echo "edited edgevit.json was overwritten"; return 1; }
  grep -q '^# local edit' "$d/etc/edgevit/edgevit.env" || { echo "edited edgevit.env was overwritten"; return 1; }
  cmp -s $src/etc/edgevit/edgevit.json "$d/etc/edgevit/edgevit.json.new" || { echo "edgevit.json.new is not the example"; return 1; }
  [ -f "$d/etc/edgevit/edgevit.env.new" ] || { echo "edgevit.env.new missing"; return 1; }
  cmp -s $src/edgevit.service "$d/etc/systemd/system/edgevit.service" || { echo "unit not refreshed"; return 1; }

  # a fresh install without thresholds/synsets drops those keys (the service then runs dense instead of failing)
  local d2=$work/destdir2
  bash $src/install.sh --destdir "$d2" --rid linux-arm64 --from "$fake" --model "$work/m.safetensors" >"$work/i4" 2>&1 \
    || { cat "$work/i4"; echo "minimal install failed"; return 1; }
  if grep -q '"Thresholds"\|"Synsets"' "$d2/etc/edgevit/edgevit.json"; then echo "Thresholds/Synsets kept without files"; return 1; fi
  "$py" -m json.tool "$d2/etc/edgevit/edgevit.json" >/dev/null || { echo "adjusted config is not JSON"; return 1; }

  # clear errors for bad input
  if bash $src/install.sh --destdir "$d2" --rid linux-x86 --from "$fake" >"$work/e1" 2>&1; then echo "bad --rid accepted"; return 1; fi
  grep -q "error: --rid must be" "$work/e1" || { cat "$work/e1"; echo "bad --rid: unclear error"; return 1; }
  if bash $src/install.sh --destdir "$d2" --from "$work/none" >"$work/e2" 2>&1; then echo "missing --from accepted"; return 1; fi
  grep -q "error: --from: not a directory" "$work/e2" || { cat "$work/e2"; echo "missing --from: unclear error"; return 1; }

  # uninstall keeps config and state, --purge removes them
  bash $src/uninstall.sh --destdir "$d" >/dev/null || { echo "uninstall failed"; return 1; }
  { [ ! -e "$d/opt/edgevit" ] && [ ! -e "$d/etc/systemd/system/edgevit.service" ]; } || { echo "uninstall left files"; return 1; }
  { [ -f "$d/etc/edgevit/edgevit.json" ] && [ -f "$d/var/lib/edgevit/model.safetensors" ]; } || { echo "uninstall removed config/state"; return 1; }
  bash $src/uninstall.sh --destdir "$d" --purge >/dev/null || { echo "uninstall --purge failed"; return 1; }
  [ -z "$(find "$d" -type f)" ] || { find "$d" -type f; echo "--purge left files"; return 1; }
}
check "install.sh into a scratch DESTDIR: file list, modes, idempotent re-run, edited config kept, uninstall" install_test

# --- systemd-analyze ---------------------------------------------------------------------------------------------
# The scratch root holds what a real install has: the unit where install.sh puts it, an executable at ExecStart,
# the edgevit user and groups (systemd-sysusers --root with our sysusers.d file) and the system's own units
# (sysinit.target, network-online.target... copied from this machine), so verify resolves every reference and any
# message it prints is about our unit. No message is filtered: verify exits 0 on mere warnings (an unknown key,
# an unparsable value), so this check fails on any output at all.
systemd_test() {
  local root=$work/sysroot
  mkdir -p "$root/etc/systemd/system" "$root/opt/edgevit" "$root/etc/sysusers.d" "$root/usr/lib/systemd"
  cp deploy/systemd/edgevit.service "$root/etc/systemd/system/"
  cp deploy/systemd/sysusers.d/edgevit.conf "$root/etc/sysusers.d/"
  printf '#!/bin/sh\nexit 0\n' >"$root/opt/edgevit/edgevit"
  chmod 0755 "$root/opt/edgevit/edgevit"
  local units
  for units in /usr/lib/systemd/system /lib/systemd/system; do
    if [ -d "$units" ]; then cp -a "$units" "$root/usr/lib/systemd/"; break; fi
  done
  systemd-sysusers --root="$root" || { echo "systemd-sysusers failed on sysusers.d/edgevit.conf"; return 1; }
  { grep -q '^edgevit:' "$root/etc/passwd" && grep -q '^gpio:.*edgevit' "$root/etc/group" && grep -q '^video:.*edgevit' "$root/etc/group"; } \
    || { echo "sysusers did not create edgevit in video and gpio"; return 1; }
  local out rc
  out=$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify --root="$root" edgevit.service 2>&1); rc=$?
  if [ "$rc" -ne 0 ] || [ -n "$out" ]; then echo "$out"; echo "systemd-analyze verify: exit $rc, output above"; return 1; fi
  # negative control: the same root with a broken key must produce output (proves the check can fail)
  sed -i 's/^DevicePolicy=closed/DevicePolicy=bogus/' "$root/etc/systemd/system/edgevit.service"
  out=$(systemd-analyze verify --root="$root" edgevit.service 2>&1)
  [ -n "$out" ] || { echo "negative control: verify printed nothing for DevicePolicy=bogus"; return 1; }
  cp deploy/systemd/edgevit.service "$root/etc/systemd/system/"
  systemd-analyze security --offline=yes --root="$root" --threshold=30 edgevit.service >"$work/security" 2>&1 \
    || { tail -3 "$work/security"; echo "exposure level above 3.0"; return 1; }
  grep -o 'Overall exposure level.*' "$work/security"
}
if have systemd-analyze && have systemd-sysusers; then
  check "systemd-analyze verify + security --offline (scratch root, sysusers user)" systemd_test
  sed -n 's/^Overall/     Overall/p' "$work/out"
else skip "systemd-analyze (apt-get install systemd)"; fi

# --- YAML ----------------------------------------------------------------------------------------------------------
if have yamllint; then check "yamllint -s ${#yaml[@]} files" yamllint -s -c deploy/yamllint.yaml "${yaml[@]}"
else skip "yamllint (apt-get install yamllint)"; fi

# --- compose -------------------------------------------------------------------------------------------------------
mkdir -p "$work/data"
if have dclint; then
  check "dclint (compose-spec schema + rules) compose.yaml compose.devices.yaml compose.fleet.yaml" \
    dclint -c deploy/docker/.dclintrc deploy/docker/compose.yaml deploy/docker/compose.devices.yaml deploy/docker/compose.fleet.yaml
else skip "dclint (npm install -g dclint)"; fi
if have docker && docker compose version >/dev/null 2>&1; then
  check "docker compose config -q (with the devices overlay)" env EDGEVIT_DATA="$work/data" \
    docker compose -f deploy/docker/compose.yaml -f deploy/docker/compose.devices.yaml config -q
  check "docker compose config -q (fleet)" env EDGEVIT_DATA="$work/data" docker compose -f deploy/docker/compose.fleet.yaml config -q
else
  echo "skip docker compose config -q: the docker client here has no compose plugin (dclint above checked the schema)"
  skipped=$((skipped + 1))
fi

# --- Dockerfile ----------------------------------------------------------------------------------------------------
dockerfile=deploy/docker/Dockerfile
if have hadolint; then check "hadolint Dockerfile" hadolint "$dockerfile"
else
  # hadolint is in neither Debian 12 nor npm (the npm package "hadolint" is a wrapper that needs the binary or a
  # Docker engine): Microsoft's dockerfile-utils (the VS Code Docker linter) validates instructions and flags;
  # the grep rules below stand in for hadolint's most important checks.
  if have dockerfile-utils; then check "dockerfile-utils lint Dockerfile" dockerfile-utils lint "$dockerfile"
  else skip "dockerfile-utils (npm install -g dockerfile-utils)"; fi
fi
dockerfile_rules() {
  local f=$dockerfile rc=0
  # DL3006/DL3007: every FROM image has an explicit tag that is not latest
  if grep -E '^FROM ' "$f" | grep -vE '^FROM (--platform=\S+ )?\S+:\S+' | grep -q .; then echo "FROM without a tag"; rc=1; fi
  if grep -qE '^FROM .*:latest' "$f"; then echo "FROM ...:latest"; rc=1; fi
  # DL3015/DL3009: apt-get install with --no-install-recommends, lists removed in the same RUN
  if grep -E 'apt-get install' "$f" | grep -vq -- '--no-install-recommends'; then echo "apt-get install without --no-install-recommends"; rc=1; fi
  if grep -q 'apt-get update' "$f" && ! grep -q 'rm -rf /var/lib/apt/lists' "$f"; then echo "apt lists not removed"; rc=1; fi
  # DL3002: the last USER is not root; DL3025: ENTRYPOINT/CMD in JSON form
  if [ "$(grep -E '^USER ' "$f" | tail -n 1 | awk '{print $2}' | cut -d: -f1)" = root ] || ! grep -qE '^USER ' "$f"; then echo "runs as root"; rc=1; fi
  if grep -E '^(ENTRYPOINT|CMD) ' "$f" | grep -vq '\['; then echo "ENTRYPOINT/CMD not in JSON form"; rc=1; fi
  # DL4006: a pipe in a RUN needs SHELL with -o pipefail before it
  if grep -E '^RUN .*\|' "$f" | grep -q . && ! grep -q 'pipefail' "$f"; then echo "pipe in RUN without pipefail"; rc=1; fi
  # project rules: cross-build on BUILDPLATFORM, TARGETARCH mapped to a RID, non-root uid 10001, HEALTHCHECK on
  # /healthz, EXPOSE of the port Http:Urls binds, entrypoint "edgevit run"
  # shellcheck disable=SC2016  # a literal $BUILDPLATFORM is what the Dockerfile must contain
  grep -q '^FROM --platform=\$BUILDPLATFORM ' "$f" || { echo "build stage not on \$BUILDPLATFORM"; rc=1; }
  { grep -q '^ARG TARGETARCH' "$f" && grep -q 'arm64) rid=linux-arm64' "$f" && grep -q 'amd64) rid=linux-x64' "$f"; } || { echo "TARGETARCH not mapped to a RID"; rc=1; }
  grep -q -- '--self-contained' "$f" || { echo "not a self-contained publish"; rc=1; }
  grep -qE '^USER 10001' "$f" || { echo "USER is not 10001"; rc=1; }
  { grep -q '^HEALTHCHECK .*' "$f" && grep -q '/healthz' "$f"; } || { echo "no HEALTHCHECK on /healthz"; rc=1; }
  local port
  port=$(sed -n 's#.*EDGEVIT__Http__Urls=http://0.0.0.0:\([0-9]*\).*#\1#p' "$f")
  { [ -n "$port" ] && grep -q "^EXPOSE $port\$" "$f" && grep -q "dev/tcp/127.0.0.1/$port" "$f"; } || { echo "EXPOSE/HEALTHCHECK port differs from Http:Urls"; rc=1; }
  grep -q '^ENTRYPOINT \["/opt/edgevit/edgevit", "run"\]' "$f" || { echo "ENTRYPOINT is not edgevit run"; rc=1; }
  # every path the build stage copies exists in the build context and is not excluded by .dockerignore
  local p
  while read -r p; do
    [ -e "$p" ] || { echo "COPY source $p missing"; rc=1; }
    if grep -qx "${p%/}/\?" .dockerignore; then echo "COPY source $p excluded by .dockerignore"; rc=1; fi
  done < <(sed -n 's#^COPY \([^-][^ ]*\) .*#\1#p' "$f")
  return $rc
}
check "Dockerfile rules (tags, apt hygiene, non-root 10001, JSON entrypoint, pipefail, cross-build, healthcheck)" dockerfile_rules

# --- Mosquitto ------------------------------------------------------------------------------------------------------
# The compose broker's config, started for real by Debian's mosquitto (port and data folder moved to scratch ones):
# a bad directive makes it exit at once; still running after 2 s (timeout's exit 124) means it took the file.
mosquitto_test() {
  local conf=$work/mosquitto.conf port
  port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$work/mosquitto-data"
  sed -e "s#^listener 1883 0.0.0.0#listener $port 127.0.0.1#" -e "s#^persistence_location .*#persistence_location $work/mosquitto-data/#" \
    deploy/docker/mosquitto.conf >"$conf"
  grep -q "^listener $port 127.0.0.1" "$conf" || { echo "mosquitto.conf has no 'listener 1883 0.0.0.0' line"; return 1; }
  local rc=0
  timeout 2 "$mosq" -c "$conf" >"$work/mosq.log" 2>&1 || rc=$?
  [ "$rc" = 124 ] || { cat "$work/mosq.log"; echo "mosquitto exited with $rc on the config"; return 1; }
}
mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
if [ -x "$mosq" ]; then check "mosquitto.conf: Debian's mosquitto starts with it" mosquitto_test
else skip "mosquitto (apt-get install mosquitto)"; fi

# --- Prometheus, dashboard, collector --------------------------------------------------------------------------------
if have jq; then
  check "JSON: dashboards, metrics catalog, example config (jq)" jq -e . "$dashboard" "$fleet_dashboard" "$catalog" deploy/systemd/etc/edgevit/edgevit.json
else
  check "JSON: dashboards, metrics catalog, example config (python3 -m json.tool)" \
    sh -c "for f in $dashboard $fleet_dashboard $catalog deploy/systemd/etc/edgevit/edgevit.json; do python3 -m json.tool \"\$f\" >/dev/null || exit 1; done"
fi
for d in "$dashboard" "$fleet_dashboard"; do
  check "dashboard $(basename "$d"): metric and label names in every query are in metrics.json; datasource uid provisioned" \
    "$py" deploy/docker/grafana/check_dashboard.py names "$d" "$catalog" deploy/docker/grafana/provisioning/datasources/prometheus.yaml
done
check "otel-collector.yaml: pipelines use defined components; ports agree with compose and prometheus.yml" \
  "$py" deploy/docker/grafana/check_dashboard.py collector deploy/docker/otel-collector.yaml deploy/docker/compose.yaml deploy/docker/prometheus.yml
if have promtool; then
  check "promtool check config prometheus.yml" promtool check config deploy/docker/prometheus.yml
  for d in "$dashboard" "$fleet_dashboard"; do
    n=$(basename "$d" .json)
    "$py" deploy/docker/grafana/check_dashboard.py promtool "$d" "$catalog" "$work/rules-$n.yml" "$work/rules-$n.test.yml" >"$work/gen" 2>&1 \
      || { cat "$work/gen"; bad "generating promtool files from $n.json"; }
    check "promtool check rules: every $n.json query parses ($(grep -c 'record:' "$work/rules-$n.yml" 2>/dev/null) queries)" promtool check rules "$work/rules-$n.yml"
    check "promtool test rules: every $n.json query returns data on synthetic series named from metrics.json" promtool test rules "$work/rules-$n.test.yml"
  done
else skip "promtool (apt-get install prometheus)"; fi

# The count line alone, as tests/run.sh's counter and CI read it.
echo "deploy/validate.sh: done"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
