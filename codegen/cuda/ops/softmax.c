/* softmax.c (CUDA backend): softmax and log_softmax along one axis, the
 * reference kernel's numerics (ir/ops/softmax.c): the row's maximum, the sum
 * of exponentials in double, then the result. Along the last axis (inner 1)
 * a row is contiguous: a warp or block per row, each walk strided over its
 * threads and tree-reduced (rowgroup.c). Along an inner axis a row's
 * elements lie `inner` apart and neighbouring rows are neighbours in memory,
 * so one thread per row reads coalesced as it is. */
#include <stdio.h>

#include "codegen/c/ops/c_ops.h"
#include "codegen/cuda/cuda_emit.h"

void cuda_emit_softmax(CudaEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    int64_t outer, len, inner;
    ops_split_axis(&n->shape, n->attr.axis, &outer, &len, &inner);
    if (inner == 1) {
        cuda_emit_rows_op(e, g, id);
        return;
    }
    const char *x = e->c.buf[n->in[0]], *y = e->c.buf[id], *T = dtype_c_type(n->dtype);
    char what[256];
    CEmitter *c = &e->c;
    cuda_describe(g, id, what, sizeof what);
    cuda_elementwise_begin(e, outer * inner, what);
    cemit_line(c, "const int64_t base = i / %lld * %lld + i %% %lld;", (long long)inner, (long long)(len * inner),
               (long long)inner);
    cemit_line(c, "const %s *xr = %s + base;", T, x);
    cemit_line(c, "%s *yr = %s + base;", T, y);
    cemit_softmax_row(c, n->op, T, len, inner); /* the C backend's row (codegen/c/ops/softmax.c) */
    cuda_elementwise_end(e);
}
