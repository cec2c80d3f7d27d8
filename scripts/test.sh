#!/usr/bin/env bash
# Installs what is missing, builds and runs every test:
#   1. the release build: unit, integration and interop tests
#   2. an ASan+UBSan build of the same unit and integration tests
#   3. the libFuzzer target (clang) over the decoders and dispatch, bounded
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc)
fuzz_seconds=${REMHSM_FUZZ_SECONDS:-60}

scripts/deps.sh test

echo "== release build: unit, integration, interop"
cmake -S . -B build -DBUILD_TESTING=ON >/dev/null
cmake --build build -j"$jobs" >/dev/null
(cd build && ctest --output-on-failure -j"$jobs" -L 'unit|integration|interop')

echo "== ASan+UBSan build: unit, integration"
cmake -S . -B build-asan -DBUILD_TESTING=ON -DREMHSM_SANITIZE=ON \
  -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$jobs" >/dev/null
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --output-on-failure -j"$jobs" -L 'unit|integration')

echo "== libFuzzer: ${fuzz_seconds}s over frame and request decoders into dispatch"
CC=clang cmake -S . -B build-fuzz -DBUILD_TESTING=ON -DREMHSM_FUZZ=ON \
  -DREMHSM_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug \
  -DREMHSM_FUZZ_SECONDS="$fuzz_seconds" >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_dispatch >/dev/null
(cd build-fuzz && ctest --output-on-failure -L fuzz)
