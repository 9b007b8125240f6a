#!/usr/bin/env bash
# EdgeViT's test command (the README's). Runs:
#  1. the whole xunit suite (x64, best SIMD level; kernel tests also loop over every lower level in-process);
#  2. the kernel and imaging tests again with lower x86 levels forced through the runtime's knobs, so ISA
#     detection and the 6-row microkernel (16-register ISAs) run as they would on such CPUs;
#  3. the same tests from the linux-arm64 build under qemu-user, so the AdvSimd path really executes, once on a
#     CPU with the dot-product extension (-cpu max) and once without (-cpu cortex-a72).
# Ends with one "N passed, N failed" line; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
passed=0; failed=0; status=0
log=$(mktemp)

count() { # add the counts of a "N passed, N failed" line or of dotnet test's summary line
  local p f
  p=$(grep -oP '(?<=Passed:)\s*\d+|^\d+(?= passed, )' "$log" | tr -d ' ' | paste -sd+ | bc); p=${p:-0}
  f=$(grep -oP '(?<=Failed:)\s*\d+|(?<= passed, )\d+(?= failed)' "$log" | tr -d ' ' | paste -sd+ | bc); f=${f:-0}
  passed=$((passed + p)); failed=$((failed + f))
}

run() { # run "$@", keep its output in the log and on screen
  echo "::: $*"
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local before=$failed
  count
  if [ "$rc" -ne 0 ]; then
    status=1
    # A crash (e.g. a native abort) prints no failure count of its own: count it, and say so.
    if [ "$failed" -eq "$before" ]; then failed=$((failed + 1)); echo "::: exited with code $rc without reporting a failed test: counted as one failure"; fi
  fi
}

dotnet build EdgeViT.sln -c Release -nologo -clp:ErrorsOnly || exit 1

run dotnet test tests/EdgeViT.Tests -c Release --no-build --nologo
run bash deploy/validate.sh

runner=tests/ArmRunner/bin/Release/net10.0/edgevit-test-runner.dll
suites="EdgeViT.Tests.Kernels EdgeViT.Tests.Imaging EdgeViT.Tests.Capture"
# .NET 10 reads DOTNET_EnableAVX512 (DOTNET_EnableAVX512F alone no longer disables AVX-512); set both.
run env DOTNET_EnableAVX512=0 DOTNET_EnableAVX512F=0 dotnet "$runner" $suites
# Zen 3 exactly: AVX2 without AVX-VNNI (the int8 kernels fall back to vpmaddubsw).
run env DOTNET_EnableAVX512=0 DOTNET_EnableAVX512F=0 DOTNET_EnableAVXVNNI=0 dotnet "$runner" $suites
run env DOTNET_EnableAVX2=0 dotnet "$runner" $suites
run env DOTNET_EnableHWIntrinsic=0 dotnet "$runner" $suites

if command -v qemu-aarch64-static >/dev/null && [ -d /usr/aarch64-linux-gnu ]; then
  dotnet publish tests/ArmRunner -c Release -r linux-arm64 --self-contained -o artifacts/arm64-tests -nologo -clp:ErrorsOnly >/dev/null || status=1
  # Twice: an Armv8.2+ core with the dot-product unit (SDOT int8 kernel; Pi 5, Orin) and a Cortex-A72 without it
  # (Pi 4: the SMULL widening int8 kernel).
  for cpu in max cortex-a72; do
    run env QEMU_CPU=$cpu QEMU_LD_PREFIX=/usr/aarch64-linux-gnu DOTNET_EnableWriteXorExecute=0 DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 \
        qemu-aarch64-static artifacts/arm64-tests/edgevit-test-runner $suites
  done
  # The published linux-arm64 CLI under qemu: predict and a short eval, dense and with --thresholds, give the same
  # top-1 as the linux-x64 publish (deploy/arm64-check.sh; a few minutes).
  run env ARM64_CHECK_LIMIT="${ARM64_CHECK_LIMIT:-10}" bash deploy/arm64-check.sh
else
  echo "tests/run.sh: qemu-aarch64-static or the arm64 libc is missing (apt-get install qemu-user-static libc6-arm64-cross): arm64 not tested"
  status=1
fi

rm -f "$log"
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || status=1
exit $status
