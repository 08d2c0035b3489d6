# find_torch_python.sh: sourced by the test_torch_*.sh scripts (not a test
# itself). run_torch_python SCRIPT runs tests/e2e/SCRIPT with the first Python
# that has PyTorch and NumPy (Debian's python3-torch is enough), or exits 77
# (ctest's skip) when there is none.
run_torch_python() {
  local here py
  here=$(dirname "${BASH_SOURCE[0]}")
  for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null && "$py" -c "import torch, numpy" 2>/dev/null; then
      # the sanitizer runtime must not be preloaded into Python; the etch tool is checked elsewhere
      exec env -u LD_PRELOAD "$py" "$here/$1"
    fi
  done
  echo "SKIP: no python3 with torch and numpy"
  exit 77
}
