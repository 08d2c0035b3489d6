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
    "/* whether the float path holds for this scale and zero point (see codegen/c/ops/quant.c) */\n"
    "ETCH_MAYBE_UNUSED static inline int etch_q_quantize_float_ok(double scale, int32_t zp) {\n"
    "    const double inv = 1.0 / (double)(float)scale;\n"
    "    return (double)(float)scale == scale && inv >= 0x1p-125 && inv <= 0x1p125 && zp >= -(1 << 20) && zp <= (1 << 20);\n"
    "}\n"
    "ETCH_MAYBE_UNUSED static inline double etch_q_dequantize(int32_t q, double scale, int32_t zp) {\n"
    "    return ((double)q - zp) * scale;\n"
    "}\n\n";

void quant_emit_helpers(CEmitter *e) {
    if (cemit_define_once(e, "etch_q_helpers")) sb_puts(e->preamble, quant_helpers);
}

/* quantize of an f32 tensor with one scale, to T (uint8_t or int8_t), the
 * activations' way into a quantized layer. The vector variants work in
 * float, 8 (AVX2) or 16 (AVX-512) values at a time: t = x * (1 / scale) in
 * f32 is within 2^-23 relatively of the exact x / scale (1 / scale rounded
 * once, the product once), so for |t| <= 1024 within 2^-13 of it; when t is
 * farther than 0.5 - 2^-11 from a half-integer, rint(t) is the integer
 * nearest the exact quotient, which is what etch_q_quantize's rint of the
 * double quotient gives (a quotient of two f32 that is not a half-integer
 * lies at least 2^-49 relatively away from one, the double division within
 * 2^-53). rint(t) + zp and the clamp are exact in float (|zp| <= 2^20). A
 * vector with any other value (near a tie, |t| > 1024, NaN, inf) is done by
 * the scalar loop; a scale whose inverse is not a normal f32, or one that is
 * not an f32 at all, takes the scalar loop throughout. */
static const char quantize_f32_fmt[] =
    "static void etch_q_quantize_f32_%s_c(const float *x, int64_t n, double scale, int32_t zp, int lo, int hi, %s *y) {\n"
    "    for (int64_t i = 0; i < n; i++) y[i] = (%s)etch_q_quantize((double)x[i], scale, zp, lo, hi);\n"
    "}\n"
    "#if defined(ETCH_QGEMM_X86)\n"
    "ETCH_QGEMM_AVX2 static void etch_q_quantize_f32_%s_avx2(const float *x, int64_t n, double scale, int32_t zp, int lo, int hi, %s *y) {\n"
    "    int64_t i = 0;\n"
    "    if (etch_q_quantize_float_ok(scale, zp)) {\n"
    "        const __m256 inv = _mm256_set1_ps(1.0f / (float)scale), z = _mm256_set1_ps((float)zp);\n"
    "        const __m256 vlo = _mm256_set1_ps((float)lo), vhi = _mm256_set1_ps((float)hi);\n"
    "        const __m256 near = _mm256_set1_ps(0.5f - 0x1p-11f), big = _mm256_set1_ps(1024.0f);\n"
    "        const __m256 abs = _mm256_castsi256_ps(_mm256_set1_epi32(INT32_MAX));\n"
    "        for (; i + 8 <= n; i += 8) {\n"
    "            const __m256 t = _mm256_mul_ps(_mm256_loadu_ps(x + i), inv);\n"
    "            const __m256 r = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);\n"
    "            const __m256 sure = _mm256_and_ps(_mm256_cmp_ps(_mm256_and_ps(_mm256_sub_ps(t, r), abs), near, _CMP_LT_OQ),\n"
    "                                              _mm256_cmp_ps(_mm256_and_ps(t, abs), big, _CMP_LE_OQ));\n"
    "            if (_mm256_movemask_ps(sure) != 0xff) {\n"
    "                etch_q_quantize_f32_%s_c(x + i, 8, scale, zp, lo, hi, y + i); /* near a tie, large or NaN */\n"
    "                continue;\n"
    "            }\n"
    "            const __m256i q = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(_mm256_add_ps(r, z), vlo), vhi));\n"
    "            const __m128i q16 = %s;\n"
    "            _mm_storel_epi64((__m128i *)(y + i), q16);\n"
    "        }\n"
    "    }\n"
    "    etch_q_quantize_f32_%s_c(x + i, n - i, scale, zp, lo, hi, y + i);\n"
    "}\n"
    "ETCH_QGEMM_VNNI static void etch_q_quantize_f32_%s_avx512(const float *x, int64_t n, double scale, int32_t zp, int lo, int hi, %s *y) {\n"
    "    int64_t i = 0;\n"
    "    if (etch_q_quantize_float_ok(scale, zp)) {\n"
    "        const __m512 inv = _mm512_set1_ps(1.0f / (float)scale), z = _mm512_set1_ps((float)zp);\n"
    "        const __m512 vlo = _mm512_set1_ps((float)lo), vhi = _mm512_set1_ps((float)hi);\n"
    "        const __m512 near = _mm512_set1_ps(0.5f - 0x1p-11f), big = _mm512_set1_ps(1024.0f);\n"
    "        for (; i + 16 <= n; i += 16) {\n"
    "            const __m512 t = _mm512_mul_ps(_mm512_loadu_ps(x + i), inv);\n"
    "            const __m512 r = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);\n"
    "            const __mmask16 sure = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(t, r)), near, _CMP_LT_OQ) &\n"
    "                                   _mm512_cmp_ps_mask(_mm512_abs_ps(t), big, _CMP_LE_OQ);\n"
    "            if (sure != 0xffff) {\n"
    "                etch_q_quantize_f32_%s_c(x + i, 16, scale, zp, lo, hi, y + i); /* near a tie, large or NaN */\n"
    "                continue;\n"
    "            }\n"
    "            const __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(r, z), vlo), vhi);\n"
    "            _mm_storeu_si128((__m128i *)(y + i), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v))); /* in range: truncation is exact */\n"
    "        }\n"
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
        /* eight int32 in [lo, hi] to their bytes (saturation changes none of them) */
        const char *pack = u8 ? "_mm_packus_epi16(_mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1)), _mm_setzero_si128())"
                              : "_mm_packs_epi16(_mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1)), _mm_setzero_si128())";
        sb_printf(e->preamble, quantize_f32_fmt, sfx, T, T, sfx, T, sfx, pack, sfx, sfx, T, sfx, sfx, sfx, T, sfx, sfx, sfx);
    }
    cemit_line(e, "%s(%s, %lld, (double)%s[0], %s[0], %d, %d, %s);", name, e->buf[n->in[L->x]],
               (long long)shape_numel(&n->shape), e->buf[n->in[L->scale]], e->buf[n->in[L->zp]], lo, hi, e->buf[id]);
    return true;
}

void emit_quant(CEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    QuantLoops L;
    quant_loops(g, n, &L);
    quant_emit_helpers(e);
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
    quant_emit_helpers(e);
    const char *const *b = e->buf;
    const int *in = n->in;
    qgemm_emit(e, &d, b[in[0]], b[in[1]], b[in[2]], b[in[3]], b[in[4]], b[id]);
}
