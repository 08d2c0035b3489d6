/* emit_cuda.h: the CUDA backend (codegen/cuda): graphs -> model.cu, model.h
 * (the C backend's API) and etch_cuda.h, see emit_cuda.c. */
#ifndef ETCH_CODEGEN_CUDA_EMIT_CUDA_H
#define ETCH_CODEGEN_CUDA_EMIT_CUDA_H

#include "codegen/backend.h"

/* codegen/cuda/backend_cuda.c: model.cu compiled by nvcc, and the same
 * source compiled for the CPU, its kernels emulated (--host-emulate). */
extern const Backend backend_cuda, backend_cuda_emulated;

/* Writes model.cu, model_host.c, model.h, etch_cuda.h, the runtime (and the
 * driver o asks for) into dir, each atomically. */
bool cuda_write(const CGenEntry *entries, int n_entries, const CGenOptions *o, const char *dir, CGenStats *stats,
                Diag *d);
/* The text of model.cu (malloc'd), NULL with a diagnostic (an op without a
 * CUDA emitter, at its source line). */
char *cuda_model_source(const CGenEntry *entries, int n_entries, const CGenOptions *o, CGenStats *stats, Diag *d);

#endif
