#!/usr/bin/env bash
# onnx_ort.sh [ETCH]: etch vs onnxruntime on the samples' PyTorch twins
# exported to ONNX, one thread (bench/onnx_ort.py does the work; docs/onnx.md
# holds a measured table). Makes its own venv ($ONNX_ORT_VENV, default
# build/onnx_ort_venv) with onnxruntime, onnx and numpy from PyPI; torch is
# the system's when it has one (--system-site-packages: Debian's
# python3-torch), else the CPU wheel from download.pytorch.org. Not part of
# the test suite.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
etch=${1:-$root/build/etch}
venv=${ONNX_ORT_VENV:-$root/build/onnx_ort_venv}
if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$venv"
  "$venv/bin/pip" install -q onnxruntime onnx numpy
fi
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  "$venv/bin/pip" install -q torch --index-url https://download.pytorch.org/whl/cpu
fi
exec "$venv/bin/python" "$root/bench/onnx_ort.py" "$etch"
