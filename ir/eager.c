/* eager.c: op-by-op interpretation of a graph (see eager.h). Each node's
 * reference kernel comes from the op table; the executor only manages values:
 * it binds inputs and params, allocates results, and drops each value when its
 * last user has run. */
#include "ir/eager.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

static bool check_bound(const Graph *g, int id, const Tensor *t, const char *what, Diag *d) {
    const Node *n = &g->nodes[id];
    if (t && t->dtype == n->dtype && shape_equal(&t->shape, &n->shape)) return true;
    char want[96], got[96] = "nothing";
    type_format(want, sizeof want, n->dtype, &n->shape);
    if (t) type_format(got, sizeof got, t->dtype, &t->shape);
    return diag_error(d, n->loc, "%s '%s' must be %s, got %s", what, n->attr.name, want, got);
}

bool eager_run(const Graph *g, Tensor *const *inputs, Tensor *const *params, Tensor **outputs, EagerStats *stats,
               Diag *d) {
    Tensor **val = calloc((size_t)g->n_nodes + 1, sizeof *val);
    int *uses = calloc((size_t)g->n_nodes + 1, sizeof *uses);
    bool *owned = calloc((size_t)g->n_nodes + 1, sizeof *owned);
    if (!val || !uses || !owned) abort();
    EagerStats st = {0};
    int64_t live = 0;
    bool ok = true;
    graph_count_uses(g, uses);
    for (int i = 0; i < g->n_updates; i++) uses[g->upd_src[i]]++; /* kept alive until applied */
    for (int i = 0; i < g->n_inputs && ok; i++) {
        ok = check_bound(g, g->inputs[i], inputs[i], "input", d);
        val[g->inputs[i]] = inputs[i];
    }
    for (int i = 0; i < g->n_params && ok; i++) {
        ok = check_bound(g, g->params[i], params[i], "parameter", d);
        val[g->params[i]] = params[i];
    }
    for (int id = 0; id < g->n_nodes && ok; id++) {
        const Node *n = &g->nodes[id];
        if (n->op == OP_INPUT || n->op == OP_PARAM) continue;
        const Tensor *ins[ETCH_MAX_OPERANDS];
        for (int k = 0; k < n->n_in; k++) ins[k] = val[n->in[k]];
        val[id] = tensor_new(n->dtype, n->shape);
        owned[id] = true;
        int64_t bytes = (int64_t)tensor_nbytes(val[id]);
        st.bytes_allocated += bytes;
        live += bytes;
        if (live > st.peak_bytes) st.peak_bytes = live;
        op_table[n->op].eval(g, id, val[id], ins);
        st.kernels++;
        /* free operands whose last user this was (outputs hold one use until the end) */
        for (int k = 0; k < n->n_in; k++) {
            int in = n->in[k];
            if (--uses[in] == 0 && owned[in]) {
                live -= (int64_t)tensor_nbytes(val[in]);
                tensor_free(val[in]);
                val[in] = NULL;
                owned[in] = false;
            }
        }
    }
    for (int i = 0; i < g->n_outputs; i++) {
        if (!ok) {
            outputs[i] = NULL;
            continue;
        }
        const Tensor *v = val[g->outputs[i]];
        outputs[i] = tensor_new(v->dtype, v->shape);
        memcpy(outputs[i]->data, v->data, tensor_nbytes(v));
    }
    /* State updates: each source is read before any param is overwritten. */
    Tensor **upd = calloc((size_t)g->n_updates + 1, sizeof *upd);
    if (!upd) abort();
    for (int i = 0; ok && i < g->n_updates; i++) {
        const Tensor *v = val[g->upd_src[i]];
        upd[i] = tensor_new(v->dtype, v->shape);
        memcpy(upd[i]->data, v->data, tensor_nbytes(v));
    }
    for (int i = 0; ok && i < g->n_updates; i++) {
        int p = g->upd_dst[i], k = 0;
        while (g->params[k] != p) k++;
        memcpy(params[k]->data, upd[i]->data, tensor_nbytes(upd[i]));
    }
    for (int i = 0; i < g->n_updates; i++) tensor_free(upd[i]);
    free(upd);
    for (int id = 0; id < g->n_nodes; id++)
        if (owned[id]) tensor_free(val[id]);
    if (stats) *stats = st;
    free(val);
    free(uses);
    free(owned);
    return ok;
}

void eager_set_threads(int n) { openblas_set_num_threads(n > 0 ? n : 1); }
