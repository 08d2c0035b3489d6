/* etch_cuda.h: what a model.cu written by etch's CUDA backend (codegen/cuda)
 * compiles against, in two ways from the same source:
 *
 *   nvcc model.cu                       the kernels run on the GPU;
 *   cc model_host.c (ETCH_HOST_EMULATE) the same kernels run on the CPU.
 *
 * Kernels are written in a small macro language that both renderings give
 * a meaning to. A kernel is a sequence of phases separated by barriers:
 *
 *   ETCH_KERNEL(name, THREADS, params...)       one block of THREADS threads
 *     ETCH_SHARED(float, tile, 256);            block-local (shared) memory
 *     ETCH_THREAD_VAR(float, acc);              a per-thread value that lives
 *                                               across a barrier: ETCH_TV(acc)
 *     ETCH_THREAD_ARRAY(float, acc, 16);        16 of them: ETCH_TVA(acc, k)
 *     ETCH_THREADS
 *       ... every thread: ETCH_TID, ETCH_BLOCK, ETCH_NTHREADS, ETCH_NBLOCKS
 *     ETCH_SYNC                                 __syncthreads()
 *       ...
 *     ETCH_THREADS_END
 *   ETCH_KERNEL_END
 *
 * On the GPU a phase is a brace block and ETCH_SYNC (and ETCH_THREADS_END)
 * a barrier, so a loop of the whole block may hold phases (a GEMM's loop over
 * its K tiles: load the tiles, barrier, multiply, barrier). On the CPU
 * (the technique of PoCL and CuPBoP: work-item loops) each block runs its
 * phases one after the other, each phase a loop over the block's threads;
 * a per-thread value is then an array indexed by the thread, shared memory
 * an array of the block. So a local declared in one phase is out of scope
 * in the next in both renderings, and a kernel that needs it across a
 * barrier does not compile until it is made an ETCH_THREAD_VAR. A thread's
 * array (a GEMM's accumulators) is registers on the GPU when every index is
 * a constant once loops marked ETCH_UNROLL (`#pragma unroll`; nothing on
 * the CPU) are unrolled; on the CPU an array per thread of the block.
 * ETCH_SHFL_DOWN(v, k) reads thread v of lane + k (its own value past the
 * warp's end), as __shfl_down_sync with a full mask; on the CPU threads of a
 * phase run in increasing order, so `ETCH_TV(v) += ETCH_SHFL_DOWN(v, k)`
 * reads the lane above before that lane updates it, as on the GPU; steps of
 * a shuffle tree are separated by ETCH_WARP_SYNC (a barrier of the warp on
 * the GPU, __syncwarp; of the block on the CPU, where it ends the phase so
 * the next step reads values the previous one finished). Blocks
 * are a multiple of 32 threads; every thread reaches every barrier and
 * shuffle (no early return). Grids and blocks are one-dimensional.
 *
 * Memory: a context owns one device allocation (the memory plan's arena, the
 * entries' inputs and outputs, scratch), the parameters another; kernels get
 * both base pointers and address every tensor at a compile-time offset.
 * On the CPU "device" memory is host memory and copies are memcpy. */
#ifndef ETCH_CUDA_H
#define ETCH_CUDA_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef ETCH_HOST_EMULATE
/* ------------------------------------------------------------------ CPU */
#include <tgmath.h>

#define ETCH_MAX_BLOCK 1024
typedef struct etch_launch_dims {
    int64_t blocks;
    int threads;
} etch_launch_dims;
typedef int etch_stream;

#define ETCH_ALIGN64 _Alignas(64)
#define ETCH_DEVICE static inline
#define ETCH_MAYBE_UNUSED __attribute__((unused))
#define ETCH_KERNEL(name, nthreads, ...)                                                                              \
    static void name(etch_launch_dims etch_dims_, __VA_ARGS__) {                                                   \
        enum { etch_block_threads_ = (nthreads) };                                                                    \
        for (int64_t etch_block_ = 0; etch_block_ < etch_dims_.blocks; etch_block_++) {
#define ETCH_KERNEL_END                                                                                               \
    }                                                                                                                 \
    }
#define ETCH_BLOCK etch_block_
#define ETCH_NBLOCKS etch_dims_.blocks
#define ETCH_NTHREADS etch_dims_.threads
#define ETCH_TID etch_tid_
#define ETCH_THREADS for (int etch_tid_ = 0; etch_tid_ < etch_dims_.threads; etch_tid_++) {
#define ETCH_SYNC                                                                                                     \
    }                                                                                                                 \
    for (int etch_tid_ = 0; etch_tid_ < etch_dims_.threads; etch_tid_++) {
#define ETCH_WARP_SYNC ETCH_SYNC
#define ETCH_THREADS_END }
#define ETCH_SHARED(T, name, n) T name[n]
#define ETCH_THREAD_VAR(T, name) T name##_tv_[ETCH_MAX_BLOCK]
#define ETCH_TV(name) name##_tv_[etch_tid_]
#define ETCH_THREAD_ARRAY(T, name, n) T name##_tva_[etch_block_threads_][n]
#define ETCH_TVA(name, k) name##_tva_[etch_tid_][k]
#define ETCH_UNROLL
#define ETCH_SHFL_DOWN(name, off)                                                                                     \
    ((etch_tid_ & 31) + (off) < 32 ? name##_tv_[etch_tid_ + (off)] : name##_tv_[etch_tid_])
#define ETCH_LAUNCH(stream, name, blocks, nthreads, ...)                                                              \
    ((void)(stream), name((etch_launch_dims){(blocks), (nthreads)}, __VA_ARGS__))
/* __dp4a: c plus the four products of the signed bytes of a and b, modulo
 * 2^32 (the integer GEMM of qmatmul and qconv2d, codegen/cuda/ops/qgemm.c) */
static inline int32_t etch_dp4a(uint32_t a, uint32_t b, int32_t c) {
    int32_t s = 0;
    for (int i = 0; i < 32; i += 8)
        s += ((int32_t)((a >> i & 0xff) ^ 0x80) - 0x80) * ((int32_t)((b >> i & 0xff) ^ 0x80) - 0x80);
    return (int32_t)((uint32_t)c + (uint32_t)s);
}
#define ETCH_DP4A(a, b, c) etch_dp4a((a), (b), (c))

/* the cast op's rule (as the eager executor's): to bool nonzero is 1, a float
 * to i32/i64 saturates and NaN is 0 */
static inline double etch_sat(double v, double lo, double hi) { return v != v ? 0 : v < lo ? lo : v > hi ? hi : v; }
#define ETCH_FLOAT_TO_INT(T, x, lo, hi)                                                                               \
    _Generic((x), float: (T)etch_sat((x), (lo), (hi)), double: (T)etch_sat((x), (lo), (hi)), default: (T)(x))
#define ETCH_CAST(T, x)                                                                                               \
    _Generic((T)0, uint8_t: (T)((x) != 0), int32_t: ETCH_FLOAT_TO_INT(T, x, -2147483648.0, 2147483647.0),         \
             int64_t: ETCH_FLOAT_TO_INT(T, x, -9223372036854775808.0, 9223372036854774784.0), default: (T)(x))

static inline int etch_device_check(char *err, size_t errlen) { return (void)err, (void)errlen, 0; }
static inline int etch_stream_create(etch_stream *s, char *err, size_t errlen) {
    return *s = 0, (void)err, (void)errlen, 0;
}
static inline void etch_stream_destroy(etch_stream s) { (void)s; }
static inline int etch_dev_alloc(unsigned char **p, size_t n, char *err, size_t errlen) {
    *p = (unsigned char *)aligned_alloc(256, (n + 255) / 256 * 256);
    if (*p) return memset(*p, 0, n), 0;
    snprintf(err, errlen, "out of memory (%zu bytes)", n);
    return -1;
}
static inline void etch_dev_free(void *p) { free(p); }
static inline void etch_dev_upload(void *dst, const void *src, size_t n, etch_stream s) { (void)s, memcpy(dst, src, n); }
static inline void etch_dev_download(void *dst, const void *src, size_t n, etch_stream s) {
    (void)s, memcpy(dst, src, n);
}
static inline void etch_dev_copy(void *dst, const void *src, size_t n, etch_stream s) { (void)s, memmove(dst, src, n); }
static inline int etch_stream_sync(etch_stream s, char *err, size_t errlen) { return (void)s, (void)err, (void)errlen, 0; }
/* host memory for buffers the device copies from and to: 64-byte aligned (as
 * pinned memory is page aligned on the GPU); NULL when memory runs out */
static inline void *etch_host_alloc(size_t n) { return aligned_alloc(64, (n + 63) / 64 * 64 + 64); }
static inline void etch_host_free(void *p) { free(p); }

#else
/* ------------------------------------------------------------------ GPU */
#include <cuda_runtime.h>
#include <math.h>

typedef cudaStream_t etch_stream;
#define ETCH_ALIGN64 alignas(64)
#define ETCH_DEVICE static __device__ __forceinline__
/* what the C backend's shared helper text (quantized arithmetic,
 * codegen/c/ops/quant.c) declares its functions with: here callable from
 * kernels and host code alike */
#define ETCH_MAYBE_UNUSED __host__ __device__ __attribute__((unused))
#define ETCH_KERNEL(name, nthreads, ...) static __global__ void __launch_bounds__(nthreads) name(__VA_ARGS__) {
#define ETCH_KERNEL_END }
#define ETCH_BLOCK ((int64_t)blockIdx.x)
#define ETCH_NBLOCKS ((int64_t)gridDim.x)
#define ETCH_NTHREADS ((int)blockDim.x)
#define ETCH_TID ((int)threadIdx.x)
#define ETCH_THREADS {
#define ETCH_SYNC                                                                                                     \
    }                                                                                                                 \
    __syncthreads();                                                                                                  \
    {
#define ETCH_WARP_SYNC                                                                                                \
    }                                                                                                                 \
    __syncwarp();                                                                                                     \
    {
#define ETCH_THREADS_END                                                                                              \
    }                                                                                                                 \
    __syncthreads();
#define ETCH_SHARED(T, name, n) __shared__ T name[n]
#define ETCH_THREAD_VAR(T, name) T name##_tv_
#define ETCH_TV(name) name##_tv_
#define ETCH_THREAD_ARRAY(T, name, n) T name##_tva_[n]
#define ETCH_TVA(name, k) name##_tva_[k]
#define ETCH_UNROLL _Pragma("unroll")
#define ETCH_SHFL_DOWN(name, off) __shfl_down_sync(0xffffffffu, name##_tv_, (off))
#define ETCH_LAUNCH(stream, name, blocks, nthreads, ...)                                                              \
    name<<<(unsigned)(blocks), (nthreads), 0, (stream)>>>(__VA_ARGS__)
/* c plus the four products of the signed bytes of a and b, modulo 2^32 */
#define ETCH_DP4A(a, b, c) __dp4a((int)(a), (int)(b), (int)(c))

/* the cast op's rule (as the eager executor's), in C++ */
__host__ __device__ inline double etch_sat(double v, double lo, double hi) {
    return v != v ? 0 : v < lo ? lo : v > hi ? hi : v;
}
template <typename T> struct etch_cvt {
    template <typename X> __host__ __device__ static T f(X x) { return (T)x; }
};
template <> struct etch_cvt<uint8_t> {
    template <typename X> __host__ __device__ static uint8_t f(X x) { return (uint8_t)(x != 0); }
};
template <> struct etch_cvt<int32_t> {
    __host__ __device__ static int32_t f(float x) { return (int32_t)etch_sat(x, -2147483648.0, 2147483647.0); }
    __host__ __device__ static int32_t f(double x) { return (int32_t)etch_sat(x, -2147483648.0, 2147483647.0); }
    template <typename X> __host__ __device__ static int32_t f(X x) { return (int32_t)x; }
};
template <> struct etch_cvt<int64_t> {
    __host__ __device__ static int64_t f(float x) {
        return (int64_t)etch_sat(x, -9223372036854775808.0, 9223372036854774784.0);
    }
    __host__ __device__ static int64_t f(double x) {
        return (int64_t)etch_sat(x, -9223372036854775808.0, 9223372036854774784.0);
    }
    template <typename X> __host__ __device__ static int64_t f(X x) { return (int64_t)x; }
};
#define ETCH_CAST(T, x) etch_cvt<T>::f(x)

/* 0 when a CUDA device is usable, else -1 with the reason: no driver, no
 * device, or a driver older than the runtime this program was built with. */
static inline int etch_device_check(char *err, size_t errlen) {
    int n = 0;
    cudaError_t rc = cudaGetDeviceCount(&n);
    if (rc == cudaSuccess && n > 0) return 0;
    snprintf(err, errlen, "no usable CUDA device: %s",
             rc == cudaSuccess ? "the driver sees no GPU" : cudaGetErrorString(rc));
    return -1;
}
static inline int etch_cuda_error(cudaError_t rc, const char *what, char *err, size_t errlen) {
    if (rc == cudaSuccess) return 0;
    snprintf(err, errlen, "%s: %s", what, cudaGetErrorString(rc));
    return -1;
}
static inline int etch_stream_create(etch_stream *s, char *err, size_t errlen) {
    return etch_cuda_error(cudaStreamCreateWithFlags(s, cudaStreamNonBlocking), "cudaStreamCreate", err, errlen);
}
static inline void etch_stream_destroy(etch_stream s) { cudaStreamDestroy(s); }
static inline int etch_dev_alloc(unsigned char **p, size_t n, char *err, size_t errlen) {
    void *v = NULL;
    if (etch_cuda_error(cudaMalloc(&v, n ? n : 1), "cudaMalloc", err, errlen)) return -1;
    *p = (unsigned char *)v;
    return etch_cuda_error(cudaMemset(v, 0, n), "cudaMemset", err, errlen);
}
static inline void etch_dev_free(void *p) { cudaFree(p); }
/* asynchronous on s (errors surface at the next etch_stream_sync) */
static inline void etch_dev_upload(void *dst, const void *src, size_t n, etch_stream s) {
    cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, s);
}
static inline void etch_dev_download(void *dst, const void *src, size_t n, etch_stream s) {
    cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, s);
}
static inline void etch_dev_copy(void *dst, const void *src, size_t n, etch_stream s) {
    cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, s);
}
static inline int etch_stream_sync(etch_stream s, char *err, size_t errlen) {
    if (etch_cuda_error(cudaStreamSynchronize(s), "running the model's kernels", err, errlen)) return -1;
    return etch_cuda_error(cudaGetLastError(), "launching the model's kernels", err, errlen);
}
/* page-locked (pinned) host memory: copies from and to it run asynchronously
 * with the host (from pageable memory the driver stages them, and a download
 * returns only when done); NULL when no device or no memory */
static inline void *etch_host_alloc(size_t n) {
    void *p = NULL;
    return cudaHostAlloc(&p, n ? n : 1, cudaHostAllocDefault) == cudaSuccess ? p : NULL;
}
static inline void etch_host_free(void *p) {
    if (p) cudaFreeHost(p);
}
#endif

/* ------------------------------------------------------------ both */
#define ETCH_SELECT(m, a, b) ((m) ? (a) : (b))
#define ETCH_EXP(x) exp(x)
#define ETCH_TANH(x) tanh(x)
#define ETCH_ERF(x) erf(x)

/* Philox4x32-10 and its [0, 1) float for random_uniform/random_normal
 * kernels (codegen/cuda/ops/random.c): the runtime's etch_philox4x32 and
 * etch_u01 (runtime/rt/philox.c) as device functions, word for word, so
 * the values are those of the eager executor and the C backend (the same
 * (seed, step, index) gives the same number on every backend). */
ETCH_DEVICE void etch_dev_philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)counter_lo, c1 = (uint32_t)(counter_lo >> 32);
    uint32_t c2 = (uint32_t)counter_hi, c3 = (uint32_t)(counter_hi >> 32);
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c0 = n0, c1 = (uint32_t)p1, c2 = n2, c3 = (uint32_t)p0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}
ETCH_DEVICE double etch_dev_u01(uint32_t x) { return (double)(x >> 8) * (1.0 / 16777216.0); }

/* A failed device call inside an entry (which returns void): the message on
 * stderr and exit status 1, never a crash. */
static inline void etch_cuda_fail(const char *entry, const char *msg) {
    fprintf(stderr, "error: %s: %s\n", entry, msg);
    exit(1);
}

#endif
