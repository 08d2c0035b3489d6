/* test_cuda_emulation.c: the CPU rendering of the CUDA backend's kernel
 * language (runtime/cuda/etch_cuda.h with ETCH_HOST_EMULATE), on kernels
 * written by hand that depend on what a GPU guarantees: a barrier between
 * writing shared memory and reading another thread's element (a block
 * transposing a tile), per-thread values that live across barriers, a
 * block loop holding phases, and warp shuffles (a block sum by
 * ETCH_SHFL_DOWN within each warp, then across warps through shared
 * memory). Each result is checked element by element against plain C. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#define ETCH_HOST_EMULATE 1
#include "runtime/cuda/etch_cuda.h"

/* out = the 32 x 32 transpose of each of n tiles of in, through shared memory */
ETCH_KERNEL(transpose_tiles, 1024, const float *in, float *out)
    ETCH_SHARED(float, tile, 32 * 33);
    ETCH_THREADS
        const int r = ETCH_TID / 32, c = ETCH_TID % 32;
        tile[r * 33 + c] = in[ETCH_BLOCK * 1024 + r * 32 + c];
    ETCH_SYNC
        const int r = ETCH_TID / 32, c = ETCH_TID % 32;
        out[ETCH_BLOCK * 1024 + r * 32 + c] = tile[c * 33 + r]; /* written by another thread */
    ETCH_THREADS_END
ETCH_KERNEL_END

/* sums[b] = the sum of in[b * len ...] over a block of 128 threads: a
 * strided partial sum per thread, a shuffle tree per warp, the warps'
 * sums through shared memory, a last shuffle tree in warp 0 */
ETCH_KERNEL(block_sums, 128, const double *in, double *sums, int64_t len)
    ETCH_SHARED(double, warp_sum, 4);
    ETCH_THREAD_VAR(double, v);
    ETCH_THREADS
        double s = 0;
        for (int64_t k = ETCH_TID; k < len; k += ETCH_NTHREADS) s += in[ETCH_BLOCK * len + k];
        ETCH_TV(v) = s;
    ETCH_THREADS_END
    for (int off = 16; off > 0; off /= 2) {
        ETCH_THREADS
            ETCH_TV(v) += ETCH_SHFL_DOWN(v, off);
        ETCH_THREADS_END
    }
    ETCH_THREADS
        if (ETCH_TID % 32 == 0) warp_sum[ETCH_TID / 32] = ETCH_TV(v);
    ETCH_SYNC
        ETCH_TV(v) = ETCH_TID < 4 ? warp_sum[ETCH_TID] : 0.0;
    ETCH_THREADS_END
    for (int off = 16; off > 0; off /= 2) {
        ETCH_THREADS
            ETCH_TV(v) += ETCH_SHFL_DOWN(v, off);
        ETCH_THREADS_END
    }
    ETCH_THREADS
        if (ETCH_TID == 0) sums[ETCH_BLOCK] = ETCH_TV(v);
    ETCH_THREADS_END
ETCH_KERNEL_END

static void test_transpose_needs_the_barrier(void **state) {
    (void)state;
    enum { N = 3 };
    static float in[N * 1024], out[N * 1024];
    for (int i = 0; i < N * 1024; i++) in[i] = (float)i;
    ETCH_LAUNCH(0, transpose_tiles, N, 1024, in, out);
    for (int b = 0; b < N; b++)
        for (int r = 0; r < 32; r++)
            for (int c = 0; c < 32; c++) assert_true(out[b * 1024 + r * 32 + c] == in[b * 1024 + c * 32 + r]);
}

static void test_shuffle_block_sum(void **state) {
    (void)state;
    enum { BLOCKS = 5, LEN = 1000 };
    static double in[BLOCKS * LEN], sums[BLOCKS];
    for (int i = 0; i < BLOCKS * LEN; i++) in[i] = (double)((i * 7919) % 1009) - 500.0; /* integers: exact sums */
    ETCH_LAUNCH(0, block_sums, BLOCKS, 128, in, sums, (int64_t)LEN);
    for (int b = 0; b < BLOCKS; b++) {
        double want = 0;
        for (int k = 0; k < LEN; k++) want += in[b * LEN + k];
        assert_true(sums[b] == want);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transpose_needs_the_barrier),
        cmocka_unit_test(test_shuffle_block_sum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
