/* builtins.c: the DSL's builtin functions and how each maps onto primitive ops.
 *
 * One table row per builtin: its name, parameter names (so keyword arguments
 * and arity errors come for free from bind_args), how many are required, and
 * the function that checks the arguments and appends the op. Dims follow
 * PyTorch: negative dims count from the end and are normalized to 0..rank-1
 * before they reach the IR; an out-of-range dim is reported at the call,
 * naming the dim and the rank. Math functions applied to compile-time numbers
 * fold, so `1 / sqrt(in_features)` is a constant. docs/dsl.md lists them all. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/elab.h"

typedef struct Builtin Builtin;
typedef bool (*BuiltinImpl)(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out);

enum { BUILTIN_MAX_PARAMS = 6 }; /* conv2d(x, weight, stride, padding, dilation, groups) */

struct Builtin {
    const char *name;
    const char *params[BUILTIN_MAX_PARAMS];
    int n_params, n_required;
    BuiltinImpl impl;
    OpKind op;
};

static const char *fname(Elab *e, const Builtin *b) { return arena_printf(e->arena, "%s()", b->name); }

static const char *tensor_type(Elab *e, int id) {
    char buf[96];
    const Node *n = &e->graph->nodes[id];
    return arena_strdup(e->arena, type_format(buf, sizeof buf, n->dtype, &n->shape));
}

static const Shape *shape_of(Elab *e, int id) { return &e->graph->nodes[id].shape; }

/* Normalizes a PyTorch-style dim (negative counts from the end) for a tensor of rank `rank`. */
static bool norm_dim(Elab *e, const Builtin *b, SrcLoc loc, int id, const Value *v, const char *what, int *out) {
    int64_t d;
    if (!value_int(e, v, arena_printf(e->arena, "%s of %s", what, fname(e, b)), &d)) return false;
    int rank = shape_of(e, id)->rank;
    if (d < -rank || d >= rank) {
        if (rank == 0)
            return diag_error(e->diag, loc, "%s %lld is out of range for %s of %s (rank 0 has no dims)", what,
                              (long long)d, fname(e, b), tensor_type(e, id));
        return diag_error(e->diag, loc, "%s %lld is out of range for %s of %s (rank %d; valid dims are %d to %d)", what,
                          (long long)d, fname(e, b), tensor_type(e, id), rank, -rank, rank - 1);
    }
    *out = (int)(d < 0 ? d + rank : d);
    return true;
}

/* A list of dims (or one int) normalized, each at most once; sorted when `sort`. */
static bool norm_dim_list(Elab *e, const Builtin *b, SrcLoc loc, int id, const Value *v, const char *what, bool sort,
                          int *axes, int *n_axes) {
    int n = v->kind == V_LIST ? v->n_items : 1;
    if (v->kind == V_LIST && n == 0) return diag_error(e->diag, v->loc, "%s of %s is an empty list", what, fname(e, b));
    if (n > ETCH_MAX_RANK)
        return diag_error(e->diag, v->loc, "%s of %s lists %d dims; a tensor has at most %d", what, fname(e, b), n,
                          ETCH_MAX_RANK);
    bool seen[ETCH_MAX_RANK] = {false};
    for (int i = 0; i < n; i++) {
        const Value *item = v->kind == V_LIST ? &v->items[i] : v;
        int d = 0;
        if (v->kind != V_LIST && v->kind != V_NUM)
            return diag_error(e->diag, v->loc, "%s of %s must be an integer or a list of integers, got %s%s", what,
                              fname(e, b), value_describe(e, v),
                              v->kind == V_TENSOR && strcmp(b->name, "max") == 0
                                  ? " (use maximum(a, b) for the elementwise maximum)"
                                  : "");
        if (!norm_dim(e, b, loc, id, item, what, &d)) return false;
        if (seen[d]) return diag_error(e->diag, loc, "%s of %s lists dim %d twice", what, fname(e, b), d);
        seen[d] = true;
        axes[i] = d;
    }
    if (sort)
        for (int i = 1; i < n; i++)
            for (int j = i; j > 0 && axes[j - 1] > axes[j]; j--) {
                int t = axes[j];
                axes[j] = axes[j - 1];
                axes[j - 1] = t;
            }
    *n_axes = n;
    return true;
}

/* A shape given as a list of integers; -1 entries allowed when allow_infer. */
static bool shape_list(Elab *e, const Builtin *b, const Value *v, const char *what, bool allow_infer, Shape *out,
                       int *infer_at) {
    if (v->kind != V_LIST)
        return diag_error(e->diag, v->loc, "%s of %s must be a list of integers like [64, -1], got %s", what,
                          fname(e, b), value_describe(e, v));
    if (v->n_items > ETCH_MAX_RANK)
        return diag_error(e->diag, v->loc, "%s of %s has %d dims; at most %d are supported", what, fname(e, b),
                          v->n_items, ETCH_MAX_RANK);
    *out = (Shape){.rank = v->n_items};
    *infer_at = -1;
    double numel = 1;
    for (int i = 0; i < v->n_items; i++) {
        int64_t d;
        if (!value_int(e, &v->items[i], arena_printf(e->arena, "a dimension in %s", fname(e, b)), &d)) return false;
        if (d == -1 && allow_infer) {
            if (*infer_at >= 0)
                return diag_error(e->diag, v->items[i].loc, "%s allows at most one -1 in the shape", fname(e, b));
            *infer_at = i;
            d = 1;
        } else if (d <= 0) {
            return diag_error(e->diag, v->items[i].loc, "dimension %lld in %s must be positive%s", (long long)d,
                              fname(e, b), allow_infer ? " or -1" : "");
        } else if (d > 2147483647) {
            return diag_error(e->diag, v->items[i].loc, "dimension %lld in %s is too large", (long long)d, fname(e, b));
        }
        out->dim[i] = d;
        if ((numel *= (double)d) > 1e15)
            return diag_error(e->diag, v->loc, "%s of %s has too many elements", what, fname(e, b));
    }
    return true;
}

/* A compile-time integer result: integers stay exact in a double (|x| < 2^53). */
static bool int_result(Elab *e, const Builtin *b, double x, SrcLoc loc, Value *out) {
    if (fabs(x) >= 9007199254740992.0) /* a rounded result lands on 2^53 or beyond */
        return diag_error(e->diag, loc, "%s gives %g, too large for an integer", fname(e, b), x);
    *out = value_num(x, true, loc);
    return true;
}

/* ---- elementwise -------------------------------------------------------- */

static bool fold_unary(Elab *e, OpKind op, const Value *v, SrcLoc loc, Value *out) {
    double x = v->num, r;
    bool keep_int = false;
    switch (op) {
    case OP_RELU: r = x > 0 ? x : 0, keep_int = true; break;
    case OP_NEG: r = -x, keep_int = true; break;
    case OP_ABS: r = fabs(x), keep_int = true; break;
    case OP_EXP: r = exp(x); break;
    case OP_LOG: r = log(x); break;
    case OP_SQRT: r = sqrt(x); break;
    case OP_RSQRT: r = 1.0 / sqrt(x); break;
    case OP_TANH: r = tanh(x); break;
    case OP_SIGMOID: r = 1.0 / (1.0 + exp(-x)); break;
    default: r = x; break;
    }
    if (!isfinite(r))
        return diag_error(e->diag, loc, "%s(%g) is not a finite number in a constant expression", op_table[op].name, x);
    *out = value_num(r, keep_int && v->is_int, loc);
    return true;
}

static bool bi_unary(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    (void)given;
    if (args[0].kind == V_NUM) return fold_unary(e, b->op, &args[0], loc, out);
    int x;
    if (!need_tensor(e, &args[0], fname(e, b), &x)) return false;
    return add_op(e, b->op, &x, 1, NULL, loc, out);
}

/* leaky_relu(x, negative_slope=0.01), PyTorch's default slope. The slope is
 * the op's `value` attribute, baked into the kernel, so it must be a
 * compile-time number; a number x folds through the op's scalar reference. */
static bool bi_leaky_relu(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    NodeAttrs a = {.value = 0.01};
    if (given[1] &&
        !value_number(e, &args[1], arena_printf(e->arena, "negative_slope of %s", fname(e, b)), &a.value))
        return false;
    if (args[0].kind == V_NUM) {
        *out = value_num(op_table[OP_LEAKY_RELU].scalar(&args[0].num, &a), false, loc);
        return true;
    }
    int x;
    if (!need_tensor(e, &args[0], fname(e, b), &x)) return false;
    return add_op(e, OP_LEAKY_RELU, &x, 1, &a, loc, out);
}

/* maximum, minimum, pow: like the infix operators (numbers fold, or take the tensor's dtype). */
static bool bi_binary(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    (void)given;
    if (b->op == OP_POW) return eval_binary_op(e, TK_STARSTAR, &args[0], &args[1], loc, out);
    if (args[0].kind == V_NUM && args[1].kind == V_NUM) {
        bool take_a = b->op == OP_MAX ? args[0].num >= args[1].num : args[0].num <= args[1].num;
        *out = take_a ? args[0] : args[1];
        out->loc = loc;
        return true;
    }
    const Value *t = args[0].kind == V_TENSOR ? &args[0] : args[1].kind == V_TENSOR ? &args[1] : NULL;
    if (!t) {
        const Value *bad = args[0].kind != V_NUM ? &args[0] : &args[1];
        return diag_error(e->diag, bad->loc, "%s needs tensors or numbers, got %s", fname(e, b), value_describe(e, bad));
    }
    DType like = e->graph->nodes[t->id].dtype;
    int ins[2];
    if (!value_tensor(e, &args[0], like, fname(e, b), &ins[0]) || !value_tensor(e, &args[1], like, fname(e, b), &ins[1]))
        return false;
    return add_op(e, b->op, ins, 2, NULL, loc, out);
}

static bool bi_where(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    (void)given;
    if (args[0].kind == V_BOOL && args[1].kind != V_TENSOR && args[2].kind != V_TENSOR) {
        *out = args[0].b ? args[1] : args[2];
        return true;
    }
    DType like = args[1].kind == V_TENSOR   ? e->graph->nodes[args[1].id].dtype
                 : args[2].kind == V_TENSOR ? e->graph->nodes[args[2].id].dtype
                                            : DT_F32;
    int ins[3];
    if (!value_tensor(e, &args[0], DT_BOOL, fname(e, b), &ins[0]) ||
        !value_tensor(e, &args[1], like, fname(e, b), &ins[1]) || !value_tensor(e, &args[2], like, fname(e, b), &ins[2]))
        return false;
    return add_op(e, OP_WHERE, ins, 3, NULL, loc, out);
}

static bool bi_cast(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    (void)given;
    if (args[1].kind != V_DTYPE)
        return diag_error(e->diag, args[1].loc, "the dtype of %s must be " DTYPE_NAMES ", got %s",
                          fname(e, b), value_describe(e, &args[1]));
    DType to = args[1].dtype;
    if (args[0].kind == V_NUM || args[0].kind == V_BOOL) {
        double x = args[0].kind == V_BOOL ? args[0].b : args[0].num;
        if (to == DT_BOOL) *out = (Value){.kind = V_BOOL, .b = x != 0, .loc = loc};
        else if (to == DT_I32 || to == DT_I64) return int_result(e, b, trunc(x), loc, out);
        else *out = value_num(x, false, loc);
        return true;
    }
    int x;
    if (!need_tensor(e, &args[0], fname(e, b), &x)) return false;
    if (e->graph->nodes[x].dtype == to) { /* already that dtype: nothing to do */
        *out = args[0];
        return true;
    }
    NodeAttrs a = {.dtype = to};
    return add_op(e, OP_CAST, &x, 1, &a, loc, out);
}

/* quantize(x, scale, zero_point, dtype, axis=0) and dequantize(q, scale,
 * zero_point, axis=0) (docs/quantization.md). A number scale becomes a
 * constant of x's float dtype (f32 for dequantize, whose result takes the
 * scale's dtype), a number zero point an i32 constant; tensors pass as they
 * are and the op's shape rules (ir/ops/quant.c) report what does not fit. */
static bool bi_quant(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    bool quantize = b->op == OP_QUANTIZE;
    int ins[3], axis_at = quantize ? 4 : 3;
    NodeAttrs a = {0};
    if (!need_tensor(e, &args[0], fname(e, b), &ins[0])) return false;
    if (quantize) {
        if (args[3].kind != V_DTYPE)
            return diag_error(e->diag, args[3].loc, "the dtype of %s must be i8 or u8, got %s", fname(e, b),
                              value_describe(e, &args[3]));
        a.dtype = args[3].dtype;
    }
    DType xt = e->graph->nodes[ins[0]].dtype;
    DType ft = quantize && dtype_is_float(xt) ? xt : DT_F32;
    if (!value_tensor(e, &args[1], ft, arena_printf(e->arena, "scale of %s", fname(e, b)), &ins[1]) ||
        !value_tensor(e, &args[2], DT_I32, arena_printf(e->arena, "zero_point of %s", fname(e, b)), &ins[2]))
        return false;
    if (given[axis_at] && !norm_dim(e, b, loc, ins[0], &args[axis_at], "axis", &a.axis)) return false;
    return add_op(e, b->op, ins, 3, &a, loc, out);
}

/* detach(x): x with no gradient flowing back through it (torch's Tensor.detach) */
static bool bi_detach(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    (void)given;
    int x;
    if (!need_tensor(e, &args[0], fname(e, b), &x)) return false;
    return add_op(e, OP_STOP_GRADIENT, &x, 1, NULL, loc, out);
}

/* int(x), float(x): compile-time conversions (int truncates toward zero, like Python). */
static bool bi_convert(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    (void)given;
    double x;
    if (args[0].kind == V_BOOL) x = args[0].b;
    else if (!value_number(e, &args[0], arena_printf(e->arena, "the argument of %s", fname(e, b)), &x)) return false;
    if (b->name[0] == 'i') return int_result(e, b, trunc(x), loc, out);
    *out = value_num(x, false, loc);
    return true;
}

/* ---- reductions, softmax, matmul ---------------------------------------- */

static bool bi_reduce(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    int x;
    if (!need_tensor(e, &args[0], fname(e, b), &x)) return false;
    NodeAttrs a = {0};
    if (given[1]) {
        if (!norm_dim_list(e, b, loc, x, &args[1], "dim", true, a.axes, &a.n_axes)) return false;
    } else {
        a.n_axes = shape_of(e, x)->rank;
        for (int i = 0; i < a.n_axes; i++) a.axes[i] = i;
    }
    if (given[2] && !value_bool(e, &args[2], arena_printf(e->arena, "keepdim of %s", fname(e, b)), &a.keepdims))
        return false;
    return add_op(e, b->op, &x, 1, &a, loc, out);
}

static bool bi_softmax(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    int x;
    if (!need_tensor(e, &args[0], fname(e, b), &x)) return false;
    NodeAttrs a = {0};
    Value dflt = value_num(-1, true, loc);
    if (!norm_dim(e, b, loc, x, given[1] ? &args[1] : &dflt, "dim", &a.axis)) return false;
    return add_op(e, b->op, &x, 1, &a, loc, out);
}

static bool bi_matmul(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    (void)given;
    int ins[2];
    if (!need_tensor(e, &args[0], fname(e, b), &ins[0]) || !need_tensor(e, &args[1], fname(e, b), &ins[1]))
        return false;
    return add_op(e, OP_MATMUL, ins, 2, NULL, loc, out);
}

/* ---- layout ------------------------------------------------------------- */

static bool emit_reshape(Elab *e, int x, Shape s, SrcLoc loc, Value *out) {
    if (shape_equal(shape_of(e, x), &s)) { /* nothing moves */
        *out = (Value){.kind = V_TENSOR, .id = x, .loc = loc};
        return true;
    }
    NodeAttrs a = {.shape = s};
    return add_op(e, OP_RESHAPE, &x, 1, &a, loc, out);
}

static bool bi_reshape(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    (void)given;
    int x, infer;
    Shape s;
    if (!need_tensor(e, &args[0], fname(e, b), &x) || !shape_list(e, b, &args[1], "the shape", true, &s, &infer))
        return false;
    if (infer >= 0) {
        int64_t total = shape_numel(shape_of(e, x)), known = shape_numel(&s);
        if (total % known != 0)
            return diag_error(e->diag, loc, "cannot reshape %s (%lld elements) with a -1: %lld is not a multiple of %lld",
                              tensor_type(e, x), (long long)total, (long long)total, (long long)known);
        s.dim[infer] = total / known;
    }
    return emit_reshape(e, x, s, loc, out);
}

static bool bi_flatten(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    int x, start, end;
    if (!need_tensor(e, &args[0], fname(e, b), &x)) return false;
    const Shape *in = shape_of(e, x);
    if (in->rank == 0) return emit_reshape(e, x, (Shape){.rank = 1, .dim = {1}}, loc, out);
    Value dstart = value_num(1, true, loc), dend = value_num(-1, true, loc);
    if (!norm_dim(e, b, loc, x, given[1] ? &args[1] : &dstart, "start_dim", &start) ||
        !norm_dim(e, b, loc, x, given[2] ? &args[2] : &dend, "end_dim", &end))
        return false;
    if (start > end)
        return diag_error(e->diag, loc, "flatten() start_dim %d comes after end_dim %d for %s", start, end,
                          tensor_type(e, x));
    Shape s = {0};
    for (int i = 0; i < start; i++) s.dim[s.rank++] = in->dim[i];
    int64_t p = 1;
    for (int i = start; i <= end; i++) p *= in->dim[i];
    s.dim[s.rank++] = p;
    for (int i = end + 1; i < in->rank; i++) s.dim[s.rank++] = in->dim[i];
    return emit_reshape(e, x, s, loc, out);
}

static bool emit_transpose(Elab *e, int x, const int *perm, SrcLoc loc, Value *out) {
    NodeAttrs a = {.n_axes = shape_of(e, x)->rank};
    bool identity = true;
    for (int i = 0; i < a.n_axes; i++) {
        a.axes[i] = perm[i];
        identity &= perm[i] == i;
    }
    if (identity) {
        *out = (Value){.kind = V_TENSOR, .id = x, .loc = loc};
        return true;
    }
    return add_op(e, OP_TRANSPOSE, &x, 1, &a, loc, out);
}

static bool bi_transpose(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    int x;
    if (!need_tensor(e, &args[0], fname(e, b), &x)) return false;
    int rank = shape_of(e, x)->rank, perm[ETCH_MAX_RANK];
    for (int i = 0; i < rank; i++) perm[i] = i;
    if (!given[1] && !given[2]) {
        if (rank > 2)
            return diag_error(e->diag, loc,
                              "transpose(x) without dims needs a tensor of at most 2 dims, got %s; name the dims: "
                              "transpose(x, dim0, dim1)",
                              tensor_type(e, x));
        if (rank == 2) perm[0] = 1, perm[1] = 0;
        return emit_transpose(e, x, perm, loc, out);
    }
    if (!given[1] || !given[2]) return diag_error(e->diag, loc, "transpose() needs both dim0 and dim1, or neither");
    int d0, d1;
    if (!norm_dim(e, b, loc, x, &args[1], "dim0", &d0) || !norm_dim(e, b, loc, x, &args[2], "dim1", &d1)) return false;
    perm[d0] = d1;
    perm[d1] = d0;
    return emit_transpose(e, x, perm, loc, out);
}

static bool bi_permute(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    (void)given;
    int x, perm[ETCH_MAX_RANK], n;
    if (!need_tensor(e, &args[0], fname(e, b), &x)) return false;
    if (args[1].kind != V_LIST)
        return diag_error(e->diag, args[1].loc, "the dims of permute() must be a list like [0, 2, 1], got %s",
                          value_describe(e, &args[1]));
    int rank = shape_of(e, x)->rank;
    if (args[1].n_items != rank)
        return diag_error(e->diag, loc, "permute() of %s needs %d dims, got %d", tensor_type(e, x), rank,
                          args[1].n_items);
    if (rank == 0) {
        *out = args[0];
        return true;
    }
    if (!norm_dim_list(e, b, loc, x, &args[1], "dims", false, perm, &n)) return false;
    return emit_transpose(e, x, perm, loc, out);
}

static bool bi_broadcast_to(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    (void)given;
    Shape s;
    int infer;
    if (!shape_list(e, b, &args[1], "the shape", false, &s, &infer)) return false;
    if (args[0].kind == V_NUM || args[0].kind == V_BOOL) { /* a filled constant */
        NodeAttrs a = {.value = args[0].kind == V_BOOL ? args[0].b : args[0].num,
                       .dtype = args[0].kind == V_BOOL ? DT_BOOL : DT_F32,
                       .shape = s};
        return add_op(e, OP_CONST, NULL, 0, &a, loc, out);
    }
    int x;
    if (!need_tensor(e, &args[0], fname(e, b), &x)) return false;
    if (shape_equal(shape_of(e, x), &s)) {
        *out = args[0];
        return true;
    }
    NodeAttrs a = {.shape = s};
    return add_op(e, OP_BROADCAST, &x, 1, &a, loc, out);
}

/* ---- losses and penalties (composites of primitives; their gradients come
 * from the primitives' rules) ---- */

/* Sums every element: reduce_sum over all axes (a scalar). */
static bool sum_all(Elab *e, int x, SrcLoc loc, Value *out) {
    NodeAttrs a = {.n_axes = shape_of(e, x)->rank};
    for (int i = 0; i < a.n_axes; i++) a.axes[i] = i;
    if (a.n_axes == 0) {
        *out = (Value){.kind = V_TENSOR, .id = x, .loc = loc};
        return true;
    }
    return add_op(e, OP_REDUCE_SUM, &x, 1, &a, loc, out);
}

/* -mean over N of sum over C of (logp * one_hot(labels)): PyTorch's nll_loss
 * with mean reduction, for logp [N, C] and integer labels [N]. */
static bool nll_of(Elab *e, const Builtin *b, SrcLoc loc, int logp, const Value *labels, Value *out) {
    int y;
    if (!need_tensor(e, labels, fname(e, b), &y)) return false;
    const Node *lp = &e->graph->nodes[logp], *yl = &e->graph->nodes[y];
    if (lp->shape.rank != 2 || !dtype_is_float(lp->dtype) || yl->shape.rank != 1 || dtype_is_float(yl->dtype) ||
        yl->dtype == DT_BOOL || yl->shape.dim[0] != lp->shape.dim[0])
        return diag_error(e->diag, loc, "%s takes scores f32[N, C] and integer class labels i64[N], got %s and %s",
                          fname(e, b), tensor_type(e, logp), tensor_type(e, y));
    int64_t n = lp->shape.dim[0], c = lp->shape.dim[1];
    DType ft = lp->dtype, it = yl->dtype;
    Value col, io, hit, mask, picked, total;
    NodeAttrs col_a = {.shape = {2, {n, 1}}}, io_a = {.dtype = it, .shape = {2, {1, c}}, .axis = 1};
    NodeAttrs cast_a = {.dtype = ft}, sum_c = {.n_axes = 1, .axes = {1}}, mean_n = {.n_axes = 1, .axes = {0}};
    if (!add_op(e, OP_RESHAPE, &y, 1, &col_a, loc, &col) || !add_op(e, OP_IOTA, NULL, 0, &io_a, loc, &io) ||
        !add_op(e, OP_EQ, (int[]){col.id, io.id}, 2, NULL, loc, &hit) ||
        !add_op(e, OP_CAST, &hit.id, 1, &cast_a, loc, &mask) ||
        !add_op(e, OP_MUL, (int[]){logp, mask.id}, 2, NULL, loc, &picked) ||
        !add_op(e, OP_REDUCE_SUM, &picked.id, 1, &sum_c, loc, &total) ||
        !add_op(e, OP_REDUCE_MEAN, &total.id, 1, &mean_n, loc, &picked))
        return false;
    return add_op(e, OP_NEG, &picked.id, 1, NULL, loc, out);
}

static bool bi_nll(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    (void)given;
    int x;
    if (!need_tensor(e, &args[0], fname(e, b), &x)) return false;
    return nll_of(e, b, loc, x, &args[1], out);
}

/* cross_entropy(logits, labels) = nll(log_softmax(logits, dim=1), labels) */
static bool bi_cross_entropy(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    (void)given;
    int x;
    Value ls;
    if (!need_tensor(e, &args[0], fname(e, b), &x)) return false;
    if (shape_of(e, x)->rank != 2 || !dtype_is_float(e->graph->nodes[x].dtype))
        return nll_of(e, b, loc, x, &args[1], out); /* reports the expected types */
    NodeAttrs a = {.axis = 1};
    return add_op(e, OP_LOG_SOFTMAX, &x, 1, &a, loc, &ls) && nll_of(e, b, loc, ls.id, &args[1], out);
}

/* mse(input, target) = mean((input - target)^2) over every element */
static bool bi_mse(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    (void)given;
    int x, t;
    if (!need_tensor(e, &args[0], fname(e, b), &x) || !need_tensor(e, &args[1], fname(e, b), &t)) return false;
    if (!shape_equal(shape_of(e, x), shape_of(e, t)) || e->graph->nodes[x].dtype != e->graph->nodes[t].dtype)
        return diag_error(e->diag, loc, "%s needs input and target of the same type, got %s and %s", fname(e, b),
                          tensor_type(e, x), tensor_type(e, t));
    Value d, sq;
    NodeAttrs all = {.n_axes = shape_of(e, x)->rank};
    for (int i = 0; i < all.n_axes; i++) all.axes[i] = i;
    if (!add_op(e, OP_SUB, (int[]){x, t}, 2, NULL, loc, &d) || !add_op(e, OP_MUL, (int[]){d.id, d.id}, 2, NULL, loc, &sq))
        return false;
    if (!all.n_axes) {
        *out = sq;
        return true;
    }
    return add_op(e, OP_REDUCE_MEAN, &sq.id, 1, &all, loc, out);
}

/* Adds sum(|p|) (l1) or sum(p*p) (l2) of every trainable param under inst to *acc. */
static bool penalty_of(Elab *e, Instance *inst, OpKind op, SrcLoc loc, Value *acc, bool *any) {
    for (int i = 0; i < inst->n_params; i++) {
        ParamSpec *p = inst->params[i];
        if (p->frozen || !dtype_is_float(p->dtype) || p->id < 0) continue;
        Value term, s;
        bool ok = op == OP_ABS ? add_op(e, OP_ABS, &p->id, 1, NULL, loc, &term)
                               : add_op(e, OP_MUL, (int[]){p->id, p->id}, 2, NULL, loc, &term);
        if (!ok || !sum_all(e, term.id, loc, &s)) return false;
        if (*any && e->graph->nodes[s.id].dtype == e->graph->nodes[acc->id].dtype) {
            if (!add_op(e, OP_ADD, (int[]){acc->id, s.id}, 2, NULL, loc, acc)) return false;
        } else if (!*any) {
            *acc = s;
            *any = true;
        }
    }
    for (int i = 0; i < inst->n_children; i++)
        if (!penalty_of(e, inst->children[i], op, loc, acc, any)) return false;
    return true;
}

/* l1(module) = sum |p|, l2(module) = sum p^2 over the module's trainable params */
static bool bi_penalty(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    (void)given;
    if (args[0].kind != V_INSTANCE)
        return diag_error(e->diag, args[0].loc, "%s takes a module (e.g. l2(Net) or l2(fc1)), got %s", fname(e, b),
                          value_describe(e, &args[0]));
    bool any = false;
    if (!penalty_of(e, args[0].inst, b->op, loc, out, &any)) return false;
    if (!any) *out = value_num(0, false, loc);
    return true;
}

/* ---- convolution and pooling (torch.nn.functional's forms) -------------- */

/* An int or an [h, w] list of ints, each at least lo (1: positive, 0: non-negative), into out[2]. */
static bool pair_arg(Elab *e, const Builtin *b, const Value *v, const char *what, int64_t lo, int *out) {
    if (v->kind != V_NUM && !(v->kind == V_LIST && v->n_items == 2))
        return diag_error(e->diag, v->loc, "%s of %s must be an integer or a list [h, w] of two integers, got %s",
                          what, fname(e, b), value_describe(e, v));
    for (int i = 0; i < 2; i++) {
        const Value *item = v->kind == V_LIST ? &v->items[i] : v;
        int64_t x;
        if (!value_int(e, item, arena_printf(e->arena, "%s of %s", what, fname(e, b)), &x)) return false;
        if (x < lo || x > 2147483647)
            return diag_error(e->diag, item->loc, "%s of %s must be %s, got %lld", what, fname(e, b),
                              lo ? "positive" : "non-negative", (long long)x);
        out[i] = (int)x;
    }
    return true;
}

/* conv2d(x, weight, stride=1, padding=0, dilation=1, groups=1); bias is a separate add */
static bool bi_conv2d(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    int ins[2];
    if (!need_tensor(e, &args[0], fname(e, b), &ins[0]) || !need_tensor(e, &args[1], fname(e, b), &ins[1]))
        return false;
    NodeAttrs a = {.conv = {.stride = {1, 1}, .dilation = {1, 1}, .groups = 1}};
    if ((given[2] && !pair_arg(e, b, &args[2], "stride", 1, a.conv.stride)) ||
        (given[3] && !pair_arg(e, b, &args[3], "padding", 0, a.conv.pad)) ||
        (given[4] && !pair_arg(e, b, &args[4], "dilation", 1, a.conv.dilation)))
        return false;
    if (given[5]) {
        int64_t groups;
        if (!value_int(e, &args[5], arena_printf(e->arena, "groups of %s", fname(e, b)), &groups)) return false;
        if (groups < 1 || groups > 2147483647)
            return diag_error(e->diag, args[5].loc, "groups of %s must be positive, got %lld", fname(e, b),
                              (long long)groups);
        a.conv.groups = (int)groups;
    }
    return add_op(e, OP_CONV2D, ins, 2, &a, loc, out);
}

/* max_pool2d / avg_pool2d(x, kernel_size, stride=kernel_size, padding=0) */
static bool bi_pool2d(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    int x;
    if (!need_tensor(e, &args[0], fname(e, b), &x)) return false;
    NodeAttrs a = {0};
    if (!pair_arg(e, b, &args[1], "kernel_size", 1, a.conv.kernel)) return false;
    memcpy(a.conv.stride, a.conv.kernel, sizeof a.conv.stride);
    if ((given[2] && !pair_arg(e, b, &args[2], "stride", 1, a.conv.stride)) ||
        (given[3] && !pair_arg(e, b, &args[3], "padding", 0, a.conv.pad)))
        return false;
    return add_op(e, b->op, &x, 1, &a, loc, out);
}

/* pair(v): an int or an [h, w] list as an [h, w] list (torch's _pair), for
 * modules whose sizes may be given either way. */
static bool bi_pair(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    (void)given;
    if (args[0].kind == V_LIST && args[0].n_items == 2) {
        *out = args[0];
        return true;
    }
    if (args[0].kind != V_NUM)
        return diag_error(e->diag, args[0].loc, "the argument of %s must be a number or a list of two numbers, got %s",
                          fname(e, b), value_describe(e, &args[0]));
    Value *items = arena_alloc(e->arena, sizeof(Value) * 2);
    items[0] = items[1] = args[0];
    *out = (Value){.kind = V_LIST, .items = items, .n_items = 2, .loc = loc};
    return true;
}

/* ---- sequences (for loops unroll over them: statements.c) ---------------- */

/* range(stop) or range(start, stop, step=1): Python's, as a list of integers */
static bool bi_range(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    int64_t v[3] = {0, 0, 1};
    static const char *const what[] = {"start of range()", "stop of range()", "step of range()"};
    if (!given[1]) {
        if (!value_int(e, &args[0], what[1], &v[1])) return false;
    } else {
        for (int k = 0; k < 3; k++)
            if (given[k] && !value_int(e, &args[k], what[k], &v[k])) return false;
    }
    if (v[2] == 0) return diag_error(e->diag, args[2].loc, "step of range() must not be zero");
    double n = v[2] > 0 ? ceil((double)(v[1] - v[0]) / (double)v[2]) : ceil((double)(v[0] - v[1]) / (double)-v[2]);
    if (n < 0) n = 0;
    if (n > ELAB_MAX_SEQUENCE)
        return diag_error(e->diag, loc, "%s of %.0f numbers; at most %d are supported", fname(e, b), n,
                          ELAB_MAX_SEQUENCE);
    Value *items = arena_alloc(e->arena, sizeof(Value) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < (int64_t)n; i++) items[i] = value_num((double)(v[0] + i * v[2]), true, loc);
    *out = (Value){.kind = V_LIST, .items = items, .n_items = (int)n, .loc = loc};
    return true;
}

/* reversed(seq): a list or tuple backward. `for x in reversed(xs)` over a
 * tensor runs the loop backward in time instead (statements.c). */
static bool bi_reversed(Elab *e, const Builtin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    (void)given;
    const Value *v = &args[0];
    if (v->kind == V_TENSOR)
        return diag_error(e->diag, v->loc,
                          "%s of a tensor is only supported as the sequence of a 'for' loop (for x in reversed(xs) "
                          "runs the loop backward over the first dim), got %s",
                          fname(e, b), value_describe(e, v));
    if (v->kind != V_LIST && v->kind != V_TUPLE)
        return diag_error(e->diag, v->loc, "%s needs a list, a tuple or a range, got %s", fname(e, b),
                          value_describe(e, v));
    Value *items = arena_alloc(e->arena, sizeof(Value) * (size_t)(v->n_items ? v->n_items : 1));
    for (int i = 0; i < v->n_items; i++) items[i] = v->items[v->n_items - 1 - i];
    *out = (Value){.kind = v->kind, .items = items, .n_items = v->n_items, .loc = loc};
    return true;
}

/* ---- the table ---------------------------------------------------------- */

#define UNARY(n, k) {n, {"x"}, 1, 1, bi_unary, k}
static const Builtin builtins[] = {
    UNARY("relu", OP_RELU),
    {"leaky_relu", {"x", "negative_slope"}, 2, 1, bi_leaky_relu, OP_LEAKY_RELU},
    UNARY("sigmoid", OP_SIGMOID),
    UNARY("tanh", OP_TANH),
    UNARY("exp", OP_EXP),
    UNARY("log", OP_LOG),
    UNARY("sqrt", OP_SQRT),
    UNARY("rsqrt", OP_RSQRT),
    UNARY("abs", OP_ABS),
    UNARY("neg", OP_NEG),
    {"maximum", {"a", "b"}, 2, 2, bi_binary, OP_MAX},
    {"minimum", {"a", "b"}, 2, 2, bi_binary, OP_MIN},
    {"pow", {"a", "b"}, 2, 2, bi_binary, OP_POW},
    {"where", {"cond", "a", "b"}, 3, 3, bi_where, OP_WHERE},
    {"sum", {"x", "dim", "keepdim"}, 3, 1, bi_reduce, OP_REDUCE_SUM},
    {"mean", {"x", "dim", "keepdim"}, 3, 1, bi_reduce, OP_REDUCE_MEAN},
    {"max", {"x", "dim", "keepdim"}, 3, 1, bi_reduce, OP_REDUCE_MAX},
    {"matmul", {"a", "b"}, 2, 2, bi_matmul, OP_MATMUL},
    {"reshape", {"x", "shape"}, 2, 2, bi_reshape, OP_RESHAPE},
    {"flatten", {"x", "start_dim", "end_dim"}, 3, 1, bi_flatten, OP_RESHAPE},
    {"transpose", {"x", "dim0", "dim1"}, 3, 1, bi_transpose, OP_TRANSPOSE},
    {"permute", {"x", "dims"}, 2, 2, bi_permute, OP_TRANSPOSE},
    {"broadcast_to", {"x", "shape"}, 2, 2, bi_broadcast_to, OP_BROADCAST},
    {"cast", {"x", "dtype"}, 2, 2, bi_cast, OP_CAST},
    {"quantize", {"x", "scale", "zero_point", "dtype", "axis"}, 5, 4, bi_quant, OP_QUANTIZE},
    {"dequantize", {"q", "scale", "zero_point", "axis"}, 4, 3, bi_quant, OP_DEQUANTIZE},
    {"detach", {"x"}, 1, 1, bi_detach, OP_STOP_GRADIENT},
    {"softmax", {"x", "dim"}, 2, 1, bi_softmax, OP_SOFTMAX},
    {"log_softmax", {"x", "dim"}, 2, 1, bi_softmax, OP_LOG_SOFTMAX},
    {"int", {"x"}, 1, 1, bi_convert, OP_COUNT},
    {"float", {"x"}, 1, 1, bi_convert, OP_COUNT},
    {"cross_entropy", {"input", "target"}, 2, 2, bi_cross_entropy, OP_COUNT},
    {"nll", {"input", "target"}, 2, 2, bi_nll, OP_COUNT},
    {"mse", {"input", "target"}, 2, 2, bi_mse, OP_COUNT},
    {"l1", {"module"}, 1, 1, bi_penalty, OP_ABS},
    {"l2", {"module"}, 1, 1, bi_penalty, OP_MUL},
    {"conv2d", {"x", "weight", "stride", "padding", "dilation", "groups"}, 6, 2, bi_conv2d, OP_CONV2D},
    {"max_pool2d", {"x", "kernel_size", "stride", "padding"}, 4, 2, bi_pool2d, OP_MAX_POOL2D},
    {"avg_pool2d", {"x", "kernel_size", "stride", "padding"}, 4, 2, bi_pool2d, OP_AVG_POOL2D},
    {"pair", {"x"}, 1, 1, bi_pair, OP_COUNT},
    {"range", {"start", "stop", "step"}, 3, 1, bi_range, OP_COUNT},
    {"reversed", {"seq"}, 1, 1, bi_reversed, OP_COUNT},
};
#undef UNARY
enum { N_BUILTINS = sizeof builtins / sizeof builtins[0] };

static const Builtin *builtin_find(const char *name) {
    for (int i = 0; i < N_BUILTINS; i++)
        if (strcmp(builtins[i].name, name) == 0) return &builtins[i];
    return NULL;
}

bool builtin_exists(const char *name) { return builtin_find(name) != NULL || layer_builtin_exists(name); }

const char *const *builtin_names(void) {
    static const char *names[N_BUILTINS + LAYER_BUILTINS_MAX + 1];
    int n = 0;
    for (int i = 0; i < N_BUILTINS; i++) names[n++] = builtins[i].name;
    for (const char *const *l = layer_builtin_names(); *l; l++) names[n++] = *l; /* builtins_layers.c */
    names[n] = NULL;
    return names;
}

bool builtin_call(Elab *e, const char *name, SrcLoc loc, const CallArgs *ca, Value *out, bool *found) {
    const Builtin *b = builtin_find(name);
    if (!b) return layer_builtin_call(e, name, loc, ca, out, found);
    *found = b != NULL;
    if (!b) return false;
    Value slots[BUILTIN_MAX_PARAMS];
    bool given[BUILTIN_MAX_PARAMS];
    if (!bind_args(e, loc, fname(e, b), b->params, b->n_params, b->n_required, ca, slots, given)) return false;
    for (int i = 0; i < b->n_params; i++)
        if (given[i] && slots[i].kind == V_TUPLE && b->impl != bi_reversed) /* reversed() takes tuples */
            return diag_error(e->diag, slots[i].loc, "argument '%s' of %s is %s; unpack it with 'let a, b = ...' first",
                              b->params[i], fname(e, b), value_describe(e, &slots[i]));
    return b->impl(e, b, loc, slots, given, out);
}
