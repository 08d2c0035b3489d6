/* test_op_random.c: random tensors. The op random_normal {seed}(step)
 * (ir/ops/random.c, codegen/c/ops/random.c): emitted C bit-identical to the
 * eager executor (f32, f64, odd and even sizes), its definition (element i
 * from the Philox block (seed, step, i / 2)) and its statistics. The DSL
 * builtins rand, randn and randint (frontend/builtins_random.c): the traced
 * forward compiled against eager bit for bit; ranges and dtypes; one seed per
 * call site, `seed=` shared; the step operand (0 in inference, the optimizer's
 * counter in a train block, so each training step draws new numbers); and
 * the reparameterization mu + sigma * randn(...) differentiated with respect to
 * mu and sigma against finite differences. Diagnostics: tests/lit/bad/random_*.etch. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frontend/frontend.h"
#include "ir/eager.h"
#include "ir/ops/ops_impl.h"
#include "ir/params.h"
#include "runtime/etch_rt.h"
#include "unit/test_support.h"

static SrcLoc L = {"random.etch", 4, 11};

static const TsTol EXACT = {.lo = -1, .hi = 1, .exact = true, .eq_ok = true};

static void test_normal_compiled_matches_eager(void **state) {
    (void)state;
    for (int t = DT_F32; t <= DT_F64; t++) {
        Arena *a = arena_new();
        Graph *g = graph_new(a, "normal");
        int step = graph_add_input(g, "step", DT_F64, S(0), L);
        graph_add_output(g, U(g, OP_RANDOM_NORMAL, step, &(NodeAttrs){.seed = 5, .dtype = (DType)t, .shape = S(3, 2, 5, 7)}));
        graph_add_output(g, U(g, OP_RANDOM_NORMAL, step, &(NodeAttrs){.seed = 6, .dtype = (DType)t, .shape = S(1, 8)}));
        graph_add_output(g, U(g, OP_RANDOM_NORMAL, step, &(NodeAttrs){.seed = 6, .dtype = (DType)t, .shape = S(0)}));
        TsTol tol = EXACT;
        tol.lo = tol.hi = 11; /* step 11 */
        ts_check_graph(g, &tol);
        arena_free(a);
    }
}

static void test_normal_definition_and_statistics(void **state) {
    (void)state;
    enum { N = 1 << 18 };
    Arena *a = arena_new();
    Graph *g = graph_new(a, "normal");
    int step = graph_add_input(g, "step", DT_F64, S(0), L);
    graph_add_output(g, U(g, OP_RANDOM_NORMAL, step, &(NodeAttrs){.seed = 9, .dtype = DT_F64, .shape = S(1, N)}));
    Tensor *z = ts_run_at_step(g, 2), *z3 = ts_run_at_step(g, 3);
    const double *p = z->data, *q = z3->data;
    uint32_t r[4];
    etch_philox4x32(9, 2, 777 / 2, r);
    double u1 = 1.0 - etch_u01(r[2]), u2 = etch_u01(r[3]); /* element 777: the block's second word pair */
    assert_true(p[777] == sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2));
    double sum = 0, sq = 0, cross = 0;
    int64_t beyond2 = 0;
    for (int64_t i = 0; i < N; i++) {
        assert_true(isfinite(p[i]) && fabs(p[i]) < 6);
        sum += p[i];
        sq += p[i] * p[i];
        cross += p[i] * q[i];
        beyond2 += fabs(p[i]) > 2;
    }
    assert_true(fabs(sum / N) < 0.01);
    assert_true(fabs(sq / N - 1) < 0.01);
    assert_true(fabs(cross / N) < 0.01);                     /* another step: independent numbers */
    assert_true(fabs((double)beyond2 / N - 0.0455) < 0.002); /* the tails of N(0, 1) */
    tensor_free(z);
    tensor_free(z3);
    arena_free(a);
}

/* ---- the DSL builtins ------------------------------------------------------ */

static Program *compile(Arena *a, const char *src) { return ts_compile(a, "random.etch", src); }

static const char DSL_SRC[] = "model Net {\n"
                              "  fn forward(x: f32[3, 5]) {\n"
                              "    return x + randn([3, 5]), rand([7], dtype = f64), randint(-2, 3, [4, 50]),\n"
                              "      randint(9, [33], dtype = i32), randn([3, 5]), rand([2, 2], seed = 12),\n"
                              "      rand([2, 2], seed = 12), randn([1], dtype = f64, seed = 3)\n"
                              "  }\n"
                              "}\n";

static void test_dsl_compiled_matches_eager(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = compile(a, DSL_SRC)->forward;
    ts_check_graph(g, &EXACT);
    arena_free(a);
}

static void test_dsl_values(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = compile(a, DSL_SRC)->forward;
    const DType want[] = {DT_F32, DT_F64, DT_I64, DT_I32, DT_F32, DT_F32, DT_F32, DT_F64};
    for (int i = 0; i < 8; i++) assert_int_equal(g->nodes[g->outputs[i]].dtype, want[i]);
    Tensor *x = tensor_new(DT_F32, S(2, 3, 5)), *out[8], *again[8];
    Diag d;
    diag_init(&d, stderr);
    assert_true(eager_run(g, &x, NULL, out, NULL, &d));
    assert_true(eager_run(g, &x, NULL, again, NULL, &d));
    bool hit[5] = {false};
    for (int64_t i = 0; i < 200; i++) {
        double k = tensor_get(out[2], i);
        assert_true(k >= -2 && k < 3 && k == floor(k)); /* randint(-2, 3): [-2, 3) */
        hit[(int)k + 2] = true;
    }
    for (int i = 0; i < 5; i++) assert_true(hit[i]);
    for (int64_t i = 0; i < 33; i++) assert_true(tensor_get(out[3], i) >= 0 && tensor_get(out[3], i) < 9);
    for (int64_t i = 0; i < 7; i++) assert_true(tensor_get(out[1], i) >= 0 && tensor_get(out[1], i) < 1);
    /* two randn sites differ; seed = 12 twice gives the same numbers */
    assert_true(memcmp(out[0]->data, out[4]->data, tensor_nbytes(out[4])) != 0);
    assert_memory_equal(out[5]->data, out[6]->data, tensor_nbytes(out[5]));
    /* the inference graph's step is the constant 0: every call draws the same numbers */
    for (int i = 0; i < 8; i++) assert_memory_equal(out[i]->data, again[i]->data, tensor_nbytes(out[i]));
    const Node *n = &g->nodes[g->outputs[7]];
    assert_true(n->op == OP_RANDOM_NORMAL && n->attr.seed == 3);
    assert_true(g->nodes[n->in[0]].op == OP_CONST && g->nodes[n->in[0]].attr.value == 0);
    uint32_t r[4];
    etch_philox4x32(3, 0, 0, r);
    assert_true(tensor_get(out[7], 0) == random_normal_value(r[0], r[1]));
    for (int i = 0; i < 8; i++) tensor_free(out[i]), tensor_free(again[i]);
    tensor_free(x);
    diag_dispose(&d);
    arena_free(a);
}

/* In a train block the step operand is the optimizer's counter: the noise
 * changes from step to step (the step graph increments the counter). */
static void test_dsl_train_step_counter(void **state) {
    (void)state;
    Arena *a = arena_new();
    Program *p = compile(a, "model Net {\n"
                            "  param mu: f32[4] = zeros()\n"
                            "  fn forward(x: f32[2, 4]) { return x * (mu + randn([4])) }\n"
                            "}\n"
                            "train {\n  loss = sum(Net(x))\n  optimizer = sgd(lr = 0.1)\n}\n");
    Graph *g = p->train->loss;
    int noise = -1;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == OP_RANDOM_NORMAL) noise = i;
    assert_true(noise >= 0);
    const Node *step = &g->nodes[g->nodes[noise].in[0]];
    assert_true(step->op == OP_PARAM && strcmp(step->attr.name, "optimizer.step") == 0 && step->attr.frozen);
    graph_add_output(g, noise);
    Tensor **params = params_init(g, 0), *x = tensor_new(DT_F32, S(2, 2, 4)), *y = tensor_new(DT_I64, S(1, 2));
    Tensor *out0[2], *out1[2];
    Diag d;
    diag_init(&d, stderr);
    int k = graph_find_param(g, "optimizer.step");
    for (int i = 0; i < g->n_params; i++)
        if (g->params[i] == k) {
            assert_true(eager_run(g, (Tensor *[]){x, y}, params, out0, NULL, &d));
            tensor_set(params[i], 0, 1);
            assert_true(eager_run(g, (Tensor *[]){x, y}, params, out1, NULL, &d));
        }
    assert_true(memcmp(out0[1]->data, out1[1]->data, tensor_nbytes(out0[1])) != 0);
    for (int i = 0; i < 2; i++) tensor_free(out0[i]), tensor_free(out1[i]);
    tensor_free(x);
    tensor_free(y);
    params_free(g, params);
    diag_dispose(&d);
    arena_free(a);
}

/* The reparameterization trick: the noise is a constant to autodiff, so
 * gradients with respect to mu and sigma match finite differences. */
static void test_dsl_reparameterization_gradient(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = compile(a, "model Net {\n"
                          "  param mu: f64[3, 4] = uniform(-1, 1)\n"
                          "  param log_sigma: f64[3, 4] = uniform(-1, 1)\n"
                          "  fn forward() {\n"
                          "    let z = mu + exp(log_sigma) * randn([3, 4], dtype = f64)\n"
                          "    return z * z + rand([4], dtype = f64) * z\n"
                          "  }\n"
                          "}\n")
                   ->forward;
    int f = g->outputs[0];
    g->n_outputs = 0;
    ts_check_grad(g, f, 1e-6, 1e-6, 2, L);
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normal_compiled_matches_eager),
        cmocka_unit_test(test_normal_definition_and_statistics),
        cmocka_unit_test(test_dsl_compiled_matches_eager),
        cmocka_unit_test(test_dsl_values),
        cmocka_unit_test(test_dsl_train_step_counter),
        cmocka_unit_test(test_dsl_reparameterization_gradient), cmocka_unit_test(ts_cuda_coverage_test),
    };
    ts_check_cuda_too();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
