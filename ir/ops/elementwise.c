/* elementwise.c: ops computed independently per element, with NumPy
 * broadcasting: arithmetic, comparisons, where, unary math, cast, broadcast.
 *
 * Each op is fully described by its table row: a scalar reference function
 * (used by the eager kernel below) and a C expression template (used by the
 * emitter below and, later, by fusion, which composes templates). So the
 * kernels here are shared by all of them: one broadcasting loop. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ir/ops/ops_impl.h"

/* ---- shape rules ---- */

/* NumPy broadcasting of the operands in n->in[first..n_in) into *out. */
static bool broadcast_shapes(Graph *g, Node *n, int first, Shape *out, Diag *d) {
    Shape r = {0};
    for (int k = first; k < n->n_in; k++) {
        const Shape *s = &g->nodes[n->in[k]].shape;
        if (s->rank > r.rank) {
            Shape t = {.rank = s->rank};
            for (int i = 0; i < s->rank; i++) t.dim[i] = 1;
            for (int i = 0; i < r.rank; i++) t.dim[s->rank - r.rank + i] = r.dim[i];
            r = t;
        }
        for (int i = 0; i < s->rank; i++) {
            int64_t *rd = &r.dim[r.rank - s->rank + i], sd = s->dim[i];
            if (*rd == sd || sd == 1) continue;
            if (*rd == 1) {
                *rd = sd;
                continue;
            }
            char a[96], b[96];
            return diag_error(d, n->loc,
                              "cannot broadcast %s with %s for '%s': dimension %d is %lld in one and %lld in the other",
                              ops_type_str(a, g, n->in[first]), ops_type_str(b, g, n->in[k]), op_table[n->op].name,
                              i - s->rank, (long long)*rd, (long long)sd);
        }
    }
    *out = r;
    return true;
}

static bool same_dtype(Graph *g, Node *n, int first, Diag *d) {
    DType t = g->nodes[n->in[first]].dtype;
    for (int k = first + 1; k < n->n_in; k++)
        if (g->nodes[n->in[k]].dtype != t) {
            char a[96], b[96];
            return diag_error(d, n->loc, "'%s' operands have different dtypes: %s and %s (use cast)",
                              op_table[n->op].name, ops_type_str(a, g, n->in[first]), ops_type_str(b, g, n->in[k]));
        }
    return true;
}

/* i8/u8 operands (dtype_is_quantized): only the ops whose result stays in
 * the operand's range (selects) take them. */
static bool quantized_ok(Graph *g, Node *n, Diag *d) {
    if (!dtype_is_quantized(g->nodes[n->in[0]].dtype) || n->op == OP_MAX || n->op == OP_MIN || n->op == OP_RELU)
        return true;
    char a[96];
    return diag_error(d, n->loc, "'%s' is not defined on quantized %s (dequantize it or cast it to i32 first)",
                      op_table[n->op].name, ops_type_str(a, g, n->in[0]));
}

bool shape_broadcast(Graph *g, Node *n, Diag *d) {
    if (!same_dtype(g, n, 0, d) || !broadcast_shapes(g, n, 0, &n->shape, d)) return false;
    n->dtype = g->nodes[n->in[0]].dtype;
    if (n->dtype == DT_BOOL) {
        char a[96];
        return diag_error(d, n->loc, "'%s' needs numbers, got %s", op_table[n->op].name, ops_type_str(a, g, n->in[0]));
    }
    return quantized_ok(g, n, d);
}

bool shape_compare(Graph *g, Node *n, Diag *d) {
    if (!same_dtype(g, n, 0, d) || !broadcast_shapes(g, n, 0, &n->shape, d)) return false;
    n->dtype = DT_BOOL;
    return true;
}

bool shape_where(Graph *g, Node *n, Diag *d) {
    char a[96];
    if (g->nodes[n->in[0]].dtype != DT_BOOL)
        return diag_error(d, n->loc, "where() condition must be bool, got %s", ops_type_str(a, g, n->in[0]));
    if (!same_dtype(g, n, 1, d) || !broadcast_shapes(g, n, 0, &n->shape, d)) return false;
    n->dtype = g->nodes[n->in[1]].dtype;
    return true;
}

bool shape_unary(Graph *g, Node *n, Diag *d) {
    const Node *x = &g->nodes[n->in[0]];
    if (x->dtype == DT_BOOL) {
        char a[96];
        return diag_error(d, n->loc, "'%s' needs numbers, got %s", op_table[n->op].name, ops_type_str(a, g, n->in[0]));
    }
    n->dtype = x->dtype;
    n->shape = x->shape;
    return quantized_ok(g, n, d);
}

bool shape_unary_float(Graph *g, Node *n, Diag *d) {
    const Node *x = &g->nodes[n->in[0]];
    if (!dtype_is_float(x->dtype)) {
        char a[96];
        return diag_error(d, n->loc, "'%s' needs a floating-point tensor, got %s (cast it first)",
                          op_table[n->op].name, ops_type_str(a, g, n->in[0]));
    }
    n->dtype = x->dtype;
    n->shape = x->shape;
    return true;
}

bool shape_cast(Graph *g, Node *n, Diag *d) {
    if (n->attr.dtype >= DT_COUNT) return diag_error(d, n->loc, "cast to an invalid dtype");
    n->dtype = n->attr.dtype;
    n->shape = g->nodes[n->in[0]].shape;
    return true;
}

bool shape_broadcast_to(Graph *g, Node *n, Diag *d) {
    const Node *x = &g->nodes[n->in[0]];
    const Shape *to = &n->attr.shape;
    char a[96], b[96];
    bool ok = to->rank >= x->shape.rank;
    for (int i = 0; ok && i < x->shape.rank; i++) {
        int64_t xd = x->shape.dim[i], td = to->dim[to->rank - x->shape.rank + i];
        ok = xd == td || xd == 1;
    }
    if (!ok)
        return diag_error(d, n->loc, "cannot broadcast %s to %s", ops_type_str(a, g, n->in[0]),
                          type_format(b, sizeof b, x->dtype, to));
    n->dtype = x->dtype;
    n->shape = *to;
    return true;
}

/* ---- scalar reference semantics (double precision) ---- */

double scalar_add(const double *x, const NodeAttrs *a) { (void)a; return x[0] + x[1]; }
double scalar_sub(const double *x, const NodeAttrs *a) { (void)a; return x[0] - x[1]; }
double scalar_mul(const double *x, const NodeAttrs *a) { (void)a; return x[0] * x[1]; }
double scalar_div(const double *x, const NodeAttrs *a) { (void)a; return x[0] / x[1]; }
double scalar_max(const double *x, const NodeAttrs *a) { (void)a; return x[0] >= x[1] ? x[0] : x[1]; }
double scalar_min(const double *x, const NodeAttrs *a) { (void)a; return x[0] <= x[1] ? x[0] : x[1]; }
double scalar_pow(const double *x, const NodeAttrs *a) { (void)a; return pow(x[0], x[1]); }
double scalar_lt(const double *x, const NodeAttrs *a) { (void)a; return x[0] < x[1]; }
double scalar_le(const double *x, const NodeAttrs *a) { (void)a; return x[0] <= x[1]; }
double scalar_gt(const double *x, const NodeAttrs *a) { (void)a; return x[0] > x[1]; }
double scalar_ge(const double *x, const NodeAttrs *a) { (void)a; return x[0] >= x[1]; }
double scalar_eq(const double *x, const NodeAttrs *a) { (void)a; return x[0] == x[1]; }
double scalar_ne(const double *x, const NodeAttrs *a) { (void)a; return x[0] != x[1]; }
double scalar_where(const double *x, const NodeAttrs *a) { (void)a; return x[0] != 0 ? x[1] : x[2]; }
double scalar_neg(const double *x, const NodeAttrs *a) { (void)a; return -x[0]; }
double scalar_exp(const double *x, const NodeAttrs *a) { (void)a; return exp(x[0]); }
double scalar_log(const double *x, const NodeAttrs *a) { (void)a; return log(x[0]); }
double scalar_sqrt(const double *x, const NodeAttrs *a) { (void)a; return sqrt(x[0]); }
double scalar_rsqrt(const double *x, const NodeAttrs *a) { (void)a; return 1.0 / sqrt(x[0]); }
double scalar_abs(const double *x, const NodeAttrs *a) { (void)a; return fabs(x[0]); }
double scalar_tanh(const double *x, const NodeAttrs *a) { (void)a; return tanh(x[0]); }
double scalar_sigmoid(const double *x, const NodeAttrs *a) { (void)a; return 1.0 / (1.0 + exp(-x[0])); }
double scalar_erf(const double *x, const NodeAttrs *a) { (void)a; return erf(x[0]); }
double scalar_relu(const double *x, const NodeAttrs *a) { (void)a; return x[0] > 0 ? x[0] : 0.0; }
/* leaky_relu: attr.value is the slope; NaN and -0 take the x <= 0 branch, as in PyTorch */
double scalar_leaky_relu(const double *x, const NodeAttrs *a) { return x[0] > 0 ? x[0] : a->value * x[0]; }
double scalar_identity(const double *x, const NodeAttrs *a) { (void)a; return x[0]; }

/* ---- loop structure shared by the kernel and the emitter ---- */

void elementwise_loops(const Graph *g, const Node *n, OpsLoops *L) {
    const Shape *ins[3];
    for (int k = 0; k < n->n_in; k++) ins[k] = &g->nodes[n->in[k]].shape;
    ops_loops(&n->shape, ins, n->n_in, L);
}

/* Reads operand element `off` as double: typed fast paths for the float
 * dtypes every network uses, the generic accessor otherwise. */
static inline double load_elem(const Tensor *t, int64_t off) {
    if (t->dtype == DT_F32) return ((const float *)t->data)[off];
    if (t->dtype == DT_F64) return ((const double *)t->data)[off];
    return tensor_get(t, off);
}

void eval_elementwise(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    const Node *n = &g->nodes[id];
    ScalarFn f = op_table[n->op].scalar;
    OpsLoops L;
    elementwise_loops(g, n, &L);
    int64_t idx[ETCH_MAX_RANK] = {0}, off[3] = {0}, total = tensor_numel(out);
    /* the innermost merged dim runs as a plain loop; the odometer steps the rest */
    int inner = L.rank ? L.rank - 1 : 0;
    int64_t len = L.rank ? L.dim[inner] : 1, st[3] = {0, 0, 0};
    for (int k = 0; k < n->n_in && L.rank; k++) st[k] = L.stride[k][inner];
    double x[3];
    for (int64_t i = 0; i < total; i += len) {
        if (out->dtype == DT_F32) {
            float *o = (float *)out->data + i;
            for (int64_t j = 0; j < len; j++) {
                for (int k = 0; k < n->n_in; k++) x[k] = load_elem(ins[k], off[k] + j * st[k]);
                o[j] = (float)f(x, &n->attr);
            }
        } else {
            for (int64_t j = 0; j < len; j++) {
                for (int k = 0; k < n->n_in; k++) x[k] = load_elem(ins[k], off[k] + j * st[k]);
                tensor_set(out, i + j, f(x, &n->attr));
            }
        }
        for (int r = inner - 1; r >= 0; r--) { /* odometer increment over the outer dims */
            for (int k = 0; k < n->n_in; k++) off[k] += L.stride[k][r];
            if (++idx[r] < L.dim[r]) break;
            for (int k = 0; k < n->n_in; k++) off[k] -= L.stride[k][r] * L.dim[r];
            idx[r] = 0;
        }
    }
}

/* ---- vector-Jacobian rules ----
 * c->gy is dL/dy for y = this node; each rule sets c->gx[k] = dL/d(operand k),
 * summed back over broadcast dimensions (ad_unbroadcast). Operand and result
 * ids are re-read after building nodes since the node array may move. */

#define X(k) (c->g->nodes[c->id].in[k])
#define Y (c->id)
#define SHAPE_OF(k) (&c->g->nodes[X(k)].shape)

static void set_grad(VjpCtx *c, int k, int g) {
    if (c->needs[k]) c->gx[k] = ad_unbroadcast(c, g, SHAPE_OF(k));
}

void vjp_add(VjpCtx *c) {
    set_grad(c, 0, c->gy);
    set_grad(c, 1, c->gy);
}

void vjp_sub(VjpCtx *c) {
    set_grad(c, 0, c->gy);
    if (c->needs[1]) set_grad(c, 1, ad_unary(c, OP_NEG, c->gy));
}

void vjp_mul(VjpCtx *c) {
    if (c->needs[0]) set_grad(c, 0, ad_binary(c, OP_MUL, c->gy, X(1)));
    if (c->needs[1]) set_grad(c, 1, ad_binary(c, OP_MUL, c->gy, X(0)));
}

void vjp_div(VjpCtx *c) { /* y = a / b: da = gy / b, db = -gy * y / b */
    if (c->needs[0]) set_grad(c, 0, ad_binary(c, OP_DIV, c->gy, X(1)));
    if (c->needs[1])
        set_grad(c, 1, ad_unary(c, OP_NEG, ad_binary(c, OP_DIV, ad_binary(c, OP_MUL, c->gy, Y), X(1))));
}

/* max/min route the gradient to the operand the forward picked (the first on ties). */
static void vjp_select(VjpCtx *c, OpKind first_wins) {
    int pick0 = ad_binary(c, first_wins, X(0), X(1));
    int zero = ad_scalar(c, 0, c->gy);
    if (c->needs[0]) set_grad(c, 0, ad_where(c, pick0, c->gy, zero));
    if (c->needs[1]) set_grad(c, 1, ad_where(c, pick0, zero, c->gy));
}
void vjp_max(VjpCtx *c) { vjp_select(c, OP_GE); }
void vjp_min(VjpCtx *c) { vjp_select(c, OP_LE); }

void vjp_pow(VjpCtx *c) { /* y = a^b: da = gy * b * a^(b-1), db = gy * y * log(a) */
    if (c->needs[0]) {
        int bm1 = ad_binary(c, OP_SUB, X(1), ad_scalar(c, 1, X(1)));
        set_grad(c, 0, ad_binary(c, OP_MUL, c->gy, ad_binary(c, OP_MUL, X(1), ad_binary(c, OP_POW, X(0), bm1))));
    }
    if (c->needs[1])
        set_grad(c, 1, ad_binary(c, OP_MUL, c->gy, ad_binary(c, OP_MUL, Y, ad_unary(c, OP_LOG, X(0)))));
}

void vjp_where(VjpCtx *c) {
    int zero = ad_scalar(c, 0, c->gy);
    if (c->needs[1]) set_grad(c, 1, ad_where(c, X(0), c->gy, zero));
    if (c->needs[2]) set_grad(c, 2, ad_where(c, X(0), zero, c->gy));
}

void vjp_neg(VjpCtx *c) { set_grad(c, 0, ad_unary(c, OP_NEG, c->gy)); }
void vjp_exp(VjpCtx *c) { set_grad(c, 0, ad_binary(c, OP_MUL, c->gy, Y)); }
void vjp_log(VjpCtx *c) { set_grad(c, 0, ad_binary(c, OP_DIV, c->gy, X(0))); }

void vjp_sqrt(VjpCtx *c) { /* d sqrt(x) = 0.5 / y */
    set_grad(c, 0, ad_binary(c, OP_DIV, ad_binary(c, OP_MUL, c->gy, ad_scalar(c, 0.5, c->gy)), Y));
}

void vjp_rsqrt(VjpCtx *c) { /* y = x^-1/2: dy/dx = -0.5 * y / x */
    int t = ad_binary(c, OP_DIV, ad_binary(c, OP_MUL, c->gy, Y), X(0));
    set_grad(c, 0, ad_binary(c, OP_MUL, t, ad_scalar(c, -0.5, c->gy)));
}

void vjp_abs(VjpCtx *c) { /* sign(x) * gy, 0 at x == 0 as in PyTorch */
    int zero = ad_scalar(c, 0, X(0));
    int pos = ad_binary(c, OP_GT, X(0), zero), neg = ad_binary(c, OP_LT, X(0), zero);
    int gzero = ad_scalar(c, 0, c->gy);
    set_grad(c, 0, ad_where(c, pos, c->gy, ad_where(c, neg, ad_unary(c, OP_NEG, c->gy), gzero)));
}

void vjp_tanh(VjpCtx *c) { /* 1 - y^2 */
    int one = ad_scalar(c, 1, Y);
    set_grad(c, 0, ad_binary(c, OP_MUL, c->gy, ad_binary(c, OP_SUB, one, ad_binary(c, OP_MUL, Y, Y))));
}

void vjp_sigmoid(VjpCtx *c) { /* y (1 - y) */
    int one = ad_scalar(c, 1, Y);
    set_grad(c, 0, ad_binary(c, OP_MUL, c->gy, ad_binary(c, OP_MUL, Y, ad_binary(c, OP_SUB, one, Y))));
}

void vjp_erf(VjpCtx *c) { /* 2/sqrt(pi) * exp(-x^2) */
    int e = ad_unary(c, OP_EXP, ad_unary(c, OP_NEG, ad_binary(c, OP_MUL, X(0), X(0))));
    set_grad(c, 0, ad_binary(c, OP_MUL, c->gy, ad_binary(c, OP_MUL, e, ad_scalar(c, 1.1283791670955126, e))));
}

void vjp_relu(VjpCtx *c) {
    int pos = ad_binary(c, OP_GT, X(0), ad_scalar(c, 0, X(0)));
    set_grad(c, 0, ad_where(c, pos, c->gy, ad_scalar(c, 0, c->gy)));
}

void vjp_leaky_relu(VjpCtx *c) { /* gy where x > 0, else slope * gy */
    double slope = c->g->nodes[c->id].attr.value;
    int pos = ad_binary(c, OP_GT, X(0), ad_scalar(c, 0, X(0)));
    set_grad(c, 0, ad_where(c, pos, c->gy, ad_binary(c, OP_MUL, c->gy, ad_scalar(c, slope, c->gy))));
}

void vjp_cast(VjpCtx *c) { set_grad(c, 0, ad_cast(c, c->gy, c->g->nodes[X(0)].dtype)); }
void vjp_broadcast(VjpCtx *c) { set_grad(c, 0, c->gy); }
