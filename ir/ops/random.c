/* random.c: random_uniform {seed}(step): a tensor of attr.dtype/attr.shape with
 * elements uniform in [0, 1), for dropout masks and the DSL's rand/randint;
 * random_normal {seed}(step): elements from N(0, 1), for randn. The numbers come from
 * Philox4x32-10 (runtime/etch_rt.c) with key = seed and counter = (step,
 * i / 4); element i takes word i % 4, turned into a float by etch_u01 (24
 * random bits, exact in f32). So an element depends only on (seed, step, i):
 * not on thread count, call order or backend, and the emitted code, which
 * calls the same etch_philox4x32, produces bit-identical values to the
 * reference kernel. The operand is the step counter (a scalar; in a training
 * step the optimizer's "optimizer.step"), so each step draws a new mask.
 *
 * random_normal: element i takes the Philox block (seed, step, i / 2) and
 * from it the word pair (r[2k], r[2k+1]), k = i % 2, turned into N(0, 1) by
 * Box-Muller in double precision, rounded once to the dtype:
 *     sqrt(-2 log(1 - u(r[2k]))) * cos(2 pi u(r[2k+1]))
 * (1 - u lies in (0, 1], so the log is finite: |z| <= 5.8). The C emitter
 * (codegen/c/ops/random.c) spells out the same expression, so emitted and
 * eager values agree bit for bit. */
#include <math.h>
#include <stdio.h>

#include "ir/ops/ops_impl.h"
#include "runtime/etch_rt.h"

bool shape_random_uniform(Graph *g, Node *n, Diag *d) {
    const Node *step = &g->nodes[n->in[0]];
    const Shape *s = &n->attr.shape;
    const char *op = op_table[n->op].name;
    char a[96];
    if (shape_numel(&step->shape) != 1 || step->dtype == DT_BOOL)
        return diag_error(d, n->loc, "'%s' takes a scalar step counter, got %s", op, ops_type_str(a, g, n->in[0]));
    if (s->rank < 0 || s->rank > ETCH_MAX_RANK)
        return diag_error(d, n->loc, "'%s' has rank %d; at most %d dimensions are supported", op, s->rank,
                          ETCH_MAX_RANK);
    for (int i = 0; i < s->rank; i++)
        if (s->dim[i] <= 0)
            return diag_error(d, n->loc, "'%s' dimension %d is %lld; dimensions must be positive", op, i,
                              (long long)s->dim[i]);
    if (n->attr.seed > (uint64_t)INT64_MAX) /* keeps the textual IR's integers signed */
        return diag_error(d, n->loc, "'%s' seed must be below 2^63", op);
    if (n->attr.dtype >= DT_COUNT || !dtype_is_float(n->attr.dtype))
        return diag_error(d, n->loc, "'%s' makes f32 or f64 values", op);
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

double random_normal_value(uint32_t a, uint32_t b) {
    return sqrt(-2.0 * log(1.0 - etch_u01(a))) * cos(6.283185307179586476925 * etch_u01(b));
}

void eval_random_normal(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    uint64_t seed = g->nodes[id].attr.seed, ctr = random_step_counter(tensor_get(ins[0], 0));
    uint32_t r[4];
    for (int64_t i = 0, n = tensor_numel(out); i < n; i++) {
        if (i % 2 == 0) etch_philox4x32(seed, ctr, (uint64_t)(i / 2), r);
        int k = (int)(i % 2) * 2;
        tensor_set(out, i, random_normal_value(r[k], r[k + 1]));
    }
}
