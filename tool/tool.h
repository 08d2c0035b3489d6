/* tool.h: what the `etch` tool's subcommands share: parsed options and the
 * steps most commands take (read the program, get its parameters, build the
 * training graphs, emit and compile C). Each cmd_*.c file holds a group of
 * subcommands; main.c parses options and dispatches. */
#ifndef ETCH_TOOL_TOOL_H
#define ETCH_TOOL_TOOL_H

#include "codegen/c/emit_c.h"
#include "frontend/frontend.h"
#include "ir/tensor.h"
#include "runtime/etch_rt.h"

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
    int threads;               /* --threads N */
    int opt_level;             /* -O0, -O1, -O2 (default) */
    bool opt_given;            /* an -O flag was on the command line */
    bool print_after_all;      /* --print-after-all */
    const char *print_after[16], *disabled[16]; /* --print-after=P, --disable-pass=P */
    int n_print_after, n_disabled;
    const char *passes;        /* opt --passes=a,b,c */
    const char *png;           /* eval --png GRID.png (reconstruction models) */
    const char *after;         /* graph --after PASS */
    bool blas;                 /* --blas=openblas */
    const char *text;          /* train --text CORPUS (language models on bytes) */
    long sample;               /* run --sample N: generate N bytes (-1: not sampling) */
    const char *prompt;        /* run --prompt TEXT (with --sample) */
} Options;

/* "etch CMD: error: ..." for command-line mistakes; returns 1. */
int usage_error(const char *fmt, const char *arg);
/* Model name -> C identifier prefix ("Net" -> "net"). */
void model_prefix(const char *model, char *buf, size_t n);
Program *load_program(Arena *a, const Options *o, Diag *d);
/* --weights W, or the initializers with the default seed. */
Tensor **load_params(const Graph *g, const Options *o, Diag *d);
bool require_train(const Program *p, Diag *d);
/* The training step (loss, gradients, optimizer update), on a copy of the loss graph. */
Graph *train_step_graph(Program *p, Arena *a, Diag *d);
/* Outputs: loss, then the gradient of each trainable param in declaration order. */
Graph *grad_graph(Program *p, Arena *a, Diag *d);
/* Emits entries into dir and compiles lib<prefix>.so, plus dir/<program> with a driver. */
bool emit_and_compile(const Program *p, const CGenEntry *entries, int n, Tensor **params, const Options *o,
                      const char *dir, CGenDriver driver, const char *program, Diag *d);
/* A clone of g run through the pass pipeline the options ask for (verified
 * after every pass in debug builds). NULL after reporting an error. */
Graph *optimize_graph(const Graph *g, const Options *o, Arena *a, Diag *d);
etch_dtype dtype_to_rt(DType t);
DType dtype_from_rt(etch_dtype t);
bool write_tensor(const char *path, const Tensor *t, Diag *d);

int cmd_check(const Options *o);
int cmd_ir(const Options *o);
int cmd_ir_roundtrip(const Options *o);
int cmd_build(const Options *o);
int cmd_run(const Options *o);
int cmd_make_input(const Options *o);
int cmd_train(const Options *o);
int cmd_eval(const Options *o);
int cmd_gradcheck(const Options *o);
int cmd_bench(const Options *o);
int cmd_opt(const Options *o);
int cmd_graph(const Options *o);
int cmd_compare(int argc, char **argv);
int cmd_show(int argc, char **argv);

#endif
