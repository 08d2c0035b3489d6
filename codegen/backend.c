/* backend.c: the checks every backend shares (backend.h): before a backend
 * emits anything, every op of every graph (scan bodies included) must have an
 * emitter in its table, else the user gets a located error naming the op,
 * and every graph must carry the memory plan the pass pipeline makes. */
#include "codegen/backend.h"

bool backend_check_ops(const Backend *b, const Graph *g, Diag *d) {
    for (int id = 0; id < g->n_nodes; id++) {
        const Node *n = &g->nodes[id];
        if (!b->op_supported(n->op))
            return diag_error(d, n->loc, "the %s backend cannot emit op '%s'", b->name, op_table[n->op].name);
        if (n->attr.body && !backend_check_ops(b, n->attr.body, d)) return false;
    }
    return true;
}

bool backend_check_planned(const Backend *b, const Graph *g, Diag *d) {
    if (!g->mem_plan)
        return diag_error_plain(d, "graph %s reached the %s backend without a memory plan (the pass pipeline's "
                                   "plan-memory stage did not run)", g->name, b->name);
    for (int id = 0; id < g->n_nodes; id++)
        if (g->nodes[id].attr.body && !backend_check_planned(b, g->nodes[id].attr.body, d)) return false;
    return true;
}
