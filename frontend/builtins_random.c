/* builtins_random.c: random tensors, and the two things every random op of a
 * graph shares with dropout (builtins_norm.c): its step operand and its seed.
 *
 *   rand(shape, dtype=f32, seed)            U[0, 1): random_uniform
 *   randn(shape, dtype=f32, seed)           N(0, 1): random_normal (Box-Muller)
 *   randint(low, high, shape, dtype=i64, seed)   integers in [low, high):
 *                                           low + trunc(u * (high - low)), u from
 *                                           random_uniform in f64; also
 *                                           randint(high, shape) with low = 0
 *
 * The numbers depend only on (seed, step, element index) (ir/ops/random.c):
 * eager and compiled code agree bit for bit. The step operand is the
 * optimizer's step counter, the frozen param "optimizer.step", while a train
 * block is traced (each training step draws new numbers; passes/transforms/train.c
 * increments it), and the constant 0 in the inference graph (the forward is
 * a pure function of its inputs and weights: every call, eager or compiled,
 * draws the same numbers). The seed is `seed=` when given, else one per call
 * site: a hash of how many random ops the graph already has, so sites differ
 * and recompiling gives the same seeds. Random values are constants to the
 * autodiff pass: `mu + sigma * randn(...)` differentiates with respect to mu
 * and sigma (the reparameterization trick). */
#include <string.h>

#include "frontend/builtins_layers.h"

/* ---- shared with dropout ---- */

int lb_random_step(Elab *e, const char *fn, SrcLoc loc) {
    if (!e->training) return lb_const(e, 0, DT_F64, loc);
    const char *counter = e->step_counter ? e->step_counter : "optimizer.step";
    int id = graph_find_param(e->graph, counter);
    if (id < 0) {
        NodeAttrs a = {.name = counter, .dtype = DT_F64, .init = {INIT_ZEROS, 0, 0}, .frozen = true};
        return lb_op(e, OP_PARAM, NULL, 0, &a, loc);
    }
    const Node *n = &e->graph->nodes[id];
    if (n->dtype != DT_F64 || n->shape.rank != 0 || !n->attr.frozen) {
        diag_error(e->diag, loc, "%s needs the optimizer's step counter '%s', but a parameter of that name is "
                                 "already declared", fn, counter);
        return -1;
    }
    return id;
}

/* splitmix64 of the number of random sites traced so far (those of earlier
 * named train steps included, e->random_sites_before), below 2^63 (textual
 * IR ints are signed) */
uint64_t lb_site_seed(const Elab *e) {
    const Graph *g = e->graph;
    uint64_t k = (uint64_t)e->random_sites_before;
    for (int i = 0; i < g->n_nodes; i++) k += g->nodes[i].op == OP_RANDOM_UNIFORM || g->nodes[i].op == OP_RANDOM_NORMAL;
    uint64_t z = 0x5EEDD50F0A7ULL + (k + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return (z ^ (z >> 31)) & (uint64_t)INT64_MAX;
}

/* ---- rand, randn, randint ---- */

/* The dtype argument in slot k: one of the `n` allowed ones, dflt when not given. */
static bool dtype_arg(Elab *e, const LayerBuiltin *b, Value *args, bool *given, int k, DType dflt, const DType *allowed,
                      int n, const char *allowed_text, DType *out) {
    *out = dflt;
    if (!given[k]) return true;
    if (args[k].kind == V_DTYPE)
        for (int i = 0; i < n; i++)
            if (args[k].dtype == allowed[i]) {
                *out = allowed[i];
                return true;
            }
    return diag_error(e->diag, args[k].loc, "dtype of %s must be %s, got %s", lb_fname(e, b), allowed_text,
                      value_describe(e, &args[k]));
}

/* The common part: shape, seed (slot k_seed), the step counter; no node yet. */
static bool random_attrs(Elab *e, const LayerBuiltin *b, SrcLoc loc, Value *args, bool *given, int k_shape,
                         int k_seed, DType t, NodeAttrs *a, int *step) {
    const char *fn = lb_fname(e, b);
    if (e->scan_depth)
        return diag_error(e->diag, loc,
                          "%s inside a 'for' loop would draw the same numbers at every step; draw them before the "
                          "loop with a leading time dim and loop over them",
                          fn);
    *a = (NodeAttrs){.dtype = t};
    if (!lb_shape_arg(e, b, &args[k_shape], &a->shape)) return false;
    if (given[k_seed]) {
        int64_t seed;
        if (!value_int(e, &args[k_seed], arena_printf(e->arena, "seed of %s", fn), &seed)) return false;
        if (seed < 0)
            return diag_error(e->diag, args[k_seed].loc, "seed of %s must be a non-negative integer, got %lld", fn,
                              (long long)seed);
        a->seed = (uint64_t)seed;
    } else {
        a->seed = lb_site_seed(e);
    }
    return (*step = lb_random_step(e, fn, loc)) >= 0;
}

static const DType FLOAT_DTYPES[] = {DT_F32, DT_F64}, INT_DTYPES[] = {DT_I64, DT_I32};

/* rand(shape, dtype=f32, seed), randn(...) */
bool lb_rand(Elab *e, const LayerBuiltin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    DType t;
    NodeAttrs a;
    int step;
    if (!dtype_arg(e, b, args, given, 1, DT_F32, FLOAT_DTYPES, 2, "f32 or f64", &t) ||
        !random_attrs(e, b, loc, args, given, 0, 2, t, &a, &step))
        return false;
    OpKind op = strcmp(b->name, "randn") == 0 ? OP_RANDOM_NORMAL : OP_RANDOM_UNIFORM;
    return add_op(e, op, &step, 1, &a, loc, out);
}

/* randint(low, high, shape, dtype=i64, seed), or randint(high, shape) */
bool lb_randint(Elab *e, const LayerBuiltin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    const char *fn = lb_fname(e, b);
    Value *lowv = &args[0], *highv = &args[1], *shape = &args[2], zero = value_num(0, true, loc);
    if (!given[2]) {
        if (args[1].kind != V_LIST)
            return diag_error(e->diag, loc, "%s needs a shape: randint(low, high, shape) or randint(high, shape)", fn);
        lowv = &zero, highv = &args[0], shape = &args[1];
        given[2] = true;
        args[2] = *shape;
    }
    int64_t low, high;
    if (!value_int(e, lowv, arena_printf(e->arena, "low of %s", fn), &low) ||
        !value_int(e, highv, arena_printf(e->arena, "high of %s", fn), &high))
        return false;
    if (low >= high)
        return diag_error(e->diag, loc, "%s needs low < high, got low = %lld and high = %lld", fn, (long long)low,
                          (long long)high);
    if (high - low > ((int64_t)1 << 24)) /* u has 24 random bits */
        return diag_error(e->diag, loc, "%s draws from at most 2^24 values; high - low is %lld", fn,
                          (long long)(high - low));
    DType t;
    NodeAttrs a;
    int step;
    if (!dtype_arg(e, b, args, given, 3, DT_I64, INT_DTYPES, 2, "i64 or i32", &t)) return false;
    if (t == DT_I32 && (low < INT32_MIN || high - 1 > INT32_MAX))
        return diag_error(e->diag, loc, "%s: [%lld, %lld) does not fit in i32", fn, (long long)low, (long long)high);
    if (!random_attrs(e, b, loc, args, given, 2, 4, DT_F64, &a, &step)) return false;
    /* u * n is exact in f64 and below n, so the cast (truncation) is its floor */
    int u = lb_op(e, OP_RANDOM_UNIFORM, &step, 1, &a, loc);
    int scaled = lb_bin(e, OP_MUL, u, lb_const(e, (double)(high - low), DT_F64, loc), loc);
    NodeAttrs cast = {.dtype = t};
    int k = lb_op(e, OP_CAST, &scaled, 1, &cast, loc);
    if (low != 0) k = lb_bin(e, OP_ADD, k, lb_const(e, (double)low, t, loc), loc);
    if (k < 0) return false;
    *out = (Value){.kind = V_TENSOR, .id = k, .loc = loc};
    return true;
}
