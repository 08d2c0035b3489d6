/* collective.c: allreduce_start and allreduce_wait, the pair of ops a
 * data-parallel training step puts between each bucket of gradients and the
 * optimizer update (passes/transforms/train.c, docs/passes.md "Data-parallel
 * training"). allreduce_start's operands are one bucket of gradients; its
 * result is them flattened one after another, f32[sum of numels], a buffer
 * whose average over the ranks of an MPI job the C backend starts without
 * waiting for it. allreduce_wait's operand is that start; its result is the
 * buffer once averaged. Two ops, so that the start can run as soon as the
 * backward pass has produced the bucket's gradients and the wait only where
 * the update needs them: the reduction overlaps the rest of the backward
 * pass. Here, in one process, averaging over one rank is the identity, so the
 * reference kernels only concatenate and copy. */
#include <string.h>

#include "ir/ops/ops_impl.h"

bool shape_allreduce_start(Graph *g, Node *n, Diag *d) {
    char a[96];
    if (n->n_in < 1) return diag_error(d, n->loc, "'allreduce_start' needs at least one operand");
    int64_t total = 0;
    for (int k = 0; k < n->n_in; k++) {
        const Node *x = &g->nodes[n->in[k]];
        if (x->dtype != DT_F32)
            return diag_error(d, n->loc, "'allreduce_start' reduces f32 values (the runtime sums floats), got %s",
                              ops_type_str(a, g, n->in[k]));
        total += shape_numel(&x->shape);
    }
    n->dtype = DT_F32;
    n->shape = (Shape){.rank = 1, .dim = {total}};
    return true;
}

void eval_allreduce_start(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    const Node *n = &g->nodes[id];
    char *dst = out->data;
    for (int k = 0; k < n->n_in; k++) {
        size_t bytes = tensor_nbytes(ins[k]);
        memcpy(dst, ins[k]->data, bytes);
        dst += bytes;
    }
}

/* The wait's operand must be a start: the runtime finds the reduction in
 * flight by the start's buffer. */
bool shape_allreduce_wait(Graph *g, Node *n, Diag *d) {
    const Node *x = &g->nodes[n->in[0]];
    if (x->op != OP_ALLREDUCE_START)
        return diag_error(d, n->loc, "'allreduce_wait' waits for an allreduce_start, got '%s'", op_table[x->op].name);
    n->dtype = x->dtype;
    n->shape = x->shape;
    return true;
}

void eval_allreduce_wait(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    (void)g, (void)id;
    memcpy(out->data, ins[0]->data, tensor_nbytes(ins[0]));
}
