/* pass.h: the one signature every optimization pass has, and the pass manager.
 *
 * A pass takes a graph and returns the graph to continue with: a new graph
 * built in the same arena (ids renumbered, dead nodes gone), or the same one
 * annotated in place (fusion groups, the memory plan). Passes never change
 * what a graph computes: the test suite checks -O0 and -O2 against the eager
 * executor. The pipeline is a plain table in passes/manager.c: the only place
 * where an optimization level turns into behaviour. Its last stage,
 * plan-memory, runs at every level and attaches the memory plan backends
 * read (Graph.mem_plan). */
#ifndef ETCH_PASSES_PASS_H
#define ETCH_PASSES_PASS_H

#include <stdio.h>

#include "ir/ir.h"
#include "passes/target.h"

typedef struct PassCtx {
    Diag *d;
    const Target *target; /* what the graph is compiled for */
    /* plan-memory: values share arena storage once dead and optimizer
     * updates are written in place (the pipeline table's choice per level) */
    bool reuse_buffers;
    struct QuantRequest *quant; /* quantize: ranges and weights (passes/quantize.h); NULL: not asked */
} PassCtx;

/* Returns the transformed graph, or NULL after reporting an error through ctx->d. */
typedef Graph *(*PassFn)(Graph *g, PassCtx *ctx);

enum { PASS_LEVELS = 3 }; /* -O0, -O1, -O2 */

/* What the pipeline does with a pass at one -O level. */
typedef enum PassUse {
    PASS_SKIP,         /* not run */
    PASS_RUN,          /* run (plan-memory: reusing buffers) */
    PASS_RUN_NO_REUSE, /* plan-memory: every intermediate in its own buffer, updates copied */
} PassUse;

typedef struct PassInfo {
    const char *name;          /* "simplify", ..., "plan-memory" (--print-after=NAME, --disable-pass=NAME) */
    PassFn run;
    PassUse use[PASS_LEVELS];  /* what -O0, -O1 and -O2 do with it */
    const char *summary;       /* one line for --help and docs/passes.md */
    bool on_request;           /* runs (at every level) only when PassOptions.quant asks for it */
} PassInfo;

typedef struct PassOptions {
    int opt_level;                /* default 2; above 2 reads as 2 */
    const Target *target;         /* required: the backend's (Backend.target) */
    bool print_after_all;         /* dump the IR after every pass that ran */
    const char *print_after[16];  /* dump after these passes */
    int n_print_after;
    const char *disabled[16];     /* skip these passes */
    int n_disabled;
    bool verify;                  /* run ir_verify after each pass (on in debug builds and tests) */
    FILE *dump;                   /* where dumps go (stderr when NULL) */
    struct QuantRequest *quant;   /* --quantize int8: the quantize pass's request (passes/quantize.h) */
} PassOptions;

/* The registered passes in pipeline order; the entry after the last has name NULL. */
const PassInfo *passes_all(void);
const PassInfo *pass_find(const char *name);
/* Runs the pipeline for o->opt_level over g (and its scan bodies), ending
 * with the memory plan. NULL on error. */
Graph *passes_run(Graph *g, const PassOptions *o, Diag *d);
/* Runs the named passes in the given order whatever o->opt_level says (`etch
 * opt --passes=a,b,c`), with the same verify/dump/disable handling; a pass
 * the table runs at o->opt_level runs as it would there (plan-memory at -O0:
 * without buffer reuse). Unknown names (here or in o) are reported with the
 * list of valid ones; NULL on error. */
Graph *passes_run_list(Graph *g, const char *const *names, int n, const PassOptions *o, Diag *d);

/* The passes themselves (one file each in passes/). */
Graph *pass_simplify(Graph *g, PassCtx *ctx);
Graph *pass_cse(Graph *g, PassCtx *ctx);
Graph *pass_dce(Graph *g, PassCtx *ctx);
Graph *pass_fuse(Graph *g, PassCtx *ctx);
Graph *pass_plan_memory(Graph *g, PassCtx *ctx);
Graph *pass_quantize(Graph *g, PassCtx *ctx); /* passes/quantize.c: only with PassOptions.quant */ /* passes/plan_memory.c: sets g->mem_plan */

#endif
