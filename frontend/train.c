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
 * Later passes turn it into the training step (passes/transforms/train.c). */
#include <string.h>

#include "frontend/elab.h"

static const char *const TRAIN_ENTRIES[] = {"loss", "optimizer", "batch", "epochs", "x", "y", "lr_schedule",
                                            "clip_grad_norm"};
enum { N_TRAIN_ENTRIES = sizeof TRAIN_ENTRIES / sizeof TRAIN_ENTRIES[0] };

static void reset_param_ids(Instance *inst) {
    for (int i = 0; i < inst->n_params; i++) inst->params[i]->id = -1;
    for (int i = 0; i < inst->n_children; i++) reset_param_ids(inst->children[i]);
}

/* Collects the entries by name, rejecting unknown and repeated ones. */
static bool train_entries(Elab *e, const TrainDecl *td, const TrainEntry **by_name) {
    for (int i = 0; i < td->n_entries; i++) {
        const TrainEntry *en = &td->entries[i];
        int k = 0;
        while (k < N_TRAIN_ENTRIES && strcmp(TRAIN_ENTRIES[k], en->name)) k++;
        if (k == N_TRAIN_ENTRIES)
            return diag_error(e->diag, en->loc,
                              "unknown train entry '%s'; a train block takes loss, optimizer, batch, epochs, x, y, "
                              "lr_schedule and clip_grad_norm",
                              en->name);
        if (by_name[k])
            return diag_error(e->diag, en->loc, "train entry '%s' is given twice (first at %d:%d)", en->name,
                              by_name[k]->loc.line, by_name[k]->loc.col);
        bool typed = k == 4 || k == 5; /* x, y are declared with ':', the rest assigned with '=' */
        if (typed != (en->type != NULL))
            return diag_error(e->diag, en->loc, typed ? "train entry '%s' declares a type: write '%s: f32[...]'"
                                                      : "train entry '%s' takes a value: write '%s = ...'",
                              en->name, en->name);
        by_name[k] = en;
    }
    return true;
}

/* optimizer = sgd(lr, momentum, dampening, weight_decay, nesterov) | adam(...) | adamw(...) */
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
    if (!eval_args(e, s, call, NULL, &ca) ||
        !bind_args(e, call->loc, fname, pnames, n_params, kind == OPTIM_SGD ? 1 : 0, &ca, slots, given))
        return false;
    *out = optim_defaults(kind);
    out->loc = call->loc;
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

TrainSpec *elab_train(Elab *e, const TrainDecl *td, Instance *model, const FnDecl *forward) {
    const TrainEntry *en[N_TRAIN_ENTRIES] = {0};
    if (!train_entries(e, td, en)) return NULL;
    if (!en[0]) return diag_error(e->diag, td->loc, "the train block needs 'loss = ...'"), NULL;
    if (!en[1]) return diag_error(e->diag, td->loc, "the train block needs 'optimizer = sgd(...)' (or adam, adamw)"), NULL;
    TrainSpec *ts = arena_alloc(e->arena, sizeof *ts);
    ts->loc = td->loc;
    ts->epochs = 1;
    e->graph = graph_new(e->arena, arena_printf(e->arena, "%s.train_step", model->decl->name));
    reset_param_ids(model);

    /* the data inputs: x and y */
    NodeAttrs xa = {.name = "x"}, ya = {.name = "y", .dtype = DT_I64};
    SrcLoc xloc = td->loc, yloc = td->loc;
    if (en[4]) {
        if (!resolve_type(e, &model->scope, en[4]->type, "the training input x", &xa.dtype, &xa.shape)) return NULL;
        xloc = en[4]->loc;
    } else {
        if (forward->n_params < 1 || !forward->params[0].type)
            return diag_error(e->diag, td->loc, "declare the training input with 'x: f32[...]' in the train block"), NULL;
        if (!resolve_type(e, &model->scope, forward->params[0].type, "the training input x", &xa.dtype, &xa.shape)) return NULL;
    }
    if (xa.shape.rank < 1)
        return diag_error(e->diag, xloc, "the training input x needs a batch dimension, got a scalar"), NULL;
    int64_t batch = xa.shape.dim[0];
    if (en[5]) {
        if (!resolve_type(e, &model->scope, en[5]->type, "the training labels y", &ya.dtype, &ya.shape)) return NULL;
        yloc = en[5]->loc;
    } else {
        ya.shape = (Shape){.rank = 1, .dim = {batch}};
    }
    Value xv, yv;
    if (!add_op(e, OP_INPUT, NULL, 0, &xa, xloc, &xv) || !add_op(e, OP_INPUT, NULL, 0, &ya, yloc, &yv) ||
        !emit_params(e, model))
        return NULL;

    Scope *s = arena_alloc(e->arena, sizeof *s);
    s->parent = &e->user_scope;
    scope_bind(e, s, "x", xloc, xv, false);
    scope_bind(e, s, "y", yloc, yv, false);
    scope_bind(e, s, model->decl->name, model->loc, (Value){.kind = V_INSTANCE, .inst = model, .loc = model->loc}, false);

    bool was_training = e->training;
    e->training = true;
    Value loss;
    int loss_id;
    bool ok = eval_expr(e, s, en[0]->value, &loss) && need_tensor(e, &loss, "the loss", &loss_id);
    e->training = was_training;
    if (!ok) return NULL;
    const Node *ln = &e->graph->nodes[loss_id];
    if (shape_numel(&ln->shape) != 1 || ln->shape.rank != 0 || !dtype_is_float(ln->dtype))
        return diag_error(e->diag, en[0]->value->loc, "the loss must be a floating-point scalar, got %s",
                          value_describe(e, &loss)), NULL;
    graph_add_output(e->graph, loss_id);
    if (!train_optimizer(e, s, en[1], &ts->optim)) return NULL;
    if (en[6] && !train_schedule(e, s, en[6], &ts->optim.schedule)) return NULL;
    if (en[7]) {
        Value v;
        if (!eval_expr(e, s, en[7]->value, &v) || !value_number(e, &v, "clip_grad_norm", &ts->optim.clip_grad_norm))
            return NULL;
        ts->optim.clip_loc = en[7]->value->loc;
        if (ts->optim.clip_grad_norm == 0) /* 0 means "none" to the pass, which checks the rest */
            return diag_error(e->diag, en[7]->value->loc, "clip_grad_norm = 0 would zero every gradient; leave the "
                                                         "entry out for no clipping"), NULL;
    }
    if (en[2]) {
        Value v;
        int64_t b;
        if (!eval_expr(e, s, en[2]->value, &v) || !value_int(e, &v, "the batch size", &b)) return NULL;
        if (b != batch)
            return diag_error(e->diag, en[2]->value->loc,
                              "batch = %lld, but the training input x has %lld rows (its first dim); they must agree",
                              (long long)b, (long long)batch), NULL;
    }
    if (en[3]) {
        Value v;
        if (!eval_expr(e, s, en[3]->value, &v) || !value_int(e, &v, "the number of epochs", &ts->epochs)) return NULL;
        if (ts->epochs < 1)
            return diag_error(e->diag, en[3]->value->loc, "epochs must be at least 1, got %lld",
                              (long long)ts->epochs), NULL;
    }
    ts->batch = batch;
    ts->loss = e->graph;
    return ts;
}
