/* c_ops.h: the C backend's per-op emitters, one file per op family
 * (codegen/c/ops/<family>.c, the same families as ir/ops/), and its per-op
 * table c_op_table[] (codegen/c/ops.def, expanded in codegen/c/ops/table.c).
 *
 * An emitter writes the loop nest that computes node id of g into e->out,
 * reading its operands at e->buf[operand] and writing e->buf[id], with every
 * bound and stride a literal. What the op means (its shape rule, the loop
 * geometry its reference kernel uses) comes from ir/ops/ops_impl.h. */
#ifndef ETCH_CODEGEN_C_OPS_C_OPS_H
#define ETCH_CODEGEN_C_OPS_C_OPS_H

#include "codegen/c/emit.h"
#include "ir/ops/ops_impl.h"

typedef void (*CEmitFn)(CEmitter *e, const Graph *g, int id);

/* One row of the C backend's op table. */
typedef struct COpEmitter {
    CEmitFn emit;       /* NULL: the C backend cannot emit this op (C_UNSUPPORTED) */
    const char *c_expr; /* elementwise ops: C template ($0.. operands, $T the C type), else NULL */
} COpEmitter;

#define C_UNSUPPORTED NULL
extern const COpEmitter c_op_table[OP_COUNT];

/* ---- C text shared by the elementwise emitter and the fused groups ---- */
/* The index expression of operand k ("i0 * 784 + i1"; "0" for a scalar), or of
 * the dense output when k < 0, over loop variables vars[0..rank). */
void cemit_loops_index(const OpsLoops *L, int k, char (*vars)[16], char *buf, size_t n);
/* Appends template tmpl with $k replaced by operands[k], $T by the C type of
 * node n's result and $V by its attr.value as a literal of that type (an
 * op's scalar attribute, e.g. leaky_relu's slope). */
void cemit_expand_template(StrBuf *b, const char *tmpl, const char *const *operands, const Node *n);
/* Appends C expression x converted to dtype t (the cast op, $C): ETCH_CAST,
 * and for i8/u8 a saturating conversion matching the eager store. */
void cemit_convert(StrBuf *b, const char *x, DType t);

/* source.c */
void emit_source(CEmitter *e, const Graph *g, int id);
void emit_const(CEmitter *e, const Graph *g, int id);
void emit_iota(CEmitter *e, const Graph *g, int id);
/* elementwise.c */
void emit_elementwise(CEmitter *e, const Graph *g, int id);
/* reduce.c, matmul.c, layout.c, softmax.c */
void emit_reduce(CEmitter *e, const Graph *g, int id);
void emit_matmul(CEmitter *e, const Graph *g, int id);
/* The same product with its GEMM applying epilogue (GemmDesc.epilogue) to each
 * finished tile: a product fused with its consumers (codegen/c/epilogue.c). */
void emit_matmul_with(CEmitter *e, const Graph *g, int id, const char *epilogue);
void emit_reshape(CEmitter *e, const Graph *g, int id);
void emit_transpose(CEmitter *e, const Graph *g, int id);
void emit_softmax(CEmitter *e, const Graph *g, int id);
/* One row of softmax/log_softmax (op) of len elements `inner` apart, read
 * through `xr` and written through `yr` (declared by the caller, of C type
 * T): its maximum, the sum of exponentials in double, the result. The CUDA
 * backend's thread-per-row softmax writes the same. */
void cemit_softmax_row(CEmitter *e, OpKind op, const char *T, int64_t len, int64_t inner);
/* conv.c, pool.c */
void emit_conv2d(CEmitter *e, const Graph *g, int id);
void emit_conv2d_bwd_input(CEmitter *e, const Graph *g, int id);
void emit_conv2d_bwd_weight(CEmitter *e, const Graph *g, int id);
void emit_pool2d(CEmitter *e, const Graph *g, int id);
void emit_pool2d_bwd(CEmitter *e, const Graph *g, int id);
/* A static scratch array of n elements of dtype t in the emitted file (defined
 * once per size; ops run one at a time, so nodes of one size share it). Its C name into buf. */
void conv_emit_scratch(CEmitter *e, DType t, int64_t n, char *buf, size_t cap);
/* layers.c, gather.c, random.c, scan.c */
void emit_slice(CEmitter *e, const Graph *g, int id);
void emit_pad(CEmitter *e, const Graph *g, int id);
void emit_concat(CEmitter *e, const Graph *g, int id);
void emit_gather_rows(CEmitter *e, const Graph *g, int id);
void emit_scatter_add_rows(CEmitter *e, const Graph *g, int id);
void emit_random_uniform(CEmitter *e, const Graph *g, int id);
void emit_random_normal(CEmitter *e, const Graph *g, int id);
void emit_scan(CEmitter *e, const Graph *g, int id);
/* collective.c */
void emit_allreduce_start(CEmitter *e, const Graph *g, int id);
void emit_allreduce_wait(CEmitter *e, const Graph *g, int id);
/* quant.c: quantize, dequantize, fake_quant (+ backward); qmatmul (portable loops) */
void emit_quant(CEmitter *e, const Graph *g, int id);
void emit_qmatmul(CEmitter *e, const Graph *g, int id);
/* The quantized arithmetic's static functions (etch_q_*), defined once per file. */
void quant_emit_helpers(CEmitter *e);
/* qconv.c: qconv2d as im2col of the 8-bit image (padding at the zero point) and qmatmul's integer GEMM */
void emit_qconv2d(CEmitter *e, const Graph *g, int id);

/* Up to this many taps (c*kh*kw) per output, an ungrouped, not-1x1 forward
 * conv2d is computed directly (codegen/c/ops/conv.c); the unrolled sum then
 * stays a few dozen lines. The backend's Target passes it to the quantize
 * pass, which keeps such convolutions float: LeNet's conv1 (25 taps, 6
 * output channels) as int8 made the int8 forward slower than fp32's
 * (docs/quantization.md). */
enum { CONV_DIRECT_MAX_TAPS = 32 };

#endif
