/* vjp.c: the node builders of VJP rules (ir/vjp.h). Each wraps
 * graph_add_op with the forward node's location and skips work after a
 * failure, so a rule can chain them and check c->failed once. */
#include "ir/vjp.h"

#include <string.h>

int ad_node(VjpCtx *c, OpKind op, const int *ins, int n, const NodeAttrs *at) {
    if (c->failed) return -1;
    int id = graph_add_op(c->g, op, ins, n, at, c->g->nodes[c->id].loc, c->d);
    if (id < 0) c->failed = true;
    return id;
}

int ad_unary(VjpCtx *c, OpKind op, int x) { return ad_node(c, op, (int[]){x}, 1, NULL); }
int ad_binary(VjpCtx *c, OpKind op, int a, int b) { return ad_node(c, op, (int[]){a, b}, 2, NULL); }
int ad_where(VjpCtx *c, int cond, int a, int b) { return ad_node(c, OP_WHERE, (int[]){cond, a, b}, 3, NULL); }

int ad_scalar(VjpCtx *c, double v, int like) {
    if (c->failed) return -1;
    NodeAttrs at = {.value = v, .dtype = c->g->nodes[like].dtype};
    return ad_node(c, OP_CONST, NULL, 0, &at);
}

int ad_cast(VjpCtx *c, int x, DType t) {
    if (c->failed) return -1;
    if (c->g->nodes[x].dtype == t) return x;
    return ad_node(c, OP_CAST, (int[]){x}, 1, &(NodeAttrs){.dtype = t});
}

int ad_reshape(VjpCtx *c, int x, Shape s) {
    if (c->failed) return -1;
    if (shape_equal(&c->g->nodes[x].shape, &s)) return x;
    return ad_node(c, OP_RESHAPE, (int[]){x}, 1, &(NodeAttrs){.shape = s});
}

int ad_broadcast(VjpCtx *c, int x, Shape s) {
    if (c->failed) return -1;
    if (shape_equal(&c->g->nodes[x].shape, &s)) return x;
    return ad_node(c, OP_BROADCAST, (int[]){x}, 1, &(NodeAttrs){.shape = s});
}

int ad_transpose(VjpCtx *c, int x, const int *perm) {
    if (c->failed) return -1;
    NodeAttrs at = {.n_axes = c->g->nodes[x].shape.rank};
    memcpy(at.axes, perm, sizeof(int) * (size_t)at.n_axes);
    return ad_node(c, OP_TRANSPOSE, (int[]){x}, 1, &at);
}

int ad_reduce(VjpCtx *c, OpKind op, int x, const int *axes, int n_axes, bool keepdims) {
    if (c->failed) return -1;
    NodeAttrs at = {.n_axes = n_axes, .keepdims = keepdims};
    memcpy(at.axes, axes, sizeof(int) * (size_t)n_axes);
    return ad_node(c, op, (int[]){x}, 1, &at);
}

int ad_matmul(VjpCtx *c, int a, int b) { return ad_binary(c, OP_MATMUL, a, b); }

int ad_unbroadcast(VjpCtx *c, int g, const Shape *s) {
    if (c->failed) return -1;
    const Shape gs = c->g->nodes[g].shape;
    if (shape_equal(&gs, s)) return g;
    int axes[ETCH_MAX_RANK], n = 0, off = gs.rank - s->rank;
    for (int i = 0; i < gs.rank; i++)
        if (i < off || (s->dim[i - off] == 1 && gs.dim[i] != 1)) axes[n++] = i;
    int r = n ? ad_reduce(c, OP_REDUCE_SUM, g, axes, n, true) : g;
    return ad_reshape(c, r, *s);
}

