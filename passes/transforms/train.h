/* train.h: turning a loss graph into a training step graph.
 *
 * The step is ordinary IR: the loss, its gradients (the autodiff pass), and the
 * optimizer's update rule for every trainable parameter, ending in state
 * updates (graph_add_update) that write the new weights and optimizer state
 * back into their parameters. Optimizer state (momentum buffers, Adam moments,
 * the step count) is held in extra params named "optimizer.<param>.<state>"
 * and "optimizer.step", so it is saved in checkpoints like any weight. A
 * loss graph that already has an "optimizer.step" param (traced dropout reads
 * it) keeps it: the step updates that one.
 *
 * A learning-rate schedule and gradient clipping are IR too: the lr of step
 * s (s = optimizer.step before the update, 0 on the first step) is computed
 * in float64 from the counter, so the compiled step, the eager executor and
 * a resumed run all use the same rate. Without them the step is exactly the
 * constant-lr graph. */
#ifndef ETCH_PASSES_TRANSFORMS_TRAIN_H
#define ETCH_PASSES_TRANSFORMS_TRAIN_H

#include "ir/ir.h"

typedef enum OptimKind { OPTIM_SGD, OPTIM_ADAM, OPTIM_ADAMW } OptimKind;

typedef enum LrScheduleKind { LR_CONSTANT, LR_STEP, LR_COSINE } LrScheduleKind;

/* lr(s) = lr * factor(s), s counted in optimizer steps from 0:
 *   step:   gamma ^ floor(s / step_size)   (torch.optim.lr_scheduler.StepLR
 *           with scheduler.step() after every optimizer step)
 *   cosine: s / warmup while s < warmup, then, with
 *           p = min(1, (s - warmup) / max(1, total - warmup)),
 *           m + (1 - m) * 0.5 * (1 + cos(pi * p)), m = min_lr / lr
 *           (transformers' get_cosine_with_min_lr_schedule_with_warmup;
 *           held at min_lr after total steps where transformers would
 *           rise again). */
typedef struct LrSchedule {
    LrScheduleKind kind;
    int64_t step_size;     /* step */
    double gamma;          /* step */
    int64_t warmup, total; /* cosine */
    double min_lr;         /* cosine */
    SrcLoc loc;            /* where the schedule was written, for errors */
} LrSchedule;

/* Some of the params, with their own lr and weight decay (torch.optim's
 * parameter groups): names are the params' full names ("G.fc1.weight"). */
typedef struct ParamGroup {
    const char *const *names;
    int n_names;
    double lr, weight_decay;
    SrcLoc loc; /* where the group was written, for errors */
} ParamGroup;
/* The optimizer hyperparameters a program may read at run time (etch
 * sweep): each one in OptimSpec.runtime is a frozen f64 scalar param
 * "optimizer.hparam.<name>" (initialized to the compiled value) instead of a
 * constant, so one compiled step trains with any value set in its weights
 * file. Without runtime hyperparameters the step is exactly the constant one. */
typedef enum Hparam { HP_LR, HP_MOMENTUM, HP_DAMPENING, HP_WEIGHT_DECAY, HP_BETA1, HP_BETA2, HP_EPS, HP_COUNT } Hparam;

/* Hyperparameters with PyTorch's meanings and defaults (optim_defaults). */
typedef struct OptimSpec {
    OptimKind kind;
    double lr;
    double momentum, dampening; /* sgd */
    bool nesterov;              /* sgd */
    double weight_decay;        /* sgd, adam: L2 added to the gradient; adamw: decoupled */
    double beta1, beta2, eps;   /* adam, adamw */
    SrcLoc loc;                 /* where the optimizer was written, for errors */
    LrSchedule schedule;        /* LR_CONSTANT (the default): lr every step */
    /* > 0: torch.nn.utils.clip_grad_norm_(params, clip_grad_norm) before the
     * update: every gradient times min(1, C / (total L2 norm + 1e-6)), the
     * norm over all trainable params; 0: no clipping. */
    double clip_grad_norm;
    SrcLoc clip_loc;
    /* n_groups > 0: only the params of the groups train, each group with its
     * lr and weight decay (a scheduled lr is scaled by group lr / lr); 0:
     * every non-frozen floating-point param, with lr and weight_decay. A
     * param in two groups is an error. */
    const ParamGroup *groups;
    int n_groups;
    /* The step counter's param name: NULL for "optimizer.step"; several
     * optimizers of one model (named train steps) need one each. */
    const char *counter;
    unsigned runtime; /* bit 1 << Hparam: read at run time (see Hparam) */
    /* > 0: data-parallel training (etch build --train --mpi, etch train
     * --ranks N): every gradient is averaged over the job's ranks before the
     * update (clipping included), through allreduce_start/allreduce_wait
     * pairs of about this many bytes each (buckets, in reverse parameter order: the order the
     * backward pass completes them). 0: one process, no such ops. */
    int64_t allreduce_bucket_bytes;
} OptimSpec;

/* The bucket size of data-parallel training (PyTorch DDP's default bucket_cap_mb is 25). */
enum { OPTIM_ALLREDUCE_BUCKET_BYTES = 4 << 20 };

/* PyTorch's defaults for kind (sgd: lr required, so 0.01 here; adam: 1e-3,
 * betas (0.9, 0.999), eps 1e-8; adamw: weight_decay 1e-2). */
OptimSpec optim_defaults(OptimKind kind);
const char *optim_name(OptimKind kind);
/* "lr", "momentum", ...: the keyword the optimizer call takes. */
const char *hparam_name(Hparam h);
/* The hyperparameter called name among those spec's optimizer takes
 * (sgd: lr, momentum, dampening, weight_decay; adam and adamw: lr, beta1,
 * beta2, eps, weight_decay); HP_COUNT when it takes none of that name. */
Hparam hparam_lookup(const OptimSpec *spec, const char *name);
/* The names hparam_lookup accepts for spec's optimizer, ", "-separated, into buf. */
void hparam_list(const OptimSpec *spec, char *buf, size_t n);
/* The field of spec holding h (beta1 and beta2: the betas). */
double *hparam_field(OptimSpec *spec, Hparam h);
/* Reports settings train_build_step refuses (a negative lr, betas outside
 * [0, 1), ...) at spec->loc; a runtime value is checked here, with the rest. */
bool optim_check(const OptimSpec *spec, Diag *d);

/* Whether spec trains the param named name, if it is trainable (true for
 * every param when spec names no groups). */
bool optim_trains(const OptimSpec *spec, const char *name);
/* The name of spec's step counter param ("optimizer.step" by default). */
const char *optim_counter(const OptimSpec *spec);

/* Extends g (whose output 0 is the scalar loss) into one training step:
 * gradients of every non-frozen floating-point param (or of spec's groups'
 * params), the optimizer update
 * and the state updates. Reports unsupported settings (nesterov without
 * momentum, negative rates...) at spec->loc. */
bool train_build_step(Graph *g, const OptimSpec *spec, Diag *d);

#endif
