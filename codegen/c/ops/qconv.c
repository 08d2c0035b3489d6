/* qconv.c (C backend): the integer convolution qconv2d through qmatmul's
 * integer GEMM (codegen/c/qgemm.c). A chunk of images is unfolded into one
 * 8-bit column matrix [images * OH * OW, C * kH * kW] (rows are output
 * pixels, so it is qmatmul's x [M, K] and the weight [O, C, kH, kW] is its
 * [N, K] as it lies), whose taps in the padding hold the input zero point:
 * (zx - zx) * w adds nothing, as ir/ops/quant.c's eval_qconv2d skips them.
 * With padding, each image is first copied into a zp-bordered one (scratch).
 * The GEMM's [M, O] result, requantized per output channel by the same
 * epilogue as qmatmul's, is then transposed into the NCHW output. Integer
 * sums are exact, so the bits are the eager executor's. The column matrix
 * and the GEMM result live in the context's scratch, sized at compile time;
 * a chunk holds as many images (a divisor of the batch) as fit in
 * QCONV_CHUNK_BYTES, so that one GEMM call sees many rows (the VNNI packed
 * form starts at 32) without the scratch growing with the batch. */
#include <stdio.h>

#include "codegen/c/ops/c_ops.h"
#include "codegen/c/qgemm.h"

enum { QCONV_CHUNK_BYTES = 4 << 20 };

/* The padded image's size in elements (0 without padding: the image is read in place). */
static int64_t padded_numel(const ConvGeom *g) {
    return g->ph || g->pw ? g->c * (g->h + 2 * g->ph) * (g->w + 2 * g->pw) : 0;
}

/* Whether window rows are copied as 8 bytes (kW <= 8 contiguous bytes, from
 * the padded copy, whose 8 bytes of slack, like the column matrix's, take
 * what is read or written past the last row). */
static bool wide_rows(const ConvGeom *g) { return padded_numel(g) > 0 && g->dw == 1 && g->kw <= 8; }

/* Defines (once per geometry and dtype) the unfolding of one image into
 * [OH * OW, C * kH * kW] rows and returns its name in name. With padding, the
 * image is first copied into pad [C, H + 2 pH, W + 2 pW] bordered by zp, so
 * that every window row is kW literal loads without a bounds check. */
static void emit_unfold_fn(CEmitter *e, const ConvGeom *g, DType t, char *name, size_t cap) {
    snprintf(name, cap, "etch_qconv_unfold_%s_c%lld_%lldx%lld_k%lldx%lld_s%lldx%lld_p%lldx%lld_d%lldx%lld",
             dtype_name(t), (long long)g->c, (long long)g->h, (long long)g->w, (long long)g->kh, (long long)g->kw,
             (long long)g->sh, (long long)g->sw, (long long)g->ph, (long long)g->pw, (long long)g->dh,
             (long long)g->dw);
    if (!cemit_define_once(e, name)) return;
    const char *T = dtype_c_type(t);
    StrBuf *b = e->preamble;
    long long H = g->h, W = g->w, PH = g->ph, PW = g->pw, HP = H + 2 * PH, WP = W + 2 * PW;
    sb_printf(b, "/* qconv2d's unfolding: image [%lld, %lld, %lld] -> rows [%lld, %lld], padding at zp */\n",
              (long long)g->c, H, W, (long long)g->ohw, (long long)g->ckk);
    sb_printf(b, "static void %s(const %s *restrict x, %s zp, %s *restrict pad, %s *restrict col) {\n", name, T, T, T, T);
    if (padded_numel(g)) {
        sb_printf(b, "    for (int64_t i = 0; i < %lld; i++) pad[i] = zp;\n", (long long)padded_numel(g));
        sb_printf(b, "    for (int64_t c = 0; c < %lld; c++)\n", (long long)g->c);
        sb_printf(b, "        for (int64_t i = 0; i < %lld; i++)\n", H);
        sb_printf(b, "            for (int64_t j = 0; j < %lld; j++) pad[(c * %lld + i + %lld) * %lld + j + %lld] = x[(c * %lld + i) * "
                     "%lld + j];\n", W, HP, PH, WP, PW, H, W);
        sb_printf(b, "    const %s *const img = pad;\n", T);
    } else {
        sb_printf(b, "    (void)zp, (void)pad;\n    const %s *const img = x;\n", T);
    }
    sb_printf(b, "    for (int64_t oh = 0; oh < %lld; oh++)\n", (long long)g->oh);
    sb_printf(b, "        for (int64_t ow = 0; ow < %lld; ow++, col += %lld)\n", (long long)g->ow, (long long)g->ckk);
    sb_printf(b, "            for (int64_t c = 0; c < %lld; c++)\n", (long long)g->c);
    sb_printf(b, "                for (int64_t ki = 0; ki < %lld; ki++) {\n", (long long)g->kh);
    sb_printf(b, "                    const %s *r = img + (c * %lld + oh * %lld + ki * %lld) * %lld + ow * %lld;\n", T, HP,
              (long long)g->sh, (long long)g->dh, WP, (long long)g->sw);
    sb_printf(b, "                    %s *p = col + (c * %lld + ki) * %lld;\n", T, (long long)g->kh, (long long)g->kw);
    if (wide_rows(g)) /* 8 bytes at once: the excess lands on the next window row, written after it */
        sb_printf(b, "                    memcpy(p, r, 8);\n");
    else
        sb_printf(b, "                    for (int64_t kj = 0; kj < %lld; kj++) p[kj] = r[kj * %lld];\n",
                  (long long)g->kw, (long long)g->dw);
    sb_printf(b, "                }\n}\n\n");
}

void emit_qconv2d(CEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    ConvGeom c;
    conv_geom(g, n, &c);
    DType xt = g->nodes[n->in[0]].dtype, yt = n->dtype;
    int64_t per_image = c.ohw * c.ckk + c.ohw * c.o * (int64_t)dtype_size(yt), imgs = 1;
    for (int64_t k = 1; k <= c.n; k++)
        if (c.n % k == 0 && k * per_image <= QCONV_CHUNK_BYTES) imgs = k;
    QGemmDesc d = {.m = imgs * c.ohw, .n = c.o, .k = c.ckk, .x_dtype = xt, .y_dtype = yt,
                   .zx = n->attr.quant.zero_points[0], .zy = n->attr.quant.zero_points[1]};
    if (yt != DT_F32) qmatmul_range(n, &d.lo, &d.hi); /* f32: no clamp */
    quant_emit_helpers(e);
    char unfold[192];
    emit_unfold_fn(e, &c, xt, unfold, sizeof unfold);
    int64_t col_bytes = (imgs * c.ohw * c.ckk + 8 + 63) / 64 * 64, pad_bytes = (padded_numel(&c) + 8 + 63) / 64 * 64;
    const char *scratch = cemit_scratch(e, pad_bytes + col_bytes + imgs * c.ohw * c.o * (int64_t)dtype_size(yt));
    const char *X = dtype_c_type(xt), *Y = dtype_c_type(yt), *const *b = e->buf;
    cemit_line(e, "/* qconv2d: %lld images at a time unfolded to [%lld, %lld], GEMM by [%lld, %lld], to NCHW */",
               (long long)imgs, (long long)d.m, (long long)c.ckk, (long long)c.o, (long long)c.ckk);
    cemit_line(e, "{");
    e->indent++;
    cemit_line(e, "%s *const qc_pad = (%s *)%s;", X, X, scratch);
    cemit_line(e, "%s *const qc_col = (%s *)(%s + %lld);", X, X, scratch, (long long)pad_bytes);
    cemit_line(e, "%s *const qc_gemm = (%s *)(%s + %lld);", Y, Y, scratch, (long long)(pad_bytes + col_bytes));
    char chunk[16], i[16], o[16], p[16];
    cemit_for(e, chunk, sizeof chunk, c.n / imgs);
    cemit_for(e, i, sizeof i, imgs);
    cemit_line(e, "%s(%s + (%s * %lld + %s) * %lld, (%s)%d, qc_pad, qc_col + %s * %lld);", unfold, b[n->in[0]], chunk,
               (long long)imgs, i, (long long)(c.c * c.h * c.w), X, d.zx, i, (long long)(c.ohw * c.ckk));
    cemit_close(e);
    qgemm_emit(e, &d, "qc_col", b[n->in[1]], b[n->in[2]], b[n->in[3]], b[n->in[4]], "qc_gemm");
    /* [pixels, O] to [O, pixels]: the GEMM's rows read in order, O literal stores each (O streams) */
    cemit_for(e, i, sizeof i, imgs);
    cemit_line(e, "%s *const qc_y = %s + (%s * %lld + %s) * %lld;", Y, b[id], chunk, (long long)imgs, i,
               (long long)(c.o * c.ohw));
    cemit_line(e, "const %s *const qc_g = qc_gemm + %s * %lld;", Y, i, (long long)(c.ohw * c.o));
    cemit_for(e, p, sizeof p, c.ohw);
    cemit_for(e, o, sizeof o, c.o);
    cemit_line(e, "qc_y[%s * %lld + %s] = qc_g[%s * %lld + %s];", o, (long long)c.ohw, p, p, (long long)c.o, o);
    for (int k = 0; k < 5; k++) cemit_close(e); /* p, o, i, chunk, the block */
}
