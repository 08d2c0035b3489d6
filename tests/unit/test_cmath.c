/* test_cmath.c: the float exp, tanh and erf that emitted code inlines
 * (codegen/c/cmath.c) against libm in double, over a dense sweep of their
 * whole useful range plus special points. They are compiled exactly as
 * emitted code is (the prelude text, the default flags, once with AVX2
 * clones and once with ETCH_NO_CLONES), loaded, and must stay within a few
 * float ulps: relative error <= 1e-6 (float's epsilon is 1.2e-7), and for
 * tanh/erf near 0, where values are tiny, the same relative bound. At the
 * edges (NaN, the infinities, overflow, subnormal and zero results) they
 * must give libm's float results, also when compiled with UBSan. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/build.h"
#include "codegen/c/emit.h"

/* The sweep runs inside the compiled library: max relative error of each
 * function against the double reference, written to err[3]. */
static const char SWEEP[] =
    "double etch_test_sweep(double *err);\n"
    "ETCH_CLONES double etch_test_sweep(double *err) {\n"
    "    err[0] = err[1] = err[2] = 0;\n"
    "    double worst_x[3] = {0, 0, 0};\n"
    "    for (int i = -2000000; i <= 2000000; i++) {\n"
    "        float x = (float)i * 4.5e-5f; /* [-90, 90] */\n"
    "        double want[3] = {exp((double)x), tanh((double)x), erf((double)x)};\n"
    "        float have[3] = {etch_expf(x), etch_tanhf(x), etch_erff(x)};\n"
    "        for (int k = 0; k < 3; k++) {\n"
    "            if (k == 0 && (x < -86.0f || x > 88.72f)) continue; /* not normal: etch_test_edges */\n"
    "            double rel = fabs((double)have[k] - want[k]) / fabs(want[k]);\n"
    "            if (want[k] == 0) rel = fabs((double)have[k]);\n"
    "            if (rel > err[k]) err[k] = rel, worst_x[k] = x;\n"
    "        }\n"
    "    }\n"
    "    float tiny[] = {1e-30f, -1e-20f, 1e-7f, -3e-4f, 0.29999f, 0.3f, 0.49999f, 0.5f, 9.0f, 12.0f, -40.0f};\n"
    "    for (unsigned i = 0; i < sizeof tiny / sizeof tiny[0]; i++) {\n"
    "        float x = tiny[i];\n"
    "        double t = fabs((double)etch_tanhf(x) - tanh((double)x)) / fabs(tanh((double)x));\n"
    "        double e = fabs((double)etch_erff(x) - erf((double)x)) / fabs(erf((double)x));\n"
    "        if (t > err[1]) err[1] = t, worst_x[1] = x;\n"
    "        if (e > err[2]) err[2] = e, worst_x[2] = x;\n"
    "    }\n"
    "    if (etch_expf(0) != 1.0f) err[0] = 1;\n"
    "    if (etch_tanhf(0.0f) != 0.0f || etch_erff(0.0f) != 0.0f) err[1] = err[2] = 1;\n"
    "    return worst_x[0] + worst_x[1] + worst_x[2];\n"
    "}\n"
    /* Where libm's float results are not normal numbers: exp overflowing to
     * +inf (past ln FLT_MAX = 88.7228391), subnormal (below -87.336) and 0
     * (below -103.972); NaN and the infinities through exp, tanh, erf and
     * sigmoid's 1/(1 + e^-x) (against libm's expf in the same formula: in
     * float it is 0 below -88.7). Each must be libm's float result, within 1e-6
     * relative or one subnormal step (2^-149). Returns the number of misses,
     * printing the first 20. */
    "int etch_test_edges(void);\n"
    "static int edge_miss(const char *f, float x, float have, double want) {\n"
    "    const float w = (float)want;\n"
    "    if (isnan(w) ? isnan(have) : isinf(w) ? have == w : fabs((double)have - want) <= 1e-6 * fabs(want) + 0x1p-149)\n"
    "        return 0;\n"
    "    static int printed;\n"
    "    if (printed++ < 20) printf(\"%s(%a) = %a, libm %a\\n\", f, (double)x, (double)have, (double)w);\n"
    "    return 1;\n"
    "}\n"
    "ETCH_CLONES int etch_test_edges(void) {\n"
    "    static const float xs[] = {NAN, -NAN, INFINITY, -INFINITY, 88.7228317f, 88.7228394f, 89.0f, 89.5f, 100.0f,\n"
    "        1e30f, 3.4e38f, -86.0f, -87.3f, -87.34f, -88.0f, -95.0f, -103.0f, -103.97f, -103.98f, -104.0f,\n"
    "        -104.5f, -200.0f, -1e30f, -3.4e38f, 1e-40f, -1e-45f, 0x1p-149f, 9.5f, -10.0f, 10.5f, 30.0f, -30.0f};\n"
    "    int miss = 0;\n"
    "    for (unsigned i = 0; i < sizeof xs / sizeof xs[0]; i++) {\n"
    "        const float x = xs[i];\n"
    "        miss += edge_miss(\"exp\", x, etch_expf(x), exp((double)x));\n"
    "        miss += edge_miss(\"tanh\", x, etch_tanhf(x), tanh((double)x));\n"
    "        miss += edge_miss(\"erf\", x, etch_erff(x), erf((double)x));\n"
    "        miss += edge_miss(\"sigmoid\", x, 1.0f / (1.0f + etch_expf(-x)), 1.0f / (1.0f + expf(-x)));\n"
    "    }\n"
    "    for (int i = 0; i <= 200000; i++) { /* [-110, -86] densely: the subnormal range and its ends */\n"
    "        const float x = -86.0f - (float)i * 1.2e-4f;\n"
    "        miss += edge_miss(\"exp\", x, etch_expf(x), exp((double)x));\n"
    "    }\n"
    "    return miss;\n"
    "}\n";

static void check(const char *extra_flags) {
    Diag dg;
    diag_init(&dg, stderr);
    char *dir = build_tempdir(&dg);
    assert_non_null(dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/cmath.c", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "#include <math.h>\n#include <stdint.h>\n#include <stdio.h>\n#include <string.h>\n%s%s", cemit_math_prelude, SWEEP);
    fclose(f);
    char flags[256];
    snprintf(flags, sizeof flags, "%s%s", BUILD_DEFAULT_CFLAGS, extra_flags);
    const char *src[] = {"cmath.c"};
    assert_true(build_compile(dir, src, 1, "libcmath.so", true, flags, &dg));
    snprintf(path, sizeof path, "%s/libcmath.so", dir);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(h);
    double (*sweep)(double *) = (double (*)(double *))dlsym(h, "etch_test_sweep");
    assert_non_null(sweep);
    int (*edges)(void) = (int (*)(void))dlsym(h, "etch_test_edges");
    assert_non_null(edges);
    double err[3];
    sweep(err);
    printf("flags %s: max relative error exp %.3g, tanh %.3g, erf %.3g\n", flags, err[0], err[1], err[2]);
    assert_int_equal(edges(), 0);
    assert_true(err[0] <= 1e-6);
    assert_true(err[1] <= 1e-6);
    assert_true(err[2] <= 1e-6);
    dlclose(h);
    build_rmtree(dir);
    free(dir);
    diag_dispose(&dg);
}

static void test_default(void **state) {
    (void)state;
    check("");
}

static void test_baseline(void **state) {
    (void)state;
    check(" -DETCH_NO_CLONES");
}

/* Undefined behaviour (a shift of a negative number, a NaN converted to an
 * integer) aborts the test: UBSan in the compiled library, float-to-int
 * conversions included. */
static void test_ubsan(void **state) {
    (void)state;
    check(" -DETCH_NO_CLONES -fsanitize=undefined,float-cast-overflow -fno-sanitize-recover=all");
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_default), cmocka_unit_test(test_baseline),
                                       cmocka_unit_test(test_ubsan)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
