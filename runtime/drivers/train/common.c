/* train/common.c: the top of the joined train_main.c: its header comment
 * (usage), the includes, and what image and text training share: the
 * options, error reporting, the forward's output buffers, the progress line
 * and epoch lines, the optimizer's step counter, the seed a checkpoint keeps,
 * and checkpoint writes. The parts in this folder are joined, in the order
 * CMakeLists.txt lists, into the one main.c of a training program (see
 * scripts/embed.cmake, which drops each part's first comment, like this one). */

/* train_main.c: the driver `etch train` compiles with a model's train_step and
 * forward entries into one standalone training program (libc, libm and
 * etch_rt.c only):
 *
 *   PROGRAM --data DIR (--init W | --resume CKPT) [--epochs N] [--steps N]
 *           [--seed S] [--no-shuffle] [--limit N] [--digits N] [--name NAME] [--hparam NAME=V]... -o OUTDIR
 *   PROGRAM --eval --data DIR --weights W [--png GRID.png]
 *   PROGRAM --eval --text CORPUS --weights W   (the held-out loss per byte)
 *   PROGRAM --text CORPUS (--init W | --resume CKPT) [--epochs N] [--steps N] [--seed S] [--digits N] -o OUTDIR
 *
 * Three kinds of data, each in its own section below: images with class
 * labels (IDX files, --data), NumPy arrays named after the train block's
 * inputs (--data DIR holding x.npy and y.npy) and byte text (--text). Either way the program prints
 * "Epoch: N, Loss: X.XXX" (the epoch's mean loss, --digits decimals, default
 * 3) after each epoch, with a progress line redrawn on stderr when stderr is
 * a terminal; it writes OUTDIR/checkpoint.safetensors (weights, optimizer
 * state and, in its metadata, the seed) and OUTDIR/loss.png (the loss curve)
 * after every epoch and, at the end, OUTDIR/NAME.safetensors (weights only,
 * PyTorch state_dict names), each atomically, then reports on held-out data.
 * --resume takes the checkpoint's seed unless --seed is given (a different
 * one is used, with a warning). SIGINT and SIGTERM wait for a write in
 * progress; temp files a killed run left behind (FILE.tmp.PID of a dead PID)
 * are removed when the next starts. A program built for `etch sweep` reads
 * some optimizer hyperparameters at run time, from the frozen f64 scalars
 * "optimizer.hparam.NAME" of its weights file (the compiled values in the
 * file etch writes); --hparam NAME=V sets one after loading (training only,
 * so a checkpoint keeps it for --resume). The forward may return several tensors:
 * the evaluations pick theirs by shape (see images and text below). A train
 * block with named steps (train_steps.h: a GAN's d and g) runs its steps in
 * the schedule's order on each batch and prints each step's mean loss:
 * "Epoch: N, Loss d: X.XXX, Loss g: X.XXX"; loss.png then has one curve per
 * step. A forward without inputs is a generator: after each epoch the
 * program writes its outputs as OUTDIR/samples-N.png (images only).
 * With the cuda backend the weights and optimizer state live on the device
 * (the steps update them there): whatever reads ETCH_MODEL(param_data) after
 * steps ran (the step counter, weight hashes, checkpoints) calls
 * ETCH_PARAMS_TO_HOST() first, and whatever writes it (--hparam) calls
 * ETCH_PARAMS_CHANGED() after; both are no-ops for the C backend. The cuda
 * backend's steps run asynchronously (ETCH_ASYNC_ENTRIES): the driver fills
 * the next batch, into the other of two ETCH_HOST_ALLOC buffers (pinned),
 * while the device runs a step (batch_begin / batch_end).
 * Joined at build time from runtime/drivers/train/ (common, curve, images, arrays, text, main). */
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
#include "train_steps.h"

typedef struct Args {
    const char *data, *init, *resume, *weights, *out, *name, *png, *text;
    long epochs, steps, limit;
    int epochs_given, seed_given, digits;
    unsigned long long seed;
    int shuffle, eval_only;
    const char *hparams[16]; /* --hparam NAME=V, in order */
    int n_hparams;
} Args;

/* Data-parallel training (etch train --ranks N, docs/passes.md): a program
 * built with -DETCH_MPI links the MPI driver part etch_mpi.c
 * (runtime/drivers/train_mpi.c) and runs as one of dp_size ranks. Every rank
 * loads the same weights, takes its own B examples of each global batch of
 * dp_size * B (rank r: examples r*B .. r*B+B-1 of it, in the one shuffled
 * order all ranks share) and runs the same compiled step, whose gradients are
 * averaged over the ranks (allreduce_start/allreduce_wait) before the
 * identical update. The printed losses are means over the ranks; rank 0 alone prints, writes files
 * and reports. Without ETCH_MPI: one process, rank 0 of 1. */
#ifdef ETCH_MPI
int etch_dp_init(int *argc, char ***argv, int *rank, int *size);
void etch_dp_mean(double *v, int n); /* averages v over the ranks, in place */
int etch_dp_same(uint64_t v);        /* 1 when every rank passed the same v */
void etch_dp_finish(int status);     /* ends the job: MPI_Finalize, or MPI_Abort after a failure */
#else
static int etch_dp_init(int *argc, char ***argv, int *rank, int *size) {
    (void)argc, (void)argv;
    return *rank = 0, *size = 1, 0;
}
static void etch_dp_mean(double *v, int n) { (void)v, (void)n; }
static int etch_dp_same(uint64_t v) { return (void)v, 1; }
static void etch_dp_finish(int status) { (void)status; }
#endif
static int dp_rank = 0, dp_size = 1;

/* The ranks must hold the same weights and optimizer state: at the start
 * (hosts reading different --init or --resume files would otherwise train
 * apart, silently) and after every epoch. Compares an FNV-1a hash of every
 * param's bytes across the ranks; 1 with a message when they differ. */
static int dp_check_same_weights(const char *when) {
    uint64_t h = 14695981039346656037ULL;
    if (dp_size > 1) ETCH_PARAMS_TO_HOST();
    for (int i = 0; dp_size > 1 && ETCH_MODEL(params)[i].name; i++) {
        const etch_tensor_info *p = &ETCH_MODEL(params)[i];
        etch_array a = {p->dtype, p->rank, {0}, ETCH_MODEL(param_data)[i]};
        memcpy(a.dim, p->dim, sizeof a.dim);
        const unsigned char *b = a.data;
        for (size_t k = 0, n = (size_t)etch_array_numel(&a) * etch_dtype_size(p->dtype); k < n; k++)
            h = (h ^ b[k]) * 1099511628211ULL;
    }
    if (dp_size == 1 || etch_dp_same(h)) return 0;
    fprintf(stderr, "error: rank %d: the ranks' weights differ %s (each rank must load the same --init or --resume "
                    "file)\n", dp_rank, when);
    return 1;
}

static int fail(const char *msg) {
    fprintf(stderr, "error: %s\n", msg);
    return 1;
}

/* The forward's outputs, one buffer each: every output is computed, the
 * evaluations read those they need (picked by shape). */
typedef struct Outputs {
    etch_array a[ETCH_FORWARD_N_OUTPUTS];
    void *ptr[ETCH_FORWARD_N_OUTPUTS];
} Outputs;

static void outputs_alloc(Outputs *o) {
    for (int i = 0; i < ETCH_FORWARD_N_OUTPUTS; i++) {
        const etch_tensor_info *t = &ETCH_MODEL(forward_outputs)[i];
        etch_array_alloc(&o->a[i], t->dtype, t->rank, t->dim);
        o->ptr[i] = o->a[i].data;
    }
}

static void outputs_free(Outputs *o) {
    for (int i = 0; i < ETCH_FORWARD_N_OUTPUTS; i++) etch_array_free(&o->a[i]);
}

/* The forward on one batch x (its only input). */
static void run_forward(const void *x, Outputs *o) {
    const void *in[] = {x};
    ETCH_MODEL(forward_v)(in, o->ptr);
}

/* "Epoch [====>   ] k/n loss X" on stderr, redrawn in place (\r): only
 * when stderr is a terminal, so logs and pipes never see it. With named
 * steps, each step's running mean: "loss d X, g Y". sum[k]: step k's losses
 * over the count batches so far. */
static void progress(long epoch, int64_t done, int64_t total, const double *sum, int64_t count) {
    int width = 30, filled = (int)(width * done / (total ? total : 1));
    fprintf(stderr, "\rEpoch %ld [", epoch);
    for (int i = 0; i < width; i++) fputc(i < filled ? '=' : i == filled ? '>' : ' ', stderr);
    fprintf(stderr, "] %lld/%lld loss", (long long)done, (long long)total);
    for (int k = 0; k < ETCH_TRAIN_N_STEPS; k++) {
        if (etch_step_labels[k]) fprintf(stderr, "%s %s", k ? "," : "", etch_step_labels[k]);
        fprintf(stderr, " %.4f", sum[k] / (double)(count ? count : 1));
    }
    fflush(stderr);
}

/* The line after each epoch: "Epoch: N, Loss: X.XXX" (--digits decimals),
 * or with named steps "Epoch: N, Loss d: X.XXX, Loss g: X.XXX" (mean[k]:
 * step k's), after clearing the progress line. */
static void epoch_line(const Args *a, int tty, long long epoch, const double *mean) {
    if (tty) fputs("\r\033[K", stderr);
    printf("Epoch: %lld", epoch);
    for (int k = 0; k < ETCH_TRAIN_N_STEPS; k++) {
        if (etch_step_labels[k]) printf(", Loss %s: %.*f", etch_step_labels[k], a->digits, mean[k]);
        else printf(", Loss: %.*f", a->digits, mean[k]);
    }
    putchar('\n');
    fflush(stdout);
}

/* One batch (x, y) in flight: the steps run in the schedule's order, each
 * to its end but the last, whose loss decides nothing before it (the
 * others' do: a non-finite loss stops the batch), so batch_begin leaves the
 * last one begun (ETCH_ASYNC_ENTRIES: the cuda backend's P_E_begin) and the
 * driver fills the next batch, into the other of its two buffers, while the
 * device runs it; batch_end finishes it. x and y stay unchanged until then.
 * With the C backend every step runs in batch_begin, as it always did. */
typedef struct BatchInFlight {
    int bad, last;      /* bad: -1, or the step whose loss was not finite; last: the step begun, or -1 */
    float bad_loss;
    int runs[ETCH_TRAIN_N_STEPS];
    double sum[ETCH_TRAIN_N_STEPS];
} BatchInFlight;

/* Step k's loss l counted into f; 0, or 1 when it is not finite (then f->bad). */
static int count_loss(BatchInFlight *f, int k, float l) {
    if (!isfinite(l) && dp_size == 1) return f->bad = k, f->bad_loss = l, 1; /* ranks run every step: their reductions pair up */
    f->sum[k] += l;
    f->runs[k]++;
    return 0;
}

static void batch_begin(const void *x, const void *y, BatchInFlight *f) {
    const void *in[] = {x, y};
    memset(f, 0, sizeof *f);
    f->bad = f->last = -1;
    for (int i = 0; i < ETCH_TRAIN_N_SCHEDULE; i++) {
        int k = etch_schedule[i];
#if ETCH_ASYNC_ENTRIES
        if (i + 1 == ETCH_TRAIN_N_SCHEDULE) {
            etch_step_begin_fns[k](in);
            f->last = k;
            return;
        }
#endif
        float l = 0;
        void *out[] = {&l};
        etch_step_fns[k](in, out);
        if (count_loss(f, k, l)) return;
    }
}

/* The batch's end: loss[k] is step k's loss on it (the mean of its runs).
 * Returns -1, or the first step whose loss is not finite (its loss then in
 * loss[k]). Every step has ended when it returns. */
static int batch_end(BatchInFlight *f, float *loss) {
#if ETCH_ASYNC_ENTRIES
    if (f->last >= 0) {
        float l = 0;
        void *out[] = {&l};
        etch_step_end_fns[f->last](out);
        count_loss(f, f->last, l);
        f->last = -1;
    }
#endif
    if (f->bad >= 0) return loss[f->bad] = f->bad_loss, f->bad;
    for (int k = 0; k < ETCH_TRAIN_N_STEPS; k++) loss[k] = f->runs[k] ? (float)(f->sum[k] / f->runs[k]) : 0;
    if (dp_size > 1) { /* the global batch's losses: the mean over the ranks (each a mean over its B examples) */
        double mean[ETCH_TRAIN_N_STEPS];
        for (int k = 0; k < ETCH_TRAIN_N_STEPS; k++) mean[k] = loss[k];
        etch_dp_mean(mean, ETCH_TRAIN_N_STEPS);
        for (int k = 0; k < ETCH_TRAIN_N_STEPS; k++) loss[k] = (float)mean[k];
        for (int k = 0; k < ETCH_TRAIN_N_STEPS; k++)
            if (!isfinite(loss[k])) return k;
    }
    return -1;
}

/* The two buffers of the steps' inputs x and y (one filled while the other's
 * batch runs), from ETCH_HOST_ALLOC (pinned memory on the GPU, so their
 * upload does not wait); 0, or 1 with a message. */
typedef struct BatchBuffers {
    void *x[2], *y[2];
} BatchBuffers;

static void *input_buffer(const etch_tensor_info *t) {
    etch_array a = {t->dtype, t->rank, {0}, NULL};
    memcpy(a.dim, t->dim, sizeof a.dim);
    size_t bytes = (size_t)etch_array_numel(&a) * etch_dtype_size(t->dtype);
    void *p = ETCH_HOST_ALLOC(bytes ? bytes : 1);
    return p ? memset(p, 0, bytes) : NULL;
}

static void batch_buffers_free(BatchBuffers *b) {
    for (int i = 0; i < 2; i++) {
        if (b->x[i]) ETCH_HOST_FREE(b->x[i]);
        if (b->y[i]) ETCH_HOST_FREE(b->y[i]);
    }
}

static int batch_buffers_alloc(BatchBuffers *b) {
    memset(b, 0, sizeof *b);
    for (int i = 0; i < 2; i++) {
        b->x[i] = input_buffer(&etch_step_inputs[0][0]);
        b->y[i] = input_buffer(&etch_step_inputs[0][1]);
        if (!b->x[i] || !b->y[i]) {
            batch_buffers_free(b);
            return fail("out of memory for the batch buffers");
        }
    }
    return 0;
}

/* "the loss", or "the loss of step d", for messages. */
static const char *loss_of(int k) {
    static char buf[300];
    if (!etch_step_labels[k]) return "the loss";
    snprintf(buf, sizeof buf, "the loss of step %s", etch_step_labels[k]);
    return buf;
}

static double param_scalar(const char *name) {
    ETCH_PARAMS_TO_HOST();
    for (int i = 0; ETCH_MODEL(params)[i].name; i++)
        if (!strcmp(ETCH_MODEL(params)[i].name, name)) return *(const double *)ETCH_MODEL(param_data)[i];
    return 0;
}

/* --hparam NAME=V: sets the hyperparameter this program reads at run time
 * from "optimizer.hparam.NAME" (f64 scalar); a name it does not read, or a
 * value that is not a finite number, is an error (into err) listing what it reads. */
static int set_hparams(const Args *a, char *err, size_t errlen) {
    static const char prefix[] = "optimizer.hparam.";
    const size_t plen = sizeof prefix - 1;
    for (int k = 0; k < a->n_hparams; k++) {
        const char *arg = a->hparams[k], *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : 0;
        int found = -1;
        for (int i = 0; eq && ETCH_MODEL(params)[i].name; i++) {
            const char *name = ETCH_MODEL(params)[i].name;
            if (!strncmp(name, prefix, plen) && strlen(name + plen) == len && !strncmp(name + plen, arg, len)) found = i;
        }
        char *end = NULL;
        double v = eq ? strtod(eq + 1, &end) : 0;
        if (found >= 0 && end != eq + 1 && !*end && isfinite(v)) {
            *(double *)ETCH_MODEL(param_data)[found] = v;
            ETCH_PARAMS_CHANGED();
            continue;
        }
        if (found >= 0) return snprintf(err, errlen, "--hparam %s: the value is not a finite number", arg), 1;
        size_t n = (size_t)snprintf(err, errlen, "--hparam %s: %s; this program reads at run time:", arg,
                                    eq ? "no such hyperparameter" : "needs NAME=VALUE");
        int any = 0;
        for (int i = 0; ETCH_MODEL(params)[i].name && n < errlen; i++)
            if (!strncmp(ETCH_MODEL(params)[i].name, prefix, plen))
                n += (size_t)snprintf(err + n, errlen - n, "%s %s", any++ ? "," : "", ETCH_MODEL(params)[i].name + plen);
        if (!any && n < errlen) snprintf(err + n, errlen - n, " none (etch sweep builds such programs)");
        return 1;
    }
    return 0;
}

/* Loads the weights (and optimizer state) a training run starts from, then
 * the --hparam values; 0, or 1 with the message in err. */
static int load_training(const Args *a, const char *weights, char *err, size_t errlen) {
    return ETCH_MODEL(load)(weights, a->resume != NULL, err, errlen) || set_hparams(a, err, errlen);
}

/* The batches taken so far, from the step counter loaded from path (an f64
 * scalar: "optimizer.step", or the first scheduled step's
 * "optimizer.d.step", which counts its runs, so divided by its runs per
 * batch): it places a resumed run in its epoch and picks its batches, so a
 * corrupt or hostile value (negative, fractional, NaN, infinite, beyond the
 * run) must stop the program, not index out of bounds or loop without end.
 * max: the most batches this run can have taken (why: how). */
static int checked_step(const char *path, long long max, const char *why, long long *step) {
    const char *counter = etch_step_counters[etch_schedule[0]];
    int per = 0;
    for (int i = 0; i < ETCH_TRAIN_N_SCHEDULE; i++) per += etch_schedule[i] == etch_schedule[0];
    double s = param_scalar(counter) / per;
    if (max > (1LL << 53)) max = 1LL << 53; /* every count up to here is exact in f64 */
    if (s >= 0 && s <= (double)max && s == floor(s)) return *step = (long long)s, 0;
    fprintf(stderr, "error: %s: %s is %.17g; it counts the optimizer steps taken, so it must be %s from 0 to %lld (%s)\n",
            path, counter, param_scalar(counter), per > 1 ? "a multiple of its runs per batch" : "an integer",
            max * per, why);
    return 1;
}

/* SIGINT, SIGTERM and SIGHUP held (until signals_release) while a file is
 * written: its temp file is then always renamed or removed before such a
 * signal ends the program. */
static void signals_hold(sigset_t *old) {
    sigset_t hold;
    sigemptyset(&hold);
    sigaddset(&hold, SIGINT);
    sigaddset(&hold, SIGTERM);
    sigaddset(&hold, SIGHUP);
    sigprocmask(SIG_BLOCK, &hold, old);
}

static void signals_release(const sigset_t *old) { sigprocmask(SIG_SETMASK, old, NULL); }

/* Saves the weights atomically, with signals held: PyTorch state_dict names
 * and {"format": "pt"} metadata, as the model's own save writes them;
 * with_state (a checkpoint) adds the optimizer state and the seed (metadata
 * "seed", which --resume reuses). */
static int save_or_fail(const Args *a, const char *path, int with_state) {
    char err[1024], seed[24];
    const char *names[ETCH_N_PARAMS + 1];
    etch_array arrays[ETCH_N_PARAMS + 1];
    int n = 0;
    ETCH_PARAMS_TO_HOST();
    for (int i = 0; ETCH_MODEL(params)[i].name; i++) {
        const etch_tensor_info *p = &ETCH_MODEL(params)[i];
        if (!with_state && !strncmp(p->name, "optimizer.", 10)) continue;
        names[n] = p->name;
        arrays[n] = (etch_array){p->dtype, p->rank, {0}, ETCH_MODEL(param_data)[i]};
        memcpy(arrays[n].dim, p->dim, sizeof arrays[n].dim);
        n++;
    }
    if (dp_rank) return 0; /* every rank holds the same weights: rank 0 writes them */
    snprintf(seed, sizeof seed, "%llu", a->seed);
    const char *meta[] = {"format", "pt", "seed", seed};
    sigset_t old;
    signals_hold(&old);
    int rc = etch_st_write(path, n, names, arrays, with_state ? 2 : 1, meta, err, sizeof err);
    signals_release(&old);
    return rc ? fail(err) : 0;
}

/* --resume: the seed comes from the checkpoint (its metadata "seed", written
 * by save_or_fail) unless --seed is given; a different --seed wins, with a
 * warning. A checkpoint without one (older etch) keeps --seed or 0. */
static int resume_seed(Args *a) {
    char err[1024];
    etch_st_file f;
    if (etch_st_read(a->resume, &f, err, sizeof err)) return fail(err);
    const char *s = etch_st_meta(&f, "seed");
    char *end = NULL;
    errno = 0;
    unsigned long long v = s ? strtoull(s, &end, 10) : 0;
    int bad = s && (!*s || strspn(s, "0123456789") != strlen(s) || errno == ERANGE);
    if (bad) fprintf(stderr, "error: %s: the metadata's seed is '%s', not an integer from 0 to %llu\n", a->resume, s,
                     (unsigned long long)-1);
    else if (s && !a->seed_given) a->seed = v;
    else if (s && v != a->seed)
        fprintf(stderr, "warning: --seed %llu differs from the seed %llu that %s was trained with; using %llu\n",
                a->seed, v, a->resume, a->seed);
    etch_st_close(&f);
    return bad;
}

/* Removes OUTDIR/FILE.tmp.PID left by a killed run (SIGKILL, power loss) of
 * this program: FILE one of the files it writes, PID a process that no longer
 * exists (a live run's temp file is its own business). */
/* Where the PID starts in the file name f when f is FILE.tmp.PID for a file
 * this program writes (samples-N.png for any epoch N); NULL otherwise. */
static const char *our_temp_pid(const Args *a, const char *f) {
    char mine[4][300];
    snprintf(mine[0], sizeof mine[0], "checkpoint.safetensors.tmp.");
    snprintf(mine[1], sizeof mine[1], "%s.safetensors.tmp.", a->name);
    snprintf(mine[2], sizeof mine[2], "reconstructions.png.tmp.");
    snprintf(mine[3], sizeof mine[3], "loss.png.tmp.");
    for (int i = 0; i < 4; i++)
        if (!strncmp(f, mine[i], strlen(mine[i]))) return f + strlen(mine[i]);
    size_t n = strncmp(f, "samples-", 8) ? 0 : strspn(f + 8, "0123456789");
    return n && !strncmp(f + 8 + n, ".png.tmp.", 9) ? f + 8 + n + 9 : NULL;
}

static void remove_stale_temps(const Args *a) {
    char path[4096];
    if (dp_rank) return; /* rank 0 writes the files, and cleans up after them */
    DIR *dir = opendir(a->out);
    for (struct dirent *e; dir && (e = readdir(dir));) {
        const char *pid = our_temp_pid(a, e->d_name);
        if (!pid || !*pid || strspn(pid, "0123456789") != strlen(pid)) continue;
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
    if (!checkpoint_written && save_or_fail(a, path, 1)) return 1;
    snprintf(path, n, "%s/%s.safetensors", a->out, a->name);
    return save_or_fail(a, path, 0);
}
