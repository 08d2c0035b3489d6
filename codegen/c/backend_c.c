/* backend_c.c: the C backend's entry in the backend interface (codegen/backend.h):
 * its op table (codegen/c/ops.def), its target description for the passes
 * (what its fused kernels can read, the arena's alignment), emitting
 * model.c/model.h (emit_c.c) and compiling them with the system C compiler
 * (codegen/build.c). */
#include "codegen/build.h"
#include "codegen/c/emit_c.h"
#include "codegen/c/ops/c_ops.h"

static bool c_op_supported(OpKind op) { return c_op_table[op].emit != C_UNSUPPORTED; }

static const Target c_target = {
    .name = "c",
    .max_group_leaves = OPS_MAX_OPERANDS, /* the group emitters' leaf arrays (codegen/c/fused.h) */
    .max_group_members = 20,
    .max_row_group_members = 48,
    .epilogue_cache_bytes = 64 * 1024,
    .arena_align = 64, /* a cache line; the arenas are declared _Alignas(arena_align) */
    .float_conv_max_taps = CONV_DIRECT_MAX_TAPS, /* computed directly (codegen/c/ops/c_ops.h) */
};

const Backend backend_c = {
    .name = "c",
    .op_supported = c_op_supported,
    .target = &c_target,
    .model_source = cgen_model_source,
    .write = cgen_write,
    .compile = build_compile_libs,
};
