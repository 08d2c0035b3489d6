/* builtins_norm.c: the builtins that behave differently while tracing a train
 * block (Elab.training) than in the inference graph, as PyTorch modules do in
 * train() and eval() mode:
 *
 * dropout(x, p=0.5): identity in inference. In training, keep = u >= p with u
 * from random_uniform (ir/ops/random.c) and y = where(keep, x * 1/(1-p), 0).
 * The step operand is the optimizer's step counter and each dropout site
 * gets its own seed (builtins_random.c: lb_random_step, lb_site_seed), so
 * every training step draws a new mask while a step's mask depends only on
 * (site, step, element).
 *
 * batch_norm(x, running_mean, running_var, weight, bias, momentum=0.1,
 * eps=1e-5, num_batches_tracked, ndim): channels on dim 1 of x [N, C, ...].
 * Inference normalizes with the running statistics. Training normalizes with
 * the batch statistics (biased variance over every dim but 1; a composite of
 * reductions, so gradients flow through mean and variance) and adds state
 * updates (graph_add_update) to the running statistics, PyTorch's rule:
 * running = (1 - momentum) * running + momentum * batch_stat, with the
 * unbiased variance for running_var, and num_batches_tracked += 1. The running
 * statistics must be frozen params; when one layer runs twice in a step, the
 * second update starts from the first's result, as in PyTorch. */
#include <math.h>
#include <string.h>

#include "frontend/builtins_layers.h"

static bool result(int id, SrcLoc loc, Value *out) {
    if (id < 0) return false;
    *out = (Value){.kind = V_TENSOR, .id = id, .loc = loc};
    return true;
}

/* ---- dropout ---- */

bool lb_dropout(Elab *e, const LayerBuiltin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    int x;
    if (!need_tensor(e, &args[0], lb_fname(e, b), &x)) return false;
    DType t = e->graph->nodes[x].dtype;
    if (!dtype_is_float(t))
        return diag_error(e->diag, args[0].loc, "dropout() needs a floating-point tensor, got %s", lb_type(e, x));
    double p = 0.5;
    if (given[1] && !value_number(e, &args[1], "p of dropout()", &p)) return false;
    if (!(p >= 0 && p <= 1))
        return diag_error(e->diag, args[1].loc, "dropout probability has to be between 0 and 1, but got %g", p);
    if (!e->training || p == 0) return result(x, loc, out);
    if (p == 1) return result(lb_bin(e, OP_MUL, x, lb_const(e, 0, t, loc), loc), loc, out);
    int step = lb_random_step(e, lb_fname(e, b), loc);
    NodeAttrs ra = {.seed = lb_site_seed(e), .dtype = t, .shape = e->graph->nodes[x].shape};
    int u = lb_op(e, OP_RANDOM_UNIFORM, &step, 1, &ra, loc);
    /* u is a multiple of 2^-24: rounding p up to one keeps u >= p exact in f32 and f64 alike */
    double pq = ceil(p * 16777216.0) / 16777216.0;
    int keep = lb_bin(e, OP_GE, u, lb_const(e, pq, t, loc), loc);
    int scaled = lb_bin(e, OP_MUL, x, lb_const(e, 1.0 / (1.0 - p), t, loc), loc);
    return result(lb_op(e, OP_WHERE, (int[]){keep, scaled, lb_const(e, 0, t, loc)}, 3, NULL, loc), loc, out);
}

/* ---- batch_norm ---- */

/* A param's value as of the updates traced so far (a layer called twice). */
static int current_value(const Graph *g, int param) {
    for (int k = g->n_updates - 1; k >= 0; k--)
        if (g->upd_dst[k] == param) return g->upd_src[k];
    return param;
}

static void set_update(Graph *g, int param, int value) {
    for (int k = 0; k < g->n_updates; k++)
        if (g->upd_dst[k] == param) {
            g->upd_src[k] = value;
            return;
        }
    graph_add_update(g, param, value);
}

/* A per-channel vector [C] of x's dtype; with `state`, a frozen param. */
static bool channel_vec(Elab *e, const LayerBuiltin *b, const Value *v, const char *what, int x, bool state, int *id) {
    const char *fn = lb_fname(e, b);
    if (!need_tensor(e, v, arena_printf(e->arena, "%s of %s", what, fn), id)) return false;
    const Node *xn = &e->graph->nodes[x], *n = &e->graph->nodes[*id];
    int64_t C = xn->shape.dim[1];
    if (n->dtype != xn->dtype || n->shape.rank != 1 || n->shape.dim[0] != C)
        return diag_error(e->diag, v->loc, "%s of %s must be %s[%lld] (one per channel of the input %s), got %s", what,
                          fn, dtype_name(xn->dtype), (long long)C, lb_type(e, x), lb_type(e, *id));
    if (state && (n->op != OP_PARAM || !n->attr.frozen))
        return diag_error(e->diag, v->loc, "%s of %s must be a frozen param (training updates it), got %s", what, fn,
                          value_describe(e, v));
    return true;
}

/* ndim: an allowed rank, or a list of them ("4-D", "2-D or 3-D"). */
static bool check_ndim(Elab *e, const LayerBuiltin *b, const Value *v, int x, SrcLoc loc) {
    int n = v->kind == V_LIST ? v->n_items : 1, rank = e->graph->nodes[x].shape.rank;
    bool ok = false;
    const char *want = "";
    for (int i = 0; i < n; i++) {
        int64_t r;
        if (!value_int(e, v->kind == V_LIST ? &v->items[i] : v, "ndim of batch_norm()", &r)) return false;
        ok |= r == rank;
        want = arena_printf(e->arena, "%s%s%lld-D", want, i == 0 ? "" : i + 1 == n ? " or " : ", ", (long long)r);
    }
    if (!ok) return diag_error(e->diag, loc, "%s expects a %s input, got %s", lb_fname(e, b), want, lb_type(e, x));
    return true;
}

bool lb_batch_norm(Elab *e, const LayerBuiltin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    int x, rm, rv, w = -1, bias = -1, nbt = -1;
    if (!need_tensor(e, &args[0], lb_fname(e, b), &x)) return false;
    const Node *xn = &e->graph->nodes[x];
    if (xn->shape.rank < 2 || !dtype_is_float(xn->dtype))
        return diag_error(e->diag, args[0].loc, "%s needs a floating-point input [N, C, ...] with at least 2 dims, got %s",
                          lb_fname(e, b), lb_type(e, x));
    if (given[8] && !check_ndim(e, b, &args[8], x, loc)) return false;
    if (!channel_vec(e, b, &args[1], "running_mean", x, true, &rm) ||
        !channel_vec(e, b, &args[2], "running_var", x, true, &rv) ||
        (given[3] && !channel_vec(e, b, &args[3], "weight", x, false, &w)) ||
        (given[4] && !channel_vec(e, b, &args[4], "bias", x, false, &bias)))
        return false;
    double momentum = 0.1, eps = 1e-5;
    if ((given[5] && !value_number(e, &args[5], "momentum of batch_norm()", &momentum)) ||
        (given[6] && !value_number(e, &args[6], "eps of batch_norm()", &eps)))
        return false;
    if (!(eps >= 0)) return diag_error(e->diag, args[6].loc, "eps of batch_norm() must be >= 0, got %g", eps);
    if (given[7]) {
        if (!need_tensor(e, &args[7], "num_batches_tracked of batch_norm()", &nbt)) return false;
        const Node *n = &e->graph->nodes[nbt];
        if (n->op != OP_PARAM || !n->attr.frozen || dtype_is_float(n->dtype) || n->dtype == DT_BOOL ||
            shape_numel(&n->shape) != 1)
            return diag_error(e->diag, args[7].loc, "num_batches_tracked of batch_norm() must be a frozen integer "
                                                    "scalar param (i64[]), got %s",
                              value_describe(e, &args[7]));
    }
    xn = &e->graph->nodes[x];
    DType t = xn->dtype;
    Shape xs = xn->shape, cs = {.rank = 1, .dim = {xs.dim[1]}}, bs = {.rank = xs.rank};
    for (int i = 0; i < xs.rank; i++) bs.dim[i] = i == 1 ? xs.dim[1] : 1;
    int d, inv;
    if (e->training) {
        int64_t count = shape_numel(&xs) / xs.dim[1];
        if (count < 2)
            return diag_error(e->diag, loc, "%s in training needs more than 1 value per channel, got input %s",
                              lb_fname(e, b), lb_type(e, x));
        NodeAttrs red = {.keepdims = true};
        for (int i = 0; i < xs.rank; i++)
            if (i != 1) red.axes[red.n_axes++] = i;
        int mean = lb_op(e, OP_REDUCE_MEAN, &x, 1, &red, loc);
        d = lb_bin(e, OP_SUB, x, mean, loc);
        int sq = lb_bin(e, OP_MUL, d, d, loc);
        int var = lb_op(e, OP_REDUCE_MEAN, &sq, 1, &red, loc);
        inv = lb_op(e, OP_RSQRT, (int[]){lb_bin(e, OP_ADD, var, lb_const(e, eps, t, loc), loc)}, 1, NULL, loc);
        /* running statistics: (1 - m) * running + m * stat; the variance unbiased */
        double unbias = (double)count / (double)(count - 1);
        int new_rm = lb_bin(e, OP_ADD, lb_bin(e, OP_MUL, lb_const(e, momentum, t, loc), lb_reshape(e, mean, cs, loc), loc),
                            lb_bin(e, OP_MUL, lb_const(e, 1 - momentum, t, loc), current_value(e->graph, rm), loc), loc);
        int new_rv = lb_bin(e, OP_ADD,
                            lb_bin(e, OP_MUL, lb_const(e, momentum * unbias, t, loc), lb_reshape(e, var, cs, loc), loc),
                            lb_bin(e, OP_MUL, lb_const(e, 1 - momentum, t, loc), current_value(e->graph, rv), loc), loc);
        if (new_rm < 0 || new_rv < 0) return false;
        set_update(e->graph, rm, new_rm);
        set_update(e->graph, rv, new_rv);
        if (nbt >= 0) {
            int new_nbt = lb_bin(e, OP_ADD, current_value(e->graph, nbt),
                                 lb_const(e, 1, e->graph->nodes[nbt].dtype, loc), loc);
            if (new_nbt < 0) return false;
            set_update(e->graph, nbt, new_nbt);
        }
    } else {
        d = lb_bin(e, OP_SUB, x, lb_reshape(e, rm, bs, loc), loc);
        int rvb = lb_reshape(e, rv, bs, loc);
        inv = lb_op(e, OP_RSQRT, (int[]){lb_bin(e, OP_ADD, rvb, lb_const(e, eps, t, loc), loc)}, 1, NULL, loc);
    }
    int y = lb_bin(e, OP_MUL, d, inv, loc);
    if (w >= 0) y = lb_bin(e, OP_MUL, y, lb_reshape(e, w, bs, loc), loc);
    if (bias >= 0) y = lb_bin(e, OP_ADD, y, lb_reshape(e, bias, bs, loc), loc);
    return result(y, loc, out);
}
