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

#include "codegen/c/gemm.h"
#include "ir/ops/ops_impl.h"

/* The sizes of one convolution, whichever of its three ops is asked. */
typedef struct ConvGeom {
    int64_t n, c, h, w;    /* input x [n, c, h, w] */
    int64_t o, kh, kw;     /* weight [o, c / groups, kh, kw] */
    int64_t oh, ow;        /* output [n, o, oh, ow] */
    int64_t sh, sw, ph, pw, dh, dw, groups;
    int64_t cg, og;        /* channels per group, in and out */
    int64_t ckk, ohw;      /* rows of one group's column matrix (cg*kh*kw); output pixels per image */
    bool pointwise;        /* 1x1, stride 1, no padding: col(x[n]) is x[n] itself */
} ConvGeom;

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

/* conv2d (x, w); backward input (gy, w) -> x's shape; backward weight (x, gy) -> w's shape. */
static void conv_geom(const Graph *gr, const Node *n, ConvGeom *g) {
    const Shape *a = &gr->nodes[n->in[0]].shape, *b = &gr->nodes[n->in[1]].shape;
    if (n->op == OP_CONV2D) geom_of(a, b, &n->attr, g);
    else if (n->op == OP_CONV2D_BWD_INPUT) geom_of(&n->shape, b, &n->attr, g);
    else geom_of(a, &n->shape, &n->attr, g);
}

/* ---- shape rules ---- */

/* Checks a convolution of input xs by weight ws (dtype t) under n's attrs and
 * sets *out to its result shape; errors name the op, the values and the attrs. */
static bool conv_check(const Node *n, const Shape *xs, const Shape *ws, DType t, Shape *out, Diag *d) {
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

/* ---- C emitters ---- */

void conv_emit_scratch(CEmitter *e, DType t, int64_t n, char *buf, size_t cap) {
    snprintf(buf, cap, "etch_scratch_%s_%lld", dtype_name(t), (long long)n);
    if (cemit_define_once(e, buf))
        sb_printf(e->preamble, "/* scratch for im2col and friends: ops run one at a time and share it */\n"
                               "static _Alignas(64) %s %s[%lld];\n\n",
                  dtype_c_type(t), buf, (long long)n);
}

/* Name of the im2col (or col2im when back) routine for g, defining it once. */
static void emit_im2col_fn(CEmitter *e, const ConvGeom *g, DType t, bool back, char *name, size_t cap) {
    snprintf(name, cap, "etch_%s_%s_c%lld_%lldx%lld_k%lldx%lld_s%lldx%lld_p%lldx%lld_d%lldx%lld",
             back ? "col2im" : "im2col", dtype_name(t), (long long)g->c, (long long)g->h, (long long)g->w,
             (long long)g->kh, (long long)g->kw, (long long)g->sh, (long long)g->sw, (long long)g->ph,
             (long long)g->pw, (long long)g->dh, (long long)g->dw);
    if (!cemit_define_once(e, name)) return;
    StrBuf *b = e->preamble;
    const char *T = dtype_c_type(t);
    sb_printf(b, "/* %s: image [%lld, %lld, %lld] %s columns [%lld, %lld] */\n", back ? "col2im" : "im2col",
              (long long)g->c, (long long)g->h, (long long)g->w, back ? "+= from" : "->",
              (long long)(g->c * g->kh * g->kw), (long long)g->ohw);
    if (back) sb_printf(b, "static void %s(const %s *restrict col, %s *restrict x) {\n", name, T, T);
    else sb_printf(b, "static void %s(const %s *restrict x, %s *restrict col) {\n", name, T, T);
    sb_printf(b, "    for (int64_t c = 0; c < %lld; c++)\n", (long long)g->c);
    sb_printf(b, "        for (int64_t ki = 0; ki < %lld; ki++)\n", (long long)g->kh);
    sb_printf(b, "            for (int64_t kj = 0; kj < %lld; kj++) {\n", (long long)g->kw);
    sb_printf(b, "                %s%s *p = col + ((c * %lld + ki) * %lld + kj) * %lld;\n", back ? "const " : "", T,
              (long long)g->kh, (long long)g->kw, (long long)g->ohw);
    /* output columns [lo, hi) read input columns inside the image */
    sb_printf(b, "                const int64_t off = kj * %lld - %lld;\n", (long long)g->dw, (long long)g->pw);
    sb_printf(b, "                int64_t lo = off >= 0 ? 0 : (-off + %lld) / %lld;\n", (long long)(g->sw - 1),
              (long long)g->sw);
    sb_printf(b, "                int64_t hi = %lld - off <= 0 ? 0 : (%lld - off + %lld) / %lld;\n", (long long)g->w,
              (long long)g->w, (long long)(g->sw - 1), (long long)g->sw);
    sb_printf(b, "                if (lo > %lld) lo = %lld;\n                if (hi > %lld) hi = %lld;\n"
                 "                if (hi < lo) hi = lo;\n",
              (long long)g->ow, (long long)g->ow, (long long)g->ow, (long long)g->ow);
    sb_printf(b, "                for (int64_t oh = 0; oh < %lld; oh++, p += %lld) {\n", (long long)g->oh,
              (long long)g->ow);
    sb_printf(b, "                    const int64_t ih = oh * %lld - %lld + ki * %lld;\n", (long long)g->sh,
              (long long)g->ph, (long long)g->dh);
    if (back) {
        sb_printf(b, "                    if (ih < 0 || ih >= %lld) continue;\n", (long long)g->h);
        sb_printf(b, "                    %s *row = x + (c * %lld + ih) * %lld;\n", T, (long long)g->h, (long long)g->w);
        sb_printf(b, "                    for (int64_t j = lo; j < hi; j++) row[j * %lld + off] += p[j];\n",
                  (long long)g->sw);
    } else {
        sb_printf(b, "                    if (ih < 0 || ih >= %lld) {\n", (long long)g->h);
        sb_printf(b, "                        for (int64_t j = 0; j < %lld; j++) p[j] = 0;\n", (long long)g->ow);
        sb_printf(b, "                        continue;\n                    }\n");
        sb_printf(b, "                    const %s *row = x + (c * %lld + ih) * %lld;\n", T, (long long)g->h,
                  (long long)g->w);
        sb_printf(b, "                    for (int64_t j = 0; j < lo; j++) p[j] = 0;\n");
        sb_printf(b, "                    for (int64_t j = lo; j < hi; j++) p[j] = row[j * %lld + off];\n",
                  (long long)g->sw);
        sb_printf(b, "                    for (int64_t j = hi; j < %lld; j++) p[j] = 0;\n", (long long)g->ow);
    }
    sb_printf(b, "                }\n            }\n}\n\n");
}

/* "base + var * stride" (or base alone) into buf. */
static const char *offset_expr(char *buf, size_t cap, const char *base, const char *var, int64_t stride,
                               const char *var2, int64_t stride2) {
    int len = snprintf(buf, cap, "%s", base);
    if (var && stride && len < (int)cap) len += snprintf(buf + len, cap - (size_t)len, " + %s * %lld", var, (long long)stride);
    if (var2 && stride2 && len < (int)cap) snprintf(buf + len, cap - (size_t)len, " + %s * %lld", var2, (long long)stride2);
    return buf;
}

/* The three ops share one loop over images and, inside it, one over groups. */
static void emit_conv_any(CEmitter *e, const Graph *gr, int id) {
    const Node *n = &gr->nodes[id];
    ConvGeom g;
    conv_geom(gr, n, &g);
    const char *A = e->buf[n->in[0]], *B = e->buf[n->in[1]], *Y = e->buf[id];
    int64_t chw = g.c * g.h * g.w, M = g.og, K = g.ckk, P = g.ohw, es = (int64_t)dtype_size(n->dtype);
    char col[96] = "", fn[192] = "", nv[16], gv[16] = "", a[256], b[256], c[256];
    if (!g.pointwise) {
        conv_emit_scratch(e, n->dtype, g.c * g.kh * g.kw * g.ohw, col, sizeof col);
        emit_im2col_fn(e, &g, n->dtype, n->op == OP_CONV2D_BWD_INPUT, fn, sizeof fn);
    }
    bool zero_first = n->op == OP_CONV2D_BWD_WEIGHT || (n->op == OP_CONV2D_BWD_INPUT && !g.pointwise);
    if (zero_first) cemit_line(e, "memset(%s, 0, %lld);", Y, (long long)(shape_numel(&n->shape) * es));
    cemit_for(e, nv, sizeof nv, g.n);
    GemmDesc gd = {.dtype = n->dtype};
    const char *gvar = NULL;
    if (n->op == OP_CONV2D_BWD_INPUT) { /* cols[g] = W[g]^T @ gy[n, g]; dx[n] += col2im(cols) */
        gd.m = K, gd.n = P, gd.k = M, gd.trans_a = true, gd.lda = K, gd.ldb = P, gd.ldc = P;
        char dst[160];
        if (g.pointwise) offset_expr(dst, sizeof dst, Y, nv, chw, NULL, 0);
        else snprintf(dst, sizeof dst, "%s", col);
        if (g.groups > 1) cemit_for(e, gv, sizeof gv, g.groups), gvar = gv;
        gemm_emit(e, &gd, offset_expr(a, sizeof a, B, gvar, M * K, NULL, 0),
                  offset_expr(b, sizeof b, A, nv, g.o * P, gvar, M * P), offset_expr(c, sizeof c, dst, gvar, K * P, NULL, 0));
        if (g.groups > 1) cemit_close(e);
        if (!g.pointwise) cemit_line(e, "%s(%s, %s);", fn, col, offset_expr(a, sizeof a, Y, nv, chw, NULL, 0));
        cemit_close(e);
        return;
    }
    char cols[160];
    offset_expr(cols, sizeof cols, A, nv, chw, NULL, 0);
    if (!g.pointwise) {
        cemit_line(e, "%s(%s, %s);", fn, cols, col);
        snprintf(cols, sizeof cols, "%s", col);
    }
    if (g.groups > 1) cemit_for(e, gv, sizeof gv, g.groups), gvar = gv;
    if (n->op == OP_CONV2D) { /* y[n, g] = W[g] @ cols[g] */
        gd.m = M, gd.n = P, gd.k = K, gd.lda = K, gd.ldb = P, gd.ldc = P;
        gemm_emit(e, &gd, offset_expr(a, sizeof a, B, gvar, M * K, NULL, 0),
                  offset_expr(b, sizeof b, cols, gvar, K * P, NULL, 0),
                  offset_expr(c, sizeof c, Y, nv, g.o * P, gvar, M * P));
    } else { /* dW[g] += gy[n, g] @ cols[g]^T */
        gd.m = M, gd.n = K, gd.k = P, gd.trans_b = true, gd.lda = P, gd.ldb = P, gd.ldc = K, gd.accumulate = true;
        gemm_emit(e, &gd, offset_expr(a, sizeof a, B, nv, g.o * P, gvar, M * P),
                  offset_expr(b, sizeof b, cols, gvar, K * P, NULL, 0), offset_expr(c, sizeof c, Y, gvar, M * K, NULL, 0));
    }
    if (g.groups > 1) cemit_close(e);
    cemit_close(e);
}

void emit_conv2d(CEmitter *e, const Graph *g, int id) { emit_conv_any(e, g, id); }
void emit_conv2d_bwd_input(CEmitter *e, const Graph *g, int id) { emit_conv_any(e, g, id); }
void emit_conv2d_bwd_weight(CEmitter *e, const Graph *g, int id) { emit_conv_any(e, g, id); }

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
