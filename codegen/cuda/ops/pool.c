/* pool.c (CUDA backend): max/avg pooling and their gradient kernels, one
 * thread per output element, with the eager kernels' rules (ir/ops/pool.c)
 * bit for bit:
 *
 *  - max_pool2d: the window (clipped to the image) scanned in row-major
 *    order from -inf with `c = v > mx | v != v`: the first maximum wins a
 *    tie, the last NaN wins; i8/u8 images (no padding) take a plain max;
 *  - avg_pool2d: the clipped window summed in double, divided by kH*kW
 *    (the padding counts);
 *  - the backward kernels run one thread per element of dx (a gather, so no
 *    two threads write one element and nothing needs atomics): the element
 *    sums, from 0, the contributions of the windows that hold it in the
 *    eager kernel's order (oh, then ow, increasing), so the sums round as
 *    the eager scatter's do. Max's backward recomputes each such window's
 *    argmax (the same scan) and takes gy where the winner is this element;
 *    avg's adds (T)(gy / (kH*kW)) computed in double. */
#include <stdio.h>
#include <stdlib.h>

#include "codegen/cuda/cuda_emit.h"

/* Declares h0, h1, w0, w1: the window at (oy, ox) clipped to the image. */
static void emit_window(CEmitter *c, const PoolGeom *g) {
    if (g->ph == 0 && g->pw == 0) { /* floor mode: every window lies inside */
        cemit_line(c, "const int64_t h0 = oy * %lld, h1 = h0 + %lld, w0 = ox * %lld, w1 = w0 + %lld;",
                   (long long)g->sh, (long long)g->kh, (long long)g->sw, (long long)g->kw);
        return;
    }
    cemit_line(c, "const int64_t hs = oy * %lld - %lld, ws = ox * %lld - %lld;", (long long)g->sh, (long long)g->ph,
               (long long)g->sw, (long long)g->pw);
    cemit_line(c, "const int64_t h0 = hs < 0 ? 0 : hs, h1 = hs + %lld < %lld ? hs + %lld : %lld;", (long long)g->kh,
               (long long)g->h, (long long)g->kh, (long long)g->h);
    cemit_line(c, "const int64_t w0 = ws < 0 ? 0 : ws, w1 = ws + %lld < %lld ? ws + %lld : %lld;", (long long)g->kw,
               (long long)g->w, (long long)g->kw, (long long)g->w);
}

/* The max scan of window (oy, ox) of plane xp into mx and, when `arg`, the
 * winner's index in the plane into am. */
static void emit_max_scan(CEmitter *c, const PoolGeom *g, const char *T, bool quantized, bool arg) {
    emit_window(c, g);
    long long W = g->w;
    if (quantized) cemit_line(c, "%s mx = xp[h0 * %lld + w0];", T, W);
    else cemit_line(c, "%s mx = -INFINITY;", T);
    if (arg) cemit_line(c, "int64_t am = h0 * %lld + w0;", W);
    cemit_line(c, "for (int64_t iy = h0; iy < h1; iy++)");
    cemit_line(c, "    for (int64_t ix = w0; ix < w1; ix++) {");
    c->indent += 2;
    cemit_line(c, "const %s v = xp[iy * %lld + ix];", T, W);
    if (quantized) cemit_line(c, "mx = v > mx ? v : mx;");
    else {
        cemit_line(c, "const int win = (v > mx) | (v != v);");
        cemit_line(c, "mx = win ? v : mx;");
        if (arg) cemit_line(c, "am = win ? iy * %lld + ix : am;", W);
    }
    c->indent -= 2;
    cemit_line(c, "    }");
}

/* Opens the loops over the windows (oy, ox) that hold element (iy0, ix0) of
 * the image: oy in [ceil((iy0 + ph - kh + 1) / sh), (iy0 + ph) / sh] within
 * [0, oh), likewise ox; two braces for the caller's cemit_close. */
static void emit_windows_holding(CEmitter *c, const PoolGeom *g) {
    const struct {
        const char *o, *i;
        long long p, k, s, n;
    } d[2] = {{"oy", "iy0", g->ph, g->kh, g->sh, g->oh}, {"ox", "ix0", g->pw, g->kw, g->sw, g->ow}};
    for (int a = 0; a < 2; a++) {
        long long first = d[a].p - d[a].k + 1, ceil = d[a].p - d[a].k + d[a].s; /* added to the index */
        cemit_line(c, "const int64_t %s_lo = %s %c %lld <= 0 ? 0 : (%s %c %lld) / %lld;", d[a].o, d[a].i,
                   first < 0 ? '-' : '+', llabs(first), d[a].i, ceil < 0 ? '-' : '+', llabs(ceil), d[a].s);
        cemit_line(c, "const int64_t %s_hi = (%s + %lld) / %lld < %lld ? (%s + %lld) / %lld : %lld;", d[a].o, d[a].i,
                   d[a].p, d[a].s, d[a].n - 1, d[a].i, d[a].p, d[a].s, d[a].n - 1);
    }
    cemit_line(c, "for (int64_t oy = oy_lo; oy <= oy_hi; oy++)");
    cemit_line(c, "    for (int64_t ox = ox_lo; ox <= ox_hi; ox++) {");
    c->indent += 2;
}

static void emit_pool_any(CudaEmitter *e, const Graph *gr, int id) {
    const Node *n = &gr->nodes[id];
    PoolGeom g;
    pool_geom(gr, n, &g);
    CEmitter *c = &e->c;
    const char *T = dtype_c_type(n->dtype), *y = c->buf[id];
    long long H = g.h, W = g.w, OH = g.oh, OW = g.ow, area = g.kh * g.kw;
    bool backward = n->op == OP_MAX_POOL2D_BWD || n->op == OP_AVG_POOL2D_BWD;
    char what[256];
    cuda_describe(gr, id, what, sizeof what);
    cuda_elementwise_begin(e, shape_numel(&n->shape), what);
    if (!backward) {
        cemit_line(c, "const int64_t pl = i / %lld, oy = i / %lld %% %lld, ox = i %% %lld;", OH * OW, OW, OH, OW);
        cemit_line(c, "const %s *xp = %s + pl * %lld;", T, c->buf[n->in[0]], H * W);
        if (n->op == OP_MAX_POOL2D) {
            emit_max_scan(c, &g, T, dtype_is_quantized(n->dtype), false);
            cemit_line(c, "%s[i] = mx;", y);
        } else {
            emit_window(c, &g);
            cemit_line(c, "double s = 0;");
            cemit_line(c, "for (int64_t iy = h0; iy < h1; iy++)");
            cemit_line(c, "    for (int64_t ix = w0; ix < w1; ix++) s += (double)xp[iy * %lld + ix];", W);
            cemit_line(c, "%s[i] = (%s)(s / %lld.0);", y, T, area);
        }
        cuda_elementwise_end(e);
        return;
    }
    const char *gy = c->buf[n->in[n->op == OP_MAX_POOL2D_BWD ? 1 : 0]];
    cemit_line(c, "const int64_t pl = i / %lld, iy0 = i / %lld %% %lld, ix0 = i %% %lld;", H * W, W, H, W);
    cemit_line(c, "const %s *gp = %s + pl * %lld;", T, gy, OH * OW);
    if (n->op == OP_MAX_POOL2D_BWD) cemit_line(c, "const %s *xp = %s + pl * %lld;", T, c->buf[n->in[0]], H * W);
    cemit_line(c, "%s acc = 0;", T);
    emit_windows_holding(c, &g);
    if (n->op == OP_MAX_POOL2D_BWD) {
        emit_max_scan(c, &g, T, false, true);
        cemit_line(c, "(void)mx;");
        cemit_line(c, "if (am == iy0 * %lld + ix0) acc += gp[oy * %lld + ox];", W, OW);
    } else {
        cemit_line(c, "acc += (%s)((double)gp[oy * %lld + ox] / %lld.0);", T, OW, area);
    }
    c->indent -= 2;
    cemit_line(c, "    }");
    cemit_line(c, "%s[i] = acc;", y);
    cuda_elementwise_end(e);
}

void cuda_emit_pool2d(CudaEmitter *e, const Graph *g, int id) { emit_pool_any(e, g, id); }

void cuda_emit_pool2d_bwd(CudaEmitter *e, const Graph *g, int id) { emit_pool_any(e, g, id); }
