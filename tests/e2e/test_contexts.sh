#!/usr/bin/env bash
# test_contexts.sh: the reentrant C API of a compiled model (docs/c-api.md,
# "Threads and reentrancy"). tests/e2e/contexts.etch, compiled with
# --threads 2 (a GEMM that splits over a worker thread), runs in three
# contexts on three threads and in the default context on the main thread at
# once; every output must equal the one-at-a-time result bit for bit
# (contexts_main.c). The program is built with ThreadSanitizer where the
# compiler has it (a data race on memory the contexts share fails the test),
# and with AddressSanitizer and UBSan in the sanitizer build; either way as
# one version of each function (ETCH_NO_CLONES), which also halves the compile.
source "$(dirname "$0")/e2e_common.sh"
cc=${CC:-cc}

"$ETCH" build "$SRC/tests/e2e/contexts.etch" --threads 2 --prefix m --c-only -o "$t/m" >"$t/log" 2>&1 || { cat "$t/log"; fail "etch build"; }
grep -q "2 parts" "$t/m/model.c" || fail "no GEMM of contexts.etch splits over threads: the worker path is not tested"

if [ "${ETCH_SANITIZE:-OFF}" = ON ]; then
  san=(-fsanitize=address,undefined -fno-sanitize-recover=all -DETCH_NO_CLONES)
elif echo 'int main(void) { return 0; }' | "$cc" -x c -fsanitize=thread -o "$t/probe" - 2>/dev/null && "$t/probe"; then
  san=(-fsanitize=thread -DETCH_NO_CLONES) # ifunc resolvers would run before TSan starts
else
  echo "note: $cc has no ThreadSanitizer; results are still compared"
  san=()
fi
"$cc" -std=c11 -O1 -g -pthread -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror "${san[@]}" -I "$t/m" \
  "$t/m/model.c" "$t/m/etch_rt.c" "$SRC/tests/e2e/contexts_main.c" -lm -o "$t/contexts" 2>"$t/cc.log" ||
  { cat "$t/cc.log"; fail "compiling contexts_main.c against the emitted model"; }
TSAN_OPTIONS=halt_on_error=1:exitcode=66 "$t/contexts" "$t/m/Net.safetensors" >"$t/out" 2>&1 || { cat "$t/out"; fail "contexts"; }
cat "$t/out"
