/* source.c: ops without operands: graph inputs, parameters and constants.
 * Their type is what the builder asked for (attr.dtype/attr.shape); the eager
 * executor and the C driver bind inputs and params to storage themselves. */
#include <stdlib.h>

#include "ir/ops/ops_impl.h"

bool shape_source(Graph *g, Node *n, Diag *d) {
    (void)g;
    if (n->attr.shape.rank < 0 || n->attr.shape.rank > ETCH_MAX_RANK)
        return diag_error(d, n->loc, "%s has rank %d; at most %d dimensions are supported", op_table[n->op].name,
                          n->attr.shape.rank, ETCH_MAX_RANK);
    for (int i = 0; i < n->attr.shape.rank; i++)
        if (n->attr.shape.dim[i] <= 0)
            return diag_error(d, n->loc, "%s dimension %d is %lld; dimensions must be positive",
                              op_table[n->op].name, i, (long long)n->attr.shape.dim[i]);
    if (n->attr.dtype >= DT_COUNT) return diag_error(d, n->loc, "%s has an invalid dtype", op_table[n->op].name);
    if (n->op != OP_CONST && (!n->attr.name || !n->attr.name[0]))
        return diag_error(d, n->loc, "%s needs a name", op_table[n->op].name);
    n->dtype = n->attr.dtype;
    n->shape = n->attr.shape;
    return true;
}

void eval_source(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    (void)g, (void)id, (void)out, (void)ins;
    abort(); /* the executor binds inputs and params; reaching here is a bug */
}

void eval_const(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    (void)ins;
    double v = g->nodes[id].attr.value;
    for (int64_t i = 0, n = tensor_numel(out); i < n; i++) tensor_set(out, i, v);
}

/* iota: element values are their index along attr.axis (0, 1, 2, ...); with
 * broadcasting and eq it builds one-hot masks for class labels. */
bool shape_iota(Graph *g, Node *n, Diag *d) {
    NodeAttrs named = n->attr;
    named.name = "iota"; /* sources otherwise need names */
    Node tmp = *n;
    tmp.attr = named;
    if (!shape_source(g, &tmp, d)) return false;
    if (n->attr.axis < 0 || n->attr.axis >= n->attr.shape.rank)
        return diag_error(d, n->loc, "iota axis %d is out of range for rank %d", n->attr.axis, n->attr.shape.rank);
    if (dtype_is_quantized(tmp.dtype)) /* indices past 127 would not fit */
        return diag_error(d, n->loc, "iota of quantized dtype %s is not defined", dtype_name(tmp.dtype));
    n->dtype = tmp.dtype;
    n->shape = tmp.shape;
    return true;
}

void eval_iota(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    (void)ins;
    int64_t outer, len, inner;
    ops_split_axis(&out->shape, g->nodes[id].attr.axis, &outer, &len, &inner);
    for (int64_t i = 0, n = tensor_numel(out); i < n; i++) tensor_set(out, i, (double)((i / inner) % len));
}
