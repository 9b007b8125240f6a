# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154 # a library: its variables are used, and out/port set, by the scripts that source it
# Sourced by the bench scripts that run `edgevit run` (fuzz-http, http-load, service-cpu, service-load, service-soak),
# from the repository root, after they set `out` (artifact folder) and `port`. Builds the service and provides:
#   shared model images synsets   the shared assets (EDGEVIT_SHARED overrides ../shared)
#   edgevit                       the command, as an array
#   start_service KEY=VALUE...    `edgevit run` in the background on 127.0.0.1:$port (log: $out/service.log), returns
#                                 once /v1/status answers; sets service_pid
#   stop_service                  SIGTERM and wait (also on exit)
#   status                        GET /v1/status
shared=${EDGEVIT_SHARED:-../shared}
model=$shared/models/deit_tiny_patch16_224.safetensors
images=$shared/data/imagenet-sample/images
synsets=$shared/data/imagenet-sample/synsets.txt
edgevit=(dotnet src/EdgeHost/bin/Release/net10.0/edgevit.dll)
# As deploy/systemd/edgevit.service runs it (a fixed glibc mmap threshold keeps decoder buffers from fragmenting arenas).
export MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_:-131072}
mkdir -p "$out"
dotnet build src/EdgeHost -c Release -nologo -clp:ErrorsOnly >/dev/null

service_pid=""
status() { curl -sf "http://127.0.0.1:$port/v1/status"; }

start_service() {
  "${edgevit[@]}" run Model="$model" Http:Urls="http://127.0.0.1:$port" Telemetry:Otlp=off "$@" >"$out/service.log" 2>&1 &
  service_pid=$!
  for _ in $(seq 300); do
    kill -0 "$service_pid" 2>/dev/null || break # e.g. the port is taken: then another process would answer
    status >/dev/null 2>&1 && kill -0 "$service_pid" 2>/dev/null && return
    sleep 0.2
  done
  echo "service did not start; see $out/service.log" >&2
  exit 1
}

stop_service() {
  [ -n "$service_pid" ] || return 0
  kill -TERM "$service_pid" 2>/dev/null || true
  wait "$service_pid" 2>/dev/null || true
  service_pid=""
}
trap stop_service EXIT
