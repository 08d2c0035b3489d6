#!/usr/bin/env bash
# test_mlp_cli.sh: samples/mlp.etch through the command-line tool, end to end:
# a standalone program with embedded weights (one blob assembled in: the
# program is the weights + ~100 KB, model.c small; ldd: libc, libm and the loader
# only) gives the eager executor's output; `etch run` compiled and eager
# agree; the same holds with a weights file; bad inputs fail with a clear
# message, exit status 1 and no output file. Also: thread-count bit-identity,
# -O0 against eager, and --blas=openblas; emitted code (the MLP's and GPT's
# training steps: row groups with omp-simd reductions, selects, casts) builds
# warning-free under -Wall -Wextra -Werror without etch's default flags.
source "$(dirname "$0")/e2e_common.sh"
mlp=$SRC/samples/mlp.etch
images=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz


"$ETCH" build "$mlp" --exe --embed-weights -D B=1 -o "$t/emb"
# dependency-free: nothing but libc, libm and the dynamic loader
libs=$(ldd "$t/emb/Net" | awk '{print $1}' | grep -v -E '^(linux-vdso\.so|libc\.so|libm\.so|/lib64/ld-linux)' || true)
[ -z "$libs" ] || fail "standalone program links more than libc/libm: $libs"
# the weights are one blob assembled in (.incbin): the program is the weights
# plus the code (about 100 KB), the source a few KB of C per layer
prog=$(wc -c <"$t/emb/Net") blob=$(wc -c <"$t/emb/net_weights.bin") src=$(wc -c <"$t/emb/model.c")
echo "embedded: program $prog bytes, weights $blob bytes, model.c $src bytes"
[ "$prog" -le $((blob + 300000)) ] || fail "the program is more than the weights + 300 KB"
[ "$src" -le 100000 ] || fail "model.c with embedded weights is $src bytes"

if [ -f "$images" ]; then
  "$ETCH" make-input "$mlp" -D B=1 --idx "$images" --index 3 -o "$t/in.npy"
else
  "$ETCH" make-input "$mlp" -D B=1 --seed 5 -o "$t/in.npy"
fi
"$t/emb/Net" "$t/in.npy" "$t/prog.npy"
"$ETCH" run "$mlp" -D B=1 --input "$t/in.npy" -o "$t/eager.npy" --eager
"$ETCH" run "$mlp" -D B=1 --input "$t/in.npy" -o "$t/comp.npy"
"$ETCH" compare "$t/prog.npy" "$t/eager.npy"
"$ETCH" compare "$t/comp.npy" "$t/eager.npy"

# weights from a file: build writes Net.safetensors next to the program
"$ETCH" build "$mlp" --exe -D B=2 -o "$t/file"
"$ETCH" make-input "$mlp" -D B=2 --seed 1 -o "$t/in2.npy"
"$t/file/Net" --weights "$t/file/Net.safetensors" "$t/in2.npy" "$t/p2.npy"
"$ETCH" run "$mlp" -D B=2 --weights "$t/file/Net.safetensors" --input "$t/in2.npy" -o "$t/e2.npy" --eager
"$ETCH" compare "$t/p2.npy" "$t/e2.npy"

# --threads: the same bits for any thread count; -O0 agrees with the eager run too
"$ETCH" build "$mlp" --exe -D B=64 -o "$t/t1"
"$ETCH" build "$mlp" --exe -D B=64 --threads 3 -o "$t/t3"
"$ETCH" make-input "$mlp" -D B=64 --seed 2 -o "$t/in64.npy"
"$t/t1/Net" --weights "$t/t1/Net.safetensors" "$t/in64.npy" "$t/o1.npy"
"$t/t3/Net" --weights "$t/t1/Net.safetensors" "$t/in64.npy" "$t/o3.npy"
"$ETCH" compare --rtol 0 "$t/o1.npy" "$t/o3.npy"
"$ETCH" run "$mlp" -D B=64 -O0 --input "$t/in64.npy" -o "$t/o0.npy"
"$ETCH" run "$mlp" -D B=64 --eager --input "$t/in64.npy" -o "$t/oe.npy"
"$ETCH" compare "$t/o0.npy" "$t/oe.npy"
"$ETCH" compare "$t/o1.npy" "$t/oe.npy"

# --blas=openblas: matmuls call OpenBLAS (the program links it); same results as eager
"$ETCH" build "$mlp" --exe -D B=64 --blas=openblas -o "$t/blas"
# (ldd's output goes to a file first: `ldd | grep -q` can fail under pipefail when grep exits early)
ldd "$t/blas/Net" >"$t/ldd.txt"
grep -q libopenblas "$t/ldd.txt" || fail "--blas=openblas program does not link OpenBLAS"
grep -q cblas_sgemm "$t/blas/model.c" || fail "--blas=openblas emitted no cblas_sgemm call"
"$t/blas/Net" --weights "$t/t1/Net.safetensors" "$t/in64.npy" "$t/ob.npy"
"$ETCH" compare "$t/ob.npy" "$t/oe.npy"

# a compare that must fail: different inputs give different logits
if "$ETCH" compare "$t/prog.npy" "$t/p2.npy" 2>/dev/null; then fail "compare accepted different shapes"; fi

# bad inputs: exit 1, a message naming the problem, no output file left behind
expect_error() { # expected-substring command...
  local want=$1; shift
  set +e
  "$@" >"$t/stdout" 2>"$t/stderr"
  local rc=$?
  set -e
  [ $rc -eq 1 ] || fail "exit status $rc (want 1) for: $*"
  grep -qF -- "$want" "$t/stderr" || { cat "$t/stderr" >&2; fail "missing '$want' for: $*"; }
}
expect_error "input 'x' must be f32[2,1,28,28], the file holds f32[1,1,28,28]" \
  "$t/file/Net" --weights "$t/file/Net.safetensors" "$t/in.npy" "$t/never.npy"
[ ! -e "$t/never.npy" ] || fail "partial output left behind"
head -c 1000 "$t/file/Net.safetensors" >"$t/trunc.safetensors"
expect_error "trunc.safetensors" "$t/file/Net" --weights "$t/trunc.safetensors" "$t/in2.npy" "$t/never.npy"
expect_error "trunc.safetensors" "$ETCH" run "$mlp" -D B=2 --weights "$t/trunc.safetensors" --input "$t/in2.npy" -o "$t/never.npy" --eager
[ ! -e "$t/never.npy" ] || fail "partial output left behind"
expect_error "no weights file given" "$t/file/Net" "$t/in2.npy" "$t/never.npy"
head -c 100 "$t/in2.npy" >"$t/trunc.npy"
expect_error "trunc.npy" "$ETCH" run "$mlp" -D B=2 --input "$t/trunc.npy" -o "$t/never.npy" --eager
expect_error "trunc.npy" "$t/file/Net" --weights "$t/file/Net.safetensors" "$t/trunc.npy" "$t/never.npy"
[ ! -e "$t/never.npy" ] || fail "partial output left behind"
expect_error "unknown option '--bogus'" "$ETCH" build "$mlp" --bogus -o "$t/x"
# $ETCH_CFLAGS replaces etch's default C flags, and --cflags wins over it
expect_error "no-such-flag" env ETCH_CFLAGS="-O0 -fno-such-flag" "$ETCH" build "$mlp" -D B=2 -o "$t/envflags"
[ ! -e "$t/envflags/libnet.so" ] || fail "a library was left behind by a failed compile"
for m in mlp gpt; do
  ETCH_CFLAGS=-fno-such-flag "$ETCH" build "$SRC/samples/$m.etch" -D B=2 --train --cflags "-O1 -Wall -Wextra -Werror" -o "$t/wall_$m" >/dev/null ||
    fail "emitted code for $m does not build under -Wall -Wextra -Werror"
done
echo "mlp cli: all checks passed"
