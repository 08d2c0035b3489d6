/* softmax.c: softmax and log_softmax along attr.axis, numerically stable:
 * the row maximum is subtracted before exponentiating, and log_softmax is
 * computed as x - max - log(sum(exp(x - max))) so it never takes log(0) for
 * finite inputs. Sums accumulate in double in both kernels. */
#include <math.h>
#include <stdio.h>

#include "ir/ops/ops_impl.h"

bool shape_softmax(Graph *g, Node *n, Diag *d) {
    const Node *x = &g->nodes[n->in[0]];
    char a[96];
    if (!dtype_is_float(x->dtype))
        return diag_error(d, n->loc, "'%s' needs a floating-point tensor, got %s", op_table[n->op].name,
                          ops_type_str(a, g, n->in[0]));
    if (n->attr.axis < 0 || n->attr.axis >= x->shape.rank)
        return diag_error(d, n->loc, "'%s' axis %d is out of range for %s (rank %d)", op_table[n->op].name,
                          n->attr.axis, ops_type_str(a, g, n->in[0]), x->shape.rank);
    n->dtype = x->dtype;
    n->shape = x->shape;
    return true;
}

void eval_softmax(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    const Node *n = &g->nodes[id];
    int64_t outer, len, inner;
    ops_split_axis(&n->shape, n->attr.axis, &outer, &len, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * len * inner + i;
            double mx = -INFINITY, sum = 0;
            for (int64_t k = 0; k < len; k++) mx = fmax(mx, tensor_get(ins[0], base + k * inner));
            for (int64_t k = 0; k < len; k++) sum += exp(tensor_get(ins[0], base + k * inner) - mx);
            for (int64_t k = 0; k < len; k++) {
                double x = tensor_get(ins[0], base + k * inner) - mx;
                tensor_set(out, base + k * inner, n->op == OP_SOFTMAX ? exp(x) / sum : x - log(sum));
            }
        }
}

/* ---- vector-Jacobian rules ---- */

void vjp_softmax(VjpCtx *c) { /* y * (gy - sum(gy * y)) */
    int axis = c->g->nodes[c->id].attr.axis, y = c->id;
    int dot = ad_reduce(c, OP_REDUCE_SUM, ad_binary(c, OP_MUL, c->gy, y), &axis, 1, true);
    c->gx[0] = ad_binary(c, OP_MUL, y, ad_binary(c, OP_SUB, c->gy, dot));
}

void vjp_log_softmax(VjpCtx *c) { /* gy - exp(y) * sum(gy) */
    int axis = c->g->nodes[c->id].attr.axis;
    int s = ad_reduce(c, OP_REDUCE_SUM, c->gy, &axis, 1, true);
    c->gx[0] = ad_binary(c, OP_SUB, c->gy, ad_binary(c, OP_MUL, ad_unary(c, OP_EXP, c->id), s));
}
