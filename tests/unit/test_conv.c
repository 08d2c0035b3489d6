/* test_conv.c: convolution and pooling (ir/ops/conv.c, ir/ops/pool.c).
 *  - emitted C against the eager executor, as test_codegen_ops does for the
 *    other ops, at -O0 and -O2: conv2d and both of its gradient kernels over
 *    stride/padding/dilation/groups combinations and odd sizes, max/avg
 *    pooling forward and backward, and a conv-bias-relu-pool chain;
 *  - finite-difference gradient checks in float64 on the eager executor
 *    (dL/dx and dL/dw of conv2d, dL/dx of both pools), as test_autodiff does;
 *  - shape-rule messages, textual-IR errors, and CSE keeping convolutions
 *    apart when only their attributes differ. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/build.h"
#include "codegen/c/emit_c.h"
#include "ir/eager.h"
#include "ir/params.h"
#include "passes/autodiff.h"
#include "passes/pass.h"
#include "runtime/etch_rt.h"

static SrcLoc L = {"conv.etch", 1, 1};

static Shape S(int rank, ...) {
    Shape s = {.rank = rank};
    va_list ap;
    va_start(ap, rank);
    for (int i = 0; i < rank; i++) s.dim[i] = va_arg(ap, int);
    va_end(ap);
    return s;
}

static int add(Graph *g, OpKind op, int n, const int *ins, const NodeAttrs *at) {
    Diag d;
    diag_init(&d, stderr);
    int id = graph_add_op(g, op, ins, n, at, L, &d);
    diag_dispose(&d);
    assert_true(id >= 0);
    return id;
}

/* Window attributes: conv (stride, pad, dilation, groups) and pool (kernel, stride, pad). */
static NodeAttrs CA(int sh, int sw, int ph, int pw, int dh, int dw, int groups) {
    return (NodeAttrs){.conv = {.stride = {sh, sw}, .pad = {ph, pw}, .dilation = {dh, dw}, .groups = groups}};
}
static NodeAttrs PA(int kh, int kw, int sh, int sw, int ph, int pw) {
    return (NodeAttrs){.conv = {.kernel = {kh, kw}, .stride = {sh, sw}, .pad = {ph, pw}}};
}

static Tensor *random_tensor(DType t, Shape s, uint64_t seed, double lo, double hi) {
    Tensor *x = tensor_new(t, s);
    uint32_t r[4];
    for (int64_t i = 0; i < tensor_numel(x); i++) {
        etch_philox4x32(seed, 7, (uint64_t)i, r);
        tensor_set(x, i, lo + (hi - lo) * etch_u01(r[0]));
    }
    return x;
}

/* ---- emitted C vs eager ---- */

/* Runs g eagerly and as emitted C at -O0 and -O2 and compares every output:
 * |eager - compiled| <= 1e-5 (|eager| + max |eager| of that output), the
 * scale of a GEMM's rounding whatever its summation order. */
static void check_graph(Graph *g) {
    Diag d;
    diag_init(&d, stderr);
    assert_true(ir_verify(g, &d));
    Tensor *ins[64] = {0}, *outs[64] = {0};
    for (int i = 0; i < g->n_inputs; i++) {
        const Node *n = &g->nodes[g->inputs[i]];
        ins[i] = random_tensor(n->dtype, n->shape, 100 + (uint64_t)i, -1, 1);
    }
    Tensor **params = params_init(g, 0);
    assert_true(eager_run(g, ins, params, outs, NULL, &d));
    for (int level = 0; level <= 2; level += 2) {
        Graph *cg = g;
        if (level) {
            PassOptions po = {.opt_level = 2, .verify = true};
            cg = passes_run(graph_clone(g->arena, g, NULL), &po, &d);
            assert_non_null(cg);
        }
        char *dir = build_tempdir(&d);
        assert_non_null(dir);
        CGenOptions o = {.prefix = "m", .embed_weights = true, .param_values = params, .opt_level = level};
        CGenEntry entry = {cg, "forward"};
        assert_true(cgen_write(&entry, 1, &o, dir, NULL, &d));
        const char *src[] = {"model.c", "etch_rt.c"};
        assert_true(build_compile(dir, src, 2, "libm_test.so", true, "-O1", &d));
        char lib[4096];
        snprintf(lib, sizeof lib, "%s/libm_test.so", dir);
        void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
        if (!h) fprintf(stderr, "dlopen: %s\n", dlerror());
        assert_non_null(h);
        void (*fwd)(const void *const *, void *const *);
        *(void **)&fwd = dlsym(h, "m_forward_v");
        assert_non_null(fwd);
        const void *in_ptr[64];
        void *out_ptr[64];
        Tensor *got[64];
        for (int i = 0; i < g->n_inputs; i++) in_ptr[i] = ins[i]->data;
        for (int i = 0; i < g->n_outputs; i++) {
            got[i] = tensor_new(outs[i]->dtype, outs[i]->shape);
            out_ptr[i] = got[i]->data;
        }
        fwd(in_ptr, out_ptr);
        for (int i = 0; i < g->n_outputs; i++) {
            double scale = 0;
            for (int64_t k = 0; k < tensor_numel(outs[i]); k++) scale = fmax(scale, fabs(tensor_get(outs[i], k)));
            for (int64_t k = 0; k < tensor_numel(got[i]); k++) {
                double want = tensor_get(outs[i], k), have = tensor_get(got[i], k);
                if (!(fabs(want - have) <= 1e-5 * (fabs(want) + scale))) {
                    fprintf(stderr, "%s -O%d output %d element %lld: eager %.9g, compiled %.9g\n", g->name, level, i,
                            (long long)k, want, have);
                    fail();
                }
            }
            tensor_free(got[i]);
        }
        dlclose(h);
        build_rmtree(dir);
        free(dir);
    }
    for (int i = 0; i < g->n_inputs; i++) tensor_free(ins[i]);
    for (int i = 0; i < g->n_outputs; i++) tensor_free(outs[i]);
    params_free(g, params);
    diag_dispose(&d);
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
    check_graph(g);
    Graph *g2 = graph_new(a, "conv_f64");
    conv_case(g2, DT_F64, S(4, 2, 3, 9, 7), S(4, 4, 3, 3, 2), CA(2, 1, 0, 1, 1, 2, 1));
    conv_case(g2, DT_F64, S(4, 2, 4, 8, 8), S(4, 6, 2, 3, 3), CA(2, 2, 1, 1, 1, 1, 2));
    conv_case(g2, DT_F64, S(4, 1, 3, 6, 6), S(4, 2, 3, 1, 1), CA(1, 1, 0, 0, 1, 1, 1));
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

static double loss_value(const Graph *g, Tensor *const *params, Tensor *r) {
    Tensor *out[16] = {0};
    Diag d;
    diag_init(&d, stderr);
    assert_true(eager_run(g, (Tensor *[]){r}, params, out, NULL, &d));
    double v = tensor_get(out[0], 0);
    for (int i = 0; i < g->n_outputs; i++) tensor_free(out[i]);
    diag_dispose(&d);
    return v;
}

/* loss = sum(f * R) for a fixed random R; checks every element of every param's gradient. */
static void check_grad(Graph *g, int f) {
    int r = graph_add_input(g, "R", DT_F64, g->nodes[f].shape, L);
    int prod = add(g, OP_MUL, 2, (int[]){f, r}, NULL);
    NodeAttrs all = {.n_axes = g->nodes[prod].shape.rank};
    for (int i = 0; i < all.n_axes; i++) all.axes[i] = i;
    int loss = add(g, OP_REDUCE_SUM, 1, (int[]){prod}, &all);
    graph_add_output(g, loss);
    int grads[8];
    Diag d;
    diag_init(&d, stderr);
    assert_true(autodiff(g, loss, g->params, g->n_params, grads, &d));
    for (int i = 0; i < g->n_params; i++) graph_add_output(g, grads[i]);
    assert_true(ir_verify(g, &d));
    Tensor **params = params_init(g, 42);
    Tensor *rt = random_tensor(DT_F64, g->nodes[r].shape, 9, -1, 1);
    Tensor *out[16] = {0};
    assert_true(eager_run(g, (Tensor *[]){rt}, params, out, NULL, &d));
    for (int p = 0; p < g->n_params; p++) {
        Tensor *w = params[p];
        for (int64_t k = 0; k < tensor_numel(w); k++) {
            double orig = tensor_get(w, k), h = 1e-6 * fmax(1.0, fabs(orig));
            tensor_set(w, k, orig + h);
            double lp = loss_value(g, params, rt);
            tensor_set(w, k, orig - h);
            double lm = loss_value(g, params, rt);
            tensor_set(w, k, orig);
            double num = (lp - lm) / (2 * h), ana = tensor_get(out[1 + p], k);
            double err = fabs(num - ana) / fmax(1.0, fabs(num));
            if (err > 1e-6)
                fprintf(stderr, "%s: d/d%s[%lld]: autodiff %.10g, finite difference %.10g\n", g->name,
                        g->nodes[g->params[p]].attr.name, (long long)k, ana, num);
            assert_true(err <= 1e-6);
        }
    }
    for (int i = 0; i < g->n_outputs; i++) tensor_free(out[i]);
    tensor_free(rt);
    params_free(g, params);
    diag_dispose(&d);
}

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

static void expect_error(Graph *g, OpKind op, const int *ins, int n, const NodeAttrs *at, const char *want) {
    Diag d;
    diag_init(&d, NULL);
    assert_int_equal(graph_add_op(g, op, ins, n, at, (SrcLoc){"m.etch", 7, 19}, &d), -1);
    assert_non_null(d.text);
    if (!strstr(d.text, want)) fprintf(stderr, "got: %s\nwant: %s\n", d.text, want);
    assert_non_null(strstr(d.text, want));
    assert_non_null(strstr(d.text, "m.etch:7:19: error: "));
    diag_dispose(&d);
}

static void test_shape_errors(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "errors");
    int x = graph_add_input(g, "x", DT_F32, S(4, 8, 3, 28, 28), L), w = graph_add_input(g, "w", DT_F32, S(4, 6, 1, 5, 5), L);
    int x3 = graph_add_input(g, "x3", DT_F32, S(3, 3, 28, 28), L), xd = graph_add_input(g, "xd", DT_F64, S(4, 8, 3, 28, 28), L);
    int xs = graph_add_input(g, "xs", DT_F32, S(4, 1, 1, 2, 2), L), w1 = graph_add_input(g, "w1", DT_F32, S(4, 6, 1, 3, 3), L);
    int xi = graph_add_input(g, "xi", DT_I32, S(4, 1, 1, 4, 4), L), w4 = graph_add_input(g, "w4", DT_F32, S(4, 4, 1, 5, 5), L);
    NodeAttrs ok = CA(1, 1, 0, 0, 1, 1, 1);
    expect_error(g, OP_CONV2D, (int[]){x, w}, 2, &ok,
                 "conv2d: input has 3 channels but weight expects 1 (weight f32[6,1,5,5], groups 1)");
    expect_error(g, OP_CONV2D, (int[]){x3, w}, 2, &ok, "conv2d: input must be 4-D [N, C, H, W], got f32[3,28,28]");
    expect_error(g, OP_CONV2D, (int[]){x, x3}, 2, &ok,
                 "conv2d: weight must be 4-D [out_channels, in_channels/groups, kH, kW], got f32[3,28,28]");
    expect_error(g, OP_CONV2D, (int[]){xd, w}, 2, &ok,
                 "conv2d: input f64[8,3,28,28] and weight f32[6,1,5,5] must have the same floating-point dtype");
    NodeAttrs bad = CA(0, 1, 0, 0, 1, 1, 1);
    expect_error(g, OP_CONV2D, (int[]){xs, w1}, 2, &bad, "conv2d: stride must be positive, got [0, 1]");
    bad = CA(1, 1, -1, 0, 1, 1, 1);
    expect_error(g, OP_CONV2D, (int[]){xs, w1}, 2, &bad, "conv2d: padding must be non-negative, got [-1, 0]");
    bad = CA(1, 1, 0, 0, 1, 1, 4);
    expect_error(g, OP_CONV2D, (int[]){x, w}, 2, &bad, "conv2d: input channels 3 are not divisible by groups 4");
    bad = CA(1, 1, 0, 0, 1, 1, 3);
    expect_error(g, OP_CONV2D, (int[]){x, w4}, 2, &bad,
                 "conv2d: out_channels 4 are not divisible by groups 3 (weight f32[4,1,5,5])");
    expect_error(g, OP_CONV2D, (int[]){xs, w1}, 2, &ok,
                 "conv2d: kernel 3x3 (dilation [1, 1]) does not fit the padded input 2x2 (input f32[1,1,2,2], "
                 "padding [0, 0])");
    NodeAttrs p = PA(2, 2, 2, 2, 2, 0);
    expect_error(g, OP_MAX_POOL2D, (int[]){x}, 1, &p,
                 "max_pool2d: padding [2, 0] must be at most half of kernel_size [2, 2]");
    p = PA(3, 3, 1, 1, 0, 0);
    expect_error(g, OP_AVG_POOL2D, (int[]){xs}, 1, &p,
                 "avg_pool2d: kernel_size [3, 3] does not fit the padded input 2x2 (input f32[1,1,2,2], padding [0, 0])");
    expect_error(g, OP_AVG_POOL2D, (int[]){xi}, 1, &p, "avg_pool2d needs a floating-point tensor, got i32[1,1,4,4]");
    p = PA(2, 2, 2, 2, 0, 0);
    expect_error(g, OP_MAX_POOL2D, (int[]){x3}, 1, &p, "max_pool2d: input must be 4-D [N, C, H, W], got f32[3,28,28]");
    /* a backward op whose gradient does not match its forward */
    expect_error(g, OP_MAX_POOL2D_BWD, (int[]){x, x}, 2, &p,
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
    Diag d;
    diag_init(&d, stderr);
    PassOptions po = {.opt_level = 2, .verify = true};
    Graph *o = passes_run(graph_clone(a, g, NULL), &po, &d);
    assert_non_null(o);
    int convs = 0, pools = 0;
    for (int i = 0; i < o->n_nodes; i++) {
        convs += o->nodes[i].op == OP_CONV2D;
        pools += o->nodes[i].op == OP_MAX_POOL2D;
    }
    assert_int_equal(convs, 3);
    assert_int_equal(pools, 2);
    diag_dispose(&d);
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape_errors),        cmocka_unit_test(test_ir_text_errors),
        cmocka_unit_test(test_cse_keeps_attrs),     cmocka_unit_test(test_conv_gradients),
        cmocka_unit_test(test_pool_gradients),      cmocka_unit_test(test_chain_gradient),
        cmocka_unit_test(test_conv_codegen),        cmocka_unit_test(test_pool_codegen),
        cmocka_unit_test(test_lenet_block_codegen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
