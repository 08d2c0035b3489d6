/* reduce.c: reduce_sum, reduce_max, reduce_mean over a set of axes (attr.axes),
 * keeping them as size-1 dims when attr.keepdims. Accumulation is in double in
 * both the reference kernel and the emitted code, so results agree to rounding
 * of the final store whatever the reduction length. */
#include <math.h>
#include <stdio.h>

#include "ir/ops/ops_impl.h"

bool shape_reduce(Graph *g, Node *n, Diag *d) {
    const Node *x = &g->nodes[n->in[0]];
    bool reduced[ETCH_MAX_RANK] = {false};
    char a[96];
    if (x->dtype == DT_BOOL)
        return diag_error(d, n->loc, "'%s' needs numbers, got %s", op_table[n->op].name, ops_type_str(a, g, n->in[0]));
    if (n->op != OP_REDUCE_MAX && dtype_is_quantized(x->dtype))
        return diag_error(d, n->loc, "'%s' is not defined on quantized %s (dequantize it or cast it to i32 first)",
                          op_table[n->op].name, ops_type_str(a, g, n->in[0]));
    if (n->op == OP_REDUCE_MEAN && !dtype_is_float(x->dtype))
        return diag_error(d, n->loc, "mean needs a floating-point tensor, got %s", ops_type_str(a, g, n->in[0]));
    for (int i = 0; i < n->attr.n_axes; i++) {
        int ax = n->attr.axes[i];
        if (ax < 0 || ax >= x->shape.rank)
            return diag_error(d, n->loc, "'%s' axis %d is out of range for %s (rank %d)", op_table[n->op].name, ax,
                              ops_type_str(a, g, n->in[0]), x->shape.rank);
        if (reduced[ax])
            return diag_error(d, n->loc, "'%s' axis %d is listed twice", op_table[n->op].name, ax);
        reduced[ax] = true;
    }
    Shape s = {0};
    for (int i = 0; i < x->shape.rank; i++) {
        if (!reduced[i]) s.dim[s.rank++] = x->shape.dim[i];
        else if (n->attr.keepdims) s.dim[s.rank++] = 1;
    }
    n->dtype = x->dtype;
    n->shape = s;
    return true;
}

void reduce_loops(const Graph *g, const Node *n, ReduceLoops *L) {
    const Shape *xs = &g->nodes[n->in[0]].shape;
    int64_t st[ETCH_MAX_RANK];
    shape_strides(xs, st);
    bool reduced[ETCH_MAX_RANK] = {false};
    for (int i = 0; i < n->attr.n_axes; i++) reduced[n->attr.axes[i]] = true;
    *L = (ReduceLoops){.red_count = 1};
    for (int i = 0; i < xs->rank; i++) {
        if (xs->dim[i] == 1) continue;
        if (reduced[i]) {
            L->red_dim[L->n_red] = xs->dim[i];
            L->red_stride[L->n_red++] = st[i];
            L->red_count *= xs->dim[i];
        } else {
            L->kept_dim[L->n_kept] = xs->dim[i];
            L->kept_stride[L->n_kept++] = st[i];
        }
    }
}

void eval_reduce(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    const Node *n = &g->nodes[id];
    ReduceLoops L;
    reduce_loops(g, n, &L);
    int64_t n_out = tensor_numel(out);
    int64_t kidx[ETCH_MAX_RANK] = {0}, base = 0;
    for (int64_t o = 0; o < n_out; o++) {
        double acc = n->op == OP_REDUCE_MAX ? -INFINITY : 0.0;
        int64_t ridx[ETCH_MAX_RANK] = {0}, off = base;
        for (int64_t r = 0; r < L.red_count; r++) {
            double v = tensor_get(ins[0], off);
            if (n->op == OP_REDUCE_MAX) acc = (v > acc || isnan(v)) ? v : acc;
            else acc += v;
            for (int k = L.n_red - 1; k >= 0; k--) {
                off += L.red_stride[k];
                if (++ridx[k] < L.red_dim[k]) break;
                off -= L.red_stride[k] * L.red_dim[k];
                ridx[k] = 0;
            }
        }
        if (n->op == OP_REDUCE_MEAN) acc /= (double)L.red_count;
        tensor_set(out, o, acc);
        for (int k = L.n_kept - 1; k >= 0; k--) {
            base += L.kept_stride[k];
            if (++kidx[k] < L.kept_dim[k]) break;
            base -= L.kept_stride[k] * L.kept_dim[k];
            kidx[k] = 0;
        }
    }
}

/* ---- vector-Jacobian rules ---- */

/* gy reshaped to keepdims form, then broadcast back over the input. */
static int spread(VjpCtx *c, int gy) {
    const Node *n = &c->g->nodes[c->id];
    Shape keep = c->g->nodes[n->in[0]].shape, xs = keep;
    for (int i = 0; i < n->attr.n_axes; i++) keep.dim[n->attr.axes[i]] = 1;
    return ad_broadcast(c, ad_reshape(c, gy, keep), xs);
}

void vjp_reduce_sum(VjpCtx *c) { c->gx[0] = spread(c, c->gy); }

void vjp_reduce_mean(VjpCtx *c) {
    const Node *n = &c->g->nodes[c->id];
    double count = (double)shape_numel(&c->g->nodes[n->in[0]].shape) / (double)shape_numel(&n->shape);
    c->gx[0] = spread(c, ad_binary(c, OP_DIV, c->gy, ad_scalar(c, count, c->gy)));
}

/* The gradient is shared evenly among the elements equal to the maximum
 * (PyTorch's amax rule). */
void vjp_reduce_max(VjpCtx *c) {
    int x = c->g->nodes[c->id].in[0];
    int mask = ad_cast(c, ad_binary(c, OP_EQ, x, spread(c, c->id)), c->g->nodes[x].dtype);
    const Node *n = &c->g->nodes[c->id];
    int count = ad_reduce(c, OP_REDUCE_SUM, mask, n->attr.axes, n->attr.n_axes, n->attr.keepdims);
    c->gx[0] = ad_binary(c, OP_MUL, mask, spread(c, ad_binary(c, OP_DIV, c->gy, count)));
}
