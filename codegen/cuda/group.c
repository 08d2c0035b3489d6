/* group.c (CUDA backend): fused groups (passes/fuse.c) as kernels. An
 * elementwise group is one thread per element of the group's shape, every
 * member a register from its op's C template (the C backend's member
 * helpers, codegen/c/fused.h, write the same scalar code), and only members
 * read outside the group stored. A group rooted at a reduction over leading
 * axes with many outputs and short reductions (summing a gradient's rows
 * into a bias gradient) is one thread per output element, its producers
 * computed inside the walk over the reduced elements and folded into a
 * double accumulator, in the order the C backend and the eager executor sum;
 * neighbouring threads read neighbouring columns. Row groups, and reduce
 * groups with few outputs and long reductions, are rows of cooperating
 * threads (rowgroup.c). A group holding a matrix product (FUSE_EPILOGUE) is
 * the product's GEMM kernel (ops/matmul.c) whose threads compute the group's
 * members from each element of their register micro-tile and store only
 * those read outside, so `relu(x @ W + b)` is one kernel that never writes
 * x @ W. */
#include <stdlib.h>
#include <string.h>

#include "codegen/c/fused.h"
#include "codegen/c/ops/c_ops.h"
#include "codegen/cuda/cuda_emit.h"

void cuda_group_what(const Graph *g, int root, int n_members, char *buf, size_t n) {
    char ty[96];
    const Node *r = &g->nodes[root];
    snprintf(buf, n, "fused: %d ops -> %s %s @ %s:%d:%d", n_members, op_table[r->op].name,
             type_format(ty, sizeof ty, r->dtype, &r->shape), r->loc.file ? r->loc.file : "?", r->loc.line, r->loc.col);
}

static void cuda_elementwise_group(CudaEmitter *e, const Graph *g, const MemPlan *mp, int root, int *leaf_slot) {
    int gid = g->nodes[root].attr.group.id, members[OPS_MAX_OPERANDS * 4], n_members, leaves[OPS_MAX_OPERANDS];
    int n_leaves;
    cemit_group_collect(g, gid, root + 1, -1, false, leaf_slot, members, &n_members, leaves, &n_leaves);
    const Shape *S = &g->nodes[root].shape;
    int64_t st[OPS_MAX_OPERANDS][ETCH_MAX_RANK];
    for (int l = 0; l < n_leaves; l++) ops_broadcast_strides(&g->nodes[leaves[l]].shape, S, st[l]);
    for (int m = 0; m < n_members; m++)
        if (g->nodes[members[m]].op == OP_SLICE) { /* a view member: its operand walked at its own strides */
            int in = g->nodes[members[m]].in[0];
            shape_strides(&g->nodes[in].shape, st[leaf_slot[in]]);
        }
    OpsLoops L;
    ops_loops_strided(S, (const int64_t (*)[ETCH_MAX_RANK])st, n_leaves, &L);
    char what[256], var[ETCH_MAX_RANK][16];
    cuda_group_what(g, root, n_members, what, sizeof what);
    cuda_elementwise_begin(e, shape_numel(S), what);
    cuda_unravel(e, "i", L.dim, L.rank, var);
    char (*leaf_idx)[320] = malloc(sizeof *leaf_idx * (size_t)(n_leaves + 1));
    if (!leaf_idx) abort();
    for (int l = 0; l < n_leaves; l++) cemit_loops_index(&L, l, var, leaf_idx[l], sizeof leaf_idx[l]);
    for (int m = 0; m < n_members; m++) cemit_group_member(&e->c, g, members[m], leaf_slot, leaf_idx);
    for (int m = 0; m < n_members; m++)
        if (mp->kind[members[m]] != STORE_REGISTER) cemit_line(&e->c, "%s[i] = v%d;", e->c.buf[members[m]], members[m]);
    cuda_elementwise_end(e);
    for (int l = 0; l < n_leaves; l++) leaf_slot[leaves[l]] = -1;
    free(leaf_idx);
}

/* A group rooted at a reduction: rows of cooperating threads when they pay
 * (rowgroup.c), else one thread per output element. */
static void cuda_reduce_group(CudaEmitter *e, const Graph *g, const MemPlan *mp, int root, int *leaf_slot) {
    const Node *R = &g->nodes[root];
    const Shape *S = &g->nodes[R->in[0]].shape;
    bool reduced[ETCH_MAX_RANK] = {false};
    for (int i = 0; i < R->attr.n_axes; i++) reduced[R->attr.axes[i]] = true;
    if (cuda_rows_pay(S, reduced)) {
        cuda_row_group(e, g, mp, root, leaf_slot);
        return;
    }
    int gid = R->attr.group.id, members[OPS_MAX_OPERANDS * 4], n_members, leaves[OPS_MAX_OPERANDS], n_leaves;
    int64_t lst[OPS_MAX_OPERANDS][ETCH_MAX_RANK], dense[ETCH_MAX_RANK];
    shape_strides(S, dense);
    cemit_group_collect(g, gid, root, -1, false, leaf_slot, members, &n_members, leaves, &n_leaves);
    for (int l = 0; l < n_leaves; l++) ops_broadcast_strides(&g->nodes[leaves[l]].shape, S, lst[l]);
    int64_t kept_dim[ETCH_MAX_RANK], count = 1;
    int n_kept = 0, kept_axis[ETCH_MAX_RANK];
    for (int i = 0; i < S->rank; i++)
        if (!reduced[i]) kept_axis[n_kept] = i, kept_dim[n_kept++] = S->dim[i];
        else count *= S->dim[i];
    char what[256], var[ETCH_MAX_RANK][16], kv[ETCH_MAX_RANK][16], idx[320];
    cuda_group_what(g, root, n_members + 1, what, sizeof what);
    cuda_elementwise_begin(e, shape_numel(&R->shape), what);
    cuda_unravel(e, "i", kept_dim, n_kept, kv);
    for (int k = 0; k < n_kept; k++) memcpy(var[kept_axis[k]], kv[k], sizeof kv[k]);
    cemit_line(&e->c, "double acc = %s;", R->op == OP_REDUCE_MAX ? "-INFINITY" : "0.0");
    int n_red = 0;
    for (int i = 0; i < S->rank; i++)
        if (reduced[i]) {
            if (S->dim[i] > 1) cemit_for(&e->c, var[i], sizeof var[i], S->dim[i]), n_red++;
            else snprintf(var[i], sizeof var[i], "0");
        }
    char (*leaf_idx)[320] = malloc(sizeof *leaf_idx * (size_t)(n_leaves + 1));
    if (!leaf_idx) abort();
    for (int l = 0; l < n_leaves; l++) cemit_strided_index(S, lst[l], var, leaf_idx[l], sizeof leaf_idx[l]);
    for (int m = 0; m < n_members; m++) {
        cemit_group_member(&e->c, g, members[m], leaf_slot, leaf_idx);
        if (mp->kind[members[m]] != STORE_REGISTER) {
            cemit_strided_index(S, dense, var, idx, sizeof idx);
            cemit_line(&e->c, "%s[%s] = v%d;", e->c.buf[members[m]], idx, members[m]);
        }
    }
    int v = R->in[0];
    if (R->op == OP_REDUCE_MAX)
        cemit_line(&e->c, "acc = ((double)v%d > acc || v%d != v%d) ? (double)v%d : acc;", v, v, v, v);
    else cemit_line(&e->c, "acc += (double)v%d;", v);
    for (int k = 0; k < n_red; k++) cemit_close(&e->c);
    if (R->op == OP_REDUCE_MEAN) cemit_line(&e->c, "acc /= %lld.0;", (long long)count);
    cemit_line(&e->c, "%s[i] = (%s)acc;", e->c.buf[root], dtype_c_type(R->dtype));
    cuda_elementwise_end(e);
    for (int l = 0; l < n_leaves; l++) leaf_slot[leaves[l]] = -1;
    free(leaf_idx);
}

/* A GEMM epilogue: the members, the leaves' index expressions (at row r,
 * column c of the product) and the members to store. */
typedef struct EpilogueGroup {
    const Graph *g;
    const int *leaf_slot;
    int members[OPS_MAX_OPERANDS * 4], n_members, stores[OPS_MAX_OPERANDS * 4], n_stores;
    char (*leaf_idx)[320];
    long long n_cols;
} EpilogueGroup;

static void emit_epilogue_element(CudaEmitter *e, const void *ctx) {
    const EpilogueGroup *ep = ctx;
    for (int m = 0; m < ep->n_members; m++) cemit_group_member(&e->c, ep->g, ep->members[m], ep->leaf_slot, ep->leaf_idx);
    for (int s = 0; s < ep->n_stores; s++)
        cemit_line(&e->c, "%s[r * %lld + c] = v%d;", e->c.buf[ep->stores[s]], ep->n_cols, ep->stores[s]);
}

static void cuda_epilogue_group(CudaEmitter *e, const Graph *g, const MemPlan *mp, int at, int *leaf_slot) {
    int gid = g->nodes[at].attr.group.id, mm = -1, root = at, leaves[OPS_MAX_OPERANDS], n_leaves;
    for (int id = 0; id < g->n_nodes; id++)
        if (g->nodes[id].attr.group.id == gid) {
            if (g->nodes[id].op == OP_MATMUL) mm = id; /* exactly one (the verifier checks) */
            root = id;                                 /* the last member */
        }
    EpilogueGroup ep = {.g = g, .leaf_slot = leaf_slot, .n_cols = (long long)g->nodes[mm].shape.dim[1]};
    /* scalar constants are read in place, as literals */
    cemit_group_collect(g, gid, root + 1, mm, true, leaf_slot, ep.members, &ep.n_members, leaves, &n_leaves);
    for (int m = 0; m < ep.n_members; m++)
        if (mp->kind[ep.members[m]] != STORE_REGISTER) ep.stores[ep.n_stores++] = ep.members[m];
    ep.leaf_idx = malloc(sizeof *ep.leaf_idx * (size_t)(n_leaves + 1));
    if (!ep.leaf_idx) abort();
    const Shape *P = &g->nodes[mm].shape;
    char var[2][16] = {"r", "c"};
    for (int l = 0; l < n_leaves; l++) { /* a leaf read as if broadcast to the product's [M, N] */
        int64_t st[ETCH_MAX_RANK];
        ops_broadcast_strides(&g->nodes[leaves[l]].shape, P, st);
        cemit_strided_index(P, st, var, ep.leaf_idx[l], sizeof ep.leaf_idx[l]);
    }
    char what[256];
    cuda_group_what(g, root, ep.n_members + 1, what, sizeof what);
    cuda_emit_gemm(e, g, mm, what, &(CudaGemmEpilogue){emit_epilogue_element, &ep});
    for (int l = 0; l < n_leaves; l++) leaf_slot[leaves[l]] = -1;
    free(ep.leaf_idx);
}

const CudaGroupEmitFn cuda_group_emitters[FUSE_KIND_COUNT] = {
    [FUSE_ELEMENTWISE] = cuda_elementwise_group,
    [FUSE_REDUCE] = cuda_reduce_group,
    [FUSE_ROWS] = cuda_row_group,
    [FUSE_EPILOGUE] = cuda_epilogue_group,
};
