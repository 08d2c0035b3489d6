/* quant.c: the quantized ops (docs/quantization.md): quantize, dequantize,
 * fake_quant and its straight-through gradient kernel, each per tensor or
 * per axis, the integer matmul qmatmul with its requantize epilogue, and the
 * integer convolution qconv2d (conv2d's window, qmatmul's arithmetic).
 * Their arithmetic is ir/quant.h's; the loops here are what the C emitter
 * (codegen/c/ops/quant.c) writes too. */
#include <math.h>
#include <stdio.h>

#include "ir/ops/ops_impl.h"
#include "ir/quant.h"

/* ---- shape rules ---- */

void quant_loops(const Graph *g, const Node *n, QuantLoops *L) {
    L->x = n->n_in - 3, L->scale = n->n_in - 2, L->zp = n->n_in - 1;
    const Shape *xs = &g->nodes[n->in[L->x]].shape;
    L->per_axis = g->nodes[n->in[L->scale]].shape.rank == 1;
    if (xs->rank == 0) L->outer = L->len = L->inner = 1;
    else ops_split_axis(xs, n->attr.axis, &L->outer, &L->len, &L->inner);
}

/* Checks the scale (float dtype `ft`) and zero point (i32) operands of a
 * per-tensor / per-axis op against its data operand. */
static bool check_params(Graph *g, Node *n, DType ft, Diag *d) {
    int x = n->in[n->n_in - 3], s = n->in[n->n_in - 2], z = n->in[n->n_in - 1];
    const Node *xn = &g->nodes[x], *sn = &g->nodes[s], *zn = &g->nodes[z];
    const char *op = op_table[n->op].name;
    char a[96], b[96];
    if (sn->dtype != ft || zn->dtype != DT_I32)
        return diag_error(d, n->loc, "'%s' needs a %s scale and an i32 zero point, got %s and %s", op, dtype_name(ft),
                          ops_type_str(a, g, s), ops_type_str(b, g, z));
    if (!shape_equal(&sn->shape, &zn->shape) || sn->shape.rank > 1)
        return diag_error(d, n->loc, "'%s' scale %s and zero point %s must both be scalars or both [dim(axis)]", op,
                          ops_type_str(a, g, s), ops_type_str(b, g, z));
    int axis = n->attr.axis;
    if (sn->shape.rank == 0) {
        if (axis != 0) return diag_error(d, n->loc, "'%s' per tensor (scalar scale) takes axis 0, got %d", op, axis);
        return true;
    }
    if (axis < 0 || axis >= xn->shape.rank)
        return diag_error(d, n->loc, "'%s' axis %d is out of range for %s", op, axis, ops_type_str(a, g, x));
    if (sn->shape.dim[0] != xn->shape.dim[axis])
        return diag_error(d, n->loc, "'%s' per-axis scale %s does not match dim %d of %s", op, ops_type_str(a, g, s),
                          axis, ops_type_str(b, g, x));
    return true;
}

bool shape_quantize(Graph *g, Node *n, Diag *d) {
    const Node *x = &g->nodes[n->in[0]];
    char a[96];
    if (!dtype_is_float(x->dtype))
        return diag_error(d, n->loc, "'quantize' needs a floating-point tensor, got %s", ops_type_str(a, g, n->in[0]));
    if (!dtype_is_quantized(n->attr.dtype))
        return diag_error(d, n->loc, "'quantize' produces i8 or u8, not %s", dtype_name(n->attr.dtype));
    if (!check_params(g, n, x->dtype, d)) return false;
    n->dtype = n->attr.dtype;
    n->shape = x->shape;
    return true;
}

bool shape_dequantize(Graph *g, Node *n, Diag *d) {
    const Node *q = &g->nodes[n->in[0]];
    DType ft = g->nodes[n->in[1]].dtype;
    char a[96];
    if (!dtype_is_quantized(q->dtype) && q->dtype != DT_I32)
        return diag_error(d, n->loc, "'dequantize' needs an i8, u8 or i32 tensor, got %s", ops_type_str(a, g, n->in[0]));
    if (!dtype_is_float(ft))
        return diag_error(d, n->loc, "'dequantize' scale must be f32 or f64, got %s", ops_type_str(a, g, n->in[1]));
    if (!check_params(g, n, ft, d)) return false;
    n->dtype = ft;
    n->shape = q->shape;
    return true;
}

static bool check_clamp(const Node *n, int lo, int hi, Diag *d) {
    const int *c = n->attr.quant.clamp;
    if (c[0] > c[1] || c[0] < lo || c[1] > hi)
        return diag_error(d, n->loc, "'%s' clamp [%d, %d] must be an interval within [%d, %d]", op_table[n->op].name, c[0],
                          c[1], lo, hi);
    return true;
}

/* fake_quant(x, scale, zp) and fake_quant_backward(gy, x, scale, zp): x's type. */
bool shape_fake_quant(Graph *g, Node *n, Diag *d) {
    const Node *x = &g->nodes[n->in[n->n_in - 3]];
    char a[96], b[96];
    if (!dtype_is_float(x->dtype))
        return diag_error(d, n->loc, "'%s' needs a floating-point tensor, got %s", op_table[n->op].name,
                          ops_type_str(a, g, n->in[n->n_in - 3]));
    if (n->n_in == 4 && (g->nodes[n->in[0]].dtype != x->dtype || !shape_equal(&g->nodes[n->in[0]].shape, &x->shape)))
        return diag_error(d, n->loc, "'fake_quant_backward' gradient %s must have the type of x %s",
                          ops_type_str(a, g, n->in[0]), ops_type_str(b, g, n->in[1]));
    /* an int32 range: any 8- or 16-bit scheme, and no overflow in the arithmetic */
    if (!check_clamp(n, -32768, 65535, d) || !check_params(g, n, x->dtype, d)) return false;
    n->dtype = x->dtype;
    n->shape = x->shape;
    return true;
}

void quant_op_range(const Node *n, int *lo, int *hi) {
    if (n->op == OP_QUANTIZE) quant_range(n->dtype, lo, hi);
    else *lo = n->attr.quant.clamp[0], *hi = n->attr.quant.clamp[1];
}

void qmatmul_range(const Node *n, int *lo, int *hi) {
    if (dtype_is_quantized(n->dtype)) quant_range(n->dtype, lo, hi);
    else *lo = INT32_MIN, *hi = INT32_MAX;
    if (n->attr.quant.clamp[0] > *lo) *lo = n->attr.quant.clamp[0];
    if (n->attr.quant.clamp[1] < *hi) *hi = n->attr.quant.clamp[1];
}

/* What qmatmul and qconv2d share: bias, multiplier and shift i32[N], the
 * result dtype, zero points and clamp; sets n->dtype. */
static bool check_qlinear(Graph *g, Node *n, int64_t N, Diag *d) {
    const char *op = op_table[n->op].name;
    char a[96];
    static const char *const what[] = {"bias", "multiplier", "shift"};
    for (int k = 2; k < 5; k++) {
        const Node *p = &g->nodes[n->in[k]];
        if (p->dtype != DT_I32 || p->shape.rank != 1 || p->shape.dim[0] != N)
            return diag_error(d, n->loc, "'%s' %s must be i32[%lld], got %s", op, what[k - 2], (long long)N,
                              ops_type_str(a, g, n->in[k]));
    }
    DType t = n->attr.dtype;
    if (!dtype_is_quantized(t) && t != DT_F32)
        return diag_error(d, n->loc, "'%s' produces i8, u8 or f32, not %s", op, dtype_name(t));
    int lo, hi, zx = n->attr.quant.zero_points[0], zy = n->attr.quant.zero_points[1];
    quant_range(g->nodes[n->in[0]].dtype, &lo, &hi);
    if (zx < lo || zx > hi) return diag_error(d, n->loc, "'%s' input zero point %d is outside [%d, %d]", op, zx, lo, hi);
    if (dtype_is_quantized(t)) {
        quant_range(t, &lo, &hi);
        if (zy < lo || zy > hi)
            return diag_error(d, n->loc, "'%s' output zero point %d is outside [%d, %d]", op, zy, lo, hi);
        if (!check_clamp(n, lo, hi, d)) return false;
    } else if (zy != 0 || n->attr.quant.clamp[0] != 0 || n->attr.quant.clamp[1] != 0) {
        return diag_error(d, n->loc, "'%s' to f32 takes zero_points = [zx, 0] and clamp = [0, 0] (none)", op);
    }
    n->dtype = t;
    return true;
}

bool shape_qmatmul(Graph *g, Node *n, Diag *d) {
    const Node *x = &g->nodes[n->in[0]], *w = &g->nodes[n->in[1]];
    char a[96], b[96];
    if (!dtype_is_quantized(x->dtype) || x->shape.rank != 2 || w->dtype != DT_I8 || w->shape.rank != 2 ||
        w->shape.dim[1] != x->shape.dim[1])
        return diag_error(d, n->loc, "'qmatmul' needs x i8/u8 [M,K] and w i8 [N,K], got %s and %s",
                          ops_type_str(a, g, n->in[0]), ops_type_str(b, g, n->in[1]));
    int64_t N = w->shape.dim[0];
    if (!check_qlinear(g, n, N, d)) return false;
    n->shape = (Shape){.rank = 2, .dim = {x->shape.dim[0], N}};
    return true;
}

bool shape_qconv2d(Graph *g, Node *n, Diag *d) {
    const Node *x = &g->nodes[n->in[0]], *w = &g->nodes[n->in[1]];
    char a[96], b[96];
    if (!dtype_is_quantized(x->dtype) || w->dtype != DT_I8)
        return diag_error(d, n->loc, "'qconv2d' needs x i8/u8 [B,C,H,W] and w i8 [O,C,kH,kW], got %s and %s",
                          ops_type_str(a, g, n->in[0]), ops_type_str(b, g, n->in[1]));
    if (n->attr.conv.groups != 1)
        return diag_error(d, n->loc, "'qconv2d' takes groups 1, got %d", n->attr.conv.groups);
    Shape y;
    if (!conv_check(n, &x->shape, &w->shape, x->dtype, &y, d) || !check_qlinear(g, n, w->shape.dim[0], d)) return false;
    n->shape = y;
    return true;
}

/* ---- reference kernels ---- */

void eval_quant(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    const Node *n = &g->nodes[id];
    QuantLoops L;
    quant_loops(g, n, &L);
    const Tensor *x = ins[L.x], *sc = ins[L.scale], *zp = ins[L.zp];
    int lo, hi;
    quant_op_range(n, &lo, &hi);
    for (int64_t o = 0, i = 0; o < L.outer; o++)
        for (int64_t c = 0; c < L.len; c++) {
            int64_t ch = L.per_axis ? c : 0;
            double s = tensor_get(sc, ch);
            int32_t z = (int32_t)tensor_get(zp, ch);
            for (int64_t k = 0; k < L.inner; k++, i++) {
                double v = tensor_get(x, i), r = 0;
                switch (n->op) {
                case OP_QUANTIZE: r = quant_quantize(v, s, z, lo, hi); break;
                case OP_DEQUANTIZE: r = quant_dequantize((int32_t)v, s, z); break;
                case OP_FAKE_QUANT: r = quant_dequantize(quant_quantize(v, s, z, lo, hi), s, z); break;
                default: { /* FAKE_QUANT_BWD: the gradient where the unclamped value is in range */
                    double u = quant_unclamped(v, s, z);
                    r = u >= lo && u <= hi ? tensor_get(ins[0], i) : 0;
                }
                }
                tensor_set(out, i, r);
            }
        }
}

void eval_qmatmul(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    const Node *n = &g->nodes[id];
    int64_t M = n->shape.dim[0], N = n->shape.dim[1], K = g->nodes[n->in[0]].shape.dim[1];
    int zx = n->attr.quant.zero_points[0], zy = n->attr.quant.zero_points[1], lo, hi;
    qmatmul_range(n, &lo, &hi);
    const int32_t *bias = ins[2]->data, *mult = ins[3]->data, *shift = ins[4]->data;
    const int8_t *w = ins[1]->data;
    for (int64_t m = 0; m < M; m++)
        for (int64_t j = 0; j < N; j++) {
            uint32_t acc = (uint32_t)bias[j]; /* wraps modulo 2^32, as the emitted loop does */
            for (int64_t k = 0; k < K; k++)
                acc += (uint32_t)(((int32_t)tensor_get(ins[0], m * K + k) - zx) * (int32_t)w[j * K + k]);
            int32_t a = (int32_t)acc;
            tensor_set(out, m * N + j,
                       n->dtype == DT_F32 ? quant_scale_acc(a, mult[j], shift[j])
                                          : quant_requantize(a, mult[j], shift[j], zy, lo, hi));
        }
}

/* Direct loops over the window; a tap in the padding reads the zero point,
 * (zx - zx) * w = 0, so it is skipped. */
void eval_qconv2d(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    const Node *n = &g->nodes[id];
    ConvGeom c;
    conv_geom(g, n, &c);
    int zx = n->attr.quant.zero_points[0], zy = n->attr.quant.zero_points[1], lo, hi;
    qmatmul_range(n, &lo, &hi);
    const int32_t *bias = ins[2]->data, *mult = ins[3]->data, *shift = ins[4]->data;
    const int8_t *w = ins[1]->data;
    for (int64_t b = 0, o_at = 0; b < c.n; b++)
        for (int64_t o = 0; o < c.o; o++)
            for (int64_t oh = 0; oh < c.oh; oh++)
                for (int64_t ow = 0; ow < c.ow; ow++, o_at++) {
                    uint32_t acc = (uint32_t)bias[o]; /* wraps modulo 2^32, as qmatmul's */
                    for (int64_t ch = 0; ch < c.c; ch++)
                        for (int64_t ki = 0; ki < c.kh; ki++)
                            for (int64_t kj = 0; kj < c.kw; kj++) {
                                int64_t ih = oh * c.sh - c.ph + ki * c.dh, iw = ow * c.sw - c.pw + kj * c.dw;
                                if (ih < 0 || ih >= c.h || iw < 0 || iw >= c.w) continue;
                                int32_t xv = (int32_t)tensor_get(ins[0], ((b * c.c + ch) * c.h + ih) * c.w + iw);
                                acc += (uint32_t)((xv - zx) * (int32_t)w[((o * c.c + ch) * c.kh + ki) * c.kw + kj]);
                            }
                    int32_t a = (int32_t)acc;
                    tensor_set(out, o_at,
                               n->dtype == DT_F32 ? quant_scale_acc(a, mult[o], shift[o])
                                                  : quant_requantize(a, mult[o], shift[o], zy, lo, hi));
                }
}

/* ---- VJP: straight-through inside the clamp range (scale and zero point get none) ---- */

void vjp_fake_quant(VjpCtx *c) {
    if (!c->needs[0]) return;
    const Node *n = &c->g->nodes[c->id];
    NodeAttrs at = n->attr;
    at.group = (FuseGroup){0};
    int ins[4] = {c->gy, n->in[0], n->in[1], n->in[2]};
    c->gx[0] = ad_node(c, OP_FAKE_QUANT_BWD, ins, 4, &at);
}
