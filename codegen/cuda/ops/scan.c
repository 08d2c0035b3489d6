/* scan.c (CUDA backend): the loop op (ir/ops/scan.c) as a host loop over
 * the time steps, each step launching the body's kernels. A kernel
 * addresses every value at a literal offset, so the body (cuda_emit_subgraph,
 * emitted once per scan, its arena in the context's scratch) reads and
 * writes fixed slots in the scratch, and device copies move the values
 * between them and the scan's operands and result each step:
 *
 *   before the loop   initial carries  -> carry slots
 *   each step s       step s of each sequence -> its slot; the body's kernels;
 *                     new carries -> carry slots; per-step outputs -> the
 *                     result at their offset + s * size
 *   after the loop    carry slots -> the result's final carries
 *
 * (The body reads its carry slots while it writes its outputs, so the new
 * carries go to slots of their own first.) Captured values (weights) are
 * read in place. A reverse scan walks s from T - 1 down. On the GPU the
 * whole loop is recorded into the entry's CUDA graph like any launch. */
#include <stdio.h>
#include <string.h>

#include "codegen/cuda/cuda_emit.h"

/* Writes to name a slot of `bytes` in the scratch as a device address of type t. */
static const char *slot(CudaEmitter *e, char *name, size_t n, int64_t bytes, DType t) {
    snprintf(name, n, "((%s *)(m + %lld))", dtype_c_type(t), (long long)cuda_scratch(e, bytes, 256));
    return name;
}

void cuda_emit_scan(CudaEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    const Graph *B = n->attr.body;
    int nc = n->attr.n_carry, nx = n->attr.n_xs;
    ScanLayout L;
    scan_layout(g, n, &L);
    size_t es = dtype_size(n->dtype);
    char in_name[ETCH_MAX_OPERANDS][64], out_name[ETCH_MAX_OPERANDS][64];
    const char *in_ref[ETCH_MAX_OPERANDS], *out_ref[ETCH_MAX_OPERANDS];
    size_t in_bytes[ETCH_MAX_OPERANDS];
    for (int k = 0; k < n->n_in; k++) {
        const Node *bi = &B->nodes[B->inputs[k]];
        in_bytes[k] = (size_t)shape_numel(&bi->shape) * dtype_size(bi->dtype);
        in_ref[k] = k < nc + nx ? slot(e, in_name[k], sizeof in_name[k], (int64_t)in_bytes[k], bi->dtype)
                                : e->c.buf[n->in[k]]; /* a captured value: read in place */
    }
    for (int k = 0; k < B->n_outputs; k++)
        out_ref[k] = slot(e, out_name[k], sizeof out_name[k], L.numel[k] * (int64_t)es, n->dtype);

    StrBuf *host = e->launches, body = {0};
    char what[256];
    cuda_describe(g, id, what, sizeof what);
    sb_printf(host, "    /* %s: %lld steps of %s */\n", what, (long long)L.T, B->name);
    for (int k = 0; k < nc; k++)
        sb_printf(host, "    etch_dev_copy(%s, %s, %zu, stream);\n", in_ref[k], e->c.buf[n->in[k]], in_bytes[k]);
    sb_printf(host, "    for (int64_t t = 0; t < %lld; t++) {\n", (long long)L.T);
    if (n->attr.reverse) sb_printf(host, "        const int64_t s = %lld - t;\n", (long long)L.T - 1);
    else sb_puts(host, "        const int64_t s = t;\n");
    for (int k = nc; k < nc + nx; k++)
        sb_printf(host, "        etch_dev_copy(%s, %s + s * %lld, %zu, stream);\n", in_ref[k], e->c.buf[n->in[k]],
                  (long long)shape_numel(&B->nodes[B->inputs[k]].shape), in_bytes[k]);
    e->launches = &body;
    cuda_emit_subgraph(e, B, in_ref, out_ref);
    e->launches = host;
    for (const char *line = body.s; line && *line;) { /* the body's launches, one level deeper */
        const char *end = strchr(line, '\n');
        sb_printf(host, "    %.*s\n", (int)(end - line), line);
        line = end + 1;
    }
    for (int k = 0; k < B->n_outputs; k++) {
        size_t bytes = (size_t)L.numel[k] * es;
        if (k < nc) sb_printf(host, "        etch_dev_copy(%s, %s, %zu, stream);\n", in_ref[k], out_ref[k], bytes);
        else
            sb_printf(host, "        etch_dev_copy(%s + %lld + s * %lld, %s, %zu, stream);\n", e->c.buf[id],
                      (long long)L.off[k], (long long)L.numel[k], out_ref[k], bytes);
    }
    sb_puts(host, "    }\n");
    for (int k = 0; k < nc; k++)
        sb_printf(host, "    etch_dev_copy(%s + %lld, %s, %zu, stream);\n", e->c.buf[id], (long long)L.off[k], in_ref[k],
                  in_bytes[k]);
    sb_free(&body);
}
