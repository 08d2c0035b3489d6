/* test_cuda_rows.c: reductions as cooperative kernels in the CUDA backend
 * (codegen/cuda/rowgroup.c, issue 12): row groups form for the CUDA target
 * (layer norm, a scaled and masked softmax, log_softmax with its NLL become
 * one group each), the kernels take the row shapes meant for them (a block
 * per row of 5000, a warp per row of 100 and per output of a 700-long
 * reduction over the leading axis, 4 threads per row of 3), and every graph matches the eager
 * executor with its kernels emulated on the CPU (ts_check_graph, under the
 * tolerance of test_codegen_ops, scaled by each output's largest value). With nvcc installed, the model.cu of the
 * row groups also compiles for the GPU without a warning. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/build.h"
#include "codegen/cuda/emit_cuda.h"
#include "passes/pass.h"
#include "unit/test_support.h"

static SrcLoc L = {"test.etch", 1, 1};

#define op1(g, op, a, ...) add(g, op, 1, (int[]){a}, __VA_ARGS__)
#define op2(g, op, a, b) add(g, op, 2, (int[]){a, b}, NULL)

/* test_codegen_ops's tolerance, relative to each output's largest value:
 * layer norm's outputs near 0 are differences of float32 values of 1 */
static void check_graph(Graph *g, double lo, double hi) {
    ts_check_graph(g, &(TsTol){.lo = lo, .hi = hi, .rel = 1e-5, .abs = 1e-7, .scaled = true, .eq_ok = true,
                               .nan_ok = true});
}

static int scalar(Graph *g, double v) { return graph_add_const(g, v, DT_F32, S(0), L); }

/* The graph: layer norm over rows of 5000; over rows of 3, log_softmax of
 * scaled logits with its NLL, a softmax with an additive mask, a max of
 * log(s) (NaN where s < 0: must propagate); lone reductions and softmaxes
 * over both, a log_softmax over 20 rows of 100 (3 blocks of 8 rows); a sum
 * and a mean of exp over the 700 rows of [700, 4]. ids[] gets the nodes the
 * test looks at. */
enum { LN_MEAN, LN_VAR, LN_OUT, NLL_LSM, NLL_SUM, MASKED_SOFTMAX, NAN_MAX, N_IDS };
static Graph *rows_graph(Arena *a, int *ids) {
    Graph *g = graph_new(a, "cuda_rows");
    int x = graph_add_input(g, "x", DT_F32, S(2, 6, 5000), L);
    int gamma = graph_add_input(g, "gamma", DT_F32, S(1, 5000), L), beta = graph_add_input(g, "beta", DT_F32, S(1, 5000), L);
    int s = graph_add_input(g, "s", DT_F32, S(2, 37, 3), L), mask = graph_add_input(g, "mask", DT_F32, S(2, 37, 3), L);
    int t = graph_add_input(g, "t", DT_F32, S(2, 700, 4), L), u = graph_add_input(g, "u", DT_F32, S(2, 20, 100), L);
    NodeAttrs row = {.n_axes = 1, .axes = {1}, .keepdims = true};
    ids[LN_MEAN] = op1(g, OP_REDUCE_MEAN, x, &row);
    int d = op2(g, OP_SUB, x, ids[LN_MEAN]);
    ids[LN_VAR] = op1(g, OP_REDUCE_MEAN, op2(g, OP_MUL, d, d), &row);
    int inv = op1(g, OP_RSQRT, op2(g, OP_ADD, ids[LN_VAR], scalar(g, 1e-5)), NULL);
    ids[LN_OUT] = op2(g, OP_ADD, op2(g, OP_MUL, op2(g, OP_MUL, d, inv), gamma), beta);
    graph_add_output(g, ids[LN_OUT]);
    ids[NLL_LSM] = op1(g, OP_LOG_SOFTMAX, op2(g, OP_MUL, s, scalar(g, 0.5)), &(NodeAttrs){.axis = 1});
    ids[NLL_SUM] = op1(g, OP_REDUCE_SUM, op2(g, OP_MUL, ids[NLL_LSM], mask), &(NodeAttrs){.n_axes = 1, .axes = {1}});
    graph_add_output(g, op1(g, OP_NEG, ids[NLL_SUM], NULL));
    ids[MASKED_SOFTMAX] = op1(g, OP_SOFTMAX, op2(g, OP_ADD, op2(g, OP_MUL, s, scalar(g, 2)), mask), &(NodeAttrs){.axis = 1});
    graph_add_output(g, ids[MASKED_SOFTMAX]);
    ids[NAN_MAX] = op1(g, OP_REDUCE_MAX, op1(g, OP_LOG, s, NULL), &(NodeAttrs){.n_axes = 1, .axes = {1}});
    graph_add_output(g, ids[NAN_MAX]);
    for (int k = 0; k < 3; k++) { /* lone: a block per row of x, 4 threads per row of s */
        OpKind op = (OpKind[]){OP_REDUCE_SUM, OP_REDUCE_MAX, OP_REDUCE_MEAN}[k];
        graph_add_output(g, op1(g, op, x, &(NodeAttrs){.n_axes = 1, .axes = {1}}));
        graph_add_output(g, op1(g, op, s, &(NodeAttrs){.n_axes = 1, .axes = {1}, .keepdims = true}));
    }
    graph_add_output(g, op1(g, OP_SOFTMAX, x, &(NodeAttrs){.axis = 1}));
    graph_add_output(g, op1(g, OP_LOG_SOFTMAX, s, &(NodeAttrs){.axis = 1}));
    graph_add_output(g, op1(g, OP_LOG_SOFTMAX, u, &(NodeAttrs){.axis = 1})); /* a warp per row; the last block's half idle */
    graph_add_output(g, op1(g, OP_REDUCE_SUM, t, &(NodeAttrs){.n_axes = 1, .axes = {0}})); /* a warp per column */
    graph_add_output(g, op1(g, OP_REDUCE_MEAN, op1(g, OP_EXP, t, NULL), &(NodeAttrs){.n_axes = 1, .axes = {0}}));
    return g;
}

/* The fusion pass for the CUDA target groups each row computation. */
static void test_row_groups_form(void **state) {
    (void)state;
    Arena *a = arena_new();
    int ids[N_IDS];
    Graph *g = rows_graph(a, ids);
    Graph *f = pass_fuse(graph_clone(a, g, NULL), &(PassCtx){.target = backend_cuda.target});
    const Node *n = f->nodes;
    for (int k = 0; k < N_IDS; k++) assert_int_equal(n[ids[k]].attr.group.kind, FUSE_ROWS);
    assert_true(fuse_same_group(&n[ids[LN_MEAN]], &n[ids[LN_VAR]]));
    assert_true(fuse_same_group(&n[ids[LN_MEAN]], &n[ids[LN_OUT]]));
    assert_true(fuse_same_group(&n[ids[NLL_LSM]], &n[ids[NLL_SUM]]));
    assert_int_equal(n[ids[LN_MEAN]].attr.group.at, ids[LN_OUT]); /* one kernel, run at its last member */
    arena_free(a);
}

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

/* model.cu of the graph: the row shapes chosen, and (with nvcc) a GPU build. */
static void test_row_kernels(void **state) {
    (void)state;
    Arena *a = arena_new();
    int ids[N_IDS];
    Graph *g = rows_graph(a, ids);
    Diag d;
    diag_init(&d, stderr);
    PassOptions po = {.opt_level = 2, .target = backend_cuda.target, .verify = true};
    Graph *opt = passes_run(graph_clone(a, g, NULL), &po, &d);
    assert_non_null(opt);
    char *dir = build_tempdir(&d), path[4200];
    assert_non_null(dir);
    assert_true(backend_cuda.write(&(CGenEntry){opt, "forward"}, 1, &(CGenOptions){.prefix = "m"}, dir, NULL, &d));
    snprintf(path, sizeof path, "%s/model.cu", dir);
    char *cu = read_all(path);
    assert_non_null(strstr(cu, "rows of 5000: 256 threads per row, 1 rows per block"));
    assert_non_null(strstr(cu, "rows of 3: 4 threads per row, 64 rows per block"));
    assert_non_null(strstr(cu, "rows of 700: 32 threads per row, 4 rows per block"));
    assert_non_null(strstr(cu, "rows of 100: 32 threads per row, 8 rows per block"));
    assert_non_null(strstr(cu, "ETCH_SHFL_DOWN(acc, 16)"));
    free(cu);
    const char *cuda_home = getenv("CUDA_HOME");
    char nvcc[2100], cmd[8800];
    snprintf(nvcc, sizeof nvcc, "%s/bin/nvcc", cuda_home && *cuda_home ? cuda_home : "/usr/local/cuda");
    if (access(nvcc, X_OK) == 0) {
        snprintf(cmd, sizeof cmd, "%s -std=c++17 -Werror all-warnings -gencode=arch=compute_80,code=sm_80 -c %s -o %s/m.o",
                 nvcc, path, dir);
        assert_int_equal(system(cmd), 0);
    } else {
        fprintf(stderr, "test_row_kernels: no nvcc at %s, the GPU build not checked\n", nvcc);
    }
    build_rmtree(dir);
    free(dir);
    diag_dispose(&d);
    arena_free(a);
}

/* Eager vs the C backend and the CUDA backend (emulated). */
static void test_rows_match_eager(void **state) {
    (void)state;
    Arena *a = arena_new();
    int ids[N_IDS];
    check_graph(rows_graph(a, ids), -1.5, 1.5);
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_row_groups_form),
        cmocka_unit_test(test_row_kernels),
        cmocka_unit_test(test_rows_match_eager),
        cmocka_unit_test(ts_cuda_coverage_test),
    };
    ts_check_cuda_too();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
