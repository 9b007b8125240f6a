#!/usr/bin/env bash
# Hostile bodies against POST /v1/classify (issue 10, bar 2): N (default 3000) mutations, fixed seed, of JPEG/PNG
# seeds made from the shared tench (baseline, progressive, CMYK, EXIF-rotated JPEG; 16-bit, palette, grey-16, RGBA PNG):
# bit flips, truncations, huge and zero declared sizes, random bytes, splices, header-only. Passes when every answer
# is 200 or 4xx (never 5xx, never a dropped connection), the service still classifies the tench afterwards, and RSS
# after the run is within 1.3x of RSS at rest. Loopback only; bounded (N requests, one at a time).
# usage: bench/fuzz-http.sh [OUT_DIR] [N] [SEED]   (EDGEVIT_SHARED overrides ../shared; needs ffmpeg, jpegtran)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-artifacts/fuzz-http}
n=${2:-3000}
seed=${3:-20261202}
port=18095
# shellcheck source=bench/lib/service.sh
source bench/lib/service.sh
tench=$(find "$images" -maxdepth 1 -name "n01440764_*" | LC_ALL=C sort | head -n 1)
python3 bench/http_bench.py seeds "$out/seeds" "$tench" >/dev/null
start_service Synsets="$synsets" Threads=1 Source:Kind=none Trigger:Mode=http Results:Sink=none Logging:LogLevel:Default=Error
python3 bench/http_bench.py fuzz "http://127.0.0.1:$port" "$out/seeds" "$n" "$seed" >"$out/summary.json"
alive=yes; kill -0 "$service_pid" 2>/dev/null || alive=no
jq --arg alive "$alive" '. + {service_alive: $alive}' "$out/summary.json" | tee "$out/summary.pretty.json"
jq -e --arg alive "$alive" '.failure_count == 0 and .tench_after.status == 200 and .tench_after.synset == "n01440764"
  and .rss_ratio <= 1.3 and $alive == "yes"' "$out/summary.json" >/dev/null || { echo "fuzz-http: FAIL"; exit 1; }
echo "fuzz-http: PASS"
