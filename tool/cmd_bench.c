/* cmd_bench.c: `etch bench FILE`: static vs dynamic, measured in one process.
 *
 * Runs the same model on the same weights and inputs two ways: the eager
 * executor (op by op, allocating every result as a dynamic framework does)
 * and the compiled C (loaded as a shared library), for inference and, when
 * the file has a train block, for one training step (one row per named
 * step: a GAN's d and g). With --quantize int8 --calib S (and --weights W,
 * the weights S was calibrated on; without it the initializers) a row times
 * the int8 forward (the quantize pass, docs/quantization.md) on the same
 * inputs, and a last line gives its speed over the fp32 -O2 forward. Prints the median time
 * per call over repeats, kernels launched, bytes of intermediates allocated
 * per call, peak memory of intermediates, and the speedup over eager. The
 * numbers are ratios from one run on one machine: see bench/ for scripts.
 * With --target cuda a row times the cuda backend's build (nvcc; with
 * --host-emulate its kernels on the CPU, which says nothing of GPU speed but
 * runs the same code path: bench/cuda_check.sh times the GPU). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codegen/build.h"
#include "tool/commands.h"
#include "tool/pipeline.h"
#include "ir/eager.h"
#include "ir/params.h"

typedef struct BenchRow {
    const char *what, *mode;
    double median_us;
    int64_t kernels, alloc_bytes, peak_bytes;
    int base; /* the row its "vs eager" divides: its entry's eager row */
} BenchRow;

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Calls fn(ctx) until about budget_us has passed (at least 5, at most 2000
 * times, after 2 warm-up calls) and returns the median time of one call. */
static double time_median(void (*fn)(void *), void *ctx, double budget_us) {
    enum { MAX_REPS = 2000 };
    static double t[MAX_REPS];
    fn(ctx);
    fn(ctx);
    int n = 0;
    double start = now_us();
    while (n < MAX_REPS && (n < 5 || now_us() - start < budget_us)) {
        double t0 = now_us();
        fn(ctx);
        t[n++] = now_us() - t0;
    }
    qsort(t, (size_t)n, sizeof t[0], cmp_double);
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

typedef struct EagerCtx {
    const Graph *g;
    Tensor **ins, **params;
    EagerStats stats;
} EagerCtx;

static void eager_call(void *p) {
    EagerCtx *c = p;
    Tensor **outs = calloc((size_t)c->g->n_outputs + 1, sizeof *outs);
    if (!outs) abort();
    eager_run(c->g, c->ins, c->params, outs, &c->stats, NULL);
    for (int i = 0; i < c->g->n_outputs; i++) tensor_free(outs[i]);
    free(outs);
}

typedef struct CompiledCtx {
    CompiledFn fn;
    const void **in; /* one per graph input */
    void **out;      /* one per graph output */
} CompiledCtx;

static void compiled_call(void *p) {
    CompiledCtx *c = p;
    c->fn(c->in, c->out);
}

typedef struct JitCtx {
    JitForward *jf;
    const CompiledCtx *io;
} JitCtx;

static void jit_call(void *p) {
    JitCtx *c = p;
    c->jf->fn((void *const *)c->io->in, c->io->out, c->jf->params, c->jf->arena);
}

/* Seeded inputs: floats uniform [0, 1), integers uniform class ids. */
static Tensor **bench_inputs(const Graph *g, int64_t classes) {
    Tensor **ins = calloc((size_t)g->n_inputs + 1, sizeof *ins);
    for (int i = 0; i < g->n_inputs; i++) {
        const Node *n = &g->nodes[g->inputs[i]];
        ins[i] = tensor_new(n->dtype, n->shape);
        uint32_t r[4];
        for (int64_t k = 0; k < tensor_numel(ins[i]); k++) {
            etch_philox4x32(11 + (uint64_t)i, 0, (uint64_t)k, r);
            tensor_set(ins[i], k, dtype_is_float(n->dtype) ? etch_u01(r[0]) : (double)(r[0] % (uint32_t)classes));
        }
    }
    return ins;
}

static void free_tensors(Tensor **t, int n) {
    for (int i = 0; i < n; i++) tensor_free(t[i]);
    free(t);
}

static void fmt_bytes(char *buf, size_t n, int64_t b) {
    if (b < 1024) snprintf(buf, n, "%lld B", (long long)b);
    else if (b < 1024 * 1024) snprintf(buf, n, "%.1f KiB", b / 1024.0);
    else snprintf(buf, n, "%.2f MiB", b / 1048576.0);
}

/* One compiled variant: the model built at an optimization level and loaded. */
typedef struct Variant {
    int level;
    void *lib;
    CGenStats *stats; /* per entry, from the optimized graphs */
} Variant;

/* Builds variant v with the C backend, or with the cuda backend when
 * `cuda` (--target cuda: nvcc, or with --host-emulate its kernels for the CPU). */
static bool build_variant(Program *p, CGenEntry *entries, int n, const Options *o, const char *dir, const char *wpath,
                          const char *prefix, bool cuda, Variant *v, Diag *d) {
    Options bo = *o;
    bo.embed = false;
    bo.stats = false;
    bo.host_emulate = cuda && o->host_emulate;
    bo.backend = cuda ? "cuda" : NULL; /* the C backend's builds; --backend llvm adds a row of its own */
    bo.opt_level = v->level;
    const Backend *backend = selected_backend(&bo, d);
    if (!backend) return false;
    for (int k = 0; k < n; k++) {
        Graph *g = optimize_graph(entries[k].g, &bo, entries[k].g->arena, d);
        if (!g) return false;
        CGenEntry one = {g, entries[k].name};
        char *src = backend->model_source(&one, 1, &(CGenOptions){.prefix = prefix}, &v->stats[k], d);
        if (!src) return false;
        free(src);
    }
    return emit_and_compile(p, entries, n, NULL, &bo, dir, CGEN_DRIVER_NONE, NULL, d) &&
           (v->lib = compiled_open(dir, prefix, wpath, d)) != NULL;
}

/* The int8 forward: p's params (--weights, or the initializers) through the
 * quantize pass with --calib's ranges, built at v's level into dir/int8 and
 * loaded with its quantized weights. */
static bool build_int8(const Program *p, const Options *o, const char *dir, const char *prefix, Variant *v, Diag *d) {
    Program q = *p;
    Tensor **params = load_params(&q, o, d); /* replaces q.forward by the quantized graph */
    char wq[4096 + 32], vdir[4096 + 16];
    snprintf(wq, sizeof wq, "%s/int8.safetensors", dir);
    snprintf(vdir, sizeof vdir, "%s/int8", dir);
    CGenEntry e = {q.forward, "forward"};
    bool ok = params && params_save(q.forward, params, wq, d) && build_variant(&q, &e, 1, o, vdir, wq, prefix, false, v, d);
    if (params) params_free(q.forward, params);
    return ok;
}

int cmd_bench(const Options *o) {
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = load_program(a, o, &d);
    bool ok = p != NULL;
    /* the forward, then each training step */
    int n_entries = 1;
    CGenEntry *entries = ok && p->train ? training_entries(p, a, &n_entries, &d) : arena_alloc(a, sizeof *entries);
    if (ok && !p->train) entries[0] = (CGenEntry){p->forward, "forward"};
    ok = ok && entries;
    const char **labels = arena_alloc(a, sizeof *labels * (size_t)n_entries);
    labels[0] = "inference";
    for (int k = 1; ok && k < n_entries; k++) {
        const char *name = p->train->steps[k - 1].name;
        labels[k] = name ? arena_printf(a, "train step %s", name) : "train step";
    }
    const Graph *step = n_entries > 1 ? entries[1].g : NULL;
    char *dir = ok ? build_tempdir(&d) : NULL;
    ok = dir != NULL;
    int threads = o->threads > 0 ? o->threads : 1;
    eager_set_threads(threads);
    /* -O0, -O2 (or the -O given), with --quantize the int8 forward at that
     * level, and with --target cuda every entry built by the cuda backend */
    int level = o->opt_given ? o->opt_level : 2;
    Variant vars[4] = {{.level = 0}, {.level = level}, {.level = level}, {.level = level}};
    for (int v = 0; v < 4; v++) vars[v].stats = arena_alloc(a, sizeof(CGenStats) * (size_t)n_entries);
    bool cuda = o->backend && !strcmp(o->backend, "cuda");
    char prefix[64], wpath[4096], vdir[4096 + 8];
    double c_compile_us = 0, llvm_compile_us = -1; /* --backend llvm: the JIT's row and compile time */
    bool llvm = o->backend && !strcmp(o->backend, "llvm");
    if (ok && llvm) ok = selected_backend(o, &d) != NULL;
    Tensor **params = NULL;
    if (ok) {
        model_prefix(p->model_name, prefix, sizeof prefix);
        snprintf(wpath, sizeof wpath, "%s/w.safetensors", dir);
        params = params_init(step ? step : p->forward, o->seed);
        ok = params_save(step ? step : p->forward, params, wpath, &d);
        for (int v = 0; ok && v < 2; v++) {
            snprintf(vdir, sizeof vdir, "%s/O%d", dir, vars[v].level);
            double t0 = now_us();
            ok = build_variant(p, entries, n_entries, o, vdir, wpath, prefix, false, &vars[v], &d);
            c_compile_us = now_us() - t0; /* of the last variant: -O2 */
        }
        if (ok && o->quantize) ok = build_int8(p, o, dir, prefix, &vars[2], &d);
        snprintf(vdir, sizeof vdir, "%s/cuda", dir);
        if (ok && cuda) ok = build_variant(p, entries, n_entries, o, vdir, wpath, prefix, true, &vars[3], &d);
    }
    BenchRow *rows = arena_alloc(a, sizeof *rows * (size_t)(4 * n_entries + 2));
    int int8_row = -1, fp32_row = -1;
    int n_rows = 0;
    for (int k = 0; ok && k < n_entries; k++) {
        const Graph *g = entries[k].g;
        const Node *fo = &p->forward->nodes[p->forward->outputs[0]];
        int64_t classes = fo->shape.rank ? fo->shape.dim[fo->shape.rank - 1] : 2;
        Tensor **ins = bench_inputs(g, classes);
        /* eager: this graph's params, the values the compiled code loaded (params_init derives each
         * from its name and the seed; another step's optimizer state starts at its zeros in both) */
        Tensor **gp = params_init(g, o->seed);
        EagerCtx ec = {.g = g, .ins = ins, .params = gp};
        double te = time_median(eager_call, &ec, 1e6);
        const char *what = labels[k];
        int base = n_rows;
        rows[n_rows++] = (BenchRow){what, "eager", te, ec.stats.kernels, ec.stats.bytes_allocated, ec.stats.peak_bytes, base};
        Tensor **outs = calloc((size_t)g->n_outputs + 1, sizeof *outs);
        CompiledCtx cc = {.in = calloc((size_t)g->n_inputs + 1, sizeof *cc.in),
                          .out = calloc((size_t)g->n_outputs + 1, sizeof *cc.out)};
        if (!outs || !cc.in || !cc.out) abort();
        for (int i = 0; i < g->n_inputs; i++) cc.in[i] = ins[i]->data;
        for (int i = 0; i < g->n_outputs; i++) {
            outs[i] = tensor_new(g->nodes[g->outputs[i]].dtype, g->nodes[g->outputs[i]].shape);
            cc.out[i] = outs[i]->data;
        }
        for (int v = 0; ok && v < (k == 0 && o->quantize ? 3 : 2); v++) {
            if (!(cc.fn = compiled_entry(vars[v].lib, prefix, entries[k].name, &d))) {
                ok = false;
                break;
            }
            double tc = time_median(compiled_call, &cc, 1e6);
            if (v == 2) int8_row = n_rows;
            else if (k == 0) fp32_row = n_rows;
            rows[n_rows++] = (BenchRow){what, v == 2 ? (vars[v].level == 1 ? "int8 -O1" : "int8 -O2")
                                        : vars[v].level ? (vars[v].level == 1 ? "-O1" : "-O2") : "-O0", tc,
                                        vars[v].stats[k].kernels, 0, vars[v].stats[k].arena_bytes, base};
        }
        if (ok && cuda) { /* the cuda build (on the CPU with --host-emulate: its kernels emulated) */
            if (!(cc.fn = compiled_entry(vars[3].lib, prefix, entries[k].name, &d))) ok = false;
            else
                rows[n_rows++] = (BenchRow){what, o->host_emulate ? "cuda-emu" : "cuda", time_median(compiled_call, &cc, 1e6),
                                            vars[3].stats[k].kernels, 0, vars[3].stats[k].arena_bytes, base};
        }
        JitForward jf;
        double t0 = now_us();
        if (ok && k == 0 && llvm && (ok = jit_forward_open(&jf, p, gp, o, &d))) { /* the forward, JIT-compiled */
            llvm_compile_us = now_us() - t0;
            JitCtx jc = {&jf, &cc};
            double tj = time_median(jit_call, &jc, 1e6);
            rows[n_rows++] = (BenchRow){what, "llvm", tj, jf.kernels, 0, jf.arena_bytes, base};
            jit_forward_close(&jf);
        }
        free(cc.in);
        free(cc.out);
        free_tensors(outs, g->n_outputs);
        free_tensors(ins, g->n_inputs);
        free_tensors(gp, g->n_params);
    }
    if (ok) {
        const Node *x = p->forward->n_inputs ? &p->forward->nodes[p->forward->inputs[0]] : NULL;
        char ty[96] = "none";
        if (x) type_format(ty, sizeof ty, x->dtype, &x->shape);
        printf("%s: model %s, input %s, %d thread%s\n", o->file, p->model_name, ty, threads, threads == 1 ? "" : "s");
        int width = 11;
        for (int k = 0; k < n_entries; k++) width = (int)strlen(labels[k]) > width ? (int)strlen(labels[k]) : width;
        printf("%-*s %-9s %14s %9s %16s %16s %9s\n", width, "", "mode", "median/call", "kernels", "allocated/call",
               "peak interm.", "vs eager");
        for (int i = 0; i < n_rows; i++) {
            char al[32], pk[32];
            fmt_bytes(al, sizeof al, rows[i].alloc_bytes);
            fmt_bytes(pk, sizeof pk, rows[i].peak_bytes);
            double base = rows[rows[i].base].median_us;
            printf("%-*s %-9s %11.1f us %9lld %16s %16s %8.2fx\n", width, rows[i].what, rows[i].mode, rows[i].median_us,
                   (long long)rows[i].kernels, al, pk, base / rows[i].median_us);
        }
        if (llvm_compile_us >= 0)
            printf("compile: -O2 %.0f ms (emit C, cc, load; every entry), llvm %.0f ms (the forward, in process)\n",
                   c_compile_us / 1e3, llvm_compile_us / 1e3);
        if (int8_row >= 0)
            printf("int8 forward: %.2fx the speed of the fp32 %s forward\n",
                   rows[fp32_row].median_us / rows[int8_row].median_us, rows[fp32_row].mode);
    }
    for (int v = 0; v < 4; v++)
        compiled_close(vars[v].lib, prefix);
    if (dir) build_rmtree(dir);
    free(dir);
    if (params) params_free(step ? step : p->forward, params);
    diag_dispose(&d);
    arena_free(a);
    return ok ? 0 : 1;
}
