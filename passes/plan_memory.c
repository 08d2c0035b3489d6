/* plan_memory.c: liveness-based placement of intermediates (see
 * plan_memory.h), the pipeline's `plan-memory` stage.
 *
 * Every node gets a position: the node id, or its fusion group's position
 * (group.at: its root, or a fused matmul, see fuse.c). A value stored in the arena is live from its
 * position to the last position that reads it (outputs and update sources:
 * to the end). Values are placed in position order, best-fit into blocks
 * whose values died strictly before (a kernel may read an operand while
 * writing its result, so they never share), else at the arena's end.
 *
 * Updates in place: the optimizer's new weight p' = f(p, g, ...) can be
 * written over p when p' is computed elementwise at p's own shape (so each
 * element reads p[i] before writing p'[i]) and every other reader of p runs
 * earlier. Then the step needs neither a buffer nor a copy for p'. */
#include "passes/plan_memory.h"

#include "passes/pass.h"

#include <stdlib.h>
#include <string.h>

typedef struct Block {
    int64_t off, size;
} Block;

static int64_t aligned_size(const Node *n, int align) {
    return (shape_numel(&n->shape) * (int64_t)dtype_size(n->dtype) + align - 1) & ~(int64_t)(align - 1);
}

static bool is_computed(const Node *n) { return n->op != OP_INPUT && n->op != OP_PARAM; }

/* Plans g in arena a: reuse=false gives every arena value its own buffer and
 * no in-place updates (-O0); arena values start at multiples of align. */
static MemPlan *plan_memory(Arena *a, const Graph *g, bool reuse, int align) {
    int n = g->n_nodes;
    MemPlan *mp = arena_alloc(a, sizeof *mp);
    mp->kind = arena_alloc(a, sizeof(StoreKind) * (size_t)(n + 1));
    mp->offset = arena_alloc(a, sizeof(int64_t) * (size_t)(n + 1));
    mp->ref = arena_alloc(a, sizeof(int) * (size_t)(n + 1));
    mp->pos = arena_alloc(a, sizeof(int) * (size_t)(n + 1));
    mp->update_in_place = arena_alloc(a, sizeof(bool) * (size_t)(g->n_updates + 1));
    mp->align = align;
    mp->reuse = reuse;
    int64_t *last = malloc(sizeof(int64_t) * (size_t)(n + 1));
    bool *escapes = calloc((size_t)n + 1, sizeof *escapes);
    if (!last || !escapes) abort();
    const int64_t END = (int64_t)n + 1;

    for (int id = 0; id < n; id++) {
        const FuseGroup *fg = &g->nodes[id].attr.group;
        mp->pos[id] = fg->kind != FUSE_NONE ? fg->at : id;
    }
    /* who reads what, from where */
    for (int id = 0; id < n; id++) {
        last[id] = -1;
        const Node *x = &g->nodes[id];
        for (int k = 0; k < x->n_in; k++) {
            int in = x->in[k];
            if (!fuse_same_group(x, &g->nodes[in])) escapes[in] = true;
        }
    }
    for (int i = 0; i < g->n_outputs; i++) escapes[g->outputs[i]] = true;
    for (int i = 0; i < g->n_updates; i++) escapes[g->upd_src[i]] = true;

    /* storage kinds, before lifetimes: views follow their operand */
    for (int id = 0; id < n; id++) {
        const Node *x = &g->nodes[id];
        mp->ref[id] = id;
        if (x->op == OP_INPUT) mp->kind[id] = STORE_INPUT;
        else if (x->op == OP_PARAM) mp->kind[id] = STORE_PARAM;
        else if (op_is_view(x->op)) mp->kind[id] = STORE_VIEW, mp->ref[id] = x->in[0];
        /* a fused product keeps a buffer: its GEMM adds K slices up there (passes/fuse.c) */
        else if (x->attr.group.kind != FUSE_NONE && !escapes[id] && x->op != OP_MATMUL) mp->kind[id] = STORE_REGISTER;
        else mp->kind[id] = STORE_ARENA;
    }
    for (int i = 0; i < g->n_outputs; i++) {
        int o = g->outputs[i];
        if (mp->kind[o] == STORE_ARENA) mp->kind[o] = STORE_OUTPUT, mp->ref[o] = i;
    }
    /* in-place updates */
    for (int i = 0; reuse && i < g->n_updates; i++) {
        int p = g->upd_dst[i], u = g->upd_src[i];
        const Node *un = &g->nodes[u];
        if (mp->kind[u] != STORE_ARENA || op_table[un->op].cls != OPC_ELEMWISE ||
            !shape_equal(&un->shape, &g->nodes[p].shape) || un->dtype != g->nodes[p].dtype)
            continue;
        bool ok = true;
        for (int k = 0; k < g->n_outputs && ok; k++) ok = g->outputs[k] != p;
        for (int j = 0; j < g->n_updates && ok; j++) ok = j == i || g->upd_src[j] != u;
        /* every reader of p (through views too) outside u's kernel runs before u */
        for (int id = 0; id < n && ok; id++) {
            const Node *x = &g->nodes[id];
            for (int k = 0; k < x->n_in && ok; k++) {
                int src = x->in[k];
                while (mp->kind[src] == STORE_VIEW) src = mp->ref[src];
                if (src != p) continue;
                bool in_kernel = id == u || fuse_same_group(un, x);
                /* in u's kernel, p is read element by element before it is written; a fused
                 * product's GEMM reads all of its operands first, so it must not read p */
                if (in_kernel) ok = x->op != OP_MATMUL && shape_equal(&g->nodes[x->in[k]].shape, &un->shape) && x->in[k] == p;
                else ok = mp->pos[id] < mp->pos[u];
            }
        }
        if (!ok) continue;
        mp->kind[u] = STORE_PARAM;
        mp->ref[u] = p;
        mp->update_in_place[i] = true;
    }
    /* lifetimes, on the storage each value really uses */
    for (int id = 0; id < n; id++) {
        const Node *x = &g->nodes[id];
        for (int k = 0; k < x->n_in; k++) {
            int src = x->in[k];
            while (mp->kind[src] == STORE_VIEW) src = mp->ref[src];
            if (mp->pos[id] > last[src]) last[src] = mp->pos[id];
        }
    }
    for (int i = 0; i < g->n_outputs; i++) {
        int src = g->outputs[i];
        while (mp->kind[src] == STORE_VIEW) src = mp->ref[src];
        last[src] = END;
    }
    for (int i = 0; i < g->n_updates; i++) {
        int src = g->upd_src[i];
        while (mp->kind[src] == STORE_VIEW) src = mp->ref[src];
        last[src] = END;
    }
    /* placement in position order (ids are already ordered; members share their root's position) */
    int *order = malloc(sizeof(int) * (size_t)(n + 1)), n_order = 0;
    Block *free_list = malloc(sizeof(Block) * (size_t)(n + 1));
    int *live = malloc(sizeof(int) * (size_t)(n + 1)), n_live = 0, n_free = 0;
    if (!order || !free_list || !live) abort();
    for (int id = 0; id < n; id++)
        if (mp->kind[id] == STORE_ARENA) order[n_order++] = id;
    /* stable sort by position (insertion: few out-of-order members) */
    for (int i = 1; i < n_order; i++)
        for (int j = i; j > 0 && mp->pos[order[j - 1]] > mp->pos[order[j]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    int64_t top = 0, naive = 0;
    for (int id = 0; id < n; id++)
        if (is_computed(&g->nodes[id]) && !op_is_view(g->nodes[id].op)) naive += aligned_size(&g->nodes[id], align);
    for (int i = 0; i < n_order; i++) {
        int id = order[i];
        int64_t size = aligned_size(&g->nodes[id], align), at = mp->pos[id];
        if (!reuse) {
            mp->offset[id] = top;
            top += size;
            continue;
        }
        /* release values whose last reader ran before this position */
        for (int k = 0; k < n_live;) {
            int v = live[k];
            if (last[v] < at) {
                free_list[n_free++] = (Block){mp->offset[v], aligned_size(&g->nodes[v], align)};
                live[k] = live[--n_live];
            } else {
                k++;
            }
        }
        /* coalesce neighbouring free blocks: sort by offset, merge runs */
        for (int a1 = 1; a1 < n_free; a1++)
            for (int b1 = a1; b1 > 0 && free_list[b1 - 1].off > free_list[b1].off; b1--) {
                Block t = free_list[b1];
                free_list[b1] = free_list[b1 - 1];
                free_list[b1 - 1] = t;
            }
        int merged = 0;
        for (int k = 0; k < n_free; k++) {
            if (merged && free_list[merged - 1].off + free_list[merged - 1].size == free_list[k].off)
                free_list[merged - 1].size += free_list[k].size;
            else
                free_list[merged++] = free_list[k];
        }
        n_free = merged;
        int best = -1;
        for (int k = 0; k < n_free; k++)
            if (free_list[k].size >= size && (best < 0 || free_list[k].size < free_list[best].size)) best = k;
        if (best >= 0) {
            mp->offset[id] = free_list[best].off;
            free_list[best].off += size;
            free_list[best].size -= size;
            if (!free_list[best].size) free_list[best] = free_list[--n_free];
        } else {
            /* a free block ending at the top grows instead of being left behind */
            int tail = -1;
            for (int k = 0; k < n_free; k++)
                if (free_list[k].off + free_list[k].size == top) tail = k;
            mp->offset[id] = tail >= 0 ? free_list[tail].off : top;
            top = mp->offset[id] + size;
            if (tail >= 0) free_list[tail] = free_list[--n_free];
        }
        live[n_live++] = id;
    }
    mp->arena_bytes = top;
    mp->naive_bytes = naive;
    free(order);
    free(free_list);
    free(live);
    free(last);
    free(escapes);
    return mp;
}

Graph *pass_plan_memory(Graph *g, PassCtx *ctx) {
    g->mem_plan = plan_memory(g->arena, g, ctx->reuse_buffers, ctx->target->arena_align);
    return g;
}

void plan_memory_print_summary(FILE *f, const Graph *g) {
    const MemPlan *mp = g->mem_plan;
    int count[STORE_REGISTER + 1] = {0}, in_place = 0;
    for (int id = 0; id < g->n_nodes; id++) count[mp->kind[id]]++;
    for (int i = 0; i < g->n_updates; i++) in_place += mp->update_in_place[i];
    fprintf(f,
            "// memory plan: arena %lld bytes (naive %lld), %d-byte aligned, %s; %d values in the arena, %d in "
            "registers, %d views, %d of %d updates in place\n",
            (long long)mp->arena_bytes, (long long)mp->naive_bytes, mp->align,
            mp->reuse ? "buffers reused" : "one buffer per value", count[STORE_ARENA], count[STORE_REGISTER],
            count[STORE_VIEW], in_place, g->n_updates);
}
