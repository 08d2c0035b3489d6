/* train.h: turning a loss graph into a training step graph.
 *
 * The step is ordinary IR: the loss, its gradients (the autodiff pass), and the
 * optimizer's update rule for every trainable parameter, ending in state
 * updates (graph_add_update) that write the new weights and optimizer state
 * back into their parameters. Optimizer state (momentum buffers, Adam moments,
 * the step count) is held in extra params named "optimizer.<param>.<state>"
 * and "optimizer.step", so it is saved in checkpoints like any weight. A
 * loss graph that already has an "optimizer.step" param (traced dropout reads
 * it) keeps it: the step updates that one. */
#ifndef ETCH_PASSES_TRANSFORMS_TRAIN_H
#define ETCH_PASSES_TRANSFORMS_TRAIN_H

#include "ir/ir.h"

typedef enum OptimKind { OPTIM_SGD, OPTIM_ADAM, OPTIM_ADAMW } OptimKind;

/* Hyperparameters with PyTorch's meanings and defaults (optim_defaults). */
typedef struct OptimSpec {
    OptimKind kind;
    double lr;
    double momentum, dampening; /* sgd */
    bool nesterov;              /* sgd */
    double weight_decay;        /* sgd, adam: L2 added to the gradient; adamw: decoupled */
    double beta1, beta2, eps;   /* adam, adamw */
    SrcLoc loc;                 /* where the optimizer was written, for errors */
} OptimSpec;

/* PyTorch's defaults for kind (sgd: lr required, so 0.01 here; adam: 1e-3,
 * betas (0.9, 0.999), eps 1e-8; adamw: weight_decay 1e-2). */
OptimSpec optim_defaults(OptimKind kind);
const char *optim_name(OptimKind kind);

/* Extends g (whose output 0 is the scalar loss) into one training step:
 * gradients of every non-frozen floating-point param, the optimizer update
 * and the state updates. Reports unsupported settings (nesterov without
 * momentum, negative rates...) at spec->loc. */
bool train_build_step(Graph *g, const OptimSpec *spec, Diag *d);

#endif
