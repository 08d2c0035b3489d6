/* fuse.c: elementwise fusion. Chains and trees of elementwise ops of one shape
 * become one group (attr.group, a FuseGroup: its kind, its number and the
 * position it runs at), which the C backend emits as a single loop
 * nest: each member is a scalar in a register, and only members whose value is
 * needed outside the group are stored. The backward pass of a network is mostly
 * such chains (relu masks, scaling, optimizer updates), so this removes most
 * kernels and most intermediate buffers.
 *
 * Grouping walks the graph from the last node to the first. An unvisited
 * elementwise node roots a new group of its shape; an operand joins the group
 * when it is elementwise, has exactly the group's shape and dtype class rules
 * allow it, and every one of its users is either in the group or comes after
 * the group's root (the group runs at its root's position, so a value it
 * stores is ready for later users, and no earlier user can wait on it). Scalar
 * constants never join: the backend reads them in place.
 *
 * A reduction (sum, mean, max) roots a group the same way: its elementwise
 * producers of its input's shape are computed inside the reduction's loop nest,
 * so `reduce_sum(log_softmax(z) * one_hot)` (the cross-entropy) or the squared
 * differences of a variance never reach memory.
 *
 * A matrix product joins an elementwise group as its epilogue: when every
 * user of `x @ W` is in the group (bias add, activation, the relu mask of a
 * gradient, an optimizer update of a weight gradient), the GEMM kernel
 * applies the group's expression to each tile of the product as it finishes,
 * instead of storing the product for a separate loop. One product per group,
 * plain 2-D ones (no batch dims, no vectors) of the group's shape. Such a
 * group runs at the product's position when its other operands allow.
 *
 * A slice of the group's shape joins an elementwise group as a view (not in
 * a group with a product): the loop reads the slice's operand in place.
 *
 * Before all that, row groups: a reduction over the trailing axes of a tensor
 * (a row) together with its elementwise producers AND consumers, and more
 * reductions of the same rows, becomes one kernel that walks each row several
 * times (codegen/c/rowgroup.c): layer norm's mean, variance, and scale and
 * shift; softmax's normalization with the scaling and masking before it;
 * log_softmax with the negative log-likelihood after it; their gradients. A
 * softmax along the last axis counts as such a reduction (two of them: the
 * row maximum and the sum of exponentials).
 *
 * The kinds (FuseKind, ir.h) are what was built: FUSE_ROWS for row groups
 * and for a group rooted at a reduction over trailing axes (one stage, its
 * producers: walked row by row too), FUSE_REDUCE for one rooted at any other
 * reduction, FUSE_EPILOGUE for an elementwise group holding a product, and
 * FUSE_ELEMENTWISE for the rest. Groups are numbered 1, 2, ... in the order
 * they run. The limits come from the target (passes/target.h): how many
 * distinct values a kernel reads, how many members a group holds, how much a
 * GEMM epilogue may stream. */
#include <stdlib.h>

#include "passes/pass.h"

/* Members of an elementwise or reduce group: each reads at most 3 operands,
 * so the bound keeps the group's leaves within the target's. */
static int max_members(const Target *t) {
    return t->max_group_members < t->max_group_leaves / 3 ? t->max_group_members : t->max_group_leaves / 3;
}

static bool fusible(const Node *n) {
    if (op_table[n->op].cls != OPC_ELEMWISE) return false;
    return shape_numel(&n->shape) > 1; /* a scalar chain is not worth a loop */
}

/* A slice that may join an elementwise group of shape ref as a view: the
 * group's loop reads the slice's operand in place (at the operand's strides,
 * the start an offset) instead of a copy made before. The LSTM cell splits
 * its [B, 4H] gates into four [B, H] slices that feed one elementwise group:
 * per time step, four copies of the gates fewer. */
static bool slice_view(const Node *n, const Shape *ref) {
    return n->op == OP_SLICE && shape_equal(&n->shape, ref);
}

/* A product that may become the epilogue-fused member of a group of shape ref. */
static bool epilogue_matmul(const Graph *g, const Node *n, const Shape *ref) {
    return n->op == OP_MATMUL && dtype_is_float(n->dtype) && n->shape.rank == 2 && shape_equal(&n->shape, ref) &&
           g->nodes[n->in[0]].shape.rank == 2 && g->nodes[n->in[1]].shape.rank == 2;
}

/* Whether group gid (rooted at root, holding a product) is worth fusing into
 * the GEMM. The kernel walks the product tile by tile, column strips of many
 * rows, so an epilogue that streams tensors of the product's size reads them
 * across hundreds of rows at once, which the caches and prefetchers serve far
 * worse than one contiguous loop after the GEMM. Operands broadcast along
 * rows or columns (a bias) are fine; full-size ones only while they fit in
 * a core's L1/L2 next to the tile (Target.epilogue_cache_bytes). */
static bool epilogue_pays(const Graph *g, const Target *t, const int *group, int gid, int root) {
    if (t->epilogue_cache_bytes < 0) return false; /* the backend fuses no epilogues */
    int64_t streamed = 0;
    for (int id = 0; id <= root; id++) {
        const Node *m = &g->nodes[id];
        if (group[id] != gid || m->op == OP_MATMUL) continue;
        for (int k = 0; k < m->n_in; k++) {
            const Node *v = &g->nodes[m->in[k]];
            if (group[m->in[k]] != gid && shape_equal(&v->shape, &g->nodes[root].shape))
                streamed += shape_numel(&v->shape) * (int64_t)dtype_size(v->dtype);
        }
    }
    return streamed <= t->epilogue_cache_bytes;
}

/* While grouping, group[id] is the group's label, its position + 1: its
 * root (last member), unless this moves it. A fused product's group is moved
 * back to the product's own position when every other operand its members
 * read is ready by then, so the GEMM's operands are not kept alive until the root
 * (fc2's weight gradient would otherwise wait for fc1's). Outside users of
 * members all come after the root, so they still run after the group. */
static void run_at_product(const Graph *g, int *group, FuseKind *kind, int mm) {
    int gid = group[mm], n = g->n_nodes;
    for (int id = 0; id < n; id++) {
        const Node *m = &g->nodes[id];
        if (group[id] != gid || id == mm) continue;
        for (int k = 0; k < m->n_in; k++) {
            int in = m->in[k], pos = group[in] ? group[in] - 1 : in;
            const Node *v = &g->nodes[in];
            bool always_ready = v->op == OP_INPUT || v->op == OP_PARAM || /* scalar constants are literals */
                                (v->op == OP_CONST && shape_numel(&v->shape) == 1);
            if (group[in] != gid && !always_ready && pos >= mm) return;
        }
    }
    for (int id = 0; id < n; id++)
        if (group[id] == gid) group[id] = mm + 1; /* free: mm roots no other group */
    kind[mm + 1] = kind[gid];
    kind[gid] = FUSE_NONE;
}

/* A reduction can root a group: its elementwise producers are computed inside
 * the reduction's loops (a "prologue"), so their values are never stored. */
static bool reduce_root(const Graph *g, const Node *n) {
    return op_table[n->op].cls == OPC_REDUCE && dtype_is_float(n->dtype) && fusible(&g->nodes[n->in[0]]);
}

/* ---- row groups ----
 *
 * A row key is a full shape S and the first reduced axis k: rows are S's
 * trailing dims k.., and S' is S with them set to 1. Nodes fit a key as
 *   ROW_FULL:   an elementwise op or broadcast of shape S, or a softmax of
 *               shape S along its last axis when that is the only row dim;
 *   ROW_SCALAR: a float reduction of an S-shaped value over exactly the row
 *               axes, or an elementwise op of shape S' (one value per row).
 * Reductions and softmaxes are the group's stages: each ends one walk over
 * the row. A full member may read a row scalar of shape S' (it broadcasts
 * along the row); a reduction without keepdims (shape without the 1s) has no
 * member users, since broadcasting aligns it with the wrong dims. */
typedef enum RowKind { ROW_NONE, ROW_FULL, ROW_SCALAR } RowKind;

typedef struct RowKey {
    Shape S, Sp; /* full shape; one value per row (keepdims) */
    int k;       /* first row axis */
} RowKey;

static bool softmax_op(OpKind op) { return op == OP_SOFTMAX || op == OP_LOG_SOFTMAX; }

/* The key a stage node (a row reduction or a softmax along the last axis) starts, or false. */
static bool row_seed(const Graph *g, const Node *n, RowKey *key) {
    const Shape *S;
    int k;
    if (op_table[n->op].cls == OPC_REDUCE && dtype_is_float(n->dtype)) {
        S = &g->nodes[n->in[0]].shape;
        if (!reduce_axes_trailing(n, S->rank, &k)) return false;
    } else if (softmax_op(n->op) && n->attr.axis == n->shape.rank - 1) {
        S = &n->shape, k = n->attr.axis;
    } else {
        return false;
    }
    key->S = key->Sp = *S;
    key->k = k;
    int64_t len = 1;
    for (int i = k; i < S->rank; i++) len *= S->dim[i], key->Sp.dim[i] = 1;
    return len > 1;
}

static RowKind row_kind(const Graph *g, const Node *n, const RowKey *key) {
    bool elementwise = op_table[n->op].cls == OPC_ELEMWISE || n->op == OP_BROADCAST;
    if (shape_equal(&n->shape, &key->S)) {
        if (elementwise) return ROW_FULL;
        if (softmax_op(n->op) && n->attr.axis == key->k && key->k == key->S.rank - 1) return ROW_FULL;
        return ROW_NONE;
    }
    int first;
    if (op_table[n->op].cls == OPC_REDUCE)
        return dtype_is_float(n->dtype) && shape_equal(&g->nodes[n->in[0]].shape, &key->S) &&
                       reduce_axes_trailing(n, key->S.rank, &first) && first == key->k
                   ? ROW_SCALAR
                   : ROW_NONE;
    return elementwise && op_table[n->op].cls == OPC_ELEMWISE && shape_equal(&n->shape, &key->Sp) ? ROW_SCALAR
                                                                                                : ROW_NONE;
}

/* A member may read operand q inside the group: anything but a reduction
 * without keepdims (its shape lines up with the wrong dims). */
static bool row_operand_ok(const Graph *g, int q, const RowKey *key) {
    return op_table[g->nodes[q].op].cls != OPC_REDUCE || shape_equal(&g->nodes[q].shape, &key->Sp);
}

typedef struct FuseGraph {
    const Graph *g;
    const Target *t;
    int *group, **users, *n_users;
    FuseKind *kind; /* per group label */
} FuseGraph;

/* Whether x may join group gid: every in-group edge at x is allowed. */
static bool row_join_ok(const FuseGraph *f, int x, int gid, const RowKey *key) {
    const Node *n = &f->g->nodes[x];
    for (int k = 0; k < n->n_in; k++)
        if (f->group[n->in[k]] == gid && !row_operand_ok(f->g, n->in[k], key)) return false;
    if (!row_operand_ok(f->g, x, key))
        for (int u = 0; u < f->n_users[x]; u++)
            if (f->group[f->users[x][u]] == gid) return false;
    return true;
}

/* The distinct values members read from outside (scalar constants are literals). */
static int row_leaves(const FuseGraph *f, int gid, int root) {
    int n_leaves = 0, *seen = calloc((size_t)root + 1, sizeof *seen);
    if (!seen) abort();
    for (int id = 0; id <= root; id++) {
        const Node *m = &f->g->nodes[id];
        if (f->group[id] != gid) continue;
        for (int k = 0; k < m->n_in; k++) {
            const Node *v = &f->g->nodes[m->in[k]];
            if (f->group[m->in[k]] == gid || seen[m->in[k]] || (v->op == OP_CONST && shape_numel(&v->shape) == 1))
                continue;
            seen[m->in[k]] = 1;
            n_leaves++;
        }
    }
    free(seen);
    return n_leaves;
}

/* Grows a row group from stage node seed over producers and consumers that fit
 * its key, then cuts it back to a legal group: the group runs at its last
 * member, so every outside user of a member must come after that. The first
 * outside user u that comes earlier cuts off every member from u on (the
 * cut-off part may form its own group from a later seed). Keeps the group
 * when a stage and another member remain. */
static void row_group_grow(FuseGraph *f, int seed, const RowKey *key, int *stack) {
    const Graph *g = f->g;
    int gid = -(seed + 1), top = 0; /* tentative id, made final below */
    f->group[seed] = gid;
    stack[top++] = seed;
    while (top) {
        int m = stack[--top];
        const Node *mn = &g->nodes[m];
        for (int side = 0; side < 2; side++) {
            int cnt = side ? f->n_users[m] : mn->n_in;
            for (int i = 0; i < cnt; i++) {
                int x = side ? f->users[m][i] : mn->in[i];
                if (f->group[x] || row_kind(g, &g->nodes[x], key) == ROW_NONE) continue;
                f->group[x] = gid;
                if (!row_join_ok(f, x, gid, key)) {
                    f->group[x] = 0;
                    continue;
                }
                stack[top++] = x;
            }
        }
    }
    int root = -1, cut = g->n_nodes, count = 0;
    for (int id = 0; id < g->n_nodes; id++)
        if (f->group[id] == gid) root = id;
    for (int id = 0; id <= root; id++)
        if (f->group[id] == gid)
            for (int u = 0; u < f->n_users[id]; u++) {
                int us = f->users[id][u];
                if (f->group[us] != gid && us < root && us < cut) cut = us;
            }
    for (int id = 0; id < g->n_nodes; id++) /* the cut, and the size bound (ids ascending keeps it legal) */
        if (f->group[id] == gid && (id >= cut || ++count > f->t->max_row_group_members)) f->group[id] = 0;
    for (;;) {
        root = -1, count = 0;
        bool stage = false;
        for (int id = 0; id < g->n_nodes; id++)
            if (f->group[id] == gid) {
                root = id, count++;
                stage = stage || op_table[g->nodes[id].op].cls == OPC_REDUCE || softmax_op(g->nodes[id].op);
            }
        if (root < 0) return;
        if (!stage || count < 2) break;
        if (row_leaves(f, gid, root) <= f->t->max_group_leaves) {
            for (int id = 0; id <= root; id++)
                if (f->group[id] == gid) f->group[id] = root + 1;
            f->kind[root + 1] = FUSE_ROWS;
            return;
        }
        f->group[root] = 0; /* too many distinct operands: drop the last member and retry */
    }
    for (int id = 0; id < g->n_nodes; id++)
        if (f->group[id] == gid) f->group[id] = 0;
}

/* Writes the groups into the nodes: kind, number in order of position, position. */
static void set_groups(Graph *g, const int *group, const FuseKind *kind) {
    int n = g->n_nodes, next = 0;
    int *number = calloc((size_t)n + 2, sizeof *number);
    if (!number) abort();
    for (int id = 0; id < n; id++)
        if (group[id]) number[group[id]] = 1;
    for (int label = 1; label <= n; label++)
        if (number[label]) number[label] = ++next;
    for (int id = 0; id < n; id++)
        g->nodes[id].attr.group = group[id] ? (FuseGroup){kind[group[id]], number[group[id]], group[id] - 1}
                                            : (FuseGroup){FUSE_NONE, 0, 0};
    free(number);
}

Graph *pass_fuse(Graph *g, PassCtx *ctx) {
    const Target *t = ctx->target;
    if (t->unfused) return g;
    int n = g->n_nodes;
    int *group = calloc((size_t)n + 1, sizeof *group);
    FuseKind *kind = calloc((size_t)n + 2, sizeof *kind);
    int **users = calloc((size_t)n + 1, sizeof *users), *n_users = calloc((size_t)n + 1, sizeof *n_users);
    int *stack = malloc(sizeof(int) * ((size_t)n + 1));
    bool *escapes = calloc((size_t)n + 1, sizeof *escapes); /* outputs and update sources */
    if (!group || !kind || !users || !n_users || !stack || !escapes) abort();
    for (int i = 0; i < g->n_outputs; i++) escapes[g->outputs[i]] = true;
    for (int i = 0; i < g->n_updates; i++) escapes[g->upd_src[i]] = true;
    /* users of every node (outputs and update sources count as users after the end) */
    for (int id = 0; id < n; id++)
        for (int k = 0; k < g->nodes[id].n_in; k++) n_users[g->nodes[id].in[k]]++;
    for (int id = 0; id < n; id++) users[id] = malloc(sizeof(int) * ((size_t)n_users[id] + 1)), n_users[id] = 0;
    for (int id = 0; id < n; id++)
        for (int k = 0; k < g->nodes[id].n_in; k++) {
            int in = g->nodes[id].in[k];
            users[in][n_users[in]++] = id;
        }
    FuseGraph fg = {g, t, group, users, n_users, kind};
    for (int id = 0; id < n; id++) {
        RowKey key;
        if (!group[id] && row_seed(g, &g->nodes[id], &key)) row_group_grow(&fg, id, &key, stack);
    }
    for (int root = n - 1; root >= 0; root--) {
        const Node *r = &g->nodes[root];
        if (group[root] || !(fusible(r) || reduce_root(g, r))) continue;
        /* members have the root's shape; for a reduction, its input's shape */
        const Shape *ref = op_table[r->op].cls == OPC_REDUCE ? &g->nodes[r->in[0]].shape : &r->shape;
        int gid = root + 1, top = 0, members = 1, views = 0; /* views: slice members, not in members */
        bool has_matmul = false, has_slice = false, elementwise_root = op_table[r->op].cls == OPC_ELEMWISE;
        group[root] = gid;
        stack[top++] = root;
        while (top) {
            const Node *m = &g->nodes[stack[--top]];
            for (int k = 0; k < m->n_in; k++) {
                int p = m->in[k];
                const Node *pn = &g->nodes[p];
                /* the target's kernels read at most max_group_leaves distinct leaves: bound the group.
                 * A slice view is a load of one leaf, bounded by the leaves alone. */
                bool view = elementwise_root && !has_matmul && slice_view(pn, ref);
                if (group[p] || (view ? 3 * members + views + 1 > t->max_group_leaves
                                      : members == max_members(t) || 3 * (members + 1) + views > t->max_group_leaves))
                    continue;
                bool ok = true;
                if (elementwise_root && !has_matmul && !has_slice && epilogue_matmul(g, pn, ref)) {
                    /* the product is never stored for later: every user is in the group already;
                     * the GEMM runs first, so it cannot read a member */
                    for (int u = 0; u < n_users[p] && ok; u++) ok = group[users[p][u]] == gid;
                    for (int k2 = 0; k2 < pn->n_in && ok; k2++) ok = group[pn->in[k2]] != gid;
                    if (!ok || escapes[p]) continue;
                    group[p] = gid; /* its operands are the GEMM's, not the group's: no walk into them */
                    has_matmul = true;
                    members++;
                    continue;
                }
                if (!view && (!fusible(pn) || !shape_equal(&pn->shape, ref))) continue;
                for (int u = 0; u < n_users[p] && ok; u++) {
                    const Node *un = &g->nodes[users[p][u]];
                    ok = group[users[p][u]] == gid ? un->op != OP_MATMUL : users[p][u] > root;
                }
                if (!ok) continue;
                group[p] = gid;
                if (!view) stack[top++] = p; /* a view's operand is read in place: no walk into it */
                has_slice = has_slice || view;
                if (view) views++;
                else members++;
            }
        }
        if (has_matmul && !epilogue_pays(g, t, group, gid, root)) { /* the product goes back to its own kernel */
            for (int id = 0; id < root; id++)
                if (group[id] == gid && g->nodes[id].op == OP_MATMUL) group[id] = 0, members--;
            has_matmul = false;
        }
        int first;
        if (members + views == 1) group[root] = 0; /* a lone op is already one kernel */
        else if (elementwise_root) kind[gid] = has_matmul ? FUSE_EPILOGUE : FUSE_ELEMENTWISE;
        else kind[gid] = reduce_axes_trailing(r, ref->rank, &first) ? FUSE_ROWS : FUSE_REDUCE;
    }
    for (int id = 0; id < n; id++)
        if (group[id] && g->nodes[id].op == OP_MATMUL) run_at_product(g, group, kind, id);
    set_groups(g, group, kind);
    for (int id = 0; id < n; id++) free(users[id]);
    free(users);
    free(n_users);
    free(group);
    free(kind);
    free(stack);
    free(escapes);
    return g;
}
