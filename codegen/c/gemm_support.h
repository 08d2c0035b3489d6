/* gemm_support.h: the shared support text of the GEMM kernels (see
 * gemm_support.c); used by codegen/c/gemm.c (and the thread fan-out by
 * codegen/c/qgemm.c). */
#ifndef ETCH_CODEGEN_C_GEMM_SUPPORT_H
#define ETCH_CODEGEN_C_GEMM_SUPPORT_H

#include "codegen/c/emit.h"

/* The one run-time CPU-feature probe, etch_cpu_features() (once per file). */
void gemm_emit_cpu_probe(CEmitter *e);
/* Instruction-set macros, detection and helpers every kernel uses (once per file). */
void gemm_emit_support(CEmitter *e);
/* The persistent thread pool for kernels split into parts (once per file). */
void gemm_emit_thread_support(CEmitter *e);

#endif
