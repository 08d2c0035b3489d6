#!/usr/bin/env bash
# test.sh: the whole test suite. Builds etch twice, plain (build/) and with
# AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/), and runs every
# ctest test (cmocka unit tests, lit/FileCheck tests, end-to-end tests) in both
# (the fuzz harnesses, sanitized builds of their own, in the plain half only).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
jobs=$(nproc)

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

# The sanitized half checks etch itself; the code it emits is the same text
# as in the plain half, which compiles and checks it with etch's default
# flags, so here it is compiled at -O0 (ETCH_CFLAGS; a test's own --cflags
# still wins), which takes a fifth of the compiler's time; test_train_gpt,
# whose run time dominates, raises it to -O1. intercept_tls_get_addr=0: the
# compiled models etch dlopens have thread-local storage (each context's
# scratch, docs/c-api.md), and the __tls_get_addr interceptor of GCC 12's
# sanitizer runtime can mistake such a block for a pre-2.25 glibc header
# (by its address modulo 4096) and crash LeakSanitizer's tracer at exit
# ("Tracer caught signal 11"; seen in `etch bench`, which dlopens three).
# The fuzz.* tests are left out here: their harnesses are a clang build of
# their own, with AddressSanitizer and UBSan already (tests/fuzz), the same
# in both halves, so the plain half has run them (about 100 s of CI each time).
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DETCH_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$jobs"
ETCH_CFLAGS=-O0 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:intercept_tls_get_addr=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs" -E '^fuzz\.'
