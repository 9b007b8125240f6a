#!/usr/bin/env bash
# The field on one engine (issue 6): every token-reduction method against dense on the shared DeiT-Tiny, calibrated
# on the even-indexed images and evaluated on the odd ones, one single-threaded engine, methods round-robin per image.
# Writes OUT_DIR/{results.csv,results.md,compare.png} and prints the Markdown table and the wall time.
# usage: bench/compare.sh [OUT_DIR] [BUDGETS]   (EDGEVIT_SHARED overrides ../shared)
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${EDGEVIT_SHARED:-../shared}
out=${1:-artifacts/compare}
budgets=${2:-0.5,0.6,0.7,0.8,0.9}
dotnet build src/EdgeHost -c Release -nologo -clp:ErrorsOnly >/dev/null
/usr/bin/time -f "wall %e s, peak RSS %M KiB" -o "$out.time" \
  dotnet src/EdgeHost/bin/Release/net10.0/edgevit.dll compare --model "$shared/models/deit_tiny_patch16_224.safetensors" \
    --images "$shared/data/imagenet-sample/images" --synsets "$shared/data/imagenet-sample/synsets.txt" \
    --budgets "$budgets" --threads 2 --out "$out"
cat "$out.time"
