/* test_gemm.c: the emitted matrix-multiply kernels (codegen/c/gemm.c) against
 * a float64 reference. Shapes cover unit dims, primes, sizes off the register
 * tile and cache-block grids, K spanning several slices, the MLP's products
 * and their gradients (transposed operands), every kernel form (direct,
 * dot-product, blocked), padded strides, accumulation and f64. Each runs
 * under every variant: portable (vector extensions, and plain C), AVX2 and
 * AVX-512 when the CPU has them, and the AVX-512 code on AVX2 hardware
 * through stand-ins for the intrinsics it uses, so its tiles, masks and
 * alignment are checked on any AVX2 machine. Operands end against a guard
 * page (a read or write past the end faults) and C's padding must stay
 * untouched. Kernels built for 2, 3 and a million threads must give
 * bit-identical results to one thread. Kernels with an epilogue (GemmDesc.epilogue) must
 * hand it every element exactly once, after its whole K sum, under every
 * variant and thread count. Libraries are compiled like test_codegen_ops's
 * (build_compile, dlopen). */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codegen/build.h"
#include "codegen/c/gemm.h"
#include "unit/test_support.h"

typedef struct Case {
    DType t;
    int m, n, k;
    bool ta, tb;
    int pad_a, pad_b, pad_c; /* extra elements per row beyond the minimum stride */
    bool acc;
} Case;

#define F32 DT_F32
#define F64 DT_F64
/* t, m, n, k, ta, tb, pads, acc */
static const Case CASES[] = {
    {F32, 1, 1, 1, 0, 0, 0, 0, 0, 0},          {F32, 7, 13, 5, 0, 0, 0, 0, 0, 0},
    {F32, 13, 7, 5, 1, 0, 0, 0, 0, 0},         {F32, 5, 7, 13, 0, 1, 0, 0, 0, 0},
    {F32, 7, 5, 13, 1, 1, 0, 0, 0, 1},         {F32, 2, 3, 4, 0, 0, 0, 0, 0, 1},
    /* the MLP: forward, batch-1 inference, and the gradients */
    {F32, 64, 128, 784, 0, 0, 0, 0, 0, 0},     {F32, 64, 10, 128, 0, 0, 0, 0, 0, 0},
    {F32, 1, 128, 784, 0, 0, 0, 0, 0, 0},      {F32, 784, 128, 64, 0, 0, 0, 0, 0, 0},
    {F32, 784, 128, 64, 1, 0, 0, 0, 0, 0},     {F32, 64, 784, 128, 0, 0, 0, 0, 0, 0},
    {F32, 64, 784, 128, 0, 1, 0, 0, 0, 0},     {F32, 128, 10, 64, 1, 0, 0, 0, 0, 0},
    {F32, 64, 128, 10, 0, 1, 0, 0, 0, 0},      {F32, 1, 10, 128, 0, 0, 0, 0, 0, 0},
    /* off the tile grid; several K slices; small direct tiles */
    {F32, 37, 29, 41, 0, 0, 0, 0, 0, 0},       {F32, 100, 37, 333, 0, 0, 0, 0, 0, 1},
    {F32, 61, 53, 600, 1, 0, 0, 0, 0, 1},      {F32, 3, 100, 50, 0, 0, 0, 0, 0, 1},
    {F32, 4, 129, 7, 1, 0, 0, 0, 0, 0},        {F32, 2, 1000, 3, 0, 0, 0, 0, 0, 0},
    {F32, 20, 1, 30, 0, 0, 0, 0, 0, 0},        {F32, 20, 30, 1, 0, 0, 0, 0, 0, 0},
    {F32, 1, 1, 1000, 0, 0, 0, 0, 0, 0},       {F32, 9, 17, 5, 0, 0, 0, 0, 0, 0},
    /* blocked kernels: B beyond L2 or rows 2 KiB apart; transposed B */
    {F32, 131, 512, 300, 0, 0, 0, 0, 0, 0},    {F32, 67, 1024, 37, 0, 0, 0, 0, 0, 1},
    {F32, 70, 1000, 140, 1, 0, 0, 0, 0, 0},    {F32, 50, 70, 90, 0, 1, 0, 0, 0, 0},
    {F32, 33, 17, 520, 1, 1, 0, 0, 0, 1},      {F32, 4, 40, 20, 0, 1, 0, 0, 0, 0},
    /* dot products (few rows times transposed B): batch-1 inference, K below one vector */
    {F32, 1, 128, 784, 0, 1, 0, 0, 0, 0},      {F32, 1, 10, 128, 0, 1, 0, 0, 0, 0},
    {F32, 3, 100, 37, 0, 1, 2, 1, 3, 1},       {F32, 1, 1, 3, 0, 1, 0, 0, 0, 0},
    {F32, 2, 17, 9, 0, 1, 0, 0, 0, 0},         {F64, 2, 13, 9, 0, 1, 0, 0, 0, 1},
    /* padded strides */
    {F32, 9, 11, 13, 0, 0, 7, 4, 1, 1},        {F32, 9, 11, 13, 1, 1, 3, 5, 2, 0},
    {F32, 65, 40, 70, 0, 1, 1, 2, 3, 0},       {F32, 1, 33, 9, 1, 0, 2, 0, 5, 0},
    /* empty sums */
    {F32, 3, 4, 0, 0, 0, 0, 0, 0, 0},          {F32, 3, 4, 0, 0, 0, 0, 0, 0, 1},
    /* f64 */
    {F64, 7, 13, 5, 0, 0, 0, 0, 0, 0},         {F64, 64, 10, 128, 0, 0, 0, 0, 0, 0},
    {F64, 130, 100, 300, 0, 1, 0, 0, 0, 1},    {F64, 50, 9, 17, 1, 0, 0, 0, 0, 0},
    {F64, 1, 33, 20, 0, 0, 0, 0, 0, 0},        {F64, 3, 70, 9, 0, 0, 0, 0, 0, 1},
    {F64, 45, 300, 260, 1, 0, 2, 3, 1, 0},
};
#define N_CASES (int)(sizeof CASES / sizeof CASES[0])

/* Big enough to be split over threads: rows or columns, direct or blocked. */
static const Case SPLIT_CASES[] = {
    {F32, 3, 3000, 1000, 0, 0, 0, 0, 0, 0}, /* direct, columns */
    {F32, 64, 128, 784, 0, 0, 0, 0, 0, 0},  /* direct, rows */
    {F32, 301, 20, 1400, 0, 0, 0, 0, 0, 0}, /* direct, rows, a short last part */
    {F32, 131, 512, 300, 0, 0, 0, 0, 0, 1}, /* blocked, columns */
    {F32, 601, 40, 600, 0, 1, 0, 0, 0, 0},  /* blocked, rows */
    {F32, 200, 150, 400, 1, 1, 0, 0, 0, 0}, /* two K slices */
    {F64, 200, 100, 400, 0, 1, 0, 0, 0, 0},
    {F32, 4, 2000, 1000, 0, 1, 0, 0, 0, 0}, /* dot products, columns */
};
#define N_SPLIT (int)(sizeof SPLIT_CASES / sizeof SPLIT_CASES[0])

/* With an epilogue, one case per kernel form: direct, dot products, blocked
 * with one K slice and with several (the sums pass through C), masked column
 * tails, an empty sum, f64; big enough to split over 3 threads. */
static const Case EPI_CASES[] = {
    {F32, 37, 29, 41, 0, 0, 0, 0, 0, 0},   {F32, 64, 128, 784, 0, 1, 0, 0, 0, 0},
    {F32, 301, 20, 1400, 0, 0, 0, 0, 0, 0}, {F32, 3, 100, 37, 0, 1, 2, 1, 3, 0},
    {F32, 4, 2000, 1000, 0, 1, 0, 0, 0, 0}, {F32, 200, 150, 400, 1, 1, 0, 0, 0, 0},
    {F32, 131, 512, 300, 0, 0, 0, 0, 0, 0}, {F32, 70, 1000, 140, 1, 0, 0, 0, 0, 0},
    {F32, 3, 4, 0, 0, 0, 0, 0, 0, 0},       {F64, 130, 100, 300, 0, 1, 0, 0, 0, 0},
    {F64, 9, 11, 13, 0, 0, 7, 4, 1, 0},
};
#define N_EPI (int)(sizeof EPI_CASES / sizeof EPI_CASES[0])

static GemmDesc desc_of(const Case *c) {
    GemmDesc d = {.dtype = c->t, .m = c->m, .n = c->n, .k = c->k, .trans_a = c->ta, .trans_b = c->tb,
                  .accumulate = c->acc};
    d.lda = (c->ta ? c->m : c->k) + c->pad_a;
    d.ldb = (c->tb ? c->k : c->n) + c->pad_b;
    d.ldc = c->n + c->pad_c;
    return d;
}

/* Elements each operand spans: (rows - 1) * stride + row length. */
static size_t span(int64_t rows, int64_t cols, int64_t ld) { return rows && cols ? (size_t)((rows - 1) * ld + cols) : 0; }
static size_t span_a(const GemmDesc *d) { return d->trans_a ? span(d->k, d->m, d->lda) : span(d->m, d->k, d->lda); }
static size_t span_b(const GemmDesc *d) { return d->trans_b ? span(d->n, d->k, d->ldb) : span(d->k, d->n, d->ldb); }
static size_t span_c(const GemmDesc *d) { return span(d->m, d->n, d->ldc); }

/* How a library's source is spelled: as emitted, or "alt": its portable
 * variant in plain C and its AVX-512 variant on AVX2 through EMU512 below
 * (the two never meet, so one library serves both). */
typedef enum Source { SRC_NATIVE, SRC_ALT } Source;

/* AVX-512 stand-ins on AVX2 halves, same lane semantics (masked lanes are
 * not touched; aligned loads must be aligned). */
static const char EMU512[] =
    "#define EMU __attribute__((target(\"avx2,fma\"), unused)) static inline\n"
    "typedef struct { __m256 lo, hi; } emu512;\n"
    "typedef struct { __m256d lo, hi; } emu512d;\n"
    "EMU emu512 emu512_setzero_ps(void) { return (emu512){_mm256_setzero_ps(), _mm256_setzero_ps()}; }\n"
    "EMU emu512d emu512_setzero_pd(void) { return (emu512d){_mm256_setzero_pd(), _mm256_setzero_pd()}; }\n"
    "EMU emu512 emu512_set1_ps(float x) { return (emu512){_mm256_set1_ps(x), _mm256_set1_ps(x)}; }\n"
    "EMU emu512d emu512_set1_pd(double x) { return (emu512d){_mm256_set1_pd(x), _mm256_set1_pd(x)}; }\n"
    "EMU emu512 emu512_loadu_ps(const void *p) {\n"
    "    return (emu512){_mm256_loadu_ps((const float *)p), _mm256_loadu_ps((const float *)p + 8)};\n}\n"
    "EMU emu512d emu512_loadu_pd(const void *p) {\n"
    "    return (emu512d){_mm256_loadu_pd((const double *)p), _mm256_loadu_pd((const double *)p + 4)};\n}\n"
    "EMU emu512 emu512_load_ps(const void *p) {\n"
    "    if ((uintptr_t)p % 64) __builtin_trap();\n    return emu512_loadu_ps(p);\n}\n"
    "EMU emu512d emu512_load_pd(const void *p) {\n"
    "    if ((uintptr_t)p % 64) __builtin_trap();\n    return emu512_loadu_pd(p);\n}\n"
    "EMU void emu512_storeu_ps(void *p, emu512 v) {\n"
    "    _mm256_storeu_ps((float *)p, v.lo);\n    _mm256_storeu_ps((float *)p + 8, v.hi);\n}\n"
    "EMU void emu512_storeu_pd(void *p, emu512d v) {\n"
    "    _mm256_storeu_pd((double *)p, v.lo);\n    _mm256_storeu_pd((double *)p + 4, v.hi);\n}\n"
    "EMU emu512 emu512_fmadd_ps(emu512 a, emu512 b, emu512 c) {\n"
    "    return (emu512){_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};\n}\n"
    "EMU emu512d emu512_fmadd_pd(emu512d a, emu512d b, emu512d c) {\n"
    "    return (emu512d){_mm256_fmadd_pd(a.lo, b.lo, c.lo), _mm256_fmadd_pd(a.hi, b.hi, c.hi)};\n}\n"
    "EMU emu512 emu512_add_ps(emu512 a, emu512 b) { return (emu512){_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }\n"
    "EMU emu512d emu512_add_pd(emu512d a, emu512d b) { return (emu512d){_mm256_add_pd(a.lo, b.lo), _mm256_add_pd(a.hi, b.hi)}; }\n"
    "EMU __m256i emu_mask32(unsigned k) { /* bit i -> lane i of 8 */\n"
    "    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);\n"
    "    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)k), bit), bit);\n}\n"
    "EMU __m256i emu_mask64(unsigned k) { /* bit i -> lane i of 4 */\n"
    "    const __m256i bit = _mm256_setr_epi64x(1, 2, 4, 8);\n"
    "    return _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_set1_epi64x(k), bit), bit);\n}\n"
    "EMU emu512 emu512_maskz_loadu_ps(uint16_t k, const void *p) {\n"
    "    return (emu512){_mm256_maskload_ps((const float *)p, emu_mask32(k & 255)),\n"
    "                    _mm256_maskload_ps((const float *)p + 8, emu_mask32(k >> 8))};\n}\n"
    "EMU emu512d emu512_maskz_loadu_pd(uint8_t k, const void *p) {\n"
    "    return (emu512d){_mm256_maskload_pd((const double *)p, emu_mask64(k & 15)),\n"
    "                     _mm256_maskload_pd((const double *)p + 4, emu_mask64(k >> 4))};\n}\n"
    "EMU void emu512_mask_storeu_ps(void *p, uint16_t k, emu512 v) {\n"
    "    _mm256_maskstore_ps((float *)p, emu_mask32(k & 255), v.lo);\n"
    "    _mm256_maskstore_ps((float *)p + 8, emu_mask32(k >> 8), v.hi);\n}\n"
    "EMU void emu512_mask_storeu_pd(void *p, uint8_t k, emu512d v) {\n"
    "    _mm256_maskstore_pd((double *)p, emu_mask64(k & 15), v.lo);\n"
    "    _mm256_maskstore_pd((double *)p + 4, emu_mask64(k >> 4), v.hi);\n}\n"
    "EMU emu512d emu512_castps_pd(emu512 v) { return (emu512d){_mm256_castps_pd(v.lo), _mm256_castps_pd(v.hi)}; }\n"
    "EMU __m256 emu512_castps512_ps256(emu512 v) { return v.lo; }\n"
    "EMU __m256d emu512_castpd512_pd256(emu512d v) { return v.lo; }\n"
    "EMU __m256d emu512_extractf64x4_pd(emu512d v, int i) { return i ? v.hi : v.lo; }\n";

/* Replaces every occurrence of from in *s by to. */
static void replace_all(char **s, const char *from, const char *to) {
    StrBuf b = {0};
    size_t fl = strlen(from);
    const char *p = *s, *q;
    while ((q = strstr(p, from))) {
        sb_printf(&b, "%.*s%s", (int)(q - p), p, to);
        p = q + fl;
    }
    sb_puts(&b, p);
    free(*s);
    *s = sb_take(&b);
}

/* The AVX-512 variant rewritten onto EMU512, and chosen whenever AVX2 is there. */
static void to_emu512(char **src) {
    replace_all(src, "_mm512_", "emu512_");
    replace_all(src, "__m512d", "emu512d");
    replace_all(src, "__m512", "emu512");
    replace_all(src, "__mmask16", "uint16_t");
    replace_all(src, "__mmask8", "uint8_t");
    replace_all(src, "target(\"avx512f,avx2,fma\")", "target(\"avx2,fma\")");
    replace_all(src, "if (best && __builtin_cpu_supports(\"avx512f\")) best = 2;", "if (best) best = 2;");
    char *with = malloc(strlen(*src) + sizeof EMU512 + 1);
    const char *inc = "#include <immintrin.h>\n", *at = strstr(*src, inc);
    assert_non_null(at);
    size_t head = (size_t)(at - *src) + strlen(inc);
    memcpy(with, *src, head);
    strcpy(with + head, EMU512);
    strcat(with, *src + head);
    free(*src);
    *src = with;
}

/* Writes the kernels of cases[] as functions t0.. into dir/<base>.c, spelled
 * as src says, each with a test epilogue when `with_epilogue` (it stores each tile
 * into C, as without one, and counts every element's visits in t<i>_visits);
 * returns the text. */
static char *write_lib(const char *dir, const char *base, const Case *cases, int n, int threads, Source src, bool with_epilogue) {
    StrBuf out = {0}, pre = {0}, file = {0}, fns = {0};
    CEmitter e = {.out = &out, .preamble = &pre, .threads = threads, .indent = 1};
    for (int i = 0; i < n; i++) {
        GemmDesc d = desc_of(&cases[i]);
        const char *T = dtype_c_type(d.dtype);
        char a[64], b[64], c[64];
        snprintf(a, sizeof a, "(const %s *)a", T);
        snprintf(b, sizeof b, "(const %s *)b", T);
        snprintf(c, sizeof c, "(%s *)c", T);
        out.len = 0;
        if (out.s) out.s[0] = 0;
        char epi[32];
        if (with_epilogue) {
            snprintf(epi, sizeof epi, "t%d_epi", i);
            d.epilogue = epi;
            sb_printf(&pre, "int t%d_visits[%zu];\nstatic %s *t%d_c;\n", i, span_c(&d) + 1, T, i);
            sb_printf(&pre, "static void %s(const %s *restrict R, int64_t ldr, int64_t i0, int64_t j0, int64_t rows, "
                            "int64_t cols) {\n", epi, T);
            sb_printf(&pre, "    for (int64_t i = 0; i < rows; i++)\n        for (int64_t j = 0; j < cols; j++) {\n");
            sb_printf(&pre, "            t%d_c[(i0 + i) * %lld + j0 + j] = R[i * ldr + j];\n", i, (long long)d.ldc);
            sb_printf(&pre, "            t%d_visits[(i0 + i) * %lld + j0 + j]++;\n        }\n}\n", i, (long long)d.ldc);
            sb_printf(&out, "    t%d_c = (%s *)c;\n", i, T);
        }
        gemm_emit(&e, &d, a, b, c);
        if (i == 0) gemm_emit(&e, &d, a, b, c); /* twice: defined once, called twice (idempotent unless acc) */
        sb_printf(&fns, "void t%d(const void *a, const void *b, void *c);\n", i);
        sb_printf(&fns, "void t%d(const void *a, const void *b, void *c) {\n    (void)a, (void)b, (void)c;\n%s}\n", i,
                  out.s ? out.s : "");
    }
    sb_printf(&file, "%s#include <stdint.h>\n#include <stdio.h>\n#include <string.h>\n#include <tgmath.h>\n\n%s\n%s",
              src == SRC_ALT ? "#define ETCH_GEMM_PLAIN_C 1\n" : "", pre.s ? pre.s : "", fns.s);
    char *text = sb_take(&file);
    if (src == SRC_ALT) to_emu512(&text);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.c", dir, base);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    sb_free(&out);
    sb_free(&pre);
    sb_free(&fns);
    for (int i = 0; i < e.n_defined; i++) free((void *)e.defined[i]);
    free(e.defined);
    return text;
}

/* Runs each command in its own child, all at once; each must succeed. */
static void spawn_all(const char *const *const *argvs, int n) {
    pid_t pid[16];
    for (int i = 0; i < n; i++) {
        fflush(NULL);
        pid[i] = fork();
        assert_true(pid[i] >= 0);
        if (pid[i] == 0) {
            Diag dg;
            diag_init(&dg, stderr);
            _exit(build_spawn(argvs[i], &dg) ? 0 : 1);
        }
    }
    for (int i = 0; i < n; i++) {
        int status;
        assert_int_equal(waitpid(pid[i], &status, 0), pid[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
}

/* Compiles dir/<base>.c into dir/<base>.so for each base, concurrently (one
 * child each, like independent build_compile calls). The compiler is
 * $CC (default cc) behind a wrapper adding -Wall -Wextra -Werror, so every
 * library built here also proves the emitted code compiles without warnings
 * (gcc's optimizers warn too: at -O2 it runs them all). */
static void compile_libs(const char *dir, const char *const *bases, const char *const *opts, int n) {
    char wrapper[4096];
    snprintf(wrapper, sizeof wrapper, "%s/cc-werror", dir);
    FILE *f = fopen(wrapper, "w");
    assert_non_null(f);
    const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "cc";
    fprintf(f, "#!/bin/sh\nexec %s -Wall -Wextra -Werror \"$@\"\n", cc);
    fclose(f);
    assert_int_equal(chmod(wrapper, 0755), 0);
    pid_t pid[16];
    for (int i = 0; i < n; i++) {
        fflush(NULL);
        pid[i] = fork();
        assert_true(pid[i] >= 0);
        if (pid[i] == 0) {
            Diag dg;
            diag_init(&dg, stderr);
            char src[256], lib[256];
            snprintf(src, sizeof src, "%s.c", bases[i]);
            snprintf(lib, sizeof lib, "%s.so", bases[i]);
            const char *srcs[] = {src};
            setenv("CC", wrapper, 1);
            _exit(build_compile(dir, srcs, 1, lib, true, opts[i], &dg) ? 0 : 1);
        }
    }
    for (int i = 0; i < n; i++) {
        int status;
        assert_int_equal(waitpid(pid[i], &status, 0), pid[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
}

/* n elements of t ending exactly at a PROT_NONE page. */
typedef struct Guarded {
    void *p, *map;
    size_t maplen;
} Guarded;

static Guarded guarded(size_t n, DType t) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), bytes = n * dtype_size(t), body = (bytes + pg - 1) / pg * pg;
    Guarded g = {0};
    g.maplen = body + pg;
    g.map = mmap(NULL, g.maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g.map != MAP_FAILED);
    assert_int_equal(mprotect((char *)g.map + body, pg, PROT_NONE), 0);
    g.p = (char *)g.map + body - bytes;
    return g;
}

static double get(const void *p, DType t, size_t i) { return t == DT_F32 ? ((const float *)p)[i] : ((const double *)p)[i]; }
static void set(void *p, DType t, size_t i, double v) {
    if (t == DT_F32) ((float *)p)[i] = (float)v;
    else ((double *)p)[i] = v;
}

static uint64_t g_rng = 88172645463325252ull;
static double uniform(void) { /* xorshift64: [-1, 1) */
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 9007199254740992.0 * 2 - 1;
}

/* One case's operands, its C before the call and the float64 reference. */
typedef struct Run {
    Guarded a, b, c;
    double *c0, *ref, *scale;
} Run;

#define SENTINEL 12345.0 /* C's padding columns */

static Run run_new(const GemmDesc *d) {
    Run r = {guarded(span_a(d), d->dtype), guarded(span_b(d), d->dtype), guarded(span_c(d), d->dtype), NULL, NULL, NULL};
    for (size_t i = 0; i < span_a(d); i++) set(r.a.p, d->dtype, i, uniform());
    for (size_t i = 0; i < span_b(d); i++) set(r.b.p, d->dtype, i, uniform());
    size_t nc = span_c(d) + 1;
    r.c0 = malloc(sizeof(double) * nc), r.ref = malloc(sizeof(double) * nc), r.scale = malloc(sizeof(double) * nc);
    for (size_t i = 0; i < span_c(d); i++)
        r.c0[i] = (int64_t)(i % (size_t)d->ldc) < d->n ? (d->accumulate ? uniform() : 1e30) : SENTINEL;
    for (int64_t i = 0; i < d->m; i++)
        for (int64_t j = 0; j < d->n; j++) {
            double s = d->accumulate ? (double)(d->dtype == DT_F32 ? (float)r.c0[i * d->ldc + j] : r.c0[i * d->ldc + j]) : 0;
            double sc = fabs(s);
            for (int64_t k = 0; k < d->k; k++) {
                double a = get(r.a.p, d->dtype, (size_t)(d->trans_a ? k * d->lda + i : i * d->lda + k));
                double b = get(r.b.p, d->dtype, (size_t)(d->trans_b ? j * d->ldb + k : k * d->ldb + j));
                s += a * b, sc += fabs(a * b);
            }
            r.ref[i * d->ldc + j] = s, r.scale[i * d->ldc + j] = sc;
        }
    return r;
}

static void run_free(Run *r) {
    munmap(r->a.map, r->a.maplen), munmap(r->b.map, r->b.maplen), munmap(r->c.map, r->c.maplen);
    free(r->c0), free(r->ref), free(r->scale);
}

/* Calls kernel i of lib h on r; checks against the reference; returns a copy of C. */
static void *run_case(void *h, int i, const GemmDesc *d, Run *r, const char *what) {
    char fn[16];
    snprintf(fn, sizeof fn, "t%d", i);
    void (*f)(const void *, const void *, void *);
    *(void **)&f = dlsym(h, fn);
    assert_non_null(f);
    size_t n = span_c(d);
    for (size_t j = 0; j < n; j++) set(r->c.p, d->dtype, j, r->c0[j]);
    f(r->a.p, r->b.p, r->c.p);
    double eps = d->dtype == DT_F32 ? 0x1p-24 : 0x1p-53;
    for (size_t j = 0; j < n; j++) {
        double have = get(r->c.p, d->dtype, j);
        bool pad = (int64_t)(j % (size_t)d->ldc) >= d->n;
        double want = pad ? SENTINEL : r->ref[j], tol = pad ? 0 : eps * (double)(d->k + 4) * r->scale[j];
        if (!(fabs(have - want) <= tol)) {
            fprintf(stderr, "%s: %s %lldx%lldx%lld %c%c acc=%d lda=%lld ldb=%lld ldc=%lld: C[%zu] = %.9g, want %.9g\n",
                    what, d->dtype == DT_F32 ? "f32" : "f64", (long long)d->m, (long long)d->n, (long long)d->k,
                    d->trans_a ? 't' : 'n', d->trans_b ? 't' : 'n', d->accumulate, (long long)d->lda,
                    (long long)d->ldb, (long long)d->ldc, j, have, want);
            fail();
        }
    }
    void *copy = malloc(n * dtype_size(d->dtype) + 1);
    memcpy(copy, r->c.p, n * dtype_size(d->dtype));
    return copy;
}

/* The kernel variants to try here: a library spelling plus an ETCH_GEMM_ISA
 * cap. Portable (both spellings) everywhere; AVX2, emulated AVX-512 and real
 * AVX-512 as the CPU allows. */
typedef struct Variant {
    const char *name;
    Source src;
    const char *cap;
} Variant;

static int variants(Variant *v) {
    int n = 0;
    v[n++] = (Variant){"portable", SRC_NATIVE, "portable"};
    v[n++] = (Variant){"plain-c", SRC_ALT, "portable"};
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        v[n++] = (Variant){"avx2", SRC_NATIVE, "avx2"};
        v[n++] = (Variant){"avx512-emulated", SRC_ALT, "any"};
    }
    if (__builtin_cpu_supports("avx512f")) v[n++] = (Variant){"avx512", SRC_NATIVE, "any"};
#endif
    return n;
}

/* Library base names by spelling; the native one is compiled at -O2 as
 * etch does, the other only needs to be right (-O1 compiles faster). */
static const char *const SRC_BASE[] = {"native", "alt"};
static const char *const SRC_OPT[] = {"-O2", "-O1"};

static void test_shapes(void **state) {
    (void)state;
    Diag dg;
    diag_init(&dg, stderr);
    char *dir = build_tempdir(&dg);
    assert_non_null(dir);
    for (int k = 0; k < 2; k++) free(write_lib(dir, SRC_BASE[k], CASES, N_CASES, 1, (Source)k, false));
    compile_libs(dir, SRC_BASE, SRC_OPT, 2);
    Variant v[6];
    int n_v = variants(v);
    for (int c = 0; c < n_v; c++) {
        setenv("ETCH_GEMM_ISA", v[c].cap, 1);
        char lib[64];
        snprintf(lib, sizeof lib, "%s.so", SRC_BASE[v[c].src]);
        void *h = ts_open_copy(dir, lib, v[c].name);
        for (int i = 0; i < N_CASES; i++) {
            GemmDesc d = desc_of(&CASES[i]);
            Run r = run_new(&d);
            free(run_case(h, i, &d, &r, v[c].name));
            run_free(&r);
        }
        dlclose(h);
    }
    unsetenv("ETCH_GEMM_ISA");
    build_rmtree(dir);
    free(dir);
    diag_dispose(&dg);
}

/* Epilogue kernels, 1 and 3 threads, every variant: C as without an
 * epilogue, bit-identical across thread counts, each element visited once. */
static void test_epilogue(void **state) {
    (void)state;
    Diag dg;
    diag_init(&dg, stderr);
    char *dir = build_tempdir(&dg);
    assert_non_null(dir);
    const char *bases[4] = {"native1", "native3", "alt1", "alt3"}, *opts[4] = {"-O2", "-O2", "-O1", "-O1"};
    for (int i = 0; i < 4; i++)
        free(write_lib(dir, bases[i], EPI_CASES, N_EPI, i % 2 ? 3 : 1, i < 2 ? SRC_NATIVE : SRC_ALT, true));
    compile_libs(dir, bases, opts, 4);
    Variant v[6];
    int n_v = variants(v);
    for (int c = 0; c < n_v; c++) {
        setenv("ETCH_GEMM_ISA", v[c].cap, 1);
        void *h[2];
        for (int t = 0; t < 2; t++) {
            char lib[64];
            snprintf(lib, sizeof lib, "%s.so", bases[v[c].src * 2 + t]);
            h[t] = ts_open_copy(dir, lib, v[c].name);
        }
        for (int i = 0; i < N_EPI; i++) {
            GemmDesc d = desc_of(&EPI_CASES[i]);
            Run r = run_new(&d);
            void *out[2];
            for (int t = 0; t < 2; t++) {
                char sym[32];
                snprintf(sym, sizeof sym, "t%d_visits", i);
                int *visits = dlsym(h[t], sym);
                assert_non_null(visits);
                memset(visits, 0, sizeof(int) * span_c(&d));
                out[t] = run_case(h[t], i, &d, &r, v[c].name);
                for (int64_t row = 0; row < d.m; row++)
                    for (int64_t col = 0; col < d.ldc; col++)
                        if (visits[row * d.ldc + col] != (col < d.n ? (i == 0 ? 2 : 1) : 0)) {
                            fprintf(stderr, "%s: epilogue case %d, %d thread(s): element (%lld, %lld) visited %d times\n",
                                    v[c].name, i, t ? 3 : 1, (long long)row, (long long)col, visits[row * d.ldc + col]);
                            fail();
                        }
            }
            assert_memory_equal(out[0], out[1], span_c(&d) * dtype_size(d.dtype));
            free(out[0]), free(out[1]);
            run_free(&r);
        }
        for (int t = 0; t < 2; t++) dlclose(h[t]);
    }
    unsetenv("ETCH_GEMM_ISA");
    build_rmtree(dir);
    free(dir);
    diag_dispose(&dg);
}

/* Counts occurrences of needle in s. */
static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p++) n++;
    return n;
}

/* Thread counts the split kernels are built for: a million must not put a
 * million-entry table on the stack (it did, and crashed): the parts stay
 * bounded by each product's tiles. */
static const int THREADS[] = {1, 2, 3, 1000000};
#define N_THREADS (int)(sizeof THREADS / sizeof THREADS[0])

static void test_threads_bit_identical(void **state) {
    (void)state;
    Diag dg;
    diag_init(&dg, stderr);
    char *dir = build_tempdir(&dg), *src[N_THREADS];
    assert_non_null(dir);
    /* libraries <spelling><threads>: native1, native2, ..., alt1, ... */
    char names[2 * N_THREADS][32];
    const char *bases[2 * N_THREADS], *opts[2 * N_THREADS];
    for (int k = 0; k < 2; k++)
        for (int t = 0; t < N_THREADS; t++) {
            int i = k * N_THREADS + t;
            snprintf(names[i], sizeof names[i], "%s%d", SRC_BASE[k], THREADS[t]);
            bases[i] = names[i], opts[i] = SRC_OPT[k];
            char *text = write_lib(dir, bases[i], SPLIT_CASES, N_SPLIT, THREADS[t], (Source)k, false);
            if (k == SRC_NATIVE) src[t] = text;
            else free(text);
        }
    compile_libs(dir, bases, opts, 2 * N_THREADS);
    /* one thread never touches pthreads; more really split every case */
    assert_null(strstr(src[0], "pthread"));
    assert_int_equal(count(src[1], " 2 parts."), N_SPLIT);
    assert_int_equal(count(src[2], " 3 parts."), N_SPLIT);
    assert_null(strstr(src[3], "1000000"));
    Variant v[6];
    int n_v = variants(v);
    for (int c = 0; c < n_v; c++) {
        setenv("ETCH_GEMM_ISA", v[c].cap, 1);
        void *h[N_THREADS];
        for (int t = 0; t < N_THREADS; t++) {
            char lib[64];
            snprintf(lib, sizeof lib, "%s%d.so", SRC_BASE[v[c].src], THREADS[t]);
            h[t] = ts_open_copy(dir, lib, v[c].name);
        }
        for (int i = 0; i < N_SPLIT; i++) {
            GemmDesc d = desc_of(&SPLIT_CASES[i]);
            Run r = run_new(&d);
            void *one = run_case(h[0], i, &d, &r, v[c].name);
            for (int t = 1; t < N_THREADS; t++) {
                void *many = run_case(h[t], i, &d, &r, v[c].name);
                if (memcmp(one, many, span_c(&d) * dtype_size(d.dtype)) != 0) {
                    fprintf(stderr, "%s: case %d differs between 1 and %d threads\n", v[c].name, i, THREADS[t]);
                    fail();
                }
                free(many);
            }
            free(one);
            run_free(&r);
        }
        for (int t = 0; t < N_THREADS; t++) dlclose(h[t]);
    }
    unsetenv("ETCH_GEMM_ISA");
    for (int t = 0; t < N_THREADS; t++) free(src[t]);
    build_rmtree(dir);
    free(dir);
    diag_dispose(&dg);
}

/* The emitted code compiles without warnings under -Wall -Wextra with clang
 * too (when installed), every spelling, threaded kernels and epilogues included. (Every
 * library the other tests build is compiled with -Werror by $CC.) */
static void test_no_warnings(void **state) {
    (void)state;
    if (access("/usr/bin/clang", X_OK) != 0) skip();
    Diag dg;
    diag_init(&dg, stderr);
    char *dir = build_tempdir(&dg);
    assert_non_null(dir);
    Case all[N_CASES + N_SPLIT];
    memcpy(all, CASES, sizeof CASES);
    memcpy(all + N_CASES, SPLIT_CASES, sizeof SPLIT_CASES);
    free(write_lib(dir, "native", all, N_CASES + N_SPLIT, 3, SRC_NATIVE, false));
    free(write_lib(dir, "alt", all, N_CASES + N_SPLIT, 3, SRC_ALT, false));
    free(write_lib(dir, "epi", EPI_CASES, N_EPI, 3, SRC_NATIVE, true));
    char native[4096], alt[4096], epi[4096];
    snprintf(native, sizeof native, "%s/native.c", dir);
    snprintf(alt, sizeof alt, "%s/alt.c", dir);
    snprintf(epi, sizeof epi, "%s/epi.c", dir);
    const char *c1[] = {"clang", "-std=c11", "-Wall", "-Wextra", "-Werror", "-D_POSIX_C_SOURCE=200809L",
                        "-fsyntax-only", native, NULL};
    const char *c2[] = {"clang", "-std=c11", "-Wall", "-Wextra", "-Werror", "-D_POSIX_C_SOURCE=200809L",
                        "-fsyntax-only", alt, NULL};
    const char *c3[] = {"clang", "-std=c11", "-Wall", "-Wextra", "-Werror", "-D_POSIX_C_SOURCE=200809L",
                        "-fsyntax-only", epi, NULL};
    const char *const *runs[] = {c1, c2, c3};
    spawn_all(runs, 3);
    build_rmtree(dir);
    free(dir);
    diag_dispose(&dg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_threads_bit_identical),
        cmocka_unit_test(test_epilogue),
        cmocka_unit_test(test_no_warnings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
