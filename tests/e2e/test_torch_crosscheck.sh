#!/usr/bin/env bash
# test_torch_crosscheck.sh: runs torch_crosscheck.py with a Python that has
# PyTorch and NumPy (Debian's python3-torch is enough); skips (exit 77) when
# there is none.
set -euo pipefail
source "$(dirname "$0")/find_torch_python.sh"
run_torch_python torch_crosscheck.py
