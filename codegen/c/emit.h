/* emit.h: the C emitter's state, shared by the codegen driver (codegen/c/emit_c.c)
 * and the per-op emitters (codegen/c/ops/<family>.c).
 *
 * The driver decides where every value lives (its buffer expression) and
 * opens the entry function; each op's emit_c function then writes the loop
 * nest that computes that node, with every bound and stride a literal. */
#ifndef ETCH_CODEGEN_C_EMIT_H
#define ETCH_CODEGEN_C_EMIT_H

#include "ir/ir.h"
#include "ir/strbuf.h"

typedef struct CEmitter {
    StrBuf *out;         /* body of the function being emitted */
    const Graph *g;
    const char **buf;    /* per node: C expression of its storage's base pointer, e.g. "t5" */
    int indent;          /* current indentation level (4 spaces each) */
    int n_loops;         /* fresh loop-variable counter */
    StrBuf *preamble;    /* file-scope definitions (kernels) emitted before the entry functions */
    const char **defined;/* names already defined in the preamble (dedupe), n_defined of them */
    int n_defined, cap_defined;
    int threads;         /* --threads N: kernels may split work over N threads (1 = none) */
    bool blas;           /* --blas=openblas: matmuls call cblas_sgemm/dgemm instead of emitted kernels */
    struct EmitDriver *driver; /* the driver's state (emit_c.c), for cemit_subgraph */
} CEmitter;

/* Emits graph `body` (a scan's) as a static function of the model, placed in
 * the preamble, with its own arena in the context's scratch; returns the
 * function's name. Its parameters are the body's inputs (const pointers) then
 * its outputs. */
const char *cemit_subgraph(CEmitter *e, const Graph *body);

/* Working memory that kernels keep across one call (scan carries, im2col
 * columns, GEMM packing buffers, epilogue arguments) lives in the scratch of
 * the model's context (P_ctx, see docs/c-api.md), so that calls in different
 * contexts may run at once. Reserves `bytes` of it (64-byte aligned) and
 * returns a C expression of type `unsigned char *` that addresses it from any
 * function of model.c, on GEMM worker threads too: an offset from
 * CEMIT_SCRATCH_NOW, the calling thread's current scratch. Outside a model
 * (no driver: unit tests that emit one kernel) it defines a static array.
 * The text lives as long as the emitter. */
const char *cemit_scratch(CEmitter *e, int64_t bytes);
#define CEMIT_SCRATCH_NOW "etch_scratch_now"
/* Defines CEMIT_SCRATCH_NOW in the preamble, once: a thread-local pointer
 * each entry sets to its context's scratch (and GEMM workers inherit). */
void cemit_scratch_support(CEmitter *e);

/* Definitions every model.c starts with (codegen/c/cmath.c): etch_expf and
 * etch_tanhf, vectorizable float exp and tanh, and the ETCH_EXP/ETCH_TANH
 * macros that the op table's C templates use. */
extern const char cemit_math_prelude[];

/* True the first time name is asked for in this file (then the caller emits
 * its definition into e->preamble); false when it is already there. */
bool cemit_define_once(CEmitter *e, const char *name);

/* Appends one line at the current indentation. */
void cemit_line(CEmitter *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Opens `for (int64_t v = 0; v < n; v++) {` with a fresh variable name written to var. */
void cemit_for(CEmitter *e, char *var, size_t var_size, int64_t n);
void cemit_close(CEmitter *e); /* closes the innermost `{` */
/* A C literal of value in dtype t ("0.5f", "1e-05", "3", ...), exact for f32/f64. */
void cemit_literal(char *buf, size_t n, double value, DType t);

#endif
