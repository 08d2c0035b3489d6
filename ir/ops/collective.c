/* collective.c: allreduce_mean, the op a data-parallel training step puts
 * between its gradients and the optimizer update (passes/transforms/train.c,
 * docs/passes.md "Data-parallel training"). Its operands are one bucket of
 * gradients; its result is them flattened one after another, f32[sum of
 * numels], which the C backend averages over the ranks of an MPI job in one
 * call. Here, in one process, averaging over one rank is the identity, so the
 * reference kernel only concatenates. */
#include <string.h>

#include "ir/ops/ops_impl.h"

bool shape_allreduce_mean(Graph *g, Node *n, Diag *d) {
    char a[96];
    if (n->n_in < 1) return diag_error(d, n->loc, "'allreduce_mean' needs at least one operand");
    int64_t total = 0;
    for (int k = 0; k < n->n_in; k++) {
        const Node *x = &g->nodes[n->in[k]];
        if (x->dtype != DT_F32)
            return diag_error(d, n->loc, "'allreduce_mean' reduces f32 values (the runtime sums floats), got %s",
                              ops_type_str(a, g, n->in[k]));
        total += shape_numel(&x->shape);
    }
    n->dtype = DT_F32;
    n->shape = (Shape){.rank = 1, .dim = {total}};
    return true;
}

void eval_allreduce_mean(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    const Node *n = &g->nodes[id];
    char *dst = out->data;
    for (int k = 0; k < n->n_in; k++) {
        size_t bytes = tensor_nbytes(ins[k]);
        memcpy(dst, ins[k]->data, bytes);
        dst += bytes;
    }
}
