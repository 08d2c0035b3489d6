/* reduce.c (C backend): reductions as loops over the kept dims around loops
 * over the reduced ones, accumulating in double as the reference kernel does
 * (ir/ops/reduce.c), so results agree to the rounding of the final store. */
#include <stdio.h>

#include "codegen/c/ops/c_ops.h"

/* Appends "v*stride" terms for a list of loop variables to an index string. */
static void index_terms(char *buf, size_t cap, size_t *len, char (*vars)[16], const int64_t *strides, int n) {
    for (int k = 0; k < n; k++) {
        if (strides[k] == 1)
            *len += (size_t)snprintf(buf + *len, cap - *len, "%s%s", *len ? " + " : "", vars[k]);
        else
            *len += (size_t)snprintf(buf + *len, cap - *len, "%s%s * %lld", *len ? " + " : "", vars[k],
                                     (long long)strides[k]);
    }
}

/* Widest run of kept contiguous elements that gets an array of accumulators. */
enum { REDUCE_MAX_COLUMNS = 4096 };

void emit_reduce(CEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    ReduceLoops L;
    reduce_loops(g, n, &L);
    char kv[ETCH_MAX_RANK][16], rv[ETCH_MAX_RANK][16];
    char in_idx[256] = "", out_idx[256] = "";
    size_t il = 0, ol = 0;
    /* Reducing leading dims (a bias gradient sums the rows of [N, C]): the
     * innermost dim is kept, so loop over it innermost with one accumulator
     * per column. Reads stay contiguous and vectorize; every output still
     * sums its elements in the same order, so results do not change. */
    int nk = L.n_kept;
    bool columns = nk > 0 && L.kept_stride[nk - 1] == 1 && L.kept_dim[nk - 1] > 1 &&
                   L.kept_dim[nk - 1] <= REDUCE_MAX_COLUMNS && L.n_red > 0;
    int outer = columns ? nk - 1 : nk;
    const char *init = n->op == OP_REDUCE_MAX ? "-INFINITY" : "0.0";
    for (int k = 0; k < outer; k++) cemit_for(e, kv[k], sizeof kv[k], L.kept_dim[k]);
    int64_t ost[ETCH_MAX_RANK], st = 1;
    for (int k = nk - 1; k >= 0; k--) {
        ost[k] = st;
        st *= L.kept_dim[k];
    }
    char acc[32] = "acc", j[16];
    if (columns) {
        cemit_line(e, "double acc[%lld];", (long long)L.kept_dim[nk - 1]);
        cemit_for(e, j, sizeof j, L.kept_dim[nk - 1]);
        cemit_line(e, "acc[%s] = %s;", j, init);
        cemit_close(e);
    } else {
        cemit_line(e, "double acc = %s;", init);
    }
    for (int k = 0; k < L.n_red; k++) cemit_for(e, rv[k], sizeof rv[k], L.red_dim[k]);
    if (columns) {
        cemit_for(e, kv[nk - 1], sizeof kv[nk - 1], L.kept_dim[nk - 1]);
        snprintf(acc, sizeof acc, "acc[%s]", kv[nk - 1]);
    }
    index_terms(in_idx, sizeof in_idx, &il, kv, L.kept_stride, nk);
    index_terms(in_idx, sizeof in_idx, &il, rv, L.red_stride, L.n_red);
    cemit_line(e, "double v = (double)%s[%s];", e->buf[n->in[0]], il ? in_idx : "0");
    if (n->op == OP_REDUCE_MAX) cemit_line(e, "%s = (v > %s || v != v) ? v : %s;", acc, acc, acc);
    else cemit_line(e, "%s += v;", acc);
    if (columns) cemit_close(e);
    for (int k = 0; k < L.n_red; k++) cemit_close(e);
    if (columns) {
        cemit_for(e, kv[nk - 1], sizeof kv[nk - 1], L.kept_dim[nk - 1]);
        snprintf(acc, sizeof acc, "acc[%s]", kv[nk - 1]);
    }
    index_terms(out_idx, sizeof out_idx, &ol, kv, ost, nk);
    if (n->op == OP_REDUCE_MEAN) cemit_line(e, "%s /= %lld.0;", acc, (long long)L.red_count);
    cemit_line(e, "%s[%s] = (%s)%s;", e->buf[id], ol ? out_idx : "0", dtype_c_type(n->dtype), acc);
    if (columns) cemit_close(e);
    for (int k = 0; k < outer; k++) cemit_close(e);
}
