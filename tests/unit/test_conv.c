/* test_conv.c: convolution and pooling (ir/ops/conv.c, ir/ops/pool.c).
 *  - emitted C against the eager executor, as test_codegen_ops does for the
 *    other ops, at -O0 and -O2: conv2d and both of its gradient kernels over
 *    stride/padding/dilation/groups combinations and odd sizes (both forms
 *    of the forward: direct up to 32 taps, im2col + GEMM above), max/avg
 *    pooling forward and backward, and a conv-bias-relu-pool chain; each
 *    of those graphs also through the CUDA backend, its kernels emulated on
 *    the CPU (unit/cuda_check.c), with cases that reach each of its conv
 *    renderings (codegen/cuda/ops/conv.c);
 *  - finite-difference gradient checks in float64 on the eager executor
 *    (dL/dx and dL/dw of conv2d, dL/dx of both pools), as test_autodiff does;
 *  - shape-rule messages, textual-IR errors, and CSE keeping convolutions
 *    apart when only their attributes differ. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/eager.h"
#include "ir/params.h"
#include "passes/pass.h"
#include "passes/transforms/autodiff.h"
#include "runtime/etch_rt.h"
#include "unit/test_support.h"

static SrcLoc L = {"conv.etch", 1, 1};

/* Window attributes: conv (stride, pad, dilation, groups) and pool (kernel, stride, pad). */
static NodeAttrs CA(int sh, int sw, int ph, int pw, int dh, int dw, int groups) {
    return (NodeAttrs){.conv = {.stride = {sh, sw}, .pad = {ph, pw}, .dilation = {dh, dw}, .groups = groups}};
}
static NodeAttrs PA(int kh, int kw, int sh, int sw, int ph, int pw) {
    return (NodeAttrs){.conv = {.kernel = {kh, kw}, .stride = {sh, sw}, .pad = {ph, pw}}};
}

/* ---- emitted C vs eager ---- */

/* Runs g eagerly and as emitted C at -O0 and -O2 and compares every output:
 * |eager - compiled| <= 1e-5 (|eager| + max |eager| of that output), the
 * scale of a GEMM's rounding whatever its summation order. */
static void check_graph(Graph *g) {
    ts_check_graph(g, &(TsTol){.lo = -1, .hi = 1, .rel = 1e-5, .scaled = true});
}

/* conv2d of a fresh input x by a fresh weight w, plus both gradient kernels
 * fed by a fresh output gradient: three outputs. */
static void conv_case(Graph *g, DType t, Shape xs, Shape ws, NodeAttrs at) {
    char name[16];
    snprintf(name, sizeof name, "x%d", g->n_inputs);
    int x = graph_add_input(g, name, t, xs, L);
    snprintf(name, sizeof name, "w%d", g->n_inputs);
    int w = graph_add_input(g, name, t, ws, L);
    int y = add(g, OP_CONV2D, 2, (int[]){x, w}, &at);
    snprintf(name, sizeof name, "gy%d", g->n_inputs);
    int gy = graph_add_input(g, name, t, g->nodes[y].shape, L);
    graph_add_output(g, y);
    at.shape = xs;
    graph_add_output(g, add(g, OP_CONV2D_BWD_INPUT, 2, (int[]){gy, w}, &at));
    at.shape = ws;
    graph_add_output(g, add(g, OP_CONV2D_BWD_WEIGHT, 2, (int[]){x, gy}, &at));
}

static void test_conv_codegen(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "conv_f32");
    conv_case(g, DT_F32, S(4, 2, 3, 9, 7), S(4, 4, 3, 3, 3), CA(1, 1, 1, 1, 1, 1, 1));       /* same padding */
    conv_case(g, DT_F32, S(4, 2, 3, 9, 7), S(4, 4, 3, 3, 2), CA(2, 1, 0, 1, 1, 2, 1));       /* odd everything */
    conv_case(g, DT_F32, S(4, 2, 4, 8, 8), S(4, 6, 2, 3, 3), CA(2, 2, 1, 1, 1, 1, 2));       /* groups */
    conv_case(g, DT_F32, S(4, 1, 4, 5, 6), S(4, 4, 1, 3, 3), CA(1, 1, 1, 1, 1, 1, 4));       /* depthwise */
    conv_case(g, DT_F32, S(4, 2, 3, 9, 7), S(4, 5, 3, 1, 1), CA(1, 1, 0, 0, 1, 1, 1));       /* pointwise: no im2col */
    conv_case(g, DT_F32, S(4, 2, 6, 5, 5), S(4, 4, 3, 1, 1), CA(1, 1, 0, 0, 1, 1, 2));       /* pointwise, grouped */
    conv_case(g, DT_F32, S(4, 2, 3, 9, 7), S(4, 5, 3, 1, 1), CA(2, 3, 0, 0, 1, 1, 1));       /* 1x1 strided */
    conv_case(g, DT_F32, S(4, 1, 2, 11, 10), S(4, 3, 2, 3, 3), CA(1, 3, 2, 2, 2, 2, 1));     /* dilation, big pad */
    conv_case(g, DT_F32, S(4, 1, 1, 28, 28), S(4, 6, 1, 5, 5), CA(1, 1, 2, 2, 1, 1, 1));     /* LeNet conv1 */
    conv_case(g, DT_F32, S(4, 3, 2, 4, 4), S(4, 2, 2, 4, 4), CA(1, 1, 0, 0, 1, 1, 1));       /* kernel = image: 1x1 out */
    /* up to 32 taps (c*kh*kw) the forward is direct (codegen/c/ops/conv.c): padding in
     * width only, wider than the window's reach, strides 3x2, vertical dilation */
    conv_case(g, DT_F32, S(4, 2, 2, 7, 9), S(4, 3, 2, 3, 4), CA(3, 2, 0, 3, 2, 1, 1));
    conv_case(g, DT_F32, S(4, 2, 5, 9, 7), S(4, 4, 5, 3, 3), CA(2, 1, 1, 0, 1, 1, 1));       /* 45 taps: im2col */
    /* stride 1 is the flat direct form: dilation, padding in height only, planes
     * that end mid-block (the last block reads the copy's slack) */
    conv_case(g, DT_F32, S(4, 2, 2, 9, 8), S(4, 3, 2, 3, 3), CA(1, 1, 2, 0, 2, 2, 1));
    /* the CUDA backend's renderings (codegen/cuda/ops/conv.c) beside direct and
     * small tiles: long sums over few outputs, split over a block's threads
     * (the forward and the input gradient over 2048 terms, the weight
     * gradient over 2 x 48 x 48 pixels) */
    conv_case(g, DT_F32, S(4, 2, 128, 6, 6), S(4, 128, 128, 4, 4), CA(1, 1, 1, 1, 1, 1, 1));
    conv_case(g, DT_F32, S(4, 2, 1, 48, 48), S(4, 1, 1, 3, 3), CA(1, 1, 1, 1, 1, 1, 1));
    /* enough output tiles (256 of 16 x 256) for the CUDA backend's biggest tiles */
    conv_case(g, DT_F32, S(4, 1, 4, 256, 256), S(4, 8, 4, 3, 3), CA(1, 1, 1, 1, 1, 1, 1));
    check_graph(g);
    Graph *g2 = graph_new(a, "conv_f64");
    conv_case(g2, DT_F64, S(4, 2, 3, 9, 7), S(4, 4, 3, 3, 2), CA(2, 1, 0, 1, 1, 2, 1));
    conv_case(g2, DT_F64, S(4, 2, 4, 8, 8), S(4, 6, 2, 3, 3), CA(2, 2, 1, 1, 1, 1, 2));
    conv_case(g2, DT_F64, S(4, 1, 3, 6, 6), S(4, 2, 3, 1, 1), CA(1, 1, 0, 0, 1, 1, 1));
    conv_case(g2, DT_F64, S(4, 2, 1, 7, 6), S(4, 3, 1, 3, 3), CA(1, 1, 1, 1, 1, 1, 1)); /* flat direct, f64 */
    check_graph(g2);
    arena_free(a);
}

/* max/avg pooling of a fresh input plus both backward kernels. */
static void pool_case(Graph *g, DType t, Shape xs, NodeAttrs at) {
    char name[16];
    snprintf(name, sizeof name, "x%d", g->n_inputs);
    int x = graph_add_input(g, name, t, xs, L);
    int mp = add(g, OP_MAX_POOL2D, 1, (int[]){x}, &at), ap = add(g, OP_AVG_POOL2D, 1, (int[]){x}, &at);
    snprintf(name, sizeof name, "gy%d", g->n_inputs);
    int gy = graph_add_input(g, name, t, g->nodes[mp].shape, L);
    graph_add_output(g, mp);
    graph_add_output(g, ap);
    graph_add_output(g, add(g, OP_MAX_POOL2D_BWD, 2, (int[]){x, gy}, &at));
    at.shape = xs;
    graph_add_output(g, add(g, OP_AVG_POOL2D_BWD, 1, (int[]){gy}, &at));
}

static void test_pool_codegen(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "pool");
    pool_case(g, DT_F32, S(4, 2, 3, 8, 8), PA(2, 2, 2, 2, 0, 0));  /* the usual */
    pool_case(g, DT_F32, S(4, 2, 2, 7, 9), PA(3, 3, 2, 2, 1, 1));  /* overlapping, padded, odd */
    pool_case(g, DT_F32, S(4, 1, 3, 7, 5), PA(3, 2, 1, 2, 1, 0));  /* rectangular */
    pool_case(g, DT_F32, S(4, 2, 1, 5, 5), PA(2, 2, 2, 2, 1, 1));  /* padding on a stride boundary */
    pool_case(g, DT_F64, S(4, 2, 2, 7, 6), PA(3, 3, 2, 1, 1, 1));
    check_graph(g);
    /* max pooling of quantized activations (i8/u8, no padding): a plain max */
    Graph *q = graph_new(a, "pool_8bit");
    for (int t = DT_I8; t <= DT_U8; t++) {
        int x = graph_add_input(q, t == DT_I8 ? "x8" : "xu8", (DType)t, S(4, 2, 3, 7, 6), L);
        graph_add_output(q, add(q, OP_MAX_POOL2D, 1, (int[]){x}, &(NodeAttrs){.conv = PA(3, 3, 2, 1, 0, 0).conv}));
    }
    ts_check_graph(q, &(TsTol){.exact = true});
    arena_free(a);
}

/* Values from a small set, so windows tie, with +0 and -0, -inf, 1 and 2, and
 * (with nans) NaNs of two payloads and signs: which element wins shows in the
 * bits. Gradients get no NaNs: where windows overlap, two NaNs add, and C
 * leaves which payload a sum keeps to the compiler (it may swap operands). */
static Tensor *tie_tensor(DType t, Shape s, uint64_t seed, bool nans) {
    static const uint32_t F32[] = {0x00000000u, 0x80000000u, 0x3f800000u, 0x40000000u,
                                   0xff800000u, 0x7fc00001u, 0xffc00002u, 0x3f800000u};
    static const uint64_t F64[] = {0x0ull, 0x8000000000000000ull, 0x3ff0000000000000ull, 0x4000000000000000ull,
                                   0xfff0000000000000ull, 0x7ff8000000000001ull, 0xfff8000000000002ull,
                                   0x3ff0000000000000ull};
    Tensor *r = ts_random_tensor(t, s, seed, 0, nans ? 8 : 5);
    int64_t n = shape_numel(&s);
    for (int64_t i = 0; i < n; i++) {
        if (t == DT_F32) {
            float *f = r->data;
            memcpy(&f[i], &F32[(int)f[i] & 7], 4);
        } else {
            double *f = r->data;
            memcpy(&f[i], &F64[(int)f[i] & 7], 8);
        }
    }
    return r;
}

/* Max pooling and its gradient, compiled, bit for bit the eager result on
 * inputs full of ties, signed zeros and NaNs: the first maximum wins a tie,
 * the last NaN wins, and the gradient goes where the eager kernel sends it
 * (a gradient of -0 lands as +0, as 0 + -0). Window shapes: tiled (the
 * store-every-element backward), with leftover rows and columns, gaps
 * between windows, overlapping, and padded. */
static void test_max_pool_exact(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "pool_exact");
    const struct {
        DType t;
        Shape xs;
        NodeAttrs at;
    } cases[] = {
        {DT_F32, S(4, 2, 3, 8, 8), PA(2, 2, 2, 2, 0, 0)}, {DT_F32, S(4, 1, 2, 7, 9), PA(2, 2, 2, 2, 0, 0)},
        {DT_F32, S(4, 1, 2, 8, 8), PA(2, 2, 3, 3, 0, 0)}, {DT_F32, S(4, 1, 2, 7, 7), PA(3, 3, 2, 1, 0, 0)},
        {DT_F32, S(4, 1, 2, 7, 6), PA(3, 3, 2, 2, 1, 1)}, {DT_F64, S(4, 2, 2, 6, 6), PA(2, 2, 2, 2, 0, 0)},
        {DT_F64, S(4, 1, 2, 7, 6), PA(3, 2, 1, 2, 1, 1)},
    };
    enum { N = sizeof cases / sizeof cases[0] };
    Tensor *ins[2 * N];
    for (int i = 0; i < N; i++) {
        char xn[16], gn[16];
        snprintf(xn, sizeof xn, "x%d", i);
        snprintf(gn, sizeof gn, "gy%d", i);
        int x = graph_add_input(g, xn, cases[i].t, cases[i].xs, L);
        int y = add(g, OP_MAX_POOL2D, 1, (int[]){x}, &cases[i].at);
        int gy = graph_add_input(g, gn, cases[i].t, g->nodes[y].shape, L);
        graph_add_output(g, y);
        graph_add_output(g, add(g, OP_MAX_POOL2D_BWD, 2, (int[]){x, gy}, &cases[i].at));
        ins[2 * i] = tie_tensor(cases[i].t, cases[i].xs, 100 + (uint64_t)i, true);
        ins[2 * i + 1] = tie_tensor(cases[i].t, g->nodes[y].shape, 200 + (uint64_t)i, false);
    }
    ts_check_graph_with(g, ins, NULL, &(TsTol){.eq_ok = true, .nan_ok = true, .exact = true});
    for (int i = 0; i < 2 * N; i++) tensor_free(ins[i]);
    arena_free(a);
}

/* conv, bias, relu, pool, twice: what LeNet does, with params, through -O2's fusion. */
static void test_lenet_block_codegen(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "block");
    int x = graph_add_input(g, "x", DT_F32, S(4, 3, 1, 12, 12), L);
    int w1 = graph_add_param(g, "c1.weight", DT_F32, S(4, 4, 1, 3, 3), (ParamInit){INIT_UNIFORM, -0.3, 0.3}, false, L);
    int b1 = graph_add_param(g, "c1.bias", DT_F32, S(3, 4, 1, 1), (ParamInit){INIT_UNIFORM, -0.3, 0.3}, false, L);
    int w2 = graph_add_param(g, "c2.weight", DT_F32, S(4, 6, 4, 3, 3), (ParamInit){INIT_UNIFORM, -0.3, 0.3}, false, L);
    NodeAttrs c1 = CA(1, 1, 1, 1, 1, 1, 1), c2 = CA(1, 1, 0, 0, 1, 1, 1), p = PA(2, 2, 2, 2, 0, 0);
    int h = add(g, OP_CONV2D, 2, (int[]){x, w1}, &c1);
    h = add(g, OP_RELU, 1, (int[]){add(g, OP_ADD, 2, (int[]){h, b1}, NULL)}, NULL);
    h = add(g, OP_MAX_POOL2D, 1, (int[]){h}, &p);
    h = add(g, OP_TANH, 1, (int[]){add(g, OP_CONV2D, 2, (int[]){h, w2}, &c2)}, NULL);
    graph_add_output(g, add(g, OP_AVG_POOL2D, 1, (int[]){h}, &p));
    check_graph(g);
    arena_free(a);
}

/* ---- gradients: autodiff vs central finite differences, float64, eager ---- */

/* loss = sum(f * R) for a fixed random R; checks every element of every param's gradient. */
static void check_grad(Graph *g, int f) { ts_check_grad(g, f, 1e-6, 1e-6, 7, L); }

static int P64(Graph *g, const char *name, Shape s) {
    return graph_add_param(g, name, DT_F64, s, (ParamInit){INIT_UNIFORM, -1, 1}, false, L);
}

static void grad_conv(Shape xs, Shape ws, NodeAttrs at) {
    Arena *a = arena_new();
    Graph *g = graph_new(a, "grad_conv2d");
    int x = P64(g, "x", xs), w = P64(g, "w", ws);
    check_grad(g, add(g, OP_CONV2D, 2, (int[]){x, w}, &at));
    arena_free(a);
}

static void test_conv_gradients(void **state) {
    (void)state;
    grad_conv(S(4, 2, 2, 6, 5), S(4, 3, 2, 3, 3), CA(1, 1, 1, 1, 1, 1, 1));
    grad_conv(S(4, 1, 4, 7, 6), S(4, 4, 2, 2, 3), CA(2, 1, 0, 2, 2, 1, 2));
    grad_conv(S(4, 2, 3, 4, 5), S(4, 2, 3, 1, 1), CA(1, 1, 0, 0, 1, 1, 1));
    grad_conv(S(4, 1, 3, 5, 5), S(4, 3, 1, 3, 3), CA(2, 2, 1, 1, 1, 1, 3));
}

static void grad_pool(OpKind op, Shape xs, NodeAttrs at) {
    Arena *a = arena_new();
    Graph *g = graph_new(a, op_table[op].name);
    int x = P64(g, "x", xs);
    check_grad(g, add(g, op, 1, (int[]){x}, &at));
    arena_free(a);
}

static void test_pool_gradients(void **state) {
    (void)state;
    for (OpKind op = OP_MAX_POOL2D; op <= OP_AVG_POOL2D; op++) {
        grad_pool(op, S(4, 2, 2, 6, 6), PA(2, 2, 2, 2, 0, 0));
        grad_pool(op, S(4, 1, 2, 7, 5), PA(3, 3, 2, 1, 1, 1)); /* overlapping windows add up */
        grad_pool(op, S(4, 1, 1, 5, 6), PA(3, 2, 1, 2, 1, 1));
    }
}

/* Through a chain with a param shared by two convolutions (gradients add). */
static void test_chain_gradient(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "chain");
    int x = P64(g, "x", S(4, 2, 2, 8, 8)), w = P64(g, "w", S(4, 2, 2, 3, 3)), b = P64(g, "b", S(3, 2, 1, 1));
    NodeAttrs c = CA(1, 1, 1, 1, 1, 1, 1), p = PA(2, 2, 2, 2, 0, 0);
    int h = add(g, OP_TANH, 1, (int[]){add(g, OP_ADD, 2, (int[]){add(g, OP_CONV2D, 2, (int[]){x, w}, &c), b}, NULL)}, NULL);
    h = add(g, OP_MAX_POOL2D, 1, (int[]){h}, &p);
    check_grad(g, add(g, OP_AVG_POOL2D, 1, (int[]){add(g, OP_CONV2D, 2, (int[]){h, w}, &c)}, &p));
    arena_free(a);
}

/* ---- errors ---- */

static void test_shape_errors(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "errors");
    int x = graph_add_input(g, "x", DT_F32, S(4, 8, 3, 28, 28), L), w = graph_add_input(g, "w", DT_F32, S(4, 6, 1, 5, 5), L);
    int x3 = graph_add_input(g, "x3", DT_F32, S(3, 3, 28, 28), L), xd = graph_add_input(g, "xd", DT_F64, S(4, 8, 3, 28, 28), L);
    int xs = graph_add_input(g, "xs", DT_F32, S(4, 1, 1, 2, 2), L), w1 = graph_add_input(g, "w1", DT_F32, S(4, 6, 1, 3, 3), L);
    int xi = graph_add_input(g, "xi", DT_I32, S(4, 1, 1, 4, 4), L), w4 = graph_add_input(g, "w4", DT_F32, S(4, 4, 1, 5, 5), L);
    NodeAttrs ok = CA(1, 1, 0, 0, 1, 1, 1);
    ts_expect_error(g, OP_CONV2D, (int[]){x, w}, 2, &ok,
                 "conv2d: input has 3 channels but weight expects 1 (weight f32[6,1,5,5], groups 1)");
    ts_expect_error(g, OP_CONV2D, (int[]){x3, w}, 2, &ok, "conv2d: input must be 4-D [N, C, H, W], got f32[3,28,28]");
    ts_expect_error(g, OP_CONV2D, (int[]){x, x3}, 2, &ok,
                 "conv2d: weight must be 4-D [out_channels, in_channels/groups, kH, kW], got f32[3,28,28]");
    ts_expect_error(g, OP_CONV2D, (int[]){xd, w}, 2, &ok,
                 "conv2d: input f64[8,3,28,28] and weight f32[6,1,5,5] must have the same floating-point dtype");
    NodeAttrs bad = CA(0, 1, 0, 0, 1, 1, 1);
    ts_expect_error(g, OP_CONV2D, (int[]){xs, w1}, 2, &bad, "conv2d: stride must be positive, got [0, 1]");
    bad = CA(1, 1, -1, 0, 1, 1, 1);
    ts_expect_error(g, OP_CONV2D, (int[]){xs, w1}, 2, &bad, "conv2d: padding must be non-negative, got [-1, 0]");
    bad = CA(1, 1, 0, 0, 1, 1, 4);
    ts_expect_error(g, OP_CONV2D, (int[]){x, w}, 2, &bad, "conv2d: input channels 3 are not divisible by groups 4");
    bad = CA(1, 1, 0, 0, 1, 1, 3);
    ts_expect_error(g, OP_CONV2D, (int[]){x, w4}, 2, &bad,
                 "conv2d: out_channels 4 are not divisible by groups 3 (weight f32[4,1,5,5])");
    ts_expect_error(g, OP_CONV2D, (int[]){xs, w1}, 2, &ok,
                 "conv2d: kernel 3x3 (dilation [1, 1]) does not fit the padded input 2x2 (input f32[1,1,2,2], "
                 "padding [0, 0])");
    NodeAttrs p = PA(2, 2, 2, 2, 2, 0);
    ts_expect_error(g, OP_MAX_POOL2D, (int[]){x}, 1, &p,
                 "max_pool2d: padding [2, 0] must be at most half of kernel_size [2, 2]");
    p = PA(3, 3, 1, 1, 0, 0);
    ts_expect_error(g, OP_AVG_POOL2D, (int[]){xs}, 1, &p,
                 "avg_pool2d: kernel_size [3, 3] does not fit the padded input 2x2 (input f32[1,1,2,2], padding [0, 0])");
    ts_expect_error(g, OP_AVG_POOL2D, (int[]){xi}, 1, &p, "avg_pool2d needs a floating-point tensor (or i8/u8 for max_pool2d without padding), got i32[1,1,4,4]");
    p = PA(2, 2, 2, 2, 0, 0);
    ts_expect_error(g, OP_MAX_POOL2D, (int[]){x3}, 1, &p, "max_pool2d: input must be 4-D [N, C, H, W], got f32[3,28,28]");
    /* a backward op whose gradient does not match its forward */
    ts_expect_error(g, OP_MAX_POOL2D_BWD, (int[]){x, x}, 2, &p,
                 "max_pool2d_backward: output gradient f32[8,3,28,28] does not match pooling f32[8,3,28,28] "
                 "(f32[8,3,14,14])");
    arena_free(a);
}

static void test_ir_text_errors(void **state) {
    (void)state;
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"graph g {\n  %0 = input \"x\" : f32[1,1,4,4]\n  %1 = input \"w\" : f32[1,1,3,3]\n"
         "  %2 = conv2d %0, %1 {stride = [1, 1], padding = [0, 0], groups = 1} : f32[1,1,2,2]\n  return %2\n}\n",
         "t.etchir:4:8: error: 'conv2d' requires attribute 'dilation'"},
        {"graph g {\n  %0 = input \"x\" : f32[1,1,4,4]\n"
         "  %1 = max_pool2d %0 {kernel = [2], stride = [2, 2], padding = [0, 0]} : f32[1,1,2,2]\n  return %1\n}\n",
         "t.etchir:3:34: error: expected ',' between the two values of the pair, found ']'"},
        {"graph g {\n  %0 = input \"x\" : f32[1,1,4,4]\n"
         "  %1 = avg_pool2d %0 {kernel = [2, 2], stride = [2, 2], padding = [0, 0], groups = 1} : f32[1,1,2,2]\n"
         "  return %1\n}\n",
         "t.etchir:3:75: error: unknown attribute 'groups' for 'avg_pool2d'"},
        {"graph g {\n  %0 = input \"x\" : f32[1,1,4,4]\n"
         "  %1 = max_pool2d %0 {kernel = [2, 2], stride = [1, 1], padding = [0, 0]} : f32[1,1,2,2]\n  return %1\n}\n",
         "written type f32[1,1,2,2] disagrees with the inferred f32[1,1,3,3]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Arena *a = arena_new();
        Diag d;
        diag_init(&d, NULL);
        assert_null(ir_parse(a, "t.etchir", cases[i].text, &d));
        if (!d.text || !strstr(d.text, cases[i].want)) fprintf(stderr, "got: %s\nwant: %s\n", d.text, cases[i].want);
        assert_non_null(d.text);
        assert_non_null(strstr(d.text, cases[i].want));
        diag_dispose(&d);
        arena_free(a);
    }
}

/* Two convolutions of the same operands and result type that differ only in
 * their attributes compute different things: CSE must keep both; identical
 * ones merge. */
static void test_cse_keeps_attrs(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "cse");
    int x = graph_add_input(g, "x", DT_F32, S(4, 1, 1, 5, 5), L), w = graph_add_input(g, "w", DT_F32, S(4, 1, 1, 3, 3), L);
    NodeAttrs plain = CA(1, 1, 0, 0, 1, 1, 1), dilated = CA(1, 1, 1, 1, 2, 2, 1);
    graph_add_output(g, add(g, OP_CONV2D, 2, (int[]){x, w}, &plain));
    graph_add_output(g, add(g, OP_CONV2D, 2, (int[]){x, w}, &dilated));
    graph_add_output(g, add(g, OP_CONV2D, 2, (int[]){x, w}, &plain));
    NodeAttrs p1 = PA(3, 3, 1, 1, 0, 0), p2 = PA(3, 3, 1, 1, 1, 1);
    int q = add(g, OP_MAX_POOL2D, 1, (int[]){x}, &p1), r = add(g, OP_MAX_POOL2D, 1, (int[]){x}, &p2);
    graph_add_output(g, q);
    graph_add_output(g, add(g, OP_CONV2D, 2, (int[]){r, w}, &plain));
    Graph *o = ts_optimize(g, 2);
    int convs = 0, pools = 0;
    for (int i = 0; i < o->n_nodes; i++) {
        convs += o->nodes[i].op == OP_CONV2D;
        pools += o->nodes[i].op == OP_MAX_POOL2D;
    }
    assert_int_equal(convs, 3);
    assert_int_equal(pools, 2);
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape_errors),        cmocka_unit_test(test_ir_text_errors),
        cmocka_unit_test(test_cse_keeps_attrs),     cmocka_unit_test(test_conv_gradients),
        cmocka_unit_test(test_pool_gradients),      cmocka_unit_test(test_chain_gradient),
        cmocka_unit_test(test_conv_codegen),        cmocka_unit_test(test_pool_codegen),
        cmocka_unit_test(test_max_pool_exact),
        cmocka_unit_test(test_lenet_block_codegen),
        cmocka_unit_test(ts_cuda_coverage_test),
    };
    ts_check_cuda_too();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
