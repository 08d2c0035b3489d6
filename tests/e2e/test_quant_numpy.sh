#!/usr/bin/env bash
# test_quant_numpy.sh: etch's integer requantize arithmetic (the q31
# multipliers, qmatmul's fixed-point epilogue with saturation, per-axis
# quantize with round-half-to-even ties) against an independent NumPy
# reference (quant_numpy.py). tests/unit/test_quant writes the data and etch's
# results (eager, checked bit-identical to the emitted C) to an .npz; the
# script recomputes them and requires exact equality. Skipped (exit 77) when
# no python3 with NumPy is found (the first of python3 on PATH and
# /usr/bin/python3 that imports numpy).
set -euo pipefail
SRC=${ETCH_SOURCE_DIR:?} BIN=${ETCH_BINARY_DIR:?}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
py=
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null && env -u LD_PRELOAD "$p" -c "import numpy" 2>/dev/null; then py=$p; break; fi
done
[ -n "$py" ] || { echo "SKIP: no python3 with numpy"; exit 77; }
ETCH_QUANT_DUMP="$t/quant.npz" "$BIN/tests/test_quant" || { echo "FAIL: test_quant could not write the data" >&2; exit 1; }
env -u LD_PRELOAD "$py" "$SRC/tests/e2e/quant_numpy.py" "$t/quant.npz"
