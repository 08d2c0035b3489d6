#!/usr/bin/env bash
# test_layering.sh: the direction between layers (scripts/check_layering.sh)
# holds for the tree's includes and CMake link lines, and the check really
# fails when it does not: a copy of the tree in which ir/ops/ops_impl.h
# includes codegen/c/emit.h, or whose CMakeLists.txt links etch_ir with
# etch_codegen_c, the sibling etch_frontend with etch_codegen_c, or compiles
# codegen/ into etch_passes, is refused with the offending file, line and
# layers named.
source "$(dirname "$0")/e2e_common.sh"
SRC=${ETCH_SOURCE_DIR:?}

bash "$SRC/scripts/check_layering.sh" "$SRC"

for d in runtime ir passes frontend codegen tool; do
  [ -d "$SRC/$d" ] && cp -r "$SRC/$d" "$t/"
done
cp "$SRC/CMakeLists.txt" "$t/"
cp -r "$t" "$t.clean"
trap 'rm -rf "$t" "$t.clean"' EXIT

# expect_refused WHAT PATTERN: the check fails on $t and names the violation
expect_refused() {
  if bash "$SRC/scripts/check_layering.sh" "$t" >"$t/out" 2>&1; then
    fail "$1 passed the layering check"
  fi
  grep -q "$2" "$t/out" || { cat "$t/out"; fail "the violation ($1) was not named"; }
}

printf '#include "codegen/c/emit.h"\n' >>"$t/ir/ops/ops_impl.h"
expect_refused "an ir/ file including codegen/c/emit.h" \
  "ir/ops/ops_impl.h:[0-9]*: error: layer 'ir' includes \"codegen/c/emit.h\" from layer 'codegen'"

for inject in "target_link_libraries(etch_ir PUBLIC etch_codegen_c)|layer 'ir' library etch_ir links etch_codegen_c from layer 'codegen'" \
  "target_link_libraries(etch_frontend PUBLIC etch_passes etch_codegen_c)|layer 'frontend' library etch_frontend links etch_codegen_c from layer 'codegen'" \
  "etch_layer(etch_passes passes codegen)|layer 'passes' library etch_passes compiles folder codegen of layer 'codegen'"; do
  rm -rf "$t" && cp -r "$t.clean" "$t"
  echo "${inject%%|*}" >>"$t/CMakeLists.txt"
  expect_refused "CMakeLists.txt with ${inject%%|*}" "CMakeLists.txt:[0-9]*: error: ${inject#*|}"
done
echo "layering check: tree clean, injected include and link violations caught"
