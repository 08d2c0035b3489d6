/* emit_c.h: the C backend: graphs -> model.c + model.h, specialized to their
 * static shapes. A model can have several entry points (forward, train_step)
 * that share one set of parameters (matched by name) and one static arena.
 * Drivers that turn it into a program (runtime/drivers/) are copied along. */
#ifndef ETCH_CODEGEN_C_EMIT_C_H
#define ETCH_CODEGEN_C_EMIT_C_H

#include "ir/ir.h"
#include "ir/tensor.h"

typedef struct CGenEntry {
    const Graph *g;
    const char *name;            /* C function suffix: "forward" -> net_forward */
} CGenEntry;

typedef enum CGenDriver {
    CGEN_DRIVER_NONE,
    CGEN_DRIVER_INFER, /* main.c: PROGRAM [--weights W] IN.npy... OUT.npy... */
    CGEN_DRIVER_TRAIN, /* main.c: the training loop over IDX data (etch train) */
} CGenDriver;

typedef struct CGenOptions {
    const char *prefix;          /* C identifier prefix, e.g. "net" */
    bool embed_weights;          /* params as const arrays in model.c (needs param_values) */
    Tensor *const *param_values; /* per param of entry 0 (g->params order), for embedding */
    CGenDriver driver;
    int threads;                 /* kernels may use this many threads (0/1: single-threaded) */
    int opt_level;               /* 0: every intermediate in its own buffer, copies for updates */
    bool blas;                   /* matmuls call OpenBLAS (the program then links -lopenblas) */
} CGenOptions;

/* Statistics of the emitted code, for --stats and tests. */
typedef struct CGenStats {
    int64_t arena_bytes;   /* intermediates' arena size */
    int64_t naive_bytes;   /* every intermediate in its own buffer */
    int64_t param_bytes;   /* parameters and optimizer state */
    int kernels;           /* loop nests emitted (all entries) */
} CGenStats;

/* Writes model.h, model.c, the runtime (and main.c) into dir, each atomically. */
bool cgen_write(const CGenEntry *entries, int n_entries, const CGenOptions *o, const char *dir, CGenStats *stats,
                Diag *d);
/* The text of model.c / model.h (malloc'd), for tests. NULL (and a
 * diagnostic) when the entries disagree about a shared parameter. */
char *cgen_model_source(const CGenEntry *entries, int n_entries, const CGenOptions *o, CGenStats *stats, Diag *d);
char *cgen_model_header(const CGenEntry *entries, int n_entries, const CGenOptions *o);

#endif
