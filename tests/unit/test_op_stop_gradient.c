/* test_op_stop_gradient.c: stop_gradient, the identity whose gradient is
 * zero, and the DSL builtin detach(x) that makes it. Checked: emitted C
 * against the eager executor (alone and fused, f32 and f64); the autodiff
 * pass stops at it, so the gradient of x * detach(x) is detach(x) (not 2x) and
 * that of detach(x) alone is zero; gradients of the paths around it still
 * match finite differences; simplify removes it once the gradients exist;
 * the textual IR round trip; the DSL builtin and method form in a train
 * block. Its diagnostics are lit tests (tests/lit/bad/detach_*.etch). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codegen/backend.h"
#include "frontend/frontend.h"
#include "ir/eager.h"
#include "ir/params.h"
#include "passes/transforms/autodiff.h"
#include "passes/pass.h"
#include "unit/test_support.h"

static SrcLoc L = {"detach.etch", 2, 7};

static int stopg(Graph *g, int x) { return U(g, OP_STOP_GRADIENT, x, NULL); }

static void test_compiled_matches_eager(void **state) {
    (void)state;
    for (int t = DT_F32; t <= DT_F64; t++) {
        Arena *a = arena_new();
        Graph *g = graph_new(a, "stopg");
        int x = graph_add_input(g, "x", (DType)t, S(2, 3, 5), L), y = graph_add_input(g, "y", (DType)t, S(1, 5), L);
        graph_add_output(g, stopg(g, x));                                     /* alone */
        graph_add_output(g, B(g, OP_MUL, stopg(g, B(g, OP_ADD, x, y)), x)); /* fused at -O2 */
        ts_check_graph(g, &(TsTol){.lo = -3, .hi = 3, .exact = true, .eq_ok = true});
        arena_free(a);
    }
}

/* sum(R * f) differentiated by autodiff, evaluated eagerly: the loss and the
 * gradient of the single param p. */
static void eval_grad(Graph *g, int f, int r, Tensor **params, Tensor *rt, Tensor **grad) {
    int prod = B(g, OP_MUL, f, r);
    int loss = U(g, OP_REDUCE_SUM, prod, &(NodeAttrs){.n_axes = 1, .axes = {0}});
    graph_add_output(g, loss);
    int gp;
    Diag d;
    diag_init(&d, stderr);
    assert_true(autodiff(g, loss, g->params, 1, &gp, &d));
    graph_add_output(g, gp);
    Tensor *out[2] = {0};
    assert_true(eager_run(g, (Tensor *[]){rt}, params, out, NULL, &d));
    tensor_free(out[0]);
    *grad = out[1];
    diag_dispose(&d);
}

static void test_gradient_stops(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "stopg_grad");
    int p = graph_add_param(g, "p", DT_F64, S(1, 6), (ParamInit){INIT_UNIFORM, -2, 2}, false, L);
    int r = graph_add_input(g, "R", DT_F64, S(1, 6), L);
    Tensor **params = params_init(g, 3), *rt = ts_random_tensor(DT_F64, S(1, 6), 5, -1, 1), *grad;
    /* d/dp sum(R * p * detach(p)) = R * detach(p) = R * p, where sum(R * p * p) would give 2 R p */
    eval_grad(g, B(g, OP_MUL, p, stopg(g, p)), r, params, rt, &grad);
    for (int i = 0; i < 6; i++)
        assert_true(tensor_get(grad, i) == tensor_get(rt, i) * tensor_get(params[0], i));
    tensor_free(grad);
    /* a loss that reads p only through detach: a zero gradient */
    g->n_outputs = 0;
    eval_grad(g, B(g, OP_ADD, stopg(g, p), r), r, params, rt, &grad);
    for (int i = 0; i < 6; i++) assert_true(tensor_get(grad, i) == 0);
    tensor_free(grad);
    tensor_free(rt);
    params_free(g, params);
    arena_free(a);
}

static void test_gradient_around_it(void **state) { /* finite differences see detach(q) of an input as a constant */
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "stopg_fd");
    int p = graph_add_param(g, "p", DT_F64, S(2, 3, 4), (ParamInit){INIT_UNIFORM, -2, 2}, false, L);
    int q = graph_add_const(g, 1.5, DT_F64, S(1, 4), L);
    ts_check_grad(g, B(g, OP_MUL, B(g, OP_MUL, p, p), stopg(g, B(g, OP_ADD, q, q))), 1e-6, 1e-6, 0, L);
    arena_free(a);
}

static void test_simplify_removes_it(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "stopg_simplify");
    int x = graph_add_input(g, "x", DT_F32, S(1, 4), L);
    graph_add_output(g, B(g, OP_MUL, stopg(g, x), x));
    Diag d;
    diag_init(&d, stderr);
    Graph *o = passes_run(g, &(PassOptions){.opt_level = 2, .target = backend_c.target}, &d);
    assert_non_null(o);
    for (int i = 0; i < o->n_nodes; i++) assert_int_not_equal(o->nodes[i].op, OP_STOP_GRADIENT);
    diag_dispose(&d);
    arena_free(a);
}

static void test_text_round_trip(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "t");
    graph_add_output(g, stopg(g, graph_add_input(g, "x", DT_I64, S(1, 4), L)));
    char *text = ir_print_to_string(g);
    assert_non_null(strstr(text, "= stop_gradient %0 : i64[4]"));
    Diag d;
    diag_init(&d, NULL);
    Graph *h = ir_parse(a, "t.etchir", text, &d);
    assert_non_null(h);
    assert_int_equal(h->nodes[1].op, OP_STOP_GRADIENT);
    diag_dispose(&d);
    free(text);
    arena_free(a);
}

/* ---- the DSL builtin ------------------------------------------------------ */

static const char DSL_SRC[] = "model Net {\n"
                              "  param w: f64[3] = uniform(-1, 1)\n"
                              "  param v: f64[3] = uniform(-1, 1)\n"
                              "  fn forward(x: f64[3]) { return x * w * detach(w) + v * v.detach() * detach(x) }\n"
                              "}\n"
                              "train {\n"
                              "  loss = sum(Net(x))\n"
                              "  optimizer = sgd(lr = 1)\n"
                              "  x: f64[3]\n"
                              "}\n";

static void test_dsl_gradient(void **state) {
    (void)state;
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = frontend_compile_source(a, "detach.etch", DSL_SRC, NULL, 0, &d);
    assert_non_null(p);
    assert_non_null(p->train);
    Graph *g = p->train->loss;
    int loss = g->outputs[0], grads[2];
    assert_true(autodiff(g, loss, g->params, 2, grads, &d));
    graph_add_output(g, grads[0]);
    graph_add_output(g, grads[1]);
    Tensor **params = params_init(g, 1), *x = ts_random_tensor(DT_F64, S(1, 3), 2, -1, 1), *out[3] = {0};
    Tensor *y = tensor_new(DT_I64, S(1, 3)); /* the train block's default labels, unused by the loss */
    assert_true(eager_run(g, (Tensor *[]){x, y}, params, out, NULL, &d));
    tensor_free(y);
    for (int i = 0; i < 3; i++) { /* d/dw = x * detach(w), d/dv = v * detach(x) */
        assert_true(tensor_get(out[1], i) == tensor_get(x, i) * tensor_get(params[0], i));
        assert_true(tensor_get(out[2], i) == tensor_get(params[1], i) * tensor_get(x, i));
    }
    for (int i = 0; i < 3; i++) tensor_free(out[i]);
    tensor_free(x);
    params_free(g, params);
    diag_dispose(&d);
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compiled_matches_eager), cmocka_unit_test(test_gradient_stops),
        cmocka_unit_test(test_gradient_around_it),     cmocka_unit_test(test_simplify_removes_it),
        cmocka_unit_test(test_text_round_trip),        cmocka_unit_test(test_dsl_gradient),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
