#!/usr/bin/env bash
# test_train_mlp.sh: compiled training of samples/mlp.etch on a subset of
# Fashion-MNIST. A broken backward pass or optimizer fails here:
#  - one epoch on 6400 examples must reach clearly better than chance (>= 60%;
#    chance is 10%);
#  - resuming from the epoch-1 checkpoint for a second epoch gives exactly the
#    weights of an uninterrupted two-epoch run (bit for bit): both runs use
#    --seed 3, and the resumed one, without --seed, takes the seed from the
#    checkpoint (it used to fall back to seed 0 and shuffle differently);
#  - the epoch line shows 3 decimals; OUTDIR/loss.png is a 480x320 PNG;
#  - `etch eval` on the written weights reproduces the reported accuracy;
#  - `etch gradcheck` finds compiled gradients within 1e-4 of float64 finite
#    differences (measured: about 1e-6);
#  - a missing data folder is a clear error with exit status 1.
set -euo pipefail
ETCH=${ETCH:?} SRC=${ETCH_SOURCE_DIR:?}
data=/usr/share/datasets/fashion-mnist
[ -d "$data" ] || { echo "SKIP: $data missing (apt-get install dataset-fashion-mnist)"; exit 77; }
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mlp=$SRC/samples/mlp.etch
fail() { echo "FAIL: $*" >&2; exit 1; }

"$ETCH" train "$mlp" --data "$data" --epochs 1 --limit 6400 --seed 3 -o "$t/one" | tee "$t/one.log"
acc=$(sed -n 's/^Test accuracy: \([0-9.]*\)%.*/\1/p' "$t/one.log")
[ -n "$acc" ] || fail "no accuracy reported"
awk -v a="$acc" 'BEGIN { exit !(a >= 60) }' || fail "accuracy $acc% after one epoch on 6400 examples"
grep -qE '^Epoch: 1, Loss: [0-9]+\.[0-9]{3}$' "$t/one.log" || fail "no per-epoch loss line with 3 decimals"
[ -f "$t/one/Net.safetensors" ] && [ -f "$t/one/checkpoint.safetensors" ] || fail "missing output files"
[ "$(head -c 24 "$t/one/loss.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a0000000d49484452000001e000000140" ] ||
  fail "loss.png is not a 480x320 PNG"
[ -z "$(ls "$t/one" | grep tmp)" ] || fail "temporary files left behind"

"$ETCH" train "$mlp" --data "$data" --epochs 2 --limit 6400 --seed 3 -o "$t/two" >"$t/two.log"
"$ETCH" train "$mlp" --data "$data" --epochs 2 --limit 6400 --resume "$t/one/checkpoint.safetensors" -o "$t/res" >"$t/res.log"
cmp -s "$t/two/Net.safetensors" "$t/res/Net.safetensors" || fail "resumed weights differ from the uninterrupted run's"
grep -q '^Epoch: 1,' "$t/res.log" && fail "resume repeated epoch 1"
grep -q '^Epoch: 2,' "$t/res.log" || fail "resume did not run epoch 2"
[ "$(grep '^Test accuracy' "$t/two.log")" = "$(grep '^Test accuracy' "$t/res.log")" ] ||
  fail "resumed run differs: $(grep '^Test' "$t/two.log") vs $(grep '^Test' "$t/res.log")"
[ "$(grep '^Epoch: 2' "$t/two.log")" = "$(grep '^Epoch: 2' "$t/res.log")" ] || fail "resumed epoch-2 loss differs"

"$ETCH" eval "$mlp" --weights "$t/one/Net.safetensors" --data "$data" >"$t/eval.log"
[ "$(grep '^Test accuracy' "$t/eval.log")" = "$(grep '^Test accuracy' "$t/one.log")" ] || fail "eval disagrees with training"

"$ETCH" gradcheck "$mlp" -D B=4 | tee "$t/gc.log"
worst=$(sed -n 's/^worst relative error: \([^ ]*\).*/\1/p' "$t/gc.log")
awk -v w="$worst" 'BEGIN { exit !(w < 1e-4) }' || fail "gradcheck worst relative error $worst"

set +e
"$ETCH" train "$mlp" --data "$t/nowhere" --steps 1 -o "$t/bad" 2>"$t/err"
rc=$?
set -e
[ $rc -eq 1 ] || fail "missing data: exit status $rc"
grep -q "nowhere" "$t/err" || { cat "$t/err"; fail "missing data: message does not name the folder"; }
echo "train mlp: all checks passed"
