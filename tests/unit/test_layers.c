/* test_layers.c: the layer ops (slice, pad, concat, gather_rows,
 * scatter_add_rows, random_uniform, erf) at the op level:
 *   - emitted C (-O0 as built, -O2 through the pass pipeline) against the
 *     eager executor, as in test_codegen_ops.c; random_uniform bit for bit;
 *     the graphs of ops the CUDA backend has also through it (emulated);
 *   - VJP rules against central finite differences in float64, as in
 *     test_autodiff.c (loss = sum(f * R) for a fixed random R);
 *   - dropout's randomness: same (seed, step) gives the same numbers, another
 *     step other numbers, and u >= p keeps about 1 - p of the elements;
 *   - shape-rule diagnostics, and train_build_step reusing an existing
 *     "optimizer.step" param instead of adding a second one.
 * DSL-level checks (batch norm running stats, dropout in a compiled training
 * step) are in test_layers_train.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/build.h"
#include "codegen/c/emit_c.h"
#include "ir/eager.h"
#include "ir/ops/ops_impl.h"
#include "ir/params.h"
#include "passes/pass.h"
#include "passes/transforms/autodiff.h"
#include "passes/transforms/train.h"
#include "runtime/etch_rt.h"
#include "unit/test_support.h"

static SrcLoc L = {"layers.etch", 1, 1};

/* ---- emitted C vs eager ---------------------------------------------------- */

/* Runs g eagerly and compiled at -O0 and -O2; relative error <= 1e-5, or bit
 * equality when exact. */
static void check_graph(Graph *g, double lo, double hi, bool exact) {
    ts_check_graph(g, &(TsTol){.lo = lo, .hi = hi, .rel = 1e-5, .abs = 1e-7, .eq_ok = true, .exact = exact});
}

static void test_codegen_slice_pad_concat(void **state) {
    (void)state;
    for (int t = 0; t < 3; t++) {
        DType dt = t == 0 ? DT_F32 : t == 1 ? DT_F64 : DT_I32;
        Arena *a = arena_new();
        Graph *g = graph_new(a, "slice_pad_concat");
        int x = graph_add_input(g, "x", dt, S(3, 3, 5, 4), L), y = graph_add_input(g, "y", dt, S(3, 3, 2, 4), L);
        int v = graph_add_input(g, "v", dt, S(1, 7), L);
        graph_add_output(g, U(g, OP_SLICE, x, &(NodeAttrs){.axis = 0, .start = 1, .length = 2})); /* outer 1 */
        int s1 = U(g, OP_SLICE, x, &(NodeAttrs){.axis = 1, .start = 2, .length = 3});
        graph_add_output(g, s1);
        graph_add_output(g, U(g, OP_SLICE, x, &(NodeAttrs){.axis = 2, .start = 3, .length = 1}));
        graph_add_output(g, U(g, OP_SLICE, v, &(NodeAttrs){.axis = 0, .start = 2, .length = 4}));
        graph_add_output(g, add(g, OP_CONCAT, 2, (int[]){x, y}, &(NodeAttrs){.axis = 1}));
        graph_add_output(g, add(g, OP_CONCAT, 2, (int[]){y, s1}, &(NodeAttrs){.axis = 1}));
        graph_add_output(g, add(g, OP_CONCAT, 2, (int[]){x, x}, &(NodeAttrs){.axis = 0}));
        graph_add_output(g, add(g, OP_CONCAT, 2, (int[]){x, x}, &(NodeAttrs){.axis = 2}));
        graph_add_output(g, U(g, OP_PAD, x, &(NodeAttrs){.pad_before = {1, 0, 2}, .pad_after = {0, 3, 1}}));
        graph_add_output(g, U(g, OP_PAD, x, &(NodeAttrs){.pad_before = {0, 1}, .pad_after = {2, 0}, .value = -2}));
        graph_add_output(g, U(g, OP_PAD, v, &(NodeAttrs){.pad_before = {3}, .pad_after = {1}, .value = 5}));
        /* a slice of a slice and a pad feeding elementwise consumers (fusion around them at -O2) */
        int ss = U(g, OP_SLICE, s1, &(NodeAttrs){.axis = 2, .start = 1, .length = 2});
        graph_add_output(g, B(g, OP_ADD, U(g, OP_PAD, ss, &(NodeAttrs){.pad_before = {0, 2}, .pad_after = {0, 0, 2}}), x));
        graph_add_output(g, B(g, OP_SUB, s1, graph_add_const(g, 3, dt, S(0), L))); /* a slice feeding a constant's use */
        if (dt != DT_I32) { /* an operand that is a parameter (its own memory in the CUDA backend) */
            int p = graph_add_param(g, "p", dt, S(3, 3, 1, 4), (ParamInit){INIT_UNIFORM, -1, 1}, false, L);
            graph_add_output(g, add(g, OP_CONCAT, 2, (int[]){p, y}, &(NodeAttrs){.axis = 1}));
        }
        check_graph(g, -3, 3, false);
        arena_free(a);
    }
}

static void test_codegen_gather_scatter(void **state) {
    (void)state;
    for (int t = 0; t < 2; t++) {
        DType it = t ? DT_I32 : DT_I64;
        Arena *a = arena_new();
        Graph *g = graph_new(a, "gather");
        int w = graph_add_param(g, "emb.weight", DT_F32, S(2, 6, 5), (ParamInit){INIT_NORMAL, 0, 1}, false, L);
        int w3 = graph_add_param(g, "w3", DT_F64, S(3, 6, 2, 3), (ParamInit){INIT_UNIFORM, -1, 1}, false, L);
        int ids = graph_add_input(g, "ids", it, S(2, 4, 7), L); /* 0..9: 6..9 out of range */
        int three = graph_add_const(g, 3, it, S(0), L);
        int shifted = B(g, OP_SUB, ids, three); /* -3..6: negative ids too */
        int rows = B(g, OP_GATHER_ROWS, w, shifted);
        graph_add_output(g, rows);
        graph_add_output(g, B(g, OP_GATHER_ROWS, w3, ids));
        graph_add_output(g, add(g, OP_SCATTER_ADD_ROWS, 2, (int[]){rows, shifted}, &(NodeAttrs){.shape = S(2, 6, 5)}));
        int gy = graph_add_input(g, "gy", DT_F32, S(3, 4, 7, 5), L);
        graph_add_output(g, add(g, OP_SCATTER_ADD_ROWS, 2, (int[]){gy, ids}, &(NodeAttrs){.shape = S(2, 9, 5)}));
        check_graph(g, -2, 2, false);
        /* many ids per row (several of the cuda kernel's chunks of 256), summed in id order: bit for bit */
        Graph *h = graph_new(a, "scatter_long");
        int hids = graph_add_input(h, "ids", it, S(1, 600), L), hgy = graph_add_input(h, "gy", DT_F32, S(2, 600, 3), L);
        graph_add_output(h, add(h, OP_SCATTER_ADD_ROWS, 2, (int[]){hgy, hids}, &(NodeAttrs){.shape = S(2, 4, 3)}));
        check_graph(h, -2, 4, true);
        arena_free(a);
    }
}

static void test_codegen_erf_random(void **state) {
    (void)state;
    for (int t = DT_F32; t <= DT_F64; t++) {
        Arena *a = arena_new();
        Graph *g = graph_new(a, "erf_random");
        int x = graph_add_input(g, "x", (DType)t, S(3, 2, 3, 7), L);
        graph_add_output(g, U(g, OP_ERF, x, NULL));
        check_graph(g, -3, 3, false);
        Graph *r = graph_new(a, "random");
        int step = graph_add_input(r, "step", DT_F64, S(0), L);
        graph_add_output(r, U(r, OP_RANDOM_UNIFORM, step, &(NodeAttrs){.seed = 1234, .dtype = (DType)t, .shape = S(2, 5, 7)}));
        graph_add_output(r, U(r, OP_RANDOM_UNIFORM, step, &(NodeAttrs){.seed = 99, .dtype = (DType)t, .shape = S(1, 8)}));
        check_graph(r, 7, 7, true); /* step 7: bit-identical in every backend */
        arena_free(a);
    }
}

/* ---- finite differences ------------------------------------------------------ */

static int P(Graph *g, const char *name, Shape s, double lo, double hi) {
    return graph_add_param(g, name, DT_F64, s, (ParamInit){INIT_UNIFORM, lo, hi}, false, L);
}

/* loss = sum(f * R) over a random R; every param's gradient vs central differences. */
static void check_vjp(Graph *g, int f, double tol) { ts_check_grad(g, f, tol, 1e-6, 7, L); }

static void test_vjp_slice_pad_concat(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "slice");
    int x = P(g, "x", S(3, 3, 5, 4), -1, 1);
    int s1 = U(g, OP_SLICE, x, &(NodeAttrs){.axis = 1, .start = 1, .length = 3});
    int s2 = U(g, OP_SLICE, x, &(NodeAttrs){.axis = 2, .start = 0, .length = 2});
    int s3 = U(g, OP_SLICE, s2, &(NodeAttrs){.axis = 1, .start = 2, .length = 3});
    check_vjp(g, B(g, OP_MUL, s1, U(g, OP_PAD, s3, &(NodeAttrs){.pad_after = {0, 0, 2}})), 1e-6);

    Graph *p = graph_new(a, "pad");
    int y = P(p, "y", S(2, 3, 4), -1, 1);
    int py = U(p, OP_PAD, y, &(NodeAttrs){.pad_before = {1, 2}, .pad_after = {2, 0}, .value = 0.5});
    check_vjp(p, B(p, OP_MUL, py, py), 1e-6);

    Graph *c = graph_new(a, "concat");
    int u = P(c, "u", S(3, 2, 3, 4), -1, 1), v = P(c, "v", S(3, 2, 1, 4), -1, 1);
    int uv = add(c, OP_CONCAT, 2, (int[]){u, v}, &(NodeAttrs){.axis = 1});
    int uu = add(c, OP_CONCAT, 2, (int[]){uv, u}, &(NodeAttrs){.axis = 1}); /* u twice: gradients accumulate */
    check_vjp(c, B(c, OP_MUL, uu, uu), 1e-6);
    arena_free(a);
}

static void test_vjp_gather_erf_gelu(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "gather");
    int w = P(g, "w", S(2, 4, 3), -1, 1);
    /* ids[i][j] = i + j - 1 over [3, 4]: -1..4 with repeats; -1 and 4 are out of range */
    int ri = graph_add_op(g, OP_IOTA, NULL, 0, &(NodeAttrs){.dtype = DT_I64, .shape = S(2, 3, 1), .axis = 0}, L, NULL);
    int cj = graph_add_op(g, OP_IOTA, NULL, 0, &(NodeAttrs){.dtype = DT_I64, .shape = S(2, 1, 4), .axis = 1}, L, NULL);
    int ids = B(g, OP_SUB, B(g, OP_ADD, ri, cj), graph_add_const(g, 1, DT_I64, S(0), L));
    int rows = B(g, OP_GATHER_ROWS, w, ids);
    check_vjp(g, B(g, OP_MUL, rows, rows), 1e-6);

    Graph *e = graph_new(a, "erf");
    int x = P(e, "x", S(2, 3, 5), -2, 2);
    check_vjp(e, U(e, OP_ERF, x, NULL), 1e-6);

    Graph *h = graph_new(a, "gelu"); /* the front end's composite: x * 0.5 * (1 + erf(x / sqrt(2))) */
    int z = P(h, "z", S(2, 3, 5), -3, 3);
    int er = U(h, OP_ERF, B(h, OP_MUL, z, graph_add_const(h, 0.70710678118654752440, DT_F64, S(0), L)), NULL);
    int half = B(h, OP_MUL, z, graph_add_const(h, 0.5, DT_F64, S(0), L));
    check_vjp(h, B(h, OP_MUL, half, B(h, OP_ADD, graph_add_const(h, 1, DT_F64, S(0), L), er)), 1e-6);
    arena_free(a);
}

/* ---- dropout's random numbers ------------------------------------------------- */

static void test_dropout_randomness(void **state) {
    (void)state;
    enum { N = 1 << 17 };
    Arena *a = arena_new();
    Graph *g = graph_new(a, "random");
    int step = graph_add_input(g, "step", DT_F64, S(0), L);
    graph_add_output(g, U(g, OP_RANDOM_UNIFORM, step, &(NodeAttrs){.seed = 77, .dtype = DT_F32, .shape = S(2, 256, 512)}));
    Tensor *u3 = ts_run_at_step(g, 3), *again = ts_run_at_step(g, 3), *u4 = ts_run_at_step(g, 4), *frac = ts_run_at_step(g, 3.9);
    assert_memory_equal(u3->data, again->data, tensor_nbytes(u3)); /* same (seed, step): same numbers */
    assert_memory_equal(u3->data, frac->data, tensor_nbytes(u3));  /* the counter is trunc(step) */
    const float *p3 = u3->data, *p4 = u4->data;
    int64_t differ = 0, keep = 0, keep4 = 0, both = 0;
    double sum = 0;
    for (int64_t i = 0; i < N; i++) {
        assert_true(p3[i] >= 0 && p3[i] < 1);
        differ += p3[i] != p4[i];
        keep += p3[i] >= 0.3f;
        keep4 += p4[i] >= 0.3f;
        both += p3[i] >= 0.3f && p4[i] >= 0.3f;
        sum += p3[i];
    }
    assert_true(differ > N * 0.99); /* another step: another mask */
    assert_true(fabs((double)keep / N - 0.7) < 0.005 && fabs((double)keep4 / N - 0.7) < 0.005); /* ~ 1 - p kept */
    assert_true(fabs((double)both / N - 0.49) < 0.005); /* masks of two steps are independent */
    assert_true(fabs(sum / N - 0.5) < 0.005);
    /* element i of the op is word i % 4 of Philox(seed, (step, i / 4)) */
    uint32_t r[4];
    etch_philox4x32(77, 3, 1000 / 4, r);
    assert_true(p3[1000] == (float)etch_u01(r[1000 % 4]));
    /* another seed: another stream */
    Graph *g2 = graph_new(a, "random2");
    int step2 = graph_add_input(g2, "step", DT_F64, S(0), L);
    graph_add_output(g2, U(g2, OP_RANDOM_UNIFORM, step2, &(NodeAttrs){.seed = 78, .dtype = DT_F32, .shape = S(2, 256, 512)}));
    Tensor *other = ts_run_at_step(g2, 3);
    assert_true(memcmp(other->data, u3->data, tensor_nbytes(u3)) != 0);
    assert_true(random_step_counter(-1) == 0 && random_step_counter(NAN) == 0 && random_step_counter(1e30) == UINT64_MAX);
    tensor_free(u3);
    tensor_free(again);
    tensor_free(u4);
    tensor_free(frac);
    tensor_free(other);
    arena_free(a);
}

/* ---- diagnostics ------------------------------------------------------------- */

static void test_shape_errors(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "errors");
    int x = graph_add_input(g, "x", DT_F32, S(2, 4, 8), L), y = graph_add_input(g, "y", DT_F32, S(2, 5, 6), L);
    int i = graph_add_input(g, "i", DT_I32, S(2, 4, 8), L), s = graph_add_input(g, "s", DT_F32, S(0), L);
    int f = graph_add_input(g, "f", DT_F32, S(1, 3), L);
    ts_expect_error(g, OP_SLICE, &x, 1, &(NodeAttrs){.axis = 1, .start = 6, .length = 3},
                 "cannot slice 3 elements starting at 6 along axis 1 of f32[4,8] (that dim has 8)");
    ts_expect_error(g, OP_SLICE, &x, 1, &(NodeAttrs){.axis = 2, .length = 1}, "'slice' axis 2 is out of range for f32[4,8] (rank 2)");
    ts_expect_error(g, OP_SLICE, &s, 1, &(NodeAttrs){.length = 1}, "'slice' needs a tensor with at least one dim, got f32[]");
    ts_expect_error(g, OP_CONCAT, (int[]){x, y}, 2, &(NodeAttrs){.axis = 0},
                 "cannot concat f32[4,8] and f32[5,6] along axis 0: dim 1 is 8 in one and 6 in the other");
    ts_expect_error(g, OP_CONCAT, (int[]){x, i}, 2, &(NodeAttrs){.axis = 0}, "'concat' operands have different dtypes");
    ts_expect_error(g, OP_CONCAT, (int[]){x, f}, 2, &(NodeAttrs){.axis = 0}, "cannot concat f32[4,8] and f32[3]: ranks 2 and 1 differ");
    ts_expect_error(g, OP_PAD, &x, 1, &(NodeAttrs){.pad_before = {0, 0, 1}}, "'pad' pads dim 2 of f32[4,8], which has only 2 dims");
    ts_expect_error(g, OP_PAD, &x, 1, &(NodeAttrs){.pad_after = {-1}}, "'pad' amounts must be between 0 and 2^40");
    ts_expect_error(g, OP_PAD, &i, 1, &(NodeAttrs){.pad_after = {1}, .value = 0.5}, "'pad' value 0.5 is not a i32");
    ts_expect_error(g, OP_GATHER_ROWS, (int[]){x, x}, 2, NULL, "'gather_rows' ids must be i32 or i64, got f32[4,8]");
    ts_expect_error(g, OP_GATHER_ROWS, (int[]){s, i}, 2, NULL, "'gather_rows' needs a table with at least one dim, got f32[]");
    ts_expect_error(g, OP_SCATTER_ADD_ROWS, (int[]){x, i}, 2, &(NodeAttrs){.shape = S(2, 10, 8)},
                 "'scatter_add_rows' of f32[4,8] by ids i32[4,8] does not fit rows of f32[10,8]");
    ts_expect_error(g, OP_RANDOM_UNIFORM, &x, 1, &(NodeAttrs){.dtype = DT_F32, .shape = S(1, 3)},
                 "'random_uniform' takes a scalar step counter, got f32[4,8]");
    ts_expect_error(g, OP_RANDOM_UNIFORM, &s, 1, &(NodeAttrs){.dtype = DT_I32, .shape = S(1, 3)},
                 "'random_uniform' makes f32 or f64 values");
    ts_expect_error(g, OP_RANDOM_UNIFORM, &s, 1, &(NodeAttrs){.dtype = DT_F32, .shape = S(1, 0)},
                 "'random_uniform' dimension 0 is 0; dimensions must be positive");
    ts_expect_error(g, OP_ERF, &i, 1, NULL, "'erf' needs a floating-point tensor, got i32[4,8]");
    arena_free(a);
}

/* A loss graph that already reads "optimizer.step" (traced dropout) keeps that param as the counter. */
static void test_train_step_reuses_step(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "Net.train_step");
    int w = graph_add_param(g, "w", DT_F32, S(1, 16), (ParamInit){INIT_UNIFORM, -1, 1}, false, L);
    int step = graph_add_param(g, "optimizer.step", DT_F64, S(0), (ParamInit){INIT_ZEROS, 0, 0}, true, L);
    int u = U(g, OP_RANDOM_UNIFORM, step, &(NodeAttrs){.seed = 5, .dtype = DT_F32, .shape = S(1, 16)});
    int keep = B(g, OP_GE, u, graph_add_const(g, 0.5, DT_F32, S(0), L));
    int z = graph_add_const(g, 0, DT_F32, S(0), L);
    int y = add(g, OP_WHERE, 3, (int[]){keep, w, z}, NULL);
    graph_add_output(g, U(g, OP_REDUCE_SUM, B(g, OP_MUL, y, y), &(NodeAttrs){.n_axes = 1, .axes = {0}}));
    OptimSpec spec = optim_defaults(OPTIM_ADAM);
    Diag d;
    diag_init(&d, stderr);
    assert_true(train_build_step(g, &spec, &d));
    assert_true(ir_verify(g, &d));
    int named = 0, updated = 0;
    for (int i = 0; i < g->n_params; i++) named += !strcmp(g->nodes[g->params[i]].attr.name, "optimizer.step");
    for (int i = 0; i < g->n_updates; i++) updated += g->upd_dst[i] == step;
    assert_int_equal(named, 1);
    assert_int_equal(updated, 1);
    /* two eager steps: the counter advances and the mask with it */
    Tensor **params = params_init(g, 1), *out[1];
    assert_true(eager_run(g, NULL, params, out, NULL, &d));
    tensor_free(out[0]);
    assert_true(eager_run(g, NULL, params, out, NULL, &d));
    tensor_free(out[0]);
    int k = 0;
    while (g->params[k] != step) k++;
    assert_true(tensor_get(params[k], 0) == 2);
    params_free(g, params);
    diag_dispose(&d);

    /* a param of that name that is not a counter is an error, not silently reused */
    Graph *b = graph_new(a, "bad");
    int v = graph_add_param(b, "optimizer.step", DT_F32, S(1, 3), (ParamInit){INIT_ZEROS, 0, 0}, false,
                            (SrcLoc){"m.etch", 3, 9});
    graph_add_output(b, U(b, OP_REDUCE_SUM, B(b, OP_MUL, v, v), &(NodeAttrs){.n_axes = 1, .axes = {0}}));
    diag_init(&d, NULL);
    assert_false(train_build_step(b, &spec, &d));
    assert_non_null(strstr(d.text, "m.etch:3:9: error: parameter 'optimizer.step' must be the optimizer's step counter"));
    diag_dispose(&d);
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codegen_slice_pad_concat), cmocka_unit_test(test_codegen_gather_scatter),
        cmocka_unit_test(test_codegen_erf_random),       cmocka_unit_test(test_vjp_slice_pad_concat),
        cmocka_unit_test(test_vjp_gather_erf_gelu),      cmocka_unit_test(test_dropout_randomness),
        cmocka_unit_test(test_shape_errors),             cmocka_unit_test(test_train_step_reuses_step),
        cmocka_unit_test(ts_cuda_coverage_test),
    };
    ts_check_cuda_too();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
