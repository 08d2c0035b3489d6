/* llvm_module.c: the LLVM backend as the tool sees it. The backend is a
 * module of its own, libetch_llvm.so (codegen/llvm/backend_llvm.h says why),
 * loaded on first use from the folder of the etch executable (the build
 * tree) or, installed, from <prefix>/lib/etch, found from the executable's
 * folder too (<prefix>/bin/../lib/etch), so a moved prefix keeps working.
 * And a model's forward, JIT-compiled with its params bound, for `etch run`
 * and `etch bench`. An etch configured without
 * LLVM 14 has no module and says so. */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "passes/plan_memory.h"
#include "tool/pipeline.h"

#ifdef ETCH_HAVE_LLVM
static const LlvmPlugin *loaded;

/* dlopen of dir/name; the error of the first try is kept for the message. */
static void *open_in(const char *dir, char *err, size_t n) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, ETCH_LLVM_MODULE);
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib && !*err) snprintf(err, n, "%s", dlerror());
    return lib;
}

const LlvmPlugin *llvm_module(Diag *d) {
    if (loaded) return loaded;
    char exe[PATH_MAX], err[1024] = "";
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[len > 0 ? len : 0] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    char installed[PATH_MAX + 64];
    snprintf(installed, sizeof installed, "%s/%s", exe, ETCH_LLVM_MODULE_INSTALLED);
    void *lib = slash ? open_in(exe, err, sizeof err) : NULL;
    if (!lib && slash) lib = open_in(installed, err, sizeof err);
    const LlvmPlugin *p = lib ? dlsym(lib, "etch_llvm_plugin") : NULL;
    if (!lib) {
        diag_error_plain(d, "--backend llvm: cannot load the llvm backend (%s)", err);
    } else if (!p || p->abi != ETCH_LLVM_PLUGIN_ABI) {
        diag_error_plain(d, "--backend llvm: %s is not the llvm backend of this etch (rebuild it)", ETCH_LLVM_MODULE);
        dlclose(lib);
        p = NULL;
    }
    return loaded = p; /* kept open: the JIT's code lives in it */
}

const LlvmPlugin *llvm_module_loaded(void) { return loaded; }
#else
const LlvmPlugin *llvm_module(Diag *d) {
    diag_error_plain(d, "--backend llvm: this etch was built without the llvm backend (LLVM 14 and clang-14 were not "
                        "found when it was configured: apt-get install llvm-14-dev clang-14, then rebuild); use "
                        "--backend c");
    return NULL;
}

const LlvmPlugin *llvm_module_loaded(void) { return NULL; }
#endif

/* The value of param `name` among g's params. */
static void *param_data(const Graph *g, Tensor **params, const char *name) {
    for (int k = 0; k < g->n_params; k++)
        if (!strcmp(g->nodes[g->params[k]].attr.name, name)) return params[k]->data;
    return NULL;
}

bool jit_forward_open(JitForward *j, const Program *p, Tensor **params, const Options *o, Diag *d) {
    *j = (JitForward){.llvm = llvm_module(d)};
    const Graph *g = p->forward;
    Options lo = *o;
    lo.backend = "llvm";
    Graph *opt = j->llvm ? optimize_graph(g, &lo, g->arena, d) : NULL;
    char prefix[64];
    model_prefix(p->model_name, prefix, sizeof prefix);
    CGenEntry entry = {opt, "forward"};
    j->jit = opt ? j->llvm->compile(&entry, 1, prefix, d) : NULL;
    j->fn = j->jit ? j->llvm->entry(j->jit, "forward", d) : NULL;
    if (!j->fn) {
        jit_forward_close(j);
        return false;
    }
    if (!(j->params = calloc((size_t)opt->n_params + 1, sizeof *j->params))) abort();
    for (int k = 0; k < opt->n_params; k++) j->params[k] = param_data(g, params, opt->nodes[opt->params[k]].attr.name);
    j->arena_bytes = opt->mem_plan->arena_bytes;
    size_t bytes = ((size_t)j->arena_bytes + 63) / 64 * 64;
    if (!(j->arena = aligned_alloc(64, bytes ? bytes : 64))) abort();
    for (int id = 0; id < opt->n_nodes; id++) {
        const Node *n = &opt->nodes[id];
        j->kernels += n->op != OP_INPUT && n->op != OP_PARAM && opt->mem_plan->kind[id] != STORE_VIEW;
    }
    return true;
}

void jit_forward_close(JitForward *j) {
    if (j->jit) j->llvm->free(j->jit);
    free(j->params);
    free(j->arena);
    *j = (JitForward){0};
}
