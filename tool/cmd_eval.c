/* cmd_eval.c: `etch eval FILE --weights W`: the training program built into
 * a temporary folder and run in its evaluation mode on the test split
 * (accuracy and mean NLL; autoencoders: reconstruction MSE and a PNG grid;
 * --text: held-out loss per byte). With --quantize int8 (or --limit N, --stats) the
 * forward alone is compiled and run by the tool on the test images
 * (tool/calibrate.c), quantized with --calib's ranges; --backend llvm runs
 * that forward JIT-compiled in process (float32 images: accuracy and NLL). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/build.h"
#include "ir/params.h"
#include "tool/commands.h"
#include "tool/pipeline.h"
#include "tool/quant_tool.h"

int cmd_eval(const Options *o) {
    if ((!o->data && !o->text) || !o->weights)
        return usage_error("%s", "eval needs --weights W and --data DIR (images) or --text CORPUS (bytes)");
    if (o->data && o->text) return usage_error("%s", "--data and --text exclude each other");
    Diag d;
    diag_init(&d, stderr);
    bool llvm = o->backend && !strcmp(o->backend, "llvm");
    if (llvm && (!o->data || o->png || o->quantize || o->calib))
        return usage_error("%s", "--backend llvm evaluates --data images in float32 (no --text, --png, --quantize or --calib)");
    if (llvm || o->quantize || o->calib || o->limit >= 0 || o->stats) { /* the forward alone, compiled (quantized) in the tool */
        bool ok = (o->data && !o->png) || usage_error("%s", "--quantize, --calib, --limit and --stats evaluate --data images");
        ok = ok && eval_compiled_images(o, &d);
        diag_dispose(&d);
        return ok ? 0 : 1;
    }
    Arena *a = arena_new();
    Program *p = load_program(a, o, &d); /* the model's errors, then its data's, then the weights' */
    if (p && !train_check_input(o, false, &d)) p = NULL;
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
