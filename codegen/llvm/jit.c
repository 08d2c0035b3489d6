/* jit.c: the LLVM backend's in-process compiler. The module of the entries
 * (emit.c) is verified (a failure is a compiler bug: the IR is dumped to a
 * file the message names), optimized by the new pass manager's default<O3>
 * for the host CPU, named and featured as LLVM sees it (LLVM 14 may not know
 * the newest cores by name; their features still reach the vectorizers),
 * (loop unrolling off: compile time), then handed to ORC LLJIT, which resolves libm's functions from the process. */
#include <llvm-c/Analysis.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/llvm/llvm_emit.h"

struct LlvmJit {
    LLVMOrcLLJITRef jit;
    char prefix[64];
};

/* Reports err (consumed) after what; false. */
static bool llvm_error(Diag *d, const char *what, LLVMErrorRef err) {
    char *msg = LLVMGetErrorMessage(err);
    diag_error_plain(d, "llvm backend: %s: %s", what, msg);
    LLVMDisposeErrorMessage(msg);
    return false;
}

/* The host's target machine, its CPU and features spelled out. */
static LLVMTargetMachineRef host_machine(Diag *d) {
    char *triple = LLVMGetDefaultTargetTriple(), *cpu = LLVMGetHostCPUName(), *features = LLVMGetHostCPUFeatures();
    char *err = NULL;
    LLVMTargetRef target;
    LLVMTargetMachineRef tm = NULL;
    if (LLVMGetTargetFromTriple(triple, &target, &err)) diag_error_plain(d, "llvm backend: host target %s: %s", triple, err);
    else tm = LLVMCreateTargetMachine(target, triple, cpu, features, LLVMCodeGenLevelAggressive, LLVMRelocDefault,
                                      LLVMCodeModelJITDefault);
    LLVMDisposeMessage(err);
    LLVMDisposeMessage(triple);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(features);
    return tm;
}

/* A verification failure: the module's IR into a file, named in the message. */
static bool report_invalid(LLVMModuleRef mod, const char *why, Diag *d) {
    char path[] = "/tmp/etch-llvm-ir-XXXXXX";
    int fd = mkstemp(path);
    char *err = NULL;
    if (fd >= 0) close(fd);
    if (fd < 0 || LLVMPrintModuleToFile(mod, path, &err)) snprintf(path, sizeof path, "(not written)");
    LLVMDisposeMessage(err);
    return diag_error_plain(d, "llvm backend: the emitted module does not verify (a compiler bug; its IR is in %s): %s",
                            path, why);
}

/* Verifies and optimizes mod for the host; false after reporting. */
static bool optimize(LLVMModuleRef mod, Diag *d) {
    char *why = NULL;
    if (LLVMVerifyModule(mod, LLVMReturnStatusAction, &why)) {
        bool r = report_invalid(mod, why, d);
        LLVMDisposeMessage(why);
        return r;
    }
    LLVMDisposeMessage(why);
    LLVMTargetMachineRef tm = host_machine(d);
    if (!tm) return false;
    char *triple = LLVMGetTargetMachineTriple(tm);
    LLVMSetTarget(mod, triple);
    LLVMDisposeMessage(triple);
    LLVMTargetDataRef layout = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(mod, layout);
    LLVMDisposeTargetData(layout);
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    /* no loop unrolling: with every size a constant, O3 unrolls the kernels'
     * loops whole, which made LeNet's module 7x larger (7700 lines of IR
     * instead of 1150) and its compile 2.5x slower (docs/llvm.md) */
    LLVMPassBuilderOptionsSetLoopUnrolling(po, 0);
    LLVMErrorRef err = LLVMRunPasses(mod, "default<O3>", tm, po);
    LLVMDisposePassBuilderOptions(po);
    LLVMDisposeTargetMachine(tm);
    return !err || llvm_error(d, "optimizing", err);
}

LlvmJit *llvm_jit_compile(const CGenEntry *entries, int n, const char *prefix, Diag *d) {
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
    LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
    LLVMModuleRef mod = llvm_build_module(LLVMOrcThreadSafeContextGetContext(tsc), entries, n, prefix, d);
    if (!mod || !optimize(mod, d)) {
        if (mod) LLVMDisposeModule(mod);
        LLVMOrcDisposeThreadSafeContext(tsc);
        return NULL;
    }
    LlvmJit *j = calloc(1, sizeof *j);
    if (!j) abort();
    snprintf(j->prefix, sizeof j->prefix, "%s", prefix);
    LLVMOrcJITTargetMachineBuilderRef jtmb = NULL;
    LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
    LLVMOrcDefinitionGeneratorRef gen = NULL;
    LLVMErrorRef err = LLVMOrcJITTargetMachineBuilderDetectHost(&jtmb);
    if (err) {
        LLVMOrcDisposeLLJITBuilder(builder);
    } else {
        LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder, jtmb);
        err = LLVMOrcCreateLLJIT(&j->jit, builder); /* consumes builder */
    }
    if (!err)
        err = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(j->jit), NULL, NULL);
    if (!err) {
        LLVMOrcJITDylibRef lib = LLVMOrcLLJITGetMainJITDylib(j->jit);
        LLVMOrcJITDylibAddGenerator(lib, gen);
        LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(mod, tsc);
        mod = NULL;
        if ((err = LLVMOrcLLJITAddLLVMIRModule(j->jit, lib, tsm))) LLVMOrcDisposeThreadSafeModule(tsm);
    }
    if (mod) LLVMDisposeModule(mod);
    LLVMOrcDisposeThreadSafeContext(tsc); /* the module holds its own reference */
    if (!err) return j;
    llvm_error(d, "starting the JIT", err);
    llvm_jit_free(j);
    return NULL;
}

LlvmEntryFn llvm_jit_entry(LlvmJit *j, const char *name, Diag *d) {
    char sym[256];
    snprintf(sym, sizeof sym, "%s_%s", j->prefix, name);
    LLVMOrcExecutorAddress addr = 0;
    LLVMErrorRef err = LLVMOrcLLJITLookup(j->jit, &addr, sym);
    if (err) return llvm_error(d, "compiling", err), NULL;
    LlvmEntryFn fn;
    void *p = (void *)(uintptr_t)addr;
    memcpy(&fn, &p, sizeof fn);
    return fn;
}

void llvm_jit_free(LlvmJit *j) {
    if (!j) return;
    if (j->jit) {
        LLVMErrorRef err = LLVMOrcDisposeLLJIT(j->jit);
        if (err) LLVMConsumeError(err);
    }
    free(j);
}
