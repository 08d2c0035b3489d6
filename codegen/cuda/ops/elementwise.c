/* elementwise.c (CUDA backend): an unfused elementwise node as one thread
 * per output element, its operands read at their broadcast strides (the
 * merged loops of ops_loops, unravelled from the thread's linear index),
 * its value the op's C template (the C backend's, codegen/c/ops.def);
 * constants and iota the same way. */
#include <stdio.h>

#include "codegen/c/ops/c_ops.h"
#include "codegen/cuda/cuda_emit.h"

void cuda_emit_elementwise(CudaEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    OpsLoops L;
    elementwise_loops(g, n, &L);
    char what[256], var[ETCH_MAX_RANK][16], idx[256], operands[3][320];
    cuda_describe(g, id, what, sizeof what);
    cuda_elementwise_begin(e, shape_numel(&n->shape), what);
    cuda_unravel(e, "i", L.dim, L.rank, var);
    for (int k = 0; k < n->n_in; k++) {
        cemit_loops_index(&L, k, var, idx, sizeof idx);
        snprintf(operands[k], sizeof operands[k], "%s[%s]", e->c.buf[n->in[k]], idx);
    }
    StrBuf expr = {0};
    cemit_expand_template(&expr, c_op_table[n->op].c_expr, (const char *const[]){operands[0], operands[1], operands[2]},
                          n);
    cemit_line(&e->c, "%s[i] = (%s)%s;", e->c.buf[id], dtype_c_type(n->dtype), expr.s);
    sb_free(&expr);
    cuda_elementwise_end(e);
}

void cuda_emit_const(CudaEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    char what[256], lit[64];
    cuda_describe(g, id, what, sizeof what);
    cemit_literal(lit, sizeof lit, n->attr.value, n->dtype);
    cuda_elementwise_begin(e, shape_numel(&n->shape), what);
    cemit_line(&e->c, "%s[i] = %s;", e->c.buf[id], lit);
    cuda_elementwise_end(e);
}

void cuda_emit_iota(CudaEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    int64_t outer, len, inner;
    ops_split_axis(&n->shape, n->attr.axis, &outer, &len, &inner);
    char what[256];
    cuda_describe(g, id, what, sizeof what);
    cuda_elementwise_begin(e, shape_numel(&n->shape), what);
    cemit_line(&e->c, "%s[i] = (%s)((i / %lld) %% %lld);", e->c.buf[id], dtype_c_type(n->dtype), (long long)inner,
               (long long)len);
    cuda_elementwise_end(e);
}
