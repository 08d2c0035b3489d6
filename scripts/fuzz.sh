#!/usr/bin/env bash
# fuzz.sh: builds the libFuzzer harnesses (tests/fuzz/fuzz_<name>.c) with clang
# and runs each on its corpus.
#
#   scripts/fuzz.sh [SECONDS] [NAME...]   run every harness (or the NAMEs, e.g. dsl
#                                         ir_text) for SECONDS each (default 60)
#   scripts/fuzz.sh --build-only          only configure and build (ctest fuzz.build)
#   scripts/fuzz.sh --ci SECONDS NAME     what ctest runs: the regression inputs
#                                         tests/fuzz/regress/NAME/*, then SECONDS of fuzzing
#
# The clang build is a second build of the tree with ETCH_FUZZ=ON, in
# $FUZZ_BUILD_DIR (default build-fuzz/). Seeds: tests/fuzz/corpus/NAME/, plus
# the samples and lit tests for dsl (*.etch) and ir_text (*.etchir), the
# catalogue's ONNX models for onnx; a
# dictionary tests/fuzz/NAME.dict when there is one. New inputs
# go to a scratch corpus in the build folder, never into the tree; crashes,
# leaks, timeouts and out-of-memory inputs are saved under
# $FUZZ_BUILD_DIR/crashes/NAME/ (the script names the folder at the end): add
# each, once fixed, to tests/fuzz/regress/NAME/. Exit 77 when clang is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=run
case "${1:-}" in
  --build-only) mode=build; shift ;;
  --ci) mode=ci; shift ;;
esac
secs=${1:-60}
[ $# -gt 0 ] && shift
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}

clang=$(command -v clang || command -v clang-14 || true)
if [ -z "$clang" ]; then
  echo "fuzz.sh: clang not found (scripts/deps.sh installs it); skipping"
  exit 77
fi
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_C_COMPILER="$clang" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DETCH_FUZZ=ON >/dev/null
fi
cmake --build "$build" --target etch_fuzzers | grep -v '^\[' || true
[ "$mode" = build ] && exit 0

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in "$root"/tests/fuzz/fuzz_*.c; do n=$(basename "$f" .c); names+=("${n#fuzz_}"); done
fi

# seed_files NAME: the tree's inputs for harness NAME besides its corpus folder
seed_files() {
  case "$1" in
    dsl) find "$root/samples" "$root/tests/lit" -name '*.etch' ;;
    ir_text) find "$root/tests/lit" -name '*.etchir' ;;
    onnx) find "$root/tests/catalogue/models/onnx" -name '*.onnx' ;;
  esac
}

failed=()
for name in "${names[@]}"; do
  exe="$build/tests/fuzz/fuzz_$name"
  [ -x "$exe" ] || { echo "fuzz.sh: no harness '$name' ($exe)"; exit 2; }
  crashes="$build/crashes/$name"
  work="$build/corpus/$name" # scratch: the seeds plus what the fuzzer finds
  mkdir -p "$crashes" "$work"
  seeds=()
  [ -d "$root/tests/fuzz/corpus/$name" ] && seeds+=("$root/tests/fuzz/corpus/$name")
  while IFS= read -r f; do cp -f "$f" "$work/seed_$(echo "${f#$root/}" | tr / _)"; done < <(seed_files "$name")
  # libFuzzer exits 77 on a crash by default: ctest would take that for a skip
  opts=(-error_exitcode=1 -timeout_exitcode=1 -timeout=10 -rss_limit_mb=4096 -max_len=65536
        -artifact_prefix="$crashes/" -print_final_stats=0)
  [ -f "$root/tests/fuzz/$name.dict" ] && opts+=(-dict="$root/tests/fuzz/$name.dict")
  if [ "$mode" = ci ]; then
    regress=("$root"/tests/fuzz/regress/"$name"/*)
    if [ -e "${regress[0]}" ]; then
      echo "fuzz.sh: $name: ${#regress[@]} regression inputs"
      "$exe" "${opts[@]}" "${regress[@]}" 2>&1 | tail -n 20 || { failed+=("$name (regression input)"); continue; }
    fi
  fi
  echo "fuzz.sh: fuzzing $name for ${secs}s"
  if ! "$exe" "${opts[@]}" -max_total_time="$secs" "$work" "${seeds[@]}" >"$build/fuzz_$name.log" 2>&1; then
    tail -n 40 "$build/fuzz_$name.log"
    failed+=("$name")
  fi
  grep -E '^#[0-9]+.*(DONE|pulse)' "$build/fuzz_$name.log" | tail -n 1 || true
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: FAILED: ${failed[*]}; inputs saved under $build/crashes/"
  exit 1
fi
echo "fuzz.sh: no crashes (inputs that fail are saved under $build/crashes/)"
