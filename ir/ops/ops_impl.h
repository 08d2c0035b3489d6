/* ops_impl.h: the functions the op table (ir/ops.def) points to, grouped by op
 * family; each family's shape rules, reference kernels, scalar references and
 * VJP rules are defined side by side in ir/ops/<family>.c. Plus what those
 * files share, and the geometry of each op (its loop structure: matmul dims,
 * convolution and pooling windows, reduction loops) that the reference kernel
 * and every backend's emitter read alike. Only ir/ headers: a backend's
 * emitters live in codegen/<backend>/ops/ and include this. */
#ifndef ETCH_OPS_IMPL_H
#define ETCH_OPS_IMPL_H

#include "ir/ir.h"
#include "ir/tensor.h"
#include "ir/vjp.h"

/* source.c: input, param, const */
bool shape_source(Graph *g, Node *n, Diag *d);
void eval_source(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
void eval_const(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
bool shape_iota(Graph *g, Node *n, Diag *d);
void eval_iota(const Graph *g, int id, Tensor *out, const Tensor *const *ins);

/* elementwise.c: unary/binary/compare/where/cast/broadcast */
bool shape_broadcast(Graph *g, Node *n, Diag *d);
bool shape_compare(Graph *g, Node *n, Diag *d);
bool shape_where(Graph *g, Node *n, Diag *d);
bool shape_unary(Graph *g, Node *n, Diag *d);
bool shape_unary_float(Graph *g, Node *n, Diag *d);
bool shape_cast(Graph *g, Node *n, Diag *d);
bool shape_broadcast_to(Graph *g, Node *n, Diag *d);
void eval_elementwise(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
double scalar_add(const double *x, const NodeAttrs *a);
double scalar_sub(const double *x, const NodeAttrs *a);
double scalar_mul(const double *x, const NodeAttrs *a);
double scalar_div(const double *x, const NodeAttrs *a);
double scalar_max(const double *x, const NodeAttrs *a);
double scalar_min(const double *x, const NodeAttrs *a);
double scalar_pow(const double *x, const NodeAttrs *a);
double scalar_lt(const double *x, const NodeAttrs *a);
double scalar_le(const double *x, const NodeAttrs *a);
double scalar_gt(const double *x, const NodeAttrs *a);
double scalar_ge(const double *x, const NodeAttrs *a);
double scalar_eq(const double *x, const NodeAttrs *a);
double scalar_ne(const double *x, const NodeAttrs *a);
double scalar_where(const double *x, const NodeAttrs *a);
double scalar_neg(const double *x, const NodeAttrs *a);
double scalar_exp(const double *x, const NodeAttrs *a);
double scalar_log(const double *x, const NodeAttrs *a);
double scalar_sqrt(const double *x, const NodeAttrs *a);
double scalar_rsqrt(const double *x, const NodeAttrs *a);
double scalar_abs(const double *x, const NodeAttrs *a);
double scalar_tanh(const double *x, const NodeAttrs *a);
double scalar_sigmoid(const double *x, const NodeAttrs *a);
double scalar_relu(const double *x, const NodeAttrs *a);
double scalar_identity(const double *x, const NodeAttrs *a);
void vjp_add(VjpCtx *c);
void vjp_sub(VjpCtx *c);
void vjp_mul(VjpCtx *c);
void vjp_div(VjpCtx *c);
void vjp_max(VjpCtx *c);
void vjp_min(VjpCtx *c);
void vjp_pow(VjpCtx *c);
void vjp_where(VjpCtx *c);
void vjp_neg(VjpCtx *c);
void vjp_exp(VjpCtx *c);
void vjp_log(VjpCtx *c);
void vjp_sqrt(VjpCtx *c);
void vjp_rsqrt(VjpCtx *c);
void vjp_abs(VjpCtx *c);
void vjp_tanh(VjpCtx *c);
void vjp_sigmoid(VjpCtx *c);
void vjp_relu(VjpCtx *c);
double scalar_leaky_relu(const double *x, const NodeAttrs *a);
void vjp_leaky_relu(VjpCtx *c);
void vjp_cast(VjpCtx *c);
void vjp_broadcast(VjpCtx *c);

/* reduce.c */
bool shape_reduce(Graph *g, Node *n, Diag *d);
void eval_reduce(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
void vjp_reduce_sum(VjpCtx *c);
void vjp_reduce_max(VjpCtx *c);
void vjp_reduce_mean(VjpCtx *c);

/* reduce.c: the loops of a reduction */
/* The input's dims reordered as [kept..., reduced...] with the strides to walk
 * them: the output is dense over the kept dims in order. */
typedef struct ReduceLoops {
    int n_kept, n_red;
    int64_t kept_dim[ETCH_MAX_RANK], kept_stride[ETCH_MAX_RANK];
    int64_t red_dim[ETCH_MAX_RANK], red_stride[ETCH_MAX_RANK];
    int64_t red_count;
} ReduceLoops;
void reduce_loops(const Graph *g, const Node *n, ReduceLoops *L);

/* matmul.c */
/* The operation as a batch of M x K by K x N products. */
typedef struct MatmulDims {
    int64_t m, k, n;
    Shape batch;                         /* broadcast batch shape */
    int64_t a_bstride[ETCH_MAX_RANK];    /* element offset per batch index of A (0 = broadcast) */
    int64_t b_bstride[ETCH_MAX_RANK];
    int64_t n_batch;
} MatmulDims;
void matmul_dims(const Graph *g, const Node *n, MatmulDims *md);
/* Element offsets into A and B of the product at batch index bi. */
void matmul_batch_offsets(const MatmulDims *md, int64_t bi, int64_t *oa, int64_t *ob);
bool shape_matmul(Graph *g, Node *n, Diag *d);
void eval_matmul(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
void vjp_matmul(VjpCtx *c);

/* layout.c */
bool shape_reshape(Graph *g, Node *n, Diag *d);
bool shape_transpose(Graph *g, Node *n, Diag *d);
void eval_reshape(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
void eval_transpose(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
void vjp_reshape(VjpCtx *c);
void vjp_transpose(VjpCtx *c);
/* Input strides seen from the output's axes: out axis i walks input axis perm[i]. */
void transpose_strides(const Graph *g, const Node *n, int64_t *st);

/* softmax.c */
bool shape_softmax(Graph *g, Node *n, Diag *d);
void eval_softmax(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
void vjp_softmax(VjpCtx *c);
void vjp_log_softmax(VjpCtx *c);

/* conv.c: conv2d and its gradient kernels; pool.c: max/avg pooling */
/* The sizes of one convolution, whichever of its three ops is asked. */
typedef struct ConvGeom {
    int64_t n, c, h, w;    /* input x [n, c, h, w] */
    int64_t o, kh, kw;     /* weight [o, c / groups, kh, kw] */
    int64_t oh, ow;        /* output [n, o, oh, ow] */
    int64_t sh, sw, ph, pw, dh, dw, groups;
    int64_t cg, og;        /* channels per group, in and out */
    int64_t ckk, ohw;      /* rows of one group's column matrix (cg*kh*kw); output pixels per image */
    bool pointwise;        /* 1x1, stride 1, no padding: col(x[n]) is x[n] itself */
} ConvGeom;
/* conv2d (x, w); backward input (gy, w) -> x's shape; backward weight (x, gy) -> w's shape. */
void conv_geom(const Graph *gr, const Node *n, ConvGeom *g);
/* Checks a convolution of input xs by weight ws (dtype t, for messages) under n's conv attrs and sets *out to
 * its result shape; errors name the op. conv2d's rule, shared with qconv2d's (quant.c). */
bool conv_check(const Node *n, const Shape *xs, const Shape *ws, DType t, Shape *out, Diag *d);
/* The window of a pooling op (planes = N*C images of h x w). */
typedef struct PoolGeom {
    int64_t planes, h, w, oh, ow; /* planes = N*C */
    int64_t kh, kw, sh, sw, ph, pw;
} PoolGeom;
/* The geometry of pooling op n (forward or backward). */
void pool_geom(const Graph *g, const Node *n, PoolGeom *geo);
bool shape_conv2d(Graph *g, Node *n, Diag *d);
bool shape_conv2d_bwd_input(Graph *g, Node *n, Diag *d);
bool shape_conv2d_bwd_weight(Graph *g, Node *n, Diag *d);
void eval_conv2d(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
void eval_conv2d_bwd_input(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
void eval_conv2d_bwd_weight(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
void vjp_conv2d(VjpCtx *c);
bool shape_pool2d(Graph *g, Node *n, Diag *d);
bool shape_max_pool2d_bwd(Graph *g, Node *n, Diag *d);
bool shape_avg_pool2d_bwd(Graph *g, Node *n, Diag *d);
void eval_pool2d(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
void eval_pool2d_bwd(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
void vjp_max_pool2d(VjpCtx *c);
void vjp_avg_pool2d(VjpCtx *c);
/* Output size of a sliding window along one dim: floor((in + 2 pad - dil (k - 1) - 1) / stride) + 1,
 * or <= 0 when the window does not fit. */
int64_t conv_out_dim(int64_t in, int k, int stride, int pad, int dil);
/* "[a, b]" of a {h, w} pair into buf (>= 32 bytes). */
const char *conv_pair_str(char *buf, const int *p);

/* layers.c: slice, pad, concat; gather.c: gather_rows, scatter_add_rows; random.c: random_uniform,
 * random_normal; erf lives with the elementwise ops */
double scalar_erf(const double *x, const NodeAttrs *a);
void vjp_erf(VjpCtx *c);
bool shape_slice(Graph *g, Node *n, Diag *d);
bool shape_pad(Graph *g, Node *n, Diag *d);
bool shape_concat(Graph *g, Node *n, Diag *d);
void eval_slice(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
void eval_pad(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
void eval_concat(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
void vjp_slice(VjpCtx *c);
void vjp_pad(VjpCtx *c);
void vjp_concat(VjpCtx *c);
bool shape_gather_rows(Graph *g, Node *n, Diag *d);
bool shape_scatter_add_rows(Graph *g, Node *n, Diag *d);
void eval_gather_rows(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
void eval_scatter_add_rows(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
void vjp_gather_rows(VjpCtx *c);
bool shape_random_uniform(Graph *g, Node *n, Diag *d);
void eval_random_uniform(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
void eval_random_normal(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
/* random_normal's element from its two Philox words (Box-Muller, in double). */
double random_normal_value(uint32_t a, uint32_t b);
/* The Philox counter a random_uniform step value maps to: trunc(step), 0 for
 * negative or NaN, saturating at 2^64 - 1; the emitted code does the same. */
uint64_t random_step_counter(double step);

/* quant.c: quantize, dequantize, fake_quant (+ backward), qmatmul */
bool shape_quantize(Graph *g, Node *n, Diag *d);
bool shape_dequantize(Graph *g, Node *n, Diag *d);
bool shape_fake_quant(Graph *g, Node *n, Diag *d);
bool shape_qmatmul(Graph *g, Node *n, Diag *d);
bool shape_qconv2d(Graph *g, Node *n, Diag *d);
void eval_quant(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
void eval_qmatmul(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
void eval_qconv2d(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
void vjp_fake_quant(VjpCtx *c);
/* The loops of a per-tensor or per-axis op: its data operand (the last but
 * two) seen as [outer, len, inner] around attr.axis; the scale and zero point
 * are read at the index along len when per_axis, at 0 otherwise. */
typedef struct QuantLoops {
    int64_t outer, len, inner;
    bool per_axis;
    int x, scale, zp; /* operand positions */
} QuantLoops;
void quant_loops(const Graph *g, const Node *n, QuantLoops *L);
/* The integer range of quantize (its dtype's), fake_quant and its backward (clamp). */
void quant_op_range(const Node *n, int *lo, int *hi);
/* qmatmul's (and qconv2d's) integer range of the result: quant.clamp within the dtype's range (f32: unused). */
void qmatmul_range(const Node *n, int *lo, int *hi);

/* ---- shared helpers (ir/ops.c) ---- */
/* Type of node id as "f32[64,784]" in a caller buffer of >= 96 bytes. */
const char *ops_type_str(char *buf, const Graph *g, int id);
/* Strides (in elements) to read operand shape `in` as if broadcast to `out`:
 * aligned right, 0 along broadcast dimensions. */
void ops_broadcast_strides(const Shape *in, const Shape *out, int64_t *strides);
/* A loop nest over an elementwise result: its dims after merging neighbours
 * that every operand walks contiguously (or all broadcast along), with each
 * operand's stride per merged dim (0 = broadcast). Shared by the elementwise
 * kernel, its emitter and the fused-group emitter. */
enum { OPS_MAX_OPERANDS = 64 };
typedef struct OpsLoops {
    int rank, n;
    int64_t dim[ETCH_MAX_RANK];
    int64_t stride[OPS_MAX_OPERANDS][ETCH_MAX_RANK];
} OpsLoops;
void ops_loops(const Shape *out, const Shape *const *ins, int n, OpsLoops *L);
/* The same over operands read at the given strides per dim of out (a fused
 * group's slice reads its operand in place, at the operand's own strides). */
void ops_loops_strided(const Shape *out, const int64_t (*st)[ETCH_MAX_RANK], int n, OpsLoops *L);
/* The merged loop nest of elementwise node n over its operands. */
void elementwise_loops(const Graph *g, const Node *n, OpsLoops *L);

/* Splits shape around one axis: outer = prod(dims before), len = dim, inner = prod(after). */
void ops_split_axis(const Shape *s, int axis, int64_t *outer, int64_t *len, int64_t *inner);

/* collective.c: allreduce_start (one bucket of gradients, flattened) and allreduce_wait */
bool shape_allreduce_start(Graph *g, Node *n, Diag *d);
void eval_allreduce_start(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
bool shape_allreduce_wait(Graph *g, Node *n, Diag *d);
void eval_allreduce_wait(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
/* scan.c: the loop op. The result packs the final carries, then each per-step
 * output stacked over time; off/numel are per body output (elements). */
typedef struct ScanLayout {
    int64_t T, total;
    int64_t off[ETCH_MAX_OPERANDS], numel[ETCH_MAX_OPERANDS];
} ScanLayout;
void scan_layout(const Graph *g, const Node *n, ScanLayout *L);
bool shape_scan(Graph *g, Node *n, Diag *d);
void eval_scan(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
void vjp_scan(VjpCtx *c);
/* Appends nodes cutting body output k out of scan node `scan`'s result: the
 * final carry (k < n_carry) or the per-step output stacked as [T, ...]. */
int scan_add_extract(Graph *g, int scan, int k, SrcLoc loc, Diag *d);
/* The same cut, out of `packed`: scan's result or a value laid out like it
 * (its gradient). */
int scan_add_cut(Graph *g, int scan, int packed, int k, SrcLoc loc, Diag *d);

#endif
