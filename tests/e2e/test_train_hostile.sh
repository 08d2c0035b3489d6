#!/usr/bin/env bash
# test_train_hostile.sh: the training program against hostile files and
# interruptions (issue 13), on samples/mlp.etch with B=4 and 8 tiny images:
#  - a checkpoint whose optimizer.step is negative, fractional, NaN, infinite
#    or beyond the run is refused on --resume, naming the file and the value
#    (it used to read out of bounds or loop for ever);
#  - labels outside the model's classes (255 in the test split, 200 in the
#    training split) are refused when loaded, naming file, index and value
#    (`etch eval` runs this program's --eval: it printed a wrong NLL);
#  - error exits free what they loaded (LeakSanitizer: the program is built
#    with sanitizers when ETCH_SANITIZE is on, and a leak exits 23, not 1);
#  - the checkpoint keeps the seed (metadata "seed"): a resume without --seed
#    ends bit-identical to an uninterrupted run with --seed 5; a different
#    --seed is used, with a warning; a seed that is not an integer is refused;
#  - temp files of killed runs (ours, dead PID) are removed at start; a
#    SIGTERM during a checkpoint write (fsync delayed by strace) still leaves
#    a whole checkpoint and no temp file; the end of a run writes the
#    checkpoint once.
source "$(dirname "$0")/e2e_common.sh"
mlp=$SRC/samples/mlp.etch

# IDX files: DIR with N images of 28x28 per split; labels i % 10 except
# BAD_SPLIT's label BAD_INDEX, which is BAD_VALUE.
make_idx() { # dir [bad_split bad_index bad_value]
  python3 - "$@" <<'EOF'
import os, struct, sys
d = sys.argv[1]; os.makedirs(d, exist_ok=True)
bad = (sys.argv[2], int(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) > 2 else None
for split in ("train", "t10k"):
    n = 8
    labels = bytearray(i % 10 for i in range(n))
    if bad and bad[0] == split: labels[bad[1]] = bad[2]
    img = bytes((i * 37 + k * 11) % 256 for i in range(n) for k in range(784))
    open(f"{d}/{split}-images-idx3-ubyte", "wb").write(struct.pack(">BBBBIII", 0, 0, 8, 3, n, 28, 28) + img)
    open(f"{d}/{split}-labels-idx1-ubyte", "wb").write(struct.pack(">BBBBI", 0, 0, 8, 1, n) + bytes(labels))
EOF
}
make_idx "$t/data"
mkdir -p "$t/r" "$t/bl" "$t/once" # the program writes into existing folders (etch train makes them)

cflags="-O1 -Wall -Wextra -Werror"
# a sanitizer report exits 23, never the 1 of a clean error
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=23 UBSAN_OPTIONS=${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}exitcode=23
case ${ETCH_SANITIZE:-} in ON|on|1|TRUE|true|YES|yes)
  cflags="$cflags -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer";;
esac
"$ETCH" train "$mlp" -D B=4 --data "$t/data" --epochs 1 --cflags "$cflags" -o "$t/a" >"$t/a.log"
prog=$t/a/build/Net-train
init=$t/a/build/init.safetensors
[ -x "$prog" ] && [ -f "$t/a/checkpoint.safetensors" ] || fail "no training program or checkpoint"

expect_error() { # expected-substring command...
  local want=$1; shift
  set +e
  timeout 60 "$@" >"$t/stdout" 2>"$t/stderr"
  local rc=$?
  set -e
  [ $rc -eq 1 ] || { cat "$t/stderr" >&2; fail "exit status $rc (want 1) for: $*"; }
  ! grep -q 'Sanitizer' "$t/stderr" || { cat "$t/stderr" >&2; fail "sanitizer report for: $*"; }
  grep -qF -- "$want" "$t/stderr" || { cat "$t/stderr" >&2; fail "missing '$want' for: $*"; }
}

# optimizer.step (an f64 scalar in the checkpoint) patched in place
set_step() { # in out value
  python3 - "$@" <<'EOF'
import json, struct, sys
src, dst, v = sys.argv[1], sys.argv[2], float(sys.argv[3])
b = bytearray(open(src, "rb").read())
n = struct.unpack("<Q", b[:8])[0]
e = json.loads(b[8:8 + n])["optimizer.step"]
assert e["dtype"] == "F64" and e["shape"] == []
o = 8 + n + e["data_offsets"][0]
b[o:o + 8] = struct.pack("<d", v)
open(dst, "wb").write(b)
EOF
}
# 8 images at B=4: 2 steps an epoch; 3 epochs allow steps 0 to 6
for v in -5 2.5 nan inf -inf 1e300 7 9007199254740993; do
  set_step "$t/a/checkpoint.safetensors" "$t/bad.safetensors" "$v"
  shown=$(python3 -c 'import sys; print("%.17g" % float(sys.argv[1]))' "$v") # as C's printf shows it
  expect_error "bad.safetensors: optimizer.step is $shown; it counts" \
    "$prog" --data "$t/data" --resume "$t/bad.safetensors" --epochs 3 -o "$t/r"
  grep -qF "from 0 to 6 (3 epochs of 2 steps)" "$t/stderr" || { cat "$t/stderr"; fail "step $v: bound not named"; }
done
set_step "$t/a/checkpoint.safetensors" "$t/ok.safetensors" 6 # a finished 3-epoch run resumes to nothing more
timeout 60 "$prog" --data "$t/data" --resume "$t/ok.safetensors" --epochs 3 -o "$t/r" >"$t/ok.log" || fail "step 6 of 6 refused"
grep -q '^Epoch' "$t/ok.log" && fail "a finished run trained again"

# the seed a checkpoint was trained with, reused by --resume
mkdir -p "$t/full" "$t/part" "$t/res" "$t/other"
"$prog" --data "$t/data" --init "$init" --epochs 3 --seed 5 -o "$t/full" --name Net >/dev/null
"$prog" --data "$t/data" --init "$init" --epochs 1 --seed 5 -o "$t/part" --name Net >/dev/null
"$prog" --data "$t/data" --resume "$t/part/checkpoint.safetensors" --epochs 3 -o "$t/res" --name Net >/dev/null 2>"$t/res.err"
cmp -s "$t/full/Net.safetensors" "$t/res/Net.safetensors" || fail "a resume without --seed differs from the uninterrupted run"
[ ! -s "$t/res.err" ] || { cat "$t/res.err"; fail "a resume without --seed printed to stderr"; }
"$prog" --data "$t/data" --resume "$t/part/checkpoint.safetensors" --epochs 3 --seed 0 -o "$t/other" --name Net >/dev/null 2>"$t/other.err"
grep -qF "warning: --seed 0 differs from the seed 5 that $t/part/checkpoint.safetensors was trained with; using 0" "$t/other.err" ||
  { cat "$t/other.err"; fail "no warning for a different --seed"; }
cmp -s "$t/full/Net.safetensors" "$t/other/Net.safetensors" && fail "the given --seed was not used"
python3 - "$t/part/checkpoint.safetensors" "$t/badseed.safetensors" <<'EOF'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
assert h["__metadata__"] == {"format": "pt", "seed": "5"}, h["__metadata__"]
h["__metadata__"]["seed"] = "5x"
j = json.dumps(h, separators=(",", ":")).encode()
j += b" " * (-len(j) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(j)) + j + b[8 + n:])
EOF
expect_error "badseed.safetensors: the metadata's seed is '5x', not an integer from 0 to 18446744073709551615" \
  "$prog" --data "$t/data" --resume "$t/badseed.safetensors" --epochs 3 -o "$t/r"

# labels outside the 10 classes
make_idx "$t/badtest" t10k 5 255
expect_error "t10k-labels-idx1-ubyte: label 5 is 255, outside the model's 10 classes (0 to 9)" \
  "$prog" --eval --data "$t/badtest" --weights "$t/a/Net.safetensors"
make_idx "$t/badtrain" train 2 200
expect_error "train-labels-idx1-ubyte: label 2 is 200, outside the model's 10 classes (0 to 9)" \
  "$prog" --data "$t/badtrain" --init "$init" -o "$t/bl"
[ -z "$(ls "$t/bl")" ] || fail "training on bad labels wrote a checkpoint"

# error exits after data is loaded (under ASan: no leak reports)
expect_error "nowhere.safetensors" "$prog" --eval --data "$t/data" --weights "$t/nowhere.safetensors"
expect_error "nowhere.safetensors" "$prog" --data "$t/data" --resume "$t/nowhere.safetensors" -o "$t/r"
expect_error "fewer training examples than one batch" "$prog" --data "$t/data" --init "$init" --limit 2 -o "$t/r"

# stale temp files: ours with a dead PID go; a live PID's, and others', stay
sh -c 'echo $$ >"$1"' sh "$t/deadpid"
dead=$(cat "$t/deadpid")
mkdir -p "$t/s"
for f in checkpoint.safetensors.tmp.$dead Net.safetensors.tmp.$dead reconstructions.png.tmp.$dead loss.png.tmp.$dead \
         samples-12.png.tmp.$dead samples-x.png.tmp.$dead \
         checkpoint.safetensors.tmp.$$ notes.tmp.$dead checkpoint.safetensors.tmp.x1; do : >"$t/s/$f"; done
"$prog" --data "$t/data" --init "$init" -o "$t/s" --name Net >"$t/s.log"
left=$(cd "$t/s" && ls | grep tmp | sort | tr '\n' ' ')
[ "$left" = "checkpoint.safetensors.tmp.$$ checkpoint.safetensors.tmp.x1 notes.tmp.$dead samples-x.png.tmp.$dead " ] ||
  fail "temp files after start: $left"

if command -v strace >/dev/null; then
  export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 # LeakSanitizer cannot run under ptrace
  # the checkpoint is written once at the end of a one-epoch run
  strace -f -qq -e trace=rename,renameat,renameat2 -o "$t/trace" "$prog" --data "$t/data" --init "$init" -o "$t/once" >/dev/null
  writes=$(grep -c 'checkpoint.safetensors.tmp' "$t/trace" || true)
  [ "$writes" -eq 1 ] || { cat "$t/trace"; fail "checkpoint written $writes times in a one-epoch run"; }

  # SIGTERM while the checkpoint's fsync is held up: the write completes first
  mkdir -p "$t/k"
  strace -f -qq -e trace=fsync -e inject=fsync:delay_enter=1500000 -o /dev/null \
    "$prog" --data "$t/data" --init "$init" -o "$t/k" >/dev/null 2>&1 &
  tracer=$!
  for _ in $(seq 600); do tmp=$(ls "$t/k" | grep 'checkpoint.safetensors.tmp' || true); [ -n "$tmp" ] && break; sleep 0.05; done
  [ -n "$tmp" ] || fail "no checkpoint temp file seen"
  kill -TERM "${tmp##*.}"
  wait "$tracer" || true
  [ -z "$(ls "$t/k" | grep tmp || true)" ] || fail "SIGTERM during a write left $(ls "$t/k")"
  [ -f "$t/k/checkpoint.safetensors" ] || fail "SIGTERM during a write lost the checkpoint"
fi
echo "train hostile: all checks passed"
