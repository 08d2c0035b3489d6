/* cmd_train.c: subcommands for training: train (compile the training step
 * and its driver into one program and run it), eval, gradcheck. */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codegen/build.h"
#include "tool/tool.h"
#include "ir/eager.h"
#include "ir/params.h"
#include "passes/to_f64.h"

/* Builds the training program (forward + train_step + the training driver)
 * into dir; returns the program's path (malloc'd) or NULL. */
static char *build_trainer(Program *p, const Options *o, const char *dir, Diag *d) {
    Graph *step = train_step_graph(p, p->forward->arena, d);
    if (!step) return NULL;
    CGenEntry entries[] = {{p->forward, "forward"}, {step, "train_step"}};
    Options bo = *o;
    bo.embed = false;
    char program[256];
    snprintf(program, sizeof program, "%s-train", p->model_name);
    if (!emit_and_compile(p, entries, 2, NULL, &bo, dir, CGEN_DRIVER_TRAIN, program, d)) return NULL;
    size_t n = strlen(dir) + strlen(program) + 2;
    char *path = malloc(n);
    if (!path) abort();
    snprintf(path, n, "%s/%s", dir, program);
    return path;
}

/* The data folder must exist before we spend time compiling. */
static bool check_data_dir(const char *dir, Diag *d) {
    struct stat st;
    if (stat(dir, &st) != 0) return diag_error_plain(d, "--data %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return diag_error_plain(d, "--data %s: not a folder", dir);
    return true;
}

/* The corpus must be a readable, non-empty file before we spend time compiling. */
static bool check_text_file(const char *path, Diag *d) {
    struct stat st;
    if (stat(path, &st) != 0) return diag_error_plain(d, "--text %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return diag_error_plain(d, "--text %s: not a regular file", path);
    if (st.st_size == 0) return diag_error_plain(d, "--text %s: empty corpus", path);
    return true;
}

int cmd_train(const Options *o) {
    if (!o->data && !o->text) return usage_error("%s", "train needs --data DIR (images) or --text CORPUS (bytes)");
    if (o->data && o->text) return usage_error("%s", "--data and --text exclude each other");
    if (o->init && o->resume) return usage_error("%s", "--init and --resume exclude each other");
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    bool input_ok = o->text ? check_text_file(o->text, &d) : check_data_dir(o->data, &d);
    Program *p = input_ok ? load_program(a, o, &d) : NULL;
    const char *out = o->out ? o->out : "out";
    char build_dir[4096], init_path[4096 + 32], num[6][32];
    snprintf(build_dir, sizeof build_dir, "%s/build", out);
    char *program = p ? build_trainer(p, o, build_dir, &d) : NULL;
    bool ok = program != NULL;
    if (ok && !o->init && !o->resume) { /* start from the initializers, seeded */
        Tensor **init = params_init(p->train->loss, o->seed);
        snprintf(init_path, sizeof init_path, "%s/init.safetensors", build_dir);
        ok = params_save(p->train->loss, init, init_path, &d);
        params_free(p->train->loss, init);
    }
    if (ok) {
        const char *argv[32];
        int n = 0;
        argv[n++] = program;
        argv[n++] = o->text ? "--text" : "--data", argv[n++] = o->text ? o->text : o->data;
        argv[n++] = o->resume ? "--resume" : "--init";
        argv[n++] = o->resume ? o->resume : o->init ? o->init : init_path;
        argv[n++] = "-o", argv[n++] = out;
        argv[n++] = "--name", argv[n++] = p->model_name;
        snprintf(num[0], sizeof num[0], "%ld", o->epochs >= 0 ? o->epochs : (long)p->train->epochs);
        if (!o->text || o->epochs >= 0 || o->steps < 0) argv[n++] = "--epochs", argv[n++] = num[0]; /* text: --steps alone counts */
        snprintf(num[1], sizeof num[1], "%llu", (unsigned long long)o->seed);
        argv[n++] = "--seed", argv[n++] = num[1];
        if (o->steps >= 0) {
            snprintf(num[2], sizeof num[2], "%ld", o->steps);
            argv[n++] = "--steps", argv[n++] = num[2];
        }
        if (o->limit >= 0) {
            snprintf(num[3], sizeof num[3], "%ld", o->limit);
            argv[n++] = "--limit", argv[n++] = num[3];
        }
        if (o->no_shuffle) argv[n++] = "--no-shuffle";
        argv[n] = NULL;
        fflush(stdout);
        ok = build_spawn(argv, &d);
    }
    free(program);
    diag_dispose(&d);
    arena_free(a);
    return ok ? 0 : 1;
}

int cmd_eval(const Options *o) {
    if ((!o->data && !o->text) || !o->weights)
        return usage_error("%s", "eval needs --weights W and --data DIR (images) or --text CORPUS (bytes)");
    if (o->data && o->text) return usage_error("%s", "--data and --text exclude each other");
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    bool input_ok = o->text ? check_text_file(o->text, &d) : check_data_dir(o->data, &d);
    Program *p = input_ok ? load_program(a, o, &d) : NULL;
    Tensor **check = p ? params_load(p->forward, o->weights, &d) : NULL; /* etch's own messages first */
    char *dir = check ? build_tempdir(&d) : NULL;
    char *program = dir ? build_trainer(p, o, dir, &d) : NULL;
    bool ok = program != NULL;
    if (ok) {
        const char *argv[] = {program, "--eval", o->text ? "--text" : "--data", o->text ? o->text : o->data,
                              "--weights", o->weights, o->png ? "--png" : NULL, o->png, NULL};
        fflush(stdout);
        ok = build_spawn(argv, &d);
    }
    if (dir) build_rmtree(dir);
    free(dir);
    free(program);
    if (p) params_free(p->forward, check);
    diag_dispose(&d);
    arena_free(a);
    return ok ? 0 : 1;
}

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
    Graph *H = graph_to_f64(a, p->train->loss), *L = grad_graph(p, a, &d);
    ok = L != NULL;
    int n_train = ok ? L->n_outputs - 1 : 0, wrt[256];
    for (int i = 0, k = 0; ok && i < L->n_params && k < 256; i++)
        if (!L->nodes[L->params[i]].attr.frozen && dtype_is_float(L->nodes[L->params[i]].dtype)) wrt[k++] = L->params[i];
    if (!ok) {
        diag_dispose(&d);
        arena_free(a);
        return 1;
    }
    const Node *fo = &p->forward->nodes[p->forward->outputs[0]];
    int64_t classes = fo->shape.rank ? fo->shape.dim[fo->shape.rank - 1] : 2;
    Tensor **params = params_init(L, o->seed), *ins[8] = {0}, *ins64[8] = {0};
    for (int i = 0; i < L->n_inputs && i < 8; i++) {
        ins[i] = random_input(&L->nodes[L->inputs[i]], classes, o->seed + 1 + (uint64_t)i);
        ins64[i] = tensor_new(H->nodes[H->inputs[i]].dtype, ins[i]->shape);
        for (int64_t k = 0; k < tensor_numel(ins[i]); k++) tensor_set(ins64[i], k, tensor_get(ins[i], k));
    }
    /* compiled gradients */
    char *dir = ok ? build_tempdir(&d) : NULL;
    Tensor **got = calloc((size_t)L->n_outputs + 1, sizeof *got);
    char prefix[64];
    model_prefix(p->model_name, prefix, sizeof prefix);
    if (dir) {
        Options bo = *o;
        bo.embed = false;
        CGenEntry e = {L, "grad"};
        char wpath[4096], lib[4096], sym[128], err[1024];
        snprintf(wpath, sizeof wpath, "%s/w.safetensors", dir);
        ok = emit_and_compile(p, &e, 1, NULL, &bo, dir, CGEN_DRIVER_NONE, NULL, &d) && params_save(L, params, wpath, &d);
        snprintf(lib, sizeof lib, "%s/lib%s.so", dir, prefix);
        void *h = ok ? dlopen(lib, RTLD_NOW | RTLD_LOCAL) : NULL;
        if (ok && !h) ok = diag_error_plain(&d, "cannot load %s: %s", lib, dlerror());
        if (h) {
            int (*load)(const char *, int, char *, size_t);
            void (*run)(const void *const *, void *const *);
            snprintf(sym, sizeof sym, "%s_load", prefix);
            *(void **)&load = dlsym(h, sym);
            snprintf(sym, sizeof sym, "%s_grad_v", prefix);
            *(void **)&run = dlsym(h, sym);
            if (load(wpath, 0, err, sizeof err)) ok = diag_error_plain(&d, "%s", err);
            const void *in_ptr[8];
            void *out_ptr[256];
            for (int i = 0; i < L->n_inputs; i++) in_ptr[i] = ins[i]->data;
            for (int i = 0; i < L->n_outputs; i++) {
                got[i] = tensor_new(L->nodes[L->outputs[i]].dtype, L->nodes[L->outputs[i]].shape);
                out_ptr[i] = got[i]->data;
            }
            if (ok) run(in_ptr, out_ptr);
            dlclose(h);
        }
        build_rmtree(dir);
        free(dir);
    }
    /* float64 finite differences */
    Tensor **p64 = ok ? params_init(H, o->seed) : NULL;
    for (int i = 0; ok && i < H->n_params; i++)
        for (int64_t k = 0; k < tensor_numel(p64[i]); k++) tensor_set(p64[i], k, tensor_get(params[i], k));
    double worst = 0;
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
                ok = eager_run(H, ins64, p64, out, NULL, &d);
                l[s] = ok ? tensor_get(out[0], 0) : 0;
                tensor_free(out[0]);
            }
            tensor_set(p64[pi], k, orig);
            double num = (l[0] - l[1]) / (2 * hstep), err = fabs(tensor_get(ga, k) - num) / fmax(fabs(num), 1e-3 * gmax + 1e-12);
            werr = fmax(werr, err);
        }
        if (ok) printf("%-40s %12lld %12.4g %10.2e\n", L->nodes[wrt[w]].attr.name, (long long)numel, gmax, werr);
        worst = fmax(worst, werr);
    }
    if (ok) printf("worst relative error: %.3e (compiled float32 gradients vs float64 central differences)\n", worst);
    for (int i = 0; i < L->n_outputs; i++) tensor_free(got[i]);
    free(got);
    for (int i = 0; i < 8; i++) {
        tensor_free(ins[i]);
        tensor_free(ins64[i]);
    }
    params_free(L, params);
    if (p64) params_free(H, p64);
    diag_dispose(&d);
    arena_free(a);
    return ok ? 0 : 1;
}
