/* conv.c (CUDA backend): conv2d and its two gradient kernels as implicit
 * GEMMs. Per group grp, each op is a product C[M, N] = A[M, K] @ B[K, N]
 * whose operands are read straight from the tensors, never materialized
 * (no im2col buffer, no col2im scatter):
 *
 *   conv2d                  C[o, (n, oy, ox)]  = W[o, (c, ki, kj)] @ im2col(x)[(c, ki, kj), (n, oy, ox)]
 *   conv2d_backward_input   C[c, (n, iy, ix)]  = W^T[c, (o, ki, kj)] @ G[(o, ki, kj), (n, iy, ix)]
 *   conv2d_backward_weight  C[o, (c, ki, kj)]  = gy[o, (n, oy, ox)] @ im2col(x)^T[(n, oy, ox), (c, ki, kj)]
 *
 * where G is gy gathered at the output pixel each tap of an input pixel
 * comes from: oy = (iy + ph - ki*dh) / sh when that divides and lies in
 * [0, oh), else 0. Backward input is thus a gather (a transposed
 * convolution written as a correlation) and backward weight a reduction
 * over the batch and the pixels inside the product: every thread owns its
 * outputs and sums their terms in k order, so both are deterministic and
 * need no atomics (the C backend's col2im scatter-adds instead).
 *
 * Three renderings of the same operand expressions (emit_conv_any picks):
 *  - direct, when K <= CONV_CUDA_DIRECT_MAX_K (LeNet's first layer, 1x5x5,
 *    depthwise 3x3, a weight gradient over few pixels): one thread per
 *    output element sums its K terms, reading the weights (the same for
 *    neighbouring threads: broadcast) and the image straight from global
 *    memory. With so few terms a tile would load as much as it computes,
 *    and output channels are often fewer than a tile's rows;
 *  - tiled (the implicit GEMM proper): a block of 256 threads computes a
 *    BM x BN tile of C, each thread U x U of it (rows ty + i*BM/U, columns
 *    tx + j*BN/U), looping over K in steps of BK: load the A and B tiles
 *    into shared memory (the implicit unfolding happens in the loads, zeros
 *    outside the image and past the edges), barrier, U*U FMAs per k from
 *    shared memory, barrier. U is 4 (64 x 64 tiles and the like) when that
 *    makes enough blocks to fill the GPU, else 2 (four times the blocks).
 *    The tile's shape (square down to 16 x 256 or 256 x 16 for U = 4) is
 *    the one that pads M and N least, so the 6 or 16 output channels of a
 *    small network do not waste three quarters of a 64-row tile. Loads walk
 *    whichever index is contiguous in memory (k for the weights and for the
 *    weight gradient's operands, the pixel otherwise); the shared rows are
 *    padded by one element so those stores do not collide in one bank;
 *  - reduced, for a long K over too few outputs to tile (a weight gradient
 *    over a big batch, a deep layer at batch 1): a block per R x R outputs
 *    whose threads split K, then add their partial sums up a fixed tree.
 * Every rendering sums in a fixed order: the results do not change from
 * run to run. */
#include <stdio.h>
#include <string.h>

#include "codegen/cuda/cuda_emit.h"

enum { CONV_CUDA_DIRECT_MAX_K = 32, CONV_TILE_K = 16, CONV_THREADS = 256 };

/* One op as a grouped product; the tensors' device addresses. */
typedef struct ConvGemm {
    OpKind op;
    ConvGeom g;
    long long G, M, N, K;
    const char *T, *in0, *in1, *out;
} ConvGemm;

static void conv_gemm_of(const CudaEmitter *e, const Graph *gr, int id, ConvGemm *q) {
    const Node *n = &gr->nodes[id];
    ConvGeom *g = &q->g;
    conv_geom(gr, n, g);
    q->op = n->op;
    q->G = g->groups;
    q->T = dtype_c_type(n->dtype);
    q->in0 = e->c.buf[n->in[0]];
    q->in1 = e->c.buf[n->in[1]];
    q->out = e->c.buf[id];
    if (n->op == OP_CONV2D) q->M = g->og, q->N = g->n * g->ohw, q->K = g->ckk;
    else if (n->op == OP_CONV2D_BWD_INPUT) q->M = g->cg, q->N = g->n * g->h * g->w, q->K = g->og * g->kh * g->kw;
    else q->M = g->og, q->N = g->ckk, q->K = g->n * g->ohw;
}

/* "v / inner % extent" simplified: "0" for an extent of 1, no modulo for
 * the outermost index (extent 0), no division by 1. */
static const char *digit(char *buf, size_t cap, const char *v, long long inner, long long extent) {
    if (extent == 1) snprintf(buf, cap, "0");
    else if (inner == 1 && extent == 0) snprintf(buf, cap, "%s", v);
    else if (inner == 1) snprintf(buf, cap, "%s %% %lld", v, extent);
    else if (extent == 0) snprintf(buf, cap, "%s / %lld", v, inner);
    else snprintf(buf, cap, "%s / %lld %% %lld", v, inner, extent);
    return buf;
}

/* `if (inside) dst = x[n, grp*cg + ci, oy*sh - ph + ki*dh, ox*sw - pw + kj*dw];`
 * with the indices declared from the tap index t (ci, ki, kj) and the
 * output pixel index p (n, oy, ox); a side without padding needs no test. */
static void emit_image_tap(CEmitter *c, const ConvGemm *q, const char *dst, const char *t, const char *p) {
    const ConvGeom *g = &q->g;
    char a[64], b[64], d[64];
    cemit_line(c, "const int64_t ci = %s, ki = %s, kj = %s;", digit(a, sizeof a, t, g->kh * g->kw, 0),
               digit(b, sizeof b, t, g->kw, g->kh), digit(d, sizeof d, t, 1, g->kw));
    cemit_line(c, "const int64_t bi = %s, oy = %s, ox = %s;", digit(a, sizeof a, p, g->ohw, 0),
               digit(b, sizeof b, p, g->ow, g->oh), digit(d, sizeof d, p, 1, g->ow));
    cemit_line(c, "const int64_t iy = oy * %lld - %lld + ki * %lld, ix = ox * %lld - %lld + kj * %lld;",
               (long long)g->sh, (long long)g->ph, (long long)g->dh, (long long)g->sw, (long long)g->pw,
               (long long)g->dw);
    char in[128] = "";
    if (g->ph) snprintf(in, sizeof in, "iy >= 0 && iy < %lld", (long long)g->h);
    if (g->pw)
        snprintf(in + strlen(in), sizeof in - strlen(in), "%six >= 0 && ix < %lld", in[0] ? " && " : "",
                 (long long)g->w);
    cemit_line(c, "%s%s%s%s = %s[((bi * %lld + grp * %lld + ci) * %lld + iy) * %lld + ix];", in[0] ? "if (" : "", in,
               in[0] ? ") " : "", dst, q->in0, (long long)g->c, (long long)g->cg, (long long)g->h, (long long)g->w);
}

/* `dst = A(row, k);` in a block of its own */
static void emit_a(CEmitter *c, const ConvGemm *q, const char *dst, const char *row, const char *k) {
    const ConvGeom *g = &q->g;
    char a[64], b[64];
    long long khw = g->kh * g->kw;
    cemit_line(c, "{");
    c->indent++;
    if (q->op == OP_CONV2D) /* the weight [o, (c, ki, kj)] */
        cemit_line(c, "%s = %s[(grp * %lld + %s) * %lld + %s];", dst, q->in1, (long long)g->og, row, (long long)g->ckk, k);
    else if (q->op == OP_CONV2D_BWD_INPUT) /* the weight read as [c, (o, ki, kj)] */
        cemit_line(c, "%s = %s[((grp * %lld + %s) * %lld + %s) * %lld + %s];", dst, q->in1, (long long)g->og,
                   digit(a, sizeof a, k, khw, 0), (long long)g->cg, row, khw, digit(b, sizeof b, k, 1, khw));
    else /* gy [o, (n, oy, ox)] */
        cemit_line(c, "%s = %s[(%s * %lld + grp * %lld + %s) * %lld + %s];", dst, q->in1,
                   digit(a, sizeof a, k, g->ohw, 0), (long long)g->o, (long long)g->og, row, (long long)g->ohw,
                   digit(b, sizeof b, k, 1, g->ohw));
    c->indent--;
    cemit_line(c, "}");
}

/* `dst = B(k, col);` in a block of its own; dst is left alone where B is 0 */
static void emit_b(CEmitter *c, const ConvGemm *q, const char *dst, const char *k, const char *col) {
    const ConvGeom *g = &q->g;
    cemit_line(c, "{");
    c->indent++;
    if (q->op == OP_CONV2D) emit_image_tap(c, q, dst, k, col);
    else if (q->op == OP_CONV2D_BWD_WEIGHT) emit_image_tap(c, q, dst, col, k);
    else { /* gy at the output pixel tap (o, ki, kj) of input pixel (n, iy, ix) comes from */
        char a[64], b[64], d[64];
        cemit_line(c, "const int64_t oc = %s, ki = %s, kj = %s;", digit(a, sizeof a, k, g->kh * g->kw, 0),
                   digit(b, sizeof b, k, g->kw, g->kh), digit(d, sizeof d, k, 1, g->kw));
        cemit_line(c, "const int64_t bi = %s, iy = %s, ix = %s;", digit(a, sizeof a, col, g->h * g->w, 0),
                   digit(b, sizeof b, col, g->w, g->h), digit(d, sizeof d, col, 1, g->w));
        cemit_line(c, "const int64_t ty = iy + %lld - ki * %lld, tx = ix + %lld - kj * %lld;", (long long)g->ph,
                   (long long)g->dh, (long long)g->pw, (long long)g->dw);
        char in[256];
        int len = snprintf(in, sizeof in, "ty >= 0 && tx >= 0");
        if (g->sh > 1) len += snprintf(in + len, sizeof in - (size_t)len, " && ty %% %lld == 0", (long long)g->sh);
        if (g->sw > 1) len += snprintf(in + len, sizeof in - (size_t)len, " && tx %% %lld == 0", (long long)g->sw);
        snprintf(in + len, sizeof in - (size_t)len, " && ty / %lld < %lld && tx / %lld < %lld", (long long)g->sh,
                 (long long)g->oh, (long long)g->sw, (long long)g->ow);
        cemit_line(c, "if (%s)", in);
        cemit_line(c, "    %s = %s[((bi * %lld + grp * %lld + oc) * %lld + ty / %lld) * %lld + tx / %lld];", dst, q->in0,
                   (long long)g->o, (long long)g->og, (long long)g->oh, (long long)g->sh, (long long)g->ow,
                   (long long)g->sw);
    }
    c->indent--;
    cemit_line(c, "}");
}

/* `out[C(row, col)] = value;` */
static void emit_store(CEmitter *c, const ConvGemm *q, const char *row, const char *col, const char *value) {
    const ConvGeom *g = &q->g;
    long long O = g->o, og = g->og, C = g->c, cg = g->cg, P = g->ohw, HW = g->h * g->w;
    if (q->op == OP_CONV2D)
        cemit_line(c, "%s[(%s / %lld * %lld + grp * %lld + %s) * %lld + %s %% %lld] = %s;", q->out, col, P, O, og, row,
                   P, col, P, value);
    else if (q->op == OP_CONV2D_BWD_INPUT)
        cemit_line(c, "%s[(%s / %lld * %lld + grp * %lld + %s) * %lld + %s %% %lld] = %s;", q->out, col, HW, C, cg, row,
                   HW, col, HW, value);
    else cemit_line(c, "%s[(grp * %lld + %s) * %lld + %s] = %s;", q->out, og, row, (long long)g->ckk, col, value);
}

/* One thread per element of C (grp, row, col), its K terms in order. */
static void emit_direct(CudaEmitter *e, const ConvGemm *q, const char *what) {
    CEmitter *c = &e->c;
    cuda_elementwise_begin(e, q->G * q->M * q->N, what);
    char a[64], b[64], d[64];
    cemit_line(c, "const int64_t grp = %s, row = %s, col = %s;", digit(a, sizeof a, "i", q->M * q->N, 0),
               digit(b, sizeof b, "i", q->N, q->M), digit(d, sizeof d, "i", 1, q->N));
    cemit_line(c, "%s s = 0;", q->T);
    cemit_line(c, "for (int64_t k = 0; k < %lld; k++) {", q->K);
    c->indent++;
    cemit_line(c, "%s av = 0, bv = 0;", q->T);
    emit_a(c, q, "av", "row", "k");
    emit_b(c, q, "bv", "k", "col");
    cemit_line(c, "s += av * bv;");
    cemit_close(c);
    emit_store(c, q, "row", "col", "s");
    cuda_elementwise_end(e);
}

/* A tiled rendering: BM x BN outputs per block, U x U per thread. */
typedef struct ConvTile {
    long long bm, bn, u, blocks;
} ConvTile;

/* The tile of U x U outputs per thread (rows x columns = 256 U^2) whose
 * tiles pad M and N least; ties go to the squarer. */
static ConvTile pick_tile(const ConvGemm *q, long long u) {
    static const long long rows[] = {16, 8, 32, 4, 64}; /* threads per column: squarest first */
    ConvTile best = {0};
    long long best_area = -1;
    for (int t = 0; t < 5; t++) {
        long long r = rows[t] * u, cols = CONV_THREADS * u * u / r;
        long long tm = (q->M + r - 1) / r, tn = (q->N + cols - 1) / cols, area = tm * r * tn * cols;
        if (best_area < 0 || area < best_area) best_area = area, best = (ConvTile){r, cols, u, q->G * tm * tn};
    }
    return best;
}

/* Loads one operand's tile [BK, width] (shared row stride width + 1):
 * element e of the walk is (kk, x) with kk fastest when k_fastest. */
static void emit_tile_load(CEmitter *c, const ConvGemm *q, bool is_a, long long width, bool k_fastest) {
    const long long BK = CONV_TILE_K;
    const char *x = is_a ? "row" : "col";
    cemit_line(c, "for (int e = ETCH_TID; e < %lld; e += %d) {", BK * width, CONV_THREADS);
    c->indent++;
    if (k_fastest) cemit_line(c, "const int kk = e %% %lld, xx = e / %lld;", BK, BK);
    else cemit_line(c, "const int kk = e / %lld, xx = e %% %lld;", width, width);
    cemit_line(c, "const int64_t k = k0 + kk, %s = %s0 + xx;", x, is_a ? "m" : "n");
    cemit_line(c, "%s v = 0;", q->T);
    cemit_line(c, "if (k < %lld && %s < %lld)", q->K, x, is_a ? q->M : q->N);
    c->indent++;
    if (is_a) emit_a(c, q, "v", "row", "k");
    else emit_b(c, q, "v", "k", "col");
    c->indent--;
    cemit_line(c, "%s[kk * %lld + xx] = v;", is_a ? "As" : "Bs", width + 1);
    cemit_close(c);
}

static void emit_tiled(CudaEmitter *e, const ConvGemm *q, const ConvTile *tile, const char *what) {
    CEmitter *c = &e->c;
    long long BM = tile->bm, BN = tile->bn, BK = CONV_TILE_K, U = tile->u;
    long long tm = (q->M + BM - 1) / BM, tn = (q->N + BN - 1) / BN, RS = BM / U, CS = BN / U;
    cuda_kernel_begin(e, q->G * tm * tn, CONV_THREADS, what);
    cemit_line(c, "ETCH_SHARED(%s, As, %lld);", q->T, BK * (BM + 1));
    cemit_line(c, "ETCH_SHARED(%s, Bs, %lld);", q->T, BK * (BN + 1));
    for (int t = 0; t < U * U; t++) cemit_line(c, "ETCH_THREAD_VAR(%s, acc%d);", q->T, t);
    cemit_line(c, "const int64_t grp = ETCH_BLOCK / %lld, tile = ETCH_BLOCK %% %lld;", tm * tn, tm * tn);
    cemit_line(c, "const int64_t m0 = tile / %lld * %lld, n0 = tile %% %lld * %lld;", tn, BM, tn, BN);
    cemit_line(c, "ETCH_THREADS");
    for (int t = 0; t < U * U; t++) cemit_line(c, "    ETCH_TV(acc%d) = 0;", t);
    cemit_line(c, "ETCH_THREADS_END");
    cemit_line(c, "for (int64_t k0 = 0; k0 < %lld; k0 += %lld) {", q->K, BK);
    c->indent++;
    cemit_line(c, "ETCH_THREADS");
    c->indent++;
    emit_tile_load(c, q, true, BM, true);
    emit_tile_load(c, q, false, BN, q->op == OP_CONV2D_BWD_WEIGHT);
    c->indent--;
    cemit_line(c, "ETCH_SYNC");
    c->indent++;
    cemit_line(c, "const int ty = ETCH_TID / %lld, tx = ETCH_TID %% %lld;", CS, CS);
    for (int t = 0; t < U * U; t++) cemit_line(c, "%s s%d = ETCH_TV(acc%d);", q->T, t, t);
    cemit_line(c, "for (int kk = 0; kk < %lld; kk++) {", BK);
    c->indent++;
    for (int i = 0; i < U; i++) cemit_line(c, "const %s a%d = As[kk * %lld + ty + %lld];", q->T, i, BM + 1, i * RS);
    for (int j = 0; j < U; j++) cemit_line(c, "const %s b%d = Bs[kk * %lld + tx + %lld];", q->T, j, BN + 1, j * CS);
    for (int i = 0; i < U; i++) {
        char line[256];
        int len = 0;
        for (int j = 0; j < U; j++)
            len += snprintf(line + len, sizeof line - (size_t)len, "%ss%lld += a%d * b%d;", j ? " " : "", i * U + j, i, j);
        cemit_line(c, "%s", line);
    }
    cemit_close(c);
    for (int t = 0; t < U * U; t++) cemit_line(c, "ETCH_TV(acc%d) = s%d;", t, t);
    c->indent--;
    cemit_line(c, "ETCH_THREADS_END");
    cemit_close(c);
    cemit_line(c, "ETCH_THREADS");
    c->indent++;
    cemit_line(c, "const int ty = ETCH_TID / %lld, tx = ETCH_TID %% %lld;", CS, CS);
    for (int i = 0; i < U; i++)
        for (int j = 0; j < U; j++) {
            char acc[48];
            snprintf(acc, sizeof acc, "ETCH_TV(acc%lld)", i * U + j);
            cemit_line(c, "if (m0 + ty + %lld < %lld && n0 + tx + %lld < %lld) {", i * RS, q->M, j * CS, q->N);
            c->indent++;
            cemit_line(c, "const int64_t row = m0 + ty + %lld, col = n0 + tx + %lld;", i * RS, j * CS);
            emit_store(c, q, "row", "col", acc);
            cemit_close(c);
        }
    c->indent--;
    cemit_line(c, "ETCH_THREADS_END");
    cuda_kernel_end(e);
}

/* A block per R x R piece of C (R = 4, 2 or 1) whose 256 threads split K:
 * thread t sums the terms k = t, t + 256, ... of all R*R outputs (2R loads
 * for R*R FMAs), then the block adds the 256 partial sums up a fixed tree in
 * shared memory. For a long K over few outputs (a weight gradient over a
 * big batch, a deep layer at batch 1), where the tiled form would leave
 * most of the GPU idle. */
static void emit_reduced(CudaEmitter *e, const ConvGemm *q, long long R, const char *what) {
    CEmitter *c = &e->c;
    const long long NT = CONV_THREADS, tr = (q->M + R - 1) / R, tc = (q->N + R - 1) / R;
    cuda_kernel_begin(e, q->G * tr * tc, CONV_THREADS, what);
    cemit_line(c, "ETCH_SHARED(%s, part, %lld);", q->T, R * R * NT);
    cemit_line(c, "const int64_t grp = ETCH_BLOCK / %lld, tile = ETCH_BLOCK %% %lld;", tr * tc, tr * tc);
    cemit_line(c, "const int64_t r0 = tile / %lld * %lld, c0 = tile %% %lld * %lld;", tc, R, tc, R);
    cemit_line(c, "ETCH_THREADS");
    c->indent++;
    cemit_line(c, "%s s[%lld] = {0}, av[%lld], bv[%lld];", q->T, R * R, R, R);
    cemit_line(c, "for (int64_t k = ETCH_TID; k < %lld; k += %lld) {", q->K, NT);
    c->indent++;
    cemit_line(c, "for (int64_t r = 0; r < %lld; r++) {", R);
    cemit_line(c, "    const int64_t row = r0 + r, col = c0 + r;");
    cemit_line(c, "    av[r] = 0, bv[r] = 0;");
    c->indent++;
    cemit_line(c, "if (row < %lld)", q->M);
    emit_a(c, q, "av[r]", "row", "k");
    cemit_line(c, "if (col < %lld)", q->N);
    emit_b(c, q, "bv[r]", "k", "col");
    cemit_close(c);
    cemit_line(c, "for (int r = 0; r < %lld; r++)", R * R);
    cemit_line(c, "    s[r] += av[r / %lld] * bv[r %% %lld];", R, R);
    cemit_close(c);
    cemit_line(c, "for (int r = 0; r < %lld; r++) part[r * %lld + ETCH_TID] = s[r];", R * R, NT);
    c->indent--;
    cemit_line(c, "ETCH_THREADS_END");
    cemit_line(c, "for (int half = %lld; half > 0; half /= 2) {", NT / 2);
    cemit_line(c, "    ETCH_THREADS");
    cemit_line(c, "        if (ETCH_TID < half)");
    cemit_line(c, "            for (int r = 0; r < %lld; r++) part[r * %lld + ETCH_TID] += part[r * %lld + ETCH_TID + half];",
               R * R, NT, NT);
    cemit_line(c, "    ETCH_THREADS_END");
    cemit_line(c, "}");
    cemit_line(c, "ETCH_THREADS");
    c->indent++;
    cemit_line(c, "const int64_t row = r0 + ETCH_TID / %lld, col = c0 + ETCH_TID %% %lld;", R, R);
    cemit_line(c, "if (ETCH_TID < %lld && row < %lld && col < %lld)", R * R, q->M, q->N);
    c->indent++;
    char v[64];
    snprintf(v, sizeof v, "part[ETCH_TID * %lld]", NT);
    emit_store(c, q, "row", "col", v);
    c->indent -= 2;
    cemit_line(c, "ETCH_THREADS_END");
    cuda_kernel_end(e);
}

/* Which rendering: direct for a short K; tiled with 4 x 4 outputs per
 * thread while those tiles keep the GPU busy (CONV_BUSY_BLOCKS blocks);
 * else, for a long K, reduced, with the biggest piece that still makes that
 * many blocks; else tiled with 2 x 2 outputs per thread (four times the
 * blocks: LeNet's input gradients, 6 channels by 64 x 14 x 14 pixels). */
enum { CONV_BUSY_BLOCKS = 256, CONV_SPLIT_MIN_K = 2048 };

static void emit_conv_any(CudaEmitter *e, const Graph *g, int id) {
    ConvGemm q;
    conv_gemm_of(e, g, id, &q);
    char what[256];
    cuda_describe(g, id, what, sizeof what);
    ConvTile big = pick_tile(&q, 4), small = pick_tile(&q, 2);
    if (q.K <= CONV_CUDA_DIRECT_MAX_K) emit_direct(e, &q, what);
    else if (big.blocks >= CONV_BUSY_BLOCKS) emit_tiled(e, &q, &big, what);
    else if (q.K < CONV_SPLIT_MIN_K) emit_tiled(e, &q, &small, what);
    else {
        long long R = 4;
        while (R > 1 && q.G * ((q.M + R - 1) / R) * ((q.N + R - 1) / R) < CONV_BUSY_BLOCKS) R /= 2;
        emit_reduced(e, &q, R, what);
    }
}

void cuda_emit_conv2d(CudaEmitter *e, const Graph *g, int id) { emit_conv_any(e, g, id); }

void cuda_emit_conv2d_bwd_input(CudaEmitter *e, const Graph *g, int id) { emit_conv_any(e, g, id); }

void cuda_emit_conv2d_bwd_weight(CudaEmitter *e, const Graph *g, int id) { emit_conv_any(e, g, id); }
