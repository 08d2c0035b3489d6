/* dce.c: dead-code elimination. A node is live when an output, a state update
 * (its source or its destination param) or a live node uses it; everything
 * else is dropped and the survivors are renumbered densely. Other passes leave
 * dead nodes behind on purpose (simplify replaces a node but keeps the old
 * one's operands around, CSE stops using duplicates), so this is where they go.
 *
 * All inputs and params are kept even when nothing reads them: they are the
 * entry's interface (call arguments, checkpoint tensors), and removing one
 * would change the compiled function's signature and the weights file. */
#include "passes/pass.h"
#include "passes/rewrite.h"

Graph *pass_dce(Graph *g, PassCtx *ctx) {
    bool *live = arena_alloc(g->arena, sizeof(bool) * (size_t)(g->n_nodes + 1));
    for (int i = 0; i < g->n_outputs; i++) live[g->outputs[i]] = true;
    for (int i = 0; i < g->n_updates; i++) live[g->upd_src[i]] = live[g->upd_dst[i]] = true;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == OP_INPUT || g->nodes[i].op == OP_PARAM) live[i] = true;
    /* users follow their operands, so one backward sweep reaches a fixpoint */
    for (int id = g->n_nodes - 1; id >= 0; id--)
        if (live[id])
            for (int k = 0; k < g->nodes[id].n_in; k++) live[g->nodes[id].in[k]] = true;

    Rewriter rw;
    rewrite_begin(&rw, g, ctx->d);
    for (int id = 0; id < g->n_nodes; id++)
        if (live[id]) rewrite_copy_node(&rw, id);
    return rewrite_finish(&rw);
}
