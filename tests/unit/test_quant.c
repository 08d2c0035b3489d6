/* test_quant.c: the quantized dtypes and ops (docs/quantization.md).
 *   - ir/quant.c's fixed-point arithmetic: SaturatingRoundingDoublingHighMul
 *     and RoundingDivideByPOT at their edges, the q31 multiplier helper
 *     against double precision over many multipliers, the requantize product
 *     against an exact integer reference;
 *   - quantize / dequantize / fake_quant per tensor and per axis, i8 and u8,
 *     with rounding ties, saturation at both ends, NaN and infinities: known
 *     values in the eager executor, and emitted C bit-identical to it (-O0,
 *     -O2); casts, max and relu on i8/u8 likewise;
 *   - qmatmul (u8 and i8 activations; i8, u8 with a relu clamp, and f32
 *     results): emitted C bit-identical to eager, eager within one unit of an
 *     exact reference, saturating outputs included;
 *   - the specialized kernels (codegen/c/qgemm.c, the f32 quantize loops):
 *     every instruction-set variant this CPU runs, tile tails, saturation,
 *     rounding ties, a split over threads, bit-identical to eager;
 *   - fake_quant's straight-through gradient against finite differences of
 *     one quantum, away from the clamp edges;
 *   - shape-rule errors.
 * With ETCH_QUANT_DUMP=FILE.npz set it instead writes a random qmatmul and a
 * per-axis quantize (inputs, multipliers, eager results after checking the
 * emitted C bit-identical to them) for tests/e2e/test_quant_numpy.sh, which
 * recomputes them with NumPy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <string.h>
#include <unistd.h>

#include "codegen/build.h"
#include "codegen/c/emit_c.h"
#include "codegen/onnx/export.h"
#include "ir/eager.h"
#include "ir/params.h"
#include "ir/quant.h"
#include "ir/tensor.h"
#include "passes/transforms/autodiff.h"
#include "runtime/etch_rt.h"
#include "unit/test_support.h"

static SrcLoc L = {"quant.etch", 2, 5};
static const TsTol EXACT = {.lo = -3, .hi = 3, .exact = true, .eq_ok = true, .nan_ok = true};

static Tensor *vals(DType t, Shape s, const double *v) {
    Tensor *x = tensor_new(t, s);
    for (int64_t i = 0; i < tensor_numel(x); i++) tensor_set(x, i, v[i]);
    return x;
}

static int konst(Graph *g, double v, DType t) { return graph_add_const(g, v, t, S(0), L); }
static int param(Graph *g, const char *name, DType t, Shape s) {
    return graph_add_param(g, name, t, s, (ParamInit){INIT_ZEROS, 0, 0}, true, L);
}
static int qop(Graph *g, OpKind op, int x, int s, int z, int axis, DType to, int lo, int hi) {
    NodeAttrs at = {.axis = axis, .dtype = to, .quant.clamp = {lo, hi}};
    return add(g, op, 3, (int[]){x, s, z}, &at);
}

/* ---- the fixed-point arithmetic ---- */

static void test_fixed_point_edges(void **state) {
    (void)state;
    assert_int_equal(quant_srdhm(INT32_MIN, INT32_MIN), INT32_MAX); /* the one overflow */
    assert_int_equal(quant_srdhm(INT32_MAX, INT32_MAX), INT32_MAX - 1);
    assert_int_equal(quant_srdhm(1 << 30, 1 << 30), 1 << 29);      /* 0.5 * 0.5 */
    assert_int_equal(quant_srdhm(3, 1 << 30), 2);                  /* 1.5 -> 2: ties toward +infinity */
    assert_int_equal(quant_srdhm(-3, 1 << 30), -1);                /* -1.5 -> -1 (gemmlowp's nudge) */
    assert_int_equal(quant_srdhm(1, 1 << 30), 1);                  /* 0.5 -> 1 */
    assert_int_equal(quant_srdhm(-1, 1 << 30), 0);                 /* -0.5 -> 0 */
    assert_int_equal(quant_srdhm(-5, 1 << 30), -2);                /* -2.5 -> -2 */
    static const int32_t rs[][3] = {{5, 1, 3}, {-5, 1, -3}, {3, 1, 2}, {-3, 1, -2}, {1, 1, 1}, {-1, 1, -1},
                                    {6, 2, 2}, {-6, 2, -2}, {7, 2, 2}, {-7, 2, -2}, {5, 0, 5}, {-5, 0, -5},
                                    {INT32_MAX, 31, 1}, {INT32_MIN, 31, -1}, {1 << 30, 31, 1}, {-(1 << 30), 31, -1}};
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++)
        if (quant_rounding_shift(rs[i][0], rs[i][1]) != rs[i][2])
            fail_msg("rounding_shift(%d, %d) = %d, want %d", rs[i][0], rs[i][1], quant_rounding_shift(rs[i][0], rs[i][1]),
                     rs[i][2]);
    /* the left shift of a multiplier >= 1 saturates */
    int32_t q;
    int sh;
    assert_true(quant_multiplier(1000.0, &q, &sh));
    assert_true(q == 2097152000 && sh == 10); /* 1000 = 0.9765625 * 2^10 */
    assert_int_equal(quant_multiply(INT32_MAX / 4, q, sh), 2097151999); /* INT32_MAX * 0.9765625, rounded */
    assert_int_equal(quant_multiply(INT32_MIN / 4, q, sh), -2097152000); /* INT32_MIN * 0.9765625 */
}

/* round(p / 2^r), ties away from zero, exactly (p fits in 63 bits, r <= 62). */
static int64_t round_shift_exact(__int128 p, int r) {
    if (r <= 0) return (int64_t)(p * ((__int128)1 << -r));
    __int128 d = (__int128)1 << r, a = p < 0 ? -p : p, q = (a + d / 2) / d;
    return (int64_t)(p < 0 ? -q : q);
}

static void test_multiplier_helper(void **state) {
    (void)state;
    int32_t q;
    int sh;
    assert_true(quant_multiplier(0, &q, &sh) && q == 0 && sh == 0);
    assert_true(quant_multiplier(1.0, &q, &sh) && q == 1 << 30 && sh == 1);
    assert_true(quant_multiplier(0.5, &q, &sh) && q == 1 << 30 && sh == 0);
    assert_true(quant_multiplier(nextafter(1.0, 0), &q, &sh) && q == 1 << 30 && sh == 1); /* rounds up: carry */
    assert_true(quant_multiplier(1e-12, &q, &sh) && q == 0 && sh == 0); /* below 2^-32 */
    assert_false(quant_multiplier(-0.1, &q, &sh));
    assert_false(quant_multiplier(NAN, &q, &sh));
    assert_false(quant_multiplier(INFINITY, &q, &sh));
    assert_false(quant_multiplier(ldexp(1, 31), &q, &sh));
    uint32_t r[4];
    for (uint64_t i = 0; i < 20000; i++) {
        etch_philox4x32(11, 0, i, r);
        double m = ldexp(1 + etch_u01(r[0]), (int)(r[1] % 60) - 31); /* 2^-31 .. 2^29 */
        assert_true(quant_multiplier(m, &q, &sh));
        assert_true(q >= 1 << 30);
        /* within 1 ulp of q31 (round to nearest gives <= 0.5) of the real multiplier */
        double err = fabs((double)q - ldexp(m, 31 - sh));
        if (!(err <= 0.5)) fail_msg("m = %.17g: q31 %d shift %d is %.3g ulp off", m, q, sh, err);
        /* the fixed-point product within 1 of round(x * q31 * 2^(shift-31)) computed exactly
         * (two roundings against one), wherever the exact result fits in int32 */
        int32_t x = (int32_t)r[2] >> (r[3] % 31);
        if (sh > 0 && llabs((int64_t)x * ((int64_t)1 << sh)) > INT32_MAX) continue; /* the saturating left shift */
        int64_t want = round_shift_exact((__int128)x * q, 31 - sh);
        if (want > INT32_MAX || want < INT32_MIN) continue;
        int64_t got = quant_multiply(x, q, sh);
        if (llabs(got - want) > 1) fail_msg("%d * %.17g: got %lld, want %lld", x, m, (long long)got, (long long)want);
        /* and against the double-precision product x * m */
        if (fabs((double)got - (double)x * m) > 1.5 + fabs((double)x * m) * 0x1p-30)
            fail_msg("%d * %.17g: got %lld, double %.17g", x, m, (long long)got, (double)x * m);
    }
}

/* ---- quantize, dequantize, fake_quant ---- */

enum { NX = 24 };
static const double xs[NX] = {0.25, 0.75,  1.25, -0.25, -0.75, -1.25, -2,     1000, -1000, NAN,  INFINITY, -INFINITY,
                              0.1,  -0.05, 3.75, 62.25, 63.75, -64.25, 127.5, 0.5,  -0.5, 1.5, -1.5,     2.5};

static void test_quantize_known_values(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "known");
    int x = graph_add_input(g, "x", DT_F32, S(1, NX), L);
    graph_add_output(g, qop(g, OP_QUANTIZE, x, konst(g, 0.5, DT_F32), konst(g, 3, DT_I32), 0, DT_U8, 0, 0));
    graph_add_output(g, qop(g, OP_QUANTIZE, x, konst(g, 0.5, DT_F32), konst(g, -2, DT_I32), 0, DT_I8, 0, 0));
    Tensor *in = vals(DT_F32, S(1, NX), xs), *out[2];
    Diag d;
    diag_init(&d, stderr);
    assert_true(eager_run(g, &in, NULL, out, NULL, &d));
    /* x / 0.5 rounded half to even, + zero point, saturated; NaN is the zero point */
    static const int u8[NX] = {3, 5, 5, 3, 1, 1, 0, 255, 0, 3, 255, 0, 3, 3, 11, 127, 131, 0, 255, 4, 2, 6, 0, 8};
    static const int i8[NX] = {-2, 0,    0,   -2,  -4, -4,  -6,  127, -128, -2, 127, -128,
                               -2, -2, 6, 122, 126, -128, 127, -1, -3,   1,    -5,   3};
    for (int i = 0; i < NX; i++) {
        if (tensor_get(out[0], i) != u8[i]) fail_msg("u8 element %d (x = %g): %g, want %d", i, xs[i], tensor_get(out[0], i), u8[i]);
        if (tensor_get(out[1], i) != i8[i]) fail_msg("i8 element %d (x = %g): %g, want %d", i, xs[i], tensor_get(out[1], i), i8[i]);
    }
    ts_check_graph_with(g, &in, NULL, &EXACT);
    for (int i = 0; i < 2; i++) tensor_free(out[i]);
    tensor_free(in);
    diag_dispose(&d);
    arena_free(a);
}

static void test_quant_ops_compiled_exact(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "quant");
    int x = graph_add_input(g, "x", DT_F32, S(2, 4, 6), L);
    int s6 = param(g, "s6", DT_F32, S(1, 6)), z6 = param(g, "z6", DT_I32, S(1, 6));
    int s4 = param(g, "s4", DT_F32, S(1, 4)), z4 = param(g, "z4", DT_I32, S(1, 4));
    int s = konst(g, 0.5, DT_F32), z = konst(g, 3, DT_I32);
    int qi = qop(g, OP_QUANTIZE, x, s6, z6, 1, DT_I8, 0, 0);
    graph_add_output(g, qi);                                                        /* per axis 1, i8 */
    graph_add_output(g, qop(g, OP_QUANTIZE, x, s4, z4, 0, DT_U8, 0, 0));            /* per axis 0, u8 */
    int qu = qop(g, OP_QUANTIZE, x, s, z, 0, DT_U8, 0, 0);
    graph_add_output(g, qu);                                                        /* per tensor */
    graph_add_output(g, qop(g, OP_DEQUANTIZE, qi, s6, z6, 1, DT_COUNT, 0, 0));      /* per axis */
    graph_add_output(g, qop(g, OP_DEQUANTIZE, qu, s, z, 0, DT_COUNT, 0, 0));        /* per tensor */
    graph_add_output(g, qop(g, OP_FAKE_QUANT, x, s6, z6, 1, DT_COUNT, -128, 127));  /* per axis */
    graph_add_output(g, qop(g, OP_FAKE_QUANT, x, s, z, 0, DT_COUNT, 0, 15));        /* a 4-bit range */
    int gy = graph_add_input(g, "gy", DT_F32, S(2, 4, 6), L);
    graph_add_output(g, add(g, OP_FAKE_QUANT_BWD, 4, (int[]){gy, x, s4, z4},
                            &(NodeAttrs){.axis = 0, .quant.clamp = {0, 255}}));
    /* the dtypes through the plain ops: saturating casts, selects */
    int ci = U(g, OP_CAST, x, &(NodeAttrs){.dtype = DT_I8}), cu = U(g, OP_CAST, x, &(NodeAttrs){.dtype = DT_U8});
    graph_add_output(g, ci);
    graph_add_output(g, cu);
    graph_add_output(g, U(g, OP_RELU, qi, NULL));
    graph_add_output(g, B(g, OP_MAX, qi, ci));
    graph_add_output(g, U(g, OP_CAST, qi, &(NodeAttrs){.dtype = DT_F32}));
    graph_add_output(g, U(g, OP_CAST, qi, &(NodeAttrs){.dtype = DT_U8}));
    graph_add_output(g, U(g, OP_CAST, U(g, OP_CAST, qu, &(NodeAttrs){.dtype = DT_I32}), &(NodeAttrs){.dtype = DT_I8}));
    double xv[24], gv[24];
    for (int i = 0; i < 24; i++) xv[i] = xs[i], gv[i] = i + 1;
    Tensor *in[2] = {vals(DT_F32, S(2, 4, 6), xv), vals(DT_F32, S(2, 4, 6), gv)};
    Tensor *pv[4] = {vals(DT_F32, S(1, 6), (double[]){0.5, 0.25, 1, 0.1, 2, 0.03}),
                     vals(DT_I32, S(1, 6), (double[]){0, -3, 5, 0, 127, -128}),
                     vals(DT_F32, S(1, 4), (double[]){0.5, 0.05, 4, 1}), vals(DT_I32, S(1, 4), (double[]){128, 0, 255, 7})};
    ts_check_graph_with(g, in, pv, &EXACT);
    /* and again on random inputs around the ranges */
    ts_check_graph_with(g, NULL, pv, &(TsTol){.lo = -40, .hi = 40, .exact = true, .eq_ok = true});
    for (int i = 0; i < 4; i++) tensor_free(pv[i]);
    for (int i = 0; i < 2; i++) tensor_free(in[i]);
    arena_free(a);
}

/* ---- qmatmul ---- */

enum { M = 6, K = 9, N = 4 };

static int qmatmul(Graph *g, const int *ins, DType t, int zx, int zy, int lo, int hi) {
    return add(g, OP_QMATMUL, 5, ins, &(NodeAttrs){.dtype = t, .quant = {.clamp = {lo, hi}, .zero_points = {zx, zy}}});
}

static void test_qmatmul(void **state) {
    (void)state;
    static const double reals[N] = {0.0021, 0.0371, 1.7, 0.00043};
    double mult[N], shift[N];
    for (int j = 0; j < N; j++) {
        int32_t q;
        int sh;
        assert_true(quant_multiplier(reals[j], &q, &sh));
        mult[j] = q, shift[j] = sh;
    }
    double xu[M * K], xi[M * K], wv[N * K], bias[N] = {100, -2000, 7, 123456};
    uint32_t r[4];
    for (int i = 0; i < M * K; i++) {
        etch_philox4x32(5, 1, (uint64_t)i, r);
        xu[i] = r[0] % 256, xi[i] = (int)(r[1] % 256) - 128;
    }
    for (int i = 0; i < K; i++) xu[i] = 255, xu[K + i] = 0, xi[i] = 127, xi[K + i] = -128; /* extreme rows */
    for (int i = 0; i < N * K; i++) {
        etch_philox4x32(5, 2, (uint64_t)i, r);
        wv[i] = (int)(r[0] % 255) - 127;
    }
    Arena *a = arena_new();
    Graph *g = graph_new(a, "qmm");
    int x8u = graph_add_input(g, "xu", DT_U8, S(2, M, K), L), x8i = graph_add_input(g, "xi", DT_I8, S(2, M, K), L);
    int w = param(g, "w", DT_I8, S(2, N, K)), b = param(g, "b", DT_I32, S(1, N));
    int mu = param(g, "mult", DT_I32, S(1, N)), sh = param(g, "shift", DT_I32, S(1, N));
    graph_add_output(g, qmatmul(g, (int[]){x8u, w, b, mu, sh}, DT_U8, 128, 10, 10, 255)); /* relu: lo = zy */
    graph_add_output(g, qmatmul(g, (int[]){x8u, w, b, mu, sh}, DT_I8, 3, -5, -128, 127));
    graph_add_output(g, qmatmul(g, (int[]){x8i, w, b, mu, sh}, DT_I8, 0, 0, -100, 100));
    graph_add_output(g, qmatmul(g, (int[]){x8i, w, b, mu, sh}, DT_F32, -7, 0, 0, 0));
    Tensor *in[2] = {vals(DT_U8, S(2, M, K), xu), vals(DT_I8, S(2, M, K), xi)};
    Tensor *pv[4] = {vals(DT_I8, S(2, N, K), wv), vals(DT_I32, S(1, N), bias), vals(DT_I32, S(1, N), mult),
                     vals(DT_I32, S(1, N), shift)};
    ts_check_graph_with(g, in, pv, &EXACT);

    /* eager against an exact reference: acc exact in int64, then round(acc * q31 / 2^(31 - shift)) */
    Tensor *out[4];
    Diag d;
    diag_init(&d, stderr);
    assert_true(eager_run(g, in, pv, out, NULL, &d));
    static const int cfg[4][5] = {{0, 128, 10, 10, 255}, {0, 3, -5, -128, 127}, {1, 0, 0, -100, 100}, {1, -7, 0, 0, 0}};
    int at_lo = 0, at_hi = 0;
    for (int o = 0; o < 4; o++)
        for (int m = 0; m < M; m++)
            for (int j = 0; j < N; j++) {
                const double *xv = cfg[o][0] ? xi : xu;
                int64_t acc = (int64_t)bias[j];
                for (int k = 0; k < K; k++) acc += (int64_t)(xv[m * K + k] - cfg[o][1]) * (int64_t)wv[j * K + k];
                double got = tensor_get(out[o], m * N + j);
                if (o == 3) {
                    double want = (double)acc * mult[j] * ldexp(1, (int)shift[j] - 31);
                    assert_true(fabs(got - want) <= fabs(want) * 1e-6);
                    continue;
                }
                int64_t v = cfg[o][2] + round_shift_exact((__int128)acc * (int64_t)mult[j], 31 - (int)shift[j]);
                int64_t want = v < cfg[o][3] ? cfg[o][3] : v > cfg[o][4] ? cfg[o][4] : v;
                if (fabs(got - (double)want) > 1) fail_msg("qmatmul %d [%d,%d]: %g, want %lld", o, m, j, got, (long long)want);
                at_lo += got == cfg[o][3], at_hi += got == cfg[o][4];
            }
    assert_true(at_lo > 0 && at_hi > 0); /* the saturating edges were exercised */
    for (int i = 0; i < 4; i++) tensor_free(out[i]), tensor_free(pv[i]);
    for (int i = 0; i < 2; i++) tensor_free(in[i]);
    diag_dispose(&d);
    arena_free(a);
}

/* The specialized kernels (codegen/c/qgemm.c): every instruction-set variant
 * this CPU runs (ETCH_GEMM_ISA caps it), one and three threads, on shapes
 * whose M, N and K leave remainders of every tile (VNNI 4x4 and 1x16 tiles,
 * 64 bytes of k; packed 4x4 / 5x3 vectors; AVX2 2x4, 16 bytes of k), with extreme rows and columns
 * (x 255/0 or 127/-128, w 127/-128) so sums and outputs reach their edges,
 * and one shape big enough to be split over threads: bit-identical to eager. */
typedef struct QShape {
    int m, n, k;
    bool ties; /* values on the requantize roundings' ties instead of random ones */
} QShape;

/* Adds the qmatmuls of one shape to g (all four output kinds, or the i8 one
 * alone) with their operands' values at in[0..1] and pv[0..3]. */
static void add_qmatmul_case(Graph *g, const QShape *q, Tensor **in, Tensor **pv, int which, bool all) {
    char name[6][16];
    static const char *const what[6] = {"xu", "xi", "w", "b", "mult", "shift"};
    for (int i = 0; i < 6; i++) snprintf(name[i], sizeof name[i], "%s%d", what[i], which);
    int x8u = graph_add_input(g, arena_strdup(g->arena, name[0]), DT_U8, S(2, q->m, q->k), L);
    int x8i = graph_add_input(g, arena_strdup(g->arena, name[1]), DT_I8, S(2, q->m, q->k), L);
    int w = param(g, arena_strdup(g->arena, name[2]), DT_I8, S(2, q->n, q->k));
    int b = param(g, arena_strdup(g->arena, name[3]), DT_I32, S(1, q->n));
    int mu = param(g, arena_strdup(g->arena, name[4]), DT_I32, S(1, q->n));
    int sh = param(g, arena_strdup(g->arena, name[5]), DT_I32, S(1, q->n));
    const int *ins_u = (int[]){x8u, w, b, mu, sh}, *ins_i = (int[]){x8i, w, b, mu, sh};
    if (all) {
        graph_add_output(g, qmatmul(g, ins_u, DT_U8, 128, 10, 10, 255)); /* zx: the zero-point correction */
        graph_add_output(g, qmatmul(g, ins_u, DT_U8, 0, 0, 0, 255));
        graph_add_output(g, qmatmul(g, ins_i, DT_F32, 0, 0, 0, 0));
    }
    graph_add_output(g, qmatmul(g, ins_i, DT_I8, -3, -5, -128, 127)); /* i8 x: VNNI's flip to u8 */
    in[0] = tensor_new(DT_U8, S(2, q->m, q->k)), in[1] = tensor_new(DT_I8, S(2, q->m, q->k));
    pv[0] = tensor_new(DT_I8, S(2, q->n, q->k));
    for (int i = 1; i < 4; i++) pv[i] = tensor_new(DT_I32, S(1, q->n));
    uint32_t r[4];
    for (int64_t i = 0; i < (int64_t)q->m * q->k; i++) {
        etch_philox4x32(9, (uint64_t)which, (uint64_t)i, r);
        int64_t row = i / q->k;
        tensor_set(in[0], i, row == 0 ? 255 : row == 1 ? 0 : r[0] % 256);
        tensor_set(in[1], i, row == 0 ? 127 : row == 1 ? -128 : (int)(r[1] % 256) - 128);
    }
    for (int64_t i = 0; i < (int64_t)q->n * q->k; i++) {
        etch_philox4x32(9, 100 + (uint64_t)which, (uint64_t)i, r);
        int64_t col = i / q->k;
        tensor_set(pv[0], i, col == 0 ? 127 : col == 1 ? -128 : (int)(r[0] % 256) - 128);
    }
    if (q->ties) { /* zero weights, acc = bias: ties of both roundings (mult 2^30 halves, then / 2^13 or 2^1) */
        static const int32_t bias[8] = {24576, -24576, 24577, -24577, 3, -3, 5, -5}, shift[8] = {-13, -13, -13, -13, -1, -1, 0, 0};
        for (int64_t i = 0; i < (int64_t)q->n * q->k; i++) tensor_set(pv[0], i, 0);
        for (int j = 0; j < q->n; j++) {
            tensor_set(pv[1], j, bias[j % 8]);
            tensor_set(pv[2], j, 1 << 30);
            tensor_set(pv[3], j, shift[j % 8]);
        }
        return;
    }
    for (int j = 0; j < q->n; j++) {
        etch_philox4x32(9, 200 + (uint64_t)which, (uint64_t)j, r);
        int32_t mult;
        int shift;
        /* multipliers around 1 / (K * 64): outputs spread over the range and past it */
        assert_true(quant_multiplier((0.5 + etch_u01(r[0])) / (q->k * 64.0), &mult, &shift));
        tensor_set(pv[1], j, (int)(r[1] % 200001) - 100000);
        tensor_set(pv[2], j, mult);
        tensor_set(pv[3], j, shift);
    }
}

enum { N_QSHAPES = 7 };

static void test_qmatmul_kernels(void **state) {
    (void)state;
    /* 38x150x131: VNNI's packed weights (M >= 32; 4x4 tiles, row remainder 2, last panel 2 vectors with 10 columns
     * past N, K mod 4 = 3, transposed and scalar-packed edges); the last: 2.2M multiply-adds, packed, split in two
     * parts at --threads 3 */
    static const QShape shapes[N_QSHAPES] = {{1, 45, 131, false}, {7, 10, 200, false}, {5, 9, 64, false},
                                                {2, 3, 17, false},   {3, 8, 5, true},     {38, 150, 131, false},
                                                {40, 37, 1500, false}};
    Arena *a = arena_new();
    Graph *g = graph_new(a, "qgemm");
    Tensor *in[2 * N_QSHAPES + 2], *pv[4 * N_QSHAPES], *want[4 * N_QSHAPES + 2] = {0};
    for (int i = 0; i < N_QSHAPES; i++) add_qmatmul_case(g, &shapes[i], in + 2 * i, pv + 4 * i, i, i + 1 < N_QSHAPES);
    /* and the f32 -> u8/i8 per-tensor quantize (AVX2 multiplies by 1 / scale, exact but on ties): scale 123 * 2^-9,
     * whose inverse is inexact, and x on ties (k + 0.5) scale, near them, NaN, infinities; 39 values: a tail */
    enum { NQ = 39 };
    int xq = graph_add_input(g, "xq", DT_F32, S(1, NQ), L);
    int sq = konst(g, 123.0 / 512, DT_F32), zq = konst(g, 3, DT_I32);
    graph_add_output(g, qop(g, OP_QUANTIZE, xq, sq, zq, 0, DT_U8, 0, 0));
    graph_add_output(g, qop(g, OP_QUANTIZE, xq, sq, zq, 0, DT_I8, 0, 0));
    Tensor *xqv = in[2 * N_QSHAPES] = tensor_new(DT_F32, S(1, NQ));
    for (int i = 0; i < NQ; i++) {
        float tie = (float)((i - 20 + 0.5) * (123.0 / 512));
        tensor_set(xqv, i, i % 3 == 2 ? nextafterf(tie, i % 2 ? INFINITY : -INFINITY) : tie);
    }
    tensor_set(xqv, 0, NAN), tensor_set(xqv, 1, INFINITY), tensor_set(xqv, 4, -INFINITY);
    /* and many values for the float vector path (x * (1 / scale) in f32, exact away from ties): random ones over
     * the range and past |x / scale| = 1024 (the path's limit), and ones up to 8 ulps beside ties (its margin,
     * 2^-11, sends them to the exact loop); 4099 values: full vectors and a tail */
    enum { NR = 4099 };
    int xr = graph_add_input(g, "xr", DT_F32, S(1, NR), L);
    graph_add_output(g, qop(g, OP_QUANTIZE, xr, sq, zq, 0, DT_U8, 0, 0));
    graph_add_output(g, qop(g, OP_QUANTIZE, xr, sq, zq, 0, DT_I8, 0, 0));
    Tensor *xrv = in[2 * N_QSHAPES + 1] = tensor_new(DT_F32, S(1, NR));
    uint32_t rnd = 12345;
    for (int i = 0; i < NR; i++) {
        rnd = rnd * 1664525u + 1013904223u;
        double u = (rnd >> 8) / 16777216.0, t = (u - 0.5) * 2600; /* quotients in [-1300, 1300) */
        float x = (float)(t * (123.0 / 512));
        if (i % 2 == 0) { /* within 8 ulps of a tie: without the margin, about 2% of these would round wrong */
            x = (float)((floor(t) + 0.5) * (123.0 / 512));
            for (int j = 0, d = (i / 2) % 17 - 8; j < abs(d); j++) x = nextafterf(x, d < 0 ? -INFINITY : INFINITY);
        }
        tensor_set(xrv, i, x);
    }
    Diag d;
    diag_init(&d, stderr);
    assert_true(eager_run(g, in, pv, want, NULL, &d));
    /* one build at --threads 3, loaded once per instruction set */
    ts_check_isas(g, in, pv, want, 3, "test_qmatmul_kernels");
    /* the CUDA backend's integer GEMM (codegen/cuda/ops/qgemm.c) on the same shapes: each tile shape's row and
     * column edges, K tails of its 32-byte steps, both zero-point corrections */
    ts_cuda_check(g, in, pv, want, &EXACT);
    for (int i = 0; i < g->n_outputs; i++) tensor_free(want[i]);
    for (int i = 0; i < g->n_inputs; i++) tensor_free(in[i]);
    for (int i = 0; i < 4 * N_QSHAPES; i++) tensor_free(pv[i]);
    diag_dispose(&d);
    arena_free(a);
}

/* The packed weights (VNNI from 32 rows) are taken from the parameters at
 * every call: weights written through m_param_data between two calls (as
 * <prefix>_load does) give the new weights' results, bit-identical to eager,
 * in every variant this CPU runs. A packed copy kept across calls would give
 * the old ones. */
static void test_qmatmul_weights_change(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "qw");
    Tensor *in[2], *pv[2][4], *want[2][1] = {{0}};
    add_qmatmul_case(g, &(QShape){33, 20, 24, false}, in, pv[0], 0, false);
    Graph *g2 = graph_new(a, "qw2"); /* the same shape, other values: the second set of weights */
    Tensor *in2[2];
    add_qmatmul_case(g2, &(QShape){33, 20, 24, false}, in2, pv[1], 1, false);
    Diag d;
    diag_init(&d, stderr);
    for (int v = 0; v < 2; v++) assert_true(eager_run(g, in, pv[v], want[v], NULL, &d));
    char *dir = build_tempdir(&d);
    assert_non_null(dir);
    CGenOptions o = {.prefix = "m", .threads = 1};
    CGenEntry entry = {ts_optimize(g, 2), "forward"};
    assert_true(cgen_write(&entry, 1, &o, dir, NULL, &d));
    dlclose(ts_load_model(dir, "libq.so", "-O1"));
    const char *caps[3] = {"portable", "avx2", "any"};
    for (int c = 0; c < 3; c++) {
        setenv("ETCH_GEMM_ISA", caps[c], 1);
        void *h = ts_open_copy(dir, "libq.so", caps[c]);
        void (*fwd)(const void *const *, void *const *);
        *(void **)&fwd = dlsym(h, "m_forward_v");
        void *const *data = dlsym(h, "m_param_data");
        assert_non_null(fwd);
        assert_non_null(data);
        Tensor *got = tensor_new(want[0][0]->dtype, want[0][0]->shape);
        for (int v = 0; v < 2; v++) {
            for (int i = 0; i < 4; i++) memcpy(data[i], pv[v][i]->data, tensor_nbytes(pv[v][i])); /* w, b, mult, shift */
            fwd((const void *[]){in[0]->data, in[1]->data}, (void *[]){got->data});
            if (memcmp(got->data, want[v][0]->data, tensor_nbytes(got)))
                fail_msg("weights %d: differs from eager with ETCH_GEMM_ISA=%s", v, caps[c]);
        }
        tensor_free(got);
        dlclose(h);
    }
    unsetenv("ETCH_GEMM_ISA");
    build_rmtree(dir);
    free(dir);
    for (int v = 0; v < 2; v++) {
        tensor_free(want[v][0]);
        for (int i = 0; i < 4; i++) tensor_free(pv[v][i]);
        tensor_free(v ? in2[0] : in[0]), tensor_free(v ? in2[1] : in[1]);
    }
    diag_dispose(&d);
    arena_free(a);
}

/* ---- fake_quant's straight-through gradient ---- */

static double eager_scalar(const Graph *g, Tensor *const *params, Tensor *r, int which, int64_t k) {
    Tensor *out[3] = {0};
    Diag d;
    diag_init(&d, stderr);
    assert_true(eager_run(g, (Tensor *[]){r}, params, out, NULL, &d));
    double v = tensor_get(out[which], k);
    for (int i = 0; i < g->n_outputs; i++) tensor_free(out[i]);
    diag_dispose(&d);
    return v;
}

static void test_fake_quant_ste(void **state) {
    (void)state;
    for (int per_axis = 0; per_axis < 2; per_axis++) {
        Arena *a = arena_new();
        Graph *g = graph_new(a, "ste");
        int x = graph_add_param(g, "x", DT_F64, S(2, 3, 5), (ParamInit){INIT_ZEROS, 0, 0}, false, L);
        int s = per_axis ? param(g, "s", DT_F64, S(1, 3)) : konst(g, 0.1, DT_F64);
        int z = per_axis ? param(g, "z", DT_I32, S(1, 3)) : konst(g, 2, DT_I32);
        int y = qop(g, OP_FAKE_QUANT, x, s, z, 0, DT_COUNT, -8, 7); /* a 4-bit signed range */
        int rr = graph_add_input(g, "R", DT_F64, S(2, 3, 5), L);
        int loss = add(g, OP_REDUCE_SUM, 1, (int[]){B(g, OP_MUL, y, rr)}, &(NodeAttrs){.n_axes = 2, .axes = {0, 1}});
        graph_add_output(g, loss);
        int grad;
        Diag d;
        diag_init(&d, stderr);
        assert_true(autodiff(g, loss, &x, 1, &grad, &d));
        graph_add_output(g, grad);
        assert_true(ir_verify(g, &d));
        /* x at quantum midpoints +- a quarter (never a tie, never within a quantum of a clamp edge),
         * inside and outside the range; R random */
        double sc[3] = {0.1, 0.25, 0.03}, zp[3] = {2, -3, 0}, xv[15], rv[15];
        static const double steps[5] = {-20.25, -9.75, 0.25, 3.75, 14.25}; /* in quanta from the zero point */
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 5; i++) {
                double s_c = per_axis ? sc[c] : 0.1, z_c = per_axis ? zp[c] : 2;
                xv[c * 5 + i] = (steps[i] - z_c) * s_c, rv[c * 5 + i] = 0.5 + c - 0.3 * i;
            }
        Tensor *pv[3] = {vals(DT_F64, S(2, 3, 5), xv), vals(DT_F64, S(1, 3), sc), vals(DT_I32, S(1, 3), zp)};
        Tensor *r = vals(DT_F64, S(2, 3, 5), rv);
        int inside = 0, outside = 0;
        for (int64_t k = 0; k < 15; k++) {
            double ana = eager_scalar(g, pv, r, 1, k), h = per_axis ? sc[k / 5] : 0.1, orig = xv[k];
            tensor_set(pv[0], k, orig + h);
            double lp = eager_scalar(g, pv, r, 0, 0);
            tensor_set(pv[0], k, orig - h);
            double lm = eager_scalar(g, pv, r, 0, 0);
            tensor_set(pv[0], k, orig);
            double num = (lp - lm) / (2 * h);
            if (fabs(num - ana) > 1e-9 * fmax(1, fabs(num)))
                fail_msg("per_axis %d x[%lld] = %g: STE gradient %.12g, finite difference %.12g", per_axis, (long long)k,
                         orig, ana, num);
            inside += ana != 0, outside += ana == 0;
        }
        assert_true(inside >= 6 && outside >= 6); /* both sides of the clamp */
        /* the backward kernel compiled: its output (R or 0) exact; the loss, a sum of 15 products, within rounding,
         * as the CUDA backend adds a row in a tree of warp shuffles (codegen/cuda/rowgroup.c), not in order */
        ts_check_graph_with(g, &r, pv, &(TsTol){.lo = -3, .hi = 3, .rel = 1e-13, .eq_ok = true, .nan_ok = true});
        for (int i = 0; i < 3; i++) tensor_free(pv[i]);
        tensor_free(r);
        diag_dispose(&d);
        arena_free(a);
    }
}

/* ---- what the shape rules refuse ---- */

static void test_shape_errors(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "bad");
    int x = graph_add_input(g, "x", DT_F32, S(2, 4, 6), L), q = graph_add_input(g, "q", DT_I8, S(2, 4, 6), L);
    int s = konst(g, 0.5, DT_F32), z = konst(g, 0, DT_I32), s5 = param(g, "s5", DT_F32, S(1, 5));
    int z5 = param(g, "z5", DT_I32, S(1, 5));
    ts_expect_error(g, OP_QUANTIZE, (int[]){x, s, z}, 3, &(NodeAttrs){.dtype = DT_F32}, "'quantize' produces i8 or u8, not f32");
    ts_expect_error(g, OP_QUANTIZE, (int[]){x, s5, z5}, 3, &(NodeAttrs){.dtype = DT_I8, .axis = 1},
                    "'quantize' per-axis scale f32[5] does not match dim 1 of f32[4,6]");
    ts_expect_error(g, OP_QUANTIZE, (int[]){x, s, z}, 3, &(NodeAttrs){.dtype = DT_I8, .axis = 1},
                    "per tensor (scalar scale) takes axis 0");
    ts_expect_error(g, OP_DEQUANTIZE, (int[]){x, s, z}, 3, NULL, "'dequantize' needs an i8, u8 or i32 tensor, got f32[4,6]");
    ts_expect_error(g, OP_FAKE_QUANT, (int[]){x, s, z}, 3, &(NodeAttrs){.quant.clamp = {5, 4}}, "clamp [5, 4] must be an interval");
    ts_expect_error(g, OP_ADD, (int[]){q, q}, 2, NULL, "'add' is not defined on quantized i8[4,6]");
    ts_expect_error(g, OP_NEG, (int[]){q}, 1, NULL, "'neg' is not defined on quantized i8[4,6]");
    ts_expect_error(g, OP_REDUCE_SUM, (int[]){q}, 1, &(NodeAttrs){.n_axes = 1}, "'reduce_sum' is not defined on quantized");
    int w = param(g, "w", DT_I8, S(2, 3, 6)), b = param(g, "b", DT_I32, S(1, 3));
    int qa = graph_add_input(g, "qa", DT_U8, S(2, 4, 6), L);
    ts_expect_error(g, OP_QMATMUL, (int[]){qa, w, b, b, b}, 5, &(NodeAttrs){.dtype = DT_U8, .quant.clamp = {0, 255}, .quant.zero_points = {0, 300}},
                    "'qmatmul' output zero point 300 is outside [0, 255]");
    ts_expect_error(g, OP_QMATMUL, (int[]){qa, w, b, b, z}, 5, &(NodeAttrs){.dtype = DT_U8, .quant.clamp = {0, 255}},
                    "'qmatmul' shift must be i32[3], got i32[]");
    ts_expect_error(g, OP_QMATMUL, (int[]){x, w, b, b, b}, 5, &(NodeAttrs){.dtype = DT_U8}, "'qmatmul' needs x i8/u8 [M,K]");
    arena_free(a);
}

/* ---- the data of the NumPy cross-check (tests/e2e/quant_numpy.py) ---- */

enum { DM = 16, DK = 40, DN = 24, DC = 8, DL = 50 };

static etch_array arr(const Tensor *t) {
    etch_array a = {.dtype = ir_dtype_to_rt(t->dtype), .rank = t->shape.rank, .data = t->data};
    for (int i = 0; i < t->shape.rank; i++) a.dim[i] = t->shape.dim[i];
    return a;
}

static int dump_for_numpy(const char *path) {
    uint32_t r[4];
    double xv[DM * DK], wv[DN * DK], bias[DN], reals[DN], mult[DN], shift[DN], xf[DC * DL], sc[DC], zp[DC];
    for (int i = 0; i < DM * DK; i++) etch_philox4x32(21, 1, (uint64_t)i, r), xv[i] = r[0] % 256;
    for (int i = 0; i < DN * DK; i++) etch_philox4x32(21, 2, (uint64_t)i, r), wv[i] = (int)(r[0] % 255) - 127;
    for (int j = 0; j < DN; j++) {
        etch_philox4x32(21, 3, (uint64_t)j, r);
        bias[j] = (int)(r[0] % 200001) - 100000;
        reals[j] = ldexp(1 + etch_u01(r[1]), -(int)(r[2] % 16) - 1); /* 2^-16 .. 1 */
        int32_t q;
        int s;
        if (!quant_multiplier(reals[j], &q, &s)) return 1;
        mult[j] = q, shift[j] = s;
    }
    for (int c = 0; c < DC; c++) sc[c] = ldexp(1, -c) * 0.75, zp[c] = c * 9 - 30;
    for (int i = 0; i < DC * DL; i++) { /* half the values on exact ties of their channel's scale */
        etch_philox4x32(21, 4, (uint64_t)i, r);
        int c = i / DL, k = (int)(r[0] % 400) - 200;
        xf[i] = (r[1] & 1) ? (k + 0.5) * sc[c] : (etch_u01(r[2]) - 0.5) * 400 * sc[c];
    }
    Arena *a = arena_new();
    Graph *g = graph_new(a, "numpy");
    int x = graph_add_input(g, "x", DT_U8, S(2, DM, DK), L), f = graph_add_input(g, "xf", DT_F32, S(2, DC, DL), L);
    int w = param(g, "w", DT_I8, S(2, DN, DK)), b = param(g, "bias", DT_I32, S(1, DN));
    int mu = param(g, "mult", DT_I32, S(1, DN)), sh = param(g, "shift", DT_I32, S(1, DN));
    int s = param(g, "scale", DT_F32, S(1, DC)), z = param(g, "zero_point", DT_I32, S(1, DC));
    graph_add_output(g, qmatmul(g, (int[]){x, w, b, mu, sh}, DT_U8, 131, 7, 7, 250));
    graph_add_output(g, qop(g, OP_QUANTIZE, f, s, z, 0, DT_I8, 0, 0));
    Tensor *in[2] = {vals(DT_U8, S(2, DM, DK), xv), vals(DT_F32, S(2, DC, DL), xf)};
    Tensor *pv[6] = {vals(DT_I8, S(2, DN, DK), wv),   vals(DT_I32, S(1, DN), bias), vals(DT_I32, S(1, DN), mult),
                     vals(DT_I32, S(1, DN), shift), vals(DT_F32, S(1, DC), sc),   vals(DT_I32, S(1, DC), zp)};
    ts_check_graph_with(g, in, pv, &EXACT);
    Tensor *out[2], *re = vals(DT_F64, S(1, DN), reals);
    Diag d;
    diag_init(&d, stderr);
    if (!eager_run(g, in, pv, out, NULL, &d)) return 1;
    const char *names[] = {"x", "xf", "w", "bias", "mult", "shift", "scale", "zero_point", "y", "q", "reals"};
    etch_array arrays[11] = {arr(in[0]), arr(in[1]), arr(pv[0]), arr(pv[1]), arr(pv[2]), arr(pv[3]),
                             arr(pv[4]), arr(pv[5]), arr(out[0]), arr(out[1]), arr(re)};
    char err[512];
    int rc = etch_npz_write(path, 11, names, arrays, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    for (int i = 0; i < 6; i++) tensor_free(pv[i]);
    for (int i = 0; i < 2; i++) tensor_free(in[i]), tensor_free(out[i]);
    tensor_free(re);
    diag_dispose(&d);
    arena_free(a);
    return rc ? 1 : 0;
}

/* etch export writes quantize/dequantize as QuantizeLinear/DequantizeLinear
 * (tests/e2e/test_onnx_export.sh) but refuses qmatmul, whose fixed-point
 * requantization ONNX cannot state exactly: an error saying so, no file. */
static void test_qmatmul_not_exported(void **state) {
    (void)state;
    static const char text[] = "graph Net.forward {\n"
                               "  %0 = input \"x\" : f32[2,4]\n"
                               "  %1 = const {value = 0.5} : f32[]\n"
                               "  %2 = const {value = 3} : i32[]\n"
                               "  %3 = quantize %0, %1, %2 {axis = 0} : u8[2,4]\n"
                               "  %4 = param \"w\" : i8[3,4]\n"
                               "  %5 = param \"b\" : i32[3]\n"
                               "  %6 = param \"m\" : i32[3]\n"
                               "  %7 = param \"sh\" : i32[3]\n"
                               "  %8 = qmatmul %3, %4, %5, %6, %7 {zero_points = [3, 0], clamp = [0, 0]} : f32[2,3]\n"
                               "  return %8\n"
                               "}\n";
    Arena *a = arena_new();
    FILE *f = tmpfile();
    Diag d;
    diag_init(&d, f);
    Graph *g = ir_parse(a, "q.etchir", text, &d);
    assert_non_null(g);
    char path[] = "/tmp/etch_test_qmatmul_XXXXXX";
    assert_non_null(mkdtemp(path));
    char *out = arena_printf(a, "%s/m.onnx", path);
    OnnxExportOptions o = {.opset = 17};
    assert_false(onnx_export(g, NULL, &o, out, &d));
    char msg[1024] = "";
    rewind(f);
    msg[fread(msg, 1, sizeof msg - 1, f)] = 0;
    fclose(f);
    assert_non_null(strstr(msg, "error: op 'qmatmul' has no ONNX mapping: its fixed-point "
                                "requantization has no exact ONNX form"));
    assert_int_equal(access(out, F_OK), -1);
    rmdir(path);
    diag_dispose(&d);
    arena_free(a);
}

int main(void) {
    const char *dump = getenv("ETCH_QUANT_DUMP");
    if (dump) return dump_for_numpy(dump);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_point_edges),   cmocka_unit_test(test_multiplier_helper),
        cmocka_unit_test(test_quantize_known_values), cmocka_unit_test(test_quant_ops_compiled_exact),
        cmocka_unit_test(test_qmatmul),             cmocka_unit_test(test_qmatmul_kernels), cmocka_unit_test(test_qmatmul_weights_change),
        cmocka_unit_test(test_fake_quant_ste),
        cmocka_unit_test(test_shape_errors),        cmocka_unit_test(test_qmatmul_not_exported),
        cmocka_unit_test(ts_cuda_coverage_test),
    };
    ts_check_cuda_too();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
