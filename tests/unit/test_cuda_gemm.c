/* test_cuda_gemm.c: the CUDA backend's GEMM (codegen/cuda/ops/matmul.c: 64 x
 * 64 block tiles, K in steps of 16) and its fused epilogues (group.c), with
 * the kernels emulated on the CPU (unit/cuda_check.c, through
 * ts_check_graph, which also runs the C backend and compares both with the
 * eager executor). Products off the tiles in every dimension and exactly
 * on them (no bounds tests emitted), a 1 x K row, K = 1, transposed
 * operands in batches broadcast either way, f32 and f64; epilogues with a
 * bias and activation (an MLP: one kernel per layer), a gradient's relu
 * mask, an SGD update with a scalar input learning rate. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "codegen/cuda/emit_cuda.h"
#include "passes/pass.h"
#include "unit/test_support.h"

static SrcLoc L = {"test.etch", 1, 1};

/* Sums of up to hundreds of products cancel: errors relative to the output's scale. */
static void check_sums(Graph *g) {
    ts_check_graph(g, &(TsTol){.lo = -1, .hi = 1, .rel = 1e-5, .abs = 1e-7, .scaled = true, .eq_ok = true, .nan_ok = true});
}

static int matmul(Graph *g, int a, int b, bool trans_a, bool trans_b) {
    return add(g, OP_MATMUL, 2, (int[]){a, b}, &(NodeAttrs){.trans_a = trans_a, .trans_b = trans_b});
}

static void add_products(Graph *g, DType t) {
    int a = graph_add_input(g, "a", t, S(2, 70, 130), L), b = graph_add_input(g, "b", t, S(2, 130, 33), L);
    graph_add_output(g, matmul(g, a, b, false, false)); /* off the tiles in M, N and K; 9 K steps */
    int c = graph_add_input(g, "c", t, S(2, 128, 32), L), d = graph_add_input(g, "d", t, S(2, 64, 32), L);
    graph_add_output(g, matmul(g, c, d, false, true)); /* exactly on them: [128, 64], K 32 */
    int ct = graph_add_input(g, "ct", t, S(2, 32, 128), L);
    graph_add_output(g, matmul(g, ct, d, true, true));
    int row = graph_add_input(g, "row", t, S(2, 1, 200), L), e = graph_add_input(g, "e", t, S(2, 200, 65), L);
    graph_add_output(g, matmul(g, row, e, false, false)); /* 1 x K */
    int col = graph_add_input(g, "col", t, S(2, 5, 1), L), f = graph_add_input(g, "f", t, S(2, 1, 67), L);
    graph_add_output(g, matmul(g, col, f, false, false)); /* K = 1 */
    int ta = graph_add_input(g, "ta", t, S(3, 3, 20, 70), L), tb = graph_add_input(g, "tb", t, S(2, 20, 65), L);
    graph_add_output(g, matmul(g, ta, tb, true, false)); /* a batch of transposed A, B broadcast */
    int sa = graph_add_input(g, "sa", t, S(2, 70, 20), L), sb = graph_add_input(g, "sb", t, S(4, 2, 3, 65, 20), L);
    graph_add_output(g, matmul(g, sa, sb, false, true)); /* A broadcast over [2, 3] batches of transposed B */
}

static void test_gemm_shapes(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "gemm");
    add_products(g, DT_F32);
    check_sums(g);
    Graph *g64 = graph_new(a, "dgemm");
    add_products(g64, DT_F64);
    check_sums(g64);
    arena_free(a);
}

/* The number of kernels the cuda backend launches for g (after the pass
 * pipeline for its target). */
static int cuda_kernels(Graph *g) {
    Diag d;
    diag_init(&d, stderr);
    PassOptions po = {.opt_level = 2, .target = backend_cuda_emulated.target, .verify = true};
    Graph *opt = passes_run(graph_clone(g->arena, g, NULL), &po, &d);
    assert_non_null(opt);
    char *src = backend_cuda_emulated.model_source(&(CGenEntry){opt, "forward"}, 1, &(CGenOptions){.prefix = "m"},
                                                   NULL, &d);
    assert_non_null(src);
    int n = 0;
    for (const char *p = src; (p = strstr(p, "ETCH_LAUNCH(stream,")); p++) n++;
    free(src);
    diag_dispose(&d);
    return n;
}

/* An MLP forward: each layer x @ Wᵀ + b (relu) is one kernel. */
static void test_mlp_layer_per_kernel(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "mlp");
    ParamInit uniform = {INIT_UNIFORM, -0.3, 0.3};
    int x = graph_add_input(g, "x", DT_F32, S(2, 70, 100), L);
    int w1 = graph_add_param(g, "fc1.weight", DT_F32, S(2, 80, 100), uniform, false, L);
    int b1 = graph_add_param(g, "fc1.bias", DT_F32, S(1, 80), uniform, false, L);
    int w2 = graph_add_param(g, "fc2.weight", DT_F32, S(2, 10, 80), uniform, false, L);
    int b2 = graph_add_param(g, "fc2.bias", DT_F32, S(1, 10), uniform, false, L);
    int h = U(g, OP_RELU, B(g, OP_ADD, matmul(g, x, w1, false, true), b1), NULL);
    graph_add_output(g, B(g, OP_ADD, matmul(g, h, w2, false, true), b2));
    assert_int_equal(cuda_kernels(g), 2);
    check_sums(g);
    arena_free(a);
}

/* Backward-pass epilogues: a relu mask read at every element (full size),
 * and an SGD step w - lr * (xᵀ @ gy) with lr a scalar input. */
static void test_backward_epilogues(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "backward");
    int gy = graph_add_input(g, "gy", DT_F32, S(2, 70, 10), L), h = graph_add_input(g, "h", DT_F32, S(2, 70, 80), L);
    int x = graph_add_input(g, "x", DT_F32, S(2, 70, 100), L), lr = graph_add_input(g, "lr", DT_F32, S(0), L);
    int w2 = graph_add_param(g, "w2", DT_F32, S(2, 10, 80), (ParamInit){INIT_UNIFORM, -0.3, 0.3}, false, L);
    int w1 = graph_add_param(g, "w1", DT_F32, S(2, 100, 80), (ParamInit){INIT_UNIFORM, -0.3, 0.3}, false, L);
    int zero = graph_add_const(g, 0, DT_F32, S(0), L);
    int dh = add(g, OP_WHERE, 3, (int[]){B(g, OP_GT, h, zero), matmul(g, gy, w2, false, false), zero}, NULL);
    graph_add_output(g, dh);
    graph_add_output(g, B(g, OP_SUB, w1, B(g, OP_MUL, lr, matmul(g, x, dh, true, false))));
    /* the two products with their epilogues, and the fill of the scalar zero
     * (which the epilogues read as a literal, but the driver still stores) */
    assert_int_equal(cuda_kernels(g), 3);
    check_sums(g);
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_shapes),
        cmocka_unit_test(test_mlp_layer_per_kernel),
        cmocka_unit_test(test_backward_epilogues),
        cmocka_unit_test(ts_cuda_coverage_test),
    };
    ts_check_cuda_too();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
