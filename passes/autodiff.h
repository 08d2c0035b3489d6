/* autodiff.h: reverse-mode differentiation of an IR graph, as a pass that
 * appends the backward computation to the same graph as ordinary IR nodes, so
 * every later pass and backend handles it unchanged.
 *
 * Each op's vector-Jacobian rule lives in its op-table row (ops.def, column
 * vjp) next to its shape rule and kernels; the rules build their nodes with
 * the small helpers below, which give every backward node the location of the
 * forward node it differentiates. */
#ifndef ETCH_PASSES_AUTODIFF_H
#define ETCH_PASSES_AUTODIFF_H

#include "ir/ir.h"

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
};

/* Differentiates scalar `loss` with respect to nodes wrt[0..n) (params or
 * inputs), appending the backward nodes to g. grads[i] receives the id of
 * d loss / d wrt[i] (a zero constant when wrt[i] does not affect loss).
 * Frozen params get no gradient (grads[i] = -1). */
bool autodiff(Graph *g, int loss, const int *wrt, int n_wrt, int *grads, Diag *d);
/* The general form: outputs outs[i] receive the gradients seeds[i] (nodes
 * of g of the same types; repeated outputs sum their seeds), and grads[i] is
 * the resulting gradient of wrt[i]. A scan's gradient differentiates its body
 * with this. */
bool autodiff_seeded(Graph *g, const int *outs, const int *seeds, int n_out, const int *wrt, int n_wrt, int *grads,
                     Diag *d);

/* ---- node builders for VJP rules (each returns the new id, -1 on error) ---- */
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
 * conv2d_backward_input); attrs may be NULL. */
int ad_node(VjpCtx *c, OpKind op, const int *ins, int n, const NodeAttrs *attrs);

#endif
