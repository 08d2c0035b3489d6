/* collective.c (C backend): one bucket of gradients averaged over the ranks
 * of a data-parallel job, in two halves (ir/ops/collective.c). allreduce_start
 * copies its gradients into its result, one after another, and calls
 *     void etch_allreduce_start(float *buf, int64_t n);
 * which starts averaging buf over the ranks and returns at once;
 * allreduce_wait calls
 *     void etch_allreduce_wait(float *buf, int64_t n);
 * on the start's buffer, which returns once buf holds the average, and copies
 * it into its own result (the memory plan keeps the start's buffer alive, and
 * untouched, until the wait). The hooks are not in etch_rt.c: an MPI training
 * program gets them from etch_mpi.c (the MPI driver part,
 * runtime/drivers/train_mpi.c), and an embedder that links the model into its
 * own data-parallel program provides its own. Only graphs built for
 * data-parallel training (--mpi) hold the ops, so other programs never name
 * them. */
#include <stdio.h>

#include "codegen/c/ops/c_ops.h"

static void declare_hooks(CEmitter *e) {
    if (cemit_define_once(e, "etch_allreduce"))
        sb_printf(e->preamble, "/* average buf over the ranks of a data-parallel job (etch_mpi.c): start, then wait */\n"
                               "void etch_allreduce_start(float *buf, int64_t n);\n"
                               "void etch_allreduce_wait(float *buf, int64_t n);\n\n");
}

void emit_allreduce_start(CEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    declare_hooks(e);
    const char *y = e->buf[id];
    int64_t off = 0;
    for (int k = 0; k < n->n_in; k++) {
        int64_t numel = shape_numel(&g->nodes[n->in[k]].shape);
        cemit_line(e, "memcpy(%s + %lld, %s, %zu);", y, (long long)off, e->buf[n->in[k]], (size_t)numel * sizeof(float));
        off += numel;
    }
    cemit_line(e, "etch_allreduce_start(%s, %lld);", y, (long long)off);
}

void emit_allreduce_wait(CEmitter *e, const Graph *g, int id) {
    declare_hooks(e);
    const char *x = e->buf[g->nodes[id].in[0]];
    int64_t numel = shape_numel(&g->nodes[id].shape);
    cemit_line(e, "etch_allreduce_wait(%s, %lld);", x, (long long)numel);
    cemit_line(e, "memcpy(%s, %s, %zu);", e->buf[id], x, (size_t)numel * sizeof(float));
}
