/* layers.c (CUDA backend): slice, concat and pad, one thread per output
 * element: each finds the element it copies (or, for pad, whether it is
 * padding) from its linear index, with every size a literal. The C backend
 * copies contiguous runs with memcpy (codegen/c/ops/layers.c); on the GPU a
 * thread per element gives the same coalesced reads and writes. */
#include <stdio.h>

#include "codegen/cuda/cuda_emit.h"

/* slice along an axis: output [outer, length * inner] from input rows of
 * len * inner, starting at start * inner */
void cuda_emit_slice(CudaEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    int64_t outer, len, inner;
    ops_split_axis(&g->nodes[n->in[0]].shape, n->attr.axis, &outer, &len, &inner);
    long long run = n->attr.length * inner, row = len * inner, skip = n->attr.start * inner;
    char what[256];
    cuda_describe(g, id, what, sizeof what);
    cuda_elementwise_begin(e, shape_numel(&n->shape), what);
    if (outer == 1) cemit_line(&e->c, "%s[i] = %s[i + %lld];", e->c.buf[id], e->c.buf[n->in[0]], skip);
    else
        cemit_line(&e->c, "%s[i] = %s[i / %lld * %lld + %lld + i %% %lld];", e->c.buf[id], e->c.buf[n->in[0]], run, row,
                   skip, run);
    cuda_elementwise_end(e);
}

/* concat of a [outer, la * inner] and b [outer, lb * inner] along the axis */
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

/* pad: an output element inside the operand's box copies it, any other is
 * the value; only the padded dims are tested */
void cuda_emit_pad(CudaEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    const Shape *xs = &g->nodes[n->in[0]].shape;
    int64_t ist[ETCH_MAX_RANK];
    shape_strides(xs, ist);
    char what[256], lit[64], var[ETCH_MAX_RANK][16], inside[512] = "", idx[512] = "";
    cuda_describe(g, id, what, sizeof what);
    cemit_literal(lit, sizeof lit, n->attr.value, n->dtype);
    cuda_elementwise_begin(e, shape_numel(&n->shape), what);
    cuda_unravel(e, "i", n->shape.dim, n->shape.rank, var);
    size_t il = 0, xl = 0;
    for (int d = 0; d < xs->rank; d++) {
        long long before = n->attr.pad_before[d], after = n->attr.pad_after[d];
        if (before || after)
            il += (size_t)snprintf(inside + il, sizeof inside - il, "%s%s >= %lld && %s < %lld", il ? " && " : "",
                                   var[d], before, var[d], before + xs->dim[d]);
        if (xs->dim[d] != 1)
            xl += (size_t)snprintf(idx + xl, sizeof idx - xl, "%s(%s - %lld) * %lld", xl ? " + " : "", var[d], before,
                                   (long long)ist[d]);
    }
    const char *src = xl ? idx : "0";
    if (il) cemit_line(&e->c, "%s[i] = %s ? %s[%s] : %s;", e->c.buf[id], inside, e->c.buf[n->in[0]], src, lit);
    else cemit_line(&e->c, "%s[i] = %s[%s];", e->c.buf[id], e->c.buf[n->in[0]], src);
    cuda_elementwise_end(e);
}
