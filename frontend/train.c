/* train.c: elaborating a `train { ... }` block into a TrainSpec.
 *
 *   train {
 *     loss = cross_entropy(Net(x), y)          // any scalar expression
 *     optimizer = sgd(lr = 0.01, momentum = 0.9)
 *     batch = 64                               // must equal x's first dim
 *     epochs = 10
 *     x: f32[B, 1, 28, 28]                     // optional; default: forward's first input
 *     y: i64[B]                                // optional; default: i64[batch]
 *     lr_schedule = cosine(warmup = 100, total = 1000)   // optional: step(...) | cosine(...)
 *     clip_grad_norm = 1.0                     // optional: clip by global L2 norm
 *   }
 *
 * The loss is traced into its own graph "<Model>.train_step" with the same
 * parameters (same names) as the forward graph: x and y are its inputs and the
 * model's name stands for the model instance, so `Net(x)` runs the forward.
 * Later passes turn it into the training step (passes/transforms/train.c).
 *
 * Several named steps (a GAN's discriminator and generator steps) share x,
 * y, batch and epochs, and each has its own loss and optimizer:
 *
 *   train {
 *     step d { loss = ...  optimizer = adam(GAN.D, lr = 2e-4) }
 *     step g { loss = ...  optimizer = adam([GAN.G], lr = 2e-4) }
 *     schedule = [d, g]                        // per batch; default: the steps in order
 *   }
 *
 * Each step's loss is its own graph "<Model>.train_step_<name>"; its
 * optimizer names the params it trains (a module, a list of modules, or
 * group(module, lr = ..., weight_decay = ...) items), no param is trained by
 * two steps, and each step counts its own steps in "optimizer.<name>.step". */
#include <string.h>

#include "frontend/elab.h"

static const char *const TRAIN_ENTRIES[] = {"loss", "optimizer", "batch", "epochs", "x", "y", "lr_schedule",
                                            "clip_grad_norm", "schedule"};
enum { N_TRAIN_ENTRIES = sizeof TRAIN_ENTRIES / sizeof TRAIN_ENTRIES[0] };
enum { E_LOSS, E_OPTIMIZER, E_BATCH, E_EPOCHS, E_X, E_Y, E_LR_SCHEDULE, E_CLIP, E_SCHEDULE };
/* Which entries a step holds (the rest are the block's, shared by its steps). */
static bool step_entry(int k) { return k == E_LOSS || k == E_OPTIMIZER || k == E_LR_SCHEDULE || k == E_CLIP; }

static void reset_param_ids(Instance *inst) {
    for (int i = 0; i < inst->n_params; i++) inst->params[i]->id = -1;
    for (int i = 0; i < inst->n_children; i++) reset_param_ids(inst->children[i]);
}

/* Collects the entries by name, rejecting unknown and repeated ones and
 * entries in the wrong place: td a step, or the block (with or without steps). */
static bool train_entries(Elab *e, const TrainDecl *td, bool has_steps, const TrainEntry **by_name) {
    for (int i = 0; i < td->n_entries; i++) {
        const TrainEntry *en = &td->entries[i];
        int k = 0;
        while (k < N_TRAIN_ENTRIES && strcmp(TRAIN_ENTRIES[k], en->name)) k++;
        if (k == N_TRAIN_ENTRIES)
            return diag_error(e->diag, en->loc,
                              td->name ? "unknown entry '%s' in step %s; a step takes loss, optimizer, lr_schedule and "
                                         "clip_grad_norm"
                                       : "unknown train entry '%s'; a train block takes loss, optimizer, batch, epochs, "
                                         "x, y, lr_schedule and clip_grad_norm%s",
                              en->name, td->name ? td->name : ", or named steps (step d { ... }) and schedule");
        if (td->name && !step_entry(k))
            return diag_error(e->diag, en->loc, "'%s' belongs to the train block, shared by its steps: write it outside "
                                                "'step %s { ... }'", en->name, td->name);
        if (!td->name && has_steps && step_entry(k))
            return diag_error(e->diag, en->loc, "with named steps, '%s' belongs in a step: each step has its own loss "
                                                "and optimizer (and lr_schedule, clip_grad_norm)", en->name);
        if (k == E_SCHEDULE && !has_steps)
            return diag_error(e->diag, en->loc, "schedule orders named steps, and this train block has none: write "
                                                "'step d { loss = ...  optimizer = ... }' for each step");
        if (by_name[k])
            return diag_error(e->diag, en->loc, "train entry '%s' is given twice (first at %d:%d)", en->name,
                              by_name[k]->loc.line, by_name[k]->loc.col);
        bool typed = k == E_X || k == E_Y; /* x, y are declared with ':', the rest assigned with '=' */
        if (typed != (en->type != NULL))
            return diag_error(e->diag, en->loc, typed ? "train entry '%s' declares a type: write '%s: f32[...]'"
                                                      : "train entry '%s' takes a value: write '%s = ...'",
                              en->name, en->name);
        by_name[k] = en;
    }
    return true;
}

/* The trainable params under inst, appended to *names (frozen ones and
 * integer ones have no gradient). */
static void collect_trainable(Elab *e, const Instance *inst, const char ***names, int *n, int *cap) {
    for (int i = 0; i < inst->n_params; i++) {
        const ParamSpec *p = inst->params[i];
        if (p->frozen || !dtype_is_float(p->dtype)) continue;
        *names = arena_grow(e->arena, *names, sizeof **names, *n, cap, 16);
        (*names)[(*n)++] = p->name;
    }
    for (int i = 0; i < inst->n_children; i++) collect_trainable(e, inst->children[i], names, n, cap);
}

/* One item of an optimizer's parameter set: a module instance or a module
 * list (its trainable params go into g). */
static bool param_set_item(Elab *e, const Value *v, const char *fname, ParamGroup *g) {
    const char **names = (const char **)g->names;
    int n = g->n_names, cap = g->n_names;
    if (v->kind == V_INSTANCE) collect_trainable(e, v->inst, &names, &n, &cap);
    else if (value_is_module_list(v))
        for (int i = 0; i < v->n_items; i++) collect_trainable(e, v->items[i].inst, &names, &n, &cap);
    else
        return diag_error(e->diag, v->loc,
                          "the parameters %s trains must be a module (Net.fc1), a list of modules or group(module, "
                          "lr = ..., weight_decay = ...) items; got %s", fname, value_describe(e, v));
    if (n == g->n_names)
        return diag_error(e->diag, v->loc, "%s has no trainable parameters (all frozen)", value_brief(e, v));
    g->names = names, g->n_names = n;
    return true;
}

/* The first positional argument of an optimizer call, when it names the
 * params to train: a module, a list of modules and group(...) items. One
 * group per group(...) item, plus one for the plain modules (lr and
 * weight decay: the optimizer's, filled in by finish_groups). */
static bool param_set(Elab *e, Scope *s, const Expr *arg, const char *fname, OptimSpec *out, bool *given_lr,
                      bool *given_wd) {
    int n_items = arg->kind == EX_LIST ? arg->n_items : 1;
    ParamGroup *groups = arena_alloc(e->arena, sizeof *groups * (size_t)(n_items + 1));
    int n_groups = 1; /* groups[0]: the plain modules (dropped below when there are none) */
    groups[0].loc = arg->loc;
    for (int i = 0; i < n_items; i++) {
        const Expr *it = arg->kind == EX_LIST ? arg->items[i] : arg;
        bool is_group = it->kind == EX_CALL && it->callee->kind == EX_NAME && !strcmp(it->callee->name, "group");
        if (!is_group) {
            Value v;
            if (!eval_expr(e, s, it, &v) || !param_set_item(e, &v, fname, &groups[0])) return false;
            continue;
        }
        static const char *const gparams[] = {"params", "lr", "weight_decay"};
        CallArgs ca;
        Value slots[3];
        bool given[3];
        ParamGroup *g = &groups[n_groups];
        g->loc = it->loc;
        if (!eval_args(e, s, it, NULL, &ca) || !bind_args(e, it->loc, "group()", gparams, 3, 1, &ca, slots, given) ||
            !param_set_item(e, &slots[0], fname, g) ||
            (given[1] && !value_number(e, &slots[1], "'lr' of group()", &g->lr)) ||
            (given[2] && !value_number(e, &slots[2], "'weight_decay' of group()", &g->weight_decay)))
            return false;
        given_lr[n_groups] = given[1], given_wd[n_groups] = given[2];
        n_groups++;
    }
    /* a param in two of the groups */
    for (int a = 0; a < n_groups; a++)
        for (int i = 0; i < groups[a].n_names; i++)
            for (int b = a; b < n_groups; b++)
                for (int j = b == a ? i + 1 : 0; j < groups[b].n_names; j++)
                    if (!strcmp(groups[a].names[i], groups[b].names[j]))
                        return diag_error(e->diag, arg->loc, "parameter '%s' is given twice to %s", groups[a].names[i],
                                          fname);
    int skip = groups[0].n_names == 0; /* only group(...) items */
    out->groups = groups + skip, out->n_groups = n_groups - skip;
    if (skip) memmove(given_lr, given_lr + 1, sizeof *given_lr * (size_t)(n_groups - 1)),
              memmove(given_wd, given_wd + 1, sizeof *given_wd * (size_t)(n_groups - 1));
    return true;
}

/* The groups' lr and weight decay default to the optimizer's. */
static void finish_groups(OptimSpec *o, const bool *given_lr, const bool *given_wd) {
    ParamGroup *g = (ParamGroup *)o->groups;
    for (int k = 0; k < o->n_groups; k++) {
        if (!given_lr[k]) g[k].lr = o->lr;
        if (!given_wd[k]) g[k].weight_decay = o->weight_decay;
    }
}

static bool train_optimizer_values(Elab *e, OptimKind kind, const char *fname, const Value *slots, const bool *given,
                                   OptimSpec *out);

/* optimizer = sgd([params,] lr, momentum, dampening, weight_decay, nesterov) | adam(...) | adamw(...) */
static bool train_optimizer(Elab *e, Scope *s, const TrainEntry *en, OptimSpec *out) {
    const Expr *call = en->value;
    if (call->kind != EX_CALL || call->callee->kind != EX_NAME)
        return diag_error(e->diag, call->loc, "optimizer must be a call such as sgd(lr = 0.01, momentum = 0.9)");
    const char *name = call->callee->name;
    OptimKind kind;
    if (!strcmp(name, "sgd")) kind = OPTIM_SGD;
    else if (!strcmp(name, "adam")) kind = OPTIM_ADAM;
    else if (!strcmp(name, "adamw")) kind = OPTIM_ADAMW;
    else return diag_error(e->diag, call->loc, "unknown optimizer '%s'; etch has sgd, adam and adamw", name);
    static const char *const sgd_params[] = {"lr", "momentum", "dampening", "weight_decay", "nesterov"};
    static const char *const adam_params[] = {"lr", "betas", "eps", "weight_decay"};
    const char *const *pnames = kind == OPTIM_SGD ? sgd_params : adam_params;
    int n_params = kind == OPTIM_SGD ? 5 : 4;
    CallArgs ca;
    Value slots[5];
    bool given[5];
    const char *fname = arena_printf(e->arena, "%s()", name);
    *out = optim_defaults(kind);
    out->loc = call->loc;
    /* adam(GAN.D, lr = ...): a first positional argument that is a module,
     * a list, or group(...) names the params; the rest bind as usual */
    Expr rest = *call;
    bool *given_lr = NULL, *given_wd = NULL;
    if (call->n_args > 0 && !call->args[0].name) {
        const Expr *first = call->args[0].value;
        bool is_set = first->kind == EX_LIST ||
                      (first->kind == EX_CALL && first->callee->kind == EX_NAME && !strcmp(first->callee->name, "group"));
        Value v;
        if (!is_set && first->kind != EX_NUM) {
            if (!eval_expr(e, s, first, &v)) return false;
            is_set = v.kind == V_INSTANCE || value_is_module_list(&v);
        }
        if (is_set) {
            int n_items = first->kind == EX_LIST ? first->n_items : 1;
            given_lr = arena_alloc(e->arena, sizeof(bool) * (size_t)(n_items + 1));
            given_wd = arena_alloc(e->arena, sizeof(bool) * (size_t)(n_items + 1));
            memset(given_lr, 0, sizeof(bool) * (size_t)(n_items + 1));
            memset(given_wd, 0, sizeof(bool) * (size_t)(n_items + 1));
            if (!param_set(e, s, first, fname, out, given_lr, given_wd)) return false;
            rest.args = call->args + 1, rest.n_args = call->n_args - 1;
        }
    }
    if (!eval_args(e, s, &rest, NULL, &ca) ||
        !bind_args(e, call->loc, fname, pnames, n_params, kind == OPTIM_SGD && !given_lr ? 1 : 0, &ca, slots, given))
        return false;
    if (kind == OPTIM_SGD && given_lr && !given[0])
        return diag_error(e->diag, call->loc, "sgd() needs lr: sgd(params, lr = 0.01)");
    if (!train_optimizer_values(e, kind, fname, slots, given, out)) return false;
    if (given_lr) finish_groups(out, given_lr, given_wd);
    return true;
}

/* The numbers of an optimizer call, bound to their slots. */
static bool train_optimizer_values(Elab *e, OptimKind kind, const char *fname, const Value *slots, const bool *given,
                                   OptimSpec *out) {
    const char *what = arena_printf(e->arena, "'lr' of %s", fname);
    if (given[0] && !value_number(e, &slots[0], what, &out->lr)) return false;
    if (kind == OPTIM_SGD) {
        if (given[1] && !value_number(e, &slots[1], "'momentum' of sgd()", &out->momentum)) return false;
        if (given[2] && !value_number(e, &slots[2], "'dampening' of sgd()", &out->dampening)) return false;
        if (given[3] && !value_number(e, &slots[3], "'weight_decay' of sgd()", &out->weight_decay)) return false;
        if (given[4] && !value_bool(e, &slots[4], "'nesterov' of sgd()", &out->nesterov)) return false;
        return true;
    }
    if (given[1]) {
        const Value *b = &slots[1];
        if (b->kind != V_LIST || b->n_items != 2)
            return diag_error(e->diag, b->loc, "'betas' of %s must be a list of two numbers, got %s", fname,
                              value_describe(e, b));
        if (!value_number(e, &b->items[0], "betas[0]", &out->beta1) ||
            !value_number(e, &b->items[1], "betas[1]", &out->beta2))
            return false;
    }
    if (given[2] && !value_number(e, &slots[2], arena_printf(e->arena, "'eps' of %s", fname), &out->eps)) return false;
    if (given[3] && !value_number(e, &slots[3], arena_printf(e->arena, "'weight_decay' of %s", fname),
                                  &out->weight_decay))
        return false;
    return true;
}

/* lr_schedule = step(step_size, gamma = 0.1) | cosine(warmup = 0, total, min_lr = 0):
 * the numbers only; passes/transforms/train.c checks their ranges. */
static bool train_schedule(Elab *e, Scope *s, const TrainEntry *en, LrSchedule *out) {
    const Expr *call = en->value;
    const char *name = call->kind == EX_CALL && call->callee->kind == EX_NAME ? call->callee->name : NULL;
    bool is_step = name && !strcmp(name, "step"), is_cosine = name && !strcmp(name, "cosine");
    if (!is_step && !is_cosine)
        return diag_error(e->diag, call->loc,
                          name ? "unknown lr_schedule '%s'; etch has step(step_size, gamma) and cosine(warmup, total, "
                                 "min_lr)"
                               : "lr_schedule must be a call: step(step_size = N, gamma = 0.1) or cosine(warmup = W, "
                                 "total = T, min_lr = 0)%s",
                          name ? name : "");
    static const char *const step_params[] = {"step_size", "gamma"};
    static const char *const cosine_params[] = {"warmup", "total", "min_lr"};
    CallArgs ca;
    Value slots[3];
    bool given[3];
    const char *fname = is_step ? "step()" : "cosine()";
    if (!eval_args(e, s, call, NULL, &ca) || !bind_args(e, call->loc, fname, is_step ? step_params : cosine_params,
                                                        is_step ? 2 : 3, is_step ? 1 : 2, &ca, slots, given))
        return false;
    *out = (LrSchedule){.kind = is_step ? LR_STEP : LR_COSINE, .gamma = 0.1, .loc = call->loc};
    if (is_step)
        return value_int(e, &slots[0], "'step_size' of step() (in optimizer steps)", &out->step_size) &&
               (!given[1] || value_number(e, &slots[1], "'gamma' of step()", &out->gamma));
    return value_int(e, &slots[0], "'warmup' of cosine() (in optimizer steps)", &out->warmup) &&
           value_int(e, &slots[1], "'total' of cosine() (in optimizer steps)", &out->total) &&
           (!given[2] || value_number(e, &slots[2], "'min_lr' of cosine()", &out->min_lr));
}

/* The data inputs x and y every step takes, as the block declares them. */
typedef struct TrainInputs {
    NodeAttrs xa, ya;
    SrcLoc xloc, yloc;
} TrainInputs;

static bool train_inputs(Elab *e, const TrainDecl *td, const TrainEntry **en, Instance *model, const FnDecl *forward,
                         TrainInputs *in) {
    in->xa = (NodeAttrs){.name = "x"}, in->ya = (NodeAttrs){.name = "y", .dtype = DT_I64};
    in->xloc = in->yloc = td->loc;
    if (en[E_X]) {
        if (!resolve_type(e, &model->scope, en[E_X]->type, "the training input x", &in->xa.dtype, &in->xa.shape))
            return false;
        in->xloc = en[E_X]->loc;
    } else {
        if (forward->n_params < 1 || !forward->params[0].type)
            return diag_error(e->diag, td->loc, "declare the training input with 'x: f32[...]' in the train block");
        if (!resolve_type(e, &model->scope, forward->params[0].type, "the training input x", &in->xa.dtype,
                          &in->xa.shape))
            return false;
    }
    if (in->xa.shape.rank < 1)
        return diag_error(e->diag, in->xloc, "the training input x needs a batch dimension, got a scalar");
    if (en[E_Y]) {
        if (!resolve_type(e, &model->scope, en[E_Y]->type, "the training labels y", &in->ya.dtype, &in->ya.shape))
            return false;
        in->yloc = en[E_Y]->loc;
    } else {
        in->ya.shape = (Shape){.rank = 1, .dim = {in->xa.shape.dim[0]}};
    }
    return true;
}

static int count_random_ops(const Graph *g) {
    int k = 0;
    for (int i = 0; i < g->n_nodes; i++) k += g->nodes[i].op == OP_RANDOM_UNIFORM || g->nodes[i].op == OP_RANDOM_NORMAL;
    return k;
}

/* Traces one step (en: its entries) into its own loss graph; *scope gets
 * the scope its entries were evaluated in. */
static bool trace_step(Elab *e, const TrainDecl *sd, const TrainEntry **en, Instance *model, const TrainInputs *in,
                       TrainStep *out, Scope **scope) {
    const char *what = sd->name ? arena_printf(e->arena, "step %s", sd->name) : "the train block";
    if (!en[E_LOSS]) return diag_error(e->diag, sd->loc, "%s needs 'loss = ...'", what);
    if (!en[E_OPTIMIZER])
        return diag_error(e->diag, sd->loc, "%s needs 'optimizer = sgd(...)' (or adam, adamw)", what);
    out->name = sd->name;
    out->loc = sd->name ? sd->name_loc : sd->loc;
    e->graph = graph_new(e->arena, sd->name ? arena_printf(e->arena, "%s.train_step_%s", model->decl->name, sd->name)
                                            : arena_printf(e->arena, "%s.train_step", model->decl->name));
    reset_param_ids(model);
    Value xv, yv;
    if (!add_op(e, OP_INPUT, NULL, 0, &in->xa, in->xloc, &xv) || !add_op(e, OP_INPUT, NULL, 0, &in->ya, in->yloc, &yv) ||
        !emit_params(e, model))
        return false;

    Scope *s = arena_alloc(e->arena, sizeof *s);
    s->parent = &e->user_scope;
    scope_bind(e, s, "x", in->xloc, xv, false);
    scope_bind(e, s, "y", in->yloc, yv, false);
    scope_bind(e, s, model->decl->name, model->loc, (Value){.kind = V_INSTANCE, .inst = model, .loc = model->loc}, false);
    *scope = s;

    bool was_training = e->training;
    const char *was_counter = e->step_counter;
    e->training = true;
    e->step_counter = sd->name ? arena_printf(e->arena, "optimizer.%s.step", sd->name) : NULL;
    Value loss;
    int loss_id;
    bool ok = eval_expr(e, s, en[E_LOSS]->value, &loss) && need_tensor(e, &loss, "the loss", &loss_id);
    e->training = was_training;
    const char *counter = e->step_counter;
    e->step_counter = was_counter;
    if (!ok) return false;
    const Node *ln = &e->graph->nodes[loss_id];
    if (shape_numel(&ln->shape) != 1 || ln->shape.rank != 0 || !dtype_is_float(ln->dtype))
        return diag_error(e->diag, en[E_LOSS]->value->loc, "the loss must be a floating-point scalar, got %s",
                          value_describe(e, &loss));
    graph_add_output(e->graph, loss_id);
    if (!train_optimizer(e, s, en[E_OPTIMIZER], &out->optim)) return false;
    out->optim.counter = counter;
    if (en[E_LR_SCHEDULE] && !train_schedule(e, s, en[E_LR_SCHEDULE], &out->optim.schedule)) return false;
    if (en[E_CLIP]) {
        Value v;
        if (!eval_expr(e, s, en[E_CLIP]->value, &v) || !value_number(e, &v, "clip_grad_norm", &out->optim.clip_grad_norm))
            return false;
        out->optim.clip_loc = en[E_CLIP]->value->loc;
        if (out->optim.clip_grad_norm == 0) /* 0 means "none" to the pass, which checks the rest */
            return diag_error(e->diag, en[E_CLIP]->value->loc, "clip_grad_norm = 0 would zero every gradient; leave the "
                                                              "entry out for no clipping");
    }
    out->loss = e->graph;
    return true;
}

/* No param is trained by two steps (each param has one optimizer and one
 * optimizer state), and with several steps each optimizer says what it trains. */
static bool check_step_params(Elab *e, const TrainSpec *ts) {
    for (int a = 0; a < ts->n_steps && ts->n_steps > 1; a++)
        if (!ts->steps[a].optim.n_groups)
            return diag_error(e->diag, ts->steps[a].optim.loc,
                              "with several steps, each optimizer names the parameters it trains, as in "
                              "%s(GAN.D, lr = ...): a module, a list of modules or group(module, lr = ...) items",
                              optim_name(ts->steps[a].optim.kind));
    for (int a = 0; a < ts->n_steps; a++)
        for (int b = a + 1; b < ts->n_steps; b++)
            for (int ga = 0; ga < ts->steps[a].optim.n_groups; ga++)
                for (int i = 0; i < ts->steps[a].optim.groups[ga].n_names; i++) {
                    const char *name = ts->steps[a].optim.groups[ga].names[i];
                    for (int gb = 0; gb < ts->steps[b].optim.n_groups; gb++)
                        for (int j = 0; j < ts->steps[b].optim.groups[gb].n_names; j++)
                            if (!strcmp(name, ts->steps[b].optim.groups[gb].names[j])) {
                                diag_error(e->diag, ts->steps[b].optim.loc,
                                           "parameter '%s' is trained by step %s and by step %s (at %d:%d); each "
                                           "parameter has one optimizer: split the model's modules between the steps",
                                           name, ts->steps[b].name, ts->steps[a].name, ts->steps[a].optim.loc.line,
                                           ts->steps[a].optim.loc.col);
                                return false;
                            }
                }
    return true;
}

/* schedule = [d, g, ...]: the steps of one batch, by name (repeats allowed);
 * without the entry, every step once, in the order written. */
static bool train_order(Elab *e, const TrainEntry *en, TrainSpec *ts) {
    if (!en) {
        ts->n_schedule = ts->n_steps;
        ts->schedule = arena_alloc(e->arena, sizeof(int) * (size_t)ts->n_steps);
        for (int i = 0; i < ts->n_steps; i++) ts->schedule[i] = i;
        return true;
    }
    const Expr *v = en->value;
    if (v->kind != EX_LIST || v->n_items == 0)
        return diag_error(e->diag, v->loc, "schedule must be a non-empty list of step names, as in schedule = [d, g]");
    ts->n_schedule = v->n_items;
    ts->schedule = arena_alloc(e->arena, sizeof(int) * (size_t)v->n_items);
    for (int i = 0; i < v->n_items; i++) {
        const Expr *it = v->items[i];
        int k = 0;
        while (it->kind == EX_NAME && k < ts->n_steps && strcmp(ts->steps[k].name, it->name)) k++;
        if (it->kind != EX_NAME || k == ts->n_steps) {
            const char *names = "";
            for (int j = 0; j < ts->n_steps; j++)
                names = arena_printf(e->arena, "%s%s%s", names, j ? (j + 1 == ts->n_steps ? " and " : ", ") : "",
                                     ts->steps[j].name);
            return diag_error(e->diag, it->loc,
                              it->kind == EX_NAME ? "unknown step '%s' in the schedule; the steps are %s"
                                                  : "the schedule lists step names%s; the steps are %s",
                              it->kind == EX_NAME ? it->name : "", names);
        }
        ts->schedule[i] = k;
    }
    for (int k = 0; k < ts->n_steps; k++) { /* a step the schedule leaves out would never train */
        int i = 0;
        while (i < ts->n_schedule && ts->schedule[i] != k) i++;
        if (i == ts->n_schedule)
            return diag_error(e->diag, v->loc, "step %s (at %d:%d) is not in the schedule, so it would never run; list "
                                               "it, or remove the step", ts->steps[k].name, ts->steps[k].loc.line,
                              ts->steps[k].loc.col);
    }
    return true;
}

TrainSpec *elab_train(Elab *e, const TrainDecl *td, Instance *model, const FnDecl *forward) {
    const TrainEntry *en[N_TRAIN_ENTRIES] = {0};
    bool has_steps = td->n_steps > 0;
    if (!train_entries(e, td, has_steps, en)) return NULL;
    if (!has_steps && !en[E_LOSS]) return diag_error(e->diag, td->loc, "the train block needs 'loss = ...'"), NULL;
    if (!has_steps && !en[E_OPTIMIZER])
        return diag_error(e->diag, td->loc, "the train block needs 'optimizer = sgd(...)' (or adam, adamw)"), NULL;
    TrainSpec *ts = arena_alloc(e->arena, sizeof *ts);
    ts->loc = td->loc;
    ts->epochs = 1;
    TrainInputs in;
    if (!train_inputs(e, td, en, model, forward, &in)) return NULL;
    int64_t batch = in.xa.shape.dim[0];
    ts->n_steps = has_steps ? td->n_steps : 1;
    ts->steps = arena_alloc(e->arena, sizeof *ts->steps * (size_t)ts->n_steps);
    Scope *s = NULL;
    for (int i = 0; i < ts->n_steps; i++) {
        const TrainDecl *sd = has_steps ? &td->steps[i] : td;
        const TrainEntry *sen[N_TRAIN_ENTRIES] = {0};
        if (has_steps) {
            for (int j = 0; j < i; j++)
                if (!strcmp(td->steps[j].name, sd->name))
                    return diag_error(e->diag, sd->name_loc, "duplicate step '%s' (the first is at %d:%d)", sd->name,
                                      td->steps[j].name_loc.line, td->steps[j].name_loc.col), NULL;
            if (!train_entries(e, sd, true, sen)) return NULL;
        }
        Scope *step_scope = NULL;
        e->random_sites_before = 0;
        for (int j = 0; j < i; j++) e->random_sites_before += count_random_ops(ts->steps[j].loss);
        bool ok = trace_step(e, sd, has_steps ? sen : en, model, &in, &ts->steps[i], &step_scope);
        e->random_sites_before = 0;
        if (!ok) return NULL;
        if (!s) s = step_scope;
    }
    if (!check_step_params(e, ts) || !train_order(e, en[E_SCHEDULE], ts)) return NULL;
    if (en[E_BATCH]) {
        Value v;
        int64_t b;
        if (!eval_expr(e, s, en[E_BATCH]->value, &v) || !value_int(e, &v, "the batch size", &b)) return NULL;
        if (b != batch)
            return diag_error(e->diag, en[E_BATCH]->value->loc,
                              "batch = %lld, but the training input x has %lld rows (its first dim); they must agree",
                              (long long)b, (long long)batch), NULL;
    }
    if (en[E_EPOCHS]) {
        Value v;
        if (!eval_expr(e, s, en[E_EPOCHS]->value, &v) || !value_int(e, &v, "the number of epochs", &ts->epochs))
            return NULL;
        if (ts->epochs < 1)
            return diag_error(e->diag, en[E_EPOCHS]->value->loc, "epochs must be at least 1, got %lld",
                              (long long)ts->epochs), NULL;
    }
    ts->batch = batch;
    ts->loss = ts->steps[0].loss;
    ts->optim = ts->steps[0].optim;
    return ts;
}
