#!/usr/bin/env bash
# test_torch_conv.sh: runs torch_conv.py (convolution and pooling against
# PyTorch: forward, gradients, Adam steps) with a Python that has PyTorch and
# NumPy (Debian's python3-torch is enough); skips (exit 77) when there is none.
set -euo pipefail
source "$(dirname "$0")/find_torch_python.sh"
run_torch_python torch_conv.py
