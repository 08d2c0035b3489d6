/* gather.c (CUDA backend): gather_rows and its gradient scatter_add_rows,
 * with the semantics of the reference kernels (ir/ops/gather.c): an
 * out-of-range id gives a zero row in the gather and is dropped by the
 * scatter, and no thread reads or writes outside a tensor.
 *
 * The scatter uses no atomics: a block owns a row r of the result (a
 * grid-stride loop over the rows) and walks the ids in chunks of its
 * threads: each thread tests one id against r, thread 0 lists the matches
 * of the chunk in order, then each thread adds those rows of the gradient
 * into its columns of row r. So every element is the sum the eager executor
 * forms, in its order, bit for bit (and the same on every run). A block
 * reads all N ids (V * N tests for the N * R additions: cheap beside the
 * one thread per (r, column) walking every id, V * R * N). */
#include <stdio.h>

#include "codegen/cuda/cuda_emit.h"

void cuda_emit_gather_rows(CudaEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    const Shape *ws = &g->nodes[n->in[0]].shape;
    long long V = ws->dim[0], R = shape_numel(ws) / V;
    const char *y = e->c.buf[id], *w = e->c.buf[n->in[0]], *ids = e->c.buf[n->in[1]];
    char what[256];
    cuda_describe(g, id, what, sizeof what);
    cuda_elementwise_begin(e, shape_numel(&n->shape), what);
    cemit_line(&e->c, "const int64_t r = (int64_t)%s[i / %lld];", ids, R);
    cemit_line(&e->c, "%s[i] = r >= 0 && r < %lld ? %s[r * %lld + i %% %lld] : (%s)0; /* out-of-range id: a zero row */",
               y, V, w, R, R, dtype_c_type(n->dtype));
    cuda_elementwise_end(e);
}

void cuda_emit_scatter_add_rows(CudaEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    long long V = n->shape.dim[0], R = shape_numel(&n->shape) / V, N = shape_numel(&g->nodes[n->in[1]].shape);
    const char *y = e->c.buf[id], *gy = e->c.buf[n->in[0]], *ids = e->c.buf[n->in[1]], *T = dtype_c_type(n->dtype);
    const int C = CUDA_BLOCK; /* ids tested per chunk: one per thread */
    char what[256], row[64];
    CEmitter *c = &e->c;
    cuda_describe(g, id, what, sizeof what);
    cuda_kernel_begin(e, V < CUDA_MAX_GRID ? V : CUDA_MAX_GRID, C, what);
    cemit_line(c, "ETCH_SHARED(uint8_t, match, %d);", C);
    cemit_line(c, "ETCH_SHARED(int, hit, %d);", C);
    cemit_line(c, "ETCH_SHARED(int, n_hits, 1);");
    cemit_line(c, "for (int64_t r = ETCH_BLOCK; r < %lld; r += ETCH_NBLOCKS) {", V);
    c->indent++;
    snprintf(row, sizeof row, "%s + r * %lld", y, R);
    cemit_line(c, "ETCH_THREADS");
    cemit_line(c, "    for (int64_t j = ETCH_TID; j < %lld; j += ETCH_NTHREADS) (%s)[j] = 0;", R, row);
    cemit_line(c, "ETCH_THREADS_END");
    cemit_line(c, "for (int64_t c0 = 0; c0 < %lld; c0 += %d) {", N, C);
    c->indent++;
    cemit_line(c, "ETCH_THREADS /* out-of-range ids match no row: dropped */");
    cemit_line(c, "    match[ETCH_TID] = c0 + ETCH_TID < %lld && (int64_t)%s[c0 + ETCH_TID] == r;", N, ids);
    cemit_line(c, "ETCH_SYNC");
    cemit_line(c, "    if (ETCH_TID == 0) { /* the chunk's matches, in id order */");
    cemit_line(c, "        int k = 0;");
    cemit_line(c, "        for (int t = 0; t < %d; t++)", C);
    cemit_line(c, "            if (match[t]) hit[k++] = t;");
    cemit_line(c, "        n_hits[0] = k;");
    cemit_line(c, "    }");
    cemit_line(c, "ETCH_SYNC");
    cemit_line(c, "    for (int64_t j = ETCH_TID; j < %lld; j += ETCH_NTHREADS) {", R);
    cemit_line(c, "        %s acc = (%s)[j];", T, row);
    cemit_line(c, "        for (int k = 0; k < n_hits[0]; k++) acc += %s[(c0 + hit[k]) * %lld + j];", gy, R);
    cemit_line(c, "        (%s)[j] = acc;", row);
    cemit_line(c, "    }");
    cemit_line(c, "ETCH_THREADS_END");
    c->indent--;
    cemit_line(c, "}");
    c->indent--;
    cemit_line(c, "}");
    cuda_kernel_end(e);
}
