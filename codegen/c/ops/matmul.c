/* matmul.c (C backend): a matrix product is a call per batch (literal
 * offsets) to a GEMM kernel specialized to its shape (codegen/c/gemm.c). A
 * product fused with its consumers passes their epilogue to the kernel. */
#include <assert.h>
#include <stdio.h>

#include "codegen/c/gemm.h"
#include "codegen/c/ops/c_ops.h"

/* True when every batch of the product shares B and A's batches lie back to
 * back (untransposed), so [batch..., M, K] @ [K, N] is one [batch*M, K] @
 * [K, N] product: one kernel call, and row blocks that span batches. */
static bool batches_fold(const MatmulDims *md, bool trans_a) {
    if (md->n_batch <= 1 || trans_a) return false;
    int64_t dense = md->m * md->k;
    for (int i = md->batch.rank - 1; i >= 0; i--) {
        if (md->batch.dim[i] > 1 && (md->b_bstride[i] != 0 || md->a_bstride[i] != dense)) return false;
        dense *= md->batch.dim[i];
    }
    return true;
}

/* Emits a call per batch (literal offsets) to a GEMM kernel specialized to
 * this shape (codegen/c/gemm.c). */
void emit_matmul(CEmitter *e, const Graph *g, int id) { emit_matmul_with(e, g, id, NULL); }

void emit_matmul_with(CEmitter *e, const Graph *g, int id, const char *epilogue) {
    const Node *n = &g->nodes[id];
    MatmulDims md;
    matmul_dims(g, n, &md);
    GemmDesc gd = {.dtype = n->dtype, .m = md.m, .n = md.n, .k = md.k, .trans_a = n->attr.trans_a,
                   .trans_b = n->attr.trans_b, .ldc = md.n};
    gd.lda = gd.trans_a ? md.m : md.k; /* a transposed operand is stored [K, M] (resp. [N, K]) */
    gd.ldb = gd.trans_b ? md.k : md.n;
    gd.epilogue = epilogue; /* a product fused with its consumers (2-D only, passes/fuse.c) */
    const char *A = e->buf[n->in[0]], *B = e->buf[n->in[1]], *C = e->buf[id];
    if (batches_fold(&md, gd.trans_a)) {
        gd.m *= md.n_batch;
        gemm_emit(e, &gd, A, B, C);
        return;
    }
    assert(!gd.epilogue || !md.batch.rank);
    char bv[ETCH_MAX_RANK][16], oa[256], ob[256], oc[256];
    int la = snprintf(oa, sizeof oa, "%s", A), lb = snprintf(ob, sizeof ob, "%s", B);
    int lc = snprintf(oc, sizeof oc, "%s", C);
    int64_t cst = md.m * md.n, cstride[ETCH_MAX_RANK];
    for (int i = 0; i < md.batch.rank; i++) cemit_for(e, bv[i], sizeof bv[i], md.batch.dim[i]);
    /* batch offsets as literal-stride sums; output batches are dense */
    for (int i = md.batch.rank - 1; i >= 0; i--) {
        cstride[i] = cst;
        cst *= md.batch.dim[i];
    }
    for (int i = 0; i < md.batch.rank; i++) {
        if (md.a_bstride[i] && la < (int)sizeof oa)
            la += snprintf(oa + la, sizeof oa - (size_t)la, " + %s * %lld", bv[i], (long long)md.a_bstride[i]);
        if (md.b_bstride[i] && lb < (int)sizeof ob)
            lb += snprintf(ob + lb, sizeof ob - (size_t)lb, " + %s * %lld", bv[i], (long long)md.b_bstride[i]);
        if (lc < (int)sizeof oc)
            lc += snprintf(oc + lc, sizeof oc - (size_t)lc, " + %s * %lld", bv[i], (long long)cstride[i]);
    }
    gemm_emit(e, &gd, oa, ob, oc);
    for (int b = 0; b < md.batch.rank; b++) cemit_close(e);
}
