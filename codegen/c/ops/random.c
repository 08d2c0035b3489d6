/* random.c (C backend): random_uniform and random_normal call the runtime's
 * etch_philox4x32 with the same key and counters as the reference kernels
 * (ir/ops/random.c), and random_normal spells out the same Box-Muller
 * expression in double, so emitted and eager values are bit-identical. */
#include <stdio.h>

#include "codegen/c/ops/c_ops.h"

/* The loop nest both ops share: for each Philox block b (key = seed, counter
 * = (trunc(step), b)), its `per` elements b * per + k, each assigned the C
 * expression `value` writes for word index k (into a buffer of 256 bytes). */
static void emit_blocks(CEmitter *e, const Graph *g, int id, int per, void (*value)(char *out, const char *k)) {
    const Node *n = &g->nodes[id];
    int64_t numel = shape_numel(&n->shape), blocks = (numel + per - 1) / per;
    const char *y = e->buf[id], *T = dtype_c_type(n->dtype);
    char b[16], k[16], v[256];
    /* random_step_counter, spelled out */
    cemit_line(e, "const double s = (double)%s[0];", e->buf[n->in[0]]);
    cemit_line(e, "const uint64_t ctr = !(s > 0) ? 0 : s >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)s;");
    cemit_for(e, b, sizeof b, blocks);
    cemit_line(e, "uint32_t r[4];");
    cemit_line(e, "etch_philox4x32(UINT64_C(%llu), ctr, (uint64_t)%s, r);", (unsigned long long)n->attr.seed, b);
    if (numel % per == 0) {
        cemit_for(e, k, sizeof k, per);
    } else {
        snprintf(k, sizeof k, "i%d", e->n_loops++);
        cemit_line(e, "for (int64_t %s = 0; %s < %d && %s * %d + %s < %lld; %s++) {", k, k, per, b, per, k,
                   (long long)numel, k);
        e->indent++;
    }
    value(v, k);
    cemit_line(e, "%s[%s * %d + %s] = (%s)%s;", y, b, per, k, T, v);
    cemit_close(e);
    cemit_close(e);
}

static void uniform_value(char *out, const char *k) { snprintf(out, 256, "etch_u01(r[%s])", k); }

/* random_normal_value (ir/ops/random.c), spelled out */
static void normal_value(char *out, const char *k) {
    snprintf(out, 256, "(sqrt(-2.0 * log(1.0 - etch_u01(r[2 * %s]))) * cos(6.283185307179586476925 * etch_u01(r[2 * %s + 1])))",
             k, k);
}

void emit_random_uniform(CEmitter *e, const Graph *g, int id) { emit_blocks(e, g, id, 4, uniform_value); }

void emit_random_normal(CEmitter *e, const Graph *g, int id) { emit_blocks(e, g, id, 2, normal_value); }
