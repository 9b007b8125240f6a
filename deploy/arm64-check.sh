#!/usr/bin/env bash
# arm64 proof: publish the edgevit CLI self-contained for linux-arm64, run it under qemu-user emulation on the shared
# model and images, and compare its answers with the linux-x64 build's answers to the same commands.
#
#   deploy/arm64-check.sh [THRESHOLDS.json]
#
# Runs, on both builds (the device publish, -p:EdgeVitDevice=true), with --json:
#   predict on 3 shared images (top-1 class of each compared);
#   eval --limit 20 dense (top-1/top-5 accuracy compared);
#   with a thresholds file (the argument, or one calibrated here on x64 with --limit 40 --budgets 0.7):
#   predict and eval --limit 20 with --thresholds FILE --budget 0.7 (the same comparisons);
#   run (HTTP only): the 3 images POSTed to /v1/classify (top-1 classes compared).
# GFLOPs and tokens kept per block are printed side by side for information: a token whose class-attention score sits
# on a threshold may fall the other way on another SIMD path, so they are not a pass/fail criterion; classes and
# accuracies are. Exits non-zero on any mismatch or failure.
#
# Needs (Debian): qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross jq bc file, and for the thresholds runs
# the arm64 libssl3 (the thresholds file is bound to the model's SHA-256, which .NET computes with OpenSSL): it is
# fetched once with apt-get download into artifacts/arm64-libs, using private package lists (the machine's dpkg
# architectures and apt state are not touched). About 4-8 minutes on 2 idle cores.
# Nothing here runs on real ARM hardware: qemu-user translates the AArch64 code (AdvSimd included) on the x86 host.
# Environment: EDGEVIT_SHARED (default: the shared/ folder beside the repository or one of its parents),
# ARM64_CHECK_LIMIT (eval images, default 20), ARM64_CHECK_SKIP_PUBLISH=1 to reuse artifacts/{x64,arm64}-check.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

die() { echo "arm64-check: error: $*" >&2; exit 1; }

limit=${ARM64_CHECK_LIMIT:-20}
thresholds_arg=${1:-}
[ -z "$thresholds_arg" ] || [ -f "$thresholds_arg" ] || die "thresholds file not found: $thresholds_arg"

command -v qemu-aarch64-static >/dev/null || die "qemu-aarch64-static missing (apt-get install qemu-user-static)"
[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || die "arm64 libc missing (apt-get install libc6-arm64-cross libstdc++6-arm64-cross)"
command -v jq >/dev/null || die "jq missing (apt-get install jq)"

shared=${EDGEVIT_SHARED:-}
if [ -z "$shared" ]; then
  dir=$PWD
  while [ "$dir" != / ]; do
    if [ -d "$dir/shared/models" ]; then shared=$dir/shared; break; fi
    dir=$(dirname "$dir")
  done
fi
if [ -z "$shared" ] || [ ! -d "$shared/models" ]; then die "shared assets not found: set EDGEVIT_SHARED"; fi
model=$shared/models/deit_tiny_patch16_224.safetensors
images=$shared/data/imagenet-sample/images
synsets=$shared/data/imagenet-sample/synsets.txt
for f in "$model" "$synsets"; do [ -f "$f" ] || die "missing $f"; done
mapfile -t three < <(find "$images" -maxdepth 1 -type f | LC_ALL=C sort | head -n 3)
[ "${#three[@]}" -eq 3 ] || die "need 3 images in $images"

x64=artifacts/x64-check
arm=artifacts/arm64-check
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ms() { date +%s%3N; }
if [ "${ARM64_CHECK_SKIP_PUBLISH:-0}" != 1 ] || [ ! -x "$x64/edgevit" ] || [ ! -x "$arm/edgevit" ]; then
  for rid in linux-x64 linux-arm64; do
    out=$x64; [ "$rid" = linux-arm64 ] && out=$arm
    t0=$(ms)
    # The device build, as install.sh and the Dockerfile ship it (trimmed, no ONNX Runtime or plotting).
    dotnet publish src/EdgeHost -c Release -r "$rid" -p:EdgeVitDevice=true -o "$out" -nologo -clp:ErrorsOnly >"$work/publish.log" 2>&1 \
      || { cat "$work/publish.log" >&2; die "dotnet publish -r $rid failed"; }
    echo "publish $rid: $(( ($(ms) - t0) / 1000 )) s, $(du -sh "$out" | cut -f1)"
  done
fi
file "$arm/edgevit" | grep -q 'ARM aarch64' || die "$arm/edgevit is not an AArch64 executable"
file "$arm/libSkiaSharp.so" 2>/dev/null | grep -q 'aarch64' || die "arm64 publish lacks an AArch64 libSkiaSharp.so"

# libssl.so.3/libcrypto.so.3 for arm64 (not in the cross packages): fetched and unpacked, never installed.
arm_libs=$PWD/artifacts/arm64-libs
if [ ! -e "$arm_libs/usr/lib/aarch64-linux-gnu/libssl.so.3" ]; then
  echo "fetching libssl3:arm64 (apt-get download with private lists into $arm_libs)..."
  apt_state=$work/apt
  mkdir -p "$apt_state/lists/partial" "$apt_state/cache/archives/partial" "$arm_libs"
  apt_opts=(-o "Dir::State::Lists=$apt_state/lists" -o "Dir::Cache=$apt_state/cache" -o APT::Architecture=arm64
            -o APT::Architectures::=arm64 -o APT::Sandbox::User=root)
  apt-get update -qq "${apt_opts[@]}" >"$work/apt.log" 2>&1 || { cat "$work/apt.log" >&2; die "apt-get update (arm64 lists) failed"; }
  (cd "$work" && apt-get download -qq "${apt_opts[@]}" libssl3) >>"$work/apt.log" 2>&1 \
    || { cat "$work/apt.log" >&2; die "apt-get download libssl3:arm64 failed"; }
  dpkg-deb -x "$work"/libssl3_*_arm64.deb "$arm_libs"
fi

# The arm64 binary under qemu-user: the dynamic loader and libc/libstdc++ come from the cross packages; W^X off
# because qemu-user does not emulate the double mapping the runtime uses for it; libssl from artifacts/arm64-libs.
# shellcheck disable=SC2317  # run_arm64 and run_x64 are called as "run_$arch"
run_arm64() {
  env QEMU_LD_PREFIX=/usr/aarch64-linux-gnu LD_LIBRARY_PATH="$arm_libs/usr/lib/aarch64-linux-gnu" \
    DOTNET_EnableWriteXorExecute=0 qemu-aarch64-static "$arm/edgevit" "$@"
}
run_x64() { "$x64/edgevit" "$@"; }

status=0 passed=0 failed=0
# run NAME ARGS...: both builds, last stdout line (the JSON report) kept as $work/NAME.{x64,arm64}.json
run() {
  local name=$1; shift
  local arch t0
  for arch in x64 arm64; do
    t0=$(ms)
    if ! "run_$arch" "$@" --json >"$work/$name.$arch.out" 2>"$work/$name.$arch.err"; then
      echo "FAIL $name ($arch): exit code non-zero"; sed 's/^/    /' "$work/$name.$arch.err" | tail -5
      status=1; failed=$((failed + 1)); return 1
    fi
    tail -n 1 "$work/$name.$arch.out" >"$work/$name.$arch.json"
    jq -e . "$work/$name.$arch.json" >/dev/null || { echo "FAIL $name ($arch): last line is not JSON"; status=1; failed=$((failed + 1)); return 1; }
    printf '  %-16s %-6s %6.1f s\n' "$name" "$arch" "$(echo "($(ms) - $t0) / 1000" | bc -l)"
  done
}

# same NAME LABEL JQ: the jq projection must be equal on both builds
same() {
  local name=$1 label=$2 expr=$3 a b
  [ -f "$work/$name.x64.json" ] && [ -f "$work/$name.arm64.json" ] || return 0
  a=$(jq -c "$expr" "$work/$name.x64.json"); b=$(jq -c "$expr" "$work/$name.arm64.json")
  if [ "$a" = "$b" ]; then echo "ok   $name $label: $a"; passed=$((passed + 1))
  else echo "FAIL $name $label: x64 $a, arm64 $b"; status=1; failed=$((failed + 1)); fi
}
# info NAME LABEL JQ: printed side by side, not compared
info() {
  local name=$1 label=$2 expr=$3
  [ -f "$work/$name.x64.json" ] && [ -f "$work/$name.arm64.json" ] || return 0
  echo "info $name $label: x64 $(jq -c "$expr" "$work/$name.x64.json"), arm64 $(jq -c "$expr" "$work/$name.arm64.json")"
}

echo "start-up (edgevit --help):"
for arch in x64 arm64; do
  t0=$(ms); "run_$arch" --help >/dev/null || { echo "FAIL --help ($arch)"; status=1; }
  echo "  $arch: $(( $(ms) - t0 )) ms"
done

thresholds=$thresholds_arg
if [ -z "$thresholds" ]; then
  thresholds=$work/thresholds.json
  echo "calibrating a small thresholds file on x64 (--limit 40 --budgets 0.7)..."
  run_x64 calibrate --model "$model" --images "$images" --synsets "$synsets" --out "$thresholds" \
    --split even --limit 40 --budgets 0.7 >"$work/calibrate.log" 2>&1 || { cat "$work/calibrate.log" >&2; die "calibrate failed"; }
fi

echo "runs:"
run predict-dense predict --model "$model" --synsets "$synsets" "${three[@]}" || true
run eval-dense eval --model "$model" --images "$images" --synsets "$synsets" --limit "$limit" || true
run predict-0.7 predict --model "$model" --synsets "$synsets" --thresholds "$thresholds" --budget 0.7 "${three[@]}" || true
run eval-0.7 eval --model "$model" --images "$images" --synsets "$synsets" --limit "$limit" --thresholds "$thresholds" --budget 0.7 || true

# The service: `run` on both builds (HTTP only), the same 3 images POSTed; top-1 classes compared as for predict.
serve() { # serve ARCH PORT: starts `edgevit run`, waits for /healthz, POSTs the images, stops it
  local arch=$1 port=$2 pid t0 i
  t0=$(ms)
  "run_$arch" run Model="$model" Synsets="$synsets" Source:Kind=none Trigger:Mode=http Results:Sink=none \
    Http:Urls="http://127.0.0.1:$port" Telemetry:Otlp=off >"$work/run.$arch.log" 2>&1 &
  pid=$!
  for i in $(seq 600); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if ! curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
    echo "FAIL run ($arch): the service did not start"; tail -5 "$work/run.$arch.log" | sed 's/^/    /'
    kill "$pid" 2>/dev/null || true; status=1; failed=$((failed + 1)); return 1
  fi
  printf '  %-16s %-6s %6.1f s to /healthz\n' run "$arch" "$(echo "($(ms) - $t0) / 1000" | bc -l)"
  for i in "${three[@]}"; do
    curl -sf -X POST --data-binary "@$i" -H 'Content-Type: application/octet-stream' "http://127.0.0.1:$port/v1/classify" || echo '{}'
    echo
  done | jq -s '{results: .}' >"$work/run-http.$arch.json"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
}
if command -v curl >/dev/null; then
  serve x64 18190 || true
  serve arm64 18191 || true
else
  echo "FAIL run: curl missing"; status=1; failed=$((failed + 1))
fi

echo "comparison:"
same run-http "top-1 classes" '[.results[].top[0].class]'
info run-http "top-1 score" '[.results[].top[0].score]'
for name in predict-dense predict-0.7; do
  same "$name" "top-1 classes" '[.results[].top[0].class]'
  info "$name" "top-1 prob" '[.results[].top[0].prob]'
  info "$name" "gflops" '[.results[].gflops]'
done
for name in eval-dense eval-0.7; do
  same "$name" "images" '.images'
  same "$name" "top-1/top-5 %" '[.top1, .top5]'
  info "$name" "gflops_mean" '.gflops_mean'
  info "$name" "tokens_kept_per_block" '.tokens_kept_per_block'
  info "$name" "ms_median" '.ms_median'
done
info eval-dense simd '.simd'

echo "$passed passed, $failed failed"
if [ "$status" -eq 0 ]; then echo "arm64-check: linux-arm64 (qemu-user) agrees with linux-x64"
else echo "arm64-check: MISMATCH or failure (see above)"; fi
exit "$status"
