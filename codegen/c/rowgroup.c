/* rowgroup.c: emitting a row group (passes/fuse.c): reductions over the
 * trailing axes of a tensor (its rows) together with their elementwise
 * producers and consumers, as one kernel. For each row, the kernel walks the
 * row once per stage (a reduction; a softmax is two: its maximum and its sum
 * of exponentials), computing inside the walk the producers that stage needs,
 * then computes the per-row values that follow (a mean, rsqrt(var + eps)) as
 * scalars, and finally walks the row once more to compute and store the
 * members read outside the group (layer norm's output, softmax's result).
 * Elementwise members are recomputed in each walk that needs them instead of
 * stored: an exp per element is cheaper than a round trip through memory.
 * Every store happens in the last walk, after all reads of the row, so a
 * member written in place over one of its own operands reads the old value.
 *
 * Numerics follow the single-op kernels: sums accumulate in double (one
 * partial sum per vector lane, see walk_fold), a softmax computes exp in the
 * value's type and its sum and log in double as emit_softmax does, and a
 * maximum propagates NaN as emit_reduce_group does. */
#include "codegen/c/fused.h"

#include <stdlib.h>

#include "codegen/c/ops/c_ops.h"

typedef struct RowEmit {
    CEmitter *e;
    const Graph *g;
    const MemPlan *mp;
    int gid;
    const Shape *S;
    int k; /* first row axis */
    int members[OPS_MAX_OPERANDS * 4], n_members, leaves[OPS_MAX_OPERANDS], n_leaves;
    int *leaf_slot;
    int64_t leaf_stride[OPS_MAX_OPERANDS][ETCH_MAX_RANK], dense[ETCH_MAX_RANK], row_out[ETCH_MAX_RANK];
    char var[ETCH_MAX_RANK][16];
    char (*leaf_idx)[320];
    bool *need; /* per node: computed in the current walk */
} RowEmit;

static bool is_full(const RowEmit *r, int id) {
    const Node *n = &r->g->nodes[id];
    return op_table[n->op].cls != OPC_REDUCE && shape_equal(&n->shape, r->S);
}

static bool is_softmax(const Node *n) { return n->op == OP_SOFTMAX || n->op == OP_LOG_SOFTMAX; }

static bool is_stage(const Node *n) { return op_table[n->op].cls == OPC_REDUCE || is_softmax(n); }

/* The index over the current loop variables of strides st ("0" when none). */
static void row_index(RowEmit *r, const int64_t *st, char *buf, size_t n) {
    cemit_strided_index(r->S, st, r->var, buf, n);
}

/* Opens the loops over the row dims (fresh variables) and indexes the leaves
 * by them. With `reduction` ("+:a12") the innermost loop is
 * `#pragma omp simd reduction(...)` (see walk_fold). */
static int open_row(RowEmit *r, const char *reduction) {
    int opened = 0, last = -1;
    for (int i = r->k; i < r->S->rank; i++)
        if (r->S->dim[i] > 1) last = i;
    for (int i = r->k; i < r->S->rank; i++)
        if (r->S->dim[i] > 1) {
            if (i == last && reduction) cemit_line(r->e, "#pragma omp simd reduction(%s)", reduction);
            cemit_for(r->e, r->var[i], sizeof r->var[i], r->S->dim[i]), opened++;
        }
    for (int l = 0; l < r->n_leaves; l++) row_index(r, r->leaf_stride[l], r->leaf_idx[l], sizeof r->leaf_idx[l]);
    return opened;
}

static void close_loops(RowEmit *r, int n) {
    while (n--) cemit_close(r->e);
}

/* The C expression of operand k of member id. */
static void operand_expr(const RowEmit *r, int id, int k, StrBuf *out) {
    cemit_group_operand(r->e, r->g, id, k, r->leaf_slot, r->leaf_idx, out);
}

/* A full member read outside the group: stored in the last walk. */
static bool stored_full(const RowEmit *r, int id) { return is_full(r, id) && r->mp->kind[id] != STORE_REGISTER; }

/* Marks the full members value x needs in this walk (x itself if full). */
static void mark_needed(RowEmit *r, int x) {
    const Node *n = &r->g->nodes[x];
    if (n->attr.group.id != r->gid || !is_full(r, x) || r->need[x]) return;
    r->need[x] = true;
    for (int k = 0; k < n->n_in; k++) mark_needed(r, n->in[k]);
}

/* Emits the marked full members in id order, and clears the marks. */
static void emit_needed(RowEmit *r) {
    for (int m = 0; m < r->n_members; m++) {
        int id = r->members[m];
        if (!r->need[id]) continue;
        r->need[id] = false;
        const Node *n = &r->g->nodes[id];
        const char *T = dtype_c_type(n->dtype);
        if (is_softmax(n)) {
            StrBuf x = {0};
            operand_expr(r, id, 0, &x);
            if (n->op == OP_SOFTMAX)
                cemit_line(r->e, "const %s v%d = ETCH_EXP((%s)(%s - m%d)) * (%s)k%d; /* softmax */", T, id, T, x.s, id,
                           T, id);
            else cemit_line(r->e, "const %s v%d = (%s)((double)%s - k%d); /* log_softmax */", T, id, T, x.s, id);
            sb_free(&x);
        } else {
            cemit_group_member(r->e, r->g, id, r->leaf_slot, r->leaf_idx);
        }
    }
}

/* One walk over the row folding operand 0 of stage id into an accumulator
 * with the statement `fmt` ($0: the value). With `reduction` ("+:a12"), the
 * innermost loop is `#pragma omp simd reduction(...)`: a double accumulator
 * is a chain of dependent additions that GCC may not reorder on its own, and
 * the pragma (honoured under -fopenmp-simd, which the default flags pass;
 * no OpenMP runtime is involved) lets it keep one partial sum per vector
 * lane. The order then depends on the vector width the compiler picked, not
 * on anything at run time: the same library gives the same bits every call
 * and for every --threads N. */
static void walk_fold(RowEmit *r, int id, const char *fmt, const char *reduction) {
    int opened = open_row(r, reduction);
    mark_needed(r, r->g->nodes[id].in[0]);
    emit_needed(r);
    StrBuf x = {0}, line = {0};
    operand_expr(r, id, 0, &x);
    cemit_expand_template(&line, fmt, (const char *const[]){x.s}, &r->g->nodes[id]);
    cemit_line(r->e, "%s", line.s);
    sb_free(&x);
    sb_free(&line);
    close_loops(r, opened);
}

/* Stores row value id (one per row) when it is read outside the group. */
static void store_row_value(RowEmit *r, int id) {
    if (r->mp->kind[id] == STORE_REGISTER) return;
    char idx[320];
    row_index(r, r->row_out, idx, sizeof idx);
    cemit_line(r->e, "%s[%s] = v%d;", r->e->buf[id], idx, id);
}

/* A stage: its walks over the row, then its per-row value(s). A maximum
 * keeps its NaN-propagating compare in sequence (an OpenMP max would drop a
 * NaN); a softmax's maximum only shifts the exponents, so it may reorder. */
static void emit_stage(RowEmit *r, int id) {
    const Node *n = &r->g->nodes[id];
    const char *T = dtype_c_type(n->dtype);
    char fmt[256], red[32];
    if (is_softmax(n)) {
        cemit_line(r->e, "double mx%d = -INFINITY, s%d = 0;", id, id);
        snprintf(fmt, sizeof fmt, "mx%d = ETCH_SELECT((double)$0 > mx%d, (double)$0, mx%d);", id, id, id);
        snprintf(red, sizeof red, "max:mx%d", id);
        walk_fold(r, id, fmt, red);
        cemit_line(r->e, "const %s m%d = (%s)mx%d;", T, id, T, id);
        snprintf(fmt, sizeof fmt, "s%d += (double)ETCH_EXP(($T)($0 - m%d));", id, id);
        snprintf(red, sizeof red, "+:s%d", id);
        walk_fold(r, id, fmt, red);
        if (n->op == OP_SOFTMAX) cemit_line(r->e, "const double k%d = 1.0 / s%d;", id, id);
        else cemit_line(r->e, "const double k%d = mx%d + log(s%d); (void)m%d;", id, id, id, id);
        return;
    }
    bool max = n->op == OP_REDUCE_MAX;
    cemit_line(r->e, "double a%d = %s;", id, max ? "-INFINITY" : "0.0");
    if (max) snprintf(fmt, sizeof fmt, "a%d = ((double)$0 > a%d || $0 != $0) ? (double)$0 : a%d;", id, id, id);
    else snprintf(fmt, sizeof fmt, "a%d += (double)$0;", id);
    snprintf(red, sizeof red, "+:a%d", id);
    walk_fold(r, id, fmt, max ? NULL : red);
    int64_t count = 1;
    for (int i = r->k; i < r->S->rank; i++) count *= r->S->dim[i];
    if (n->op == OP_REDUCE_MEAN) cemit_line(r->e, "a%d /= %lld.0;", id, (long long)count);
    cemit_line(r->e, "const %s v%d = (%s)a%d; /* %s */", T, id, T, id, op_table[n->op].name);
    store_row_value(r, id);
}

void emit_row_group(CEmitter *e, const Graph *g, const MemPlan *mp, int at, int *leaf_slot) {
    RowEmit r = {.e = e, .g = g, .mp = mp, .gid = g->nodes[at].attr.group.id, .leaf_slot = leaf_slot};
    cemit_group_collect(g, r.gid, at + 1, -1, true, leaf_slot, r.members, &r.n_members, r.leaves, &r.n_leaves);
    int n_stages = 0;
    for (int m = 0; m < r.n_members; m++) { /* the row key, from the first stage */
        const Node *n = &g->nodes[r.members[m]];
        if (!is_stage(n)) continue;
        if (!n_stages++) {
            if (op_table[n->op].cls == OPC_REDUCE) {
                r.S = &g->nodes[n->in[0]].shape;
                reduce_axes_trailing(n, r.S->rank, &r.k);
            } else {
                r.S = &n->shape, r.k = n->attr.axis;
            }
        }
    }
    shape_strides(r.S, r.dense);
    for (int l = 0; l < r.n_leaves; l++) ops_broadcast_strides(&g->nodes[r.leaves[l]].shape, r.S, r.leaf_stride[l]);
    int64_t st = 1;
    for (int i = r.S->rank - 1; i >= 0; i--) { /* one value per row, dense over the outer dims */
        r.row_out[i] = i < r.k ? st : 0;
        if (i < r.k) st *= r.S->dim[i];
    }
    r.leaf_idx = malloc(sizeof *r.leaf_idx * (size_t)(r.n_leaves + 1));
    r.need = calloc((size_t)g->n_nodes + 1, sizeof *r.need);
    if (!r.leaf_idx || !r.need) abort();
    char ty[96];
    cemit_line(e, "{ /* fused rows: %d ops, %d stages over rows of %s */", r.n_members, n_stages,
               type_format(ty, sizeof ty, g->nodes[at].dtype, r.S));
    e->indent++;
    int outer = 0;
    for (int i = 0; i < r.S->rank; i++)
        if (i < r.k && r.S->dim[i] > 1) cemit_for(e, r.var[i], sizeof r.var[i], r.S->dim[i]), outer++;
        else snprintf(r.var[i], sizeof r.var[i], "0");
    for (int l = 0; l < r.n_leaves; l++) row_index(&r, r.leaf_stride[l], r.leaf_idx[l], sizeof r.leaf_idx[l]);
    /* per-row values and stages, in id order (a per-row value follows the stages it reads) */
    for (int m = 0; m < r.n_members; m++) {
        int id = r.members[m];
        const Node *n = &g->nodes[id];
        if (is_stage(n)) {
            emit_stage(&r, id);
        } else if (!is_full(&r, id)) {
            cemit_group_member(e, g, id, leaf_slot, r.leaf_idx);
            store_row_value(&r, id);
        }
    }
    /* the last walk: full members read outside the group */
    bool any = false;
    for (int m = 0; m < r.n_members; m++) any = any || stored_full(&r, r.members[m]);
    if (any) {
        int opened = open_row(&r, NULL);
        for (int m = 0; m < r.n_members; m++)
            if (stored_full(&r, r.members[m])) mark_needed(&r, r.members[m]);
        emit_needed(&r);
        char idx[320];
        row_index(&r, r.dense, idx, sizeof idx);
        for (int m = 0; m < r.n_members; m++)
            if (stored_full(&r, r.members[m])) cemit_line(e, "%s[%s] = v%d;", e->buf[r.members[m]], idx, r.members[m]);
        close_loops(&r, opened);
    }
    close_loops(&r, outer);
    e->indent--;
    cemit_line(e, "}");
    for (int l = 0; l < r.n_leaves; l++) leaf_slot[r.leaves[l]] = -1;
    free(r.leaf_idx);
    free(r.need);
}
