/* to_f64.c: a copy of a graph computed in float64: every f32 value, constant,
 * parameter and cast target becomes f64. Used by gradient checks, which need
 * finite differences far below float32's resolution. */
#include "passes/transforms/to_f64.h"

Graph *graph_to_f64(Arena *a, const Graph *g) {
    Graph *h = graph_clone(a, g, NULL);
    for (int id = 0; id < h->n_nodes; id++) {
        Node *n = &h->nodes[id];
        if (n->dtype == DT_F32) n->dtype = DT_F64;
        if (n->attr.dtype == DT_F32) n->attr.dtype = DT_F64;
        if (n->op == OP_SCAN && n->attr.body) n->attr.body = graph_to_f64(a, n->attr.body);
    }
    return h;
}
