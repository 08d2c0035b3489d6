/* llvm_emit.h: the LLVM backend's emitter state and its per-op table
 * (codegen/llvm/ops.def), shared by the module builder (emit.c), the op
 * emitters (ops.c) and the JIT (jit.c). Not for other layers: they see
 * backend_llvm.h. */
#ifndef ETCH_CODEGEN_LLVM_EMIT_H
#define ETCH_CODEGEN_LLVM_EMIT_H

#include <llvm-c/Core.h>

#include "codegen/llvm/backend_llvm.h"

typedef struct LlvmEmitter {
    LLVMContextRef ctx;
    LLVMModuleRef mod;      /* starts as the kernels' bitcode */
    LLVMBuilderRef b;
    LLVMValueRef fn;        /* the entry being emitted */
    const Graph *g;
    LLVMValueRef *ptr;      /* per node: its storage, a pointer to its element type (NULL: none) */
    LLVMTypeRef i64, i8p;
    Diag *d;
    const char *prefix, *entry; /* names functions: <prefix>_<entry>, its loop bodies <prefix>_<entry>_loopN */
    int n_bodies;
} LlvmEmitter;

/* Emits node id of e->g (its operands already emitted); false after reporting. */
typedef bool (*LlvmOpEmit)(LlvmEmitter *e, int id);
/* One element of an elementwise op from its operands' elements x[]. */
typedef LLVMValueRef (*LlvmScalar)(LlvmEmitter *e, const Node *n, LLVMValueRef *x);

typedef struct LlvmOpRow {
    LlvmOpEmit emit;    /* NULL: the backend cannot emit the op */
    LlvmScalar scalar;  /* elementwise ops: the element's value */
} LlvmOpRow;
extern const LlvmOpRow llvm_op_table[OP_COUNT];

/* The LLVM type of one element of dtype t. */
LLVMTypeRef llvm_elem_type(LlvmEmitter *e, DType t);
LLVMValueRef llvm_i64(LlvmEmitter *e, int64_t v);
/* Reports that node id's dtype is not one the op's emitter handles yet. */
bool llvm_dtype_error(LlvmEmitter *e, int id);

/* Emits a scan's body graph (planned) as an internal function with the
 * entries' ABI and returns it (NULL after reporting); the builder stays
 * where it was. */
LLVMValueRef llvm_emit_body(LlvmEmitter *e, const Graph *body);

/* Builds the module of the entries (each graph planned) into ctx on top of
 * the kernels' bitcode; NULL after reporting. */
LLVMModuleRef llvm_build_module(LLVMContextRef ctx, const CGenEntry *entries, int n, const char *prefix, Diag *d);

#endif
