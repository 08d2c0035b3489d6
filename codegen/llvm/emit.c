/* emit.c: the LLVM module of a model's entries. The module starts as etch's
 * kernels (kernels/kernels.c as bitcode, embedded in the tool); each entry
 * becomes a function <prefix>_<entry>(in, out, params, arena) (its ABI:
 * backend_llvm.h) whose nodes are emitted in order by the op table
 * (ops.def): first every node's storage is bound as the memory plan says
 * (an input or output argument, a param, an arena offset, a view of another
 * node), then each node's emitter runs, then outputs computed elsewhere are
 * copied into their arguments. A scan's body graph becomes an internal
 * function <prefix>_<entry>_loopN with the same ABI, emitted the same way
 * (llvm_emit_body). Training steps (graph updates) and fused
 * groups are not emitted yet: the backend's Target asks the passes not to
 * fuse (backend_llvm.c). */
#include <llvm-c/BitReader.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/llvm/llvm_emit.h"
#include "passes/plan_memory.h"

extern const unsigned char etch_llvm_kernels_bc[]; /* kernels.bc, embedded by the build */
extern const unsigned long etch_llvm_kernels_bc_size;

LLVMTypeRef llvm_elem_type(LlvmEmitter *e, DType t) {
    switch (t) {
    case DT_F32: return LLVMFloatTypeInContext(e->ctx);
    case DT_F64: return LLVMDoubleTypeInContext(e->ctx);
    case DT_I32: return LLVMInt32TypeInContext(e->ctx);
    case DT_I64: return LLVMInt64TypeInContext(e->ctx);
    default: return LLVMInt8TypeInContext(e->ctx); /* bool, i8, u8 */
    }
}

LLVMValueRef llvm_i64(LlvmEmitter *e, int64_t v) { return LLVMConstInt(e->i64, (unsigned long long)v, 1); }

bool llvm_dtype_error(LlvmEmitter *e, int id) {
    const Node *n = &e->g->nodes[id];
    char ty[96];
    return diag_error(e->d, n->loc, "the llvm backend cannot emit op '%s' on %s yet (float32 only)",
                      op_table[n->op].name, type_format(ty, sizeof ty, n->dtype, &n->shape));
}

/* Element k of the pointer array argument arg, as a pointer to dtype t. */
static LLVMValueRef load_slot(LlvmEmitter *e, LLVMValueRef arg, int k, DType t) {
    LLVMValueRef idx = llvm_i64(e, k);
    LLVMValueRef slot = LLVMBuildInBoundsGEP2(e->b, e->i8p, arg, &idx, 1, "");
    LLVMValueRef p = LLVMBuildLoad2(e->b, e->i8p, slot, "");
    return LLVMBuildBitCast(e->b, p, LLVMPointerType(llvm_elem_type(e, t), 0), "");
}

static int index_of(const int *ids, int n, int id) {
    for (int k = 0; k < n; k++)
        if (ids[k] == id) return k;
    return -1;
}

/* Binds every node of e->g to its storage (e->ptr) from the memory plan. */
static void bind_storage(LlvmEmitter *e, LLVMValueRef in, LLVMValueRef out, LLVMValueRef params, LLVMValueRef arena) {
    const Graph *g = e->g;
    const MemPlan *mp = g->mem_plan;
    for (int id = 0; id < g->n_nodes; id++) {
        DType t = g->nodes[id].dtype;
        LLVMTypeRef pt = LLVMPointerType(llvm_elem_type(e, t), 0);
        switch (mp->kind[id]) {
        case STORE_INPUT: e->ptr[id] = load_slot(e, in, index_of(g->inputs, g->n_inputs, id), t); break;
        case STORE_PARAM: e->ptr[id] = load_slot(e, params, index_of(g->params, g->n_params, mp->ref[id]), t); break;
        case STORE_OUTPUT: e->ptr[id] = load_slot(e, out, mp->ref[id], t); break;
        case STORE_ARENA: {
            LLVMValueRef off = llvm_i64(e, mp->offset[id]);
            LLVMValueRef p = LLVMBuildInBoundsGEP2(e->b, LLVMInt8TypeInContext(e->ctx), arena, &off, 1, "");
            e->ptr[id] = LLVMBuildBitCast(e->b, p, pt, "");
            break;
        }
        case STORE_VIEW: e->ptr[id] = e->ptr[mp->ref[id]]; break;
        case STORE_REGISTER: e->ptr[id] = NULL; break;
        }
    }
}

/* Emits graph g as the function `name` with the entries' ABI: storage bound,
 * every node's emitter, outputs computed elsewhere copied to their slots. */
static bool emit_function(LlvmEmitter *e, const Graph *g, const char *name, LLVMValueRef *fn_out) {
    e->g = g;
    LLVMTypeRef i8pp = LLVMPointerType(e->i8p, 0);
    LLVMTypeRef params[] = {i8pp, i8pp, i8pp, e->i8p};
    LLVMTypeRef fty = LLVMFunctionType(LLVMVoidTypeInContext(e->ctx), params, 4, 0);
    e->fn = *fn_out = LLVMAddFunction(e->mod, name, fty);
    LLVMPositionBuilderAtEnd(e->b, LLVMAppendBasicBlockInContext(e->ctx, e->fn, "entry"));
    e->ptr = calloc((size_t)g->n_nodes + 1, sizeof *e->ptr);
    if (!e->ptr) abort();
    bind_storage(e, LLVMGetParam(e->fn, 0), LLVMGetParam(e->fn, 1), LLVMGetParam(e->fn, 2), LLVMGetParam(e->fn, 3));
    bool ok = true;
    for (int id = 0; ok && id < g->n_nodes; id++) ok = llvm_op_table[g->nodes[id].op].emit(e, id);
    for (int i = 0; ok && i < g->n_outputs; i++) { /* outputs that are sources, views or repeat an earlier output */
        const Node *n = &g->nodes[g->outputs[i]];
        LLVMValueRef dst = load_slot(e, LLVMGetParam(e->fn, 1), i, n->dtype);
        size_t bytes = (size_t)shape_numel(&n->shape) * dtype_size(n->dtype);
        if (!(g->mem_plan->kind[g->outputs[i]] == STORE_OUTPUT && g->mem_plan->ref[g->outputs[i]] == i) && bytes)
            LLVMBuildMemCpy(e->b, dst, 1, e->ptr[g->outputs[i]], 1, llvm_i64(e, (int64_t)bytes));
    }
    LLVMBuildRetVoid(e->b);
    free(e->ptr);
    e->ptr = NULL;
    return ok;
}

static bool emit_entry(LlvmEmitter *e, const CGenEntry *en) {
    const Graph *g = en->g;
    if (g->n_updates)
        return diag_error_plain(e->d, "the llvm backend cannot emit %s (a training step) yet: inference only", g->name);
    char name[256];
    snprintf(name, sizeof name, "%s_%s", e->prefix, en->name);
    e->entry = en->name;
    LLVMValueRef fn;
    return emit_function(e, g, name, &fn);
}

LLVMValueRef llvm_emit_body(LlvmEmitter *e, const Graph *body) {
    if (!backend_check_ops(&backend_llvm, body, e->d) || !backend_check_planned(&backend_llvm, body, e->d)) return NULL;
    LlvmEmitter saved = *e;
    LLVMBasicBlockRef at = LLVMGetInsertBlock(e->b);
    char name[256];
    snprintf(name, sizeof name, "%s_%s_loop%d", e->prefix, e->entry, e->n_bodies++);
    LLVMValueRef fn;
    bool ok = emit_function(e, body, name, &fn);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    int n_bodies = e->n_bodies;
    *e = saved;
    e->n_bodies = n_bodies;
    LLVMPositionBuilderAtEnd(e->b, at);
    return ok ? fn : NULL;
}

/* The kernels' bitcode as a module of ctx; its functions lose the generic
 * target-cpu/features clang gave them (they are compiled for the host with
 * the entries that inline them) and become internal, so O3 drops what it
 * inlined everywhere and the unused ones. */
static LLVMModuleRef load_kernels(LLVMContextRef ctx, Diag *d) {
    LLVMMemoryBufferRef buf = LLVMCreateMemoryBufferWithMemoryRange((const char *)etch_llvm_kernels_bc,
                                                                    etch_llvm_kernels_bc_size, "kernels.bc", 0);
    LLVMModuleRef mod = NULL;
    bool failed = LLVMParseBitcodeInContext2(ctx, buf, &mod);
    LLVMDisposeMemoryBuffer(buf);
    if (failed) return diag_error_plain(d, "the llvm backend's embedded kernels do not parse (a build bug)"), NULL;
    for (LLVMValueRef f = LLVMGetFirstFunction(mod); f; f = LLVMGetNextFunction(f)) {
        if (LLVMIsDeclaration(f)) continue;
        LLVMRemoveStringAttributeAtIndex(f, LLVMAttributeFunctionIndex, "target-cpu", 10);
        LLVMRemoveStringAttributeAtIndex(f, LLVMAttributeFunctionIndex, "target-features", 15);
        LLVMRemoveStringAttributeAtIndex(f, LLVMAttributeFunctionIndex, "tune-cpu", 8);
        LLVMSetLinkage(f, LLVMInternalLinkage);
    }
    LLVMSetModuleIdentifier(mod, "etch", 4);
    return mod;
}

LLVMModuleRef llvm_build_module(LLVMContextRef ctx, const CGenEntry *entries, int n, const char *prefix, Diag *d) {
    LLVMModuleRef mod = load_kernels(ctx, d);
    if (!mod) return NULL;
    LlvmEmitter e = {.ctx = ctx, .mod = mod, .b = LLVMCreateBuilderInContext(ctx), .d = d, .prefix = prefix,
                     .i64 = LLVMInt64TypeInContext(ctx), .i8p = LLVMPointerType(LLVMInt8TypeInContext(ctx), 0)};
    bool ok = true;
    for (int i = 0; ok && i < n; i++)
        ok = backend_check_ops(&backend_llvm, entries[i].g, d) && backend_check_planned(&backend_llvm, entries[i].g, d) &&
             emit_entry(&e, &entries[i]);
    LLVMDisposeBuilder(e.b);
    if (ok) return mod;
    LLVMDisposeModule(mod);
    return NULL;
}
