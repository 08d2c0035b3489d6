#!/usr/bin/env bash
# test_sweep.sh: `etch sweep` on a small classifier over .npy arrays:
#  - --grid lr=... --grid momentum=... --random 4 --jobs 2: one program is
#    compiled (the swept hyperparameters read at run time), 4 distinct
#    combinations of the 3x2 grid train, each in R/NNN/ with its log and
#    weights; the table and R.csv are sorted by validation accuracy (ties:
#    NLL), one row per run, every value from the grid;
#  - the run with the values the file compiles in (lr 0.05, momentum 0.9)
#    ends with weights bit-identical to `etch train` with the same seed, and
#    runs with other values end elsewhere (the runtime values are used);
#  - the training program refuses a --hparam it does not read, naming those
#    it does.
source "$(dirname "$0")/e2e_common.sh"
here=$(cd "$(dirname "$0")" && pwd)

cat >"$t/cls.etch" <<'ETCH'
const B = 16
model Cls {
  fc1 = Linear(4, 16)
  fc2 = Linear(16, 3)
  fn forward(x: f32[B, 4]) -> f32[B, 3] { return fc2(tanh(fc1(x))) }
}
train {
  loss = cross_entropy(Cls(x), y)
  optimizer = sgd(lr = 0.05, momentum = 0.9)
  batch = B
  epochs = 3
}
ETCH
mkdir -p "$t/data"
PYTHONPATH=$here python3 - "$t/data" <<'PY'
import os, random, sys
from npy_stdlib import write_npy
rng, xs, ys = random.Random(3), [], []
for i in range(160):  # three classes, each a bump on one of the four inputs
    xs += [rng.gauss(0, 0.5) + (1.5 if k == i % 3 else 0) for k in range(4)]
    ys.append(i % 3)
write_npy(os.path.join(sys.argv[1], "x.npy"), "<f4", [160, 4], xs)
write_npy(os.path.join(sys.argv[1], "y.npy"), "<i8", [160], ys)
PY

"$ETCH" sweep "$t/cls.etch" --data "$t/data" --grid lr=0.05,0.01,0.5 --grid momentum=0.9,0.5 --random 4 --jobs 2 \
  --epochs 2 --seed 1 --cflags -O0 -o "$t/res.csv" >"$t/log"
cat "$t/log"
grep -q "^4 trainings of .*/res/build/Cls-train, 2 at a time" "$t/log" || fail "no plan line"
[ "$(grep -c '^\[[1-4]/4\] lr=[0-9.]* momentum=0\.[59]: validation accuracy [0-9.]*%$' "$t/log")" = 4 ] || fail "progress lines"
python3 - "$t/res.csv" <<'PY' || fail "results table"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 4, rows
assert [r["rank"] for r in rows] == ["1", "2", "3", "4"]
combos = {(r["lr"], r["momentum"]) for r in rows}
assert len(combos) == 4 and all(lr in ("0.05", "0.01", "0.5") and m in ("0.9", "0.5") for lr, m in combos), combos
keys = [(-float(r["val_accuracy"]), float(r["val_nll"])) for r in rows]
assert keys == sorted(keys), keys
assert all(r["status"] == "ok" and r["val_mse"] == "" and float(r["loss"]) > 0 for r in rows)
assert len({r["loss"] for r in rows}) == 4, "runs with other values should end elsewhere"
assert ("0.05", "0.9") in combos, "the seed's draw should include the compiled values"
PY
dir=$(python3 -c "import csv, sys; print(*[r['dir'] for r in csv.DictReader(open(sys.argv[1])) if (r['lr'], r['momentum']) == ('0.05', '0.9')])" "$t/res.csv")
[ -f "$dir/Cls.safetensors" ] && grep -q "^Test accuracy: " "$dir/log.txt" || fail "run folder $dir"

"$ETCH" train "$t/cls.etch" --data "$t/data" --epochs 2 --seed 1 --cflags -O0 -o "$t/train" >/dev/null
cmp "$t/train/Cls.safetensors" "$dir/Cls.safetensors" || fail "the sweep's run with the compiled values differs from etch train"

# the program names what it reads
if "$t/res/build/Cls-train" --data "$t/data" --init "$t/res/build/init.safetensors" -o "$t/x" --hparam beta1=0.9 \
  2>"$t/err"; then fail "an unknown --hparam was accepted"; fi
grep -qx "error: --hparam beta1=0.9: no such hyperparameter; this program reads at run time: lr, momentum" "$t/err" ||
  { cat "$t/err"; fail "unknown --hparam message"; }
echo "test_sweep: ok"
