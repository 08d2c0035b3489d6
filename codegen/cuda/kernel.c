/* kernel.c: opening and closing the CUDA backend's kernels (cuda_emit.h):
 * a kernel's definition goes to the file-scope kernels, its launch to the
 * entry's host code, so an op emitter writes both in one place. */
#include <stdio.h>

#include "codegen/cuda/cuda_emit.h"

void cuda_describe(const Graph *g, int id, char *buf, size_t n) {
    const Node *x = &g->nodes[id];
    char ty[96];
    snprintf(buf, n, "%%%d = %s : %s @ %s:%d:%d", id, op_table[x->op].name,
             type_format(ty, sizeof ty, x->dtype, &x->shape), x->loc.file ? x->loc.file : "?", x->loc.line, x->loc.col);
}

void cuda_kernel_begin(CudaEmitter *e, int64_t blocks, int threads, const char *what) {
    int k = e->n_kernels++;
    if (blocks < 1) blocks = 1;
    sb_printf(e->kernels, "/* %s */\nETCH_KERNEL(%s_k%d, %d, unsigned char *__restrict__ m, unsigned char *__restrict__ w)\n",
              what, e->P, k, threads);
    sb_printf(e->launches, "    ETCH_LAUNCH(stream, %s_k%d, %lld, %d, m, w); /* %s */\n", e->P, k, (long long)blocks,
              threads, what);
    e->launch_count++;
    e->c.out = e->kernels;
    e->c.indent = 1;
    cemit_line(&e->c, "(void)m, (void)w;");
}

void cuda_kernel_end(CudaEmitter *e) { sb_puts(e->kernels, "ETCH_KERNEL_END\n\n"); }

void cuda_elementwise_begin(CudaEmitter *e, int64_t n, const char *what) {
    int64_t blocks = (n + CUDA_BLOCK - 1) / CUDA_BLOCK;
    if (blocks > CUDA_MAX_GRID) blocks = CUDA_MAX_GRID;
    cuda_kernel_begin(e, blocks, CUDA_BLOCK, what);
    cemit_line(&e->c, "ETCH_THREADS");
    e->c.indent++;
    cemit_line(&e->c, "for (int64_t i = ETCH_BLOCK * ETCH_NTHREADS + ETCH_TID; i < %lld; i += ETCH_NBLOCKS * "
                      "ETCH_NTHREADS) {", (long long)n);
    e->c.indent++;
}

void cuda_elementwise_end(CudaEmitter *e) {
    cemit_close(&e->c);
    e->c.indent--;
    cemit_line(&e->c, "ETCH_THREADS_END");
    cuda_kernel_end(e);
}

void cuda_unravel(CudaEmitter *e, const char *lin, const int64_t *dim, int rank, char (*var)[16]) {
    int64_t inner = 1;
    for (int r = rank - 1; r >= 0; r--) {
        if (dim[r] == 1) {
            snprintf(var[r], sizeof var[r], "0");
            continue;
        }
        snprintf(var[r], sizeof var[r], "i%d", e->c.n_loops++);
        if (inner == 1 && r == 0) cemit_line(&e->c, "const int64_t %s = %s;", var[r], lin);
        else if (r == 0) cemit_line(&e->c, "const int64_t %s = %s / %lld;", var[r], lin, (long long)inner);
        else if (inner == 1) cemit_line(&e->c, "const int64_t %s = %s %% %lld;", var[r], lin, (long long)dim[r]);
        else cemit_line(&e->c, "const int64_t %s = %s / %lld %% %lld;", var[r], lin, (long long)inner, (long long)dim[r]);
        cemit_line(&e->c, "(void)%s;", var[r]); /* unused when every operand is broadcast along it (nvcc warns) */
        inner *= dim[r];
    }
}
