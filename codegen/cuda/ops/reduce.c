/* reduce.c (CUDA backend): an unfused reduction. Rows of cooperating
 * threads (a warp or a block per output, a tree reduction: rowgroup.c) when
 * the innermost axis is reduced or the reduced extent is long and the outputs
 * few (cuda_rows_pay); else one thread per output element walking its reduced
 * elements in order into a double accumulator (the C backend's and the eager
 * executor's order and precision), neighbouring threads reading neighbouring
 * kept elements. */
#include <stdio.h>

#include "codegen/cuda/cuda_emit.h"

void cuda_emit_reduce(CudaEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    bool reduced[ETCH_MAX_RANK] = {false};
    for (int i = 0; i < n->attr.n_axes; i++) reduced[n->attr.axes[i]] = true;
    if (cuda_rows_pay(&g->nodes[n->in[0]].shape, reduced)) {
        cuda_emit_rows_op(e, g, id);
        return;
    }
    ReduceLoops L;
    reduce_loops(g, n, &L);
    char what[256], kv[ETCH_MAX_RANK][16], rv[ETCH_MAX_RANK][16], idx[320] = "";
    cuda_describe(g, id, what, sizeof what);
    cuda_elementwise_begin(e, shape_numel(&n->shape), what);
    cuda_unravel(e, "i", L.kept_dim, L.n_kept, kv);
    cemit_line(&e->c, "double acc = %s;", n->op == OP_REDUCE_MAX ? "-INFINITY" : "0.0");
    for (int k = 0; k < L.n_red; k++) cemit_for(&e->c, rv[k], sizeof rv[k], L.red_dim[k]);
    size_t len = 0;
    for (int k = 0; k < L.n_kept; k++)
        if (L.kept_dim[k] > 1)
            len += (size_t)snprintf(idx + len, sizeof idx - len, "%s%s * %lld", len ? " + " : "", kv[k],
                                    (long long)L.kept_stride[k]);
    for (int k = 0; k < L.n_red; k++)
        len += (size_t)snprintf(idx + len, sizeof idx - len, "%s%s * %lld", len ? " + " : "", rv[k],
                                (long long)L.red_stride[k]);
    cemit_line(&e->c, "const double v = (double)%s[%s];", e->c.buf[n->in[0]], len ? idx : "0");
    if (n->op == OP_REDUCE_MAX) cemit_line(&e->c, "acc = (v > acc || v != v) ? v : acc;");
    else cemit_line(&e->c, "acc += v;");
    for (int k = 0; k < L.n_red; k++) cemit_close(&e->c);
    if (n->op == OP_REDUCE_MEAN) cemit_line(&e->c, "acc /= %lld.0;", (long long)L.red_count);
    cemit_line(&e->c, "%s[i] = (%s)acc;", e->c.buf[id], dtype_c_type(n->dtype));
    cuda_elementwise_end(e);
}
