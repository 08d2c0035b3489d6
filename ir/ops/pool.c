/* pool.c: 2-D max and average pooling over NCHW images, as PyTorch's
 * max_pool2d and avg_pool2d (floor mode), and their gradient kernels.
 *
 * Windows: kernel, stride and padding per spatial dim (attr.conv), padding at
 * most half the kernel (PyTorch's rule), so every window overlaps the image.
 * Max pooling pads with -inf: a window's maximum is over its elements inside
 * the image, the first maximum in row-major window order wins ties and NaN
 * propagates (PyTorch's CPU kernel: `v > max || isnan(v)`). Average pooling
 * counts the padding (count_include_pad=True, PyTorch's default): every
 * window divides by kH*kW. Sums accumulate in double.
 *
 * max_pool2d also takes i8/u8 images without padding (the quantize pass keeps
 * a quantized layer's result in u8 through it: max commutes with the monotone
 * quantize and with the output clamp).
 *
 * Gradients: max_pool2d_backward(x, gy) recomputes each window's argmax and
 * routes gy there (overlapping windows add up); avg_pool2d_backward(gy)
 * spreads gy / (kH*kW) over each window's elements inside the image.
 * Reference kernels and emitted routines are direct loops (the windows are
 * small); each emitted routine is specialized to its shape. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ir/ops/ops_impl.h"

static void pool_geom_of(const Shape *x, const NodeAttrs *a, PoolGeom *g) {
    *g = (PoolGeom){.planes = x->dim[0] * x->dim[1], .h = x->dim[2], .w = x->dim[3], .kh = a->conv.kernel[0],
                    .kw = a->conv.kernel[1], .sh = a->conv.stride[0], .sw = a->conv.stride[1],
                    .ph = a->conv.pad[0], .pw = a->conv.pad[1]};
    g->oh = conv_out_dim(g->h, (int)g->kh, (int)g->sh, (int)g->ph, 1);
    g->ow = conv_out_dim(g->w, (int)g->kw, (int)g->sw, (int)g->pw, 1);
}

/* The input shape: operand 0 for the forward ops and max's backward, the target for avg's backward. */
static const Shape *pool_input_shape(const Graph *g, const Node *n) {
    return n->op == OP_AVG_POOL2D_BWD ? &n->shape : &g->nodes[n->in[0]].shape;
}

void pool_geom(const Graph *g, const Node *n, PoolGeom *geo) { pool_geom_of(pool_input_shape(g, n), &n->attr, geo); }

/* ---- shape rules ---- */

/* The op's name without "_backward" for messages about the window. */
static const char *pool_name(const Node *n) {
    return n->op == OP_MAX_POOL2D || n->op == OP_MAX_POOL2D_BWD ? "max_pool2d" : "avg_pool2d";
}

/* Checks pooling of xs (dtype t) under n's attrs; *out = the result shape. */
static bool pool_check(const Node *n, const Shape *xs, DType t, Shape *out, Diag *d) {
    const NodeAttrs *a = &n->attr;
    const char *op = pool_name(n);
    char xt[96], p1[32], p2[32];
    type_format(xt, sizeof xt, t, xs);
    /* max pooling of quantized activations: max commutes with the monotone quantize (docs/quantization.md) */
    bool q8 = n->op == OP_MAX_POOL2D && dtype_is_quantized(t) && a->conv.pad[0] == 0 && a->conv.pad[1] == 0;
    if (!dtype_is_float(t) && !q8)
        return diag_error(d, n->loc, "%s needs a floating-point tensor (or i8/u8 for max_pool2d without padding), got %s",
                          op, xt);
    if (xs->rank != 4) return diag_error(d, n->loc, "%s: input must be 4-D [N, C, H, W], got %s", op, xt);
    if (a->conv.kernel[0] < 1 || a->conv.kernel[1] < 1)
        return diag_error(d, n->loc, "%s: kernel_size must be positive, got %s", op, conv_pair_str(p1, a->conv.kernel));
    if (a->conv.stride[0] < 1 || a->conv.stride[1] < 1)
        return diag_error(d, n->loc, "%s: stride must be positive, got %s", op, conv_pair_str(p1, a->conv.stride));
    if (a->conv.pad[0] < 0 || a->conv.pad[1] < 0)
        return diag_error(d, n->loc, "%s: padding must be non-negative, got %s", op, conv_pair_str(p1, a->conv.pad));
    if (2 * (int64_t)a->conv.pad[0] > a->conv.kernel[0] || 2 * (int64_t)a->conv.pad[1] > a->conv.kernel[1])
        return diag_error(d, n->loc, "%s: padding %s must be at most half of kernel_size %s", op,
                          conv_pair_str(p1, a->conv.pad), conv_pair_str(p2, a->conv.kernel));
    int64_t oh = conv_out_dim(xs->dim[2], a->conv.kernel[0], a->conv.stride[0], a->conv.pad[0], 1);
    int64_t ow = conv_out_dim(xs->dim[3], a->conv.kernel[1], a->conv.stride[1], a->conv.pad[1], 1);
    if (oh <= 0 || ow <= 0)
        return diag_error(d, n->loc, "%s: kernel_size %s does not fit the padded input %lldx%lld (input %s, padding %s)",
                          op, conv_pair_str(p1, a->conv.kernel), (long long)(xs->dim[2] + 2 * a->conv.pad[0]),
                          (long long)(xs->dim[3] + 2 * a->conv.pad[1]), xt, conv_pair_str(p2, a->conv.pad));
    *out = (Shape){.rank = 4, .dim = {xs->dim[0], xs->dim[1], oh, ow}};
    return true;
}

bool shape_pool2d(Graph *g, Node *n, Diag *d) {
    const Node *x = &g->nodes[n->in[0]];
    if (!pool_check(n, &x->shape, x->dtype, &n->shape, d)) return false;
    n->dtype = x->dtype;
    return true;
}

/* gy must be what pooling xs gives. */
static bool pool_bwd_check(const Graph *g, Node *n, const Shape *xs, int gy, Diag *d) {
    Shape y;
    char a[96], b[96], c[96];
    DType t = g->nodes[gy].dtype;
    if (!pool_check(n, xs, t, &y, d)) return false;
    if (!shape_equal(&y, &g->nodes[gy].shape))
        return diag_error(d, n->loc, "%s: output gradient %s does not match pooling %s (%s)", op_table[n->op].name,
                          ops_type_str(a, g, gy), type_format(b, sizeof b, t, xs), type_format(c, sizeof c, t, &y));
    n->dtype = t;
    n->shape = *xs;
    return true;
}

bool shape_max_pool2d_bwd(Graph *g, Node *n, Diag *d) { /* (x, gy) -> x's type */
    char a[96], b[96];
    if (g->nodes[n->in[0]].dtype != g->nodes[n->in[1]].dtype)
        return diag_error(d, n->loc, "%s: input %s and output gradient %s have different dtypes", op_table[n->op].name,
                          ops_type_str(a, g, n->in[0]), ops_type_str(b, g, n->in[1]));
    Shape xs = g->nodes[n->in[0]].shape;
    return pool_bwd_check(g, n, &xs, n->in[1], d);
}

bool shape_avg_pool2d_bwd(Graph *g, Node *n, Diag *d) { /* (gy) -> attr.shape */
    Shape xs = n->attr.shape;
    return pool_bwd_check(g, n, &xs, n->in[0], d);
}

/* ---- reference kernels ----
 * One window per output element: rows [h0, h1), columns [w0, w1) of the
 * plane, already clipped to the image. */
#define WINDOW(g, oh, ow)                                                     \
    int64_t h0 = (oh) * (g)->sh - (g)->ph, w0 = (ow) * (g)->sw - (g)->pw;     \
    int64_t h1 = h0 + (g)->kh < (g)->h ? h0 + (g)->kh : (g)->h;               \
    int64_t w1 = w0 + (g)->kw < (g)->w ? w0 + (g)->kw : (g)->w;               \
    if (h0 < 0) h0 = 0;                                                       \
    if (w0 < 0) w0 = 0

/* forward: out = pool(x); backward: out = dx from (x, gy) or (gy). */
#define POOL_EAGER_KERNELS(T, SFX)                                                                       \
    static int64_t argmax_##SFX(const PoolGeom *g, const T *x, int64_t oh, int64_t ow) {                 \
        WINDOW(g, oh, ow);                                                                               \
        int64_t best = h0 * g->w + w0;                                                                   \
        T m = -INFINITY;                                                                                 \
        for (int64_t i = h0; i < h1; i++)                                                                \
            for (int64_t j = w0; j < w1; j++) {                                                          \
                T v = x[i * g->w + j];                                                                   \
                if (v > m || isnan(v)) m = v, best = i * g->w + j;                                       \
            }                                                                                            \
        return best;                                                                                     \
    }                                                                                                    \
    static void pool_eager_##SFX(const PoolGeom *g, OpKind op, const T *x, const T *gy, T *out) {        \
        double area = (double)(g->kh * g->kw);                                                           \
        for (int64_t p = 0; p < g->planes; p++) {                                                        \
            const T *xp = x ? x + p * g->h * g->w : NULL, *gp = gy ? gy + p * g->oh * g->ow : NULL;      \
            T *o = out + p * (op == OP_MAX_POOL2D || op == OP_AVG_POOL2D ? g->oh * g->ow : g->h * g->w); \
            for (int64_t oh = 0; oh < g->oh; oh++)                                                       \
                for (int64_t ow = 0; ow < g->ow; ow++) {                                                 \
                    int64_t k = oh * g->ow + ow;                                                         \
                    if (op == OP_MAX_POOL2D) {                                                           \
                        o[k] = xp[argmax_##SFX(g, xp, oh, ow)];                                          \
                    } else if (op == OP_MAX_POOL2D_BWD) {                                                \
                        o[argmax_##SFX(g, xp, oh, ow)] += gp[k];                                         \
                    } else {                                                                             \
                        WINDOW(g, oh, ow);                                                               \
                        double s = 0, share = op == OP_AVG_POOL2D_BWD ? (double)gp[k] / area : 0;        \
                        for (int64_t i = h0; i < h1; i++)                                                \
                            for (int64_t j = w0; j < w1; j++) {                                          \
                                if (op == OP_AVG_POOL2D) s += (double)xp[i * g->w + j];                  \
                                else o[i * g->w + j] += (T)share;                                        \
                            }                                                                            \
                        if (op == OP_AVG_POOL2D) o[k] = (T)(s / area);                                   \
                    }                                                                                    \
                }                                                                                        \
        }                                                                                                \
    }
POOL_EAGER_KERNELS(float, f32)
POOL_EAGER_KERNELS(double, f64)
#undef POOL_EAGER_KERNELS

/* max_pool2d of i8/u8 values (no padding): the window's largest. */
static void max_pool_8bit(const PoolGeom *g, const Tensor *x, Tensor *out) {
    for (int64_t p = 0, k = 0; p < g->planes; p++)
        for (int64_t oh = 0; oh < g->oh; oh++)
            for (int64_t ow = 0; ow < g->ow; ow++, k++) {
                WINDOW(g, oh, ow);
                double m = tensor_get(x, (p * g->h + h0) * g->w + w0);
                for (int64_t i = h0; i < h1; i++)
                    for (int64_t j = w0; j < w1; j++) m = fmax(m, tensor_get(x, (p * g->h + i) * g->w + j));
                tensor_set(out, k, m);
            }
}

static void eval_pool_any(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    const Node *n = &g->nodes[id];
    PoolGeom geo;
    pool_geom(g, n, &geo);
    if (dtype_is_quantized(out->dtype)) {
        max_pool_8bit(&geo, ins[0], out);
        return;
    }
    const void *x = n->op == OP_AVG_POOL2D_BWD ? NULL : ins[0]->data;
    const void *gy = n->op == OP_MAX_POOL2D_BWD ? ins[1]->data : n->op == OP_AVG_POOL2D_BWD ? ins[0]->data : NULL;
    memset(out->data, 0, tensor_nbytes(out)); /* the backward kernels accumulate */
    if (out->dtype == DT_F32) pool_eager_f32(&geo, n->op, x, gy, out->data);
    else pool_eager_f64(&geo, n->op, x, gy, out->data);
}

void eval_pool2d(const Graph *g, int id, Tensor *out, const Tensor *const *ins) { eval_pool_any(g, id, out, ins); }
void eval_pool2d_bwd(const Graph *g, int id, Tensor *out, const Tensor *const *ins) { eval_pool_any(g, id, out, ins); }

/* ---- vector-Jacobian rules: the gradient kernels above ---- */

void vjp_max_pool2d(VjpCtx *c) {
    const Node *n = &c->g->nodes[c->id];
    NodeAttrs a = {.conv = n->attr.conv};
    c->gx[0] = ad_node(c, OP_MAX_POOL2D_BWD, (int[]){n->in[0], c->gy}, 2, &a);
}

void vjp_avg_pool2d(VjpCtx *c) {
    const Node *n = &c->g->nodes[c->id];
    NodeAttrs a = {.conv = n->attr.conv, .shape = c->g->nodes[n->in[0]].shape};
    c->gx[0] = ad_node(c, OP_AVG_POOL2D_BWD, (int[]){c->gy}, 1, &a);
}
