#!/usr/bin/env bash
# test_train_gpt.sh: samples/gpt.etch (a 2-layer decoder-only transformer)
# trained as a byte-level language model on the Debian `fortunes` corpus
# (skips with 77 when it is not installed):
#  - 200 steps at batch 8 bring the mean loss from ~5.5 nats/byte (uniform
#    over 256 bytes) clearly down: the second "epoch" (steps 101-200) below 3.0;
#    the held-out loss on the last 10% of the corpus is reported, and
#    `etch eval --text` on the written weights reports the same number;
#  - the steps' windows depend only on (seed, step): 100 steps, then a resume
#    from that checkpoint for 100 more, gives the uninterrupted run's loss
#    (printed with --digits 6);
#  - `etch run --sample 50` prints 50 bytes, the same for the same seed;
#  - the weights are named as torch.nn.ModuleList names a module list
#    (blocks.0.*, blocks.1.*), exactly the 28 tensors a PyTorch GPT of the
#    same modules has;
#  - a missing corpus and an empty one are clear errors with exit status 1.
source "$(dirname "$0")/e2e_common.sh"
# 400 steps and held-out passes: 13 minutes of CI at the sanitizer half's -O0
emitted_code_at_least_O1
fortunes=/usr/share/games/fortunes
[ -f "$fortunes/fortunes" ] || { echo "SKIP: $fortunes missing (apt-get install fortunes)"; exit 77; }
gpt=$SRC/samples/gpt.etch
# the cookie files themselves, not their strfile indexes (.dat) or UTF-8 links (.u8)
find "$fortunes" -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' | sort | xargs cat >"$t/corpus.txt"

"$ETCH" train "$gpt" -D B=8 --text "$t/corpus.txt" --steps 200 --digits 6 -o "$t/a" | tee "$t/a.log"
first=$(sed -n 's/^Epoch: 1, Loss: //p' "$t/a.log")
second=$(sed -n 's/^Epoch: 2, Loss: //p' "$t/a.log")
[ -n "$first" ] && [ -n "$second" ] || fail "no per-epoch loss lines"
awk -v l="$second" 'BEGIN { exit !(l < 3.0) }' || fail "loss $second after 200 steps (expected < 3.0)"
grep -q '^Held-out loss: [0-9.]* nats/byte' "$t/a.log" || fail "no held-out loss"
[ -f "$t/a/GPT.safetensors" ] && [ -f "$t/a/checkpoint.safetensors" ] || fail "missing output files"
# the safetensors header: 8 bytes of length, then JSON naming every tensor
names=$(python3 -c 'import json, struct, sys
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]
print(" ".join(sorted(k for k in json.loads(f.read(n)) if k != "__metadata__")))' "$t/a/GPT.safetensors")
want=""
for i in 0 1; do
  for p in self_attn.in_proj_weight self_attn.in_proj_bias self_attn.out_proj.weight self_attn.out_proj.bias \
           linear1.weight linear1.bias linear2.weight linear2.bias norm1.weight norm1.bias norm2.weight norm2.bias; do
    want="$want blocks.$i.$p"
  done
done
want=$(echo $want head.weight head.bias ln_f.weight ln_f.bias pos_emb.weight tok_emb.weight | tr ' ' '\n' | LC_ALL=C sort | tr '\n' ' ')
[ "$names " = "$want" ] || fail "weight names: $names (expected $want)"
"$ETCH" eval "$gpt" -D B=8 --weights "$t/a/GPT.safetensors" --text "$t/corpus.txt" >"$t/eval.log"
[ "$(grep '^Held-out loss' "$t/eval.log")" = "$(grep '^Held-out loss' "$t/a.log")" ] ||
  fail "eval --text disagrees with training: $(cat "$t/eval.log")"

prog=$t/a/build/GPT-train
mkdir -p "$t/b"
"$prog" --text "$t/corpus.txt" --init "$t/a/build/init.safetensors" --steps 100 --digits 6 -o "$t/b" --name GPT >"$t/b.log"
"$prog" --text "$t/corpus.txt" --resume "$t/b/checkpoint.safetensors" --steps 100 --digits 6 -o "$t/b" --name GPT >"$t/c.log"
grep -q '^Epoch: 1,' "$t/c.log" && fail "resume repeated epoch 1"
[ "$(grep '^Epoch: 2' "$t/a.log")" = "$(grep '^Epoch: 2' "$t/c.log")" ] ||
  fail "resumed run differs: $(grep '^Epoch: 2' "$t/a.log") vs $(grep '^Epoch: 2' "$t/c.log")"

w=$t/a/GPT.safetensors
"$ETCH" run "$gpt" --sample 50 --weights "$w" --seed 7 >"$t/s1"
"$ETCH" run "$gpt" --sample 50 --weights "$w" --seed 7 >"$t/s2"
"$ETCH" run "$gpt" --sample 50 --weights "$w" --seed 8 --prompt "Q: " >"$t/s3"
[ "$(wc -c <"$t/s1")" -eq 50 ] || fail "--sample 50 printed $(wc -c <"$t/s1") bytes"
cmp -s "$t/s1" "$t/s2" || fail "sampling with the same seed differs"
cmp -s "$t/s1" "$t/s3" && fail "a different seed and prompt gave the same sample"
echo "sample: $(tr -c '[:print:]' ' ' <"$t/s1")"

set +e
"$ETCH" train "$gpt" --text "$t/nothing.txt" --steps 1 -o "$t/bad" 2>"$t/err1"
rc1=$?
: >"$t/empty.txt"
"$ETCH" train "$gpt" --text "$t/empty.txt" --steps 1 -o "$t/bad" 2>"$t/err2"
rc2=$?
set -e
[ $rc1 -eq 1 ] && grep -q "nothing.txt" "$t/err1" || { cat "$t/err1"; fail "missing corpus: exit $rc1"; }
[ $rc2 -eq 1 ] && grep -q "empty corpus" "$t/err2" || { cat "$t/err2"; fail "empty corpus: exit $rc2"; }
echo "train gpt: all checks passed"
