/* source.c (C backend): sources. Inputs and params are bound to storage by
 * the driver and emit nothing; a constant fills its buffer; iota writes each
 * element's index along its axis. */
#include "codegen/c/ops/c_ops.h"

void emit_source(CEmitter *e, const Graph *g, int id) { (void)e, (void)g, (void)id; }

void emit_const(CEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    char lit[64], v[16];
    cemit_literal(lit, sizeof lit, n->attr.value, n->dtype);
    int64_t numel = shape_numel(&n->shape);
    if (numel == 1) {
        cemit_line(e, "%s[0] = %s;", e->buf[id], lit);
        return;
    }
    cemit_for(e, v, sizeof v, numel);
    cemit_line(e, "%s[%s] = %s;", e->buf[id], v, lit);
    cemit_close(e);
}

void emit_iota(CEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    int64_t outer, len, inner;
    ops_split_axis(&n->shape, n->attr.axis, &outer, &len, &inner);
    char v[16];
    cemit_for(e, v, sizeof v, shape_numel(&n->shape));
    cemit_line(e, "%s[%s] = (%s)((%s / %lld) %% %lld);", e->buf[id], v, dtype_c_type(n->dtype), v, (long long)inner,
               (long long)len);
    cemit_close(e);
}
