#!/usr/bin/env bash
# RCTP on the shared DeiT-Tiny: calibrate on the 1000 imagenet-sample photos (61 budgets, all cores), evaluate the
# budget curve on the 2278 imagenet-val photos (never calibrated on), then time pruned vs dense EdgeViT vs ONNX Runtime
# at one budget. Prints Markdown tables for bench/RESULTS.md.
# usage: bench/rctp.sh [OUT_DIR]   (EDGEVIT_SHARED overrides ../shared)
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${EDGEVIT_SHARED:-../shared}
out=${1:-artifacts/rctp}
mkdir -p "$out"
model=$shared/models/deit_tiny_patch16_224.safetensors
images=$shared/data/imagenet-sample/images
synsets=$shared/data/imagenet-sample/synsets.txt
val=$shared/data/imagenet-val/images
valsynsets=$shared/data/imagenet-val/synsets.txt
dotnet build src/EdgeHost -c Release -nologo -clp:ErrorsOnly >/dev/null
ev() { dotnet run --project src/EdgeHost -c Release --no-build -- "$@"; }

echo "## calibration ($(date -u +%F), $(nproc) cores, $(lscpu | sed -n 's/Model name: *//p'))"
/usr/bin/time -f "wall %e s, peak RSS %M KiB" -o "$out/calibrate.time" \
  dotnet run --project src/EdgeHost -c Release --no-build -- calibrate --model "$model" --images "$images" --synsets "$synsets" --out "$out/deit_tiny.thresholds.json" --json \
  2> "$out/calibrate.progress" | tail -1 > "$out/calibrate.json"
cat "$out/calibrate.json"; cat "$out/calibrate.time"

echo; echo "## accuracy and speed against budget (imagenet-val, 1 thread)"
echo "| budget | top-1 % | top-5 % | GFLOPs (measured) | of dense | ms/image median | tokens kept per block (mean) |"
echo "|---|---|---|---|---|---|---|"
common=(--model "$model" --images "$val" --synsets "$valsynsets" --json --prefetch 1)
ev eval "${common[@]}" | tail -1 > "$out/eval-dense.json"
for b in 0.50 0.55 0.60 0.65 0.70 0.75 0.80 0.85 0.90 0.95 1.00; do
  ev eval "${common[@]}" --thresholds "$out/deit_tiny.thresholds.json" --budget $b | tail -1 > "$out/eval-$b.json"
done
python3 - "$out" <<'PY'
import json, sys, glob
out = sys.argv[1]
dense = json.load(open(f"{out}/eval-dense.json"))
def row(name, d):
    toks = " ".join(f"{t:.0f}" for t in d["tokens_kept_per_block"])
    print(f"| {name} | {d['top1']:.1f} | {d['top5']:.1f} | {d['gflops_mean']:.3f} | {d['gflops_mean']/dense['gflops_mean']:.3f} | {d['ms_median']:.2f} | {toks} |")
row("dense", dense)
for f in sorted(glob.glob(f"{out}/eval-0.*.json")) + sorted(glob.glob(f"{out}/eval-1.*.json")):
    d = json.load(open(f)); row(f"{d['budget']:.2f}", d)
PY

echo; echo "## pruned (0.70) vs dense vs ONNX Runtime, 1 thread, 50 imagenet-val images cycled"
ev bench --model "$model" --thresholds "$out/deit_tiny.thresholds.json" --budget 0.70 --images "$val" --limit 50 \
  --iterations 300 --warmup 20 --json | tail -1 | tee "$out/bench-0.70.json"
