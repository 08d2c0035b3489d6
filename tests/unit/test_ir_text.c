/* test_ir_text.c: the textual IR (print, parse) and the verifier.
 *
 * The round-trip property print(parse(print(g))) == print(g) is what lets
 * golden files and pass tests compare graphs as text, so it is checked on a
 * graph that uses every op, on awkward strings and floats, and on thousands
 * of mutated inputs (which must also never crash the parser). Parse errors
 * are checked down to their line:col; the verifier is shown hand-corrupted
 * graphs of each kind it must catch. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ir/ir.h"
#include "unit/test_support.h"

static SrcLoc at(const char *file, int line, int col) { return (SrcLoc){.file = file, .line = line, .col = col}; }

/* Adds op(x[, y[, z]]) and insists the builder accepted it. */
static int op_add(Graph *g, OpKind op, const NodeAttrs *attrs, SrcLoc loc, int n_in, int x, int y, int z) {
    return ts_add(loc, g, op, n_in, (int[]){x, y, z}, attrs);
}
static int op1(Graph *g, OpKind op, int x) { return op_add(g, op, NULL, at("m.etch", 10 + x, 3), 1, x, 0, 0); }
static int op2(Graph *g, OpKind op, int x, int y) { return op_add(g, op, NULL, at("m.etch", 20, 5), 2, x, y, 0); }

/* Parses text, expecting success; the graph must verify. */
static Graph *parse_ok(Arena *a, const char *text) {
    Diag d;
    diag_init(&d, stderr);
    Graph *g = ir_parse(a, "t.etchir", text, &d);
    assert_non_null(g);
    assert_int_equal(d.n_errors, 0);
    assert_true(ir_verify(g, &d));
    diag_dispose(&d);
    return g;
}

/* print(g), then print(parse(print(g))) must be byte-identical. Returns the text. */
static char *assert_roundtrip(Arena *a, const Graph *g) {
    char *s1 = ir_print_to_string(g);
    Graph *g2 = parse_ok(a, s1);
    char *s2 = ir_print_to_string(g2);
    assert_string_equal(s1, s2);
    free(s2);
    return s1;
}

/* ---- golden output --------------------------------------------------------- */

static Graph *build_small(Arena *a) {
    Graph *g = graph_new(a, "Net.forward");
    int x = graph_add_input(g, "x", DT_F32, S(4, 64, 1, 28, 28), at("mlp.etch", 6, 14));
    int w = graph_add_param(g, "fc1.weight", DT_F32, S(2, 128, 784), (ParamInit){INIT_UNIFORM, -0.0357, 0.0357},
                            false, at("nn.etch", 4, 3));
    NodeAttrs ra = {.shape = S(2, 64, 784)};
    int r = op_add(g, OP_RESHAPE, &ra, at("mlp.etch", 7, 22), 1, x, 0, 0);
    NodeAttrs ta = {.n_axes = 2, .axes = {1, 0}};
    int t = op_add(g, OP_TRANSPOSE, &ta, at("nn.etch", 7, 14), 1, w, 0, 0);
    int m = op_add(g, OP_MATMUL, NULL, at("nn.etch", 7, 12), 2, r, t, 0);
    NodeAttrs sa = {.n_axes = 1, .axes = {1}, .keepdims = true};
    int s = op_add(g, OP_REDUCE_SUM, &sa, at("mlp.etch", 9, 3), 1, m, 0, 0);
    graph_add_const(g, 0.5, DT_F32, S(0), (SrcLoc){0});
    graph_add_output(g, m);
    graph_add_output(g, s);
    return g;
}

static const char small_golden[] =
    "graph Net.forward {\n"
    "  %0 = input \"x\" : f32[64,1,28,28]                      @ \"mlp.etch\":6:14\n"
    "  %1 = param \"fc1.weight\" {init = uniform(-0.0357, 0.0357)} : f32[128,784]  @ \"nn.etch\":4:3\n"
    "  %2 = reshape %0 : f32[64,784]                         @ \"mlp.etch\":7:22\n"
    "  %3 = transpose %1 {perm = [1, 0]} : f32[784,128]      @ \"nn.etch\":7:14\n"
    "  %4 = matmul %2, %3 : f32[64,128]                      @ \"nn.etch\":7:12\n"
    "  %5 = reduce_sum %4 {axes = [1], keepdims = true} : f32[64,1]  @ \"mlp.etch\":9:3\n"
    "  %6 = const {value = 0.5} : f32[]\n"
    "  return %4, %5\n"
    "}\n";

static void test_golden_small(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = build_small(a);
    assert_true(ir_verify(g, NULL));
    char *s = assert_roundtrip(a, g);
    assert_string_equal(s, small_golden);
    free(s);
    arena_free(a);
}

/* Parsing fills the fields the rest of the compiler reads, not just the text. */
static void test_parse_fields(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = parse_ok(a, small_golden);
    assert_string_equal(g->name, "Net.forward");
    assert_int_equal(g->n_nodes, 7);
    assert_int_equal(g->n_inputs, 1);
    assert_int_equal(g->inputs[0], 0);
    assert_int_equal(g->n_params, 1);
    assert_int_equal(g->params[0], 1);
    const Node *p = &g->nodes[1];
    assert_string_equal(p->attr.name, "fc1.weight");
    assert_int_equal(p->attr.init.kind, INIT_UNIFORM);
    assert_true(p->attr.init.a == -0.0357 && p->attr.init.b == 0.0357);
    assert_true(shape_equal(&p->attr.shape, &p->shape));
    assert_int_equal(g->nodes[2].attr.shape.dim[1], 784);
    assert_int_equal(g->nodes[3].attr.n_axes, 2);
    assert_int_equal(g->nodes[3].attr.axes[0], 1);
    assert_string_equal(g->nodes[4].loc.file, "nn.etch");
    assert_int_equal(g->nodes[4].loc.line, 7);
    assert_int_equal(g->nodes[4].loc.col, 12);
    assert_int_equal(g->nodes[4].in[1], 3);
    assert_true(g->nodes[5].attr.keepdims);
    assert_null(g->nodes[6].loc.file);
    assert_true(g->nodes[6].attr.value == 0.5);
    assert_int_equal(g->n_outputs, 2);
    assert_int_equal(g->outputs[1], 5);
    arena_free(a);
}

/* Fusion groups print as `group = KIND N at %P`, parse back into FuseGroup,
 * and come last in the attributes. */
static void test_fusion_groups(void **state) {
    (void)state;
    static const char text[] =
        "graph g {\n"
        "  %0 = input \"x\" : f32[4,8]\n"
        "  %1 = exp %0 {group = rows 2 at %3} : f32[4,8]\n"
        "  %2 = reduce_sum %1 {axes = [1], keepdims = true, group = rows 2 at %3} : f32[4,1]\n"
        "  %3 = div %1, %2 {group = rows 2 at %3} : f32[4,8]\n"
        "  %4 = reduce_sum %3 {axes = [0], keepdims = false, group = reduce 1 at %4} : f32[8]\n"
        "  %5 = neg %0 : f32[4,8]\n"
        "  return %4, %5\n"
        "}\n";
    Arena *a = arena_new();
    Graph *g = parse_ok(a, text);
    assert_int_equal(g->nodes[1].attr.group.kind, FUSE_ROWS);
    assert_int_equal(g->nodes[1].attr.group.id, 2);
    assert_int_equal(g->nodes[1].attr.group.at, 3);
    assert_true(fuse_same_group(&g->nodes[1], &g->nodes[3]));
    assert_false(fuse_same_group(&g->nodes[3], &g->nodes[4]));
    assert_int_equal(g->nodes[4].attr.group.kind, FUSE_REDUCE);
    assert_int_equal(g->nodes[5].attr.group.kind, FUSE_NONE);
    assert_false(fuse_same_group(&g->nodes[5], &g->nodes[5])); /* no group is no group */
    char *s1 = assert_roundtrip(a, g);
    assert_string_equal(s1, text);
    free(s1);
    arena_free(a);
}

/* ---- every op kind --------------------------------------------------------- */

static Graph *build_all_ops(Arena *a) {
    Graph *g = graph_new(a, "all_ops");
    int x = graph_add_input(g, "x", DT_F32, S(2, 2, 3), at("all.etch", 1, 1));
    int y = graph_add_input(g, "y", DT_F32, S(2, 2, 3), at("all.etch", 2, 1));
    int w = graph_add_param(g, "w", DT_F32, S(2, 3, 4), (ParamInit){INIT_NORMAL, 0, 0.02}, false, at("nn.etch", 1, 1));
    int b = graph_add_param(g, "b", DT_F32, S(1, 4), (ParamInit){INIT_ZEROS, 0, 0}, true, at("nn.etch", 2, 1));
    graph_add_param(g, "one", DT_F32, S(1, 4), (ParamInit){INIT_ONES, 0, 0}, false, (SrcLoc){0});
    graph_add_param(g, "c", DT_F64, S(0), (ParamInit){INIT_CONST, 0.25, 0}, false, (SrcLoc){0});
    graph_add_param(g, "u", DT_F32, S(1, 4), (ParamInit){INIT_UNIFORM, -1, 1}, true, at("nn.etch", 5, 9));
    graph_add_const(g, 2, DT_I32, S(1, 3), at("all.etch", 3, 1));
    NodeAttrs io = {.axis = 1, .dtype = DT_I64, .shape = S(2, 2, 5)};
    op_add(g, OP_IOTA, &io, at("all.etch", 4, 1), 0, 0, 0, 0);
    for (OpKind op = OP_ADD; op <= OP_NE; op++) op2(g, op, x, y);
    int cond = op2(g, OP_LT, x, y);
    op_add(g, OP_WHERE, NULL, at("all.etch", 30, 2), 3, cond, x, y);
    for (OpKind op = OP_NEG; op <= OP_RELU; op++) op1(g, op, x);
    NodeAttrs lk = {.value = 0.01};
    op_add(g, OP_LEAKY_RELU, &lk, at("all.etch", 30, 9), 1, x, 0, 0);
    NodeAttrs ca = {.dtype = DT_I32};
    int xi = op_add(g, OP_CAST, &ca, at("all.etch", 31, 2), 1, x, 0, 0);
    op1(g, OP_ABS, xi); /* integer elementwise */
    NodeAttrs c64 = {.dtype = DT_F64};
    op_add(g, OP_CAST, &c64, at("all.etch", 32, 2), 1, x, 0, 0);
    NodeAttrs r0 = {.n_axes = 2, .axes = {1, 0}};
    NodeAttrs r1 = {.n_axes = 1, .axes = {0}, .keepdims = true};
    NodeAttrs r2 = {.n_axes = 0};
    op_add(g, OP_REDUCE_SUM, &r0, at("all.etch", 33, 1), 1, x, 0, 0);
    op_add(g, OP_REDUCE_MAX, &r1, at("all.etch", 34, 1), 1, x, 0, 0);
    op_add(g, OP_REDUCE_MEAN, &r2, at("all.etch", 35, 1), 1, x, 0, 0);
    int mm = op2(g, OP_MATMUL, x, w);
    NodeAttrs rs = {.shape = S(3, 3, 1, 2)};
    op_add(g, OP_RESHAPE, &rs, at("all.etch", 36, 1), 1, x, 0, 0);
    NodeAttrs tp = {.n_axes = 2, .axes = {1, 0}};
    op_add(g, OP_TRANSPOSE, &tp, at("all.etch", 37, 1), 1, w, 0, 0);
    NodeAttrs bc = {.shape = S(2, 2, 4)};
    int bb = op_add(g, OP_BROADCAST, &bc, at("all.etch", 38, 1), 1, b, 0, 0);
    int sum = op2(g, OP_ADD, mm, bb);
    NodeAttrs sm = {.axis = 1};
    int s1 = op_add(g, OP_SOFTMAX, &sm, at("all.etch", 39, 1), 1, sum, 0, 0);
    /* a fusion group (a matmul epilogue), so mutations reach the group syntax too */
    g->nodes[mm].attr.group = g->nodes[sum].attr.group = (FuseGroup){FUSE_EPILOGUE, 1, mm};
    NodeAttrs lsm = {.axis = 0};
    op_add(g, OP_LOG_SOFTMAX, &lsm, at("all.etch", 40, 1), 1, sum, 0, 0);
    /* convolution and pooling (ir/ops/conv.c, pool.c) */
    int img = graph_add_input(g, "img", DT_F32, S(4, 2, 4, 7, 6), at("all.etch", 41, 1));
    int cw = graph_add_input(g, "cw", DT_F32, S(4, 6, 2, 3, 2), (SrcLoc){0});
    NodeAttrs cv = {.conv = {.stride = {2, 1}, .pad = {1, 0}, .dilation = {1, 2}, .groups = 2}};
    int cy = op_add(g, OP_CONV2D, &cv, at("all.etch", 42, 1), 2, img, cw, 0);
    cv.shape = g->nodes[img].shape;
    op_add(g, OP_CONV2D_BWD_INPUT, &cv, at("all.etch", 43, 1), 2, cy, cw, 0);
    cv.shape = g->nodes[cw].shape;
    op_add(g, OP_CONV2D_BWD_WEIGHT, &cv, at("all.etch", 44, 1), 2, img, cy, 0);
    NodeAttrs pl = {.conv = {.kernel = {3, 2}, .stride = {2, 2}, .pad = {1, 0}}};
    int mp = op_add(g, OP_MAX_POOL2D, &pl, at("all.etch", 45, 1), 1, img, 0, 0);
    int ap = op_add(g, OP_AVG_POOL2D, &pl, at("all.etch", 46, 1), 1, img, 0, 0);
    op_add(g, OP_MAX_POOL2D_BWD, &pl, at("all.etch", 47, 1), 2, img, mp, 0);
    pl.shape = g->nodes[img].shape;
    op_add(g, OP_AVG_POOL2D_BWD, &pl, at("all.etch", 48, 1), 1, ap, 0, 0);
    /* layers (erf is among the unary ops above) */
    NodeAttrs sl = {.axis = 1, .start = 1, .length = 2};
    int sx = op_add(g, OP_SLICE, &sl, at("all.etch", 41, 1), 1, x, 0, 0);
    NodeAttrs pd = {.pad_before = {1, 0}, .pad_after = {0, 2}, .value = -1.5};
    op_add(g, OP_PAD, &pd, at("all.etch", 42, 1), 1, x, 0, 0);
    NodeAttrs cc = {.axis = 1};
    op_add(g, OP_CONCAT, &cc, at("all.etch", 43, 1), 2, x, sx, 0);
    int ids = graph_add_const(g, 1, DT_I64, S(1, 3), at("all.etch", 44, 1));
    int rows = op_add(g, OP_GATHER_ROWS, NULL, at("all.etch", 44, 5), 2, w, ids, 0);
    NodeAttrs sc = {.shape = S(2, 3, 4)};
    op_add(g, OP_SCATTER_ADD_ROWS, &sc, at("all.etch", 45, 1), 2, rows, ids, 0);
    int step = graph_add_const(g, 3, DT_F64, S(0), at("all.etch", 46, 1));
    NodeAttrs ru = {.seed = 42, .dtype = DT_F32, .shape = S(2, 2, 3)};
    op_add(g, OP_RANDOM_UNIFORM, &ru, at("all.etch", 46, 5), 1, step, 0, 0);
    op_add(g, OP_RANDOM_NORMAL, &ru, at("all.etch", 46, 9), 1, step, 0, 0);
    op_add(g, OP_STOP_GRADIENT, NULL, at("all.etch", 46, 13), 1, x, 0, 0);
    /* quantized ops (ir/ops/quant.c) */
    int qs = graph_add_const(g, 0.5, DT_F32, S(0), (SrcLoc){0}), qz = graph_add_const(g, 3, DT_I32, S(0), (SrcLoc){0});
    int q = op_add(g, OP_QUANTIZE, &(NodeAttrs){.dtype = DT_U8}, at("all.etch", 49, 1), 3, x, qs, qz);
    op_add(g, OP_DEQUANTIZE, NULL, at("all.etch", 49, 2), 3, q, qs, qz);
    NodeAttrs fq = {.quant.clamp = {-8, 7}};
    int fqx = op_add(g, OP_FAKE_QUANT, &fq, at("all.etch", 49, 3), 3, x, qs, qz);
    assert_true(graph_add_op(g, OP_FAKE_QUANT_BWD, (int[]){fqx, x, qs, qz}, 4, &fq, at("all.etch", 49, 4), NULL) >= 0);
    int w8 = graph_add_const(g, -3, DT_I8, S(2, 5, 3), (SrcLoc){0});
    int i32v = graph_add_const(g, 1, DT_I32, S(1, 5), (SrcLoc){0});
    NodeAttrs qm = {.dtype = DT_I8, .quant = {.zero_points = {3, -1}, .clamp = {-1, 127}}};
    assert_true(graph_add_op(g, OP_QMATMUL, (int[]){q, w8, i32v, i32v, i32v}, 5, &qm, at("all.etch", 49, 5), NULL) >= 0);
    int img8 = graph_add_const(g, 7, DT_U8, S(4, 1, 2, 4, 4), (SrcLoc){0});
    int wc8 = graph_add_const(g, -3, DT_I8, S(4, 5, 2, 3, 3), (SrcLoc){0});
    NodeAttrs qc = {.dtype = DT_U8, .quant = {.zero_points = {3, 0}, .clamp = {0, 255}},
                    .conv = {.stride = {1, 2}, .pad = {1, 0}, .dilation = {1, 1}, .groups = 1}};
    assert_true(graph_add_op(g, OP_QCONV2D, (int[]){img8, wc8, i32v, i32v, i32v}, 5, &qc, at("all.etch", 49, 6), NULL) >= 0);
    /* scan (ir/ops/scan.c): x [2, 3] read as 2 steps of [3]; the body is a nested graph */
    Graph *body = graph_new(a, "all.loop0");
    int bc0 = graph_add_input(body, "carry", DT_F32, S(1, 3), (SrcLoc){0});
    int bx = graph_add_input(body, "step", DT_F32, S(1, 3), (SrcLoc){0});
    int bw = graph_add_input(body, "capture", DT_F32, S(1, 3), (SrcLoc){0});
    int bn = op2(body, OP_ADD, bc0, op2(body, OP_MUL, bx, bw));
    graph_add_output(body, bn);
    graph_add_output(body, bn);
    int c0 = graph_add_const(g, 0.5, DT_F32, S(1, 3), at("all.etch", 47, 1));
    NodeAttrs scan = {.body = body, .n_carry = 1, .n_xs = 1, .reverse = true};
    int ops[3] = {c0, sx, c0};
    NodeAttrs sl2 = {.axis = 1, .start = 0, .length = 3};
    ops[1] = op_add(g, OP_SLICE, &sl2, at("all.etch", 47, 5), 1, x, 0, 0);
    ops[1] = graph_add_op(g, OP_RESHAPE, &ops[1], 1, &(NodeAttrs){.shape = S(2, 2, 3)}, at("all.etch", 47, 6), NULL);
    int scan_id = graph_add_op(g, OP_SCAN, ops, 3, &scan, at("all.etch", 48, 1), NULL);
    assert_true(scan_id >= 0);
    /* allreduce_start and _wait (ir/ops/collective.c): x and w flattened into one bucket */
    int bucket = graph_add_op(g, OP_ALLREDUCE_START, (int[]){x, w}, 2, NULL, at("all.etch", 50, 1), NULL);
    assert_true(bucket >= 0);
    assert_true(graph_add_op(g, OP_ALLREDUCE_WAIT, &bucket, 1, NULL, at("all.etch", 50, 2), NULL) >= 0);
    /* a wait needs a start */
    assert_true(graph_add_op(g, OP_ALLREDUCE_WAIT, &x, 1, NULL, at("all.etch", 50, 3), NULL) < 0);
    graph_add_output(g, s1);
    graph_add_output(g, cond);
    graph_add_output(g, s1); /* the same value twice is allowed */
    return g;
}

static void test_roundtrip_all_ops(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = build_all_ops(a);
    bool used[OP_COUNT] = {false};
    for (int i = 0; i < g->n_nodes; i++) used[g->nodes[i].op] = true;
    for (int op = 0; op < OP_COUNT; op++) {
        if (!used[op]) fprintf(stderr, "op %s not covered\n", op_table[op].name);
        assert_true(used[op]);
    }
    assert_true(ir_verify(g, NULL));
    char *s = assert_roundtrip(a, g);
    /* spot checks of the less common spellings */
    assert_non_null(strstr(s, "{init = normal(0, 0.02)} : f32[3,4]"));
    assert_non_null(strstr(s, "{init = zeros, frozen = true} : f32[4]"));
    assert_non_null(strstr(s, "{init = const(0.25)} : f64[]"));
    assert_non_null(strstr(s, "= cast %0 : i32[2,3]"));
    assert_non_null(strstr(s, "{axis = 0, clamp = [-8, 7]} : f32[2,3]"));
    assert_non_null(strstr(s, "{zero_points = [3, -1], clamp = [-1, 127]} : i8[2,5]"));
    assert_non_null(strstr(s, "= const {value = -3} : i8[5,3]"));
    assert_non_null(strstr(s, "{axes = [], keepdims = false} : f32[2,3]"));
    assert_non_null(strstr(s, "= where %"));
    assert_non_null(strstr(s, "= iota {axis = 1} : i64[2,5]"));
    assert_non_null(strstr(s, "{axis = 0} : f32[2,4]"));
    assert_non_null(strstr(s, "= slice %0 {axis = 1, start = 1, length = 2} : f32[2,2]"));
    assert_non_null(strstr(s, "{before = [1, 0], after = [0, 2], value = -1.5} : f32[3,5]"));
    assert_non_null(strstr(s, "{axis = 1} : f32[2,5]"));
    assert_non_null(strstr(s, "= scatter_add_rows %"));
    assert_non_null(strstr(s, "= allreduce_start %0, %2 : f32[18]"));
    assert_non_null(strstr(s, "= allreduce_wait %"));
    assert_non_null(strstr(s, "{seed = 42} : f32[2,3]"));
    assert_non_null(strstr(s, "{stride = [2, 1], padding = [1, 0], dilation = [1, 2], groups = 2} : f32[2,6,4,4]"));
    assert_non_null(strstr(s, "{kernel = [3, 2], stride = [2, 2], padding = [1, 0]} : f32[2,4,4,3]"));
    assert_non_null(strstr(s, "= avg_pool2d_backward %"));
    assert_non_null(strstr(s, "{group = epilogue 1 at %"));
    free(s);
    arena_free(a);
}

/* ---- awkward values ---------------------------------------------------------- */

static void test_roundtrip_floats(void **state) {
    (void)state;
    const double vals[] = {0.1, -0.0, 0.0, 1.0 / 3, 1e-300, 5e-324, 1.7976931348623157e308, -2.5e-8,
                           123456789012345678.0, INFINITY, -INFINITY, NAN};
    enum { N = sizeof vals / sizeof vals[0] };
    Arena *a = arena_new();
    Graph *g = graph_new(a, "floats");
    for (int i = 0; i < N; i++) graph_add_const(g, vals[i], DT_F64, S(1, 2), (SrcLoc){0});
    graph_add_param(g, "p", DT_F32, S(0), (ParamInit){INIT_UNIFORM, 0.1, -INFINITY}, false, (SrcLoc){0});
    char *s = assert_roundtrip(a, g);
    assert_non_null(strstr(s, "{value = 0.1}"));
    assert_non_null(strstr(s, "{value = -0}"));
    assert_non_null(strstr(s, "{value = inf}"));
    assert_non_null(strstr(s, "{value = -inf}"));
    assert_non_null(strstr(s, "{value = nan}"));
    assert_non_null(strstr(s, "uniform(0.1, -inf)"));
    Graph *g2 = parse_ok(a, s);
    for (int i = 0; i < N; i++) {
        double v = g2->nodes[i].attr.value;
        if (isnan(vals[i])) assert_true(isnan(v));
        else assert_memory_equal(&v, &vals[i], sizeof v); /* bit-exact, sign of zero included */
    }
    free(s);
    arena_free(a);
}

static void test_roundtrip_strings(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "my graph\t\"v2\"");
    graph_add_input(g, "a \"quoted\" \\ name\n\x01\x7f", DT_F32, S(1, 2), at("dir with space/f\xc3\xa9.etch", 0, 0));
    graph_add_input(g, "plain", DT_BOOL, S(0), (SrcLoc){0});
    char *s = assert_roundtrip(a, g);
    assert_non_null(strstr(s, "graph \"my graph\\t\\\"v2\\\"\" {"));
    assert_non_null(strstr(s, "input \"a \\\"quoted\\\" \\\\ name\\n\\x01\\x7f\""));
    assert_non_null(strstr(s, "@ \"dir with space/f\xc3\xa9.etch\":0:0"));
    assert_non_null(strstr(s, "  return\n}\n")); /* no outputs */
    Graph *g2 = parse_ok(a, s);
    assert_string_equal(g2->name, g->name);
    assert_string_equal(g2->nodes[0].attr.name, g->nodes[0].attr.name);
    free(s);
    arena_free(a);
}

/* Hand-written text: comments, free spacing, other number spellings and
 * attribute orders all parse, and print canonically. */
static void test_parse_lenient_input(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = parse_ok(a, "// leading comment\n"
                           "graph \"g\"{%0=param \"w\"{frozen=true,init=uniform(-1e-1,+.5)}:f32[ 2 , 2 ] // c\n"
                           "%1 = const {value = 1E3} : f32[]\n"
                           "%2 = reduce_max %0 {keepdims = false, axes = [1,0]} : f32[]\n"
                           "%3 = param \"q\" : f32[1]\n"
                           "return %2,%1}\n// trailing comment");
    char *s = ir_print_to_string(g);
    assert_string_equal(s, "graph g {\n"
                           "  %0 = param \"w\" {init = uniform(-0.1, 0.5), frozen = true} : f32[2,2]\n"
                           "  %1 = const {value = 1e+03} : f32[]\n"
                           "  %2 = reduce_max %0 {axes = [1, 0], keepdims = false} : f32[]\n"
                           "  %3 = param \"q\" {init = zeros} : f32[1]\n"
                           "  return %2, %1\n"
                           "}\n");
    free(s);
    arena_free(a);
}

/* ---- parse errors ------------------------------------------------------------ */

typedef struct ErrCase {
    const char *text, *expect; /* expect: the first line of the diagnostics */
} ErrCase;

#define HDR "graph g {\n  %0 = input \"x\" : f32[3,4]\n"
static const ErrCase err_cases[] = {
    {"", "t.etchir:1:1: error: expected 'graph' at the start of the IR, found end of input"},
    {"graf g {", "t.etchir:1:1: error: expected 'graph' at the start of the IR, found 'graf'"},
    {"graph {", "t.etchir:1:7: error: expected a graph name after 'graph', found '{'"},
    {"graph g\n  return }", "t.etchir:2:3: error: expected '{' after the graph name, found 'return'"},
    {HDR "  %1 = matmul %0, %0 {x = 1} : f32[3,3]\n",
     "t.etchir:3:23: error: unknown attribute 'x' for 'matmul'"},
    {HDR "  %1 = frobnicate %0 : f32[3,4]\n", "t.etchir:3:8: error: unknown op 'frobnicate'"},
    {HDR "  %1 = neg %7 : f32[3,4]\n",
     "t.etchir:3:12: error: use of undefined value %7 (values must be defined before use)"},
    {HDR "  %1 = neg %1 : f32[3,4]\n",
     "t.etchir:3:12: error: use of undefined value %1 (values must be defined before use)"},
    {HDR "  %2 = neg %0 : f32[3,4]\n",
     "t.etchir:3:3: error: expected value %1 here (ids are dense and in order), found %2"},
    {HDR "  %1 = add %0 : f32[3,4]\n", "t.etchir:3:12: error: 'add' takes 2 operands, got 1"},
    {HDR "  %1 = add : f32[3,4]\n", "t.etchir:3:12: error: expected 2 operands after 'add', found ':'"},
    {HDR "  %1 = transpose %0 {perm = [1, 0]} : f32[3,4]\n",
     "t.etchir:3:39: error: written type f32[3,4] disagrees with the inferred f32[4,3]"},
    {HDR "  %1 = transpose %0 {perm = [1, 1]} : f32[4,3]\n",
     "t.etchir:3:8: error: transpose of f32[3,4]: axis 1 appears twice in the permutation"},
    {HDR "  %1 = transpose %0 : f32[4,3]\n", "t.etchir:3:8: error: 'transpose' requires attribute 'perm'"},
    {HDR "  %1 = transpose %0 {axes = [1]} : f32[4,3]\n",
     "t.etchir:3:22: error: unknown attribute 'axes' for 'transpose'"},
    {HDR "  %1 = reduce_sum %0 {axes = [0], axes = [1]} : f32[4]\n",
     "t.etchir:3:35: error: duplicate attribute 'axes'"},
    {HDR "  %1 = reduce_sum %0 {axes = [0] keepdims = true} : f32[4]\n",
     "t.etchir:3:34: error: expected ',' or '}' in the attributes of 'reduce_sum', found 'keepdims'"},
    {HDR "  %1 = reduce_sum %0 {axes = [0], keepdims = 1} : f32[4]\n",
     "t.etchir:3:46: error: expected true or false for 'keepdims', found '1'"},
    {HDR "  %1 = neg %0 : f16[3,4]\n", "t.etchir:3:17: error: unknown dtype 'f16' (expected f32, f64, i32, i64, bool, i8 or u8)"},
    {HDR "  %1 = neg %0 : f32[3,-4]\n", "t.etchir:3:23: error: a dimension -4 is out of range (0 to 9223372036854775807)"},
    {HDR "  %1 = neg %0 : f32[3 4]\n",
     "t.etchir:3:23: error: expected ',' or ']' in the type's dimension list, found '4'"},
    {"graph g {\n  %0 = input \"x\" : f32[4294967296,4294967296]\n",
     "t.etchir:2:35: error: the type has too many elements (more than 2^63)"},
    {"graph g {\n  %0 = input \"x\" : f32[1,1,1,1,1,1,1,1,1]\n",
     "t.etchir:2:40: error: too many dimensions (at most 8)"},
    {"graph g {\n  %0 = input \"x : f32[3]\n",
     "t.etchir:2:14: error: unterminated string (expected '\"' before the end of the line)"},
    {"graph g {\n  %0 = input \"a\\qb\" : f32[3]\n", "t.etchir:2:16: error: unknown escape sequence '\\q' in string"},
    {"graph g {\n  %0 = input x : f32[3]\n", "t.etchir:2:14: error: expected a quoted name after 'input', found 'x'"},
    {HDR "  %1 = neg %0 : f32[3,4] @ mlp.etch:1:2\n",
     "t.etchir:3:28: error: expected a quoted file name after '@', found 'mlp.etch'"},
    {HDR "  %1 = neg %0 : f32[3,4] @ \"m\":1\n",
     "t.etchir:4:1: error: expected ':' after the line number, found end of input"},
    {HDR "  return %0\n}\ngraph h {", "t.etchir:5:1: error: expected end of input after the graph's '}', found 'graph'"},
    {HDR "}\n", "t.etchir:3:1: error: expected a node '%1 = ...' or 'return', found '}'"},
    {HDR "  return %0 %0\n}", "t.etchir:3:13: error: expected ',' or '}' after the returned values, found '%0'"},
    {HDR "  return %3\n}", "t.etchir:3:10: error: use of undefined value %3 (values must be defined before use)"},
    {HDR "  %1 = const {value = 0x} : f32[]\n", "t.etchir:3:23: error: expected a number for 'value', found '0x'"},
    {HDR "  %1 = param \"w\" {init = gaussian(0, 1)} : f32[]\n",
     "t.etchir:3:26: error: expected an init kind (zeros, ones, const, uniform or normal), found 'gaussian'"},
    {HDR "  %1 = param \"w\" {init = uniform(0 1)} : f32[]\n",
     "t.etchir:3:36: error: expected ',' between the two arguments, found '1'"},
    {HDR "  %1 = softmax %0 {axis = 2} : f32[3,4]\n",
     "t.etchir:3:8: error: 'softmax' axis 2 is out of range for f32[3,4] (rank 2)"},
    {HDR "  %1 = neg %0 : f32[3,4] # comment\n", "t.etchir:3:26: error: unexpected character '#'"},
    {HDR "  %1 = neg %0 : f32[3,4]\x01\n", "t.etchir:3:25: error: unexpected byte 0x01"},
    {HDR "  %x = neg %0\n", "t.etchir:3:3: error: expected a value number after '%'"},
    {HDR "  %1 = neg %0\n  %2", "t.etchir:4:3: error: expected '{' or ':' after operands of 'neg', found '%2'"},
    {HDR "  %1 = param \"w\" : f32[]\n  return\n", "t.etchir:5:1: error: expected a returned value or '}' after 'return', found end of input"},
    {HDR "  %1 = const : f32[]\n", "t.etchir:3:8: error: 'const' requires attribute 'value'"},
    {HDR "  %1 = iota {axis = 2} : i32[3,4]\n", "t.etchir:3:8: error: iota axis 2 is out of range for rank 2"},
    {HDR "  %1 = input \"y\" {a = 1} : f32[]\n", "t.etchir:3:19: error: unknown attribute 'a' for 'input'"},
    {HDR "  %1 = reshape %0 : f32[5,2]\n", "t.etchir:3:8: error: cannot reshape f32[3,4] to f32[5,2]: 12 elements vs 10"},
    {HDR "  %1 = cast %0 : i32[3]\n", "t.etchir:3:18: error: written type i32[3] disagrees with the inferred i32[3,4]"},
    {HDR "  %1 = neg %0 {group = 2} : f32[3,4]\n",
     "t.etchir:3:24: error: expected a fusion group kind (elementwise, reduce, epilogue or rows), found '2'"},
    {HDR "  %1 = neg %0 {group = fused 1 at %1} : f32[3,4]\n",
     "t.etchir:3:24: error: expected a fusion group kind (elementwise, reduce, epilogue or rows), found 'fused'"},
    {HDR "  %1 = neg %0 {group = elementwise 0 at %1} : f32[3,4]\n",
     "t.etchir:3:36: error: a positive group number 0 is out of range (1 to 2147483647)"},
    {HDR "  %1 = neg %0 {group = elementwise 1 %1} : f32[3,4]\n",
     "t.etchir:3:38: error: expected 'at' after the group number, found '%1'"},
    {HDR "  %1 = neg %0 {group = elementwise 1 at 1} : f32[3,4]\n",
     "t.etchir:3:41: error: expected the value the group runs at (%N), found '1'"},
    {HDR "  %1 = param \"w\" {group = elementwise 1 at %1} : f32[]\n",
     "t.etchir:3:19: error: unknown attribute 'group' for 'param'"},
    /* groups are checked against each other once the graph's nodes are read: at the node's %N */
    {HDR "  %1 = neg %0 {group = elementwise 1 at %2} : f32[3,4]\n  return %1\n}\n",
     "t.etchir:3:3: error: in node %1 (neg): its fusion group runs at %2, which does not exist"},
    {HDR "  %1 = neg %0 {group = elementwise 1 at %2} : f32[3,4]\n  %2 = neg %1 {group = reduce 1 at %2} : f32[3,4]\n"
         "  return %2\n}\n",
     "t.etchir:4:3: error: in node %2 (neg): is in fusion group 1 as reduce at %2, but %1 is in it as elementwise at %2"},
    {HDR "  %1 = neg %0 {group = elementwise 1 at %0} : f32[3,4]\n  return %1\n}\n",
     "t.etchir:3:3: error: in node %1 (neg): fusion group 1 runs at %0, which is not one of its members"},
};

static void test_parse_errors(void **state) {
    (void)state;
    int n_bad = 0;
    for (size_t i = 0; i < sizeof err_cases / sizeof err_cases[0]; i++) {
        Arena *a = arena_new();
        Diag d;
        diag_init(&d, NULL);
        Graph *g = ir_parse(a, "t.etchir", err_cases[i].text, &d);
        const char *got = d.text ? d.text : "";
        size_t n = strcspn(got, "\n");
        if (g || strlen(err_cases[i].expect) != n || strncmp(got, err_cases[i].expect, n) != 0) {
            fprintf(stderr, "case %zu: %s\n  expected: %s\n  got:      %.*s\n", i, err_cases[i].text,
                    err_cases[i].expect, (int)n, got);
            n_bad++;
        } else if (d.n_errors != 1) {
            fprintf(stderr, "case %zu: %d errors reported, expected 1\n", i, d.n_errors);
            n_bad++;
        }
        diag_dispose(&d);
        arena_free(a);
    }
    assert_int_equal(n_bad, 0);
}

/* Truncations and single-byte mutations of a valid text: the parser must
 * never crash (run under ASan/UBSan), and whatever it accepts must verify and
 * round-trip. */
static void test_parse_mutations(void **state) {
    (void)state;
    Arena *a = arena_new();
    char *text = ir_print_to_string(build_all_ops(a));
    size_t len = strlen(text);
    char *buf = malloc(len + 1);
    static const char repl[] = {'\0', ' ', '\n', '%', '"', '\\', '{', '}', '[', ']', ',', ':', '=', '-', '9', '0',
                                'x', '@', '/', '\x80'};
    int accepted = 0, total = 0;
    /* every position gets a truncation plus two replacements, rotating
     * through repl so each byte value lands in every syntactic context */
    for (size_t pos = 0; pos < len; pos += 1) {
        for (size_t k = 0; k < 3; k++) {
            memcpy(buf, text, len + 1);
            buf[pos] = k == 0 ? '\0' : repl[1 + (pos * 2 + k) % (sizeof repl - 1)];
            Arena *b = arena_new();
            Diag d;
            diag_init(&d, NULL);
            Graph *g = ir_parse(b, "m.etchir", buf, &d);
            total++;
            if (g) {
                accepted++;
                assert_int_equal(d.n_errors, 0);
                assert_true(ir_verify(g, &d));
                char *s1 = ir_print_to_string(g);
                Graph *g2 = ir_parse(b, "m2.etchir", s1, &d);
                assert_non_null(g2);
                char *s2 = ir_print_to_string(g2);
                assert_string_equal(s1, s2);
                free(s1);
                free(s2);
            } else {
                assert_int_equal(d.n_errors, 1);
            }
            diag_dispose(&d);
            arena_free(b);
        }
    }
    assert_true(accepted > 0 && accepted < total);
    free(buf);
    free(text);
    arena_free(a);
}

/* ---- verifier ---------------------------------------------------------------- */

/* Runs the verifier and checks it fails with a message containing want. */
static void assert_verify_fails(const Graph *g, const char *want) {
    Diag d;
    diag_init(&d, NULL);
    bool ok = ir_verify(g, &d);
    if (ok || !d.text || !strstr(d.text, want)) {
        fprintf(stderr, "expected a verifier error containing: %s\ngot: %s\n", want, d.text ? d.text : "(none)");
        fail();
    }
    diag_dispose(&d);
}

static void test_verify_accepts_built_graphs(void **state) {
    (void)state;
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    assert_true(ir_verify(build_small(a), &d));
    assert_true(ir_verify(build_all_ops(a), &d));
    assert_int_equal(d.n_errors, 0);
    diag_dispose(&d);
    arena_free(a);
}

static void test_verify_forward_operand(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = build_small(a);
    g->nodes[4].in[1] = 5; /* matmul now uses the reduce that follows it */
    assert_verify_fails(g, "nn.etch:7:12: error: in node %4 (matmul): operand 1 refers to %5, which does not precede it");
    g->nodes[4].in[1] = 4; /* itself */
    assert_verify_fails(g, "in node %4 (matmul): operand 1 refers to %4, which does not precede it");
    g->nodes[4].in[1] = 99;
    assert_verify_fails(g, "in node %4 (matmul): operand 1 refers to %99, which does not exist");
    arena_free(a);
}

static void test_verify_wrong_shape(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = build_small(a);
    g->nodes[3].shape = S(2, 128, 784);
    assert_verify_fails(g, "nn.etch:7:14: error: in node %3 (transpose): stored type f32[128,784] disagrees with the "
                           "inferred f32[784,128]");
    g = build_small(a);
    g->nodes[5].dtype = DT_F64;
    assert_verify_fails(g, "in node %5 (reduce_sum): stored type f64[64,1] disagrees with the inferred f32[64,1]");
    g = build_small(a);
    g->nodes[2].shape.rank = 9;
    assert_verify_fails(g, "in node %2 (reshape): invalid result shape: its rank is out of range");
    g = build_small(a);
    g->nodes[0].shape.dim[0] = 32; /* an input whose type no longer matches its users */
    g->nodes[0].attr.shape.dim[0] = 32;
    assert_verify_fails(g, "mlp.etch:7:22: error: in node %2 (reshape): cannot reshape f32[32,1,28,28] to f32[64,784]");
    arena_free(a);
}

static void test_verify_bad_attrs(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = build_small(a);
    g->nodes[3].attr.axes[1] = 1;
    assert_verify_fails(g, "in node %3 (transpose): perm [1, 1] is not a permutation of the operand's 2 axes");
    g->nodes[3].attr.n_axes = 3;
    assert_verify_fails(g, "in node %3 (transpose): perm [1, 1, 0] is not a permutation");
    g = build_small(a);
    g->nodes[5].attr.axes[0] = 2;
    assert_verify_fails(g, "in node %5 (reduce_sum): axis 2 is out of range for a rank-2 operand");
    g->nodes[5].attr.n_axes = 2;
    g->nodes[5].attr.axes[0] = 1;
    g->nodes[5].attr.axes[1] = 1;
    assert_verify_fails(g, "in node %5 (reduce_sum): axis 1 is listed twice");
    g = build_small(a);
    g->nodes[2].attr.shape = S(2, 64, 785);
    assert_verify_fails(g, "in node %2 (reshape): cannot reshape f32[64,1,28,28] to f32[64,785]");
    g = build_small(a);
    g->nodes[4].n_in = 1;
    assert_verify_fails(g, "in node %4 (matmul): has 1 operand but 'matmul' takes 2");
    g = build_small(a);
    g->nodes[6].op = (OpKind)77;
    assert_verify_fails(g, "in node %6 (?): unknown op kind 77");
    arena_free(a);
}

static void test_verify_lists_and_names(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = build_all_ops(a);
    g->n_inputs = 1;
    assert_verify_fails(g, "all.etch:2:1: error: in node %1 (input): is missing from the graph's inputs list");
    g = build_all_ops(a);
    g->inputs[0] = 1, g->inputs[1] = 0;
    assert_verify_fails(g, "in node %0 (input): should be entry 0 of the graph's inputs list, which holds %1 there");
    g = build_all_ops(a);
    graph_add_output(g, 7); /* grows the outputs array; then corrupt the params list */
    g->params[g->n_params++] = 7;
    assert_verify_fails(g, "in graph all_ops: params list entry 5 is %7, which is not one of its 5 param nodes");
    g = build_all_ops(a);
    g->nodes[3].attr.name = "w";
    assert_verify_fails(g, "in node %3 (param): param name \"w\" is already used by %2");
    g = build_all_ops(a);
    g->nodes[1].attr.name = "";
    assert_verify_fails(g, "in node %1 (input): has no name");
    g = build_all_ops(a);
    g->outputs[1] = g->n_nodes;
    assert_verify_fails(g, "in graph all_ops: output 1 refers to");
    arena_free(a);
}

/* The verifier's checks of fusion groups (verify_groups), on build_small:
 * %0 input, %1 param, %2 reshape, %3 transpose, %4 matmul, %5 reduce_sum, %6 const. */
static void test_verify_groups(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = build_small(a);
    g->nodes[4].attr.group = (FuseGroup){FUSE_EPILOGUE, 1, 4};
    g->nodes[5].attr.group = (FuseGroup){FUSE_EPILOGUE, 1, 4};
    g->nodes[2].attr.group = (FuseGroup){FUSE_ELEMENTWISE, 7, 3};
    g->nodes[3].attr.group = (FuseGroup){FUSE_ELEMENTWISE, 7, 3};
    Diag d;
    diag_init(&d, stderr);
    assert_true(ir_verify(g, &d)); /* the verifier checks consistency, not what pays */
    diag_dispose(&d);
    g->nodes[3].attr.group.at = 2;
    assert_verify_fails(g, "nn.etch:7:14: error: in node %3 (transpose): is in fusion group 7 as elementwise at %2, but "
                           "%2 is in it as elementwise at %3");
    g->nodes[3].attr.group = (FuseGroup){FUSE_REDUCE, 7, 3};
    assert_verify_fails(g, "in node %3 (transpose): is in fusion group 7 as reduce at %3, but %2 is in it as elementwise");
    g->nodes[2].attr.group.kind = FUSE_REDUCE;
    assert_verify_fails(g, "in node %2 (reshape): reduce group 7 runs at %3, which is not a reduction");
    g->nodes[2].attr.group.kind = g->nodes[3].attr.group.kind = FUSE_ROWS;
    assert_verify_fails(g, "in node %2 (reshape): rows group 7 holds no reduction or softmax");
    g->nodes[2].attr.group.kind = g->nodes[3].attr.group.kind = FUSE_EPILOGUE;
    assert_verify_fails(g, "in node %2 (reshape): epilogue group 7 holds 0 matmuls (exactly one expected)");
    g->nodes[2].attr.group = g->nodes[3].attr.group = (FuseGroup){0};
    g->nodes[4].attr.group.kind = g->nodes[5].attr.group.kind = FUSE_ROWS;
    assert_verify_fails(g, "in node %4 (matmul): rows group 1 holds a matmul (only an epilogue group may)");
    g->nodes[4].attr.group = (FuseGroup){0};
    assert_verify_fails(g, "in node %5 (reduce_sum): fusion group 1 runs at %4, which is not one of its members");
    g->nodes[5].attr.group = (FuseGroup){FUSE_REDUCE, 8, 5};
    assert_verify_fails(g, "in node %5 (reduce_sum): fusion group number 8 is out of range (1 to 7)");
    g->nodes[5].attr.group = (FuseGroup){FUSE_REDUCE, 1, 7};
    assert_verify_fails(g, "in node %5 (reduce_sum): its fusion group runs at %7, which does not exist");
    g->nodes[5].attr.group = (FuseGroup){FUSE_KIND_COUNT, 1, 5};
    assert_verify_fails(g, "in node %5 (reduce_sum): invalid fusion group kind 5");
    g->nodes[5].attr.group = (FuseGroup){FUSE_NONE, 1, 5};
    assert_verify_fails(g, "in node %5 (reduce_sum): has group number 1 and position %5 but no group kind");
    g->nodes[5].attr.group = (FuseGroup){0};
    g->nodes[1].attr.group = (FuseGroup){FUSE_ELEMENTWISE, 1, 1};
    assert_verify_fails(g, "in node %1 (param): a param cannot be in a fusion group");
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_small),
        cmocka_unit_test(test_parse_fields),
        cmocka_unit_test(test_fusion_groups),
        cmocka_unit_test(test_roundtrip_all_ops),
        cmocka_unit_test(test_roundtrip_floats),
        cmocka_unit_test(test_roundtrip_strings),
        cmocka_unit_test(test_parse_lenient_input),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_mutations),
        cmocka_unit_test(test_verify_accepts_built_graphs),
        cmocka_unit_test(test_verify_forward_operand),
        cmocka_unit_test(test_verify_wrong_shape),
        cmocka_unit_test(test_verify_bad_attrs),
        cmocka_unit_test(test_verify_lists_and_names),
        cmocka_unit_test(test_verify_groups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
