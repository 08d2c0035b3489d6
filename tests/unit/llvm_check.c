/* llvm_check.c: the LLVM backend's half of ts_check_graph (test_support.h,
 * issue 17): after the C backend, a graph also runs JIT-compiled by the LLVM
 * backend (docs/llvm.md) and its outputs are compared with the eager
 * executor's under the same tolerance. The backend is a module the tool
 * dlopens (libetch_llvm.so); a test loads it the same way from the build
 * folder ($ETCH_BINARY_DIR), and the test executable exports the etch
 * functions the module calls (tests/CMakeLists.txt). Graphs holding an op the
 * LLVM op table marks unsupported, or a dtype it refuses ("float32 only":
 * f64, integer arithmetic), are skipped, the latter printed and counted (any
 * other refusal fails); ts_llvm_coverage then prints the skipped ops and
 * asserts they are exactly the unsupported ones among the ops seen, so an op
 * that becomes supported is compared from then on. Built without LLVM, every
 * check is skipped and the coverage says so. */
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

#include "codegen/llvm/backend_llvm.h"
#include "passes/pass.h"
#include "passes/plan_memory.h"
#include "unit/test_support.h"

static bool enabled;
void ts_check_llvm_too(void) { enabled = true; }

#ifdef ETCH_HAVE_LLVM
static bool seen[OP_COUNT], ran[OP_COUNT];
static int graphs_run, graphs_refused;
static double seconds; /* spent in ts_llvm_check, printed by ts_llvm_coverage */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static const LlvmPlugin *plugin(void) {
    static const LlvmPlugin *p;
    if (p) return p;
    const char *dir = getenv("ETCH_BINARY_DIR");
    assert_non_null(dir);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, ETCH_LLVM_MODULE);
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL); /* kept open: the JIT's code lives in it */
    if (!lib) fprintf(stderr, "dlopen: %s\n", dlerror());
    assert_non_null(lib);
    p = dlsym(lib, "etch_llvm_plugin");
    assert_true(p && p->abi == ETCH_LLVM_PLUGIN_ABI);
    return p;
}

/* The value of g's param named like opt's param k. */
static void *param_data(const Graph *g, Tensor *const *params, const char *name) {
    for (int k = 0; k < g->n_params; k++)
        if (!strcmp(g->nodes[g->params[k]].attr.name, name)) return params[k]->data;
    fail_msg("param %s not found", name);
    return NULL;
}

void ts_llvm_check(Graph *g, Tensor *const *ins, Tensor *const *params, Tensor *const *want, const TsTol *tol) {
    if (!enabled) return;
    const LlvmPlugin *p = plugin();
    double t0 = now();
    bool supported = true;
    for (int id = 0; id < g->n_nodes; id++) {
        seen[g->nodes[id].op] = true;
        supported = supported && p->backend->op_supported(g->nodes[id].op);
    }
    if (!supported) return; /* counted in ts_llvm_coverage */
    Diag d;
    diag_init(&d, NULL);
    PassOptions po = {.opt_level = 2, .target = p->backend->target, .verify = true};
    Graph *opt = passes_run(graph_clone(g->arena, g, NULL), &po, &d);
    assert_non_null(opt);
    CGenEntry entry = {opt, "forward"};
    LlvmJit *jit = p->compile(&entry, 1, "m", &d);
    if (!jit) { /* a dtype the backend refuses: printed, counted */
        if (!strstr(d.text, "(float32 only)")) fail_msg("%s: llvm compile failed: %s", g->name, d.text);
        fprintf(stderr, "llvm: %s skipped: %s", g->name, d.text);
        graphs_refused++;
        diag_dispose(&d);
        seconds += now() - t0;
        return;
    }
    LlvmEntryFn fn = p->entry(jit, "forward", &d);
    assert_non_null(fn);
    void *in_ptr[64], *out_ptr[64], *param_ptr[64];
    Tensor *got[64];
    assert_true(opt->n_inputs <= 64 && opt->n_outputs <= 64 && opt->n_params <= 64);
    for (int i = 0; i < g->n_inputs; i++) in_ptr[i] = ins[i]->data;
    for (int k = 0; k < opt->n_params; k++) param_ptr[k] = param_data(g, params, opt->nodes[opt->params[k]].attr.name);
    for (int i = 0; i < g->n_outputs; i++) {
        got[i] = tensor_new(want[i]->dtype, want[i]->shape);
        out_ptr[i] = got[i]->data;
    }
    size_t bytes = ((size_t)opt->mem_plan->arena_bytes + 63) / 64 * 64;
    unsigned char *arena = aligned_alloc(64, bytes ? bytes : 64);
    assert_non_null(arena);
    fn(in_ptr, out_ptr, param_ptr, arena);
    ts_compare_outputs(g, "llvm", want, got, tol);
    for (int i = 0; i < g->n_outputs; i++) tensor_free(got[i]);
    free(arena);
    p->free(jit);
    diag_dispose(&d);
    for (int id = 0; id < g->n_nodes; id++) ran[g->nodes[id].op] = true;
    graphs_run++;
    seconds += now() - t0;
}

void ts_llvm_coverage(void) {
    const LlvmPlugin *p = plugin();
    int n_skipped = 0;
    fprintf(stderr, "llvm: %d graphs compared in %.1f s, %d refused as above; ops skipped (unsupported):", graphs_run,
            seconds, graphs_refused);
    for (int op = 0; op < OP_COUNT; op++) {
        if (!seen[op]) continue;
        bool unsupported = !p->backend->op_supported((OpKind)op);
        if (unsupported) fprintf(stderr, " %s", op_table[op].name), n_skipped++;
        if (unsupported == ran[op]) fail_msg("op %s: supported by the llvm table %d, compared %d", op_table[op].name, !unsupported, ran[op]);
    }
    fprintf(stderr, n_skipped ? "\n" : " none\n");
    assert_true(graphs_run > 0);
}
#else
void ts_llvm_check(Graph *g, Tensor *const *ins, Tensor *const *params, Tensor *const *want, const TsTol *tol) {
    (void)g, (void)ins, (void)params, (void)want, (void)tol;
}

void ts_llvm_coverage(void) { fprintf(stderr, "llvm: built without the llvm backend; its checks are skipped\n"); }
#endif
