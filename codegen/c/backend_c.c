/* backend_c.c: the C backend's entry in the backend interface (codegen/backend.h):
 * its op table (codegen/c/ops.def), its memory policy (-O1 and up plan one
 * shared arena), emitting model.c/model.h (emit_c.c) and compiling them with
 * the system C compiler (codegen/build.c). */
#include "codegen/build.h"
#include "codegen/c/emit_c.h"
#include "codegen/c/ops/c_ops.h"

static bool c_op_supported(OpKind op) { return c_op_table[op].emit != C_UNSUPPORTED; }

static bool c_reuse_buffers(int opt_level) { return opt_level > 0; }

const Backend backend_c = {
    .name = "c",
    .op_supported = c_op_supported,
    .reuse_buffers = c_reuse_buffers,
    .model_source = cgen_model_source,
    .write = cgen_write,
    .compile = build_compile_libs,
};
