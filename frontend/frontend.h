/* frontend.h: the DSL front end: source text -> typed IR graphs.
 *
 * Lexes and parses an .etch file (plus the standard library, itself written in
 * the DSL and embedded in the compiler), elaborates module instances with their
 * constructor arguments, and traces the model's forward function into an IR
 * Graph whose inputs are the forward parameters, whose params are every
 * parameter reachable from the model (dotted PyTorch state_dict names) and
 * whose outputs are the returned values. Shapes and dtypes are checked while
 * tracing, through the op table's shape rules, at the user's source locations. */
#ifndef ETCH_FRONTEND_H
#define ETCH_FRONTEND_H

#include "ir/ir.h"
#include "passes/transforms/train.h"

/* A compile-time override of a named constant: -D NAME=VALUE. */
typedef struct Define {
    const char *name;
    const char *value; /* number literal text, e.g. "1" or "0.5" */
} Define;

/* One training step: a loss and the optimizer that minimizes it. */
typedef struct TrainStep {
    /* "<Model>.train_step" ("<Model>.train_step_<name>" for a named step):
     * inputs "x" (the forward's first input type) and "y" (labels, i64[B]
     * unless declared otherwise), the model's params, and output 0 = the
     * scalar loss, traced in training mode (dropout active). */
    Graph *loss;
    OptimSpec optim;  /* with a named step: its param groups and its own counter */
    const char *name; /* "d" for `step d { ... }`; NULL for a train block without steps */
    SrcLoc loc;
} TrainStep;

/* A `train { ... }` block: what to minimize and how. */
typedef struct TrainSpec {
    /* The first step's (the only one of a block without steps). */
    Graph *loss;
    OptimSpec optim;
    TrainStep *steps; /* n_steps >= 1; several only with `step NAME { ... }` */
    int n_steps;
    int *schedule;    /* the steps each batch runs, in order (indices into steps; `schedule = [d, g]`) */
    int n_schedule;
    int64_t batch;  /* = the leading dim of x */
    int64_t epochs; /* default epochs for `etch train` */
    SrcLoc loc;     /* the train keyword */
} TrainSpec;

typedef struct Program {
    const char *model_name; /* "Net" */
    SrcLoc model_loc;
    Graph *forward;         /* entry point "<Model>.forward", inference mode */
    TrainSpec *train;       /* NULL when the file has no train block */
    /* parameter values that came with the model (an imported ONNX file's
     * initializers, frontend/onnx/onnx.h), used when no --weights is given;
     * NULL for a DSL source, whose params start from their initializers */
    const struct etch_st_file *weights;
} Program;

/* The largest source accepted: real models are kilobytes; this bounds the time
 * and memory a hostile file can take (the front end is linear in its size). */
#define FRONTEND_MAX_SOURCE ((size_t)16 << 20)

/* Reads path and compiles it. Errors are reported through d; NULL on error. */
Program *frontend_compile_file(Arena *a, const char *path, const Define *defs, int n_defs, Diag *d);
/* Same for text already in memory; path names it in diagnostics. The text
 * must outlive the diagnostics. */
Program *frontend_compile_source(Arena *a, const char *path, const char *src, const Define *defs, int n_defs,
                                 Diag *d);

/* The embedded standard library source (frontend/stdlib/nn.etch) and its name
 * (its base name, "nn.etch"). */
extern const char etch_stdlib_nn_source[];
extern const char etch_stdlib_nn_name[];

#endif
