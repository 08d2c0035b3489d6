/* test_train_hparams.c: optimizer hyperparameters read at run time
 * (OptimSpec.runtime, for etch sweep; passes/transforms/train.c), run by the
 * eager executor:
 *   - a step whose hyperparameters are params "optimizer.hparam.NAME" set to
 *     values V trains bit-identically to the step compiled with V as
 *     constants, for sgd (momentum, dampening, nesterov, weight decay), adam
 *     and adamw, with a constant, step or cosine lr; V differs from the
 *     compiled values, so a step that ignored the params would differ;
 *   - the params are named after the hyperparameters, f64 scalars, frozen,
 *     initialized to the compiled values; a step without runtime
 *     hyperparameters has none;
 *   - names: hparam_lookup knows each optimizer's own, hparam_list lists them;
 *   - a runtime momentum of 0 with dampening is refused (PyTorch uses no
 *     buffer then, the step would damp it). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ir/eager.h"
#include "ir/params.h"
#include "passes/transforms/train.h"
#include "unit/test_support.h"

static SrcLoc L = {"train.etch", 1, 1};
enum { STEPS = 6, N = 3 };

/* loss = sum(w * w * c) with w f32[3]: gradients that differ per element */
static Graph *step_graph(Arena *a, const OptimSpec *spec) {
    Graph *g = graph_new(a, "One.train_step");
    int w = graph_add_param(g, "w", DT_F32, S(1, N), (ParamInit){INIT_ZEROS, 0, 0}, false, L);
    int c = add(g, OP_CONST, 0, NULL, &(NodeAttrs){.value = 0.75, .dtype = DT_F32});
    int sq = B(g, OP_MUL, B(g, OP_MUL, w, w), c);
    graph_add_output(g, U(g, OP_REDUCE_SUM, sq, &(NodeAttrs){.n_axes = 1, .axes = {0}}));
    ts_build_train_step(g, spec);
    return g;
}

/* w after STEPS eager steps of spec's step from w = (1, -2, 0.5); values[h]
 * (when not NULL) set into the hyperparameter params first. */
static void train(const OptimSpec *spec, const double *values, float *w_out) {
    Arena *a = arena_new();
    Graph *g = step_graph(a, spec);
    Tensor **params = params_init(g, 1);
    const double w0[N] = {1, -2, 0.5};
    for (int i = 0; i < N; i++) tensor_set(params[0], i, w0[i]);
    for (int h = 0; values && h < HP_COUNT; h++) {
        if (!(spec->runtime & (1u << h))) continue;
        char name[64];
        snprintf(name, sizeof name, "optimizer.hparam.%s", hparam_name((Hparam)h));
        int id = graph_find_param(g, name), k = 0;
        assert_true(id >= 0);
        while (g->params[k] != id) k++;
        const Node *p = &g->nodes[id];
        assert_true(p->dtype == DT_F64 && p->shape.rank == 0 && p->attr.frozen);
        assert_true(tensor_get(params[k], 0) == *hparam_field((OptimSpec *)spec, (Hparam)h)); /* the compiled value */
        tensor_set(params[k], 0, values[h]);
    }
    Diag d;
    diag_init(&d, stderr);
    for (int s = 0; s < STEPS; s++) {
        Tensor *out[1];
        assert_true(eager_run(g, NULL, params, out, NULL, &d));
        tensor_free(out[0]);
    }
    for (int i = 0; i < N; i++) w_out[i] = (float)tensor_get(params[0], i);
    diag_dispose(&d);
    params_free(g, params);
    arena_free(a);
}

/* compiled: spec as written; the same spec with all its optimizer's
 * hyperparameters at run time, given other values, must match the
 * constant step compiled with those other values. */
static void expect_same(OptimSpec spec, const double *other) {
    OptimSpec want_spec = spec, rt = spec;
    for (int h = 0; h < HP_COUNT; h++) {
        if (hparam_lookup(&spec, hparam_name((Hparam)h)) == HP_COUNT) continue;
        *hparam_field(&want_spec, (Hparam)h) = other[h];
        rt.runtime |= 1u << h;
    }
    float want[N], got[N], unchanged[N];
    train(&want_spec, NULL, want);
    train(&rt, other, got);
    train(&spec, NULL, unchanged);
    for (int i = 0; i < N; i++) {
        if (memcmp(&want[i], &got[i], sizeof want[i])) {
            fprintf(stderr, "%s w[%d]: runtime %.9g, compiled %.9g\n", optim_name(spec.kind), i, got[i], want[i]);
            fail();
        }
    }
    assert_true(memcmp(want, unchanged, sizeof want) != 0); /* the other values do change the result */
}

static const LrSchedule SCHEDULES[] = {
    {.kind = LR_CONSTANT},
    {.kind = LR_STEP, .step_size = 2, .gamma = 0.5},
    {.kind = LR_COSINE, .warmup = 2, .total = 5, .min_lr = 0.001},
};

static void test_sgd(void **state) {
    (void)state;
    for (int k = 0; k < 3; k++) {
        OptimSpec s = optim_defaults(OPTIM_SGD);
        s.lr = 0.1, s.schedule = SCHEDULES[k];
        /* momentum, dampening and weight decay all start at 0: the runtime step keeps their terms */
        expect_same(s, (double[HP_COUNT]){[HP_LR] = 0.05, [HP_MOMENTUM] = 0.9, [HP_DAMPENING] = 0.25,
                                          [HP_WEIGHT_DECAY] = 0.01});
        s.momentum = 0.5, s.nesterov = true;
        expect_same(s, (double[HP_COUNT]){[HP_LR] = 0.2, [HP_MOMENTUM] = 0.8, [HP_WEIGHT_DECAY] = 0.1});
    }
}

static void test_adam(void **state) {
    (void)state;
    for (int kind = OPTIM_ADAM; kind <= OPTIM_ADAMW; kind++)
        for (int k = 0; k < 3; k++) {
            OptimSpec s = optim_defaults((OptimKind)kind);
            s.lr = 0.01, s.schedule = SCHEDULES[k];
            expect_same(s, (double[HP_COUNT]){[HP_LR] = 0.03, [HP_BETA1] = 0.8, [HP_BETA2] = 0.99, [HP_EPS] = 1e-6,
                                              [HP_WEIGHT_DECAY] = 0.05});
        }
}

static void test_no_runtime_no_params(void **state) {
    (void)state;
    Arena *a = arena_new();
    OptimSpec s = optim_defaults(OPTIM_ADAMW);
    Graph *g = step_graph(a, &s);
    for (int h = 0; h < HP_COUNT; h++) {
        char name[64];
        snprintf(name, sizeof name, "optimizer.hparam.%s", hparam_name((Hparam)h));
        assert_true(graph_find_param(g, name) < 0);
    }
    arena_free(a);
}

static void test_names(void **state) {
    (void)state;
    OptimSpec sgd = optim_defaults(OPTIM_SGD), adam = optim_defaults(OPTIM_ADAM);
    char buf[128];
    assert_int_equal(hparam_lookup(&sgd, "momentum"), HP_MOMENTUM);
    assert_int_equal(hparam_lookup(&sgd, "beta1"), HP_COUNT);
    assert_int_equal(hparam_lookup(&adam, "momentum"), HP_COUNT);
    assert_int_equal(hparam_lookup(&adam, "eps"), HP_EPS);
    hparam_list(&sgd, buf, sizeof buf);
    assert_string_equal(buf, "lr, momentum, dampening, weight_decay");
    hparam_list(&adam, buf, sizeof buf);
    assert_string_equal(buf, "lr, weight_decay, beta1, beta2, eps");
}

static void test_momentum_zero_with_dampening(void **state) {
    (void)state;
    OptimSpec s = optim_defaults(OPTIM_SGD);
    s.dampening = 0.5, s.runtime = 1u << HP_MOMENTUM, s.loc = (SrcLoc){"m.etch", 4, 15};
    Diag d;
    diag_init(&d, NULL);
    assert_false(optim_check(&s, &d));
    assert_non_null(strstr(d.text, "m.etch:4:15: error: sgd: momentum 0 read at run time needs dampening 0"));
    diag_dispose(&d);
    s.momentum = 0.9; /* a non-zero value is fine */
    diag_init(&d, NULL);
    assert_true(optim_check(&s, &d));
    diag_dispose(&d);
}

/* A parameter group's own lr / weight decay are constants: sweeping them is refused at the group. */
static void test_groups_refuse_runtime(void **state) {
    (void)state;
    static const char *const names[] = {"G.fc1.weight"};
    ParamGroup grp = {.names = names, .n_names = 1, .lr = 0.1, .weight_decay = 0, .loc = {"g.etch", 7, 20}};
    OptimSpec s = optim_defaults(OPTIM_ADAM);
    s.groups = &grp, s.n_groups = 1, s.loc = (SrcLoc){"g.etch", 7, 15};
    Diag d;
    diag_init(&d, NULL);
    assert_true(optim_check(&s, &d)); /* constant hyperparameters: fine */
    diag_dispose(&d);
    s.runtime = 1u << HP_BETA1; /* not one a group overrides: fine */
    diag_init(&d, NULL);
    assert_true(optim_check(&s, &d));
    diag_dispose(&d);
    for (Hparam h = HP_LR; h <= HP_WEIGHT_DECAY; h += HP_WEIGHT_DECAY - HP_LR) {
        s.runtime = 1u << h;
        diag_init(&d, NULL);
        assert_false(optim_check(&s, &d));
        assert_non_null(strstr(d.text, "g.etch:7:15: error: adam: "));
        assert_non_null(strstr(d.text, hparam_name(h)));
        assert_non_null(strstr(d.text, "parameter groups"));
        diag_dispose(&d);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd),   cmocka_unit_test(test_adam),
        cmocka_unit_test(test_no_runtime_no_params), cmocka_unit_test(test_names),
        cmocka_unit_test(test_momentum_zero_with_dampening), cmocka_unit_test(test_groups_refuse_runtime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
