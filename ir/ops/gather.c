/* gather.c: embedding lookups. gather_rows(table, ids) picks rows of a table
 * [V, ...] by integer ids of any shape: out[i..., :] = table[ids[i...], :].
 * Its gradient with respect to the table is scatter_add_rows(g, ids), which
 * sums the rows of g back into a zero tensor of the table's shape (attr.shape).
 *
 * Out-of-range ids (negative or >= V) never read or write out of bounds: the
 * gather gives a zero row and the scatter drops the row, in both the reference
 * kernels and the emitted code. That is the exact VJP of the forward (the
 * output does not depend on the table there), and it keeps a bad id in the data
 * from crashing a compiled program; PyTorch raises an error instead. */
#include <stdio.h>
#include <string.h>

#include "ir/ops/ops_impl.h"

static bool is_index_dtype(DType t) { return t == DT_I32 || t == DT_I64; }

bool shape_gather_rows(Graph *g, Node *n, Diag *d) {
    const Node *w = &g->nodes[n->in[0]], *ids = &g->nodes[n->in[1]];
    char a[96], b[96];
    if (w->shape.rank < 1)
        return diag_error(d, n->loc, "'gather_rows' needs a table with at least one dim, got %s",
                          ops_type_str(a, g, n->in[0]));
    if (!is_index_dtype(ids->dtype))
        return diag_error(d, n->loc, "'gather_rows' ids must be i32 or i64, got %s", ops_type_str(a, g, n->in[1]));
    if (ids->shape.rank + w->shape.rank - 1 > ETCH_MAX_RANK)
        return diag_error(d, n->loc, "'gather_rows' of %s by %s would have more than %d dims",
                          ops_type_str(a, g, n->in[0]), ops_type_str(b, g, n->in[1]), ETCH_MAX_RANK);
    Shape s = ids->shape;
    for (int i = 1; i < w->shape.rank; i++) s.dim[s.rank++] = w->shape.dim[i];
    n->dtype = w->dtype;
    n->shape = s;
    return true;
}

bool shape_scatter_add_rows(Graph *g, Node *n, Diag *d) {
    const Node *gy = &g->nodes[n->in[0]], *ids = &g->nodes[n->in[1]];
    const Shape *to = &n->attr.shape;
    char a[96], b[96], c[96];
    if (to->rank < 1 || to->rank > ETCH_MAX_RANK)
        return diag_error(d, n->loc, "'scatter_add_rows' target must have 1 to %d dims, got %d", ETCH_MAX_RANK, to->rank);
    for (int i = 0; i < to->rank; i++)
        if (to->dim[i] <= 0)
            return diag_error(d, n->loc, "'scatter_add_rows' target dim %d is %lld; dims must be positive", i,
                              (long long)to->dim[i]);
    if (!is_index_dtype(ids->dtype))
        return diag_error(d, n->loc, "'scatter_add_rows' ids must be i32 or i64, got %s", ops_type_str(a, g, n->in[1]));
    if (gy->dtype == DT_BOOL || dtype_is_quantized(gy->dtype))
        return diag_error(d, n->loc, "'scatter_add_rows' needs numbers it can sum, got %s", ops_type_str(a, g, n->in[0]));
    bool ok = gy->shape.rank == ids->shape.rank + to->rank - 1;
    for (int i = 0; ok && i < ids->shape.rank; i++) ok = gy->shape.dim[i] == ids->shape.dim[i];
    for (int i = 1; ok && i < to->rank; i++) ok = gy->shape.dim[ids->shape.rank + i - 1] == to->dim[i];
    if (!ok)
        return diag_error(d, n->loc, "'scatter_add_rows' of %s by ids %s does not fit rows of %s",
                          ops_type_str(a, g, n->in[0]), ops_type_str(b, g, n->in[1]),
                          type_format(c, sizeof c, gy->dtype, to));
    n->dtype = gy->dtype;
    n->shape = *to;
    return true;
}

/* ids[i] as an int64 from its actual storage type (no rounding through double). */
static int64_t load_id(const Tensor *ids, int64_t i) {
    return ids->dtype == DT_I32 ? ((const int32_t *)ids->data)[i] : ((const int64_t *)ids->data)[i];
}

void eval_gather_rows(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    (void)g, (void)id;
    int64_t V = ins[0]->shape.dim[0], R = tensor_numel(ins[0]) / V, N = tensor_numel(ins[1]);
    size_t row = (size_t)R * dtype_size(out->dtype);
    const char *w = ins[0]->data;
    char *y = out->data;
    for (int64_t i = 0; i < N; i++) {
        int64_t r = load_id(ins[1], i);
        if (r >= 0 && r < V) memcpy(y + (size_t)i * row, w + (size_t)r * row, row);
        else memset(y + (size_t)i * row, 0, row);
    }
}

void eval_scatter_add_rows(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    (void)g, (void)id;
    int64_t V = out->shape.dim[0], R = tensor_numel(out) / V, N = tensor_numel(ins[1]);
    for (int64_t i = 0; i < N; i++) { /* in id order, as the emitted loop: same float sums */
        int64_t r = load_id(ins[1], i);
        if (r < 0 || r >= V) continue;
        if (out->dtype == DT_F32) {
            float *o = (float *)out->data + r * R;
            const float *s = (const float *)ins[0]->data + i * R;
            for (int64_t j = 0; j < R; j++) o[j] += s[j];
        } else {
            for (int64_t j = 0; j < R; j++) tensor_set(out, r * R + j, tensor_get(out, r * R + j) + tensor_get(ins[0], i * R + j));
        }
    }
}

void vjp_gather_rows(VjpCtx *c) {
    const Node *n = &c->g->nodes[c->id];
    if (!c->needs[0]) return; /* ids are integers: no gradient */
    NodeAttrs at = {.shape = c->g->nodes[n->in[0]].shape};
    int ins[2] = {c->gy, n->in[1]};
    c->gx[0] = ad_node(c, OP_SCATTER_ADD_ROWS, ins, 2, &at);
}
