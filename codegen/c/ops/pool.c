/* pool.c (C backend): max/avg pooling and their gradient kernels, one
 * routine per (op, dtype, shape, window) in the preamble with literal sizes;
 * the node's code is a call.
 *
 * Max pooling has no data-dependent branch: each window's maximum is a chain
 * of selects in row-major window order, `c = v > m | v != v; m = c ? v : m`,
 * which is the eager rule (ir/ops/pool.c: the first maximum wins ties, the
 * last NaN wins, the result is that element's bits), so a row of windows
 * vectorizes. The backward keeps the same chain for the index of the winner.
 * When windows do not overlap and lie inside the image (LeNet's 2x2 stride 2)
 * it writes every element of each window as `k == e ? 0 + gy : 0`, a store
 * per element instead of a zeroed plane and a scattered add (0 + gy: the
 * eager kernel adds gy to a zero, which turns -0 into +0); otherwise it adds
 * gy at the winner's index, window by window in the eager order. The
 * forward also takes i8/u8 images (quantized activations): a plain max. */
#include <stdio.h>
#include <string.h>

#include "codegen/c/ops/c_ops.h"

enum { POOL_MAX, POOL_AVG, POOL_MAX_BWD, POOL_AVG_BWD };

/* The select chain over one window element: v is element e (e: its C
 * expression), k (when track) its index expression. */
static void emit_max_step(StrBuf *b, const char *ind, const char *T, const char *elem, const char *idx) {
    if ((!strcmp(T, "uint8_t") || !strcmp(T, "int8_t")) && !idx) { /* i8/u8 (quantized max_pool2d): no NaN, a plain max (pmaxub) */
        sb_printf(b, "%s{\n%s    const %s v = %s;\n%s    m = v > m ? v : m;\n%s}\n", ind, ind, T, elem, ind, ind);
        return;
    }
    sb_printf(b, "%s{\n%s    const %s v = %s;\n%s    const int c = (v > m) | (v != v);\n", ind, ind, T, elem, ind);
    sb_printf(b, "%s    m = ETCH_SELECT(c, v, m);\n", ind);
    if (idx) sb_printf(b, "%s    k = c ? %s : k;\n", ind, idx);
    sb_printf(b, "%s}\n", ind);
}

/* Max pooling (forward or backward) whose windows lie inside the image:
 * fixed windows unrolled, the loop over a row of windows without branches. */
static void emit_max_inside(StrBuf *b, int k, const char *T, int64_t es, const PoolGeom *g) {
    long long H = g->h, W = g->w, OH = g->oh, OW = g->ow, KH = g->kh, KW = g->kw, SH = g->sh, SW = g->sw;
    /* windows tile disjointly: the backward stores every window element */
    bool disjoint = k == POOL_MAX_BWD && SH >= KH && SW >= KW;
    bool tiled = disjoint && SH == KH && SW == KW && OH * SH == H && OW * SW == W;
    if (k == POOL_MAX_BWD && !tiled) sb_printf(b, "    memset(dx, 0, %lld);\n", (long long)(g->planes * H * W * es));
    sb_printf(b, "    for (int64_t p = 0; p < %lld; p++)\n", (long long)g->planes);
    sb_printf(b, "        for (int64_t oh = 0; oh < %lld; oh++) {\n", OH);
    sb_printf(b, "            const %s *xr = x + p * %lld + oh * %lld;\n", T, H * W, SH * W);
    if (k == POOL_MAX) sb_printf(b, "            %s *yr = y + p * %lld + oh * %lld;\n", T, OH * OW, OW);
    else {
        sb_printf(b, "            const %s *gr = gy + p * %lld + oh * %lld;\n", T, OH * OW, OW);
        sb_printf(b, "            %s *dr = dx + p * %lld + oh * %lld;\n", T, H * W, SH * W);
    }
    sb_printf(b, "            for (int64_t ow = 0; ow < %lld; ow++) {\n", OW);
    sb_printf(b, "                const %s *q = xr + ow * %lld;\n", T, SW);
    sb_printf(b, "                %s m = q[0];\n", T);
    if (k == POOL_MAX_BWD) sb_printf(b, "                int k = 0;\n");
    char elem[64], idx[32];
    for (long long i = 0; i < KH; i++)
        for (long long j = 0; j < KW; j++) {
            if (i == 0 && j == 0) continue;
            snprintf(elem, sizeof elem, "q[%lld]", i * W + j);
            snprintf(idx, sizeof idx, "%lld", disjoint ? i * KW + j : i * W + j);
            emit_max_step(b, "                ", T, elem, k == POOL_MAX_BWD ? idx : NULL);
        }
    if (k == POOL_MAX) sb_printf(b, "                yr[ow] = m;\n");
    else if (!disjoint) {
        sb_printf(b, "                (void)m;\n");
        sb_printf(b, "                dr[ow * %lld + k] += gr[ow];\n", SW);
    } else {
        sb_printf(b, "                (void)m;\n                const %s gv = (%s)0 + gr[ow];\n", T, T);
        for (long long i = 0; i < KH; i++)
            for (long long j = 0; j < KW; j++)
                sb_printf(b, "                dr[ow * %lld + %lld] = ETCH_SELECT(k == %lld, gv, (%s)0);\n", SW,
                          i * W + j, i * KW + j, T);
    }
    sb_printf(b, "            }\n        }\n");
}

/* The window's rows [h0, h1) (at oh) and columns [w0, w1) (at ow), clipped to
 * the image; without padding every window lies inside it (floor mode): fixed
 * trip counts the C compiler unrolls. */
static void emit_window_rows(StrBuf *b, const PoolGeom *g) {
    if (g->ph == 0 && g->pw == 0) {
        sb_printf(b, "            const int64_t h0 = oh * %lld, h1 = h0 + %lld;\n", (long long)g->sh, (long long)g->kh);
        return;
    }
    sb_printf(b, "            int64_t h0 = oh * %lld - %lld, h1 = h0 + %lld < %lld ? h0 + %lld : %lld;\n", (long long)g->sh,
              (long long)g->ph, (long long)g->kh, (long long)g->h, (long long)g->kh, (long long)g->h);
    sb_printf(b, "            if (h0 < 0) h0 = 0;\n");
}

static void emit_window_cols(StrBuf *b, const PoolGeom *g) {
    if (g->ph == 0 && g->pw == 0) {
        sb_printf(b, "                const int64_t w0 = ow * %lld, w1 = w0 + %lld;\n", (long long)g->sw, (long long)g->kw);
        return;
    }
    sb_printf(b, "                int64_t w0 = ow * %lld - %lld, w1 = w0 + %lld < %lld ? w0 + %lld : %lld;\n",
              (long long)g->sw, (long long)g->pw, (long long)g->kw, (long long)g->w, (long long)g->kw, (long long)g->w);
    sb_printf(b, "                if (w0 < 0) w0 = 0;\n");
}

/* Padded max pooling: windows clipped to the image, the chain over what is
 * inside, from -inf and the window's first element (the eager kernel's start). */
static void emit_max_padded(StrBuf *b, int k, const char *T, int64_t es, const PoolGeom *g) {
    long long H = g->h, W = g->w, OH = g->oh, OW = g->ow;
    if (k == POOL_MAX_BWD) sb_printf(b, "    memset(dx, 0, %lld);\n", (long long)(g->planes * H * W * es));
    sb_printf(b, "    for (int64_t p = 0; p < %lld; p++)\n", (long long)g->planes);
    sb_printf(b, "        for (int64_t oh = 0; oh < %lld; oh++) {\n", OH);
    emit_window_rows(b, g);
    sb_printf(b, "            for (int64_t ow = 0; ow < %lld; ow++) {\n", OW);
    emit_window_cols(b, g);
    sb_printf(b, "                const %s *xp = x + p * %lld;\n", T, H * W);
    sb_printf(b, "                %s m = -INFINITY;\n", T);
    if (k == POOL_MAX_BWD) sb_printf(b, "                int64_t k = h0 * %lld + w0;\n", W);
    sb_printf(b, "                for (int64_t i = h0; i < h1; i++)\n");
    sb_printf(b, "                    for (int64_t j = w0; j < w1; j++)\n");
    char elem[64];
    snprintf(elem, sizeof elem, "xp[i * %lld + j]", W);
    char idx[64];
    snprintf(idx, sizeof idx, "i * %lld + j", W);
    emit_max_step(b, "                        ", T, elem, k == POOL_MAX_BWD ? idx : NULL);
    if (k == POOL_MAX) sb_printf(b, "                y[p * %lld + oh * %lld + ow] = m;\n", OH * OW, OW);
    else sb_printf(b, "                (void)m;\n                dx[p * %lld + k] += gy[p * %lld + oh * %lld + ow];\n",
                   H * W, OH * OW, OW);
    sb_printf(b, "            }\n        }\n");
}

/* Average pooling and its gradient: sums in double over the clipped window. */
static void emit_avg(StrBuf *b, int k, const char *T, int64_t es, const PoolGeom *g) {
    long long H = g->h, W = g->w, OH = g->oh, OW = g->ow;
    if (k == POOL_AVG_BWD) sb_printf(b, "    memset(dx, 0, %lld);\n", (long long)(g->planes * H * W * es));
    sb_printf(b, "    for (int64_t p = 0; p < %lld; p++)\n", (long long)g->planes);
    sb_printf(b, "        for (int64_t oh = 0; oh < %lld; oh++) {\n", OH);
    emit_window_rows(b, g);
    sb_printf(b, "            for (int64_t ow = 0; ow < %lld; ow++) {\n", OW);
    emit_window_cols(b, g);
    if (k == POOL_AVG) {
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
    sb_printf(b, "            }\n        }\n");
}

static void emit_pool_fn(CEmitter *e, OpKind op, DType t, const PoolGeom *g, char *name, size_t cap) {
    static const char *const kind[] = {"maxpool2d", "avgpool2d", "maxpool2d_bwd", "avgpool2d_bwd"};
    int k = op == OP_MAX_POOL2D ? POOL_MAX : op == OP_AVG_POOL2D ? POOL_AVG : op == OP_MAX_POOL2D_BWD ? POOL_MAX_BWD : POOL_AVG_BWD;
    snprintf(name, cap, "etch_%s_%s_%lld_%lldx%lld_k%lldx%lld_s%lldx%lld_p%lldx%lld", kind[k], dtype_name(t),
             (long long)g->planes, (long long)g->h, (long long)g->w, (long long)g->kh, (long long)g->kw,
             (long long)g->sh, (long long)g->sw, (long long)g->ph, (long long)g->pw);
    if (!cemit_define_once(e, name)) return;
    StrBuf *b = e->preamble;
    const char *T = dtype_c_type(t);
    int64_t es = (int64_t)dtype_size(t);
    sb_printf(b, "/* %s over %lld planes %lldx%lld -> %lldx%lld */\n", kind[k], (long long)g->planes, (long long)g->h,
              (long long)g->w, (long long)g->oh, (long long)g->ow);
    /* cloned like the entries (AVX2 and baseline), so the select chains run 8 wide */
    if (k == POOL_MAX || k == POOL_AVG) sb_printf(b, "ETCH_CLONES static void %s(const %s *restrict x, %s *restrict y) {\n", name, T, T);
    else if (k == POOL_MAX_BWD)
        sb_printf(b, "ETCH_CLONES static void %s(const %s *restrict x, const %s *restrict gy, %s *restrict dx) {\n", name, T, T, T);
    else sb_printf(b, "ETCH_CLONES static void %s(const %s *restrict gy, %s *restrict dx) {\n", name, T, T);
    if (k == POOL_AVG || k == POOL_AVG_BWD) emit_avg(b, k, T, es, g);
    else if (g->ph == 0 && g->pw == 0) emit_max_inside(b, k, T, es, g);
    else emit_max_padded(b, k, T, es, g);
    sb_printf(b, "}\n\n");
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
