/* cuda_check.c: the CUDA backend's half of ts_check_graph (test_support.h,
 * issue 12): after the C backend, a graph is emitted by the CUDA backend
 * (its own target, -O2), model.cu is compiled for the CPU (model_host.c:
 * the same kernels, each block's threads run phase by phase between
 * barriers, runtime/cuda/etch_cuda.h) into a shared library, and its
 * outputs are compared with the eager executor's under the same tolerance.
 * Graphs holding an op the CUDA table marks unsupported are skipped;
 * ts_cuda_coverage prints those ops and asserts they are exactly the
 * unsupported ones among the ops seen, so an op that gets an emitter is
 * compared from then on. No GPU and no nvcc are needed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codegen/build.h"
#include "codegen/cuda/emit_cuda.h"
#include "passes/pass.h"
#include "runtime/etch_rt.h"
#include "unit/test_support.h"

static bool enabled;
static bool seen[OP_COUNT], ran[OP_COUNT];
static int graphs_run;
static double seconds;

void ts_check_cuda_too(void) { enabled = true; }

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Marks the ops of g and of its loop bodies in mark; true when the cuda
 * backend supports them all. */
static bool note_ops(const Graph *g, bool *mark) {
    bool supported = true;
    for (int id = 0; id < g->n_nodes; id++) {
        mark[g->nodes[id].op] = true;
        supported = backend_cuda_emulated.op_supported(g->nodes[id].op) && supported;
        if (g->nodes[id].attr.body) supported = note_ops(g->nodes[id].attr.body, mark) && supported;
    }
    return supported;
}

void ts_cuda_check(Graph *g, Tensor *const *ins, Tensor *const *params, Tensor *const *want, const TsTol *tol) {
    if (!enabled) return;
    if (!note_ops(g, seen)) return; /* counted in ts_cuda_coverage */
    double t0 = now();
    Diag d;
    diag_init(&d, stderr);
    PassOptions po = {.opt_level = 2, .target = backend_cuda_emulated.target, .verify = true};
    Graph *opt = passes_run(graph_clone(g->arena, g, NULL), &po, &d);
    assert_non_null(opt);
    char *dir = build_tempdir(&d);
    assert_non_null(dir);
    CGenOptions o = {.prefix = "m"};
    CGenEntry entry = {opt, "forward"};
    assert_true(backend_cuda_emulated.write(&entry, 1, &o, dir, NULL, &d));
    /* the weights go in through the C API, as a program's P_load would */
    void *h = ts_load_model_source(dir, "model_host.c", "libm_cuda.so", "-O1");
    void (*fwd)(const void *const *, void *const *);
    *(void **)&fwd = dlsym(h, "m_forward_v");
    void *const *param_data = dlsym(h, "m_param_data");
    const etch_tensor_info *pinfo = dlsym(h, "m_params");
    void (*changed)(void);
    *(void **)&changed = dlsym(h, "m_params_changed");
    assert_true(fwd && param_data && pinfo && changed);
    for (int i = 0; pinfo[i].name; i++) {
        int k = 0;
        while (k < g->n_params && strcmp(g->nodes[g->params[k]].attr.name, pinfo[i].name)) k++;
        assert_true(k < g->n_params);
        memcpy(param_data[i], params[k]->data, tensor_nbytes(params[k]));
    }
    changed();
    const void *in_ptr[64];
    void *out_ptr[64];
    Tensor *got[64];
    assert_true(g->n_inputs <= 64 && g->n_outputs <= 64);
    for (int i = 0; i < g->n_inputs; i++) in_ptr[i] = ins[i]->data;
    for (int i = 0; i < g->n_outputs; i++) {
        got[i] = tensor_new(want[i]->dtype, want[i]->shape);
        out_ptr[i] = got[i]->data;
    }
    fwd(in_ptr, out_ptr);
    /* bit-identical is the C backend's promise, not this one's: its kernels sum
     * in parallel (a warp's shuffle tree, a block's partial sums) and nvcc
     * contracts a * b + c; an exact test is held to one part in 1e6 here */
    TsTol t = *tol;
    if (t.exact) t.exact = false, t.rel = t.rel > 1e-6 ? t.rel : 1e-6, t.scaled = true;
    ts_compare_outputs(g, "cuda (emulated)", want, got, &t);
    for (int i = 0; i < g->n_outputs; i++) tensor_free(got[i]);
    void (*release)(void);
    *(void **)&release = dlsym(h, "m_release");
    assert_non_null(release);
    release(); /* the default context and the device's parameters, before their pointers go */
    dlclose(h);
    build_rmtree(dir);
    free(dir);
    diag_dispose(&d);
    note_ops(g, ran);
    graphs_run++;
    seconds += now() - t0;
}

void ts_cuda_coverage(void) {
    int n_skipped = 0;
    fprintf(stderr, "cuda: %d graphs compared (kernels emulated on the CPU) in %.1f s; ops skipped (unsupported):",
            graphs_run, seconds);
    for (int op = 0; op < OP_COUNT; op++) {
        if (!seen[op]) continue;
        bool unsupported = !backend_cuda_emulated.op_supported((OpKind)op);
        if (unsupported) fprintf(stderr, " %s", op_table[op].name), n_skipped++;
        if (unsupported == ran[op])
            fail_msg("op %s: supported by the cuda table %d, compared %d", op_table[op].name, !unsupported, ran[op]);
    }
    fprintf(stderr, n_skipped ? "\n" : " none\n");
    assert_true(graphs_run > 0);
}

void ts_cuda_coverage_test(void **state) {
    (void)state;
    ts_cuda_coverage();
}
