#!/usr/bin/env bash
# test_train_gan.sh: samples/gan.etch, a train block with two named steps (d
# and g) alternating on every batch, trains through `etch train`: each epoch
# prints "Epoch: N, Loss d: X.XXX, Loss g: X.XXX" and writes the generator's
# samples as a 242x242 PNG grid (64 images of 28x28, 8 a row); a run resumed
# from the first epoch's checkpoint ends with the same weights, optimizer
# state and step counters as an uninterrupted one (each step keeps its own
# counter: optimizer.d.step and optimizer.g.step); `etch eval --png` of the
# trained weights draws the last epoch's grid again (the training program's
# --eval, which etch eval runs); on a terminal the progress line shows both
# losses; named steps also train a byte model on --text; `etch bench` has
# rows for both steps. A few batches only; the
# program is compiled once, at -O1 (the compiler's time dominates such a
# short run), and run directly for the other runs.
source "$(dirname "$0")/e2e_common.sh"
need_fashion_mnist
gan=$SRC/samples/gan.etch
# etch train compiles the training program once (one epoch, into half/build/);
# the other runs call that program directly, as etch train does
"$ETCH" train "$gan" --data "$data" --limit 256 --cflags -O1 --seed 5 --epochs 1 -o "$t/half" >/dev/null
prog=$t/half/build/GAN-train
mkdir "$t/full" "$t/resumed"
run=(--data "$data" --limit 256 --name GAN)   # 4 batches of 64 an epoch
"$prog" "${run[@]}" --init "$t/half/build/init.safetensors" --seed 5 --epochs 2 -o "$t/full" >"$t/full.log"
cat "$t/full.log"
for n in 1 2; do
  grep -Eq "^Epoch: $n, Loss d: [0-9]+\.[0-9]{3}, Loss g: [0-9]+\.[0-9]{3}\$" "$t/full.log" || fail "no epoch $n line"
  png=$t/full/samples-$n.png
  [ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "samples-$n.png: not a PNG"
  [ "$(head -c 24 "$png" | tail -c 8 | od -An -tx1 | tr -d ' \n')" = "000000f2000000f2" ] || fail "samples-$n.png: size"
done
cmp -s "$t/full/samples-1.png" "$t/full/samples-2.png" && fail "the generator did not change between epochs"
grep -q "^Test" "$t/full.log" && fail "a generator has no test report"

# on a terminal (script(1) gives it one) the progress line shows both steps' running losses
mkdir "$t/tty"
script -qec "'$prog' --data '$data' --limit 128 --name GAN --init '$t/half/build/init.safetensors' --epochs 1 -o '$t/tty'" \
  /dev/null >"$t/tty.log"
grep -aEq 'Epoch 1 \[=+>?\] 2/2 loss d [0-9]+\.[0-9]{4}, g [0-9]+\.[0-9]{4}' "$t/tty.log" ||
  fail "no progress line with both losses: $(tr '\r' '\n' <"$t/tty.log" | head -3)"

# resumed from the first epoch's checkpoint (its seed too): the same checkpoint bit for bit
"$prog" "${run[@]}" --resume "$t/half/checkpoint.safetensors" --epochs 2 -o "$t/resumed" >"$t/resumed.log"
grep -q "^Epoch: 2, Loss d" "$t/resumed.log" || fail "the resumed run printed no second epoch"
cmp -s "$t/full/checkpoint.safetensors" "$t/resumed/checkpoint.safetensors" || fail "resumed checkpoint differs"
for c in optimizer.d.step optimizer.g.step; do
  grep -aq "\"$c\"" "$t/full/checkpoint.safetensors" || fail "no $c in the checkpoint"
done

"$prog" --eval --data "$data" --weights "$t/full/GAN.safetensors" --png "$t/grid.png" >"$t/eval.log"
cmp -s "$t/grid.png" "$t/full/samples-2.png" || fail "eval's samples differ from the last epoch's"
# named steps train on --text too (a byte bigram model; the corpus: etch's own docs)
cat "$SRC"/docs/*.md >"$t/corpus.txt"
"$ETCH" train "$SRC/tests/e2e/models/bigram_steps.etch" --text "$t/corpus.txt" --steps 200 --cflags -O1 -o "$t/text" \
  >"$t/text.log"
for n in 1 2; do
  grep -Eq "^Epoch: $n, Loss e: [0-9]+\.[0-9]{3}, Loss h: [0-9]+\.[0-9]{3}\$" "$t/text.log" || fail "text: no epoch $n line"
done
awk '/^Epoch: 1,/ { e1 = $5; h1 = $8 } /^Epoch: 2,/ { e2 = $5; h2 = $8 }
     END { exit !(e2 + 0 < e1 + 0 && h2 + 0 < h1 + 0) }' "$t/text.log" || fail "text: losses did not fall: $(cat "$t/text.log")"
grep -q "^Held-out loss: " "$t/text.log" || fail "text: no held-out loss"

# etch bench times every named step, eager and compiled
"$ETCH" bench "$gan" -D B=8 >"$t/bench.log" || { cat "$t/bench.log"; fail "bench failed"; }
for st in d g; do
  for mode in eager -O0 -O2; do
    grep -Eq "^train step $st +$mode +[0-9.]+ us " "$t/bench.log" || fail "bench has no '$mode' row for step $st: $(cat "$t/bench.log")"
  done
done
echo "gan: all checks passed"
