/* ops.c: the op table, expanded from ops.def, plus helpers the op families share. */
#include <string.h>

#include "ir/ops/ops_impl.h"

const OpInfo op_table[OP_COUNT] = {
#define OP(e, nm, ar, cl, sh, ev, em, sc, cx, vj) \
    [OP_##e] = {.name = nm, .arity = ar, .cls = cl, .shape = sh, .eval = ev, .emit_c = em, .scalar = sc, .c_expr = cx, .vjp = vj},
#include "ir/ops.def"
#undef OP
};

OpKind op_from_name(const char *name) {
    for (int op = 0; op < OP_COUNT; op++)
        if (strcmp(op_table[op].name, name) == 0) return (OpKind)op;
    return OP_COUNT;
}

const char *ops_type_str(char *buf, const Graph *g, int id) {
    return type_format(buf, 96, g->nodes[id].dtype, &g->nodes[id].shape);
}

void ops_broadcast_strides(const Shape *in, const Shape *out, int64_t *strides) {
    int64_t own[ETCH_MAX_RANK];
    shape_strides(in, own);
    int off = out->rank - in->rank;
    for (int i = 0; i < out->rank; i++) {
        int k = i - off;
        strides[i] = (k < 0 || in->dim[k] == 1) ? 0 : own[k];
    }
}

void ops_split_axis(const Shape *s, int axis, int64_t *outer, int64_t *len, int64_t *inner) {
    *outer = *inner = 1;
    for (int i = 0; i < axis; i++) *outer *= s->dim[i];
    *len = s->dim[axis];
    for (int i = axis + 1; i < s->rank; i++) *inner *= s->dim[i];
}

bool op_is_view(OpKind op) { return op == OP_RESHAPE; }
