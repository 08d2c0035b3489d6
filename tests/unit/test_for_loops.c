/* test_for_loops.c: `for` beyond the forward loop over time
 * (frontend/statements.c): `for x in reversed(xs)` over a tensor is a scan
 * that runs backward (its values against a direct recurrence, yields stacked
 * at the steps' own positions; compiled against eager; gradients against
 * finite differences), and loops over lists, tuples and ranges are unrolled
 * at compile time (range and reversed of sequences, yields collected into a
 * list or tuple, assignments and `return` as in straight-line code).
 * Diagnostics: tests/lit/bad/loop_*.etch, reversed_*.etch, range_*.etch. */
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
#include "passes/transforms/autodiff.h"
#include "unit/test_support.h"

static SrcLoc L = {"loops.etch", 1, 1};

static Program *compile(Arena *a, const char *src) { return ts_compile(a, "loops.etch", src); }

/* h_t = tanh(x_t * a + h_{t+1}), from t = T-1 down to 0; yields y_t = h_t * 2 */
static const char REVERSED_SRC[] = "model Net {\n"
                                   "  param a: f64[3] = uniform(-1, 1)\n"
                                   "  fn forward(xs: f64[5, 3]) {\n"
                                   "    let h = zeros([3], dtype = f64)\n"
                                   "    let ys = for x in reversed(xs) {\n"
                                   "      h = tanh(x * a + h)\n"
                                   "      yield h * 2\n"
                                   "    }\n"
                                   "    return ys, h\n"
                                   "  }\n"
                                   "}\n";

static void test_reversed_values(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = compile(a, REVERSED_SRC)->forward;
    bool found = false;
    for (int i = 0; i < g->n_nodes; i++) found |= g->nodes[i].op == OP_SCAN && g->nodes[i].attr.reverse;
    assert_true(found);
    Tensor *xs = ts_random_tensor(DT_F64, S(2, 5, 3), 4, -1, 1), *w = ts_random_tensor(DT_F64, S(1, 3), 5, -1, 1);
    Tensor *out[2];
    Diag d;
    diag_init(&d, stderr);
    assert_true(eager_run(g, &xs, &w, out, NULL, &d));
    double h[3] = {0, 0, 0};
    for (int t = 4; t >= 0; t--)
        for (int k = 0; k < 3; k++) {
            h[k] = tanh(tensor_get(xs, t * 3 + k) * tensor_get(w, k) + h[k]);
            assert_true(fabs(tensor_get(out[0], t * 3 + k) - 2 * h[k]) < 1e-15); /* at the step's own position */
        }
    for (int k = 0; k < 3; k++) assert_true(fabs(tensor_get(out[1], k) - h[k]) < 1e-15); /* the last step's h: t = 0 */
    tensor_free(out[0]);
    tensor_free(out[1]);
    tensor_free(xs);
    tensor_free(w);
    diag_dispose(&d);
    arena_free(a);
}

static void test_reversed_compiled_matches_eager(void **state) {
    (void)state;
    Arena *a = arena_new();
    ts_check_graph(compile(a, REVERSED_SRC)->forward, &(TsTol){.lo = -1, .hi = 1, .rel = 1e-9, .abs = 1e-12});
    arena_free(a);
}

/* A bidirectional layer: forward and backward scans over the same sequence, concatenated per step. */
static const char BIDIRECTIONAL_SRC[] = "model Net {\n"
                                        "  param xs: f64[4, 2, 3] = uniform(-1, 1)\n"
                                        "  param w: f64[3, 3] = uniform(-1, 1)\n"
                                        "  param v: f64[3, 3] = uniform(-1, 1)\n"
                                        "  fn forward() {\n"
                                        "    let h = zeros([2, 3], dtype = f64)\n"
                                        "    let g = zeros([2, 3], dtype = f64)\n"
                                        "    let fw = for x in xs { h = tanh(x + h @ w) yield h }\n"
                                        "    let bw = for x in reversed(xs) { g = tanh(x * 0.5 + g @ v) yield g }\n"
                                        "    return cat(fw, bw, dim = 2) * cat(bw[-1], g, dim = 1)\n"
                                        "  }\n"
                                        "}\n";

static void test_reversed_gradient(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = compile(a, BIDIRECTIONAL_SRC)->forward;
    int f = g->outputs[0];
    g->n_outputs = 0;
    ts_check_grad(g, f, 1e-6, 1e-6, 4, L);
    arena_free(a);
}

/* The bidirectional layer's gradients (backward scans both ways, the slices,
 * pads and concats around them) compiled, against eager. */
static void test_bidirectional_gradient_compiled(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = compile(a, BIDIRECTIONAL_SRC)->forward;
    int f = g->outputs[0];
    NodeAttrs all = {.n_axes = g->nodes[f].shape.rank};
    for (int i = 0; i < all.n_axes; i++) all.axes[i] = i;
    int loss = ts_add(L, g, OP_REDUCE_SUM, 1, (int[]){f}, &all), grads[8];
    g->n_outputs = 0;
    graph_add_output(g, loss);
    Diag d;
    diag_init(&d, stderr);
    assert_true(g->n_params <= 8 && autodiff(g, loss, g->params, g->n_params, grads, &d));
    for (int i = 0; i < g->n_params; i++) graph_add_output(g, grads[i]);
    ts_check_graph(g, &(TsTol){.lo = -1, .hi = 1, .rel = 1e-9, .abs = 1e-12});
    diag_dispose(&d);
    arena_free(a);
}

/* The const node multiplying the forward's only output. */
static double output_factor(const Graph *g) {
    const Node *m = &g->nodes[g->outputs[0]];
    assert_int_equal(m->op, OP_MUL);
    const Node *c = &g->nodes[m->in[1]];
    assert_int_equal(c->op, OP_CONST);
    return c->attr.value;
}

static void test_unrolled(void **state) {
    (void)state;
    static const struct {
        const char *body;
        double want;
    } cases[] = {
        {"let acc = 0\n for i in reversed(range(4)) { acc = acc * 10 + i }\n return x * acc", 3210},
        {"let acc = 0\n for i in range(2, 9, 3) { acc = acc * 10 + i }\n return x * acc", 258},
        {"let acc = 0\n for i in range(5, 0, -2) { acc = acc * 10 + i }\n return x * acc", 531},
        {"let acc = 1\n for d in x.shape { acc = acc * d }\n return x * acc", 6},
        {"let sq = for i in [1, 2, 3] { yield i * i }\n return x * (sq[0] + sq[1] * 10 + sq[2] * 100)", 941},
        {"let a, b = for i in range(3) { yield i, -i }\n return x * (a[2] * 10 - b[1])", 21},
        {"let n = 0\n for i in range(0) { n = n + 1 }\n return x * (n + 7)", 7},
        {"for i in [4, 5] { if i == 5 { return x * i } }\n return x", 5}, /* return from inside */
        {"let acc = 0\n for r in reversed(range(1, 3)) { for c in range(r) { acc = acc * 10 + r + c } }\n"
         " return x * acc",
         231},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Arena *a = arena_new();
        const char *src = arena_printf(a, "model Net {\n  fn forward(x: f32[2, 3]) {\n %s\n  }\n}\n", cases[i].body);
        double got = output_factor(compile(a, src)->forward);
        if (got != cases[i].want) {
            print_error("case %zu: got %g, want %g\n", i, got, cases[i].want);
            fail();
        }
        arena_free(a);
    }
}

/* Loops over tuples of tensors, unrolled: yields collect into a tuple. */
static void test_unrolled_tensors(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = compile(a, "model Net {\n"
                          "  fn forward(x: f64[4, 3]) {\n"
                          "    let parts = for p in reversed(split(x, 1)) { yield p * 2 }\n"
                          "    let y = x\n"
                          "    for p in split(x, [1, 3]) { y = y + sum(p) }\n"
                          "    return cat(parts), y\n"
                          "  }\n"
                          "}\n")
                   ->forward;
    Tensor *x = ts_random_tensor(DT_F64, S(2, 4, 3), 6, -1, 1), *out[2];
    Diag d;
    diag_init(&d, stderr);
    assert_true(eager_run(g, &x, NULL, out, NULL, &d));
    double total = 0;
    for (int i = 0; i < 12; i++) total += tensor_get(x, i);
    for (int r = 0; r < 4; r++)
        for (int k = 0; k < 3; k++) {
            assert_true(tensor_get(out[0], r * 3 + k) == 2 * tensor_get(x, (3 - r) * 3 + k)); /* rows reversed */
            assert_true(fabs(tensor_get(out[1], r * 3 + k) - (tensor_get(x, r * 3 + k) + total)) < 1e-12);
        }
    tensor_free(out[0]);
    tensor_free(out[1]);
    tensor_free(x);
    diag_dispose(&d);
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reversed_values),
        cmocka_unit_test(test_reversed_compiled_matches_eager),
        cmocka_unit_test(test_reversed_gradient),
        cmocka_unit_test(test_bidirectional_gradient_compiled),
        cmocka_unit_test(test_unrolled),
        cmocka_unit_test(test_unrolled_tensors), cmocka_unit_test(ts_cuda_coverage_test),
    };
    ts_check_cuda_too();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
