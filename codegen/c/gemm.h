/* gemm.h: the C backend's matrix-multiply generator. Every matmul in emitted
 * code calls a kernel specialized to its literal sizes and strides: cache
 * blocking and packing for large shapes, a register-tiled direct loop for
 * small ones, AVX-512 / AVX2+FMA variants picked at run time on x86 (GCC and
 * clang) and a portable C variant everywhere. The result of every output
 * element is the same sequence of floating-point operations whatever the
 * thread count, so `--threads N` never changes the numbers. */
#ifndef ETCH_CODEGEN_C_GEMM_H
#define ETCH_CODEGEN_C_GEMM_H

#include "codegen/c/emit.h"

/* C (M x N, row stride ldc) = or += op(A) op(B), row-major, where op(A) is
 * M x K and op(B) is K x N. trans_a: A is stored as K x M (element (i,k) at
 * A[k*lda + i]); otherwise A[i*lda + k]. trans_b: B is stored as N x K
 * (element (k,j) at B[j*ldb + k]); otherwise B[k*ldb + j]. */
typedef struct GemmDesc {
    DType dtype;          /* DT_F32 or DT_F64 */
    int64_t m, n, k;
    bool trans_a, trans_b;
    int64_t lda, ldb, ldc;
    bool accumulate;      /* C += A B instead of C = A B */
    /* NULL, or the name of a function the kernel applies to each finished
     * tile of the product (after its whole K sum), in place of storing it:
     *   void epilogue(const T *R, int64_t ldr, int64_t i0, int64_t j0, int64_t rows, int64_t cols)
     * R holds the tile's rows x cols sums (row stride ldr), which are the
     * product's elements [i0, i0 + rows) x [j0, j0 + cols). Each element is
     * passed exactly once, whatever the thread count; C is scratch for K
     * slices still to be added (or, without tiles, holds the whole product,
     * then passed as one tile). Not with accumulate. (codegen/c/epilogue.c) */
    const char *epilogue;
} GemmDesc;

/* Defines the kernel for d in e->preamble (once per distinct descriptor) and
 * emits `kernel(a, b, c);` in e->out. a, b, c are C expressions of pointers
 * to the operands' first elements. e->threads > 1 lets big products split
 * their columns (or rows) over that many threads of the file's thread pool
 * (the file then needs <pthread.h>, included by the preamble; link with
 * -pthread before glibc 2.34). */
void gemm_emit(CEmitter *e, const GemmDesc *d, const char *a, const char *b, const char *c);

/* The kernel's C name for d (for tests and for reading emitted code). */
void gemm_kernel_name(char *buf, size_t n, const GemmDesc *d);

#endif
