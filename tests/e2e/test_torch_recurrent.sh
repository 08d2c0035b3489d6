#!/usr/bin/env bash
# test_torch_recurrent.sh: runs torch_recurrent.py (nn.etch's RNN, LSTM and GRU,
# compiled 'for' loops, against torch.nn: forward, loss, every gradient) with a
# Python that has PyTorch and NumPy; skips (exit 77) when there is none.
set -euo pipefail
here=$(dirname "$0")
for py in python3 /usr/bin/python3; do
  if command -v "$py" >/dev/null && "$py" -c "import torch, numpy" 2>/dev/null; then
    # the sanitizer runtime must not be preloaded into Python; the etch tool is checked elsewhere
    exec env -u LD_PRELOAD "$py" "$here/torch_recurrent.py"
  fi
done
echo "SKIP: no python3 with torch and numpy"
exit 77
