/* ops.c: the op table, expanded from ops.def, plus helpers the op families share. */
#include <string.h>

#include "ir/ops/ops_impl.h"

const OpInfo op_table[OP_COUNT] = {
#define OP(e, nm, ar, cl, at, sh, ev, sc, vj) \
    [OP_##e] = {.name = nm, .arity = ar, .cls = cl, .attrs = at, .shape = sh, .eval = ev, .scalar = sc, .vjp = vj},
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

bool reduce_axes_trailing(const Node *n, int rank, int *first) {
    bool seen[ETCH_MAX_RANK] = {false};
    int k = rank;
    for (int i = 0; i < n->attr.n_axes; i++) {
        int ax = n->attr.axes[i];
        if (ax < 0 || ax >= rank || seen[ax]) return false;
        seen[ax] = true;
        k = ax < k ? ax : k;
    }
    *first = k;
    return n->attr.n_axes > 0 && n->attr.n_axes == rank - k;
}

bool op_arity_ok(OpKind op, int n) {
    int a = op_table[op].arity;
    return a < 0 ? n >= 0 && n <= ETCH_MAX_OPERANDS : n == a;
}

void ops_loops(const Shape *out, const Shape *const *ins, int n, OpsLoops *L) {
    int64_t st[OPS_MAX_OPERANDS][ETCH_MAX_RANK];
    for (int k = 0; k < n; k++) ops_broadcast_strides(ins[k], out, st[k]);
    ops_loops_strided(out, (const int64_t (*)[ETCH_MAX_RANK])st, n, L);
}

void ops_loops_strided(const Shape *out, const int64_t (*st)[ETCH_MAX_RANK], int n, OpsLoops *L) {
    L->rank = 0;
    L->n = n;
    for (int i = 0; i < out->rank; i++) {
        int64_t d = out->dim[i];
        if (d == 1) continue; /* size-1 dims contribute nothing to indexing */
        bool merge = L->rank > 0;
        for (int k = 0; merge && k < n; k++) merge = L->stride[k][L->rank - 1] == st[k][i] * d;
        if (merge) {
            L->dim[L->rank - 1] *= d;
            for (int k = 0; k < n; k++) L->stride[k][L->rank - 1] = st[k][i];
        } else {
            L->dim[L->rank] = d;
            for (int k = 0; k < n; k++) L->stride[k][L->rank] = st[k][i];
            L->rank++;
        }
    }
}
