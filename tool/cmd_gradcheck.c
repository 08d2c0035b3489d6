/* cmd_gradcheck.c: `etch gradcheck FILE`: the gradients of the emitted C
 * against float64 finite differences of the eager executor. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/build.h"
#include "ir/eager.h"
#include "ir/params.h"
#include "passes/transforms/to_f64.h"
#include "tool/commands.h"
#include "tool/pipeline.h"

/* Random batch for gradcheck: x uniform [0,1), integer inputs uniform class ids. */
static Tensor *random_input(const Node *n, int64_t classes, uint64_t seed) {
    Tensor *t = tensor_new(n->dtype, n->shape);
    uint32_t r[4];
    for (int64_t i = 0; i < tensor_numel(t); i++) {
        etch_philox4x32(seed, 2, (uint64_t)i, r);
        tensor_set(t, i, dtype_is_float(n->dtype) ? etch_u01(r[0]) : (double)(r[0] % (uint32_t)classes));
    }
    return t;
}

/* Checks the gradients of the train block's step `step` (the params its
 * optimizer trains), printing a table; the largest error goes into *worst. */
static bool gradcheck_step(Program *p, int step, const Options *o, Arena *a, Diag *d, double *worst) {
    Graph *H = graph_to_f64(a, p->train->steps[step].loss), *L = grad_graph_at(p, step, a, d);
    bool ok = true;
    if (!L) return false;
    const OptimSpec *optim = &p->train->steps[step].optim;
    int n_train = L->n_outputs - 1, *wrt = arena_alloc(a, sizeof(int) * (size_t)(L->n_params + 1));
    for (int i = 0, k = 0; i < L->n_params; i++) {
        const Node *pn = &L->nodes[L->params[i]];
        if (!pn->attr.frozen && dtype_is_float(pn->dtype) && optim_trains(optim, pn->attr.name)) wrt[k++] = L->params[i];
    }
    const Node *fo = &p->forward->nodes[p->forward->outputs[0]];
    int64_t classes = fo->shape.rank ? fo->shape.dim[fo->shape.rank - 1] : 2;
    Tensor **params = params_init(L, o->seed);
    Tensor **ins = calloc((size_t)L->n_inputs + 1, sizeof *ins), **ins64 = calloc((size_t)L->n_inputs + 1, sizeof *ins64);
    if (!ins || !ins64) abort();
    for (int i = 0; i < L->n_inputs; i++) {
        ins[i] = random_input(&L->nodes[L->inputs[i]], classes, o->seed + 1 + (uint64_t)i);
        ins64[i] = tensor_new(H->nodes[H->inputs[i]].dtype, ins[i]->shape);
        for (int64_t k = 0; k < tensor_numel(ins[i]); k++) tensor_set(ins64[i], k, tensor_get(ins[i], k));
    }
    /* compiled gradients */
    char *dir = build_tempdir(d);
    Tensor **got = calloc((size_t)L->n_outputs + 1, sizeof *got);
    char prefix[64];
    model_prefix(p->model_name, prefix, sizeof prefix);
    if (dir) {
        Options bo = *o;
        bo.embed = false;
        const char *entry = train_step_entry(p, step, "grad", a);
        CGenEntry e = {L, entry};
        char wpath[4096];
        snprintf(wpath, sizeof wpath, "%s/w.safetensors", dir);
        ok = emit_and_compile(p, &e, 1, NULL, &bo, dir, CGEN_DRIVER_NONE, NULL, d) && params_save(L, params, wpath, d);
        void *h = ok ? compiled_open(dir, prefix, wpath, d) : NULL;
        CompiledFn run = h ? compiled_entry(h, prefix, entry, d) : NULL;
        ok = run != NULL;
        const void **in_ptr = calloc((size_t)L->n_inputs + 1, sizeof *in_ptr);
        void **out_ptr = calloc((size_t)L->n_outputs + 1, sizeof *out_ptr);
        if (!in_ptr || !out_ptr) abort();
        for (int i = 0; ok && i < L->n_inputs; i++) in_ptr[i] = ins[i]->data;
        for (int i = 0; ok && i < L->n_outputs; i++) {
            got[i] = tensor_new(L->nodes[L->outputs[i]].dtype, L->nodes[L->outputs[i]].shape);
            out_ptr[i] = got[i]->data;
        }
        if (ok) run(in_ptr, out_ptr);
        free(in_ptr);
        free(out_ptr);
        compiled_close(h, prefix);
        build_rmtree(dir);
        free(dir);
    }
    /* float64 finite differences */
    Tensor **p64 = ok ? params_init(H, o->seed) : NULL;
    for (int i = 0; ok && i < H->n_params; i++)
        for (int64_t k = 0; k < tensor_numel(p64[i]); k++) tensor_set(p64[i], k, tensor_get(params[i], k));
    if (ok && p->train->steps[step].name) printf("step %s:\n", p->train->steps[step].name);
    if (ok) printf("%-40s %12s %12s %10s\n", "parameter", "elements", "max |grad|", "rel. error");
    for (int w = 0; ok && w < n_train; w++) {
        int pi = 0;
        while (L->params[pi] != wrt[w]) pi++;
        const Tensor *ga = got[1 + w];
        int64_t numel = tensor_numel(ga), stride = numel > 16 ? numel / 16 : 1;
        double gmax = 0, werr = 0;
        for (int64_t k = 0; k < numel; k++) gmax = fmax(gmax, fabs(tensor_get(ga, k)));
        for (int64_t k = 0; k < numel && ok; k += stride) {
            double orig = tensor_get(p64[pi], k), hstep = 1e-6 * fmax(1.0, fabs(orig)), l[2];
            for (int s = 0; s < 2 && ok; s++) {
                tensor_set(p64[pi], k, orig + (s ? -hstep : hstep));
                Tensor *out[2] = {0};
                ok = eager_run(H, ins64, p64, out, NULL, d);
                l[s] = ok ? tensor_get(out[0], 0) : 0;
                tensor_free(out[0]);
            }
            tensor_set(p64[pi], k, orig);
            double num = (l[0] - l[1]) / (2 * hstep), err = fabs(tensor_get(ga, k) - num) / fmax(fabs(num), 1e-3 * gmax + 1e-12);
            werr = fmax(werr, err);
        }
        if (ok) printf("%-40s %12lld %12.4g %10.2e\n", L->nodes[wrt[w]].attr.name, (long long)numel, gmax, werr);
        *worst = fmax(*worst, werr);
    }
    for (int i = 0; i < L->n_outputs; i++) tensor_free(got[i]);
    free(got);
    for (int i = 0; i < L->n_inputs; i++) {
        tensor_free(ins[i]);
        tensor_free(ins64[i]);
    }
    free(ins);
    free(ins64);
    params_free(L, params);
    if (p64) params_free(H, p64);
    return ok;
}

/* `etch gradcheck`: the gradients computed by the emitted C code (float32)
 * against central finite differences of the loss evaluated in float64 by the
 * eager executor, on a seeded random batch. Samples up to 16 elements per
 * parameter; the relative error of an element is |compiled - numeric| /
 * max(|numeric|, 1e-3 * max |gradient of that parameter|), so elements whose
 * gradient is tiny next to the rest of the tensor do not dominate. */
int cmd_gradcheck(const Options *o) {
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = load_program(a, o, &d);
    bool ok = p != NULL;
    if (ok && !p->train) ok = diag_error(&d, p->model_loc, "model %s has no train block: nothing to check", p->model_name);
    if (!ok) {
        diag_dispose(&d);
        arena_free(a);
        return 1;
    }
    double worst = 0;
    for (int i = 0; ok && i < p->train->n_steps; i++) ok = gradcheck_step(p, i, o, a, &d, &worst);
    if (ok) printf("worst relative error: %.3e (compiled float32 gradients vs float64 central differences)\n", worst);
    diag_dispose(&d);
    arena_free(a);
    return ok ? 0 : 1;
}
