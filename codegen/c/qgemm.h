/* qgemm.h: the C backend's integer matrix-multiply generator for qmatmul
 * (docs/quantization.md, "The kernels"). Each qmatmul calls a kernel
 * specialized to its literal sizes, dtypes, zero points and clamp, with
 * AVX-512 VNNI, AVX2 and portable C variants picked at run time (capped by
 * ETCH_GEMM_ISA=portable|avx2 like the float GEMMs) and the requantize
 * epilogue fused per register tile. Integer sums are exact (modulo 2^32), so
 * every variant and any thread split give the eager executor's bits. */
#ifndef ETCH_CODEGEN_C_QGEMM_H
#define ETCH_CODEGEN_C_QGEMM_H

#include "codegen/c/emit.h"

/* y [M, N] = requantize(bias + (x [M, K] - zx) w [N, K]^T), as ir/ops/quant.c's
 * eval_qmatmul defines it; lo/hi: the output clamp (unused for f32). */
typedef struct QGemmDesc {
    int64_t m, n, k;
    DType x_dtype;   /* DT_U8 or DT_I8 */
    DType y_dtype;   /* DT_U8, DT_I8 or DT_F32 */
    int zx, zy, lo, hi;
} QGemmDesc;

/* The file-scope support of the kernels (once per file): ETCH_QGEMM_X86,
 * ETCH_QGEMM_AVX2 / ETCH_QGEMM_VNNI target attributes, etch_qgemm_isa() (2
 * VNNI, 1 AVX2, 0 portable, capped by ETCH_GEMM_ISA). */
void qgemm_emit_support(CEmitter *e);

/* Defines the kernel in e->preamble (once per descriptor) and emits the call
 * `kernel(x, w, bias, mult, shift, y);` (C pointer expressions) in e->out. */
void qgemm_emit(CEmitter *e, const QGemmDesc *d, const char *x, const char *w, const char *bias, const char *mult,
                const char *shift, const char *y);

#endif
