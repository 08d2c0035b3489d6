/* rewrite.c: copying a graph node by node into a new one with an old -> new id
 * map (see rewrite.h). Everything lives in the source graph's arena, so a pass
 * allocates freely and the old graph stays valid for whoever still holds it. */
#include "passes/rewrite.h"

#include <assert.h>
#include <string.h>

void rewrite_begin(Rewriter *rw, const Graph *src, Diag *d) {
    rw->src = src;
    rw->dst = graph_new(src->arena, src->name);
    rw->map = arena_alloc(src->arena, sizeof(int) * (size_t)(src->n_nodes + 1));
    for (int i = 0; i < src->n_nodes; i++) rw->map[i] = -1;
    rw->d = d;
}

int rewrite_operand(const Rewriter *rw, int src_id, int k) {
    int x = rw->map[rw->src->nodes[src_id].in[k]];
    assert(x >= 0); /* operands precede users, so they are mapped already */
    return x;
}

Node rewrite_mapped_node(const Rewriter *rw, int src_id, int *ins) {
    Node n = rw->src->nodes[src_id];
    for (int k = 0; k < n.n_in; k++) ins[k] = rewrite_operand(rw, src_id, k);
    n.in = ins;
    return n;
}

int rewrite_copy_node(Rewriter *rw, int src_id) {
    int ins[ETCH_MAX_OPERANDS];
    Node n = rewrite_mapped_node(rw, src_id, ins);
    /* graph_append_raw copies the operand list and strings into the arena */
    int id = graph_append_raw(rw->dst, &n);
    rw->map[src_id] = id;
    return id;
}

bool rewrite_infer(const Rewriter *rw, Node *n) {
    Diag quiet; /* a rejected speculative form is not the user's error */
    diag_init(&quiet, NULL);
    bool ok = op_table[n->op].shape(rw->dst, n, &quiet);
    diag_dispose(&quiet);
    return ok;
}

int rewrite_add(Rewriter *rw, OpKind op, const int *ins, int n_in, const NodeAttrs *attrs, SrcLoc loc) {
    Node n = {.op = op, .n_in = n_in, .in = (int *)ins, .loc = loc};
    if (attrs) n.attr = *attrs;
    if (!op_arity_ok(op, n_in) || !rewrite_infer(rw, &n)) return -1;
    return graph_append_raw(rw->dst, &n);
}

Graph *rewrite_finish(Rewriter *rw) {
    const Graph *s = rw->src;
    for (int i = 0; i < s->n_outputs; i++) graph_add_output(rw->dst, rw->map[s->outputs[i]]);
    for (int i = 0; i < s->n_updates; i++) graph_add_update(rw->dst, rw->map[s->upd_dst[i]], rw->map[s->upd_src[i]]);
    for (int id = 0; id < rw->dst->n_nodes; id++) {
        FuseGroup *fg = &rw->dst->nodes[id].attr.group;
        if (fg->kind == FUSE_NONE) continue;
        int at = fg->at >= 0 && fg->at < s->n_nodes ? rw->map[fg->at] : -1;
        *fg = at >= 0 ? (FuseGroup){fg->kind, fg->id, at} : (FuseGroup){FUSE_NONE, 0, 0};
    }
    return rw->dst;
}

int *rewrite_count_uses(const Graph *g, Arena *a) {
    int *uses = arena_alloc(a, sizeof(int) * (size_t)(g->n_nodes + 1));
    graph_count_uses(g, uses);
    for (int i = 0; i < g->n_updates; i++) {
        uses[g->upd_src[i]]++;
        uses[g->upd_dst[i]]++;
    }
    return uses;
}
