#!/usr/bin/env bash
# test_train_lstm.sh: samples/lstm.etch, the recurrence compiled as a loop:
#  - the emitted C does not grow with the sequence length: model.c for
#    T = 28 time steps is no larger than for T = 7 (beyond the digits of the
#    literals), for inference and for the training step, and holds the LSTM
#    cell (its scan body) once, not T times;
#  - `etch run` compiled equals the eager executor (which runs the loop op by op);
#  - compiled training on a subset of Fashion-MNIST learns (>= 50% after one
#    epoch on 3200 examples; chance is 10%), and `etch eval` agrees;
#  - `etch gradcheck` on a small configuration (T = 4) passes.
# The full recipe (3 epochs on all 60000 examples) is in the sample's header.
set -euo pipefail
ETCH=${ETCH:?} SRC=${ETCH_SOURCE_DIR:?}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
lstm=$SRC/samples/lstm.etch
fail() { echo "FAIL: $*" >&2; exit 1; }

for T in 7 28; do
  "$ETCH" build "$lstm" -D B=2 -D T=$T --train -o "$t/b$T" >/dev/null
done
s7=$(wc -c <"$t/b7/model.c") s28=$(wc -c <"$t/b28/model.c")
echo "model.c: $s7 bytes at T=7, $s28 bytes at T=28"
[ "$s28" -le $((s7 + 256)) ] || fail "emitted C grows with the sequence length: $s7 -> $s28 bytes"
bodies=$(grep -c '^static void net_loop[0-9]*(' "$t/b28/model.c")
[ "$bodies" -eq 2 ] || fail "expected 2 loop bodies (the step forward and backward) in model.c, found $bodies"
sig=$(grep -c 'sigmoid\|1 + exp' "$t/b28/model.c" || true)
echo "loop bodies: $bodies; sigmoid expressions: $sig"

"$ETCH" make-input "$lstm" -D B=2 --seed 3 -o "$t/in.npy"
"$ETCH" run "$lstm" -D B=2 --input "$t/in.npy" -o "$t/c.npy"
"$ETCH" run "$lstm" -D B=2 --input "$t/in.npy" -o "$t/e.npy" --eager
"$ETCH" compare "$t/c.npy" "$t/e.npy"

"$ETCH" gradcheck "$lstm" -D B=2 -D T=4 -D H=8 | tee "$t/gc.log"
worst=$(sed -n 's/^worst relative error: \([^ ]*\).*/\1/p' "$t/gc.log")
awk -v w="$worst" 'BEGIN { exit !(w < 1e-3) }' || fail "gradcheck worst relative error $worst"

data=/usr/share/datasets/fashion-mnist
[ -d "$data" ] || { echo "SKIP (training part): $data missing"; exit 0; }
"$ETCH" train "$lstm" --data "$data" --epochs 1 --limit 3200 -o "$t/one" | tee "$t/one.log"
acc=$(sed -n 's/^Test accuracy: \([0-9.]*\)%.*/\1/p' "$t/one.log")
[ -n "$acc" ] || fail "no accuracy reported"
awk -v a="$acc" 'BEGIN { exit !(a >= 50) }' || fail "accuracy $acc% after one epoch on 3200 examples"
"$ETCH" eval "$lstm" --weights "$t/one/Net.safetensors" --data "$data" >"$t/eval.log"
[ "$(grep '^Test accuracy' "$t/eval.log")" = "$(grep '^Test accuracy' "$t/one.log")" ] || fail "eval disagrees with training"
echo "train lstm: all checks passed"
