/* simplify.c: algebraic simplification and constant folding.
 *
 * Autodiff and the optimizer emit IR mechanically: `1 * grad`, transposes of
 * transposes, reshapes of broadcasts of constants, sums over broadcast copies.
 * This pass rebuilds the graph in id order (passes/rewrite.h) and, for every
 * node, first offers its already-simplified form to a set of local rules;
 * a rule returns the id of an equivalent value of exactly the node's type, or
 * -1. Replacement nodes a rule builds are themselves offered to the rules, so
 * chains collapse in one sweep. Replaced nodes are left in place, dead, for
 * pass_dce to remove, which keeps every rule a pure local decision.
 *
 * Results are unchanged except for the sign of a zero: x + 0 -> x turns
 * (-0) + (+0) = +0 into -0, which compares equal. Not done, on purpose:
 *  - x * 0 -> 0 for floats (NaN * 0 and inf * 0 are NaN); done for integers;
 *  - 0 - x -> neg(x) (0 - 0 is +0, neg(0) is -0), reassociation of sums or
 *    products, and anything else that would round differently than the
 *    eager executor (constant folding computes in double and rounds through
 *    the result dtype exactly as the reference kernels store results). */
#include <assert.h>
#include <string.h>

#include "passes/pass.h"
#include "passes/rewrite.h"

typedef struct Simplify {
    Rewriter rw;
    const int *uses; /* uses of each src node */
    int *dst_uses;   /* dst id -> src uses of the src nodes now mapped to it */
    const int *slice_uses; /* uses of each src node by slices */
    int *dst_slice_uses;   /* dst id -> of its dst_uses, those by slices */
    int cap_dst_uses;
} Simplify;

enum { MAX_DEPTH = 16 }; /* rules build a few nodes each; this only guards against a rule cycle */

static const Node *dst_node(const Simplify *S, int id) { return &S->rw.dst->nodes[id]; }

static int simp(Simplify *S, Node *c, int depth);

/* ---- values ---- */

/* v as stored in a tensor of dtype t (what tensor_set does), or false when
 * the conversion would be undefined (NaN or out of range into an integer). */
static bool round_to(double v, DType t, double *out) {
    switch (t) {
    case DT_F32: *out = (double)(float)v; return true;
    case DT_F64: *out = v; return true;
    case DT_I32:
        if (!(v > -2147483649.0 && v < 2147483648.0)) return false;
        *out = (double)(int32_t)v;
        return true;
    case DT_I64:
        if (!(v >= -0x1p63 && v < 0x1p63)) return false;
        *out = (double)(int64_t)v;
        return true;
    case DT_BOOL: *out = v != 0; return true;
    default: return false;
    }
}

/* The element value of dst node id when it is a constant (constants are splats). */
static bool const_val(const Simplify *S, int id, double *v) {
    const Node *n = dst_node(S, id);
    return n->op == OP_CONST && round_to(n->attr.value, n->dtype, v);
}

static bool is_const(const Simplify *S, int id, double want) {
    double v;
    return const_val(S, id, &v) && v == want;
}

static int make_const(Simplify *S, double v, DType t, Shape s, SrcLoc loc) {
    NodeAttrs a = {.value = v, .dtype = t, .shape = s};
    return rewrite_add(&S->rw, OP_CONST, NULL, 0, &a, loc);
}

/* Types a replacement node and simplifies it in turn; -1 if ill-typed. */
static int emit(Simplify *S, OpKind op, const int *ins, int n_in, const NodeAttrs *at, SrcLoc loc, int depth) {
    Node c = {.op = op, .n_in = n_in, .in = (int *)ins, .loc = loc};
    if (at) c.attr = *at;
    if (!rewrite_infer(&S->rw, &c)) return -1;
    return simp(S, &c, depth + 1);
}

static int emit_reshape(Simplify *S, int x, Shape s, SrcLoc loc, int depth) {
    NodeAttrs a = {.shape = s};
    return emit(S, OP_RESHAPE, &x, 1, &a, loc, depth);
}

/* x seen at c's type: x itself, or x broadcast to c's shape (elementwise
 * operands always broadcast to the result, and share its dtype). */
static int as_result(Simplify *S, const Node *c, int x, int depth) {
    const Node *n = dst_node(S, x);
    if (n->dtype != c->dtype) return -1;
    if (shape_equal(&n->shape, &c->shape)) return x;
    NodeAttrs a = {.shape = c->shape};
    return emit(S, OP_BROADCAST, &x, 1, &a, c->loc, depth);
}

/* ---- constant folding ---- */

/* Elementwise op over constants only: one scalar evaluation (constants are
 * splats, so any shape folds), computed like the reference kernel. */
static int fold_elementwise(Simplify *S, const Node *c) {
    double x[3], r;
    if (!op_table[c->op].scalar) return -1;
    for (int k = 0; k < c->n_in; k++)
        if (!const_val(S, c->in[k], &x[k])) return -1;
    if (!round_to(op_table[c->op].scalar(x, &c->attr), c->dtype, &r)) return -1;
    return make_const(S, r, c->dtype, c->shape, c->loc);
}

/* A reduction of a constant. Sums of n equal f32 or integer values are exact
 * in the kernels' double accumulator, so they equal n * v; for f64 only a
 * reduction of single elements is certainly exact. */
static int fold_reduce(Simplify *S, const Node *c) {
    double v, r;
    if (!const_val(S, c->in[0], &v)) return -1;
    int64_t count = shape_numel(&dst_node(S, c->in[0])->shape) / shape_numel(&c->shape);
    bool exact = c->dtype != DT_F64 || count == 1;
    if (c->op == OP_REDUCE_MAX) r = v;
    else if (!exact) return -1;
    else if (c->op == OP_REDUCE_MEAN) r = v;
    else if (!round_to(v * (double)count, c->dtype, &r)) return -1;
    return make_const(S, r, c->dtype, c->shape, c->loc);
}

/* A non-scalar constant operand of a multi-operand elementwise op is replaced
 * by a scalar one when the other operands alone give the result its shape,
 * so `mul(const : f32[64,10], x : f32[64,10])` reads a scalar. */
static int shrink_splats(Simplify *S, const Node *c, int depth) {
    if (c->n_in < 2) return -1;
    for (int k = 0; k < c->n_in; k++) {
        const Node *x = dst_node(S, c->in[k]);
        if (x->op != OP_CONST || x->shape.rank == 0) continue;
        int scalar = make_const(S, x->attr.value, x->dtype, (Shape){0}, x->loc);
        int ins[3];
        memcpy(ins, c->in, sizeof(int) * (size_t)c->n_in);
        ins[k] = scalar;
        Node t = *c;
        t.in = ins;
        if (rewrite_infer(&S->rw, &t) && t.dtype == c->dtype && shape_equal(&t.shape, &c->shape))
            return simp(S, &t, depth + 1);
    }
    return -1;
}

/* ---- elementwise identities ---- */

static int simplify_elementwise(Simplify *S, const Node *c, int depth) {
    int a = c->in[0], b = c->n_in > 1 ? c->in[1] : -1;
    const Node *x = dst_node(S, a);
    switch (c->op) {
    case OP_ADD:
        if (is_const(S, b, 0)) return as_result(S, c, a, depth);
        if (is_const(S, a, 0)) return as_result(S, c, b, depth);
        return -1;
    case OP_SUB: return is_const(S, b, 0) ? as_result(S, c, a, depth) : -1;
    case OP_MUL:
        if (is_const(S, b, 1)) return as_result(S, c, a, depth);
        if (is_const(S, a, 1)) return as_result(S, c, b, depth);
        /* integers have no NaN or infinity, so x * 0 is 0 for every x */
        if (!dtype_is_float(c->dtype) && (is_const(S, a, 0) || is_const(S, b, 0)))
            return make_const(S, 0, c->dtype, c->shape, c->loc);
        return -1;
    case OP_DIV:
    case OP_POW: return is_const(S, b, 1) ? as_result(S, c, a, depth) : -1;
    case OP_MAX:
    case OP_MIN: return a == b ? as_result(S, c, a, depth) : -1;
    case OP_WHERE: {
        double cond;
        if (const_val(S, a, &cond)) return as_result(S, c, cond != 0 ? b : c->in[2], depth);
        return b == c->in[2] ? as_result(S, c, b, depth) : -1;
    }
    case OP_NEG: return x->op == OP_NEG ? x->in[0] : -1;
    case OP_STOP_GRADIENT: return a; /* the identity; the pipeline runs after autodiff */
    case OP_ABS:
    case OP_RELU: return x->op == c->op ? a : -1; /* idempotent */
    case OP_CAST: {
        if (x->dtype == c->dtype) return a;
        /* T -> U -> T is the identity when U holds every T value */
        if (x->op != OP_CAST) return -1;
        DType t = dst_node(S, x->in[0])->dtype, u = x->dtype;
        bool widens = t == DT_BOOL || (t == DT_F32 && u == DT_F64) || (t == DT_I32 && (u == DT_I64 || u == DT_F64));
        return t == c->dtype && widens ? x->in[0] : -1;
    }
    default: return -1;
    }
}

/* ---- layout ---- */

static bool perm_is_identity(const int *p, int n) {
    for (int i = 0; i < n; i++)
        if (p[i] != i) return false;
    return true;
}

/* perm swaps the last two axes and keeps the others. */
static bool perm_is_last2_swap(const int *p, int n) {
    if (n < 2 || p[n - 2] != n - 1 || p[n - 1] != n - 2) return false;
    return perm_is_identity(p, n - 2);
}

static int simplify_reshape(Simplify *S, const Node *c, int depth) {
    const Node *x = dst_node(S, c->in[0]);
    if (shape_equal(&x->shape, &c->shape)) return c->in[0];
    if (x->op == OP_RESHAPE) return emit_reshape(S, x->in[0], c->shape, c->loc, depth);
    if (x->op == OP_CONST) return make_const(S, x->attr.value, c->dtype, c->shape, c->loc);
    return -1;
}

/* to is from with zero or more leading size-1 dims. */
static bool prepends_ones(const Shape *from, const Shape *to) {
    int lead = to->rank - from->rank;
    if (lead < 0) return false;
    for (int i = 0; i < to->rank; i++)
        if (to->dim[i] != (i < lead ? 1 : from->dim[i - lead])) return false;
    return true;
}

static int simplify_broadcast(Simplify *S, const Node *c, int depth) {
    const Node *x = dst_node(S, c->in[0]);
    if (shape_equal(&x->shape, &c->shape)) return c->in[0];
    if (x->op == OP_CONST) return make_const(S, x->attr.value, c->dtype, c->shape, c->loc);
    NodeAttrs a = {.shape = c->shape};
    /* x -> s1 -> s2 is x -> s2: every dim of x is 1 or already final */
    if (x->op == OP_BROADCAST) return emit(S, OP_BROADCAST, &x->in[0], 1, &a, c->loc, depth);
    /* a reshape that only prepends 1s changes nothing broadcasting would not */
    if (x->op == OP_RESHAPE && prepends_ones(&dst_node(S, x->in[0])->shape, &x->shape))
        return emit(S, OP_BROADCAST, &x->in[0], 1, &a, c->loc, depth);
    /* only size-1 dims added: the same elements in the same order, a view */
    if (shape_numel(&x->shape) == shape_numel(&c->shape)) return emit_reshape(S, c->in[0], c->shape, c->loc, depth);
    return -1;
}

/* transpose(matmul(a, b)) = matmul(b, a) with each operand's transposition
 * flipped: (op(A) op(B))^T = op(B)^T op(A)^T. Only when the transpose is the
 * product's sole user; otherwise both products would be computed. */
static int transpose_of_matmul(Simplify *S, const Node *c, int depth) {
    int m = c->in[0];
    const Node *x = dst_node(S, m);
    if (x->op != OP_MATMUL || !perm_is_last2_swap(c->attr.axes, c->attr.n_axes)) return -1;
    if (m >= S->cap_dst_uses || S->dst_uses[m] != 1) return -1;
    int a = x->in[0], b = x->in[1];
    if (dst_node(S, a)->shape.rank < 2 || dst_node(S, b)->shape.rank < 2) return -1;
    NodeAttrs at = {.trans_a = !x->attr.trans_b, .trans_b = !x->attr.trans_a};
    return emit(S, OP_MATMUL, (int[]){b, a}, 2, &at, c->loc, depth);
}

static int simplify_transpose(Simplify *S, const Node *c, int depth) {
    const Node *x = dst_node(S, c->in[0]);
    int n = c->attr.n_axes;
    if (perm_is_identity(c->attr.axes, n)) return c->in[0];
    if (x->op == OP_CONST) return make_const(S, x->attr.value, c->dtype, c->shape, c->loc);
    if (x->op == OP_TRANSPOSE) { /* out axis i = x's axis perm[i] = x's operand's axis inner[perm[i]] */
        NodeAttrs a = {.n_axes = n};
        for (int i = 0; i < n; i++) a.axes[i] = x->attr.axes[c->attr.axes[i]];
        return emit(S, OP_TRANSPOSE, &x->in[0], 1, &a, c->loc, depth);
    }
    int r = transpose_of_matmul(S, c, depth);
    if (r >= 0) return r;
    x = dst_node(S, c->in[0]); /* the node array may have grown */
    /* moving only size-1 axes keeps the element order: a reshape (a view) */
    int last = -1;
    for (int i = 0; i < n; i++) {
        int p = c->attr.axes[i];
        if (x->shape.dim[p] == 1) continue;
        if (p < last) return -1;
        last = p;
    }
    return emit_reshape(S, c->in[0], c->shape, c->loc, depth);
}

/* matmul(transpose(a), b) -> matmul{transpose_a}(a, b) when the transpose
 * swaps the last two axes: the kernel reads a in place instead of a copy. */
static int simplify_matmul(Simplify *S, const Node *c, int depth) {
    for (int k = 0; k < 2; k++) {
        const Node *t = dst_node(S, c->in[k]);
        if (t->op != OP_TRANSPOSE || !perm_is_last2_swap(t->attr.axes, t->attr.n_axes)) continue;
        NodeAttrs at = {.trans_a = c->attr.trans_a, .trans_b = c->attr.trans_b};
        int ins[2] = {c->in[0], c->in[1]};
        ins[k] = t->in[0];
        if (k == 0) at.trans_a = !at.trans_a;
        else at.trans_b = !at.trans_b;
        int r = emit(S, OP_MATMUL, ins, 2, &at, c->loc, depth);
        if (r >= 0) return r;
    }
    return -1;
}

/* ---- reductions ---- */

/* reduce(broadcast(y)) over exactly the broadcast axes reads count equal
 * copies of each element of y: the sum is y * count, max and mean are y. The
 * result has y's elements in y's order, so y only needs a reshape. */
static int reduce_of_broadcast(Simplify *S, const Node *c, int depth) {
    const Node *b = dst_node(S, c->in[0]);
    if (b->op != OP_BROADCAST) return -1;
    int y = b->in[0];
    Shape ys = dst_node(S, y)->shape, bs = b->shape;
    int lead = bs.rank - ys.rank;
    bool red[ETCH_MAX_RANK] = {false};
    for (int i = 0; i < c->attr.n_axes; i++) red[c->attr.axes[i]] = true;
    int64_t count = 1;
    for (int i = 0; i < bs.rank; i++) {
        bool bcast = i < lead || ys.dim[i - lead] == 1;
        if (red[i] && !bcast) return -1;         /* sums distinct elements: keep */
        if (!red[i] && bcast && bs.dim[i] != 1) return -1; /* result still broadcast */
        if (red[i]) count *= bs.dim[i];
    }
    int r = emit_reshape(S, y, c->shape, c->loc, depth);
    if (r < 0 || c->op != OP_REDUCE_SUM || count == 1) return r;
    double k;
    if (!round_to((double)count, c->dtype, &k) || k != (double)count) return -1;
    int kc = make_const(S, k, c->dtype, (Shape){0}, c->loc);
    return emit(S, OP_MUL, (int[]){r, kc}, 2, NULL, c->loc, depth);
}

static int simplify_reduce(Simplify *S, const Node *c, int depth) {
    const Node *x = dst_node(S, c->in[0]);
    if (x->op == OP_CONST) return fold_reduce(S, c);
    /* reducing only size-1 axes (or none) moves no data: a reshape */
    bool trivial = true;
    for (int i = 0; i < c->attr.n_axes; i++) trivial = trivial && x->shape.dim[c->attr.axes[i]] == 1;
    if (trivial) return emit_reshape(S, c->in[0], c->shape, c->loc, depth);
    return reduce_of_broadcast(S, c, depth);
}

/* ---- driver ---- */

/* ---- slices' gradients ---- */

/* add(pad(x), pad(y)) of zero pads that put x and y side by side along one
 * axis -> pad(concat(x, y)). The gradient of a chunk/split is one zero pad
 * per piece, summed; this turns that into one copy per piece instead of a
 * zero fill per piece plus the adds. Exact: the adds only added zeros. */
static int adjacent_pads(Simplify *S, const Node *c, int depth) {
    const Node *p = dst_node(S, c->in[0]), *q = dst_node(S, c->in[1]);
    if (p->op != OP_PAD || q->op != OP_PAD || p->attr.value != 0 || q->attr.value != 0 || p->dtype != c->dtype ||
        !shape_equal(&p->shape, &c->shape) || !shape_equal(&q->shape, &c->shape))
        return -1;
    int axis = -1;
    for (int i = 0; i < c->shape.rank; i++) {
        if (!p->attr.pad_before[i] && !p->attr.pad_after[i] && !q->attr.pad_before[i] && !q->attr.pad_after[i])
            continue;
        if (axis >= 0) return -1;
        axis = i;
    }
    if (axis < 0) return -1;
    if (q->attr.pad_before[axis] < p->attr.pad_before[axis]) {
        const Node *t = p;
        p = q, q = t;
    }
    if (p->attr.pad_before[axis] + dst_node(S, p->in[0])->shape.dim[axis] != q->attr.pad_before[axis]) return -1;
    NodeAttrs pad = {.value = 0};
    pad.pad_before[axis] = p->attr.pad_before[axis];
    pad.pad_after[axis] = q->attr.pad_after[axis];
    int ins[2] = {p->in[0], q->in[0]};
    NodeAttrs cat = {.axis = axis};
    int joined = emit(S, OP_CONCAT, ins, 2, &cat, c->loc, depth);
    if (joined < 0) return -1;
    return emit(S, OP_PAD, &joined, 1, &pad, c->loc, depth);
}

/* pad by nothing -> its operand */
static int simplify_pad(Simplify *S, const Node *c) {
    const Node *x = dst_node(S, c->in[0]);
    return shape_equal(&x->shape, &c->shape) && x->dtype == c->dtype ? c->in[0] : -1;
}

/* slice(pad(x)) along the padded axis: inside x -> a slice of x (or x);
 * entirely in the padding -> the pad value. The gradient of a scan's packed
 * result is a zero pad of the one piece that was used; this keeps the other
 * pieces from reading a zero-filled copy of the whole result. */
static int slice_of_pad(Simplify *S, const Node *c, int depth) {
    const Node *p = dst_node(S, c->in[0]);
    if (p->op != OP_PAD) return -1;
    int a = c->attr.axis;
    for (int i = 0; i < c->shape.rank; i++)
        if (i != a && (p->attr.pad_before[i] || p->attr.pad_after[i])) return -1;
    int64_t b = p->attr.pad_before[a], len = dst_node(S, p->in[0])->shape.dim[a];
    int64_t s = c->attr.start, l = c->attr.length;
    if (s + l <= b || s >= b + len) return make_const(S, p->attr.value, c->dtype, c->shape, c->loc);
    if (s < b || s + l > b + len) return -1;
    int x = p->in[0];
    if (l == len) return x;
    NodeAttrs sl = {.axis = a, .start = s - b, .length = l};
    return emit(S, OP_SLICE, &x, 1, &sl, c->loc, depth);
}

/* slice(f(a, b)) -> f(slice(a), slice(b)) for an elementwise f whose every
 * user is a slice and whose operands have its shape (or are scalars): each
 * element is computed by the same scalar op from the same values, so results
 * are unchanged. The slices of operands are views a fused elementwise group
 * reads in place (passes/fuse.c), so f joins the group that reads its
 * slices: the LSTM cell's gates, xt + h W^T split four ways, are never
 * stored whole. */
static int slice_of_elementwise(Simplify *S, const Node *c, int depth) {
    int m = c->in[0];
    const Node *x = dst_node(S, m);
    if (op_table[x->op].cls != OPC_ELEMWISE || !op_table[x->op].scalar) return -1;
    if (m >= S->cap_dst_uses || S->dst_uses[m] != S->dst_slice_uses[m]) return -1;
    int ins[3];
    for (int k = 0; k < x->n_in; k++) {
        const Node *v = dst_node(S, x->in[k]);
        if (v->shape.rank == 0) ins[k] = x->in[k];
        else if (!shape_equal(&v->shape, &x->shape)) return -1;
        else if ((ins[k] = emit(S, OP_SLICE, &x->in[k], 1, &c->attr, c->loc, depth)) < 0) return -1;
    }
    return emit(S, x->op, ins, x->n_in, &x->attr, c->loc, depth);
}

/* quantize(dequantize(q, s, z), s, z) -> q, for a per-tensor constant scale
 * s > 0 (normal, far from overflow) and the same zero point and dtype: (q -
 * z) * s rounded to f32 and divided by s again is within 510 * 2^-23 of the
 * integer q - z, which rint restores exactly. */
static int quantize_of_dequantize(Simplify *S, const Node *c) {
    const Node *x = dst_node(S, c->in[0]);
    double s1, s2, z1, z2;
    if (x->op != OP_DEQUANTIZE || dst_node(S, x->in[0])->dtype != c->dtype || x->attr.axis != c->attr.axis ||
        !const_val(S, x->in[1], &s1) || !const_val(S, c->in[1], &s2) || s1 != s2 || !(s1 >= 1e-37 && s1 <= 1e35))
        return -1;
    bool same_z = x->in[2] == c->in[2] || (const_val(S, x->in[2], &z1) && const_val(S, c->in[2], &z2) && z1 == z2);
    return same_z ? x->in[0] : -1;
}

static int try_rules(Simplify *S, Node *c, int depth) {
    switch (c->op) {
    case OP_QUANTIZE: return quantize_of_dequantize(S, c);
    case OP_PAD: return simplify_pad(S, c);
    case OP_SLICE: {
        int r = slice_of_pad(S, c, depth);
        return r >= 0 ? r : slice_of_elementwise(S, c, depth);
    }
    case OP_BROADCAST: return simplify_broadcast(S, c, depth);
    case OP_RESHAPE: return simplify_reshape(S, c, depth);
    case OP_TRANSPOSE: return simplify_transpose(S, c, depth);
    case OP_MATMUL: return simplify_matmul(S, c, depth);
    case OP_REDUCE_SUM:
    case OP_REDUCE_MAX:
    case OP_REDUCE_MEAN: return simplify_reduce(S, c, depth);
    default: break;
    }
    if (op_table[c->op].cls != OPC_ELEMWISE) return -1; /* sources, softmax */
    int r = fold_elementwise(S, c);
    if (r < 0) r = shrink_splats(S, c, depth);
    if (r < 0 && c->op == OP_ADD) r = adjacent_pads(S, c, depth);
    return r >= 0 ? r : simplify_elementwise(S, c, depth);
}

/* The dst id standing for candidate c (operands already dst ids): a rule's
 * replacement when one applies, else c appended as it is. */
static int simp(Simplify *S, Node *c, int depth) {
    int r = depth < MAX_DEPTH ? try_rules(S, c, depth) : -1;
    if (r >= 0) {
        const Node *n = dst_node(S, r);
        /* a rule must preserve the type exactly; never let a bug through */
        assert(n->dtype == c->dtype && shape_equal(&n->shape, &c->shape));
        if (n->dtype == c->dtype && shape_equal(&n->shape, &c->shape)) return r;
    }
    return graph_append_raw(S->rw.dst, c);
}

static int *grown(Simplify *S, const int *old, int cap) {
    int *p = arena_alloc(S->rw.src->arena, sizeof(int) * (size_t)cap);
    memset(p, 0, sizeof(int) * (size_t)cap);
    if (S->cap_dst_uses) memcpy(p, old, sizeof(int) * (size_t)S->cap_dst_uses);
    return p;
}

static void add_dst_uses(Simplify *S, int id, int n, int by_slices) {
    if (id >= S->cap_dst_uses) {
        int cap = S->cap_dst_uses ? S->cap_dst_uses : 64;
        while (cap <= id) cap *= 2;
        S->dst_uses = grown(S, S->dst_uses, cap);
        S->dst_slice_uses = grown(S, S->dst_slice_uses, cap);
        S->cap_dst_uses = cap;
    }
    S->dst_uses[id] += n;
    S->dst_slice_uses[id] += by_slices;
}

/* Uses of each node of g by slices. */
static const int *count_slice_uses(const Graph *g) {
    int *n = arena_alloc(g->arena, sizeof(int) * (size_t)(g->n_nodes + 1));
    memset(n, 0, sizeof(int) * (size_t)(g->n_nodes + 1));
    for (int id = 0; id < g->n_nodes; id++)
        if (g->nodes[id].op == OP_SLICE) n[g->nodes[id].in[0]]++;
    return n;
}

Graph *pass_simplify(Graph *g, PassCtx *ctx) {
    Simplify S = {.uses = rewrite_count_uses(g, g->arena), .slice_uses = count_slice_uses(g)};
    rewrite_begin(&S.rw, g, ctx->d);
    for (int id = 0; id < g->n_nodes; id++) {
        int ins[ETCH_MAX_OPERANDS];
        Node c = rewrite_mapped_node(&S.rw, id, ins);
        /* sources other than constants are the interface: copied as they are */
        int r = (c.op == OP_INPUT || c.op == OP_PARAM) ? graph_append_raw(S.rw.dst, &c) : simp(&S, &c, 0);
        S.rw.map[id] = r;
        add_dst_uses(&S, r, S.uses[id], S.slice_uses[id]);
    }
    return rewrite_finish(&S.rw);
}
