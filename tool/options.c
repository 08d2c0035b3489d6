/* options.c: the option table and the one loop that parses every command's
 * argv against it.
 *
 * A row says how an option is spelled, whether it takes a value (long
 * options: `--name V` or `--name=V`; short ones: `-o V` or `-oV`; -O only
 * attached, `-O2`), how the value is checked (a string, a non-negative
 * integer within a stated range, a number), which commands accept it and its
 * help line. Adding an option is one row plus one case in option_apply.
 * Messages name the option as the user typed it. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/onnx/export.h"
#include "tool/options.h"

typedef enum OptId {
    OPT_OUT, OPT_DEFINE, OPT_OLEVEL, OPT_PRINT_AFTER_ALL, OPT_PRINT_AFTER, OPT_DISABLE_PASS, OPT_PASSES,
    OPT_WEIGHTS, OPT_INPUT, OPT_EAGER, OPT_EXE, OPT_EMBED, OPT_STATS, OPT_TRAIN, OPT_GRAD, OPT_AFTER,
    OPT_SEED, OPT_SAMPLE, OPT_PROMPT, OPT_IDX, OPT_INDEX, OPT_DATA, OPT_TEXT, OPT_INIT, OPT_RESUME,
    OPT_EPOCHS, OPT_STEPS, OPT_LIMIT, OPT_NO_SHUFFLE, OPT_PNG, OPT_THREADS, OPT_BLAS, OPT_CFLAGS,
    OPT_RTOL, OPT_ARGMAX, OPT_DIGITS, OPT_PREFIX, OPT_C_ONLY, OPT_PARTIAL, OPT_WEIGHTS_OUT, OPT_OPSET,
    OPT_QUANTIZE, OPT_CALIB, OPT_QAT, OPT_METHOD, OPT_BATCHES, OPT_GRID, OPT_RANDOM, OPT_JOBS, OPT_MPI, OPT_RANKS,
    OPT_BUCKET_KB, OPT_BACKEND, OPT_TARGET, OPT_HOST_EMULATE, OPT_COUNT
} OptId;

typedef enum OptArg {
    ARG_NONE,     /* a flag */
    ARG_STR,      /* a string value, possibly empty */
    ARG_NAME,     /* a non-empty string: a path, a pass name */
    ARG_INT,      /* a non-negative integer in [min, max] */
    ARG_NUM,      /* a non-negative number */
    ARG_ATTACHED, /* a value written into the flag itself: -O2 */
} OptArg;

typedef struct OptSpec {
    const char *name;    /* as typed: "-o", "--weights" */
    OptArg arg;
    const char *metavar; /* the value in help lines ("=V": shown as --name=V) */
    unsigned cmds;       /* the CmdBits of the commands that accept it */
    const char *help;    /* '\n' continues on an indented line */
    long long min, max;  /* ARG_INT: the allowed range */
    const char *why;     /* ARG_INT: why max is what it is, said when it is exceeded */
} OptSpec;

/* Commands that run the pass pipeline take -O and the pass flags together;
 * commands that compile C take --blas. */
#define CMD_OPTIMIZING (CMD_IR | CMD_OPT | CMD_BUILD | CMD_RUN | CMD_TRAIN | CMD_GRAPH | CMD_BENCH | CMD_SWEEP)
#define CMD_MODEL (CMD_CHECK | CMD_IR | CMD_BUILD | CMD_RUN | CMD_MAKE_INPUT | CMD_TRAIN | CMD_EVAL | CMD_GRAPH | \
                   CMD_GRADCHECK | CMD_BENCH | CMD_CALIBRATE | CMD_SWEEP)
/* What a training run takes, `etch train` and each run of `etch sweep` alike. */
#define CMD_TRAINING (CMD_TRAIN | CMD_SWEEP)
#define MAX_COUNT 0x7fffffffffffffffLL
#define C_IDENT_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"

static const OptSpec OPTS[OPT_COUNT] = {
    [OPT_OUT] = {"-o", ARG_NAME, "PATH",
                 CMD_BUILD | CMD_RUN | CMD_MAKE_INPUT | CMD_TRAINING | CMD_GRAPH | CMD_IMPORT | CMD_EXPORT |
                     CMD_CALIBRATE,
                 "where to write: build's folder, run's .npy (one -o per output),\n"
                 "make-input's .npy, train's folder (default out), graph's .svg/.dot,\n"
                 "import's .etch, export's .onnx, calibrate's stats .json, sweep's\n"
                 "table R.csv (default sweep.csv; runs in R/)"},
    [OPT_DEFINE] = {"-D", ARG_STR, "NAME=VALUE", CMD_MODEL | CMD_IMPORT | CMD_EXPORT,
                    "set the model's const NAME (a number or true/false; at most 64 -D);\n"
                    "for an .onnx model, the size of its symbolic dim NAME"},
    [OPT_OLEVEL] = {"-O", ARG_ATTACHED, NULL, CMD_OPTIMIZING,
                    "-O0: no optimization, a buffer per value; -O1: simplify, cse, dce,\nbuffer reuse; -O2 (default): also fusion"},
    [OPT_PRINT_AFTER_ALL] = {"--print-after-all", ARG_NONE, NULL, CMD_OPTIMIZING, "print the IR after every pass"},
    [OPT_PRINT_AFTER] = {"--print-after", ARG_NAME, "=PASS", CMD_OPTIMIZING, "print the IR after PASS (repeatable)"},
    [OPT_DISABLE_PASS] = {"--disable-pass", ARG_NAME, "=PASS", CMD_OPTIMIZING, "skip PASS (repeatable)"},
    [OPT_PASSES] = {"--passes", ARG_NAME, "=a,b,...", CMD_OPT, "run exactly these passes, in this order"},
    [OPT_WEIGHTS] = {"--weights", ARG_NAME, "W", CMD_BUILD | CMD_RUN | CMD_TRAIN | CMD_EVAL | CMD_EXPORT | CMD_CALIBRATE | CMD_BENCH,
                     "parameters from a .safetensors file (default: the initializers, seed 0)"},
    [OPT_INPUT] = {"--input", ARG_NAME, "IN.npy", CMD_RUN, "the forward's next input (one per input)"},
    [OPT_EAGER] = {"--eager", ARG_NONE, NULL, CMD_RUN, "interpret the graph instead of compiling it"},
    [OPT_BACKEND] = {"--backend", ARG_NAME, "c|llvm|cuda", CMD_RUN | CMD_BUILD | CMD_BENCH | CMD_EVAL | CMD_TRAIN,
                     "c (default): emit C and compile it with cc; llvm: run: compile in\n"
                     "process with LLVM's JIT, build: write DIR/model.ll, bench: add the\n"
                     "JIT's inference row and compile times, eval: the forward JIT-compiled\n"
                     "on the test images (float32 inference; docs/llvm.md)"},
    [OPT_TARGET] = {"--target", ARG_NAME, "c|llvm|cuda", CMD_RUN | CMD_BUILD | CMD_BENCH | CMD_EVAL | CMD_TRAIN,
                    "the same as --backend; cuda: model.cu compiled by nvcc for the GPU\n(docs/cuda.md)"},
    [OPT_HOST_EMULATE] = {"--host-emulate", ARG_NONE, NULL, CMD_RUN | CMD_BUILD | CMD_BENCH | CMD_TRAIN | CMD_EVAL,
                          "with --target cuda: compile the CUDA kernels for the CPU (their\nthreads run as loops) and "
                          "run them there, no GPU needed"},
    [OPT_EXE] = {"--exe", ARG_NONE, NULL, CMD_BUILD, "also compile the program DIR/<model>"},
    [OPT_EMBED] = {"--embed-weights", ARG_NONE, NULL, CMD_BUILD, "compile the weights into the code"},
    [OPT_STATS] = {"--stats", ARG_NONE, NULL, CMD_BUILD | CMD_RUN | CMD_EVAL | CMD_CALIBRATE,
                   "build: print kernel and memory counts; with --quantize: what became\nint8, and every op left in float and why;\n"
                   "calibrate: its peak memory"},
    [OPT_TRAIN] = {"--train", ARG_NONE, NULL, CMD_BUILD, "also emit <model>_grad and <model>_train_step"},
    [OPT_GRAD] = {"--grad", ARG_NONE, NULL, CMD_IR | CMD_GRAPH, "the training step instead of the forward"},
    [OPT_AFTER] = {"--after", ARG_NAME, "PASS", CMD_GRAPH, "the graph after the -O2 pipeline up to PASS"},
    [OPT_SEED] = {"--seed", ARG_INT, "S", CMD_RUN | CMD_MAKE_INPUT | CMD_TRAINING | CMD_GRADCHECK | CMD_BENCH,
                  "seed of the random numbers (default 0; train --resume: the checkpoint's)", 0, MAX_COUNT, NULL},
    [OPT_SAMPLE] = {"--sample", ARG_INT, "N", CMD_RUN, "print N bytes sampled from a byte-level language model", 0,
                    1000000, "each byte is one forward pass of the eager executor"},
    [OPT_PROMPT] = {"--prompt", ARG_STR, "TEXT", CMD_RUN, "the bytes --sample starts from (default a newline)"},
    [OPT_IDX] = {"--idx", ARG_NAME, "IMAGES", CMD_MAKE_INPUT, "take the input from an IDX image file"},
    [OPT_INDEX] = {"--index", ARG_INT, "N", CMD_MAKE_INPUT, "the first image --idx takes (default 0)", 0, MAX_COUNT,
                   NULL},
    [OPT_DATA] = {"--data", ARG_NAME, "DIR", CMD_TRAINING | CMD_EVAL | CMD_CALIBRATE,
                  "folder of IDX image data (train and test split) or of .npy arrays"},
    [OPT_TEXT] = {"--text", ARG_NAME, "CORPUS", CMD_TRAIN | CMD_EVAL, "a text file for byte-level language models"},
    [OPT_INIT] = {"--init", ARG_NAME, "W", CMD_TRAIN, "start from these weights"},
    [OPT_PARTIAL] = {"--partial", ARG_NONE, NULL, CMD_TRAIN | CMD_RUN | CMD_BUILD,
                      "with --init/--weights W: load the tensors W has, the rest from their initializers"},
    [OPT_RESUME] = {"--resume", ARG_NAME, "CKPT", CMD_TRAIN, "continue from a checkpoint"},
    [OPT_EPOCHS] = {"--epochs", ARG_INT, "N", CMD_TRAINING, "passes over the data (default: the train block's)", 0,
                    MAX_COUNT, NULL},
    [OPT_STEPS] = {"--steps", ARG_INT, "N", CMD_TRAINING, "stop after N optimizer steps", 0, MAX_COUNT, NULL},
    [OPT_LIMIT] = {"--limit", ARG_INT, "N", CMD_TRAINING | CMD_EVAL,
                   "use only the first N images (train: of the training split, eval: of the test split)", 0, MAX_COUNT,
                   NULL},
    [OPT_DIGITS] = {"--digits", ARG_INT, "N", CMD_TRAIN, "decimals of the printed epoch loss (default 3)", 0, 17,
                    "a double has at most 17 significant digits"},
    [OPT_NO_SHUFFLE] = {"--no-shuffle", ARG_NONE, NULL, CMD_TRAINING, "batches in file order"},
    [OPT_PNG] = {"--png", ARG_NAME, "GRID.png", CMD_EVAL, "autoencoders: a grid of inputs and reconstructions"},
    [OPT_THREADS] = {"--threads", ARG_INT, "N", CMD_BUILD | CMD_TRAINING | CMD_BENCH,
                     "kernels may split work over N threads; bit-identical for any N", 1, 1024,
                     "more threads than cores only adds waiting, and no machine etch targets has more"},
    [OPT_BLAS] = {"--blas", ARG_STR, "=openblas|none", CMD_BUILD | CMD_RUN | CMD_TRAINING | CMD_BENCH,
                  "openblas: matmuls call OpenBLAS (the program links it)"},
    [OPT_CFLAGS] = {"--cflags", ARG_STR, "FLAGS", CMD_BUILD | CMD_RUN | CMD_TRAINING | CMD_EVAL | CMD_BENCH,
                    "flags for the C compiler instead of etch's defaults (or of $ETCH_CFLAGS\n"
                    "when that is set)"},
    [OPT_RTOL] = {"--rtol", ARG_NUM, "R", CMD_COMPARE, "relative tolerance (default 1e-5)"},
    [OPT_ARGMAX] = {"--argmax", ARG_NONE, NULL, CMD_SHOW, "print the index of the largest value of each row"},
    [OPT_PREFIX] = {"--prefix", ARG_NAME, "NAME", CMD_BUILD,
                    "the C names' prefix: NAME_forward, NAME_load, libNAME.so (default:\n"
                    "the model's name in lower case); one per model in a program"},
    [OPT_C_ONLY] = {"--c-only", ARG_NONE, NULL, CMD_BUILD,
                    "write the C sources and the weights, compile nothing (for build\n"
                    "systems that compile model.c themselves: etch_add_model)"},
    [OPT_WEIGHTS_OUT] = {"--weights-out", ARG_NAME, "W", CMD_IMPORT,
                         "where import writes the weights (default: -o's path with .safetensors)"},
    [OPT_OPSET] = {"--opset", ARG_INT, "N", CMD_EXPORT, "the ONNX opset export writes (default 17)",
                   ONNX_EXPORT_OPSET_MIN, ONNX_EXPORT_OPSET_MAX,
                   "the opsets etch import reads"},
    [OPT_QUANTIZE] = {"--quantize", ARG_NAME, "int8", CMD_BUILD | CMD_RUN | CMD_EVAL | CMD_BENCH,
                      "int8 post-training quantization of Linear layers (needs --calib)"},
    [OPT_CALIB] = {"--calib", ARG_NAME, "STATS.json", CMD_BUILD | CMD_RUN | CMD_EVAL | CMD_BENCH | CMD_TRAIN,
                   "activation ranges written by etch calibrate (for --quantize, or train --qat)"},
    [OPT_QAT] = {"--qat", ARG_NONE, NULL, CMD_TRAIN,
                 "quantization-aware training: the loss sees each Linear layer int8 as\n"
                 "--quantize int8 will make it (needs --calib)"},
    [OPT_METHOD] = {"--method", ARG_NAME, "minmax|percentile", CMD_CALIBRATE,
                    "how calibrate picks a range: what it saw (default), or its histogram's\n"
                    "0.01% and 99.99% percentiles"},
    [OPT_BATCHES] = {"--batches", ARG_INT, "N", CMD_CALIBRATE,
                     "batches of the training split calibrate runs (default 16)", 1, 1000000,
                     "the training split holds fewer"},
    [OPT_GRID] = {"--grid", ARG_NAME, "NAME=V,V,...", CMD_SWEEP,
                  "values of the optimizer's hyperparameter NAME to train with (repeatable:\n"
                  "every combination); NAME: lr, momentum, dampening, weight_decay (sgd),\n"
                  "lr, beta1, beta2, eps, weight_decay (adam, adamw)"},
    [OPT_RANDOM] = {"--random", ARG_INT, "N", CMD_SWEEP, "train N combinations drawn at random (--seed) from the grid", 1,
                    MAX_COUNT, NULL},
    [OPT_JOBS] = {"--jobs", ARG_INT, "J", CMD_SWEEP, "trainings run at a time (default: one per core)", 1, 1024,
                  "one process each; more than the cores only share them"},
    [OPT_MPI] = {"--mpi", ARG_NONE, NULL, CMD_BUILD | CMD_IR,
                 "with --train: data-parallel training steps, gradients averaged over\n"
                 "the ranks of an MPI job (links Open MPI; see docs/passes.md)"},
    [OPT_RANKS] = {"--ranks", ARG_INT, "N", CMD_TRAIN,
                   "data-parallel training on N processes under mpirun, each with the\n"
                   "model's batch (the global batch is N times it)", 1, 1024,
                   "one process per rank; more than the cores only share them"},
    [OPT_BUCKET_KB] = {"--bucket-kb", ARG_INT, "K", CMD_BUILD | CMD_IR | CMD_TRAIN,
                       "with --mpi or --ranks: gradients averaged in buckets of up to K KiB\n"
                       "(default 4096); smaller buckets start reducing earlier in the\n"
                       "backward pass (docs/passes.md)", 1, 1 << 20, "at most 1 GiB"},
};

static const char *g_cmd = "etch";

void usage_set_command(const char *name) { g_cmd = name; }

int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "etch %s: error: ", g_cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see 'etch %s --help')\n", g_cmd);
    va_end(ap);
    return 1;
}

Options options_default(void) {
    return (Options){.epochs = -1, .steps = -1, .limit = -1, .sample = -1, .opt_level = 2, .rtol = 1e-5, .digits = -1,
                     .batches = -1, .random = -1};
}

void options_free(Options *o) {
    for (int i = 0; i < o->n_defines; i++) free((void *)o->defines[i].name);
}

/* -D NAME=VALUE: both parts non-empty, no white space (which the number
 * parser would skip, to say something confusing later). */
static int parse_define(Options *o, const char *arg) {
    const char *eq = strchr(arg, '=');
    if (o->n_defines == MAX_DEFINES) return usage_error("too many -D definitions (at most %d)", MAX_DEFINES);
    if (!eq || eq == arg || !eq[1]) return usage_error("-D needs NAME=VALUE, got '%s'", arg);
    for (const char *p = arg; *p; p++)
        if (isspace((unsigned char)*p)) return usage_error("-D needs NAME=VALUE without spaces, got '%s'", arg);
    char *name = strndup(arg, (size_t)(eq - arg));
    if (!name) abort();
    o->defines[o->n_defines++] = (Define){.name = name, .value = eq + 1};
    return 0;
}

/* A non-negative decimal integer within the option's range. */
static int parse_count(const OptSpec *s, const char *val, long long *out) {
    if (!*val || strspn(val, "0123456789") != strlen(val)) return usage_error("'%s' is not a non-negative integer", val);
    errno = 0;
    long long v = strtoll(val, NULL, 10);
    if (errno == ERANGE || v < s->min || v > s->max) {
        usage_error("%s %s is out of range: %lld..%lld%s%s%s", s->name, val, s->min, s->max, s->why ? " (" : "",
                    s->why ? s->why : "", s->why ? ")" : "");
        return 1;
    }
    *out = v;
    return 0;
}

/* Appends to one of the repeatable lists (--input, -o, --print-after, --disable-pass). */
static int push(const char **list, int *n, int cap, const char *val, const char *typed) {
    if (*n == cap) return usage_error("too many '%s' options", typed);
    list[(*n)++] = val;
    return 0;
}

/* Stores the value of option id (already checked to apply here). */
static int option_apply(Options *o, OptId id, const char *val, const char *typed) {
    long long n = 0;
    if (OPTS[id].arg == ARG_INT && parse_count(&OPTS[id], val, &n)) return 1;
    switch (id) {
    case OPT_OUT:
        if (push(o->outs, &o->n_outs, MAX_FILES, val, typed)) return 1;
        o->out = val;
        return 0;
    case OPT_DEFINE: return parse_define(o, val);
    case OPT_OLEVEL:
        if (strlen(val) != 1 || val[0] < '0' || val[0] > '3')
            return usage_error("-O takes a level 0, 1 or 2, got '%s'", typed);
        o->opt_level = val[0] == '3' ? 2 : val[0] - '0';
        o->opt_given = true;
        return 0;
    case OPT_PRINT_AFTER_ALL: o->print_after_all = true; return 0;
    case OPT_PRINT_AFTER: return push(o->print_after, &o->n_print_after, MAX_PASS_ARGS, val, typed);
    case OPT_DISABLE_PASS: return push(o->disabled, &o->n_disabled, MAX_PASS_ARGS, val, typed);
    case OPT_PASSES: o->passes = val; return 0;
    case OPT_WEIGHTS: o->weights = val; return 0;
    case OPT_INPUT: return push(o->inputs, &o->n_inputs, MAX_FILES, val, typed);
    case OPT_EAGER: o->eager = true; return 0;
    case OPT_EXE: o->exe = true; return 0;
    case OPT_EMBED: o->embed = true; return 0;
    case OPT_STATS: o->stats = true; return 0;
    case OPT_TRAIN: o->train = true; return 0;
    case OPT_GRAD: o->grad = true; return 0;
    case OPT_AFTER: o->after = val; return 0;
    case OPT_SEED: o->seed = (uint64_t)n, o->seed_given = true; return 0;
    case OPT_SAMPLE: o->sample = (long)n; return 0;
    case OPT_PROMPT: o->prompt = val; return 0;
    case OPT_IDX: o->idx = val; return 0;
    case OPT_INDEX: o->index = (long)n; return 0;
    case OPT_DATA: o->data = val; return 0;
    case OPT_TEXT: o->text = val; return 0;
    case OPT_INIT: o->init = val; return 0;
    case OPT_RESUME: o->resume = val; return 0;
    case OPT_EPOCHS: o->epochs = (long)n; return 0;
    case OPT_STEPS: o->steps = (long)n; return 0;
    case OPT_LIMIT: o->limit = (long)n; return 0;
    case OPT_NO_SHUFFLE: o->no_shuffle = true; return 0;
    case OPT_PARTIAL: o->partial = true; return 0;
    case OPT_PNG: o->png = val; return 0;
    case OPT_THREADS: o->threads = (int)n; return 0;
    case OPT_BLAS:
        if (!strcmp(val, "openblas")) o->blas = true;
        else if (!strcmp(val, "none")) o->blas = false;
        else return usage_error("--blas takes 'openblas' or 'none', got '%s'", val);
        return 0;
    case OPT_BACKEND:
    case OPT_TARGET:
        if (strcmp(val, "c") && strcmp(val, "llvm") && strcmp(val, "cuda"))
            return usage_error("%s takes 'c', 'llvm' or 'cuda', got '%s'", id == OPT_TARGET ? "--target" : "--backend", val);
        o->backend = val;
        return 0;
    case OPT_HOST_EMULATE: o->host_emulate = true; return 0;
    case OPT_CFLAGS: o->opt_flags = val; return 0;
    case OPT_RTOL: {
        char *end;
        o->rtol = strtod(val, &end);
        if (end == val || *end || !(o->rtol >= 0)) return usage_error("--rtol needs a non-negative number, got '%s'", val);
        return 0;
    }
    case OPT_ARGMAX: o->argmax = true; return 0;
    case OPT_DIGITS: o->digits = (int)n; return 0;
    case OPT_PREFIX:
        if (strlen(val) >= MAX_PREFIX || strspn(val, C_IDENT_CHARS) != strlen(val) || isdigit((unsigned char)val[0]))
            return usage_error("--prefix needs a C identifier of at most %d characters, got '%s'", MAX_PREFIX - 1, val);
        o->prefix = val;
        return 0;
    case OPT_C_ONLY: o->c_only = true; return 0;
    case OPT_WEIGHTS_OUT: o->weights_out = val; return 0;
    case OPT_OPSET: o->opset = (int)n; return 0;
    case OPT_QUANTIZE:
        if (strcmp(val, "int8")) return usage_error("--quantize takes 'int8', got '%s'", val);
        o->quantize = true;
        return 0;
    case OPT_CALIB: o->calib = val; return 0;
    case OPT_QAT: o->qat = true; return 0;
    case OPT_METHOD:
        if (strcmp(val, "minmax") && strcmp(val, "percentile"))
            return usage_error("unknown calibration method '%s' (--method takes minmax or percentile)", val);
        o->method = val;
        return 0;
    case OPT_BATCHES: o->batches = (long)n; return 0;
    case OPT_GRID: return push(o->grids, &o->n_grids, MAX_GRIDS, val, typed);
    case OPT_RANDOM: o->random = (long)n; return 0;
    case OPT_JOBS: o->jobs = (int)n; return 0;
    case OPT_MPI: o->mpi = true; return 0;
    case OPT_RANKS: o->ranks = (int)n; return 0;
    case OPT_BUCKET_KB: o->bucket_kb = n; return 0;
    case OPT_COUNT: break;
    }
    abort();
}

/* The option `a` spells: its id and, when written into it, its value
 * ("--name=V", "-oV", "-O2"). OPT_COUNT when no row matches. */
static OptId option_match(const char *a, const char **attached) {
    *attached = NULL;
    for (int id = 0; id < OPT_COUNT; id++) {
        const char *name = OPTS[id].name;
        size_t len = strlen(name);
        if (strncmp(a, name, len)) continue;
        if (!a[len]) return (OptId)id;
        bool is_long = name[1] == '-';
        if (is_long && a[len] == '=') {
            *attached = a + len + 1;
            return (OptId)id;
        }
        if (!is_long && OPTS[id].arg != ARG_NONE) {
            *attached = a + len;
            return (OptId)id;
        }
    }
    return OPT_COUNT;
}

int options_parse(int argc, char **argv, unsigned cmd, int n_files, const char *files_msg, Options *o) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *val;
        if (a[0] != '-' || !a[1]) { /* a positional file ("-" alone is one too) */
            if (o->n_files == n_files)
                return files_msg ? usage_error("%s", files_msg) : usage_error("more than one input file ('%s')", a);
            o->files[o->n_files++] = a;
            continue;
        }
        OptId id = option_match(a, &val);
        if (id == OPT_COUNT) return usage_error("unknown option '%s'", a);
        const OptSpec *s = &OPTS[id];
        if (!(s->cmds & cmd)) return usage_error("option '%s' does not apply here", a);
        if (s->arg == ARG_NONE && val) return usage_error("option '%s' takes no value", s->name);
        if (s->arg == ARG_ATTACHED && !val) return usage_error("option '%s' needs a level: -O0, -O1 or -O2", a);
        if (s->arg != ARG_NONE && !val) {
            if (i + 1 == argc) return usage_error("option '%s' needs a value", a);
            val = argv[++i];
        }
        if (s->arg == ARG_NAME && !*val) return usage_error("option '%s' needs a value, got an empty one", a);
        if (option_apply(o, id, val, a)) return 1;
    }
    if (o->bucket_kb && !o->mpi && !o->ranks)
        return usage_error("%s", "--bucket-kb sizes the gradient buckets of data-parallel training: add --mpi or --ranks");
    if (o->n_files < n_files) return files_msg ? usage_error("%s", files_msg) : usage_error("no input file given");
    o->file = o->files[0];
    const char *env_flags = getenv("ETCH_CFLAGS"); /* --cflags wins over the environment */
    if (!o->opt_flags && (cmd & OPTS[OPT_CFLAGS].cmds) && env_flags && *env_flags) o->opt_flags = env_flags;
    return 0;
}

/* "-o PATH", "--print-after=PASS", "-O0|-O1|-O2": the option as its help line heads it. */
static void option_head(const OptSpec *s, char *head, size_t n) {
    if (s->arg == ARG_ATTACHED) snprintf(head, n, "-O0|-O1|-O2");
    else snprintf(head, n, "%s%s%s", s->name, !s->metavar || s->metavar[0] == '=' ? "" : " ", s->metavar ? s->metavar : "");
}

void options_print_help(FILE *f, unsigned cmds) {
    for (int id = 0; id < OPT_COUNT; id++) {
        const OptSpec *s = &OPTS[id];
        if (!(s->cmds & cmds)) continue;
        char head[64];
        option_head(s, head, sizeof head);
        fprintf(f, "  %-22s ", head);
        for (const char *p = s->help; *p; p++) {
            fputc(*p, f);
            if (*p == '\n') fprintf(f, "%25s", "");
        }
        if (s->arg == ARG_INT && s->max != MAX_COUNT) fprintf(f, " (%lld..%lld)", s->min, s->max);
        fputc('\n', f);
    }
}

void options_print_names(FILE *f, unsigned cmds) {
    for (int id = 0; id < OPT_COUNT; id++) {
        const OptSpec *s = &OPTS[id];
        if (!(s->cmds & cmds)) continue;
        if (s->arg == ARG_ATTACHED) fprintf(f, " %s0 %s1 %s2", s->name, s->name, s->name);
        else fprintf(f, " %s", s->name);
    }
}

/* Text for roff: backslashes and hyphens escaped; newlines kept (for .nf
 * blocks, a line starting with a control character made literal) or made spaces. */
void roff_text(FILE *f, const char *text, bool keep_lines) {
    for (const char *p = text; *p; p++) {
        if (keep_lines && (p == text || p[-1] == '\n') && (*p == '.' || *p == '\'')) fputs("\\&", f);
        if (*p == '\\') fputs("\\e", f);
        else if (*p == '-') fputs("\\-", f);
        else if (*p == '\n') fputc(keep_lines ? '\n' : ' ', f);
        else fputc(*p, f);
    }
}

void options_write_man(FILE *f, const char *const *cmd_names) {
    for (int id = 0; id < OPT_COUNT; id++) {
        const OptSpec *s = &OPTS[id];
        char head[64];
        option_head(s, head, sizeof head);
        fputs(".TP\n.B ", f);
        roff_text(f, head, false);
        fputs("\n", f);
        roff_text(f, s->help, false);
        if (s->arg == ARG_INT && s->max != MAX_COUNT) fprintf(f, " (%lld..%lld)", s->min, s->max);
        fputs(".\nCommands:", f);
        for (int bit = 0; cmd_names[bit]; bit++)
            if (s->cmds & (1u << bit)) fprintf(f, " %s", cmd_names[bit]);
        fputs(".\n", f);
    }
}
