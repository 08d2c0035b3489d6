/* pool.c (C backend): max/avg pooling and their gradient kernels, one
 * routine per (op, dtype, shape, window) in the preamble with literal sizes;
 * the node's code is a call. */
#include <stdio.h>

#include "codegen/c/ops/c_ops.h"

static void emit_pool_fn(CEmitter *e, OpKind op, DType t, const PoolGeom *g, char *name, size_t cap) {
    static const char *const kind[] = {"maxpool2d", "avgpool2d", "maxpool2d_bwd", "avgpool2d_bwd"};
    int k = op == OP_MAX_POOL2D ? 0 : op == OP_AVG_POOL2D ? 1 : op == OP_MAX_POOL2D_BWD ? 2 : 3;
    snprintf(name, cap, "etch_%s_%s_%lld_%lldx%lld_k%lldx%lld_s%lldx%lld_p%lldx%lld", kind[k], dtype_name(t),
             (long long)g->planes, (long long)g->h, (long long)g->w, (long long)g->kh, (long long)g->kw,
             (long long)g->sh, (long long)g->sw, (long long)g->ph, (long long)g->pw);
    if (!cemit_define_once(e, name)) return;
    StrBuf *b = e->preamble;
    const char *T = dtype_c_type(t);
    long long H = g->h, W = g->w, OH = g->oh, OW = g->ow;
    sb_printf(b, "/* %s over %lld planes %lldx%lld -> %lldx%lld */\n", kind[k], (long long)g->planes, H, W, OH, OW);
    if (k == 0 || k == 1) sb_printf(b, "static void %s(const %s *restrict x, %s *restrict y) {\n", name, T, T);
    else if (k == 2) sb_printf(b, "static void %s(const %s *restrict x, const %s *restrict gy, %s *restrict dx) {\n", name, T, T, T);
    else sb_printf(b, "static void %s(const %s *restrict gy, %s *restrict dx) {\n", name, T, T);
    if (k >= 2) sb_printf(b, "    memset(dx, 0, %lld);\n", (long long)(g->planes * H * W) * (long long)dtype_size(t));
    sb_printf(b, "    for (int64_t p = 0; p < %lld; p++)\n", (long long)g->planes);
    sb_printf(b, "        for (int64_t oh = 0; oh < %lld; oh++) {\n", OH);
    /* without padding every window lies inside the image (floor mode): fixed
     * trip counts the C compiler unrolls */
    bool inside = g->ph == 0 && g->pw == 0;
    if (inside) {
        sb_printf(b, "            const int64_t h0 = oh * %lld, h1 = h0 + %lld;\n", (long long)g->sh, (long long)g->kh);
    } else {
        sb_printf(b, "            int64_t h0 = oh * %lld - %lld, h1 = h0 + %lld < %lld ? h0 + %lld : %lld;\n",
                  (long long)g->sh, (long long)g->ph, (long long)g->kh, H, (long long)g->kh, H);
        sb_printf(b, "            if (h0 < 0) h0 = 0;\n");
    }
    sb_printf(b, "            for (int64_t ow = 0; ow < %lld; ow++) {\n", OW);
    if (inside) {
        sb_printf(b, "                const int64_t w0 = ow * %lld, w1 = w0 + %lld;\n", (long long)g->sw, (long long)g->kw);
    } else {
        sb_printf(b, "                int64_t w0 = ow * %lld - %lld, w1 = w0 + %lld < %lld ? w0 + %lld : %lld;\n",
                  (long long)g->sw, (long long)g->pw, (long long)g->kw, W, (long long)g->kw, W);
        sb_printf(b, "                if (w0 < 0) w0 = 0;\n");
    }
    if (k == 0 || k == 2) {
        sb_printf(b, "                const %s *xp = x + p * %lld;\n", T, H * W);
        sb_printf(b, "                int64_t best = h0 * %lld + w0;\n                %s m = -INFINITY;\n", W, T);
        sb_printf(b, "                for (int64_t i = h0; i < h1; i++)\n");
        sb_printf(b, "                    for (int64_t j = w0; j < w1; j++) {\n");
        sb_printf(b, "                        const %s v = xp[i * %lld + j];\n", T, W);
        sb_printf(b, "                        if (v > m || v != v) m = v, best = i * %lld + j;\n", W);
        sb_printf(b, "                    }\n");
        if (k == 0) sb_printf(b, "                y[p * %lld + oh * %lld + ow] = xp[best];\n", OH * OW, OW);
        else sb_printf(b, "                dx[p * %lld + best] += gy[p * %lld + oh * %lld + ow];\n", H * W, OH * OW, OW);
    } else if (k == 1) {
        sb_printf(b, "                const %s *xp = x + p * %lld;\n                double s = 0;\n", T, H * W);
        sb_printf(b, "                for (int64_t i = h0; i < h1; i++)\n");
        sb_printf(b, "                    for (int64_t j = w0; j < w1; j++) s += (double)xp[i * %lld + j];\n", W);
        sb_printf(b, "                y[p * %lld + oh * %lld + ow] = (%s)(s / %lld.0);\n", OH * OW, OW, T,
                  (long long)(g->kh * g->kw));
    } else {
        sb_printf(b, "                const %s share = (%s)((double)gy[p * %lld + oh * %lld + ow] / %lld.0);\n", T, T,
                  OH * OW, OW, (long long)(g->kh * g->kw));
        sb_printf(b, "                %s *dp = dx + p * %lld;\n", T, H * W);
        sb_printf(b, "                for (int64_t i = h0; i < h1; i++)\n");
        sb_printf(b, "                    for (int64_t j = w0; j < w1; j++) dp[i * %lld + j] += share;\n", W);
    }
    sb_printf(b, "            }\n        }\n}\n\n");
}

static void emit_pool_any(CEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    PoolGeom geo;
    pool_geom(g, n, &geo);
    char fn[192];
    emit_pool_fn(e, n->op, n->dtype, &geo, fn, sizeof fn);
    if (n->op == OP_MAX_POOL2D_BWD) cemit_line(e, "%s(%s, %s, %s);", fn, e->buf[n->in[0]], e->buf[n->in[1]], e->buf[id]);
    else cemit_line(e, "%s(%s, %s);", fn, e->buf[n->in[0]], e->buf[id]);
}

void emit_pool2d(CEmitter *e, const Graph *g, int id) { emit_pool_any(e, g, id); }

void emit_pool2d_bwd(CEmitter *e, const Graph *g, int id) { emit_pool_any(e, g, id); }
