/* matmul.c (CUDA backend): a matrix product as etch's own register-tiled
 * shared-memory GEMM (SGEMM for f32, DGEMM for f64, one emitter), with an
 * optional epilogue that finishes each element in registers before its
 * store (a fused group, group.c).
 *
 * The tiles. A block of 256 threads computes a 64 x 64 tile of C; each
 * thread a 4 x 4 micro-tile held in 16 registers (ETCH_THREAD_ARRAY: the
 * accumulators live across the K loop's barriers). The K loop walks steps
 * of 16: every thread loads 4 elements of A's 64 x 16 tile and 4 of B's
 * 16 x 64 tile into shared memory, barrier, then per k reads 4 values of A
 * and 4 of B from shared memory into registers and does 16 FMAs, barrier.
 * Why these sizes: etch's models are small (batches of 1-256, widths of
 * 10-1024), so a 64 x 64 tile already leaves many of a large GPU's SMs idle
 * at batch 64 and a bigger one would leave more; 4 x 4 per thread keeps
 * 16 accumulators plus 8 operands (f64: twice the registers) far below the
 * 255 registers a thread may use at 256 threads per block, so nothing
 * spills for either type (tests/e2e/test_cuda_gemm_spills.sh checks it with
 * ptxas), and 8 shared loads feed 16 FMAs. Shared memory per block is
 * 8.3 KB (f32) or 16.6 KB (f64), so several blocks fit on an SM.
 *
 * The layout. Thread t computes rows ty + 16u and columns tx + 16v (ty =
 * t / 16, tx = t % 16, u, v < 4): strided, so a warp's shared reads are
 * 16 consecutive B values and 2 A values (broadcasts), free of bank
 * conflicts, and its stores are 16 consecutive columns of a row. A's tile
 * is kept k-major (As[k][i]) so both operands are read along a row of
 * shared memory. Each operand is loaded along its contiguous dimension
 * (coalesced): k for A [M, K] and for a transposed B (stored [N, K]), i
 * for a transposed A (stored [K, M]), j for B [K, N]; a tile stored
 * across its rows gets one padding column (65) against bank conflicts.
 *
 * Edges: reads past M, N or K load zeros and stores past M or N are
 * skipped; each test is emitted only when its dimension is not a multiple
 * of the tile (every bound is a literal). Batched products: a block per
 * tile of each batch, the batch's offsets into A and B from its index by
 * the batch strides (0 where broadcast, matmul_dims). Each element sums
 * its products in increasing k, as the eager executor does. */
#include <stdio.h>

#include "codegen/cuda/cuda_emit.h"

enum {
    GEMM_BM = 64,      /* rows of C per block */
    GEMM_BN = 64,      /* columns of C per block */
    GEMM_BK = 16,      /* the K step */
    GEMM_TM = 4,       /* rows per thread */
    GEMM_TN = 4,       /* columns per thread */
    GEMM_THREADS = (GEMM_BM / GEMM_TM) * (GEMM_BN / GEMM_TN),
};
_Static_assert(GEMM_THREADS == 256, "the tile's threads");
_Static_assert(GEMM_BM * GEMM_BK % GEMM_THREADS == 0 && GEMM_BN * GEMM_BK % GEMM_THREADS == 0,
               "every thread loads the same number of each tile's elements");

/* Emits the loads of one operand's tile into shared memory `tile` (row
 * length ld): element (k, x) for k < BK and x < ext (x a row of A or a
 * column of B) is at src[stored_at] in global memory. `along_k`: the
 * operand is contiguous in k, so a warp walks k first. */
static void emit_tile_load(CEmitter *c, const char *tile, int ld, int ext, bool along_k, const char *x0, long long x_max,
                           long long K, const char *stored_at, const char *ty) {
    int per_thread = ext * GEMM_BK / GEMM_THREADS;
    cemit_line(c, "ETCH_UNROLL for (int q = 0; q < %d; q++) {", per_thread);
    c->indent++;
    if (along_k)
        cemit_line(c, "const int el = ETCH_TID + q * %d, k = el %% %d, x = el / %d;", GEMM_THREADS, GEMM_BK, GEMM_BK);
    else cemit_line(c, "const int el = ETCH_TID + q * %d, x = el %% %d, k = el / %d;", GEMM_THREADS, ext, ext);
    char guard[160] = "";
    size_t len = 0;
    if (x_max % ext) len += (size_t)snprintf(guard + len, sizeof guard - len, "%s + x < %lld", x0, x_max);
    if (K % GEMM_BK) snprintf(guard + len, sizeof guard - len, "%sk0 + k < %lld", len ? " && " : "", K);
    if (guard[0]) cemit_line(c, "%s[k * %d + x] = %s ? %s : (%s)0;", tile, ld, guard, stored_at, ty);
    else cemit_line(c, "%s[k * %d + x] = %s;", tile, ld, stored_at);
    c->indent--;
    cemit_line(c, "}");
}

void cuda_emit_gemm(CudaEmitter *e, const Graph *g, int id, const char *what, const CudaGemmEpilogue *epilogue) {
    const Node *n = &g->nodes[id];
    MatmulDims md;
    matmul_dims(g, n, &md);
    const long long M = md.m, N = md.n, K = md.k;
    const long long tm = (M + GEMM_BM - 1) / GEMM_BM, tn = (N + GEMM_BN - 1) / GEMM_BN;
    const char *ty = dtype_c_type(n->dtype);
    const bool trans_a = n->attr.trans_a, trans_b = n->attr.trans_b;
    /* a tile loaded along k is written across its shared rows: padded */
    const int lda = GEMM_BM + !trans_a, ldb = GEMM_BN + trans_b;
    CEmitter *c = &e->c;
    cuda_kernel_begin(e, md.n_batch * tm * tn, GEMM_THREADS, what);
    cemit_line(c, "ETCH_SHARED(%s, As, %d); /* A's tile, k-major: As[k * %d + i] */", ty, GEMM_BK * lda, lda);
    cemit_line(c, "ETCH_SHARED(%s, Bs, %d); /* B's tile: Bs[k * %d + j] */", ty, GEMM_BK * ldb, ldb);
    cemit_line(c, "ETCH_THREAD_ARRAY(%s, acc, %d); /* C(row0 + ty + 16u, col0 + tx + 16v) at u * %d + v */", ty,
               GEMM_TM * GEMM_TN, GEMM_TN);
    cemit_line(c, "const int64_t bt = ETCH_BLOCK / %lld, tile = ETCH_BLOCK %% %lld;", tm * tn, tm * tn);
    cemit_line(c, "const int64_t row0 = tile / %lld * %d, col0 = tile %% %lld * %d;", tn, GEMM_BM, tn, GEMM_BN);
    cemit_line(c, "int64_t oa = 0, ob = 0; /* the batch's offsets: bt unravelled over the batch dims */");
    int64_t inner = 1;
    for (int i = md.batch.rank - 1; i >= 0; i--) {
        long long d = md.batch.dim[i];
        if (d > 1)
            cemit_line(c, "{ const int64_t b = bt / %lld %% %lld; oa += b * %lld; ob += b * %lld; }", (long long)inner,
                       d, (long long)md.a_bstride[i], (long long)md.b_bstride[i]);
        inner *= d;
    }
    cemit_line(c, "const %s *A = %s + oa;", ty, c->buf[n->in[0]]);
    cemit_line(c, "const %s *B = %s + ob;", ty, c->buf[n->in[1]]);
    if (!epilogue) cemit_line(c, "%s *C = %s + bt * %lld;", ty, c->buf[id], M * N);
    cemit_line(c, "(void)bt;");
    /* A(i, k): [M, K] row-major, or stored [K, M] when transposed; B(k, j) likewise */
    char a_at[96], b_at[96];
    if (trans_a) snprintf(a_at, sizeof a_at, "A[(k0 + k) * %lld + row0 + x]", M);
    else snprintf(a_at, sizeof a_at, "A[(row0 + x) * %lld + k0 + k]", K);
    if (trans_b) snprintf(b_at, sizeof b_at, "B[(col0 + x) * %lld + k0 + k]", K);
    else snprintf(b_at, sizeof b_at, "B[(k0 + k) * %lld + col0 + x]", N);

    cemit_line(c, "ETCH_THREADS");
    cemit_line(c, "    ETCH_UNROLL for (int q = 0; q < %d; q++) ETCH_TVA(acc, q) = 0;", GEMM_TM * GEMM_TN);
    cemit_line(c, "ETCH_THREADS_END");
    cemit_line(c, "for (int64_t k0 = 0; k0 < %lld; k0 += %d) {", K, GEMM_BK);
    c->indent++;
    cemit_line(c, "ETCH_THREADS");
    c->indent++;
    emit_tile_load(c, "As", lda, GEMM_BM, !trans_a, "row0", M, K, a_at, ty);
    emit_tile_load(c, "Bs", ldb, GEMM_BN, trans_b, "col0", N, K, b_at, ty);
    c->indent--;
    cemit_line(c, "ETCH_SYNC");
    c->indent++;
    cemit_line(c, "const int ty = ETCH_TID / %d, tx = ETCH_TID %% %d;", GEMM_BN / GEMM_TN, GEMM_BN / GEMM_TN);
    cemit_line(c, "ETCH_UNROLL for (int k = 0; k < %d; k++) {", GEMM_BK);
    c->indent++;
    cemit_line(c, "%s a[%d], b[%d];", ty, GEMM_TM, GEMM_TN);
    cemit_line(c, "ETCH_UNROLL for (int u = 0; u < %d; u++) a[u] = As[k * %d + ty + %d * u];", GEMM_TM, lda,
               GEMM_BM / GEMM_TM);
    cemit_line(c, "ETCH_UNROLL for (int v = 0; v < %d; v++) b[v] = Bs[k * %d + tx + %d * v];", GEMM_TN, ldb,
               GEMM_BN / GEMM_TN);
    cemit_line(c, "ETCH_UNROLL for (int u = 0; u < %d; u++)", GEMM_TM);
    cemit_line(c, "    ETCH_UNROLL for (int v = 0; v < %d; v++) ETCH_TVA(acc, u * %d + v) += a[u] * b[v];", GEMM_TN,
               GEMM_TN);
    c->indent--;
    cemit_line(c, "}");
    c->indent--;
    cemit_line(c, "ETCH_THREADS_END");
    c->indent--;
    cemit_line(c, "}");

    /* each element of the micro-tile: (r, c) of this batch's C, the value v<id> */
    cemit_line(c, "ETCH_THREADS");
    c->indent++;
    cemit_line(c, "const int ty = ETCH_TID / %d, tx = ETCH_TID %% %d;", GEMM_BN / GEMM_TN, GEMM_BN / GEMM_TN);
    cemit_line(c, "ETCH_UNROLL for (int u = 0; u < %d; u++)", GEMM_TM);
    c->indent++;
    cemit_line(c, "ETCH_UNROLL for (int v = 0; v < %d; v++) {", GEMM_TN);
    c->indent++;
    cemit_line(c, "const int64_t r = row0 + ty + %d * u, c = col0 + tx + %d * v;", GEMM_BM / GEMM_TM, GEMM_BN / GEMM_TN);
    char guard[96] = "";
    if (M % GEMM_BM && N % GEMM_BN) snprintf(guard, sizeof guard, "r < %lld && c < %lld", M, N);
    else if (M % GEMM_BM) snprintf(guard, sizeof guard, "r < %lld", M);
    else if (N % GEMM_BN) snprintf(guard, sizeof guard, "c < %lld", N);
    if (guard[0]) cemit_line(c, "if (%s) {", guard), c->indent++;
    else cemit_line(c, "{"), c->indent++;
    cemit_line(c, "const %s v%d = ETCH_TVA(acc, u * %d + v);", ty, id, GEMM_TN);
    if (epilogue) epilogue->emit(e, epilogue->ctx);
    else cemit_line(c, "C[r * %lld + c] = v%d;", N, id);
    c->indent--;
    cemit_line(c, "}");
    c->indent--;
    cemit_line(c, "}");
    c->indent -= 2;
    cemit_line(c, "ETCH_THREADS_END");
    cuda_kernel_end(e);
}

void cuda_emit_matmul(CudaEmitter *e, const Graph *g, int id) {
    char what[256];
    cuda_describe(g, id, what, sizeof what);
    cuda_emit_gemm(e, g, id, what, NULL);
}
