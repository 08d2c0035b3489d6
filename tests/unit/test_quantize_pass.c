/* test_quantize_pass.c: the quantize pass (passes/quantize.c,
 * docs/quantization.md) on a two-layer MLP written in the DSL:
 *   - the rewritten graph: one quantize at the input, fc1 requantized to u8
 *     with relu as its clamp feeding fc2 directly (no dequantize -> quantize
 *     pair), fc2 to f32; the float weights gone, int8/int32 params in;
 *   - weights per output channel in [-127, 127] with the largest magnitude
 *     of each row at +-127, the bias at s_x * s_w[c];
 *   - its eager result near the float model's, and emitted C (-O0, -O2)
 *     bit-identical to eager;
 *   - the report names what stays float; the default pipeline never runs it;
 *   - errors naming the tensor: a missing range, a range for another
 *     model's tensor, a NaN weight, no request;
 *   - the float round trip simplify removes (quantize of dequantize with the
 *     same scale and zero point) restores every integer exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ir/eager.h"
#include "codegen/backend.h"
#include "ir/params.h"
#include "ir/quant.h"
#include "passes/pass.h"
#include "passes/quantize.h"
#include "unit/test_support.h"

static const char SRC[] = "model Net {\n"
                          "  fc1 = Linear(6, 5)\n"
                          "  fc2 = Linear(5, 3)\n"
                          "  fn forward(x: f32[8, 6]) -> f32[8, 3] {\n"
                          "    return fc2(relu(fc1(x)))\n"
                          "  }\n"
                          "}\n";
/* the same with float work beside the layers (what the report must name) */
static const char SRC_MIXED[] = "model Net {\n"
                                "  fc1 = Linear(6, 5)\n"
                                "  fc2 = Linear(5, 3)\n"
                                "  fn forward(x: f32[8, 6]) -> f32[8, 3] {\n"
                                "    return fc2(relu(fc1(x))) + exp(x @ transpose(x))[:, 0:3]\n"
                                "  }\n"
                                "}\n";

/* The quantize pass over a clone of g with the given ranges; NULL on error (messages into d). */
static Graph *quantize(const Graph *g, QuantRequest *q, Diag *d) {
    PassOptions po = {.target = backend_c.target, .verify = true, .quant = q};
    const char *names[] = {"quantize"};
    return passes_run_list(graph_clone(g->arena, g, NULL), names, 1, &po, d);
}

static int count_op(const Graph *g, OpKind op) {
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++) n += g->nodes[i].op == op;
    return n;
}

static void test_rewrite_and_results(void **state) {
    (void)state;
    Arena *a = arena_new();
    Program *p = ts_compile(a, "q.etch", SRC);
    Graph *g = p->forward;
    QuantLinear found[4];
    assert_int_equal(quant_find_linears(g, found, 4), 2);
    QuantRange r[2] = {{"fc1.weight:input", S(2, 64, 6), 0, 1}, {"fc2.weight:input", S(2, 64, 5), 0, 1.5}};
    Tensor **fv = params_init(g, 0);
    Tensor *x = ts_random_tensor(DT_F32, S(2, 8, 6), 7, 0, 1);
    Tensor *want[1] = {NULL}, *have[1] = {NULL};
    assert_true(eager_run(g, &x, fv, want, NULL, NULL));
    QuantRequest q = {.ranges = r, .n_ranges = 2, .calib_path = "s.json", .values = params_init(g, 0)};
    Diag d;
    diag_init(&d, NULL);
    Graph *h = quantize(g, &q, &d);
    assert_non_null(h);
    assert_int_equal(count_op(h, OP_QMATMUL), 2);
    assert_int_equal(count_op(h, OP_QUANTIZE), 1);
    assert_int_equal(count_op(h, OP_DEQUANTIZE), 0);
    assert_int_equal(count_op(h, OP_MATMUL), 0);
    assert_int_equal(graph_find_param(h, "fc1.weight"), -1);
    assert_int_equal(graph_find_param(h, "fc2.bias"), -1);
    int w1 = graph_find_param(h, "fc1.weight.int8"), b1 = graph_find_param(h, "fc1.bias.int32");
    assert_true(w1 >= 0 && b1 >= 0);
    for (int i = 0; i < h->n_nodes; i++) {
        const Node *n = &h->nodes[i];
        if (n->op != OP_QMATMUL) continue;
        if (n->dtype == DT_U8) { /* fc1: u8 output, zero point 0 (range from 0), relu as the clamp */
            assert_int_equal(n->attr.quant.clamp[0], 0);
            assert_int_equal(n->attr.quant.clamp[1], 255);
            assert_int_equal(h->nodes[n->in[0]].op, OP_QUANTIZE);
        } else {
            assert_int_equal(n->dtype, DT_F32);
            assert_int_equal(h->nodes[n->in[0]].op, OP_QMATMUL); /* fc1's u8 result, no pair between */
        }
    }
    /* fc1's weights: each row's largest magnitude at +-127, bias at s_x * s_w[c] */
    const Tensor *w = fv[graph_find_param(g, "fc1.weight") == g->params[0] ? 0 : 1];
    int k = 0;
    while (h->params[k] != w1) k++;
    const Tensor *wq = q.values[k], *bq = q.values[k + 1];
    const Tensor *b = fv[1];
    for (int c = 0; c < 5; c++) {
        double amax = 0;
        int qmax = 0;
        for (int j = 0; j < 6; j++) {
            amax = fmax(amax, fabs(tensor_get(w, c * 6 + j)));
            qmax = (int)fmax(qmax, fabs(tensor_get(wq, c * 6 + j)));
        }
        assert_int_equal(qmax, 127);
        double sx = (float)(1.0 / 255), sw = amax / 127;
        assert_true(fabs(tensor_get(bq, c) - tensor_get(b, c) / (sx * sw)) <= 0.5);
    }
    assert_true(eager_run(h, &x, q.values, have, NULL, NULL));
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < 24; i++) {
        worst = fmax(worst, fabs(tensor_get(have[0], i) - tensor_get(want[0], i)));
        scale = fmax(scale, fabs(tensor_get(want[0], i)));
    }
    assert_true(worst <= 0.02 * scale + 0.02);
    assert_true(worst > 0); /* it did compute in int8 */
    const TsTol exact = {.lo = 0, .hi = 1, .exact = true, .eq_ok = true};
    ts_check_graph_with(h, &x, q.values, &exact);
    assert_non_null(strstr(q.report.s, "quantized: fc1.weight at "));
    assert_non_null(strstr(q.report.s, "u8 output requantized for the next layer"));
    assert_non_null(strstr(q.report.s, "quantize: 2 layers int8, 0 ops float"));
    /* float work beside the layers: each op named with its reason */
    Graph *m = ts_compile(a, "m.etch", SRC_MIXED)->forward;
    assert_int_equal(quant_find_linears(m, found, 4), 2); /* x @ transpose(x) is no Linear */
    QuantRequest qm = {.ranges = r, .n_ranges = 2, .values = params_init(m, 0)};
    Graph *hm = quantize(m, &qm, &d);
    assert_non_null(hm);
    assert_int_equal(count_op(hm, OP_MATMUL), 1);
    if (!strstr(qm.report.s, "matmul at m.etch:5:38: not a Linear layer") ||
        !strstr(qm.report.s, "exp at m.etch:5:32: elementwise op between float values"))
        fail_msg("report:\n%s", qm.report.s);
    sb_free(&qm.report);
    params_free(hm, qm.values);
    /* the default pipeline never quantizes */
    Graph *o2 = ts_optimize(g, 2);
    assert_int_equal(count_op(o2, OP_QMATMUL), 0);
    sb_free(&q.report);
    params_free(h, q.values);
    params_free(g, fv);
    tensor_free(x), tensor_free(want[0]), tensor_free(have[0]);
    diag_dispose(&d);
    arena_free(a);
}

static void expect_error(const Graph *g, QuantRequest *q, const char *message) {
    Diag d;
    diag_init(&d, NULL);
    Tensor **before = q->values;
    assert_null(quantize(g, q, &d));
    assert_ptr_equal(q->values, before); /* left as they were */
    if (!strstr(d.text, message)) fail_msg("want '%s' in:\n%s", message, d.text);
    sb_free(&q->report);
    q->report = (StrBuf){0};
    diag_dispose(&d);
}

static void test_errors(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = ts_compile(a, "q.etch", SRC)->forward;
    QuantRange r[2] = {{"fc1.weight:input", S(2, 8, 6), 0, 1}, {"fc9.weight:input", S(2, 8, 5), 0, 1}};
    QuantRequest q = {.ranges = r, .n_ranges = 2, .calib_path = "s.json", .values = params_init(g, 0)};
    expect_error(g, &q, "s.json has no range for 'fc2.weight:input' (f32[8,5]): it was made for another model");
    expect_error(g, &q, "s.json has a range for 'fc9.weight:input', which this model does not have");
    strcpy(r[1].name, "fc2.weight:input");
    r[1].shape = S(2, 8, 4);
    expect_error(g, &q, "s.json: 'fc2.weight:input' was calibrated as f32[8,4], the model has f32[8,5]");
    r[1].shape = S(2, 8, 5);
    tensor_set(q.values[2], 3, NAN); /* fc2.weight */
    expect_error(g, &q, "cannot quantize: parameter 'fc2.weight' holds NaN at element 3");
    QuantRequest none = {0};
    expect_error(g, &none, "the quantize pass needs calibration ranges and weights");
    params_free(g, q.values);
    arena_free(a);
}

/* simplify's quantize(dequantize(q, s, z), s, z) -> q is exact: every u8 and
 * i8 value, every zero point, scales across the allowed range (f32 as the
 * dequantized value is stored; the arithmetic is ir/quant.c's, which the C
 * backend matches bit for bit). */
static void test_round_trip_exact(void **state) {
    (void)state;
    const double scales[] = {1e-37, 3e-20, 1e-3, 0.0039215689, 0.02, 0.7, 3.1, 1e3, 1e20, 1e35};
    for (int k = 0; k < 10; k++) {
        double s = (float)scales[k];
        for (int t = 0; t < 2; t++) {
            int lo = t ? -128 : 0, hi = t ? 127 : 255;
            for (int z = lo; z <= hi; z += 7)
                for (int q = lo; q <= hi; q++) {
                    double r = (float)quant_dequantize(q, s, z);
                    if (quant_quantize(r, s, z, lo, hi) != q) fail_msg("q %d, scale %g, zero point %d", q, s, z);
                }
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_rewrite_and_results), cmocka_unit_test(test_errors),
                                       cmocka_unit_test(test_round_trip_exact)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
