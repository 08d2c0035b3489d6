/* commands.h: the `etch` commands, one function each, called by main.c with
 * the parsed options; each returns the exit status (0, or 1 after printing
 * an error). One file per command or small family of commands: cmd_ir.c
 * (check, ir, ir-roundtrip, opt), cmd_build.c, cmd_run.c, cmd_train.c,
 * cmd_eval.c, cmd_gradcheck.c, cmd_bench.c, cmd_graph.c, cmd_tools.c
 * (make-input, compare, show), cmd_import.c, cmd_export.c, cmd_sweep.c; cmd_docs.c writes the man page and bash
 * completion from the command table (main.c) and the option table. */
#ifndef ETCH_TOOL_COMMANDS_H
#define ETCH_TOOL_COMMANDS_H

#include "ir/diag.h"
#include "tool/options.h"

/* A row of main.c's command table. */
typedef struct Command {
    const char *name;
    unsigned bit;          /* its CmdBit: which options apply */
    int n_files;           /* positional files it takes */
    const char *files_msg; /* the error for another count (NULL: "no input file given" and friends) */
    const char *usage;     /* its lines in the help */
    int (*run)(const Options *o);
} Command;

/* `etch help --man`: etch.1 in roff, from the command table and the options
 * table (every command, every option); notes ends the help and the page. */
void docs_write_man(FILE *f, const Command *cmds, int n, const char *version, const char *notes);
/* `etch help --bash-completion`: a bash completion script completing
 * commands, then the options of the command given, then file names. */
void docs_write_bash_completion(FILE *f, const Command *cmds, int n);

int cmd_check(const Options *o);
int cmd_ir(const Options *o);
int cmd_ir_roundtrip(const Options *o);
int cmd_opt(const Options *o);
int cmd_build(const Options *o);
int cmd_run(const Options *o);
int cmd_make_input(const Options *o);
int cmd_train(const Options *o);
int cmd_eval(const Options *o);
int cmd_gradcheck(const Options *o);
int cmd_bench(const Options *o);
int cmd_graph(const Options *o);
int cmd_compare(const Options *o);
int cmd_show(const Options *o);
int cmd_import(const Options *o);
int cmd_export(const Options *o);
int cmd_calibrate(const Options *o); /* tool/calibrate.c */
int cmd_sweep(const Options *o);

/* train and eval: --data DIR must be a folder holding the IDX files read
 * (the training split too when training), --text CORPUS, --init W and
 * --resume CKPT non-empty readable files; checked before time goes into
 * compiling. */
bool train_check_input(const Options *o, bool training, Diag *d);

#endif
