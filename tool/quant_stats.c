/* quant_stats.c: the calibration file `etch calibrate` writes and `--quantize
 * int8 --calib STATS.json` reads (docs/quantization.md), and the step that
 * quantizes a loaded program: the quantize pass run through the pass manager
 * with the file's ranges and the float weights, leaving the program's
 * forward and its params int8.
 *
 * The file is JSON: {"format": "etch-calibration-1", "model": NAME, "method":
 * M, "batches": N, "tensors": [{"name": "fc1.weight:input", "shape": [64,
 * 784], "min": a, "max": b, "lo": l, "hi": h}, ...]}. lo/hi are the range the
 * method chose (min/max for minmax). The reader is a small JSON parser of its
 * own, strict about structure; numbers go through strtod, so a NaN or an
 * infinity written into a range is read and then refused naming the tensor. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/params.h"
#include "passes/quantize.h"
#include "tool/pipeline.h"
#include "tool/quant_tool.h"

enum { MAX_RANGES = 256 };

bool calib_write(const char *path, const char *model, const char *method, long batches, const CalibTensor *t, int n,
                 Diag *d) {
    StrBuf b = {0};
    sb_printf(&b, "{\n  \"format\": \"etch-calibration-1\",\n  \"model\": \"%s\",\n  \"method\": \"%s\",\n"
              "  \"batches\": %ld,\n  \"tensors\": [", model, method, batches);
    for (int i = 0; i < n; i++) {
        sb_printf(&b, "%s\n    {\"name\": \"%s\", \"shape\": [", i ? "," : "", t[i].r.name);
        for (int k = 0; k < t[i].r.shape.rank; k++) sb_printf(&b, "%s%lld", k ? ", " : "", (long long)t[i].r.shape.dim[k]);
        sb_printf(&b, "], \"min\": %.17g, \"max\": %.17g, \"lo\": %.17g, \"hi\": %.17g}", t[i].min, t[i].max,
                  t[i].r.lo, t[i].r.hi);
    }
    sb_puts(&b, "\n  ]\n}\n");
    char err[1024];
    bool ok = etch_write_file_atomic(path, b.s, b.len, err, sizeof err) == 0 || diag_error_plain(d, "%s", err);
    sb_free(&b);
    return ok;
}

/* ---- reading ---- */

typedef struct Reader {
    const char *p, *end, *path;
    Diag *d;
    bool failed;
} Reader;

static bool rd_fail(Reader *r, const char *what) {
    if (!r->failed) diag_error_plain(r->d, "%s: not a calibration file (%s)", r->path, what);
    r->failed = true;
    return false;
}

static void skip_ws(Reader *r) {
    while (r->p < r->end && isspace((unsigned char)*r->p)) r->p++;
}

static bool eat(Reader *r, char c) {
    skip_ws(r);
    if (r->p < r->end && *r->p == c) return r->p++, true;
    return false;
}

/* A string without escapes (the writer writes none) into buf. */
static bool rd_string(Reader *r, char *buf, size_t n) {
    if (!eat(r, '"')) return rd_fail(r, "a string expected");
    size_t k = 0;
    while (r->p < r->end && *r->p != '"') {
        if (*r->p == '\\' || k + 1 >= n) return rd_fail(r, "a string too long or with escapes");
        buf[k++] = *r->p++;
    }
    buf[k] = 0;
    if (r->p == r->end) return rd_fail(r, "an unterminated string");
    r->p++;
    return true;
}

static bool rd_number(Reader *r, double *v) {
    skip_ws(r);
    char tmp[64];
    size_t k = 0;
    while (r->p + k < r->end && k + 1 < sizeof tmp && strchr("+-.0123456789eEnaNIifty", r->p[k])) k++;
    memcpy(tmp, r->p, k);
    tmp[k] = 0;
    char *e;
    *v = strtod(tmp, &e);
    if (!k || *e) return rd_fail(r, "a number expected");
    r->p += k;
    return true;
}

/* Skips a value of a key the reader does not use (strings and numbers only). */
static bool rd_skip(Reader *r) {
    skip_ws(r);
    char buf[512];
    double v;
    return r->p < r->end && *r->p == '"' ? rd_string(r, buf, sizeof buf) : rd_number(r, &v);
}

static bool rd_tensor(Reader *r, QuantRange *q) {
    if (!eat(r, '{')) return rd_fail(r, "a tensor object expected");
    bool has_name = false, has_lo = false, has_hi = false, has_shape = false;
    char key[64];
    do {
        if (!rd_string(r, key, sizeof key) || !eat(r, ':')) return rd_fail(r, "\"key\": value expected");
        if (!strcmp(key, "name")) has_name = rd_string(r, q->name, sizeof q->name);
        else if (!strcmp(key, "lo")) has_lo = rd_number(r, &q->lo);
        else if (!strcmp(key, "hi")) has_hi = rd_number(r, &q->hi);
        else if (!strcmp(key, "shape")) {
            if (!eat(r, '[')) return rd_fail(r, "shape: an array expected");
            q->shape.rank = 0;
            if (!eat(r, ']')) {
                do {
                    double v;
                    if (q->shape.rank == ETCH_MAX_RANK || !rd_number(r, &v) || !(v >= 1 && v < 1e15) || v != floor(v))
                        return rd_fail(r, "shape: positive integer dims, at most 8");
                    q->shape.dim[q->shape.rank++] = (int64_t)v;
                } while (eat(r, ','));
                if (!eat(r, ']')) return rd_fail(r, "shape: ']' expected");
            }
            has_shape = true;
        } else if (!rd_skip(r)) return false;
        if (r->failed) return false;
    } while (eat(r, ','));
    if (!eat(r, '}')) return rd_fail(r, "'}' expected");
    if (!has_name || !has_lo || !has_hi || !has_shape) return rd_fail(r, "a tensor needs name, shape, lo and hi");
    if (!isfinite(q->lo) || !isfinite(q->hi) || q->lo > q->hi)
        return diag_error_plain(r->d, "%s: the range of '%s' is [%g, %g]: not a finite interval", r->path, q->name,
                                q->lo, q->hi);
    return true;
}

QuantRange *calib_read(const char *path, int *n_out, Diag *d) {
    unsigned char *text;
    size_t len;
    char err[1024];
    if (etch_read_file(path, &text, &len, err, sizeof err)) return diag_error_plain(d, "%s", err), NULL;
    Reader r = {.p = (const char *)text, .end = (const char *)text + len, .path = path, .d = d};
    QuantRange *out = calloc(MAX_RANGES, sizeof *out);
    if (!out) abort();
    int n = 0;
    bool ok = eat(&r, '{'), format = false;
    char key[64], val[160];
    while (ok) {
        ok = rd_string(&r, key, sizeof key) && eat(&r, ':');
        if (ok && !strcmp(key, "tensors")) {
            ok = eat(&r, '[');
            if (ok && !eat(&r, ']')) {
                do {
                    if (n == MAX_RANGES) ok = rd_fail(&r, "more than 256 tensors");
                    else ok = rd_tensor(&r, &out[n++]);
                } while (ok && eat(&r, ','));
                ok = ok && (eat(&r, ']') || rd_fail(&r, "']' expected"));
            }
        } else if (ok && !strcmp(key, "format")) {
            ok = rd_string(&r, val, sizeof val);
            format = ok && !strcmp(val, "etch-calibration-1");
        } else if (ok) ok = rd_skip(&r);
        if (!ok || !eat(&r, ',')) break;
    }
    ok = ok && (eat(&r, '}') || rd_fail(&r, "'}' expected"));
    skip_ws(&r);
    ok = ok && (r.p == r.end || rd_fail(&r, "text after the object"));
    ok = ok && (format || rd_fail(&r, "no \"format\": \"etch-calibration-1\""));
    if (!ok && !r.failed && d->n_errors == 0) rd_fail(&r, "malformed JSON");
    free(text);
    if (!ok) {
        free(out);
        return NULL;
    }
    *n_out = n;
    return out;
}

bool qat_program(Program *p, const Options *o, Diag *d) {
    if (!require_train(p, d)) return false;
    int n = 0;
    QuantRange *ranges = calib_read(o->calib, &n, d);
    QuantRequest q = {.ranges = ranges, .n_ranges = n, .calib_path = o->calib};
    bool ok = ranges != NULL;
    for (int i = 0; ok && i < p->train->n_steps; i++) {
        TrainStep *st = &p->train->steps[i];
        ok = (st->loss = quant_fake_quantize(st->loss, &q, d)) != NULL;
    }
    free(ranges);
    return ok;
}

bool quantize_program(Program *p, Tensor ***params, const Options *o, Diag *d) {
    int n = 0;
    QuantRange *ranges = o->calib ? calib_read(o->calib, &n, d) : NULL;
    if (!o->calib) diag_error_plain(d, "--quantize int8 needs --calib STATS.json (from etch calibrate)");
    QuantRequest q = {.ranges = ranges, .n_ranges = n, .calib_path = o->calib, .values = *params};
    Graph *g = NULL;
    if (ranges) {
        PassOptions po = pass_options(o);
        po.quant = &q;
        const char *names[] = {"quantize"};
        g = passes_run_list(graph_clone(p->forward->arena, p->forward, NULL), names, 1, &po, d);
    }
    free(ranges);
    if (!g) {
        if (q.values == *params) params_free(p->forward, *params); /* else: freed by the pass */
        *params = NULL;
        sb_free(&q.report);
        return false;
    }
    p->forward = g;
    *params = q.values;
    if (o->stats && q.report.s) fputs(q.report.s, stdout);
    sb_free(&q.report);
    return true;
}
