/* ops.c: the op table (one row per supported ONNX op, looked up by op_type)
 * and the rules for the elementwise, comparison and layout ops.
 *
 * A rule computes its outputs' static types, then either folds (every input
 * it reads is a constant: the result is a constant too, nothing is written)
 * or writes one `let` per output with the DSL builtin or operator that means
 * the same thing. The layer ops (Gemm, MatMul, Conv, pooling, the norms,
 * Gather) are in ops_nn.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/onnx/onnx_internal.h"

/* ---- elementwise ------------------------------------------------------------ */

static double f_relu(const double *x, double a) { return (void)a, x[0] > 0 ? x[0] : 0; }
static double f_sigmoid(const double *x, double a) { return (void)a, 1 / (1 + exp(-x[0])); }
static double f_tanh(const double *x, double a) { return (void)a, tanh(x[0]); }
static double f_exp(const double *x, double a) { return (void)a, exp(x[0]); }
static double f_log(const double *x, double a) { return (void)a, log(x[0]); }
static double f_sqrt(const double *x, double a) { return (void)a, sqrt(x[0]); }
static double f_erf(const double *x, double a) { return (void)a, erf(x[0]); }
static double f_abs(const double *x, double a) { return (void)a, fabs(x[0]); }
static double f_neg(const double *x, double a) { return (void)a, -x[0]; }
static double f_recip(const double *x, double a) { return (void)a, 1 / x[0]; }
static double f_floor(const double *x, double a) { return (void)a, floor(x[0]); }
static double f_ceil(const double *x, double a) { return (void)a, ceil(x[0]); }
static double f_not(const double *x, double a) { return (void)a, x[0] == 0; }
static double f_leaky(const double *x, double a) { return x[0] > 0 ? x[0] : a * x[0]; }
static double f_add(const double *x, double a) { return (void)a, x[0] + x[1]; }
static double f_sub(const double *x, double a) { return (void)a, x[0] - x[1]; }
static double f_mul(const double *x, double a) { return (void)a, x[0] * x[1]; }
static double f_div(const double *x, double a) { return (void)a, x[0] / x[1]; }
static double f_pow(const double *x, double a) { return (void)a, pow(x[0], x[1]); }
static double f_eq(const double *x, double a) { return (void)a, x[0] == x[1]; }
static double f_lt(const double *x, double a) { return (void)a, x[0] < x[1]; }
static double f_gt(const double *x, double a) { return (void)a, x[0] > x[1]; }
static double f_le(const double *x, double a) { return (void)a, x[0] <= x[1]; }
static double f_ge(const double *x, double a) { return (void)a, x[0] >= x[1]; }
static double f_max(const double *x, double a) { return (void)a, x[0] > x[1] || x[1] != x[1] ? x[0] : x[1]; }
static double f_min(const double *x, double a) { return (void)a, x[0] < x[1] || x[1] != x[1] ? x[0] : x[1]; }
static double f_where(const double *x, double a) { return (void)a, x[0] != 0 ? x[1] : x[2]; }

typedef double (*OxScalarFn)(const double *x, double arg);
/* How each elementwise rule's arg folds: the builtin or operator -> its scalar function. */
static const struct {
    const char *arg;
    OxScalarFn f;
} FOLDS[] = {
    {"relu", f_relu},   {"sigmoid", f_sigmoid}, {"tanh", f_tanh},   {"exp", f_exp},     {"log", f_log},
    {"sqrt", f_sqrt},   {"erf", f_erf},         {"abs", f_abs},     {"neg", f_neg},     {"1.0 /", f_recip},
    {"floor", f_floor}, {"ceil", f_ceil},       {"not", f_not},     {"+", f_add},       {"-", f_sub},
    {"*", f_mul},       {"/", f_div},           {"**", f_pow},      {"==", f_eq},       {"<", f_lt},
    {">", f_gt},        {"<=", f_le},           {">=", f_ge},       {"maximum", f_max}, {"minimum", f_min},
};

static OxScalarFn fold_fn(const char *arg) {
    for (size_t i = 0; i < sizeof FOLDS / sizeof FOLDS[0]; i++)
        if (!strcmp(FOLDS[i].arg, arg)) return FOLDS[i].f;
    return NULL;
}


/* relu(x), sqrt(x), ...; also Reciprocal (arg "1.0 /") and the fold-only ones. */
static bool rule_unary(OxImport *ox, OxNode *n, const char *fn) {
    OxValue *x = n->in[0];
    if (x->data) return ox_define_const(ox, n, 0, ox_fold_map(ox, ox_out_name(n, 0), x->elem, &x, 1, fold_fn(fn), 0));
    if (!strcmp(fn, "floor") || !strcmp(fn, "ceil") || !strcmp(fn, "not"))
        return ox_error(ox, "%s on tensors known only at run time is not supported (only in folded shape computations)",
                        n->proto->op_type);
    if (!strcmp(fn, "1.0 /")) return ox_define(ox, n, 0, x->elem, x->rank, x->dim, "1.0 / %s", x->expr);
    return ox_define(ox, n, 0, x->elem, x->rank, x->dim, "%s(%s)", fn, x->expr);
}

/* Sqrt read by nothing but a Reciprocal: rsqrt(x), which the Reciprocal
 * then names (etch export writes rsqrt so; rsqrt rounds once, as etch
 * computes it, so the round trip gives the same numbers). */
static bool rule_sqrt(OxImport *ox, OxNode *n, const char *fn) {
    OxValue *x = n->in[0], *r = ox_lookup_in(&ox->readers, ox_out_name(n, 0));
    const Onnx__NodeProto *reader = r && r->uses == 1 && r->producer >= 0 ? ox->graph->node[r->producer] : NULL;
    if (x->data || !reader || strcmp(reader->op_type, "Reciprocal") || (reader->domain && *reader->domain))
        return rule_unary(ox, n, fn);
    ox->absorbed[r->producer] = arena_strdup(ox->a, ox_out_name(n, 0));
    return ox_define(ox, n, 0, x->elem, x->rank, x->dim, "rsqrt(%s)", x->expr);
}

static bool is_cmp(const char *op) { return op[0] == '=' || op[0] == '<' || op[0] == '>'; }
static bool is_int(int32_t elem) { return elem == OX_INT64 || elem == OX_INT32; }

/* a OP b for + - * / ** and the comparisons, broadcasting as NumPy (and the DSL). */
static bool rule_binary(OxImport *ox, OxNode *n, const char *op) {
    OxValue *a = n->in[0], *b = n->in[1];
    int32_t elem = is_cmp(op) ? OX_BOOL : a->elem;
    if (a->data && b->data) {
        if (is_int(a->elem) && a->elem == b->elem && strlen(op) == 1 && strchr("+-*/", op[0]))
            return ox_define_const(ox, n, 0, ox_fold_int_binary(ox, ox_out_name(n, 0), a, b, op[0]));
        return ox_define_const(ox, n, 0, ox_fold_map(ox, ox_out_name(n, 0), elem, n->in, 2, fold_fn(op), 0));
    }
    if (a->elem != b->elem && strcmp(op, "**"))
        return ox_error(ox, "the inputs have different element types (%s and %s)", ox_elem_name(a->elem),
                        ox_elem_name(b->elem));
    int rank;
    int64_t dim[OX_MAX_RANK];
    if (!ox_broadcast(ox, a, b, &rank, dim)) return false;
    const char *sa = ox_operand(ox, a, b->rank), *sb = ox_operand(ox, b, a->rank);
    if (!sa || !sb) return false;
    if (a->elem != b->elem && b->expr) sb = arena_printf(ox->a, "cast(%s, %s)", sb, ox_elem_dtype(a->elem));
    return ox_define(ox, n, 0, elem, rank, dim, "%s %s %s", sa, op, sb);
}

/* Max, Min: maximum(maximum(a, b), c) */
static bool rule_nary(OxImport *ox, OxNode *n, const char *fn) {
    bool all_const = true;
    for (int i = 0; i < n->n_in; i++) all_const &= n->in[i]->data != NULL;
    if (n->n_in == 1) return ox_alias(ox, n, 0, n->in[0]);
    OxValue *acc = n->in[0];
    if (all_const) {
        for (int i = 1; i < n->n_in && acc; i++) {
            OxValue *pair[2] = {acc, n->in[i]};
            acc = ox_fold_map(ox, ox_out_name(n, 0), acc->elem, pair, 2, fold_fn(fn), 0);
        }
        return ox_define_const(ox, n, 0, acc);
    }
    OxValue shape = *n->in[0];
    const char *text = NULL;
    for (int i = 1; i < n->n_in; i++) {
        OxValue *b = n->in[i];
        if (!ox_broadcast(ox, &shape, b, &shape.rank, shape.dim)) return false;
        const char *sa = text ? text : ox_operand(ox, acc, -1), *sb = ox_operand(ox, b, -1);
        if (!sa || !sb) return false;
        text = arena_printf(ox->a, "%s(%s, %s)", fn, sa, sb);
    }
    return ox_define(ox, n, 0, acc->elem, shape.rank, shape.dim, "%s", text);
}

static bool rule_where(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    OxValue *c = n->in[0], *a = n->in[1], *b = n->in[2];
    if (c->elem != OX_BOOL) return ox_error(ox, "the condition must be BOOL");
    if (c->data && a->data && b->data)
        return ox_define_const(ox, n, 0, ox_fold_map(ox, ox_out_name(n, 0), a->elem, n->in, 3, f_where, 0));
    OxValue shape = *c;
    if (!ox_broadcast(ox, &shape, a, &shape.rank, shape.dim) || !ox_broadcast(ox, &shape, b, &shape.rank, shape.dim))
        return false;
    /* two numbers would both default to f32: one of them is written as a param */
    const char *sc = ox_operand(ox, c, -1), *sa = ox_operand(ox, a, a->data && b->data ? -1 : shape.rank),
               *sb = ox_operand(ox, b, shape.rank);
    if (!sc || !sa || !sb) return false;
    return ox_define(ox, n, 0, a->elem, shape.rank, shape.dim, "where(%s, %s, %s)", sc, sa, sb);
}

/* Trilu (opset 14): where(mask, x, 0) with the constant [rows, cols] mask of
 * the kept triangle (j - i >= k for upper, <= k for lower); folded for a
 * constant x. */
static bool rule_trilu(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    OxValue *x = n->in[0];
    int64_t upper, k = 0, *ks;
    int count;
    if (!ox_attr_int(ox, n, "upper", 1, &upper)) return false;
    if (n->n_in > 1 && n->in[1]) {
        if (!ox_const_ints(ox, n->in[1], "k", &ks, &count)) return false;
        if (count != 1) return ox_error(ox, "k must hold one number");
        k = ks[0];
    }
    if (x->rank < 2) return ox_error(ox, "the input must have rank 2 or more");
    int64_t rows = x->dim[x->rank - 2], cols = x->dim[x->rank - 1];
    OxValue *in[3];
    const char *base = n->proto->name && *n->proto->name ? n->proto->name : ox_out_name(n, 0);
    in[0] = ox_new_const(ox, arena_printf(ox->a, "%s_mask", base), OX_BOOL, 2, x->dim + x->rank - 2);
    if (!in[0]) return false;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) ox_set(in[0], i * cols + j, upper ? j - i >= k : j - i <= k);
    in[1] = x;
    in[2] = ox_new_const(ox, "zero", x->elem, 0, NULL);
    if (!in[2]) return false;
    if (x->data) return ox_define_const(ox, n, 0, ox_fold_map(ox, ox_out_name(n, 0), x->elem, in, 3, f_where, 0));
    const char *sm = ox_operand(ox, in[0], -1), *sx = ox_operand(ox, x, -1), *sz = ox_operand(ox, in[2], x->rank);
    if (!sm || !sx || !sz) return false;
    return ox_define(ox, n, 0, x->elem, x->rank, x->dim, "where(%s, %s, %s)", sm, sx, sz);
}

static bool rule_leaky_relu(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    OxValue *x = n->in[0];
    double alpha;
    if (!ox_attr_float(ox, n, "alpha", 0.01, &alpha)) return false;
    if (x->data) return ox_define_const(ox, n, 0, ox_fold_map(ox, ox_out_name(n, 0), x->elem, &x, 1, f_leaky, alpha));
    const char *s = x->elem == OX_FLOAT || x->elem == OX_DOUBLE ? ox_number(ox, alpha, x->elem) : NULL;
    if (!s) return ox_error(ox, "needs a finite alpha and a FLOAT or DOUBLE input");
    return ox_define(ox, n, 0, x->elem, x->rank, x->dim, "where(%s > 0, %s, %s * %s)", x->expr, x->expr, x->expr, s);
}

/* Gelu (opset 20): gelu(x), etch's exact erf form, or with approximate="tanh"
 * the tanh formula x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
static bool rule_gelu(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    OxValue *x = n->in[0];
    const char *approximate, *sx;
    if (!ox_attr_string(ox, n, "approximate", "none", &approximate)) return false;
    if (x->elem != OX_FLOAT && x->elem != OX_DOUBLE) return ox_error(ox, "needs a FLOAT or DOUBLE input");
    if (!(sx = ox_operand(ox, x, -1))) return false;
    if (!strcmp(approximate, "none")) return ox_define(ox, n, 0, x->elem, x->rank, x->dim, "gelu(%s)", sx);
    if (strcmp(approximate, "tanh")) return ox_error(ox, "approximate '%s' is not one of none, tanh", approximate);
    return ox_define(ox, n, 0, x->elem, x->rank, x->dim, "0.5 * %s * (1.0 + tanh(%s * (%s + 0.044715 * %s * %s * %s)))", sx,
                     ox_number(ox, 0.7978845608028654, x->elem), sx, sx, sx, sx);
}

static bool rule_softmax(OxImport *ox, OxNode *n, const char *fn) {
    OxValue *x = n->in[0];
    int64_t axis;
    int k;
    if (!ox_attr_int(ox, n, "axis", -1, &axis) || !ox_axis(ox, axis, x->rank, "axis", &k)) return false;
    const char *sx = ox_operand(ox, x, -1);
    return sx && ox_define(ox, n, 0, x->elem, x->rank, x->dim, "%s(%s, dim=%d)", fn, sx, k);
}

/* Clip(x, min, max) -> minimum(maximum(x, min), max); an absent bound is none. */
static bool rule_clip(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    OxValue *x = n->in[0], *lo = n->n_in > 1 ? n->in[1] : NULL, *hi = n->n_in > 2 ? n->in[2] : NULL;
    for (int i = 1; i < n->n_in; i++)
        if (n->in[i] && ox_numel(n->in[i]) != 1) return ox_error(ox, "min and max must be scalars");
    if (x->data) {
        OxValue *v = x;
        if (lo) v = ox_fold_map(ox, ox_out_name(n, 0), x->elem, (OxValue *[]){v, lo}, 2, f_max, 0);
        if (hi && v) v = ox_fold_map(ox, ox_out_name(n, 0), x->elem, (OxValue *[]){v, hi}, 2, f_min, 0);
        return ox_define_const(ox, n, 0, v == x ? ox_fold_reshape(ox, ox_out_name(n, 0), x, x->rank, x->dim) : v);
    }
    const char *text = x->expr, *s;
    if (lo) {
        if (!(s = ox_operand(ox, lo, x->rank))) return false;
        text = arena_printf(ox->a, "maximum(%s, %s)", text, s);
    }
    if (hi) {
        if (!(s = ox_operand(ox, hi, x->rank))) return false;
        text = arena_printf(ox->a, "minimum(%s, %s)", text, s);
    }
    if (text == x->expr) return ox_alias(ox, n, 0, x);
    return ox_define(ox, n, 0, x->elem, x->rank, x->dim, "%s", text) != NULL;
}

/* Identity, and Dropout at inference: the input itself. */
static bool rule_identity(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    if (n->n_in >= 3 && n->in[2]) {
        if (!n->in[2]->data) return ox_error(ox, "training_mode must be a constant");
        if (ox_get(n->in[2], 0) != 0) return ox_error(ox, "training_mode is true: export the model in eval mode");
    }
    return ox_alias(ox, n, 0, n->in[0]);
}

static bool rule_cast(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    OxValue *x = n->in[0];
    int64_t to;
    if (!ox_attr_int(ox, n, "to", 0, &to)) return false;
    if (!ox_elem_size((int32_t)to))
        return ox_error(ox, "cast to %s: etch supports " OX_ELEM_NAMES, ox_elem_name((int32_t)to));
    if (x->data) return ox_define_const(ox, n, 0, ox_fold_cast(ox, ox_out_name(n, 0), x, (int32_t)to));
    if (to == x->elem) return ox_alias(ox, n, 0, x);
    return ox_define(ox, n, 0, (int32_t)to, x->rank, x->dim, "cast(%s, %s)", x->expr, ox_elem_dtype((int32_t)to));
}

/* ---- layout ------------------------------------------------------------------ */

/* Output 0 as x under new dims: a constant, x itself, or reshape(x, dims). */
static bool reshaped(OxImport *ox, OxNode *n, OxValue *x, int rank, const int64_t *dim) {
    if (rank > OX_MAX_RANK) return ox_error(ox, "the result would have %d dims; etch tensors have at most %d", rank, OX_MAX_RANK);
    if (x->data) return ox_define_const(ox, n, 0, ox_fold_reshape(ox, ox_out_name(n, 0), x, rank, dim));
    bool same = rank == x->rank;
    for (int i = 0; same && i < rank; i++) same = dim[i] == x->dim[i];
    if (same) return ox_alias(ox, n, 0, x);
    return ox_define(ox, n, 0, x->elem, rank, dim, "reshape(%s, %s)", x->expr, ox_list(ox, dim, rank));
}

static bool rule_reshape(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    OxValue *x = n->in[0];
    int64_t *shape, allowzero, known = 1;
    int rank, infer = -1;
    if (!ox_const_ints(ox, n->in[1], "the shape", &shape, &rank) || !ox_attr_int(ox, n, "allowzero", 0, &allowzero))
        return false;
    if (rank > OX_MAX_RANK) return ox_error(ox, "the shape has %d dims; etch tensors have at most %d", rank, OX_MAX_RANK);
    for (int i = 0; i < rank; i++) {
        if (shape[i] == 0 && !allowzero) {
            if (i >= x->rank) return ox_error(ox, "shape[%d] = 0 copies a dim the input (rank %d) lacks", i, x->rank);
            shape[i] = x->dim[i];
        }
        if (shape[i] == -1) {
            if (infer >= 0) return ox_error(ox, "the shape %s has more than one -1", ox_list(ox, shape, rank));
            infer = i;
        } else if (shape[i] < 0 || (shape[i] && known > OX_MAX_ELEMS / shape[i])) {
            return ox_error(ox, "the shape %s is invalid", ox_list(ox, shape, rank));
        } else {
            known *= shape[i];
        }
    }
    int64_t numel = ox_numel(x);
    if (infer >= 0) {
        if (known == 0 || numel % known) return ox_error(ox, "cannot reshape %s into %s", ox_list(ox, x->dim, x->rank), ox_list(ox, shape, rank));
        shape[infer] = numel / known;
    } else if (known != numel) {
        return ox_error(ox, "cannot reshape %s into %s", ox_list(ox, x->dim, x->rank), ox_list(ox, shape, rank));
    }
    return reshaped(ox, n, x, rank, shape);
}

static bool rule_flatten(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    OxValue *x = n->in[0];
    int64_t axis, dim[2] = {1, 1};
    if (!ox_attr_int(ox, n, "axis", 1, &axis)) return false;
    if (axis < -x->rank || axis > x->rank) return ox_error(ox, "axis %lld is out of range for rank %d", (long long)axis, x->rank);
    if (axis < 0) axis += x->rank;
    for (int i = 0; i < x->rank; i++) dim[i >= axis] *= x->dim[i];
    return reshaped(ox, n, x, 2, dim);
}

/* The axes input (opset 13) of Squeeze/Unsqueeze, normalized against rank; seen[k] marks them. */
static bool axes_input(OxImport *ox, const OxValue *v, int rank, bool *seen, int *count) {
    int64_t *axes;
    int n;
    if (!ox_const_ints(ox, v, "axes", &axes, &n)) return false;
    for (int i = 0; i < n; i++) {
        int k;
        if (!ox_axis(ox, axes[i], rank, "axis", &k)) return false;
        if (seen[k]) return ox_error(ox, "axis %lld is listed twice", (long long)axes[i]);
        seen[k] = true;
    }
    *count = n;
    return true;
}

static bool rule_squeeze(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    OxValue *x = n->in[0];
    bool seen[OX_MAX_RANK] = {false};
    int count = 0, rank = 0;
    int64_t dim[OX_MAX_RANK];
    if (n->n_in > 1 && n->in[1] && !axes_input(ox, n->in[1], x->rank, seen, &count)) return false;
    for (int i = 0; i < x->rank; i++) {
        bool drop = count ? seen[i] : x->dim[i] == 1;
        if (drop && x->dim[i] != 1) return ox_error(ox, "cannot squeeze dim %d of size %lld", i, (long long)x->dim[i]);
        if (!drop) dim[rank++] = x->dim[i];
    }
    return reshaped(ox, n, x, rank, dim);
}

static bool rule_unsqueeze(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    OxValue *x = n->in[0];
    bool seen[2 * OX_MAX_RANK] = {false};
    int64_t *axes, dim[2 * OX_MAX_RANK];
    int count, rank, k = 0;
    if (!ox_const_ints(ox, n->in[1], "axes", &axes, &count)) return false;
    rank = x->rank + count;
    if (rank > OX_MAX_RANK) return ox_error(ox, "the result would have %d dims; etch tensors have at most %d", rank, OX_MAX_RANK);
    if (!axes_input(ox, n->in[1], rank, seen, &count)) return false;
    for (int i = 0; i < rank; i++) dim[i] = seen[i] ? 1 : x->dim[k++];
    return reshaped(ox, n, x, rank, dim);
}

static bool rule_transpose(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    OxValue *x = n->in[0];
    const int64_t *p;
    int count;
    int64_t perm[OX_MAX_RANK], dim[OX_MAX_RANK], str[OX_MAX_RANK], src[OX_MAX_RANK];
    bool seen[OX_MAX_RANK] = {false}, identity = true;
    if (!ox_attr_ints(ox, n, "perm", &p, &count)) return false;
    if (count >= 0 && count != x->rank) return ox_error(ox, "perm has %d entries for rank %d", count, x->rank);
    for (int i = 0; i < x->rank; i++) {
        perm[i] = count < 0 ? x->rank - 1 - i : p[i];
        if (perm[i] < 0 || perm[i] >= x->rank || seen[perm[i]]) return ox_error(ox, "perm %s is not a permutation", ox_list(ox, p, count));
        seen[perm[i]] = true;
        dim[i] = x->dim[perm[i]];
        identity &= perm[i] == i;
    }
    if (identity) return ox_alias(ox, n, 0, x);
    if (x->data) {
        OxValue *c = ox_new_const(ox, ox_out_name(n, 0), x->elem, x->rank, dim);
        if (!c) return false;
        ox_strides(x->rank, x->dim, str);
        for (int i = 0; i < x->rank; i++) src[i] = str[perm[i]];
        ox_strides(x->rank, dim, str);
        ox_strided_copy(c, 0, str, x, 0, src, x->rank, dim);
        return ox_define_const(ox, n, 0, c);
    }
    return ox_define(ox, n, 0, x->elem, x->rank, dim, "permute(%s, %s)", x->expr, ox_list(ox, perm, x->rank));
}

static bool rule_concat(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    OxValue *x = n->in[0];
    int64_t axis, dim[OX_MAX_RANK];
    int k;
    bool all_const = true;
    if (!ox_attr_int(ox, n, "axis", 0, &axis) || !ox_axis(ox, axis, x->rank, "axis", &k)) return false;
    memcpy(dim, x->dim, sizeof dim);
    dim[k] = 0;
    for (int i = 0; i < n->n_in; i++) {
        OxValue *v = n->in[i];
        if (!v) return ox_error(ox, "input %d is empty", i);
        bool fits = v->rank == x->rank && v->elem == x->elem;
        for (int j = 0; fits && j < x->rank; j++) fits = j == k || v->dim[j] == x->dim[j];
        if (!fits) return ox_error(ox, "input %d ('%s') does not fit the others along axis %d", i, v->name, k);
        dim[k] += v->dim[k];
        all_const &= v->data != NULL;
    }
    if (n->n_in == 1) return ox_alias(ox, n, 0, x);
    if (all_const) {
        OxValue *c = ox_new_const(ox, ox_out_name(n, 0), x->elem, x->rank, dim);
        if (!c) return false;
        int64_t dst[OX_MAX_RANK], src[OX_MAX_RANK], at = 0;
        ox_strides(x->rank, dim, dst);
        for (int i = 0; i < n->n_in; i++) {
            ox_strides(n->in[i]->rank, n->in[i]->dim, src);
            ox_strided_copy(c, at * dst[k], dst, n->in[i], 0, src, x->rank, n->in[i]->dim);
            at += n->in[i]->dim[k];
        }
        return ox_define_const(ox, n, 0, c);
    }
    StrBuf b = {0};
    for (int i = 0; i < n->n_in; i++) {
        const char *s = ox_operand(ox, n->in[i], -1);
        if (!s) return sb_free(&b), false;
        sb_printf(&b, "%s, ", s);
    }
    bool ok = ox_define(ox, n, 0, x->elem, x->rank, dim, "cat(%sdim=%d)", b.s, k) != NULL;
    sb_free(&b);
    return ok;
}

/* Output k as x[start:end:step] along axis (a constant, or slice(...) with step 1). */
static bool slice_out(OxImport *ox, OxNode *n, int k, OxValue *x, const int64_t *start, const int64_t *end,
                      const int64_t *step) {
    int64_t dim[OX_MAX_RANK], str[OX_MAX_RANK], src[OX_MAX_RANK], off = 0;
    ox_strides(x->rank, x->dim, str);
    for (int i = 0; i < x->rank; i++) {
        /* a step as long as the dim or longer takes one element: clamped, the products stay in range */
        int64_t t = step[i] > x->dim[i] ? x->dim[i] : step[i] < -x->dim[i] ? -x->dim[i] : step[i];
        dim[i] = t > 0 ? (end[i] > start[i] ? (end[i] - start[i] - 1) / t + 1 : 0)
                       : (start[i] > end[i] ? (start[i] - end[i] - 1) / -t + 1 : 0);
        if (dim[i] <= 0) return ox_error(ox, "the slice of dim %d is empty; etch tensors need every dim positive", i);
        off += start[i] * str[i];
        src[i] = str[i] * t;
    }
    if (x->data) {
        OxValue *c = ox_new_const(ox, ox_out_name(n, k), x->elem, x->rank, dim);
        if (!c) return false;
        ox_strides(x->rank, dim, str);
        ox_strided_copy(c, 0, str, x, off, src, x->rank, dim);
        return ox_define_const(ox, n, k, c);
    }
    const char *text = x->expr;
    for (int i = 0; i < x->rank; i++) {
        if (step[i] != 1) return ox_error(ox, "steps other than 1 (here %lld) are supported only for constants", (long long)step[i]);
        if (start[i] != 0 || end[i] != x->dim[i])
            text = arena_printf(ox->a, "slice(%s, %d, %lld, %lld)", text, i, (long long)start[i], (long long)end[i]);
    }
    if (text == x->expr) return ox_alias(ox, n, k, x);
    return ox_define(ox, n, k, x->elem, x->rank, dim, "%s", text);
}

/* The whole of every dim: start 0, end dim, step 1. */
static void whole(const OxValue *x, int64_t *start, int64_t *end, int64_t *step) {
    for (int i = 0; i < x->rank; i++) start[i] = 0, end[i] = x->dim[i], step[i] = 1;
}

static bool rule_slice(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    OxValue *x = n->in[0];
    int64_t *starts, *ends, *axes = NULL, *steps = NULL, start[OX_MAX_RANK], end[OX_MAX_RANK], step[OX_MAX_RANK];
    int ns, ne, na = -1, nt = -1;
    if (!ox_const_ints(ox, n->in[1], "starts", &starts, &ns) || !ox_const_ints(ox, n->in[2], "ends", &ends, &ne) ||
        (n->n_in > 3 && n->in[3] && !ox_const_ints(ox, n->in[3], "axes", &axes, &na)) ||
        (n->n_in > 4 && n->in[4] && !ox_const_ints(ox, n->in[4], "steps", &steps, &nt)))
        return false;
    if (ne != ns || (na >= 0 && na != ns) || (nt >= 0 && nt != ns))
        return ox_error(ox, "starts, ends, axes and steps have different lengths");
    whole(x, start, end, step);
    bool seen[OX_MAX_RANK] = {false};
    for (int i = 0; i < ns; i++) {
        int k;
        if (!ox_axis(ox, axes ? axes[i] : i, x->rank, "axis", &k)) return false;
        if (seen[k]) return ox_error(ox, "axis %d is sliced twice", k);
        seen[k] = true;
        int64_t d = x->dim[k], s = starts[i], e = ends[i], t = steps ? steps[i] : 1;
        if (t == 0) return ox_error(ox, "a step is 0");
        if (s < 0) s = s < -d ? 0 : s + d; /* the ONNX clamping rules, careful with INT64 extremes */
        if (e < 0) e = e < -d ? -1 : e + d;
        if (t > 0) s = s > d ? d : s, e = e < 0 ? 0 : e > d ? d : e;
        else s = s > d - 1 ? d - 1 : s, e = e > d - 1 ? d - 1 : e;
        start[k] = s, end[k] = e, step[k] = t;
    }
    return slice_out(ox, n, 0, x, start, end, step);
}

static bool rule_split(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    OxValue *x = n->in[0];
    int64_t axis, *sizes = NULL, start[OX_MAX_RANK], end[OX_MAX_RANK], step[OX_MAX_RANK], at = 0;
    int k, count = (int)n->proto->n_output;
    if (!ox_attr_int(ox, n, "axis", 0, &axis) || !ox_axis(ox, axis, x->rank, "axis", &k)) return false;
    int64_t num_outputs; /* opset 18: equal parts of ceil(dim / num_outputs), the last one smaller */
    if (!ox_attr_int(ox, n, "num_outputs", -1, &num_outputs)) return false;
    if (num_outputs != -1 && num_outputs != count)
        return ox_error(ox, "num_outputs is %lld; the node has %d outputs", (long long)num_outputs, count);
    if (n->n_in > 1 && n->in[1]) {
        int m;
        if (!ox_const_ints(ox, n->in[1], "split", &sizes, &m)) return false;
        if (m != count) return ox_error(ox, "split lists %d sizes for %d outputs", m, count);
    }
    for (int o = 0; o < count; o++) {
        int64_t len = sizes ? sizes[o] : (x->dim[k] + count - 1) / count;
        if (!sizes && num_outputs > 0 && len > x->dim[k] - at) len = x->dim[k] - at;
        if (len <= 0 || len > x->dim[k] - at) return ox_error(ox, "the split sizes do not fit dim %d of size %lld", k, (long long)x->dim[k]);
        whole(x, start, end, step);
        start[k] = at, end[k] = at + len;
        at += len;
        if (*ox_out_name(n, o) && !slice_out(ox, n, o, x, start, end, step)) return false;
    }
    if (at != x->dim[k]) return ox_error(ox, "the split sizes add up to %lld, not %lld", (long long)at, (long long)x->dim[k]);
    return true;
}

static bool rule_expand(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    OxValue *x = n->in[0], target = {.elem = x->elem};
    int64_t *shape;
    int rank;
    if (!ox_const_ints(ox, n->in[1], "the shape", &shape, &rank)) return false;
    if (rank > OX_MAX_RANK) return ox_error(ox, "the shape has %d dims; etch tensors have at most %d", rank, OX_MAX_RANK);
    target.rank = rank;
    memcpy(target.dim, shape, sizeof(int64_t) * (size_t)rank);
    int64_t dim[OX_MAX_RANK];
    if (!ox_broadcast(ox, x, &target, &rank, dim)) return false;
    bool same = rank == x->rank;
    for (int i = 0; same && i < rank; i++) same = dim[i] == x->dim[i];
    if (same) return ox_alias(ox, n, 0, x);
    if (x->data) {
        OxValue *c = ox_fold_limit(ox, ox_out_name(n, 0), rank, dim) ? ox_new_const(ox, ox_out_name(n, 0), x->elem, rank, dim) : NULL;
        if (!c) return false;
        int64_t own[OX_MAX_RANK], src[OX_MAX_RANK], dst[OX_MAX_RANK];
        ox_strides(x->rank, x->dim, own);
        for (int i = 0; i < rank; i++) {
            int j = i - (rank - x->rank);
            src[i] = j >= 0 && x->dim[j] == dim[i] ? own[j] : 0;
        }
        ox_strides(rank, dim, dst);
        ox_strided_copy(c, 0, dst, x, 0, src, rank, dim);
        return ox_define_const(ox, n, 0, c);
    }
    return ox_define(ox, n, 0, x->elem, rank, dim, "broadcast_to(%s, %s)", x->expr, ox_list(ox, dim, rank));
}

/* Pad, constant mode: pad(x, [last_before, last_after, ...], value=v); negative
 * amounts crop (a slice first). */
static bool rule_pad(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    OxValue *x = n->in[0], *cv = n->n_in > 2 ? n->in[2] : NULL;
    int64_t *pads, start[OX_MAX_RANK], end[OX_MAX_RANK], step[OX_MAX_RANK], dim[OX_MAX_RANK];
    int count;
    const char *mode;
    if (!ox_attr_string(ox, n, "mode", "constant", &mode) || !ox_const_ints(ox, n->in[1], "pads", &pads, &count))
        return false;
    if (strcmp(mode, "constant")) return ox_error(ox, "mode '%s' is not supported (only constant)", mode);
    if (n->n_in > 3 && n->in[3]) { /* opset 18's axes: pads lists begins then ends for these axes only */
        int64_t *axes, *full = arena_alloc(ox->a, sizeof(int64_t) * (size_t)(2 * x->rank + 1));
        int n_axes, a;
        if (!ox_const_ints(ox, n->in[3], "axes", &axes, &n_axes)) return false;
        if (count != 2 * n_axes) return ox_error(ox, "pads has %d entries for %d axes", count, n_axes);
        for (int i = 0; i < n_axes; i++) {
            if (!ox_axis(ox, axes[i], x->rank, "axis", &a)) return false;
            full[a] = pads[i], full[a + x->rank] = pads[i + n_axes];
        }
        pads = full, count = 2 * x->rank;
    }
    if (count != 2 * x->rank) return ox_error(ox, "pads has %d entries for rank %d", count, x->rank);
    if (cv && (!cv->data || ox_numel(cv) != 1)) return ox_error(ox, "constant_value must be a constant scalar");
    const char *value = ox_number(ox, cv ? ox_get(cv, 0) : 0, x->elem);
    if (!value) return ox_error(ox, "constant_value has no literal form (inf or nan)");
    bool crop = false, grow = false;
    whole(x, start, end, step);
    for (int i = 0; i < x->rank; i++) {
        int64_t b = pads[i], e = pads[i + x->rank];
        if (b < -x->dim[i] || e < -x->dim[i] || b > (1 << 20) || e > (1 << 20) || x->dim[i] + b + e <= 0)
            return ox_error(ox, "pads %s do not fit %s", ox_list(ox, pads, count), ox_list(ox, x->dim, x->rank));
        if (b < 0) start[i] = -b, crop = true;
        if (e < 0) end[i] = x->dim[i] + e, crop = true;
        grow |= b > 0 || e > 0;
        dim[i] = x->dim[i] + b + e;
    }
    if (!crop && !grow) return ox_alias(ox, n, 0, x);
    const char *sx = ox_operand(ox, x, -1);
    if (!sx) return false;
    for (int i = 0; crop && i < x->rank; i++)
        if (start[i] || end[i] != x->dim[i])
            sx = arena_printf(ox->a, "slice(%s, %d, %lld, %lld)", sx, i, (long long)start[i], (long long)end[i]);
    if (grow) {
        int64_t amounts[2 * OX_MAX_RANK];
        for (int i = 0; i < x->rank; i++) {
            int64_t b = pads[x->rank - 1 - i], e = pads[2 * x->rank - 1 - i];
            amounts[2 * i] = b > 0 ? b : 0, amounts[2 * i + 1] = e > 0 ? e : 0;
        }
        sx = arena_printf(ox->a, "pad(%s, %s, value=%s)", sx, ox_list(ox, amounts, 2 * x->rank), value);
    }
    return ox_define(ox, n, 0, x->elem, x->rank, dim, "%s", sx) != NULL;
}

/* ReduceMean / ReduceSum / ReduceMax -> mean / sum / max(x, dim=[...], keepdim=...) */
static bool rule_reduce(OxImport *ox, OxNode *n, const char *fn) {
    OxValue *x = n->in[0];
    int64_t keepdims, noop, *axes = NULL, dim[OX_MAX_RANK];
    int count = -1, rank = 0, k;
    const int64_t *attr;
    if (!ox_attr_int(ox, n, "keepdims", 1, &keepdims) || !ox_attr_int(ox, n, "noop_with_empty_axes", 0, &noop) ||
        !ox_attr_ints(ox, n, "axes", &attr, &count))
        return false;
    if (count >= 0) axes = (int64_t *)attr;
    if (n->n_in > 1 && n->in[1] && !ox_const_ints(ox, n->in[1], "axes", &axes, &count)) return false;
    if (count <= 0 && noop) return ox_alias(ox, n, 0, x);
    bool seen[OX_MAX_RANK] = {false};
    int64_t list[OX_MAX_RANK];
    int n_list = 0;
    for (int i = 0; i < (count > 0 ? count : x->rank); i++) {
        if (!ox_axis(ox, count > 0 ? axes[i] : i, x->rank, "axis", &k)) return false;
        if (seen[k]) return ox_error(ox, "axis %d is listed twice", k);
        seen[k] = true;
    }
    for (int i = 0; i < x->rank; i++) {
        if (seen[i]) list[n_list++] = i;
        if (!seen[i] || keepdims) dim[rank++] = seen[i] ? 1 : x->dim[i];
    }
    const char *sx = ox_operand(ox, x, -1);
    return sx && ox_define(ox, n, 0, x->elem, rank, dim, "%s(%s, dim=%s, keepdim=%s)", fn, sx, ox_list(ox, list, n_list),
                           keepdims ? "true" : "false");
}

/* ---- the table ---------------------------------------------------------------- */

#define ANY 1024
/* Sorted by op name (checked by ox_find_op's binary search in debug builds). */
static const OxOp OPS[] = {
    {"Abs", rule_unary, "abs", 1, 1},
    {"Add", rule_binary, "+", 2, 2},
    {"AveragePool", ox_rule_pool, "avg_pool2d", 1, 1},
    {"BatchNormalization", ox_rule_batchnorm, NULL, 5, 5},
    {"Cast", rule_cast, NULL, 1, 1},
    {"Ceil", rule_unary, "ceil", 1, 1},
    {"Clip", rule_clip, NULL, 1, 3},
    {"Concat", rule_concat, NULL, 1, ANY},
    {"Constant", ox_rule_constant, NULL, 0, 0},
    {"ConstantOfShape", ox_rule_constant_of_shape, NULL, 1, 1},
    {"Conv", ox_rule_conv, NULL, 2, 3},
    {"DequantizeLinear", ox_rule_dequantize_linear, NULL, 2, 3},
    {"Div", rule_binary, "/", 2, 2},
    {"Dropout", rule_identity, NULL, 1, 3},
    {"Equal", rule_binary, "==", 2, 2},
    {"Erf", rule_unary, "erf", 1, 1},
    {"Exp", rule_unary, "exp", 1, 1},
    {"Expand", rule_expand, NULL, 2, 2},
    {"Flatten", rule_flatten, NULL, 1, 1},
    {"Floor", rule_unary, "floor", 1, 1},
    {"GRU", ox_rule_rnn, "GRU", 3, 6},
    {"Gather", ox_rule_gather, NULL, 2, 2},
    {"Gelu", rule_gelu, NULL, 1, 1},
    {"Gemm", ox_rule_gemm, NULL, 2, 3},
    {"GlobalAveragePool", ox_rule_global_pool, "mean", 1, 1},
    {"GlobalMaxPool", ox_rule_global_pool, "max", 1, 1},
    {"Greater", rule_binary, ">", 2, 2},
    {"GreaterOrEqual", rule_binary, ">=", 2, 2},
    {"Identity", rule_identity, NULL, 1, 1},
    {"LSTM", ox_rule_rnn, "LSTM", 3, 8},
    {"LayerNormalization", ox_rule_layernorm, NULL, 2, 3},
    {"LeakyRelu", rule_leaky_relu, NULL, 1, 1},
    {"Less", rule_binary, "<", 2, 2},
    {"LessOrEqual", rule_binary, "<=", 2, 2},
    {"Log", rule_unary, "log", 1, 1},
    {"LogSoftmax", rule_softmax, "log_softmax", 1, 1},
    {"MatMul", ox_rule_matmul, NULL, 2, 2},
    {"Max", rule_nary, "maximum", 1, ANY},
    {"MaxPool", ox_rule_pool, "max_pool2d", 1, 1},
    {"Min", rule_nary, "minimum", 1, ANY},
    {"Mul", rule_binary, "*", 2, 2},
    {"Neg", rule_unary, "neg", 1, 1},
    {"Not", rule_unary, "not", 1, 1},
    {"Pad", rule_pad, NULL, 2, 4},
    {"Pow", rule_binary, "**", 2, 2},
    {"QuantizeLinear", ox_rule_quantize_linear, NULL, 2, 3},
    {"Range", ox_rule_range, NULL, 3, 3},
    {"Reciprocal", rule_unary, "1.0 /", 1, 1},
    {"ReduceMax", rule_reduce, "max", 1, 2},
    {"ReduceMean", rule_reduce, "mean", 1, 2},
    {"ReduceSum", rule_reduce, "sum", 1, 2},
    {"Relu", rule_unary, "relu", 1, 1},
    {"Reshape", rule_reshape, NULL, 2, 2},
    {"Scan", ox_rule_scan, NULL, 1, ANY},
    {"Shape", ox_rule_shape, NULL, 1, 1},
    {"Sigmoid", rule_unary, "sigmoid", 1, 1},
    {"Size", ox_rule_size, NULL, 1, 1},
    {"Slice", rule_slice, NULL, 3, 5},
    {"Softmax", rule_softmax, "softmax", 1, 1},
    {"Split", rule_split, NULL, 1, 2},
    {"Sqrt", rule_sqrt, "sqrt", 1, 1},
    {"Squeeze", rule_squeeze, NULL, 1, 2},
    {"Sub", rule_binary, "-", 2, 2},
    {"Tanh", rule_unary, "tanh", 1, 1},
    {"Transpose", rule_transpose, NULL, 1, 1},
    {"Trilu", rule_trilu, NULL, 1, 2},
    {"Unsqueeze", rule_unsqueeze, NULL, 2, 2},
    {"Where", rule_where, NULL, 3, 3},
};
enum { N_OPS = sizeof OPS / sizeof OPS[0] };

static int cmp_op(const void *key, const void *row) { return strcmp(key, ((const OxOp *)row)->op); }

const OxOp *ox_find_op(const char *op_type) {
#ifndef NDEBUG
    for (int i = 1; i < N_OPS; i++)
        if (strcmp(OPS[i - 1].op, OPS[i].op) >= 0) abort(); /* the table must stay sorted */
#endif
    return op_type ? bsearch(op_type, OPS, N_OPS, sizeof OPS[0], cmp_op) : NULL;
}

/* Ops people meet whose nearest supported relative is not close in spelling. */
static const struct {
    const char *op, *instead;
} RELATED[] = {
    {"HardSigmoid", "Sigmoid"},
    {"HardSwish", "Sigmoid and Mul"},
    {"Selu", "LeakyRelu"},
    {"Elu", "LeakyRelu"},
    {"ReduceProd", "ReduceSum"},
    {"ReduceMin", "ReduceMax"},
    {"ReduceL2", "ReduceSum, Pow and Sqrt"},
    {"InstanceNormalization", "BatchNormalization or LayerNormalization"},
    {"GroupNormalization", "LayerNormalization"},
    {"ConvTranspose", "Conv"},
    {"Upsample", "Expand and Reshape"},
    {"Resize", "Expand and Reshape"},
    {"Tile", "Expand"},
    {"Einsum", "MatMul and Transpose"},
    {"Softplus", "Exp, Add and Log"},
    {"ArgMax", "ReduceMax"},
};

static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b), row[64];
    if (la > 63 || lb > 63) return 99;
    for (int j = 0; j <= lb; j++) row[j] = j;
    for (int i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = i;
        for (int j = 1; j <= lb; j++) {
            int up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

const char *ox_nearest_op(const char *op_type) {
    if (!op_type) return NULL;
    for (size_t i = 0; i < sizeof RELATED / sizeof RELATED[0]; i++)
        if (!strcmp(RELATED[i].op, op_type)) return RELATED[i].instead;
    const char *best = NULL;
    int best_d = (int)strlen(op_type) / 3 + 1; /* closer than a third of the name */
    for (int i = 0; i < N_OPS; i++) {
        int d = edit_distance(op_type, OPS[i].op);
        if (d < best_d) best_d = d, best = OPS[i].op;
    }
    return best;
}
