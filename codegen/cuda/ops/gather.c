/* gather.c (CUDA backend): gather_rows and its gradient scatter_add_rows,
 * with the semantics of the reference kernels (ir/ops/gather.c): an
 * out-of-range id gives a zero row in the gather and is dropped by the
 * scatter, and no thread reads or writes outside a tensor.
 *
 * The scatter uses no atomics: one thread per element (r, j) of the result
 * walks the ids in order and sums column j of the rows whose id is r, so
 * every element is the sum the eager executor forms, in its order, bit for
 * bit (and the same on every run). The price is that each thread reads all
 * N ids (cached: the threads of a row read the same id at once): V * R * N
 * comparisons for N * R additions. */
#include "codegen/cuda/cuda_emit.h"

void cuda_emit_gather_rows(CudaEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    const Shape *ws = &g->nodes[n->in[0]].shape;
    long long V = ws->dim[0], R = shape_numel(ws) / V;
    const char *y = e->c.buf[id], *w = e->c.buf[n->in[0]], *ids = e->c.buf[n->in[1]];
    char what[256];
    cuda_describe(g, id, what, sizeof what);
    cuda_elementwise_begin(e, shape_numel(&n->shape), what);
    cemit_line(&e->c, "const int64_t r = (int64_t)%s[i / %lld];", ids, R);
    cemit_line(&e->c, "%s[i] = r >= 0 && r < %lld ? %s[r * %lld + i %% %lld] : (%s)0; /* out-of-range id: a zero row */",
               y, V, w, R, R, dtype_c_type(n->dtype));
    cuda_elementwise_end(e);
}

void cuda_emit_scatter_add_rows(CudaEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    long long V = n->shape.dim[0], R = shape_numel(&n->shape) / V, N = shape_numel(&g->nodes[n->in[1]].shape);
    const char *y = e->c.buf[id], *gy = e->c.buf[n->in[0]], *ids = e->c.buf[n->in[1]], *T = dtype_c_type(n->dtype);
    char what[256];
    cuda_describe(g, id, what, sizeof what);
    cuda_elementwise_begin(e, V * R, what);
    cemit_line(&e->c, "const int64_t r = i / %lld, j = i %% %lld;", R, R);
    cemit_line(&e->c, "%s acc = 0;", T);
    cemit_line(&e->c, "for (int64_t k = 0; k < %lld; k++) /* in id order, as eager; out-of-range ids match no row */", N);
    cemit_line(&e->c, "    if ((int64_t)%s[k] == r) acc += %s[k * %lld + j];", ids, gy, R);
    cemit_line(&e->c, "%s[i] = acc;", y);
    cuda_elementwise_end(e);
}
