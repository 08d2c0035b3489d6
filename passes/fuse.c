/* fuse.c: elementwise fusion. Chains and trees of elementwise ops of one shape
 * become one group (attr.group), which the C backend emits as a single loop
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
 * group runs at the product's position when its other operands allow. */
#include <stdlib.h>

#include "passes/pass.h"

enum { FUSE_MAX_MEMBERS = 20 }; /* members read at most 3 operands: 60 leaves < OPS_MAX_OPERANDS */

static bool fusible(const Node *n) {
    if (op_table[n->op].cls != OPC_ELEMWISE) return false;
    return shape_numel(&n->shape) > 1; /* a scalar chain is not worth a loop */
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
 * a core's L1/L2 next to the tile. */
enum { EPILOGUE_MAX_STREAMED_BYTES = 64 * 1024 };
static bool epilogue_pays(const Graph *g, const int *group, int gid, int root) {
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
    return streamed <= EPILOGUE_MAX_STREAMED_BYTES;
}

/* A group runs at its position, group number - 1: its root (last member),
 * unless this moves it. A fused product's group is moved back to the
 * product's own position when every other operand its members read is
 * ready by then, so the GEMM's operands are not kept alive until the root
 * (fc2's weight gradient would otherwise wait for fc1's). Outside users of
 * members all come after the root, so they still run after the group. */
static void run_at_product(const Graph *g, int *group, int mm) {
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
}

/* A reduction can root a group: its elementwise producers are computed inside
 * the reduction's loops (a "prologue"), so their values are never stored. */
static bool reduce_root(const Graph *g, const Node *n) {
    return op_table[n->op].cls == OPC_REDUCE && dtype_is_float(n->dtype) && fusible(&g->nodes[n->in[0]]);
}

Graph *pass_fuse(Graph *g, PassCtx *ctx) {
    (void)ctx;
    int n = g->n_nodes;
    int *group = calloc((size_t)n + 1, sizeof *group);
    int **users = calloc((size_t)n + 1, sizeof *users), *n_users = calloc((size_t)n + 1, sizeof *n_users);
    int *stack = malloc(sizeof(int) * ((size_t)n + 1));
    bool *escapes = calloc((size_t)n + 1, sizeof *escapes); /* outputs and update sources */
    if (!group || !users || !n_users || !stack || !escapes) abort();
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
    for (int root = n - 1; root >= 0; root--) {
        const Node *r = &g->nodes[root];
        if (group[root] || !(fusible(r) || reduce_root(g, r))) continue;
        /* members have the root's shape; for a reduction, its input's shape */
        const Shape *ref = op_table[r->op].cls == OPC_REDUCE ? &g->nodes[r->in[0]].shape : &r->shape;
        int gid = root + 1, top = 0, members = 1;
        bool has_matmul = false, elementwise_root = op_table[r->op].cls == OPC_ELEMWISE;
        group[root] = gid;
        stack[top++] = root;
        while (top) {
            const Node *m = &g->nodes[stack[--top]];
            for (int k = 0; k < m->n_in; k++) {
                int p = m->in[k];
                const Node *pn = &g->nodes[p];
                /* the emitter reads at most OPS_MAX_OPERANDS distinct leaves: bound the group */
                if (group[p] || members == FUSE_MAX_MEMBERS) continue;
                bool ok = true;
                if (elementwise_root && !has_matmul && epilogue_matmul(g, pn, ref)) {
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
                if (!fusible(pn) || !shape_equal(&pn->shape, ref)) continue;
                for (int u = 0; u < n_users[p] && ok; u++) {
                    const Node *un = &g->nodes[users[p][u]];
                    ok = group[users[p][u]] == gid ? un->op != OP_MATMUL : users[p][u] > root;
                }
                if (!ok) continue;
                group[p] = gid;
                stack[top++] = p;
                members++;
            }
        }
        if (has_matmul && !epilogue_pays(g, group, gid, root)) { /* the product goes back to its own kernel */
            for (int id = 0; id < root; id++)
                if (group[id] == gid && g->nodes[id].op == OP_MATMUL) group[id] = 0, members--;
        }
        if (members == 1) group[root] = 0; /* a lone op is already one kernel */
    }
    for (int id = 0; id < n; id++)
        if (group[id] && g->nodes[id].op == OP_MATMUL) run_at_product(g, group, id);
    for (int id = 0; id < n; id++) g->nodes[id].attr.group = group[id];
    for (int id = 0; id < n; id++) free(users[id]);
    free(users);
    free(n_users);
    free(group);
    free(stack);
    free(escapes);
    return g;
}
