#!/usr/bin/env bash
# test_multi_output.sh: a forward returning two tensors (class logits f32[B, 10]
# and a reconstruction f32[B, 784] of its input) through every command that
# runs a forward. The training program's evaluation used to pass one output
# pointer and died with SIGSEGV; now:
#  - `etch train` (20 steps) reports both test accuracy (from the logits) and
#    reconstruction MSE (from the decoder) and writes reconstructions.png and
#    loss.png (480x320 PNG); the epoch line has 3 decimals, --digits more; the
#    progress line goes to a terminal's stderr only (never into a log);
#  - `etch eval` reproduces both lines, also for the same model with its
#    outputs in the other order (outputs are picked by shape, not position);
#  - `etch run` writes one .npy per output (-o twice) or one .npz (-o X.npz,
#    members out0, out1), compiled and --eager, with the right shapes, the two
#    paths agreeing within rtol; the .npz is a valid zip whose members are the
#    .npy files (and numpy.load reads it, when numpy is installed);
#  - the `etch build --exe` program takes one path per output or one .npz and
#    writes the same bytes as `etch run`;
#  - `etch bench` times the model (and, with the llvm backend built, its
#    JIT-compiled forward, with both backends' compile times).
source "$(dirname "$0")/e2e_common.sh"
need_fashion_mnist

model() { # file first-output second-output
  cat >"$1" <<EOF
const B = 8
model Net {
  fc1 = Linear(784, 32)
  head = Linear(32, 10)
  dec = Linear(32, 784)
  fn forward(x: f32[B, 1, 28, 28]) -> ($2, $3) {
    let h = relu(fc1(flatten(x, 1)))
    return $4, $5
  }
}
train {
  loss = cross_entropy(Net(x)[$6], y) + mse(Net(x)[$7], flatten(x, 1))
  optimizer = sgd(lr = 0.01)
  batch = B
  epochs = 1
}
EOF
}
model "$t/mt.etch" "f32[B, 10]" "f32[B, 784]" "head(h)" "dec(h)" 0 1
model "$t/swapped.etch" "f32[B, 784]" "f32[B, 10]" "dec(h)" "head(h)" 1 0

# PNG signature and the IHDR's width and height
png_size() { python3 -c 'import struct, sys
b = open(sys.argv[1], "rb").read(24)
assert b[:8] == b"\x89PNG\r\n\x1a\n" and b[12:16] == b"IHDR", "not a PNG"
print("%dx%d" % struct.unpack(">II", b[16:24]))' "$1"; }

"$ETCH" train "$t/mt.etch" --data "$data" --steps 20 -o "$t/out" >"$t/train.log" 2>"$t/train.err" ||
  { cat "$t/train.log" "$t/train.err"; fail "training a two-output model failed"; }
cat "$t/train.log"
grep -qE '^Epoch: 1, Loss: [0-9]+\.[0-9]{3}$' "$t/train.log" || fail "no 'Epoch: 1, Loss: X.XXX' line"
grep -q $'\r' "$t/train.log" "$t/train.err" && fail "a progress line went into a log"
acc=$(grep '^Test accuracy: ' "$t/train.log") || fail "no accuracy from the logits output"
mse=$(grep '^Test reconstruction MSE: ' "$t/train.log") || fail "no MSE from the reconstruction output"
[ "$(png_size "$t/out/reconstructions.png")" = "242x62" ] || fail "reconstructions.png: $(png_size "$t/out/reconstructions.png")"
[ "$(png_size "$t/out/loss.png")" = "480x320" ] || fail "loss.png: $(png_size "$t/out/loss.png")"

"$ETCH" eval "$t/mt.etch" --weights "$t/out/Net.safetensors" --data "$data" >"$t/eval.log"
[ "$(grep '^Test' "$t/eval.log")" = "$(printf '%s\n%s' "$acc" "$mse")" ] || { cat "$t/eval.log"; fail "eval disagrees"; }
"$ETCH" eval "$t/swapped.etch" --weights "$t/out/Net.safetensors" --data "$data" >"$t/swapped.log"
[ "$(grep '^Test' "$t/swapped.log")" = "$(printf '%s\n%s' "$acc" "$mse")" ] ||
  { cat "$t/swapped.log"; fail "eval of the outputs in the other order disagrees"; }

# the training program directly: --digits, and the progress line on a terminal
prog=$t/out/build/Net-train
mkdir -p "$t/d"
"$prog" --data "$data" --init "$t/out/build/init.safetensors" --limit 160 --digits 6 -o "$t/d" --name Net >"$t/d.log"
grep -qE '^Epoch: 1, Loss: [0-9]+\.[0-9]{6}$' "$t/d.log" || { cat "$t/d.log"; fail "--digits 6 not honoured"; }
if command -v script >/dev/null; then
  script -qec "'$prog' --data '$data' --init '$t/out/build/init.safetensors' --limit 160 -o '$t/d' --name Net" /dev/null \
    >"$t/tty.log" </dev/null || fail "training under a terminal failed"
  grep -qaE $'\rEpoch 1 \\[=+>? *\\] 20/20 loss [0-9.]+' "$t/tty.log" || { cat -v "$t/tty.log"; fail "no progress line on a terminal"; }
  grep -qaE 'Epoch: 1, Loss: [0-9]+\.[0-9]{3}' <(tr '\r' '\n' <"$t/tty.log") || fail "no epoch line on a terminal"
fi

# etch run: per-output .npy files and one .npz, compiled and eager
w=$t/out/Net.safetensors
"$ETCH" make-input "$t/mt.etch" -o "$t/x.npy" --idx "$data/t10k-images-idx3-ubyte.gz" --index 0
"$ETCH" run "$t/mt.etch" --weights "$w" --input "$t/x.npy" -o "$t/c0.npy" -o "$t/c1.npy"
"$ETCH" run "$t/mt.etch" --weights "$w" --input "$t/x.npy" -o "$t/c.npz"
"$ETCH" run "$t/mt.etch" --weights "$w" --input "$t/x.npy" -o "$t/e0.npy" -o "$t/e1.npy" --eager
"$ETCH" run "$t/mt.etch" --weights "$w" --input "$t/x.npy" -o "$t/e.npz" --eager
"$ETCH" compare "$t/c0.npy" "$t/e0.npy"
"$ETCH" compare "$t/c1.npy" "$t/e1.npy"
python3 - "$t" <<'EOF'
import ast, sys, zipfile
t = sys.argv[1]
def shape(b):  # the shape in a .npy header
    return ast.literal_eval(b[10:10 + int.from_bytes(b[8:10], "little")].decode())["shape"]
for kind in ("c", "e"):
    z = zipfile.ZipFile(f"{t}/{kind}.npz")
    assert z.namelist() == ["out0.npy", "out1.npy"], z.namelist()
    assert z.testzip() is None  # every member's CRC-32 checks out
    for i, want in enumerate([(8, 10), (8, 784)]):
        m = z.read(f"out{i}.npy")
        assert m == open(f"{t}/{kind}{i}.npy", "rb").read(), f"{kind}.npz out{i} differs from {kind}{i}.npy"
        assert shape(m) == want, (kind, i, shape(m))
try:
    import numpy as np
except ImportError:
    print("numpy not installed: npz checked with zipfile only")
    sys.exit(0)
f = np.load(f"{t}/c.npz")
assert f["out0"].shape == (8, 10) and f["out1"].shape == (8, 784)
assert (f["out1"] == np.load(f"{t}/c1.npy")).all()
print("numpy.load reads the .npz")
EOF

# the standalone program: one path per output, or one .npz
"$ETCH" build "$t/mt.etch" --exe --weights "$w" -o "$t/exe" >/dev/null
"$t/exe/Net" --weights "$t/exe/Net.safetensors" "$t/x.npy" "$t/p0.npy" "$t/p1.npy"
"$t/exe/Net" --weights "$t/exe/Net.safetensors" "$t/x.npy" "$t/p.npz"
cmp "$t/p0.npy" "$t/c0.npy" && cmp "$t/p1.npy" "$t/c1.npy" && cmp "$t/p.npz" "$t/c.npz" ||
  fail "the --exe program's outputs differ from etch run's"
set +e
"$t/exe/Net" --weights "$t/exe/Net.safetensors" "$t/x.npy" "$t/p0.npy" 2>"$t/usage"
rc=$?
set -e
[ $rc -eq 2 ] && grep -qF "x.npy (OUT0.npy OUT1.npy | OUT.npz)" "$t/usage" || { cat "$t/usage"; fail "one .npy for two outputs: exit $rc"; }

# with the llvm backend built, bench also times its JIT-compiled forward (both outputs)
llvm=()
[ ! -f "${ETCH_BINARY_DIR:?}/libetch_llvm.so" ] || llvm=(--backend llvm)
"$ETCH" bench "$t/mt.etch" "${llvm[@]}" >"$t/bench.log" || { cat "$t/bench.log"; fail "bench failed"; }
grep -q '^train step ' "$t/bench.log" || fail "bench did not time the train step"
if [ ${#llvm[@]} -gt 0 ]; then
  grep -Eq '^inference +llvm +[0-9.]+ us ' "$t/bench.log" || fail "bench --backend llvm has no llvm row: $(cat "$t/bench.log")"
  grep -Eq '^compile: -O2 [0-9]+ ms .*, llvm [0-9]+ ms ' "$t/bench.log" || fail "bench --backend llvm gave no compile times"
fi
echo "multi-output: all checks passed"
