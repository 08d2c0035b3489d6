/* test_qconv.c: the integer convolution qconv2d (ir/ops/quant.c's eager
 * kernel, codegen/c/ops/qconv.c's im2col + integer GEMM). Two checks on
 * shapes with padding (at a large zero point, so a padding tap read as 0
 * instead of zx would show), strides, dilation, per-channel multipliers that
 * send outputs past both clamp ends, u8 and i8 inputs, u8/i8/f32 outputs:
 *   - eager qconv2d equals eager qmatmul over an im2col the test builds itself
 *     (padding at zx), transposed to NCHW: the op means what it says;
 *   - the compiled program, loaded once per instruction set this CPU runs
 *     (ETCH_GEMM_ISA, ts_check_isas), is bit-identical to eager. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include <string.h>

#include "ir/eager.h"
#include "ir/quant.h"
#include "ir/tensor.h"
#include "runtime/etch_rt.h"
#include "unit/test_support.h"

static SrcLoc L = {"qconv.etch", 3, 7};

typedef struct QConvCase {
    int b, c, h, w, o, kh, kw, sh, sw, ph, pw, dh, dw;
    DType xt, yt;
    int zx, zy, lo, hi;
} QConvCase;

static int64_t out_dim(int in, int k, int s, int p, int d) { return (in + 2 * p - d * (k - 1) - 1) / s + 1; }

/* Adds case q's qconv2d and its im2col qmatmul as outputs 2i, 2i+1; their
 * inputs (x, cols) at in[0..1], params (w, b, mult, shift, w as [O, K]) at pv[0..4]. */
static void add_case(Graph *g, const QConvCase *q, int which, Tensor **in, Tensor **pv) {
    int64_t oh = out_dim(q->h, q->kh, q->sh, q->ph, q->dh), ow = out_dim(q->w, q->kw, q->sw, q->pw, q->dw);
    int64_t K = (int64_t)q->c * q->kh * q->kw, M = q->b * oh * ow;
    char name[7][16];
    static const char *const what[7] = {"x", "cols", "w", "b", "mult", "shift", "w2"};
    for (int i = 0; i < 7; i++) snprintf(name[i], sizeof name[i], "%s%d", what[i], which);
    Shape xs = S(4, q->b, q->c, q->h, q->w), ws = S(4, q->o, q->c, q->kh, q->kw);
    int x = graph_add_input(g, arena_strdup(g->arena, name[0]), q->xt, xs, L);
    int cols = graph_add_input(g, arena_strdup(g->arena, name[1]), q->xt, S(2, M, K), L);
    int p[5];
    Shape ps[5] = {ws, S(1, q->o), S(1, q->o), S(1, q->o), S(2, q->o, K)};
    for (int i = 0; i < 5; i++) {
        DType t = i == 0 || i == 4 ? DT_I8 : DT_I32;
        p[i] = graph_add_param(g, arena_strdup(g->arena, name[2 + i]), t, ps[i], (ParamInit){INIT_ZEROS, 0, 0}, true, L);
        pv[i] = tensor_new(t, ps[i]);
    }
    NodeAttrs at = {.dtype = q->yt, .quant = {.clamp = {q->lo, q->hi}, .zero_points = {q->zx, q->zy}},
                    .conv = {.stride = {q->sh, q->sw}, .pad = {q->ph, q->pw}, .dilation = {q->dh, q->dw}, .groups = 1}};
    graph_add_output(g, add(g, OP_QCONV2D, 5, (int[]){x, p[0], p[1], p[2], p[3]}, &at));
    graph_add_output(g, add(g, OP_QMATMUL, 5, (int[]){cols, p[4], p[1], p[2], p[3]}, &at));
    int lo = q->xt == DT_U8 ? 0 : -128;
    uint32_t r[4];
    in[0] = tensor_new(q->xt, xs);
    for (int64_t i = 0; i < tensor_numel(in[0]); i++) {
        etch_philox4x32(5, (uint64_t)which, (uint64_t)i, r);
        tensor_set(in[0], i, i % 17 == 0 ? lo + 255 : i % 19 == 0 ? lo : lo + (int)(r[0] % 256)); /* the extremes too */
    }
    for (int64_t i = 0; i < tensor_numel(pv[0]); i++) {
        etch_philox4x32(5, 100 + (uint64_t)which, (uint64_t)i, r);
        int v = i / K == 0 ? 127 : i / K == 1 ? -128 : (int)(r[0] % 256) - 128; /* channel 0, 1: the extremes */
        tensor_set(pv[0], i, v), tensor_set(pv[4], i, v);
    }
    for (int j = 0; j < q->o; j++) {
        etch_philox4x32(5, 200 + (uint64_t)which, (uint64_t)j, r);
        int32_t mult;
        int shift;
        assert_true(quant_multiplier((0.5 + etch_u01(r[0])) / (K * 64.0), &mult, &shift)); /* past both ends */
        tensor_set(pv[1], j, (int)(r[1] % 200001) - 100000);
        tensor_set(pv[2], j, mult);
        tensor_set(pv[3], j, shift);
    }
    /* the test's own im2col: row (image, oh, ow), column (c, ki, kj), padding at zx */
    in[1] = tensor_new(q->xt, S(2, M, K));
    for (int64_t m = 0; m < M; m++)
        for (int64_t k = 0; k < K; k++) {
            int64_t bi = m / (oh * ow), y = m / ow % oh, xx = m % ow, c = k / (q->kh * q->kw);
            int64_t ih = y * q->sh - q->ph + k / q->kw % q->kh * q->dh, iw = xx * q->sw - q->pw + k % q->kw * q->dw;
            bool inside = ih >= 0 && ih < q->h && iw >= 0 && iw < q->w;
            tensor_set(in[1], m * K + k, inside ? tensor_get(in[0], ((bi * q->c + c) * q->h + ih) * q->w + iw) : q->zx);
        }
}

enum { N_CASES = 6 };

static void test_qconv2d(void **state) {
    (void)state;
    static const QConvCase cases[N_CASES] = {
        /* padding 1x2 at zx 200, stride 2x1: u8 -> u8 with a clamp inside the range */
        {2, 3, 9, 7, 5, 3, 3, 2, 1, 1, 2, 1, 1, DT_U8, DT_U8, 200, 10, 10, 250},
        /* LeNet's first layer at batch 3 (5x5, padding 2), 20 channels (VNNI's 16-wide tiles + 4): i8 -> i8 */
        {3, 1, 12, 12, 20, 5, 5, 1, 1, 2, 2, 1, 1, DT_I8, DT_I8, -3, -5, -128, 127},
        /* to f32 */
        {2, 3, 9, 7, 5, 3, 3, 2, 1, 1, 2, 1, 1, DT_U8, DT_F32, 37, 0, 0, 0},
        /* dilation 2x3, padding on one axis, 150-long rows (LeNet's second layer's K) */
        {1, 6, 10, 11, 7, 5, 5, 1, 1, 0, 3, 2, 3, DT_U8, DT_U8, 0, 3, 3, 255},
        /* one image, one output pixel per row tile edge: 1x1 window, stride 3 */
        {1, 4, 7, 7, 3, 1, 1, 3, 3, 0, 0, 1, 1, DT_U8, DT_I8, 128, 0, -128, 127},
        /* 2.9 MB of scratch per image, over the emitter's 4 MiB chunk: one image per GEMM call, two calls */
        {2, 1, 512, 512, 2, 3, 3, 1, 1, 1, 1, 1, 1, DT_U8, DT_U8, 9, 4, 0, 255},
    };
    Arena *a = arena_new();
    Graph *g = graph_new(a, "qconv");
    Tensor *in[2 * N_CASES], *pv[5 * N_CASES], *want[2 * N_CASES] = {0};
    for (int i = 0; i < N_CASES; i++) add_case(g, &cases[i], i, in + 2 * i, pv + 5 * i);
    Diag d;
    diag_init(&d, stderr);
    assert_true(eager_run(g, in, pv, want, NULL, &d));
    for (int i = 0; i < N_CASES; i++) { /* NCHW of the qconv = the im2col product, transposed */
        const Tensor *y = want[2 * i], *ym = want[2 * i + 1];
        int64_t O = y->shape.dim[1], P = y->shape.dim[2] * y->shape.dim[3];
        for (int64_t k = 0; k < tensor_numel(y); k++) {
            int64_t bi = k / (O * P), o = k / P % O, p = k % P;
            if (tensor_get(y, k) != tensor_get(ym, (bi * P + p) * O + o))
                fail_msg("case %d: qconv2d element %lld differs from the im2col qmatmul", i, (long long)k);
        }
    }
    ts_check_isas(g, in, pv, want, 1, "test_qconv2d");
    /* the CUDA backend's implicit GEMM (codegen/cuda/ops/qgemm.c), kernels emulated on the CPU: bit for bit */
    ts_cuda_check(g, in, pv, want, &(TsTol){.exact = true, .eq_ok = true});
    for (int i = 0; i < 2 * N_CASES; i++) tensor_free(want[i]), tensor_free(in[i]);
    for (int i = 0; i < 5 * N_CASES; i++) tensor_free(pv[i]);
    diag_dispose(&d);
    arena_free(a);
}

/* The shape rule refuses groups, a float input, a bias of the wrong length. */
static void test_qconv2d_shape_errors(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "qerr");
    int x = graph_add_input(g, "x", DT_U8, S(4, 1, 4, 5, 5), L), xf = graph_add_input(g, "xf", DT_F32, S(4, 1, 4, 5, 5), L);
    int w = graph_add_param(g, "w", DT_I8, S(4, 2, 4, 3, 3), (ParamInit){INIT_ZEROS, 0, 0}, true, L);
    int v2 = graph_add_param(g, "v2", DT_I32, S(1, 2), (ParamInit){INIT_ZEROS, 0, 0}, true, L);
    int v3 = graph_add_param(g, "v3", DT_I32, S(1, 3), (ParamInit){INIT_ZEROS, 0, 0}, true, L);
    NodeAttrs at = {.dtype = DT_U8, .quant = {.clamp = {0, 255}},
                    .conv = {.stride = {1, 1}, .dilation = {1, 1}, .groups = 2}};
    Diag d;
    diag_init(&d, NULL);
    assert_int_equal(graph_add_op(g, OP_QCONV2D, (int[]){x, w, v2, v2, v2}, 5, &at, L, &d), -1);
    assert_non_null(strstr(d.text, "groups 1"));
    at.conv.groups = 1;
    diag_dispose(&d);
    diag_init(&d, NULL);
    assert_int_equal(graph_add_op(g, OP_QCONV2D, (int[]){xf, w, v2, v2, v2}, 5, &at, L, &d), -1);
    assert_non_null(strstr(d.text, "needs x i8/u8"));
    diag_dispose(&d);
    diag_init(&d, NULL);
    assert_int_equal(graph_add_op(g, OP_QCONV2D, (int[]){x, w, v3, v2, v2}, 5, &at, L, &d), -1);
    assert_non_null(strstr(d.text, "bias must be i32[2]"));
    int ok = graph_add_op(g, OP_QCONV2D, (int[]){x, w, v2, v2, v2}, 5, &at, L, &d);
    assert_true(ok >= 0);
    assert_int_equal(g->nodes[ok].shape.dim[2], 3);
    diag_dispose(&d);
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_qconv2d), cmocka_unit_test(test_qconv2d_shape_errors),
                                       cmocka_unit_test(ts_cuda_coverage_test)};
    ts_check_cuda_too();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
