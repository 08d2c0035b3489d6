/* train.c: optimizers as IR (see train.h). The update rules follow PyTorch's
 * torch.optim implementations step for step, so a compiled step matches
 * torch.optim on the same weights and batch:
 *   SGD:   g = grad + wd*p;  buf = step==0 ? g : momentum*buf + (1-dampening)*g;
 *          g = nesterov ? g + momentum*buf : buf;  p -= lr*g
 *   Adam:  g = grad + wd*p;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;
 *          p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
 *   AdamW: p *= 1 - lr*wd first, then Adam without wd.
 * The step count t and the bias corrections are computed in float64, as is
 * a scheduled lr (lr_at below) and the global norm of clip_grad_norm. */
#include "passes/transforms/train.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "passes/transforms/autodiff.h"

OptimSpec optim_defaults(OptimKind kind) {
    OptimSpec s = {.kind = kind, .lr = kind == OPTIM_SGD ? 0.01 : 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    if (kind == OPTIM_ADAMW) s.weight_decay = 1e-2;
    return s;
}

const char *optim_counter(const OptimSpec *spec) { return spec->counter ? spec->counter : "optimizer.step"; }

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
static const char *const HPARAM_NAMES[HP_COUNT] = {"lr", "momentum", "dampening", "weight_decay", "beta1", "beta2",
                                                    "eps"};
/* The hyperparameters each optimizer takes, as bits 1 << Hparam. */
#define HP_BIT(h) (1u << (h))
static const unsigned HPARAMS_SGD = HP_BIT(HP_LR) | HP_BIT(HP_MOMENTUM) | HP_BIT(HP_DAMPENING) | HP_BIT(HP_WEIGHT_DECAY);
static const unsigned HPARAMS_ADAM = HP_BIT(HP_LR) | HP_BIT(HP_BETA1) | HP_BIT(HP_BETA2) | HP_BIT(HP_EPS) |
                                     HP_BIT(HP_WEIGHT_DECAY);

const char *hparam_name(Hparam h) { return HPARAM_NAMES[h]; }

static unsigned hparams_of(const OptimSpec *spec) { return spec->kind == OPTIM_SGD ? HPARAMS_SGD : HPARAMS_ADAM; }

Hparam hparam_lookup(const OptimSpec *spec, const char *name) {
    for (int h = 0; h < HP_COUNT; h++)
        if ((hparams_of(spec) & HP_BIT(h)) && !strcmp(name, HPARAM_NAMES[h])) return (Hparam)h;
    return HP_COUNT;
}

void hparam_list(const OptimSpec *spec, char *buf, size_t n) {
    size_t used = 0;
    buf[0] = 0;
    for (int h = 0; h < HP_COUNT && used < n; h++)
        if (hparams_of(spec) & HP_BIT(h))
            used += (size_t)snprintf(buf + used, n - used, "%s%s", used ? ", " : "", HPARAM_NAMES[h]);
}

double *hparam_field(OptimSpec *spec, Hparam h) {
    double *fields[HP_COUNT] = {&spec->lr, &spec->momentum, &spec->dampening, &spec->weight_decay,
                                &spec->beta1, &spec->beta2, &spec->eps};
    return fields[h];
}

/* Whether h is read at run time. */
static bool hp_runtime(const OptimSpec *spec, Hparam h) { return (spec->runtime & HP_BIT(h)) != 0; }

/* A scalar coefficient of the update: a literal, or hyperparameter hp (or
 * 1 minus it, one_minus), constant or read at run time. */
typedef struct Coef {
    int hp; /* an Hparam, or -1: the literal v */
    bool one_minus;
    double v;
} Coef;

static Coef lit(double v) { return (Coef){-1, false, v}; }
static Coef hpc(Hparam h, bool one_minus) { return (Coef){(int)h, one_minus, 0}; }

/* The param "optimizer.hparam.<name>" holding h at run time (f64 scalar). */
static int hp_param(Builder *b, const OptimSpec *spec, Hparam h) {
    char name[64];
    snprintf(name, sizeof name, "optimizer.hparam.%s", HPARAM_NAMES[h]);
    int found = graph_find_param(b->g, name);
    if (found >= 0) return found;
    double v = *hparam_field((OptimSpec *)spec, h);
    return b_op(b, OP_PARAM, NULL, 0,
                &(NodeAttrs){.name = name, .dtype = DT_F64, .init = {INIT_CONST, v, 0}, .frozen = true});
}

/* Coefficient c as a scalar of dtype t: a constant (computed in double, then
 * rounded to t, as before), or the runtime param's expression in f64 cast to t. */
static int b_coef(Builder *b, const OptimSpec *spec, Coef c, DType t) {
    if (c.hp < 0) return b_const(b, c.v, t);
    double v = *hparam_field((OptimSpec *)spec, (Hparam)c.hp);
    if (!hp_runtime(spec, (Hparam)c.hp)) return b_const(b, c.one_minus ? 1 - v : v, t);
    int n = hp_param(b, spec, (Hparam)c.hp);
    if (c.one_minus) n = b_bin(b, OP_SUB, b_const(b, 1, DT_F64), n);
    return b_cast(b, n, t);
}

/* a*x + c*y with scalar coefficients */
static int b_axpby(Builder *b, const OptimSpec *spec, Coef a, int x, Coef c, int y) {
    DType t = b->g->nodes[x].dtype;
    return b_bin(b, OP_ADD, b_bin(b, OP_MUL, b_coef(b, spec, a, t), x), b_bin(b, OP_MUL, b_coef(b, spec, c, t), y));
}

/* cos(pi * p) for a float64 p in [0, 1], from ops the IR has: with
 * u = pi * (p - 1/2) in [-pi/2, pi/2], cos(pi * p) = -sin(u), and sin's
 * Taylor series to u^21 is within 1e-15 there (Horner's rule). */
static int b_cos_pi(Builder *b, int p) {
    enum { TERMS = 11 };
    double c[TERMS] = {1}; /* c[k] = (-1)^k / (2k+1)! */
    for (int k = 1; k < TERMS; k++) c[k] = -c[k - 1] / ((double)(2 * k) * (double)(2 * k + 1));
    int u = b_bin(b, OP_MUL, b_bin(b, OP_SUB, p, b_const(b, 0.5, DT_F64)), b_const(b, 3.14159265358979323846, DT_F64));
    int u2 = b_bin(b, OP_MUL, u, u), acc = b_const(b, c[TERMS - 1], DT_F64);
    for (int k = TERMS - 2; k >= 0; k--) acc = b_bin(b, OP_ADD, b_bin(b, OP_MUL, acc, u2), b_const(b, c[k], DT_F64));
    return b_un(b, OP_NEG, b_bin(b, OP_MUL, acc, u));
}

/* The scheduled lr of step s (a float64 scalar node; see LrSchedule in
 * train.h), or -1 for a constant lr (the update then uses a constant). */
static int lr_at(Builder *b, const OptimSpec *spec, int s) {
    const LrSchedule *r = &spec->schedule;
    bool lr_runtime = hp_runtime(spec, HP_LR);
    if (r->kind == LR_CONSTANT) return lr_runtime ? hp_param(b, spec, HP_LR) : -1; /* -1: the constant-lr step */
    int lr = b_coef(b, spec, hpc(HP_LR, false), DT_F64);
    if (r->kind == LR_STEP) { /* lr * gamma ^ floor(s / step_size); s >= 0, so a cast to i64 floors */
        int k = b_cast(b, b_cast(b, b_bin(b, OP_DIV, s, b_const(b, (double)r->step_size, DT_F64)), DT_I64), DT_F64);
        return b_bin(b, OP_MUL, lr, b_bin(b, OP_POW, b_const(b, r->gamma, DT_F64), k));
    }
    double m = r->min_lr / spec->lr, span = (double)(r->total - r->warmup > 1 ? r->total - r->warmup : 1);
    int p = b_bin(b, OP_DIV, b_bin(b, OP_SUB, s, b_const(b, (double)r->warmup, DT_F64)), b_const(b, span, DT_F64));
    p = b_bin(b, OP_MIN, p, b_const(b, 1, DT_F64));
    int half = b_bin(b, OP_MUL, b_const(b, 0.5, DT_F64), b_bin(b, OP_ADD, b_const(b, 1, DT_F64), b_cos_pi(b, p)));
    int m_node = lr_runtime ? b_bin(b, OP_DIV, b_const(b, r->min_lr, DT_F64), lr) : b_const(b, m, DT_F64);
    int one_minus_m = lr_runtime ? b_bin(b, OP_SUB, b_const(b, 1, DT_F64), m_node) : b_const(b, 1 - m, DT_F64);
    int decay = b_bin(b, OP_ADD, m_node, b_bin(b, OP_MUL, one_minus_m, half));
    if (r->warmup > 0) {
        int ramp = b_bin(b, OP_DIV, s, b_const(b, (double)r->warmup, DT_F64));
        int warming = b_bin(b, OP_LT, s, b_const(b, (double)r->warmup, DT_F64));
        decay = b_op(b, OP_WHERE, (int[]){warming, ramp, decay}, 3, NULL);
    }
    return b_bin(b, OP_MUL, lr, decay);
}

/* The lr as a scalar of dtype t: the constant when the lr is constant
 * (lr_node < 0), else the scheduled one cast to t. */
static int lr_as(Builder *b, const OptimSpec *spec, int lr_node, DType t) {
    return lr_node < 0 ? b_const(b, spec->lr, t) : b_cast(b, lr_node, t);
}

/* torch.nn.utils.clip_grad_norm_: every gradient times
 * min(1, C / (norm + 1e-6)), norm the L2 norm of all of them together
 * (summed in float64). Rewrites grads in place. */
static void clip_grads(Builder *b, int *grads, int n, double max_norm) {
    int total = -1;
    for (int i = 0; i < n; i++) {
        const Node *gn = &b->g->nodes[grads[i]];
        NodeAttrs all = {.n_axes = gn->shape.rank};
        for (int k = 0; k < gn->shape.rank; k++) all.axes[k] = k;
        int sq = b_bin(b, OP_MUL, grads[i], grads[i]);
        if (gn->shape.rank > 0) sq = b_op(b, OP_REDUCE_SUM, (int[]){sq}, 1, &all);
        sq = b_cast(b, sq, DT_F64);
        total = total < 0 ? sq : b_bin(b, OP_ADD, total, sq);
    }
    int norm = b_un(b, OP_SQRT, total);
    int coef = b_bin(b, OP_DIV, b_const(b, max_norm, DT_F64), b_bin(b, OP_ADD, norm, b_const(b, 1e-6, DT_F64)));
    coef = b_bin(b, OP_MIN, coef, b_const(b, 1, DT_F64));
    for (int i = 0; i < n && !b->failed; i++) grads[i] = b_bin(b, OP_MUL, grads[i], b_cast(b, coef, b->g->nodes[grads[i]].dtype));
}

/* Data-parallel training: each gradient replaced by its mean over the ranks.
 * Buckets of up to bucket_bytes (and ETCH_MAX_OPERANDS gradients) go through
 * one allreduce_start and allreduce_wait each, filled from the last param
 * backwards (the backward pass computes those gradients first), and each
 * gradient is cut back out of its bucket (slice, reshape). Rewrites grads in
 * place. The starts are built here, after the whole backward pass;
 * hoist_allreduce_starts moves them up once the step is complete. */
static void allreduce_grads(Builder *b, const int *wrt, int *grads, int n, int64_t bucket_bytes) {
    for (int end = n; end > 0 && !b->failed;) {
        int ins[ETCH_MAX_OPERANDS], k = 0, first = end;
        int64_t bytes = 0;
        while (first > 0 && k < ETCH_MAX_OPERANDS) {
            const Node *gn = &b->g->nodes[grads[first - 1]];
            int64_t gb = shape_numel(&gn->shape) * (int64_t)dtype_size(gn->dtype);
            if (k && bytes + gb > bucket_bytes) break;
            if (gn->dtype != DT_F32) {
                diag_error(b->d, b->loc, "data-parallel training averages f32 gradients; parameter '%s' is %s",
                           b->g->nodes[wrt[first - 1]].attr.name, dtype_name(gn->dtype));
                b->failed = true;
                return;
            }
            bytes += gb;
            first--;
            k++;
        }
        for (int i = 0; i < k; i++) ins[i] = grads[end - 1 - i];
        int bucket = b_op(b, OP_ALLREDUCE_WAIT, (int[]){b_op(b, OP_ALLREDUCE_START, ins, k, NULL)}, 1, NULL);
        int64_t off = 0;
        for (int i = 0; i < k && !b->failed; i++) {
            int gi = end - 1 - i;
            Shape sh = b->g->nodes[grads[gi]].shape;
            int64_t numel = shape_numel(&sh);
            int piece = b_op(b, OP_SLICE, &bucket, 1, &(NodeAttrs){.axis = 0, .start = off, .length = numel});
            if (sh.rank != 1) piece = b_op(b, OP_RESHAPE, &piece, 1, &(NodeAttrs){.shape = sh});
            grads[gi] = piece;
            off += numel;
        }
        end = first;
    }
}

/* Moves every allreduce_start of g to right after its last operand's
 * producer, so that its reduction runs while the rest of the backward pass
 * computes (the C backend runs nodes in id order). Only starts move, and
 * only up: operands still precede their users. Renumbers g's nodes in place
 * (operands, inputs, params, outputs and updates); nothing else holds ids
 * yet (no fusion groups, no memory plan). */
static void hoist_allreduce_starts(Graph *g) {
    int n = g->n_nodes, n_starts = 0;
    for (int id = 0; id < n; id++) n_starts += g->nodes[id].op == OP_ALLREDUCE_START;
    if (!n_starts) return;
    int *after = arena_alloc(g->arena, sizeof(int) * (size_t)n); /* a start: its last operand; else -1 */
    int *new_id = arena_alloc(g->arena, sizeof(int) * (size_t)n), *order = arena_alloc(g->arena, sizeof(int) * (size_t)n);
    for (int id = 0; id < n; id++) {
        const Node *x = &g->nodes[id];
        after[id] = -1;
        for (int k = 0; x->op == OP_ALLREDUCE_START && k < x->n_in; k++)
            if (x->in[k] > after[id]) after[id] = x->in[k];
    }
    /* starts by the node they follow: a counting sort keeps their id order */
    int *first = arena_alloc(g->arena, sizeof(int) * (size_t)(n + 1)), *starts = arena_alloc(g->arena, sizeof(int) * (size_t)n_starts);
    for (int i = 0; i <= n; i++) first[i] = 0;
    for (int id = 0; id < n; id++)
        if (after[id] >= 0) first[after[id] + 1]++;
    for (int i = 0; i < n; i++) first[i + 1] += first[i];
    int *fill = arena_alloc(g->arena, sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) fill[i] = first[i];
    for (int id = 0; id < n; id++)
        if (after[id] >= 0) starts[fill[after[id]]++] = id;
    int m = 0;
    for (int id = 0; id < n; id++) {
        if (after[id] >= 0) continue;
        order[m++] = id;
        for (int s = first[id]; s < first[id + 1]; s++) order[m++] = starts[s];
    }
    Node *nodes = arena_alloc(g->arena, sizeof(Node) * (size_t)g->cap_nodes);
    for (int i = 0; i < n; i++) new_id[order[i]] = i;
    for (int i = 0; i < n; i++) {
        nodes[i] = g->nodes[order[i]];
        int *ins = arena_alloc(g->arena, sizeof(int) * (size_t)(nodes[i].n_in + 1));
        for (int k = 0; k < nodes[i].n_in; k++) ins[k] = new_id[nodes[i].in[k]];
        nodes[i].in = ins;
    }
    g->nodes = nodes;
    int *lists[] = {g->inputs, g->params, g->outputs, g->upd_dst, g->upd_src};
    int counts[] = {g->n_inputs, g->n_params, g->n_outputs, g->n_updates, g->n_updates};
    for (int l = 0; l < 5; l++)
        for (int i = 0; i < counts[l]; i++) lists[l][i] = new_id[lists[l][i]];
}

static int add_state(Builder *b, const char *param, const char *what, DType t, Shape s) {
    char name[512];
    snprintf(name, sizeof name, "optimizer.%s.%s", param, what);
    return b_op(b, OP_PARAM, NULL, 0,
                &(NodeAttrs){.name = name, .dtype = t, .shape = s, .init = {INIT_ZEROS, 0, 0}, .frozen = true});
}

static bool check_schedule(const OptimSpec *s, Diag *d) {
    const LrSchedule *r = &s->schedule;
    if (s->clip_grad_norm < 0 || !isfinite(s->clip_grad_norm))
        return diag_error(d, s->clip_loc, "clip_grad_norm must be a positive number (the largest global L2 norm of the "
                                          "gradients), got %g", s->clip_grad_norm);
    if (r->kind == LR_STEP) {
        if (r->step_size < 1) return diag_error(d, r->loc, "step(): step_size must be at least 1, got %lld", (long long)r->step_size);
        if (!(r->gamma > 0 && r->gamma <= 1))
            return diag_error(d, r->loc, "step(): gamma must be in (0, 1], got %g", r->gamma);
    } else if (r->kind == LR_COSINE) {
        if (r->total < 1) return diag_error(d, r->loc, "cosine(): total must be at least 1 step, got %lld", (long long)r->total);
        if (r->warmup < 0 || r->warmup > r->total)
            return diag_error(d, r->loc, "cosine(): warmup must be from 0 to total (%lld) steps, got %lld",
                              (long long)r->total, (long long)r->warmup);
        if (!(r->min_lr >= 0 && r->min_lr <= s->lr))
            return diag_error(d, r->loc, "cosine(): min_lr must be from 0 to the optimizer's lr (%g), got %g", s->lr,
                              r->min_lr);
    }
    return true;
}

bool optim_check(const OptimSpec *s, Diag *d) {
    if (!check_schedule(s, d)) return false;
    if (!(s->lr > 0)) return diag_error(d, s->loc, "%s: lr must be positive, got %g", optim_name(s->kind), s->lr);
    if (s->weight_decay < 0)
        return diag_error(d, s->loc, "%s: weight_decay must be >= 0, got %g", optim_name(s->kind), s->weight_decay);
    for (int k = 0; k < s->n_groups; k++) {
        /* a group's own lr and weight decay are constants of the step: a run-time value would be silently ignored */
        for (Hparam h = HP_LR; h <= HP_WEIGHT_DECAY; h += HP_WEIGHT_DECAY - HP_LR)
            if (hp_runtime(s, h))
                return diag_error(d, s->loc, "%s: %s cannot be read at run time (etch sweep) when the "
                                                       "optimizer has parameter groups; each group sets its own %s",
                                  optim_name(s->kind), hparam_name(h), hparam_name(h));
        if (!(s->groups[k].lr > 0))
            return diag_error(d, s->groups[k].loc, "%s: a parameter group's lr must be positive, got %g",
                              optim_name(s->kind), s->groups[k].lr);
        if (s->groups[k].weight_decay < 0)
            return diag_error(d, s->groups[k].loc, "%s: a parameter group's weight_decay must be >= 0, got %g",
                              optim_name(s->kind), s->groups[k].weight_decay);
    }
    if (s->kind == OPTIM_SGD) {
        if (s->momentum < 0) return diag_error(d, s->loc, "sgd: momentum must be >= 0, got %g", s->momentum);
        if (hp_runtime(s, HP_MOMENTUM) && s->momentum == 0 && s->dampening != 0)
            return diag_error(d, s->loc, "sgd: momentum 0 read at run time needs dampening 0 (the momentum buffer "
                                         "would be damped, where PyTorch uses none), got dampening %g", s->dampening);
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

/* The group of spec holding the param named name, or -1. */
static int param_group(const OptimSpec *spec, const char *name) {
    for (int k = 0; k < spec->n_groups; k++)
        for (int i = 0; i < spec->groups[k].n_names; i++)
            if (!strcmp(spec->groups[k].names[i], name)) return k;
    return -1;
}

bool optim_trains(const OptimSpec *spec, const char *name) { return !spec->n_groups || param_group(spec, name) >= 0; }

bool train_build_step(Graph *g, const OptimSpec *spec, Diag *d) {
    if (!optim_check(spec, d)) return false;
    if (g->n_outputs < 1) return diag_error(d, spec->loc, "training needs a loss");
    int loss = g->outputs[0];
    /* trainable: non-frozen floating-point params (snapshot: we add state params below) */
    int n_params = g->n_params, n_train = 0;
    int *wrt = arena_alloc(g->arena, sizeof(int) * (size_t)(n_params + 1));
    int *grads = arena_alloc(g->arena, sizeof(int) * (size_t)(n_params + 1));
    int *group_of = arena_alloc(g->arena, sizeof(int) * (size_t)(n_params + 1)); /* per trainable: -1 or its group */
    for (int i = 0; i < n_params; i++) {
        const Node *p = &g->nodes[g->params[i]];
        if (p->attr.frozen || !dtype_is_float(p->dtype)) continue;
        int k = param_group(spec, p->attr.name);
        if (spec->n_groups && k < 0) continue;
        group_of[n_train] = k;
        wrt[n_train++] = g->params[i];
    }
    if (n_train == 0)
        return diag_error(d, spec->loc, spec->n_groups ? "the optimizer's parameters include no trainable one"
                                                       : "the model has no trainable parameters");
    if (!autodiff(g, loss, wrt, n_train, grads, d)) return false;

    Builder b = {.g = g, .d = d, .loc = spec->loc};
    /* optimizer.step (f64 scalar): t = step + 1 drives Adam's bias correction
     * and SGD's first-step momentum rule. The loss graph may already read it
     * (dropout masks depend on the step): then that param is the counter. */
    const char *counter = optim_counter(spec);
    int step = graph_find_param(g, counter);
    if (step >= 0) {
        const Node *sn = &g->nodes[step];
        if (sn->dtype != DT_F64 || sn->shape.rank != 0 || !sn->attr.frozen)
            return diag_error(d, sn->loc, "parameter '%s' must be the optimizer's step counter (a frozen f64 scalar)",
                              counter);
    } else {
        step = b_op(&b, OP_PARAM, NULL, 0,
                    &(NodeAttrs){.name = counter, .dtype = DT_F64, .init = {INIT_ZEROS, 0, 0}, .frozen = true});
    }
    int t = b_bin(&b, OP_ADD, step, b_const(&b, 1, DT_F64));
    int lr_base = lr_at(&b, spec, step);
    if (spec->allreduce_bucket_bytes > 0) allreduce_grads(&b, wrt, grads, n_train, spec->allreduce_bucket_bytes);
    if (spec->clip_grad_norm > 0) clip_grads(&b, grads, n_train, spec->clip_grad_norm);
    int bc1 = -1, bc2_sqrt = -1, first = -1;
    /* a hyperparameter read at run time may take any value: its terms stay */
    bool momentum = spec->momentum != 0 || hp_runtime(spec, HP_MOMENTUM);
    if (spec->kind != OPTIM_SGD) {
        bc1 = b_bin(&b, OP_SUB, b_const(&b, 1, DT_F64), b_bin(&b, OP_POW, b_coef(&b, spec, hpc(HP_BETA1, false), DT_F64), t));
        bc2_sqrt = b_un(&b, OP_SQRT, b_bin(&b, OP_SUB, b_const(&b, 1, DT_F64),
                                           b_bin(&b, OP_POW, b_coef(&b, spec, hpc(HP_BETA2, false), DT_F64), t)));
    } else if (momentum && (spec->dampening != 0 || hp_runtime(spec, HP_DAMPENING))) {
        first = b_bin(&b, OP_EQ, step, b_const(&b, 0, DT_F64));
    }
    for (int i = 0; i < n_train && !b.failed; i++) {
        OptimSpec own = *spec; /* this param's: its group's lr and weight decay */
        const OptimSpec *ps = spec;
        if (group_of[i] >= 0) {
            own.lr = spec->groups[group_of[i]].lr, own.weight_decay = spec->groups[group_of[i]].weight_decay;
            ps = &own;
        }
        int lr = lr_base < 0 || ps->lr == spec->lr ? lr_base
                                                   : b_bin(&b, OP_MUL, lr_base, b_const(&b, ps->lr / spec->lr, DT_F64));
        int p = wrt[i], gr = grads[i];
        const char *name = g->nodes[p].attr.name;
        DType dt = g->nodes[p].dtype;
        Shape sh = g->nodes[p].shape;
        int pw = p; /* the weight the update starts from (AdamW decays it first) */
        bool decay = ps->weight_decay != 0 || hp_runtime(ps, HP_WEIGHT_DECAY);
        if (decay && ps->kind != OPTIM_ADAMW) gr = b_axpby(&b, ps, lit(1), gr, hpc(HP_WEIGHT_DECAY, false), p);
        int np;
        if (ps->kind == OPTIM_SGD) {
            if (momentum) {
                int buf = add_state(&b, name, "momentum_buffer", dt, sh);
                int nb = b_axpby(&b, ps, hpc(HP_MOMENTUM, false), buf, hpc(HP_DAMPENING, true), gr);
                if (first >= 0) nb = b_op(&b, OP_WHERE, (int[]){first, gr, nb}, 3, NULL);
                graph_add_update(g, buf, nb);
                gr = ps->nesterov ? b_axpby(&b, ps, lit(1), gr, hpc(HP_MOMENTUM, false), nb) : nb;
            }
            np = b_bin(&b, OP_SUB, p, b_bin(&b, OP_MUL, lr_as(&b, ps, lr, dt), gr));
        } else {
            bool const_decay = lr < 0 && !hp_runtime(ps, HP_WEIGHT_DECAY);
            if (ps->kind == OPTIM_ADAMW && decay)
                pw = b_bin(&b, OP_MUL, p, const_decay ? b_const(&b, 1 - ps->lr * ps->weight_decay, dt)
                                          : b_cast(&b, b_bin(&b, OP_SUB, b_const(&b, 1, DT_F64),
                                                             b_bin(&b, OP_MUL, lr < 0 ? b_const(&b, ps->lr, DT_F64) : lr,
                                                                   b_coef(&b, ps, hpc(HP_WEIGHT_DECAY, false), DT_F64))), dt));
            int m = add_state(&b, name, "exp_avg", dt, sh), v = add_state(&b, name, "exp_avg_sq", dt, sh);
            int nm = b_axpby(&b, ps, hpc(HP_BETA1, false), m, hpc(HP_BETA1, true), gr);
            int nv = b_axpby(&b, ps, hpc(HP_BETA2, false), v, hpc(HP_BETA2, true), b_bin(&b, OP_MUL, gr, gr));
            graph_add_update(g, m, nm);
            graph_add_update(g, v, nv);
            int step_size = b_cast(&b, b_bin(&b, OP_DIV, lr_as(&b, ps, lr, DT_F64), bc1), dt);
            int denom = b_bin(&b, OP_ADD, b_bin(&b, OP_DIV, b_un(&b, OP_SQRT, nv), b_cast(&b, bc2_sqrt, dt)),
                              b_coef(&b, ps, hpc(HP_EPS, false), dt));
            np = b_bin(&b, OP_SUB, pw, b_bin(&b, OP_MUL, step_size, b_bin(&b, OP_DIV, nm, denom)));
        }
        if (!b.failed) graph_add_update(g, p, np);
    }
    if (!b.failed) graph_add_update(g, step, t);
    if (!b.failed) hoist_allreduce_starts(g);
    return !b.failed;
}
