/* main.c: the `etch` command-line tool, a thin driver over the pipeline:
 *   source -> frontend -> IR -> passes -> C backend / eager executor.
 * Options are parsed by one table-driven loop, so every subcommand rejects
 * unknown flags the same way; the subcommands live in cmd_*.c. User errors
 * print a located diagnostic and exit 1. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/build.h"
#include "tool/tool.h"
#include "ir/params.h"
#include "passes/autodiff.h"
#include "passes/pass.h"
#include "passes/train.h"

#ifndef ETCH_VERSION
#define ETCH_VERSION "0.0.0"
#endif

static const char *g_cmd = "etch";

int usage_error(const char *fmt, const char *arg) {
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
    "  opt FILE.etchir [-O0|-O1|-O2] [--passes=a,b,...] [--print-after-all]\n"
    "                                  run passes over textual IR and print the result\n"
    "  ir FILE [-D N=V] [--grad]       print the forward graph as textual IR (--grad: the\n"
    "                                  training step: loss, gradients, optimizer update)\n"
    "  ir-roundtrip FILE.etchir        parse textual IR, verify it and print it again\n"
    "  build FILE -o DIR [--exe] [--embed-weights] [--weights W.safetensors] [-D N=V] [--stats]\n"
    "        [--train]                 (--train: also the entries <model>_grad and <model>_train_step)\n"
    "                                  emit DIR/model.c, model.h, the runtime, and compile\n"
    "                                  DIR/lib<model>.so (and the program DIR/<model> with --exe)\n"
    "  run FILE --input IN.npy -o OUT.npy [--weights W] [--eager] [-D N=V]\n"
    "                                  compile and run the model (or interpret it with --eager)\n"
    "  run FILE --sample N [--weights W] [--seed S] [--prompt TEXT]\n"
    "                                  language models on bytes: print N sampled bytes (batch 1)\n"
    "  make-input FILE -o IN.npy [--seed S] [--idx IMAGES --index N] [-D N=V]\n"
    "                                  write an input for the model's forward: seeded uniform\n"
    "                                  [0,1) values, or image N of an IDX file scaled to [0,1]\n"
    "  train FILE --data DIR [--epochs N] [--steps N] [--seed S] [--init W | --resume CKPT]\n"
    "        [--no-shuffle] [--limit N] [-o OUTDIR]\n"
    "  train FILE --text CORPUS [--steps N] [--epochs N] [--seed S] [--init W | --resume CKPT] [-o OUTDIR]\n"
    "                                  train a byte-level language model (an epoch is 100 steps)\n"
    "                                  compile the train block's step and a driver into one\n"
    "                                  program (OUTDIR/build/), train on IDX data, write\n"
    "                                  OUTDIR/<model>.safetensors and OUTDIR/checkpoint.safetensors\n"
    "  eval FILE --weights W (--data DIR [--png GRID.png] | --text CORPUS)\n"
    "                                  accuracy and mean NLL on the test split (autoencoders:\n"
    "                                  reconstruction MSE, and a PNG grid of inputs and outputs;\n"
    "                                  --text: held-out loss per byte of a language model)\n"
    "  gradcheck FILE [--seed S]       compiled gradients vs float64 finite differences\n"
    "  bench FILE [-D N=V] [--threads N]  static vs dynamic: eager executor vs compiled C,\n"
    "                                  inference and (with a train block) a training step\n"
    "  graph FILE [--grad] [--after PASS | -O2] -o OUT.svg|OUT.dot\n"
    "                                  draw the graph with Graphviz; fused kernels are clusters\n"
    "  compare A.npy B.npy [--rtol R]  element-wise comparison (exit 1 beyond rtol, default 1e-5)\n"
    "  show A.npy [--argmax]           print an array (or the argmax of each row)\n"
    "\n"
    "Kernels: --threads N (bit-identical for any N); --blas=openblas calls OpenBLAS for matmuls\n"
    "(the program then links libopenblas) instead of etch's own kernels.\n"
    "Optimization (build, run, train, bench, ir): -O0 (no passes, no buffer reuse), -O1 (simplify, cse,\n"
    "dce), -O2 (default: also fusion); --print-after-all, --print-after=PASS, --disable-pass=PASS.\n"
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
 * R=--resume E=--epochs T=--steps l=--limit t=--train h=--threads y=--png
 * K=--text M=--sample r=--prompt */
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
        else if (!strcmp(a, "--threads")) key = 'h';
        else if (!strcmp(a, "--png")) key = 'y';
        else if (!strcmp(a, "--after")) key = 'A';
        else if (!strncmp(a, "--blas=", 7)) key = 'B';
        else if (!strcmp(a, "--text")) key = 'K';
        else if (!strcmp(a, "--sample")) key = 'M';
        else if (!strcmp(a, "--prompt")) key = 'r';
        else if (!strcmp(a, "-O0") || !strcmp(a, "-O1") || !strcmp(a, "-O2") || !strcmp(a, "-O3")) key = 'O';
        else if (!strcmp(a, "--print-after-all")) key = 'P';
        else if (!strncmp(a, "--print-after=", 14)) key = 'p';
        else if (!strncmp(a, "--disable-pass=", 15)) key = 'z';
        else if (!strncmp(a, "--passes=", 9)) key = 'q';
        else if (a[0] == '-' && a[1]) return usage_error("unknown option '%s'", a);
        else {
            if (o->file) return usage_error("more than one input file ('%s')", a);
            o->file = a;
            continue;
        }
        /* -O and the pass flags go together: any command that optimizes takes them all */
        char need = key == 'd' ? 'D' : (key == 'P' || key == 'p' || key == 'z' || key == 'B') ? 'O' : key;
        if (!strchr(allowed, need)) return usage_error("option '%s' does not apply here", a);
        bool takes_value = strchr("owiDSXNcaIRETlhyKMrA", key) != NULL;
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
        case 'O':
            o->opt_level = a[2] - '0' > 2 ? 2 : a[2] - '0';
            o->opt_given = true;
            break;
        case 'P': o->print_after_all = true; break;
        case 'p':
            if (o->n_print_after == 16) return usage_error("too many '%s' options", a);
            o->print_after[o->n_print_after++] = a + 14;
            break;
        case 'q': o->passes = a + 9; break;
        case 'y': o->png = val; break;
        case 'A': o->after = val; break;
        case 'B':
            if (!strcmp(a + 7, "openblas")) o->blas = true;
            else if (!strcmp(a + 7, "none")) o->blas = false;
            else return usage_error("--blas takes 'openblas' or 'none', got '%s'", a + 7);
            break;
        case 'K': o->text = val; break;
        case 'r': o->prompt = val; break;
        case 'z':
            if (o->n_disabled == 16) return usage_error("too many '%s' options", a);
            o->disabled[o->n_disabled++] = a + 15;
            break;
        case 't': o->train = true; break;
        case 'n': o->no_shuffle = true; break;
        case 'a': o->data = val; break;
        case 'I': o->init = val; break;
        case 'R': o->resume = val; break;
        case 'S':
        case 'N':
        case 'E':
        case 'T':
        case 'h':
        case 'M':
        case 'l': {
            char *end;
            errno = 0;
            long long v = strtoll(val, &end, 10);
            if (*end || errno || v < 0) return usage_error("'%s' is not a non-negative integer", val);
            if (key == 'S') o->seed = (uint64_t)v;
            else if (key == 'N') o->index = (long)v;
            else if (key == 'E') o->epochs = (long)v;
            else if (key == 'T') o->steps = (long)v;
            else if (key == 'h') o->threads = (int)v;
            else if (key == 'M') o->sample = (long)v;
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
void model_prefix(const char *model, char *buf, size_t n) {
    size_t k = 0;
    for (const char *p = model; *p && k + 1 < n; p++)
        buf[k++] = isalnum((unsigned char)*p) ? (char)tolower((unsigned char)*p) : '_';
    buf[k] = 0;
    if (!k || isdigit((unsigned char)buf[0])) snprintf(buf, n, "model");
}

Program *load_program(Arena *a, const Options *o, Diag *d) {
    return frontend_compile_file(a, o->file, o->defines, o->n_defines, d);
}

Tensor **load_params(const Graph *g, const Options *o, Diag *d) {
    return o->weights ? params_load(g, o->weights, d) : params_init(g, ETCH_DEFAULT_SEED);
}

bool require_train(const Program *p, Diag *d) {
    if (p->train) return true;
    return diag_error(d, p->model_loc, "model %s has no train block: nothing to differentiate", p->model_name);
}

/* The training step (loss, gradients, optimizer update), on a copy of the loss graph. */
Graph *train_step_graph(Program *p, Arena *a, Diag *d) {
    if (!require_train(p, d)) return NULL;
    char name[256];
    snprintf(name, sizeof name, "%s.train_step", p->model_name);
    Graph *g = graph_clone(a, p->train->loss, name);
    return train_build_step(g, &p->train->optim, d) ? g : NULL;
}

/* The loss and its gradients w.r.t. every trainable param (outputs: loss,
 * then one gradient per trainable param in declaration order). */
Graph *grad_graph(Program *p, Arena *a, Diag *d) {
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

/* Emits the entries into dir and compiles them: always lib<prefix>.so, plus
 * the program dir/<program> when driver is set. */
bool emit_and_compile(const Program *p, const CGenEntry *entries, int n, Tensor **params, const Options *o,
                             const char *dir, CGenDriver driver, const char *program, Diag *d) {
    char prefix[64];
    model_prefix(p->model_name, prefix, sizeof prefix);
    CGenOptions co = {.prefix = prefix, .embed_weights = o->embed, .param_values = params, .driver = driver,
                      .opt_level = o->opt_level, .threads = o->threads, .blas = o->blas};
    CGenStats st;
    CGenEntry opt[8];
    for (int i = 0; i < n && i < 8; i++) {
        opt[i] = entries[i];
        if (!(opt[i].g = optimize_graph(entries[i].g, o, entries[i].g->arena, d))) return false;
    }
    if (!build_mkdirs(dir, d) || !cgen_write(opt, n, &co, dir, &st, d)) return false;
    /* kernels split over threads use pthreads (part of libc since glibc 2.34; -pthread for older ones) */
    char flags[512];
#ifndef ETCH_CBLAS_INCLUDE
#define ETCH_CBLAS_INCLUDE "/usr/include"
#endif
    snprintf(flags, sizeof flags, "%s%s%s", o->opt_flags ? o->opt_flags : BUILD_DEFAULT_CFLAGS, o->threads > 1 ? " -pthread" : "",
             o->blas ? " -I" ETCH_CBLAS_INCLUDE : "");
    const char *libs = o->blas ? "-lopenblas" : NULL;
    const char *lib_src[] = {"model.c", "etch_rt.c"};
    char lib[128];
    snprintf(lib, sizeof lib, "lib%s.so", prefix);
    if (!build_compile_libs(dir, lib_src, 2, lib, true, flags, libs, d)) return false;
    if (driver != CGEN_DRIVER_NONE) {
        const char *exe_src[] = {"main.c", "model.c", "etch_rt.c"};
        if (!build_compile_libs(dir, exe_src, 3, program, false, flags, libs, d)) return false;
    }
    if (o->stats)
        printf("kernels: %d\narena bytes: %lld\nnaive bytes: %lld\nparameter bytes: %lld\n", st.kernels,
               (long long)st.arena_bytes, (long long)st.naive_bytes, (long long)st.param_bytes);
    return true;
}

Graph *optimize_graph(const Graph *g, const Options *o, Arena *a, Diag *d) {
    PassOptions po = {.opt_level = o->opt_level, .print_after_all = o->print_after_all,
                      .n_print_after = o->n_print_after, .n_disabled = o->n_disabled};
#ifndef NDEBUG
    po.verify = true; /* debug builds (and the sanitizer test build) check the IR after every pass */
#endif
    memcpy(po.print_after, o->print_after, sizeof po.print_after);
    memcpy(po.disabled, o->disabled, sizeof po.disabled);
    return passes_run(graph_clone(a, g, NULL), &po, d);
}

etch_dtype dtype_to_rt(DType t) {
    static const etch_dtype m[DT_COUNT] = {[DT_F32] = ETCH_F32, [DT_F64] = ETCH_F64, [DT_I32] = ETCH_I32,
                                           [DT_I64] = ETCH_I64, [DT_BOOL] = ETCH_BOOL};
    return m[t];
}

DType dtype_from_rt(etch_dtype t) {
    switch (t) {
    case ETCH_F32: return DT_F32;
    case ETCH_F64: return DT_F64;
    case ETCH_I32: return DT_I32;
    case ETCH_I64: return DT_I64;
    default: return DT_BOOL;
    }
}

bool write_tensor(const char *path, const Tensor *t, Diag *d) {
    etch_array arr = {.dtype = dtype_to_rt(t->dtype), .rank = t->shape.rank, .data = t->data};
    memcpy(arr.dim, t->shape.dim, sizeof arr.dim);
    char err[1024];
    if (etch_npy_write(path, &arr, err, sizeof err)) return diag_error_plain(&*d, "%s", err);
    return true;
}

typedef struct Command {
    const char *name, *allowed;
    int (*run)(const Options *o);
} Command;

static const Command COMMANDS[] = {
    {"check", "D", cmd_check},
    {"ir", "DGO", cmd_ir},
    {"ir-roundtrip", "", cmd_ir_roundtrip},
    {"opt", "Oq", cmd_opt},
    {"build", "owDxesctOh", cmd_build},
    {"run", "owiDgcOSMr", cmd_run},
    {"make-input", "oDSXN", cmd_make_input},
    {"train", "oDwSaIRETlncOK", cmd_train},
    {"eval", "DwacyK", cmd_eval},
    {"graph", "oDGOA", cmd_graph},
    {"gradcheck", "DS", cmd_gradcheck},
    {"bench", "DSchO", cmd_bench},
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
        Options o = {.epochs = -1, .steps = -1, .limit = -1, .sample = -1, .opt_level = 2};
        int rc = parse_options(argc - 2, argv + 2, COMMANDS[i].allowed, &o);
        if (rc == 0) rc = COMMANDS[i].run(&o);
        options_free(&o);
        return rc;
    }
    fprintf(stderr, "etch: error: unknown command '%s' (see 'etch --help')\n", argv[1]);
    return 1;
}

