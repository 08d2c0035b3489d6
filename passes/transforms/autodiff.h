/* autodiff.h: reverse-mode differentiation of an IR graph, as a pass that
 * appends the backward computation to the same graph as ordinary IR nodes, so
 * every later pass and backend handles it unchanged.
 *
 * Each op's vector-Jacobian rule lives in its op-table row (ops.def, column
 * vjp) next to its shape rule and kernels; the rules build their nodes with
 * the builders of ir/vjp.h, which give every backward node the location of
 * the forward node it differentiates. */
#ifndef ETCH_PASSES_TRANSFORMS_AUTODIFF_H
#define ETCH_PASSES_TRANSFORMS_AUTODIFF_H

#include "ir/vjp.h"

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

#endif
