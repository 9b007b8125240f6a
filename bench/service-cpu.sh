#!/usr/bin/env bash
# The service's CPU cost (issue 9, bar 4), from the process's own CPU time (/proc/PID/stat utime+stime):
#   1. idle: `edgevit run` with Trigger:Mode=http, Threads=2, a 5 fps synthetic camera, no requests after a short
#      warm-up (5 empty POST /v1/classify, so the engine and its workers have run): % of one core over IDLE_S seconds,
#      split into the engine's worker threads and the rest (the camera keeps capturing in http mode);
#   2. paced: the synthetic camera at 5 fps, Trigger continuous, Threads=2 and then Threads=1: CPU ms per classified
#      frame over PACED_S seconds (after 10 s of warm-up), with the service's own infer p50 from the verdicts;
#   3. the single-thread inference time: `edgevit bench --threads 1` (EdgeViT median ms).
# Bar: idle <= 1 % of a core; CPU per frame at Threads=2 <= 1.25 x the single-thread inference time.
# usage: bench/service-cpu.sh [OUT_DIR] [IDLE_S PACED_S]   (EDGEVIT_SHARED overrides ../shared)
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${EDGEVIT_SHARED:-../shared}
out=${1:-artifacts/service-cpu}
idle_s=${2:-30} paced_s=${3:-30}
port=18094
mkdir -p "$out"
model=$shared/models/deit_tiny_patch16_224.safetensors
dotnet build src/EdgeHost -c Release -nologo -clp:ErrorsOnly >/dev/null
edgevit=(dotnet src/EdgeHost/bin/Release/net10.0/edgevit.dll)
tick=$(getconf CLK_TCK)

pid=""
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
status() { curl -sf "http://127.0.0.1:$port/v1/status"; }
cpu_ms() { awk -v t="$tick" '{ sub(/^.*\) /, ""); print ($12 + $13) * 1000 / t }' "/proc/$pid/stat"; }
workers_ms() { # CPU ms of the engine's pool threads (named edgevit-worker-N)
  local sum=0 d
  for d in /proc/"$pid"/task/*; do
    [[ "$(cat "$d/comm" 2>/dev/null)" == edgevit-worker* ]] || continue
    sum=$((sum + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "$d/stat")))
  done
  echo $((sum * 1000 / tick))
}

start_service() { # start_service KEY=VALUE...
  "${edgevit[@]}" run Model="$model" Source:Kind=synthetic Source:Width=640 Source:Height=480 \
    Http:Urls="http://127.0.0.1:$port" Telemetry:Otlp=off "$@" >"$out/service.log" 2>&1 &
  pid=$!
  for _ in $(seq 150); do status >/dev/null 2>&1 && return; sleep 0.2; done
  echo "service did not become ready; see $out/service.log" >&2; exit 1
}
stop_service() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; sleep 1; }

# 1. Idle.
start_service Threads=2 Trigger:Mode=http Source:Fps=5 Results:Sink=none
for _ in 1 2 3 4 5; do curl -sf -X POST --data-binary '' "http://127.0.0.1:$port/v1/classify" >/dev/null; done
sleep 2
c0=$(cpu_ms); w0=$(workers_ms); t0=$(date +%s.%N)
sleep "$idle_s"
c1=$(cpu_ms); w1=$(workers_ms); t1=$(date +%s.%N)
idle_pct=$(echo "100 * ($c1 - $c0) / (1000 * ($t1 - $t0))" | bc -l)
printf 'idle, Threads=2, Trigger http, 5 fps camera: %.0f ms CPU in %.1f s = %.2f %% of one core (engine workers: %d ms)\n' \
  "$(echo "$c1 - $c0" | bc -l)" "$(echo "$t1 - $t0" | bc -l)" "$idle_pct" "$((w1 - w0))"
stop_service

# 2. Paced at 5 fps.
paced() { # paced THREADS -> prints "cpu_per_frame_ms frames infer_p50_ms"
  start_service Threads="$1" Source:Fps=5 Results:Sink=file Results:Path="$out/verdicts-t$1.jsonl"
  sleep 10
  local c0 f0 c1 f1
  c0=$(cpu_ms); f0=$(status | jq .counters.classified)
  sleep "$paced_s"
  c1=$(cpu_ms); f1=$(status | jq .counters.classified)
  stop_service
  local p50
  p50=$(python3 -c 'import json,sys
v=[json.loads(l)["latency_ms"]["infer"] for l in open(sys.argv[1])][20:]
v.sort(); print(round(v[len(v)//2],2) if v else "nan")' "$out/verdicts-t$1.jsonl")
  echo "$(echo "($c1 - $c0) / ($f1 - $f0)" | bc -l) $((f1 - f0)) $p50"
}
read -r per2 n2 p50_2 < <(paced 2)
read -r per1 n1 p50_1 < <(paced 1)
printf '5 fps, Threads=2: %.1f ms CPU per classified frame (%d frames), infer p50 %.2f ms\n' "$per2" "$n2" "$p50_2"
printf '5 fps, Threads=1: %.1f ms CPU per classified frame (%d frames), infer p50 %.2f ms\n' "$per1" "$n1" "$p50_1"

# 3. Single-thread inference time.
single=$("${edgevit[@]}" bench --model "$model" --threads 1 --iterations 50 --json | tail -1 | jq .edgevit_ms)
printf 'bench --threads 1: EdgeViT %.2f ms; CPU per frame at Threads=2 / single-thread inference = %.2f (bar <= 1.25)\n' \
  "$single" "$(echo "$per2 / $single" | bc -l)"
