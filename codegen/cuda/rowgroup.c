/* rowgroup.c (CUDA backend): reductions as cooperative kernels, several
 * threads per reduced "row". It emits the row groups of passes/fuse.c
 * (reductions over the trailing axes with their elementwise producers and
 * consumers: layer norm, a scaled and masked softmax, log_softmax with its
 * NLL, their gradients; codegen/c/rowgroup.c is the same group for the CPU),
 * reduce groups and lone reductions when rows pay (cuda_rows_pay: a
 * contiguous row, or a long reduction into few outputs), and lone softmaxes
 * along the last axis (a one-member row group).
 *
 * A row is the set of elements one output reduces (for a reduction over
 * leading axes, the elements of one output, at strides). Each row gets T
 * threads:
 *   - rows of up to 32 elements: T = the next power of two (1 for rows of
 *     one element, a thread per row), several rows per warp;
 *   - rows of up to 1024: a warp (T = 32), 8 rows per block of 256. A warp
 *     needs no block barrier: its shuffles and __syncwarp are all it needs,
 *     and each lane walks at most 32 elements, which keeps one warp busy
 *     enough; a block would spend more on barriers than on the walk;
 *   - longer rows (5000 columns of a vocabulary's logits): a block per row,
 *     256 threads up to 8192 elements, 512 up to 32768, then 1024, so each
 *     thread walks some 16-32 elements and the row is spread over enough
 *     warps to hide memory latency.
 * Each stage (a reduction; a softmax is two: its maximum and its sum of
 * exponentials) is a strided walk (thread `lane` takes elements lane,
 * lane + T, ...: neighbouring threads read neighbouring elements) folding into
 * a per-thread accumulator, then a tree reduction: ETCH_SHFL_DOWN within each
 * warp, then (block per row) the warps' partials through shared memory.
 * Lane 0 of the row finishes the stage (a mean's division, the softmax's
 * 1 / sum or log-sum-exp), computes the per-row scalar members that follow
 * (rsqrt(var + eps)), stores those read outside, and broadcasts those read
 * later through shared memory (one slot per row of the block; rows per block
 * shrink so these stay within 16 KiB). Elementwise members are
 * recomputed in each walk that needs them; the last walk computes and stores
 * the full-size members read outside (layer norm's output), after every read
 * of the row, so a member written in place over an operand reads the old
 * value. Blocks loop over their rows, so any number of rows fits the grid.
 *
 * Numerics: sums accumulate in double (the eager executor's precision; the
 * tree changes only the order), a maximum propagates NaN (as the eager
 * reduce_max), a softmax takes exp in the value's type, its sum and log in
 * double (as ir/ops/softmax.c and the C backend). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/c/fused.h"
#include "codegen/c/ops/c_ops.h"
#include "codegen/cuda/cuda_emit.h"

/* Threads per row T, rows per block R (threads = R * T), and the rows. */
typedef struct RowPlan {
    int64_t n_rows, len, n_row_blocks;
    int T, R;
} RowPlan;

enum { ROW_SHARED_BYTES = 16384 }; /* the row scalars' shared memory at most */

static void plan_rows(RowPlan *p, int64_t n_rows, int64_t len, int scalar_bytes) {
    p->n_rows = n_rows, p->len = len;
    if (len <= 32) for (p->T = 1; p->T < len; p->T *= 2) {}
    else if (len <= 1024) p->T = 32;
    else p->T = len <= 8192 ? 256 : len <= 32768 ? 512 : 1024;
    p->R = p->T >= 32 ? (p->T == 32 ? 8 : 1) : 256 / p->T;
    while (p->R > 1 && p->R / 2 * p->T >= 32 && (p->R / 2 >= n_rows || p->R * scalar_bytes > ROW_SHARED_BYTES))
        p->R /= 2;
    p->n_row_blocks = (n_rows + p->R - 1) / p->R;
}

/* How a stage folds a value into its accumulator. */
typedef enum { FOLD_SUM, FOLD_MAX_NAN, FOLD_MAX } FoldKind;

typedef struct RowKernel {
    CudaEmitter *e;
    CEmitter *c;
    const Graph *g;
    const MemPlan *mp; /* NULL: a lone op, stored */
    const int *members, *leaves;
    int n_members, n_leaves;
    int *leaf_slot;
    const Shape *S; /* the reduced operand's shape */
    bool reduced[ETCH_MAX_RANK];
    int64_t leaf_stride[OPS_MAX_OPERANDS][ETCH_MAX_RANK], dense[ETCH_MAX_RANK], count;
    char var[ETCH_MAX_RANK][16];
    char (*leaf_idx)[320];
    bool *member, *need, *ready; /* per node: in the kernel; computed in this walk; a row scalar in shared memory */
    bool *shared;                /* per node: a row scalar read after lane 0's block computing it */
    RowPlan p;
} RowKernel;

static bool is_softmax(const Node *n) { return n->op == OP_SOFTMAX || n->op == OP_LOG_SOFTMAX; }
static bool is_stage(const Node *n) { return op_table[n->op].cls == OPC_REDUCE || is_softmax(n); }
static bool is_full(const RowKernel *k, int id) {
    const Node *n = &k->g->nodes[id];
    return op_table[n->op].cls != OPC_REDUCE && shape_equal(&n->shape, k->S);
}
static bool stored(const RowKernel *k, int id) { return !k->mp || k->mp->kind[id] != STORE_REGISTER; }
/* A bool member is an int in a register (codegen/c/group.c) */
static const char *reg_type(DType t) { return t == DT_BOOL ? "int" : dtype_c_type(t); }

/* Declares the variables of the dims selected by `want` (reduced or kept)
 * from linear index lin, into k->var; the others untouched. */
static void unravel_dims(RowKernel *k, const char *lin, bool want) {
    int64_t dim[ETCH_MAX_RANK] = {0};
    int axis[ETCH_MAX_RANK], n = 0;
    char v[ETCH_MAX_RANK][16];
    for (int i = 0; i < k->S->rank; i++)
        if (k->reduced[i] == want) axis[n] = i, dim[n++] = k->S->dim[i];
    cuda_unravel(k->e, lin, dim, n, v);
    for (int i = 0; i < n; i++) memcpy(k->var[axis[i]], v[i], sizeof v[i]);
}

static void index_leaves(RowKernel *k) {
    for (int l = 0; l < k->n_leaves; l++)
        cemit_strided_index(k->S, k->leaf_stride[l], k->var, k->leaf_idx[l], sizeof k->leaf_idx[l]);
}

/* The row scalars in shared memory so far, as the registers members read. */
static void load_scalars(RowKernel *k) {
    for (int m = 0; m < k->n_members; m++) {
        int id = k->members[m];
        if (!k->ready[id]) continue;
        const Node *n = &k->g->nodes[id];
        if (is_softmax(n))
            cemit_line(k->c, "const %s m%d = sm%d[slot]; const double k%d = sk%d[slot]; (void)m%d, (void)k%d;",
                       dtype_c_type(n->dtype), id, id, id, id, id, id);
        else cemit_line(k->c, "const %s v%d = sv%d[slot]; (void)v%d;", reg_type(n->dtype), id, id, id);
    }
}

/* The barrier after which a row's threads see what lane 0 wrote: a row
 * within one warp needs a barrier of the warp only. */
static const char *row_sync(const RowKernel *k) { return k->p.T <= 32 ? "ETCH_WARP_SYNC" : "ETCH_SYNC"; }

/* The next phase, after barrier `sync` (NULL: the first phase), with the
 * thread's lane in its row, its row's slot in the block and its row. */
static void next_phase(RowKernel *k, const char *sync) {
    if (sync) {
        k->c->indent--;
        cemit_line(k->c, "%s", sync);
        k->c->indent++;
    }
    cemit_line(k->c, "const int lane = ETCH_TID %% %d, slot = ETCH_TID / %d;", k->p.T, k->p.T);
    cemit_line(k->c, "const int64_t row = rb * %d + slot;", k->p.R);
    cemit_line(k->c, "(void)lane, (void)row;");
}

/* Opens the walk of this thread over its row's elements (two braces). */
static void walk_open(RowKernel *k) {
    cemit_line(k->c, "if (row < %lld) {", (long long)k->p.n_rows);
    k->c->indent++;
    load_scalars(k);
    unravel_dims(k, "row", false);
    cemit_line(k->c, "for (int64_t j = lane; j < %lld; j += %d) {", (long long)k->p.len, k->p.T);
    k->c->indent++;
    unravel_dims(k, "j", true);
    index_leaves(k);
}

/* Opens lane 0's block of the row (after a stage): loads the row scalars. */
static void lane0_open(RowKernel *k) {
    cemit_line(k->c, "if (lane == 0 && row < %lld) {", (long long)k->p.n_rows);
    k->c->indent++;
    load_scalars(k);
    unravel_dims(k, "row", false);
    for (int i = 0; i < k->S->rank; i++)
        if (k->reduced[i]) snprintf(k->var[i], sizeof k->var[i], "0");
    index_leaves(k);
}

static void mark_needed(RowKernel *k, int x) {
    const Node *n = &k->g->nodes[x];
    if (!k->member[x] || !is_full(k, x) || k->need[x]) return;
    k->need[x] = true;
    for (int i = 0; i < n->n_in; i++) mark_needed(k, n->in[i]);
}

/* The marked full members in id order (marks cleared). */
static void emit_needed(RowKernel *k) {
    for (int m = 0; m < k->n_members; m++) {
        int id = k->members[m];
        if (!k->need[id]) continue;
        k->need[id] = false;
        const Node *n = &k->g->nodes[id];
        if (!is_softmax(n)) {
            cemit_group_member(k->c, k->g, id, k->leaf_slot, k->leaf_idx);
            continue;
        }
        const char *T = dtype_c_type(n->dtype);
        StrBuf x = {0};
        cemit_group_operand(k->c, k->g, id, 0, k->leaf_slot, k->leaf_idx, &x);
        if (n->op == OP_SOFTMAX)
            cemit_line(k->c, "const %s v%d = ETCH_EXP((%s)(%s - m%d)) * (%s)k%d; /* softmax */", T, id, T, x.s, id, T,
                       id);
        else cemit_line(k->c, "const %s v%d = (%s)((double)%s - k%d); /* log_softmax */", T, id, T, x.s, id);
        sb_free(&x);
    }
}

/* `a = fold(a, o)` for doubles a and o. */
static void emit_fold(CEmitter *c, FoldKind f, const char *a, const char *o) {
    if (f == FOLD_SUM) cemit_line(c, "%s += %s;", a, o);
    else if (f == FOLD_MAX) cemit_line(c, "%s = %s > %s ? %s : %s;", a, o, a, o, a);
    else cemit_line(c, "%s = (%s > %s || %s != %s) ? %s : %s;", a, o, a, o, o, o, a);
}

/* One stage: the walk folding `value` (a C expression of operand 0 of stage
 * id, with "$0" standing for the operand) into each thread's accumulator,
 * the tree reduction, and lane 0's block opened with the row's `total`. */
static void stage_reduce(RowKernel *k, int id, FoldKind f, const char *value) {
    CEmitter *c = k->c;
    cemit_line(c, "double a = %s;", f == FOLD_SUM ? "0.0" : "-INFINITY");
    walk_open(k);
    mark_needed(k, k->g->nodes[id].in[0]);
    emit_needed(k);
    StrBuf x = {0}, v = {0};
    cemit_group_operand(c, k->g, id, 0, k->leaf_slot, k->leaf_idx, &x);
    cemit_expand_template(&v, value, (const char *const[]){x.s}, &k->g->nodes[id]);
    cemit_line(c, "const double x = %s;", v.s);
    emit_fold(c, f, "a", "x");
    sb_free(&x), sb_free(&v);
    cemit_close(c), cemit_close(c);
    cemit_line(c, "ETCH_TV(acc) = a;");
    for (int off = (k->p.T < 32 ? k->p.T : 32) / 2; off >= 1; off /= 2) { /* within each warp */
        if (off > 1) { /* a step alone in its phase; the last one opens the phase with the head */
            c->indent--;
            cemit_line(c, "ETCH_WARP_SYNC");
            c->indent++;
        } else {
            next_phase(k, "ETCH_WARP_SYNC");
        }
        char o[48];
        snprintf(o, sizeof o, "ETCH_SHFL_DOWN(acc, %d)", off);
        if (f == FOLD_SUM) emit_fold(c, f, "ETCH_TV(acc)", o);
        else {
            cemit_line(c, "{");
            c->indent++;
            cemit_line(c, "const double o = %s;", o);
            emit_fold(c, f, "ETCH_TV(acc)", "o");
            cemit_close(c);
        }
    }
    if (k->p.T > 32) { /* across the row's warps */
        cemit_line(c, "if (lane %% 32 == 0) red[lane / 32] = ETCH_TV(acc);");
        next_phase(k, "ETCH_SYNC");
        lane0_open(k);
        cemit_line(c, "double total = red[0];");
        cemit_line(c, "for (int warp = 1; warp < %d; warp++) {", k->p.T / 32);
        c->indent++;
        cemit_line(c, "const double o = red[warp];");
        emit_fold(c, f, "total", "o");
        cemit_close(c);
    } else {
        lane0_open(k);
        cemit_line(c, "const double total = ETCH_TV(acc);");
    }
}

/* A row scalar computed in lane 0's block: to shared memory, and out. */
static void publish(RowKernel *k, int id) {
    if (k->shared[id]) cemit_line(k->c, "sv%d[slot] = v%d;", id, id);
    if (stored(k, id)) cemit_line(k->c, "%s[row] = v%d;", k->c->buf[id], id); /* dense over the kept dims */
}

/* A stage, through lane 0's block that finishes it (left open). */
static void emit_stage(RowKernel *k, int id) {
    const Node *n = &k->g->nodes[id];
    const char *T = dtype_c_type(n->dtype);
    char value[96];
    if (is_softmax(n)) {
        stage_reduce(k, id, FOLD_MAX, "(double)$0");
        cemit_line(k->c, "sm%d[slot] = (%s)total;", id, T);
        cemit_close(k->c);
        next_phase(k, row_sync(k));
        snprintf(value, sizeof value, "(double)ETCH_EXP(($T)($0 - sm%d[slot]))", id);
        stage_reduce(k, id, FOLD_SUM, value);
        if (n->op == OP_SOFTMAX) cemit_line(k->c, "sk%d[slot] = 1.0 / total;", id);
        else cemit_line(k->c, "sk%d[slot] = (double)sm%d[slot] + log(total);", id, id);
        return;
    }
    stage_reduce(k, id, n->op == OP_REDUCE_MAX ? FOLD_MAX_NAN : FOLD_SUM, "(double)$0");
    if (n->op == OP_REDUCE_MEAN) snprintf(value, sizeof value, "total / %lld.0", (long long)k->count);
    else snprintf(value, sizeof value, "total");
    cemit_line(k->c, "const %s v%d = (%s)(%s); /* %s */", T, id, T, value, op_table[n->op].name);
    publish(k, id);
}

/* Which row scalars go through shared memory: a softmax's maximum and
 * 1 / sum (or log-sum-exp), and the others read after the lane 0 block that
 * computes them (by a walk, or by the block of a later stage). */
static void find_shared(RowKernel *k) {
    int *block = calloc((size_t)k->g->n_nodes + 1, sizeof *block), stages = 0;
    if (!block) abort();
    for (int m = 0; m < k->n_members; m++) {
        stages += is_stage(&k->g->nodes[k->members[m]]);
        block[k->members[m]] = stages;
    }
    for (int m = 0; m < k->n_members; m++) {
        int id = k->members[m];
        const Node *n = &k->g->nodes[id];
        k->shared[id] = is_softmax(n);
        for (int u = m + 1; u < k->n_members && !is_full(k, id) && !k->shared[id]; u++) {
            const Node *un = &k->g->nodes[k->members[u]];
            for (int i = 0; i < un->n_in; i++)
                if (un->in[i] == id && (is_full(k, k->members[u]) || block[k->members[u]] != block[id]))
                    k->shared[id] = true;
        }
    }
    free(block);
}

/* The kernel of members (in id order) reading leaves (numbered in
 * leaf_slot): one cooperative walk per stage, the last walk storing. */
static void emit_rows(CudaEmitter *e, const Graph *g, const MemPlan *mp, const int *members, int n_members,
                      const int *leaves, int n_leaves, int *leaf_slot, const char *what) {
    RowKernel k = {.e = e, .c = &e->c, .g = g, .mp = mp, .members = members, .leaves = leaves,
                   .n_members = n_members, .n_leaves = n_leaves, .leaf_slot = leaf_slot};
    k.member = calloc((size_t)g->n_nodes + 1, sizeof *k.member);
    k.need = calloc((size_t)g->n_nodes + 1, sizeof *k.need);
    k.ready = calloc((size_t)g->n_nodes + 1, sizeof *k.ready);
    k.shared = calloc((size_t)g->n_nodes + 1, sizeof *k.shared);
    k.leaf_idx = malloc(sizeof *k.leaf_idx * (size_t)(n_leaves + 1));
    if (!k.member || !k.need || !k.ready || !k.shared || !k.leaf_idx) abort();
    int scalar_bytes = 0;
    for (int m = 0; m < n_members; m++) {
        const Node *n = &g->nodes[members[m]];
        k.member[members[m]] = true;
        if (is_stage(n) && !k.S) { /* the rows, from the first stage */
            k.S = op_table[n->op].cls == OPC_REDUCE ? &g->nodes[n->in[0]].shape : &n->shape;
            for (int i = 0; i < n->attr.n_axes && !is_softmax(n); i++) k.reduced[n->attr.axes[i]] = true;
            for (int i = n->attr.axis; i < k.S->rank && is_softmax(n); i++) k.reduced[i] = true;
        }
    }
    find_shared(&k);
    for (int m = 0; m < n_members; m++) {
        const Node *n = &g->nodes[members[m]];
        if (is_softmax(n)) scalar_bytes += (int)dtype_size(n->dtype) + 8;
        else if (k.shared[members[m]]) scalar_bytes += n->dtype == DT_BOOL ? 4 : (int)dtype_size(n->dtype);
    }
    int64_t n_rows = 1;
    k.count = 1;
    for (int i = 0; i < k.S->rank; i++) *(k.reduced[i] ? &k.count : &n_rows) *= k.S->dim[i];
    shape_strides(k.S, k.dense);
    for (int l = 0; l < n_leaves; l++) ops_broadcast_strides(&g->nodes[leaves[l]].shape, k.S, k.leaf_stride[l]);
    plan_rows(&k.p, n_rows, k.count, scalar_bytes);
    CEmitter *c = &e->c;
    cuda_kernel_begin(e, k.p.n_row_blocks < CUDA_MAX_GRID ? k.p.n_row_blocks : CUDA_MAX_GRID, k.p.R * k.p.T, what);
    cemit_line(c, "/* rows of %lld: %d threads per row, %d rows per block */", (long long)k.count, k.p.T, k.p.R);
    if (k.p.T > 32) cemit_line(c, "ETCH_SHARED(double, red, %d);", k.p.T / 32);
    for (int m = 0; m < n_members; m++) {
        const Node *n = &g->nodes[members[m]];
        if (is_softmax(n))
            cemit_line(c, "ETCH_SHARED(%s, sm%d, %d); ETCH_SHARED(double, sk%d, %d);", dtype_c_type(n->dtype),
                       members[m], k.p.R, members[m], k.p.R);
        else if (k.shared[members[m]])
            cemit_line(c, "ETCH_SHARED(%s, sv%d, %d);", reg_type(n->dtype), members[m], k.p.R);
    }
    cemit_line(c, "ETCH_THREAD_VAR(double, acc);");
    cemit_line(c, "for (int64_t rb = ETCH_BLOCK; rb < %lld; rb += ETCH_NBLOCKS) {", (long long)k.p.n_row_blocks);
    c->indent++;
    cemit_line(c, "ETCH_THREADS");
    c->indent++;
    next_phase(&k, NULL);
    /* row scalars before the first stage (a per-row operand's transform), then the stages,
     * each finished in lane 0's block with the row scalars after it */
    bool open = false, any_stored = false;
    for (int m = 0; m < n_members; m++) {
        int id = members[m];
        const Node *n = &g->nodes[id];
        any_stored = any_stored || (is_full(&k, id) && stored(&k, id));
        if (is_stage(n)) {
            if (open) { /* close the previous block: its scalars become readable */
                cemit_close(c);
                next_phase(&k, row_sync(&k));
            }
            for (int p = 0; p < m; p++) k.ready[members[p]] = k.shared[members[p]];
            emit_stage(&k, id);
            open = true;
        } else if (!is_full(&k, id)) {
            if (!open) lane0_open(&k), open = true;
            cemit_group_member(c, g, id, leaf_slot, k.leaf_idx);
            publish(&k, id);
        }
    }
    if (open) cemit_close(c);
    for (int m = 0; m < n_members; m++) k.ready[members[m]] = k.shared[members[m]];
    if (any_stored) { /* the last walk: the full members read outside */
        next_phase(&k, row_sync(&k));
        walk_open(&k);
        for (int m = 0; m < n_members; m++)
            if (is_full(&k, members[m]) && stored(&k, members[m])) mark_needed(&k, members[m]);
        emit_needed(&k);
        char idx[320];
        cemit_strided_index(k.S, k.dense, k.var, idx, sizeof idx);
        for (int m = 0; m < n_members; m++)
            if (is_full(&k, members[m]) && stored(&k, members[m]))
                cemit_line(c, "%s[%s] = v%d;", c->buf[members[m]], idx, members[m]);
        cemit_close(c), cemit_close(c);
    }
    c->indent--;
    cemit_line(c, "ETCH_THREADS_END");
    cemit_close(c);
    cuda_kernel_end(e);
    free(k.member), free(k.need), free(k.ready), free(k.shared), free(k.leaf_idx);
}

bool cuda_rows_pay(const Shape *S, const bool *reduced) {
    int64_t count = 1, n_out = 1;
    int last = -1;
    for (int i = 0; i < S->rank; i++) {
        if (reduced[i]) count *= S->dim[i];
        else n_out *= S->dim[i];
        if (S->dim[i] > 1) last = i;
    }
    return (last >= 0 && reduced[last]) || (count >= 256 && n_out <= 1024);
}

void cuda_row_group(CudaEmitter *e, const Graph *g, const MemPlan *mp, int at, int *leaf_slot) {
    int members[OPS_MAX_OPERANDS * 4], n_members, leaves[OPS_MAX_OPERANDS], n_leaves;
    cemit_group_collect(g, g->nodes[at].attr.group.id, at + 1, -1, true, leaf_slot, members, &n_members, leaves,
                        &n_leaves);
    char what[256];
    cuda_group_what(g, at, n_members, what, sizeof what);
    emit_rows(e, g, mp, members, n_members, leaves, n_leaves, leaf_slot, what);
    for (int l = 0; l < n_leaves; l++) leaf_slot[leaves[l]] = -1;
}

void cuda_emit_rows_op(CudaEmitter *e, const Graph *g, int id) {
    int *leaf_slot = malloc(sizeof(int) * ((size_t)g->n_nodes + 1)), in = g->nodes[id].in[0];
    if (!leaf_slot) abort();
    for (int i = 0; i < g->n_nodes; i++) leaf_slot[i] = -1;
    leaf_slot[in] = 0;
    char what[256];
    cuda_describe(g, id, what, sizeof what);
    emit_rows(e, g, NULL, &id, 1, &in, 1, leaf_slot, what);
    free(leaf_slot);
}
