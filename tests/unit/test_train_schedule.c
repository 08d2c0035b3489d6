/* test_train_schedule.c: learning-rate schedules and gradient clipping in the
 * training step graph (passes/transforms/train.c), run by the eager executor.
 *   - lr values: the loss sum(w) has gradient 1, so plain SGD moves w by
 *     exactly lr(s) at step s; the moves over steps 0..14 must equal StepLR's
 *     and the cosine-with-warmup formula written out here with libm's cos;
 *   - clip_grad_norm: the loss sum(w*w)/2 has gradient w; with w = (3, 4)
 *     (norm 5) and max norm 1 SGD moves w by lr*w/(5 + 1e-6), and by lr*w
 *     when the max norm is above 5;
 *   - bad settings are refused at the schedule's or the entry's location.
 * Compiled-vs-eager for schedules and clipping is in test_train_step.c. */
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
enum { STEPS = 15 };

/* A one-param step: w f64[n] (params start at `init`), loss = sum(w) or
 * sum(w*w)/2; runs STEPS eager steps and writes w[0]'s move at each step
 * into moved, w after the first step into first (when not NULL). */
static void run_steps(const OptimSpec *spec, bool squared, int n, const double *init, double *moved, double *first) {
    Arena *a = arena_new();
    Graph *g = graph_new(a, "One.train_step");
    int w = graph_add_param(g, "w", DT_F64, S(1, n), (ParamInit){INIT_ZEROS, 0, 0}, false, L);
    int v = squared ? B(g, OP_MUL, w, w) : w;
    int sum = U(g, OP_REDUCE_SUM, v, &(NodeAttrs){.n_axes = 1, .axes = {0}});
    if (squared) sum = B(g, OP_MUL, sum, add(g, OP_CONST, 0, NULL, &(NodeAttrs){.value = 0.5, .dtype = DT_F64}));
    graph_add_output(g, sum);
    Diag d;
    diag_init(&d, stderr);
    assert_true(train_build_step(g, spec, &d));
    assert_true(ir_verify(g, &d));
    Tensor **params = params_init(g, 1);
    for (int i = 0; i < n; i++) tensor_set(params[0], i, init[i]);
    for (int s = 0; s < STEPS; s++) {
        double before = tensor_get(params[0], 0);
        Tensor *out[1];
        assert_true(eager_run(g, NULL, params, out, NULL, &d));
        tensor_free(out[0]);
        moved[s] = before - tensor_get(params[0], 0);
        for (int i = 0; first && s == 0 && i < n; i++) first[i] = tensor_get(params[0], i);
    }
    params_free(g, params);
    diag_dispose(&d);
    arena_free(a);
}

static void expect_lrs(const OptimSpec *spec, const double *want) {
    double moved[STEPS];
    run_steps(spec, false, 1, (double[]){0}, moved, NULL);
    for (int s = 0; s < STEPS; s++) {
        if (fabs(moved[s] - want[s]) > 1e-13) {
            fprintf(stderr, "step %d: lr %.17g, want %.17g\n", s, moved[s], want[s]);
            fail();
        }
    }
}

static void test_constant_lr(void **state) {
    (void)state;
    OptimSpec s = optim_defaults(OPTIM_SGD);
    s.lr = 0.25;
    double want[STEPS];
    for (int k = 0; k < STEPS; k++) want[k] = 0.25;
    expect_lrs(&s, want);
}

/* StepLR(step_size=4, gamma=0.5) stepped after every optimizer step */
static void test_step_schedule(void **state) {
    (void)state;
    OptimSpec s = optim_defaults(OPTIM_SGD);
    s.lr = 0.8;
    s.schedule = (LrSchedule){.kind = LR_STEP, .step_size = 4, .gamma = 0.5};
    double want[STEPS];
    for (int k = 0; k < STEPS; k++) want[k] = 0.8 * pow(0.5, k / 4);
    assert_true(want[3] == 0.8 && want[4] == 0.4 && want[12] == 0.1);
    expect_lrs(&s, want);
}

/* transformers' cosine schedule with warmup and a floor, held after total */
static double cosine_lr(double lr, int warmup, int total, double min_lr, int s) {
    if (s < warmup) return lr * s / warmup;
    double span = total - warmup > 1 ? total - warmup : 1, p = fmin(1, (s - warmup) / span);
    double m = min_lr / lr;
    return lr * (m + (1 - m) * 0.5 * (1 + cos(3.14159265358979323846 * p)));
}

static void test_cosine_schedule(void **state) {
    (void)state;
    OptimSpec s = optim_defaults(OPTIM_SGD);
    s.lr = 0.5;
    double want[STEPS];
    int cases[][2] = {{3, 10}, {0, 10}, {0, 1}, {5, 5}};
    double floors[] = {0.05, 0, 0.1, 0};
    for (int c = 0; c < 4; c++) {
        s.schedule = (LrSchedule){.kind = LR_COSINE, .warmup = cases[c][0], .total = cases[c][1], .min_lr = floors[c]};
        for (int k = 0; k < STEPS; k++) want[k] = cosine_lr(0.5, cases[c][0], cases[c][1], floors[c], k);
        expect_lrs(&s, want);
    }
    /* spot values: the first warmup step has lr 0, the peak is lr, the end min_lr */
    assert_true(cosine_lr(0.5, 3, 10, 0.05, 0) == 0 && cosine_lr(0.5, 3, 10, 0.05, 3) == 0.5);
    assert_true(fabs(cosine_lr(0.5, 3, 10, 0.05, 14) - 0.05) < 1e-15);
}

static void test_clip_grad_norm(void **state) {
    (void)state;
    OptimSpec s = optim_defaults(OPTIM_SGD);
    s.lr = 0.5;
    double moved[STEPS], w[2];
    s.clip_grad_norm = 1;
    run_steps(&s, true, 2, (double[]){3, 4}, moved, w);
    double scale = 1 / (5 + 1e-6);
    assert_true(fabs(w[0] - (3 - 0.5 * 3 * scale)) < 1e-14 && fabs(w[1] - (4 - 0.5 * 4 * scale)) < 1e-14);
    s.clip_grad_norm = 6; /* above the norm: no change */
    run_steps(&s, true, 2, (double[]){3, 4}, moved, w);
    assert_true(w[0] == 1.5 && w[1] == 2);
    /* with a schedule too: both apply */
    s.clip_grad_norm = 1;
    s.schedule = (LrSchedule){.kind = LR_STEP, .step_size = 1, .gamma = 0.5};
    run_steps(&s, true, 2, (double[]){3, 4}, moved, w);
    assert_true(fabs(w[1] - (4 - 0.5 * 4 * scale)) < 1e-14);
}

static void expect_refused(OptimSpec s, const char *want) {
    Arena *a = arena_new();
    Graph *g = graph_new(a, "bad");
    int w = graph_add_param(g, "w", DT_F32, S(1, 3), (ParamInit){INIT_ZEROS, 0, 0}, false, L);
    graph_add_output(g, U(g, OP_REDUCE_SUM, w, &(NodeAttrs){.n_axes = 1, .axes = {0}}));
    Diag d;
    diag_init(&d, NULL);
    assert_false(train_build_step(g, &s, &d));
    if (!strstr(d.text, want)) {
        fprintf(stderr, "got: %s\nwant: %s\n", d.text, want);
        fail();
    }
    diag_dispose(&d);
    arena_free(a);
}

static void test_bad_settings(void **state) {
    (void)state;
    OptimSpec s = optim_defaults(OPTIM_ADAM);
    SrcLoc at = {"m.etch", 9, 17};
    s.clip_grad_norm = -1;
    s.clip_loc = at;
    expect_refused(s, "m.etch:9:17: error: clip_grad_norm must be a positive number (the largest global L2 norm of "
                      "the gradients), got -1");
    s.clip_grad_norm = INFINITY;
    expect_refused(s, "m.etch:9:17: error: clip_grad_norm must be a positive number");
    s.clip_grad_norm = 0;
    s.schedule = (LrSchedule){.kind = LR_COSINE, .warmup = 20, .total = 10, .loc = at};
    expect_refused(s, "m.etch:9:17: error: cosine(): warmup must be from 0 to total (10) steps, got 20");
    s.schedule = (LrSchedule){.kind = LR_COSINE, .warmup = 0, .total = 0, .loc = at};
    expect_refused(s, "cosine(): total must be at least 1 step, got 0");
    s.schedule = (LrSchedule){.kind = LR_COSINE, .total = 10, .min_lr = 1, .loc = at};
    expect_refused(s, "cosine(): min_lr must be from 0 to the optimizer's lr (0.001), got 1");
    s.schedule = (LrSchedule){.kind = LR_STEP, .step_size = 0, .gamma = 0.1, .loc = at};
    expect_refused(s, "step(): step_size must be at least 1, got 0");
    s.schedule = (LrSchedule){.kind = LR_STEP, .step_size = 2, .gamma = 1.5, .loc = at};
    expect_refused(s, "step(): gamma must be in (0, 1], got 1.5");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constant_lr),    cmocka_unit_test(test_step_schedule),
        cmocka_unit_test(test_cosine_schedule), cmocka_unit_test(test_clip_grad_norm),
        cmocka_unit_test(test_bad_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
