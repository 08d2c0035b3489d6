/* test_op_leaky_relu.c: the example op added through the op tables alone
 * (ir/ops.def row, ir/ops/elementwise.c, codegen/c/ops.def row):
 * leaky_relu {value = slope}. Checked as every op is: emitted C (-O0 alone,
 * -O2 fused into an elementwise group) against the eager executor, f32 and
 * f64; its VJP against central finite differences; the textual IR printing
 * the slope and parsing it back; and CSE keeping two slopes apart. Then the
 * DSL builtin leaky_relu(x, negative_slope=0.01) (frontend/builtins.c) and
 * the nn.etch module LeakyReLU: the slope each call puts on the node, the
 * traced graph compiled against eager, and gradients through the builtin.
 * Its diagnostics are lit tests (tests/lit/bad/leaky_relu_*.etch). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frontend/frontend.h"
#include "passes/pass.h"
#include "unit/test_support.h"

static SrcLoc L = {"leaky.etch", 3, 9};

static int leaky(Graph *g, int x, double slope) { return U(g, OP_LEAKY_RELU, x, &(NodeAttrs){.value = slope}); }

static void test_compiled_matches_eager(void **state) {
    (void)state;
    for (int t = DT_F32; t <= DT_F64; t++) {
        Arena *a = arena_new();
        Graph *g = graph_new(a, "leaky");
        int x = graph_add_input(g, "x", (DType)t, S(3, 2, 3, 7), L), y = graph_add_input(g, "y", (DType)t, S(1, 7), L);
        graph_add_output(g, leaky(g, x, 0.01));                      /* alone: emit_elementwise */
        graph_add_output(g, leaky(g, B(g, OP_ADD, B(g, OP_MUL, x, x), y), 0.2)); /* fused at -O2 */
        graph_add_output(g, leaky(g, x, -1.5));                      /* any slope, negative too */
        ts_check_graph(g, &(TsTol){.lo = -3, .hi = 3, .rel = 1e-6, .abs = 1e-7, .eq_ok = true, .nan_ok = true});
        arena_free(a);
    }
}

static void test_gradient(void **state) {
    (void)state;
    double slopes[] = {0.01, 0.3, -0.5};
    for (size_t i = 0; i < sizeof slopes / sizeof slopes[0]; i++) {
        Arena *a = arena_new();
        Graph *g = graph_new(a, "leaky_grad");
        int p = graph_add_param(g, "p", DT_F64, S(2, 3, 5), (ParamInit){INIT_UNIFORM, -2, 2}, false, L);
        ts_check_grad(g, leaky(g, p, slopes[i]), 1e-6, 1e-6, 0, L);
        arena_free(a);
    }
}

static void test_text_round_trip(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "t");
    int x = graph_add_input(g, "x", DT_F32, S(1, 4), L);
    graph_add_output(g, leaky(g, x, 0.125));
    char *text = ir_print_to_string(g);
    assert_non_null(strstr(text, "= leaky_relu %0 {value = 0.125} : f32[4]"));
    Diag d;
    diag_init(&d, NULL);
    Graph *h = ir_parse(a, "t.etchir", text, &d);
    assert_non_null(h);
    assert_true(h->nodes[1].op == OP_LEAKY_RELU && h->nodes[1].attr.value == 0.125);
    char *again = ir_print_to_string(h);
    assert_string_equal(text, again);
    diag_dispose(&d);
    free(text);
    free(again);
    arena_free(a);
}

static void test_cse_keeps_slopes_apart(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "cse");
    int x = graph_add_input(g, "x", DT_F32, S(1, 4), L);
    graph_add_output(g, leaky(g, x, 0.1));
    graph_add_output(g, leaky(g, x, 0.2)); /* differs: kept */
    graph_add_output(g, leaky(g, x, 0.1)); /* the first again: merged */
    Graph *o = ts_optimize(g, 2);
    assert_int_equal(o->outputs[0], o->outputs[2]);
    assert_int_not_equal(o->outputs[0], o->outputs[1]);
    arena_free(a);
}

/* ---- the DSL builtin ------------------------------------------------------ */

static Program *compile(Arena *a, const char *src) {
    Diag d;
    diag_init(&d, stderr);
    Program *p = frontend_compile_source(a, "leaky.etch", src, NULL, 0, &d);
    diag_dispose(&d);
    assert_non_null(p);
    return p;
}

static const char DSL_SRC[] = "model Net {\n"
                              "  act = LeakyReLU(0.3)\n"
                              "  fn forward(x: f32[2, 3, 7], y: f64[7]) {\n"
                              "    return leaky_relu(x), leaky_relu(x * x - 1, negative_slope = -1.5),\n"
                              "      act(x), leaky_relu(y, 0.2), leaky_relu(-2, 0.25) * x\n"
                              "  }\n"
                              "}\n";

static void test_dsl_builtin_compiled_matches_eager(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = compile(a, DSL_SRC)->forward;
    double slopes[] = {0.01, -1.5, 0.3, 0.2}; /* default, keyword, module, positional */
    for (int i = 0; i < 4; i++) {
        const Node *n = &g->nodes[g->outputs[i]];
        assert_int_equal(n->op, OP_LEAKY_RELU);
        assert_true(n->attr.value == slopes[i]);
    }
    const Node *folded = &g->nodes[g->nodes[g->outputs[4]].in[0]]; /* leaky_relu(-2, 0.25) = -0.5 */
    assert_true(folded->op == OP_CONST && folded->attr.value == -0.5);
    ts_check_graph(g, &(TsTol){.lo = -3, .hi = 3, .rel = 1e-6, .abs = 1e-7, .eq_ok = true, .nan_ok = true});
    arena_free(a);
}

static void test_dsl_builtin_gradient(void **state) {
    (void)state;
    static const char *const srcs[] = {
        "model Net {\n  param w: f64[3, 5] = uniform(-2, 2)\n  fn forward() { return leaky_relu(w) }\n}\n",
        "model Net {\n  param w: f64[3, 5] = uniform(-2, 2)\n  fn forward() { return leaky_relu(w * w - 1, 0.4) }\n}\n",
        "model Net {\n  param w: f64[3, 5] = uniform(-2, 2)\n  act = LeakyReLU(-0.7)\n"
        "  fn forward() { return act(w) }\n}\n",
    };
    for (size_t i = 0; i < sizeof srcs / sizeof srcs[0]; i++) {
        Arena *a = arena_new();
        Graph *g = compile(a, srcs[i])->forward;
        int f = g->outputs[0];
        g->n_outputs = 0; /* ts_check_grad adds the loss and the gradients as the only outputs */
        ts_check_grad(g, f, 1e-6, 1e-6, 1, L);
        arena_free(a);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compiled_matches_eager),
        cmocka_unit_test(test_gradient),
        cmocka_unit_test(test_text_round_trip),
        cmocka_unit_test(test_cse_keeps_slopes_apart),
        cmocka_unit_test(test_dsl_builtin_compiled_matches_eager),
        cmocka_unit_test(test_dsl_builtin_gradient),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
