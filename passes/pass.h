/* pass.h: the one signature every optimization pass has, and the pass manager.
 *
 * A pass takes a graph and returns the graph to continue with: a new graph
 * built in the same arena (ids renumbered, dead nodes gone), or the same one
 * annotated in place (fusion groups). Passes never change what a graph
 * computes: the test suite checks -O0 and -O2 against the eager executor.
 * The pipeline per optimization level is a plain array in passes/manager.c. */
#ifndef ETCH_PASSES_PASS_H
#define ETCH_PASSES_PASS_H

#include <stdio.h>

#include "ir/ir.h"

typedef struct PassCtx {
    Diag *d;
    int opt_level;       /* 0, 1, 2 */
} PassCtx;

/* Returns the transformed graph, or NULL after reporting an error through ctx->d. */
typedef Graph *(*PassFn)(Graph *g, PassCtx *ctx);

typedef struct PassInfo {
    const char *name;    /* "simplify", "cse", "dce", "fuse", ... (--print-after=NAME, --disable-pass=NAME) */
    PassFn run;
    int min_level;       /* runs at -O<min_level> and above */
    const char *summary; /* one line for --help and docs/passes.md */
} PassInfo;

typedef struct PassOptions {
    int opt_level;                /* default 2 */
    bool print_after_all;         /* dump the IR after every pass that ran */
    const char *print_after[16];  /* dump after these passes */
    int n_print_after;
    const char *disabled[16];     /* skip these passes */
    int n_disabled;
    bool verify;                  /* run ir_verify after each pass (on in debug builds and tests) */
    FILE *dump;                   /* where dumps go (stderr when NULL) */
} PassOptions;

/* The registered passes in pipeline order, NULL-terminated. */
const PassInfo *const *passes_all(void);
const PassInfo *pass_find(const char *name);
/* Runs the pipeline for o->opt_level over g. NULL on error. */
Graph *passes_run(Graph *g, const PassOptions *o, Diag *d);
/* Runs the named passes in the given order whatever o->opt_level says (`etch
 * opt --passes=a,b,c`), with the same verify/dump/disable handling. Unknown
 * names (here or in o) are reported with the list of valid ones; NULL on error. */
Graph *passes_run_list(Graph *g, const char *const *names, int n, const PassOptions *o, Diag *d);

/* The passes themselves (one file each in passes/). */
Graph *pass_simplify(Graph *g, PassCtx *ctx);
Graph *pass_cse(Graph *g, PassCtx *ctx);
Graph *pass_dce(Graph *g, PassCtx *ctx);
Graph *pass_fuse(Graph *g, PassCtx *ctx);

#endif
