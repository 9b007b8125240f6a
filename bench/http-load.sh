#!/usr/bin/env bash
# Overload (issue 10, bar 3): CLIENTS (64) concurrent clients POST the tench for SECONDS (60) against Threads=1 and
# Input:QueueLength (4). Passes when every answer is 200 or 503, requests sent = classified + rejected exactly (client
# count against the service's counters), p99 of accepted requests <= queue length x p50 x 1.5, and RSS after the first
# 10 s stays within 10 %. Clients honour Retry-After. Loopback only.
# usage: bench/http-load.sh [OUT_DIR] [SECONDS] [CLIENTS] [QUEUE_LENGTH]   (EDGEVIT_SHARED overrides ../shared)
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${EDGEVIT_SHARED:-../shared}
out=${1:-artifacts/http-load}
seconds=${2:-60}
clients=${3:-64}
queue=${4:-4}
port=18096
mkdir -p "$out"
tench=$(find "$shared/data/imagenet-sample/images" -maxdepth 1 -name "n01440764_*" | LC_ALL=C sort | head -n 1)
dotnet build src/EdgeHost -c Release -nologo -clp:ErrorsOnly >/dev/null
export MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_:-131072}
dotnet src/EdgeHost/bin/Release/net10.0/edgevit.dll run Model="$shared/models/deit_tiny_patch16_224.safetensors" \
  Synsets="$shared/data/imagenet-sample/synsets.txt" Threads=1 Input:QueueLength="$queue" Source:Kind=none Trigger:Mode=http \
  Results:Sink=none Http:Urls="http://127.0.0.1:$port" Telemetry:Otlp=off Logging:LogLevel:Default=Error >"$out/service.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
python3 bench/http_bench.py load "http://127.0.0.1:$port" "$tench" "$clients" "$seconds" "$queue" >"$out/summary.json"
jq . "$out/summary.json"
jq -e '(.answers | keys | all(. == "200" or . == "503")) and .sent_equals_classified_plus_rejected and .p99_within_bound
  and .rss_growth_after_10s <= 0.10' "$out/summary.json" >/dev/null || { echo "http-load: FAIL"; exit 1; }
echo "http-load: PASS"
