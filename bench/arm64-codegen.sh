#!/usr/bin/env bash
# The arm64 JIT code of the GEMM inner loops, checked: publishes tests/ArmRunner for linux-arm64, runs the kernel
# tests that exercise each kernel under qemu-user with DOTNET_JitDisasm, finds each kernel's inner loop (the
# backward branch enclosing the most compute instructions) and checks
#   - no stack traffic in the loop (no ldr/str/ldp/stp addressing [sp or [fp: spills or reloads), and
#   - at least the expected number of compute instructions (FMLA, SDOT, ...) and at most the expected loads.
#
#   bench/arm64-codegen.sh [OUT.md]       (default artifacts/arm64-codegen/summary.md)
#
# Prints one table row per kernel and exits non-zero if any check fails. Needs qemu-user-static and
# libc6-arm64-cross (as tests/run.sh). ARM64_CODEGEN_SKIP_PUBLISH=1 reuses artifacts/arm64-tests.
# The code is what the JIT emits for Armv8 AdvSimd as qemu's default CPU reports it; nothing runs on real hardware.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

# One kernel per entry, fields separated by '|':
#   DOTNET_JitDisasm pattern (a method name; the header regex picks the class and instantiation) | listing header regex (which instantiation) | test class that runs it (ArmRunner prefix) |
#   compute mnemonic regex | least compute instructions in the loop | most loads in the loop | what it is
KERNELS=(
  "Tile|GemmMicrokernelArm:Tile\[EdgeViT\.Kernels\.Simd\.R8\]|EdgeViT.Tests.Kernels.GemmTests|fmla|64|16|fp32 GEMM, 8 rows x 8 columns, FMLA by element, 4 k per iteration"
  "Tile|Int8Microkernel.2\[EdgeViT\.Kernels\.Quant\.ArmDotOps.*:Tile\[EdgeViT\.Kernels\.Simd\.R12\]|EdgeViT.Tests.Kernels.Int8GemmTests|sdot|24|14|int8 GEMM (Armv8.2 dot product), 12 rows x 8 columns, SDOT, 4 k per iteration"
  "Tile|Int8Microkernel.2\[EdgeViT\.Kernels\.Quant\.ArmWidenOps.*:Tile\[EdgeViT\.Kernels\.Simd\.R8\]|EdgeViT.Tests.Kernels.Int8GemmTests|smull2?|32|10|int8 GEMM (Armv8.0, no dot product), 8 rows x 8 columns, SMULL/SMULL2 + SADDLP + ADDP, 4 k per iteration"
)

out=${1:-artifacts/arm64-codegen/summary.md}
dir=$(dirname "$out")
mkdir -p "$dir"
command -v qemu-aarch64-static >/dev/null || { echo "arm64-codegen: error: qemu-aarch64-static missing (apt-get install qemu-user-static)" >&2; exit 1; }
[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || { echo "arm64-codegen: error: arm64 libc missing (apt-get install libc6-arm64-cross)" >&2; exit 1; }

runner=artifacts/arm64-tests/edgevit-test-runner
if [ "${ARM64_CODEGEN_SKIP_PUBLISH:-0}" != 1 ] || [ ! -x "$runner" ]; then
  echo "arm64-codegen: publishing tests/ArmRunner for linux-arm64" >&2
  dotnet publish tests/ArmRunner -c Release -r linux-arm64 --self-contained -o artifacts/arm64-tests -nologo -clp:ErrorsOnly >/dev/null
fi

status=0
{
  echo "| kernel | method | instructions in loop | compute | loads | stores | stack ld/st | verdict |"
  echo "|---|---|---|---|---|---|---|---|"
} >"$out"

for i in "${!KERNELS[@]}"; do
  IFS='|' read -r pattern header tests compute min_compute max_loads what <<<"${KERNELS[$i]}"
  # The entry's index keeps files apart when two kernels share a method name and a test class (the int8 entries).
  name=$(printf '%d_%s_%s' "$i" "$pattern" "$compute" | tr -c 'A-Za-z0-9' '_')
  asm="$dir/$name.asm"
  rm -f "$asm"
  echo "arm64-codegen: $what: running $tests under qemu with DOTNET_JitDisasm=$pattern" >&2
  # FullOpts code only: no tiering (the kernels are AggressiveOptimization anyway) and no precompiled code.
  env QEMU_LD_PREFIX=/usr/aarch64-linux-gnu DOTNET_EnableWriteXorExecute=0 DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 \
      DOTNET_TieredCompilation=0 DOTNET_ReadyToRun=0 DOTNET_JitDisasm="$pattern" DOTNET_JitStdOutFile="$asm" \
      qemu-aarch64-static "$runner" "$tests" >"$dir/$name.tests.log" 2>&1 || { echo "arm64-codegen: $tests failed under qemu (see $dir/$name.tests.log)" >&2; status=1; }
  [ -s "$asm" ] || { echo "arm64-codegen: error: no disassembly for $pattern" >&2; status=1; continue; }
  row=$(python3 - "$asm" "$header" "$compute" "$min_compute" "$max_loads" "$what" "$dir/$name.loop.txt" <<'PY'
import re, sys
path, header, compute, min_compute, max_loads, what, loop_out = sys.argv[1:]
text = open(path).read()
listings = re.split(r'(?m)^; Assembly listing for method ', text)[1:]
chosen = [l for l in listings if re.search(header, l.splitlines()[0])]
if not chosen:
    print(f"| {what} | (no listing matching {header}) | | | | | | FAIL |"); sys.exit(0)
listing = chosen[-1]
method = listing.splitlines()[0].split('(')[0]
lines = [l.strip() for l in listing.splitlines()]
labels = {}
for i, l in enumerate(lines):
    m = re.match(r'^(G_M\d+_IG\d+):', l)
    if m: labels[m.group(1)] = i
# A loop: a branch back to a label above it. Keep the one with the most compute instructions.
def instrs(a, b):
    return [l for l in lines[a:b + 1] if l and not l.startswith(';') and not re.match(r'^G_M\d+_IG\d+:', l) and not l.startswith('align')]
best = None
for i, l in enumerate(lines):
    m = re.match(r'^(b|b\.?(eq|ne|lt|le|gt|ge|lo|ls|hi|hs|mi|pl|cc|cs)|cbn?z|tbn?z)\s+.*?(G_M\d+_IG\d+)\s*$', l)
    if m and m.group(3) in labels and labels[m.group(3)] <= i:
        body = instrs(labels[m.group(3)], i)
        n = sum(1 for x in body if re.match(rf'^({compute})\s', x))
        if best is None or n > best[0]: best = (n, body)
if best is None:
    print(f"| {what} | {method} | (no loop found) | | | | | FAIL |"); sys.exit(0)
n_compute, body = best
mn = [x.split()[0] for x in body]
loads = sum(1 for x in mn if re.match(r'^(ldr|ldp|ldur|ld1|ld1r|ld2|ld4|ldnp)', x))
stores = sum(1 for x in mn if re.match(r'^(str|stp|stur|st1)', x))
stack = sum(1 for x in body if re.match(r'^(ldr|str|ldp|stp|ldur|stur)\s', x) and re.search(r'\[(sp|fp|x29)\b', x))
ok = stack == 0 and n_compute >= int(min_compute) and loads <= int(max_loads)
open(loop_out, 'w').write("\n".join(body) + "\n")
print(f"| {what} | `{method}` | {len(body)} | {n_compute} {compute} (≥ {min_compute}) | {loads} (≤ {max_loads}) | {stores} | {stack} | {'pass' if ok else 'FAIL'} |")
PY
)
  echo "$row" >>"$out"
  echo "$row"
  case "$row" in *FAIL*) status=1 ;; esac
done

echo "arm64-codegen: summary in $out; each loop's instructions in $dir/*.loop.txt" >&2
exit $status
