/* main.c: the `etch` command-line tool, a thin driver over the pipeline:
 *   source -> frontend -> IR -> (passes) -> C backend / eager executor.
 * Each subcommand is one function below; options are parsed by one table-
 * driven loop so every subcommand rejects unknown flags the same way. User
 * errors print a located diagnostic and exit 1. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/build.h"
#include "codegen/c/emit_c.h"
#include "frontend/frontend.h"
#include "ir/eager.h"
#include "ir/params.h"
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
    bool exe, embed, eager, stats;
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
    "  ir FILE [-D N=V]                print the model's forward graph as textual IR\n"
    "  ir-roundtrip FILE.etchir        parse textual IR, verify it and print it again\n"
    "  build FILE -o DIR [--exe] [--embed-weights] [--weights W.safetensors] [-D N=V] [--stats]\n"
    "                                  emit DIR/model.c, model.h, the runtime, and compile\n"
    "                                  DIR/lib<model>.so (and the program DIR/<model> with --exe)\n"
    "  run FILE --input IN.npy -o OUT.npy [--weights W] [--eager] [-D N=V]\n"
    "                                  compile and run the model (or interpret it with --eager)\n"
    "  make-input FILE -o IN.npy [--seed S] [--idx IMAGES --index N] [-D N=V]\n"
    "                                  write an input for the model's forward: seeded uniform\n"
    "                                  [0,1) values, or image N of an IDX file scaled to [0,1]\n"
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
 * S=--seed X=--idx N=--index c=--cflags */
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
        else if (a[0] == '-' && a[1]) return usage_error("unknown option '%s'", a);
        else {
            if (o->file) return usage_error("more than one input file ('%s')", a);
            o->file = a;
            continue;
        }
        if (!strchr(allowed, key == 'd' ? 'D' : key)) return usage_error("option '%s' does not apply here", a);
        bool takes_value = strchr("owiDSXNc", key) != NULL;
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
        case 'S':
        case 'N': {
            char *end;
            errno = 0;
            long long v = strtoll(val, &end, 10);
            if (*end || errno || v < 0) return usage_error("'%s' is not a non-negative integer", val);
            if (key == 'S') o->seed = (uint64_t)v;
            else o->index = (long)v;
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

static int cmd_check(const Options *o) {
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = load_program(a, o, &d);
    int rc = p && ir_verify(p->forward, &d) ? 0 : 1;
    diag_dispose(&d);
    arena_free(a);
    return rc;
}

static int cmd_ir(const Options *o) {
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = load_program(a, o, &d);
    if (p) ir_print(stdout, p->forward);
    diag_dispose(&d);
    arena_free(a);
    return p ? 0 : 1;
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

/* Emits and compiles the model into dir. */
static bool build_model(const Program *p, Tensor **params, const Options *o, const char *dir, bool exe, Diag *d) {
    char prefix[64];
    model_prefix(p->model_name, prefix, sizeof prefix);
    CGenOptions co = {.prefix = prefix, .embed_weights = o->embed, .param_values = params, .with_main = exe};
    CGenStats st;
    if (!build_mkdirs(dir, d) || !cgen_write(p->forward, &co, dir, &st, d)) return false;
    const char *lib_src[] = {"model.c", "etch_rt.c"};
    char lib[128];
    snprintf(lib, sizeof lib, "lib%s.so", prefix);
    if (!build_compile(dir, lib_src, 2, lib, true, o->opt_flags, d)) return false;
    if (exe) {
        const char *exe_src[] = {"main.c", "model.c", "etch_rt.c"};
        if (!build_compile(dir, exe_src, 3, p->model_name, false, o->opt_flags, d)) return false;
    }
    if (!o->embed) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, p->model_name);
        if (!params_save(p->forward, params, path, d)) return false;
    }
    if (o->stats)
        printf("kernels: %d\narena bytes: %lld\nnaive bytes: %lld\n", st.kernels, (long long)st.arena_bytes,
               (long long)st.naive_bytes);
    return true;
}

static int cmd_build(const Options *o) {
    if (!o->out) return usage_error("%s", "build needs -o DIR");
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = load_program(a, o, &d);
    Tensor **params = p ? load_params(p->forward, o, &d) : NULL;
    bool ok = params && build_model(p, params, o, o->out, o->exe, &d);
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
    ok = ok && build_model(p, params, &bo, dir, true, d);
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

typedef struct Command {
    const char *name, *allowed;
    int (*run)(const Options *o);
} Command;

static const Command COMMANDS[] = {
    {"check", "D", cmd_check},
    {"ir", "D", cmd_ir},
    {"ir-roundtrip", "", cmd_ir_roundtrip},
    {"build", "owDxesc", cmd_build},
    {"run", "owiDgc", cmd_run},
    {"make-input", "oDSXN", cmd_make_input},
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
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) {
        if (strcmp(argv[1], COMMANDS[i].name)) continue;
        g_cmd = COMMANDS[i].name;
        for (int k = 2; k < argc; k++)
            if (!strcmp(argv[k], "--help") || !strcmp(argv[k], "-h")) {
                fputs(HELP, stdout);
                return 0;
            }
        Options o = {0};
        int rc = parse_options(argc - 2, argv + 2, COMMANDS[i].allowed, &o);
        if (rc == 0) rc = COMMANDS[i].run(&o);
        options_free(&o);
        return rc;
    }
    fprintf(stderr, "etch: error: unknown command '%s' (see 'etch --help')\n", argv[1]);
    return 1;
}
