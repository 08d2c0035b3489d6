/* main.c: the `etch` command-line tool, a thin driver over the pipeline:
 *   source -> frontend -> IR -> (passes) -> C backend / eager executor.
 * Each subcommand is one function below; options are parsed by one table-
 * driven loop so every subcommand rejects unknown flags the same way. User
 * errors print a located diagnostic and exit 1. */
#include <ctype.h>
#include <dlfcn.h>
#include <math.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codegen/build.h"
#include "codegen/c/emit_c.h"
#include "frontend/frontend.h"
#include "ir/eager.h"
#include "ir/params.h"
#include "passes/autodiff.h"
#include "passes/to_f64.h"
#include "passes/train.h"
#include "runtime/etch_rt.h"

#ifndef ETCH_VERSION
#define ETCH_VERSION "0.0.0"
#endif

enum { MAX_DEFINES = 64, MAX_FILES = 16 };

/* Everything any subcommand accepts; each subcommand says which it allows. */
typedef struct Options {
    const char *file;
    const char *out;           /* -o */
    const char *weights;       /* --weights */
    const char *inputs[MAX_FILES];
    int n_inputs;              /* --input (repeatable) */
    const char *outs[MAX_FILES];
    int n_outs;                /* -o (repeatable for run) */
    Define defines[MAX_DEFINES];
    int n_defines;
    bool exe, embed, eager, stats, grad, no_shuffle, train;
    const char *data, *init, *resume; /* train / eval */
    long epochs, steps, limit;        /* train: -1 = default */
    const char *idx;           /* make-input --idx */
    long index;                /* make-input --index */
    uint64_t seed;
    const char *opt_flags;     /* --cflags for the C compiler */
} Options;

static const char *g_cmd = "etch";

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "etch %s: error: ", g_cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(see 'etch %s --help')\n", g_cmd);
    return 1;
}

static const char *HELP =
    "etch " ETCH_VERSION ": a static graph compiler for neural networks\n"
    "\n"
    "usage: etch COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  check FILE [-D N=V]             parse and type-check a model\n"
    "  ir FILE [-D N=V] [--grad]       print the forward graph as textual IR (--grad: the\n"
    "                                  training step: loss, gradients, optimizer update)\n"
    "  ir-roundtrip FILE.etchir        parse textual IR, verify it and print it again\n"
    "  build FILE -o DIR [--exe] [--embed-weights] [--weights W.safetensors] [-D N=V] [--stats]\n"
    "        [--train]                 (--train: also the entries <model>_grad and <model>_train_step)\n"
    "                                  emit DIR/model.c, model.h, the runtime, and compile\n"
    "                                  DIR/lib<model>.so (and the program DIR/<model> with --exe)\n"
    "  run FILE --input IN.npy -o OUT.npy [--weights W] [--eager] [-D N=V]\n"
    "                                  compile and run the model (or interpret it with --eager)\n"
    "  make-input FILE -o IN.npy [--seed S] [--idx IMAGES --index N] [-D N=V]\n"
    "                                  write an input for the model's forward: seeded uniform\n"
    "                                  [0,1) values, or image N of an IDX file scaled to [0,1]\n"
    "  train FILE --data DIR [--epochs N] [--steps N] [--seed S] [--init W | --resume CKPT]\n"
    "        [--no-shuffle] [--limit N] [-o OUTDIR]\n"
    "                                  compile the train block's step and a driver into one\n"
    "                                  program (OUTDIR/build/), train on IDX data, write\n"
    "                                  OUTDIR/<model>.safetensors and OUTDIR/checkpoint.safetensors\n"
    "  eval FILE --weights W --data DIR  accuracy and mean NLL on the test split\n"
    "  gradcheck FILE [--seed S]       compiled gradients vs float64 finite differences\n"
    "  compare A.npy B.npy [--rtol R]  element-wise comparison (exit 1 beyond rtol, default 1e-5)\n"
    "  show A.npy [--argmax]           print an array (or the argmax of each row)\n"
    "\n"
    "Without --weights, parameters come from their initializers with seed 0.\n"
    "Environment: CC (default cc) compiles emitted code.\n"
    "Documentation: docs/dsl.md, docs/ops.md, docs/ir.md.\n";

static bool parse_define(Options *o, const char *arg) {
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1] || o->n_defines == MAX_DEFINES) return false;
    o->defines[o->n_defines].name = strndup(arg, (size_t)(eq - arg));
    o->defines[o->n_defines].value = eq + 1;
    o->n_defines++;
    return true;
}

/* allowed: a string of option letters this command accepts:
 * o=-o w=--weights i=--input D=-D x=--exe e=--embed-weights g=--eager s=--stats
 * S=--seed X=--idx N=--index c=--cflags G=--grad n=--no-shuffle a=--data I=--init
 * R=--resume E=--epochs T=--steps l=--limit t=--train */
static int parse_options(int argc, char **argv, const char *allowed, Options *o) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        char key = 0;
        if (!strcmp(a, "-o")) key = 'o';
        else if (!strcmp(a, "--weights")) key = 'w';
        else if (!strcmp(a, "--input")) key = 'i';
        else if (!strcmp(a, "-D")) key = 'D';
        else if (!strncmp(a, "-D", 2) && a[2]) key = 'd';
        else if (!strcmp(a, "--exe")) key = 'x';
        else if (!strcmp(a, "--embed-weights")) key = 'e';
        else if (!strcmp(a, "--eager")) key = 'g';
        else if (!strcmp(a, "--stats")) key = 's';
        else if (!strcmp(a, "--seed")) key = 'S';
        else if (!strcmp(a, "--idx")) key = 'X';
        else if (!strcmp(a, "--index")) key = 'N';
        else if (!strcmp(a, "--cflags")) key = 'c';
        else if (!strcmp(a, "--grad")) key = 'G';
        else if (!strcmp(a, "--train")) key = 't';
        else if (!strcmp(a, "--no-shuffle")) key = 'n';
        else if (!strcmp(a, "--data")) key = 'a';
        else if (!strcmp(a, "--init")) key = 'I';
        else if (!strcmp(a, "--resume")) key = 'R';
        else if (!strcmp(a, "--epochs")) key = 'E';
        else if (!strcmp(a, "--steps")) key = 'T';
        else if (!strcmp(a, "--limit")) key = 'l';
        else if (a[0] == '-' && a[1]) return usage_error("unknown option '%s'", a);
        else {
            if (o->file) return usage_error("more than one input file ('%s')", a);
            o->file = a;
            continue;
        }
        if (!strchr(allowed, key == 'd' ? 'D' : key)) return usage_error("option '%s' does not apply here", a);
        bool takes_value = strchr("owiDSXNcaIRETl", key) != NULL;
        if (takes_value && !val) return usage_error("option '%s' needs a value", a);
        switch (key) {
        case 'o':
            if (o->n_outs == MAX_FILES) return usage_error("too many '%s' options", a);
            o->out = o->outs[o->n_outs++] = val;
            break;
        case 'w': o->weights = val; break;
        case 'i':
            if (o->n_inputs == MAX_FILES) return usage_error("too many '%s' options", a);
            o->inputs[o->n_inputs++] = val;
            break;
        case 'D':
            if (!parse_define(o, val)) return usage_error("-D needs NAME=VALUE, got '%s'", val);
            break;
        case 'd':
            if (!parse_define(o, a + 2)) return usage_error("-D needs NAME=VALUE, got '%s'", a + 2);
            break;
        case 'x': o->exe = true; break;
        case 'e': o->embed = true; break;
        case 'g': o->eager = true; break;
        case 's': o->stats = true; break;
        case 'X': o->idx = val; break;
        case 'c': o->opt_flags = val; break;
        case 'G': o->grad = true; break;
        case 't': o->train = true; break;
        case 'n': o->no_shuffle = true; break;
        case 'a': o->data = val; break;
        case 'I': o->init = val; break;
        case 'R': o->resume = val; break;
        case 'S':
        case 'N':
        case 'E':
        case 'T':
        case 'l': {
            char *end;
            errno = 0;
            long long v = strtoll(val, &end, 10);
            if (*end || errno || v < 0) return usage_error("'%s' is not a non-negative integer", val);
            if (key == 'S') o->seed = (uint64_t)v;
            else if (key == 'N') o->index = (long)v;
            else if (key == 'E') o->epochs = (long)v;
            else if (key == 'T') o->steps = (long)v;
            else o->limit = (long)v;
            break;
        }
        }
        if (takes_value) i++;
    }
    if (!o->file) return usage_error("%s", "no input file given");
    return 0;
}

static void options_free(Options *o) {
    for (int i = 0; i < o->n_defines; i++) free((void *)o->defines[i].name);
}

/* Model name -> C prefix: "Net" -> "net"; non-identifier chars become '_'. */
static void model_prefix(const char *model, char *buf, size_t n) {
    size_t k = 0;
    for (const char *p = model; *p && k + 1 < n; p++)
        buf[k++] = isalnum((unsigned char)*p) ? (char)tolower((unsigned char)*p) : '_';
    buf[k] = 0;
    if (!k || isdigit((unsigned char)buf[0])) snprintf(buf, n, "model");
}

static Program *load_program(Arena *a, const Options *o, Diag *d) {
    return frontend_compile_file(a, o->file, o->defines, o->n_defines, d);
}

static Tensor **load_params(const Graph *g, const Options *o, Diag *d) {
    return o->weights ? params_load(g, o->weights, d) : params_init(g, ETCH_DEFAULT_SEED);
}

static Graph *train_step_graph(Program *p, Arena *a, Diag *d);

static int cmd_check(const Options *o) {
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = load_program(a, o, &d);
    bool ok = p && ir_verify(p->forward, &d);
    if (ok && p->train) { /* the training step too: optimizer settings, differentiability */
        Graph *step = train_step_graph(p, a, &d);
        ok = step && ir_verify(step, &d);
    }
    int rc = ok ? 0 : 1;
    diag_dispose(&d);
    arena_free(a);
    return rc;
}

static bool require_train(const Program *p, Diag *d) {
    if (p->train) return true;
    return diag_error(d, p->model_loc, "model %s has no train block: nothing to differentiate", p->model_name);
}

/* The training step (loss, gradients, optimizer update), on a copy of the loss graph. */
static Graph *train_step_graph(Program *p, Arena *a, Diag *d) {
    if (!require_train(p, d)) return NULL;
    char name[256];
    snprintf(name, sizeof name, "%s.train_step", p->model_name);
    Graph *g = graph_clone(a, p->train->loss, name);
    return train_build_step(g, &p->train->optim, d) ? g : NULL;
}

/* The loss and its gradients w.r.t. every trainable param (outputs: loss,
 * then one gradient per trainable param in declaration order). */
static Graph *grad_graph(Program *p, Arena *a, Diag *d) {
    if (!require_train(p, d)) return NULL;
    char name[256];
    snprintf(name, sizeof name, "%s.grad", p->model_name);
    Graph *g = graph_clone(a, p->train->loss, name);
    int *wrt = arena_alloc(a, sizeof(int) * (size_t)(g->n_params + 1)), n = 0;
    int *grads = arena_alloc(a, sizeof(int) * (size_t)(g->n_params + 1));
    for (int i = 0; i < g->n_params; i++)
        if (!g->nodes[g->params[i]].attr.frozen && dtype_is_float(g->nodes[g->params[i]].dtype)) wrt[n++] = g->params[i];
    if (!autodiff(g, g->outputs[0], wrt, n, grads, d)) return NULL;
    for (int i = 0; i < n; i++) graph_add_output(g, grads[i]);
    return g;
}

static int cmd_ir(const Options *o) {
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = load_program(a, o, &d);
    Graph *g = p ? (o->grad ? train_step_graph(p, a, &d) : p->forward) : NULL;
    if (g) ir_print(stdout, g);
    diag_dispose(&d);
    arena_free(a);
    return g ? 0 : 1;
}

static int cmd_ir_roundtrip(const Options *o) {
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    unsigned char *text = NULL;
    size_t n;
    char err[1024];
    int rc = 1;
    if (etch_read_file(o->file, &text, &n, err, sizeof err)) {
        diag_error_plain(&d, "%s", err);
    } else {
        diag_add_source(o->file, (const char *)text);
        Graph *g = ir_parse(a, o->file, (const char *)text, &d);
        if (g && ir_verify(g, &d)) {
            ir_print(stdout, g);
            rc = 0;
        }
    }
    diag_dispose(&d);
    arena_free(a);
    free(text);
    return rc;
}

/* Emits the entries into dir and compiles them: always lib<prefix>.so, plus
 * the program dir/<program> when driver is set. */
static bool emit_and_compile(const Program *p, const CGenEntry *entries, int n, Tensor **params, const Options *o,
                             const char *dir, CGenDriver driver, const char *program, Diag *d) {
    char prefix[64];
    model_prefix(p->model_name, prefix, sizeof prefix);
    CGenOptions co = {.prefix = prefix, .embed_weights = o->embed, .param_values = params, .driver = driver};
    CGenStats st;
    if (!build_mkdirs(dir, d) || !cgen_write(entries, n, &co, dir, &st, d)) return false;
    const char *lib_src[] = {"model.c", "etch_rt.c"};
    char lib[128];
    snprintf(lib, sizeof lib, "lib%s.so", prefix);
    if (!build_compile(dir, lib_src, 2, lib, true, o->opt_flags, d)) return false;
    if (driver != CGEN_DRIVER_NONE) {
        const char *exe_src[] = {"main.c", "model.c", "etch_rt.c"};
        if (!build_compile(dir, exe_src, 3, program, false, o->opt_flags, d)) return false;
    }
    if (o->stats)
        printf("kernels: %d\narena bytes: %lld\nnaive bytes: %lld\nparameter bytes: %lld\n", st.kernels,
               (long long)st.arena_bytes, (long long)st.naive_bytes, (long long)st.param_bytes);
    return true;
}

/* `etch build`: the forward entry (with --train also "grad" and "train_step"),
 * and the weights file beside it unless embedded. */
static bool build_model(Program *p, Tensor **params, const Options *o, const char *dir, bool exe, Arena *a, Diag *d) {
    CGenEntry entries[3] = {{p->forward, "forward"}};
    int n = 1;
    if (o->train) {
        Graph *grad = grad_graph(p, a, d), *step = grad ? train_step_graph(p, a, d) : NULL;
        if (!step) return false;
        entries[n++] = (CGenEntry){grad, "grad"};
        entries[n++] = (CGenEntry){step, "train_step"};
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

static int cmd_build(const Options *o) {
    if (!o->out) return usage_error("%s", "build needs -o DIR");
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = load_program(a, o, &d);
    Tensor **params = p ? load_params(p->forward, o, &d) : NULL;
    bool ok = params && (!o->train || !o->embed || usage_error("%s", "--train cannot embed weights") == 0) &&
              build_model(p, params, o, o->out, o->exe, a, &d);
    if (p) params_free(p->forward, params);
    diag_dispose(&d);
    arena_free(a);
    return ok ? 0 : 1;
}

static etch_dtype to_rt(DType t) {
    static const etch_dtype m[DT_COUNT] = {[DT_F32] = ETCH_F32, [DT_F64] = ETCH_F64, [DT_I32] = ETCH_I32,
                                           [DT_I64] = ETCH_I64, [DT_BOOL] = ETCH_BOOL};
    return m[t];
}

/* Reads an .npy input and checks it against graph input node id. */
static Tensor *read_input(const Graph *g, int id, const char *path, Diag *d) {
    etch_array arr;
    char err[1024];
    if (etch_npy_read(path, &arr, err, sizeof err)) {
        diag_error_plain(d, "%s", err);
        return NULL;
    }
    const Node *n = &g->nodes[id];
    bool same = arr.dtype == to_rt(n->dtype) && arr.rank == n->shape.rank;
    for (int k = 0; same && k < arr.rank; k++) same = arr.dim[k] == n->shape.dim[k];
    if (!same) {
        char want[96], got[128];
        type_format(want, sizeof want, n->dtype, &n->shape);
        etch_array_describe(got, sizeof got, arr.dtype, arr.rank, arr.dim);
        diag_error_plain(d, "%s: input '%s' must be %s, the file holds %s", path, n->attr.name, want, got);
        etch_array_free(&arr);
        return NULL;
    }
    Tensor *t = tensor_new(n->dtype, n->shape);
    memcpy(t->data, arr.data, tensor_nbytes(t));
    etch_array_free(&arr);
    return t;
}

static bool write_tensor(const char *path, const Tensor *t, Diag *d) {
    etch_array arr = {.dtype = to_rt(t->dtype), .rank = t->shape.rank, .data = t->data};
    memcpy(arr.dim, t->shape.dim, sizeof arr.dim);
    char err[1024];
    if (etch_npy_write(path, &arr, err, sizeof err)) return diag_error_plain(&*d, "%s", err);
    return true;
}

static bool run_eager(const Program *p, const Options *o, Diag *d) {
    const Graph *g = p->forward;
    Tensor **params = load_params(g, o, d);
    Tensor **ins = calloc((size_t)g->n_inputs + 1, sizeof *ins);
    Tensor **outs = calloc((size_t)g->n_outputs + 1, sizeof *outs);
    bool ok = params != NULL;
    for (int i = 0; ok && i < g->n_inputs; i++) ok = (ins[i] = read_input(g, g->inputs[i], o->inputs[i], d)) != NULL;
    ok = ok && eager_run(g, ins, params, outs, NULL, d);
    for (int i = 0; ok && i < g->n_outputs; i++) ok = write_tensor(o->outs[i], outs[i], d);
    for (int i = 0; i < g->n_inputs; i++) tensor_free(ins[i]);
    for (int i = 0; i < g->n_outputs; i++) tensor_free(outs[i]);
    free(ins);
    free(outs);
    params_free(g, params);
    return ok;
}

static bool run_compiled(const Program *p, const Options *o, Diag *d) {
    const Graph *g = p->forward;
    Tensor **params = load_params(g, o, d); /* validates the weights file with etch's own messages */
    if (!params) return false;
    char *dir = build_tempdir(d);
    bool ok = dir != NULL;
    Options bo = *o;
    bo.embed = false;
    bo.stats = false;
    bo.train = false;
    ok = ok && build_model((Program *)p, params, &bo, dir, true, NULL, d);
    if (ok) {
        char exe[4096], weights[4096];
        snprintf(exe, sizeof exe, "%s/%s", dir, p->model_name);
        snprintf(weights, sizeof weights, "%s/%s.safetensors", dir, p->model_name);
        const char *argv[2 * MAX_FILES + 4];
        int n = 0;
        argv[n++] = exe;
        argv[n++] = "--weights";
        argv[n++] = weights;
        for (int i = 0; i < o->n_inputs; i++) argv[n++] = o->inputs[i];
        for (int i = 0; i < o->n_outs; i++) argv[n++] = o->outs[i];
        argv[n] = NULL;
        ok = build_spawn(argv, d);
    }
    if (dir) build_rmtree(dir);
    free(dir);
    params_free(g, params);
    return ok;
}

static int cmd_run(const Options *o) {
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = load_program(a, o, &d);
    bool ok = p != NULL;
    if (ok && o->n_inputs != p->forward->n_inputs) {
        ok = diag_error(&d, p->model_loc, "%s.forward takes %d input%s; %d --input file%s given", p->model_name,
                        p->forward->n_inputs, p->forward->n_inputs == 1 ? "" : "s", o->n_inputs,
                        o->n_inputs == 1 ? "" : "s");
    }
    if (ok && o->n_outs != p->forward->n_outputs) {
        ok = diag_error(&d, p->model_loc, "%s.forward returns %d value%s; %d -o file%s given", p->model_name,
                        p->forward->n_outputs, p->forward->n_outputs == 1 ? "" : "s", o->n_outs,
                        o->n_outs == 1 ? "" : "s");
    }
    if (ok) ok = o->eager ? run_eager(p, o, &d) : run_compiled(p, o, &d);
    diag_dispose(&d);
    arena_free(a);
    return ok ? 0 : 1;
}

static int cmd_make_input(const Options *o) {
    if (!o->out) return usage_error("%s", "make-input needs -o IN.npy");
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = load_program(a, o, &d);
    bool ok = p != NULL;
    if (ok && p->forward->n_inputs != 1)
        ok = diag_error(&d, p->model_loc, "make-input needs a forward with one input, %s.forward has %d",
                        p->model_name, p->forward->n_inputs);
    if (ok) {
        const Node *n = &p->forward->nodes[p->forward->inputs[0]];
        Tensor *t = tensor_new(n->dtype, n->shape);
        int64_t numel = tensor_numel(t);
        if (o->idx) {
            etch_array img;
            char err[1024];
            if (etch_idx_read(o->idx, &img, err, sizeof err)) {
                ok = diag_error_plain(&d, "%s", err);
            } else {
                int64_t per = img.rank ? etch_array_numel(&img) / img.dim[0] : 1;
                int64_t count = img.rank ? img.dim[0] : 1;
                if (img.dtype != ETCH_U8)
                    ok = diag_error_plain(&d, "%s: expected unsigned byte images, got %s", o->idx,
                                          etch_dtype_name(img.dtype));
                else if (numel % per != 0)
                    ok = diag_error_plain(&d, "%s: images of %lld pixels do not fill input '%s' of %lld elements",
                                          o->idx, (long long)per, n->attr.name, (long long)numel);
                else if (o->index + numel / per > count)
                    ok = diag_error_plain(&d, "%s: --index %ld needs %lld images, the file has %lld", o->idx,
                                          o->index, (long long)(numel / per), (long long)count);
                for (int64_t i = 0; ok && i < numel; i++)
                    tensor_set(t, i, ((const uint8_t *)img.data)[o->index * per + i] / 255.0);
                etch_array_free(&img);
            }
        } else {
            uint32_t r[4];
            for (int64_t i = 0; i < numel; i++) {
                etch_philox4x32(o->seed, 1, (uint64_t)i, r);
                tensor_set(t, i, etch_u01(r[0]));
            }
        }
        ok = ok && write_tensor(o->out, t, &d);
        tensor_free(t);
    }
    diag_dispose(&d);
    arena_free(a);
    return ok ? 0 : 1;
}

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

static int cmd_train(const Options *o) {
    if (!o->data) return usage_error("%s", "train needs --data DIR");
    if (o->init && o->resume) return usage_error("%s", "--init and --resume exclude each other");
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = check_data_dir(o->data, &d) ? load_program(a, o, &d) : NULL;
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
        argv[n++] = "--data", argv[n++] = o->data;
        argv[n++] = o->resume ? "--resume" : "--init";
        argv[n++] = o->resume ? o->resume : o->init ? o->init : init_path;
        argv[n++] = "-o", argv[n++] = out;
        argv[n++] = "--name", argv[n++] = p->model_name;
        snprintf(num[0], sizeof num[0], "%ld", o->epochs >= 0 ? o->epochs : (long)p->train->epochs);
        argv[n++] = "--epochs", argv[n++] = num[0];
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

static int cmd_eval(const Options *o) {
    if (!o->data || !o->weights) return usage_error("%s", "eval needs --weights W and --data DIR");
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = check_data_dir(o->data, &d) ? load_program(a, o, &d) : NULL;
    Tensor **check = p ? params_load(p->forward, o->weights, &d) : NULL; /* etch's own messages first */
    char *dir = check ? build_tempdir(&d) : NULL;
    char *program = dir ? build_trainer(p, o, dir, &d) : NULL;
    bool ok = program != NULL;
    if (ok) {
        const char *argv[] = {program, "--eval", "--data", o->data, "--weights", o->weights, NULL};
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
static int cmd_gradcheck(const Options *o) {
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

/* `etch compare A.npy B.npy [--rtol R]`: element-wise comparison of two arrays
 * of the same dtype and shape; fails when |a - b| > rtol * |b| + rtol * 1e-2
 * anywhere. Prints the largest absolute and relative differences. */
static int cmd_compare(int argc, char **argv) {
    const char *files[2] = {0};
    int nf = 0;
    double rtol = 1e-5;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--rtol") && i + 1 < argc) {
            char *end;
            rtol = strtod(argv[++i], &end);
            if (*end || !(rtol >= 0)) return usage_error("--rtol needs a non-negative number, got '%s'", argv[i]);
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return usage_error("unknown option '%s'", argv[i]);
        } else if (nf < 2) {
            files[nf++] = argv[i];
        } else {
            return usage_error("%s", "compare takes two .npy files");
        }
    }
    if (nf != 2) return usage_error("%s", "compare takes two .npy files");
    etch_array x[2];
    char err[1024];
    for (int i = 0; i < 2; i++)
        if (etch_npy_read(files[i], &x[i], err, sizeof err)) {
            fprintf(stderr, "etch: error: %s\n", err);
            if (i) etch_array_free(&x[0]);
            return 1;
        }
    int rc = 0;
    bool same = x[0].dtype == x[1].dtype && x[0].rank == x[1].rank;
    for (int k = 0; same && k < x[0].rank; k++) same = x[0].dim[k] == x[1].dim[k];
    if (!same) {
        char a[128], b[128];
        etch_array_describe(a, sizeof a, x[0].dtype, x[0].rank, x[0].dim);
        etch_array_describe(b, sizeof b, x[1].dtype, x[1].rank, x[1].dim);
        fprintf(stderr, "etch: error: %s holds %s but %s holds %s\n", files[0], a, files[1], b);
        rc = 1;
    } else {
        DType t = x[0].dtype == ETCH_F32 ? DT_F32 : x[0].dtype == ETCH_F64 ? DT_F64 : x[0].dtype == ETCH_I32 ? DT_I32
                : x[0].dtype == ETCH_I64 ? DT_I64 : DT_BOOL;
        Shape sh = {.rank = x[0].rank};
        memcpy(sh.dim, x[0].dim, sizeof sh.dim);
        Tensor *a = tensor_wrap(t, sh, x[0].data), *b = tensor_wrap(t, sh, x[1].data);
        double max_abs = 0, max_rel = 0;
        int64_t bad = 0, numel = tensor_numel(a);
        for (int64_t i = 0; i < numel; i++) {
            double u = tensor_get(a, i), v = tensor_get(b, i), diff = fabs(u - v);
            if (isnan(u) && isnan(v)) continue;
            if (!(diff <= rtol * fabs(v) + rtol * 1e-2)) bad++;
            max_abs = fmax(max_abs, diff);
            if (v != 0) max_rel = fmax(max_rel, diff / fabs(v));
        }
        printf("%lld elements, max abs diff %.3g, max rel diff %.3g, %lld beyond rtol %g\n", (long long)numel, max_abs,
               max_rel, (long long)bad, rtol);
        rc = bad ? 1 : 0;
        tensor_free(a);
        tensor_free(b);
    }
    etch_array_free(&x[0]);
    etch_array_free(&x[1]);
    return rc;
}

/* `etch show A.npy [--argmax]`: the array's type and values (at most 64), or
 * with --argmax the index of the largest value along the last axis, per row. */
static int cmd_show(int argc, char **argv) {
    const char *file = NULL;
    bool argmax = false;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--argmax")) argmax = true;
        else if (argv[i][0] == '-' && argv[i][1]) return usage_error("unknown option '%s'", argv[i]);
        else if (!file) file = argv[i];
        else return usage_error("%s", "show takes one .npy file");
    }
    if (!file) return usage_error("%s", "show takes one .npy file");
    etch_array x;
    char err[1024], desc[128];
    if (etch_npy_read(file, &x, err, sizeof err)) {
        fprintf(stderr, "etch: error: %s\n", err);
        return 1;
    }
    DType t = x.dtype == ETCH_F32 ? DT_F32 : x.dtype == ETCH_F64 ? DT_F64 : x.dtype == ETCH_I32 ? DT_I32
            : x.dtype == ETCH_I64 ? DT_I64 : DT_BOOL;
    Shape sh = {.rank = x.rank};
    memcpy(sh.dim, x.dim, sizeof sh.dim);
    Tensor *a = tensor_wrap(t, sh, x.data);
    int64_t numel = tensor_numel(a), row = x.rank ? x.dim[x.rank - 1] : 1;
    if (argmax) {
        for (int64_t r = 0; row && r < numel / row; r++) {
            int64_t best = 0;
            for (int64_t k = 1; k < row; k++)
                if (tensor_get(a, r * row + k) > tensor_get(a, r * row + best)) best = k;
            printf("%lld\n", (long long)best);
        }
    } else {
        printf("%s\n", etch_array_describe(desc, sizeof desc, x.dtype, x.rank, x.dim));
        for (int64_t i = 0; i < numel && i < 64; i++) printf("%s%.6g", i ? (i % row ? " " : "\n") : "", tensor_get(a, i));
        printf("%s\n", numel > 64 ? " ..." : "");
    }
    tensor_free(a);
    etch_array_free(&x);
    return 0;
}

typedef struct Command {
    const char *name, *allowed;
    int (*run)(const Options *o);
} Command;

static const Command COMMANDS[] = {
    {"check", "D", cmd_check},
    {"ir", "DG", cmd_ir},
    {"ir-roundtrip", "", cmd_ir_roundtrip},
    {"build", "owDxesct", cmd_build},
    {"run", "owiDgc", cmd_run},
    {"make-input", "oDSXN", cmd_make_input},
    {"train", "oDwSaIRETlnc", cmd_train},
    {"eval", "Dwac", cmd_eval},
    {"gradcheck", "DS", cmd_gradcheck},
};

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(HELP, argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("etch %s\n", ETCH_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "show")) {
        g_cmd = "show";
        return cmd_show(argc - 2, argv + 2);
    }
    if (!strcmp(argv[1], "compare")) {
        g_cmd = "compare";
        return cmd_compare(argc - 2, argv + 2);
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) {
        if (strcmp(argv[1], COMMANDS[i].name)) continue;
        g_cmd = COMMANDS[i].name;
        for (int k = 2; k < argc; k++)
            if (!strcmp(argv[k], "--help") || !strcmp(argv[k], "-h")) {
                fputs(HELP, stdout);
                return 0;
            }
        Options o = {.epochs = -1, .steps = -1, .limit = -1};
        int rc = parse_options(argc - 2, argv + 2, COMMANDS[i].allowed, &o);
        if (rc == 0) rc = COMMANDS[i].run(&o);
        options_free(&o);
        return rc;
    }
    fprintf(stderr, "etch: error: unknown command '%s' (see 'etch --help')\n", argv[1]);
    return 1;
}
