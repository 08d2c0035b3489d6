/* pipeline.c: how the `etch` commands drive the layers below them, in the
 * order a model flows through them: read the program (frontend), get its
 * parameters, build the gradient and training-step graphs (autodiff,
 * train), run the pass pipeline, emit C and compile it. The commands
 * (cmd_*.c) only add their own inputs and outputs around these steps. */
#include <ctype.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codegen/build.h"
#include "codegen/cuda/emit_cuda.h"
#include "frontend/onnx/onnx.h"
#include "ir/params.h"
#include "passes/pass.h"
#include "passes/transforms/autodiff.h"
#include "passes/transforms/train.h"
#include "tool/pipeline.h"
#include "tool/quant_tool.h"

/* Model name -> C prefix: "Net" -> "net"; non-identifier chars become '_'. */
void model_prefix(const char *model, char *buf, size_t n) {
    size_t k = 0;
    for (const char *p = model; *p && k + 1 < n; p++)
        buf[k++] = isalnum((unsigned char)*p) ? (char)tolower((unsigned char)*p) : '_';
    buf[k] = 0;
    if (!k || isdigit((unsigned char)buf[0])) snprintf(buf, n, "model");
}

Program *load_program(Arena *a, const Options *o, Diag *d) {
    if (onnx_is_model_path(o->file)) return onnx_compile_file(a, o->file, o->defines, o->n_defines, d);
    return frontend_compile_file(a, o->file, o->defines, o->n_defines, d);
}

static Tensor **load_float_params(const Program *p, const Options *o, Diag *d) {
    if (o->partial && !o->weights) return diag_error_plain(d, "--partial needs --weights W"), NULL;
    if (o->partial) return load_params_partial(p->forward, o->weights, ETCH_DEFAULT_SEED, d);
    if (o->weights) return params_load(p->forward, o->weights, d);
    if (p->weights) return params_from_tensors(p->forward, p->weights, o->file, d);
    return params_init(p->forward, ETCH_DEFAULT_SEED);
}

Tensor **load_params(Program *p, const Options *o, Diag *d) {
    if (o->calib && !o->quantize) return diag_error_plain(d, "--calib STATS.json is for --quantize int8"), NULL;
    Tensor **t = load_float_params(p, o, d);
    if (t && o->quantize && !quantize_program(p, &t, o, d)) return NULL;
    return t;
}

Tensor **load_params_partial(const Graph *g, const char *path, uint64_t seed, Diag *d) {
    bool *missing = calloc((size_t)g->n_params + 1, sizeof *missing);
    if (!missing) abort();
    Tensor **t = params_load_partial(g, path, seed, missing, d);
    int n = 0, weights = 0;
    for (int i = 0; t && i < g->n_params; i++) {
        bool state = !strncmp(g->nodes[g->params[i]].attr.name, "optimizer.", 10); /* zeros either way */
        weights += !state;
        n += missing[i] && !state;
    }
    if (n) {
        fprintf(stderr, "note: %s has %d of the model's %d tensors; these keep their initializers (seed %llu):", path,
                weights - n, weights, (unsigned long long)seed);
        for (int i = 0, k = 0; i < g->n_params; i++)
            if (missing[i] && strncmp(g->nodes[g->params[i]].attr.name, "optimizer.", 10))
                fprintf(stderr, "%s %s", k++ ? "," : "", g->nodes[g->params[i]].attr.name);
        fputc('\n', stderr);
    }
    free(missing);
    return t;
}

bool require_train(const Program *p, Diag *d) {
    if (p->train) return true;
    return diag_error(d, p->model_loc, "model %s has no train block: nothing to differentiate", p->model_name);
}

/* The training step of the train block's step i (loss, gradients, optimizer
 * update), on a copy of its loss graph, named as its loss graph is. */
Graph *train_step_graph_at(Program *p, int i, Arena *a, Diag *d) {
    if (!require_train(p, d)) return NULL;
    const TrainStep *st = &p->train->steps[i];
    Graph *g = graph_clone(a, st->loss, st->loss->name);
    return train_build_step(g, &st->optim, d) ? g : NULL;
}

Graph *train_step_graph(Program *p, Arena *a, Diag *d) { return train_step_graph_at(p, 0, a, d); }

/* The C entry name of step i: "train_step", or "train_step_d" for step d. */
const char *train_step_entry(const Program *p, int i, const char *what, Arena *a) {
    const char *name = p->train->steps[i].name;
    return name ? arena_printf(a, "%s_%s", what, name) : what;
}

/* Step i's loss and its gradients w.r.t. the params its optimizer trains
 * (every trainable param unless it names some): outputs loss, then one
 * gradient per param in declaration order. */
Graph *grad_graph_at(Program *p, int i, Arena *a, Diag *d) {
    if (!require_train(p, d)) return NULL;
    const TrainStep *st = &p->train->steps[i];
    const char *name = st->name ? arena_printf(a, "%s.grad_%s", p->model_name, st->name)
                                : arena_printf(a, "%s.grad", p->model_name);
    Graph *g = graph_clone(a, st->loss, name);
    int *wrt = arena_alloc(a, sizeof(int) * (size_t)(g->n_params + 1)), n = 0;
    int *grads = arena_alloc(a, sizeof(int) * (size_t)(g->n_params + 1));
    for (int k = 0; k < g->n_params; k++) {
        const Node *pn = &g->nodes[g->params[k]];
        if (pn->attr.frozen || !dtype_is_float(pn->dtype) || !optim_trains(&st->optim, pn->attr.name)) continue;
        wrt[n++] = g->params[k];
    }
    if (!autodiff(g, g->outputs[0], wrt, n, grads, d)) return NULL;
    for (int k = 0; k < n; k++) graph_add_output(g, grads[k]);
    return g;
}

Graph *grad_graph(Program *p, Arena *a, Diag *d) { return grad_graph_at(p, 0, a, d); }

static bool wants_llvm(const Options *o) { return o->backend && !strcmp(o->backend, "llvm"); }

static bool wants_cuda(const Options *o) { return o->backend && !strcmp(o->backend, "cuda"); }

const Backend *selected_backend(const Options *o, Diag *d) {
    if (wants_cuda(o)) return o->host_emulate ? &backend_cuda_emulated : &backend_cuda;
    if (o->host_emulate) {
        diag_error_plain(d, "--host-emulate runs the cuda backend's kernels on the CPU: it needs --target cuda");
        return NULL;
    }
    if (!wants_llvm(o)) return &backend_c;
    const LlvmPlugin *llvm = llvm_module(d);
    return llvm ? llvm->backend : NULL;
}

PassOptions pass_options(const Options *o) {
    const LlvmPlugin *llvm = wants_llvm(o) ? llvm_module_loaded() : NULL; /* loaded by selected_backend */
    const Target *target = llvm ? llvm->backend->target : wants_cuda(o) ? backend_cuda.target : backend_c.target;
    PassOptions po = {.opt_level = o->opt_level, .target = target, .print_after_all = o->print_after_all,
                      .n_print_after = o->n_print_after, .n_disabled = o->n_disabled};
#ifndef NDEBUG
    po.verify = true; /* debug builds (and the sanitizer test build) check the IR after every pass */
#endif
    memcpy(po.print_after, o->print_after, sizeof po.print_after);
    memcpy(po.disabled, o->disabled, sizeof po.disabled);
    return po;
}

Graph *optimize_graph(const Graph *g, const Options *o, Arena *a, Diag *d) {
    PassOptions po = pass_options(o);
    return passes_run(graph_clone(a, g, NULL), &po, d);
}

/* Emits the entries into dir and compiles them: lib<prefix>.so and the
 * program dir/<program> when driver is set; a training program alone (it is
 * standalone and nothing loads a training build's library, so compiling
 * model.c a second time would only double the wait); with --c-only nothing
 * is compiled. The prefix is --prefix or the model's name. */
/* The cuda backend's half of emit_and_compile: model.cu and the program or
 * library, compiled by nvcc (or as C for the CPU with --host-emulate). */
static bool compile_cuda(const Backend *backend, const Options *o, const CGenOptions *co, const CGenEntry *opt, int n,
                         const char *dir, CGenDriver driver, const char *program, const char *prefix, Diag *d) {
    CGenStats st;
    if (co->mpi) return diag_error_plain(d, "the cuda backend has no data-parallel training yet (--mpi, --ranks)");
    if (co->blas) return diag_error_plain(d, "--blas applies to the c backend (the cuda backend has its own GEMM)");
    if (!build_mkdirs(dir, d) || !backend->write(opt, n, co, dir, &st, d)) return false;
    if (o->c_only) return true;
    const char *flags = o->opt_flags ? o->opt_flags : BUILD_DEFAULT_CFLAGS;
    char lib[128];
    snprintf(lib, sizeof lib, "lib%s.so", prefix);
    const char *lib_src[] = {"model.cu", "etch_rt.c"}, *exe_src[] = {"main.c", "model.cu", "etch_rt.c"};
    if (driver != CGEN_DRIVER_TRAIN && !backend->compile(dir, lib_src, 2, lib, true, flags, NULL, d)) return false;
    if (driver != CGEN_DRIVER_NONE && !backend->compile(dir, exe_src, 3, program, false, flags, NULL, d)) return false;
    if (o->stats)
        printf("kernels: %d\narena bytes: %lld\nnaive bytes: %lld\nparameter bytes: %lld\n", st.kernels,
               (long long)st.arena_bytes, (long long)st.naive_bytes, (long long)st.param_bytes);
    return true;
}

bool emit_and_compile(const Program *p, const CGenEntry *entries, int n, Tensor **params, const Options *o,
                      const char *dir, CGenDriver driver, const char *program, Diag *d) {
    char prefix[64];
    if (o->prefix) snprintf(prefix, sizeof prefix, "%s", o->prefix);
    else model_prefix(p->model_name, prefix, sizeof prefix);
    bool mpi = data_parallel(o);
    CGenOptions co = {.prefix = prefix, .embed_weights = o->embed, .param_values = params, .driver = driver,
                      .threads = o->threads, .blas = o->blas, .mpi = mpi};
    CGenStats st;
    CGenEntry *opt = arena_alloc(p->forward->arena, sizeof *opt * (size_t)n);
    CGenTrainStep *steps = NULL;
    if (driver == CGEN_DRIVER_TRAIN) { /* the training program's steps and their order (train_steps.h) */
        const TrainSpec *ts = p->train;
        steps = arena_alloc(p->forward->arena, sizeof *steps * (size_t)ts->n_steps);
        for (int i = 0; i < ts->n_steps; i++)
            steps[i] = (CGenTrainStep){train_step_entry(p, i, "train_step", p->forward->arena), ts->steps[i].name,
                                       optim_counter(&ts->steps[i].optim)};
        co.train_steps = steps, co.n_train_steps = ts->n_steps, co.schedule = ts->schedule, co.n_schedule = ts->n_schedule;
    }
    const Backend *backend = selected_backend(o, d);
    if (!backend) return false;
    for (int i = 0; i < n; i++) { /* checked before dir is made: a failed build leaves nothing */
        opt[i] = entries[i];
        if (!(opt[i].g = optimize_graph(entries[i].g, o, entries[i].g->arena, d)) ||
            !backend_check_planned(backend, opt[i].g, d) || !backend_check_ops(backend, opt[i].g, d))
            return false;
    }
    if (wants_cuda(o)) /* model.cu: compiled by nvcc, or for the CPU with --host-emulate */
        return compile_cuda(backend, o, &co, opt, n, dir, driver, program, prefix, d);
    if (backend != &backend_c) /* the llvm backend: model.ll, the module's IR before optimization; nothing compiled */
        return build_mkdirs(dir, d) && backend->write(opt, n, &co, dir, &st, d);
    if (!build_mkdirs(dir, d) || !cgen_write(opt, n, &co, dir, &st, d)) return false;
    if (o->c_only) return true; /* a build system compiles model.c (etch_add_model) */
    /* kernels split over threads use pthreads (part of libc since glibc 2.34; -pthread for older ones) */
    char flags[2048], mpi_cflags[1024] = "", mpi_libs[1024] = "", libs_buf[1100];
#ifndef ETCH_CBLAS_INCLUDE
#define ETCH_CBLAS_INCLUDE "/usr/include"
#endif
    /* a data-parallel build adds etch_mpi.c, compiled and linked with Open MPI's flags */
    if (mpi && !build_mpi_flags(mpi_cflags, sizeof mpi_cflags, mpi_libs, sizeof mpi_libs, d)) return false;
    snprintf(flags, sizeof flags, "%s%s%s%s%s", o->opt_flags ? o->opt_flags : BUILD_DEFAULT_CFLAGS, o->threads > 1 ? " -pthread" : "",
             o->blas ? " -I" ETCH_CBLAS_INCLUDE : "", mpi ? " -DETCH_MPI " : "", mpi_cflags);
    snprintf(libs_buf, sizeof libs_buf, "%s %s", o->blas ? "-lopenblas" : "", mpi_libs);
    const char *libs = o->blas || mpi ? libs_buf : NULL;
    const char *lib_src[] = {"model.c", "etch_rt.c", "etch_mpi.c"};
    char lib[128];
    snprintf(lib, sizeof lib, "lib%s.so", prefix);
    if (driver != CGEN_DRIVER_TRAIN && !build_compile_libs(dir, lib_src, mpi ? 3 : 2, lib, true, flags, libs, d)) return false;
    if (driver != CGEN_DRIVER_NONE) {
        const char *exe_src[] = {"main.c", "model.c", "etch_rt.c", "etch_mpi.c"};
        if (!build_compile_libs(dir, exe_src, mpi ? 4 : 3, program, false, flags, libs, d)) return false;
    }
    if (o->stats)
        printf("kernels: %d\narena bytes: %lld\nnaive bytes: %lld\nparameter bytes: %lld\n", st.kernels,
               (long long)st.arena_bytes, (long long)st.naive_bytes, (long long)st.param_bytes);
    return true;
}

bool data_parallel(const Options *o) { return o->mpi || o->ranks > 0; }

void make_data_parallel(Program *p, const Options *o) {
    for (int i = 0; data_parallel(o) && p->train && i < p->train->n_steps; i++)
        p->train->steps[i].optim.allreduce_bucket_bytes =
            o->bucket_kb ? (int64_t)o->bucket_kb << 10 : OPTIM_ALLREDUCE_BUCKET_BYTES;
}

/* `etch build`: the forward entry (with --train also "grad" and "train_step",
 * or "grad_<name>" and "train_step_<name>" for each named step), and the
 * weights file beside it unless embedded. */
bool build_model(Program *p, Tensor **params, const Options *o, const char *dir, bool exe, Arena *a, Diag *d) {
    make_data_parallel(p, o);
    int n_steps = o->train && p->train ? p->train->n_steps : 1;
    CGenEntry *entries = arena_alloc(p->forward->arena, sizeof *entries * (size_t)(1 + 2 * n_steps)); /* a: NULL without --train */
    entries[0] = (CGenEntry){p->forward, "forward"};
    int n = 1;
    for (int i = 0; o->train && i < n_steps; i++) {
        Graph *grad = grad_graph_at(p, i, a, d), *step = grad ? train_step_graph_at(p, i, a, d) : NULL;
        if (!step) return false;
        entries[n++] = (CGenEntry){grad, train_step_entry(p, i, "grad", a)};
        entries[n++] = (CGenEntry){step, train_step_entry(p, i, "train_step", a)};
    }
    if (!emit_and_compile(p, entries, n, params, o, dir, exe ? CGEN_DRIVER_INFER : CGEN_DRIVER_NONE, p->model_name, d))
        return false;
    if (!o->embed) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, p->model_name);
        if (!params_save(p->forward, params, path, d)) return false;
    }
    return true;
}

CGenEntry *training_entries(Program *p, Arena *a, int *n, Diag *d) {
    if (!require_train(p, d)) return NULL;
    *n = 1 + p->train->n_steps;
    CGenEntry *entries = arena_alloc(a, sizeof *entries * (size_t)*n);
    entries[0] = (CGenEntry){p->forward, "forward"};
    for (int i = 0; i < p->train->n_steps; i++) {
        Graph *step = train_step_graph_at(p, i, a, d);
        if (!step) return NULL;
        entries[1 + i] = (CGenEntry){step, train_step_entry(p, i, "train_step", a)};
    }
    return entries;
}

/* Builds the training program (forward + each step's train_step + the
 * training driver) into dir; returns the program's path (malloc'd) or NULL. */
char *build_trainer(Program *p, const Options *o, const char *dir, Diag *d) {
    make_data_parallel(p, o);
    int n;
    CGenEntry *entries = training_entries(p, p->forward->arena, &n, d);
    if (!entries) return NULL;
    Options bo = *o;
    bo.embed = false;
    char program[256];
    snprintf(program, sizeof program, "%s-train", p->model_name);
    if (!emit_and_compile(p, entries, n, NULL, &bo, dir, CGEN_DRIVER_TRAIN, program, d)) return NULL;
    size_t len = strlen(dir) + strlen(program) + 2;
    char *path = malloc(len);
    if (!path) abort();
    snprintf(path, len, "%s/%s", dir, program);
    return path;
}

void *compiled_open(const char *dir, const char *prefix, const char *weights, Diag *d) {
    char path[4096 + 128], sym[128], err[1024];
    snprintf(path, sizeof path, "%s/lib%s.so", dir, prefix);
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        diag_error_plain(d, "cannot load %s: %s", path, dlerror());
        return NULL;
    }
    int (*load)(const char *, int, char *, size_t);
    snprintf(sym, sizeof sym, "%s_load", prefix);
    *(void **)&load = dlsym(lib, sym);
    if (!load) diag_error_plain(d, "%s has no function %s", path, sym);
    else if (load(weights, 0, err, sizeof err)) diag_error_plain(d, "%s", err);
    else return lib;
    compiled_close(lib, prefix);
    return NULL;
}

void compiled_close(void *lib, const char *prefix) {
    if (!lib) return;
    char sym[128];
    void (*release)(void);
    snprintf(sym, sizeof sym, "%s_release", prefix);
    *(void **)&release = dlsym(lib, sym);
    if (release) release();
    dlclose(lib);
}

CompiledFn compiled_entry(void *lib, const char *prefix, const char *entry, Diag *d) {
    char sym[256];
    snprintf(sym, sizeof sym, "%s_%s_v", prefix, entry);
    CompiledFn fn;
    *(void **)&fn = dlsym(lib, sym);
    if (!fn) diag_error_plain(d, "the compiled library has no function %s", sym);
    return fn;
}

bool write_tensor(const char *path, const Tensor *t, Diag *d) {
    etch_array arr = {.dtype = ir_dtype_to_rt(t->dtype), .rank = t->shape.rank, .data = t->data};
    memcpy(arr.dim, t->shape.dim, sizeof arr.dim);
    char err[1024];
    if (etch_npy_write(path, &arr, err, sizeof err)) return diag_error_plain(&*d, "%s", err);
    return true;
}

bool writable_output(const char *flag, const char *path, Arena *a, Diag *d) {
    struct stat st;
    if (!stat(path, &st) && S_ISDIR(st.st_mode)) return diag_error_plain(d, "%s %s: is a folder", flag, path);
    const char *slash = strrchr(path, '/');
    const char *dir = !slash ? "." : slash == path ? "/" : arena_strndup(a, path, (size_t)(slash - path));
    if (stat(dir, &st) || !S_ISDIR(st.st_mode)) return diag_error_plain(d, "%s %s: no folder '%s'", flag, path, dir);
    return true;
}
