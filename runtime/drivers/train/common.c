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
 * state_dict names), each atomically, then reports on held-out data.
 * SIGINT and SIGTERM wait for a write in progress; temp files a killed run
 * left behind (FILE.tmp.PID of a dead PID) are removed when the next starts.
 * Joined at build time from runtime/drivers/train/ (common, images, text, main). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
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

/* The optimizer's step counter as loaded from path (an f64 scalar,
 * "optimizer.step"): it places a resumed run in its epoch and picks its
 * batches, so a corrupt or hostile value (negative, fractional, NaN, infinite,
 * beyond the run) must stop the program, not index out of bounds or loop
 * without end. max: the most steps this run can have taken (why: how). */
static int checked_step(const char *path, long long max, const char *why, long long *step) {
    double s = param_scalar("optimizer.step");
    if (max > (1LL << 53)) max = 1LL << 53; /* every count up to here is exact in f64 */
    if (s >= 0 && s <= (double)max && s == floor(s)) return *step = (long long)s, 0;
    fprintf(stderr, "error: %s: optimizer.step is %.17g; it counts the optimizer steps taken, so it must be an "
            "integer from 0 to %lld (%s)\n", path, s, max, why);
    return 1;
}

/* Saves the weights (with_state: and the optimizer state) atomically, with
 * SIGINT, SIGTERM and SIGHUP held until the write is done: the temp file is
 * then always renamed or removed before such a signal ends the program. */
static int save_or_fail(const char *path, int with_state) {
    char err[1024];
    sigset_t hold, old;
    sigemptyset(&hold);
    sigaddset(&hold, SIGINT);
    sigaddset(&hold, SIGTERM);
    sigaddset(&hold, SIGHUP);
    sigprocmask(SIG_BLOCK, &hold, &old);
    int rc = ETCH_MODEL(save)(path, with_state, err, sizeof err);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return rc ? fail(err) : 0;
}

/* Removes OUTDIR/FILE.tmp.PID left by a killed run (SIGKILL, power loss) of
 * this program: FILE one of the files it writes, PID a process that no longer
 * exists (a live run's temp file is its own business). */
static void remove_stale_temps(const Args *a) {
    char mine[3][300], path[4096];
    snprintf(mine[0], sizeof mine[0], "checkpoint.safetensors.tmp.");
    snprintf(mine[1], sizeof mine[1], "%s.safetensors.tmp.", a->name);
    snprintf(mine[2], sizeof mine[2], "reconstructions.png.tmp.");
    DIR *dir = opendir(a->out);
    for (struct dirent *e; dir && (e = readdir(dir));)
        for (int i = 0; i < 3; i++) {
            size_t k = strlen(mine[i]);
            const char *pid = e->d_name + k;
            if (strncmp(e->d_name, mine[i], k) || !*pid || strspn(pid, "0123456789") != strlen(pid)) continue;
            long p = strtol(pid, NULL, 10);
            if (p <= 0 || p == (long)getpid() || kill((pid_t)p, 0) == 0 || errno != ESRCH) continue;
            snprintf(path, sizeof path, "%s/%s", a->out, e->d_name);
            remove(path);
        }
    if (dir) closedir(dir);
}

/* The end of a training run: the checkpoint (unless the last step's was just
 * written: one write, so a disk with room for one checkpoint still takes the
 * weights), then OUTDIR/NAME.safetensors, whose path goes into path. */
static int save_final(const Args *a, int checkpoint_written, char *path, size_t n) {
    snprintf(path, n, "%s/checkpoint.safetensors", a->out);
    if (!checkpoint_written && save_or_fail(path, 1)) return 1;
    snprintf(path, n, "%s/%s.safetensors", a->out, a->name);
    return save_or_fail(path, 0);
}
