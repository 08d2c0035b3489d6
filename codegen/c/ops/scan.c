/* scan.c (C backend): the body is a static function of the model
 * (cemit_subgraph), called once per step; carries ping-pong between two
 * buffers in the context's scratch; sequences are read and per-step outputs written at the
 * step's offset. */
#include "codegen/c/ops/c_ops.h"

void emit_scan(CEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    const Graph *B = n->attr.body;
    int nc = n->attr.n_carry, nx = n->attr.n_xs;
    ScanLayout L;
    scan_layout(g, n, &L);
    const char *fn = cemit_subgraph(e, B);
    const char *T = dtype_c_type(n->dtype);
    int64_t carry_numel = nc ? L.off[nc - 1] + L.numel[nc - 1] : 0;
    if (nc)
        cemit_line(e, "%s (*const carry)[%lld] = (%s (*)[%lld])%s;", T, (long long)carry_numel, T,
                   (long long)carry_numel, cemit_scratch(e, 2 * carry_numel * (int64_t)dtype_size(n->dtype)));
    char t[16];
    cemit_for(e, t, sizeof t, L.T);
    if (n->attr.reverse) cemit_line(e, "const int64_t s = %lld - %s;", (long long)L.T - 1, t);
    else cemit_line(e, "const int64_t s = %s;", t);
    cemit_line(e, "(void)s;");
    StrBuf call = {0};
    sb_printf(&call, "%s(", fn);
    for (int k = 0; k < n->n_in; k++) {
        const char *ct = dtype_c_type(g->nodes[n->in[k]].dtype);
        const char *sep = k ? ", " : "";
        if (k < nc)
            sb_printf(&call, "%s%s ? carry[(%s + 1) & 1] + %lld : (const %s *)%s", sep, t, t, (long long)L.off[k], ct,
                      e->buf[n->in[k]]);
        else if (k < nc + nx)
            sb_printf(&call, "%s%s + s * %lld", sep, e->buf[n->in[k]], (long long)shape_numel(&B->nodes[B->inputs[k]].shape));
        else
            sb_printf(&call, "%s%s", sep, e->buf[n->in[k]]);
    }
    for (int k = 0; k < B->n_outputs; k++) {
        const char *sep = k || n->n_in ? ", " : "";
        if (k < nc) sb_printf(&call, "%scarry[%s & 1] + %lld", sep, t, (long long)L.off[k]);
        else sb_printf(&call, "%s%s + %lld + s * %lld", sep, e->buf[id], (long long)L.off[k], (long long)L.numel[k]);
    }
    sb_puts(&call, ");");
    cemit_line(e, "%s", call.s);
    sb_free(&call);
    cemit_close(e);
    if (nc)
        cemit_line(e, "memcpy(%s, carry[%lld], %lld * sizeof(%s));", e->buf[id], (long long)((L.T - 1) & 1),
                   (long long)carry_numel, T);
}
