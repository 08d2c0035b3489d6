/* test_cmath.c: the float exp, tanh and erf that emitted code inlines
 * (codegen/c/cmath.c) against libm in double, over a dense sweep of their
 * whole useful range plus special points. They are compiled exactly as
 * emitted code is (the prelude text, the default flags, once with AVX2
 * clones and once with ETCH_NO_CLONES), loaded, and must stay within a few
 * float ulps: relative error <= 1e-6 (float's epsilon is 1.2e-7), and for
 * tanh/erf near 0, where values are tiny, the same relative bound. */
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
    "            if (k == 0 && (x < -86.0f || x > 88.72f)) continue; /* clamped by design */\n"
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
    "    if (etch_expf(100.0f) != INFINITY || etch_expf(-1000.0f) > 1e-37f || etch_expf(0) != 1.0f) err[0] = 1;\n"
    "    if (etch_tanhf(0.0f) != 0.0f || etch_erff(0.0f) != 0.0f) err[1] = err[2] = 1;\n"
    "    return worst_x[0] + worst_x[1] + worst_x[2];\n"
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
    fprintf(f, "#include <math.h>\n#include <stdint.h>\n#include <string.h>\n%s%s", cemit_math_prelude, SWEEP);
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
    double err[3];
    sweep(err);
    printf("flags %s: max relative error exp %.3g, tanh %.3g, erf %.3g\n", flags, err[0], err[1], err[2]);
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

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_default), cmocka_unit_test(test_baseline)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
