/* matmul.c: matrix product [..., M, K] @ [..., K, N] -> [..., M, N] with NumPy
 * semantics: batch dimensions broadcast, a rank-1 left operand is a row
 * vector and a rank-1 right operand a column vector (their unit dim dropped).
 *
 * Reference kernel: OpenBLAS gemm per batch (the eager baseline should be as
 * fast as a dynamic framework's). The C backend calls a blocked,
 * register-tiled GEMM specialized to the shape (codegen/c/gemm.c). */
#include <assert.h>
#include <cblas.h>
#include <stdio.h>

#include "ir/ops/ops_impl.h"

/* The operand as a matrix (or batch of matrices) in the product's orientation:
 * rank-1 operands gain a unit dim; a transposed operand has its last two dims
 * swapped (it is stored as the transpose of what the product uses). */
static Shape matrix_view_t(const Shape *s, bool left, bool trans) {
    if (s->rank != 1) {
        Shape v = *s;
        if (trans) {
            v.dim[s->rank - 2] = s->dim[s->rank - 1];
            v.dim[s->rank - 1] = s->dim[s->rank - 2];
        }
        return v;
    }
    Shape v = {.rank = 2};
    v.dim[0] = left ? 1 : s->dim[0];
    v.dim[1] = left ? s->dim[0] : 1;
    return v;
}

static Shape matrix_view(const Shape *s, bool left) { return matrix_view_t(s, left, false); }

void matmul_dims(const Graph *g, const Node *n, MatmulDims *md) {
    Shape a = matrix_view_t(&g->nodes[n->in[0]].shape, true, n->attr.trans_a),
          b = matrix_view_t(&g->nodes[n->in[1]].shape, false, n->attr.trans_b);
    md->m = a.dim[a.rank - 2];
    md->k = a.dim[a.rank - 1];
    md->n = b.dim[b.rank - 1];
    Shape ab = {.rank = a.rank - 2}, bb = {.rank = b.rank - 2};
    for (int i = 0; i < ab.rank; i++) ab.dim[i] = a.dim[i];
    for (int i = 0; i < bb.rank; i++) bb.dim[i] = b.dim[i];
    int r = ab.rank > bb.rank ? ab.rank : bb.rank;
    md->batch = (Shape){.rank = r};
    for (int i = 0; i < r; i++) {
        int ia = i - (r - ab.rank), ib = i - (r - bb.rank);
        int64_t da = ia >= 0 ? ab.dim[ia] : 1, db = ib >= 0 ? bb.dim[ib] : 1;
        md->batch.dim[i] = da > db ? da : db;
    }
    ops_broadcast_strides(&ab, &md->batch, md->a_bstride);
    ops_broadcast_strides(&bb, &md->batch, md->b_bstride);
    for (int i = 0; i < r; i++) {
        md->a_bstride[i] *= md->m * md->k;
        md->b_bstride[i] *= md->k * md->n;
    }
    md->n_batch = shape_numel(&md->batch);
}

bool shape_matmul(Graph *g, Node *n, Diag *d) {
    const Node *x = &g->nodes[n->in[0]], *y = &g->nodes[n->in[1]];
    char a[96], b[96];
    if (x->shape.rank < 1 || y->shape.rank < 1)
        return diag_error(d, n->loc, "cannot matmul %s by %s: operands must have at least one dimension",
                          ops_type_str(a, g, n->in[0]), ops_type_str(b, g, n->in[1]));
    if (x->dtype != y->dtype)
        return diag_error(d, n->loc, "cannot matmul %s by %s: dtypes differ", ops_type_str(a, g, n->in[0]),
                          ops_type_str(b, g, n->in[1]));
    if (!dtype_is_float(x->dtype))
        return diag_error(d, n->loc, "cannot matmul %s by %s: matmul needs floating-point operands",
                          ops_type_str(a, g, n->in[0]), ops_type_str(b, g, n->in[1]));
    if ((n->attr.trans_a && x->shape.rank < 2) || (n->attr.trans_b && y->shape.rank < 2))
        return diag_error(d, n->loc, "cannot matmul %s by %s: a transposed operand needs at least two dimensions",
                          ops_type_str(a, g, n->in[0]), ops_type_str(b, g, n->in[1]));
    Shape av = matrix_view_t(&x->shape, true, n->attr.trans_a), bv = matrix_view_t(&y->shape, false, n->attr.trans_b);
    int64_t ka = av.dim[av.rank - 1], kb = bv.dim[bv.rank - 2];
    if (ka != kb)
        return diag_error(d, n->loc, "cannot matmul %s by %s: inner dims %lld and %lld differ",
                          ops_type_str(a, g, n->in[0]), ops_type_str(b, g, n->in[1]), (long long)ka, (long long)kb);
    for (int i = 0; i < av.rank - 2 && i < bv.rank - 2; i++) {
        int64_t da = av.dim[av.rank - 3 - i], db = bv.dim[bv.rank - 3 - i];
        if (da != db && da != 1 && db != 1)
            return diag_error(d, n->loc, "cannot matmul %s by %s: batch dims %lld and %lld do not broadcast",
                              ops_type_str(a, g, n->in[0]), ops_type_str(b, g, n->in[1]), (long long)da,
                              (long long)db);
    }
    MatmulDims md;
    matmul_dims(g, n, &md);
    Shape s = md.batch;
    if (x->shape.rank != 1) s.dim[s.rank++] = md.m;
    if (y->shape.rank != 1) s.dim[s.rank++] = md.n;
    if (s.rank > ETCH_MAX_RANK) return diag_error(d, n->loc, "matmul result has too many dimensions");
    n->dtype = x->dtype;
    n->shape = s;
    return true;
}

void matmul_batch_offsets(const MatmulDims *md, int64_t bi, int64_t *oa, int64_t *ob) {
    *oa = *ob = 0;
    for (int i = md->batch.rank - 1; i >= 0; i--) {
        int64_t idx = bi % md->batch.dim[i];
        bi /= md->batch.dim[i];
        *oa += idx * md->a_bstride[i];
        *ob += idx * md->b_bstride[i];
    }
}

void eval_matmul(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    const Node *n = &g->nodes[id];
    MatmulDims md;
    matmul_dims(g, n, &md);
    int M = (int)md.m, N = (int)md.n, K = (int)md.k;
    /* a transposed operand is stored [K, M] (resp. [N, K]): its row stride changes */
    CBLAS_TRANSPOSE ta = n->attr.trans_a ? CblasTrans : CblasNoTrans, tb = n->attr.trans_b ? CblasTrans : CblasNoTrans;
    int lda = n->attr.trans_a ? M : K, ldb = n->attr.trans_b ? K : N;
    for (int64_t bi = 0; bi < md.n_batch; bi++) {
        int64_t oa, ob, oc = bi * md.m * md.n;
        matmul_batch_offsets(&md, bi, &oa, &ob);
        if (out->dtype == DT_F32)
            cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, 1.0f, (const float *)ins[0]->data + oa, lda,
                        (const float *)ins[1]->data + ob, ldb, 0.0f, (float *)out->data + oc, N);
        else
            cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, 1.0, (const double *)ins[0]->data + oa, lda,
                        (const double *)ins[1]->data + ob, ldb, 0.0, (double *)out->data + oc, N);
    }
}

/* ---- vector-Jacobian rule ----
 * With rank-1 operands viewed as matrices: dA = gy @ B^T, dB = A^T @ gy,
 * each summed over batch dimensions its operand was broadcast along. */

static int transpose_last2(VjpCtx *c, int x) {
    int r = c->g->nodes[x].shape.rank, perm[ETCH_MAX_RANK];
    for (int i = 0; i < r; i++) perm[i] = i;
    perm[r - 2] = r - 1;
    perm[r - 1] = r - 2;
    return ad_transpose(c, x, perm);
}

void vjp_matmul(VjpCtx *c) {
    const Node *n = &c->g->nodes[c->id];
    /* autodiff runs before simplify folds transposes into matmuls */
    assert(!n->attr.trans_a && !n->attr.trans_b);
    int a = n->in[0], b = n->in[1];
    Shape as = c->g->nodes[a].shape, bs = c->g->nodes[b].shape;
    MatmulDims md;
    matmul_dims(c->g, n, &md);
    Shape gys = md.batch; /* gy viewed as [batch..., M, N] */
    gys.dim[gys.rank++] = md.m;
    gys.dim[gys.rank++] = md.n;
    int gy = ad_reshape(c, c->gy, gys);
    int av = ad_reshape(c, a, matrix_view(&as, true)), bv = ad_reshape(c, b, matrix_view(&bs, false));
    if (c->needs[0]) {
        int ga = ad_matmul(c, gy, transpose_last2(c, bv));
        Shape av_s = matrix_view(&as, true);
        c->gx[0] = ad_reshape(c, ad_unbroadcast(c, ga, &av_s), as);
    }
    if (c->needs[1] && bs.rank == 2 && as.rank > 2) {
        /* a weight shared by every batch entry (x [T, B, K] @ w [K, N]): its
         * gradient is one matmul over all rows, not a batched one then a sum */
        int64_t rows = shape_numel(&as) / md.k;
        int a2 = ad_reshape(c, a, (Shape){.rank = 2, .dim = {rows, md.k}});
        int g2 = ad_reshape(c, c->gy, (Shape){.rank = 2, .dim = {rows, md.n}});
        c->gx[1] = ad_matmul(c, transpose_last2(c, a2), g2);
    } else if (c->needs[1]) {
        int gb = ad_matmul(c, transpose_last2(c, av), gy);
        Shape bv_s = matrix_view(&bs, false);
        c->gx[1] = ad_reshape(c, ad_unbroadcast(c, gb, &bv_s), bs);
    }
}
