/* test_indexing.c: subscripts of tensors in the DSL (frontend/index.c):
 * the parser's subscript forms (index, start:stop:step with parts left out,
 * ...); every form's values against a direct strided reference; the traced
 * graph compiled against the eager executor; gradients through slices,
 * steps and integer indices against finite differences; lists and tuples
 * (indices and Python slices) unchanged in meaning. Diagnostics are lit tests
 * (tests/lit/bad/index_*.etch, tensor_index.etch). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frontend/ast.h"
#include "frontend/frontend.h"
#include "ir/eager.h"
#include "unit/test_support.h"

static SrcLoc L = {"index.etch", 1, 1};

static Program *compile(Arena *a, const char *src) { return ts_compile(a, "index.etch", src); }

static void test_parse_subscripts(void **state) {
    (void)state;
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Unit *u = parse_unit(a, "p.etch", "const k = x[1:, ::2, ..., -1, :3:]", &d);
    assert_non_null(u);
    const Expr *ix = u->consts[0]->value;
    assert_int_equal(ix->kind, EX_INDEX);
    assert_int_equal(ix->n_items, 5);
    const Expr *s0 = ix->items[0], *s1 = ix->items[1], *s4 = ix->items[4];
    assert_true(s0->kind == EX_SLICE && s0->lhs && s0->lhs->num == 1 && !s0->rhs && !s0->step);
    assert_true(s1->kind == EX_SLICE && !s1->lhs && !s1->rhs && s1->step && s1->step->num == 2);
    assert_int_equal(ix->items[2]->kind, EX_ELLIPSIS);
    assert_int_equal(ix->items[3]->kind, EX_UNARY);
    assert_true(s4->kind == EX_SLICE && !s4->lhs && s4->rhs->num == 3 && !s4->step);
    diag_dispose(&d);
    arena_free(a);
}

/* What each output of SRC selects from x [4, 5, 6]: per dim, start, step,
 * count, and whether an integer index drops the dim. */
typedef struct Dim {
    int64_t start, step, n;
    bool drop;
} Dim;
typedef struct Case {
    Dim d[3];
} Case;

static const char SRC[] = "model Net {\n"
                          "  fn forward(x: f64[4, 5, 6]) {\n"
                          "    return x[1], x[:, -1], x[..., 1:3], x[-1, 2:, ::2], x[1:3, 0, 5], x[::3, ::2, 1::4],\n"
                          "      x[...], x[2:, ..., -2], x[0:4:2, 4:5]\n"
                          "  }\n"
                          "}\n";

static const Case CASES[] = {
    {{{1, 1, 1, true}, {0, 1, 5, false}, {0, 1, 6, false}}},
    {{{0, 1, 4, false}, {4, 1, 1, true}, {0, 1, 6, false}}},
    {{{0, 1, 4, false}, {0, 1, 5, false}, {1, 1, 2, false}}},
    {{{3, 1, 1, true}, {2, 1, 3, false}, {0, 2, 3, false}}},
    {{{1, 1, 2, false}, {0, 1, 1, true}, {5, 1, 1, true}}},
    {{{0, 3, 2, false}, {0, 2, 3, false}, {1, 4, 2, false}}},
    {{{0, 1, 4, false}, {0, 1, 5, false}, {0, 1, 6, false}}},
    {{{2, 1, 2, false}, {0, 1, 5, false}, {4, 1, 1, true}}},
    {{{0, 2, 2, false}, {4, 1, 1, false}, {0, 1, 6, false}}},
};

static void test_values(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = compile(a, SRC)->forward;
    int n_cases = (int)(sizeof CASES / sizeof CASES[0]);
    assert_int_equal(g->n_outputs, n_cases);
    Tensor *x = ts_random_tensor(DT_F64, S(3, 4, 5, 6), 1, -1, 1), *out[16];
    Diag d;
    diag_init(&d, stderr);
    assert_true(eager_run(g, &x, NULL, out, NULL, &d));
    for (int c = 0; c < n_cases; c++) {
        const Dim *dm = CASES[c].d;
        Shape want = {0};
        for (int k = 0; k < 3; k++)
            if (!dm[k].drop) want.dim[want.rank++] = dm[k].n;
        assert_true(shape_equal(&out[c]->shape, &want));
        int64_t o = 0;
        for (int64_t i = 0; i < dm[0].n; i++)
            for (int64_t j = 0; j < dm[1].n; j++)
                for (int64_t k = 0; k < dm[2].n; k++) {
                    int64_t src = ((dm[0].start + i * dm[0].step) * 5 + dm[1].start + j * dm[1].step) * 6 + dm[2].start +
                                  k * dm[2].step;
                    assert_true(tensor_get(out[c], o++) == tensor_get(x, src));
                }
        tensor_free(out[c]);
    }
    tensor_free(x);
    diag_dispose(&d);
    arena_free(a);
}

static void test_compiled_matches_eager(void **state) {
    (void)state;
    Arena *a = arena_new();
    ts_check_graph(compile(a, SRC)->forward, &(TsTol){.lo = -1, .hi = 1, .exact = true});
    arena_free(a);
}

static void test_gradient(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = compile(a, "model Net {\n"
                          "  param w: f64[4, 5, 6] = uniform(-1, 1)\n"
                          "  fn forward() {\n"
                          "    let a = w[1:3, ::2, 2:5] * w[-1, ::2, 1::2]\n"
                          "    return a * w[0, 0, -1] + w[..., 1:4][2:, 1:4, 0:3][1, ...] * w[3, :3, ::2]\n"
                          "  }\n"
                          "}\n")
                   ->forward;
    int f = g->outputs[0];
    g->n_outputs = 0;
    ts_check_grad(g, f, 1e-6, 1e-6, 3, L);
    arena_free(a);
}

/* Lists and tuples: an index or a Python slice (clamped bounds, negative steps). */
static void test_sequences(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = compile(a, "const L = [1, 2, 3, 4, 5]\n"
                          "fn pair(x) { return x, x * 2 }\n"
                          "model Net {\n"
                          "  fn forward(x: f32[2]) {\n"
                          "    let t = pair(x)\n"
                          "    let s = L[1:4:2]\n" /* [2, 4] */
                          "    let r = L[::-2]\n"  /* [5, 3, 1] */
                          "    let c = L[-100:100]\n"
                          "    return reshape(x, [s[1] - s[0] + r[2] - 1]) * (r[0] + L[-1] + c[4] + L[3:1:-1][0])\n"
                          "      + t[-1] + t[0:1][0]\n"
                          "  }\n"
                          "}\n")
                   ->forward;
    Tensor *x = tensor_new(DT_F32, S(1, 2)), *out[1];
    tensor_set(x, 0, 1);
    tensor_set(x, 1, 2);
    Diag d;
    diag_init(&d, stderr);
    assert_true(eager_run(g, &x, NULL, out, NULL, &d));
    assert_true(tensor_get(out[0], 0) == 22 && tensor_get(out[0], 1) == 44); /* x * (5 + 5 + 5 + 4) + 2x + x */
    tensor_free(out[0]);
    tensor_free(x);
    diag_dispose(&d);
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_subscripts),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_compiled_matches_eager),
        cmocka_unit_test(test_gradient),
        cmocka_unit_test(test_sequences), cmocka_unit_test(ts_cuda_coverage_test),
    };
    ts_check_cuda_too();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
