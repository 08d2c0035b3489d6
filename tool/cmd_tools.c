/* cmd_tools.c: small array utilities: make-input (an input for a model's
 * forward: seeded random values or images from an IDX file), compare
 * (element-wise, with a tolerance) and show (print an array or the argmax of
 * each row). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/params.h"
#include "tool/commands.h"
#include "tool/pipeline.h"

/* make-input --idx: images o->index.. of an IDX file of unsigned bytes,
 * scaled to [0, 1], fill the input t (of node n). Every count is checked
 * before it divides or indexes: files with no images or empty images, an
 * input the images do not tile, an --index past the last image. */
static bool fill_from_idx(const Options *o, const Node *n, Tensor *t, Diag *d) {
    etch_array img;
    char err[1024], desc[128];
    if (etch_idx_read(o->idx, &img, err, sizeof err)) return diag_error_plain(d, "%s", err);
    etch_array_describe(desc, sizeof desc, img.dtype, img.rank, img.dim);
    int64_t numel = tensor_numel(t), count = img.rank ? img.dim[0] : 0;
    int64_t per = count ? etch_array_numel(&img) / count : 0, need = per ? numel / per : 0;
    bool ok = false;
    if (img.dtype != ETCH_U8)
        diag_error_plain(d, "%s: expected unsigned byte images, got %s", o->idx, etch_dtype_name(img.dtype));
    else if (img.rank < 2)
        diag_error_plain(d, "%s: holds %s, not images (at least two dimensions: count, pixels...)", o->idx, desc);
    else if (count == 0)
        diag_error_plain(d, "%s: holds %s: no images", o->idx, desc);
    else if (per == 0)
        diag_error_plain(d, "%s: holds %s: images of zero pixels", o->idx, desc);
    else if (numel % per != 0)
        diag_error_plain(d, "%s: images of %lld pixels do not fill input '%s' of %lld elements", o->idx,
                         (long long)per, n->attr.name, (long long)numel);
    else if (need > count)
        diag_error_plain(d, "%s: input '%s' takes %lld images, the file has %lld", o->idx, n->attr.name,
                         (long long)need, (long long)count);
    else if (o->index > count - need)
        diag_error_plain(d, "%s: --index %ld is out of range: the file has %lld images and input '%s' takes %lld "
                            "from there (--index 0..%lld)",
                         o->idx, o->index, (long long)count, n->attr.name, (long long)need, (long long)(count - need));
    else
        ok = true;
    for (int64_t i = 0; ok && i < numel; i++) tensor_set(t, i, ((const uint8_t *)img.data)[o->index * per + i] / 255.0);
    etch_array_free(&img);
    return ok;
}

int cmd_make_input(const Options *o) {
    if (!o->out) return usage_error("%s", "make-input needs -o IN.npy");
    if (o->index && !o->idx) return usage_error("%s", "--index N picks an image of --idx IMAGES, which is not given");
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = load_program(a, o, &d);
    bool ok = p != NULL;
    if (ok && p->forward->n_inputs != 1)
        ok = diag_error(&d, p->model_loc, "make-input needs a forward with one input, %s.forward has %d",
                        p->model_name, p->forward->n_inputs);
    if (ok) {
        const Node *n = &p->forward->nodes[p->forward->inputs[0]];
        Tensor *t = tensor_new(n->dtype, n->shape);
        int64_t numel = tensor_numel(t);
        if (o->idx) {
            ok = fill_from_idx(o, n, t, &d);
        } else {
            uint32_t r[4];
            for (int64_t i = 0; i < numel; i++) {
                etch_philox4x32(o->seed, 1, (uint64_t)i, r);
                tensor_set(t, i, etch_u01(r[0]));
            }
        }
        ok = ok && write_tensor(o->out, t, &d);
        tensor_free(t);
    }
    diag_dispose(&d);
    arena_free(a);
    return ok ? 0 : 1;
}

/* `etch compare A.npy B.npy [--rtol R]`: element-wise comparison of two arrays
 * of the same dtype and shape; fails when |a - b| > rtol * |b| + rtol * 1e-2
 * anywhere. Prints the largest absolute and relative differences. Equal
 * values match, infinities included (inf - inf would be NaN); NaN matches
 * NaN at the same place, as numpy.testing.assert_allclose does by default:
 * the two sides computed the same non-number. NaN against a number, or an
 * infinity against anything else, is a mismatch. */
int cmd_compare(const Options *o) {
    const char *const *files = o->files;
    double rtol = o->rtol;
    etch_array x[2];
    char err[1024];
    for (int i = 0; i < 2; i++)
        if (etch_npy_read(files[i], &x[i], err, sizeof err)) {
            fprintf(stderr, "etch: error: %s\n", err);
            if (i) etch_array_free(&x[0]);
            return 1;
        }
    int rc = 0;
    bool same = x[0].dtype == x[1].dtype && x[0].rank == x[1].rank;
    for (int k = 0; same && k < x[0].rank; k++) same = x[0].dim[k] == x[1].dim[k];
    if (!same) {
        char a[128], b[128];
        etch_array_describe(a, sizeof a, x[0].dtype, x[0].rank, x[0].dim);
        etch_array_describe(b, sizeof b, x[1].dtype, x[1].rank, x[1].dim);
        fprintf(stderr, "etch: error: %s holds %s but %s holds %s\n", files[0], a, files[1], b);
        rc = 1;
    } else {
        DType t = ir_dtype_from_rt(x[0].dtype);
        Shape sh = {.rank = x[0].rank};
        memcpy(sh.dim, x[0].dim, sizeof sh.dim);
        Tensor *a = tensor_wrap(t, sh, x[0].data), *b = tensor_wrap(t, sh, x[1].data);
        double max_abs = 0, max_rel = 0;
        int64_t bad = 0, numel = tensor_numel(a);
        for (int64_t i = 0; i < numel; i++) {
            double u = tensor_get(a, i), v = tensor_get(b, i), diff = fabs(u - v);
            if (u == v || (isnan(u) && isnan(v))) continue; /* also inf == inf, whose difference is NaN */
            /* a non-finite value that is not equal to the other side is a mismatch (rtol * inf would excuse it) */
            if (!isfinite(u) || !isfinite(v) || !(diff <= rtol * fabs(v) + rtol * 1e-2)) bad++;
            max_abs = fmax(max_abs, diff);
            if (v != 0) max_rel = fmax(max_rel, diff / fabs(v));
        }
        printf("%lld elements, max abs diff %.3g, max rel diff %.3g, %lld beyond rtol %g\n", (long long)numel, max_abs,
               max_rel, (long long)bad, rtol);
        rc = bad ? 1 : 0;
        tensor_free(a);
        tensor_free(b);
    }
    etch_array_free(&x[0]);
    etch_array_free(&x[1]);
    return rc;
}

/* `etch show A.npy [--argmax]`: the array's type and values (at most 64), or
 * with --argmax the index of the largest value along the last axis, per row. */
int cmd_show(const Options *o) {
    const char *file = o->file;
    bool argmax = o->argmax;
    etch_array x;
    char err[1024], desc[128];
    if (etch_npy_read(file, &x, err, sizeof err)) {
        fprintf(stderr, "etch: error: %s\n", err);
        return 1;
    }
    DType t = ir_dtype_from_rt(x.dtype);
    Shape sh = {.rank = x.rank};
    memcpy(sh.dim, x.dim, sizeof sh.dim);
    Tensor *a = tensor_wrap(t, sh, x.data);
    int64_t numel = tensor_numel(a), row = x.rank ? x.dim[x.rank - 1] : 1;
    if (argmax) {
        for (int64_t r = 0; row && r < numel / row; r++) {
            int64_t best = 0;
            for (int64_t k = 1; k < row; k++)
                if (tensor_get(a, r * row + k) > tensor_get(a, r * row + best)) best = k;
            printf("%lld\n", (long long)best);
        }
    } else {
        printf("%s\n", etch_array_describe(desc, sizeof desc, x.dtype, x.rank, x.dim));
        for (int64_t i = 0; i < numel && i < 64; i++) printf("%s%.6g", i ? (i % row ? " " : "\n") : "", tensor_get(a, i));
        printf("%s\n", numel > 64 ? " ..." : "");
    }
    tensor_free(a);
    etch_array_free(&x);
    return 0;
}
