#!/usr/bin/env bash
# bench_mlp.sh: samples/mlp.etch, one thread, measured in one run:
# etch's eager executor, etch's compiled C (`etch bench`), and PyTorch eager
# (when a python3 with torch is installed), for inference at batch 1 and 64
# and a training step at batch 64. Prints each table and the ratios that
# docs/performance.md records. Not a test: machines are noisy; compare
# ratios from the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
etch=${ETCH:-build/etch}
[ -x "$etch" ] || { cmake -S . -B build -G Ninja >/dev/null && cmake --build build >/dev/null; }
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for b in 1 64; do
  "$etch" bench samples/mlp.etch -D B=$b --threads 1 | tee "$out/etch$b.txt"
  echo
done
py=""
for p in python3 /usr/bin/python3; do
  if command -v $p >/dev/null && $p -c "import torch" 2>/dev/null; then py=$p; break; fi
done
# the median column of `etch bench` for a row ("inference"/"train") and mode ("eager", "-O0", "-O2")
etch_us() { awk -v k="$2" -v m="$3" '$1 == k && ($2 == m || $3 == m) { for (i = 1; i <= NF; i++) if ($i == "us") { print $(i-1); exit } }' "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2fx", a / b; else printf "-" }'; }
if [ -n "$py" ]; then
  $py bench/torch_mlp.py 1 64 | tee "$out/torch.txt"
  echo
  printf '%-18s %11s %11s %11s %11s %12s %12s\n' "" "PyTorch us" "eager us" "-O0 us" "-O2 us" "-O2/PyTorch" "-O2/eager"
  for row in "inference 1" "inference 64" "train_step 64"; do
    set -- $row
    what=$1 b=$2
    t=$(awk -v w="$what" -v b="B=$b" '$2 == w && $3 == b { print $4 }' "$out/torch.txt")
    key=$([ "$what" = train_step ] && echo "train" || echo "inference")
    e=$(etch_us "$out/etch$b.txt" "$key" eager)
    o0=$(etch_us "$out/etch$b.txt" "$key" -O0)
    o2=$(etch_us "$out/etch$b.txt" "$key" -O2)
    printf '%-18s %11s %11s %11s %11s %12s %12s\n' "$what B=$b" "$t" "$e" "$o0" "$o2" "$(ratio "$t" "$o2")" "$(ratio "$e" "$o2")"
  done
else
  echo "(no python3 with torch: PyTorch column skipped)"
fi
