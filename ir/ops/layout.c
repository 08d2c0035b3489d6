/* layout.c: ops that move data without arithmetic: reshape (a view: same
 * storage, new shape) and transpose (a general permutation of axes). */
#include <stdio.h>
#include <string.h>

#include "ir/ops/ops_impl.h"

bool shape_reshape(Graph *g, Node *n, Diag *d) {
    const Node *x = &g->nodes[n->in[0]];
    char a[96], b[96];
    for (int i = 0; i < n->attr.shape.rank; i++)
        if (n->attr.shape.dim[i] <= 0)
            return diag_error(d, n->loc, "cannot reshape %s to %s: dimensions must be positive",
                              ops_type_str(a, g, n->in[0]), type_format(b, sizeof b, x->dtype, &n->attr.shape));
    if (shape_numel(&x->shape) != shape_numel(&n->attr.shape))
        return diag_error(d, n->loc, "cannot reshape %s to %s: %lld elements vs %lld", ops_type_str(a, g, n->in[0]),
                          type_format(b, sizeof b, x->dtype, &n->attr.shape), (long long)shape_numel(&x->shape),
                          (long long)shape_numel(&n->attr.shape));
    n->dtype = x->dtype;
    n->shape = n->attr.shape;
    return true;
}

bool shape_transpose(Graph *g, Node *n, Diag *d) {
    const Node *x = &g->nodes[n->in[0]];
    char a[96];
    if (n->attr.n_axes != x->shape.rank)
        return diag_error(d, n->loc, "transpose of %s needs a permutation of %d axes, got %d",
                          ops_type_str(a, g, n->in[0]), x->shape.rank, n->attr.n_axes);
    bool seen[ETCH_MAX_RANK] = {false};
    Shape s = {.rank = x->shape.rank};
    for (int i = 0; i < n->attr.n_axes; i++) {
        int p = n->attr.axes[i];
        if (p < 0 || p >= x->shape.rank)
            return diag_error(d, n->loc, "transpose of %s: axis %d in the permutation is out of range",
                              ops_type_str(a, g, n->in[0]), p);
        if (seen[p])
            return diag_error(d, n->loc, "transpose of %s: axis %d appears twice in the permutation",
                              ops_type_str(a, g, n->in[0]), p);
        seen[p] = true;
        s.dim[i] = x->shape.dim[p];
    }
    n->dtype = x->dtype;
    n->shape = s;
    return true;
}

void eval_reshape(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    (void)g, (void)id;
    memcpy(out->data, ins[0]->data, tensor_nbytes(out));
}

void transpose_strides(const Graph *g, const Node *n, int64_t *st) {
    int64_t in_st[ETCH_MAX_RANK];
    shape_strides(&g->nodes[n->in[0]].shape, in_st);
    for (int i = 0; i < n->shape.rank; i++) st[i] = in_st[n->attr.axes[i]];
}

void eval_transpose(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    const Node *n = &g->nodes[id];
    if (n->shape.rank == 2 && n->dtype == DT_F32 && n->attr.axes[0] == 1) { /* a 2-D swap, in cache-sized tiles */
        int64_t R = n->shape.dim[0], C = n->shape.dim[1];
        const float *src = ins[0]->data;
        float *dst = out->data;
        for (int64_t r0 = 0; r0 < R; r0 += 32)
            for (int64_t c0 = 0; c0 < C; c0 += 32)
                for (int64_t r = r0; r < R && r < r0 + 32; r++)
                    for (int64_t c = c0; c < C && c < c0 + 32; c++) dst[r * C + c] = src[c * R + r];
        return;
    }
    int64_t st[ETCH_MAX_RANK], idx[ETCH_MAX_RANK] = {0}, off = 0;
    transpose_strides(g, n, st);
    size_t es = dtype_size(n->dtype);
    const char *src = ins[0]->data;
    char *dst = out->data;
    for (int64_t o = 0, total = tensor_numel(out); o < total; o++) {
        memcpy(dst + (size_t)o * es, src + (size_t)off * es, es);
        for (int r = n->shape.rank - 1; r >= 0; r--) {
            off += st[r];
            if (++idx[r] < n->shape.dim[r]) break;
            off -= st[r] * n->shape.dim[r];
            idx[r] = 0;
        }
    }
}

/* ---- vector-Jacobian rules ---- */

void vjp_reshape(VjpCtx *c) { c->gx[0] = ad_reshape(c, c->gy, c->g->nodes[c->g->nodes[c->id].in[0]].shape); }

void vjp_transpose(VjpCtx *c) {
    const Node *n = &c->g->nodes[c->id];
    int inv[ETCH_MAX_RANK];
    for (int i = 0; i < n->attr.n_axes; i++) inv[n->attr.axes[i]] = i;
    c->gx[0] = ad_transpose(c, c->gy, inv);
}
