#!/usr/bin/env bash
# quant.sh: fp32 vs int8 post-training quantization (docs/quantization.md) of
# samples/mlp.etch and samples/lenet.etch on the Fashion-MNIST test set, one
# thread, in one run: accuracy of the whole test split and the compiled
# forward's time per batch at batch 64 and batch 1 (`etch eval --stats`, the
# same loop for both). Calibration: `etch calibrate` over 16 batches of the
# training split (--method minmax and percentile). LeNet's convolutions stay
# float in this phase (only its Linear layers are int8).
#
#   bench/quant.sh [mlp|lenet ...]      weights: MLP_WEIGHTS / LENET_WEIGHTS,
#                                       else trained here (mlp 3 epochs, lenet 1)
set -euo pipefail
cd "$(dirname "$0")/.."
etch=${ETCH:-build/etch}
[ -x "$etch" ] || { cmake -S . -B build -G Ninja >/dev/null && cmake --build build >/dev/null; }
data=${DATA:-/usr/share/datasets/fashion-mnist}
[ -d "$data" ] || { echo "no $data (apt-get install dataset-fashion-mnist)"; exit 1; }
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
models=(mlp lenet)
[ $# -gt 0 ] && models=("$@")

weights() {
  local m=$1 var w
  var=$(echo "$m" | tr a-z A-Z)_WEIGHTS
  w=${!var:-}
  if [ -z "$w" ]; then
    local epochs=3
    [ "$m" = lenet ] && epochs=1
    echo "training $m ($epochs epochs; set $var to skip)" >&2
    "$etch" train "samples/$m.etch" --data "$data" --epochs $epochs -o "$out/$m" >"$out/$m.train.log"
    w=$out/$m/Net.safetensors
  fi
  echo "$w"
}
field() { sed -n "$2" "$1" | head -1; }
acc() { field "$1" 's/^Test accuracy: \([0-9.]*\)%.*/\1/p'; }
ms() { field "$1" 's/^forward: \([0-9.]*\) ms.*/\1/p'; }

printf '%-6s %-16s %5s %10s %12s %12s\n' model variant batch "accuracy" "ms/batch" "vs fp32"
for m in "${models[@]}"; do
  w=$(weights "$m")
  for method in minmax percentile; do
    "$etch" calibrate "samples/$m.etch" --weights "$w" --data "$data" --method $method -o "$out/$m.$method.json" >/dev/null
  done
  for b in 64 1; do
    "$etch" eval "samples/$m.etch" -D B=$b --weights "$w" --data "$data" --stats >"$out/$m.f32.$b" 2>&1
    base=$(ms "$out/$m.f32.$b")
    printf '%-6s %-16s %5s %9s%% %12s %12s\n' "$m" fp32 "$b" "$(acc "$out/$m.f32.$b")" "$base" "1.00x"
    for method in minmax percentile; do
      "$etch" eval "samples/$m.etch" -D B=$b --weights "$w" --data "$data" --stats --quantize int8 \
        --calib "$out/$m.$method.json" >"$out/$m.$method.$b" 2>&1
      t=$(ms "$out/$m.$method.$b")
      printf '%-6s %-16s %5s %9s%% %12s %12s\n' "$m" "int8 $method" "$b" "$(acc "$out/$m.$method.$b")" "$t" \
        "$(awk -v a="$base" -v b="$t" 'BEGIN { printf "%.2fx", a / b }')"
    done
  done
  "$etch" build "samples/$m.etch" --weights "$w" --embed-weights -D B=1 --exe -o "$out/$m.bin32" >/dev/null
  "$etch" build "samples/$m.etch" --weights "$w" --embed-weights -D B=1 --exe --quantize int8 \
    --calib "$out/$m.percentile.json" -o "$out/$m.bin8" >/dev/null
  echo "$m standalone program (B=1, embedded weights): fp32 $(wc -c <"$out/$m.bin32/Net") bytes," \
    "int8 $(wc -c <"$out/$m.bin8/Net") bytes"
done
