/* ops.c: the LLVM backend's op emitters and its op table (ops.def). An
 * elementwise op becomes a loop nest over its merged dims (the same
 * OpsLoops as the eager kernel and the C emitter), the element computed by
 * the op's scalar builder; matmul, conv2d, pooling and softmax call the
 * kernels of codegen/llvm/kernels/kernels.c with constant sizes, which O3
 * inlines and specializes. Float32 only in this first slice: another dtype is
 * reported at the node. */
#include <string.h>

#include "codegen/llvm/llvm_emit.h"
#include "ir/ops/ops_impl.h"

#define LLVM_UNSUPPORTED NULL

/* ---- loops ---- */

/* for (i = 0; i < n; i++), n >= 1: loop_begin leaves the builder in the body
 * with L.i the index; loop_end closes it and continues after it. */
typedef struct Loop {
    LLVMBasicBlockRef body, exit;
    LLVMValueRef i;
    int64_t n;
} Loop;

static Loop loop_begin(LlvmEmitter *e, int64_t n) {
    Loop L = {.n = n};
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(e->b);
    L.body = LLVMAppendBasicBlockInContext(e->ctx, e->fn, "loop");
    L.exit = LLVMAppendBasicBlockInContext(e->ctx, e->fn, "after");
    LLVMBuildBr(e->b, L.body);
    LLVMPositionBuilderAtEnd(e->b, L.body);
    L.i = LLVMBuildPhi(e->b, e->i64, "i");
    LLVMValueRef zero = llvm_i64(e, 0);
    LLVMAddIncoming(L.i, &zero, &pre, 1);
    return L;
}

static void loop_end(LlvmEmitter *e, Loop *L) {
    LLVMValueRef next = LLVMBuildNUWAdd(e->b, L->i, llvm_i64(e, 1), "");
    LLVMBasicBlockRef cur = LLVMGetInsertBlock(e->b);
    LLVMAddIncoming(L->i, &next, &cur, 1);
    LLVMBuildCondBr(e->b, LLVMBuildICmp(e->b, LLVMIntEQ, next, llvm_i64(e, L->n), ""), L->exit, L->body);
    LLVMPositionBuilderAtEnd(e->b, L->exit);
}

static LLVMValueRef elem_ptr(LlvmEmitter *e, int id, LLVMValueRef off) {
    return LLVMBuildInBoundsGEP2(e->b, llvm_elem_type(e, e->g->nodes[id].dtype), e->ptr[id], &off, 1, "");
}

/* ---- scalar builders (one per elementwise op of ops.def) ---- */

static LLVMValueRef f32(LlvmEmitter *e, double v) { return LLVMConstReal(LLVMFloatTypeInContext(e->ctx), v); }

/* A call of the float function `name` (an LLVM intrinsic, or libm's, which
 * the JIT finds in the process) with n float arguments. */
static LLVMValueRef call_f32(LlvmEmitter *e, const char *name, LLVMValueRef *x, unsigned n) {
    LLVMTypeRef f = LLVMFloatTypeInContext(e->ctx), params[2] = {f, f};
    LLVMTypeRef ty = LLVMFunctionType(f, params, n, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(e->mod, name);
    if (!fn) fn = LLVMAddFunction(e->mod, name, ty);
    return LLVMBuildCall2(e->b, ty, fn, x, n, "");
}

static LLVMValueRef select_if(LlvmEmitter *e, LLVMRealPredicate p, LLVMValueRef a, LLVMValueRef b, LLVMValueRef t,
                              LLVMValueRef f) {
    return LLVMBuildSelect(e->b, LLVMBuildFCmp(e->b, p, a, b, ""), t, f, "");
}

static LLVMValueRef build_add(LlvmEmitter *e, const Node *n, LLVMValueRef *x) { (void)n; return LLVMBuildFAdd(e->b, x[0], x[1], ""); }
static LLVMValueRef build_sub(LlvmEmitter *e, const Node *n, LLVMValueRef *x) { (void)n; return LLVMBuildFSub(e->b, x[0], x[1], ""); }
static LLVMValueRef build_mul(LlvmEmitter *e, const Node *n, LLVMValueRef *x) { (void)n; return LLVMBuildFMul(e->b, x[0], x[1], ""); }
static LLVMValueRef build_div(LlvmEmitter *e, const Node *n, LLVMValueRef *x) { (void)n; return LLVMBuildFDiv(e->b, x[0], x[1], ""); }
static LLVMValueRef build_max(LlvmEmitter *e, const Node *n, LLVMValueRef *x) {
    (void)n;
    return select_if(e, LLVMRealOGE, x[0], x[1], x[0], x[1]);
}
static LLVMValueRef build_min(LlvmEmitter *e, const Node *n, LLVMValueRef *x) {
    (void)n;
    return select_if(e, LLVMRealOLE, x[0], x[1], x[0], x[1]);
}
static LLVMValueRef build_pow(LlvmEmitter *e, const Node *n, LLVMValueRef *x) { (void)n; return call_f32(e, "powf", x, 2); }
static LLVMValueRef build_neg(LlvmEmitter *e, const Node *n, LLVMValueRef *x) { (void)n; return LLVMBuildFNeg(e->b, x[0], ""); }
static LLVMValueRef build_exp(LlvmEmitter *e, const Node *n, LLVMValueRef *x) { (void)n; return call_f32(e, "expf", x, 1); }
static LLVMValueRef build_log(LlvmEmitter *e, const Node *n, LLVMValueRef *x) { (void)n; return call_f32(e, "logf", x, 1); }
static LLVMValueRef build_sqrt(LlvmEmitter *e, const Node *n, LLVMValueRef *x) { (void)n; return call_f32(e, "llvm.sqrt.f32", x, 1); }
static LLVMValueRef build_rsqrt(LlvmEmitter *e, const Node *n, LLVMValueRef *x) {
    return LLVMBuildFDiv(e->b, f32(e, 1), build_sqrt(e, n, x), "");
}
static LLVMValueRef build_abs(LlvmEmitter *e, const Node *n, LLVMValueRef *x) { (void)n; return call_f32(e, "llvm.fabs.f32", x, 1); }
static LLVMValueRef build_tanh(LlvmEmitter *e, const Node *n, LLVMValueRef *x) { (void)n; return call_f32(e, "tanhf", x, 1); }
static LLVMValueRef build_erf(LlvmEmitter *e, const Node *n, LLVMValueRef *x) { (void)n; return call_f32(e, "erff", x, 1); }
static LLVMValueRef build_sigmoid(LlvmEmitter *e, const Node *n, LLVMValueRef *x) {
    LLVMValueRef neg = build_neg(e, n, x);
    return LLVMBuildFDiv(e->b, f32(e, 1), LLVMBuildFAdd(e->b, f32(e, 1), build_exp(e, n, &neg), ""), "");
}
static LLVMValueRef build_relu(LlvmEmitter *e, const Node *n, LLVMValueRef *x) {
    (void)n;
    return select_if(e, LLVMRealOGT, x[0], f32(e, 0), x[0], f32(e, 0));
}
static LLVMValueRef build_leaky_relu(LlvmEmitter *e, const Node *n, LLVMValueRef *x) {
    return select_if(e, LLVMRealOGT, x[0], f32(e, 0), x[0], LLVMBuildFMul(e->b, x[0], f32(e, n->attr.value), ""));
}
static LLVMValueRef build_copy(LlvmEmitter *e, const Node *n, LLVMValueRef *x) { (void)e, (void)n; return x[0]; }

/* ---- emitters ---- */

/* Every operand and the result float32: what this slice's emitters handle. */
static bool all_f32(LlvmEmitter *e, int id) {
    const Node *n = &e->g->nodes[id];
    bool ok = n->dtype == DT_F32;
    for (int k = 0; k < n->n_in; k++) ok = ok && e->g->nodes[n->in[k]].dtype == DT_F32;
    return ok || llvm_dtype_error(e, id);
}

static bool emit_source(LlvmEmitter *e, int id) { (void)e, (void)id; return true; }

static bool emit_const(LlvmEmitter *e, int id) {
    if (!all_f32(e, id)) return false;
    const Node *n = &e->g->nodes[id];
    int64_t numel = shape_numel(&n->shape);
    if (!numel) return true;
    Loop L = loop_begin(e, numel);
    LLVMBuildStore(e->b, f32(e, n->attr.value), elem_ptr(e, id, L.i));
    loop_end(e, &L);
    return true;
}

static bool emit_elementwise(LlvmEmitter *e, int id) {
    if (!all_f32(e, id)) return false;
    const Node *n = &e->g->nodes[id];
    if (!shape_numel(&n->shape)) return true;
    OpsLoops L;
    elementwise_loops(e->g, n, &L);
    Loop loops[ETCH_MAX_RANK];
    LLVMValueRef out_off = llvm_i64(e, 0), in_off[3] = {llvm_i64(e, 0), llvm_i64(e, 0), llvm_i64(e, 0)};
    int64_t out_stride = 1;
    for (int d = L.rank - 1; d >= 0; d--) out_stride *= L.dim[d];
    for (int d = 0; d < L.rank; d++) { /* offsets accumulate dim by dim; LLVM hoists each to its loop */
        loops[d] = loop_begin(e, L.dim[d]);
        out_stride /= L.dim[d];
        out_off = LLVMBuildNUWAdd(e->b, out_off, LLVMBuildNUWMul(e->b, loops[d].i, llvm_i64(e, out_stride), ""), "");
        for (int k = 0; k < n->n_in; k++)
            if (L.stride[k][d])
                in_off[k] = LLVMBuildNUWAdd(e->b, in_off[k],
                                            LLVMBuildNUWMul(e->b, loops[d].i, llvm_i64(e, L.stride[k][d]), ""), "");
    }
    LLVMValueRef x[3];
    for (int k = 0; k < n->n_in; k++) {
        const Node *in = &e->g->nodes[n->in[k]];
        x[k] = in->op == OP_CONST ? f32(e, in->attr.value) /* constants read as literals */
                                  : LLVMBuildLoad2(e->b, llvm_elem_type(e, in->dtype), elem_ptr(e, n->in[k], in_off[k]), "");
    }
    LLVMBuildStore(e->b, llvm_op_table[n->op].scalar(e, n, x), elem_ptr(e, id, out_off));
    for (int d = L.rank - 1; d >= 0; d--) loop_end(e, &loops[d]);
    return true;
}

static bool emit_reshape(LlvmEmitter *e, int id) {
    const Node *n = &e->g->nodes[id];
    if (e->ptr[id] == e->ptr[n->in[0]]) return true; /* a view */
    size_t bytes = (size_t)shape_numel(&n->shape) * dtype_size(n->dtype);
    if (bytes) LLVMBuildMemCpy(e->b, e->ptr[id], 1, e->ptr[n->in[0]], 1, llvm_i64(e, (int64_t)bytes));
    return true;
}

/* A call of kernel `name` (kernels.c, in the module) on the given node
 * pointers followed by constant sizes. */
static void call_kernel(LlvmEmitter *e, const char *name, const int *nodes, int n_nodes, const int64_t *sizes,
                        int n_sizes) {
    LLVMValueRef fn = LLVMGetNamedFunction(e->mod, name), args[24];
    int n = 0;
    for (int k = 0; k < n_nodes; k++) args[n++] = e->ptr[nodes[k]];
    for (int k = 0; k < n_sizes; k++) args[n++] = llvm_i64(e, sizes[k]);
    LLVMBuildCall2(e->b, LLVMGlobalGetValueType(fn), fn, args, (unsigned)n, "");
}

/* Elements between an operand's consecutive products: all of it per
 * product, or 0 when one matrix serves every product; -1 otherwise. */
static int64_t matmul_batch_stride(const Node *x, int64_t matrix, int64_t n_batch) {
    int64_t count = shape_numel(&x->shape) / matrix;
    return count == n_batch ? matrix : count == 1 ? 0 : -1;
}

static bool emit_matmul(LlvmEmitter *e, int id) {
    if (!all_f32(e, id)) return false;
    const Node *n = &e->g->nodes[id];
    MatmulDims md;
    matmul_dims(e->g, n, &md);
    int64_t abs = matmul_batch_stride(&e->g->nodes[n->in[0]], md.m * md.k, md.n_batch);
    int64_t bbs = matmul_batch_stride(&e->g->nodes[n->in[1]], md.k * md.n, md.n_batch);
    if (abs < 0 || bbs < 0)
        return diag_error(e->d, n->loc, "the llvm backend cannot emit a matmul whose batch dims broadcast partly yet");
    if (!md.n_batch || !md.m || !md.n) return true;
    int64_t ars = n->attr.trans_a ? 1 : md.k, acs = n->attr.trans_a ? md.m : 1;
    int64_t brs = n->attr.trans_b ? 1 : md.n, bcs = n->attr.trans_b ? md.k : 1;
    int64_t sizes[] = {md.n_batch, abs, bbs, md.m, md.n, md.k, ars, acs, brs, bcs};
    call_kernel(e, "etch_llvm_matmul_f32", (int[]){n->in[0], n->in[1], id}, 3, sizes, 10);
    return true;
}

static bool emit_conv2d(LlvmEmitter *e, int id) {
    if (!all_f32(e, id)) return false;
    const Node *n = &e->g->nodes[id];
    ConvGeom c;
    conv_geom(e->g, n, &c);
    int64_t sizes[] = {c.n, c.c, c.h, c.w, c.o, c.kh, c.kw, c.oh, c.ow, c.sh, c.sw, c.ph, c.pw, c.dh, c.dw, c.groups};
    if (shape_numel(&n->shape)) call_kernel(e, "etch_llvm_conv2d_f32", (int[]){n->in[0], n->in[1], id}, 3, sizes, 16);
    return true;
}

static bool emit_pool2d(LlvmEmitter *e, int id) {
    if (!all_f32(e, id)) return false;
    const Node *n = &e->g->nodes[id];
    PoolGeom p;
    pool_geom(e->g, n, &p);
    int64_t sizes[] = {p.planes, p.h, p.w, p.oh, p.ow, p.kh, p.kw, p.sh, p.sw, p.ph, p.pw, n->op == OP_AVG_POOL2D};
    if (shape_numel(&n->shape)) call_kernel(e, "etch_llvm_pool2d_f32", (int[]){n->in[0], id}, 2, sizes, 12);
    return true;
}

static bool emit_softmax(LlvmEmitter *e, int id) {
    if (!all_f32(e, id)) return false;
    const Node *n = &e->g->nodes[id];
    int64_t outer, len, inner;
    ops_split_axis(&n->shape, n->attr.axis, &outer, &len, &inner);
    int64_t sizes[] = {outer, len, inner, n->op == OP_LOG_SOFTMAX};
    if (shape_numel(&n->shape)) call_kernel(e, "etch_llvm_softmax_f32", (int[]){n->in[0], id}, 2, sizes, 4);
    return true;
}

const LlvmOpRow llvm_op_table[OP_COUNT] = {
#define LLVM_OP(en, em, sc) [OP_##en] = {.emit = em, .scalar = sc},
#include "codegen/llvm/ops.def"
#undef LLVM_OP
};

enum {
    LLVM_OP_ROWS = 0
#define LLVM_OP(en, em, sc) +1
#include "codegen/llvm/ops.def"
#undef LLVM_OP
};
_Static_assert((int)LLVM_OP_ROWS == (int)OP_COUNT, "codegen/llvm/ops.def needs one row per op of ir/ops.def");
