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
 * Data: IDX files as MNIST and Fashion-MNIST ship them (train-images-idx3-ubyte,
 * train-labels-idx1-ubyte, t10k-*; gzip-compressed or not), pixels scaled to
 * [0, 1] as byte/255 (torchvision's ToTensor). Each epoch takes the training
 * set in an order shuffled by Philox keyed by (seed, epoch), so a resumed run
 * sees the same batches as an uninterrupted one; the last partial batch is
 * dropped (the step's shapes are static). After every epoch the program writes
 * OUTDIR/checkpoint.safetensors (weights and optimizer state) and, at the end,
 * OUTDIR/NAME.safetensors (weights only, PyTorch state_dict names), each
 * atomically. Then it reports accuracy and mean NLL on the test split, or,
 * for a model that reconstructs its input (an autoencoder: one output value
 * per input value), the reconstruction MSE and OUTDIR/reconstructions.png.
 *
 * Text (--text, language models with x: i64[B, T] and y: i64[B, T]): the
 * corpus is a plain byte file; its first 90% is trained on, the last 10% is
 * held out. Step s takes B windows of T+1 bytes at offsets drawn by Philox
 * keyed by (seed, s) (x = the first T bytes, y = the next T), so a run resumed
 * from a checkpoint (whose optimizer.step is s) continues with the same
 * windows. An "epoch" of text is TEXT_EPOCH_STEPS steps: the program prints
 * the mean loss over each one and writes the checkpoint after it. At the end
 * it reports the mean loss per byte (nats) on the held-out part (up to
 * TEXT_EVAL_WINDOWS windows spread evenly over it). */
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

typedef struct Split {
    etch_array images, labels; /* u8 [n, rows, cols], u8 [n] */
    int64_t n, per;            /* examples, values per example */
} Split;

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

/* Finds DIR/BASE or DIR/BASE.gz. */
static int load_idx(const char *dir, const char *base, etch_array *out, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, base);
    if (access(path, R_OK) != 0) snprintf(path, sizeof path, "%s/%s.gz", dir, base);
    return etch_idx_read(path, out, err, errlen);
}

static int load_split(const char *dir, const char *prefix, int64_t need_per, Split *s, char *err, size_t errlen) {
    char img[256], lab[256];
    snprintf(img, sizeof img, "%s-images-idx3-ubyte", prefix);
    snprintf(lab, sizeof lab, "%s-labels-idx1-ubyte", prefix);
    if (load_idx(dir, img, &s->images, err, errlen)) return -1;
    if (load_idx(dir, lab, &s->labels, err, errlen)) {
        etch_array_free(&s->images);
        return -1;
    }
    s->n = s->images.rank ? s->images.dim[0] : 0;
    s->per = s->n ? etch_array_numel(&s->images) / s->n : 0;
    const char *why = NULL;
    char buf[256];
    if (s->images.dtype != ETCH_U8 || s->labels.dtype != ETCH_U8) why = "images and labels must be unsigned bytes";
    else if (s->labels.rank != 1 || s->labels.dim[0] != s->n) why = "images and labels have different counts";
    else if (s->per != need_per) {
        snprintf(buf, sizeof buf, "images have %lld values each, the model's input takes %lld per example",
                 (long long)s->per, (long long)need_per);
        why = buf;
    }
    if (why) {
        snprintf(err, errlen, "%s/%s: %s", dir, img, why);
        etch_array_free(&s->images);
        etch_array_free(&s->labels);
        return -1;
    }
    return 0;
}

static void fill_batch(const Split *s, const int64_t *order, int64_t start, int64_t count, int64_t batch, float *x,
                       void *y, etch_dtype ydt) {
    const uint8_t *px = s->images.data, *lb = s->labels.data;
    for (int64_t b = 0; b < batch; b++) {
        int valid = b < count;
        int64_t ex = valid ? (order ? order[start + b] : start + b) : 0;
        for (int64_t k = 0; k < s->per; k++) x[b * s->per + k] = valid ? px[ex * s->per + k] / 255.0f : 0.0f;
        int64_t label = valid ? lb[ex] : 0;
        if (ydt == ETCH_I64) ((int64_t *)y)[b] = label;
        else ((int32_t *)y)[b] = (int32_t)label;
    }
}

/* Fisher-Yates with a counter-based generator: the order depends only on (seed, epoch). */
static void shuffle(int64_t *order, int64_t n, unsigned long long seed, long epoch) {
    for (int64_t i = 0; i < n; i++) order[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        uint32_t r[4];
        etch_philox4x32(seed, (uint64_t)epoch + 1, (uint64_t)i, r);
        int64_t j = (int64_t)((((uint64_t)r[0] << 32) | r[1]) % (uint64_t)(i + 1));
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* Accuracy and mean negative log-likelihood of the forward's logits on a split. */
static void evaluate(const Split *s, double *accuracy, double *nll) {
    const etch_tensor_info *xi = &ETCH_MODEL(forward_inputs)[0], *oi = &ETCH_MODEL(forward_outputs)[0];
    int64_t batch = xi->dim[0], classes = oi->dim[oi->rank - 1];
    etch_array x, y, logits;
    etch_array_alloc(&x, ETCH_F32, xi->rank, xi->dim);
    etch_array_alloc(&y, ETCH_I64, 1, (int64_t[]){batch});
    etch_array_alloc(&logits, oi->dtype, oi->rank, oi->dim);
    int64_t correct = 0;
    double total_nll = 0;
    for (int64_t start = 0; start < s->n; start += batch) {
        int64_t count = s->n - start < batch ? s->n - start : batch;
        fill_batch(s, NULL, start, count, batch, x.data, y.data, ETCH_I64);
        const void *in[] = {x.data};
        void *out[] = {logits.data};
        ETCH_MODEL(forward_v)(in, out);
        for (int64_t b = 0; b < count; b++) {
            const float *row = (const float *)logits.data + b * classes;
            int64_t label = ((int64_t *)y.data)[b], best = 0;
            double mx = row[0], sum = 0;
            for (int64_t c = 1; c < classes; c++)
                if (row[c] > row[best]) best = c;
            for (int64_t c = 0; c < classes; c++) mx = fmax(mx, row[c]);
            for (int64_t c = 0; c < classes; c++) sum += exp(row[c] - mx);
            total_nll += mx + log(sum) - row[label];
            correct += best == label;
        }
    }
    *accuracy = s->n ? (double)correct / (double)s->n : 0;
    *nll = s->n ? total_nll / (double)s->n : 0;
    etch_array_free(&x);
    etch_array_free(&y);
    etch_array_free(&logits);
}

/* For models whose output has one value per input value (autoencoders): the
 * mean squared error of the reconstructions on a split, and, when png is
 * set, a PNG grid of the first 8 examples (top row) above their
 * reconstructions (bottom row), like torchvision's make_grid/save_image. */
static int evaluate_reconstruction(const Split *s, double *mse, const char *png, char *err, size_t errlen) {
    const etch_tensor_info *xi = &ETCH_MODEL(forward_inputs)[0], *oi = &ETCH_MODEL(forward_outputs)[0];
    int64_t batch = xi->dim[0];
    etch_array x, y, recon;
    etch_array_alloc(&x, ETCH_F32, xi->rank, xi->dim);
    etch_array_alloc(&y, ETCH_I64, 1, (int64_t[]){batch});
    etch_array_alloc(&recon, oi->dtype, oi->rank, oi->dim);
    double total = 0;
    int rows = s->images.rank >= 3 ? (int)s->images.dim[1] : 1, cols = (int)(s->per / rows), shown = 8, pad = 2;
    int gw = shown * (cols + pad) + pad, gh = 2 * (rows + pad) + pad, rc = 0;
    unsigned char *grid = calloc((size_t)gw * (size_t)gh, 1);
    for (int64_t start = 0; start < s->n; start += batch) {
        int64_t count = s->n - start < batch ? s->n - start : batch;
        fill_batch(s, NULL, start, count, batch, x.data, y.data, ETCH_I64);
        const void *in[] = {x.data};
        void *out[] = {recon.data};
        ETCH_MODEL(forward_v)(in, out);
        const float *xs = x.data, *rs = recon.data;
        for (int64_t b = 0; b < count; b++)
            for (int64_t k = 0; k < s->per; k++) {
                double d = rs[b * s->per + k] - xs[b * s->per + k];
                total += d * d;
            }
        for (int64_t b = 0; start == 0 && grid && b < count && b < shown; b++)
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++) {
                    float v0 = xs[b * s->per + r * cols + c], v1 = rs[b * s->per + r * cols + c];
                    int gx = pad + (int)b * (cols + pad) + c;
                    grid[(size_t)(pad + r) * (size_t)gw + (size_t)gx] = (unsigned char)(fminf(fmaxf(v0, 0), 1) * 255 + 0.5f);
                    grid[(size_t)(2 * pad + rows + r) * (size_t)gw + (size_t)gx] =
                        (unsigned char)(fminf(fmaxf(v1, 0), 1) * 255 + 0.5f);
                }
    }
    *mse = s->n ? total / ((double)s->n * (double)s->per) : 0;
    if (png && grid) rc = etch_png_write_gray(png, gw, gh, grid, err, errlen);
    free(grid);
    etch_array_free(&x);
    etch_array_free(&y);
    etch_array_free(&recon);
    return rc;
}

/* True when the forward maps each example to as many values as it reads. */
static int is_reconstruction(int64_t per) {
    const etch_tensor_info *oi = &ETCH_MODEL(forward_outputs)[0];
    int64_t out_per = 1;
    for (int k = 1; k < oi->rank; k++) out_per *= oi->dim[k];
    return out_per == per && oi->dtype == ETCH_F32;
}

/* Prints the test-split report: accuracy and NLL for classifiers, MSE (and
 * the PNG grid) for reconstruction models. */
static int report(const Split *test, int64_t per, const char *png, char *err, size_t errlen) {
    if (is_reconstruction(per)) {
        double mse;
        if (evaluate_reconstruction(test, &mse, png, err, errlen)) return -1;
        printf("Test reconstruction MSE: %.6f (%lld examples)\n", mse, (long long)test->n);
        if (png) printf("Inputs (top) and reconstructions (bottom) written to %s\n", png);
        return 0;
    }
    double acc, nll;
    evaluate(test, &acc, &nll);
    printf("Test accuracy: %.2f%%, mean NLL: %.4f (%lld examples)\n", 100 * acc, nll, (long long)test->n);
    return 0;
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

enum { TEXT_EPOCH_STEPS = 100, TEXT_EVAL_WINDOWS = 512 };

/* Writes the windows of a text batch: row b starts at starts[b]; x gets T
 * bytes, y the T bytes after each (as i64 or i32). */
static void text_batch(const unsigned char *text, const int64_t *starts, int64_t batch, int64_t T, void *x,
                       etch_dtype xdt, void *y, etch_dtype ydt) {
    for (int64_t b = 0; b < batch; b++)
        for (int64_t t = 0; t < T; t++) {
            int64_t xi = text[starts[b] + t], yi = text[starts[b] + t + 1], k = b * T + t;
            if (xdt == ETCH_I64) ((int64_t *)x)[k] = xi;
            else ((int32_t *)x)[k] = (int32_t)xi;
            if (ydt == ETCH_I64) ((int64_t *)y)[k] = yi;
            else ((int32_t *)y)[k] = (int32_t)yi;
        }
}

/* Mean negative log-likelihood per predicted byte over windows of T+1 bytes
 * in text[lo, hi): up to TEXT_EVAL_WINDOWS windows spread evenly, every
 * position of each window predicted by the forward. */
static double text_eval(const unsigned char *text, int64_t lo, int64_t hi, int64_t *predictions) {
    const etch_tensor_info *xi = &ETCH_MODEL(forward_inputs)[0], *oi = &ETCH_MODEL(forward_outputs)[0];
    int64_t batch = xi->dim[0], T = xi->dim[1], V = oi->dim[oi->rank - 1];
    int64_t span = hi - lo - T - 1, windows = span / T + 1;
    if (windows > TEXT_EVAL_WINDOWS) windows = TEXT_EVAL_WINDOWS;
    etch_array x, y, logits;
    etch_array_alloc(&x, xi->dtype, xi->rank, xi->dim);
    etch_array_alloc(&y, xi->dtype, xi->rank, xi->dim);
    etch_array_alloc(&logits, oi->dtype, oi->rank, oi->dim);
    int64_t *starts = malloc(sizeof(int64_t) * (size_t)batch);
    double total = 0;
    int64_t count = 0;
    for (int64_t w = 0; w < windows; w += batch) {
        int64_t n = windows - w < batch ? windows - w : batch;
        for (int64_t b = 0; b < batch; b++) starts[b] = lo + (windows > 1 ? (b < n ? w + b : w) * span / (windows - 1) : 0);
        text_batch(text, starts, batch, T, x.data, xi->dtype, y.data, xi->dtype);
        const void *in[] = {x.data};
        void *out[] = {logits.data};
        ETCH_MODEL(forward_v)(in, out);
        for (int64_t b = 0; b < n; b++)
            for (int64_t t = 0; t < T; t++) {
                const float *row = (const float *)logits.data + (b * T + t) * V;
                int64_t label = text[starts[b] + t + 1];
                double mx = row[0], sum = 0;
                for (int64_t c = 1; c < V; c++) mx = fmax(mx, row[c]);
                for (int64_t c = 0; c < V; c++) sum += exp(row[c] - mx);
                total += mx + log(sum) - row[label];
                count++;
            }
    }
    free(starts);
    etch_array_free(&x);
    etch_array_free(&y);
    etch_array_free(&logits);
    *predictions = count;
    return count ? total / (double)count : 0;
}

static int save_or_fail(const char *path, int with_state) {
    char err[1024];
    if (ETCH_MODEL(save)(path, with_state, err, sizeof err)) return fail(err);
    return 0;
}

/* Checks the model's text interface and reads the corpus, split into the
 * first 90% (training windows) and the last 10% (held out). */
static int load_corpus(const Args *a, unsigned char **text, size_t *n, int64_t *ntrain) {
    char err[1024];
    const etch_tensor_info *xi = &ETCH_MODEL(train_step_inputs)[0], *yi = &ETCH_MODEL(train_step_inputs)[1];
    const etch_tensor_info *fi = &ETCH_MODEL(forward_inputs)[0], *fo = &ETCH_MODEL(forward_outputs)[0];
    int int_x = xi->dtype == ETCH_I64 || xi->dtype == ETCH_I32, int_y = yi->dtype == ETCH_I64 || yi->dtype == ETCH_I32;
    if (xi->rank != 2 || yi->rank != 2 || !int_x || !int_y || yi->dim[0] != xi->dim[0] || yi->dim[1] != xi->dim[1])
        return fail("--text needs a train step taking x: i64[B, T] and y: i64[B, T] (byte ids)");
    if (fi->rank != 2 || fi->dim[1] != xi->dim[1] || fi->dtype != xi->dtype || fo->rank != 3 || fo->dim[2] < 256 ||
        fo->dtype != ETCH_F32)
        return fail("--text needs a forward taking byte ids [B, T] and returning f32 logits [B, T, >= 256]");
    int64_t T = xi->dim[1];
    if (etch_read_file(a->text, text, n, err, sizeof err)) return fail(err);
    int64_t held = (int64_t)*n / 10;
    *ntrain = (int64_t)*n - held;
    if (*n == 0 || *ntrain < T + 2 || held < T + 1) {
        snprintf(err, sizeof err, "%s: %s (%lld bytes; need at least %lld: windows of %lld bytes to train on in the "
                 "first 90%% and to evaluate in the last 10%%)", a->text, *n ? "corpus too small" : "empty corpus",
                 (long long)*n, (long long)(10 * (T + 2)), (long long)(T + 1));
        free(*text);
        return fail(err);
    }
    return 0;
}

/* --eval --text: the held-out loss of the given weights. */
static int eval_text(const Args *a) {
    char err[1024];
    unsigned char *text = NULL;
    size_t n = 0;
    int64_t ntrain = 0, predictions = 0;
    if (load_corpus(a, &text, &n, &ntrain)) return 1;
    if (ETCH_MODEL(load)(a->weights, 0, err, sizeof err)) {
        free(text);
        return fail(err);
    }
    double nll = text_eval(text, ntrain, (int64_t)n, &predictions);
    printf("Held-out loss: %.4f nats/byte (last 10%% of %s, %lld predictions)\n", nll, a->text, (long long)predictions);
    free(text);
    return 0;
}

/* Training a language model on a byte file (see the header comment). */
static int train_text(const Args *a) {
    char err[1024], path[4096];
    const etch_tensor_info *xi = &ETCH_MODEL(train_step_inputs)[0], *yi = &ETCH_MODEL(train_step_inputs)[1];
    int64_t batch = xi->dim[0], T = xi->dim[1], ntrain = 0;
    unsigned char *text = NULL;
    size_t n = 0;
    if (load_corpus(a, &text, &n, &ntrain)) return 1;
    if (ETCH_MODEL(load)(a->init ? a->init : a->resume, a->resume != NULL, err, sizeof err)) {
        free(text);
        return fail(err);
    }
    etch_array x, y;
    etch_array_alloc(&x, xi->dtype, xi->rank, xi->dim);
    etch_array_alloc(&y, yi->dtype, yi->rank, yi->dim);
    int64_t *starts = malloc(sizeof(int64_t) * (size_t)batch);
    long long step = (long long)param_scalar("optimizer.step"), taken = 0;
    long long end = a->epochs_given || a->steps < 0 ? (long long)a->epochs * TEXT_EPOCH_STEPS : -1;
    int tty = isatty(1), status = 0;
    double sum = 0;
    int64_t count = 0;
    float loss = 0;
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", a->out);
    while ((end < 0 || step < end) && (a->steps < 0 || taken < a->steps)) {
        for (int64_t b = 0; b < batch; b++) {
            uint32_t r[4];
            etch_philox4x32(a->seed, (uint64_t)step + 1, (uint64_t)b, r);
            starts[b] = (int64_t)((((uint64_t)r[0] << 32) | r[1]) % (uint64_t)(ntrain - T));
        }
        text_batch(text, starts, batch, T, x.data, xi->dtype, y.data, yi->dtype);
        const void *in[] = {x.data, y.data};
        void *out[] = {&loss};
        ETCH_MODEL(train_step_v)(in, out);
        if (!isfinite(loss)) {
            fprintf(stderr, "\nerror: the loss became %f at step %lld\n", loss, step + 1);
            status = 1;
            goto done;
        }
        sum += loss;
        count++;
        step++;
        taken++;
        int last = (end >= 0 && step == end) || (a->steps >= 0 && taken == a->steps);
        if (tty && step % 10 == 0) progress((long)((step - 1) / TEXT_EPOCH_STEPS + 1), (step - 1) % TEXT_EPOCH_STEPS + 1,
                                            TEXT_EPOCH_STEPS, sum / (double)count);
        if (step % TEXT_EPOCH_STEPS == 0 || last) {
            if (tty) printf("\r\033[K");
            printf("Epoch: %lld, Loss: %.6f\n", (step - 1) / TEXT_EPOCH_STEPS + 1, sum / (double)count);
            fflush(stdout);
            sum = 0;
            count = 0;
            if (save_or_fail(path, 1)) {
                status = 1;
                goto done;
            }
        }
    }
    if (save_or_fail(path, 1)) {
        status = 1;
        goto done;
    }
    snprintf(path, sizeof path, "%s/%s.safetensors", a->out, a->name);
    if (save_or_fail(path, 0)) {
        status = 1;
        goto done;
    }
    int64_t predictions;
    double nll = text_eval(text, ntrain, (int64_t)n, &predictions);
    printf("Held-out loss: %.4f nats/byte (last 10%% of %s, %lld predictions)\n", nll, a->text, (long long)predictions);
    printf("Weights written to %s\n", path);
done:
    free(starts);
    free(text);
    etch_array_free(&x);
    etch_array_free(&y);
    return status;
}

static int parse_args(int argc, char **argv, Args *a) {
    *a = (Args){.epochs = 1, .steps = -1, .limit = -1, .shuffle = 1, .name = "model"};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(k, "--no-shuffle")) a->shuffle = 0;
        else if (!strcmp(k, "--eval")) a->eval_only = 1;
        else if (!v) return fprintf(stderr, "error: %s needs a value (or is unknown)\n", k), -1;
        else if (!strcmp(k, "--data")) a->data = v, i++;
        else if (!strcmp(k, "--init")) a->init = v, i++;
        else if (!strcmp(k, "--resume")) a->resume = v, i++;
        else if (!strcmp(k, "--weights")) a->weights = v, i++;
        else if (!strcmp(k, "-o")) a->out = v, i++;
        else if (!strcmp(k, "--name")) a->name = v, i++;
        else if (!strcmp(k, "--png")) a->png = v, i++;
        else if (!strcmp(k, "--text")) a->text = v, i++;
        else if (!strcmp(k, "--epochs")) a->epochs = strtol(v, NULL, 10), a->epochs_given = 1, i++;
        else if (!strcmp(k, "--steps")) a->steps = strtol(v, NULL, 10), i++;
        else if (!strcmp(k, "--limit")) a->limit = strtol(v, NULL, 10), i++;
        else if (!strcmp(k, "--seed")) a->seed = strtoull(v, NULL, 10), i++;
        else return fprintf(stderr, "error: unknown option '%s'\n", k), -1;
    }
    if (!a->data == !a->text) return fail("one of --data DIR and --text CORPUS is required"), -1;
    if (a->eval_only ? !a->weights : (!a->init == !a->resume || !a->out))
        return fail(a->eval_only ? "--eval needs --weights W" : "training needs -o OUTDIR and one of --init or --resume"), -1;
    return 0;
}

int main(int argc, char **argv) {
    Args a;
    char err[1024];
    if (parse_args(argc, argv, &a)) return 1;
    if (a.text) return a.eval_only ? eval_text(&a) : train_text(&a);
    const etch_tensor_info *xi = &ETCH_MODEL(train_step_inputs)[0], *yi = &ETCH_MODEL(train_step_inputs)[1];
    int64_t batch = xi->dim[0], per = 1;
    for (int k = 1; k < xi->rank; k++) per *= xi->dim[k];
    if (xi->dtype != ETCH_F32 || yi->rank != 1 || yi->dim[0] != batch || (yi->dtype != ETCH_I64 && yi->dtype != ETCH_I32))
        return fail("the train step must take x: f32[B, ...] and y: i64[B] (or i32[B])");
    Split test;
    if (load_split(a.data, "t10k", per, &test, err, sizeof err)) return fail(err);
    if (a.eval_only) {
        if (ETCH_MODEL(load)(a.weights, 0, err, sizeof err)) return fail(err);
        int rc = report(&test, per, a.png, err, sizeof err);
        etch_array_free(&test.images);
        etch_array_free(&test.labels);
        return rc ? fail(err) : 0;
    }
    if (ETCH_MODEL(load)(a.init ? a.init : a.resume, a.resume != NULL, err, sizeof err)) return fail(err);
    Split train;
    if (load_split(a.data, "train", per, &train, err, sizeof err)) return fail(err);
    int64_t n = a.limit >= 0 && a.limit < train.n ? a.limit : train.n;
    int64_t steps_per_epoch = n / batch;
    if (steps_per_epoch == 0) return fail("fewer training examples than one batch");
    int64_t *order = malloc(sizeof(int64_t) * (size_t)train.n);
    etch_array x, y;
    etch_array_alloc(&x, ETCH_F32, xi->rank, xi->dim);
    etch_array_alloc(&y, yi->dtype, 1, yi->dim);
    float loss = 0;
    long long step = (long long)param_scalar("optimizer.step"), taken = 0;
    long start_epoch = (long)(step / steps_per_epoch);
    int64_t skip = step % steps_per_epoch; /* resume mid-epoch where the checkpoint stopped */
    int tty = isatty(1), status = 0;
    char path[4096];
    for (long epoch = start_epoch; epoch < a.epochs && (a.steps < 0 || taken < a.steps); epoch++) {
        if (a.shuffle) shuffle(order, n, a.seed, epoch);
        else for (int64_t i = 0; i < n; i++) order[i] = i;
        double sum = 0;
        int64_t count = 0;
        for (int64_t s = skip; s < steps_per_epoch && (a.steps < 0 || taken < a.steps); s++, taken++) {
            fill_batch(&train, order, s * batch, batch, batch, x.data, y.data, yi->dtype);
            const void *in[] = {x.data, y.data};
            void *out[] = {&loss};
            ETCH_MODEL(train_step_v)(in, out);
            if (!isfinite(loss)) {
                fprintf(stderr, "\nerror: the loss became %f at epoch %ld, step %lld\n", loss, epoch + 1, (long long)s);
                status = 1;
                goto done;
            }
            sum += loss;
            count++;
            if (tty && (s % 10 == 0 || s + 1 == steps_per_epoch)) progress(epoch + 1, s + 1, steps_per_epoch, sum / count);
        }
        skip = 0;
        if (tty) printf("\r\033[K");
        printf("Epoch: %ld, Loss: %.6f\n", epoch + 1, count ? sum / count : 0.0);
        fflush(stdout);
        snprintf(path, sizeof path, "%s/checkpoint.safetensors", a.out);
        if (ETCH_MODEL(save)(path, 1, err, sizeof err)) {
            fprintf(stderr, "error: %s\n", err);
            status = 1;
            goto done;
        }
    }
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", a.out);
    if (ETCH_MODEL(save)(path, 1, err, sizeof err)) {
        fprintf(stderr, "error: %s\n", err);
        status = 1;
        goto done;
    }
    snprintf(path, sizeof path, "%s/%s.safetensors", a.out, a.name);
    if (ETCH_MODEL(save)(path, 0, err, sizeof err)) {
        fprintf(stderr, "error: %s\n", err);
        status = 1;
        goto done;
    }
    char png[4096];
    snprintf(png, sizeof png, "%s/reconstructions.png", a.out);
    if (report(&test, per, is_reconstruction(per) ? png : NULL, err, sizeof err)) {
        fprintf(stderr, "error: %s\n", err);
        status = 1;
        goto done;
    }
    printf("Weights written to %s\n", path);
done:
    free(order);
    etch_array_free(&x);
    etch_array_free(&y);
    etch_array_free(&train.images);
    etch_array_free(&train.labels);
    etch_array_free(&test.images);
    etch_array_free(&test.labels);
    return status;
}
