#!/usr/bin/env bash
# The service's CPU cost (issue 9, bar 4), from the process's own CPU time (/proc/PID/stat utime+stime):
#   1. idle: `edgevit run` with Trigger:Mode=http, Threads=2, a 5 fps synthetic camera, no requests after a short
#      warm-up (5 empty POST /v1/classify, so the engine and its workers have run). The camera goes to standby after
#      Trigger:StandbyAfterMs (default 10 s) without requests: % of one core over the IDLE_S seconds after the last
#      request (standby delay included) and over IDLE_S seconds in standby, split into the engine's worker threads and
#      the rest, with every thread's wake-ups (context switches) in standby; then the latency of the request that
#      reopens the camera;
#   2. paced: the synthetic camera at 5 fps, Trigger continuous, Threads=2 and then Threads=1: CPU ms per classified
#      frame over PACED_S seconds (after PACED_WARMUP_S of warm-up), with the service's own infer p50 from the verdicts;
#   3. the single-thread inference time: `edgevit bench --threads 1` (EdgeViT median ms).
# Bar: idle <= 1 % of a core; CPU per frame at Threads=2 <= 1.25 x the single-thread inference time.
# The paced runs start measuring after PACED_WARMUP_S (default 40 s): the runtime's background JIT recompiles hot
# code at its optimising tier through the first minute or so, a one-off start-up cost (0.45 s of CPU inside a window
# starting at 10 s, 0.15 s from 40 s, Zen 4, 2026-12-03) that is not per-frame work; threads that end inside the
# window are named, and their CPU stays in the total.
# usage: bench/service-cpu.sh [OUT_DIR] [IDLE_S PACED_S]   (EDGEVIT_SHARED overrides ../shared; PACED_WARMUP_S)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-artifacts/service-cpu}
idle_s=${2:-30} paced_s=${3:-30} paced_warmup_s=${PACED_WARMUP_S:-40}
port=18097
# shellcheck source=bench/lib/service.sh
source bench/lib/service.sh
tick=$(getconf CLK_TCK)
camera=(Source:Kind=synthetic Source:Width=640 Source:Height=480 Source:Fps=5)

cpu_ms() { awk -v t="$tick" '{ sub(/^.*\) /, ""); print ($12 + $13) * 1000 / t }' "/proc/$service_pid/stat"; }
workers_ms() { # CPU ms of the engine's pool threads (named edgevit-worker-N)
  local sum=0 d
  for d in /proc/"$service_pid"/task/*; do
    [[ "$(cat "$d/comm" 2>/dev/null)" == edgevit-worker* ]] || continue
    sum=$((sum + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "$d/stat")))
  done
  echo $((sum * 1000 / tick))
}
wakeups() { # "thread-name sleeps" per thread: voluntary context switches so far (each one is a sleep, and a wake-up
  # after it); involuntary ones are preemption and the thread pool's sched_yield spinning, which a loaded machine inflates
  local d
  for d in /proc/"$service_pid"/task/*; do
    awk -v name="$(tr ' ' '_' <"$d/comm" 2>/dev/null)" '/^voluntary_ctxt_switches/ { print name, $2 }' "$d/status" 2>/dev/null || true
  done
}
thread_ms() { # "thread-name/tid cpu_ms" per thread
  local d
  for d in /proc/"$service_pid"/task/*; do
    awk -v name="$(tr ' ' '_' <"$d/comm" 2>/dev/null)/${d##*/}" -v t="$tick" '{ sub(/^.*\) /, ""); print name, ($12 + $13) * 1000 / t }' "$d/stat" 2>/dev/null || true
  done
}
by_thread() { # by_thread BEFORE AFTER SECONDS FORMAT: the growth per thread, largest first; threads that ended meanwhile
  # (their CPU is gone with them) are named after the list
  awk -v s="$3" -v f="$4" 'NR == FNR { a[$1] += $2; next } { b[$1] += $2 }
    END { for (k in b) if (b[k] - a[k] > 0) printf f, k, (b[k] - a[k]) / s; for (k in a) if (!(k in b)) gone = gone " " k
          if (gone != "") printf "    (ended meanwhile:%s)\n", gone }' "$1" "$2" | sort -k2 -rn
}
now() { date +%s.%N; }
pct() { echo "100 * ($2 - $1) / (1000 * ($4 - $3))" | bc -l; } # pct CPU0 CPU1 T0 T1
classify_source_frame() { curl -sf -o /dev/null -w '%{time_total}' -X POST --data-binary '' "http://127.0.0.1:$port/v1/classify"; }
sleep_until() { local left; left=$(echo "$1 - $(now)" | bc -l); (( $(echo "$left > 0" | bc -l) )) && sleep "$left"; return 0; }

# 1. Idle.
start_service Threads=2 Trigger:Mode=http "${camera[@]}" Results:Sink=none
for _ in 1 2 3 4 5; do warm=$(classify_source_frame); done
c0=$(cpu_ms); t0=$(now); thread_ms >"$out/cpu-0.txt"
for _ in $(seq 600); do [ "$(status | jq .source.standby)" = true ] && break; sleep 0.1; done
[ "$(status | jq .source.standby)" = true ] || { echo "the camera did not go to standby; see $out/service.log" >&2; exit 1; }
cs=$(cpu_ms); ws=$(workers_ms); ts=$(now); captured_s=$(status | jq .counters.captured); wakeups >"$out/wakeups-start.txt"
sleep_until "$(echo "$t0 + $idle_s" | bc -l)"
c1=$(cpu_ms); t1=$(now); thread_ms >"$out/cpu-1.txt"
sleep_until "$(echo "$ts + $idle_s" | bc -l)"
c2=$(cpu_ms); w2=$(workers_ms); t2=$(now); captured_e=$(status | jq .counters.captured); wakeups >"$out/wakeups-end.txt"
reopen=$(classify_source_frame)
printf 'idle, Threads=2, Trigger http, 5 fps camera: standby %.1f s after the last request\n' "$(echo "$ts - $t0" | bc -l)"
printf '  %.1f s after the last request: %.0f ms CPU = %.2f %% of one core\n' "$(echo "$t1 - $t0" | bc -l)" "$(echo "$c1 - $c0" | bc -l)" "$(pct "$c0" "$c1" "$t0" "$t1")"
printf '  %.1f s in standby: %.0f ms CPU = %.2f %% of one core (engine workers: %d ms); frames captured meanwhile: %d\n' \
  "$(echo "$t2 - $ts" | bc -l)" "$(echo "$c2 - $cs" | bc -l)" "$(pct "$cs" "$c2" "$ts" "$t2")" "$((w2 - ws))" "$((captured_e - captured_s))"
echo "  CPU by thread over the $idle_s s after the last request (ms; threads with none left out):"
by_thread "$out/cpu-0.txt" "$out/cpu-1.txt" 1 "    %-28s %6.0f ms\n"
echo "  wake-ups in standby by thread (voluntary context switches per second; threads with none left out):"
by_thread "$out/wakeups-start.txt" "$out/wakeups-end.txt" "$(echo "$t2 - $ts" | bc -l)" "    %-28s %6.2f /s\n"
printf '  POST /v1/classify (empty): %.0f ms while capturing, %.0f ms from standby (camera reopened)\n' \
  "$(echo "$warm * 1000" | bc -l)" "$(echo "$reopen * 1000" | bc -l)"
stop_service

# 2. Paced at 5 fps.
paced() { # paced THREADS -> prints "cpu_per_frame_ms frames infer_p50_ms parallel_stalls"
  rm -f "$out/verdicts-t$1.jsonl"
  start_service Threads="$1" "${camera[@]}" Results:Sink=file Results:Path="$out/verdicts-t$1.jsonl"
  sleep "$paced_warmup_s"
  local c0 f0 c1 f1 s0 s1
  c0=$(cpu_ms); f0=$(status | jq .counters.classified); s0=$(status | jq .model.parallel_stalls); thread_ms >"$out/paced-t$1-0.txt"
  sleep "$paced_s"
  c1=$(cpu_ms); f1=$(status | jq .counters.classified); s1=$(status | jq .model.parallel_stalls); thread_ms >"$out/paced-t$1-1.txt"
  echo "$((f1 - f0))" >"$out/paced-t$1-frames.txt"
  stop_service
  sleep 1 # the port is free again
  local p50
  p50=$(python3 -c 'import json,sys
v=[json.loads(l)["latency_ms"]["infer"] for l in open(sys.argv[1])][20:]
v.sort(); print(round(v[len(v)//2],2) if v else "nan")' "$out/verdicts-t$1.jsonl")
  echo "$(echo "($c1 - $c0) / ($f1 - $f0)" | bc -l) $((f1 - f0)) $p50 $((s1 - s0))"
}
read -r per2 n2 p50_2 stalls2 < <(paced 2)
read -r per1 n1 p50_1 _ < <(paced 1)
printf '5 fps, Threads=2: %.1f ms CPU per classified frame (%d frames), infer p50 %.2f ms, %d parallel stalls (a worker lost its CPU mid-task)\n' "$per2" "$n2" "$p50_2" "$stalls2"
printf '5 fps, Threads=1: %.1f ms CPU per classified frame (%d frames), infer p50 %.2f ms\n' "$per1" "$n1" "$p50_1"
for t in 2 1; do
  echo "  Threads=$t, CPU by thread (ms per classified frame; under 0.05 left out):"
  by_thread "$out/paced-t$t-0.txt" "$out/paced-t$t-1.txt" "$(cat "$out/paced-t$t-frames.txt")" "    %-28s %6.2f ms\n" | awk '$2 >= 0.05 || /ended/'
done

# 3. Single-thread inference time.
single=$("${edgevit[@]}" bench --model "$model" --threads 1 --iterations 50 --json | tail -1 | jq .edgevit_ms)
printf 'bench --threads 1: EdgeViT %.2f ms; CPU per frame at Threads=2 / single-thread inference = %.2f (bar <= 1.25)\n' \
  "$single" "$(echo "$per2 / $single" | bc -l)"
