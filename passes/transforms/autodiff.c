/* autodiff.c: reverse-mode autodiff as a graph-to-graph pass (see autodiff.h).
 *
 * The forward nodes are already topologically ordered, so one sweep from the
 * loss down to node 0 visits every node after all of its users: each visited
 * node's accumulated output gradient is complete, and its VJP rule turns it
 * into operand gradients, summed on fan-out. Only nodes on a path from a wrt
 * node to the loss are differentiated; comparisons, integer values, frozen
 * params and stop_gradient (the DSL's detach) stop the sweep. */
#include "passes/transforms/autodiff.h"

#include <stdlib.h>

/* ---- the pass ---- */

static bool differentiable_dtype(DType t) { return dtype_is_float(t); }

bool autodiff(Graph *g, int loss, const int *wrt, int n_wrt, int *grads, Diag *d) {
    const Node *L = &g->nodes[loss];
    if (shape_numel(&L->shape) != 1 || !dtype_is_float(L->dtype)) {
        char t[96];
        return diag_error(d, L->loc, "the loss must be a floating-point scalar, got %s",
                          type_format(t, sizeof t, L->dtype, &L->shape));
    }
    VjpCtx seed = {.g = g, .d = d, .id = loss};
    int one = ad_node(&seed, OP_CONST, NULL, 0, &(NodeAttrs){.value = 1, .dtype = L->dtype, .shape = L->shape});
    return one >= 0 && autodiff_seeded(g, &loss, &one, 1, wrt, n_wrt, grads, d);
}

bool autodiff_seeded(Graph *g, const int *outs, const int *seeds, int n_out, const int *wrt, int n_wrt, int *grads,
                     Diag *d) {
    int n = g->n_nodes, top = -1;
    /* on_path: reachable from a wrt node (forward) and reaching an output (backward) */
    bool *from_wrt = calloc((size_t)n + 1, 1), *to_loss = calloc((size_t)n + 1, 1);
    int *grad = malloc(sizeof(int) * ((size_t)n + 1));
    if (!from_wrt || !to_loss || !grad) abort();
    for (int i = 0; i < n_wrt; i++)
        if (!(g->nodes[wrt[i]].op == OP_PARAM && g->nodes[wrt[i]].attr.frozen)) from_wrt[wrt[i]] = true;
    for (int id = 0; id < n; id++) {
        const Node *x = &g->nodes[id];
        for (int k = 0; k < x->n_in && !from_wrt[id]; k++) from_wrt[id] = from_wrt[x->in[k]];
        if (!differentiable_dtype(x->dtype) || x->op == OP_STOP_GRADIENT) from_wrt[id] = false;
    }
    for (int i = 0; i < n; i++) grad[i] = -1;
    bool ok = true;
    for (int i = 0; i < n_out && ok; i++) {
        int o = outs[i];
        to_loss[o] = true;
        if (o > top) top = o;
        if (grad[o] < 0) grad[o] = seeds[i];
        else {
            VjpCtx acc = {.g = g, .d = d, .id = o};
            grad[o] = ad_binary(&acc, OP_ADD, grad[o], seeds[i]);
            ok = grad[o] >= 0;
        }
    }
    for (int id = top; id >= 0; id--)
        if (to_loss[id])
            for (int k = 0; k < g->nodes[id].n_in; k++) to_loss[g->nodes[id].in[k]] = true;

    for (int id = top; id >= 0 && ok; id--) {
        if (grad[id] < 0 || !from_wrt[id] || !to_loss[id]) continue;
        Node *x = &g->nodes[id];
        if (x->n_in == 0) continue;
        VjpCtx c = {.g = g, .d = d, .id = id, .gy = grad[id], .differentiate = autodiff_seeded};
        bool any = false;
        for (int k = 0; k < x->n_in; k++) {
            c.needs[k] = from_wrt[x->in[k]];
            c.gx[k] = -1;
            any |= c.needs[k];
        }
        if (!any) continue;
        if (!op_table[x->op].vjp) {
            ok = diag_error(d, x->loc, "cannot differentiate through '%s'", op_table[x->op].name);
            break;
        }
        op_table[x->op].vjp(&c);
        if (c.failed) {
            ok = false;
            break;
        }
        for (int k = 0; k < g->nodes[id].n_in && ok; k++) {
            int in = g->nodes[id].in[k];
            if (!c.needs[k] || c.gx[k] < 0) continue;
            if (grad[in] < 0) grad[in] = c.gx[k];
            else {
                VjpCtx acc = {.g = g, .d = d, .id = in};
                grad[in] = ad_binary(&acc, OP_ADD, grad[in], c.gx[k]);
                ok = grad[in] >= 0;
            }
        }
    }
    for (int i = 0; i < n_wrt && ok; i++) {
        const Node *w = &g->nodes[wrt[i]];
        if (w->op == OP_PARAM && w->attr.frozen) grads[i] = -1;
        else if (grad[wrt[i]] >= 0) grads[i] = grad[wrt[i]];
        else {
            VjpCtx z = {.g = g, .d = d, .id = wrt[i]};
            grads[i] = ad_node(&z, OP_CONST, NULL, 0, &(NodeAttrs){.value = 0, .dtype = w->dtype, .shape = w->shape});
            ok = grads[i] >= 0;
        }
    }
    free(from_wrt);
    free(to_loss);
    free(grad);
    return ok;
}
