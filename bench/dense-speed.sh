#!/usr/bin/env bash
# Dense DeiT-Tiny speed against ONNX Runtime at 1 and 2 threads, on every x86 SIMD path this CPU has (AVX-512 when
# present, and AVX2 forced with DOTNET_EnableAVX512=0), as `edgevit bench` runs (EdgeViT and ORT alternated in one
# process, ratio = median of paired ratios). Rounds alternate 1 and 2 threads so drift hits both; "2T / 1T" is the
# median over rounds of EdgeViT's 2-thread median / its 1-thread median from the same round.
# ONNX Runtime picks its own kernels from CPUID: forcing AVX2 in .NET does not change ORT, which keeps AVX-512.
# usage: bench/dense-speed.sh [ROUNDS ITERATIONS] [OUT.md]   (default 3 rounds of 100; EDGEVIT_SHARED overrides ../shared)
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${EDGEVIT_SHARED:-../shared}
rounds=${1:-3} iterations=${2:-100}
out=${3:-artifacts/dense-speed.md}
mkdir -p "$(dirname "$out")"
model=$shared/models/deit_tiny_patch16_224.safetensors
dotnet build src/EdgeHost -c Release -nologo -clp:ErrorsOnly >/dev/null
edgevit=(dotnet src/EdgeHost/bin/Release/net10.0/edgevit.dll)
raw=$(mktemp)

paths=("avx2|DOTNET_EnableAVX512=0 DOTNET_EnableAVX512F=0")
grep -qw avx512f /proc/cpuinfo && paths=("avx512|" "${paths[@]}")
for entry in "${paths[@]}"; do
  IFS='|' read -r name envs <<<"$entry"
  for r in $(seq "$rounds"); do
    for t in 1 2; do
      echo "dense-speed: $name, round $r/$rounds, $t thread(s), $iterations iterations" >&2
      # shellcheck disable=SC2086
      env $envs "${edgevit[@]}" bench --model "$model" --threads "$t" --iterations "$iterations" --json | tail -1 |
        jq -r --arg p "$name" --arg r "$r" --arg t "$t" '[$p, $r, $t, .simd, .edgevit_ms, .onnxruntime_ms, .ratio] | @tsv' >>"$raw"
    done
  done
done

python3 - "$raw" "$out" "$(date -u +%F)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(nproc)" "$rounds" "$iterations" <<'PY'
import sys, statistics as st
raw, out, date, cpu, ncpu, rounds, iters = sys.argv[1:]
rows = [l.rstrip('\n').split('\t') for l in open(raw) if l.strip()]
med = lambda v: st.median(v)
lines = [f"{date}, {cpu}, {ncpu} vCPUs; {rounds} rounds x {iters} iterations per cell; medians over rounds.", "",
         "| SIMD path (EdgeViT) | threads | EdgeViT ms | ONNX Runtime ms | ratio (median of paired) | 2T / 1T EdgeViT |",
         "|---|---|---|---|---|---|"]
for path in dict.fromkeys(r[0] for r in rows):
    sel = [r for r in rows if r[0] == path]
    simd = sel[0][3]
    by = {t: [r for r in sel if r[2] == t] for t in ('1', '2')}
    speedup = [float(b[4]) / float(a[4]) for a, b in zip(by['1'], by['2'])]
    for t in ('1', '2'):
        c = by[t]
        lines.append(f"| {simd} ({path}) | {t} | {med([float(x[4]) for x in c]):.2f} | {med([float(x[5]) for x in c]):.2f} | "
                     f"**{med([float(x[6]) for x in c]):.3f}** | {'' if t == '1' else f'**{med(speedup):.3f}**'} |")
open(out, 'w').write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
rm -f "$raw"
