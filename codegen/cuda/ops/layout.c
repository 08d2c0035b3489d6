/* layout.c (CUDA backend): a reshape that could not be a view (a copy) and
 * transpose, one thread per output element. */
#include <stdio.h>

#include "codegen/cuda/cuda_emit.h"

void cuda_emit_copy_view(CudaEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    if (e->c.buf[id] == e->c.buf[n->in[0]]) return; /* a view: same storage */
    char what[256];
    cuda_describe(g, id, what, sizeof what);
    cuda_elementwise_begin(e, shape_numel(&n->shape), what);
    cemit_line(&e->c, "%s[i] = %s[i];", e->c.buf[id], e->c.buf[n->in[0]]);
    cuda_elementwise_end(e);
}

void cuda_emit_transpose(CudaEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    int64_t st[ETCH_MAX_RANK];
    transpose_strides(g, n, st);
    char what[256], var[ETCH_MAX_RANK][16], idx[256] = "0";
    cuda_describe(g, id, what, sizeof what);
    cuda_elementwise_begin(e, shape_numel(&n->shape), what);
    cuda_unravel(e, "i", n->shape.dim, n->shape.rank, var);
    size_t len = 0;
    for (int r = 0; r < n->shape.rank; r++)
        if (n->shape.dim[r] != 1)
            len += (size_t)snprintf(idx + len, sizeof idx - len, "%s%s * %lld", len ? " + " : "", var[r], (long long)st[r]);
    if (!len) snprintf(idx, sizeof idx, "0");
    cemit_line(&e->c, "%s[i] = %s[%s];", e->c.buf[id], e->c.buf[n->in[0]], idx);
    cuda_elementwise_end(e);
}
