#!/usr/bin/env bash
# test_train_lstm.sh: samples/lstm.etch, the recurrence compiled as a loop:
#  - the emitted C does not grow with the sequence length: model.c for
#    T = 28 time steps is no larger than for T = 7 (beyond the digits of the
#    literals), for inference and for the training step, and holds the LSTM
#    cell (its scan body) once, not T times;
#  - `etch run` compiled equals the eager executor (which runs the loop op by op);
#  - compiled training on a subset of Fashion-MNIST learns (>= 35% after one
#    epoch on 3200 examples: 50 Adam steps; chance is 10%, measured 46%), and
#    `etch eval` agrees;
#  - `etch gradcheck` on a small configuration (T = 4) passes.
# The full recipe (3 epochs on all 60000 examples) is in the sample's header.
source "$(dirname "$0")/e2e_common.sh"
lstm=$SRC/samples/lstm.etch

for T in 7 28; do
  "$ETCH" build "$lstm" -D B=2 -D T=$T --train -o "$t/b$T" >/dev/null
done
s7=$(wc -c <"$t/b7/model.c") s28=$(wc -c <"$t/b28/model.c")
echo "model.c: $s7 bytes at T=7, $s28 bytes at T=28"
[ "$s28" -le $((s7 + 256)) ] || fail "emitted C grows with the sequence length: $s7 -> $s28 bytes"
# the cell is a loop body (forward in each of the 3 entries, backward in the 2
# training entries), the same functions at both lengths; no unrolled copies
for T in 7 28; do
  bodies[$T]=$(grep -c 'static void net_loop[0-9]*(' "$t/b$T/model.c" || true)
  sig[$T]=$(grep -c 'exp(-' "$t/b$T/model.c" || true)
done
echo "loop bodies: ${bodies[7]} / ${bodies[28]}; sigmoid evaluations in the code: ${sig[7]} / ${sig[28]}"
[ "${bodies[28]}" -eq 5 ] && [ "${bodies[7]}" -eq 5 ] || fail "expected 5 loop bodies at both lengths"
[ "${sig[28]}" -eq "${sig[7]}" ] || fail "the cell's code differs between T=7 and T=28"

"$ETCH" make-input "$lstm" -D B=2 --seed 3 -o "$t/in.npy"
"$ETCH" run "$lstm" -D B=2 --input "$t/in.npy" -o "$t/c.npy"
"$ETCH" run "$lstm" -D B=2 --input "$t/in.npy" -o "$t/e.npy" --eager
"$ETCH" compare "$t/c.npy" "$t/e.npy"

"$ETCH" gradcheck "$lstm" -D B=2 -D T=4 -D H=8 | tee "$t/gc.log"
worst=$(sed -n 's/^worst relative error: \([^ ]*\).*/\1/p' "$t/gc.log")
awk -v w="$worst" 'BEGIN { exit !(w < 1e-3) }' || fail "gradcheck worst relative error $worst"

data=/usr/share/datasets/fashion-mnist
[ -d "$data" ] || { echo "SKIP (training part): $data missing"; exit 0; }
# 50 steps and two passes over the 10,000 test images: most of this test's
# 240 s in the sanitizer half at -O0
emitted_code_at_least_O1
"$ETCH" train "$lstm" --data "$data" --epochs 1 --limit 3200 -o "$t/one" | tee "$t/one.log"
acc=$(sed -n 's/^Test accuracy: \([0-9.]*\)%.*/\1/p' "$t/one.log")
[ -n "$acc" ] || fail "no accuracy reported"
awk -v a="$acc" 'BEGIN { exit !(a >= 35) }' || fail "accuracy $acc% after one epoch on 3200 examples"
"$ETCH" eval "$lstm" --weights "$t/one/Net.safetensors" --data "$data" >"$t/eval.log"
[ "$(grep '^Test accuracy' "$t/eval.log")" = "$(grep '^Test accuracy' "$t/one.log")" ] || fail "eval disagrees with training"
echo "train lstm: all checks passed"
