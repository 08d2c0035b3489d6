#!/usr/bin/env bash
# test_train_samples_mt_vae.sh: the two samples with several outputs train a
# few steps on a slice of Fashion-MNIST (640 training images: 10 steps an
# epoch, 2 epochs; 64 test images), compiled with --cflags -O1 (quicker to build and run):
#  - samples/multitask.etch (class logits and a reconstruction from one trunk,
#    the two losses summed): the epoch loss falls, both reports come out,
#    test accuracy above chance (> 25% after 20 steps) and the reconstruction
#    grid is the 2-row one (242x62);
#  - samples/vae.etch (randn reparameterization, BCE + KL): the negative ELBO
#    falls, the reconstruction MSE is reported, and the grid has a third row
#    for the images decoded from the prior (242x92), a valid PNG.
# The cross-checks of a few steps against PyTorch are in torch_language.py.
source "$(dirname "$0")/e2e_common.sh"
need_fashion_mnist

png_size() { python3 -c 'import struct, sys
b = open(sys.argv[1], "rb").read(24)
assert b[:8] == b"\x89PNG\r\n\x1a\n" and b[12:16] == b"IHDR", "not a PNG"
print("%dx%d" % struct.unpack(">II", b[16:24]))' "$1"; }
# a small Fashion-MNIST: the first 640 training and 64 test images (IDX,
# uncompressed), so the evaluation is quick too
mkdir "$t/data"
python3 - "$data" "$t/data" <<'PY'
import gzip, os, struct, sys
src, dst = sys.argv[1:]
for split, n in (("train", 640), ("t10k", 64)):
    for kind, per in (("images-idx3", 784), ("labels-idx1", 1)):
        raw = gzip.open(os.path.join(src, f"{split}-{kind}-ubyte.gz")).read()
        head = 16 if per > 1 else 8
        hdr = bytearray(raw[:head])
        hdr[4:8] = struct.pack(">I", n)
        open(os.path.join(dst, f"{split}-{kind}-ubyte"), "wb").write(bytes(hdr) + raw[head:head + n * per])
PY
data=$t/data
# the epoch loss fell: epoch 2's below epoch 1's
falls() { awk '/^Epoch: 1,/ { a = $4 } /^Epoch: 2,/ { b = $4 } END { exit !(a != "" && b != "" && b < a) }' "$1"; }

"$ETCH" train "$SRC/samples/multitask.etch" --data "$data" --epochs 2 --cflags -O1 -o "$t/mt" >"$t/mt.log"
cat "$t/mt.log"
falls "$t/mt.log" || fail "multitask: the loss did not fall"
acc=$(sed -n 's/^Test accuracy: \([0-9.]*\)%.*/\1/p' "$t/mt.log")
[ -n "$acc" ] && awk -v a="$acc" 'BEGIN { exit !(a > 25) }' || fail "multitask: test accuracy '$acc'"
grep -q "^Test reconstruction MSE: 0\.0[0-9]* (64 examples)$" "$t/mt.log" || fail "multitask: no reconstruction MSE"
[ "$(png_size "$t/mt/reconstructions.png")" = 242x62 ] || fail "multitask: grid size"

"$ETCH" train "$SRC/samples/vae.etch" --data "$data" --epochs 2 --cflags -O1 -o "$t/vae" >"$t/vae.log"
cat "$t/vae.log"
falls "$t/vae.log" || fail "vae: the negative ELBO did not fall"
grep -q "^Test reconstruction MSE: 0\.[01][0-9]* (64 examples)$" "$t/vae.log" || fail "vae: no reconstruction MSE"
grep -q "^Test accuracy" "$t/vae.log" && fail "vae: the prior's samples were taken for logits"
grep -q "^Inputs (top), reconstructions and 1 more image output (one row each) written to $t/vae/reconstructions.png$" \
  "$t/vae.log" || fail "vae: grid line"
[ "$(png_size "$t/vae/reconstructions.png")" = 242x92 ] || fail "vae: grid size"
echo "multitask and vae samples: all checks passed"
