#!/usr/bin/env bash
# Soak (issue 4, bar 5): `edgevit run` classifies the shared images from the folder source at full speed for
# DURATION seconds (default 600), writing every verdict to a file; /v1/status is sampled every 10 s for RSS,
# managed heap and allocation. Checks after a 60 s warm-up: RSS and managed heap grow by at most 5 %, and
# every captured frame is either classified (one verdict line each) or counted as dropped.
# usage: bench/service-soak.sh [OUT_DIR] [DURATION_S]   (EDGEVIT_SHARED overrides ../shared)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-artifacts/service-soak}
duration=${2:-600}
port=18094
# shellcheck source=bench/lib/service.sh
source bench/lib/service.sh
rm -f "$out"/verdicts.jsonl*
thresholds=artifacts/rctp/deit_tiny.thresholds.json
[ -f "$thresholds" ] || thresholds=artifacts/service-load/deit_tiny.thresholds.json
budget=()
if [ -f "$thresholds" ]; then budget=(Thresholds="$thresholds" Budget:Mode=fixed Budget:Target=0.7); fi
start_service Synsets="$synsets" "${budget[@]}" Threads=1 Source:Kind=folder Source:Folder="$images" \
  Results:Sink=file Results:Path="$out/verdicts.jsonl" Results:MaxBytes=1073741824 Results:MaxFiles=2

echo "t_s,classified,captured,dropped,errors,rss_mib,heap_mib,live_mib,allocated_mib,gen0,gen1,gen2" >"$out/samples.csv"
start=$(date +%s)
while :; do
  t=$(( $(date +%s) - start ))
  status | jq -r --arg t "$t" '[($t|tonumber), .counters.classified, .counters.captured, .counters.dropped, .counters.errors,
     (.process.rss_bytes/1048576), (.process.managed_heap_bytes/1048576), (.process.managed_live_bytes/1048576),
     (.process.allocated_bytes_total/1048576), .process.gc_gen0, .process.gc_gen1, .process.gc_gen2] | @csv' >>"$out/samples.csv"
  [ "$t" -ge "$duration" ] && break
  sleep 10
done
stop_service # SIGTERM: the frame in flight finishes and its verdict is written

python3 - "$out" <<'PY'
import csv, glob, json, sys
out = sys.argv[1]
rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(open(f"{out}/samples.csv"))]
warm = [r for r in rows if r["t_s"] >= 60]
base, last = warm[0], warm[-1]
peak_rss = max(r["rss_mib"] for r in warm); peak_heap = max(r["heap_mib"] for r in warm)
frames = last["classified"] - base["classified"]
alloc = (last["allocated_mib"] - base["allocated_mib"]) * 1048576 / max(frames, 1)
verdicts = sum(1 for f in glob.glob(f"{out}/verdicts.jsonl*") for _ in open(f))
log = open(f"{out}/service.log").read()
final = [l for l in log.splitlines() if "pipeline stopped" in l]
print(f"| duration | frames classified | fps | RSS after warm-up -> end (peak) | managed heap after warm-up -> end (peak) | allocated per frame | GCs gen0/1/2 |")
print(f"|---|---|---|---|---|---|---|")
print(f"| {last['t_s']:.0f} s | {last['classified']:.0f} | {frames / (last['t_s'] - base['t_s']):.1f} | "
      f"{base['rss_mib']:.1f} -> {last['rss_mib']:.1f} MiB ({peak_rss:.1f}, {100 * (peak_rss / base['rss_mib'] - 1):+.1f} %) | "
      f"{base['heap_mib']:.2f} -> {last['heap_mib']:.2f} MiB ({peak_heap:.2f}, {100 * (peak_heap / base['heap_mib'] - 1):+.1f} %) | "
      f"{alloc:.0f} B | {last['gen0']:.0f}/{last['gen1']:.0f}/{last['gen2']:.0f} |")
print(f"\nverdict lines {verdicts}; {final[-1].strip() if final else 'no final pipeline line (not stopped cleanly?)'}")
ok_mem = peak_rss <= 1.05 * base["rss_mib"] and peak_heap <= 1.05 * base["heap_mib"]
nums = [int(x) for x in __import__("re").findall(r"(\d+) (?:captured|dropped|classified)", final[-1])] if final else []
ok_frames = len(nums) == 3 and nums[0] == nums[1] + nums[2] and verdicts == nums[2]
print(f"memory within 5 %: {'yes' if ok_mem else 'NO'}; captured = classified + dropped and one verdict per classified frame: {'yes' if ok_frames else 'NO'}")
sys.exit(0 if ok_mem and ok_frames else 1)
PY
