#!/usr/bin/env bash
# test_train_lenet.sh: compiled training of samples/lenet.etch (convolution,
# pooling and their gradient kernels in a real training step) on a subset of
# Fashion-MNIST, quick enough for every test run:
#  - one epoch on 3200 examples must reach clearly better than chance (>= 50%;
#    chance is 10%; measured about 70%);
#  - `etch eval` on the written weights reproduces the reported accuracy;
#  - `etch gradcheck` finds the compiled float32 gradients within 1e-4 of
#    float64 finite differences (measured: about 1e-5).
# The full recipe (5 epochs on all 60000 examples) is in the sample's header.
source "$(dirname "$0")/e2e_common.sh"
need_fashion_mnist
emitted_code_at_least_O1 # convolutions over 3,200 + 2 x 10,000 images: 119 s of the -O0 half
lenet=$SRC/samples/lenet.etch

"$ETCH" train "$lenet" --data "$data" --epochs 1 --limit 3200 -o "$t/one" | tee "$t/one.log"
acc=$(sed -n 's/^Test accuracy: \([0-9.]*\)%.*/\1/p' "$t/one.log")
[ -n "$acc" ] || fail "no accuracy reported"
awk -v a="$acc" 'BEGIN { exit !(a >= 50) }' || fail "accuracy $acc% after one epoch on 3200 examples"
[ -f "$t/one/Net.safetensors" ] || fail "no weights written"

"$ETCH" eval "$lenet" --weights "$t/one/Net.safetensors" --data "$data" >"$t/eval.log"
[ "$(grep '^Test accuracy' "$t/eval.log")" = "$(grep '^Test accuracy' "$t/one.log")" ] || fail "eval disagrees with training"

"$ETCH" gradcheck "$lenet" -D B=2 | tee "$t/gc.log"
worst=$(sed -n 's/^worst relative error: \([^ ]*\).*/\1/p' "$t/gc.log")
awk -v w="$worst" 'BEGIN { exit !(w < 1e-4) }' || fail "gradcheck worst relative error $worst"
echo "train lenet: all checks passed"
