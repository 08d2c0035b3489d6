/* train/common.c: the top of the joined train_main.c: its header comment
 * (usage), the includes, and what image and text training share: the
 * options, error reporting, the progress line, the optimizer's step counter
 * and checkpoint writes. The parts in this folder are joined, in the order
 * CMakeLists.txt lists, into the one main.c of a training program (see
 * scripts/embed.cmake, which drops each part's first comment, like this one). */

/* train_main.c: the driver `etch train` compiles with a model's train_step and
 * forward entries into one standalone training program (libc, libm and
 * etch_rt.c only):
 *
 *   PROGRAM --data DIR (--init W | --resume CKPT) [--epochs N] [--steps N]
 *           [--seed S] [--no-shuffle] [--limit N] [--name NAME] -o OUTDIR
 *   PROGRAM --eval --data DIR --weights W [--png GRID.png]
 *   PROGRAM --eval --text CORPUS --weights W   (the held-out loss per byte)
 *   PROGRAM --text CORPUS (--init W | --resume CKPT) [--epochs N] [--steps N] [--seed S] -o OUTDIR
 *
 * Two kinds of data, each in its own section below: images with class labels
 * (IDX files, --data) and byte text (--text). Either way the program writes
 * OUTDIR/checkpoint.safetensors (weights and optimizer state) after every
 * epoch and, at the end, OUTDIR/NAME.safetensors (weights only, PyTorch
 * state_dict names), each atomically, then reports on held-out data. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "etch_rt.h"
#include "model.h"

typedef struct Args {
    const char *data, *init, *resume, *weights, *out, *name, *png, *text;
    long epochs, steps, limit;
    int epochs_given;
    unsigned long long seed;
    int shuffle, eval_only;
} Args;

static int fail(const char *msg) {
    fprintf(stderr, "error: %s\n", msg);
    return 1;
}

static void progress(long epoch, int64_t done, int64_t total, double loss) {
    int width = 30, filled = (int)(width * done / (total ? total : 1));
    printf("\rEpoch %ld [", epoch);
    for (int i = 0; i < width; i++) putchar(i < filled ? '=' : i == filled ? '>' : ' ');
    printf("] %lld/%lld loss %.4f", (long long)done, (long long)total, loss);
    fflush(stdout);
}

static double param_scalar(const char *name) {
    for (int i = 0; ETCH_MODEL(params)[i].name; i++)
        if (!strcmp(ETCH_MODEL(params)[i].name, name)) return *(const double *)ETCH_MODEL(param_data)[i];
    return 0;
}

static int save_or_fail(const char *path, int with_state) {
    char err[1024];
    if (ETCH_MODEL(save)(path, with_state, err, sizeof err)) return fail(err);
    return 0;
}
