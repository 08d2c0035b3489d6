/* conv.c (C backend): conv2d and its two gradient kernels as GEMMs over an
 * im2col matrix (see ir/ops/conv.c for the algebra). The im2col/col2im
 * routine is specialized to the shape and defined once per file; the column
 * matrix lives in the context's scratch, sized at compile time, so nothing
 * is allocated at run time. A 1x1 window with stride 1 and no padding reads
 * the image in place. A forward convolution with few taps (c*kh*kw, e.g.
 * LeNet's first, 1x5x5) is instead computed directly: the taps unrolled
 * with literal offsets, from a zero-padded copy of the image, so neither the
 * column matrix nor bounds checks are needed; with stride 1 over the whole
 * output plane flat, in blocks of independent sums, otherwise row by row
 * (docs/performance.md, "Direct convolution" and "... computed flat"). */
#include <stdio.h>

#include "codegen/c/gemm.h"
#include "codegen/c/ops/c_ops.h"

void conv_emit_scratch(CEmitter *e, DType t, int64_t n, char *buf, size_t cap) {
    snprintf(buf, cap, "etch_scratch_%s_%lld", dtype_name(t), (long long)n);
    if (cemit_define_once(e, buf))
        sb_printf(e->preamble, "/* scratch for im2col and friends: a call's ops run one at a time and share it */\n"
                               "#define %s ((%s *)%s)\n\n",
                  buf, dtype_c_type(t), cemit_scratch(e, n * (int64_t)dtype_size(t)));
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


static bool conv_is_direct(const Node *n, const ConvGeom *g) {
    return n->op == OP_CONV2D && g->groups == 1 && !g->pointwise && g->ckk <= CONV_DIRECT_MAX_TAPS;
}

/* Stride-1 direct convolutions compute each output plane flat, over the
 * padded image's width: position q = oh * wp + j reads xp[q + tap offset]
 * for every j < wp, the columns past ow being thrown away. The flat loop
 * then has no remainder (its length rounds up to CONV_DIRECT_BLOCK) and runs
 * in blocks of CONV_DIRECT_BLOCK independent sums (a few vector registers),
 * where a loop over one 28-wide row left a scalar tail and one dependent FMA
 * chain per vector. */
enum { CONV_DIRECT_BLOCK = 32 };

static bool conv_direct_flat(const ConvGeom *g) { return g->sh == 1 && g->sw == 1; }

/* Elements of the direct routine's scratch: the padded copy of the image
 * (with, for the flat form, slack the last block reads past it and the
 * flat output plane after it), or 0 when it reads x in place. */
static int64_t conv_direct_scratch(const ConvGeom *g, int64_t *flat_len, int64_t *xp_len) {
    int64_t hp = g->h + 2 * g->ph, wp = g->w + 2 * g->pw, xpn = g->c * hp * wp;
    *flat_len = 0;
    if (!conv_direct_flat(g)) return *xp_len = xpn, (g->ph || g->pw) ? xpn : 0;
    int64_t n = (g->oh * wp + CONV_DIRECT_BLOCK - 1) / CONV_DIRECT_BLOCK * CONV_DIRECT_BLOCK;
    int64_t last = n - 1 + (g->c - 1) * hp * wp + (g->kh - 1) * g->dh * wp + (g->kw - 1) * g->dw;
    *flat_len = n;
    *xp_len = last + 1 > xpn ? last + 1 : xpn;
    return *xp_len + n;
}

/* The flat form's body (see CONV_DIRECT_BLOCK): per output channel, the
 * plane in blocks, then its rows copied out. */
static void emit_direct_flat_body(StrBuf *b, const ConvGeom *g, DType t, int64_t n, int64_t xp_len) {
    const char *T = dtype_c_type(t);
    long long hp = g->h + 2 * g->ph, wp = g->w + 2 * g->pw, B = CONV_DIRECT_BLOCK;
    sb_printf(b, "    %s *t = xp + %lld;\n", T, (long long)xp_len);
    sb_printf(b, "    for (int64_t o = 0; o < %lld; o++) {\n", (long long)g->o);
    sb_printf(b, "        const %s *wo = w + o * %lld;\n", T, (long long)g->ckk);
    sb_printf(b, "        for (int64_t p = 0; p < %lld; p += %lld) {\n", (long long)n, B);
    sb_printf(b, "            const %s *r = xp + p;\n            %s acc[%lld];\n", T, T, B);
    for (int64_t c = 0, tap = 0; c < g->c; c++)
        for (int64_t ki = 0; ki < g->kh; ki++)
            for (int64_t kj = 0; kj < g->kw; kj++, tap++)
                sb_printf(b, "            for (int q = 0; q < %lld; q++) acc[q] %s wo[%lld] * r[q + %lld];\n", B,
                          tap ? "+=" : "=", (long long)tap, (c * hp + ki * g->dh) * wp + kj * g->dw);
    sb_printf(b, "            for (int q = 0; q < %lld; q++) t[p + q] = acc[q];\n        }\n", B);
    sb_printf(b, "        for (int64_t oh = 0; oh < %lld; oh++)\n", (long long)g->oh);
    sb_printf(b, "            memcpy(y + (o * %lld + oh) * %lld, t + oh * %lld, %lld);\n    }\n}\n\n",
              (long long)g->oh, (long long)g->ow, wp, (long long)(g->ow * (int64_t)dtype_size(t)));
}

/* Name of the direct convolution routine for g, defining it once: y[o, oh, :]
 * of one image sums the taps in the order (c, ki, kj), from x itself or, with
 * padding, from its zero-padded copy xp [c, h + 2ph, w + 2pw]; with stride 1
 * the flat form above, otherwise one vectorizable loop over ow per row. */
static void emit_direct_fn(CEmitter *e, const ConvGeom *g, DType t, char *name, size_t cap) {
    snprintf(name, cap, "etch_dconv_%s_c%lld_%lldx%lld_o%lld_k%lldx%lld_s%lldx%lld_p%lldx%lld_d%lldx%lld",
             dtype_name(t), (long long)g->c, (long long)g->h, (long long)g->w, (long long)g->o, (long long)g->kh,
             (long long)g->kw, (long long)g->sh, (long long)g->sw, (long long)g->ph, (long long)g->pw,
             (long long)g->dh, (long long)g->dw);
    if (!cemit_define_once(e, name)) return;
    StrBuf *b = e->preamble;
    const char *T = dtype_c_type(t);
    int64_t flat_n, xp_len;
    bool copied = conv_direct_scratch(g, &flat_n, &xp_len) > 0;
    long long hp = g->h + 2 * g->ph, wp = g->w + 2 * g->pw, es = (long long)dtype_size(t);
    sb_printf(b, "/* direct conv2d: image [%lld, %lld, %lld], weight [%lld, %lld, %lld, %lld] -> [%lld, %lld, %lld] */\n",
              (long long)g->c, (long long)g->h, (long long)g->w, (long long)g->o, (long long)g->c, (long long)g->kh,
              (long long)g->kw, (long long)g->o, (long long)g->oh, (long long)g->ow);
    sb_printf(b, "ETCH_CLONES static void %s(const %s *restrict x, const %s *restrict w, %s *restrict y%s%s%s) {\n",
              name, T, T, T, copied ? ", " : "", copied ? T : "", copied ? " *restrict xp" : "");
    if (copied) {
        sb_printf(b, "    memset(xp, 0, %lld);\n", xp_len * es);
        sb_printf(b, "    for (int64_t c = 0; c < %lld; c++)\n        for (int64_t i = 0; i < %lld; i++)\n",
                  (long long)g->c, (long long)g->h);
        sb_printf(b, "            memcpy(xp + (c * %lld + i + %lld) * %lld + %lld, x + (c * %lld + i) * %lld, %lld);\n", hp,
                  (long long)g->ph, wp, (long long)g->pw, (long long)g->h, (long long)g->w, g->w * es);
    }
    if (flat_n) {
        emit_direct_flat_body(b, g, t, flat_n, xp_len);
        return;
    }
    sb_printf(b, "    for (int64_t o = 0; o < %lld; o++) {\n", (long long)g->o);
    sb_printf(b, "        const %s *wo = w + o * %lld;\n", T, (long long)g->ckk);
    sb_printf(b, "        for (int64_t oh = 0; oh < %lld; oh++) {\n", (long long)g->oh);
    sb_printf(b, "            const %s *r = %s + oh * %lld;\n", T, copied ? "xp" : "x", g->sh * wp);
    sb_printf(b, "            %s *yr = y + (o * %lld + oh) * %lld;\n", T, (long long)g->oh, (long long)g->ow);
    sb_printf(b, "            for (int64_t j = 0; j < %lld; j++)\n                yr[j] =", (long long)g->ow);
    char col[32];
    if (g->sw == 1) snprintf(col, sizeof col, "j");
    else snprintf(col, sizeof col, "j * %lld", (long long)g->sw);
    for (int64_t c = 0, tap = 0; c < g->c; c++)
        for (int64_t ki = 0; ki < g->kh; ki++)
            for (int64_t kj = 0; kj < g->kw; kj++, tap++)
                sb_printf(b, "%s wo[%lld] * r[%s + %lld]", tap ? "\n                    +" : "", (long long)tap, col,
                          (c * hp + ki * g->dh) * wp + kj * g->dw);
    sb_printf(b, ";\n        }\n    }\n}\n\n");
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
    if (conv_is_direct(n, &g)) { /* y[n] = direct(x[n], W) */
        emit_direct_fn(e, &g, n->dtype, fn, sizeof fn);
        int64_t flat_n, xp_len, scratch = conv_direct_scratch(&g, &flat_n, &xp_len);
        if (scratch) conv_emit_scratch(e, n->dtype, scratch, col, sizeof col);
        cemit_for(e, nv, sizeof nv, g.n);
        cemit_line(e, "%s(%s, %s, %s%s%s);", fn, offset_expr(a, sizeof a, A, nv, chw, NULL, 0), B,
                   offset_expr(c, sizeof c, Y, nv, g.o * P, NULL, 0), col[0] ? ", " : "", col);
        cemit_close(e);
        return;
    }
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
