/* quant.c (C backend): the quantized ops as portable loops. The arithmetic is
 * ir/quant.c's, written out once per model as the static functions of
 * quant_helpers below (step for step the same operations, so results are
 * bit-identical to the eager executor's; tests/unit/test_quant.c checks it);
 * the loops are ir/ops/quant.c's (QuantLoops). qmatmul calls an integer GEMM
 * specialized to its shape (codegen/c/qgemm.c) whose epilogue uses these
 * helpers. */
#include <stdio.h>

#include "codegen/c/ops/c_ops.h"
#include "codegen/c/qgemm.h"

static const char quant_helpers[] =
    "/* quantized arithmetic (etch ir/quant.c, docs/quantization.md) */\n"
    "ETCH_MAYBE_UNUSED static inline int32_t etch_q_srdhm(int32_t a, int32_t b) {\n"
    "    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;\n"
    "    const int64_t ab = (int64_t)a * b;\n"
    "    const int64_t nudge = ab >= 0 ? (1 << 30) : 1 - (1 << 30);\n"
    "    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));\n"
    "}\n\n"
    "ETCH_MAYBE_UNUSED static inline int32_t etch_q_rounding_shift(int32_t x, int exponent) {\n"
    "    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);\n"
    "    const int32_t remainder = x & mask, threshold = (mask >> 1) + (x < 0);\n"
    "    return (x >> exponent) + (remainder > threshold);\n"
    "}\n\n"
    "ETCH_MAYBE_UNUSED static inline int etch_q_clamp_shift(int shift) { return shift < -31 ? -31 : shift > 30 ? 30 : shift; }\n\n"
    "ETCH_MAYBE_UNUSED static inline int32_t etch_q_multiply(int32_t x, int32_t q31, int shift) {\n"
    "    shift = etch_q_clamp_shift(shift);\n"
    "    const int64_t up = (int64_t)x * ((int64_t)1 << (shift > 0 ? shift : 0));\n"
    "    const int32_t xs = up > INT32_MAX ? INT32_MAX : up < INT32_MIN ? INT32_MIN : (int32_t)up;\n"
    "    return etch_q_rounding_shift(etch_q_srdhm(xs, q31), shift > 0 ? 0 : -shift);\n"
    "}\n\n"
    "ETCH_MAYBE_UNUSED static inline int32_t etch_q_requantize(int32_t acc, int32_t q31, int shift, int32_t zp, int lo, int hi) {\n"
    "    const int64_t v = (int64_t)zp + etch_q_multiply(acc, q31, shift);\n"
    "    return v <= lo ? lo : v >= hi ? hi : (int32_t)v;\n"
    "}\n\n"
    "ETCH_MAYBE_UNUSED static inline double etch_q_scale_acc(int32_t acc, int32_t q31, int shift) {\n"
    "    return (double)acc * ldexp((double)q31, etch_q_clamp_shift(shift) - 31);\n"
    "}\n\n"
    "ETCH_MAYBE_UNUSED static inline double etch_q_unclamped(double x, double scale, int32_t zp) { return rint(x / scale) + zp; }\n\n"
    "ETCH_MAYBE_UNUSED static inline int32_t etch_q_quantize(double x, double scale, int32_t zp, int lo, int hi) {\n"
    "    double v = etch_q_unclamped(x, scale, zp);\n"
    "    if (v != v) v = zp;\n"
    "    return v <= lo ? lo : v >= hi ? hi : (int32_t)v;\n"
    "}\n\n"
    "ETCH_MAYBE_UNUSED static inline double etch_q_dequantize(int32_t q, double scale, int32_t zp) {\n"
    "    return ((double)q - zp) * scale;\n"
    "}\n\n";

static void define_helpers(CEmitter *e) {
    if (cemit_define_once(e, "etch_q_helpers")) sb_puts(e->preamble, quant_helpers);
}

void emit_quant(CEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    QuantLoops L;
    quant_loops(g, n, &L);
    define_helpers(e);
    int lo, hi;
    quant_op_range(n, &lo, &hi);
    const char *y = e->buf[id], *x = e->buf[n->in[L.x]], *s = e->buf[n->in[L.scale]], *z = e->buf[n->in[L.zp]];
    const char *T = dtype_c_type(n->dtype);
    char o[16], c[16], k[16], idx[96], ch[24];
    cemit_for(e, o, sizeof o, L.outer);
    cemit_for(e, c, sizeof c, L.len);
    snprintf(ch, sizeof ch, "%s", L.per_axis ? c : "0");
    cemit_line(e, "const double qs = (double)%s[%s];", s, ch);
    cemit_line(e, "const int32_t qz = %s[%s];", z, ch);
    cemit_for(e, k, sizeof k, L.inner);
    snprintf(idx, sizeof idx, "(%s * %lld + %s) * %lld + %s", o, (long long)L.len, c, (long long)L.inner, k);
    switch (n->op) {
    case OP_QUANTIZE:
        cemit_line(e, "%s[%s] = (%s)etch_q_quantize((double)%s[%s], qs, qz, %d, %d);", y, idx, T, x, idx, lo, hi);
        break;
    case OP_DEQUANTIZE: cemit_line(e, "%s[%s] = (%s)etch_q_dequantize(%s[%s], qs, qz);", y, idx, T, x, idx); break;
    case OP_FAKE_QUANT:
        cemit_line(e, "%s[%s] = (%s)etch_q_dequantize(etch_q_quantize((double)%s[%s], qs, qz, %d, %d), qs, qz);", y, idx, T,
                   x, idx, lo, hi);
        break;
    default: /* fake_quant_backward: the gradient where the unclamped value is in range */
        cemit_line(e, "const double qu = etch_q_unclamped((double)%s[%s], qs, qz);", x, idx);
        cemit_line(e, "%s[%s] = qu >= %d && qu <= %d ? %s[%s] : (%s)0;", y, idx, lo, hi, e->buf[n->in[0]], idx, T);
        break;
    }
    cemit_close(e);
    cemit_close(e);
    cemit_close(e);
}

void emit_qmatmul(CEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    const Node *x = &g->nodes[n->in[0]];
    QGemmDesc d = {.m = n->shape.dim[0], .n = n->shape.dim[1], .k = x->shape.dim[1], .x_dtype = x->dtype,
                   .y_dtype = n->dtype, .zx = n->attr.quant.zero_points[0], .zy = n->attr.quant.zero_points[1]};
    if (n->dtype != DT_F32) qmatmul_range(n, &d.lo, &d.hi); /* f32: no clamp */
    define_helpers(e);
    const char *const *b = e->buf;
    const int *in = n->in;
    qgemm_emit(e, &d, b[in[0]], b[in[1]], b[in[2]], b[in[3]], b[in[4]], b[id]);
}
