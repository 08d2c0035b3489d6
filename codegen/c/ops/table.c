/* table.c: the C backend's op table, c_op_table[], expanded from
 * codegen/c/ops.def. Completeness is checked when this file compiles: the
 * table must have exactly OP_COUNT rows, and a second row for one op is a
 * -Woverride-init error (-Wextra -Werror), so every op of ir/ops.def has one
 * row, an emitter or an explicit C_UNSUPPORTED. */
#include "codegen/c/ops/c_ops.h"

const COpEmitter c_op_table[OP_COUNT] = {
#define C_OP(e, em, cx) [OP_##e] = {.emit = em, .c_expr = cx},
#include "codegen/c/ops.def"
#undef C_OP
};

enum {
    C_OP_ROWS = 0
#define C_OP(e, em, cx) +1
#include "codegen/c/ops.def"
#undef C_OP
};
_Static_assert((int)C_OP_ROWS == (int)OP_COUNT, "codegen/c/ops.def needs one row per op of ir/ops.def");
