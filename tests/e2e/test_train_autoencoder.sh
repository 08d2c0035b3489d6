#!/usr/bin/env bash
# test_train_autoencoder.sh: samples/autoencoder.etch trains (one epoch on
# 6400 examples) to a test reconstruction MSE well below that of predicting
# the mean pixel (about 0.1 for Fashion-MNIST; required: < 0.05), writes the
# PNG grid of inputs and reconstructions, and `etch eval --png` reproduces
# the same MSE from the written weights.
source "$(dirname "$0")/e2e_common.sh"
need_fashion_mnist
ae=$SRC/samples/autoencoder.etch

"$ETCH" train "$ae" --data "$data" --epochs 1 --limit 6400 -o "$t/ae" | tee "$t/log"
mse=$(sed -n 's/^Test reconstruction MSE: \([0-9.]*\).*/\1/p' "$t/log")
[ -n "$mse" ] || fail "no reconstruction MSE reported"
awk -v m="$mse" 'BEGIN { exit !(m < 0.05) }' || fail "reconstruction MSE $mse"
# a PNG: the 8-byte signature, then an IHDR chunk of a 242x62 grid
[ "$(head -c 8 "$t/ae/reconstructions.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "not a PNG"
[ "$(head -c 24 "$t/ae/reconstructions.png" | tail -c 8 | od -An -tx1 | tr -d ' \n')" = "000000f20000003e" ] ||
  fail "unexpected PNG size"
"$ETCH" eval "$ae" --weights "$t/ae/AE.safetensors" --data "$data" --png "$t/grid.png" >"$t/eval.log"
[ "$(grep '^Test reconstruction' "$t/eval.log")" = "$(grep '^Test reconstruction' "$t/log")" ] || fail "eval disagrees"
cmp -s "$t/grid.png" "$t/ae/reconstructions.png" || fail "eval's grid differs from training's"
echo "autoencoder: all checks passed"
