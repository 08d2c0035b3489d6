/* matmul.c (CUDA backend): a matrix product as etch's own tiled GEMM: a
 * block of 16 x 16 threads computes a 16 x 16 tile of C, one output per
 * thread, looping over K in steps of 16 through two shared-memory tiles
 * (load both tiles, barrier, multiply-accumulate from shared memory,
 * barrier). Blocks cover every tile of every batch; a batch's offsets into
 * A and B come from its index by the batch strides (0 where broadcast).
 * Transposed operands are read in their stored layout. */
#include <stdio.h>

#include "codegen/cuda/cuda_emit.h"

enum { GEMM_TILE = 16 };

void cuda_emit_matmul(CudaEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    MatmulDims md;
    matmul_dims(g, n, &md);
    const long long M = md.m, N = md.n, K = md.k, T = GEMM_TILE;
    const long long tm = (M + T - 1) / T, tn = (N + T - 1) / T;
    const char *ty = dtype_c_type(n->dtype);
    char what[256];
    CEmitter *c = &e->c;
    cuda_describe(g, id, what, sizeof what);
    cuda_kernel_begin(e, md.n_batch * tm * tn, GEMM_TILE * GEMM_TILE, what);
    cemit_line(c, "ETCH_SHARED(%s, As, %lld);", ty, T * T);
    cemit_line(c, "ETCH_SHARED(%s, Bs, %lld);", ty, T * T);
    cemit_line(c, "ETCH_THREAD_VAR(%s, acc);", ty);
    cemit_line(c, "const int64_t bt = ETCH_BLOCK / %lld, tile = ETCH_BLOCK %% %lld;", tm * tn, tm * tn);
    cemit_line(c, "const int64_t row0 = tile / %lld * %lld, col0 = tile %% %lld * %lld;", tn, T, tn, T);
    /* batch offsets: bt unravelled over the batch dims */
    cemit_line(c, "int64_t oa = 0, ob = 0;");
    int64_t inner = 1;
    for (int i = md.batch.rank - 1; i >= 0; i--) {
        long long d = md.batch.dim[i];
        if (d > 1)
            cemit_line(c, "{ const int64_t b = bt / %lld %% %lld; oa += b * %lld; ob += b * %lld; }", (long long)inner,
                       d, (long long)md.a_bstride[i], (long long)md.b_bstride[i]);
        inner *= d;
    }
    cemit_line(c, "const %s *A = %s + oa;", ty, e->c.buf[n->in[0]]);
    cemit_line(c, "const %s *B = %s + ob;", ty, e->c.buf[n->in[1]]);
    cemit_line(c, "%s *C = %s + bt * %lld;", ty, e->c.buf[id], M * N);
    cemit_line(c, "(void)bt;");
    /* A(i, k): [M, K] row-major, or stored [K, M] when transposed; B(k, j) likewise */
    char a_at[96], b_at[96];
    if (n->attr.trans_a) snprintf(a_at, sizeof a_at, "A[(k0 + c) * %lld + row0 + r]", M);
    else snprintf(a_at, sizeof a_at, "A[(row0 + r) * %lld + k0 + c]", K);
    if (n->attr.trans_b) snprintf(b_at, sizeof b_at, "B[(col0 + c) * %lld + k0 + r]", K);
    else snprintf(b_at, sizeof b_at, "B[(k0 + r) * %lld + col0 + c]", N);
    cemit_line(c, "ETCH_THREADS");
    cemit_line(c, "    ETCH_TV(acc) = 0;");
    cemit_line(c, "ETCH_THREADS_END");
    cemit_line(c, "for (int64_t k0 = 0; k0 < %lld; k0 += %lld) {", K, T);
    c->indent++;
    cemit_line(c, "ETCH_THREADS");
    c->indent++;
    cemit_line(c, "const int r = ETCH_TID / %lld, c = ETCH_TID %% %lld;", T, T);
    cemit_line(c, "As[r * %lld + c] = row0 + r < %lld && k0 + c < %lld ? %s : (%s)0;", T, M, K, a_at, ty);
    cemit_line(c, "Bs[r * %lld + c] = k0 + r < %lld && col0 + c < %lld ? %s : (%s)0;", T, K, N, b_at, ty);
    c->indent--;
    cemit_line(c, "ETCH_SYNC");
    c->indent++;
    cemit_line(c, "const int r = ETCH_TID / %lld, c = ETCH_TID %% %lld;", T, T);
    cemit_line(c, "%s s = ETCH_TV(acc);", ty);
    cemit_line(c, "for (int kk = 0; kk < %lld; kk++) s += As[r * %lld + kk] * Bs[kk * %lld + c];", T, T, T);
    cemit_line(c, "ETCH_TV(acc) = s;");
    c->indent--;
    cemit_line(c, "ETCH_THREADS_END");
    c->indent--;
    cemit_line(c, "}");
    cemit_line(c, "ETCH_THREADS");
    c->indent++;
    cemit_line(c, "const int64_t i = row0 + ETCH_TID / %lld, j = col0 + ETCH_TID %% %lld;", T, T);
    cemit_line(c, "if (i < %lld && j < %lld) C[i * %lld + j] = ETCH_TV(acc);", M, N, N);
    c->indent--;
    cemit_line(c, "ETCH_THREADS_END");
    cuda_kernel_end(e);
}
