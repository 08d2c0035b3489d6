/* layers.c: the layout ops sequence and attention layers need: slice (a
 * contiguous range along one axis, step 1), pad (constant padding before and
 * after every dim) and concat (two operands along one axis; the front end
 * chains longer lists). Each is the other's gradient: slice <- pad,
 * pad <- slices, concat <- two slices. The kernels copy whole contiguous runs
 * (memcpy) in both the reference and the emitted code. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ir/ops/ops_impl.h"

/* ---- shape rules ---- */

static bool check_axis(Graph *g, Node *n, int operand, Diag *d) {
    const Node *x = &g->nodes[n->in[operand]];
    char a[96];
    if (x->shape.rank == 0)
        return diag_error(d, n->loc, "'%s' needs a tensor with at least one dim, got %s", op_table[n->op].name,
                          ops_type_str(a, g, n->in[operand]));
    if (n->attr.axis < 0 || n->attr.axis >= x->shape.rank)
        return diag_error(d, n->loc, "'%s' axis %d is out of range for %s (rank %d)", op_table[n->op].name,
                          n->attr.axis, ops_type_str(a, g, n->in[operand]), x->shape.rank);
    return true;
}

bool shape_slice(Graph *g, Node *n, Diag *d) {
    if (!check_axis(g, n, 0, d)) return false;
    const Node *x = &g->nodes[n->in[0]];
    int64_t len = x->shape.dim[n->attr.axis], s = n->attr.start, l = n->attr.length;
    if (s < 0 || l < 1 || s > len - l) {
        char a[96];
        return diag_error(d, n->loc,
                          "cannot slice %lld elements starting at %lld along axis %d of %s (that dim has %lld)",
                          (long long)l, (long long)s, n->attr.axis, ops_type_str(a, g, n->in[0]), (long long)len);
    }
    n->dtype = x->dtype;
    n->shape = x->shape;
    n->shape.dim[n->attr.axis] = l;
    return true;
}

#define PAD_MAX ((int64_t)1 << 40) /* keeps every padded dim far from overflow */

bool shape_pad(Graph *g, Node *n, Diag *d) {
    const Node *x = &g->nodes[n->in[0]];
    char a[96];
    Shape s = x->shape;
    for (int i = 0; i < ETCH_MAX_RANK; i++) {
        int64_t b = n->attr.pad_before[i], e = n->attr.pad_after[i];
        if (i >= s.rank) {
            if (b || e)
                return diag_error(d, n->loc, "'pad' pads dim %d of %s, which has only %d dims", i,
                                  ops_type_str(a, g, n->in[0]), s.rank);
            continue;
        }
        if (b < 0 || e < 0 || b > PAD_MAX || e > PAD_MAX)
            return diag_error(d, n->loc, "'pad' amounts must be between 0 and 2^40, got %lld before and %lld after dim %d",
                              (long long)b, (long long)e, i);
        s.dim[i] += b + e;
    }
    if (x->dtype == DT_BOOL ? (n->attr.value != 0 && n->attr.value != 1)
                            : !dtype_is_float(x->dtype) && n->attr.value != trunc(n->attr.value))
        return diag_error(d, n->loc, "'pad' value %g is not a %s", n->attr.value, dtype_name(x->dtype));
    n->dtype = x->dtype;
    n->shape = s;
    return true;
}

bool shape_concat(Graph *g, Node *n, Diag *d) {
    if (!check_axis(g, n, 0, d)) return false;
    const Node *x = &g->nodes[n->in[0]], *y = &g->nodes[n->in[1]];
    char a[96], b[96];
    if (x->dtype != y->dtype)
        return diag_error(d, n->loc, "'concat' operands have different dtypes: %s and %s (use cast)",
                          ops_type_str(a, g, n->in[0]), ops_type_str(b, g, n->in[1]));
    if (x->shape.rank != y->shape.rank)
        return diag_error(d, n->loc, "cannot concat %s and %s: ranks %d and %d differ", ops_type_str(a, g, n->in[0]),
                          ops_type_str(b, g, n->in[1]), x->shape.rank, y->shape.rank);
    for (int i = 0; i < x->shape.rank; i++)
        if (i != n->attr.axis && x->shape.dim[i] != y->shape.dim[i])
            return diag_error(d, n->loc, "cannot concat %s and %s along axis %d: dim %d is %lld in one and %lld in the other",
                              ops_type_str(a, g, n->in[0]), ops_type_str(b, g, n->in[1]), n->attr.axis, i,
                              (long long)x->shape.dim[i], (long long)y->shape.dim[i]);
    n->dtype = x->dtype;
    n->shape = x->shape;
    n->shape.dim[n->attr.axis] += y->shape.dim[n->attr.axis];
    return true;
}

/* ---- reference kernels ---- */

void eval_slice(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    const Node *n = &g->nodes[id];
    int64_t outer, len, inner;
    ops_split_axis(&ins[0]->shape, n->attr.axis, &outer, &len, &inner);
    size_t es = dtype_size(n->dtype), run = (size_t)(n->attr.length * inner) * es;
    const char *src = ins[0]->data;
    char *dst = out->data;
    for (int64_t o = 0; o < outer; o++)
        memcpy(dst + (size_t)o * run, src + (size_t)((o * len + n->attr.start) * inner) * es, run);
}

void eval_concat(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    const Node *n = &g->nodes[id];
    int64_t outer, la, lb, inner;
    ops_split_axis(&ins[0]->shape, n->attr.axis, &outer, &la, &inner);
    ops_split_axis(&ins[1]->shape, n->attr.axis, &outer, &lb, &inner);
    size_t es = dtype_size(n->dtype), ra = (size_t)(la * inner) * es, rb = (size_t)(lb * inner) * es;
    const char *a = ins[0]->data, *b = ins[1]->data;
    char *dst = out->data;
    for (int64_t o = 0; o < outer; o++) {
        memcpy(dst + (size_t)o * (ra + rb), a + (size_t)o * ra, ra);
        memcpy(dst + (size_t)o * (ra + rb) + ra, b + (size_t)o * rb, rb);
    }
}

/* Output offset (elements) of the first element of the input run at row
 * index idx (the input's dims but the last), plus the padding before. */
static int64_t pad_offset(const Node *n, const int64_t *idx, const int64_t *ost, int rank) {
    int64_t off = 0;
    for (int i = 0; i < rank; i++) off += ((i < rank - 1 ? idx[i] : 0) + n->attr.pad_before[i]) * ost[i];
    return off;
}

void eval_pad(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    const Node *n = &g->nodes[id];
    if (n->attr.value != 0) /* tensor_new zero-fills */
        for (int64_t i = 0, m = tensor_numel(out); i < m; i++) tensor_set(out, i, n->attr.value);
    const Shape *xs = &ins[0]->shape;
    size_t es = dtype_size(n->dtype);
    if (xs->rank == 0) {
        memcpy(out->data, ins[0]->data, es);
        return;
    }
    int64_t ost[ETCH_MAX_RANK], idx[ETCH_MAX_RANK] = {0}, row = xs->dim[xs->rank - 1];
    shape_strides(&n->shape, ost);
    int64_t rows = shape_numel(xs) / row;
    const char *src = ins[0]->data;
    char *dst = out->data;
    for (int64_t r = 0; r < rows; r++) {
        memcpy(dst + (size_t)pad_offset(n, idx, ost, xs->rank) * es, src + (size_t)(r * row) * es, (size_t)row * es);
        for (int k = xs->rank - 2; k >= 0; k--) {
            if (++idx[k] < xs->dim[k]) break;
            idx[k] = 0;
        }
    }
}

/* ---- vector-Jacobian rules ---- */

void vjp_slice(VjpCtx *c) { /* zeros around the slice: pad it back to the operand's shape */
    const Node *n = &c->g->nodes[c->id];
    int ax = n->attr.axis;
    NodeAttrs at = {.value = 0};
    at.pad_before[ax] = n->attr.start;
    at.pad_after[ax] = c->g->nodes[n->in[0]].shape.dim[ax] - n->attr.start - n->attr.length;
    c->gx[0] = ad_node(c, OP_PAD, &c->gy, 1, &at);
}

void vjp_pad(VjpCtx *c) { /* the operand's part of gy: one slice per padded dim */
    const Node *n = &c->g->nodes[c->id];
    Shape xs = c->g->nodes[n->in[0]].shape;
    int64_t before[ETCH_MAX_RANK], after[ETCH_MAX_RANK];
    memcpy(before, n->attr.pad_before, sizeof before);
    memcpy(after, n->attr.pad_after, sizeof after);
    int g = c->gy;
    for (int i = 0; i < xs.rank && g >= 0; i++) {
        if (!before[i] && !after[i]) continue;
        NodeAttrs at = {.axis = i, .start = before[i], .length = xs.dim[i]};
        g = ad_node(c, OP_SLICE, &g, 1, &at);
    }
    c->gx[0] = g;
}

void vjp_concat(VjpCtx *c) {
    const Node *n = &c->g->nodes[c->id];
    int ax = n->attr.axis;
    int64_t la = c->g->nodes[n->in[0]].shape.dim[ax], lb = c->g->nodes[n->in[1]].shape.dim[ax];
    if (c->needs[0]) c->gx[0] = ad_node(c, OP_SLICE, &c->gy, 1, &(NodeAttrs){.axis = ax, .start = 0, .length = la});
    if (c->needs[1]) c->gx[1] = ad_node(c, OP_SLICE, &c->gy, 1, &(NodeAttrs){.axis = ax, .start = la, .length = lb});
}
