/* vjp.h: what an op's vector-Jacobian rule (the op table's vjp column) sees,
 * and the node builders it writes its gradient with. Rules live next to their
 * op in ir/ops/<family>.c; the reverse sweep that calls them is a transform
 * above the IR (passes/transforms/autodiff.c), which fills the context.
 *
 * Every builder gives its node the location of the forward node being
 * differentiated, so an error in a gradient points at the user's code. Each
 * returns the new node's id, or -1 after a failure (reported through c->d;
 * c->failed stays set and later builders do nothing). */
#ifndef ETCH_IR_VJP_H
#define ETCH_IR_VJP_H

#include "ir/ir.h"

/* Differentiates graph g: outputs outs[i] receive seeds[i]; grads[i] is the
 * gradient of wrt[i] (the signature of autodiff_seeded, passes/transforms/autodiff.h). */
typedef bool (*VjpSeededFn)(Graph *g, const int *outs, const int *seeds, int n_out, const int *wrt, int n_wrt,
                            int *grads, Diag *d);

/* What a VJP rule sees: the graph being extended, the node, its output
 * gradient, and which operands need a gradient. */
struct VjpCtx {
    Graph *g;
    Diag *d;
    int id;          /* the forward node */
    int gy;          /* gradient of the loss w.r.t. node id (same type) */
    bool needs[ETCH_MAX_OPERANDS];   /* needs[k]: operand k wants a gradient */
    int gx[ETCH_MAX_OPERANDS];     /* out: gradient w.r.t. operand k (same type as it), or -1 */
    bool failed;     /* a helper failed to build a node (reported through d) */
    VjpSeededFn differentiate; /* the running autodiff, for rules that differentiate a body graph (scan) */
};

int ad_unary(VjpCtx *c, OpKind op, int x);
int ad_binary(VjpCtx *c, OpKind op, int a, int b);
int ad_where(VjpCtx *c, int cond, int a, int b);
/* A scalar constant of the dtype of node `like`. */
int ad_scalar(VjpCtx *c, double v, int like);
int ad_cast(VjpCtx *c, int x, DType t);
int ad_reshape(VjpCtx *c, int x, Shape s);
int ad_broadcast(VjpCtx *c, int x, Shape s);
int ad_transpose(VjpCtx *c, int x, const int *perm);
int ad_reduce(VjpCtx *c, OpKind op, int x, const int *axes, int n_axes, bool keepdims);
int ad_matmul(VjpCtx *c, int a, int b);
/* Sums gradient g (shaped like a broadcast result) back to shape s. */
int ad_unbroadcast(VjpCtx *c, int g, const Shape *s);
/* Any op with explicit attributes (e.g. a dedicated gradient kernel such as
 * conv2d_backward_input, or a constant); attrs may be NULL. */
int ad_node(VjpCtx *c, OpKind op, const int *ins, int n, const NodeAttrs *attrs);

#endif
