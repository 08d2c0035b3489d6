/* emit_c.h: the C backend: a Graph -> model.c + model.h specialized to its
 * static shapes, plus an optional main.c that turns it into a program. */
#ifndef ETCH_CODEGEN_C_EMIT_C_H
#define ETCH_CODEGEN_C_EMIT_C_H

#include "ir/ir.h"
#include "ir/tensor.h"

typedef struct CGenOptions {
    const char *prefix;          /* C identifier prefix, e.g. "net" */
    bool embed_weights;          /* params as const arrays in model.c (needs param_values) */
    Tensor *const *param_values; /* per g->params[i], for embedding */
    bool with_main;              /* also write main.c: PROGRAM [--weights W] IN.npy... OUT.npy... */
} CGenOptions;

/* Statistics of the emitted code, for --stats and tests. */
typedef struct CGenStats {
    int64_t arena_bytes;   /* intermediates' arena size */
    int64_t naive_bytes;   /* every intermediate in its own buffer */
    int kernels;           /* loop nests emitted */
} CGenStats;

/* Writes model.h, model.c (and main.c) into dir, atomically per file. */
bool cgen_write(const Graph *g, const CGenOptions *o, const char *dir, CGenStats *stats, Diag *d);
/* The C source of model.c as a string (malloc'd), for tests. */
char *cgen_model_source(const Graph *g, const CGenOptions *o, CGenStats *stats);

#endif
