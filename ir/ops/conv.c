/* conv.c: 2-D convolution over NCHW images, as PyTorch's conv2d (a
 * cross-correlation with zero padding, stride, dilation and groups), and the
 * two kernels its gradient needs: conv2d_backward_input (dL/dx) and
 * conv2d_backward_weight (dL/dw). Bias is a separate broadcast add.
 *
 * All three are matrix products over an im2col matrix: the receptive fields
 * of image n become the columns of col(x[n]), [C*kH*kW, OH*OW], whose rows
 * are grouped by channel, so per group g (weights W[g] = [O/G, C/G*kH*kW]):
 *   forward          y[n, g]  = W[g] @ col(x[n])[g]
 *   backward input   dx[n]    = col2im over g of (W[g]^T @ gy[n, g])   (scatter-add)
 *   backward weight  dW[g]    = sum over n of gy[n, g] @ col(x[n])[g]^T
 * The reference kernels run im2col into a malloc'd buffer and call OpenBLAS
 * (the eager executor is the dynamic baseline and should be as fast as one).
 * The emitted code calls an im2col/col2im routine specialized to the shape and
 * the specialized GEMM kernels of codegen/c/gemm.c, with the column matrix in
 * a static scratch array sized at compile time: no allocation at run time. A
 * 1x1 window with stride 1 and no padding reads the image in place. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ops/ops_impl.h"

int64_t conv_out_dim(int64_t in, int k, int stride, int pad, int dil) {
    if (stride <= 0) return 0;
    int64_t span = (int64_t)dil * (k - 1) + 1, room = in + 2 * (int64_t)pad - span;
    return room < 0 ? 0 : room / stride + 1;
}

const char *conv_pair_str(char *buf, const int *p) {
    snprintf(buf, 32, "[%d, %d]", p[0], p[1]);
    return buf;
}

static void geom_of(const Shape *x, const Shape *w, const NodeAttrs *a, ConvGeom *g) {
    *g = (ConvGeom){.n = x->dim[0], .c = x->dim[1], .h = x->dim[2], .w = x->dim[3], .o = w->dim[0],
                    .kh = w->dim[2], .kw = w->dim[3], .sh = a->conv.stride[0], .sw = a->conv.stride[1],
                    .ph = a->conv.pad[0], .pw = a->conv.pad[1], .dh = a->conv.dilation[0],
                    .dw = a->conv.dilation[1], .groups = a->conv.groups};
    g->oh = conv_out_dim(g->h, (int)g->kh, (int)g->sh, (int)g->ph, (int)g->dh);
    g->ow = conv_out_dim(g->w, (int)g->kw, (int)g->sw, (int)g->pw, (int)g->dw);
    g->cg = g->c / g->groups;
    g->og = g->o / g->groups;
    g->ckk = g->cg * g->kh * g->kw;
    g->ohw = g->oh * g->ow;
    g->pointwise = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
}

void conv_geom(const Graph *gr, const Node *n, ConvGeom *g) {
    const Shape *a = &gr->nodes[n->in[0]].shape, *b = &gr->nodes[n->in[1]].shape;
    if (n->op == OP_CONV2D || n->op == OP_QCONV2D) geom_of(a, b, &n->attr, g);
    else if (n->op == OP_CONV2D_BWD_INPUT) geom_of(&n->shape, b, &n->attr, g);
    else geom_of(a, &n->shape, &n->attr, g);
}

/* ---- shape rules ---- */

/* Checks a convolution of input xs by weight ws (dtype t) under n's attrs and
 * sets *out to its result shape; errors name the op, the values and the attrs. */
bool conv_check(const Node *n, const Shape *xs, const Shape *ws, DType t, Shape *out, Diag *d) {
    const char *op = op_table[n->op].name;
    const NodeAttrs *a = &n->attr;
    char xt[96], wt[96], p1[32], p2[32];
    type_format(xt, sizeof xt, t, xs);
    type_format(wt, sizeof wt, t, ws);
    if (xs->rank != 4) return diag_error(d, n->loc, "%s: input must be 4-D [N, C, H, W], got %s", op, xt);
    if (ws->rank != 4)
        return diag_error(d, n->loc, "%s: weight must be 4-D [out_channels, in_channels/groups, kH, kW], got %s", op,
                          wt);
    if (a->conv.stride[0] < 1 || a->conv.stride[1] < 1)
        return diag_error(d, n->loc, "%s: stride must be positive, got %s", op, conv_pair_str(p1, a->conv.stride));
    if (a->conv.dilation[0] < 1 || a->conv.dilation[1] < 1)
        return diag_error(d, n->loc, "%s: dilation must be positive, got %s", op, conv_pair_str(p1, a->conv.dilation));
    if (a->conv.pad[0] < 0 || a->conv.pad[1] < 0)
        return diag_error(d, n->loc, "%s: padding must be non-negative, got %s", op, conv_pair_str(p1, a->conv.pad));
    int64_t G = a->conv.groups, C = xs->dim[1], O = ws->dim[0];
    if (G < 1) return diag_error(d, n->loc, "%s: groups must be positive, got %lld", op, (long long)G);
    if (C % G != 0)
        return diag_error(d, n->loc, "%s: input channels %lld are not divisible by groups %lld (input %s)", op,
                          (long long)C, (long long)G, xt);
    if (O % G != 0)
        return diag_error(d, n->loc, "%s: out_channels %lld are not divisible by groups %lld (weight %s)", op,
                          (long long)O, (long long)G, wt);
    if (ws->dim[1] * G != C)
        return diag_error(d, n->loc, "%s: input has %lld channels but weight expects %lld (weight %s, groups %lld)", op,
                          (long long)C, (long long)(ws->dim[1] * G), wt, (long long)G);
    int64_t oh = 0, ow = 0;
    if (ws->dim[2] <= INT32_MAX && ws->dim[3] <= INT32_MAX) {
        oh = conv_out_dim(xs->dim[2], (int)ws->dim[2], a->conv.stride[0], a->conv.pad[0], a->conv.dilation[0]);
        ow = conv_out_dim(xs->dim[3], (int)ws->dim[3], a->conv.stride[1], a->conv.pad[1], a->conv.dilation[1]);
    }
    if (oh <= 0 || ow <= 0)
        return diag_error(d, n->loc,
                          "%s: kernel %lldx%lld (dilation %s) does not fit the padded input %lldx%lld (input %s, "
                          "padding %s)",
                          op, (long long)ws->dim[2], (long long)ws->dim[3], conv_pair_str(p1, a->conv.dilation),
                          (long long)(xs->dim[2] + 2 * a->conv.pad[0]), (long long)(xs->dim[3] + 2 * a->conv.pad[1]),
                          xt, conv_pair_str(p2, a->conv.pad));
    *out = (Shape){.rank = 4, .dim = {xs->dim[0], O, oh, ow}};
    return true;
}

static bool same_float_dtype(const Graph *g, const Node *n, int a, int b, const char *an, const char *bn, Diag *d) {
    char x[96], y[96];
    if (g->nodes[a].dtype != g->nodes[b].dtype || !dtype_is_float(g->nodes[a].dtype))
        return diag_error(d, n->loc, "%s: %s %s and %s %s must have the same floating-point dtype",
                          op_table[n->op].name, an, ops_type_str(x, g, a), bn, ops_type_str(y, g, b));
    return true;
}

bool shape_conv2d(Graph *g, Node *n, Diag *d) {
    const Node *x = &g->nodes[n->in[0]], *w = &g->nodes[n->in[1]];
    if (!same_float_dtype(g, n, n->in[0], n->in[1], "input", "weight", d)) return false;
    if (!conv_check(n, &x->shape, &w->shape, x->dtype, &n->shape, d)) return false;
    n->dtype = x->dtype;
    return true;
}

/* A backward op: the convolution it inverts must produce exactly gy. */
static bool matches_gy(const Graph *g, const Node *n, int gy, const Shape *want, const Shape *xs, const Shape *ws,
                       Diag *d) {
    char a[96], b[96], c[96], e[96];
    DType t = g->nodes[gy].dtype;
    if (shape_equal(&g->nodes[gy].shape, want)) return true;
    return diag_error(d, n->loc, "%s: output gradient %s does not match the convolution of %s by %s (%s)",
                      op_table[n->op].name, ops_type_str(a, g, gy), type_format(b, sizeof b, t, xs),
                      type_format(c, sizeof c, t, ws), type_format(e, sizeof e, t, want));
}

bool shape_conv2d_bwd_input(Graph *g, Node *n, Diag *d) { /* (gy, w) -> x: attr.shape */
    int gy = n->in[0], w = n->in[1];
    Shape y;
    if (!same_float_dtype(g, n, gy, w, "output gradient", "weight", d)) return false;
    if (!conv_check(n, &n->attr.shape, &g->nodes[w].shape, g->nodes[gy].dtype, &y, d)) return false;
    if (!matches_gy(g, n, gy, &y, &n->attr.shape, &g->nodes[w].shape, d)) return false;
    n->dtype = g->nodes[gy].dtype;
    n->shape = n->attr.shape;
    return true;
}

bool shape_conv2d_bwd_weight(Graph *g, Node *n, Diag *d) { /* (x, gy) -> w: attr.shape */
    int x = n->in[0], gy = n->in[1];
    Shape y;
    if (!same_float_dtype(g, n, x, gy, "input", "output gradient", d)) return false;
    if (!conv_check(n, &g->nodes[x].shape, &n->attr.shape, g->nodes[x].dtype, &y, d)) return false;
    if (!matches_gy(g, n, gy, &y, &g->nodes[x].shape, &n->attr.shape, d)) return false;
    n->dtype = g->nodes[x].dtype;
    n->shape = n->attr.shape;
    return true;
}

/* ---- reference kernels ---- */

/* The output columns [lo, hi) whose input column ow * stride + off lies in [0, w). */
static void valid_range(int64_t off, int64_t w, int64_t stride, int64_t ow, int64_t *lo, int64_t *hi) {
    *lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
    *hi = w - off <= 0 ? 0 : (w - off + stride - 1) / stride;
    if (*lo > ow) *lo = ow;
    if (*hi > ow) *hi = ow;
    if (*hi < *lo) *hi = *lo;
}

/* im2col of one image [c, h, w] into col [c*kh*kw, oh*ow]; col2im adds col back into dx. */
#define CONV_EAGER_KERNELS(T, SFX, GEMM)                                                                       \
    static void im2col_##SFX(const ConvGeom *g, const T *x, T *col) {                                          \
        for (int64_t c = 0; c < g->c; c++)                                                                     \
            for (int64_t ki = 0; ki < g->kh; ki++)                                                             \
                for (int64_t kj = 0; kj < g->kw; kj++) {                                                       \
                    T *dst = col + ((c * g->kh + ki) * g->kw + kj) * g->ohw;                                   \
                    int64_t off = kj * g->dw - g->pw, lo, hi;                                                  \
                    valid_range(off, g->w, g->sw, g->ow, &lo, &hi);                                            \
                    for (int64_t oh = 0; oh < g->oh; oh++, dst += g->ow) {                                     \
                        int64_t ih = oh * g->sh - g->ph + ki * g->dh;                                          \
                        if (ih < 0 || ih >= g->h) {                                                            \
                            memset(dst, 0, sizeof(T) * (size_t)g->ow);                                         \
                            continue;                                                                          \
                        }                                                                                      \
                        const T *row = x + (c * g->h + ih) * g->w;                                             \
                        for (int64_t j = 0; j < lo; j++) dst[j] = 0;                                           \
                        for (int64_t j = lo; j < hi; j++) dst[j] = row[j * g->sw + off];                       \
                        for (int64_t j = hi; j < g->ow; j++) dst[j] = 0;                                       \
                    }                                                                                          \
                }                                                                                              \
    }                                                                                                          \
    static void col2im_##SFX(const ConvGeom *g, const T *col, T *dx) {                                         \
        for (int64_t c = 0; c < g->c; c++)                                                                     \
            for (int64_t ki = 0; ki < g->kh; ki++)                                                             \
                for (int64_t kj = 0; kj < g->kw; kj++) {                                                       \
                    const T *src = col + ((c * g->kh + ki) * g->kw + kj) * g->ohw;                             \
                    int64_t off = kj * g->dw - g->pw, lo, hi;                                                  \
                    valid_range(off, g->w, g->sw, g->ow, &lo, &hi);                                            \
                    for (int64_t oh = 0; oh < g->oh; oh++, src += g->ow) {                                     \
                        int64_t ih = oh * g->sh - g->ph + ki * g->dh;                                          \
                        if (ih < 0 || ih >= g->h) continue;                                                    \
                        T *row = dx + (c * g->h + ih) * g->w;                                                  \
                        for (int64_t j = lo; j < hi; j++) row[j * g->sw + off] += src[j];                      \
                    }                                                                                          \
                }                                                                                              \
    }                                                                                                          \
    static void conv_eager_##SFX(const ConvGeom *g, OpKind op, const T *a, const T *b, T *out) {               \
        T *col = g->pointwise ? NULL : malloc(sizeof(T) * (size_t)(g->c * g->kh * g->kw * g->ohw));            \
        if (!g->pointwise && !col) abort();                                                                    \
        int64_t chw = g->c * g->h * g->w, M = g->og, K = g->ckk, P = g->ohw;                                   \
        for (int64_t n = 0; n < g->n; n++) {                                                                   \
            if (op == OP_CONV2D_BWD_INPUT) { /* a = gy, b = w, out = dx */                                     \
                T *cols = g->pointwise ? out + n * chw : col;                                                  \
                for (int64_t gr = 0; gr < g->groups; gr++)                                                     \
                    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)P, (int)M, 1, b + gr * M * K,   \
                         (int)K, a + (n * g->o + gr * M) * P, (int)P, 0, cols + gr * K * P, (int)P);           \
                if (!g->pointwise) col2im_##SFX(g, col, out + n * chw);                                        \
                continue;                                                                                      \
            }                                                                                                  \
            const T *xn = a + n * chw, *cols = xn;                                                             \
            if (!g->pointwise) im2col_##SFX(g, xn, col), cols = col;                                           \
            for (int64_t gr = 0; gr < g->groups; gr++) {                                                       \
                if (op == OP_CONV2D) /* a = x, b = w, out = y */                                               \
                    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)P, (int)K, 1, b + gr * M * K, \
                         (int)K, cols + gr * K * P, (int)P, 0, out + (n * g->o + gr * M) * P, (int)P);         \
                else /* a = x, b = gy, out = dw */                                                             \
                    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)K, (int)P, 1,                   \
                         b + (n * g->o + gr * M) * P, (int)P, cols + gr * K * P, (int)P, n ? 1 : 0,            \
                         out + gr * M * K, (int)K);                                                            \
            }                                                                                                  \
        }                                                                                                      \
        free(col);                                                                                             \
    }
CONV_EAGER_KERNELS(float, f32, cblas_sgemm)
CONV_EAGER_KERNELS(double, f64, cblas_dgemm)
#undef CONV_EAGER_KERNELS

static void eval_conv_any(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    const Node *n = &g->nodes[id];
    ConvGeom geo;
    conv_geom(g, n, &geo);
    memset(out->data, 0, tensor_nbytes(out)); /* col2im accumulates */
    if (out->dtype == DT_F32) conv_eager_f32(&geo, n->op, ins[0]->data, ins[1]->data, out->data);
    else conv_eager_f64(&geo, n->op, ins[0]->data, ins[1]->data, out->data);
}

void eval_conv2d(const Graph *g, int id, Tensor *out, const Tensor *const *ins) { eval_conv_any(g, id, out, ins); }
void eval_conv2d_bwd_input(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    eval_conv_any(g, id, out, ins);
}
void eval_conv2d_bwd_weight(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    eval_conv_any(g, id, out, ins);
}

/* ---- vector-Jacobian rule ----
 * dx = conv2d_backward_input(gy, w), dw = conv2d_backward_weight(x, gy): the
 * transposed convolution and the correlation of x with gy, as kernels of
 * their own (each a GEMM over im2col, like the forward). */
void vjp_conv2d(VjpCtx *c) {
    const Node *n = &c->g->nodes[c->id];
    int x = n->in[0], w = n->in[1];
    NodeAttrs a = {.conv = n->attr.conv};
    if (c->needs[0]) {
        a.shape = c->g->nodes[x].shape;
        c->gx[0] = ad_node(c, OP_CONV2D_BWD_INPUT, (int[]){c->gy, w}, 2, &a);
    }
    if (c->needs[1]) {
        a.shape = c->g->nodes[w].shape;
        c->gx[1] = ad_node(c, OP_CONV2D_BWD_WEIGHT, (int[]){x, c->gy}, 2, &a);
    }
}
