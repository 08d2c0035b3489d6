#!/usr/bin/env bash
# test_torch_layers.sh: runs torch_layers.py (embedding, gelu, layer norm,
# batch norm against PyTorch) with a Python that has PyTorch and NumPy;
# skips (exit 77) when there is none.
set -euo pipefail
source "$(dirname "$0")/find_torch_python.sh"
run_torch_python torch_layers.py
