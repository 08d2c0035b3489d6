#!/usr/bin/env bash
# test_torch_schedule.sh: runs torch_schedule.py (lr schedules and gradient
# clipping against torch.optim) with a Python that has PyTorch and NumPy;
# skips (exit 77) when there is none.
set -euo pipefail
source "$(dirname "$0")/find_torch_python.sh"
run_torch_python torch_schedule.py
