/* gather.c (C backend): gather_rows copies a row per id (a zero row for an
 * out-of-range id); scatter_add_rows sums rows back (dropping such ids), as
 * the reference kernels of ir/ops/gather.c do. */
#include "codegen/c/ops/c_ops.h"

void emit_gather_rows(CEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    const Shape *ws = &g->nodes[n->in[0]].shape;
    int64_t V = ws->dim[0], R = shape_numel(ws) / V, N = shape_numel(&g->nodes[n->in[1]].shape);
    size_t row = (size_t)R * dtype_size(n->dtype);
    const char *y = e->buf[id], *w = e->buf[n->in[0]], *ids = e->buf[n->in[1]];
    char i[16];
    cemit_for(e, i, sizeof i, N);
    cemit_line(e, "const int64_t r = (int64_t)%s[%s];", ids, i);
    cemit_line(e, "if (r >= 0 && r < %lld) memcpy(%s + %s * %lld, %s + r * %lld, %zu);", (long long)V, y, i,
               (long long)R, w, (long long)R, row);
    cemit_line(e, "else memset(%s + %s * %lld, 0, %zu); /* out-of-range id: a zero row */", y, i, (long long)R, row);
    cemit_close(e);
}

void emit_scatter_add_rows(CEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    int64_t V = n->shape.dim[0], R = shape_numel(&n->shape) / V, N = shape_numel(&g->nodes[n->in[1]].shape);
    const char *y = e->buf[id], *gy = e->buf[n->in[0]], *ids = e->buf[n->in[1]];
    char i[16], j[16];
    cemit_line(e, "memset(%s, 0, %zu);", y, (size_t)shape_numel(&n->shape) * dtype_size(n->dtype));
    cemit_for(e, i, sizeof i, N);
    cemit_line(e, "const int64_t r = (int64_t)%s[%s];", ids, i);
    cemit_line(e, "if (r < 0 || r >= %lld) continue; /* out-of-range id: dropped */", (long long)V);
    cemit_for(e, j, sizeof j, R);
    cemit_line(e, "%s[r * %lld + %s] += %s[%s * %lld + %s];", y, (long long)R, j, gy, i, (long long)R, j);
    cemit_close(e);
    cemit_close(e);
}
