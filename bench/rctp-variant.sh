#!/usr/bin/env bash
# One RCTP method-selection cycle on the even/odd split of imagenet-sample (never imagenet-val):
# calibrate on the 500 even images with extra calibrate options, evaluate budgets 0.5..0.9 on the 500 odd ones
# with per-image predictions and logits, then print paired figures against dense (bench/rctp_paired.py).
# usage: bench/rctp-variant.sh NAME OUT_DIR [calibrate options...]   (EDGEVIT_DLL: the edgevit.dll to run)
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1 out=$2; shift 2
shared=${EDGEVIT_SHARED:-../shared}
dll=${EDGEVIT_DLL:-src/EdgeHost/bin/Release/net10.0/edgevit.dll}
model=$shared/models/deit_tiny_patch16_224.safetensors
img=$shared/data/imagenet-sample/images syn=$shared/data/imagenet-sample/synsets.txt
budgets=${BUDGETS:-0.5 0.6 0.7 0.8 0.9}
calsplit=${CAL_SPLIT:-even} evsplit=${EVAL_SPLIT:-odd}   # reverse the roles for a second look at a choice
mkdir -p "$out"
ev() { dotnet "$dll" "$@"; }
if [ ! -f "$out/dense.f32" ]; then
  ev eval --model "$model" --images "$img" --synsets "$syn" --split "$evsplit" --threads 1 --json \
    --predictions "$out/dense.csv" --logits "$out/dense.f32" > "$out/dense.json"
fi
ev calibrate --model "$model" --images "$img" --synsets "$syn" --split "$calsplit" --budgets "$(echo $budgets | tr ' ' ,)" \
  --out "$out/$name.thresholds.json" --json "$@" > "$out/$name.cal.json" 2> "$out/$name.cal.log"
runs=()
for b in $budgets; do
  ev eval --model "$model" --images "$img" --synsets "$syn" --split "$evsplit" --threads 1 --json --thresholds "$out/$name.thresholds.json" \
    --budget "$b" --predictions "$out/$name-$b.csv" --logits "$out/$name-$b.f32" > "$out/$name-$b.json"
  runs+=("$out/$name-$b")
done
python3 bench/rctp_paired.py "$out/dense" "${runs[@]}"
