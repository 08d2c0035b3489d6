/* layout.c (C backend): reshape (a view: nothing, or one copy when the driver
 * gave it a buffer of its own) and transpose (a loop nest with literal strides). */
#include <stdio.h>

#include "codegen/c/ops/c_ops.h"

/* Reshape is a view: the driver gives it its operand's storage (op_is_view). */
void emit_reshape(CEmitter *e, const Graph *g, int id) {
    if (e->buf[id] != e->buf[g->nodes[id].in[0]])
        cemit_line(e, "memcpy(%s, %s, %zu);", e->buf[id], e->buf[g->nodes[id].in[0]],
                   (size_t)shape_numel(&g->nodes[id].shape) * dtype_size(g->nodes[id].dtype));
}

void emit_transpose(CEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    int64_t st[ETCH_MAX_RANK];
    transpose_strides(g, n, st);
    char v[ETCH_MAX_RANK][16], in_idx[256] = "", out_idx[256] = "";
    size_t il = 0, ol = 0;
    int64_t ost = 1, ostr[ETCH_MAX_RANK];
    for (int r = n->shape.rank - 1; r >= 0; r--) {
        ostr[r] = ost;
        ost *= n->shape.dim[r];
    }
    for (int r = 0; r < n->shape.rank; r++) {
        if (n->shape.dim[r] == 1) continue;
        cemit_for(e, v[r], sizeof v[r], n->shape.dim[r]);
        il += (size_t)snprintf(in_idx + il, sizeof in_idx - il, "%s%s * %lld", il ? " + " : "", v[r], (long long)st[r]);
        ol += (size_t)snprintf(out_idx + ol, sizeof out_idx - ol, "%s%s * %lld", ol ? " + " : "", v[r], (long long)ostr[r]);
    }
    cemit_line(e, "%s[%s] = %s[%s];", e->buf[id], ol ? out_idx : "0", e->buf[n->in[0]], il ? in_idx : "0");
    for (int r = 0; r < n->shape.rank; r++)
        if (n->shape.dim[r] != 1) cemit_close(e);
}
