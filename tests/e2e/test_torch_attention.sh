#!/usr/bin/env bash
# test_torch_attention.sh: runs torch_attention.py (nn.etch's MultiheadAttention and
# TransformerEncoderLayer against torch.nn:
# forward, loss, every gradient) with a Python that has PyTorch and NumPy;
# skips (exit 77) when there is none.
set -euo pipefail
source "$(dirname "$0")/find_torch_python.sh"
run_torch_python torch_attention.py
