#!/usr/bin/env bash
# The field on one engine (issues 6, 12): every token-reduction method against dense on the shared DeiT-Tiny, calibrated
# on the 1000 imagenet-sample photos and evaluated on the 2278 imagenet-val photos (never calibrated on), one
# single-threaded engine, methods round-robin per image. METHODS (default: all) narrows the field.
# Writes OUT_DIR/{results.csv,results.md,compare.png} and prints the Markdown table and the wall time.
# usage: bench/compare.sh [OUT_DIR] [BUDGETS] [METHODS]   (EDGEVIT_SHARED overrides ../shared)
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${EDGEVIT_SHARED:-../shared}
out=${1:-artifacts/compare}
budgets=${2:-0.5,0.6,0.7,0.8,0.9}
methods=${3:-}
dotnet build src/EdgeHost -c Release -nologo -clp:ErrorsOnly >/dev/null
/usr/bin/time -f "wall %e s, peak RSS %M KiB" -o "$out.time" \
  dotnet src/EdgeHost/bin/Release/net10.0/edgevit.dll compare --model "$shared/models/deit_tiny_patch16_224.safetensors" \
    --calibration-images "$shared/data/imagenet-sample/images" --calibration-synsets "$shared/data/imagenet-sample/synsets.txt" \
    --images "$shared/data/imagenet-val/images" --synsets "$shared/data/imagenet-val/synsets.txt" \
    --budgets "$budgets" --threads "$(nproc)" ${methods:+--methods "$methods"} --out "$out"
cat "$out.time"
