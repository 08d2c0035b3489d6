/* random.c (C backend): random_uniform calls the runtime's etch_philox4x32
 * with the same key and counters as the reference kernel (ir/ops/random.c),
 * so emitted and eager values are bit-identical. */
#include <stdio.h>

#include "codegen/c/ops/c_ops.h"

void emit_random_uniform(CEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    int64_t numel = shape_numel(&n->shape), blocks = (numel + 3) / 4;
    const char *y = e->buf[id], *T = dtype_c_type(n->dtype);
    char b[16], k[16];
    /* random_step_counter, spelled out */
    cemit_line(e, "const double s = (double)%s[0];", e->buf[n->in[0]]);
    cemit_line(e, "const uint64_t ctr = !(s > 0) ? 0 : s >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)s;");
    cemit_for(e, b, sizeof b, blocks);
    cemit_line(e, "uint32_t r[4];");
    cemit_line(e, "etch_philox4x32(UINT64_C(%llu), ctr, (uint64_t)%s, r);", (unsigned long long)n->attr.seed, b);
    if (numel % 4 == 0) {
        cemit_for(e, k, sizeof k, 4);
    } else {
        snprintf(k, sizeof k, "i%d", e->n_loops++);
        cemit_line(e, "for (int64_t %s = 0; %s < 4 && %s * 4 + %s < %lld; %s++) {", k, k, b, k, (long long)numel, k);
        e->indent++;
    }
    cemit_line(e, "%s[%s * 4 + %s] = (%s)etch_u01(r[%s]);", y, b, k, T, k);
    cemit_close(e);
    cemit_close(e);
}
