/* train.c: optimizers as IR (see train.h). The update rules follow PyTorch's
 * torch.optim implementations step for step, so a compiled step matches
 * torch.optim on the same weights and batch:
 *   SGD:   g = grad + wd*p;  buf = step==0 ? g : momentum*buf + (1-dampening)*g;
 *          g = nesterov ? g + momentum*buf : buf;  p -= lr*g
 *   Adam:  g = grad + wd*p;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;
 *          p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
 *   AdamW: p *= 1 - lr*wd first, then Adam without wd.
 * The step count t and the bias corrections are computed in float64. */
#include "passes/transforms/train.h"

#include <stdio.h>
#include <string.h>

#include "passes/transforms/autodiff.h"

OptimSpec optim_defaults(OptimKind kind) {
    OptimSpec s = {.kind = kind, .lr = kind == OPTIM_SGD ? 0.01 : 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    if (kind == OPTIM_ADAMW) s.weight_decay = 1e-2;
    return s;
}

const char *optim_name(OptimKind kind) {
    return kind == OPTIM_SGD ? "sgd" : kind == OPTIM_ADAM ? "adam" : "adamw";
}

/* Node builders sharing one context (the location of the optimizer spec). */
typedef struct Builder {
    Graph *g;
    Diag *d;
    SrcLoc loc;
    bool failed;
} Builder;

static int b_op(Builder *b, OpKind op, const int *ins, int n, const NodeAttrs *at) {
    if (b->failed) return -1;
    int id = graph_add_op(b->g, op, ins, n, at, b->loc, b->d);
    if (id < 0) b->failed = true;
    return id;
}
static int b_bin(Builder *b, OpKind op, int x, int y) { return b_op(b, op, (int[]){x, y}, 2, NULL); }
static int b_un(Builder *b, OpKind op, int x) { return b_op(b, op, (int[]){x}, 1, NULL); }
static int b_const(Builder *b, double v, DType t) {
    return b_op(b, OP_CONST, NULL, 0, &(NodeAttrs){.value = v, .dtype = t});
}
static int b_cast(Builder *b, int x, DType t) {
    if (b->failed || b->g->nodes[x].dtype == t) return x;
    return b_op(b, OP_CAST, (int[]){x}, 1, &(NodeAttrs){.dtype = t});
}
/* a*x + c*y with scalar constants */
static int b_axpby(Builder *b, double a, int x, double c, int y) {
    DType t = b->g->nodes[x].dtype;
    return b_bin(b, OP_ADD, b_bin(b, OP_MUL, b_const(b, a, t), x), b_bin(b, OP_MUL, b_const(b, c, t), y));
}

static int add_state(Builder *b, const char *param, const char *what, DType t, Shape s) {
    char name[512];
    snprintf(name, sizeof name, "optimizer.%s.%s", param, what);
    return b_op(b, OP_PARAM, NULL, 0,
                &(NodeAttrs){.name = name, .dtype = t, .shape = s, .init = {INIT_ZEROS, 0, 0}, .frozen = true});
}

static bool check_spec(const OptimSpec *s, Diag *d) {
    if (!(s->lr > 0)) return diag_error(d, s->loc, "%s: lr must be positive, got %g", optim_name(s->kind), s->lr);
    if (s->weight_decay < 0)
        return diag_error(d, s->loc, "%s: weight_decay must be >= 0, got %g", optim_name(s->kind), s->weight_decay);
    if (s->kind == OPTIM_SGD) {
        if (s->momentum < 0) return diag_error(d, s->loc, "sgd: momentum must be >= 0, got %g", s->momentum);
        if (s->nesterov && (s->momentum <= 0 || s->dampening != 0))
            return diag_error(d, s->loc, "sgd: nesterov needs momentum > 0 and dampening 0 (momentum %g, dampening %g)",
                              s->momentum, s->dampening);
    } else {
        if (!(s->beta1 >= 0 && s->beta1 < 1) || !(s->beta2 >= 0 && s->beta2 < 1))
            return diag_error(d, s->loc, "%s: betas must be in [0, 1), got (%g, %g)", optim_name(s->kind), s->beta1,
                              s->beta2);
        if (!(s->eps > 0)) return diag_error(d, s->loc, "%s: eps must be positive, got %g", optim_name(s->kind), s->eps);
    }
    return true;
}

bool train_build_step(Graph *g, const OptimSpec *spec, Diag *d) {
    if (!check_spec(spec, d)) return false;
    if (g->n_outputs < 1) return diag_error(d, spec->loc, "training needs a loss");
    int loss = g->outputs[0];
    /* trainable: non-frozen floating-point params (snapshot: we add state params below) */
    int n_params = g->n_params, n_train = 0;
    int *wrt = arena_alloc(g->arena, sizeof(int) * (size_t)(n_params + 1));
    int *grads = arena_alloc(g->arena, sizeof(int) * (size_t)(n_params + 1));
    for (int i = 0; i < n_params; i++) {
        const Node *p = &g->nodes[g->params[i]];
        if (!p->attr.frozen && dtype_is_float(p->dtype)) wrt[n_train++] = g->params[i];
    }
    if (n_train == 0) return diag_error(d, spec->loc, "the model has no trainable parameters");
    if (!autodiff(g, loss, wrt, n_train, grads, d)) return false;

    Builder b = {.g = g, .d = d, .loc = spec->loc};
    /* optimizer.step (f64 scalar): t = step + 1 drives Adam's bias correction
     * and SGD's first-step momentum rule. The loss graph may already read it
     * (dropout masks depend on the step): then that param is the counter. */
    int step = graph_find_param(g, "optimizer.step");
    if (step >= 0) {
        const Node *sn = &g->nodes[step];
        if (sn->dtype != DT_F64 || sn->shape.rank != 0 || !sn->attr.frozen)
            return diag_error(d, sn->loc, "parameter 'optimizer.step' must be the optimizer's step counter (a frozen "
                                          "f64 scalar)");
    } else {
        step = b_op(&b, OP_PARAM, NULL, 0,
                    &(NodeAttrs){.name = "optimizer.step", .dtype = DT_F64, .init = {INIT_ZEROS, 0, 0}, .frozen = true});
    }
    int t = b_bin(&b, OP_ADD, step, b_const(&b, 1, DT_F64));
    int bc1 = -1, bc2_sqrt = -1, first = -1;
    if (spec->kind != OPTIM_SGD) {
        bc1 = b_bin(&b, OP_SUB, b_const(&b, 1, DT_F64), b_bin(&b, OP_POW, b_const(&b, spec->beta1, DT_F64), t));
        bc2_sqrt = b_un(&b, OP_SQRT,
                        b_bin(&b, OP_SUB, b_const(&b, 1, DT_F64), b_bin(&b, OP_POW, b_const(&b, spec->beta2, DT_F64), t)));
    } else if (spec->momentum != 0 && spec->dampening != 0) {
        first = b_bin(&b, OP_EQ, step, b_const(&b, 0, DT_F64));
    }
    for (int i = 0; i < n_train && !b.failed; i++) {
        int p = wrt[i], gr = grads[i];
        const char *name = g->nodes[p].attr.name;
        DType dt = g->nodes[p].dtype;
        Shape sh = g->nodes[p].shape;
        int pw = p; /* the weight the update starts from (AdamW decays it first) */
        if (spec->weight_decay != 0 && spec->kind != OPTIM_ADAMW) gr = b_axpby(&b, 1, gr, spec->weight_decay, p);
        int np;
        if (spec->kind == OPTIM_SGD) {
            if (spec->momentum != 0) {
                int buf = add_state(&b, name, "momentum_buffer", dt, sh);
                int nb = b_axpby(&b, spec->momentum, buf, 1 - spec->dampening, gr);
                if (first >= 0) nb = b_op(&b, OP_WHERE, (int[]){first, gr, nb}, 3, NULL);
                graph_add_update(g, buf, nb);
                gr = spec->nesterov ? b_axpby(&b, 1, gr, spec->momentum, nb) : nb;
            }
            np = b_bin(&b, OP_SUB, p, b_bin(&b, OP_MUL, b_const(&b, spec->lr, dt), gr));
        } else {
            if (spec->kind == OPTIM_ADAMW && spec->weight_decay != 0)
                pw = b_bin(&b, OP_MUL, p, b_const(&b, 1 - spec->lr * spec->weight_decay, dt));
            int m = add_state(&b, name, "exp_avg", dt, sh), v = add_state(&b, name, "exp_avg_sq", dt, sh);
            int nm = b_axpby(&b, spec->beta1, m, 1 - spec->beta1, gr);
            int nv = b_axpby(&b, spec->beta2, v, 1 - spec->beta2, b_bin(&b, OP_MUL, gr, gr));
            graph_add_update(g, m, nm);
            graph_add_update(g, v, nv);
            int step_size = b_cast(&b, b_bin(&b, OP_DIV, b_const(&b, spec->lr, DT_F64), bc1), dt);
            int denom = b_bin(&b, OP_ADD, b_bin(&b, OP_DIV, b_un(&b, OP_SQRT, nv), b_cast(&b, bc2_sqrt, dt)),
                              b_const(&b, spec->eps, dt));
            np = b_bin(&b, OP_SUB, pw, b_bin(&b, OP_MUL, step_size, b_bin(&b, OP_DIV, nm, denom)));
        }
        if (!b.failed) graph_add_update(g, p, np);
    }
    if (!b.failed) graph_add_update(g, step, t);
    return !b.failed;
}
