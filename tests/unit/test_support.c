/* test_support.c: the shared unit-test helpers declared in test_support.h
 * (shape builder, op adder, random inputs, the eager-vs-emitted-C harness and
 * the finite-difference gradient check). Linked into every unit test. */
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
#include "codegen/c/emit_c.h"
#include "ir/eager.h"
#include "ir/params.h"
#include "passes/pass.h"
#include "passes/transforms/autodiff.h"
#include "passes/transforms/train.h"
#include "runtime/etch_rt.h"
#include "unit/test_support.h"

#define TS_MAX_IO 64

Shape S(int rank, ...) {
    Shape s = {.rank = rank};
    va_list ap;
    va_start(ap, rank);
    for (int i = 0; i < rank; i++) s.dim[i] = va_arg(ap, int);
    va_end(ap);
    return s;
}

int ts_add(SrcLoc loc, Graph *g, OpKind op, int n, const int *ins, const NodeAttrs *at) {
    Diag d;
    diag_init(&d, stderr);
    int id = graph_add_op(g, op, ins, n, at, loc, &d);
    diag_dispose(&d);
    assert_true(id >= 0);
    return id;
}

void ts_expect_error(Graph *g, OpKind op, const int *ins, int n, const NodeAttrs *at, const char *want) {
    Diag d;
    diag_init(&d, NULL);
    assert_int_equal(graph_add_op(g, op, ins, n, at, (SrcLoc){"m.etch", 7, 19}, &d), -1);
    assert_non_null(d.text);
    if (!strstr(d.text, want)) fprintf(stderr, "got: %s\nwant: %s\n", d.text, want);
    assert_non_null(strstr(d.text, want));
    assert_non_null(strstr(d.text, "m.etch:7:19: error: "));
    diag_dispose(&d);
}

Tensor *ts_random_tensor(DType t, Shape s, uint64_t seed, double lo, double hi) {
    Tensor *x = tensor_new(t, s);
    uint32_t r[4];
    for (int64_t i = 0; i < tensor_numel(x); i++) {
        etch_philox4x32(seed, 7, (uint64_t)i, r);
        double u = etch_u01(r[0]);
        tensor_set(x, i, t == DT_BOOL ? (u < 0.5) : dtype_is_float(t) ? lo + (hi - lo) * u : floor(u * 10));
    }
    return x;
}

void ts_check_graph(Graph *g, const TsTol *tol) { ts_check_graph_with(g, NULL, NULL, tol); }

/* etch_rt.c is the same text for every model (codegen embeds it), so a test
 * process compiles it once, as a shared library in its own temporary folder
 * (removed at exit), and links each model against it by absolute path: one
 * compiler run per model instead of two. */
extern const char etch_rt_h_source[], etch_rt_c_source[];
static char ts_rt_dir[4096], ts_rt_lib[4200];

static void ts_remove_runtime(void) { build_rmtree(ts_rt_dir); }

static bool ts_write_file(const char *dir, const char *name, const char *text) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

static const char *ts_runtime_library(Diag *d) {
    if (ts_rt_lib[0]) return ts_rt_lib;
    char *dir = build_tempdir(d);
    assert_non_null(dir);
    snprintf(ts_rt_dir, sizeof ts_rt_dir, "%s", dir);
    free(dir);
    atexit(ts_remove_runtime);
    assert_true(ts_write_file(ts_rt_dir, "etch_rt.h", etch_rt_h_source));
    assert_true(ts_write_file(ts_rt_dir, "etch_rt.c", etch_rt_c_source));
    const char *src[] = {"etch_rt.c"};
    assert_true(build_compile(ts_rt_dir, src, 1, "libetch_rt.so", true, "-O1", d));
    snprintf(ts_rt_lib, sizeof ts_rt_lib, "%s/libetch_rt.so", ts_rt_dir);
    return ts_rt_lib;
}

void *ts_load_model(const char *dir, const char *lib, const char *flags) {
    return ts_load_model_source(dir, "model.c", lib, flags);
}

void *ts_load_model_source(const char *dir, const char *source, const char *lib, const char *flags) {
    Diag d;
    diag_init(&d, stderr);
    const char *src[] = {source};
    assert_true(build_compile_libs(dir, src, 1, lib, true, flags, ts_runtime_library(&d), &d));
    diag_dispose(&d);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, lib);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) fprintf(stderr, "dlopen: %s\n", dlerror());
    assert_non_null(h);
    return h;
}

void *ts_open_copy(const char *dir, const char *lib, const char *tag) {
    char src[4200], dst[4300];
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

void ts_compare_outputs(const Graph *g, const char *label, Tensor *const *want, Tensor *const *got, const TsTol *tol) {
    for (int i = 0; i < g->n_outputs; i++) {
        if (tol->exact) assert_memory_equal(got[i]->data, want[i]->data, tensor_nbytes(want[i]));
        double scale = 0;
        if (tol->scaled)
            for (int64_t k = 0; k < tensor_numel(want[i]); k++) scale = fmax(scale, fabs(tensor_get(want[i], k)));
        for (int64_t k = 0; k < tensor_numel(got[i]); k++) {
            double w = tensor_get(want[i], k), have = tensor_get(got[i], k);
            bool ok = fabs(w - have) <= tol->rel * (fabs(w) + scale) + tol->abs;
            if (tol->eq_ok && w == have) ok = true;
            if (tol->nan_ok && isnan(w) && isnan(have)) ok = true;
            if (!ok) {
                fprintf(stderr, "%s %s output %d element %lld: eager %.9g, compiled %.9g\n", g->name, label, i,
                        (long long)k, w, have);
                fail();
            }
        }
    }
}

void ts_check_graph_with(Graph *g, Tensor *const *inputs, Tensor *const *param_values, const TsTol *tol) {
    Diag d;
    diag_init(&d, stderr);
    assert_true(ir_verify(g, &d));
    assert_true(g->n_inputs <= TS_MAX_IO && g->n_outputs <= TS_MAX_IO);
    Tensor *ins[TS_MAX_IO] = {0}, *outs[TS_MAX_IO] = {0};
    for (int i = 0; i < g->n_inputs; i++) {
        const Node *n = &g->nodes[g->inputs[i]];
        ins[i] = ts_random_tensor(n->dtype, n->shape, 100 + (uint64_t)i, tol->lo, tol->hi);
        if (inputs) memcpy(ins[i]->data, inputs[i]->data, tensor_nbytes(ins[i]));
    }
    Tensor **params = params_init(g, 0);
    for (int i = 0; param_values && i < g->n_params; i++)
        memcpy(params[i]->data, param_values[i]->data, tensor_nbytes(params[i]));
    assert_true(eager_run(g, ins, params, outs, NULL, &d));

    /* -O0: the graph as built, every intermediate in its own buffer; -O2: the
     * pass pipeline (simplify, cse, dce, fuse); both end with the memory plan */
    for (int level = 0; level <= 2; level += 2) {
        Graph *cg = ts_optimize(g, level);
        char *dir = build_tempdir(&d);
        assert_non_null(dir);
        CGenOptions o = {.prefix = "m", .embed_weights = true, .param_values = params};
        CGenEntry entry = {cg, "forward"};
        assert_true(cgen_write(&entry, 1, &o, dir, NULL, &d));
        void *h = ts_load_model(dir, "libm_test.so", "-O1");
        void (*fwd)(const void *const *, void *const *);
        *(void **)&fwd = dlsym(h, "m_forward_v");
        assert_non_null(fwd);
        const void *in_ptr[TS_MAX_IO];
        void *out_ptr[TS_MAX_IO];
        Tensor *got[TS_MAX_IO];
        for (int i = 0; i < g->n_inputs; i++) in_ptr[i] = ins[i]->data;
        for (int i = 0; i < g->n_outputs; i++) {
            got[i] = tensor_new(outs[i]->dtype, outs[i]->shape);
            out_ptr[i] = got[i]->data;
        }
        fwd(in_ptr, out_ptr);
        char label[8];
        snprintf(label, sizeof label, "-O%d", level);
        ts_compare_outputs(g, label, outs, got, tol);
        for (int i = 0; i < g->n_outputs; i++) tensor_free(got[i]);
        dlclose(h);
        build_rmtree(dir);
        free(dir);
    }
    ts_llvm_check(g, ins, params, outs, tol); /* when ts_check_llvm_too asked for it */
    ts_cuda_check(g, ins, params, outs, tol); /* when ts_check_cuda_too asked for it */
    for (int i = 0; i < g->n_inputs; i++) tensor_free(ins[i]);
    for (int i = 0; i < g->n_outputs; i++) tensor_free(outs[i]);
    params_free(g, params);
    diag_dispose(&d);
}

static double loss_value(const Graph *g, Tensor *const *params, Tensor *r) {
    Tensor *out[TS_MAX_IO] = {0};
    Diag d;
    diag_init(&d, stderr);
    assert_true(eager_run(g, (Tensor *[]){r}, params, out, NULL, &d));
    double v = tensor_get(out[0], 0);
    for (int i = 0; i < g->n_outputs; i++) tensor_free(out[i]);
    diag_dispose(&d);
    return v;
}

void ts_check_grad(Graph *g, int f, double tol, double rel_h, uint64_t r_stream, SrcLoc loc) {
    const Node *fn = &g->nodes[f];
    int r = graph_add_input(g, "R", DT_F64, fn->shape, loc);
    int fr = f;
    if (fn->dtype != DT_F64) fr = ts_add(loc, g, OP_CAST, 1, (int[]){f}, &(NodeAttrs){.dtype = DT_F64});
    int prod = ts_add(loc, g, OP_MUL, 2, (int[]){fr, r}, NULL);
    NodeAttrs all = {.n_axes = g->nodes[prod].shape.rank};
    for (int i = 0; i < all.n_axes; i++) all.axes[i] = i;
    int loss = ts_add(loc, g, OP_REDUCE_SUM, 1, (int[]){prod}, &all);
    graph_add_output(g, loss);
    assert_true(g->n_params < TS_MAX_IO);
    int grads[TS_MAX_IO];
    Diag d;
    diag_init(&d, stderr);
    assert_true(autodiff(g, loss, g->params, g->n_params, grads, &d));
    for (int i = 0; i < g->n_params; i++) graph_add_output(g, grads[i]);
    assert_true(ir_verify(g, &d));

    Tensor **params = params_init(g, 42);
    Tensor *rt = tensor_new(DT_F64, g->nodes[r].shape);
    uint32_t bits[4];
    for (int64_t i = 0; i < tensor_numel(rt); i++) {
        etch_philox4x32(9, r_stream, (uint64_t)i, bits);
        tensor_set(rt, i, -1 + 2 * etch_u01(bits[0]));
    }
    Tensor *out[TS_MAX_IO] = {0};
    assert_true(eager_run(g, (Tensor *[]){rt}, params, out, NULL, &d));
    for (int p = 0; p < g->n_params; p++) {
        Tensor *w = params[p];
        for (int64_t k = 0; k < tensor_numel(w); k++) {
            double orig = tensor_get(w, k), h = rel_h * fmax(1.0, fabs(orig));
            tensor_set(w, k, orig + h);
            double lp = loss_value(g, params, rt);
            tensor_set(w, k, orig - h);
            double lm = loss_value(g, params, rt);
            tensor_set(w, k, orig);
            double num = (lp - lm) / (2 * h), ana = tensor_get(out[1 + p], k);
            if (!(fabs(num - ana) / fmax(1.0, fabs(num)) <= tol)) {
                fprintf(stderr, "%s: d/d%s[%lld]: autodiff %.10g, finite difference %.10g\n", g->name,
                        g->nodes[g->params[p]].attr.name, (long long)k, ana, num);
                fail();
            }
        }
    }
    for (int i = 0; i < g->n_outputs; i++) tensor_free(out[i]);
    tensor_free(rt);
    params_free(g, params);
    diag_dispose(&d);
}

Program *ts_compile(Arena *a, const char *path, const char *src) {
    Diag d;
    diag_init(&d, stderr);
    Program *p = frontend_compile_source(a, path, src, NULL, 0, &d);
    diag_dispose(&d);
    assert_non_null(p);
    return p;
}

Tensor *ts_run_at_step(const Graph *g, double step) {
    Tensor *s = tensor_new(DT_F64, S(0)), *out[1];
    tensor_set(s, 0, step);
    Diag d;
    diag_init(&d, stderr);
    assert_true(eager_run(g, (Tensor *[]){s}, NULL, out, NULL, &d));
    diag_dispose(&d);
    tensor_free(s);
    return out[0];
}

const char *ts_source_dir(void) {
    const char *s = getenv("ETCH_SOURCE_DIR");
    if (s) return s;
    static char dir[4096];
    snprintf(dir, sizeof dir, "%s", __FILE__); /* .../tests/unit/test_support.c */
    char *t = strstr(dir, "/tests/unit/");
    if (t) *t = 0;
    return dir;
}

uint32_t ts_crc32(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return ~c;
}

Graph *ts_optimize(Graph *g, int level) {
    Diag d;
    diag_init(&d, stderr);
    PassOptions po = {.opt_level = level, .target = backend_c.target, .verify = true};
    Graph *h = passes_run(graph_clone(g->arena, g, NULL), &po, &d);
    assert_non_null(h);
    diag_dispose(&d);
    return h;
}

void ts_build_train_step(Graph *g, const OptimSpec *spec) {
    Diag d;
    diag_init(&d, stderr);
    assert_true(train_build_step(g, spec, &d));
    assert_true(ir_verify(g, &d));
    diag_dispose(&d);
}

void ts_check_isas(Graph *g, Tensor *const *in, Tensor *const *pv, Tensor *const *want, int threads, const char *who) {
    const char *caps[3] = {"portable", NULL, NULL};
    int n_caps = 1;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) caps[n_caps++] = "avx2";
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni"))
        caps[n_caps++] = "any"; /* the best: VNNI */
    else
        fprintf(stderr, "%s: no AVX-512 VNNI here, its variant is not run\n", who);
#endif
    Diag d;
    diag_init(&d, stderr);
    char *dir = build_tempdir(&d);
    assert_non_null(dir);
    CGenOptions o = {.prefix = "m", .embed_weights = true, .param_values = pv, .threads = threads};
    CGenEntry entry = {ts_optimize(g, 2), "forward"};
    assert_true(cgen_write(&entry, 1, &o, dir, NULL, &d));
    dlclose(ts_load_model(dir, "libq.so", "-O1"));
    const void **in_ptr = calloc((size_t)g->n_inputs + 1, sizeof *in_ptr);
    void **out_ptr = calloc((size_t)g->n_outputs + 1, sizeof *out_ptr);
    Tensor **got = calloc((size_t)g->n_outputs + 1, sizeof *got);
    assert_true(in_ptr && out_ptr && got);
    for (int i = 0; i < g->n_inputs; i++) in_ptr[i] = in[i]->data;
    for (int c = 0; c < n_caps; c++) {
        setenv("ETCH_GEMM_ISA", caps[c], 1);
        void *h = ts_open_copy(dir, "libq.so", caps[c]);
        void (*fwd)(const void *const *, void *const *);
        *(void **)&fwd = dlsym(h, "m_forward_v");
        assert_non_null(fwd);
        for (int i = 0; i < g->n_outputs; i++) {
            got[i] = tensor_new(want[i]->dtype, want[i]->shape);
            out_ptr[i] = got[i]->data;
        }
        fwd(in_ptr, out_ptr);
        for (int i = 0; i < g->n_outputs; i++) {
            if (memcmp(got[i]->data, want[i]->data, tensor_nbytes(want[i])))
                fail_msg("%s: output %d differs from eager with ETCH_GEMM_ISA=%s", who, i, caps[c]);
            tensor_free(got[i]);
        }
        dlclose(h);
    }
    unsetenv("ETCH_GEMM_ISA");
    free(in_ptr), free(out_ptr), free(got);
    build_rmtree(dir);
    free(dir);
    diag_dispose(&d);
}
