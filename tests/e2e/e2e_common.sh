# e2e_common.sh: the preamble the end-to-end test scripts share, sourced
# first: strict mode, $ETCH and $SRC from ctest's environment
# (tests/CMakeLists.txt), a temporary folder $t removed on exit, fail
# MESSAGE (exit 1), and need_fashion_mnist, which sets $data or skips the
# test (exit 77) when the dataset is not installed.
set -euo pipefail
ETCH=${ETCH:?} SRC=${ETCH_SOURCE_DIR:?}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
need_fashion_mnist() {
  data=/usr/share/datasets/fashion-mnist
  [ -d "$data" ] || { echo "SKIP: $data missing (apt-get install dataset-fashion-mnist)"; exit 77; }
}
