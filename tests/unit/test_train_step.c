/* test_train_step.c: the compiled training step against the eager executor's
 * step. A small MLP with a cross-entropy loss is turned into a training step
 * (autodiff + optimizer as IR) for SGD with momentum/nesterov/weight decay and
 * for Adam and AdamW, with and without an lr schedule and gradient clipping;
 * both backends run 5 steps from the same weights on the
 * same batches, and the losses and every parameter and optimizer state must
 * agree to 1e-5 relative. A data-parallel step (allreduce buckets before
 * the update) is, in one process, bit-identical to the plain one. */
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
#include "passes/transforms/train.h"
#include "runtime/etch_rt.h"
#include "unit/test_support.h"

static SrcLoc L = {"train.etch", 1, 1};

/* logits [B,C] f32, labels [B] i64 -> mean negative log-likelihood of softmax */
static int cross_entropy(Graph *g, int logits, int y) {
    Shape ls = g->nodes[logits].shape;
    int lsm = add(g, OP_LOG_SOFTMAX, 1, (int[]){logits}, &(NodeAttrs){.axis = 1});
    int yy = add(g, OP_RESHAPE, 1, (int[]){y}, &(NodeAttrs){.shape = {2, {ls.dim[0], 1}}});
    int io = add(g, OP_IOTA, 0, NULL, &(NodeAttrs){.dtype = DT_I64, .shape = {2, {1, ls.dim[1]}}, .axis = 1});
    int oh = add(g, OP_CAST, 1, (int[]){add(g, OP_EQ, 2, (int[]){yy, io}, NULL)}, &(NodeAttrs){.dtype = DT_F32});
    int picked = add(g, OP_REDUCE_SUM, 1, (int[]){add(g, OP_MUL, 2, (int[]){lsm, oh}, NULL)}, &(NodeAttrs){.n_axes = 1, .axes = {1}});
    return add(g, OP_NEG, 1, (int[]){add(g, OP_REDUCE_MEAN, 1, (int[]){picked}, &(NodeAttrs){.n_axes = 1, .axes = {0}})}, NULL);
}

static int linear(Graph *g, int x, const char *name, int in, int out) {
    char w[64], b[64];
    snprintf(w, sizeof w, "%s.weight", name);
    snprintf(b, sizeof b, "%s.bias", name);
    double k = 1 / sqrt(in);
    int W = graph_add_param(g, w, DT_F32, (Shape){2, {out, in}}, (ParamInit){INIT_UNIFORM, -k, k}, false, L);
    int B = graph_add_param(g, b, DT_F32, (Shape){1, {out}}, (ParamInit){INIT_UNIFORM, -k, k}, false, L);
    int Wt = add(g, OP_TRANSPOSE, 1, (int[]){W}, &(NodeAttrs){.n_axes = 2, .axes = {1, 0}});
    return add(g, OP_ADD, 2, (int[]){add(g, OP_MATMUL, 2, (int[]){x, Wt}, NULL), B}, NULL);
}

enum { BATCH = 8, IN = 12, HID = 16, CLASSES = 5, STEPS = 5 };

static Graph *mlp_step(Arena *a, const OptimSpec *spec) {
    Graph *g = graph_new(a, "Mlp.train_step");
    int x = graph_add_input(g, "x", DT_F32, (Shape){2, {BATCH, IN}}, L);
    int y = graph_add_input(g, "y", DT_I64, (Shape){1, {BATCH}}, L);
    int h = add(g, OP_TANH, 1, (int[]){linear(g, x, "fc1", IN, HID)}, NULL);
    graph_add_output(g, cross_entropy(g, linear(g, h, "fc2", HID, CLASSES), y));
    ts_build_train_step(g, spec);
    return g;
}

static void batch(int step, Tensor *x, Tensor *y) {
    uint32_t r[4];
    for (int64_t i = 0; i < tensor_numel(x); i++) {
        etch_philox4x32(77, (uint64_t)step, (uint64_t)i, r);
        tensor_set(x, i, etch_u01(r[0]) * 2 - 1);
    }
    for (int64_t i = 0; i < BATCH; i++) {
        etch_philox4x32(78, (uint64_t)step, (uint64_t)i, r);
        tensor_set(y, i, r[0] % CLASSES);
    }
}

static void close_enough(double want, double have, const char *what) {
    if (fabs(want - have) > 1e-5 * fabs(want) + 1e-7) {
        fprintf(stderr, "%s: eager %.9g, compiled %.9g\n", what, want, have);
        fail();
    }
}

static void check_optimizer(OptimSpec spec) {
    Arena *a = arena_new();
    Graph *g = mlp_step(a, &spec);
    Diag d;
    diag_init(&d, stderr);
    Tensor **eager_params = params_init(g, 3);
    char *dir = build_tempdir(&d);
    char wpath[4096];
    snprintf(wpath, sizeof wpath, "%s/w.safetensors", dir);
    assert_true(params_save(g, eager_params, wpath, &d));
    CGenEntry e = {ts_optimize(g, 0), "train_step"};
    CGenOptions o = {.prefix = "mlp"};
    assert_true(cgen_write(&e, 1, &o, dir, NULL, &d));
    void *h = ts_load_model(dir, "libmlp.so", NULL);
    int (*load)(const char *, int, char *, size_t);
    void (*step)(const void *const *, void *const *);
    *(void **)&load = dlsym(h, "mlp_load");
    *(void **)&step = dlsym(h, "mlp_train_step_v");
    void *const *data = dlsym(h, "mlp_param_data");
    const etch_tensor_info *info = dlsym(h, "mlp_params");
    char err[512];
    assert_int_equal(load(wpath, 1, err, sizeof err), 0);

    Tensor *x = tensor_new(DT_F32, (Shape){2, {BATCH, IN}}), *y = tensor_new(DT_I64, (Shape){1, {BATCH}});
    double first_loss = 0, last_loss = 0;
    for (int s = 0; s < STEPS; s++) {
        batch(s % 2, x, y); /* alternate two batches: the loss must fall */
        Tensor *out[1];
        assert_true(eager_run(g, (Tensor *[]){x, y}, eager_params, out, NULL, &d));
        float loss = 0;
        step((const void *[]){x->data, y->data}, (void *[]){&loss});
        close_enough(tensor_get(out[0], 0), loss, "loss");
        if (s == 0) first_loss = loss;
        if (s == STEPS - 1) last_loss = loss;
        tensor_free(out[0]);
    }
    assert_true(last_loss < first_loss);
    /* every parameter and optimizer state, by name */
    for (int i = 0; info[i].name; i++) {
        int k = 0;
        while (strcmp(g->nodes[g->params[k]].attr.name, info[i].name)) k++;
        Tensor *t = eager_params[k];
        for (int64_t j = 0; j < tensor_numel(t); j++) {
            double have = t->dtype == DT_F64 ? ((double *)data[i])[j] : ((float *)data[i])[j];
            close_enough(tensor_get(t, j), have, info[i].name);
        }
    }
    /* the step counter ran */
    int sk = 0;
    while (strcmp(g->nodes[g->params[sk]].attr.name, "optimizer.step")) sk++;
    assert_true(tensor_get(eager_params[sk], 0) == STEPS);
    dlclose(h);
    build_rmtree(dir);
    free(dir);
    tensor_free(x);
    tensor_free(y);
    params_free(g, eager_params);
    diag_dispose(&d);
    arena_free(a);
}

static void test_sgd(void **state) {
    (void)state;
    OptimSpec s = optim_defaults(OPTIM_SGD);
    s.lr = 0.1;
    check_optimizer(s);
    s.momentum = 0.9;
    check_optimizer(s);
    s.nesterov = true;
    s.weight_decay = 1e-2;
    check_optimizer(s);
    s.nesterov = false;
    s.dampening = 0.5;
    check_optimizer(s);
    /* a schedule and clipping (a max norm the gradients exceed) */
    s.schedule = (LrSchedule){.kind = LR_STEP, .step_size = 2, .gamma = 0.5};
    s.clip_grad_norm = 0.05;
    check_optimizer(s);
}

static void test_adam(void **state) {
    (void)state;
    OptimSpec s = optim_defaults(OPTIM_ADAM);
    s.lr = 1e-2;
    check_optimizer(s);
    s.weight_decay = 1e-2;
    check_optimizer(s);
    s.schedule = (LrSchedule){.kind = LR_COSINE, .warmup = 2, .total = 4, .min_lr = 1e-3};
    s.clip_grad_norm = 0.05;
    check_optimizer(s);
    OptimSpec w = optim_defaults(OPTIM_ADAMW);
    w.lr = 1e-2;
    check_optimizer(w);
    w.schedule = (LrSchedule){.kind = LR_COSINE, .warmup = 1, .total = 3};
    check_optimizer(w);
}

static void test_bad_spec(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "bad");
    int x = graph_add_param(g, "w", DT_F32, (Shape){1, {3}}, (ParamInit){INIT_ZEROS, 0, 0}, false, L);
    graph_add_output(g, add(g, OP_REDUCE_SUM, 1, (int[]){x}, &(NodeAttrs){.n_axes = 1, .axes = {0}}));
    OptimSpec s = optim_defaults(OPTIM_SGD);
    s.nesterov = true;
    s.loc = (SrcLoc){"m.etch", 9, 17};
    Diag d;
    diag_init(&d, NULL);
    assert_false(train_build_step(g, &s, &d));
    assert_non_null(strstr(d.text, "m.etch:9:17: error: sgd: nesterov needs momentum > 0 and dampening 0"));
    diag_dispose(&d);
    arena_free(a);
}

/* Data-parallel steps (allreduce_bucket_bytes > 0): the gradients go through
 * allreduce_start/allreduce_wait buckets, last param first, each start right
 * after its last gradient's producer (overlapping the rest of the backward
 * pass), each at most the bucket size
 * unless one gradient alone is larger (fc1.weight: 768 bytes, fc1.bias 64,
 * fc2.weight 320, fc2.bias 20; buckets of 400 bytes: [fc2.bias, fc2.weight],
 * [fc1.bias], [fc1.weight]), and in one process the op is the identity: the
 * eager step's weights are bit-identical to the plain step's. */
static void test_allreduce_buckets(void **state) {
    (void)state;
    Arena *a = arena_new();
    OptimSpec plain = optim_defaults(OPTIM_SGD), dp;
    plain.lr = 0.1, plain.momentum = 0.9, plain.clip_grad_norm = 0.05;
    dp = plain;
    dp.allreduce_bucket_bytes = 400;
    Graph *g = mlp_step(a, &plain), *h = mlp_step(a, &dp);
    int buckets[4], starts[4], n = 0;
    for (int i = 0; i < h->n_nodes; i++)
        if (h->nodes[i].op == OP_ALLREDUCE_START) {
            assert_true(n < 4);
            starts[n] = i;
            buckets[n++] = (int)h->nodes[i].shape.dim[0];
            /* it runs right after its last gradient's producer (or another start placed there) */
            int last = -1;
            for (int k = 0; k < h->nodes[i].n_in; k++)
                if (h->nodes[i].in[k] > last) last = h->nodes[i].in[k];
            int prev = i - 1;
            while (h->nodes[prev].op == OP_ALLREDUCE_START) prev--;
            assert_int_equal(prev, last);
        }
    assert_int_equal(n, 3);
    assert_int_equal(buckets[0], 5 + 5 * HID);
    assert_int_equal(buckets[1], HID);
    assert_int_equal(buckets[2], HID * IN);
    /* overlap: the first bucket starts before the backward pass has produced the last one's gradient */
    assert_true(starts[0] < h->nodes[starts[2]].in[0]);
    /* each wait comes after every start, right before its bucket's first slice */
    for (int i = 0, waits = 0; i < h->n_nodes; i++)
        if (h->nodes[i].op == OP_ALLREDUCE_WAIT) {
            assert_true(i > starts[2]);
            assert_int_equal(h->nodes[i].in[0], starts[waits++]);
            assert_int_equal(h->nodes[i + 1].op, OP_SLICE);
        }
    for (int i = 0; i < g->n_nodes; i++) assert_int_not_equal(op_table[g->nodes[i].op].cls, OPC_COLLECTIVE);
    Diag d;
    diag_init(&d, stderr);
    Tensor **pg = params_init(g, 3), **ph = params_init(h, 3);
    Tensor *x = tensor_new(DT_F32, (Shape){2, {BATCH, IN}}), *y = tensor_new(DT_I64, (Shape){1, {BATCH}});
    for (int s = 0; s < 3; s++) {
        Tensor *out[2];
        batch(s, x, y);
        assert_true(eager_run(g, (Tensor *[]){x, y}, pg, &out[0], NULL, &d));
        assert_true(eager_run(h, (Tensor *[]){x, y}, ph, &out[1], NULL, &d));
        assert_true(tensor_get(out[0], 0) == tensor_get(out[1], 0));
        tensor_free(out[0]);
        tensor_free(out[1]);
    }
    assert_int_equal(g->n_params, h->n_params);
    for (int i = 0; i < g->n_params; i++) assert_memory_equal(pg[i]->data, ph[i]->data, tensor_nbytes(pg[i]));
    tensor_free(x);
    tensor_free(y);
    params_free(g, pg);
    params_free(h, ph);
    diag_dispose(&d);
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd),
        cmocka_unit_test(test_adam),
        cmocka_unit_test(test_bad_spec),
        cmocka_unit_test(test_allreduce_buckets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
