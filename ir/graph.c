/* graph.c: building graphs. Every node goes through graph_add_op, which runs
 * the op's shape rule from the op table, so an ill-typed node never enters a
 * graph and the user hears about it at the node's source location. */
#include <string.h>

#include "ir/ir.h"

/* Growable arrays (nodes, id lists) are also carved from the arena: growing
 * copies into a block twice the size and abandons the old one, which the arena
 * reclaims with everything else. Doubling bounds the waste to the live size. */
static void *grow(Arena *a, void *p, int *cap, int need, size_t elem) {
    if (need <= *cap) return p;
    int c = *cap ? *cap * 2 : 16;
    while (c < need) c *= 2;
    void *q = arena_alloc(a, (size_t)c * elem);
    if (*cap) memcpy(q, p, (size_t)*cap * elem);
    *cap = c;
    return q;
}

Graph *graph_new(Arena *a, const char *name) {
    Graph *g = arena_alloc(a, sizeof *g);
    g->arena = a;
    g->name = arena_strdup(a, name);
    return g;
}

int graph_append_raw(Graph *g, const Node *n) {
    g->nodes = grow(g->arena, g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof(Node));
    Node *m = &g->nodes[g->n_nodes];
    *m = *n;
    m->in = arena_alloc(g->arena, sizeof(int) * (size_t)(n->n_in ? n->n_in : 1));
    if (n->n_in) memcpy(m->in, n->in, sizeof(int) * (size_t)n->n_in);
    if (n->attr.name) m->attr.name = arena_strdup(g->arena, n->attr.name);
    if (n->loc.file) m->loc.file = arena_strdup(g->arena, n->loc.file);
    int id = g->n_nodes++;
    if (n->op == OP_INPUT) {
        g->inputs = grow(g->arena, g->inputs, &g->cap_inputs, g->n_inputs + 1, sizeof(int));
        g->inputs[g->n_inputs++] = id;
    } else if (n->op == OP_PARAM) {
        g->params = grow(g->arena, g->params, &g->cap_params, g->n_params + 1, sizeof(int));
        g->params[g->n_params++] = id;
    }
    return id;
}

int graph_add_op(Graph *g, OpKind op, const int *ins, int n_in, const NodeAttrs *attrs, SrcLoc loc, Diag *d) {
    const OpInfo *info = &op_table[op];
    if (!op_arity_ok(op, n_in)) {
        if (info->arity < 0)
            diag_error(d, loc, "'%s' takes at most %d operands, got %d", info->name, ETCH_MAX_OPERANDS, n_in);
        else
            diag_error(d, loc, "'%s' takes %d operand%s, got %d", info->name, info->arity,
                       info->arity == 1 ? "" : "s", n_in);
        return -1;
    }
    Node n = {.op = op, .n_in = n_in, .in = (int *)ins, .loc = loc};
    if (attrs) n.attr = *attrs;
    for (int i = 0; i < n_in; i++)
        if (ins[i] < 0 || ins[i] >= g->n_nodes) {
            diag_error(d, loc, "'%s' operand %d refers to undefined value %%%d", info->name, i, ins[i]);
            return -1;
        }
    if (!info->shape(g, &n, d)) return -1;
    return graph_append_raw(g, &n);
}

int graph_add_input(Graph *g, const char *name, DType t, Shape s, SrcLoc loc) {
    NodeAttrs a = {.name = name, .dtype = t, .shape = s};
    return graph_add_op(g, OP_INPUT, NULL, 0, &a, loc, NULL);
}

int graph_add_param(Graph *g, const char *name, DType t, Shape s, ParamInit init, bool frozen, SrcLoc loc) {
    NodeAttrs a = {.name = name, .dtype = t, .shape = s, .init = init, .frozen = frozen};
    return graph_add_op(g, OP_PARAM, NULL, 0, &a, loc, NULL);
}

int graph_add_const(Graph *g, double value, DType t, Shape s, SrcLoc loc) {
    NodeAttrs a = {.value = value, .dtype = t, .shape = s};
    return graph_add_op(g, OP_CONST, NULL, 0, &a, loc, NULL);
}

void graph_add_output(Graph *g, int id) {
    g->outputs = grow(g->arena, g->outputs, &g->cap_outputs, g->n_outputs + 1, sizeof(int));
    g->outputs[g->n_outputs++] = id;
}

void graph_add_update(Graph *g, int param, int value) {
    int cap = g->cap_updates;
    g->upd_dst = grow(g->arena, g->upd_dst, &cap, g->n_updates + 1, sizeof(int));
    g->upd_src = grow(g->arena, g->upd_src, &g->cap_updates, g->n_updates + 1, sizeof(int));
    g->upd_dst[g->n_updates] = param;
    g->upd_src[g->n_updates++] = value;
}

static int find_named(const Graph *g, const int *ids, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(g->nodes[ids[i]].attr.name, name) == 0) return ids[i];
    return -1;
}
int graph_find_param(const Graph *g, const char *name) { return find_named(g, g->params, g->n_params, name); }
int graph_find_input(const Graph *g, const char *name) { return find_named(g, g->inputs, g->n_inputs, name); }

void graph_count_uses(const Graph *g, int *counts) {
    memset(counts, 0, sizeof(int) * (size_t)g->n_nodes);
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++) counts[g->nodes[i].in[k]]++;
    for (int i = 0; i < g->n_outputs; i++) counts[g->outputs[i]]++;
}

Graph *graph_clone(Arena *a, const Graph *g, const char *name) {
    Graph *h = graph_new(a, name ? name : g->name);
    for (int id = 0; id < g->n_nodes; id++) graph_append_raw(h, &g->nodes[id]);
    for (int i = 0; i < g->n_outputs; i++) graph_add_output(h, g->outputs[i]);
    for (int i = 0; i < g->n_updates; i++) graph_add_update(h, g->upd_dst[i], g->upd_src[i]);
    return h;
}
