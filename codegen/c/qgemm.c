/* qgemm.c: emits qmatmul's integer GEMM kernels specialized to static shapes
 * (see qgemm.h; docs/quantization.md, "The kernels").
 *
 * Form: the weights stay in their own [N, K] layout (a parameter the program
 * may reload at any time with <prefix>_load, so nothing is packed ahead):
 * each register tile holds MR rows of x times NR weight rows as vectors of
 * int32 partial sums along k, reduced horizontally once the K loop ends,
 * then the tile's requantize epilogue (bias, zero-point correction, q31
 * multiplier and rounding shift, clamp/relu) writes its MR x NR outputs.
 * Column blocks are the outer loop, so a block's NR weight rows stay in L1
 * while every row tile of x passes.
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
/* Below this many multiply-adds per thread, starting one costs more than it saves. */
#define MACS_PER_THREAD (1 << 20)

typedef struct QPlan {
    int mr, nr;          /* register tile */
    int parts;           /* threads sharing the rows */
    int64_t chunk;       /* rows per part (a multiple of mr) */
} QPlan;

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

static QPlan plan_make(const QGemmDesc *d, int isa, int threads) {
    QPlan p = {1, 4, 1, d->m};
    if (isa == Q_AVX2) p.mr = d->m < 2 ? (int)d->m : 2;           /* 2 x 4 ymm sums + 6 operands: 14 of 16 */
    if (isa == Q_VNNI) p.mr = d->m < 4 ? (int)d->m : 4;           /* 4 x 4 zmm sums + 8 operands */
    if (isa == Q_VNNI && d->m == 1) p.nr = 8;                     /* batch 1: wider column block */
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
        put(b, 1, "%s_out(a, m + %d, j0, %d, raw[%d], wsum, %uu);", g->name, r, nr, r, (unsigned)zx_of(g, isa));
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

static void emit_simd(QGen *g, int isa, const QPlan *p) {
    StrBuf *b = g->b;
    const QIsa *I = &QISAS[isa];
    int mrem = (int)(g->d->m % p->mr), nrem = (int)(g->d->n % p->nr);
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
    emit_simd(&g, Q_VNNI, &plans[Q_VNNI]);
    sb_puts(b, "#endif\n");
    put(b, 0, "static void %s(const %s *x, const int8_t *w, const int32_t *bias, const int32_t *mult, const int32_t *shift, "
              "%s *y) {", name, g.xt, g.yt);
    put(b, 1, "const etch_qgemm_args args = {x, w, bias, mult, shift, y};");
    put(b, 1, "void (*f)(const void *, const void *, void *, int) = %s_c;", name);
    put(b, 1, "int parts = %d, isa = etch_qgemm_isa();", plans[Q_PORTABLE].parts);
    put(b, 1, "(void)isa;");
    sb_puts(b, "#if defined(ETCH_QGEMM_X86)\n");
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
    cemit_line(e, "%s(%s, %s, %s, %s, %s, %s);", name, x, w, bias, mult, shift, y);
}
