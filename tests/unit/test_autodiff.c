/* test_autodiff.c: every differentiable op's VJP rule against central finite
 * differences in float64 on the eager executor. Each case builds
 *     loss = sum(f(params...) * R)
 * with R a fixed random tensor (so every output element matters differently),
 * differentiates it with the autodiff pass, and compares each gradient element
 * with (loss(p + h) - loss(p - h)) / 2h. Also checks fan-out accumulation,
 * broadcasting reduction, frozen params and non-differentiable paths. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/eager.h"
#include "ir/params.h"
#include "passes/transforms/autodiff.h"
#include "runtime/etch_rt.h"
#include "unit/test_support.h"

static SrcLoc L = {"grad.etch", 1, 1};

typedef struct Case {
    Arena *a;
    Graph *g;
    int f; /* the value under test */
} Case;

static Case case_new(const char *name) {
    Case c;
    c.a = arena_new();
    c.g = graph_new(c.a, name);
    c.f = -1;
    return c;
}

/* A float64 param with values in [lo, hi) (param initializers are uniform). */
static int P(Case *c, const char *name, Shape s, double lo, double hi) {
    return graph_add_param(c->g, name, DT_F64, s, (ParamInit){INIT_UNIFORM, lo, hi}, false, L);
}

/* Finishes the case: loss = sum(f * R), checks every param's gradient. */
static void check_case_h(Case *c, double tol, double rel_h) {
    ts_check_grad(c->g, c->f, tol, rel_h, 0, L);
    arena_free(c->a);
}

static void check_case(Case *c, double tol) { check_case_h(c, tol, 1e-6); }

static void test_binary(void **state) {
    (void)state;
    OpKind ops[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MAX, OP_MIN, OP_POW};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        Case c = case_new(op_table[ops[i]].name);
        int x = P(&c, "x", S(3, 2, 1, 4), 0.5, 2), y = P(&c, "y", S(2, 3, 4), 0.5, 2);
        c.f = B(c.g, ops[i], x, y); /* broadcasting both ways */
        check_case(&c, 1e-6);
    }
}

static void test_unary(void **state) {
    (void)state;
    struct {
        OpKind op;
        double lo, hi;
    } cs[] = {{OP_NEG, -2, 2},  {OP_EXP, -2, 2},     {OP_LOG, 0.2, 3}, {OP_SQRT, 0.2, 3}, {OP_RSQRT, 0.2, 3},
              {OP_ABS, -2, 2},  {OP_TANH, -2, 2},    {OP_SIGMOID, -4, 4}, {OP_RELU, -2, 2}};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        Case c = case_new(op_table[cs[i].op].name);
        int x = P(&c, "x", S(2, 3, 5), cs[i].lo, cs[i].hi);
        c.f = U(c.g, cs[i].op, x, NULL);
        check_case(&c, 1e-6);
    }
}

static void test_where_cast_broadcast(void **state) {
    (void)state;
    Case c = case_new("where");
    int x = P(&c, "x", S(2, 3, 4), -1, 1), y = P(&c, "y", S(1, 4), -1, 1);
    int cond = B(c.g, OP_GT, x, y);
    c.f = add(c.g, OP_WHERE, 3, (int[]){cond, x, y}, NULL);
    check_case(&c, 1e-6);

    Case b = case_new("broadcast");
    int v = P(&b, "v", S(2, 3, 1), -1, 1);
    b.f = U(b.g, OP_BROADCAST, v, &(NodeAttrs){.shape = S(3, 2, 3, 4)});
    check_case(&b, 1e-6);

    Case k = case_new("cast"); /* f64 -> f32 -> f64: the gradient passes through the casts */
    int p = P(&k, "p", S(1, 6), -1, 1);
    int f32 = U(k.g, OP_CAST, p, &(NodeAttrs){.dtype = DT_F32});
    k.f = U(k.g, OP_EXP, f32, NULL);
    check_case_h(&k, 1e-3, 1e-2); /* the forward is evaluated in f32: a step f32 can resolve */
}

static void test_reduce(void **state) {
    (void)state;
    OpKind ops[] = {OP_REDUCE_SUM, OP_REDUCE_MEAN, OP_REDUCE_MAX};
    for (int i = 0; i < 3; i++) {
        Case c = case_new(op_table[ops[i]].name);
        int x = P(&c, "x", S(3, 2, 3, 4), -1, 1);
        int r1 = U(c.g, ops[i], x, &(NodeAttrs){.n_axes = 2, .axes = {0, 2}});
        int r2 = U(c.g, ops[i], x, &(NodeAttrs){.n_axes = 1, .axes = {1}, .keepdims = true});
        int s = U(c.g, OP_REDUCE_SUM, r2, &(NodeAttrs){.n_axes = 2, .axes = {0, 2}});
        c.f = B(c.g, OP_ADD, r1, s);
        check_case(&c, 1e-6);
    }
}

static void test_matmul(void **state) {
    (void)state;
    Case c = case_new("matmul");
    int a = P(&c, "a", S(3, 2, 3, 4), -1, 1), b = P(&c, "b", S(2, 4, 5), -1, 1);
    c.f = B(c.g, OP_MATMUL, a, b); /* b broadcast over a's batch */
    check_case(&c, 1e-6);
    Case v = case_new("matvec");
    int m = P(&v, "m", S(2, 3, 4), -1, 1), x = P(&v, "x", S(1, 4), -1, 1), y = P(&v, "y", S(1, 3), -1, 1);
    int mx = B(v.g, OP_MATMUL, m, x);   /* [3] */
    int ym = B(v.g, OP_MATMUL, y, m);   /* [4] */
    int outer = B(v.g, OP_MATMUL, U(v.g, OP_RESHAPE, mx, &(NodeAttrs){.shape = S(2, 3, 1)}),
                  U(v.g, OP_RESHAPE, ym, &(NodeAttrs){.shape = S(2, 1, 4)}));
    v.f = outer;
    check_case(&v, 1e-6);
}

static void test_layout_softmax(void **state) {
    (void)state;
    Case c = case_new("layout");
    int x = P(&c, "x", S(3, 2, 3, 4), -1, 1);
    int t = U(c.g, OP_TRANSPOSE, x, &(NodeAttrs){.n_axes = 3, .axes = {2, 0, 1}});
    c.f = U(c.g, OP_RESHAPE, t, &(NodeAttrs){.shape = S(2, 8, 3)});
    check_case(&c, 1e-6);
    for (int op = OP_SOFTMAX; op <= OP_LOG_SOFTMAX; op++) {
        Case s = case_new(op_table[op].name);
        int z = P(&s, "z", S(3, 3, 4, 2), -3, 3);
        s.f = U(s.g, (OpKind)op, z, &(NodeAttrs){.axis = 1});
        check_case(&s, 1e-6);
    }
}

static void test_fanout_and_frozen(void **state) {
    (void)state;
    Case c = case_new("fanout"); /* x used three times: gradients accumulate */
    int x = P(&c, "x", S(1, 5), -1, 1);
    int frozen = graph_add_param(c.g, "frozen", DT_F64, S(1, 5), (ParamInit){INIT_UNIFORM, -1, 1}, true, L);
    int xx = B(c.g, OP_MUL, x, x);
    c.f = B(c.g, OP_ADD, B(c.g, OP_MUL, xx, x), B(c.g, OP_MUL, frozen, x));
    Graph *g = c.g;
    /* frozen params get no gradient */
    int loss = U(g, OP_REDUCE_SUM, c.f, &(NodeAttrs){.n_axes = 1, .axes = {0}});
    int grads[2];
    Diag d;
    diag_init(&d, stderr);
    assert_true(autodiff(g, loss, g->params, 2, grads, &d));
    assert_true(grads[0] >= 0);
    assert_int_equal(grads[1], -1);
    diag_dispose(&d);
    arena_free(c.a);

    Case e = case_new("fanout2");
    int y = P(&e, "y", S(1, 5), -1, 1);
    e.f = B(e.g, OP_ADD, B(e.g, OP_MUL, B(e.g, OP_MUL, y, y), y), U(e.g, OP_EXP, y, NULL));
    check_case(&e, 1e-6);
}

static void test_errors(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "bad");
    int x = graph_add_param(g, "x", DT_F32, S(1, 3), (ParamInit){INIT_ZEROS, 0, 0}, false, (SrcLoc){"m.etch", 4, 9});
    int grads[1];
    Diag d;
    diag_init(&d, NULL);
    assert_false(autodiff(g, x, &x, 1, grads, &d)); /* not a scalar */
    assert_non_null(strstr(d.text, "m.etch:4:9: error: the loss must be a floating-point scalar, got f32[3]"));
    diag_dispose(&d);
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binary),         cmocka_unit_test(test_unary),
        cmocka_unit_test(test_where_cast_broadcast), cmocka_unit_test(test_reduce),
        cmocka_unit_test(test_matmul),         cmocka_unit_test(test_layout_softmax),
        cmocka_unit_test(test_fanout_and_frozen), cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
