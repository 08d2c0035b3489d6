/* test_layers_train.c: the layer builtins and nn.etch modules through the DSL
 * front end, in the two modes a model is traced in:
 *   - the inference graph has no dropout and batch norm reads the running
 *     statistics; the train block's loss graph has dropout (random_uniform on
 *     "optimizer.step") and batch-norm state updates;
 *   - BatchNorm2d's running mean/var/num_batches_tracked after one eager step
 *     against PyTorch's formulas computed here, and the inference output with
 *     the updated statistics;
 *   - gradients of DSL models (batch norm in training, embedding, layer norm,
 *     gelu, split/cat/pad, attention with a causal mask) against finite
 *     differences of the float64 loss graph;
 *   - the compiled training step (-O0 and -O2) against the eager one for three
 *     steps: loss, every param, running statistics, the step counter, and so
 *     the dropout masks. */
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
#include "frontend/frontend.h"
#include "ir/eager.h"
#include "ir/params.h"
#include "passes/pass.h"
#include "passes/transforms/autodiff.h"
#include "passes/transforms/to_f64.h"
#include "passes/transforms/train.h"
#include "runtime/etch_rt.h"
#include "unit/test_support.h"

static Program *compile(Arena *a, const char *path, const char *src) { return ts_compile(a, path, src); }

static int count_op(const Graph *g, OpKind op) {
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++) n += g->nodes[i].op == op;
    return n;
}

static int param_index(const Graph *g, const char *name) {
    for (int i = 0; i < g->n_params; i++)
        if (!strcmp(g->nodes[g->params[i]].attr.name, name)) return i;
    fprintf(stderr, "no param %s\n", name);
    fail();
    return -1;
}

/* Inputs of g: floats uniform in [-1, 1) + offset, integers in [0, classes). */
static Tensor *fill_input(const Node *n, uint64_t seed, int64_t classes, double offset) {
    Tensor *t = tensor_new(n->dtype, n->shape);
    uint32_t r[4];
    for (int64_t i = 0; i < tensor_numel(t); i++) {
        etch_philox4x32(seed, 11, (uint64_t)i, r);
        tensor_set(t, i, dtype_is_float(n->dtype) ? etch_u01(r[0]) * 2 - 1 + offset : (double)(r[0] % classes));
    }
    return t;
}

/* ---- modes ---------------------------------------------------------------- */

static const char CONV_SRC[] =
    "model Net {\n"
    "  bn = BatchNorm2d(3)\n"
    "  drop = Dropout(0.3)\n"
    "  fc = Linear(12, 4)\n"
    "  fn forward(x: f32[5, 3, 2, 2]) -> f32[5, 4] {\n"
    "    return fc(flatten(drop(bn(x))))\n"
    "  }\n"
    "}\n"
    "train {\n"
    "  loss = cross_entropy(Net(x), y)\n"
    "  optimizer = sgd(lr = 0.1)\n"
    "}\n";

static void test_modes(void **state) {
    (void)state;
    Arena *a = arena_new();
    Program *p = compile(a, "bn.etch", CONV_SRC);
    const Graph *fw = p->forward, *tr = p->train->loss;
    assert_int_equal(count_op(fw, OP_RANDOM_UNIFORM), 0);
    assert_int_equal(fw->n_updates, 0);
    assert_int_equal(graph_find_param(fw, "optimizer.step"), -1);
    assert_int_equal(count_op(tr, OP_RANDOM_UNIFORM), 1);
    assert_true(graph_find_param(tr, "optimizer.step") >= 0);
    assert_int_equal(tr->n_updates, 3); /* running_mean, running_var, num_batches_tracked */
    /* PyTorch's state_dict names, order and types */
    const char *names[] = {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"};
    for (int i = 0; i < 5; i++) assert_string_equal(fw->nodes[fw->params[i]].attr.name, names[i]);
    const Node *nbt = &fw->nodes[fw->params[4]];
    assert_true(nbt->dtype == DT_I64 && nbt->shape.rank == 0 && nbt->attr.frozen);
    assert_true(fw->nodes[fw->params[2]].attr.frozen && !fw->nodes[fw->params[0]].attr.frozen);
    arena_free(a);
}

/* ---- batch norm running statistics ------------------------------------------ */

static void test_batch_norm_running_stats(void **state) {
    (void)state;
    enum { N = 5, C = 3, HW = 4 };
    Arena *a = arena_new();
    Program *p = compile(a, "bn.etch", CONV_SRC);
    Graph *tr = p->train->loss;
    Diag d;
    diag_init(&d, stderr);
    Tensor **params = params_init(tr, 7), *out[1];
    Tensor *x = fill_input(&tr->nodes[tr->inputs[0]], 3, 4, 0.5), *y = fill_input(&tr->nodes[tr->inputs[1]], 4, 4, 0);
    int rm = param_index(tr, "bn.running_mean"), rv = param_index(tr, "bn.running_var");
    int nbt = param_index(tr, "bn.num_batches_tracked");
    for (int c = 0; c < C; c++) tensor_set(params[rv], c, 2.0 + c); /* not the init: the update must start from it */
    assert_true(eager_run(tr, (Tensor *[]){x, y}, params, out, NULL, &d));
    tensor_free(out[0]);
    for (int c = 0; c < C; c++) {
        double s = 0, ss = 0;
        for (int n = 0; n < N; n++)
            for (int k = 0; k < HW; k++) s += tensor_get(x, (n * C + c) * HW + k);
        double mean = s / (N * HW);
        for (int n = 0; n < N; n++)
            for (int k = 0; k < HW; k++) ss += pow(tensor_get(x, (n * C + c) * HW + k) - mean, 2);
        double var_unbiased = ss / (N * HW - 1);
        double want_m = 0.9 * 0 + 0.1 * mean, want_v = 0.9 * (2.0 + c) + 0.1 * var_unbiased;
        assert_true(fabs(tensor_get(params[rm], c) - want_m) < 1e-6);
        assert_true(fabs(tensor_get(params[rv], c) - want_v) < 1e-5);
    }
    assert_true(tensor_get(params[nbt], 0) == 1);
    /* inference with the updated statistics: (x - rm) / sqrt(rv + eps) * w + b, w = 1, b = 0, then dropout off */
    const Graph *fw = p->forward;
    Tensor **fp = params_init(fw, 7);
    for (int i = 0; i < fw->n_params; i++) {
        int k = param_index(tr, fw->nodes[fw->params[i]].attr.name);
        memcpy(fp[i]->data, params[k]->data, tensor_nbytes(fp[i]));
    }
    int w = param_index(fw, "fc.weight"), b = param_index(fw, "fc.bias");
    assert_true(eager_run(fw, (Tensor *[]){x}, fp, out, NULL, &d));
    for (int n = 0; n < N; n++)
        for (int o = 0; o < 4; o++) {
            double acc = tensor_get(fp[b], o);
            for (int c = 0; c < C; c++)
                for (int k = 0; k < HW; k++) {
                    double v = (tensor_get(x, (n * C + c) * HW + k) - tensor_get(params[rm], c)) /
                               sqrt(tensor_get(params[rv], c) + 1e-5);
                    acc += v * tensor_get(fp[w], o * C * HW + c * HW + k);
                }
            assert_true(fabs(tensor_get(out[0], n * 4 + o) - acc) < 1e-5);
        }
    tensor_free(out[0]);
    params_free(fw, fp);
    tensor_free(x);
    tensor_free(y);
    params_free(tr, params);
    diag_dispose(&d);
    arena_free(a);
}

/* ---- gradients of DSL models ------------------------------------------------- */

/* d loss / d every trainable param of the loss graph, in float64, against central differences. */
static void check_loss_gradients(const Program *p, double tol) {
    Arena *a = arena_new();
    Graph *g = graph_to_f64(a, p->train->loss), *gg = graph_clone(a, g, NULL);
    int wrt[64], grads[64], n = 0;
    for (int i = 0; i < gg->n_params; i++)
        if (!gg->nodes[gg->params[i]].attr.frozen && dtype_is_float(gg->nodes[gg->params[i]].dtype)) wrt[n++] = i;
    int ids[64];
    for (int i = 0; i < n; i++) ids[i] = gg->params[wrt[i]];
    Diag d;
    diag_init(&d, stderr);
    assert_true(autodiff(gg, gg->outputs[0], ids, n, grads, &d));
    for (int i = 0; i < n; i++) graph_add_output(gg, grads[i]);
    Tensor *ins[2];
    for (int i = 0; i < g->n_inputs; i++) ins[i] = fill_input(&g->nodes[g->inputs[i]], 20 + (uint64_t)i, 4, 0);
    Tensor **params = params_init(g, 5), *out[65];
    assert_true(eager_run(gg, ins, params, out, NULL, &d)); /* updates running stats: training-mode loss ignores them */
    for (int k = 0; k < n; k++) {
        Tensor *w = params[wrt[k]];
        for (int64_t j = 0; j < tensor_numel(w); j++) {
            double orig = tensor_get(w, j), h = 1e-6 * fmax(1.0, fabs(orig)), l[2];
            for (int s = 0; s < 2; s++) {
                Tensor *o[1];
                tensor_set(w, j, orig + (s ? -h : h));
                assert_true(eager_run(g, ins, params, o, NULL, &d));
                l[s] = tensor_get(o[0], 0);
                tensor_free(o[0]);
            }
            tensor_set(w, j, orig);
            double num = (l[0] - l[1]) / (2 * h), ana = tensor_get(out[1 + k], j);
            if (fabs(num - ana) / fmax(1.0, fabs(num)) > tol) {
                fprintf(stderr, "d/d%s[%lld]: autodiff %.10g, finite difference %.10g\n",
                        g->nodes[g->params[wrt[k]]].attr.name, (long long)j, ana, num);
                fail();
            }
        }
    }
    for (int i = 0; i < gg->n_outputs; i++) tensor_free(out[i]);
    for (int i = 0; i < g->n_inputs; i++) tensor_free(ins[i]);
    params_free(g, params);
    diag_dispose(&d);
    arena_free(a);
}

/* Token model: embedding, split/pad/cat, gelu, layer norm, causal attention, batch norm 1d, dropout. */
static const char SEQ_SRC[] =
    "const B = 3\n"
    "const T = 5\n"
    "model Seq {\n"
    "  emb = Embedding(7, 6)\n"
    "  ln = LayerNorm(6)\n"
    "  bn = BatchNorm1d(6)\n"
    "  drop = Dropout(0.2)\n"
    "  act = GELU()\n"
    "  head = Linear(6, 4)\n"
    "  fn forward(ids: i64[B, T]) -> f32[B, 4] {\n"
    "    let h = emb(ids)\n"
    "    let q, k = split(h, [2, 4], dim=-1)\n"
    "    h = cat(pad(q, [0, 1]), narrow(k, 2, 1, 3), dim=2) + h\n"
    "    h = act(ln(h))\n"
    "    let att = softmax(masked_fill(h @ transpose(h, 1, 2), causal_mask(T) == false, -1e9), dim=-1)\n"
    "    h = drop(att @ h)\n"
    "    return head(bn(mean(h, dim=1)))\n"
    "  }\n"
    "}\n"
    "train {\n"
    "  loss = cross_entropy(Seq(x), y)\n"
    "  optimizer = adam(lr = 0.01)\n"
    "  x: i64[B, T]\n"
    "}\n";

static void test_dsl_gradients(void **state) {
    (void)state;
    Arena *a = arena_new();
    check_loss_gradients(compile(a, "bn.etch", CONV_SRC), 1e-6);
    check_loss_gradients(compile(a, "seq.etch", SEQ_SRC), 1e-6);
    arena_free(a);
}

/* ---- the compiled training step ---------------------------------------------- */

static void close_enough(double want, double have, const char *what) {
    if (!(fabs(want - have) <= 1e-5 * fabs(want) + 1e-6)) {
        fprintf(stderr, "%s: eager %.9g, compiled %.9g\n", what, want, have);
        fail();
    }
}

static void check_compiled_step(const char *path, const char *src, int level) {
    Arena *a = arena_new();
    Program *p = compile(a, path, src);
    Graph *g = graph_clone(a, p->train->loss, "Net.train_step");
    Diag d;
    diag_init(&d, stderr);
    assert_true(train_build_step(g, &p->train->optim, &d));
    assert_true(ir_verify(g, &d));
    Graph *cg = ts_optimize(g, level);
    Tensor **eager = params_init(g, 9);
    char *dir = build_tempdir(&d), wpath[4096], err[512];
    snprintf(wpath, sizeof wpath, "%s/w.safetensors", dir);
    assert_true(params_save(g, eager, wpath, &d));
    CGenEntry e = {cg, "train_step"};
    CGenOptions o = {.prefix = "net"};
    assert_true(cgen_write(&e, 1, &o, dir, NULL, &d));
    void *h = ts_load_model(dir, "libnet.so", NULL);
    int (*load)(const char *, int, char *, size_t);
    void (*step)(const void *const *, void *const *);
    *(void **)&load = dlsym(h, "net_load");
    *(void **)&step = dlsym(h, "net_train_step_v");
    void *const *data = dlsym(h, "net_param_data");
    const etch_tensor_info *info = dlsym(h, "net_params");
    assert_int_equal(load(wpath, 1, err, sizeof err), 0);
    for (int s = 0; s < 3; s++) {
        Tensor *ins[2], *out[1];
        for (int i = 0; i < 2; i++) ins[i] = fill_input(&g->nodes[g->inputs[i]], 40 + 2 * (uint64_t)s + (uint64_t)i, 4, 0.3);
        assert_true(eager_run(g, ins, eager, out, NULL, &d));
        float loss = 0;
        step((const void *[]){ins[0]->data, ins[1]->data}, (void *[]){&loss});
        close_enough(tensor_get(out[0], 0), loss, "loss");
        tensor_free(out[0]);
        tensor_free(ins[0]);
        tensor_free(ins[1]);
    }
    int checked = 0;
    for (int i = 0; info[i].name; i++, checked++) {
        Tensor *t = eager[param_index(g, info[i].name)];
        for (int64_t j = 0; j < tensor_numel(t); j++) {
            double have = t->dtype == DT_F64   ? ((double *)data[i])[j]
                          : t->dtype == DT_I64 ? (double)((int64_t *)data[i])[j]
                                               : ((float *)data[i])[j];
            close_enough(tensor_get(t, j), have, info[i].name);
        }
    }
    assert_int_equal(checked, g->n_params);
    assert_true(tensor_get(eager[param_index(g, "optimizer.step")], 0) == 3);
    assert_true(tensor_get(eager[param_index(g, "bn.num_batches_tracked")], 0) == 3);
    dlclose(h);
    build_rmtree(dir);
    free(dir);
    params_free(g, eager);
    diag_dispose(&d);
    arena_free(a);
}

static void test_compiled_step(void **state) {
    (void)state;
    for (int level = 0; level <= 2; level += 2) {
        check_compiled_step("bn.etch", CONV_SRC, level);
        check_compiled_step("seq.etch", SEQ_SRC, level);
    }
}

/* One BatchNorm layer applied twice in a step: the second update starts from the first. */
static void test_batch_norm_twice(void **state) {
    (void)state;
    Arena *a = arena_new();
    Program *p = compile(a, "twice.etch",
                         "model Net {\n"
                         "  bn = BatchNorm1d(2, momentum = 0.5, affine = false)\n"
                         "  fn forward(x: f32[4, 2]) -> f32[4, 2] { return bn(bn(x) * 3 + 1) }\n"
                         "}\n"
                         "train {\n"
                         "  loss = cross_entropy(Net(x), y)\n"
                         "  optimizer = sgd(lr = 0.1)\n"
                         "}\n");
    Graph *g = p->train->loss;
    assert_int_equal(g->n_updates, 3);
    Tensor **params = params_init(g, 1), *out[1];
    Tensor *x = fill_input(&g->nodes[g->inputs[0]], 1, 2, 0), *y = fill_input(&g->nodes[g->inputs[1]], 2, 2, 0);
    Diag d;
    diag_init(&d, stderr);
    /* this loss has no trainable params; the eager loss graph still applies the state updates */
    assert_true(eager_run(g, (Tensor *[]){x, y}, params, out, NULL, &d));
    tensor_free(out[0]);
    int rm = param_index(g, "bn.running_mean"), nbt = param_index(g, "bn.num_batches_tracked");
    for (int c = 0; c < 2; c++) { /* first call: mean_c; second: the input's mean is 1 (normalized * 3 + 1) */
        double s = 0;
        for (int n = 0; n < 4; n++) s += tensor_get(x, n * 2 + c);
        double want = 0.5 * (0.5 * 0 + 0.5 * s / 4) + 0.5 * 1;
        assert_true(fabs(tensor_get(params[rm], c) - want) < 1e-5);
    }
    assert_true(tensor_get(params[nbt], 0) == 2);
    tensor_free(x);
    tensor_free(y);
    params_free(g, params);
    diag_dispose(&d);
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modes),         cmocka_unit_test(test_batch_norm_running_stats),
        cmocka_unit_test(test_dsl_gradients), cmocka_unit_test(test_compiled_step),
        cmocka_unit_test(test_batch_norm_twice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
