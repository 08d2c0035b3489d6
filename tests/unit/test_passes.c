/* test_passes.c: the optimization passes (simplify, cse, dce) and the pass
 * manager.
 *
 * Every rewrite is checked twice: structurally (the node it should produce is
 * there, the node it should remove is gone) and semantically (the eager
 * executor gives the same outputs and the same updated params on random
 * inputs before and after, to 1e-5 relative). A fuzzer builds 200 random
 * graphs through graph_add_op (which rejects ill-typed nodes) and checks that
 * every pass and -O1 preserve their results; the training step of
 * samples/mlp.etch must shrink under -O1 and still train identically. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/backend.h"
#include "frontend/frontend.h"
#include "ir/eager.h"
#include "ir/params.h"
#include "passes/pass.h"
#include "passes/plan_memory.h"
#include "passes/transforms/train.h"
#include "graph_fuzz.h"
#include "unit/test_support.h"

static SrcLoc L = {"p.etch", 1, 1};

#define IN(g, name, ...) graph_add_input(g, name, DT_F32, S(__VA_ARGS__), L)
#define CONST(g, v, t, ...) graph_add_const(g, v, t, S(__VA_ARGS__), L)
#define PERM(...) (&(NodeAttrs){.n_axes = sizeof((int[]){__VA_ARGS__}) / sizeof(int), .axes = {__VA_ARGS__}})
#define TO(...) (&(NodeAttrs){.shape = S(__VA_ARGS__)})

/* ---- running passes ---- */

/* Runs the comma-separated passes with verification on; must succeed. */
static Graph *run(Graph *g, const char *list) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", list);
    const char *names[8];
    int n = 0;
    for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) names[n++] = t;
    PassOptions o = {.opt_level = 2, .target = backend_c.target, .verify = true};
    Diag d;
    diag_init(&d, stderr);
    Graph *h = passes_run_list(g, names, n, &o, &d);
    assert_non_null(h);
    assert_int_equal(d.n_errors, 0);
    diag_dispose(&d);
    return h;
}

static Graph *run_level(Graph *g, int level) {
    PassOptions o = {.opt_level = level, .target = backend_c.target, .verify = true};
    Diag d;
    diag_init(&d, stderr);
    Graph *h = passes_run(g, &o, &d);
    assert_non_null(h);
    diag_dispose(&d);
    return h;
}

static int count_op(const Graph *g, OpKind op) {
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++) n += g->nodes[i].op == op;
    return n;
}

static const Node *out_node(const Graph *g, int k) { return &g->nodes[g->outputs[k]]; }

/* ---- semantic comparison on the eager executor ---- */

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}
static double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) / 9007199254740992.0; }

static Tensor *random_tensor(const Node *n, uint64_t *rng) {
    Tensor *t = tensor_new(n->dtype, n->shape);
    for (int64_t i = 0; i < tensor_numel(t); i++)
        tensor_set(t, i, dtype_is_float(n->dtype) ? rng_unit(rng) * 4 - 2 : (double)(rng_next(rng) % 4));
    return t;
}

static bool close(double a, double b) {
    if (a == b || (isnan(a) && isnan(b))) return true;
    return fabs(a - b) <= 1e-5 * fmax(fabs(a), fabs(b)) + 1e-6;
}

static void expect_same_tensor(const Tensor *a, const Tensor *b, const char *what, int k) {
    assert_int_equal(a->dtype, b->dtype);
    assert_true(shape_equal(&a->shape, &b->shape));
    for (int64_t i = 0; i < tensor_numel(a); i++)
        if (!close(tensor_get(a, i), tensor_get(b, i))) {
            fprintf(stderr, "%s %d element %lld: %.9g before, %.9g after\n", what, k, (long long)i, tensor_get(a, i),
                    tensor_get(b, i));
            fail();
        }
}

/* g0 and g1 (g1 = passes(g0)) compute the same outputs and the same param
 * updates over `steps` runs on random inputs and initial params. */
static void expect_same_results(const Graph *g0, const Graph *g1, uint64_t seed, int steps) {
    assert_int_equal(g0->n_inputs, g1->n_inputs);
    assert_int_equal(g0->n_params, g1->n_params);
    assert_int_equal(g0->n_outputs, g1->n_outputs);
    Tensor **p0 = params_init(g0, seed), **p1 = params_init(g1, seed);
    Diag d;
    diag_init(&d, stderr);
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int s = 0; s < steps; s++) {
        Tensor *in[16], *o0[16], *o1[16];
        for (int i = 0; i < g0->n_inputs; i++) in[i] = random_tensor(&g0->nodes[g0->inputs[i]], &rng);
        assert_true(eager_run(g0, in, p0, o0, NULL, &d));
        assert_true(eager_run(g1, in, p1, o1, NULL, &d));
        for (int i = 0; i < g0->n_outputs; i++) {
            expect_same_tensor(o0[i], o1[i], "output", i);
            tensor_free(o0[i]);
            tensor_free(o1[i]);
        }
        for (int i = 0; i < g0->n_inputs; i++) tensor_free(in[i]);
        for (int i = 0; i < g0->n_params; i++) expect_same_tensor(p0[i], p1[i], "param", i);
    }
    params_free(g0, p0);
    params_free(g1, p1);
    diag_dispose(&d);
}

/* ---- simplify ---- */

static void test_identities(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "ident");
    int x = IN(g, "x", 2, 3, 4);
    int one = CONST(g, 1, DT_F32, 0), zero = CONST(g, 0, DT_F32, 0), nzero = CONST(g, -0.0, DT_F32, 1, 1);
    int outs[] = {B(g, OP_MUL, x, one), B(g, OP_MUL, one, x), B(g, OP_ADD, x, zero), B(g, OP_ADD, zero, x),
                  B(g, OP_ADD, x, nzero), B(g, OP_SUB, x, zero), B(g, OP_DIV, x, one), B(g, OP_POW, x, one),
                  U(g, OP_NEG, U(g, OP_NEG, x, NULL), NULL), U(g, OP_CAST, x, &(NodeAttrs){.dtype = DT_F32}),
                  U(g, OP_RESHAPE, x, TO(2, 3, 4)), U(g, OP_TRANSPOSE, x, PERM(0, 1)),
                  U(g, OP_BROADCAST, x, TO(2, 3, 4)), B(g, OP_MAX, x, x),
                  U(g, OP_RELU, U(g, OP_RELU, x, NULL), NULL)};
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) graph_add_output(g, outs[i]);
    Graph *h = run(g, "simplify,dce");
    for (int k = 0; k < h->n_outputs - 1; k++) assert_int_equal(h->outputs[k], 0); /* all read x */
    assert_int_equal(out_node(h, h->n_outputs - 1)->op, OP_RELU);                   /* relu(relu x) = relu x */
    assert_int_equal(h->n_nodes, 2);
    expect_same_results(g, h, 1, 1);
    arena_free(a);
}

static void test_identity_needs_broadcast(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "bcast");
    int x = IN(g, "x", 1, 4);
    int i = graph_add_input(g, "i", DT_I32, S(1, 4), L);
    int zeros = CONST(g, 0, DT_F32, 2, 3, 4), two = CONST(g, 2, DT_F32, 2, 3, 4);
    graph_add_output(g, B(g, OP_ADD, x, zeros));                     /* -> broadcast x to [3,4] */
    graph_add_output(g, B(g, OP_MUL, two, IN(g, "y", 2, 3, 4)));     /* const shrinks to a scalar */
    graph_add_output(g, B(g, OP_MUL, x, CONST(g, 0, DT_F32, 0)));    /* float x*0 stays (NaN, inf) */
    graph_add_output(g, B(g, OP_MUL, i, CONST(g, 0, DT_I32, 0)));    /* integer x*0 is 0 */
    Graph *h = run(g, "simplify,dce");
    assert_int_equal(out_node(h, 0)->op, OP_BROADCAST);
    assert_int_equal(out_node(h, 0)->in[0], 0);
    const Node *m = out_node(h, 1);
    assert_int_equal(m->op, OP_MUL);
    assert_int_equal(h->nodes[m->in[0]].shape.rank, 0);
    assert_int_equal(out_node(h, 2)->op, OP_MUL);
    assert_int_equal(out_node(h, 3)->op, OP_CONST);
    expect_same_results(g, h, 2, 1);
    arena_free(a);
}

static double const_of(const Graph *h, int k) {
    assert_int_equal(out_node(h, k)->op, OP_CONST);
    return out_node(h, k)->attr.value;
}

static void test_constant_folding(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "fold");
    int f1 = CONST(g, 0.1, DT_F32, 0), f2 = CONST(g, 0.2, DT_F32, 0);
    int d1 = CONST(g, 0.1, DT_F64, 0), d2 = CONST(g, 0.2, DT_F64, 0);
    int i7 = CONST(g, 7, DT_I32, 0), i2 = CONST(g, 2, DT_I32, 0);
    graph_add_output(g, B(g, OP_ADD, f1, f2));                                      /* 0 */
    graph_add_output(g, B(g, OP_ADD, d1, d2));                                      /* 1 */
    graph_add_output(g, B(g, OP_DIV, i7, i2));                                      /* 2 */
    graph_add_output(g, B(g, OP_LT, i2, i7));                                       /* 3 */
    graph_add_output(g, U(g, OP_CAST, CONST(g, 3.7, DT_F32, 0), &(NodeAttrs){.dtype = DT_I32})); /* 4 */
    graph_add_output(g, U(g, OP_EXP, CONST(g, 0, DT_F32, 2, 2, 2), NULL));          /* 5: any splat */
    graph_add_output(g, U(g, OP_CAST, f1, &(NodeAttrs){.dtype = DT_F64}));          /* 6 */
    graph_add_output(g, U(g, OP_REDUCE_SUM, CONST(g, 0.5, DT_F32, 2, 3, 4), PERM(0))); /* 7 */
    int neg = U(g, OP_NEG, CONST(g, 1, DT_F32, 0), NULL);
    graph_add_output(g, U(g, OP_BROADCAST, U(g, OP_RESHAPE, B(g, OP_DIV, neg, CONST(g, 64, DT_F32, 0)), TO(1, 1)),
                          TO(2, 8, 1)));                                            /* 8 */
    Graph *h = run(g, "simplify,dce");
    assert_true(const_of(h, 0) == (double)(float)((double)0.1f + (double)0.2f));
    assert_true(const_of(h, 1) == 0.1 + 0.2);
    assert_true(const_of(h, 2) == 3);
    assert_true(const_of(h, 3) == 1 && out_node(h, 3)->dtype == DT_BOOL);
    assert_true(const_of(h, 4) == 3);
    assert_true(const_of(h, 5) == 1 && out_node(h, 5)->shape.rank == 2);
    assert_true(const_of(h, 6) == (double)0.1f && out_node(h, 6)->dtype == DT_F64);
    assert_true(const_of(h, 7) == 1.5 && out_node(h, 7)->shape.dim[0] == 4);
    assert_true(const_of(h, 8) == -0.015625 && out_node(h, 8)->shape.dim[0] == 8);
    expect_same_results(g, h, 3, 1);
    /* results an i32 cannot hold are not folded (nor run: the cast would be UB) */
    Graph *u = graph_new(a, "unfoldable");
    graph_add_output(u, B(u, OP_DIV, CONST(u, 7, DT_I32, 0), CONST(u, 0, DT_I32, 0)));
    graph_add_output(u, U(u, OP_CAST, CONST(u, NAN, DT_F32, 0), &(NodeAttrs){.dtype = DT_I32}));
    graph_add_output(u, U(u, OP_CAST, CONST(u, 3e9, DT_F64, 0), &(NodeAttrs){.dtype = DT_I32}));
    h = run(u, "simplify,dce");
    assert_int_equal(out_node(h, 0)->op, OP_DIV);
    assert_int_equal(out_node(h, 1)->op, OP_CAST);
    assert_int_equal(out_node(h, 2)->op, OP_CAST);
    arena_free(a);
}

static void test_layout(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "layout");
    int x = IN(g, "x", 3, 2, 3, 4), v = IN(g, "v", 3, 3, 1, 4), w = IN(g, "w", 1, 4);
    graph_add_output(g, U(g, OP_RESHAPE, U(g, OP_RESHAPE, x, TO(2, 6, 4)), TO(2, 4, 6)));             /* 0 */
    graph_add_output(g, U(g, OP_TRANSPOSE, U(g, OP_TRANSPOSE, x, PERM(1, 2, 0)), PERM(2, 0, 1))); /* 1: id */
    graph_add_output(g, U(g, OP_TRANSPOSE, U(g, OP_TRANSPOSE, x, PERM(1, 0, 2)), PERM(0, 2, 1))); /* 2 */
    graph_add_output(g, U(g, OP_TRANSPOSE, v, PERM(1, 0, 2)));                                 /* 3: moves a 1 */
    graph_add_output(g, U(g, OP_BROADCAST, U(g, OP_BROADCAST, w, TO(2, 1, 4)), TO(3, 5, 3, 4)));     /* 4 */
    graph_add_output(g, U(g, OP_BROADCAST, w, TO(3, 1, 1, 4)));                                /* 5: view */
    graph_add_output(g, U(g, OP_CAST, U(g, OP_CAST, x, &(NodeAttrs){.dtype = DT_F64}), &(NodeAttrs){.dtype = DT_F32}));
    Graph *h = run(g, "simplify,dce");
    assert_int_equal(out_node(h, 0)->op, OP_RESHAPE);
    assert_int_equal(out_node(h, 0)->in[0], 0);
    assert_int_equal(h->outputs[1], 0);
    const Node *t = out_node(h, 2);
    assert_int_equal(t->op, OP_TRANSPOSE);
    assert_int_equal(t->in[0], 0);
    assert_int_equal(t->attr.axes[0], 1);
    assert_int_equal(t->attr.axes[1], 2);
    assert_int_equal(t->attr.axes[2], 0);
    assert_int_equal(out_node(h, 3)->op, OP_RESHAPE);
    assert_int_equal(out_node(h, 4)->op, OP_BROADCAST);
    assert_int_equal(out_node(h, 4)->in[0], 2);
    assert_int_equal(out_node(h, 5)->op, OP_RESHAPE);
    assert_int_equal(h->outputs[6], 0); /* f32 -> f64 -> f32 */
    expect_same_results(g, h, 4, 1);
    arena_free(a);
}

static void test_matmul_transposes(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "mm");
    int x = IN(g, "x", 2, 5, 3), w = IN(g, "w", 2, 4, 3), y = IN(g, "y", 3, 2, 5, 4);
    graph_add_output(g, B(g, OP_MATMUL, x, U(g, OP_TRANSPOSE, w, PERM(1, 0)))); /* x @ w^T */
    graph_add_output(g, B(g, OP_MATMUL, U(g, OP_TRANSPOSE, x, PERM(1, 0)), U(g, OP_RESHAPE, y, TO(2, 5, 8))));
    graph_add_output(g, U(g, OP_TRANSPOSE, B(g, OP_MATMUL, w, U(g, OP_TRANSPOSE, x, PERM(1, 0))), PERM(1, 0)));
    graph_add_output(g, B(g, OP_MATMUL, U(g, OP_TRANSPOSE, y, PERM(0, 2, 1)), B(g, OP_MATMUL, y, w)));
    int v = IN(g, "v", 1, 3), t = U(g, OP_TRANSPOSE, x, PERM(1, 0));
    graph_add_output(g, B(g, OP_MATMUL, v, U(g, OP_TRANSPOSE, w, PERM(1, 0)))); /* rank-1 times w^T */
    graph_add_output(g, B(g, OP_MATMUL, U(g, OP_TRANSPOSE, t, PERM(1, 0)), v));  /* x @ v */
    Graph *h = run(g, "simplify,cse,dce");
    assert_int_equal(count_op(h, OP_TRANSPOSE), 0);
    assert_true(out_node(h, 0)->attr.trans_b && !out_node(h, 0)->attr.trans_a);
    assert_true(out_node(h, 1)->attr.trans_a && !out_node(h, 1)->attr.trans_b);
    const Node *m = out_node(h, 2); /* (w x^T)^T = x w^T */
    assert_true(m->op == OP_MATMUL && m->in[0] == 0 && !m->attr.trans_a && m->attr.trans_b);
    assert_true(out_node(h, 3)->attr.trans_a);
    assert_true(out_node(h, 4)->attr.trans_b);
    assert_true(!out_node(h, 5)->attr.trans_a && out_node(h, 5)->in[0] == 0);
    expect_same_results(g, h, 5, 1);
    arena_free(a);
}

static void test_reduce_of_broadcast(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "red");
    int x = IN(g, "x", 1, 4), k = graph_add_input(g, "k", DT_I32, S(2, 1, 4), L), z = IN(g, "z", 3, 2, 1, 4);
    int bx = U(g, OP_BROADCAST, x, TO(2, 3, 4));
    graph_add_output(g, U(g, OP_REDUCE_SUM, bx, PERM(0)));                           /* x * 3 */
    graph_add_output(g, U(g, OP_REDUCE_MAX, bx, PERM(0)));                           /* x */
    graph_add_output(g, U(g, OP_REDUCE_MEAN, U(g, OP_BROADCAST, x, TO(3, 2, 5, 4)), PERM(0, 1))); /* x */
    graph_add_output(g, U(g, OP_REDUCE_SUM, U(g, OP_BROADCAST, k, TO(3, 2, 3, 4)),
                          &(NodeAttrs){.n_axes = 2, .axes = {0, 1}, .keepdims = true})); /* reshape(k) * 6 */
    graph_add_output(g, U(g, OP_REDUCE_SUM, z, PERM(1)));                            /* size-1 axis: reshape */
    graph_add_output(g, U(g, OP_REDUCE_SUM, bx, PERM(1)));                           /* sums distinct: kept */
    Graph *h = run(g, "simplify,dce");
    const Node *m = out_node(h, 0);
    assert_int_equal(m->op, OP_MUL);
    assert_int_equal(m->in[0], x);
    assert_true(h->nodes[m->in[1]].attr.value == 3);
    assert_int_equal(h->outputs[1], x);
    assert_int_equal(h->outputs[2], x);
    assert_int_equal(out_node(h, 3)->op, OP_MUL);
    assert_int_equal(out_node(h, 3)->dtype, DT_I32);
    assert_int_equal(out_node(h, 4)->op, OP_RESHAPE);
    assert_int_equal(out_node(h, 5)->op, OP_REDUCE_SUM);
    expect_same_results(g, h, 6, 1);
    arena_free(a);
}

static void test_where(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "where");
    int x = IN(g, "x", 1, 4), y = IN(g, "y", 2, 3, 4);
    int t = graph_add_const(g, 1, DT_BOOL, S(2, 3, 1), L);
    int c = B(g, OP_GT, y, x);
    graph_add_output(g, add(g, OP_WHERE, 3, (int[]){t, x, y}, NULL)); /* broadcast x */
    graph_add_output(g, add(g, OP_WHERE, 3, (int[]){c, y, y}, NULL)); /* y */
    Graph *h = run(g, "simplify,dce");
    assert_int_equal(out_node(h, 0)->op, OP_BROADCAST);
    assert_int_equal(h->outputs[1], y);
    expect_same_results(g, h, 7, 1);
    arena_free(a);
}

/* ---- cse and dce ---- */

static void test_cse(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "cse");
    int x = IN(g, "x", 1, 4), y = IN(g, "y", 1, 4), y2 = IN(g, "y2", 1, 4);
    int p = graph_add_param(g, "p", DT_F32, S(1, 4), (ParamInit){INIT_ZEROS, 0, 0}, false, L);
    int q = graph_add_param(g, "q", DT_F32, S(1, 4), (ParamInit){INIT_ZEROS, 0, 0}, false, L);
    int e1 = U(g, OP_EXP, x, NULL);
    g->nodes[e1].loc = (SrcLoc){"first.etch", 3, 4};
    int e2 = U(g, OP_EXP, x, NULL);
    graph_add_output(g, B(g, OP_ADD, U(g, OP_TANH, e1, NULL), y));   /* 0 */
    graph_add_output(g, B(g, OP_ADD, y, U(g, OP_TANH, e2, NULL)));   /* 1: same chain, operands swapped */
    graph_add_output(g, B(g, OP_SUB, x, y));                         /* 2 */
    graph_add_output(g, B(g, OP_SUB, y, x));                         /* 3: not the same */
    graph_add_output(g, CONST(g, 0, DT_F32, 0));                     /* 4 */
    graph_add_output(g, CONST(g, -0.0, DT_F32, 0));                  /* 5: other bits */
    graph_add_output(g, CONST(g, 0, DT_F32, 0));                     /* 6: = 4 */
    graph_add_output(g, B(g, OP_ADD, p, q));                         /* 7 */
    graph_add_output(g, B(g, OP_ADD, y2, x));                        /* 8: y2 is not y */
    graph_add_output(g, U(g, OP_REDUCE_SUM, x, &(NodeAttrs){.n_axes = 1, .axes = {0}, .keepdims = true}));
    graph_add_output(g, U(g, OP_REDUCE_SUM, x, PERM(0)));            /* 10: other keepdims */
    Graph *h = run(g, "cse");
    assert_int_equal(h->outputs[0], h->outputs[1]);
    assert_int_not_equal(h->outputs[2], h->outputs[3]);
    assert_int_equal(h->outputs[4], h->outputs[6]);
    assert_int_not_equal(h->outputs[4], h->outputs[5]);
    assert_int_not_equal(h->outputs[0], h->outputs[8]);
    assert_int_not_equal(h->outputs[9], h->outputs[10]);
    assert_int_equal(count_op(h, OP_EXP), 1);
    assert_int_equal(h->n_inputs, 3);
    assert_int_equal(h->n_params, 2);
    for (int i = 0; i < h->n_nodes; i++)
        if (h->nodes[i].op == OP_EXP) assert_string_equal(h->nodes[i].loc.file, "first.etch");
    expect_same_results(g, h, 8, 1);
    arena_free(a);
}

static void test_dce(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "dce");
    int x = IN(g, "x", 1, 4);
    IN(g, "unused", 1, 2);
    int p = graph_add_param(g, "p", DT_F32, S(1, 4), (ParamInit){INIT_UNIFORM, -1, 1}, false, L);
    graph_add_param(g, "never_read", DT_F32, S(1, 3), (ParamInit){INIT_ONES, 0, 0}, false, L);
    int s = graph_add_param(g, "step", DT_F64, S(0), (ParamInit){INIT_ZEROS, 0, 0}, true, L);
    U(g, OP_EXP, U(g, OP_TANH, x, NULL), NULL); /* dead chain */
    int upd = B(g, OP_ADD, p, U(g, OP_NEG, x, NULL));
    int step = B(g, OP_ADD, s, CONST(g, 1, DT_F64, 0));
    graph_add_output(g, U(g, OP_REDUCE_SUM, x, PERM(0)));
    graph_add_update(g, p, upd);
    graph_add_update(g, s, step);
    Graph *h = run(g, "dce");
    assert_int_equal(count_op(h, OP_TANH), 0);
    assert_int_equal(count_op(h, OP_EXP), 0);
    assert_int_equal(h->n_inputs, 2);
    assert_int_equal(h->n_params, 3);
    assert_int_equal(h->n_updates, 2);
    assert_int_equal(h->nodes[h->upd_src[0]].op, OP_ADD);
    assert_int_equal(h->n_nodes, g->n_nodes - 2);
    expect_same_results(g, h, 9, 3);
    arena_free(a);
}

/* ---- the pass manager ---- */

static void test_manager(void **state) {
    (void)state;
    const PassInfo *all = passes_all() + 1;
    /* first, only when asked (PassOptions.quant): the int8 quantize pass */
    assert_string_equal(all[-1].name, "quantize");
    assert_true(all[-1].on_request);
    assert_false(all[0].on_request);
    assert_string_equal(all[0].name, "simplify");
    assert_string_equal(all[1].name, "cse");
    assert_string_equal(all[2].name, "dce");
    assert_string_equal(all[3].name, "fuse");
    assert_string_equal(all[4].name, "plan-memory");
    assert_null(all[5].name);
    /* the table is where levels mean something: fuse from -O2, the plan at every level */
    assert_int_equal(all[3].use[1], PASS_SKIP);
    assert_int_equal(all[3].use[2], PASS_RUN);
    assert_int_equal(all[4].use[0], PASS_RUN_NO_REUSE);
    assert_int_equal(all[4].use[1], PASS_RUN);
    assert_ptr_equal(pass_find("cse"), &all[1]);
    assert_null(pass_find("nope"));

    Arena *a = arena_new();
    Graph *g = graph_new(a, "m");
    int x = IN(g, "x", 1, 4);
    graph_add_output(g, B(g, OP_ADD, U(g, OP_EXP, x, NULL), U(g, OP_EXP, x, NULL)));
    graph_add_output(g, B(g, OP_MUL, x, CONST(g, 1, DT_F32, 0)));
    Graph *h = run_level(g, 0);
    assert_ptr_equal(h, g); /* -O0 only plans memory, in place: one buffer per value */
    assert_non_null(h->mem_plan);
    assert_false(h->mem_plan->reuse);
    h = run_level(g, 1);
    assert_int_equal(h->n_nodes, 3); /* x, exp, add */
    assert_true(h->mem_plan->reuse);
    assert_int_equal(run_level(g, 2)->n_nodes, 3);
    assert_true(run_level(g, 7)->mem_plan->reuse); /* above -O2 reads as -O2 */

    /* dumps, disabling */
    FILE *f = tmpfile();
    PassOptions o = {.opt_level = 1, .target = backend_c.target, .verify = true, .print_after_all = true, .dump = f,
                     .disabled = {"cse"}, .n_disabled = 1};
    Diag d;
    diag_init(&d, NULL);
    h = passes_run(g, &o, &d);
    assert_non_null(h);
    assert_int_equal(count_op(h, OP_EXP), 2);
    char text[8192] = "";
    rewind(f);
    text[fread(text, 1, sizeof text - 1, f)] = 0;
    fclose(f);
    assert_non_null(strstr(text, "// ----- IR after simplify -----\ngraph m {"));
    assert_non_null(strstr(text, "// ----- IR after dce -----"));
    assert_null(strstr(text, "IR after cse"));
    /* the plan's summary follows the IR after plan-memory: x, two exps, the add (an output) */
    assert_non_null(strstr(text, "// ----- IR after plan-memory -----"));
    assert_non_null(strstr(text, "}\n// memory plan: arena 128 bytes (naive 192), 64-byte aligned, buffers reused; "
                                 "2 values in the arena, 0 in registers, 0 views, 0 of 0 updates in place\n"));

    f = tmpfile();
    o = (PassOptions){.opt_level = 2, .target = backend_c.target, .print_after = {"cse"}, .n_print_after = 1, .dump = f};
    assert_non_null(passes_run(g, &o, &d));
    text[0] = 0;
    rewind(f);
    text[fread(text, 1, sizeof text - 1, f)] = 0;
    fclose(f);
    assert_non_null(strstr(text, "// ----- IR after cse -----"));
    assert_null(strstr(text, "IR after simplify"));
    assert_null(strstr(text, "memory plan"));

    /* a plan describes the graph it was made for: any later pass drops it */
    h = run(graph_clone(a, g, NULL), "plan-memory,dce");
    assert_null(h->mem_plan);
    /* in a list, plan-memory plans as the level says */
    o = (PassOptions){.opt_level = 0, .target = backend_c.target};
    h = passes_run_list(graph_clone(a, g, NULL), (const char *[]){"plan-memory"}, 1, &o, &d);
    assert_false(h->mem_plan->reuse);

    /* unknown names are errors that list the valid ones */
    o = (PassOptions){.opt_level = 2, .target = backend_c.target, .disabled = {"cse", "bogus"}, .n_disabled = 2};
    assert_null(passes_run(g, &o, &d));
    assert_non_null(strstr(d.text, "unknown pass 'bogus' in --disable-pass (valid passes: quantize, simplify, cse, dce, fuse, "
                                   "plan-memory)"));
    o = (PassOptions){.opt_level = 2, .target = backend_c.target};
    assert_null(passes_run_list(g, (const char *[]){"dce", "fold"}, 2, &o, &d));
    assert_non_null(strstr(d.text, "unknown pass 'fold' in --passes"));
    /* passes need a target */
    o = (PassOptions){.opt_level = 2};
    assert_null(passes_run(g, &o, &d));
    assert_non_null(strstr(d.text, "no target to compile for"));

    /* a graph that does not verify is reported before any pass runs */
    g->nodes[1].shape.dim[0] = 5;
    o = (PassOptions){.opt_level = 1, .target = backend_c.target, .verify = true};
    assert_null(passes_run(g, &o, &d));
    assert_non_null(strstr(d.text, "before any pass"));
    diag_dispose(&d);
    arena_free(a);
}

/* ---- training steps ---- */

static void test_mlp_train_step(void **state) {
    (void)state;
    char path[4200];
    snprintf(path, sizeof path, "%s/samples/mlp.etch", ts_source_dir());
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Define b8 = {"B", "8"};
    Program *p = frontend_compile_file(a, path, &b8, 1, &d);
    assert_non_null(p);
    assert_non_null(p->train);
    Graph *g = p->train->loss;
    assert_true(train_build_step(g, &p->train->optim, &d));
    Graph *h = run_level(g, 1);
    fprintf(stderr, "samples/mlp.etch train step: %d nodes, %d after -O1 (%d transposes -> %d)\n", g->n_nodes,
            h->n_nodes, count_op(g, OP_TRANSPOSE), count_op(h, OP_TRANSPOSE));
    assert_true(h->n_nodes < g->n_nodes - 20);
    assert_int_equal(h->n_updates, g->n_updates);
    expect_same_results(g, h, 11, 3);
    diag_dispose(&d);
    arena_free(a);
}

/* A small MLP with every optimizer: f64 step counters, sqrt, pow, bool masks. */
static void test_optimizers(void **state) {
    (void)state;
    OptimKind kinds[] = {OPTIM_SGD, OPTIM_ADAM, OPTIM_ADAMW};
    for (int k = 0; k < 3; k++) {
        Arena *a = arena_new();
        Graph *g = graph_new(a, "Mlp.train_step");
        int x = IN(g, "x", 2, 6, 5);
        int y = IN(g, "y", 2, 6, 3);
        int w = graph_add_param(g, "w", DT_F32, S(2, 3, 5), (ParamInit){INIT_UNIFORM, -0.5, 0.5}, false, L);
        int bias = graph_add_param(g, "b", DT_F32, S(1, 3), (ParamInit){INIT_UNIFORM, -0.5, 0.5}, false, L);
        int z = B(g, OP_ADD, B(g, OP_MATMUL, x, U(g, OP_TRANSPOSE, w, PERM(1, 0))), bias);
        int e = B(g, OP_SUB, U(g, OP_TANH, z, NULL), y);
        graph_add_output(g, U(g, OP_REDUCE_MEAN, B(g, OP_MUL, e, e), PERM(0, 1)));
        OptimSpec spec = optim_defaults(kinds[k]);
        spec.lr = 0.05;
        if (kinds[k] == OPTIM_SGD) spec.momentum = 0.9, spec.weight_decay = 1e-3;
        Diag d;
        diag_init(&d, stderr);
        assert_true(train_build_step(g, &spec, &d));
        diag_dispose(&d);
        Graph *h = run_level(g, 2);
        assert_true(h->n_nodes < g->n_nodes);
        expect_same_results(g, h, 12 + (uint64_t)k, 4);
        arena_free(a);
    }
}

/* ---- the fuzzer ---- */

static void test_fuzz(void **state) {
    (void)state;
    int total_before = 0, total_after = 0, flagged = 0;
    const char *env = getenv("ETCH_FUZZ_GRAPHS"); /* more for a longer local run */
    int n_graphs = env ? atoi(env) : 200;
    for (uint64_t seed = 1; seed <= (uint64_t)n_graphs; seed++) {
        Arena *a = arena_new();
        Graph *g = fz_graph(a, seed);
        Diag d;
        diag_init(&d, stderr);
        assert_true(ir_verify(g, &d));
        diag_dispose(&d);
        static const char *const each[] = {"simplify", "cse", "dce", "simplify,cse,dce,simplify,cse,dce"};
        for (int i = 0; i < 4; i++) expect_same_results(g, run(g, each[i]), seed, 2);
        Graph *h = run_level(g, 1);
        expect_same_results(g, h, seed, 2);
        total_before += g->n_nodes;
        total_after += h->n_nodes;
        for (int i = 0; i < h->n_nodes; i++) flagged += h->nodes[i].attr.trans_a || h->nodes[i].attr.trans_b;
        arena_free(a);
    }
    fprintf(stderr, "fuzz: %d graphs, %d nodes, %d after -O1, %d matmuls with transpose flags\n", n_graphs,
            total_before, total_after, flagged);
    assert_true(total_after < total_before);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identities),         cmocka_unit_test(test_identity_needs_broadcast),
        cmocka_unit_test(test_constant_folding),   cmocka_unit_test(test_layout),
        cmocka_unit_test(test_matmul_transposes),  cmocka_unit_test(test_reduce_of_broadcast),
        cmocka_unit_test(test_where),              cmocka_unit_test(test_cse),
        cmocka_unit_test(test_dce),                cmocka_unit_test(test_manager),
        cmocka_unit_test(test_mlp_train_step),     cmocka_unit_test(test_optimizers),
        cmocka_unit_test(test_fuzz),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
