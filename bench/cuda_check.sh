#!/usr/bin/env bash
# cuda_check.sh: the cuda backend on a GPU machine, in one run, per sample:
#  - builds it for the GPU (`etch build --target cuda --exe`, at batch 1 and
#    at the sample's batch, with --train at the latter) and the same with the
#    C backend;
#  - checks the GPU program's outputs on one input (etch make-input) against
#    the C program's, and one training step's weights and optimizer state
#    (same weights, same batch: bench/cuda_entry.c) against the C library's,
#    each within 1e-4 of the largest value of each tensor;
#  - times inference at batch 1 and the sample's batch and a training step
#    (bench/cuda_entry.c: each call uploads the batch, replays the entry's
#    CUDA graph and downloads the outputs) against the PyTorch twin
#    (bench/torch_cuda.py: eager, and torch.compile(mode="reduce-overhead"))
#    on the same GPU, and prints the ratios and the kernels each call launches
#    (etch: the entry's kernels in model.cu, which --stats totals over the
#    entries; PyTorch: torch.profiler's count).
# Exit status 1 when a check fails or a model does not build.
#
#   bench/cuda_check.sh [--host-emulate] [MODEL...]     (default: mlp autoencoder)
#
# --host-emulate (or CUDA_CHECK_EMULATE=1): `--target cuda --host-emulate`,
# the same kernels run on the CPU, so the script runs end to end on a machine
# without a GPU; the PyTorch CUDA timings are skipped (and the etch times are
# the emulation's, not a GPU's). CUDA_CHECK_SECONDS: the time spent on each
# measurement (default 1). Needs a python3 with numpy (PyTorch has it); the
# timings need PyTorch 2.x with CUDA. Not a test: compare ratios of one run.
set -euo pipefail
cd "$(dirname "$0")/.."
etch=${ETCH:-build/etch}
[ -x "$etch" ] || { cmake -S . -B build -G Ninja >/dev/null && cmake --build build >/dev/null; }
emulate=${CUDA_CHECK_EMULATE:-0} secs=${CUDA_CHECK_SECONDS:-1}
models=()
for a in "$@"; do
  case $a in
  --host-emulate) emulate=1 ;;
  -h | --help) sed -n '2,26p' "$0"; exit 0 ;;
  -*) echo "cuda_check.sh: unknown option $a" >&2; exit 2 ;;
  *) models+=("$a") ;;
  esac
done
[ ${#models[@]} -gt 0 ] || models=(mlp autoencoder)
target=(--target cuda)
[ "$emulate" = 1 ] && target+=(--host-emulate)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

py="" torch_py=""
for p in python3 /usr/bin/python3; do
  command -v $p >/dev/null || continue
  [ -z "$py" ] && $p -c "import numpy" 2>/dev/null && py=$p
  [ -z "$torch_py" ] && $p -c "import torch; assert torch.cuda.is_available()" 2>/dev/null && torch_py=$p
done
[ -n "$py" ] || { echo "cuda_check.sh: needs a python3 with numpy" >&2; exit 1; }
if [ "$emulate" = 1 ]; then
  echo "host emulation (--target cuda --host-emulate): kernels run on the CPU; PyTorch CUDA timings skipped"
  torch_py=""
elif [ -z "$torch_py" ]; then
  echo "no python3 with PyTorch and a usable CUDA device: PyTorch timings skipped"
fi
cc -std=c11 -O2 -Wall -Wextra -Iruntime bench/cuda_entry.c -ldl -o "$out/cuda_entry"

# compare.py REF GOT: every array of two .npz or .safetensors files within 1e-4 of the largest value of REF's
cat >"$out/compare.py" <<'PY'
import sys
import numpy as np
import safetensors_np
def load(path):
    return dict(np.load(path)) if path.endswith(".npz") else safetensors_np.read(path)
ref, got = load(sys.argv[1]), load(sys.argv[2])
assert sorted(ref) == sorted(got), f"different tensors: {sorted(ref)} vs {sorted(got)}"
worst, at = 0.0, ""
for k in sorted(ref):
    r, g = ref[k].astype(np.float64), got[k].astype(np.float64)
    err = float(np.abs(r - g).max(initial=0)) / (float(np.abs(r).max(initial=0)) or 1.0)
    if err >= worst:
        worst, at = err, k
print(f"{len(ref)} tensors, worst relative error {worst:.2g} ({at})")
sys.exit(0 if worst <= 1e-4 else 1)
PY
compare() { PYTHONPATH=tests/e2e $py "$out/compare.py" "$@"; }
median() { awk '{ for (i = 1; i < NF; i++) if ($i == "median_us") print $(i + 1) }' "$1"; }
# the kernels of an entry, from model.cu's "/* ENTRY (graph G): N kernels */"
kernels_of() { sed -n "s|^/\* $2 (graph .*): \([0-9]*\) kernels \*/$|\1|p" "$1/model.cu"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2fx", a / b; else printf "-" }'; }

status=0 rows=()
for m in "${models[@]}"; do
  file=samples/$m.etch
  [ -f "$file" ] || { echo "$m: no $file"; status=1; continue; }
  batch=$(sed -n 's/^const B = \([0-9]*\).*/\1/p' "$file")
  echo "== $m (sample batch $batch)"
  for b in $(printf '%s\n' 1 "$batch" | sort -nu); do
    d=$out/$m-$b train=()
    [ "$b" = "$batch" ] && train=(--train)
    if ! "$etch" build "$file" -D B="$b" "${target[@]}" --exe "${train[@]}" --stats -o "$d/gpu" >"$d.stats" 2>"$d.err"; then
      echo "$m B=$b: the cuda backend does not build it: $(grep -m1 error "$d.err")"
      status=1
      continue 2
    fi
    "$etch" build "$file" -D B="$b" --exe "${train[@]}" -o "$d/c" >/dev/null
    prefix=$(sed -n 's/^void \([a-z0-9_]*\)_forward_v(.*/\1/p' "$d/c/model.h" | head -1)
    weights=$(ls "$d/c"/*.safetensors) # the initializers, seed 0: the weights of both builds
    program=$(basename "$weights" .safetensors)
    "$etch" make-input "$file" -D B="$b" --seed 1 -o "$d/in.npy"
    for k in c gpu; do "$d/$k/$program" --weights "$weights" "$d/in.npy" "$d/$k.npz"; done
    echo -n "forward B=$b outputs vs the c backend: "
    compare "$d/c.npz" "$d/gpu.npz" || { echo "FAIL: $m forward B=$b"; status=1; }
    "$out/cuda_entry" "$d/gpu/lib$prefix.so" "$prefix" forward "$weights" "$secs" >"$d.forward.time"
    rows+=("$m inference $b $(median "$d.forward.time") $(kernels_of "$d/gpu" forward)")
    [ "$b" = "$batch" ] || continue
    grep -q "^kernels:" "$d.stats" && echo "--stats (forward, grad, train_step): $(grep '^kernels:' "$d.stats")"
    # one training step from the same weights on the same batch, with each backend; the state after it
    for k in c gpu; do
      "$out/cuda_entry" "$d/$k/lib$prefix.so" "$prefix" train_step "$weights" "$([ $k = gpu ] && echo "$secs" || echo 0)" "$d/$k-step.safetensors" \
        >"$d.$k.step.time"
    done
    echo -n "one train_step B=$b, weights and optimizer state vs the c backend: "
    compare "$d/c-step.safetensors" "$d/gpu-step.safetensors" || { echo "FAIL: $m train_step"; status=1; }
    rows+=("$m train_step $b $(median "$d.gpu.step.time") $(kernels_of "$d/gpu" train_step)")
  done
  if [ -n "$torch_py" ]; then
    $torch_py bench/torch_cuda.py "$m" "$batch" >>"$out/torch.txt" 2>"$out/torch.err" ||
      echo "$m: no PyTorch timings: $(tail -1 "$out/torch.err")"
  fi
done

echo
[ "$emulate" = 1 ] && echo "(etch times: the kernels emulated on the CPU, not a GPU's; PyTorch not run)"
printf '%-26s %10s %8s %12s %12s %10s %10s %14s\n' "" "etch us" "kernels" "torch us" "compiled us" \
  "vs torch" "vs comp." "torch kernels"
touch "$out/torch.txt"
for r in "${rows[@]}"; do
  set -- $r
  m=$1 what=$2 b=$3 us=$4 k=$5
  line=$(awk -v m="$m" -v w="$what" -v b="B=$b" '$2 == m && $3 == w && $4 == b' "$out/torch.txt")
  te=$(echo "$line" | awk '{ print $6 }') tc=$(echo "$line" | awk '{ print $8 }')
  ke=$(echo "$line" | awk '{ print $10 }') kc=$(echo "$line" | awk '{ print $12 }')
  printf '%-26s %10s %8s %12s %12s %10s %10s %14s\n' "$m $what B=$b" "$us" "$k" "${te:--}" "${tc:--}" \
    "$(ratio "$te" "$us")" "$(ratio "$tc" "$us")" "${ke:--}/${kc:--}"
done
echo "(vs torch, vs comp.: PyTorch eager's and torch.compile's time over etch's; above 1 etch is faster."
echo " etch's time includes uploading the batch and downloading the outputs; PyTorch's inputs stay on the GPU."
echo " torch kernels: eager/compiled, per call)"
[ $status = 0 ] && echo "cuda_check: all checks passed" || echo "cuda_check: some checks FAILED"
exit $status
