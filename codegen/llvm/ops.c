/* ops.c: the LLVM backend's op emitters and its op table (ops.def). An
 * elementwise op becomes a loop nest over its merged dims (the same
 * OpsLoops as the eager kernel and the C emitter), the element computed by
 * the op's scalar builder; the data movement ops (transpose, slice, concat,
 * pad, iota, gather_rows) and the reductions are loop nests built here too;
 * matmul, conv2d, pooling, softmax and the random ops call the kernels of
 * codegen/llvm/kernels/kernels.c with constant sizes, which O3 inlines and
 * specializes; a scan calls its body, emitted as a function of its own
 * (emit.c), once per step. Float32 arithmetic, with integer ids and bool
 * masks where the ops move, compare, select or cast values; another dtype
 * is reported at the node. */
#include <stdio.h>
#include <string.h>

#include "codegen/llvm/llvm_emit.h"
#include "ir/ops/ops_impl.h"
#include "passes/plan_memory.h"

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

/* A loop nest over dim[0..rank) walking n_off offsets: off[k] = base[k] +
 * sum over d of i_d * stride[k][d] (LLVM hoists each partial sum to its
 * loop). nest_begin leaves the builder in the innermost body; nest_end
 * closes the loops. Shared by the elementwise ops and the data movement
 * ops (transpose, slice, concat, pad, iota). */
enum { NEST_MAX_OFFSETS = 4 };
typedef struct Nest {
    int rank;
    Loop loop[ETCH_MAX_RANK];
    LLVMValueRef off[NEST_MAX_OFFSETS];
} Nest;

static void nest_begin(LlvmEmitter *e, Nest *N, int rank, const int64_t *dim, int n_off,
                       const int64_t *const *stride, const int64_t *base) {
    N->rank = rank;
    for (int k = 0; k < n_off; k++) N->off[k] = llvm_i64(e, base ? base[k] : 0);
    for (int d = 0; d < rank; d++) {
        N->loop[d] = loop_begin(e, dim[d]);
        for (int k = 0; k < n_off; k++)
            if (stride[k][d])
                N->off[k] = LLVMBuildNUWAdd(e->b, N->off[k],
                                            LLVMBuildNUWMul(e->b, N->loop[d].i, llvm_i64(e, stride[k][d]), ""), "");
    }
}

static void nest_end(LlvmEmitter *e, Nest *N) {
    for (int d = N->rank - 1; d >= 0; d--) loop_end(e, &N->loop[d]);
}

/* dst[dst_base + i . dst_stride] = src[src_base + i . src_stride] over dims (elements of dst's type). */
static void strided_copy(LlvmEmitter *e, int dst, int64_t dst_base, const int64_t *dst_stride, int src,
                         int64_t src_base, const int64_t *src_stride, int rank, const int64_t *dim) {
    for (int d = 0; d < rank; d++)
        if (!dim[d]) return;
    Nest N;
    nest_begin(e, &N, rank, dim, 2, (const int64_t *const[]){dst_stride, src_stride}, (int64_t[]){dst_base, src_base});
    LLVMTypeRef t = llvm_elem_type(e, e->g->nodes[dst].dtype);
    LLVMBuildStore(e->b, LLVMBuildLoad2(e->b, t, elem_ptr(e, src, N.off[1]), ""), elem_ptr(e, dst, N.off[0]));
    nest_end(e, &N);
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

/* The dtypes the comparisons, where, cast, iota and the data movement ops
 * handle: float32, the integer ids and bool. */
static bool plain_dtype(DType t) { return t == DT_F32 || t == DT_I32 || t == DT_I64 || t == DT_BOOL; }
static bool unsigned_dtype(DType t) { return t == DT_BOOL || t == DT_U8; }

/* v (a literal of the graph) as a constant of dtype t. */
static LLVMValueRef const_of(LlvmEmitter *e, DType t, double v) {
    if (t == DT_F32 || t == DT_F64) return LLVMConstReal(llvm_elem_type(e, t), v);
    return LLVMConstInt(llvm_elem_type(e, t), (unsigned long long)(int64_t)v, !unsigned_dtype(t));
}

/* v of dtype `from` as dtype `to`, as the eager executor stores it: bool is
 * v != 0, floats become integers saturating (llvm.fptosi.sat), integers
 * widen (narrowing integers is refused by emit_elementwise). */
static LLVMValueRef convert(LlvmEmitter *e, LLVMValueRef v, DType from, DType to) {
    LLVMTypeRef tt = llvm_elem_type(e, to);
    bool ffrom = from == DT_F32, fto = to == DT_F32;
    if (from == to) return v;
    if (to == DT_BOOL) {
        LLVMValueRef nz = ffrom ? LLVMBuildFCmp(e->b, LLVMRealUNE, v, f32(e, 0), "")
                                : LLVMBuildICmp(e->b, LLVMIntNE, v, LLVMConstNull(LLVMTypeOf(v)), "");
        return LLVMBuildZExt(e->b, nz, tt, "");
    }
    if (ffrom && !fto) {
        char name[48];
        snprintf(name, sizeof name, "llvm.fptosi.sat.i%u.f32", LLVMGetIntTypeWidth(tt));
        LLVMTypeRef ft = LLVMFunctionType(tt, (LLVMTypeRef[]){LLVMTypeOf(v)}, 1, 0);
        LLVMValueRef fn = LLVMGetNamedFunction(e->mod, name);
        if (!fn) fn = LLVMAddFunction(e->mod, name, ft);
        return LLVMBuildCall2(e->b, ft, fn, &v, 1, "");
    }
    if (fto) return unsigned_dtype(from) ? LLVMBuildUIToFP(e->b, v, tt, "") : LLVMBuildSIToFP(e->b, v, tt, "");
    return LLVMBuildIntCast2(e->b, v, tt, !unsigned_dtype(from), "");
}

static LLVMValueRef build_cast(LlvmEmitter *e, const Node *n, LLVMValueRef *x) {
    return convert(e, x[0], e->g->nodes[n->in[0]].dtype, n->dtype);
}

/* A comparison of the operands (float: ordered, but != is true on NaN, as
 * C's), as a bool byte. */
static LLVMValueRef build_compare(LlvmEmitter *e, const Node *n, LLVMValueRef *x) {
    DType t = e->g->nodes[n->in[0]].dtype;
    LLVMValueRef c;
    if (t == DT_F32) {
        LLVMRealPredicate p = n->op == OP_LT ? LLVMRealOLT : n->op == OP_LE ? LLVMRealOLE : n->op == OP_GT ? LLVMRealOGT
                            : n->op == OP_GE ? LLVMRealOGE : n->op == OP_EQ ? LLVMRealOEQ : LLVMRealUNE;
        c = LLVMBuildFCmp(e->b, p, x[0], x[1], "");
    } else {
        bool u = unsigned_dtype(t);
        LLVMIntPredicate p = n->op == OP_LT ? (u ? LLVMIntULT : LLVMIntSLT) : n->op == OP_LE ? (u ? LLVMIntULE : LLVMIntSLE)
                           : n->op == OP_GT ? (u ? LLVMIntUGT : LLVMIntSGT) : n->op == OP_GE ? (u ? LLVMIntUGE : LLVMIntSGE)
                           : n->op == OP_EQ ? LLVMIntEQ : LLVMIntNE;
        c = LLVMBuildICmp(e->b, p, x[0], x[1], "");
    }
    return LLVMBuildZExt(e->b, c, llvm_elem_type(e, DT_BOOL), "");
}

static LLVMValueRef build_where(LlvmEmitter *e, const Node *n, LLVMValueRef *x) {
    (void)n;
    LLVMValueRef c = LLVMBuildICmp(e->b, LLVMIntNE, x[0], LLVMConstNull(LLVMTypeOf(x[0])), "");
    return LLVMBuildSelect(e->b, c, x[1], x[2], "");
}

/* ---- emitters ---- */

/* Every operand and the result float32: what this slice's emitters handle. */
static bool all_f32(LlvmEmitter *e, int id) {
    const Node *n = &e->g->nodes[id];
    bool ok = n->dtype == DT_F32;
    for (int k = 0; k < n->n_in; k++) ok = ok && e->g->nodes[n->in[k]].dtype == DT_F32;
    return ok || llvm_dtype_error(e, id);
}

/* Every operand and the result of a dtype plain_dtype() accepts. */
static bool all_plain(LlvmEmitter *e, int id) {
    const Node *n = &e->g->nodes[id];
    bool ok = plain_dtype(n->dtype);
    for (int k = 0; k < n->n_in; k++) ok = ok && plain_dtype(e->g->nodes[n->in[k]].dtype);
    return ok || llvm_dtype_error(e, id);
}

/* The dtype check of an elementwise op: comparisons, where, cast and the
 * copies take the plain dtypes (a cast does not narrow integers); the
 * arithmetic float32. */
static bool elementwise_dtypes_ok(LlvmEmitter *e, int id) {
    const Node *n = &e->g->nodes[id];
    switch (n->op) {
    case OP_LT: case OP_LE: case OP_GT: case OP_GE: case OP_EQ: case OP_NE: case OP_WHERE:
    case OP_BROADCAST: case OP_STOP_GRADIENT:
        return all_plain(e, id);
    case OP_CAST: {
        DType from = e->g->nodes[n->in[0]].dtype;
        bool narrows = from != DT_F32 && n->dtype != DT_F32 && n->dtype != DT_BOOL &&
                       dtype_size(n->dtype) < dtype_size(from);
        return (all_plain(e, id) && !narrows) || (narrows && llvm_dtype_error(e, id));
    }
    default: return all_f32(e, id);
    }
}

static bool emit_source(LlvmEmitter *e, int id) { (void)e, (void)id; return true; }

static bool emit_const(LlvmEmitter *e, int id) {
    if (e->g->nodes[id].dtype != DT_F64 && !all_plain(e, id)) return false; /* f64: a random op's step */
    const Node *n = &e->g->nodes[id];
    int64_t numel = shape_numel(&n->shape);
    if (!numel) return true;
    Loop L = loop_begin(e, numel);
    LLVMBuildStore(e->b, const_of(e, n->dtype, n->attr.value), elem_ptr(e, id, L.i));
    loop_end(e, &L);
    return true;
}

static bool emit_elementwise(LlvmEmitter *e, int id) {
    if (!elementwise_dtypes_ok(e, id)) return false;
    const Node *n = &e->g->nodes[id];
    if (!shape_numel(&n->shape)) return true;
    OpsLoops L;
    elementwise_loops(e->g, n, &L);
    int64_t out_stride[ETCH_MAX_RANK], st = 1;
    for (int d = L.rank - 1; d >= 0; d--) out_stride[d] = st, st *= L.dim[d];
    const int64_t *strides[NEST_MAX_OFFSETS] = {out_stride};
    for (int k = 0; k < n->n_in; k++) strides[k + 1] = L.stride[k];
    Nest N;
    nest_begin(e, &N, L.rank, L.dim, n->n_in + 1, strides, NULL);
    LLVMValueRef x[3];
    for (int k = 0; k < n->n_in; k++) {
        const Node *in = &e->g->nodes[n->in[k]];
        x[k] = in->op == OP_CONST ? const_of(e, in->dtype, in->attr.value) /* constants read as literals */
                                  : LLVMBuildLoad2(e->b, llvm_elem_type(e, in->dtype), elem_ptr(e, n->in[k], N.off[k + 1]), "");
    }
    LLVMBuildStore(e->b, llvm_op_table[n->op].scalar(e, n, x), elem_ptr(e, id, N.off[0]));
    nest_end(e, &N);
    return true;
}

static bool emit_reshape(LlvmEmitter *e, int id) {
    const Node *n = &e->g->nodes[id];
    if (e->ptr[id] == e->ptr[n->in[0]]) return true; /* a view */
    size_t bytes = (size_t)shape_numel(&n->shape) * dtype_size(n->dtype);
    if (bytes) LLVMBuildMemCpy(e->b, e->ptr[id], 1, e->ptr[n->in[0]], 1, llvm_i64(e, (int64_t)bytes));
    return true;
}

/* A call of kernel `name` (kernels.c, in the module) on the given pointers
 * followed by constant sizes. */
static void call_kernel_at(LlvmEmitter *e, const char *name, const LLVMValueRef *ptrs, int n_ptrs, const int64_t *sizes,
                           int n_sizes) {
    LLVMValueRef fn = LLVMGetNamedFunction(e->mod, name), args[24];
    int n = 0;
    for (int k = 0; k < n_ptrs; k++) args[n++] = ptrs[k];
    for (int k = 0; k < n_sizes; k++) args[n++] = llvm_i64(e, sizes[k]);
    LLVMBuildCall2(e->b, LLVMGlobalGetValueType(fn), fn, args, (unsigned)n, "");
}

/* The same on the given nodes' storage. */
static void call_kernel(LlvmEmitter *e, const char *name, const int *nodes, int n_nodes, const int64_t *sizes,
                        int n_sizes) {
    LLVMValueRef ptrs[8];
    for (int k = 0; k < n_nodes; k++) ptrs[k] = e->ptr[nodes[k]];
    call_kernel_at(e, name, ptrs, n_nodes, sizes, n_sizes);
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
    if (!md.n_batch || !md.m || !md.n) return true;
    int64_t ars = n->attr.trans_a ? 1 : md.k, acs = n->attr.trans_a ? md.m : 1;
    int64_t brs = n->attr.trans_b ? 1 : md.n, bcs = n->attr.trans_b ? md.k : 1;
    if (abs >= 0 && bbs >= 0) {
        int64_t sizes[] = {md.n_batch, abs, bbs, md.m, md.n, md.k, ars, acs, brs, bcs};
        call_kernel(e, "etch_llvm_matmul_f32", (int[]){n->in[0], n->in[1], id}, 3, sizes, 10);
        return true;
    }
    /* batch dims that broadcast partly ([2,3] by [3]): one product per call */
    int64_t sizes[] = {1, 0, 0, md.m, md.n, md.k, ars, acs, brs, bcs};
    for (int64_t bi = 0; bi < md.n_batch; bi++) {
        int64_t oa, ob;
        matmul_batch_offsets(&md, bi, &oa, &ob);
        LLVMValueRef ptrs[] = {elem_ptr(e, n->in[0], llvm_i64(e, oa)), elem_ptr(e, n->in[1], llvm_i64(e, ob)),
                               elem_ptr(e, id, llvm_i64(e, bi * md.m * md.n))};
        call_kernel_at(e, "etch_llvm_matmul_f32", ptrs, 3, sizes, 10);
    }
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

/* ---- data movement: strided copies of any plain dtype ---- */

static bool emit_transpose(LlvmEmitter *e, int id) {
    if (!all_plain(e, id)) return false;
    const Node *n = &e->g->nodes[id];
    int64_t out_st[ETCH_MAX_RANK], in_st[ETCH_MAX_RANK];
    shape_strides(&n->shape, out_st);
    transpose_strides(e->g, n, in_st);
    strided_copy(e, id, 0, out_st, n->in[0], 0, in_st, n->shape.rank, n->shape.dim);
    return true;
}

static bool emit_slice(LlvmEmitter *e, int id) {
    if (!all_plain(e, id)) return false;
    const Node *n = &e->g->nodes[id];
    int64_t out_st[ETCH_MAX_RANK], in_st[ETCH_MAX_RANK];
    shape_strides(&n->shape, out_st);
    shape_strides(&e->g->nodes[n->in[0]].shape, in_st);
    strided_copy(e, id, 0, out_st, n->in[0], n->attr.start * in_st[n->attr.axis], in_st, n->shape.rank, n->shape.dim);
    return true;
}

/* Each operand copied into its place along the axis. */
static bool emit_concat(LlvmEmitter *e, int id) {
    if (!all_plain(e, id)) return false;
    const Node *n = &e->g->nodes[id];
    int64_t out_st[ETCH_MAX_RANK], in_st[ETCH_MAX_RANK], at = 0;
    shape_strides(&n->shape, out_st);
    for (int k = 0; k < n->n_in; k++) {
        const Shape *xs = &e->g->nodes[n->in[k]].shape;
        shape_strides(xs, in_st);
        strided_copy(e, id, at * out_st[n->attr.axis], out_st, n->in[k], 0, in_st, xs->rank, xs->dim);
        at += xs->dim[n->attr.axis];
    }
    return true;
}

/* The fill value everywhere, then the operand copied inside the padding. */
static bool emit_pad(LlvmEmitter *e, int id) {
    if (!all_plain(e, id)) return false;
    const Node *n = &e->g->nodes[id];
    int64_t numel = shape_numel(&n->shape);
    if (!numel) return true;
    Loop L = loop_begin(e, numel);
    LLVMBuildStore(e->b, const_of(e, n->dtype, n->attr.value), elem_ptr(e, id, L.i));
    loop_end(e, &L);
    const Shape *xs = &e->g->nodes[n->in[0]].shape;
    int64_t out_st[ETCH_MAX_RANK], in_st[ETCH_MAX_RANK], base = 0;
    shape_strides(&n->shape, out_st);
    shape_strides(xs, in_st);
    for (int d = 0; d < xs->rank; d++) base += n->attr.pad_before[d] * out_st[d];
    strided_copy(e, id, base, out_st, n->in[0], 0, in_st, xs->rank, xs->dim);
    return true;
}

/* iota: each element its index along the axis. */
static bool emit_iota(LlvmEmitter *e, int id) {
    if (!all_plain(e, id)) return false;
    const Node *n = &e->g->nodes[id];
    int64_t d[3];
    ops_split_axis(&n->shape, n->attr.axis, &d[0], &d[1], &d[2]);
    if (!d[0] || !d[1] || !d[2]) return true;
    Nest N;
    nest_begin(e, &N, 3, d, 1, (const int64_t *const[]){(int64_t[]){d[1] * d[2], d[2], 1}}, NULL);
    LLVMBuildStore(e->b, convert(e, N.loop[1].i, DT_I64, n->dtype), elem_ptr(e, id, N.off[0]));
    nest_end(e, &N);
    return true;
}

/* y[i] = table[ids[i]] row by row; an id outside the table gives a row of
 * zeros (as the eager kernel). */
static bool emit_gather_rows(LlvmEmitter *e, int id) {
    const Node *n = &e->g->nodes[id], *w = &e->g->nodes[n->in[0]], *ids = &e->g->nodes[n->in[1]];
    if (!plain_dtype(n->dtype) || !(ids->dtype == DT_I32 || ids->dtype == DT_I64)) return llvm_dtype_error(e, id);
    int64_t V = w->shape.dim[0], count = shape_numel(&ids->shape);
    if (!V || !count || !shape_numel(&n->shape)) return true;
    int64_t row = shape_numel(&w->shape) / V, bytes = row * (int64_t)dtype_size(n->dtype);
    Loop L = loop_begin(e, count);
    LLVMValueRef r = LLVMBuildLoad2(e->b, llvm_elem_type(e, ids->dtype), elem_ptr(e, n->in[1], L.i), "");
    r = LLVMBuildSExt(e->b, r, e->i64, "");
    LLVMValueRef inside = LLVMBuildICmp(e->b, LLVMIntULT, r, llvm_i64(e, V), "");
    LLVMValueRef dst = elem_ptr(e, id, LLVMBuildNUWMul(e->b, L.i, llvm_i64(e, row), ""));
    LLVMBasicBlockRef copy = LLVMAppendBasicBlockInContext(e->ctx, e->fn, "row");
    LLVMBasicBlockRef zero = LLVMAppendBasicBlockInContext(e->ctx, e->fn, "zero");
    LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(e->ctx, e->fn, "next");
    LLVMBuildCondBr(e->b, inside, copy, zero);
    LLVMPositionBuilderAtEnd(e->b, copy);
    LLVMValueRef src = elem_ptr(e, n->in[0], LLVMBuildNUWMul(e->b, r, llvm_i64(e, row), ""));
    LLVMBuildMemCpy(e->b, dst, 1, src, 1, llvm_i64(e, bytes));
    LLVMBuildBr(e->b, next);
    LLVMPositionBuilderAtEnd(e->b, zero);
    LLVMBuildMemSet(e->b, dst, LLVMConstInt(LLVMInt8TypeInContext(e->ctx), 0, 0), llvm_i64(e, bytes), 1);
    LLVMBuildBr(e->b, next);
    LLVMPositionBuilderAtEnd(e->b, next);
    loop_end(e, &L);
    return true;
}

/* random_uniform / random_normal (float32): the kernel, at the step
 * operand's value read as a double. */
static bool emit_random(LlvmEmitter *e, int id) {
    const Node *n = &e->g->nodes[id], *step = &e->g->nodes[n->in[0]];
    if (n->dtype != DT_F32 || !(plain_dtype(step->dtype) || step->dtype == DT_F64)) return llvm_dtype_error(e, id);
    LLVMTypeRef dt = LLVMDoubleTypeInContext(e->ctx);
    LLVMValueRef s;
    if (step->op == OP_CONST) { /* a fixed step (the DSL's rand/randn) */
        s = LLVMConstReal(dt, step->attr.value);
    } else {
        s = LLVMBuildLoad2(e->b, llvm_elem_type(e, step->dtype), elem_ptr(e, n->in[0], llvm_i64(e, 0)), "");
        s = step->dtype == DT_F64 ? s : step->dtype == DT_F32 ? LLVMBuildFPExt(e->b, s, dt, "")
            : unsigned_dtype(step->dtype) ? LLVMBuildUIToFP(e->b, s, dt, "") : LLVMBuildSIToFP(e->b, s, dt, "");
    }
    LLVMValueRef fn = LLVMGetNamedFunction(e->mod, "etch_llvm_random_f32");
    LLVMValueRef args[] = {e->ptr[id], llvm_i64(e, shape_numel(&n->shape)), llvm_i64(e, (int64_t)n->attr.seed), s,
                           llvm_i64(e, n->op == OP_RANDOM_NORMAL)};
    LLVMBuildCall2(e->b, LLVMGlobalGetValueType(fn), fn, args, 5, "");
    return true;
}

/* ---- scan ---- */

/* An alloca of ty in the entry block (where SROA and mem2reg look). */
static LLVMValueRef entry_alloca(LlvmEmitter *e, LLVMTypeRef ty) {
    LLVMBuilderRef at_entry = LLVMCreateBuilderInContext(e->ctx);
    LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(e->fn);
    LLVMValueRef first = LLVMGetFirstInstruction(entry);
    if (first) LLVMPositionBuilderBefore(at_entry, first);
    else LLVMPositionBuilderAtEnd(at_entry, entry);
    LLVMValueRef slot = LLVMBuildAlloca(at_entry, ty, "");
    LLVMDisposeBuilder(at_entry);
    return slot;
}

static LLVMValueRef as_i8p(LlvmEmitter *e, LLVMValueRef p) { return LLVMBuildBitCast(e->b, p, e->i8p, ""); }

/* The body (llvm_emit_body) called once per step, as the C backend's scan:
 * carries ping-pong between two buffers (step t writes buffer t & 1 and
 * reads the other, step 0 the initial carries), a sequence is read and a
 * per-step output written at the step's offset; the final carries are
 * copied to the front of the result. The body's arena and the carry buffers
 * are one malloc for the node. */
static bool emit_scan(LlvmEmitter *e, int id) {
    const Node *n = &e->g->nodes[id];
    const Graph *B = n->attr.body;
    if (n->dtype != DT_F32) return llvm_dtype_error(e, id);
    int nc = n->attr.n_carry, nx = n->attr.n_xs;
    ScanLayout L;
    scan_layout(e->g, n, &L);
    LLVMValueRef body = llvm_emit_body(e, B);
    if (!body) return false;
    if (!L.T) return true;
    int64_t carry_numel = nc ? L.off[nc - 1] + L.numel[nc - 1] : 0;
    int64_t carry_at = (B->mem_plan->arena_bytes + 63) / 64 * 64;
    LLVMTypeRef i8 = LLVMInt8TypeInContext(e->ctx), ft = LLVMFloatTypeInContext(e->ctx);
    LLVMValueRef mem = LLVMBuildArrayMalloc(e->b, i8, llvm_i64(e, carry_at + 2 * carry_numel * 4 + 64), "");
    LLVMValueRef at = llvm_i64(e, carry_at);
    LLVMValueRef carry = LLVMBuildBitCast(e->b, LLVMBuildInBoundsGEP2(e->b, i8, mem, &at, 1, ""), LLVMPointerType(ft, 0), "");
    LLVMValueRef ins = entry_alloca(e, LLVMArrayType(e->i8p, (unsigned)n->n_in));
    LLVMValueRef outs = entry_alloca(e, LLVMArrayType(e->i8p, (unsigned)B->n_outputs));
    Loop t = loop_begin(e, L.T);
    LLVMValueRef s = n->attr.reverse ? LLVMBuildSub(e->b, llvm_i64(e, L.T - 1), t.i, "") : t.i;
    LLVMValueRef one = llvm_i64(e, 1), cn = llvm_i64(e, carry_numel);
    LLVMValueRef cur_at = LLVMBuildMul(e->b, LLVMBuildAnd(e->b, t.i, one, ""), cn, "");
    LLVMValueRef prev_at = LLVMBuildMul(e->b, LLVMBuildAnd(e->b, LLVMBuildAdd(e->b, t.i, one, ""), one, ""), cn, "");
    LLVMValueRef first = LLVMBuildICmp(e->b, LLVMIntEQ, t.i, llvm_i64(e, 0), "");
    for (int k = 0; k < n->n_in + B->n_outputs; k++) {
        LLVMValueRef p;
        if (k < nc) { /* a carry in: the initial one at step 0 */
            LLVMValueRef off = LLVMBuildAdd(e->b, prev_at, llvm_i64(e, L.off[k]), "");
            p = LLVMBuildSelect(e->b, first, as_i8p(e, e->ptr[n->in[k]]),
                                as_i8p(e, LLVMBuildInBoundsGEP2(e->b, ft, carry, &off, 1, "")), "");
        } else if (k < nc + nx) { /* one step of a sequence */
            int64_t step = shape_numel(&B->nodes[B->inputs[k]].shape);
            p = as_i8p(e, elem_ptr(e, n->in[k], LLVMBuildMul(e->b, s, llvm_i64(e, step), "")));
        } else if (k < n->n_in) { /* a captured value */
            p = as_i8p(e, e->ptr[n->in[k]]);
        } else if (k - n->n_in < nc) { /* a carry out */
            LLVMValueRef off = LLVMBuildAdd(e->b, cur_at, llvm_i64(e, L.off[k - n->n_in]), "");
            p = as_i8p(e, LLVMBuildInBoundsGEP2(e->b, ft, carry, &off, 1, ""));
        } else { /* a per-step output, stacked over time */
            int o = k - n->n_in;
            p = as_i8p(e, elem_ptr(e, id, LLVMBuildAdd(e->b, llvm_i64(e, L.off[o]),
                                                        LLVMBuildMul(e->b, s, llvm_i64(e, L.numel[o]), ""), "")));
        }
        bool is_in = k < n->n_in;
        LLVMValueRef idx[2] = {llvm_i64(e, 0), llvm_i64(e, is_in ? k : k - n->n_in)};
        LLVMValueRef arr = is_in ? ins : outs;
        LLVMBuildStore(e->b, p, LLVMBuildInBoundsGEP2(e->b, LLVMGetAllocatedType(arr), arr, idx, 2, ""));
    }
    LLVMValueRef zero2[2] = {llvm_i64(e, 0), llvm_i64(e, 0)};
    LLVMValueRef args[] = {LLVMBuildInBoundsGEP2(e->b, LLVMGetAllocatedType(ins), ins, zero2, 2, ""),
                           LLVMBuildInBoundsGEP2(e->b, LLVMGetAllocatedType(outs), outs, zero2, 2, ""),
                           LLVMConstNull(LLVMPointerType(e->i8p, 0)), mem};
    LLVMBuildCall2(e->b, LLVMGlobalGetValueType(body), body, args, 4, "");
    loop_end(e, &t);
    if (nc) {
        LLVMValueRef last = llvm_i64(e, ((L.T - 1) & 1) * carry_numel);
        LLVMBuildMemCpy(e->b, e->ptr[id], 1, LLVMBuildInBoundsGEP2(e->b, ft, carry, &last, 1, ""), 1,
                        llvm_i64(e, carry_numel * 4));
    }
    LLVMBuildFree(e->b, mem);
    return true;
}

/* ---- reductions ---- */

/* reduce_sum / reduce_mean / reduce_max over any axes: the kept dims walk
 * the output densely, the reduced dims accumulate in double (as the eager
 * kernel: NaN wins a max) in a stack slot that SROA keeps in a register. */
static bool emit_reduce(LlvmEmitter *e, int id) {
    if (!all_f32(e, id)) return false;
    const Node *n = &e->g->nodes[id];
    ReduceLoops R;
    reduce_loops(e->g, n, &R);
    if (!shape_numel(&n->shape)) return true;
    LLVMTypeRef dt = LLVMDoubleTypeInContext(e->ctx), ft = LLVMFloatTypeInContext(e->ctx);
    LLVMValueRef acc = entry_alloca(e, dt);
    int64_t out_st[ETCH_MAX_RANK], st = 1;
    for (int d = R.n_kept - 1; d >= 0; d--) out_st[d] = st, st *= R.kept_dim[d];
    Nest K, Rn;
    nest_begin(e, &K, R.n_kept, R.kept_dim, 2, (const int64_t *const[]){out_st, R.kept_stride}, NULL);
    double init = n->op == OP_REDUCE_MAX ? -__builtin_inf() : 0.0;
    LLVMBuildStore(e->b, LLVMConstReal(dt, init), acc);
    bool has_red = R.red_count > 0;
    if (has_red) {
        LLVMValueRef base = K.off[1];
        nest_begin(e, &Rn, R.n_red, R.red_dim, 1, (const int64_t *const[]){R.red_stride}, NULL);
        LLVMValueRef off = LLVMBuildNUWAdd(e->b, base, Rn.off[0], "");
        LLVMValueRef v = LLVMBuildFPExt(e->b, LLVMBuildLoad2(e->b, ft, elem_ptr(e, n->in[0], off), ""), dt, "");
        LLVMValueRef a = LLVMBuildLoad2(e->b, dt, acc, "");
        LLVMValueRef next;
        if (n->op == OP_REDUCE_MAX) /* v > a or v is NaN: v */
            next = LLVMBuildSelect(e->b, LLVMBuildOr(e->b, LLVMBuildFCmp(e->b, LLVMRealOGT, v, a, ""),
                                                     LLVMBuildFCmp(e->b, LLVMRealUNO, v, v, ""), ""), v, a, "");
        else
            next = LLVMBuildFAdd(e->b, a, v, "");
        LLVMBuildStore(e->b, next, acc);
        nest_end(e, &Rn);
    }
    LLVMValueRef r = LLVMBuildLoad2(e->b, dt, acc, "");
    if (n->op == OP_REDUCE_MEAN) r = LLVMBuildFDiv(e->b, r, LLVMConstReal(dt, (double)R.red_count), "");
    LLVMBuildStore(e->b, LLVMBuildFPTrunc(e->b, r, ft, ""), elem_ptr(e, id, K.off[0]));
    nest_end(e, &K);
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
