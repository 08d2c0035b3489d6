/* llvm_module.c: the LLVM backend as the tool sees it. The backend is a
 * module of its own, libetch_llvm.so (codegen/llvm/backend_llvm.h says why),
 * loaded on first use from the folder of the etch executable (the build
 * tree) or, installed, from <prefix>/lib/etch, found from the executable's
 * folder too (<prefix>/bin/../lib/etch), so a moved prefix keeps working. An etch configured without
 * LLVM 14 has no module and says so. */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
