/* qgemm.c (CUDA backend): the int8 ops qmatmul and qconv2d as one tiled
 * integer GEMM with the requantize epilogue (docs/quantization.md; the
 * semantics are ir/ops/quant.c's eval_qmatmul and eval_qconv2d):
 *
 *   qmatmul   C[m, j]            = x[m, k]        . w[j, k]      (channel j: the column)
 *   qconv2d   C[o, (n, oy, ox)]  = w[o, (c,ki,kj)] . im2col(x)    (channel o: the row)
 *
 * qconv2d is an implicit GEMM: the unfolded input is never stored, its
 * bytes are gathered from the image while the tile is loaded; a tap in the
 * padding reads the input zero point, so (zx - zx) * w adds nothing, as the
 * reference skips it. Rows of C by pixels make the NCHW stores coalesced.
 *
 * Arithmetic (bit for bit the reference's): the sums run on __dp4a (four
 * signed byte products added into an int32, modulo 2^32; ETCH_DP4A in
 * runtime/cuda/etch_cuda.h, four multiply-adds on the CPU). x is made
 * signed: an i8 byte as it is, a u8 byte flipped (x ^ 0x80 = x - 128), so
 * x - zx = xs - zs with zs = zx (i8) or zx - 128 (u8), and
 *     acc = bias[ch] + sum_k xs w - zs * sum_k w      (modulo 2^32)
 * is eval_qmatmul's int32 whatever the order of the terms. sum_k w comes
 * from the same tiles (dp4a of 0x01010101 and four weights: 4 more dp4a
 * per 16), skipped when zs is 0 (u8 at zero point 128, i8 at 0). Past K
 * both operands load 0 bytes; an image's padding loads the byte zs. The epilogue is the C backend's helpers (quant_emit_helpers,
 * ir/quant.c's steps, device functions here): etch_q_requantize with the
 * channel's q31 multiplier and shift, the output zero point and the clamp,
 * or etch_q_scale_acc to f32.
 *
 * The tiles. A block of 256 threads computes a BM x BN tile of C, each
 * thread 4 x 4 outputs (rows ty + BM/4 u, columns tx + BN/4 v) in 16 int32
 * registers; the K loop takes 32 bytes (8 words of four k) per step: the
 * block loads both operands' words into shared memory (k-word-major, rows
 * padded by one word against bank conflicts where a warp stores across
 * them), barrier, then per word each thread reads 4 + 4 words and does 16
 * dp4a (64 multiply-adds), barrier. Why: as the float GEMM (ops/matmul.c)
 * 4 x 4 per thread is few registers (40-64 in ptxas for sm_80, no spills:
 * LeNet's and the MLP's kernels), 8 shared reads feed 64 products, and
 * shared memory stays under 9 KB a block; 32 bytes of k halve the barriers
 * of a 16-byte step and are most of a short K (25 to 150 taps of a conv).
 * The tile's shape is 64 x 64, 32 x 128, 128 x 32, 16 x 256
 * or 256 x 16, whichever pads M and N least (ties to the squarer): etch's
 * int8 models are small (a batch of 1-64 against 10-1024 channels; a conv
 * layer's 6-16 channels against thousands of pixels), so a square tile
 * would mostly compute padding. Loads walk the operand's contiguous index
 * (k for x and the weights, eight threads per 32-byte row; the pixel for
 * the unfolded image) and assemble each word from byte loads, which needs
 * no alignment (a tensor's row of K bytes may start anywhere). */
#include <stdio.h>

#include "codegen/c/ops/c_ops.h"
#include "codegen/cuda/cuda_emit.h"

enum {
    QG_THREADS = 256,
    QG_TM = 4,  /* rows per thread */
    QG_TN = 4,  /* columns per thread */
    QG_KW = 8,  /* words of four k per step */
    QG_BK = 4 * QG_KW,
};
_Static_assert(QG_THREADS * QG_TM * QG_TN == 64 * 64, "a tile of 4096 outputs");

/* One op as the product C[M, N] = A[M, K] . B[K, N], both operands bytes. */
typedef struct QGemm {
    const Graph *gr;
    int id;
    const Node *n;
    long long M, N, K;
    int zs;          /* x's zero point on the signed bytes (zx, or zx - 128 for u8) */
    bool u8;         /* x is u8: its bytes are flipped */
    bool conv;       /* qconv2d: A the weights, B the unfolded image; else A x, B the weights */
    ConvGeom g;      /* qconv2d's geometry */
    const char *x, *w, *bias, *mult, *shift, *y, *Y;
} QGemm;

typedef struct QTile {
    int bm, bn;
} QTile;

/* The tile shape that pads M and N least; ties to the squarer. */
static QTile pick_tile(long long M, long long N) {
    static const QTile shapes[] = {{64, 64}, {32, 128}, {128, 32}, {16, 256}, {256, 16}};
    QTile best = shapes[0];
    long long best_area = -1;
    for (int i = 0; i < 5; i++) {
        const QTile t = shapes[i];
        long long area = (M + t.bm - 1) / t.bm * t.bm * ((N + t.bn - 1) / t.bn * t.bn);
        if (best_area < 0 || area < best_area) best = t, best_area = area;
    }
    return best;
}

/* The signed byte of x at a C expression (a uint32_t in [0, 255]). */
static void x_byte(char *buf, size_t cap, const QGemm *q, const char *at) {
    snprintf(buf, cap, "(uint32_t)(uint8_t)(%s[%s]%s)", q->x, at, q->u8 ? " ^ 0x80" : "");
}

/* The statements that set `uint32_t byte` to operand element (x, k) of a
 * tile (x its row of A or column of B, k the absolute k), 0 past the edges.
 * `rows` is the operand's extent along x and `base` its tile's first x. */
static void emit_byte(CEmitter *c, const QGemm *q, bool operand_b, long long rows, int ext, const char *base) {
    char guard[160] = "", v[160];
    size_t len = 0;
    if (rows % ext) len += (size_t)snprintf(guard, sizeof guard, "%s + x < %lld", base, rows);
    if (q->K % QG_BK) snprintf(guard + len, sizeof guard - len, "%sk < %lld", len ? " && " : "", q->K);
    if (q->conv && operand_b) { /* the unfolded image: tap k of output pixel p (declared per word) */
        const ConvGeom *g = &q->g;
        long long khw = g->kh * g->kw;
        if (guard[0]) cemit_line(c, "if (%s) {", guard);
        else cemit_line(c, "{");
        c->indent++;
        cemit_line(c, "const int64_t ci = k / %lld, ki = k / %lld %% %lld, kj = k %% %lld;", khw, (long long)g->kw,
                   (long long)g->kh, (long long)g->kw);
        cemit_line(c, "const int64_t iy = oy * %lld - %lld + ki * %lld, ix = ox * %lld - %lld + kj * %lld;",
                   (long long)g->sh, (long long)g->ph, (long long)g->dh, (long long)g->sw, (long long)g->pw,
                   (long long)g->dw);
        char at[96];
        snprintf(at, sizeof at, "((bi * %lld + ci) * %lld + iy) * %lld + ix", (long long)g->c, (long long)g->h,
                 (long long)g->w);
        x_byte(v, sizeof v, q, at);
        if (g->ph || g->pw) /* the padding reads zs: (zs - zs) * w adds nothing */
            cemit_line(c, "byte = iy >= 0 && iy < %lld && ix >= 0 && ix < %lld ? %s : %uu;", (long long)g->h,
                       (long long)g->w, v, (unsigned)(uint8_t)q->zs);
        else cemit_line(c, "byte = %s;", v);
        c->indent--;
        cemit_line(c, "}");
        return;
    }
    const bool is_x = operand_b == q->conv; /* qmatmul's A, never qconv2d's */
    char at[96];
    snprintf(at, sizeof at, "(%s + x) * %lld + k", base, q->K);
    if (is_x) x_byte(v, sizeof v, q, at);
    else snprintf(v, sizeof v, "(uint32_t)(uint8_t)%s[%s]", q->w, at);
    if (guard[0]) cemit_line(c, "if (%s) byte = %s;", guard, v);
    else cemit_line(c, "byte = %s;", v);
}

/* The loads of one operand's tile into shared `tile` (row length ld) for the
 * step at k0: word (kw, x) = four bytes of k = k0 + 4 kw .. k0 + 4 kw + 3. */
static void emit_tile_load(CEmitter *c, const QGemm *q, bool operand_b, const char *tile, int ld, int ext,
                           const char *base) {
    const int words = ext * QG_KW, per_thread = (words + QG_THREADS - 1) / QG_THREADS;
    const bool along_k = !(q->conv && operand_b); /* the unfolded image walks pixels */
    const long long rows = operand_b ? q->N : q->M;
    /* unrolled when short: the unfolded image's eight words a thread would take ~130 registers */
    cemit_line(c, "%sfor (int q = 0; q < %d; q++) {", per_thread <= 2 ? "ETCH_UNROLL " : "", per_thread);
    c->indent++;
    cemit_line(c, "const int el = ETCH_TID + q * %d;", QG_THREADS);
    if (words % QG_THREADS) cemit_line(c, "if (el < %d) {", words), c->indent++;
    else cemit_line(c, "{"), c->indent++;
    if (along_k) cemit_line(c, "const int kw = el %% %d, x = el / %d;", QG_KW, QG_KW);
    else cemit_line(c, "const int x = el %% %d, kw = el / %d;", ext, ext);
    if (q->conv && operand_b) {
        const ConvGeom *g = &q->g;
        cemit_line(c, "const int64_t p = %s + x, bi = p / %lld, oy = p / %lld %% %lld, ox = p %% %lld;", base,
                   (long long)g->ohw, (long long)g->ow, (long long)g->oh, (long long)g->ow);
    }
    cemit_line(c, "uint32_t word = 0;");
    cemit_line(c, "ETCH_UNROLL for (int b = 0; b < 4; b++) {");
    c->indent++;
    cemit_line(c, "const int64_t k = k0 + 4 * kw + b;");
    cemit_line(c, "uint32_t byte = 0;");
    emit_byte(c, q, operand_b, rows, ext, base);
    cemit_line(c, "word |= byte << 8 * b;");
    c->indent--;
    cemit_line(c, "}");
    cemit_line(c, "%s[kw * %d + x] = word;", tile, ld);
    c->indent--;
    cemit_line(c, "}");
    c->indent--;
    cemit_line(c, "}");
}

/* Finishes element (r, c) of C: the accumulator, the channel's requantize, the store. */
static void emit_epilogue(CEmitter *c, const QGemm *q) {
    const char *ch = q->conv ? "r" : "c";
    int lo = 0, hi = 0;
    if (q->n->dtype != DT_F32) qmatmul_range(q->n, &lo, &hi);
    if (q->zs)
        cemit_line(c, "const int32_t qa = (int32_t)((uint32_t)%s[%s] + (uint32_t)ETCH_TVA(acc, u * %d + v) - "
                      "(uint32_t)(%d) * (uint32_t)ETCH_TVA(wsum, %s));",
                   q->bias, ch, QG_TN, q->zs, q->conv ? "u" : "v");
    else
        cemit_line(c, "const int32_t qa = (int32_t)((uint32_t)%s[%s] + (uint32_t)ETCH_TVA(acc, u * %d + v));", q->bias,
                   ch, QG_TN);
    char at[160];
    if (q->conv)
        snprintf(at, sizeof at, "(c / %lld * %lld + r) * %lld + c %% %lld", (long long)q->g.ohw, (long long)q->g.o,
                 (long long)q->g.ohw, (long long)q->g.ohw);
    else snprintf(at, sizeof at, "r * %lld + c", q->N);
    if (q->n->dtype == DT_F32)
        cemit_line(c, "%s[%s] = (float)etch_q_scale_acc(qa, %s[%s], %s[%s]);", q->y, at, q->mult, ch, q->shift, ch);
    else
        cemit_line(c, "%s[%s] = (%s)etch_q_requantize(qa, %s[%s], %s[%s], %d, %d, %d);", q->y, at, q->Y, q->mult, ch,
                   q->shift, ch, q->n->attr.quant.zero_points[1], lo, hi);
}

static void emit_qgemm(CudaEmitter *e, const QGemm *q) {
    CEmitter *c = &e->c;
    const QTile t = pick_tile(q->M, q->N);
    const long long tn = (q->N + t.bn - 1) / t.bn, tm = (q->M + t.bm - 1) / t.bm;
    /* a tile loaded along k is stored across its shared rows: padded */
    const int lda = t.bm + 1, ldb = t.bn + !q->conv;
    char what[256];
    quant_emit_helpers(c);
    cuda_describe(q->gr, q->id, what, sizeof what);
    cuda_kernel_begin(e, tm * tn, QG_THREADS, what);
    cemit_line(c, "ETCH_SHARED(uint32_t, As, %d); /* A's words, k-major: As[kw * %d + i] */", QG_KW * lda, lda);
    cemit_line(c, "ETCH_SHARED(uint32_t, Bs, %d); /* B's words: Bs[kw * %d + j] */", QG_KW * ldb, ldb);
    cemit_line(c, "ETCH_THREAD_ARRAY(int32_t, acc, %d); /* C(row0 + ty + %du, col0 + tx + %dv) at u * %d + v */",
               QG_TM * QG_TN, t.bm / QG_TM, t.bn / QG_TN, QG_TN);
    if (q->zs) cemit_line(c, "ETCH_THREAD_ARRAY(int32_t, wsum, %d); /* sum_k w of the thread's channels */", QG_TN);
    cemit_line(c, "const int64_t row0 = ETCH_BLOCK / %lld * %d, col0 = ETCH_BLOCK %% %lld * %d;", tn, t.bm, tn, t.bn);
    cemit_line(c, "ETCH_THREADS");
    cemit_line(c, "    ETCH_UNROLL for (int q = 0; q < %d; q++) ETCH_TVA(acc, q) = 0;", QG_TM * QG_TN);
    if (q->zs) cemit_line(c, "    ETCH_UNROLL for (int q = 0; q < %d; q++) ETCH_TVA(wsum, q) = 0;", QG_TN);
    cemit_line(c, "ETCH_THREADS_END");
    cemit_line(c, "for (int64_t k0 = 0; k0 < %lld; k0 += %d) {", q->K, QG_BK);
    c->indent++;
    cemit_line(c, "ETCH_THREADS");
    c->indent++;
    emit_tile_load(c, q, false, "As", lda, t.bm, "row0");
    emit_tile_load(c, q, true, "Bs", ldb, t.bn, "col0");
    c->indent--;
    cemit_line(c, "ETCH_SYNC");
    c->indent++;
    cemit_line(c, "const int ty = ETCH_TID / %d, tx = ETCH_TID %% %d;", t.bn / QG_TN, t.bn / QG_TN);
    cemit_line(c, "ETCH_UNROLL for (int kw = 0; kw < %d; kw++) {", QG_KW);
    c->indent++;
    cemit_line(c, "uint32_t a[%d], b[%d];", QG_TM, QG_TN);
    cemit_line(c, "ETCH_UNROLL for (int u = 0; u < %d; u++) a[u] = As[kw * %d + ty + %d * u];", QG_TM, lda,
               t.bm / QG_TM);
    cemit_line(c, "ETCH_UNROLL for (int v = 0; v < %d; v++) b[v] = Bs[kw * %d + tx + %d * v];", QG_TN, ldb,
               t.bn / QG_TN);
    cemit_line(c, "ETCH_UNROLL for (int u = 0; u < %d; u++)", QG_TM);
    cemit_line(c, "    ETCH_UNROLL for (int v = 0; v < %d; v++) ETCH_TVA(acc, u * %d + v) = ETCH_DP4A(a[u], b[v], "
                  "ETCH_TVA(acc, u * %d + v));", QG_TN, QG_TN, QG_TN);
    if (q->zs) /* the weights' sums: the rows of A (qconv2d) or the columns of B (qmatmul) */
        cemit_line(c, "ETCH_UNROLL for (int s = 0; s < %d; s++) ETCH_TVA(wsum, s) = ETCH_DP4A(0x01010101u, %s[s], "
                      "ETCH_TVA(wsum, s));", QG_TN, q->conv ? "a" : "b");
    c->indent--;
    cemit_line(c, "}");
    c->indent--;
    cemit_line(c, "ETCH_THREADS_END");
    c->indent--;
    cemit_line(c, "}");

    cemit_line(c, "ETCH_THREADS");
    c->indent++;
    cemit_line(c, "const int ty = ETCH_TID / %d, tx = ETCH_TID %% %d;", t.bn / QG_TN, t.bn / QG_TN);
    cemit_line(c, "ETCH_UNROLL for (int u = 0; u < %d; u++)", QG_TM);
    c->indent++;
    cemit_line(c, "ETCH_UNROLL for (int v = 0; v < %d; v++) {", QG_TN);
    c->indent++;
    cemit_line(c, "const int64_t r = row0 + ty + %d * u, c = col0 + tx + %d * v;", t.bm / QG_TM, t.bn / QG_TN);
    char guard[96] = "";
    if (q->M % t.bm && q->N % t.bn) snprintf(guard, sizeof guard, "r < %lld && c < %lld", q->M, q->N);
    else if (q->M % t.bm) snprintf(guard, sizeof guard, "r < %lld", q->M);
    else if (q->N % t.bn) snprintf(guard, sizeof guard, "c < %lld", q->N);
    if (guard[0]) cemit_line(c, "if (%s) {", guard);
    else cemit_line(c, "{");
    c->indent++;
    emit_epilogue(c, q);
    c->indent--;
    cemit_line(c, "}");
    c->indent--;
    cemit_line(c, "}");
    c->indent -= 2;
    cemit_line(c, "ETCH_THREADS_END");
    cuda_kernel_end(e);
}

/* The operands of node id as a QGemm (the product's sizes set by the caller). */
static QGemm qgemm_of(const CudaEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    const char *const *b = e->c.buf;
    QGemm q = {.gr = g, .id = id, .n = n, .x = b[n->in[0]], .w = b[n->in[1]], .bias = b[n->in[2]],
               .mult = b[n->in[3]], .shift = b[n->in[4]], .y = b[id], .Y = dtype_c_type(n->dtype)};
    q.u8 = g->nodes[n->in[0]].dtype == DT_U8;
    q.zs = n->attr.quant.zero_points[0] - (q.u8 ? 128 : 0);
    return q;
}

void cuda_emit_qmatmul(CudaEmitter *e, const Graph *g, int id) {
    QGemm q = qgemm_of(e, g, id);
    q.M = q.n->shape.dim[0], q.N = q.n->shape.dim[1], q.K = g->nodes[q.n->in[0]].shape.dim[1];
    emit_qgemm(e, &q);
}

void cuda_emit_qconv2d(CudaEmitter *e, const Graph *g, int id) {
    QGemm q = qgemm_of(e, g, id);
    q.conv = true;
    conv_geom(g, q.n, &q.g);
    q.M = q.g.o, q.N = q.g.n * q.g.ohw, q.K = q.g.ckk;
    emit_qgemm(e, &q);
}
