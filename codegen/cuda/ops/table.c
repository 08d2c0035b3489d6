/* table.c: the CUDA backend's op table, cuda_op_table[], expanded from
 * codegen/cuda/ops.def. As the C backend's (codegen/c/ops/table.c): it must
 * have exactly OP_COUNT rows, and a second row for one op is a
 * -Woverride-init error. */
#include "codegen/cuda/cuda_emit.h"

static void cuda_emit_source(CudaEmitter *e, const Graph *g, int id) { (void)e, (void)g, (void)id; }

const CudaEmitFn cuda_op_table[OP_COUNT] = {
#define CUDA_OP(en, fn) [OP_##en] = fn,
#include "codegen/cuda/ops.def"
#undef CUDA_OP
};

enum {
    CUDA_OP_ROWS = 0
#define CUDA_OP(en, fn) +1
#include "codegen/cuda/ops.def"
#undef CUDA_OP
};
_Static_assert((int)CUDA_OP_ROWS == (int)OP_COUNT, "codegen/cuda/ops.def needs one row per op of ir/ops.def");
