/* layers.c (CUDA backend): slice, concat and pad (the C backend's
 * codegen/c/ops/layers.c, the reference kernels of ir/ops/layers.c), one
 * thread per output element reading the operand element it copies (or, for
 * pad, the fill value outside the operand). A scan's result is cut into its
 * outputs by slices, and its gradient pads, so the loop op needs them. */
#include <stdio.h>

#include "codegen/cuda/cuda_emit.h"

void cuda_emit_slice(CudaEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    int64_t outer, len, inner;
    ops_split_axis(&g->nodes[n->in[0]].shape, n->attr.axis, &outer, &len, &inner);
    long long run = n->attr.length * inner;
    char what[256];
    cuda_describe(g, id, what, sizeof what);
    cuda_elementwise_begin(e, shape_numel(&n->shape), what);
    cemit_line(&e->c, "%s[i] = %s[i / %lld * %lld + %lld + i %% %lld];", e->c.buf[id], e->c.buf[n->in[0]], run,
               (long long)(len * inner), (long long)(n->attr.start * inner), run);
    cuda_elementwise_end(e);
}

void cuda_emit_concat(CudaEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    int64_t outer, la, lb, inner;
    ops_split_axis(&g->nodes[n->in[0]].shape, n->attr.axis, &outer, &la, &inner);
    ops_split_axis(&g->nodes[n->in[1]].shape, n->attr.axis, &outer, &lb, &inner);
    long long ra = la * inner, rb = lb * inner;
    char what[256];
    cuda_describe(g, id, what, sizeof what);
    cuda_elementwise_begin(e, shape_numel(&n->shape), what);
    cemit_line(&e->c, "const int64_t o = i / %lld, r = i %% %lld;", ra + rb, ra + rb);
    cemit_line(&e->c, "%s[i] = r < %lld ? %s[o * %lld + r] : %s[o * %lld + r - %lld];", e->c.buf[id], ra,
               e->c.buf[n->in[0]], ra, e->c.buf[n->in[1]], rb, ra);
    cuda_elementwise_end(e);
}

void cuda_emit_pad(CudaEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    const Shape *xs = &g->nodes[n->in[0]].shape;
    int64_t ist[ETCH_MAX_RANK];
    shape_strides(xs, ist);
    char what[256], lit[64], var[ETCH_MAX_RANK][16], inside[512] = "1", at[512] = "0";
    size_t il = 0, al = 0;
    cemit_literal(lit, sizeof lit, n->attr.value, n->dtype);
    cuda_describe(g, id, what, sizeof what);
    cuda_elementwise_begin(e, shape_numel(&n->shape), what);
    cuda_unravel(e, "i", n->shape.dim, n->shape.rank, var);
    for (int d = 0; d < xs->rank; d++) { /* the operand's index along d: var - pad_before */
        long long before = n->attr.pad_before[d];
        if (n->shape.dim[d] == xs->dim[d] && before == 0) {
            if (xs->dim[d] > 1)
                al += (size_t)snprintf(at + al, sizeof at - al, "%s%s * %lld", al ? " + " : "", var[d], (long long)ist[d]);
            continue;
        }
        il += (size_t)snprintf(inside + il, sizeof inside - il, "%s%s >= %lld && %s < %lld", il ? " && " : "", var[d],
                               before, var[d], before + xs->dim[d]);
        al += (size_t)snprintf(at + al, sizeof at - al, "%s(%s - %lld) * %lld", al ? " + " : "", var[d], before,
                               (long long)ist[d]);
    }
    cemit_line(&e->c, "%s[i] = %s ? %s[%s] : %s;", e->c.buf[id], inside, e->c.buf[n->in[0]], at, lit);
    cuda_elementwise_end(e);
}
