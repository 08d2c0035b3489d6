/* table.c: the ONNX exporter's op table, onnx_op_table[], expanded from
 * codegen/onnx/ops.def. Completeness is checked when this file compiles, as
 * for the C backend's table: exactly OP_COUNT rows, and a second row for one
 * op is a -Woverride-init error (-Wextra -Werror), so every op of ir/ops.def
 * has one row, an emitter or an explicit ONNX_UNSUPPORTED. */
#include "codegen/onnx/emit_onnx.h"

const OnnxOpRow onnx_op_table[OP_COUNT] = {
#define ONNX_OP(e, em, t) [OP_##e] = {.emit = em, .op_type = t},
#include "codegen/onnx/ops.def"
#undef ONNX_OP
};

enum {
    ONNX_OP_ROWS = 0
#define ONNX_OP(e, em, t) +1
#include "codegen/onnx/ops.def"
#undef ONNX_OP
};
_Static_assert((int)ONNX_OP_ROWS == (int)OP_COUNT, "codegen/onnx/ops.def needs one row per op of ir/ops.def");

bool onnx_export_supports(OpKind op) { return op < OP_COUNT && onnx_op_table[op].emit != ONNX_UNSUPPORTED; }
