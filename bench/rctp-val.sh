#!/usr/bin/env bash
# Confirmation (once, after the choice was made on the even/odd split): calibrate on all 1000 imagenet-sample
# photos with the chosen calibrate options, evaluate dense and budgets 0.5..0.9 on the 2278 imagenet-val photos
# (two evaluations at a time, one thread each), print paired figures against dense (bench/rctp_paired.py).
# usage: bench/rctp-val.sh NAME OUT_DIR [calibrate options...]   (EDGEVIT_DLL: the edgevit.dll to run)
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1 out=$2; shift 2
shared=${EDGEVIT_SHARED:-../shared}
dll=${EDGEVIT_DLL:-src/EdgeHost/bin/Release/net10.0/edgevit.dll}
model=$shared/models/deit_tiny_patch16_224.safetensors
val=(--images "$shared/data/imagenet-val/images" --synsets "$shared/data/imagenet-val/synsets.txt")
mkdir -p "$out"
ev() { dotnet "$dll" "$@"; }
ev calibrate --model "$model" --images "$shared/data/imagenet-sample/images" --synsets "$shared/data/imagenet-sample/synsets.txt" \
  --budgets 0.5,0.6,0.7,0.8,0.9 --out "$out/$name.thresholds.json" --json "$@" > "$out/$name.cal.json" 2> "$out/$name.cal.log"
one() { # budget or "dense"
  if [ "$1" = dense ]; then
    [ -f "$out/dense.f32" ] || ev eval --model "$model" "${val[@]}" --threads 1 --json --predictions "$out/dense.csv" --logits "$out/dense.f32" > "$out/dense.json"
  else
    ev eval --model "$model" "${val[@]}" --threads 1 --json --thresholds "$out/$name.thresholds.json" --budget "$1" \
      --predictions "$out/$name-$1.csv" --logits "$out/$name-$1.f32" > "$out/$name-$1.json"
  fi
}
(one dense; one 0.6; one 0.8) & (one 0.5; one 0.7; one 0.9) & wait
python3 bench/rctp_paired.py "$out/dense" "$out/$name-0.5" "$out/$name-0.6" "$out/$name-0.7" "$out/$name-0.8" "$out/$name-0.9"
