/* emit_c.h: the C backend: graphs -> model.c + model.h, specialized to their
 * static shapes. A model can have several entry points (forward, train_step)
 * that share one set of parameters (matched by name) and, per context
 * (P_ctx), one arena.
 * Drivers that turn it into a program (runtime/drivers/) are copied along. */
#ifndef ETCH_CODEGEN_C_EMIT_C_H
#define ETCH_CODEGEN_C_EMIT_C_H

#include "codegen/backend.h"

/* Writes model.h, model.c, the runtime (and main.c) into dir, each atomically. */
bool cgen_write(const CGenEntry *entries, int n_entries, const CGenOptions *o, const char *dir, CGenStats *stats,
                Diag *d);
/* The text of model.c / model.h (malloc'd), for tests. NULL (and a
 * diagnostic) when the entries disagree about a shared parameter. */
char *cgen_model_source(const CGenEntry *entries, int n_entries, const CGenOptions *o, CGenStats *stats, Diag *d);
char *cgen_model_header(const CGenEntry *entries, int n_entries, const CGenOptions *o);

#endif
