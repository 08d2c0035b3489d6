/* collective.c (C backend): allreduce_mean copies its bucket of gradients
 * into its result, one after another, then calls the runtime hook
 *     void etch_allreduce_mean(float *buf, int64_t n);
 * which averages buf over the ranks of the job in place. The hook is not in
 * etch_rt.c: an MPI training program gets it from etch_mpi.c (the MPI driver
 * part, runtime/drivers/train_mpi.c), and an embedder that links the model
 * into its own data-parallel program provides its own. Only graphs built for
 * data-parallel training (--mpi) hold the op, so other programs never name it. */
#include <stdio.h>

#include "codegen/c/ops/c_ops.h"

void emit_allreduce_mean(CEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    if (cemit_define_once(e, "etch_allreduce_mean"))
        sb_printf(e->preamble, "/* averages buf over the ranks of a data-parallel job (etch_mpi.c) */\n"
                               "void etch_allreduce_mean(float *buf, int64_t n);\n\n");
    const char *y = e->buf[id];
    int64_t off = 0;
    for (int k = 0; k < n->n_in; k++) {
        int64_t numel = shape_numel(&g->nodes[n->in[k]].shape);
        cemit_line(e, "memcpy(%s + %lld, %s, %zu);", y, (long long)off, e->buf[n->in[k]], (size_t)numel * sizeof(float));
        off += numel;
    }
    cemit_line(e, "etch_allreduce_mean(%s, %lld);", y, (long long)off);
}
