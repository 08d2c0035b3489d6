/* target.h: what the passes need to know about the machine and backend a
 * graph is compiled for. A backend provides one (the C backend's:
 * codegen/c/backend_c.c, through Backend.target) and the tool hands it to the
 * pass manager (PassOptions.target), which gives it to every pass
 * (PassCtx.target): the fuse pass bounds its groups by what the backend's
 * kernels can read and by the caches a GEMM epilogue streams through; the
 * memory planner aligns arena offsets. */
#ifndef ETCH_PASSES_TARGET_H
#define ETCH_PASSES_TARGET_H

#include <stdbool.h>
#include <stdint.h>

typedef struct Target {
    const char *name;                 /* "c": the backend's name */
    /* the backend has no fused-group emitters: the fuse pass leaves every
     * node a kernel of its own (the LLVM backend's first slice) */
    bool unfused;
    /* distinct values one fused kernel reads from outside its group (scalar
     * constants, read as literals, do not count) */
    int max_group_leaves;
    int max_group_members;            /* members of an elementwise, reduce or epilogue group */
    int max_row_group_members;        /* members of a row group */
    /* bytes of operands of a matmul's full size that a GEMM epilogue may
     * stream next to its tile (a share of a core's L1/L2): more is left to a
     * loop of its own after the GEMM */
    int64_t epilogue_cache_bytes;     /* < 0: the backend fuses no GEMM epilogues */
    int arena_align;                  /* bytes; every arena value starts at a multiple (a power of two) */
    /* ungrouped, not-1x1 convolutions with at most this many taps per output
     * (c * kh * kw) the backend computes directly in float, faster than
     * through an int8 product (unfold, GEMM, transpose): the quantize pass
     * keeps them float and says so (0: quantize every convolution) */
    int float_conv_max_taps;
} Target;

#endif
