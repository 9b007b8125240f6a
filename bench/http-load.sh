#!/usr/bin/env bash
# Overload (issue 10, bar 3): CLIENTS (64) concurrent clients POST the tench for SECONDS (60) against Threads=1 and
# Input:QueueLength (4). Passes when every answer is 200 or 503, requests sent = classified + rejected exactly (client
# count against the service's counters), p99 of accepted requests <= queue length x p50 x 1.5, and RSS after the first
# 10 s stays within 10 %. Clients honour Retry-After. Loopback only.
# usage: bench/http-load.sh [OUT_DIR] [SECONDS] [CLIENTS] [QUEUE_LENGTH]   (EDGEVIT_SHARED overrides ../shared)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-artifacts/http-load}
seconds=${2:-60}
clients=${3:-64}
queue=${4:-4}
port=18096
# shellcheck source=bench/lib/service.sh
source bench/lib/service.sh
tench=$(find "$images" -maxdepth 1 -name "n01440764_*" | LC_ALL=C sort | head -n 1)
start_service Synsets="$synsets" Threads=1 Input:QueueLength="$queue" Source:Kind=none Trigger:Mode=http \
  Results:Sink=none Logging:LogLevel:Default=Error
python3 bench/http_bench.py load "http://127.0.0.1:$port" "$tench" "$clients" "$seconds" "$queue" >"$out/summary.json"
jq . "$out/summary.json"
jq -e '(.answers | keys | all(. == "200" or . == "503")) and .sent_equals_classified_plus_rejected and .p99_within_bound
  and .rss_growth_after_10s <= 0.10' "$out/summary.json" >/dev/null || { echo "http-load: FAIL"; exit 1; }
echo "http-load: PASS"
