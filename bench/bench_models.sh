#!/usr/bin/env bash
# bench_models.sh: the sample models (lenet, autoencoder, lstm, gpt), one
# thread, in one run: etch's eager executor, compiled -O0 and -O2 (`etch
# bench`), and PyTorch eager when a python3 with torch is installed: inference
# at batch 1 and a training step at batch 64 (8 for gpt). Ratios from the same
# run only. Pass model names to run a subset: bench/bench_models.sh lstm gpt
set -euo pipefail
cd "$(dirname "$0")/.."
etch=${ETCH:-build/etch}
[ -x "$etch" ] || { cmake -S . -B build -G Ninja >/dev/null && cmake --build build >/dev/null; }
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
models=(lenet autoencoder lstm gpt)
[ $# -gt 0 ] && models=("$@")
train_batch() { [ "$1" = gpt ] && echo 8 || echo 64; }
for m in "${models[@]}"; do
  for b in 1 "$(train_batch "$m")"; do
    "$etch" bench "samples/$m.etch" -D B=$b --threads 1 | tee "$out/$m$b.txt"
    echo
  done
done
py=""
for p in python3 /usr/bin/python3; do
  if command -v $p >/dev/null && $p -c "import torch" 2>/dev/null; then py=$p; break; fi
done
etch_us() { awk -v k="$2" -v m="$3" '$1 == k && ($2 == m || $3 == m) { for (i = 1; i <= NF; i++) if ($i == "us") { print $(i-1); exit } }' "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2fx", a / b; else printf "-" }'; }
[ -n "$py" ] && $py bench/torch_models.py "${models[@]}" | tee "$out/torch.txt" || touch "$out/torch.txt"
echo
printf '%-28s %11s %11s %11s %11s %12s %12s\n' "" "PyTorch us" "eager us" "-O0 us" "-O2 us" "-O2/PyTorch" "-O2/eager"
for m in "${models[@]}"; do
  for row in "inference 1" "train_step $(train_batch "$m")"; do
    set -- $row
    what=$1 b=$2
    t=$(awk -v n="$m" -v w="$what" -v b="B=$b" '$2 == n && $3 == w && $4 == b { print $5 }' "$out/torch.txt")
    key=$([ "$what" = train_step ] && echo "train" || echo "inference")
    e=$(etch_us "$out/$m$b.txt" "$key" eager)
    o0=$(etch_us "$out/$m$b.txt" "$key" -O0)
    o2=$(etch_us "$out/$m$b.txt" "$key" -O2)
    printf '%-28s %11s %11s %11s %11s %12s %12s\n' "$m $what B=$b" "${t:--}" "$e" "$o0" "$o2" "$(ratio "$t" "$o2")" "$(ratio "$e" "$o2")"
  done
done
