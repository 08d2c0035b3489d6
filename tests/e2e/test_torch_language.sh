#!/usr/bin/env bash
# test_torch_language.sh: runs torch_language.py (detach, tensor indexing, a
# reversed loop as a bidirectional RNN, randn's reparameterization gradient,
# frozen submodules, against PyTorch) with a Python that has PyTorch and
# NumPy; skips (exit 77) when there is none.
set -euo pipefail
source "$(dirname "$0")/find_torch_python.sh"
run_torch_python torch_language.py
