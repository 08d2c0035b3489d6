#!/usr/bin/env bash
# test_onnx_import.sh: runs onnx_import.py (PyTorch models exported with
# torch.onnx.export, imported by `etch import` and run, against PyTorch) with
# a Python that has PyTorch and NumPy; skips (exit 77) when there is none or
# when it lacks the onnx module (Debian: python3-onnx).
set -euo pipefail
source "$(dirname "$0")/find_torch_python.sh"
run_torch_python onnx_import.py
