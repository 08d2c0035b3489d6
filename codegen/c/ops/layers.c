/* layers.c (C backend): slice, concat and pad as memcpy/fill loops over
 * contiguous runs with literal sizes. */
#include <stdio.h>

#include "codegen/c/ops/c_ops.h"

void emit_slice(CEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    int64_t outer, len, inner;
    ops_split_axis(&g->nodes[n->in[0]].shape, n->attr.axis, &outer, &len, &inner);
    int64_t run = n->attr.length * inner;
    size_t bytes = (size_t)run * dtype_size(n->dtype);
    const char *y = e->buf[id], *x = e->buf[n->in[0]];
    if (outer == 1) {
        cemit_line(e, "memcpy(%s, %s + %lld, %zu);", y, x, (long long)(n->attr.start * inner), bytes);
        return;
    }
    char o[16];
    cemit_for(e, o, sizeof o, outer);
    cemit_line(e, "memcpy(%s + %s * %lld, %s + %s * %lld + %lld, %zu);", y, o, (long long)run, x, o,
               (long long)(len * inner), (long long)(n->attr.start * inner), bytes);
    cemit_close(e);
}

void emit_concat(CEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    int64_t outer, la, lb, inner;
    ops_split_axis(&g->nodes[n->in[0]].shape, n->attr.axis, &outer, &la, &inner);
    ops_split_axis(&g->nodes[n->in[1]].shape, n->attr.axis, &outer, &lb, &inner);
    int64_t ra = la * inner, rb = lb * inner;
    size_t es = dtype_size(n->dtype);
    const char *y = e->buf[id], *a = e->buf[n->in[0]], *b = e->buf[n->in[1]];
    char o[16] = "0";
    if (outer > 1) cemit_for(e, o, sizeof o, outer);
    cemit_line(e, "memcpy(%s + %s * %lld, %s + %s * %lld, %zu);", y, o, (long long)(ra + rb), a, o, (long long)ra,
               (size_t)ra * es);
    cemit_line(e, "memcpy(%s + %s * %lld + %lld, %s + %s * %lld, %zu);", y, o, (long long)(ra + rb), (long long)ra, b,
               o, (long long)rb, (size_t)rb * es);
    if (outer > 1) cemit_close(e);
}

/* Fills the result with the value, then copies the operand's rows (its last
 * dim, contiguous on both sides) to their padded positions. */
void emit_pad(CEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    const Shape *xs = &g->nodes[n->in[0]].shape;
    const char *y = e->buf[id], *x = e->buf[n->in[0]];
    char lit[64], v[ETCH_MAX_RANK][16], out_idx[320] = "", in_idx[320] = "";
    cemit_literal(lit, sizeof lit, n->attr.value, n->dtype);
    cemit_for(e, v[0], sizeof v[0], shape_numel(&n->shape));
    cemit_line(e, "%s[%s] = %s;", y, v[0], lit);
    cemit_close(e);
    size_t es = dtype_size(n->dtype);
    if (xs->rank == 0) {
        cemit_line(e, "memcpy(%s, %s, %zu);", y, x, es);
        return;
    }
    int64_t ost[ETCH_MAX_RANK], ist[ETCH_MAX_RANK], base = 0;
    shape_strides(&n->shape, ost);
    shape_strides(xs, ist);
    for (int i = 0; i < xs->rank; i++) base += n->attr.pad_before[i] * ost[i];
    size_t ol = (size_t)snprintf(out_idx, sizeof out_idx, "%lld", (long long)base), il = 0;
    int loops = 0;
    for (int i = 0; i + 1 < xs->rank; i++) {
        if (xs->dim[i] == 1) continue;
        cemit_for(e, v[i], sizeof v[i], xs->dim[i]);
        loops++;
        ol += (size_t)snprintf(out_idx + ol, sizeof out_idx - ol, " + %s * %lld", v[i], (long long)ost[i]);
        il += (size_t)snprintf(in_idx + il, sizeof in_idx - il, "%s%s * %lld", il ? " + " : "", v[i], (long long)ist[i]);
    }
    int64_t row = xs->dim[xs->rank - 1];
    cemit_line(e, "memcpy(%s + %s, %s + %s, %zu);", y, out_idx, x, il ? in_idx : "0", (size_t)row * es);
    while (loops--) cemit_close(e);
}
