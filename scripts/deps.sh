#!/usr/bin/env bash
# deps.sh: installs the Debian packages etch needs, only those missing.
#   build: C compiler, CMake, Ninja, OpenBLAS (eager executor's matmul),
#          protobuf-c-compiler + libprotobuf-c-dev + python3-onnx (the ONNX
#          importer: protoc-c compiles python3-onnx's onnx.proto at build time)
#   tests: cmocka (unit tests), llvm-14-tools (lit, FileCheck),
#          python3-torch + python3-numpy (PyTorch cross-checks; with
#          python3-onnx also the ONNX import cross-checks)
#   data:  dataset-fashion-mnist (the main job trains on it),
#          fortunes (a text corpus for samples/gpt.etch)
#   tools: graphviz (etch graph -o x.svg)
#   mpi:   libopenmpi-dev + openmpi-bin (data-parallel training: etch train
#          --ranks N, etch build --train --mpi; its tests skip without them)
#   llvm:  llvm-14-dev + clang-14 (the LLVM backend, etch run --backend llvm:
#          the LLVM-C API and its kernels compiled to bitcode; etch builds
#          without that backend when they are missing)
#   fuzz:  clang (libFuzzer harnesses, scripts/fuzz.sh; skipped without it)
set -euo pipefail
pkgs=(build-essential cmake ninja-build libopenblas-dev libprotobuf-c-dev protobuf-c-compiler python3-onnx
      libcmocka-dev llvm-14-tools python3
      python3-numpy python3-torch dataset-fashion-mnist fortunes gzip graphviz clang
      libopenmpi-dev openmpi-bin llvm-14-dev clang-14)
missing=()
for p in "${pkgs[@]}"; do
  [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == *"install ok installed"* ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps.sh: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
