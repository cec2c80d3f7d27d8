#!/usr/bin/env bash
# Installs what is missing, builds and runs every test:
#   1. the release build: unit, integration, interop and cluster tests (a
#      PostgreSQL primary and standby of their own), then the
#      FreeRTOS simulator test when a FreeRTOS-Kernel checkout is found
#      (FREERTOS_KERNEL_PATH, or ../shared/third_party/FreeRTOS-Kernel)
#   2. an ASan+UBSan build of the same unit, integration and cluster tests
#   3. a ThreadSanitizer build (daemon, module and tests) of the integration
#      tests, the threads test among them
#   4. the client module and its tests as i386 programs, against the 64-bit
#      daemon of stage 1
#   5. the libFuzzer targets (clang), bounded: requests into dispatch after
#      a prologue that reaches a token, a login and a key; the operator's
#      files; store records, leases and responses
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc)
fuzz_seconds=${REMHSM_FUZZ_SECONDS:-60}
logs=$(mktemp -d /tmp/remhsm-test-logs-XXXXXX)
trap 'rm -rf "$logs"' EXIT

# Runs ctest in a build folder, keeping its output for the final count.
run_ctest() {
  local dir=$1; shift
  (cd "$dir" && ctest --output-on-failure "$@") | tee "$(mktemp "$logs/$(basename "$dir")-XXXXXX.log")"
}

scripts/deps.sh test

kernel=${FREERTOS_KERNEL_PATH:-}
if [ -z "$kernel" ] && [ -d "$root/../shared/third_party/FreeRTOS-Kernel" ]; then
  kernel=$(cd "$root/../shared/third_party/FreeRTOS-Kernel" && pwd)
fi

echo "== release build: unit, integration, interop, cluster"
cmake -S . -B build -DBUILD_TESTING=ON -DFREERTOS_KERNEL_PATH="$kernel" >/dev/null
cmake --build build -j"$jobs" >/dev/null
run_ctest build -j"$jobs" -L 'unit|integration|interop|cluster'

# Alone on the machine: its watchdog measures how long calls take.
if [ -n "$kernel" ]; then
  echo "== FreeRTOS simulator: FreeRTOS tasks on $kernel"
  run_ctest build -L '^freertos$'
else
  echo "== FreeRTOS simulator: SKIPPED, no FreeRTOS-Kernel checkout" \
    "(set FREERTOS_KERNEL_PATH to one)"
fi

echo "== ASan+UBSan build: unit, integration, cluster"
cmake -S . -B build-asan -DBUILD_TESTING=ON -DREMHSM_SANITIZE=ON \
  -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$jobs" >/dev/null
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_ctest build-asan -j"$jobs" -L 'unit|integration|cluster'

echo "== ThreadSanitizer build: integration"
cmake -S . -B build-tsan -DBUILD_TESTING=ON -DREMHSM_TSAN=ON \
  -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-tsan -j"$jobs" >/dev/null
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  run_ctest build-tsan -j"$jobs" -L integration

echo "== i386 client: the module and its tests as 32-bit programs, 64-bit daemon"
cmake -S . -B build-i386 -DCMAKE_TOOLCHAIN_FILE=cmake/i386.cmake \
  -DREMHSM_CLIENT_ONLY=ON -DBUILD_TESTING=ON \
  -DREMHSM_DAEMON="$root/build/daemon/remhsmd" >/dev/null
cmake --build build-i386 -j"$jobs" >/dev/null
run_ctest build-i386 -j"$jobs"

echo "== libFuzzer: ${fuzz_seconds}s into dispatch, then the parsers, records, frontend and module"
CC=clang cmake -S . -B build-fuzz -DBUILD_TESTING=ON -DREMHSM_FUZZ=ON \
  -DREMHSM_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug \
  -DREMHSM_FUZZ_SECONDS="$fuzz_seconds" >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_dispatch fuzz_parsers \
  fuzz_records fuzz_frontend fuzz_module >/dev/null
run_ctest build-fuzz -L fuzz

# One closing line over every stage (a stage that failed has already
# stopped this script through set -e and pipefail).
total=$(cat "$logs"/*.log | sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\1 \2/p' |
  awk '{failed += $1; total += $2} END {print failed, total}')
read -r failed all <<<"$total"
echo "tests: $((all - failed)) passed, $failed failed"
