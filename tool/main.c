/* main.c: the `etch` command-line tool, a thin driver over the pipeline:
 *   source -> frontend -> IR -> passes -> C backend / eager executor.
 * The command table below names each command, the positional files it takes,
 * its usage lines and the function that runs it; options are parsed against
 * one table (options.c), so every command rejects unknown flags the same way
 * and the help lists the options from that table. User errors print a
 * located diagnostic and exit 1. */
#include <stdio.h>
#include <string.h>

#include "tool/commands.h"
#include "tool/options.h"

#ifndef ETCH_VERSION
#define ETCH_VERSION "0.0.0"
#endif

static const Command COMMANDS[] = {
    {"check", CMD_CHECK, 1, NULL, "  check FILE [-D N=V]             parse and type-check a model\n", cmd_check},
    {"opt", CMD_OPT, 1, NULL,
     "  opt FILE.etchir [-O0|-O1|-O2] [--passes=a,b,...] [--print-after-all]\n"
     "                                  run passes over textual IR and print the result\n",
     cmd_opt},
    {"ir", CMD_IR, 1, NULL,
     "  ir FILE [-D N=V] [--grad]       print the forward graph as textual IR (--grad: the\n"
     "                                  training step: loss, gradients, optimizer update)\n",
     cmd_ir},
    {"ir-roundtrip", CMD_IR_ROUNDTRIP, 1, NULL, "  ir-roundtrip FILE.etchir        parse textual IR, verify it and print it again\n",
     cmd_ir_roundtrip},
    {"build", CMD_BUILD, 1, NULL,
     "  build FILE -o DIR [--exe] [--embed-weights] [--weights W.safetensors] [-D N=V] [--stats]\n"
     "        [--train] [--prefix NAME] [--c-only] [--quantize int8 --calib STATS.json]\n"
     "                                  (--train: also the entries <model>_grad and <model>_train_step)\n"
     "                                  emit DIR/model.c, model.h, the runtime, and compile\n"
     "                                  DIR/lib<model>.so (and the program DIR/<model> with --exe;\n"
     "                                  --c-only: compile nothing; docs/c-api.md: the C API)\n",
     cmd_build},
    {"run", CMD_RUN, 1, NULL,
     "  run FILE --input IN.npy -o OUT.npy [--weights W] [--eager] [-D N=V] [--quantize int8 --calib S]\n"
     "                                  compile and run the model (or interpret it with --eager);\n"
     "                                  one -o per output, or one -o OUT.npz for all of them\n"
     "  run FILE --sample N [--weights W] [--seed S] [--prompt TEXT]\n"
     "                                  language models on bytes: print N sampled bytes (batch 1)\n",
     cmd_run},
    {"make-input", CMD_MAKE_INPUT, 1, NULL,
     "  make-input FILE -o IN.npy [--seed S] [--idx IMAGES --index N] [-D N=V]\n"
     "                                  write an input for the model's forward: seeded uniform\n"
     "                                  [0,1) values, or image N of an IDX file scaled to [0,1]\n",
     cmd_make_input},
    {"train", CMD_TRAIN, 1, NULL,
     "  train FILE --data DIR [--epochs N] [--steps N] [--seed S] [--init W | --resume CKPT]\n"
     "        [--no-shuffle] [--limit N] [--digits N] [--qat --calib STATS.json] [-o OUTDIR]\n"
     "  train FILE --text CORPUS [--steps N] [--epochs N] [--seed S] [--init W | --resume CKPT] [-o OUTDIR]\n"
     "                                  train a byte-level language model (an epoch is 100 steps)\n"
     "                                  compile the train block's step and a driver into one\n"
     "                                  program (OUTDIR/build/), train on IDX images or on\n"
     "                                  DIR/x.npy and y.npy (arrays named after the train block's\n"
     "                                  x and y), write\n"
     "                                  OUTDIR/<model>.safetensors, OUTDIR/checkpoint.safetensors\n"
     "                                  (with the seed, which --resume reuses) and OUTDIR/loss.png;\n"
     "                                  --qat: the loss sees the Linear layers int8 (fake_quant,\n"
     "                                  docs/quantization.md)\n",
     cmd_train},
    {"sweep", CMD_SWEEP, 1, NULL,
     "  sweep FILE --data DIR --grid NAME=V,V,... [--grid ...] [--random N] [--jobs J] [--epochs N]\n"
     "        [--steps N] [--seed S] [-o R.csv]\n"
     "                                  train every combination of the optimizer hyperparameters\n"
     "                                  (lr, momentum, ...) with one compiled program, J runs at a\n"
     "                                  time (each in R/NNN/ with its log); print the results sorted\n"
     "                                  by validation accuracy (or MSE) and write them to R.csv\n",
     cmd_sweep},
    {"eval", CMD_EVAL, 1, NULL,
     "  eval FILE --weights W (--data DIR [--png GRID.png] | --text CORPUS)\n"

     "                                  accuracy and mean NLL on the test split (autoencoders:\n"
     "                                  reconstruction MSE, and a PNG grid of inputs and outputs;\n"
     "                                  --text: held-out loss per byte of a language model;\n"
     "                                  arrays: test MSE of a regression, or accuracy)\n"
     "  eval FILE --weights W --data DIR [--limit N] [--stats] [--quantize int8 --calib STATS.json]\n"
     "                                  the forward alone, compiled (int8), on the first N test\n"
     "                                  images (--stats: also its time per batch); --backend llvm:\n"
     "                                  that forward JIT-compiled in process (float32)\n",
     cmd_eval},
    {"calibrate", CMD_CALIBRATE, 1, NULL,
     "  calibrate FILE --data DIR -o STATS.json [--weights W] [--batches N] [--method minmax|percentile]\n"
     "                                  run the compiled float model over N batches of the training\n"
     "                                  split and record the range of every Linear layer's input\n"
     "                                  (for --quantize int8 --calib STATS.json: docs/quantization.md)\n",
     cmd_calibrate},
    {"gradcheck", CMD_GRADCHECK, 1, NULL,
     "  gradcheck FILE [--seed S]       compiled gradients vs float64 finite differences\n", cmd_gradcheck},
    {"bench", CMD_BENCH, 1, NULL,
     "  bench FILE [-D N=V] [--threads N]  static vs dynamic: eager executor vs compiled C,\n"
     "                                  inference and (with a train block) each training step;\n"
     "        [--quantize int8 --calib S [--weights W]]  also the int8 forward\n",
     cmd_bench},
    {"graph", CMD_GRAPH, 1, NULL,
     "  graph FILE [--grad] [--after PASS | -O2] -o OUT.svg|OUT.dot\n"
     "                                  draw the graph with Graphviz; fused kernels are clusters\n",
     cmd_graph},
    {"compare", CMD_COMPARE, 2, "compare takes two .npy files",
     "  compare A.npy B.npy [--rtol R]  element-wise comparison (exit 1 beyond rtol, default 1e-5);\n"
     "                                  NaN matches NaN and an infinity the same infinity\n",
     cmd_compare},
    {"import", CMD_IMPORT, 1, NULL,
     "  import MODEL.onnx -o MODEL.etch [--weights-out W.safetensors] [-D N=V]\n"
     "                                  an ONNX model as etch source and its weights (docs/onnx.md);\n"
     "                                  every command also takes MODEL.onnx directly, imported in memory\n",
     cmd_import},
    {"export", CMD_EXPORT, 1, NULL,
     "  export FILE -o MODEL.onnx [--weights W] [--opset N] [-D N=V]\n"
     "                                  the forward (inference) graph as ONNX, the params as\n"
     "                                  initializers under their own names (docs/onnx.md)\n",
     cmd_export},
    {"show", CMD_SHOW, 1, "show takes one .npy file",
     "  show A.npy [--argmax]           print an array (or the argmax of each row)\n", cmd_show},
};
enum { N_COMMANDS = sizeof COMMANDS / sizeof COMMANDS[0] };

/* The end of the help and of the man page. */
static const char HELP_NOTES[] = "Without --weights, parameters come from their initializers with seed 0 (an .onnx\n"
                                 "model's from the model itself).\n"
                                 "Environment: CC (default cc) compiles emitted code.\n"
                                 "Documentation: docs/dsl.md, docs/ops.md, docs/ir.md, docs/c-api.md, docs/onnx.md.\n";

static void print_help(FILE *f) {
    fputs("etch " ETCH_VERSION ": a static graph compiler for neural networks\n\n"
          "usage: etch COMMAND [options]\n\ncommands:\n",
          f);
    unsigned all = 0;
    for (int i = 0; i < N_COMMANDS; i++) {
        fputs(COMMANDS[i].usage, f);
        all |= COMMANDS[i].bit;
    }
    fputs("\noptions ('etch COMMAND --help' lists those COMMAND takes):\n", f);
    options_print_help(f, all);
    fputs("\n", f);
    fputs(HELP_NOTES, f);
}

/* `etch CMD --help`: the command's usage and the options it takes. */
static void print_command_help(const Command *c) {
    printf("usage:\n%s\noptions:\n", c->usage);
    options_print_help(stdout, c->bit);
    printf("\n(see 'etch --help' for every command)\n");
}

int main(int argc, char **argv) {
    /* hidden: the installed man page and bash completion, made from the tables at build time */
    if (argc == 3 && !strcmp(argv[1], "help") && !strcmp(argv[2], "--man")) {
        docs_write_man(stdout, COMMANDS, N_COMMANDS, ETCH_VERSION, HELP_NOTES);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "help") && !strcmp(argv[2], "--bash-completion")) {
        docs_write_bash_completion(stdout, COMMANDS, N_COMMANDS);
        return 0;
    }
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        print_help(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("etch %s\n", ETCH_VERSION);
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++) {
        const Command *c = &COMMANDS[i];
        if (strcmp(argv[1], c->name)) continue;
        usage_set_command(c->name);
        for (int k = 2; k < argc; k++)
            if (!strcmp(argv[k], "--help") || !strcmp(argv[k], "-h")) {
                print_command_help(c);
                return 0;
            }
        Options o = options_default();
        int rc = options_parse(argc - 2, argv + 2, c->bit, c->n_files, c->files_msg, &o);
        if (rc == 0) rc = c->run(&o);
        options_free(&o);
        return rc;
    }
    fprintf(stderr, "etch: error: unknown command '%s' (see 'etch --help')\n", argv[1]);
    return 1;
}
