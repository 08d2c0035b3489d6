/* backend_llvm.c: the LLVM backend's entry in the backend interface
 * (codegen/backend.h): its op table (codegen/llvm/ops.def), its target
 * description for the passes, and its model source, the module's LLVM IR as
 * text before optimization (`etch run --backend llvm` JIT-compiles the same
 * module in process: jit.c). It does not fuse yet: its Target turns the fuse
 * pass off, so every node is a kernel of its own (docs/llvm.md). Object
 * files (`etch build --backend llvm`) are not written yet. */
#include <llvm-c/Core.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/llvm/llvm_emit.h"
#include "passes/plan_memory.h"
#include "runtime/etch_rt.h"

static bool llvm_op_supported(OpKind op) { return llvm_op_table[op].emit != NULL; }

static const Target llvm_target = {
    .name = "llvm",
    .unfused = true, /* no group emitters yet */
    .max_group_leaves = 3,
    .max_group_members = 1,
    .max_row_group_members = 1,
    .epilogue_cache_bytes = 0,
    .arena_align = 64,
};

static char *llvm_model_source(const CGenEntry *entries, int n, const CGenOptions *o, CGenStats *stats, Diag *d) {
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef mod = llvm_build_module(ctx, entries, n, o->prefix, d);
    char *text = NULL;
    if (mod) {
        char *ir = LLVMPrintModuleToString(mod);
        text = strdup(ir);
        if (!text) abort();
        LLVMDisposeMessage(ir);
        LLVMDisposeModule(mod);
    }
    LLVMContextDispose(ctx);
    if (stats) *stats = (CGenStats){0};
    for (int i = 0; stats && text && i < n; i++) {
        stats->arena_bytes += entries[i].g->mem_plan->arena_bytes;
        stats->naive_bytes += entries[i].g->mem_plan->naive_bytes;
    }
    return text;
}

static bool llvm_write(const CGenEntry *entries, int n, const CGenOptions *o, const char *dir, CGenStats *stats,
                       Diag *d) {
    char *text = llvm_model_source(entries, n, o, stats, d);
    if (!text) return false;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.ll", dir);
    char err[1024];
    bool ok = !etch_write_file_atomic(path, text, strlen(text), err, sizeof err) || diag_error_plain(d, "%s", err);
    free(text);
    return ok;
}

static bool llvm_compile(const char *dir, const char *const *sources, int n_sources, const char *out, bool shared,
                         const char *opt_flags, const char *libs, Diag *d) {
    (void)dir, (void)sources, (void)n_sources, (void)out, (void)shared, (void)opt_flags, (void)libs;
    return diag_error_plain(d, "the llvm backend does not write object files yet: it runs models in process "
                               "(etch run --backend llvm)");
}

const Backend backend_llvm = {
    .name = "llvm",
    .op_supported = llvm_op_supported,
    .target = &llvm_target,
    .model_source = llvm_model_source,
    .write = llvm_write,
    .compile = llvm_compile,
};

const LlvmPlugin etch_llvm_plugin = {
    .abi = ETCH_LLVM_PLUGIN_ABI,
    .backend = &backend_llvm,
    .compile = llvm_jit_compile,
    .entry = llvm_jit_entry,
    .free = llvm_jit_free,
};
