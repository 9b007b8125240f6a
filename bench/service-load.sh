#!/usr/bin/env bash
# Latency-mode budget controller under load (issue 4, bar 4): `edgevit run` classifies 640x480 frames at 30 fps from the
# synthetic source at full speed (a camera-like stream: constant frame size, so the latency the controller sees is
# what pruning can change; the shared JPEG folder mixes 75x56 and 2400x1600 decodes) with Budget:Mode=latency; after a quiet phase, a second process loads both cores,
# then stops. /v1/status is sampled every 0.5 s; prints the trace (time, load, active set, p95) and a summary:
# how long p95 stayed over target after the load began, and how long the controller took to step back up after.
# usage: bench/service-load.sh [OUT_DIR] [QUIET_S LOAD_S RECOVER_S]   (EDGEVIT_SHARED overrides ../shared)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-artifacts/service-load}
quiet=${2:-20} load=${3:-30} recover=${4:-40}
port=18093
# shellcheck source=bench/lib/service.sh
source bench/lib/service.sh

thresholds=artifacts/rctp/deit_tiny.thresholds.json # bench/rctp.sh's full calibration, when it has been run
if [ ! -f "$thresholds" ]; then
  thresholds=$out/deit_tiny.thresholds.json
  [ -f "$thresholds" ] || "${edgevit[@]}" calibrate --model "$model" --images "$images" --synsets "$synsets" --split even \
      --limit 100 --budgets 0.40:1.00:0.05 --threads 2 --out "$thresholds" >/dev/null
fi

load_pid=""
cleanup() { [ -z "$load_pid" ] || [ "$load_pid" = stopped ] || kill "$load_pid" 2>/dev/null || true; stop_service; }
trap cleanup EXIT
camera=(Thresholds="$thresholds" Synsets="$synsets" Threads=1 Source:Kind=synthetic Source:Width=640 Source:Height=480 Source:Fps=30)

# 1. The unloaded dense p95 sets the target: 1.3x, so the quiet machine runs (nearly) dense and the loaded one cannot.
# (The controller's latency is decode + preprocess + infer; taken here from the verdicts after 20 warm-up frames.)
start_service "${camera[@]}" Budget:Mode=fixed Budget:Target=1.0 Results:Sink=file Results:Path="$out/dense-verdicts.jsonl"
sleep 12
stop_service
dense_p95=$(python3 -c 'import json,sys
v=[json.loads(l)["latency_ms"] for l in open(sys.argv[1])][20:]
t=sorted(x["decode"]+x["preprocess"]+x["infer"] for x in v)
print(round(t[int(0.95*(len(t)-1))],1))' "$out/dense-verdicts.jsonl")
sleep 1 # the port is free again
target=$(echo "$dense_p95 * 1.3" | bc -l | xargs printf '%.1f')
echo "unloaded dense p95 ${dense_p95} ms -> target p95 ${target} ms"

# 2. Latency mode: quiet, loaded, quiet again.
start_service "${camera[@]}" Results:Sink=none Budget:Mode=latency Budget:TargetP95Ms="$target"
t0=$(date +%s.%N)
echo "t_s,load,active_budget,active_gflops,p95_ms,switches" >"$out/trace.csv"
end=$((quiet + load + recover))
while :; do
  now=$(echo "$(date +%s.%N) - $t0" | bc -l)
  if [ -z "$load_pid" ] && (( $(echo "$now >= $quiet" | bc -l) )) && (( $(echo "$now < $quiet + $load" | bc -l) )); then
    # The second process: one busy thread per core (hashing releases the GIL), as a co-located workload would.
    python3 -c 'import threading,hashlib
def spin():
    b=b"x"*65536
    while True: hashlib.sha256(b).digest()
ts=[threading.Thread(target=spin,daemon=True) for _ in range(2)]
[t.start() for t in ts]; [t.join() for t in ts]' &
    load_pid=$!
  fi
  if [ -n "$load_pid" ] && (( $(echo "$now >= $quiet + $load" | bc -l) )); then kill "$load_pid" 2>/dev/null || true; load_pid=stopped; fi
  loaded=0; [ -n "$load_pid" ] && [ "$load_pid" != stopped ] && loaded=1
  status | jq -r --arg t "$now" --arg l "$loaded" \
    '[($t|tonumber*10|round/10), $l, .budget.active_set.budget, .budget.active_set.gflops, .budget.p95_ms, .budget.switches] | @csv' >>"$out/trace.csv" || true
  (( $(echo "$now >= $end" | bc -l) )) && break
  sleep 0.5
done

python3 - "$out/trace.csv" "$target" "$quiet" "$load" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1]))]
target, quiet, load = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
for r in rows:
    for k in ("t_s", "active_budget", "p95_ms"): r[k] = float(r[k]) if r[k] not in ("", "null") else None
print(f"\n| t (s) | load | active set (budget) | p95 ms (target {target}) |\n|---|---|---|---|")
last = None
for r in rows:
    key = (r["load"], r["active_budget"], r["p95_ms"] is not None and r["p95_ms"] > target)
    if key != last or int(r["t_s"] * 2) % 10 == 0: # every change, and every 5 s
        print(f"| {r['t_s']:.1f} | {'yes' if r['load'] == '1' else ''} | {r['active_budget']} | {r['p95_ms']} |")
    last = key
over = [r for r in rows if quiet <= r["t_s"] < quiet + load and r["p95_ms"] is not None and r["p95_ms"] > target]
pre = [r["active_budget"] for r in rows if r["t_s"] < quiet]
under_load = [r["active_budget"] for r in rows if quiet + 5 <= r["t_s"] < quiet + load]
if over:
    first = over[0]["t_s"]
    back = next((r["t_s"] for r in rows if r["t_s"] > first and r["t_s"] < quiet + load and r["p95_ms"] <= target), None)
    print(f"\nload on at {quiet:.0f} s: p95 first over target at {first:.1f} s, back under at "
          f"{back if back is None else f'{back:.1f}'} s -> {('%.1f s over' % (back - first)) if back else 'never recovered'}")
else:
    print(f"\nload on at {quiet:.0f} s: p95 never exceeded the target")
print(f"active budget: quiet {pre[-1] if pre else None}, under load {min(under_load) if under_load else None}..{max(under_load) if under_load else None}")
stop = quiet + load
up = next((r["t_s"] for r in rows if r["t_s"] >= stop and pre and r["active_budget"] >= pre[-1]), None)
print(f"load off at {stop:.0f} s: back to the quiet set ({pre[-1] if pre else None}) at {up if up is None else f'{up:.1f} s ({up - stop:.1f} s later)'}")
PY

# The dashboard's budget/latency panel, drawn from this run's samples (no Grafana here to screenshot).
dotnet build bench/EdgeViT.Bench -c Release -nologo -clp:ErrorsOnly >/dev/null
dotnet bench/EdgeViT.Bench/bin/Release/net10.0/edgevit-bench.dll panel "$out/trace.csv" "$target" "$quiet" "$((quiet + load))" "$out/latency-panel.png"
echo "panel: $out/latency-panel.png"
