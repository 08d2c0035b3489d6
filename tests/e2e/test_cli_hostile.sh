#!/usr/bin/env bash
# test_cli_hostile.sh: hostile command lines and data files against the
# `etch` tool (issue 13): each must fail with exit status 1 and a message
# naming the file, the option and the numbers involved, leave no output file
# behind, and never crash (the suite also runs this under ASan+UBSan).
# Covered: make-input --idx with no images, zero-pixel images, a labels file
# and --index past the end or near 2^63; --sample, --threads, --seed beyond
# their ranges; more than 64 -D and -D with spaces; empty and missing option
# values; compare on infinities and NaN (equal infinities match, NaN matches
# NaN, NaN or inf against a number does not); train/eval data and weight
# files checked before compiling. No C compiler is run: it takes seconds.
source "$(dirname "$0")/e2e_common.sh"
mlp=$SRC/samples/mlp.etch


# expect_error expected-substring command...: exit 1 (not a crash), the message on stderr
expect_error() {
  local want=$1; shift
  set +e
  "$@" >"$t/stdout" 2>"$t/stderr"
  local rc=$?
  set -e
  [ $rc -eq 1 ] || { cat "$t/stderr" >&2; fail "exit status $rc (want 1) for: $*"; }
  grep -qF -- "$want" "$t/stderr" || { cat "$t/stderr" >&2; fail "missing '$want' for: $*"; }
}
no_file() { [ ! -e "$1" ] || fail "output $1 left behind"; }

# Data files written by hand: IDX (magic, dims big-endian, bytes) and .npy.
python3 - "$t" <<'EOF'
import struct, sys
t = sys.argv[1]
def idx(name, dims, fill=7):
    n = 1
    for d in dims: n *= d
    with open(f"{t}/{name}", "wb") as f:
        f.write(bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + bytes([fill]) * n)
idx("none.idx", [0, 28, 28])
idx("zeropix.idx", [10, 0, 28])
idx("three.idx", [3, 28, 28])
idx("labels.idx", [10])
def npy(name, descr, shape, data):
    h = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, "".join(f"{d}," for d in shape))
    h += " " * (63 - (10 + len(h)) % 64) + "\n"
    with open(f"{t}/{name}", "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + data)
inf, nan = float("inf"), float("nan")
f4 = lambda *v: struct.pack(f"<{len(v)}f", *v)
npy("inf.npy", "<f4", [4], f4(1, inf, -inf, 2))
npy("inf_flip.npy", "<f4", [4], f4(1, inf, inf, 2))
npy("inf_num.npy", "<f4", [4], f4(1, 3e38, -inf, 2))
npy("nan.npy", "<f4", [3], f4(nan, 1, 2))
npy("nan_num.npy", "<f4", [3], f4(0, 1, 2))
EOF
: >"$t/empty.npy"
mkdir "$t/adir" "$t/nodata"

# make-input --idx: every count checked before it divides or indexes
out=$t/in.npy
expect_error "none.idx: holds u8[0,28,28]: no images" "$ETCH" make-input "$mlp" -D B=1 --idx "$t/none.idx" -o "$out"
expect_error "zeropix.idx: holds u8[10,0,28]: images of zero pixels" \
  "$ETCH" make-input "$mlp" -D B=1 --idx "$t/zeropix.idx" -o "$out"
expect_error "labels.idx: holds u8[10], not images" "$ETCH" make-input "$mlp" -D B=1 --idx "$t/labels.idx" -o "$out"
expect_error "three.idx: --index 9223372036854775807 is out of range: the file has 3 images and input 'x' takes 1 from there (--index 0..2)" \
  "$ETCH" make-input "$mlp" -D B=1 --idx "$t/three.idx" --index 9223372036854775807 -o "$out"
expect_error "three.idx: --index 3 is out of range" "$ETCH" make-input "$mlp" -D B=1 --idx "$t/three.idx" --index 3 -o "$out"
expect_error "three.idx: --index 2 is out of range: the file has 3 images and input 'x' takes 2 from there (--index 0..1)" \
  "$ETCH" make-input "$mlp" -D B=2 --idx "$t/three.idx" --index 2 -o "$out"
expect_error "three.idx: input 'x' takes 4 images, the file has 3" \
  "$ETCH" make-input "$mlp" -D B=4 --idx "$t/three.idx" -o "$out"
expect_error "--index 99999999999999999999 is out of range: 0..9223372036854775807" \
  "$ETCH" make-input "$mlp" -D B=1 --idx "$t/three.idx" --index 99999999999999999999 -o "$out"
expect_error "--index N picks an image of --idx IMAGES, which is not given" "$ETCH" make-input "$mlp" --index 2 -o "$out"
no_file "$out"
"$ETCH" make-input "$mlp" -D B=1 --idx "$t/three.idx" --index 2 -o "$out" # the last image is fine
[ -s "$out" ] || fail "make-input --index 2 wrote nothing"
rm "$out"

# numbers beyond what the tool can honour: a clear range, not an abort
expect_error "--sample 99999999999 is out of range: 0..1000000" "$ETCH" run "$SRC/samples/gpt.etch" --sample 99999999999
expect_error "--threads 1000000 is out of range: 1..1024" "$ETCH" build "$mlp" --threads 1000000 -o "$t/b"
expect_error "--threads 0 is out of range: 1..1024" "$ETCH" bench "$mlp" --threads 0
expect_error "--digits 18 is out of range: 0..17 (a double has at most 17 significant digits)" \
  "$ETCH" train "$mlp" --data "$t" --digits 18
no_file "$t/b"
expect_error "'-3' is not a non-negative integer" "$ETCH" make-input "$mlp" --seed -3 -o "$out"
expect_error "'' is not a non-negative integer" "$ETCH" make-input "$mlp" --seed '' -o "$out"

# -D: the real limit, and what the user typed
defs=()
for i in $(seq 1 65); do defs+=(-D "C$i=1"); done
expect_error "too many -D definitions (at most 64)" "$ETCH" check "$mlp" "${defs[@]}"
expect_error "-D needs NAME=VALUE without spaces, got 'B= 4'" "$ETCH" check "$mlp" -D 'B= 4'
expect_error "-D needs NAME=VALUE without spaces, got ' B=4'" "$ETCH" check "$mlp" -D ' B=4'
expect_error "-D needs NAME=VALUE, got 'B'" "$ETCH" check "$mlp" -D B

# option values missing, empty or malformed; options where they do not apply
expect_error "option '--input' needs a value" "$ETCH" run "$mlp" -o "$out" --input
expect_error "option '--input' needs a value, got an empty one" "$ETCH" run "$mlp" --input '' -o "$out"
expect_error "option '-o' needs a value, got an empty one" "$ETCH" make-input "$mlp" -o ''
expect_error "option '--rtol' needs a value" "$ETCH" compare "$t/inf.npy" "$t/inf.npy" --rtol
expect_error "--rtol needs a non-negative number, got ''" "$ETCH" compare "$t/inf.npy" "$t/inf.npy" --rtol ''
expect_error "-O takes a level 0, 1 or 2, got '-O4'" "$ETCH" ir "$mlp" -O4
expect_error "option '--exe' takes no value" "$ETCH" build "$mlp" --exe=yes -o "$t/b"
expect_error "option '--grad' does not apply here" "$ETCH" build "$mlp" --grad -o "$t/b"
expect_error "option '--argmax' does not apply here" "$ETCH" compare "$t/inf.npy" "$t/inf.npy" --argmax
expect_error "unknown option '--bogus'" "$ETCH" show "$t/inf.npy" --bogus
expect_error "compare takes two .npy files" "$ETCH" compare "$t/inf.npy"
expect_error "empty.npy: truncated" "$ETCH" show "$t/empty.npy"
expect_error "adir: is a directory" "$ETCH" compare "$t/inf.npy" "$t/adir"
no_file "$out"

# compare: equal infinities and NaN at the same place match; anything else does not
"$ETCH" compare "$t/inf.npy" "$t/inf.npy" >"$t/cmp" || fail "compare A A with infinities reports a mismatch"
grep -qF "0 beyond rtol" "$t/cmp" || fail "compare A A: $(cat "$t/cmp")"
"$ETCH" compare --rtol 0 "$t/nan.npy" "$t/nan.npy" >/dev/null || fail "compare A A with a NaN reports a mismatch"
if "$ETCH" compare "$t/inf.npy" "$t/inf_flip.npy" >"$t/cmp"; then fail "compare accepted -inf vs inf"; fi
grep -qF "1 beyond rtol" "$t/cmp" || fail "compare -inf vs inf: $(cat "$t/cmp")"
if "$ETCH" compare "$t/inf.npy" "$t/inf_num.npy" >/dev/null; then fail "compare accepted inf vs 3e38"; fi
if "$ETCH" compare "$t/nan.npy" "$t/nan_num.npy" >"$t/cmp"; then fail "compare accepted NaN vs 0"; fi
grep -qF "1 beyond rtol" "$t/cmp" || fail "compare NaN vs 0: $(cat "$t/cmp")"

# train and eval: inputs checked before anything is compiled or written
expect_error "--data $t/nodata: no readable t10k-images-idx3-ubyte (or t10k-images-idx3-ubyte.gz) in the folder" \
  "$ETCH" train "$mlp" --data "$t/nodata" -o "$t/tr"
expect_error "--data $t/nodata: no readable t10k-images-idx3-ubyte" \
  "$ETCH" eval "$mlp" --weights "$t/inf.npy" --data "$t/nodata"
expect_error "--init $t/missing.safetensors: No such file or directory" \
  "$ETCH" train "$mlp" --data "$t/nodata" --init "$t/missing.safetensors" -o "$t/tr"
expect_error "--resume $t/adir: not a regular file" "$ETCH" train "$mlp" --data "$t/nodata" --resume "$t/adir" -o "$t/tr"
expect_error "--text $t/empty.npy: empty corpus" "$ETCH" train "$SRC/samples/gpt.etch" --text "$t/empty.npy" -o "$t/tr"
no_file "$t/tr"
echo "cli hostile: all checks passed"
