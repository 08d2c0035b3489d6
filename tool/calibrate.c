/* calibrate.c: `etch calibrate` and the compiled forward over IDX images it
 * shares with `etch eval --quantize int8` (and eval --limit N).
 *
 * Calibration runs the float model compiled (the forward with every Linear
 * layer's input added as an output, built into a temporary folder and opened
 * with dlopen) over the first N batches of the training split and keeps, per
 * activation, its min, max and a histogram of HIST_BINS bins: memory is
 * bounded by the number of activations, not by the data. The histogram
 * covers [lo, lo + bins * width) and grows when a batch falls outside by
 * doubling the width and merging bin pairs (to the right, or into the upper
 * half when growing to the left), so earlier counts stay in place.
 * `--method percentile` cuts the range at the histogram's 0.01% and 99.99%
 * points; minmax keeps what was seen. Pixels are byte/255 as the training
 * program reads them. */
#include <sys/resource.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codegen/build.h"
#include "ir/params.h"
#include "tool/commands.h"
#include "tool/pipeline.h"
#include "tool/quant_tool.h"

enum { HIST_BINS = 2048, MAX_LAYERS = 256 };
#define PERCENTILE_TAIL 1e-4

typedef struct Hist {
    double lo, width, min, max;
    int64_t total;
    int64_t count[HIST_BINS];
} Hist;

/* Doubles the width: bin pairs merge into the lower half (grow_left: the upper half). */
static void hist_grow(Hist *h, bool grow_left) {
    int64_t merged[HIST_BINS / 2];
    for (int i = 0; i < HIST_BINS / 2; i++) merged[i] = h->count[2 * i] + h->count[2 * i + 1];
    memset(h->count, 0, sizeof h->count);
    memcpy(h->count + (grow_left ? HIST_BINS / 2 : 0), merged, sizeof merged);
    if (grow_left) h->lo -= h->width * HIST_BINS;
    h->width *= 2;
}

/* Adds n values; false at the first that is not finite (its index in *bad). */
static bool hist_add(Hist *h, const float *v, int64_t n, int64_t *bad) {
    double mn = INFINITY, mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) return *bad = i, false;
        mn = fmin(mn, v[i]), mx = fmax(mx, v[i]);
    }
    if (n == 0) return true;
    if (h->total == 0) {
        h->lo = mn, h->min = mn, h->max = mx;
        h->width = mx > mn ? (mx - mn) / HIST_BINS * (1 + 1e-9) : fmax(fabs(mn), 1) * 1e-6;
    }
    h->min = fmin(h->min, mn), h->max = fmax(h->max, mx);
    while (mn < h->lo) hist_grow(h, true);
    while (mx >= h->lo + h->width * HIST_BINS) hist_grow(h, false);
    for (int64_t i = 0; i < n; i++) {
        int64_t b = (int64_t)((v[i] - h->lo) / h->width);
        h->count[b < 0 ? 0 : b >= HIST_BINS ? HIST_BINS - 1 : b]++;
    }
    h->total += n;
    return true;
}

/* The value below which `fraction` of the counts lie (a bin's edge). */
static double hist_quantile(const Hist *h, double fraction) {
    double want = fraction * (double)h->total, seen = 0;
    for (int b = 0; b < HIST_BINS; b++) {
        seen += (double)h->count[b];
        if (seen >= want) return h->lo + h->width * (b + 1);
    }
    return h->max;
}

/* ---- IDX images and a compiled forward ---- */

typedef struct Images {
    etch_array images, labels;
    int64_t n, per;
} Images;

/* dir/base (or base.gz): its first max_rows rows (all with max_rows < 0) */
static bool load_idx(const char *dir, const char *base, int64_t max_rows, etch_array *out, Diag *d) {
    char path[4096], err[1024];
    snprintf(path, sizeof path, "%s/%s", dir, base);
    if (access(path, R_OK) != 0) snprintf(path, sizeof path, "%s/%s.gz", dir, base);
    if (etch_idx_read_rows(path, max_rows, out, err, sizeof err)) return diag_error_plain(d, "%s", err);
    if (out->dtype != ETCH_U8 || out->rank < 1) return diag_error_plain(d, "%s: not IDX unsigned bytes", path);
    return true;
}

/* The split's first max_rows images (all with max_rows < 0), and their
 * labels when labels is set: only what is used is read (and inflated), so
 * calibrating on a few batches does not hold the whole training split. */
static bool images_load(const char *dir, const char *split, int64_t per, int64_t max_rows, bool labels, Images *s,
                        Diag *d) {
    char img[128], lab[128];
    snprintf(img, sizeof img, "%s-images-idx3-ubyte", split);
    snprintf(lab, sizeof lab, "%s-labels-idx1-ubyte", split);
    memset(s, 0, sizeof *s);
    if (!load_idx(dir, img, max_rows, &s->images, d) || (labels && !load_idx(dir, lab, max_rows, &s->labels, d)))
        return false;
    s->n = s->images.dim[0];
    s->per = etch_array_numel(&s->images) / (s->n ? s->n : 1);
    if (labels && s->labels.dim[0] != s->n)
        return diag_error_plain(d, "%s/%s: images and labels have different counts", dir, img);
    if (s->per != per)
        return diag_error_plain(d, "%s/%s: images have %lld values each, the model's input takes %lld", dir, img,
                                (long long)s->per, (long long)per);
    return true;
}

static void images_free(Images *s) {
    etch_array_free(&s->images);
    etch_array_free(&s->labels);
}

/* Examples [start, start + batch) (zeros past n) as floats byte/255. */
static void images_batch(const Images *s, int64_t start, int64_t batch, float *x) {
    const uint8_t *px = s->images.data;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t k = 0; k < s->per; k++)
            x[b * s->per + k] = start + b < s->n ? px[(start + b) * s->per + k] / 255.0f : 0.0f;
}

typedef struct Forward {
    char *dir;
    void *lib;
    char prefix[64]; /* the library's symbols' */
    CompiledFn fn;
    JitForward jit;   /* --backend llvm: the forward JIT-compiled in process (jit.fn set), no folder */
    float *x;      /* the input batch */
    float **outs;  /* one buffer per output */
    int n_outs;
    int64_t batch, per;
} Forward;

static void forward_close(Forward *f) {
    if (f->jit.fn) jit_forward_close(&f->jit);
    compiled_close(f->lib, f->prefix);
    if (f->dir) build_rmtree(f->dir);
    free(f->dir);
    free(f->x);
    for (int i = 0; f->outs && i < f->n_outs; i++) free(f->outs[i]);
    free(f->outs);
}

/* Compiles p's forward (f32 input [B, ...], f32 outputs) with params into a
 * temporary folder and opens it; with --backend llvm, JIT-compiles it in
 * process instead. */
static bool forward_open(Program *p, Tensor **params, const Options *o, Forward *f, Diag *d) {
    const Graph *g = p->forward;
    memset(f, 0, sizeof *f);
    const Node *in = g->n_inputs == 1 ? &g->nodes[g->inputs[0]] : NULL;
    if (!in || in->dtype != DT_F32 || in->shape.rank < 2)
        return diag_error(d, p->model_loc, "%s.forward must take one input f32[B, ...] of images", p->model_name);
    for (int i = 0; i < g->n_outputs; i++)
        if (g->nodes[g->outputs[i]].dtype != DT_F32)
            return diag_error(d, p->model_loc, "%s.forward must return f32 values", p->model_name);
    f->batch = in->shape.dim[0];
    f->per = shape_numel(&in->shape) / f->batch;
    if (o->backend && !strcmp(o->backend, "llvm")) {
        if (!jit_forward_open(&f->jit, p, params, o, d)) return false;
    } else {
        if (!(f->dir = build_tempdir(d))) return false;
        Options bo = *o;
        bo.embed = bo.stats = bo.train = bo.c_only = false;
        bo.prefix = NULL;
        char *prefix = f->prefix, weights[4096 + 256];
        model_prefix(p->model_name, prefix, sizeof f->prefix);
        snprintf(weights, sizeof weights, "%s/%s.safetensors", f->dir, p->model_name);
        if (!build_model(p, params, &bo, f->dir, false, NULL, d) ||
            !(f->lib = compiled_open(f->dir, prefix, weights, d)) || !(f->fn = compiled_entry(f->lib, prefix, "forward", d)))
            return false;
    }
    f->x = malloc(sizeof(float) * (size_t)shape_numel(&in->shape));
    f->n_outs = g->n_outputs;
    f->outs = calloc((size_t)g->n_outputs + 1, sizeof *f->outs);
    if (!f->x || !f->outs) abort();
    for (int i = 0; i < g->n_outputs; i++)
        if (!(f->outs[i] = malloc(sizeof(float) * (size_t)shape_numel(&g->nodes[g->outputs[i]].shape)))) abort();
    return true;
}

static void forward_run(Forward *f) {
    const void *in[1] = {f->x};
    if (f->jit.fn) f->jit.fn((void *const *)in, (void *const *)f->outs, f->jit.params, f->jit.arena);
    else f->fn(in, (void *const *)f->outs);
}

/* ---- etch calibrate ---- */

int cmd_calibrate(const Options *o) {
    if (!o->data || !o->out) return usage_error("%s", "calibrate needs --data DIR and -o STATS.json");
    const char *method = o->method ? o->method : "minmax";
    long batches = o->batches > 0 ? o->batches : 16;
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = load_program(a, o, &d);
    Options fo = *o;
    fo.quantize = false;
    Tensor **params = p ? load_params(p, &fo, &d) : NULL;
    QuantLinear *layers = calloc(MAX_LAYERS, sizeof *layers);
    Hist *hist = NULL;
    CalibTensor *out = NULL;
    Forward f = {0};
    Images img = {0};
    int n = 0;
    bool ok = params != NULL;
    if (ok && !(n = quant_find_linears(p->forward, layers, MAX_LAYERS)))
        ok = diag_error(&d, p->model_loc, "%s has no Linear or Conv2d layer (matmul or conv2d by an f32 weight param) to calibrate",
                        p->model_name);
    /* the forward, plus every layer's input as an output (an input node is read from the batch itself) */
    Program cp = p ? *p : (Program){0};
    int *slot = calloc(MAX_LAYERS, sizeof *slot);
    if (ok) {
        cp.forward = graph_clone(a, p->forward, NULL);
        for (int i = 0; i < n; i++) {
            slot[i] = -1;
            if (cp.forward->nodes[layers[i].x].op == OP_INPUT) continue;
            slot[i] = cp.forward->n_outputs;
            graph_add_output(cp.forward, layers[i].x);
        }
        ok = forward_open(&cp, params, o, &f, &d) &&
             images_load(o->data, "train", f.per, batches > INT64_MAX / f.batch ? -1 : batches * f.batch, false, &img, &d);
    }
    if (ok) {
        hist = calloc((size_t)n, sizeof *hist);
        out = calloc((size_t)n, sizeof *out);
        if (!hist || !out) abort();
    }
    long done = 0;
    for (int64_t start = 0; ok && done < batches && start + f.batch <= img.n; start += f.batch, done++) {
        images_batch(&img, start, f.batch, f.x);
        forward_run(&f);
        for (int i = 0; ok && i < n; i++) {
            const Node *x = &p->forward->nodes[layers[i].x];
            const float *v = slot[i] < 0 ? f.x : f.outs[slot[i]];
            int64_t bad;
            if (!hist_add(&hist[i], v, shape_numel(&x->shape), &bad)) {
                char name[200];
                quant_input_name(p->forward, &layers[i], name, sizeof name);
                ok = diag_error_plain(&d, "calibration: '%s' took the value %g (element %lld of batch %ld): the "
                                      "model's weights or data are broken", name, v[bad], (long long)bad, done);
            }
        }
    }
    if (ok && done == 0) ok = diag_error_plain(&d, "%s: fewer training images than one batch", o->data);
    for (int i = 0; ok && i < n; i++) {
        const Node *x = &p->forward->nodes[layers[i].x];
        quant_input_name(p->forward, &layers[i], out[i].r.name, sizeof out[i].r.name);
        out[i].r.shape = x->shape;
        out[i].min = hist[i].min, out[i].max = hist[i].max;
        bool pct = !strcmp(method, "percentile");
        out[i].r.lo = pct ? fmax(hist[i].min, hist_quantile(&hist[i], PERCENTILE_TAIL) - hist[i].width) : hist[i].min;
        out[i].r.hi = pct ? fmin(hist[i].max, hist_quantile(&hist[i], 1 - PERCENTILE_TAIL)) : hist[i].max;
    }
    ok = ok && calib_write(o->out, p->model_name, method, done, out, n, &d);
    if (ok)
        printf("calibrated %d activation%s over %ld batch%s of %lld (%s) -> %s\n", n, n == 1 ? "" : "s", done,
               done == 1 ? "" : "es", (long long)f.batch, method, o->out);
    if (ok && o->stats) { /* the bound of docs/quantization.md: the C compiler is another process, not counted */
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("peak memory of etch calibrate: %.1f MiB (%lld images read)\n", (double)ru.ru_maxrss / 1024.0,
               (long long)img.n);
    }
    forward_close(&f);
    images_free(&img);
    free(slot);
    free(hist);
    free(out);
    free(layers);
    if (p) params_free(p->forward, params);
    diag_dispose(&d);
    arena_free(a);
    return ok ? 0 : 1;
}

/* ---- eval on the compiled forward ---- */

bool eval_compiled_images(const Options *o, Diag *d) {
    Arena *a = arena_new();
    Program *p = load_program(a, o, d);
    Tensor **params = p ? load_params(p, o, d) : NULL;
    Forward f = {0};
    Images img = {0};
    bool ok = params && forward_open(p, params, o, &f, d) && images_load(o->data, "t10k", f.per, o->limit, true, &img, d);
    const Node *y = ok ? &p->forward->nodes[p->forward->outputs[0]] : NULL;
    if (ok && (y->shape.rank != 2 || y->shape.dim[0] != f.batch))
        ok = diag_error(d, p->model_loc, "eval: %s.forward's first output must be logits f32[B, C]", p->model_name);
    int64_t n = ok && o->limit >= 0 && o->limit < img.n ? o->limit : img.n, correct = 0, batches = 0;
    double nll = 0, seconds = 0;
    for (int64_t start = 0; ok && start < n; start += f.batch, batches++) {
        images_batch(&img, start, f.batch, f.x);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        forward_run(&f);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        seconds += (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        int64_t C = y->shape.dim[1];
        for (int64_t b = 0; b < f.batch && start + b < n; b++) {
            const float *row = f.outs[0] + b * C;
            int label = ((const uint8_t *)img.labels.data)[start + b], best = 0;
            double mx = row[0], sum = 0;
            for (int64_t c = 1; c < C; c++) {
                if (row[c] > row[best]) best = (int)c;
                mx = fmax(mx, row[c]);
            }
            for (int64_t c = 0; c < C; c++) sum += exp(row[c] - mx);
            nll += mx + log(sum) - (label < C ? row[label] : 0);
            correct += best == label;
        }
    }
    if (ok)
        printf("Test accuracy: %.2f%%, mean NLL: %.4f (%lld examples%s)\n", n ? 100.0 * (double)correct / (double)n : 0,
               n ? nll / (double)n : 0, (long long)n, o->quantize ? ", int8" : "");
    if (ok && o->stats)
        printf("forward: %.4f ms per batch of %lld (%lld batches, one thread)\n", batches ? 1e3 * seconds / (double)batches : 0,
               (long long)f.batch, (long long)batches);
    forward_close(&f);
    images_free(&img);
    if (p) params_free(p->forward, params);
    arena_free(a);
    return ok;
}
