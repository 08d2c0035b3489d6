/* to_f64.c: a copy of a graph computed in float64: every f32 value, constant,
 * parameter and cast target becomes f64. Used by gradient checks, which need
 * finite differences far below float32's resolution. */
#include "passes/to_f64.h"

Graph *graph_to_f64(Arena *a, const Graph *g) {
    Graph *h = graph_new(a, g->name);
    for (int id = 0; id < g->n_nodes; id++) {
        Node n = g->nodes[id];
        if (n.dtype == DT_F32) n.dtype = DT_F64;
        if (n.attr.dtype == DT_F32) n.attr.dtype = DT_F64;
        graph_append_raw(h, &n);
    }
    for (int i = 0; i < g->n_outputs; i++) graph_add_output(h, g->outputs[i]);
    for (int i = 0; i < g->n_updates; i++) graph_add_update(h, g->upd_dst[i], g->upd_src[i]);
    return h;
}
