/* qconv.c (C backend): the integer convolution qconv2d through qmatmul's
 * integer GEMM (codegen/c/qgemm.c). A chunk of images is unfolded into one
 * 8-bit column matrix [images * OH * OW, C * kH * kW] (rows are output
 * pixels, so it is qmatmul's x [M, K] and the weight [O, C, kH, kW] is its
 * [N, K] as it lies), whose taps in the padding hold the input zero point:
 * (zx - zx) * w adds nothing, as ir/ops/quant.c's eval_qconv2d skips them.
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

/* Defines (once per geometry and dtype) the unfolding of one image into
 * [OH * OW, C * kH * kW] rows, padding at zp, and returns its name in name. */
static void emit_unfold_fn(CEmitter *e, const ConvGeom *g, DType t, char *name, size_t cap) {
    snprintf(name, cap, "etch_qconv_unfold_%s_c%lld_%lldx%lld_k%lldx%lld_s%lldx%lld_p%lldx%lld_d%lldx%lld",
             dtype_name(t), (long long)g->c, (long long)g->h, (long long)g->w, (long long)g->kh, (long long)g->kw,
             (long long)g->sh, (long long)g->sw, (long long)g->ph, (long long)g->pw, (long long)g->dh,
             (long long)g->dw);
    if (!cemit_define_once(e, name)) return;
    const char *T = dtype_c_type(t);
    StrBuf *b = e->preamble;
    sb_printf(b, "/* qconv2d's unfolding: image [%lld, %lld, %lld] -> rows [%lld, %lld], padding at zp */\n",
              (long long)g->c, (long long)g->h, (long long)g->w, (long long)g->ohw, (long long)g->ckk);
    sb_printf(b, "static void %s(const %s *restrict x, %s zp, %s *restrict col) {\n", name, T, T, T);
    sb_printf(b, "    for (int64_t oh = 0; oh < %lld; oh++)\n", (long long)g->oh);
    sb_printf(b, "        for (int64_t ow = 0; ow < %lld; ow++, col += %lld)\n", (long long)g->ow, (long long)g->ckk);
    sb_printf(b, "            for (int64_t c = 0; c < %lld; c++)\n", (long long)g->c);
    sb_printf(b, "                for (int64_t ki = 0; ki < %lld; ki++) {\n", (long long)g->kh);
    sb_printf(b, "                    const int64_t ih = oh * %lld - %lld + ki * %lld;\n", (long long)g->sh,
              (long long)g->ph, (long long)g->dh);
    sb_printf(b, "                    %s *p = col + (c * %lld + ki) * %lld;\n", T, (long long)g->kh, (long long)g->kw);
    sb_printf(b, "                    for (int64_t kj = 0; kj < %lld; kj++) {\n", (long long)g->kw);
    sb_printf(b, "                        const int64_t iw = ow * %lld - %lld + kj * %lld;\n", (long long)g->sw,
              (long long)g->pw, (long long)g->dw);
    sb_printf(b, "                        p[kj] = ih < 0 || ih >= %lld || iw < 0 || iw >= %lld ? zp : x[(c * %lld + ih) * "
                 "%lld + iw];\n",
              (long long)g->h, (long long)g->w, (long long)g->h, (long long)g->w);
    sb_printf(b, "                    }\n                }\n}\n\n");
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
    int64_t col_bytes = (imgs * c.ohw * c.ckk + 63) / 64 * 64;
    const char *scratch = cemit_scratch(e, col_bytes + imgs * c.ohw * c.o * (int64_t)dtype_size(yt));
    const char *X = dtype_c_type(xt), *Y = dtype_c_type(yt), *const *b = e->buf;
    cemit_line(e, "/* qconv2d: %lld images at a time unfolded to [%lld, %lld], GEMM by [%lld, %lld], to NCHW */",
               (long long)imgs, (long long)d.m, (long long)c.ckk, (long long)c.o, (long long)c.ckk);
    cemit_line(e, "{");
    e->indent++;
    cemit_line(e, "%s *const qc_col = (%s *)%s;", X, X, scratch);
    cemit_line(e, "%s *const qc_gemm = (%s *)(%s + %lld);", Y, Y, scratch, (long long)col_bytes);
    char chunk[16], i[16], o[16], p[16];
    cemit_for(e, chunk, sizeof chunk, c.n / imgs);
    cemit_for(e, i, sizeof i, imgs);
    cemit_line(e, "%s(%s + (%s * %lld + %s) * %lld, (%s)%d, qc_col + %s * %lld);", unfold, b[n->in[0]], chunk,
               (long long)imgs, i, (long long)(c.c * c.h * c.w), X, d.zx, i, (long long)(c.ohw * c.ckk));
    cemit_close(e);
    qgemm_emit(e, &d, "qc_col", b[n->in[1]], b[n->in[2]], b[n->in[3]], b[n->in[4]], "qc_gemm");
    cemit_for(e, i, sizeof i, imgs);
    cemit_for(e, o, sizeof o, c.o);
    cemit_for(e, p, sizeof p, c.ohw);
    cemit_line(e, "%s[((%s * %lld + %s) * %lld + %s) * %lld + %s] = qc_gemm[(%s * %lld + %s) * %lld + %s];", b[id], chunk,
               (long long)imgs, i, (long long)c.o, o, (long long)c.ohw, p, i, (long long)c.ohw, p, (long long)c.o, o);
    for (int k = 0; k < 5; k++) cemit_close(e); /* p, o, i, chunk, the block */
}
