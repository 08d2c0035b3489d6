/* group.c: what every fused-group emitter shares (collecting a group's
 * members and leaves, a member's value as a register from its op's C
 * template), and the two plain group kinds: an elementwise group (one loop
 * nest over the group's shape, every member a local scalar) and a reduction
 * group (the producers computed inside the reduction's loops and folded into
 * its accumulator). Row groups (rowgroup.c) and matmul epilogues
 * (epilogue.c) build on the shared part; the driver (emit_c.c) calls the
 * emitter of each group's kind (c_group_emitters, below). Nothing here calls
 * back into the driver, so the files form no circle:
 * emit_c.c -> {group.c, rowgroup.c, epilogue.c}, rowgroup.c/epilogue.c -> group.c. */
#include <stdlib.h>
#include <string.h>

#include "codegen/c/fused.h"
#include "codegen/c/ops/c_ops.h"

/* The C expression of operand k of fused-group member id (see fused.h). */
void cemit_group_operand(const CEmitter *e, const Graph *g, int id, int k, const int *leaf_slot,
                         char (*leaf_idx)[320], StrBuf *out) {
    const Node *x = &g->nodes[id];
    int in = x->in[k];
    const Node *v = &g->nodes[in];
    if (fuse_same_group(x, v)) {
        sb_printf(out, "v%d", in);
    } else if (v->op == OP_CONST && shape_numel(&v->shape) == 1) {
        char lit[64];
        cemit_literal(lit, sizeof lit, v->attr.value, v->dtype);
        sb_puts(out, lit);
    } else {
        sb_printf(out, "%s[%s]", e->buf[in], leaf_idx[leaf_slot[in]]);
    }
}

/* Emits `const T vN = expr;` for fused-group member id (see fused.h). */
void cemit_group_member(CEmitter *e, const Graph *g, int id, const int *leaf_slot, char (*leaf_idx)[320]) {
    const Node *x = &g->nodes[id];
    if (x->op == OP_SLICE) { /* a view member (passes/fuse.c): its operand, a leaf, read in place */
        const Node *v = &g->nodes[x->in[0]];
        int64_t st[ETCH_MAX_RANK];
        shape_strides(&v->shape, st);
        const char *reg = dtype_c_type(x->dtype);
        cemit_line(e, "const %s v%d = %s[%lld + %s]; /* slice */", reg, id, e->buf[x->in[0]],
                   (long long)(x->attr.start * st[x->attr.axis]), leaf_idx[leaf_slot[x->in[0]]]);
        return;
    }
    StrBuf operand[3] = {{0}, {0}, {0}};
    for (int k = 0; k < x->n_in; k++) cemit_group_operand(e, g, id, k, leaf_slot, leaf_idx, &operand[k]);
    StrBuf expr = {0};
    const char *ops3[3] = {operand[0].s ? operand[0].s : "", operand[1].s ? operand[1].s : "",
                           operand[2].s ? operand[2].s : ""};
    cemit_expand_template(&expr, c_op_table[x->op].c_expr, ops3, x);
    /* a bool in a register is an int: GCC 12 does not vectorize a loop that
     * narrows a comparison of wide values to uint8_t (one-hot labels, masks) */
    const char *reg = x->dtype == DT_BOOL ? "int" : dtype_c_type(x->dtype);
    cemit_line(e, "const %s v%d = (%s)%s; /* %s */", reg, id, reg, expr.s, op_table[x->op].name);
    sb_free(&expr);
    for (int k = 0; k < 3; k++) sb_free(&operand[k]);
}

/* A group's members and leaves (see fused.h). */
void cemit_group_collect(const Graph *g, int gid, int end, int skip, bool skip_literals, int *leaf_slot, int *members,
                         int *n_members, int *leaves, int *n_leaves) {
    *n_members = *n_leaves = 0;
    for (int id = 0; id < end; id++) {
        const Node *x = &g->nodes[id];
        if (x->attr.group.id != gid || id == skip) continue;
        members[(*n_members)++] = id;
        for (int k = 0; k < x->n_in; k++) {
            int in = x->in[k];
            const Node *v = &g->nodes[in];
            bool literal = skip_literals && v->op == OP_CONST && shape_numel(&v->shape) == 1;
            if (v->attr.group.id == gid || literal || leaf_slot[in] >= 0) continue;
            leaf_slot[in] = *n_leaves;
            leaves[(*n_leaves)++] = in;
        }
    }
}

void cemit_strided_index(const Shape *S, const int64_t *st, char (*var)[16], char *buf, size_t n) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < S->rank; i++)
        if (st[i] && S->dim[i] > 1)
            len += (size_t)snprintf(buf + len, n - len, "%s%s * %lld", len ? " + " : "", var[i], (long long)st[i]);
    if (!len) snprintf(buf, n, "0");
}

void emit_elementwise_group(CEmitter *e, const Graph *g, const MemPlan *mp, int root, int *leaf_slot) {
    int gid = g->nodes[root].attr.group.id, members[OPS_MAX_OPERANDS * 4], n_members, leaves[OPS_MAX_OPERANDS];
    int n_leaves;
    char ty[96];
    cemit_group_collect(g, gid, root + 1, -1, false, leaf_slot, members, &n_members, leaves, &n_leaves);
    /* leaves broadcast to the group's shape, except the operands of slice
     * members: those are walked at their own strides, the slice's start an offset */
    const Shape *S = &g->nodes[root].shape;
    int64_t st[OPS_MAX_OPERANDS][ETCH_MAX_RANK];
    for (int l = 0; l < n_leaves; l++) ops_broadcast_strides(&g->nodes[leaves[l]].shape, S, st[l]);
    for (int m = 0; m < n_members; m++)
        if (g->nodes[members[m]].op == OP_SLICE) {
            int in = g->nodes[members[m]].in[0];
            shape_strides(&g->nodes[in].shape, st[leaf_slot[in]]);
        }
    OpsLoops L;
    ops_loops_strided(S, (const int64_t (*)[ETCH_MAX_RANK])st, n_leaves, &L);
    cemit_line(e, "{ /* fused: %d ops -> %s */", n_members, type_format(ty, sizeof ty, g->nodes[root].dtype,
                                                                       &g->nodes[root].shape));
    e->indent++;
    char var[ETCH_MAX_RANK][16], idx[256];
    for (int r = 0; r < L.rank; r++) cemit_for(e, var[r], sizeof var[r], L.dim[r]);
    char (*leaf_idx)[320] = malloc(sizeof *leaf_idx * (size_t)(n_leaves + 1));
    for (int l = 0; l < n_leaves; l++) cemit_loops_index(&L, l, var, leaf_idx[l], sizeof leaf_idx[l]);
    for (int m = 0; m < n_members; m++) cemit_group_member(e, g, members[m], leaf_slot, leaf_idx);
    cemit_loops_index(&L, -1, var, idx, sizeof idx);
    for (int m = 0; m < n_members; m++)
        if (mp->kind[members[m]] != STORE_REGISTER) cemit_line(e, "%s[%s] = v%d;", e->buf[members[m]], idx, members[m]);
    for (int r = 0; r < L.rank; r++) cemit_close(e);
    e->indent--;
    cemit_line(e, "}");
    for (int l = 0; l < n_leaves; l++) leaf_slot[leaves[l]] = -1;
    free(leaf_idx);
}

/* Emits a group rooted at a reduction: the members (elementwise producers of
 * the reduction's input) are computed inside the reduction's loop nest (kept
 * dims outside, reduced dims inside) and folded into the accumulator, so the
 * reduced tensor is never stored unless a member is read elsewhere. */
void emit_reduce_group(CEmitter *e, const Graph *g, const MemPlan *mp, int root, int *leaf_slot) {
    const Node *R = &g->nodes[root];
    int gid = R->attr.group.id, members[OPS_MAX_OPERANDS * 4], n_members, leaves[OPS_MAX_OPERANDS], n_leaves;
    const Shape *S = &g->nodes[R->in[0]].shape;
    int64_t lst[OPS_MAX_OPERANDS][ETCH_MAX_RANK], dense[ETCH_MAX_RANK];
    shape_strides(S, dense);
    cemit_group_collect(g, gid, root, -1, false, leaf_slot, members, &n_members, leaves, &n_leaves);
    for (int l = 0; l < n_leaves; l++) ops_broadcast_strides(&g->nodes[leaves[l]].shape, S, lst[l]);
    bool reduced[ETCH_MAX_RANK] = {false};
    for (int i = 0; i < R->attr.n_axes; i++) reduced[R->attr.axes[i]] = true;
    char var[ETCH_MAX_RANK][16], ty[96];
    int64_t count = 1, out_stride[ETCH_MAX_RANK], st = 1;
    for (int i = S->rank - 1; i >= 0; i--) { /* the output is dense over the kept dims, in order */
        out_stride[i] = reduced[i] ? 0 : st;
        if (!reduced[i]) st *= S->dim[i];
        else count *= S->dim[i];
    }
    /* When the innermost dim is kept (summing the rows of [N, C]), it becomes
     * the innermost loop with one accumulator per column: contiguous reads
     * that vectorize, and each output sums in the same order as before. */
    int last = S->rank - 1;
    bool columns = last >= 0 && !reduced[last] && S->dim[last] > 1 && S->dim[last] <= 4096 && count > 1;
    const char *init = R->op == OP_REDUCE_MAX ? "-INFINITY" : "0.0";
    char acc[32] = "acc";
    cemit_line(e, "{ /* fused: %d ops -> %s %s */", n_members + 1, op_table[R->op].name,
               type_format(ty, sizeof ty, R->dtype, &R->shape));
    e->indent++;
    int n_kept_loops = 0, n_red = 0;
    for (int pass = 0; pass < 2; pass++) { /* kept dims, then the accumulator(s), then reduced dims */
        if (pass == 1 && columns) {
            char j[16];
            cemit_line(e, "double acc[%lld];", (long long)S->dim[last]);
            cemit_for(e, j, sizeof j, S->dim[last]);
            cemit_line(e, "acc[%s] = %s;", j, init);
            cemit_close(e);
        } else if (pass == 1) {
            cemit_line(e, "double acc = %s;", init);
        }
        for (int i = 0; i < S->rank; i++)
            if (S->dim[i] > 1 && reduced[i] == (pass == 1) && !(columns && i == last)) {
                cemit_for(e, var[i], sizeof var[i], S->dim[i]);
                pass ? n_red++ : n_kept_loops++;
            } else if (S->dim[i] <= 1 && pass == 0) {
                snprintf(var[i], sizeof var[i], "0");
            }
    }
    if (columns) {
        cemit_for(e, var[last], sizeof var[last], S->dim[last]);
        snprintf(acc, sizeof acc, "acc[%s]", var[last]);
    }
    char idx[320];
    char (*leaf_idx)[320] = malloc(sizeof *leaf_idx * (size_t)(n_leaves + 1));
    for (int l = 0; l < n_leaves; l++) {
        cemit_strided_index(S, lst[l], var, idx, sizeof idx);
        memcpy(leaf_idx[l], idx, sizeof idx);
    }
    for (int m = 0; m < n_members; m++) {
        cemit_group_member(e, g, members[m], leaf_slot, leaf_idx);
        if (mp->kind[members[m]] != STORE_REGISTER) {
            cemit_strided_index(S, dense, var, idx, sizeof idx);
            cemit_line(e, "%s[%s] = v%d;", e->buf[members[m]], idx, members[m]);
        }
    }
    int v = R->in[0];
    if (R->op == OP_REDUCE_MAX)
        cemit_line(e, "%s = ((double)v%d > %s || v%d != v%d) ? (double)v%d : %s;", acc, v, acc, v, v, v, acc);
    else cemit_line(e, "%s += (double)v%d;", acc, v);
    if (columns) cemit_close(e);
    for (int i = 0; i < n_red; i++) cemit_close(e);
    if (columns) {
        cemit_for(e, var[last], sizeof var[last], S->dim[last]);
        snprintf(acc, sizeof acc, "acc[%s]", var[last]);
    }
    if (R->op == OP_REDUCE_MEAN) cemit_line(e, "%s /= %lld.0;", acc, (long long)count);
    cemit_strided_index(S, out_stride, var, idx, sizeof idx);
    cemit_line(e, "%s[%s] = (%s)%s;", e->buf[root], idx, dtype_c_type(R->dtype), acc);
    if (columns) cemit_close(e);
    for (int i = 0; i < n_kept_loops; i++) cemit_close(e);
    e->indent--;
    cemit_line(e, "}");
    for (int l = 0; l < n_leaves; l++) leaf_slot[leaves[l]] = -1;
    free(leaf_idx);
}

const CGroupEmitFn c_group_emitters[FUSE_KIND_COUNT] = {
    [FUSE_ELEMENTWISE] = emit_elementwise_group,
    [FUSE_REDUCE] = emit_reduce_group,
    [FUSE_ROWS] = emit_row_group,
    [FUSE_EPILOGUE] = emit_matmul_group,
};
