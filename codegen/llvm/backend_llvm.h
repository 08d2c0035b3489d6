/* backend_llvm.h: the LLVM backend (docs/llvm.md). The optimized graphs of a
 * model become one LLVM module, built through the LLVM-C API of LLVM 14 on
 * top of etch's kernels compiled to bitcode (codegen/llvm/kernels/), are
 * optimized with the new pass manager (default<O3>) for the host CPU and run
 * in process by ORC LLJIT: no C compiler at run time.
 *
 * Each entry E of the module is a function
 *     void <prefix>_E(void *const *in, void *const *out, void *const *params, unsigned char *arena)
 * reading its graph's inputs (g->inputs order), writing its outputs
 * (g->outputs order), reading the params in the graph's g->params order, with
 * an arena of g->mem_plan->arena_bytes bytes (64-byte aligned) for its
 * intermediates.
 *
 * Built only when CMake finds LLVM 14, and as a module of its own,
 * libetch_llvm.so, which the tool loads (dlopen) when --backend llvm asks for
 * it: libLLVM and what it pulls in (libstdc++, libxml2, libz3) cost every
 * process about 20 ms of start-up, which no other command should pay. The
 * module exports one symbol, etch_llvm_plugin; the etch functions it calls
 * (the IR, the op geometry, diagnostics) are resolved from the executable,
 * which exports them. */
#ifndef ETCH_CODEGEN_LLVM_BACKEND_LLVM_H
#define ETCH_CODEGEN_LLVM_BACKEND_LLVM_H

#include "codegen/backend.h"

extern const Backend backend_llvm;

typedef void (*LlvmEntryFn)(void *const *in, void *const *out, void *const *params, unsigned char *arena);
typedef struct LlvmJit LlvmJit;

/* JIT-compiles the entries (graphs run through the pass pipeline with
 * backend_llvm.target) under prefix; NULL after reporting an error (an op or
 * dtype the backend cannot emit, at its source location). */
LlvmJit *llvm_jit_compile(const CGenEntry *entries, int n, const char *prefix, Diag *d);
/* The compiled function of entry `name`; NULL after reporting. */
LlvmEntryFn llvm_jit_entry(LlvmJit *j, const char *name, Diag *d);
void llvm_jit_free(LlvmJit *j);

/* The module's one exported symbol: the backend and its JIT. */
#define ETCH_LLVM_PLUGIN_ABI 1 /* bumped when this struct or the functions' types change */
typedef struct LlvmPlugin {
    int abi;
    const Backend *backend;
    LlvmJit *(*compile)(const CGenEntry *entries, int n, const char *prefix, Diag *d);
    LlvmEntryFn (*entry)(LlvmJit *j, const char *name, Diag *d);
    void (*free)(LlvmJit *j);
} LlvmPlugin;
extern const LlvmPlugin etch_llvm_plugin;

#endif
