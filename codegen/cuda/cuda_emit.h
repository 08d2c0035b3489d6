/* cuda_emit.h: the CUDA backend's emitter state, shared by its driver
 * (codegen/cuda/emit_cuda.c), its fused-group emitters (group.c) and its
 * per-op emitters (codegen/cuda/ops/<family>.c), and the helpers that open
 * and close a kernel.
 *
 * A kernel's body is scalar C, written through the C backend's text
 * helpers (codegen/c/emit.h: the CEmitter inside, whose out is the kernel
 * being written and whose buf[] holds each node's device address as a C
 * expression such as `((float *)(m + 4096))`), in the macro language of
 * runtime/cuda/etch_cuda.h (phases, barriers, per-thread values), which
 * renders it as a __global__ function for nvcc and as work-item loops for
 * the CPU. Every kernel takes the context's memory `m` and the parameters'
 * `w`; every bound, stride and offset is a literal. */
#ifndef ETCH_CODEGEN_CUDA_CUDA_EMIT_H
#define ETCH_CODEGEN_CUDA_CUDA_EMIT_H

#include "codegen/c/emit.h"
#include "ir/ops/ops_impl.h"
#include "passes/plan_memory.h"

typedef struct CudaEmitter {
    CEmitter c;          /* body text helpers: c.out is the kernel being written, c.buf the device addresses */
    StrBuf *kernels;     /* file-scope kernels */
    StrBuf *launches;    /* the entry's host code: one ETCH_LAUNCH per kernel */
    const char *P;       /* the model's prefix: kernels are P_k<N> */
    int n_kernels;       /* kernels written so far in this file */
    int launch_count;    /* launches in the entry being written */
    struct CudaModule *module; /* the driver's state (emit_cuda.c), for cuda_scratch and cuda_emit_subgraph */
} CudaEmitter;

/* Threads per block of the one-thread-per-element kernels. */
enum { CUDA_BLOCK = 256, CUDA_MAX_GRID = 65535 * 16 };

/* Opens kernel P_k<N> of `threads` threads per block (a multiple of 32,
 * <= 1024) and its launch over `blocks` blocks; `what` is a comment (the
 * op, type and source location). The body follows through e->c (indent 1);
 * cuda_kernel_end closes it. */
void cuda_kernel_begin(CudaEmitter *e, int64_t blocks, int threads, const char *what);
void cuda_kernel_end(CudaEmitter *e);

/* A kernel of one thread per element of n (a grid-stride loop over a grid
 * of at most CUDA_MAX_GRID blocks of CUDA_BLOCK): opens the kernel, its one
 * phase and `for (int64_t i = ...)`; the linear index is `i`. */
void cuda_elementwise_begin(CudaEmitter *e, int64_t n, const char *what);
void cuda_elementwise_end(CudaEmitter *e);

/* Declares loop variables var[0..rank) of a dense walk over dim[] from the
 * linear index lin (`const int64_t i0 = lin / 784 % 10;`), so index
 * expressions written for a loop nest (cemit_loops_index) apply. Dims of
 * size 1 get "0" and no declaration; each declared one is also `(void)`ed,
 * as an operand broadcast along its dim leaves it unused. */
void cuda_unravel(CudaEmitter *e, const char *lin, const int64_t *dim, int rank, char (*var)[16]);

/* `{type} @ file:line:col` of node id, for kernel comments (in buf). */
void cuda_describe(const Graph *g, int id, char *buf, size_t n);

/* ---- the per-op table (codegen/cuda/ops.def, ops/table.c) ---- */
typedef void (*CudaEmitFn)(CudaEmitter *e, const Graph *g, int id);
#define CUDA_UNSUPPORTED NULL
extern const CudaEmitFn cuda_op_table[OP_COUNT];

/* ---- fused groups (group.c), indexed by FuseKind; NULL: not emitted ---- */
typedef void (*CudaGroupEmitFn)(CudaEmitter *e, const Graph *g, const MemPlan *mp, int at, int *leaf_slot);
extern const CudaGroupEmitFn cuda_group_emitters[FUSE_KIND_COUNT];

/* `fused: N ops -> op type @ loc` of the group at node `at`, for kernel comments (group.c). */
void cuda_group_what(const Graph *g, int at, int n_members, char *buf, size_t n);

/* ---- cooperative reductions (rowgroup.c): several threads per reduced row ---- */
/* Whether a reduction over the axes `reduced` of S runs as rows of
 * cooperating threads rather than one thread per output: when the innermost
 * (non-unit) axis is reduced (a row is contiguous: a thread per output would
 * read strided and walk it alone), or when the reduced extent is large
 * (>= 256) and the outputs few (<= 1024, a handful of blocks' worth of
 * threads). Otherwise (a bias gradient: many columns, summed over a batch)
 * a thread per output reads coalesced across its neighbours; a warp per
 * column would read it strided. */
bool cuda_rows_pay(const Shape *S, const bool *reduced);
/* A row group (FUSE_ROWS), or a reduce group whose rows pay, as one kernel. */
void cuda_row_group(CudaEmitter *e, const Graph *g, const MemPlan *mp, int at, int *leaf_slot);
/* A lone reduction, or softmax / log_softmax along its last non-unit axis, as rows. */
void cuda_emit_rows_op(CudaEmitter *e, const Graph *g, int id);

/* ops/elementwise.c */
void cuda_emit_elementwise(CudaEmitter *e, const Graph *g, int id);
void cuda_emit_const(CudaEmitter *e, const Graph *g, int id);
void cuda_emit_iota(CudaEmitter *e, const Graph *g, int id);
/* ops/layout.c */
void cuda_emit_copy_view(CudaEmitter *e, const Graph *g, int id);
void cuda_emit_transpose(CudaEmitter *e, const Graph *g, int id);
/* ops/reduce.c, ops/softmax.c, ops/matmul.c */
void cuda_emit_reduce(CudaEmitter *e, const Graph *g, int id);
void cuda_emit_softmax(CudaEmitter *e, const Graph *g, int id);
void cuda_emit_matmul(CudaEmitter *e, const Graph *g, int id);
/* ---- convolution, pooling and the layer layout ops ----
 * ops/conv.c: conv2d and its gradients as implicit GEMMs (direct or tiled) */
void cuda_emit_conv2d(CudaEmitter *e, const Graph *g, int id);
void cuda_emit_conv2d_bwd_input(CudaEmitter *e, const Graph *g, int id);
void cuda_emit_conv2d_bwd_weight(CudaEmitter *e, const Graph *g, int id);
/* ops/pool.c: max/avg pooling (forward and backward), a thread per output element */
void cuda_emit_pool2d(CudaEmitter *e, const Graph *g, int id);
void cuda_emit_pool2d_bwd(CudaEmitter *e, const Graph *g, int id);
/* ops/layers.c: slice, pad, concat, a thread per output element */
void cuda_emit_slice(CudaEmitter *e, const Graph *g, int id);
void cuda_emit_pad(CudaEmitter *e, const Graph *g, int id);
void cuda_emit_concat(CudaEmitter *e, const Graph *g, int id);

/* What a GEMM does with each element of its product: emit writes the code
 * that finishes element (r, c) of the [M, N] product, whose value is the
 * register v<product id> (int64_t r, c in scope, in bounds); ctx is its
 * own. A fused group's epilogue (group.c) computes its members from it and
 * stores those read outside the group. */
typedef struct CudaGemmEpilogue {
    void (*emit)(CudaEmitter *e, const void *ctx);
    const void *ctx;
} CudaGemmEpilogue;
/* The kernel of product id (ops/matmul.c): the element stored, or, with an
 * epilogue (a plain 2-D product only), finished by it instead; `what` is
 * the kernel's comment. */
void cuda_emit_gemm(CudaEmitter *e, const Graph *g, int id, const char *what, const CudaGemmEpilogue *epilogue);

/* ---- gather, random and scan (ops/gather.c, ops/random.c, ops/scan.c) ---- */
void cuda_emit_gather_rows(CudaEmitter *e, const Graph *g, int id);
void cuda_emit_scatter_add_rows(CudaEmitter *e, const Graph *g, int id);
void cuda_emit_random(CudaEmitter *e, const Graph *g, int id);
void cuda_emit_scan(CudaEmitter *e, const Graph *g, int id);
/* ops/quant.c: quantize, dequantize, fake_quant, fake_quant_backward */
void cuda_emit_quant(CudaEmitter *e, const Graph *g, int id);
/* ---- the int8 ops (ops/qgemm.c): a tiled integer GEMM on dp4a with the
 * requantize epilogue; qconv2d as an implicit GEMM over the unfolded input ---- */
void cuda_emit_qmatmul(CudaEmitter *e, const Graph *g, int id);
void cuda_emit_qconv2d(CudaEmitter *e, const Graph *g, int id);
/* What a scan needs of the driver (emit_cuda.c). cuda_scratch reserves
 * `bytes` of the context's scratch (device memory after the staging area,
 * at a multiple of align, at least 256) for the entry being written and
 * returns its offset from `m`. cuda_emit_subgraph writes the kernels of
 * graph `body` (a scan's) and their launches into e->launches, as an entry's:
 * its input k at the device address in_ref[k], its output k at out_ref[k]
 * (C expressions such as `((float *)(m + 4096))`), its arena in the scratch. */
int64_t cuda_scratch(CudaEmitter *e, int64_t bytes, int align);
void cuda_emit_subgraph(CudaEmitter *e, const Graph *body, const char *const *in_ref, const char *const *out_ref);

#endif
