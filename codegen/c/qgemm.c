/* qgemm.c: emits qmatmul's integer GEMM kernels specialized to static shapes
 * (see qgemm.h; docs/quantization.md, "The kernels").
 *
 * Form: the weights are a parameter the program may replace at any time
 * (<prefix>_load, writes through <prefix>_param_data), so no packed copy
 * outlives a call. Below PACK_MIN_ROWS rows (batch 1), each register tile
 * holds MR rows of x times NR weight rows as vectors of int32 partial sums
 * along k, read from the weights' own [N, K] layout and reduced
 * horizontally once the K loop ends, then the tile's requantize epilogue
 * (bias, zero-point correction, q31 multiplier and rounding shift,
 * clamp/relu) writes its MR x NR outputs; column blocks are the outer loop,
 * so a block's NR weight rows stay in L1 while every row tile of x passes.
 * From PACK_MIN_ROWS rows the VNNI variant packs the weights first, per call,
 * into the context's scratch ([K/4][N][4] panels, emit_packed), and keeps
 * one output per int32 lane.
 *
 * Arithmetic: raw = sum_k x[m,k] w[j,k] is computed with the instruction
 * set's products, then acc = bias[j] + raw - zx' * sum_k w[j,k], all modulo
 * 2^32: the same int32 as eval_qmatmul's sum of (x - zx) w, whatever the
 * order, so the result is bit-identical for every variant and thread split.
 *  - AVX-512 VNNI: vpdpbusd (u8 x s8, four products summed into an int32
 *    lane, no saturation). i8 activations are flipped to u8 (x ^ 0x80 =
 *    x + 128) and zx' = zx + 128. K tails use zero-masked loads. The
 *    epilogue runs in vectors (etch_qgemm_requant4_vnni: ir/quant.c's steps
 *    in int64 lanes), four columns at a time.
 *  - AVX2: no vpmaddubsw (its u8 x s8 pair sums saturate at 16 bits: 2 x 255
 *    x 127 > 32767); x and w are widened to int16 (vpmovzx/vpmovsx) and
 *    vpmaddwd sums pairs into int32 exactly (|pair| <= 2 x 255 x 128).
 *    K tails (K mod 16) and the epilogue (etch_q_requantize) are scalar.
 *  - portable C: one dot product per output, written for the vectorizer.
 * The sum of w per row is computed once per column block per call (the
 * weights may change between calls), only when zx' is not 0. */
#include "codegen/c/qgemm.h"

#include <stdarg.h>
#include <stdio.h>

#include "codegen/c/gemm_support.h"

enum { Q_PORTABLE, Q_AVX2, Q_VNNI, Q_N };
typedef struct QIsa {
    const char *sfx, *attr, *vt; /* name suffix, target attribute macro, vector type */
    int kstep;                   /* bytes of k per vector step */
} QIsa;
static const QIsa QISAS[Q_N] = {
    {"c", "", NULL, 1},
    {"avx2", "ETCH_QGEMM_AVX2 ", "__m256i", 16},
    {"vnni", "ETCH_QGEMM_VNNI ", "__m512i", 64},
};
/* From this many rows of x, the VNNI variant packs the weights (per call:
 * they may change between calls) into [K/4][N][4] panels of 64 columns and
 * keeps 16 columns per vector; below it packing costs more than it saves. */
#define PACK_MIN_ROWS 32
#define PACK_COLS 64
/* Below this many multiply-adds per thread, starting one costs more than it saves. */
#define MACS_PER_THREAD (1 << 20)

typedef struct QPlan {
    int mr, nr;          /* register tile (packed: nr vectors of 16 columns) */
    bool packed;         /* VNNI from PACK_MIN_ROWS rows: weights packed per call, outputs as lanes */
    int parts;           /* threads sharing the rows */
    int64_t chunk;       /* rows per part (a multiple of mr) */
} QPlan;

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

static QPlan plan_make(const QGemmDesc *d, int isa, int threads) {
    QPlan p = {.mr = 1, .nr = 4, .parts = 1, .chunk = d->m};
    if (isa == Q_AVX2) p.mr = d->m < 2 ? (int)d->m : 2;           /* 2 x 4 ymm sums + 6 operands: 14 of 16 */
    if (isa == Q_VNNI) p.mr = d->m < 4 ? (int)d->m : 4;           /* 4 x 4 zmm sums + 8 operands */
    if (isa == Q_VNNI && d->m == 1) p.nr = 16;                    /* batch 1: 16 columns, reduced to one vector */
    if (isa == Q_VNNI && d->m >= PACK_MIN_ROWS) { /* at most 16 zmm sums: GCC spills around the asm from 6 x 4 */
        int64_t vecs = cdiv(d->n, 16);
        p.packed = true, p.nr = vecs < 4 ? (int)vecs : 4, p.mr = 16 / p.nr < 8 ? 16 / p.nr : 8;
    }
    int64_t most = d->m * d->n * d->k / MACS_PER_THREAD, rows = cdiv(d->m, p.mr);
    int64_t parts = threads < most ? threads : most;
    if (parts > rows) parts = rows;
    if (parts < 1) parts = 1;
    p.chunk = cdiv(rows, parts) * p.mr;
    p.parts = (int)cdiv(d->m, p.chunk);
    return p;
}

static void put(StrBuf *b, int ind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void put(StrBuf *b, int ind, const char *fmt, ...) {
    for (int i = 0; i < ind; i++) sb_puts(b, "    ");
    va_list ap;
    va_start(ap, fmt);
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    sb_puts(b, line);
    sb_puts(b, "\n");
}

/* The instruction-set macros and detection, the argument block, the
 * horizontal reductions (once per file). */
void qgemm_emit_support(CEmitter *e) {
    if (!cemit_define_once(e, "etch_qgemm_support")) return;
    gemm_emit_cpu_probe(e);
    sb_puts(e->preamble,
            "/* ---- integer matrix-multiply kernels (codegen/c/qgemm.c) ---- */\n"
            "typedef struct etch_qgemm_args {\n"
            "    const void *x;\n    const int8_t *w;\n    const int32_t *bias, *mult, *shift;\n    void *y;\n"
            "    unsigned char *pack; /* the packed weights (VNNI, larger M): [K/4][N][4] panels, then bias - zx w sums */\n"
            "} etch_qgemm_args;\n"
            "#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))\n"
            "#define ETCH_QGEMM_X86 1\n"
            "#include <immintrin.h>\n"
            "#define ETCH_QGEMM_AVX2 __attribute__((target(\"avx2\")))\n"
            "#define ETCH_QGEMM_VNNI __attribute__((target(\"avx512f,avx512bw,avx512vl,avx512vnni,avx2\")))\n"
            "/* acc += x (u8) . w (s8) in groups of four: vpdpbusd written as asm, since GCC 12 copies\n"
            " * every accumulator to another register around the intrinsic (25% slower measured). */\n"
            "#define ETCH_QGEMM_DPBUSD(acc, x, w) __asm__(\"vpdpbusd {%2, %1, %0|%0, %1, %2}\" : \"+v\"(acc) : \"v\"(x), \"vm\"(w))\n"
            "/* Four vectors of int32 partial sums -> their four totals (modulo 2^32). */\n"
            "ETCH_QGEMM_AVX2 ETCH_MAYBE_UNUSED static inline __m128i etch_qgemm_red4_avx2(__m256i a, __m256i b, __m256i c, __m256i d) {\n"
            "    const __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));\n"
            "    return _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));\n"
            "}\n"
            "ETCH_QGEMM_VNNI ETCH_MAYBE_UNUSED static inline __m128i etch_qgemm_red4_vnni(__m512i a, __m512i b, __m512i c, __m512i d) {\n"
            "    const __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));\n"
            "    const __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));\n"
            "    const __m512i s = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));\n"
            "    const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));\n"
            "    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));\n"
            "}\n"
            "/* The requantize epilogue on four int32 sums (ir/quant.c's steps, in int64 lanes):\n"
            " * zp + RoundingDivideByPOT(SRDHM(sat32(acc << left), q31), right), clamped to [lo, hi]. */\n"
            "ETCH_QGEMM_VNNI ETCH_MAYBE_UNUSED static inline __m256i etch_qgemm_requant4_vnni(__m128i acc, __m128i q31, __m128i shift,\n"
            "                                                                          int64_t zp, int64_t lo, int64_t hi) {\n"
            "    const __m128i sh = _mm_min_epi32(_mm_max_epi32(shift, _mm_set1_epi32(-31)), _mm_set1_epi32(30));\n"
            "    const __m256i zero = _mm256_setzero_si256(), one = _mm256_set1_epi64x(1);\n"
            "    const __m256i left = _mm256_cvtepi32_epi64(_mm_max_epi32(sh, _mm_setzero_si128()));\n"
            "    const __m256i right = _mm256_cvtepi32_epi64(_mm_max_epi32(_mm_sub_epi32(_mm_setzero_si128(), sh), _mm_setzero_si128()));\n"
            "    const __m256i q = _mm256_cvtepi32_epi64(q31), min32 = _mm256_set1_epi64x(INT32_MIN), max32 = _mm256_set1_epi64x(INT32_MAX);\n"
            "    const __m256i xs = _mm256_min_epi64(_mm256_max_epi64(_mm256_sllv_epi64(_mm256_cvtepi32_epi64(acc), left), min32), max32);\n"
            "    const __m256i ab = _mm256_mul_epi32(xs, q);\n"
            "    const __m256i v = _mm256_add_epi64(ab, _mm256_mask_blend_epi64(_mm256_cmplt_epi64_mask(ab, zero),\n"
            "                                                                   _mm256_set1_epi64x(1 << 30), _mm256_set1_epi64x(1 - (1 << 30))));\n"
            "    /* / 2^31 truncating toward zero */\n"
            "    __m256i h = _mm256_srai_epi64(_mm256_mask_add_epi64(v, _mm256_cmplt_epi64_mask(v, zero), v,\n"
            "                                                        _mm256_set1_epi64x(((int64_t)1 << 31) - 1)), 31);\n"
            "    h = _mm256_mask_mov_epi64(h, _mm256_cmpeq_epi64_mask(xs, min32) & _mm256_cmpeq_epi64_mask(q, min32), max32);\n"
            "    const __m256i mask = _mm256_sub_epi64(_mm256_sllv_epi64(one, right), one);\n"
            "    const __m256i rem = _mm256_and_si256(h, mask);\n"
            "    const __m256i thr = _mm256_mask_add_epi64(_mm256_srli_epi64(mask, 1), _mm256_cmplt_epi64_mask(h, zero),\n"
            "                                              _mm256_srli_epi64(mask, 1), one);\n"
            "    __m256i y = _mm256_srav_epi64(h, right);\n"
            "    y = _mm256_add_epi64(_mm256_mask_add_epi64(y, _mm256_cmpgt_epi64_mask(rem, thr), y, one), _mm256_set1_epi64x(zp));\n"
            "    return _mm256_min_epi64(_mm256_max_epi64(y, _mm256_set1_epi64x(lo)), _mm256_set1_epi64x(hi));\n"
            "}\n"
            "/* qmatmul's f32 result on four sums: acc * q31 * 2^(shift - 31) in double, then float. */\n"
            "ETCH_QGEMM_VNNI ETCH_MAYBE_UNUSED static inline __m128 etch_qgemm_scale4_vnni(__m128i acc, __m128i q31, __m128i shift) {\n"
            "    const __m128i sh = _mm_min_epi32(_mm_max_epi32(shift, _mm_set1_epi32(-31)), _mm_set1_epi32(30));\n"
            "    const __m256d m = _mm256_scalef_pd(_mm256_cvtepi32_pd(q31), _mm256_cvtepi32_pd(_mm_sub_epi32(sh, _mm_set1_epi32(31))));\n"
            "    return _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtepi32_pd(acc), m));\n"
            "}\n"
            "/* The requantize epilogue on four int32 sums with AVX2 only (no 64-bit shifts right, min or max):\n"
            " * ir/quant.c's steps; zp + y clamped to [lo, hi] as y clamped to [lo - zp, hi - zp], then + zp. */\n"
            "ETCH_QGEMM_AVX2 ETCH_MAYBE_UNUSED static inline __m128i etch_qgemm_requant4_avx2(__m128i acc, __m128i q31, __m128i shift,\n"
            "                                                                          int32_t zp, int32_t ylo, int32_t yhi) {\n"
            "    const __m128i z4 = _mm_setzero_si128(), one = _mm_set1_epi32(1), min4 = _mm_set1_epi32(INT32_MIN);\n"
            "    const __m128i sh = _mm_min_epi32(_mm_max_epi32(shift, _mm_set1_epi32(-31)), _mm_set1_epi32(30));\n"
            "    const __m128i right = _mm_max_epi32(_mm_sub_epi32(z4, sh), z4);\n"
            "    const __m256i zero = _mm256_setzero_si256(), max32 = _mm256_set1_epi64x(INT32_MAX), min32 = _mm256_set1_epi64x(INT32_MIN);\n"
            "    const __m256i low = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6); /* the low halves of four int64 */\n"
            "    __m256i x = _mm256_sllv_epi64(_mm256_cvtepi32_epi64(acc), _mm256_cvtepi32_epi64(_mm_max_epi32(sh, z4)));\n"
            "    x = _mm256_blendv_epi8(x, max32, _mm256_cmpgt_epi64(x, max32));\n"
            "    x = _mm256_blendv_epi8(x, min32, _mm256_cmpgt_epi64(min32, x));\n"
            "    const __m256i ab = _mm256_mul_epi32(x, _mm256_cvtepi32_epi64(q31));\n"
            "    const __m256i v = _mm256_add_epi64(ab, _mm256_blendv_epi8(_mm256_set1_epi64x(1 << 30), _mm256_set1_epi64x(1 - (1 << 30)),\n"
            "                                                              _mm256_cmpgt_epi64(zero, ab)));\n"
            "    /* / 2^31 truncating toward zero; the quotient fits int32 (but INT32_MIN^2), so its low half is that of the logical shift */\n"
            "    const __m256i t = _mm256_add_epi64(v, _mm256_and_si256(_mm256_cmpgt_epi64(zero, v), _mm256_set1_epi64x(((int64_t)1 << 31) - 1)));\n"
            "    __m128i h = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(_mm256_srli_epi64(t, 31), low));\n"
            "    const __m128i xs = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(x, low));\n"
            "    h = _mm_blendv_epi8(h, _mm_set1_epi32(INT32_MAX), _mm_and_si128(_mm_cmpeq_epi32(xs, min4), _mm_cmpeq_epi32(q31, min4)));\n"
            "    const __m128i mask = _mm_sub_epi32(_mm_sllv_epi32(one, right), one);\n"
            "    const __m128i thr = _mm_add_epi32(_mm_srai_epi32(mask, 1), _mm_srli_epi32(h, 31));\n"
            "    __m128i y = _mm_add_epi32(_mm_srav_epi32(h, right), _mm_and_si128(_mm_cmpgt_epi32(_mm_and_si128(h, mask), thr), one));\n"
            "    y = _mm_min_epi32(_mm_max_epi32(y, _mm_set1_epi32(ylo)), _mm_set1_epi32(yhi));\n"
            "    return _mm_add_epi32(y, _mm_set1_epi32(zp));\n"
            "}\n"
            "/* 16 x 16 int32 transpose (four bytes of k of 16 weight rows -> 16 columns per vector):\n"
            " * d[c * ldd + r] = s[r * lds + 4 c .. 4 c + 3] for r, c < 16. */\n"
            "ETCH_QGEMM_VNNI ETCH_MAYBE_UNUSED static inline void etch_qgemm_tr16_vnni(const int8_t *s, int64_t lds, int32_t *d, int64_t ldd) {\n"
            "    __m512i r[16], t[16];\n"
            "    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_si512(s + i * lds);\n"
            "    for (int i = 0; i < 16; i += 2) {\n"
            "        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);\n"
            "        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);\n"
            "    }\n"
            "    for (int i = 0; i < 16; i += 4) { /* r[i + j], lane L: column 4 L + j of rows i .. i + 3 */\n"
            "        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);\n"
            "        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);\n"
            "        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);\n"
            "        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);\n"
            "    }\n"
            "    for (int j = 0; j < 4; j++) {\n"
            "        const __m512i a = _mm512_shuffle_i32x4(r[j], r[4 + j], 0x44), b = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0x44);\n"
            "        const __m512i c = _mm512_shuffle_i32x4(r[j], r[4 + j], 0xEE), e = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0xEE);\n"
            "        _mm512_storeu_si512(d + j * ldd, _mm512_shuffle_i32x4(a, b, 0x88));\n"
            "        _mm512_storeu_si512(d + (4 + j) * ldd, _mm512_shuffle_i32x4(a, b, 0xDD));\n"
            "        _mm512_storeu_si512(d + (8 + j) * ldd, _mm512_shuffle_i32x4(c, e, 0x88));\n"
            "        _mm512_storeu_si512(d + (12 + j) * ldd, _mm512_shuffle_i32x4(c, e, 0xDD));\n"
            "    }\n"
            "}\n"
            "/* Sixteen vectors of int32 partial sums -> their sixteen totals, lane c the total of s[c] (modulo 2^32). */\n"
            "ETCH_QGEMM_VNNI ETCH_MAYBE_UNUSED static inline __m512i etch_qgemm_red16_vnni(const __m512i *s) {\n"
            "    __m512i p[8], q[4];\n"
            "    for (int i = 0; i < 8; i++) /* 128-bit lane L: [s2i, s2i+1, s2i, s2i+1] over pairs of its elements */\n"
            "        p[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(s[2 * i], s[2 * i + 1]), _mm512_unpackhi_epi32(s[2 * i], s[2 * i + 1]));\n"
            "    for (int j = 0; j < 4; j++) /* lane L: the sums over lane L of s[4j .. 4j + 3] */\n"
            "        q[j] = _mm512_add_epi32(_mm512_unpacklo_epi64(p[2 * j], p[2 * j + 1]), _mm512_unpackhi_epi64(p[2 * j], p[2 * j + 1]));\n"
            "    const __m512i s01 = _mm512_add_epi32(_mm512_shuffle_i32x4(q[0], q[1], 0x44), _mm512_shuffle_i32x4(q[0], q[1], 0xEE));\n"
            "    const __m512i s23 = _mm512_add_epi32(_mm512_shuffle_i32x4(q[2], q[3], 0x44), _mm512_shuffle_i32x4(q[2], q[3], 0xEE));\n"
            "    return _mm512_add_epi32(_mm512_shuffle_i32x4(s01, s23, 0x88), _mm512_shuffle_i32x4(s01, s23, 0xDD));\n"
            "}\n"
            "/* etch_qgemm_requant4_vnni on eight sums in int64 zmm lanes */\n"
            "ETCH_QGEMM_VNNI ETCH_MAYBE_UNUSED static inline __m512i etch_qgemm_requant8_vnni(__m256i acc, __m256i q31, __m256i shift,\n"
            "                                                                          int64_t zp, int64_t lo, int64_t hi) {\n"
            "    const __m256i sh = _mm256_min_epi32(_mm256_max_epi32(shift, _mm256_set1_epi32(-31)), _mm256_set1_epi32(30));\n"
            "    const __m512i zero = _mm512_setzero_si512(), one = _mm512_set1_epi64(1);\n"
            "    const __m512i left = _mm512_cvtepi32_epi64(_mm256_max_epi32(sh, _mm256_setzero_si256()));\n"
            "    const __m512i right = _mm512_cvtepi32_epi64(_mm256_max_epi32(_mm256_sub_epi32(_mm256_setzero_si256(), sh), _mm256_setzero_si256()));\n"
            "    const __m512i q = _mm512_cvtepi32_epi64(q31), min32 = _mm512_set1_epi64(INT32_MIN), max32 = _mm512_set1_epi64(INT32_MAX);\n"
            "    const __m512i xs = _mm512_min_epi64(_mm512_max_epi64(_mm512_sllv_epi64(_mm512_cvtepi32_epi64(acc), left), min32), max32);\n"
            "    const __m512i ab = _mm512_mul_epi32(xs, q);\n"
            "    const __m512i v = _mm512_add_epi64(ab, _mm512_mask_blend_epi64(_mm512_cmplt_epi64_mask(ab, zero),\n"
            "                                                                   _mm512_set1_epi64(1 << 30), _mm512_set1_epi64(1 - (1 << 30))));\n"
            "    __m512i h = _mm512_srai_epi64(_mm512_mask_add_epi64(v, _mm512_cmplt_epi64_mask(v, zero), v,\n"
            "                                                        _mm512_set1_epi64(((int64_t)1 << 31) - 1)), 31);\n"
            "    h = _mm512_mask_mov_epi64(h, _mm512_cmpeq_epi64_mask(xs, min32) & _mm512_cmpeq_epi64_mask(q, min32), max32);\n"
            "    const __m512i mask = _mm512_sub_epi64(_mm512_sllv_epi64(one, right), one);\n"
            "    const __m512i rem = _mm512_and_si512(h, mask);\n"
            "    const __m512i thr = _mm512_mask_add_epi64(_mm512_srli_epi64(mask, 1), _mm512_cmplt_epi64_mask(h, zero),\n"
            "                                              _mm512_srli_epi64(mask, 1), one);\n"
            "    __m512i y = _mm512_srav_epi64(h, right);\n"
            "    y = _mm512_add_epi64(_mm512_mask_add_epi64(y, _mm512_cmpgt_epi64_mask(rem, thr), y, one), _mm512_set1_epi64(zp));\n"
            "    return _mm512_min_epi64(_mm512_max_epi64(y, _mm512_set1_epi64(lo)), _mm512_set1_epi64(hi));\n"
            "}\n"
            "/* sixteen sums requantized to sixteen bytes */\n"
            "ETCH_QGEMM_VNNI ETCH_MAYBE_UNUSED static inline __m128i etch_qgemm_requant16_vnni(__m512i acc, __m512i q31, __m512i shift,\n"
            "                                                                           int64_t zp, int64_t lo, int64_t hi) {\n"
            "    const __m128i a = _mm512_cvtepi64_epi8(etch_qgemm_requant8_vnni(_mm512_castsi512_si256(acc), _mm512_castsi512_si256(q31),\n"
            "                                                                     _mm512_castsi512_si256(shift), zp, lo, hi));\n"
            "    const __m128i b = _mm512_cvtepi64_epi8(etch_qgemm_requant8_vnni(_mm512_extracti64x4_epi64(acc, 1), _mm512_extracti64x4_epi64(q31, 1),\n"
            "                                                                     _mm512_extracti64x4_epi64(shift, 1), zp, lo, hi));\n"
            "    return _mm_unpacklo_epi64(a, b);\n"
            "}\n"
            "/* sixteen sums to f32 (etch_qgemm_scale4_vnni) */\n"
            "ETCH_QGEMM_VNNI ETCH_MAYBE_UNUSED static inline __m512 etch_qgemm_scale16_vnni(__m512i acc, __m512i q31, __m512i shift) {\n"
            "    const __m512i sh = _mm512_min_epi32(_mm512_max_epi32(shift, _mm512_set1_epi32(-31)), _mm512_set1_epi32(30));\n"
            "    const __m512i e = _mm512_sub_epi32(sh, _mm512_set1_epi32(31));\n"
            "    const __m512d m0 = _mm512_scalef_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(q31)), _mm512_cvtepi32_pd(_mm512_castsi512_si256(e)));\n"
            "    const __m512d m1 = _mm512_scalef_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(q31, 1)), _mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(e, 1)));\n"
            "    const __m256 y0 = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(acc)), m0));\n"
            "    const __m256 y1 = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(acc, 1)), m1));\n"
            "    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(y0)), _mm256_castps_pd(y1), 1));\n"
            "}\n"
            "#endif\n"
            "/* The instruction set: 2 AVX-512 VNNI, 1 AVX2, 0 portable C (etch_cpu_features). */\n"
            "static int etch_qgemm_isa(void) {\n"
            "    const int f = etch_cpu_features();\n"
            "    return f & ETCH_CPU_VNNI ? 2 : f & ETCH_CPU_AVX2 ? 1 : 0;\n"
            "}\n");
}

/* Generation state of one kernel. */
typedef struct QGen {
    StrBuf *b;
    const QGemmDesc *d;
    const char *name, *xt, *yt; /* kernel name; C types of x and y */
} QGen;

static int zx_of(const QGen *g, int isa) { /* the zero point in the products' domain */
    return isa == Q_VNNI && g->d->x_dtype == DT_I8 ? g->d->zx + 128 : g->d->zx;
}

/* Helpers every variant shares: the weight row sums and the epilogue. */
static void emit_shared(QGen *g) {
    StrBuf *b = g->b;
    const QGemmDesc *d = g->d;
    long long K = d->k, N = d->n;
    put(b, 0, "ETCH_MAYBE_UNUSED static inline void %s_wsum(const int8_t *w, int64_t j0, int nc, int32_t *wsum) {", g->name);
    put(b, 1, "for (int c = 0; c < nc; c++) {");
    put(b, 2, "uint32_t s = 0;");
    put(b, 2, "for (int64_t k = 0; k < %lld; k++) s += (uint32_t)(int32_t)w[(j0 + c) * %lld + k];", K, K);
    put(b, 2, "wsum[c] = (int32_t)s;");
    put(b, 1, "}");
    put(b, 0, "}");
    put(b, 0, "/* the epilogue of one row of a tile: bias, zero-point term, requantize */");
    put(b, 0, "static inline void %s_out(const etch_qgemm_args *a, int64_t m, int64_t j0, int nc, const int32_t *raw, "
              "const int32_t *wsum, uint32_t zx) {", g->name);
    put(b, 1, "%s *y = (%s *)a->y + m * %lld + j0;", g->yt, g->yt, N);
    put(b, 1, "for (int c = 0; c < nc; c++) {");
    put(b, 2, "const int64_t j = j0 + c;");
    put(b, 2, "const int32_t acc = (int32_t)((uint32_t)a->bias[j] + (uint32_t)raw[c] - zx * (uint32_t)wsum[c]);");
    if (d->y_dtype == DT_F32) put(b, 2, "y[c] = (float)etch_q_scale_acc(acc, a->mult[j], a->shift[j]);");
    else
        put(b, 2, "y[c] = (%s)etch_q_requantize(acc, a->mult[j], a->shift[j], %d, %d, %d);", g->yt, d->zy, d->lo,
            d->hi);
    put(b, 1, "}");
    put(b, 0, "}");
}

static void emit_rows(QGen *g, int ind, const QPlan *p) {
    put(g->b, ind, "const int64_t m0 = (int64_t)part * %lld, m1 = m0 + %lld < %lld ? m0 + %lld : %lld;",
        (long long)p->chunk, (long long)p->chunk, (long long)g->d->m, (long long)p->chunk, (long long)g->d->m);
}

static void emit_portable(QGen *g, const QPlan *p) {
    StrBuf *b = g->b;
    const QGemmDesc *d = g->d;
    long long K = d->k, N = d->n;
    /* int32 sums cannot overflow below this K; above it they wrap on uint32 */
    bool small = d->k * 255 * 128 < ((int64_t)1 << 31);
    const char *acc = small ? "int32_t" : "uint32_t";
    put(b, 0, "static void %s_c(const void *a_, const void *b_, void *c_, int part) {", g->name);
    put(b, 1, "const etch_qgemm_args *a = a_;");
    put(b, 1, "const %s *x = a->x;", g->xt);
    put(b, 1, "(void)b_, (void)c_;");
    emit_rows(g, 1, p);
    put(b, 1, "for (int64_t j0 = 0; j0 < %lld; j0 += 4) {", N);
    put(b, 2, "const int nc = %lld - j0 < 4 ? (int)(%lld - j0) : 4;", N, N);
    put(b, 2, "int32_t wsum[4] = {0};");
    if (zx_of(g, Q_PORTABLE)) put(b, 2, "%s_wsum(a->w, j0, nc, wsum);", g->name);
    put(b, 2, "for (int64_t m = m0; m < m1; m++) {");
    put(b, 3, "int32_t raw[4];");
    put(b, 3, "for (int c = 0; c < nc; c++) {");
    put(b, 4, "const %s *xr = x + m * %lld;", g->xt, K);
    put(b, 4, "const int8_t *wr = a->w + (j0 + c) * %lld;", K);
    put(b, 4, "%s s = 0;", acc);
    put(b, 4, "for (int64_t k = 0; k < %lld; k++) s += (%s)((int32_t)xr[k] * (int32_t)wr[k]);", K, acc);
    put(b, 4, "raw[c] = (int32_t)s;");
    put(b, 3, "}");
    put(b, 3, "%s_out(a, m, j0, nc, raw, wsum, %uu);", g->name, (unsigned)zx_of(g, Q_PORTABLE));
    put(b, 2, "}");
    put(b, 1, "}");
    put(b, 0, "}");
}

/* One register tile of mr rows x nr columns for the AVX2 or VNNI variant. */
static void emit_tile(QGen *g, int isa, int mr, int nr) {
    StrBuf *b = g->b;
    const QGemmDesc *d = g->d;
    const QIsa *I = &QISAS[isa];
    long long K = d->k, kfull = d->k / I->kstep * I->kstep;
    int krem = (int)(d->k - kfull);
    bool vnni = isa == Q_VNNI, flip = vnni && d->x_dtype == DT_I8;
    put(b, 0, "%sstatic inline void %s_%s_t%dx%d(const etch_qgemm_args *a, int64_t m, int64_t j0, const int32_t *wsum) {",
        I->attr, g->name, I->sfx, mr, nr);
    for (int r = 0; r < mr; r++) put(b, 1, "const %s *x%d = (const %s *)a->x + (m + %d) * %lld;", g->xt, r, g->xt, r, K);
    for (int c = 0; c < nr; c++) put(b, 1, "const int8_t *w%d = a->w + (j0 + %d) * %lld;", c, c, K);
    for (int r = 0; r < mr; r++)
        for (int c = 0; c < nr; c++) put(b, 1, "%s s%d_%d = %s;", I->vt, r, c, vnni ? "_mm512_setzero_si512()" : "_mm256_setzero_si256()");
    if (flip) put(b, 1, "const __m512i flip = _mm512_set1_epi8((char)0x80);");
    /* one k step: loads (x flipped to u8 for VNNI; widened to int16 for AVX2), then the products */
    for (int pass = 0; pass < 2; pass++) {
        bool tail = pass == 1;
        if (tail && (!krem || !vnni)) continue;
        if (!tail && !kfull) continue;
        int ind = 2;
        if (tail) {
            put(b, 1, "{ /* the last %d of k: zero-masked loads */", krem);
            put(b, 2, "const __mmask64 t = (__mmask64)0x%llxull;", (unsigned long long)(((uint64_t)1 << krem) - 1));
            put(b, 2, "const int64_t k = %lld;", kfull);
        } else {
            put(b, 1, "for (int64_t k = 0; k < %lld; k += %d) {", kfull, I->kstep);
        }
        for (int r = 0; r < mr; r++) {
            if (vnni && tail) put(b, ind, "__m512i xv%d = _mm512_maskz_loadu_epi8(t, x%d + k);", r, r);
            else if (vnni) put(b, ind, "__m512i xv%d = _mm512_loadu_si512(x%d + k);", r, r);
            else
                put(b, ind, "const __m256i xv%d = _mm256_cvtep%s8_epi16(_mm_loadu_si128((const __m128i *)(x%d + k)));", r,
                    d->x_dtype == DT_I8 ? "i" : "u", r);
            if (flip) put(b, ind, "xv%d = _mm512_xor_si512(xv%d, flip);", r, r);
        }
        for (int c = 0; c < nr; c++) {
            if (vnni && tail) put(b, ind, "const __m512i wv%d = _mm512_maskz_loadu_epi8(t, w%d + k);", c, c);
            else if (vnni) put(b, ind, "const __m512i wv%d = _mm512_loadu_si512(w%d + k);", c, c);
            else put(b, ind, "const __m256i wv%d = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w%d + k)));", c, c);
        }
        for (int r = 0; r < mr; r++)
            for (int c = 0; c < nr; c++) {
                if (vnni) put(b, ind, "ETCH_QGEMM_DPBUSD(s%d_%d, xv%d, wv%d);", r, c, r, c);
                else put(b, ind, "s%d_%d = _mm256_add_epi32(s%d_%d, _mm256_madd_epi16(xv%d, wv%d));", r, c, r, c, r, c);
            }
        put(b, 1, "}");
    }
    int groups = (nr + 3) / 4;
    const char *zero = vnni ? "_mm512_setzero_si512()" : "_mm256_setzero_si256()";
    if (vnni && nr > 8) { /* batch 1's wide tile: one row, its sums reduced 16 columns to a vector */
        unsigned zx = (unsigned)zx_of(g, isa);
        put(b, 1, "const __mmask16 k16 = 0x%x;", (1u << nr) - 1);
        put(b, 1, "__m512i acc = _mm512_add_epi32(etch_qgemm_red16_vnni((const __m512i[]){");
        for (int c = 0; c < 16; c++) {
            char v[24];
            snprintf(v, sizeof v, "s0_%d", c);
            put(b, 2, "%s%s", c < nr ? v : zero, c < 15 ? "," : "}),");
        }
        put(b, 1, "                                _mm512_maskz_loadu_epi32(k16, a->bias + j0));");
        if (zx) put(b, 1, "acc = _mm512_sub_epi32(acc, _mm512_mullo_epi32(_mm512_set1_epi32((int)%uu), _mm512_maskz_loadu_epi32(k16, wsum)));", zx);
        put(b, 1, "const __m512i q31 = _mm512_maskz_loadu_epi32(k16, a->mult + j0), shift = _mm512_maskz_loadu_epi32(k16, a->shift + j0);");
        put(b, 1, "%s *y = (%s *)a->y + m * %lld + j0;", g->yt, g->yt, (long long)d->n);
        if (d->y_dtype == DT_F32) put(b, 1, "_mm512_mask_storeu_ps(y, k16, etch_qgemm_scale16_vnni(acc, q31, shift));");
        else put(b, 1, "_mm_mask_storeu_epi8(y, k16, etch_qgemm_requant16_vnni(acc, q31, shift, %d, %d, %d));", d->zy, d->lo, d->hi);
        put(b, 1, "(void)wsum;");
        put(b, 0, "}");
        return;
    }
    if (vnni) { /* the epilogue in vectors, four columns at a time */
        unsigned zx = (unsigned)zx_of(g, isa);
        for (int q = 0; q < groups; q++) {
            int cols = nr - q * 4 < 4 ? nr - q * 4 : 4;
            put(b, 1, "{ /* columns j0 + %d .. j0 + %d */", q * 4, q * 4 + cols - 1);
            put(b, 2, "const __mmask8 k4 = 0x%x;", (1u << cols) - 1);
            put(b, 2, "const __m128i bias = _mm_maskz_loadu_epi32(k4, a->bias + j0 + %d);", q * 4);
            put(b, 2, "const __m128i q31 = _mm_maskz_loadu_epi32(k4, a->mult + j0 + %d);", q * 4);
            put(b, 2, "const __m128i shift = _mm_maskz_loadu_epi32(k4, a->shift + j0 + %d);", q * 4);
            if (zx) put(b, 2, "const __m128i zws = _mm_mullo_epi32(_mm_set1_epi32((int)%uu), _mm_maskz_loadu_epi32(k4, wsum + %d));", zx, q * 4);
            for (int r = 0; r < mr; r++) {
                char v[4][24];
                for (int i = 0; i < 4; i++) {
                    int c = q * 4 + i;
                    if (c < nr) snprintf(v[i], sizeof v[i], "s%d_%d", r, c);
                    else snprintf(v[i], sizeof v[i], "%s", zero);
                }
                put(b, 2, "{");
                put(b, 3, "__m128i acc = _mm_add_epi32(etch_qgemm_red4_vnni(%s, %s, %s, %s), bias);", v[0], v[1], v[2], v[3]);
                if (zx) put(b, 3, "acc = _mm_sub_epi32(acc, zws);");
                put(b, 3, "%s *y = (%s *)a->y + (m + %d) * %lld + j0 + %d;", g->yt, g->yt, r, (long long)d->n, q * 4);
                if (d->y_dtype == DT_F32) put(b, 3, "_mm_mask_storeu_ps(y, k4, etch_qgemm_scale4_vnni(acc, q31, shift));");
                else
                    put(b, 3, "_mm_mask_storeu_epi8(y, k4, _mm256_cvtepi64_epi8(etch_qgemm_requant4_vnni(acc, q31, shift, %d, %d, %d)));",
                        d->zy, d->lo, d->hi);
                put(b, 2, "}");
            }
            put(b, 1, "}");
        }
        put(b, 1, "(void)wsum;");
        put(b, 0, "}");
        return;
    }
    put(b, 1, "int32_t raw[%d][%d];", mr, groups * 4);
    for (int r = 0; r < mr; r++)
        for (int q = 0; q < groups; q++) {
            char v[4][24];
            for (int i = 0; i < 4; i++) {
                int c = q * 4 + i;
                if (c < nr) snprintf(v[i], sizeof v[i], "s%d_%d", r, c);
                else snprintf(v[i], sizeof v[i], "%s", zero);
            }
            put(b, 1, "_mm_storeu_si128((__m128i *)&raw[%d][%d], etch_qgemm_red4_%s(%s, %s, %s, %s));", r, q * 4, I->sfx,
                v[0], v[1], v[2], v[3]);
        }
    if (krem) { /* AVX2: the K tail in scalar code */
        put(b, 1, "for (int64_t k = %lld; k < %lld; k++) {", kfull, K);
        for (int r = 0; r < mr; r++)
            for (int c = 0; c < nr; c++)
                put(b, 2, "raw[%d][%d] = (int32_t)((uint32_t)raw[%d][%d] + (uint32_t)((int32_t)x%d[k] * (int32_t)w%d[k]));",
                    r, c, r, c, r, c);
        put(b, 1, "}");
    }
    for (int r = 0; r < mr; r++)
        put(b, 1, "%s_out%s(a, m + %d, j0, %d, raw[%d], wsum, %uu);", g->name,
            nr == 4 && d->y_dtype != DT_F32 ? "_avx2" : "", r, nr, r, (unsigned)zx_of(g, isa));
    put(b, 0, "}");
}

/* The row loop of one column block of nc columns: full row tiles, then the remainder. */
static void emit_block_rows(QGen *g, int isa, const QPlan *p, int ind, int nc) {
    const QIsa *I = &QISAS[isa];
    int mrem = (int)(g->d->m % p->mr);
    if (zx_of(g, isa)) put(g->b, ind, "%s_wsum(a->w, j0, %d, wsum);", g->name, nc);
    put(g->b, ind, "int64_t m = m0;");
    put(g->b, ind, "for (; m + %d <= m1; m += %d) %s_%s_t%dx%d(a, m, j0, wsum);", p->mr, p->mr, g->name, I->sfx, p->mr, nc);
    if (mrem) put(g->b, ind, "if (m < m1) %s_%s_t%dx%d(a, m, j0, wsum); /* the last %d rows */", g->name, I->sfx, mrem, nc, mrem);
}

/* The AVX2 epilogue of one row of four columns with u8/i8 outputs, in
 * vectors (etch_qgemm_requant4_avx2); the same arguments as NAME_out. */
static void emit_out_avx2(QGen *g) {
    StrBuf *b = g->b;
    const QGemmDesc *d = g->d;
    long long ylo = (long long)d->lo - d->zy, yhi = (long long)d->hi - d->zy;
    ylo = ylo < INT32_MIN ? INT32_MIN : ylo > INT32_MAX ? INT32_MAX : ylo;
    yhi = yhi < INT32_MIN ? INT32_MIN : yhi > INT32_MAX ? INT32_MAX : yhi;
    put(b, 0, "ETCH_QGEMM_AVX2 static inline void %s_out_avx2(const etch_qgemm_args *a, int64_t m, int64_t j0, int nc, "
              "const int32_t *raw, const int32_t *wsum, uint32_t zx) {", g->name);
    put(b, 1, "(void)nc; /* 4 */");
    put(b, 1, "__m128i acc = _mm_add_epi32(_mm_loadu_si128((const __m128i *)raw), _mm_loadu_si128((const __m128i *)(a->bias + j0)));");
    put(b, 1, "acc = _mm_sub_epi32(acc, _mm_mullo_epi32(_mm_set1_epi32((int)zx), _mm_loadu_si128((const __m128i *)wsum)));");
    put(b, 1, "const __m128i y = etch_qgemm_requant4_avx2(acc, _mm_loadu_si128((const __m128i *)(a->mult + j0)), "
              "_mm_loadu_si128((const __m128i *)(a->shift + j0)), %d, %lld, %lld);", d->zy, ylo, yhi);
    put(b, 1, "const int32_t bytes = _mm_cvtsi128_si32(%s);", d->y_dtype == DT_U8 ? "_mm_packus_epi16(_mm_packs_epi32(y, y), y)"
                                                                             : "_mm_packs_epi16(_mm_packs_epi32(y, y), y)");
    put(b, 1, "memcpy((%s *)a->y + m * %lld + j0, &bytes, 4);", g->yt, (long long)d->n);
    put(b, 0, "}");
}

static void emit_simd(QGen *g, int isa, const QPlan *p) {
    StrBuf *b = g->b;
    const QIsa *I = &QISAS[isa];
    int mrem = (int)(g->d->m % p->mr), nrem = (int)(g->d->n % p->nr);
    if (isa == Q_AVX2 && g->d->y_dtype != DT_F32) emit_out_avx2(g);
    for (int i = 0; i < 4; i++) { /* the tiles: full, row remainder, column remainder, both */
        int mr = i & 1 ? mrem : p->mr, nr = i & 2 ? nrem : p->nr;
        if (mr && nr) emit_tile(g, isa, mr, nr);
    }
    put(b, 0, "%sstatic void %s_%s(const void *a_, const void *b_, void *c_, int part) {", I->attr, g->name, I->sfx);
    put(b, 1, "const etch_qgemm_args *a = a_;");
    put(b, 1, "(void)b_, (void)c_;");
    emit_rows(g, 1, p);
    put(b, 1, "for (int64_t j0 = 0; j0 < %lld; j0 += %d) {", (long long)g->d->n, p->nr);
    put(b, 2, "int32_t wsum[%d] = {0};", p->nr);
    if (nrem) {
        put(b, 2, "if (%lld - j0 < %d) { /* the last %d columns */", (long long)g->d->n, p->nr, nrem);
        emit_block_rows(g, isa, p, 3, nrem);
        put(b, 3, "break;");
        put(b, 2, "}");
    }
    emit_block_rows(g, isa, p, 2, p->nr);
    put(b, 1, "}");
    put(b, 0, "}");
}

/* The VNNI variant from PACK_MIN_ROWS rows. The call first packs the weights
 * into its scratch (NAME_vnni_pack): panels of BW = 16 nr columns (the last
 * one narrower), each [K/4][BW][4] bytes, columns past N and bytes past K
 * zero; then the int32 bias - zx' sum_k w per column (16 N/16 of them). A
 * tile of mr rows x nr vectors broadcasts four bytes of a row of x and
 * multiplies them with four bytes of 16 columns per lane (vpdpbusd), so
 * every lane ends as one output: no horizontal sums, and the epilogue runs
 * 16 outputs per vector. */
static void emit_packed(QGen *g, const QPlan *p) {
    StrBuf *b = g->b;
    const QGemmDesc *d = g->d;
    long long K = d->k, N = d->n, K4 = (d->k + 3) / 4, KF = d->k / 4, N16 = (d->n + 15) / 16 * 16, BW = p->nr * 16;
    long long blocks = (N16 + BW - 1) / BW;
    int nvrem = (int)(N16 / 16 % p->nr), mrem = (int)(d->m % p->mr), kb = (int)(d->k % 4);
    unsigned zx = (unsigned)zx_of(g, Q_VNNI);
    bool flip = d->x_dtype == DT_I8;
    put(b, 0, "ETCH_QGEMM_VNNI static void %s_vnni_pack(const etch_qgemm_args *a) {", g->name);
    put(b, 1, "int32_t *p = (int32_t *)a->pack;");
    put(b, 1, "for (int64_t jb = 0; jb < %lld; jb++) {", blocks);
    put(b, 2, "const int64_t wb = %lld - jb * %lld < %lld ? %lld - jb * %lld : %lld;", N16, BW, BW, N16, BW, BW);
    put(b, 2, "int32_t *panel = p + jb * %lld;", BW * K4);
    put(b, 2, "for (int64_t c0 = 0; c0 < wb; c0 += 16) {");
    put(b, 3, "const int64_t n0 = jb * %lld + c0;", BW);
    put(b, 3, "int64_t kg = 0;");
    put(b, 3, "if (n0 + 16 <= %lld)", N);
    put(b, 4, "for (; kg + 16 <= %lld; kg += 16) etch_qgemm_tr16_vnni(a->w + n0 * %lld + kg * 4, %lld, panel + kg * wb + c0, wb);", KF, K, K);
    put(b, 3, "for (; kg < %lld; kg++) /* edges: scalar, zero past N and K */", K4);
    put(b, 4, "for (int64_t c = 0; c < 16; c++) {");
    put(b, 5, "uint8_t v[4] = {0, 0, 0, 0};");
    put(b, 5, "for (int64_t i = 0; i < 4 && n0 + c < %lld && kg * 4 + i < %lld; i++) v[i] = (uint8_t)a->w[(n0 + c) * %lld + kg * 4 + i];", N, K, K);
    put(b, 5, "memcpy(panel + kg * wb + c0 + c, v, 4);");
    put(b, 4, "}");
    put(b, 2, "}");
    put(b, 1, "}");
    put(b, 1, "int32_t *cb = p + %lld;", K4 * N16);
    put(b, 1, "for (int64_t j = 0; j < %lld; j++) {", N16);
    put(b, 2, "uint32_t s = 0;");
    if (zx) put(b, 2, "for (int64_t k = 0; k < %lld && j < %lld; k++) s += (uint32_t)(int32_t)a->w[j * %lld + k];", K, N, K);
    put(b, 2, "cb[j] = j < %lld ? (int32_t)((uint32_t)a->bias[j] - %uu * s) : 0;", N, zx);
    put(b, 1, "}");
    put(b, 0, "}");
    for (int i = 0; i < 4; i++) { /* tiles: full, row remainder, vector remainder, both */
        int mr = i & 1 ? mrem : p->mr, nv = i & 2 ? nvrem : p->nr;
        if (!mr || !nv) continue;
        long long wb = nv * 16;
        put(b, 0, "ETCH_QGEMM_VNNI static inline void %s_vnni_p%dx%d(const etch_qgemm_args *a, int64_t m, int64_t jb) {", g->name, mr, nv);
        put(b, 1, "const int32_t *wp = (const int32_t *)a->pack + jb * %lld;", BW * K4);
        for (int r = 0; r < mr; r++) put(b, 1, "const uint8_t *x%d = (const uint8_t *)a->x + (m + %d) * %lld;", r, r, K);
        for (int r = 0; r < mr; r++)
            for (int v = 0; v < nv; v++) put(b, 1, "__m512i s%d_%d = _mm512_setzero_si512();", r, v);
        for (int tail = 0; tail < 2; tail++) {
            if (tail ? !kb : !KF) continue;
            if (tail) put(b, 1, "{ /* the last %d bytes of k (the packed weights are zero past them) */", kb);
            else put(b, 1, "for (int64_t kg = 0; kg < %lld; kg++) {", KF);
            if (tail) put(b, 2, "const int64_t kg = %lld;", KF);
            for (int v = 0; v < nv; v++) put(b, 2, "const __m512i w%d = _mm512_loadu_si512(wp + kg * %lld + %d);", v, wb, v * 16);
            for (int r = 0; r < mr; r++) {
                put(b, 2, "{");
                put(b, 3, "uint32_t u = 0;");
                put(b, 3, "memcpy(&u, x%d + kg * 4, %d);", r, tail ? kb : 4);
                put(b, 3, "const __m512i xb = _mm512_set1_epi32((int)(u%s));", flip ? " ^ 0x80808080u" : "");
                for (int v = 0; v < nv; v++) put(b, 3, "ETCH_QGEMM_DPBUSD(s%d_%d, xb, w%d);", r, v, v);
                put(b, 2, "}");
            }
            put(b, 1, "}");
        }
        put(b, 1, "const int32_t *cb = (const int32_t *)a->pack + %lld + jb * %lld;", K4 * N16, BW);
        for (int v = 0; v < nv; v++) {
            put(b, 1, "{ /* columns jb * %lld + %d .. + 15 */", BW, v * 16);
            put(b, 2, "const int64_t n0 = jb * %lld + %d, left = %lld - n0;", BW, v * 16, N);
            put(b, 2, "const __mmask16 k = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);");
            put(b, 2, "const __m512i bias = _mm512_loadu_si512(cb + %d);", v * 16);
            put(b, 2, "const __m512i q31 = _mm512_maskz_loadu_epi32(k, a->mult + n0), shift = _mm512_maskz_loadu_epi32(k, a->shift + n0);");
            for (int r = 0; r < mr; r++) {
                put(b, 2, "%s *y%d = (%s *)a->y + (m + %d) * %lld + n0;", g->yt, r, g->yt, r, N);
                if (d->y_dtype == DT_F32)
                    put(b, 2, "_mm512_mask_storeu_ps(y%d, k, etch_qgemm_scale16_vnni(_mm512_add_epi32(s%d_%d, bias), q31, shift));", r, r, v);
                else
                    put(b, 2, "_mm_mask_storeu_epi8(y%d, k, etch_qgemm_requant16_vnni(_mm512_add_epi32(s%d_%d, bias), q31, shift, %d, %d, %d));",
                        r, r, v, d->zy, d->lo, d->hi);
            }
            put(b, 1, "}");
        }
        put(b, 0, "}");
    }
    put(b, 0, "ETCH_QGEMM_VNNI static void %s_vnni(const void *a_, const void *b_, void *c_, int part) {", g->name);
    put(b, 1, "const etch_qgemm_args *a = a_;");
    put(b, 1, "(void)b_, (void)c_;");
    emit_rows(g, 1, p);
    put(b, 1, "for (int64_t jb = 0; jb < %lld; jb++) {", blocks);
    put(b, 2, "int64_t m = m0;");
    for (int last = 1; last >= 0; last--) {
        int nv = last ? nvrem : p->nr, ind = last ? 3 : 2;
        if (!nv) continue;
        if (last) put(b, 2, "if (jb == %lld) { /* the last %d vectors of columns */", blocks - 1, nvrem);
        put(b, ind, "for (; m + %d <= m1; m += %d) %s_vnni_p%dx%d(a, m, jb);", p->mr, p->mr, g->name, p->mr, nv);
        if (mrem) put(b, ind, "if (m < m1) %s_vnni_p%dx%d(a, m, jb); /* the last %d rows */", g->name, mrem, nv, mrem);
        if (last) put(b, 3, "break;");
        if (last) put(b, 2, "}");
    }
    put(b, 1, "}");
    put(b, 0, "}");
}

/* Bytes of the packed weights and column biases of emit_packed. */
static int64_t packed_bytes(const QGemmDesc *d) {
    int64_t n16 = (d->n + 15) / 16 * 16;
    return ((d->k + 3) / 4 * n16 + n16) * 4;
}

/* "-5" -> "n5": integers in C identifiers. */
static const char *id_int(char *buf, size_t n, int v) {
    snprintf(buf, n, "%s%d", v < 0 ? "n" : "", v < 0 ? -v : v);
    return buf;
}

static void emit_kernel(CEmitter *e, const QGemmDesc *d, const char *name) {
    QPlan plans[Q_N];
    int max_parts = 1;
    for (int i = 0; i < Q_N; i++) {
        plans[i] = plan_make(d, i, e->threads > 1 ? e->threads : 1);
        if (plans[i].parts > max_parts) max_parts = plans[i].parts;
    }
    qgemm_emit_support(e);
    if (max_parts > 1) gemm_emit_thread_support(e);
    QGen g = {e->preamble, d, name, dtype_c_type(d->x_dtype), dtype_c_type(d->y_dtype)};
    StrBuf *b = e->preamble;
    sb_printf(b, "\n/* qmatmul %s[%lld x %lld] x i8[%lld x %lld]^T -> %s (zx %d, zy %d, clamp [%d, %d]): "
                 "VNNI tile %dx%d, AVX2 %dx%d, %d part%s. */\n",
              dtype_name(d->x_dtype), (long long)d->m, (long long)d->k, (long long)d->n, (long long)d->k,
              dtype_name(d->y_dtype), d->zx, d->zy, d->lo, d->hi, plans[Q_VNNI].mr, plans[Q_VNNI].nr, plans[Q_AVX2].mr,
              plans[Q_AVX2].nr, plans[Q_VNNI].parts, plans[Q_VNNI].parts > 1 ? "s" : "");
    emit_shared(&g);
    emit_portable(&g, &plans[Q_PORTABLE]);
    sb_puts(b, "#if defined(ETCH_QGEMM_X86)\n");
    emit_simd(&g, Q_AVX2, &plans[Q_AVX2]);
    if (plans[Q_VNNI].packed) emit_packed(&g, &plans[Q_VNNI]);
    else emit_simd(&g, Q_VNNI, &plans[Q_VNNI]);
    sb_puts(b, "#endif\n");
    put(b, 0, "static void %s(const %s *x, const int8_t *w, const int32_t *bias, const int32_t *mult, const int32_t *shift, "
              "%s *y, unsigned char *pack) {", name, g.xt, g.yt);
    put(b, 1, "etch_qgemm_args args = {x, w, bias, mult, shift, y, pack};");
    put(b, 1, "void (*f)(const void *, const void *, void *, int) = %s_c;", name);
    put(b, 1, "int parts = %d, isa = etch_qgemm_isa();", plans[Q_PORTABLE].parts);
    put(b, 1, "(void)isa;");
    sb_puts(b, "#if defined(ETCH_QGEMM_X86)\n");
    if (plans[Q_VNNI].packed) put(b, 1, "if (isa == 2) %s_vnni_pack(&args); /* the weights may have changed since the last call */", name);
    put(b, 1, "if (isa == 2) f = %s_vnni, parts = %d;", name, plans[Q_VNNI].parts);
    put(b, 1, "if (isa == 1) f = %s_avx2, parts = %d;", name, plans[Q_AVX2].parts);
    sb_puts(b, "#endif\n");
    if (max_parts > 1) {
        put(b, 1, "if (parts > 1) {");
        put(b, 2, "etch_gemm_parallel(f, &args, NULL, NULL, parts);");
        put(b, 2, "return;");
        put(b, 1, "}");
    } else {
        put(b, 1, "(void)parts;");
    }
    put(b, 1, "f(&args, NULL, NULL, 0);");
    put(b, 0, "}");
}

void qgemm_emit(CEmitter *e, const QGemmDesc *d, const char *x, const char *w, const char *bias, const char *mult,
                const char *shift, const char *y) {
    if (d->m == 0 || d->n == 0) return;
    char name[256], a[4][16];
    snprintf(name, sizeof name, "etch_qgemm_%lldx%lldx%lld_%s_z%s_%s_z%s_c%s_%s", (long long)d->m, (long long)d->n,
             (long long)d->k, dtype_name(d->x_dtype), id_int(a[0], sizeof a[0], d->zx), dtype_name(d->y_dtype),
             id_int(a[1], sizeof a[1], d->zy), id_int(a[2], sizeof a[2], d->lo), id_int(a[3], sizeof a[3], d->hi));
    if (cemit_define_once(e, name)) emit_kernel(e, d, name);
    bool packed = plan_make(d, Q_VNNI, 1).packed;
    cemit_line(e, "%s(%s, %s, %s, %s, %s, %s, %s);", name, x, w, bias, mult, shift, y,
               packed ? cemit_scratch(e, packed_bytes(d)) : "NULL");
}
