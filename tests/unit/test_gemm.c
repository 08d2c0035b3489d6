/* test_gemm.c: the emitted matrix-multiply kernels (codegen/c/gemm.c) against
 * a float64 reference. Shapes cover unit dims, primes, sizes off the register
 * tile and cache-block grids, K spanning several slices, the MLP's products
 * and their gradients (transposed operands), padded strides, accumulation
 * and f64; each runs under every instruction-set variant this CPU has
 * (ETCH_GEMM_ISA caps the choice). Operands end against a guard page, so a
 * read or write past the end faults, and C's padding must stay untouched.
 * Kernels built for 2 and 3 threads must give bit-identical results to one
 * thread. Libraries are compiled like test_codegen_ops's: build_compile, dlopen. */
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
#include <unistd.h>

#include "codegen/build.h"
#include "codegen/c/gemm.h"

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
    {F32, 64, 128, 784, 0, 0, 0, 0, 0, 0},  /* direct, columns */
    {F32, 301, 20, 1400, 0, 0, 0, 0, 0, 0}, /* direct, rows, a short last part */
    {F32, 131, 512, 300, 0, 0, 0, 0, 0, 1}, /* blocked, columns */
    {F32, 601, 40, 600, 0, 1, 0, 0, 0, 0},  /* blocked, rows */
    {F32, 200, 150, 400, 1, 1, 0, 0, 0, 0}, /* two K slices */
    {F64, 200, 100, 400, 0, 1, 0, 0, 0, 0},
};
#define N_SPLIT (int)(sizeof SPLIT_CASES / sizeof SPLIT_CASES[0])

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

/* Writes the kernels of cases[] as functions t0.. into dir/gemm.c and
 * compiles it into dir/name (unless name is NULL). */
static void build_lib(const char *dir, const Case *cases, int n, int threads, const char *name, char **source,
                      const char *prologue) {
    StrBuf out = {0}, pre = {0}, file = {0};
    CEmitter e = {.out = &out, .preamble = &pre, .threads = threads, .indent = 1};
    StrBuf fns = {0};
    for (int i = 0; i < n; i++) {
        GemmDesc d = desc_of(&cases[i]);
        const char *T = dtype_c_type(d.dtype);
        char a[64], b[64], c[64];
        snprintf(a, sizeof a, "(const %s *)a", T);
        snprintf(b, sizeof b, "(const %s *)b", T);
        snprintf(c, sizeof c, "(%s *)c", T);
        out.len = 0;
        if (out.s) out.s[0] = 0;
        gemm_emit(&e, &d, a, b, c);
        if (i == 0) gemm_emit(&e, &d, a, b, c); /* twice: defined once, called twice (idempotent unless acc) */
        sb_printf(&fns, "void t%d(const void *a, const void *b, void *c);\n", i);
        sb_printf(&fns, "void t%d(const void *a, const void *b, void *c) {\n    (void)a, (void)b, (void)c;\n%s}\n", i,
                  out.s ? out.s : "");
    }
    sb_printf(&file, "%s#include <stdint.h>\n#include <stdio.h>\n#include <string.h>\n#include <tgmath.h>\n\n%s\n%s",
              prologue, pre.s ? pre.s : "", fns.s);
    char path[4096];
    snprintf(path, sizeof path, "%s/gemm.c", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(file.s, f);
    fclose(f);
    Diag dg;
    diag_init(&dg, stderr);
    const char *src[] = {"gemm.c"};
    if (name) assert_true(build_compile(dir, src, 1, name, true, "-O2", &dg));
    diag_dispose(&dg);
    *source = sb_take(&file);
    sb_free(&out);
    sb_free(&pre);
    sb_free(&fns);
    for (int i = 0; i < e.n_defined; i++) free((void *)e.defined[i]);
    free(e.defined);
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

/* The kernel variants to try here: the portable one in both spellings (GNU C
 * vector extensions; plain C, as for compilers without them), then each SIMD
 * one the CPU runs. A variant is a source prologue plus an ETCH_GEMM_ISA cap. */
typedef struct Variant {
    const char *name, *prologue, *cap;
} Variant;

static int variants(Variant *v) {
    int n = 0;
    v[n++] = (Variant){"portable", "", "portable"};
    v[n++] = (Variant){"plain-c", "#define ETCH_GEMM_PLAIN_C 1\n", "portable"};
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) v[n++] = (Variant){"avx2", "", "avx2"};
    if (__builtin_cpu_supports("avx512f")) v[n++] = (Variant){"avx512", "", "avx512"};
#endif
    return n;
}

/* dlopens a private copy of lib, so its variant choice (made once per load) is fresh. */
static void *open_copy(const char *dir, const char *lib, const char *tag) {
    char src[4096], dst[4096];
    snprintf(src, sizeof src, "%s/%s", dir, lib);
    snprintf(dst, sizeof dst, "%s/%s.%s.so", dir, lib, tag);
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    assert_true(in && out);
    char buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, in)) > 0) assert_int_equal(fwrite(buf, 1, k, out), k);
    fclose(in);
    fclose(out);
    void *h = dlopen(dst, RTLD_NOW | RTLD_LOCAL);
    if (!h) fprintf(stderr, "dlopen: %s\n", dlerror());
    assert_non_null(h);
    return h;
}

static void test_shapes(void **state) {
    (void)state;
    Diag dg;
    diag_init(&dg, stderr);
    char *dir = build_tempdir(&dg), *source, *plain;
    assert_non_null(dir);
    build_lib(dir, CASES, N_CASES, 1, "libgemm.so", &source, "");
    build_lib(dir, CASES, N_CASES, 1, "libplain.so", &plain, "#define ETCH_GEMM_PLAIN_C 1\n");
    Variant v[4];
    int n_v = variants(v);
    for (int c = 0; c < n_v; c++) {
        setenv("ETCH_GEMM_ISA", v[c].cap, 1);
        void *h = open_copy(dir, *v[c].prologue ? "libplain.so" : "libgemm.so", v[c].name);
        for (int i = 0; i < N_CASES; i++) {
            GemmDesc d = desc_of(&CASES[i]);
            Run r = run_new(&d);
            free(run_case(h, i, &d, &r, v[c].name));
            run_free(&r);
        }
        dlclose(h);
    }
    unsetenv("ETCH_GEMM_ISA");
    free(source);
    free(plain);
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

static void test_threads_bit_identical(void **state) {
    (void)state;
    Diag dg;
    diag_init(&dg, stderr);
    char *dir = build_tempdir(&dg), *src[3];
    assert_non_null(dir);
    const char *libs[3] = {"libt1.so", "libt2.so", "libt3.so"}, *plain[3] = {"libp1.so", "libp2.so", "libp3.so"};
    char *psrc[3];
    for (int t = 0; t < 3; t++) {
        build_lib(dir, SPLIT_CASES, N_SPLIT, t + 1, libs[t], &src[t], "");
        build_lib(dir, SPLIT_CASES, N_SPLIT, t + 1, plain[t], &psrc[t], "#define ETCH_GEMM_PLAIN_C 1\n");
        free(psrc[t]);
    }
    /* one thread never touches pthreads; more really split every case */
    assert_null(strstr(src[0], "pthread"));
    assert_int_equal(count(src[1], " 2 parts."), N_SPLIT);
    assert_int_equal(count(src[2], " 3 parts."), N_SPLIT);
    Variant v[4];
    int n_v = variants(v);
    for (int c = 0; c < n_v; c++) {
        setenv("ETCH_GEMM_ISA", v[c].cap, 1);
        void *h[3];
        for (int t = 0; t < 3; t++) h[t] = open_copy(dir, *v[c].prologue ? plain[t] : libs[t], v[c].name);
        for (int i = 0; i < N_SPLIT; i++) {
            GemmDesc d = desc_of(&SPLIT_CASES[i]);
            Run r = run_new(&d);
            void *one = run_case(h[0], i, &d, &r, v[c].name);
            for (int t = 1; t < 3; t++) {
                void *many = run_case(h[t], i, &d, &r, v[c].name);
                if (memcmp(one, many, span_c(&d) * dtype_size(d.dtype)) != 0) {
                    fprintf(stderr, "%s: case %d differs between 1 and %d threads\n", v[c].name, i, t + 1);
                    fail();
                }
                free(many);
            }
            free(one);
            run_free(&r);
        }
        for (int t = 0; t < 3; t++) dlclose(h[t]);
    }
    unsetenv("ETCH_GEMM_ISA");
    for (int t = 0; t < 3; t++) free(src[t]);
    build_rmtree(dir);
    free(dir);
    diag_dispose(&dg);
}

/* The emitted code compiles without warnings under -Wall -Wextra with gcc and
 * clang (when installed), threaded kernels included. */
static void test_no_warnings(void **state) {
    (void)state;
    Diag dg;
    diag_init(&dg, stderr);
    char *dir = build_tempdir(&dg), *source;
    assert_non_null(dir);
    Case all[N_CASES + N_SPLIT];
    memcpy(all, CASES, sizeof CASES);
    memcpy(all + N_CASES, SPLIT_CASES, sizeof SPLIT_CASES);
    build_lib(dir, all, N_CASES + N_SPLIT, 3, NULL, &source, "");
    char path[4096];
    snprintf(path, sizeof path, "%s/gemm.c", dir);
    /* gcc's optimizers warn too (loop bounds, uninitialized values): compile for real */
    const char *gcc[] = {"gcc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-D_POSIX_C_SOURCE=200809L",
                         "-c", "-o", "/dev/null", path, NULL};
    assert_true(build_spawn(gcc, &dg));
    const char *clang[] = {"clang", "-std=c11", "-Wall", "-Wextra", "-Werror", "-D_POSIX_C_SOURCE=200809L",
                           "-fsyntax-only", path, NULL};
    if (access("/usr/bin/clang", X_OK) == 0) assert_true(build_spawn(clang, &dg));
    const char *plain[] = {"gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-D_POSIX_C_SOURCE=200809L",
                           "-DETCH_GEMM_PLAIN_C", "-fsyntax-only", path, NULL};
    assert_true(build_spawn(plain, &dg));
    free(source);
    build_rmtree(dir);
    free(dir);
    diag_dispose(&dg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_threads_bit_identical),
        cmocka_unit_test(test_no_warnings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
