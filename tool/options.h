/* options.h: the `etch` tool's command-line options. One table (options.c)
 * lists every option once: its spelling, whether it takes a value, its help
 * line and the commands that accept it. One loop parses argv against it, so
 * every command rejects unknown or misplaced flags with the same messages,
 * and `etch CMD --help` lists exactly the options CMD accepts. */
#ifndef ETCH_TOOL_OPTIONS_H
#define ETCH_TOOL_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "frontend/frontend.h"

enum {
    MAX_DEFINES = 64,  /* -D NAME=VALUE definitions on one command line */
    MAX_FILES = 16,    /* --input and -o files of `etch run` */
    MAX_PASS_ARGS = 16, /* --print-after=P and --disable-pass=P each */
    MAX_PREFIX = 48,    /* --prefix NAME: bytes with the NUL (symbol names add to it) */
    MAX_GRIDS = 7       /* sweep --grid NAME=V,...: one per optimizer hyperparameter */
};

/* One bit per command: the option table's column saying who accepts what. */
typedef enum CmdBit {
    CMD_CHECK = 1u << 0,
    CMD_IR = 1u << 1,
    CMD_IR_ROUNDTRIP = 1u << 2,
    CMD_OPT = 1u << 3,
    CMD_BUILD = 1u << 4,
    CMD_RUN = 1u << 5,
    CMD_MAKE_INPUT = 1u << 6,
    CMD_TRAIN = 1u << 7,
    CMD_EVAL = 1u << 8,
    CMD_GRADCHECK = 1u << 9,
    CMD_BENCH = 1u << 10,
    CMD_GRAPH = 1u << 11,
    CMD_COMPARE = 1u << 12,
    CMD_SHOW = 1u << 13,
    CMD_IMPORT = 1u << 14,
    CMD_EXPORT = 1u << 15,
    CMD_CALIBRATE = 1u << 16,
    CMD_SWEEP = 1u << 17,
} CmdBit;

/* Everything any command accepts, filled by options_parse. */
typedef struct Options {
    const char *files[2];      /* positional arguments (compare takes two) */
    int n_files;
    const char *file;          /* files[0]: the model, IR or array */
    const char *out;           /* -o (the last one) */
    const char *weights;       /* --weights */
    const char *weights_out;   /* import --weights-out W.safetensors */
    const char *inputs[MAX_FILES];
    int n_inputs;              /* --input (repeatable) */
    const char *outs[MAX_FILES];
    int n_outs;                /* -o (repeatable for run) */
    Define defines[MAX_DEFINES];
    int n_defines;
    bool exe, embed, eager, stats, grad, no_shuffle, train;
    bool partial;              /* --partial: --init/--weights W may lack tensors (they keep their initializers) */
    const char *data, *init, *resume; /* train / eval */
    long epochs, steps, limit;        /* train: -1 = default */
    const char *idx;           /* make-input --idx */
    long index;                /* make-input --index */
    uint64_t seed;
    bool seed_given;           /* --seed was on the command line (train --resume keeps the checkpoint's otherwise) */
    int digits;                /* train --digits N: decimals of the printed loss (-1: the program's default, 3) */
    const char *opt_flags;     /* --cflags for the C compiler */
    int threads;               /* --threads N (0: not given, one thread) */
    bool mpi;                  /* build --mpi: data-parallel training steps, linked with MPI */
    int ranks;                 /* train --ranks N (0: not given: one process, no MPI) */
    long bucket_kb;            /* --bucket-kb K: data-parallel gradient buckets of K KiB (0: the default) */
    int opt_level;             /* -O0, -O1, -O2 (default) */
    bool opt_given;            /* an -O flag was on the command line */
    bool print_after_all;      /* --print-after-all */
    const char *print_after[MAX_PASS_ARGS], *disabled[MAX_PASS_ARGS]; /* --print-after=P, --disable-pass=P */
    int n_print_after, n_disabled;
    const char *passes;        /* opt --passes=a,b,c */
    const char *png;           /* eval --png GRID.png (reconstruction models) */
    const char *after;         /* graph --after PASS */
    bool blas;                 /* --blas=openblas */
    const char *backend;       /* --backend/--target: "c" (NULL: the default), "llvm" or "cuda" */
    bool host_emulate;         /* --host-emulate: the cuda backend's kernels compiled for the CPU */
    const char *text;          /* train --text CORPUS (language models on bytes) */
    long sample;               /* run --sample N: generate N bytes (-1: not sampling) */
    const char *prompt;        /* run --prompt TEXT (with --sample) */
    double rtol;               /* compare --rtol R */
    bool argmax;               /* show --argmax */
    const char *prefix;        /* build --prefix NAME (NULL: from the model's name) */
    bool c_only;               /* build --c-only: emit, do not compile */
    int opset;                 /* export --opset N (0: not given, the latest etch writes) */
    bool quantize;             /* --quantize int8 (docs/quantization.md) */
    const char *calib;         /* --calib STATS.json: calibrate's ranges for --quantize or train --qat */
    bool qat;                  /* train --qat: quantization-aware training (fake_quant on Linear layers) */
    const char *method;        /* calibrate --method minmax|percentile (NULL: minmax) */
    long batches;              /* calibrate --batches N (-1: the default) */
    const char *grids[MAX_GRIDS]; /* sweep --grid NAME=V1,V2,... (repeatable) */
    int n_grids;
    long random;               /* sweep --random N: N combinations drawn from the grid (-1: all of them) */
    int jobs;                  /* sweep --jobs J: trainings at a time (0: one per core) */
} Options;

/* The defaults every command starts from. */
Options options_default(void);
/* Parses argv (the words after the command) for the command `cmd` (a CmdBit)
 * that takes n_files positional files; files_msg, when set, is the error for
 * a wrong count ("compare takes two .npy files"). 0, or 1 after a usage error. */
int options_parse(int argc, char **argv, unsigned cmd, int n_files, const char *files_msg, Options *o);
void options_free(Options *o);
/* Writes the help lines of the options that `cmds` (a mask of CmdBits) accept. */
void options_print_help(FILE *f, unsigned cmds);
/* The spellings of the options `cmds` accept, each after a space (-O as -O0 -O1 -O2): bash completion's words. */
void options_print_names(FILE *f, unsigned cmds);
/* The man page's OPTIONS entries (roff), every option once, each naming the
 * commands that accept it: cmd_names[k] is the command of bit k, NULL-ended. */
void options_write_man(FILE *f, const char *const *cmd_names);
/* text as roff: backslashes and hyphens escaped; newlines kept (inside .nf)
 * or turned into spaces. */
void roff_text(FILE *f, const char *text, bool keep_lines);

/* Names the command that usage_error messages mention ("etch build: error: ..."). */
void usage_set_command(const char *name);
/* "etch CMD: error: ..." and a pointer to --help, for command-line mistakes; returns 1. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
