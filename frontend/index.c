/* index.c: subscripts, `a[...]`.
 *
 * Lists and tuples take one subscript: an index (negative counts from the
 * end) or a slice `a:b:c` with Python's meaning (bounds clamped, any nonzero
 * step), giving a list or tuple.
 *
 * Tensors take one subscript per dim, NumPy/PyTorch style, every part a
 * compile-time integer: `x[i]`, `x[a:b]`, `x[:, -1]`, `x[..., 1:3]`,
 * `x[::2]`. Missing trailing subscripts and `...` (at most one) stand for
 * whole dims. An integer index selects one element of its dim and drops the
 * dim; a slice keeps it. Unlike Python, nothing is clamped: an index or a
 * slice bound outside the dim, or an empty slice, is an error naming the
 * value, the axis and its size (etch tensors are never empty); steps must be
 * positive (as in PyTorch). The result is built from `slice` nodes (views in
 * the IR's sense: layout ops, no arithmetic) and one `reshape` dropping the
 * indexed dims, so gradients come from their VJP rules; a step of s takes
 * [start, start + n*s) (zero-padded at the end when the dim is shorter),
 * reshapes that dim into [n, s] and keeps column 0. */
#include <string.h>

#include "frontend/elab.h"

/* One subscript of a tensor, evaluated. */
typedef struct Sub {
    enum { SUB_INDEX, SUB_SLICE, SUB_ELLIPSIS } kind;
    int64_t v[3];      /* SUB_INDEX: v[0]; SUB_SLICE: start, stop, step */
    bool has[3];       /* SUB_SLICE: which of them were written */
    SrcLoc loc[3];     /* where each part (or the index) was written */
} Sub;

static const char *type_of(Elab *e, int id) {
    char buf[96];
    const Node *n = &e->graph->nodes[id];
    return arena_strdup(e->arena, type_format(buf, sizeof buf, n->dtype, &n->shape));
}

/* A compile-time integer subscript part; a tensor gets a pointer to what does exist. */
static bool sub_int(Elab *e, Scope *s, const Expr *x, const char *what, int64_t *out) {
    Value v;
    if (!eval_expr(e, s, x, &v)) return false;
    if (v.kind == V_TENSOR)
        return diag_error(e->diag, v.loc,
                          "%s must be a compile-time integer, got %s (tensors cannot index tensors; embedding() "
                          "picks rows by integer ids)",
                          what, value_describe(e, &v));
    return value_int(e, &v, what, out);
}

static bool eval_sub(Elab *e, Scope *s, const Expr *x, Sub *out) {
    *out = (Sub){.kind = SUB_INDEX, .loc = {x->loc, x->loc, x->loc}};
    if (x->kind == EX_ELLIPSIS) {
        out->kind = SUB_ELLIPSIS;
        return true;
    }
    if (x->kind != EX_SLICE) return sub_int(e, s, x, "an index", &out->v[0]);
    out->kind = SUB_SLICE;
    const Expr *parts[3] = {x->lhs, x->rhs, x->step};
    static const char *const what[3] = {"a slice start", "a slice end", "a slice step"};
    for (int k = 0; k < 3; k++) {
        if (!parts[k]) continue;
        out->has[k] = true;
        out->loc[k] = parts[k]->loc;
        if (!sub_int(e, s, parts[k], what[k], &out->v[k])) return false;
    }
    return true;
}

/* ---- tensors ---- */

static int slice_node(Elab *e, int x, int axis, int64_t start, int64_t len, SrcLoc loc) {
    if (start == 0 && len == e->graph->nodes[x].shape.dim[axis]) return x;
    Value v;
    NodeAttrs a = {.axis = axis, .start = start, .length = len};
    return add_op(e, OP_SLICE, &x, 1, &a, loc, &v) ? v.id : -1;
}

static int reshape_node(Elab *e, int x, Shape sh, SrcLoc loc) {
    if (shape_equal(&e->graph->nodes[x].shape, &sh)) return x;
    Value v;
    NodeAttrs a = {.shape = sh};
    return add_op(e, OP_RESHAPE, &x, 1, &a, loc, &v) ? v.id : -1;
}

/* Elements start, start + step, ... (n of them) of dim `axis`, step > 1. */
static int strided(Elab *e, int x, int axis, int64_t start, int64_t step, int64_t n, SrcLoc loc) {
    const Shape in = e->graph->nodes[x].shape;
    int64_t span = n * step, have = in.dim[axis] - start < span ? in.dim[axis] - start : span;
    x = slice_node(e, x, axis, start, have, loc);
    if (x >= 0 && have < span) { /* the last group is short: pad it to a whole one */
        Value v;
        NodeAttrs pa = {0};
        pa.pad_after[axis] = span - have;
        x = add_op(e, OP_PAD, &x, 1, &pa, loc, &v) ? v.id : -1;
    }
    Shape grouped = {.rank = in.rank + 1};
    for (int i = 0, j = 0; i < in.rank; i++) {
        grouped.dim[j++] = i == axis ? n : in.dim[i];
        if (i == axis) grouped.dim[j++] = step;
    }
    if (x >= 0) x = reshape_node(e, x, grouped, loc);
    if (x >= 0) x = slice_node(e, x, axis + 1, 0, 1, loc);
    Shape kept = in;
    kept.dim[axis] = n;
    return x >= 0 ? reshape_node(e, x, kept, loc) : -1;
}

/* Normalizes a slice bound b of a dim of `size` (negative counts from the end) into [0, size]. */
static bool slice_bound(Elab *e, const Sub *sb, int k, int axis, int x, int64_t size, int64_t *out) {
    int64_t b = sb->v[k], n = b < 0 ? b + size : b;
    if (n < 0 || n > size)
        return diag_error(e->diag, sb->loc[k],
                          "slice %s %lld is out of range for axis %d of %s (size %lld; bounds are not clamped)",
                          k == 0 ? "start" : "end", (long long)b, axis, type_of(e, x), (long long)size);
    *out = n;
    return true;
}

static bool index_tensor(Elab *e, int x, const Sub *subs, int n_subs, SrcLoc loc, Value *out) {
    const Shape in = e->graph->nodes[x].shape;
    int n_dims = 0, n_ellipsis = 0;
    for (int i = 0; i < n_subs; i++) {
        if (subs[i].kind != SUB_ELLIPSIS) n_dims++;
        else if (++n_ellipsis > 1) return diag_error(e->diag, subs[i].loc[0], "an index can have only one '...'");
    }
    if (n_dims > in.rank)
        return diag_error(e->diag, loc, "too many indices for %s: %d subscript%s for %d dim%s", type_of(e, x), n_dims,
                          n_dims == 1 ? "" : "s", in.rank, in.rank == 1 ? "" : "s");
    bool drop[ETCH_MAX_RANK] = {false};
    int cur = x, axis = 0;
    for (int i = 0; i < n_subs && cur >= 0; i++) {
        const Sub *sb = &subs[i];
        if (sb->kind == SUB_ELLIPSIS) {
            axis += in.rank - n_dims;
            continue;
        }
        int64_t size = in.dim[axis];
        if (sb->kind == SUB_INDEX) {
            int64_t j = sb->v[0] < 0 ? sb->v[0] + size : sb->v[0];
            if (j < 0 || j >= size)
                return diag_error(e->diag, sb->loc[0],
                                  "index %lld is out of range for axis %d of %s (size %lld; valid indices are "
                                  "%lld to %lld)",
                                  (long long)sb->v[0], axis, type_of(e, x), (long long)size, (long long)-size,
                                  (long long)size - 1);
            cur = slice_node(e, cur, axis, j, 1, loc);
            drop[axis++] = true;
            continue;
        }
        int64_t start = 0, stop = size, step = sb->has[2] ? sb->v[2] : 1;
        if (step < 1)
            return diag_error(e->diag, sb->loc[2], "slice step must be positive, got %lld", (long long)step);
        if ((sb->has[0] && !slice_bound(e, sb, 0, axis, x, size, &start)) ||
            (sb->has[1] && !slice_bound(e, sb, 1, axis, x, size, &stop)))
            return false;
        if (stop <= start)
            return diag_error(e->diag, sb->loc[sb->has[0] ? 0 : 1],
                              "slice [%lld:%lld] of axis %d of %s (size %lld) is empty; tensors cannot be empty",
                              (long long)start, (long long)stop, axis, type_of(e, x), (long long)size);
        int64_t n = (stop - start + step - 1) / step;
        if (step > 1 && n > 1 && in.rank == ETCH_MAX_RANK)
            return diag_error(e->diag, sb->loc[2], "a slice step on a tensor of %d dims is not supported",
                              ETCH_MAX_RANK);
        cur = step == 1 || n == 1 ? slice_node(e, cur, axis, start, step == 1 ? stop - start : 1, loc)
                                  : strided(e, cur, axis, start, step, n, loc);
        axis++;
    }
    if (cur < 0) return false;
    Shape sh = {0};
    const Shape *now = &e->graph->nodes[cur].shape;
    for (int i = 0; i < now->rank; i++)
        if (!drop[i]) sh.dim[sh.rank++] = now->dim[i];
    cur = reshape_node(e, cur, sh, loc);
    if (cur < 0) return false;
    *out = (Value){.kind = V_TENSOR, .id = cur, .loc = loc};
    return true;
}

/* ---- lists and tuples ---- */

static int64_t clamp(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

static bool index_sequence(Elab *e, const Value *v, const Sub *sb, const Expr *sub, SrcLoc loc, Value *out) {
    int64_t n = v->n_items;
    if (sb->kind == SUB_INDEX) {
        int64_t j = sb->v[0] < 0 ? sb->v[0] + n : sb->v[0];
        if (j < 0 || j >= n)
            return diag_error(e->diag, sub->loc, "index %lld is out of range for %s", (long long)sb->v[0],
                              value_describe(e, v));
        *out = v->items[j];
        out->loc = loc;
        return true;
    }
    /* Python's slice semantics: bounds clamped, a negative step walks backward */
    int64_t step = sb->has[2] ? sb->v[2] : 1;
    if (step == 0) return diag_error(e->diag, sb->loc[2], "slice step cannot be zero");
    int64_t lo = step > 0 ? 0 : -1, hi = step > 0 ? n : n - 1, b[2];
    for (int k = 0; k < 2; k++) {
        if (!sb->has[k]) {
            b[k] = (k == 0) == (step > 0) ? lo : hi;
            continue;
        }
        b[k] = clamp(sb->v[k] < 0 ? sb->v[k] + n : sb->v[k], lo, hi);
    }
    Value *items = arena_alloc(e->arena, sizeof(Value) * (size_t)(n ? n : 1));
    int m = 0;
    for (int64_t i = b[0]; step > 0 ? i < b[1] : i > b[1]; i += step) items[m++] = v->items[i];
    *out = (Value){.kind = v->kind, .items = items, .n_items = m, .loc = loc};
    return true;
}

bool eval_index(Elab *e, Scope *s, const Expr *x, Value *out) {
    Value v;
    if (!eval_expr(e, s, x->lhs, &v)) return false;
    if (v.kind != V_TENSOR && v.kind != V_LIST && v.kind != V_TUPLE)
        return diag_error(e->diag, x->loc, "%s cannot be indexed", value_describe(e, &v));
    Sub *subs = arena_alloc(e->arena, sizeof(Sub) * (size_t)x->n_items);
    for (int i = 0; i < x->n_items; i++)
        if (!eval_sub(e, s, x->items[i], &subs[i])) return false;
    if (v.kind == V_TENSOR) return index_tensor(e, v.id, subs, x->n_items, x->loc, out);
    if (x->n_items != 1 || subs[0].kind == SUB_ELLIPSIS)
        return diag_error(e->diag, x->loc, "%s takes one index or slice, got %s", value_describe(e, &v),
                          subs[0].kind == SUB_ELLIPSIS ? "'...'" : arena_printf(e->arena, "%d", x->n_items));
    return index_sequence(e, &v, &subs[0], x->items[0], x->loc, out);
}
