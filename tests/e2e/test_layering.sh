#!/usr/bin/env bash
# test_layering.sh: the include direction between layers (scripts/check_layering.sh)
# holds for the tree, and the check really fails when it does not: a copy of
# the tree in which ir/ops/ops_impl.h includes codegen/c/emit.h is refused,
# with the offending file, line and layers named.
set -euo pipefail
SRC=${ETCH_SOURCE_DIR:?}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

bash "$SRC/scripts/check_layering.sh" "$SRC"

for d in runtime ir passes frontend codegen tool; do
  [ -d "$SRC/$d" ] && cp -r "$SRC/$d" "$t/"
done
printf '#include "codegen/c/emit.h"\n' >>"$t/ir/ops/ops_impl.h"
if bash "$SRC/scripts/check_layering.sh" "$t" >"$t/out" 2>&1; then
  fail "an ir/ file including codegen/c/emit.h passed the layering check"
fi
grep -q "ir/ops/ops_impl.h:[0-9]*: error: layer 'ir' includes \"codegen/c/emit.h\" from layer 'codegen'" "$t/out" ||
  { cat "$t/out"; fail "the violation was not named"; }
echo "layering check: tree clean, injected violation caught"
