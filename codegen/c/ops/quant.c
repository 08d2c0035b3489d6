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

/* quantize of an f32 tensor with one scale, to T (uint8_t or int8_t), the
 * activations' way into a quantized layer. AVX2 multiplies by 1 / scale
 * instead of dividing: for f32 x and scale that gives rint(x / scale)
 * exactly except on a tie of the rounding (x / scale a half-integer is at
 * least 2^-49 relatively away from any other f32 quotient, the product is
 * within 2^-52), so a vector with any value within 2^-20 of a tie is redone
 * with the division. NaN -> zero point, then the clamp, as etch_q_quantize.
 * The AVX-512 variant (with the VNNI kernels) does 8 values at a time. */
static const char quantize_f32_fmt[] =
    "static void etch_q_quantize_f32_%s_c(const float *x, int64_t n, double scale, int32_t zp, int lo, int hi, %s *y) {\n"
    "    for (int64_t i = 0; i < n; i++) y[i] = (%s)etch_q_quantize((double)x[i], scale, zp, lo, hi);\n"
    "}\n"
    "#if defined(ETCH_QGEMM_X86)\n"
    "ETCH_QGEMM_AVX2 static void etch_q_quantize_f32_%s_avx2(const float *x, int64_t n, double scale, int32_t zp, int lo, int hi, %s *y) {\n"
    "    const __m256d inv = _mm256_set1_pd(1.0 / scale), s = _mm256_set1_pd(scale), z = _mm256_set1_pd((double)zp);\n"
    "    const __m256d vlo = _mm256_set1_pd((double)lo), vhi = _mm256_set1_pd((double)hi), near = _mm256_set1_pd(0.5 - 0x1p-20);\n"
    "    const __m256d abs = _mm256_castsi256_pd(_mm256_set1_epi64x(INT64_MAX));\n"
    "    int64_t i = 0;\n"
    "    for (; i + 4 <= n; i += 4) {\n"
    "        const __m256d xd = _mm256_cvtps_pd(_mm_loadu_ps(x + i));\n"
    "        const __m256d t = _mm256_mul_pd(xd, inv);\n"
    "        __m256d r = _mm256_round_pd(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);\n"
    "        if (_mm256_movemask_pd(_mm256_cmp_pd(_mm256_and_pd(_mm256_sub_pd(t, r), abs), near, _CMP_GE_OQ)))\n"
    "            r = _mm256_round_pd(_mm256_div_pd(xd, s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); /* a tie: exactly */\n"
    "        __m256d v = _mm256_add_pd(r, z);\n"
    "        v = _mm256_blendv_pd(v, z, _mm256_cmp_pd(v, v, _CMP_UNORD_Q));\n"
    "        v = _mm256_min_pd(_mm256_max_pd(v, vlo), vhi);\n"
    "        const __m128i q = _mm256_cvtpd_epi32(v);\n"
    "        const int32_t b = _mm_cvtsi128_si32(%s);\n"
    "        memcpy(y + i, &b, 4);\n"
    "    }\n"
    "    etch_q_quantize_f32_%s_c(x + i, n - i, scale, zp, lo, hi, y + i);\n"
    "}\n"
    "ETCH_QGEMM_VNNI static void etch_q_quantize_f32_%s_avx512(const float *x, int64_t n, double scale, int32_t zp, int lo, int hi, %s *y) {\n"
    "    const __m512d inv = _mm512_set1_pd(1.0 / scale), s = _mm512_set1_pd(scale), z = _mm512_set1_pd((double)zp);\n"
    "    const __m512d vlo = _mm512_set1_pd((double)lo), vhi = _mm512_set1_pd((double)hi), near = _mm512_set1_pd(0.5 - 0x1p-20);\n"
    "    int64_t i = 0;\n"
    "    for (; i + 8 <= n; i += 8) {\n"
    "        const __m512d xd = _mm512_cvtps_pd(_mm256_loadu_ps(x + i));\n"
    "        const __m512d t = _mm512_mul_pd(xd, inv);\n"
    "        __m512d r = _mm512_roundscale_pd(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);\n"
    "        if (_mm512_cmp_pd_mask(_mm512_abs_pd(_mm512_sub_pd(t, r)), near, _CMP_GE_OQ))\n"
    "            r = _mm512_roundscale_pd(_mm512_div_pd(xd, s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); /* a tie: exactly */\n"
    "        __m512d v = _mm512_add_pd(r, z);\n"
    "        v = _mm512_mask_mov_pd(v, _mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q), z);\n"
    "        v = _mm512_min_pd(_mm512_max_pd(v, vlo), vhi);\n"
    "        _mm_storel_epi64((__m128i *)(y + i), _mm256_cvtepi32_epi8(_mm512_cvtpd_epi32(v))); /* in range: truncation is exact */\n"
    "    }\n"
    "    etch_q_quantize_f32_%s_c(x + i, n - i, scale, zp, lo, hi, y + i);\n"
    "}\n"
    "#endif\n"
    "static void etch_q_quantize_f32_%s(const float *x, int64_t n, double scale, int32_t zp, int lo, int hi, %s *y) {\n"
    "#if defined(ETCH_QGEMM_X86)\n"
    "    if (etch_qgemm_isa() == 2) {\n"
    "        etch_q_quantize_f32_%s_avx512(x, n, scale, zp, lo, hi, y);\n"
    "        return;\n"
    "    }\n"
    "    if (etch_qgemm_isa() == 1) {\n"
    "        etch_q_quantize_f32_%s_avx2(x, n, scale, zp, lo, hi, y);\n"
    "        return;\n"
    "    }\n"
    "#endif\n"
    "    etch_q_quantize_f32_%s_c(x, n, scale, zp, lo, hi, y);\n"
    "}\n";

/* Emits the per-tensor f32 quantize as a call; false when n is another kind. */
static bool emit_quantize_f32(CEmitter *e, const Graph *g, int id, const QuantLoops *L, int lo, int hi) {
    const Node *n = &g->nodes[id];
    if (n->op != OP_QUANTIZE || L->per_axis || g->nodes[n->in[L->x]].dtype != DT_F32) return false;
    bool u8 = n->dtype == DT_U8;
    const char *sfx = u8 ? "u8" : "i8", *T = dtype_c_type(n->dtype);
    char name[64];
    snprintf(name, sizeof name, "etch_q_quantize_f32_%s", sfx);
    if (cemit_define_once(e, name)) {
        qgemm_emit_support(e);
        const char *pack = u8 ? "_mm_packus_epi16(_mm_packus_epi32(q, q), q)" : "_mm_packs_epi16(_mm_packs_epi32(q, q), q)";
        sb_printf(e->preamble, quantize_f32_fmt, sfx, T, T, sfx, T, pack, sfx, sfx, T, sfx, sfx, T, sfx, sfx, sfx);
    }
    cemit_line(e, "%s(%s, %lld, (double)%s[0], %s[0], %d, %d, %s);", name, e->buf[n->in[L->x]],
               (long long)shape_numel(&n->shape), e->buf[n->in[L->scale]], e->buf[n->in[L->zp]], lo, hi, e->buf[id]);
    return true;
}

void emit_quant(CEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    QuantLoops L;
    quant_loops(g, n, &L);
    define_helpers(e);
    int lo, hi;
    quant_op_range(n, &lo, &hi);
    if (emit_quantize_f32(e, g, id, &L, lo, hi)) return;
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
