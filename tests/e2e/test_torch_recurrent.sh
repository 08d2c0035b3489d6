#!/usr/bin/env bash
# test_torch_recurrent.sh: runs torch_recurrent.py (nn.etch's RNN, LSTM and GRU,
# one layer and stacked/bidirectional, compiled 'for' loops, against torch.nn:
# forward, loss, every gradient) with a Python that has PyTorch and NumPy;
# skips (exit 77) when there is none.
set -euo pipefail
source "$(dirname "$0")/find_torch_python.sh"
run_torch_python torch_recurrent.py
