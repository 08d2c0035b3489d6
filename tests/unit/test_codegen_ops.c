/* test_codegen_ops.c: every primitive op, end to end: build a small graph with
 * the graph API, run the eager executor (the reference), emit C for the same
 * graph at -O0 (as built) and at -O2 (the pass pipeline, fusion and the memory
 * plan), compile each with the system compiler into a shared library, load it
 * and compare outputs: relative error <= 1e-5 (plus 1e-7 absolute near 0).
 * The same graphs also run JIT-compiled by the LLVM backend when it is built
 * (unit/llvm_check.c); the last test prints the ops it skipped (unsupported
 * by its table) and asserts they are exactly those.
 * Also checks shape-rule diagnostics for the ops. */
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
#include "codegen/cuda/emit_cuda.h"
#include "ir/eager.h"
#include "ir/params.h"
#include "passes/pass.h"
#include "runtime/etch_rt.h"
#include "graph_fuzz.h"
#include "unit/test_support.h"

static SrcLoc L = {"test.etch", 1, 1};

#define op1(g, op, a, ...) add(g, op, 1, (int[]){a}, __VA_ARGS__)
#define op2(g, op, a, b) add(g, op, 2, (int[]){a, b}, NULL)

/* Runs g both ways and compares. lo/hi bound float inputs (e.g. positive for log). */
static void check_graph(Graph *g, double lo, double hi) {
    ts_check_graph(g, &(TsTol){.lo = lo, .hi = hi, .rel = 1e-5, .abs = 1e-7, .eq_ok = true, .nan_ok = true});
}

/* Binary op with broadcasting [3,1,5] x [4,5] -> [3,4,5], plus a same-shape case. */
static void check_binary(OpKind op, DType t, double lo, double hi) {
    Arena *a = arena_new();
    Graph *g = graph_new(a, op_table[op].name);
    int x = graph_add_input(g, "x", t, S(3, 3, 1, 5), L), y = graph_add_input(g, "y", t, S(2, 4, 5), L);
    int z = graph_add_input(g, "z", t, S(3, 3, 1, 5), L);
    graph_add_output(g, op2(g, op, x, y));
    graph_add_output(g, op2(g, op, x, z));
    check_graph(g, lo, hi);
    arena_free(a);
}

static void test_binary_arith(void **state) {
    (void)state;
    OpKind ops[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MAX, OP_MIN};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        check_binary(ops[i], DT_F32, -2, 2);
        check_binary(ops[i], DT_F64, -2, 2);
    }
    check_binary(OP_POW, DT_F32, 0.5, 2);
    check_binary(OP_ADD, DT_I32, 0, 1);
    check_binary(OP_MUL, DT_I64, 0, 1);
}

static void test_compare_where(void **state) {
    (void)state;
    OpKind ops[] = {OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) check_binary(ops[i], DT_I32, 0, 1);
    Arena *a = arena_new();
    Graph *g = graph_new(a, "where");
    int x = graph_add_input(g, "x", DT_F32, S(2, 4, 6), L), y = graph_add_input(g, "y", DT_F32, S(1, 6), L);
    int c = op2(g, OP_GT, x, y);
    Diag d;
    diag_init(&d, stderr);
    int w = graph_add_op(g, OP_WHERE, (int[]){c, x, y}, 3, NULL, L, &d);
    assert_true(w >= 0);
    graph_add_output(g, w);
    graph_add_output(g, c);
    check_graph(g, -1, 1);
    diag_dispose(&d);
    arena_free(a);
}

static void test_unary(void **state) {
    (void)state;
    struct {
        OpKind op;
        double lo, hi;
    } cases[] = {{OP_NEG, -3, 3},  {OP_EXP, -3, 3},  {OP_LOG, 0.1, 5},  {OP_SQRT, 0.1, 5},    {OP_RSQRT, 0.1, 5},
                 {OP_ABS, -3, 3},  {OP_TANH, -3, 3}, {OP_SIGMOID, -6, 6}, {OP_RELU, -3, 3}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int t = DT_F32; t <= DT_F64; t++) {
            Arena *a = arena_new();
            Graph *g = graph_new(a, op_table[cases[i].op].name);
            int x = graph_add_input(g, "x", (DType)t, S(3, 2, 3, 7), L);
            graph_add_output(g, op1(g, cases[i].op, x, NULL));
            check_graph(g, cases[i].lo, cases[i].hi);
            arena_free(a);
        }
}

static void test_cast_const_broadcast(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "cast");
    int x = graph_add_input(g, "x", DT_F32, S(2, 3, 4), L);
    graph_add_output(g, op1(g, OP_CAST, x, &(NodeAttrs){.dtype = DT_F64}));
    graph_add_output(g, op1(g, OP_CAST, x, &(NodeAttrs){.dtype = DT_I32}));
    /* to bool: nonzero is true, 0.5 included (a plain C conversion to uint8_t truncates it to 0) */
    int xb = op1(g, OP_CAST, x, &(NodeAttrs){.dtype = DT_BOOL});
    graph_add_output(g, xb);
    graph_add_output(g, op1(g, OP_CAST, op1(g, OP_CAST, op2(g, OP_MUL, x, x), &(NodeAttrs){.dtype = DT_BOOL}),
                            &(NodeAttrs){.dtype = DT_F32})); /* fused at -O2 */
    int c = graph_add_const(g, 0.25, DT_F32, S(0), L);
    graph_add_output(g, op2(g, OP_MUL, x, c));
    /* a finite double past FLT_MAX is an f32 infinity in emitted C too (it printed `inff` before) */
    graph_add_output(g, op2(g, OP_MUL, op2(g, OP_MUL, x, x), graph_add_const(g, 1e300, DT_F32, S(0), L)));
    graph_add_output(g, op2(g, OP_ADD, x, graph_add_const(g, -1e39, DT_F32, S(0), L)));
    int c2 = graph_add_const(g, -1.5, DT_F32, S(2, 3, 1), L);
    graph_add_output(g, op2(g, OP_ADD, x, c2));
    int v = graph_add_input(g, "v", DT_F32, S(2, 1, 4), L);
    graph_add_output(g, op1(g, OP_BROADCAST, v, &(NodeAttrs){.shape = S(3, 5, 3, 4)}));
    /* floats past the integer range saturate and NaN is 0, as in eager (a bare
     * C conversion is undefined there: x86 gives INT_MIN for both signs) */
    int big = op2(g, OP_MUL, x, graph_add_const(g, 1e10, DT_F32, S(0), L));
    graph_add_output(g, op1(g, OP_CAST, big, &(NodeAttrs){.dtype = DT_I32}));
    int huge = op2(g, OP_MUL, op1(g, OP_CAST, big, &(NodeAttrs){.dtype = DT_F64}), graph_add_const(g, 1e10, DT_F64, S(0), L));
    graph_add_output(g, op1(g, OP_CAST, huge, &(NodeAttrs){.dtype = DT_I64}));
    int inf = op2(g, OP_MUL, x, graph_add_const(g, 1e300, DT_F32, S(0), L));
    graph_add_output(g, op1(g, OP_CAST, op2(g, OP_SUB, inf, inf), &(NodeAttrs){.dtype = DT_I32}));
    check_graph(g, -5, 5);
    arena_free(a);
}

static void test_reduce(void **state) {
    (void)state;
    OpKind ops[] = {OP_REDUCE_SUM, OP_REDUCE_MAX, OP_REDUCE_MEAN};
    for (size_t i = 0; i < 3; i++) {
        Arena *a = arena_new();
        Graph *g = graph_new(a, op_table[ops[i]].name);
        int x = graph_add_input(g, "x", DT_F32, S(4, 3, 4, 5, 6), L);
        graph_add_output(g, op1(g, ops[i], x, &(NodeAttrs){.n_axes = 1, .axes = {1}}));
        graph_add_output(g, op1(g, ops[i], x, &(NodeAttrs){.n_axes = 2, .axes = {0, 3}, .keepdims = true}));
        graph_add_output(g, op1(g, ops[i], x, &(NodeAttrs){.n_axes = 4, .axes = {0, 1, 2, 3}}));
        graph_add_output(g, op1(g, ops[i], x, &(NodeAttrs){.n_axes = 1, .axes = {3}, .keepdims = true}));
        check_graph(g, -3, 3);
        arena_free(a);
    }
}

static void test_matmul(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "matmul");
    int x = graph_add_input(g, "x", DT_F32, S(2, 7, 13), L), w = graph_add_input(g, "w", DT_F32, S(2, 13, 5), L);
    graph_add_output(g, op2(g, OP_MATMUL, x, w));
    int bx = graph_add_input(g, "bx", DT_F32, S(4, 2, 3, 4, 6), L), by = graph_add_input(g, "by", DT_F32, S(3, 3, 6, 5), L);
    graph_add_output(g, op2(g, OP_MATMUL, bx, by)); /* batch broadcast [2,3] x [3] */
    int v = graph_add_input(g, "v", DT_F32, S(1, 13), L);
    graph_add_output(g, op2(g, OP_MATMUL, v, w)); /* vector @ matrix */
    graph_add_output(g, op2(g, OP_MATMUL, x, v)); /* matrix @ vector */
    check_graph(g, -1, 1);
    Graph *g2 = graph_new(a, "matmul64");
    int p = graph_add_input(g2, "p", DT_F64, S(2, 9, 11), L), q = graph_add_input(g2, "q", DT_F64, S(2, 11, 3), L);
    graph_add_output(g2, op2(g2, OP_MATMUL, p, q));
    check_graph(g2, -1, 1);
    arena_free(a);
}

/* A matmul whose users are all elementwise becomes its group's GEMM epilogue
 * at -O2 (passes/fuse.c, codegen/c/epilogue.c): checks that the pass fuses
 * each product here, then compares the emitted code with the eager executor.
 * The shapes are off the register tiles and cover every kernel form: direct
 * (B read in place), blocked with one and with several K slices (the
 * epilogue must wait for the last), dot products (transposed B, few rows). */
typedef struct EpilogueCase {
    int m, k, n;
    bool trans_a, trans_b;
    OpKind act;  /* applied after the bias add */
} EpilogueCase;

/* Sums of hundreds of products cancel: errors are relative to the output's scale. */
static void check_graph_sums(Graph *g) {
    ts_check_graph(g, &(TsTol){.lo = -1, .hi = 1, .rel = 1e-5, .abs = 1e-7, .scaled = true, .eq_ok = true, .nan_ok = true});
}

/* A clone of g through the fuse pass alone, for a backend's target. */
static Graph *fuse_for(Graph *g, const Backend *b) {
    return pass_fuse(graph_clone(g->arena, g, NULL), &(PassCtx){.target = b->target});
}
static Graph *fuse(Graph *g) { return fuse_for(g, &backend_c); }

static void check_epilogue(const EpilogueCase *c, DType t) {
    Arena *a = arena_new();
    Graph *g = graph_new(a, "epilogue");
    int x = graph_add_input(g, "x", t, c->trans_a ? S(2, c->k, c->m) : S(2, c->m, c->k), L);
    int w = graph_add_param(g, "w", t, c->trans_b ? S(2, c->n, c->k) : S(2, c->k, c->n), (ParamInit){INIT_UNIFORM, -0.3, 0.3},
                            false, L);
    int b = graph_add_param(g, "b", t, S(1, c->n), (ParamInit){INIT_NORMAL, 0, 1}, false, L);
    int mm = add(g, OP_MATMUL, 2, (int[]){x, w}, &(NodeAttrs){.trans_a = c->trans_a, .trans_b = c->trans_b});
    int y = op1(g, c->act, op2(g, OP_ADD, mm, b), NULL);
    graph_add_output(g, y);
    Graph *fused = fuse(g);
    assert_int_equal(fused->nodes[mm].attr.group.kind, FUSE_EPILOGUE);
    assert_true(fuse_same_group(&fused->nodes[mm], &fused->nodes[y]));
    assert_int_equal(fused->nodes[y].attr.group.at, mm); /* it runs at the product: x, w and b are ready */
    fused = fuse_for(g, &backend_cuda_emulated); /* the cuda backend's GEMM applies it too (ts_check_graph) */
    assert_int_equal(fused->nodes[mm].attr.group.kind, FUSE_EPILOGUE);
    assert_true(fuse_same_group(&fused->nodes[mm], &fused->nodes[y]));
    check_graph_sums(g);
    arena_free(a);
}

static void test_matmul_epilogue(void **state) {
    (void)state;
    static const EpilogueCase cases[] = {
        {37, 29, 53, false, false, OP_RELU},    /* direct, rows and columns off the tiles */
        {37, 29, 53, false, true, OP_TANH},     /* transposed B: blocked, one K slice */
        {70, 600, 300, true, false, OP_SIGMOID},/* transposed A, B beyond L2: blocked, three K slices */
        {3, 100, 50, false, true, OP_ERF},      /* dot products, a partial column block */
        {1, 784, 128, false, true, OP_RELU},    /* batch-1 x @ W^T */
        {64, 128, 10, false, true, OP_ABS},     /* the MLP's second layer */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_epilogue(&cases[i], DT_F32);
    check_epilogue(&cases[0], DT_F64);
    check_epilogue(&cases[2], DT_F64);
}

/* Which products fuse: gᵀ·h followed by an add fuses (a weight gradient's
 * update); g @ W under a relu mask feeding a bias gradient's reduction does
 * not (reduction groups take no product), nor a product read outside its
 * group, nor one whose epilogue would stream a full-size operand beyond
 * 64 KiB (passes/fuse.c: epilogue_pays) for the C backend; the cuda
 * backend's target sets no such bound. */
static void test_matmul_epilogue_backward(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "mask");
    int gy = graph_add_input(g, "gy", DT_F32, S(2, 64, 10), L), h = graph_add_input(g, "h", DT_F32, S(2, 64, 129), L);
    int w = graph_add_input(g, "w", DT_F32, S(2, 10, 129), L), zero = graph_add_const(g, 0, DT_F32, S(0), L);
    int mm = op2(g, OP_MATMUL, gy, w);
    int masked = add(g, OP_WHERE, 3, (int[]){op2(g, OP_GT, h, zero), mm, zero}, NULL);
    graph_add_output(g, op1(g, OP_REDUCE_SUM, masked, &(NodeAttrs){.n_axes = 1, .axes = {0}}));
    int gw = add(g, OP_MATMUL, 2, (int[]){masked, h}, &(NodeAttrs){.trans_a = true}); /* [129, 129] */
    int twice = op2(g, OP_ADD, gw, gw);
    int other = op2(g, OP_MATMUL, gy, w); /* read by an op outside any group too */
    graph_add_output(g, op2(g, OP_MUL, other, h));
    graph_add_output(g, op1(g, OP_EXP, other, NULL));
    graph_add_output(g, twice);
    int u = graph_add_input(g, "u", DT_F32, S(2, 200, 100), L), v = graph_add_input(g, "v", DT_F32, S(2, 100, 100), L);
    int big = op2(g, OP_MATMUL, u, v), big_sum = op2(g, OP_ADD, big, u); /* u: 80 KB read at every element */
    graph_add_output(g, big_sum);
    Graph *fused = fuse(g);
    assert_int_equal(fused->nodes[mm].attr.group.kind, FUSE_NONE); /* its user roots a reduction group */
    assert_int_equal(fused->nodes[masked].attr.group.kind, FUSE_REDUCE);
    assert_true(fuse_same_group(&fused->nodes[gw], &fused->nodes[twice]));
    assert_int_equal(fused->nodes[gw].attr.group.kind, FUSE_EPILOGUE);
    assert_int_equal(fused->nodes[other].attr.group.kind, FUSE_NONE);
    assert_int_equal(fused->nodes[big].attr.group.kind, FUSE_NONE);
    assert_int_equal(fused->nodes[big_sum].attr.group.kind, FUSE_NONE); /* a lone add is already one kernel */
    fused = fuse_for(g, &backend_cuda_emulated); /* a GPU block streams its own tile only: no size bound */
    assert_int_equal(fused->nodes[gw].attr.group.kind, FUSE_EPILOGUE);
    assert_int_equal(fused->nodes[big].attr.group.kind, FUSE_EPILOGUE);
    check_graph_sums(g);
    arena_free(a);
}

static void test_layout(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "layout");
    int x = graph_add_input(g, "x", DT_F32, S(4, 2, 3, 4, 5), L);
    int r = op1(g, OP_RESHAPE, x, &(NodeAttrs){.shape = S(2, 6, 20)});
    graph_add_output(g, op1(g, OP_RELU, r, NULL));                /* consumer of a view */
    graph_add_output(g, r);                                        /* a view as an output */
    graph_add_output(g, op1(g, OP_TRANSPOSE, x, &(NodeAttrs){.n_axes = 4, .axes = {3, 1, 0, 2}}));
    graph_add_output(g, op1(g, OP_TRANSPOSE, r, &(NodeAttrs){.n_axes = 2, .axes = {1, 0}}));
    graph_add_output(g, x); /* an input as an output is copied */
    check_graph(g, -1, 1);
    arena_free(a);
}

static void test_softmax(void **state) {
    (void)state;
    for (int op = OP_SOFTMAX; op <= OP_LOG_SOFTMAX; op++) {
        Arena *a = arena_new();
        Graph *g = graph_new(a, op_table[op].name);
        int x = graph_add_input(g, "x", DT_F32, S(3, 4, 5, 6), L);
        for (int ax = 0; ax < 3; ax++) graph_add_output(g, op1(g, (OpKind)op, x, &(NodeAttrs){.axis = ax}));
        check_graph(g, -30, 30); /* large logits: stability matters */
        arena_free(a);
    }
}

static void test_params_mlp(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "mlp");
    int x = graph_add_input(g, "x", DT_F32, S(2, 4, 12), L);
    int w = graph_add_param(g, "fc.weight", DT_F32, S(2, 8, 12), (ParamInit){INIT_UNIFORM, -0.3, 0.3}, false, L);
    int b = graph_add_param(g, "fc.bias", DT_F32, S(1, 8), (ParamInit){INIT_NORMAL, 0, 1}, false, L);
    int wt = op1(g, OP_TRANSPOSE, w, &(NodeAttrs){.n_axes = 2, .axes = {1, 0}});
    int h = op2(g, OP_ADD, op2(g, OP_MATMUL, x, wt), b);
    graph_add_output(g, op1(g, OP_LOG_SOFTMAX, op1(g, OP_RELU, h, NULL), &(NodeAttrs){.axis = 1}));
    check_graph(g, -1, 1);
    arena_free(a);
}

/* Slices as views in an elementwise group (passes/fuse.c, codegen/c/group.c):
 * an LSTM cell's gates, four column slices of one [5,4H] value, read in place
 * by the group's loop; a slice along the rows of a [9,3] value (start 2),
 * and a slice that is also an output (the group stores it). Checks
 * that every slice joins the group, then compares -O0 and -O2 with eager. */
static void test_slice_views(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "cell");
    int gates = op2(g, OP_ADD, graph_add_input(g, "xt", DT_F32, S(2, 5, 12), L), graph_add_input(g, "hw", DT_F32, S(2, 5, 12), L));
    int c = graph_add_input(g, "c", DT_F32, S(2, 5, 3), L);
    int sl[4];
    for (int k = 0; k < 4; k++) sl[k] = op1(g, OP_SLICE, gates, &(NodeAttrs){.axis = 1, .start = 3 * k, .length = 3});
    int c2 = op2(g, OP_ADD, op2(g, OP_MUL, op1(g, OP_SIGMOID, sl[1], NULL), c),
                 op2(g, OP_MUL, op1(g, OP_SIGMOID, sl[0], NULL), op1(g, OP_TANH, sl[2], NULL)));
    int h2 = op2(g, OP_MUL, op1(g, OP_SIGMOID, sl[3], NULL), op1(g, OP_TANH, c2, NULL));
    int r5 = op1(g, OP_SLICE, graph_add_input(g, "r5", DT_F32, S(2, 9, 3), L), &(NodeAttrs){.axis = 0, .start = 2, .length = 5});
    int out = op2(g, OP_ADD, h2, r5);
    graph_add_output(g, c2);
    graph_add_output(g, out);
    graph_add_output(g, sl[2]);
    Graph *fused = fuse(g);
    for (int k = 0; k < 4; k++) {
        assert_int_equal(fused->nodes[sl[k]].attr.group.kind, FUSE_ELEMENTWISE);
        assert_true(fuse_same_group(&fused->nodes[sl[k]], &fused->nodes[out]));
    }
    assert_true(fuse_same_group(&fused->nodes[r5], &fused->nodes[out]));
    check_graph(g, -2, 2);
    arena_free(a);
}

/* Row groups (passes/fuse.c, codegen/c/rowgroup.c): the graph of
 * tests/lit/passes/fuse_rows.etchir (layer norm, a masked softmax,
 * log_softmax with nll, a cut group, rows over two axes), whose -O2 grouping
 * that test checks, compiled at -O0 and -O2 against the eager executor (rows
 * of 8, 5, 10, 3x4 and 1 elements). */
static void test_row_groups(void **state) {
    (void)state;
    char path[4200];
    snprintf(path, sizeof path, "%s/tests/lit/passes/fuse_rows.etchir", ts_source_dir());
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Graph *g = ir_parse(a, path, text, &d);
    assert_non_null(g);
    Graph *fused = fuse(g);
    int stages = 0;
    for (int id = 0; id < fused->n_nodes; id++) /* reductions with consumers in their group */
        if (fused->nodes[id].attr.group.kind == FUSE_ROWS && fused->nodes[id].attr.group.at != id &&
            op_table[fused->nodes[id].op].cls == OPC_REDUCE)
            stages++;
    assert_int_equal(stages, 5); /* %3, %6, %29, %33, %43 */
    assert_int_equal(fused->nodes[36].attr.group.kind, FUSE_REDUCE); /* over leading axes */
    check_graph(g, -3, 3);
    diag_dispose(&d);
    arena_free(a);
}

/* Random graphs (tests/unit/graph_fuzz.h): -O0 and -O2 emitted code against
 * the eager executor. State updates are dropped: embedded weights are const. */
static void test_random_graphs(void **state) {
    (void)state;
    for (uint64_t seed = 1; seed <= 12; seed++) {
        Arena *a = arena_new();
        Graph *g = fz_graph(a, seed * 7919);
        g->n_updates = 0;
        check_graph(g, -1.5, 1.5);
        arena_free(a);
    }
}

/* Random graphs in which -O2 forms row groups (about 1 in 17 seeds: a
 * trailing reduction or a last-axis softmax with elementwise work after it),
 * compiled against the eager executor: the first 8 such seeds. */
static void test_random_row_groups(void **state) {
    (void)state;
    int found = 0;
    for (uint64_t seed = 1; seed <= 400 && found < 8; seed++) {
        Arena *a = arena_new();
        Graph *g = fz_graph(a, seed * 7919);
        g->n_updates = 0;
        Graph *h = ts_optimize(g, 2);
        bool rows = false;
        for (int id = 0; id < h->n_nodes; id++) {
            const Node *n = &h->nodes[id];
            rows = rows || (n->attr.group.kind == FUSE_ROWS &&
                            ((op_table[n->op].cls == OPC_REDUCE && n->attr.group.at != id) || n->op == OP_SOFTMAX ||
                             n->op == OP_LOG_SOFTMAX));
        }
        if (rows) {
            found++;
            check_graph(g, -1.5, 1.5);
        }
        arena_free(a);
    }
    assert_int_equal(found, 8);
}

/* Runs last: every graph above went through the LLVM backend too. */
static void test_llvm_coverage(void **state) {
    (void)state;
    ts_llvm_coverage();
}

static void test_shape_errors(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "errors");
    int x = graph_add_input(g, "x", DT_F32, S(2, 64, 784), L), w = graph_add_input(g, "w", DT_F32, S(2, 128, 10), L);
    int i = graph_add_input(g, "i", DT_I32, S(2, 64, 784), L), v = graph_add_input(g, "v", DT_F32, S(1, 5), L);
    ts_expect_error(g, OP_MATMUL, (int[]){x, w}, 2, NULL, "cannot matmul f32[64,784] by f32[128,10]: inner dims 784 and 128 differ");
    ts_expect_error(g, OP_ADD, (int[]){x, w}, 2, NULL, "cannot broadcast f32[64,784] with f32[128,10] for 'add'");
    ts_expect_error(g, OP_ADD, (int[]){x, i}, 2, NULL, "'add' operands have different dtypes: f32[64,784] and i32[64,784]");
    ts_expect_error(g, OP_EXP, (int[]){i}, 1, NULL, "'exp' needs a floating-point tensor, got i32[64,784]");
    ts_expect_error(g, OP_RESHAPE, (int[]){x}, 1, &(NodeAttrs){.shape = S(2, 64, 700)}, "cannot reshape f32[64,784] to f32[64,700]: 50176 elements vs 44800");
    ts_expect_error(g, OP_REDUCE_SUM, (int[]){x}, 1, &(NodeAttrs){.n_axes = 1, .axes = {2}}, "'reduce_sum' axis 2 is out of range for f32[64,784] (rank 2)");
    ts_expect_error(g, OP_TRANSPOSE, (int[]){x}, 1, &(NodeAttrs){.n_axes = 2, .axes = {0, 0}}, "axis 0 appears twice");
    ts_expect_error(g, OP_SOFTMAX, (int[]){v}, 1, &(NodeAttrs){.axis = 1}, "'softmax' axis 1 is out of range for f32[5] (rank 1)");
    ts_expect_error(g, OP_WHERE, (int[]){x, x, x}, 3, NULL, "where() condition must be bool, got f32[64,784]");
    ts_expect_error(g, OP_BROADCAST, (int[]){x}, 1, &(NodeAttrs){.shape = S(2, 3, 784)}, "cannot broadcast f32[64,784] to f32[3,784]");
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binary_arith), cmocka_unit_test(test_compare_where),
        cmocka_unit_test(test_unary),        cmocka_unit_test(test_cast_const_broadcast),
        cmocka_unit_test(test_reduce),       cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_matmul_epilogue), cmocka_unit_test(test_matmul_epilogue_backward),
        cmocka_unit_test(test_layout),       cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_params_mlp),   cmocka_unit_test(test_shape_errors),
        cmocka_unit_test(test_random_graphs), cmocka_unit_test(test_row_groups),
        cmocka_unit_test(test_random_row_groups), cmocka_unit_test(test_slice_views),
        cmocka_unit_test(test_llvm_coverage), cmocka_unit_test(ts_cuda_coverage_test),
    };
    ts_check_llvm_too();
    ts_check_cuda_too();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
