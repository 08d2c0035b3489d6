# e2e_common.sh: the preamble the end-to-end test scripts share, sourced
# first: strict mode, $ETCH and $SRC from ctest's environment
# (tests/CMakeLists.txt), a temporary folder $t removed on exit, fail
# MESSAGE (exit 1), need_fashion_mnist, which sets $data or skips the
# test (exit 77) when the dataset is not installed, and
# emitted_code_at_least_O1 (below).
set -euo pipefail
ETCH=${ETCH:?} SRC=${ETCH_SOURCE_DIR:?}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
need_fashion_mnist() {
  data=/usr/share/datasets/fashion-mnist
  [ -d "$data" ] || { echo "SKIP: $data missing (apt-get install dataset-fashion-mnist)"; exit 77; }
}
# The sanitizer half of scripts/test.sh compiles emitted code at -O0
# (ETCH_CFLAGS=-O0): etch itself is what it checks. A test whose time is
# spent running emitted code (training, a pass over the test set) calls this
# first to raise that to -O1 (GPT's 20 steps + held-out: 135 s at -O0, 30 s
# at -O1). A flag chosen by hand (any other value) is kept.
emitted_code_at_least_O1() {
  if [ "${ETCH_CFLAGS:-}" = -O0 ]; then export ETCH_CFLAGS=-O1; fi
}
