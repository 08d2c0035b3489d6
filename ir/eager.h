/* eager.h: the eager executor: runs a graph op by op, allocating each result
 * as it goes and freeing it after its last use, the way a dynamic framework
 * does. It is the reference every backend is tested against and the "dynamic"
 * side of etch's static-vs-dynamic comparisons. */
#ifndef ETCH_EAGER_H
#define ETCH_EAGER_H

#include "ir/tensor.h"

typedef struct EagerStats {
    int64_t kernels;         /* ops executed */
    int64_t bytes_allocated; /* total bytes of results allocated */
    int64_t peak_bytes;      /* most result bytes alive at once */
} EagerStats;

/* inputs: per g->inputs[i]; params: per g->params[i]. Fills outputs[i] (per
 * g->outputs[i]) with new tensors the caller frees. Shapes and dtypes of the
 * given tensors must match the graph (reported through d otherwise). */
bool eager_run(const Graph *g, Tensor *const *inputs, Tensor *const *params, Tensor **outputs, EagerStats *stats,
               Diag *d);

/* Threads the eager kernels (OpenBLAS) may use. */
void eager_set_threads(int n);

#endif
