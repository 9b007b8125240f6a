#!/usr/bin/env bash
# Measures the self-contained publish of the edgevit CLI: size on disk and start-up wall time, for the plain publish,
# ReadyToRun (-p:PublishReadyToRun=true) and trimming (-p:PublishTrimmed=true), natively on linux-x64; sizes only for
# linux-arm64 (its run time under qemu-user says nothing about a real board).
#
#   deploy/publish-measure.sh [x64|arm64|all]      (default all; about 5-10 minutes on 2 cores)
#
# Start-up: median wall time of 5 runs of `edgevit --help`, of 3 runs of `predict` on one shared image (model load +
# first inference), and, when the build has the service, of 3 starts of `edgevit run` (synthetic source, dense) until
# GET /readyz answers 200 (what a service restart costs before it classifies). Output: one table row per variant. Trimming is expected to break System.CommandLine/ONNX Runtime/reflection: its publish warnings are counted
# and its binary is run like the others, and whatever happens is reported.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
which=${1:-all}

shared=${EDGEVIT_SHARED:-}
if [ -z "$shared" ]; then
  dir=$PWD
  while [ "$dir" != / ]; do
    if [ -d "$dir/shared/models" ]; then shared=$dir/shared; break; fi
    dir=$(dirname "$dir")
  done
fi
if [ -z "$shared" ]; then echo "publish-measure: error: shared assets not found: set EDGEVIT_SHARED" >&2; exit 1; fi
model=$shared/models/deit_tiny_patch16_224.safetensors
mapfile -t images < <(find "$shared/data/imagenet-sample/images" -maxdepth 1 -type f | LC_ALL=C sort)
image=${images[0]}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
wall_ms() { # wall_ms CMD...: milliseconds, or "fail"
  local t0 t1
  t0=$(date +%s%N)
  "$@" >/dev/null 2>&1 || { echo fail; return 0; }
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 ))
}

# ready_ms BIN: launch `BIN run` on a free loopback port, poll /readyz (bash /dev/tcp, as the image's HEALTHCHECK
# does), stop it with SIGTERM; milliseconds to ready, or "fail"
port=$((18000 + RANDOM % 2000))
http_status() { # http_status PORT PATH -> status code of a GET, empty when nothing answers
  ( exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$2" >&3 \
    && head -n 1 <&3 | awk '{print $2}' ) 2>/dev/null
}
ready_ms() {
  local bin=$1 t0 pid result=fail
  port=$((port + 1))
  t0=$(date +%s%N)
  "$bin" run "Model=$model" Source:Kind=synthetic Source:Fps=5 Results:Sink=none Telemetry:Otlp=off \
    "Http:Urls=http://127.0.0.1:$port" >/dev/null 2>"$work/run.err" &
  pid=$!
  for _ in $(seq 1 1200); do
    if [ "$(http_status "$port" /readyz)" = 200 ]; then result=$(( ($(date +%s%N) - t0) / 1000000 )); break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "$result"
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

printf '%-8s %-14s %9s %8s %10s %12s %10s %s\n' rid variant size_MiB files help_ms predict_ms ready_ms notes
measure() { # measure RID VARIANT MSBUILD_PROPS...
  local rid=$1 variant=$2; shift 2
  local out=artifacts/measure/$rid-$variant log warnings size files help predict notes=""
  rm -rf "$out"
  log=$(mktemp)
  if ! dotnet publish src/EdgeHost -c Release -r "$rid" --self-contained -o "$out" -nologo -p:DebugType=none "$@" >"$log" 2>&1; then
    printf '%-8s %-14s %s\n' "$rid" "$variant" "publish FAILED: $(grep -m1 -o 'error [A-Z]*[0-9]*: .*' "$log" | cut -c1-120)"
    rm -f "$log"; return 0
  fi
  warnings=$( { grep -oE 'warning (IL|NETSDK)[0-9]+' "$log" || true; } | awk '{print $2}' | sort -u | paste -sd, -)
  [ -z "$warnings" ] || notes="publish warnings $warnings; "
  rm -f "$log"
  size=$(du -sb "$out" | awk '{printf "%.1f", $1 / 1048576}')
  files=$(find "$out" -type f | wc -l)
  help="-" predict="-" ready="-"
  if [ "$rid" = linux-x64 ]; then
    "$out/edgevit" --help >/dev/null 2>&1 || true   # warm the page cache once
    help=$(for _ in 1 2 3 4 5; do wall_ms "$out/edgevit" --help; done | median)
    predict=$(for _ in 1 2 3; do wall_ms "$out/edgevit" predict --model "$model" "$image"; done | median)
    if ! "$out/edgevit" predict --model "$model" "$image" >/dev/null 2>"$out.err"; then
      notes="${notes}predict fails: $(grep -m1 -v '^\s*$' "$out.err" | cut -c1-100)"
    fi
    rm -f "$out.err"
    if "$out/edgevit" --help 2>/dev/null | grep -qE '^\s+run\b'; then
      ready=$(for _ in 1 2 3; do ready_ms "$out/edgevit"; done | median)
      if [ "$ready" = fail ]; then
        notes="${notes}run fails: $(grep -m1 'error' "$work/run.err" | cut -c1-110)"
      fi
    fi
  fi
  printf '%-8s %-14s %9s %8s %10s %12s %10s %s\n' "${rid#linux-}" "$variant" "$size" "$files" "$help" "$predict" "$ready" "$notes"
}

if [ "$which" = all ] || [ "$which" = x64 ]; then
  measure linux-x64 plain
  measure linux-x64 readytorun -p:PublishReadyToRun=true
  measure linux-x64 trimmed -p:PublishTrimmed=true
  measure linux-x64 r2r+trimmed -p:PublishReadyToRun=true -p:PublishTrimmed=true
fi
if [ "$which" = all ] || [ "$which" = arm64 ]; then
  measure linux-arm64 plain
  measure linux-arm64 readytorun -p:PublishReadyToRun=true
fi
