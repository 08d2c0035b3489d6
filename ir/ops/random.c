/* random.c: random_uniform {seed}(step): a tensor of attr.dtype/attr.shape with
 * elements uniform in [0, 1), for dropout masks. The numbers come from
 * Philox4x32-10 (runtime/etch_rt.c) with key = seed and counter = (step,
 * i / 4); element i takes word i % 4, turned into a float by etch_u01 (24
 * random bits, exact in f32). So an element depends only on (seed, step, i):
 * not on thread count, call order or backend, and the emitted code, which
 * calls the same etch_philox4x32, produces bit-identical values to the
 * reference kernel. The operand is the step counter (a scalar; in a training
 * step the optimizer's "optimizer.step"), so each step draws a new mask. */
#include <stdio.h>

#include "ir/ops/ops_impl.h"
#include "runtime/etch_rt.h"

bool shape_random_uniform(Graph *g, Node *n, Diag *d) {
    const Node *step = &g->nodes[n->in[0]];
    const Shape *s = &n->attr.shape;
    char a[96];
    if (shape_numel(&step->shape) != 1 || step->dtype == DT_BOOL)
        return diag_error(d, n->loc, "'random_uniform' takes a scalar step counter, got %s", ops_type_str(a, g, n->in[0]));
    if (s->rank < 0 || s->rank > ETCH_MAX_RANK)
        return diag_error(d, n->loc, "'random_uniform' has rank %d; at most %d dimensions are supported", s->rank,
                          ETCH_MAX_RANK);
    for (int i = 0; i < s->rank; i++)
        if (s->dim[i] <= 0)
            return diag_error(d, n->loc, "'random_uniform' dimension %d is %lld; dimensions must be positive", i,
                              (long long)s->dim[i]);
    if (n->attr.seed > (uint64_t)INT64_MAX) /* keeps the textual IR's integers signed */
        return diag_error(d, n->loc, "'random_uniform' seed must be below 2^63");
    if (n->attr.dtype >= DT_COUNT || !dtype_is_float(n->attr.dtype))
        return diag_error(d, n->loc, "'random_uniform' makes f32 or f64 values");
    n->dtype = n->attr.dtype;
    n->shape = *s;
    return true;
}

uint64_t random_step_counter(double step) {
    if (!(step > 0)) return 0;
    if (step >= 18446744073709551616.0) return UINT64_MAX;
    return (uint64_t)step;
}

void eval_random_uniform(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    uint64_t seed = g->nodes[id].attr.seed, ctr = random_step_counter(tensor_get(ins[0], 0));
    uint32_t r[4];
    for (int64_t i = 0, n = tensor_numel(out); i < n; i++) {
        if (i % 4 == 0) etch_philox4x32(seed, ctr, (uint64_t)(i / 4), r);
        tensor_set(out, i, etch_u01(r[i % 4]));
    }
}

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
