/* train/arrays.c: data as NumPy arrays named after the train block's inputs
 * (--data DIR holding x.npy and y.npy): any dtype and shape the train step
 * declares, so regression and other non-image models train; every file is
 * checked against the step's declaration before training; the held-out
 * report is the MSE of a regression output or the accuracy of logits. */

/* ---- arrays (--data DIR with x.npy) -------------------------------------------
 * DIR/x.npy and DIR/y.npy hold all the examples: x's array has the train
 * block's `x: T[B, ...]` type with the batch dim B replaced by the number of
 * examples N (same dtype, same other dims), y's likewise, with the same N.
 * DIR/x_test.npy and DIR/y_test.npy, when present (both or neither), are the
 * evaluation set, under the same rules; without them the last tenth of x/y
 * (N/10 examples, rounded down) is held out and the rest trained on. Epochs,
 * shuffling, resuming and checkpoints are the image loop's (train_epochs).
 * The report: for float y, the mean squared error of the first forward
 * output with y's dtype and as many values per example ("Test MSE"); for
 * integer class labels y: [N], the accuracy and mean NLL of the first f32
 * [B, C] output (labels must be in [0, C), checked in every file). */

/* Examples as rows of bytes, possibly a view into another set's arrays (the
 * held-out split). */
typedef struct ArraySet {
    const char *x, *y;
    int64_t n;
    size_t x_row, y_row; /* bytes per example */
} ArraySet;

/* Where the arrays live: what load_arrays read, freed by arrays_free. */
typedef struct ArrayData {
    etch_array x, y, x_test, y_test;
    ArraySet train, test;
    int has_test_files;
} ArrayData;

/* DIR holds arrays rather than IDX files: DIR/x.npy exists. */
static int arrays_dir(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/x.npy", dir);
    return access(path, F_OK) == 0;
}

/* "f32[N,3]": want's type with its batch dim written N. */
static void describe_examples(char *buf, size_t n, const etch_tensor_info *want) {
    size_t k = (size_t)snprintf(buf, n, "%s[N", etch_dtype_name(want->dtype));
    for (int d = 1; d < want->rank && k < n; d++) k += (size_t)snprintf(buf + k, n - k, ",%lld", (long long)want->dim[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* Reads DIR/NAME.npy into out, checked against want (the train step's input
 * NAME): same dtype, same rank, same dims after the first, which counts the
 * examples (at least one). */
static int load_input_array(const char *dir, const char *name, const etch_tensor_info *want, etch_array *out,
                            char *err, size_t errlen) {
    char path[4096], expected[160], found[160], declared[160];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    if (etch_npy_read(path, out, err, errlen)) return -1;
    int ok = out->dtype == want->dtype && out->rank == want->rank && out->rank >= 1 && out->dim[0] >= 1;
    for (int d = 1; ok && d < want->rank; d++) ok = out->dim[d] == want->dim[d];
    if (ok) return 0;
    describe_examples(expected, sizeof expected, want);
    etch_array_describe(found, sizeof found, out->dtype, out->rank, out->dim);
    etch_array_describe(declared, sizeof declared, want->dtype, want->rank, want->dim);
    snprintf(err, errlen, "%s: expected %s (the train block's %s: %s, its first dim the number of examples N >= 1), "
             "found %s", path, expected, want->name, declared, found);
    etch_array_free(out);
    return -1;
}

/* The forward output the report reads (see the section comment): *mse
 * (an output to compare with float y) or *logits (f32 [B, C] for integer
 * labels y: [B]); -1 where there is none. */
static void arrays_pick(int *mse, int *logits) {
    const etch_tensor_info *yi = &etch_step_inputs[0][1], *fi = &ETCH_MODEL(forward_inputs)[0];
    int64_t y_per = 1;
    for (int d = 1; d < yi->rank; d++) y_per *= yi->dim[d];
    int float_y = yi->dtype == ETCH_F32 || yi->dtype == ETCH_F64;
    *mse = *logits = -1;
    for (int i = 0; i < ETCH_FORWARD_N_OUTPUTS; i++) {
        const etch_tensor_info *o = &ETCH_MODEL(forward_outputs)[i];
        int64_t per = 1;
        for (int d = 1; d < o->rank; d++) per *= o->dim[d];
        if (o->rank < 1 || o->dim[0] != fi->dim[0]) continue;
        if (float_y && *mse < 0 && o->dtype == yi->dtype && per == y_per) *mse = i;
        if (!float_y && yi->rank == 1 && *logits < 0 && o->dtype == ETCH_F32 && o->rank == 2) *logits = i;
    }
}

/* The first label of y outside [0, classes) in path: an error. */
static int check_labels(const etch_array *y, const char *dir, const char *name, int64_t classes, char *err,
                        size_t errlen) {
    for (int64_t i = 0; i < y->dim[0]; i++) {
        int64_t v = y->dtype == ETCH_I64 ? ((const int64_t *)y->data)[i] : ((const int32_t *)y->data)[i];
        if (v < 0 || v >= classes) {
            snprintf(err, errlen, "%s/%s.npy: label %lld is %lld, outside the model's %lld classes (0 to %lld)", dir,
                     name, (long long)i, (long long)v, (long long)classes, (long long)classes - 1);
            return -1;
        }
    }
    return 0;
}

static ArraySet array_set(const etch_array *x, const etch_array *y, int64_t first, int64_t n) {
    size_t xr = etch_array_nbytes(x) / (size_t)x->dim[0], yr = etch_array_nbytes(y) / (size_t)y->dim[0];
    return (ArraySet){(const char *)x->data + (size_t)first * xr, (const char *)y->data + (size_t)first * yr, n, xr, yr};
}

static void arrays_free(ArrayData *d) {
    etch_array_free(&d->x);
    etch_array_free(&d->y);
    etch_array_free(&d->x_test);
    etch_array_free(&d->y_test);
}

/* Reads and checks DIR's arrays into d: training and evaluation sets. */
static int load_arrays(const char *dir, ArrayData *d, char *err, size_t errlen) {
    const etch_tensor_info *xi = &etch_step_inputs[0][0], *yi = &etch_step_inputs[0][1];
    char path[4096];
    memset(d, 0, sizeof *d);
    snprintf(path, sizeof path, "%s/x_test.npy", dir);
    int has_x_test = access(path, F_OK) == 0;
    snprintf(path, sizeof path, "%s/y_test.npy", dir);
    if (has_x_test != (access(path, F_OK) == 0)) {
        snprintf(err, errlen, "%s: has %s but not %s (the evaluation set takes both)", dir,
                 has_x_test ? "x_test.npy" : "y_test.npy", has_x_test ? "y_test.npy" : "x_test.npy");
        return -1;
    }
    d->has_test_files = has_x_test;
    if (load_input_array(dir, "x", xi, &d->x, err, errlen) || load_input_array(dir, "y", yi, &d->y, err, errlen) ||
        (has_x_test && (load_input_array(dir, "x_test", xi, &d->x_test, err, errlen) ||
                        load_input_array(dir, "y_test", yi, &d->y_test, err, errlen))))
        return arrays_free(d), -1;
    const etch_array *xs[2] = {&d->x, &d->x_test}, *ys[2] = {&d->y, &d->y_test};
    static const char *const names[2][2] = {{"x", "y"}, {"x_test", "y_test"}};
    int mse, logits;
    arrays_pick(&mse, &logits);
    for (int k = 0; k < 1 + has_x_test; k++) {
        if (xs[k]->dim[0] != ys[k]->dim[0]) {
            snprintf(err, errlen, "%s: %s.npy has %lld examples, %s.npy %lld; they must agree", dir, names[k][0],
                     (long long)xs[k]->dim[0], names[k][1], (long long)ys[k]->dim[0]);
            return arrays_free(d), -1;
        }
        if (logits >= 0 && check_labels(ys[k], dir, names[k][1], ETCH_MODEL(forward_outputs)[logits].dim[1], err, errlen))
            return arrays_free(d), -1;
    }
    int64_t n = d->x.dim[0], held = has_x_test ? 0 : n / 10;
    d->train = array_set(&d->x, &d->y, 0, n - held);
    d->test = has_x_test ? array_set(&d->x_test, &d->y_test, 0, d->x_test.dim[0]) : array_set(&d->x, &d->y, n - held, held);
    return 0;
}

static void fill_array_batch(const void *set, const int64_t *order, int64_t start, int64_t batch, void *x, void *y) {
    const ArraySet *s = set;
    for (int64_t b = 0; b < batch; b++) {
        int64_t ex = order ? order[start + b] : start + b;
        memcpy((char *)x + (size_t)b * s->x_row, s->x + (size_t)ex * s->x_row, s->x_row);
        memcpy((char *)y + (size_t)b * s->y_row, s->y + (size_t)ex * s->y_row, s->y_row);
    }
}

/* The report on the evaluation set s (see the section comment). */
static int arrays_report(const ArraySet *s, int has_test_files) {
    const etch_tensor_info *fi = &ETCH_MODEL(forward_inputs)[0], *xi = &etch_step_inputs[0][0];
    const etch_tensor_info *yi = &etch_step_inputs[0][1];
    int mse, logits;
    arrays_pick(&mse, &logits);
    const char *what = has_test_files ? "x_test.npy" : "the held-out tenth of x.npy";
    int64_t f_numel = 1, x_numel = 1;
    for (int d = 0; d < fi->rank; d++) f_numel *= fi->dim[d];
    for (int d = 0; d < xi->rank; d++) x_numel *= xi->dim[d];
    if (fi->dtype != xi->dtype || f_numel != x_numel)
        return fprintf(stderr, "note: no test report: the forward's input is not the train block's x\n"), 0;
    if (s->n == 0) return fprintf(stderr, "note: no test report: %s has no examples (fewer than 10 in x.npy)\n", what), 0;
    if (mse < 0 && logits < 0)
        return fprintf(stderr, "note: no test report: no forward output is a prediction of y (float y: an output of "
                               "its dtype with its values per example; labels: f32[B, C] logits)\n"), 0;
    int64_t batch = fi->dim[0], classes = logits >= 0 ? ETCH_MODEL(forward_outputs)[logits].dim[1] : 0;
    int64_t y_per = (int64_t)(s->y_row / etch_dtype_size(yi->dtype)), correct = 0;
    etch_array x, y;
    Outputs out;
    etch_array_alloc(&x, xi->dtype, xi->rank, xi->dim);
    etch_array_alloc(&y, yi->dtype, yi->rank, yi->dim);
    outputs_alloc(&out);
    double se = 0, nll = 0;
    for (int64_t start = 0; start < s->n; start += batch) {
        int64_t count = s->n - start < batch ? s->n - start : batch;
        memset(x.data, 0, etch_array_nbytes(&x));
        fill_array_batch(s, NULL, start, count, x.data, y.data);
        run_forward(x.data, &out);
        for (int64_t k = 0; mse >= 0 && k < count * y_per; k++) {
            double want = yi->dtype == ETCH_F32 ? ((const float *)y.data)[k] : ((const double *)y.data)[k];
            double have = yi->dtype == ETCH_F32 ? ((const float *)out.a[mse].data)[k] : ((const double *)out.a[mse].data)[k];
            se += (have - want) * (have - want);
        }
        for (int64_t b = 0; logits >= 0 && b < count; b++) {
            int64_t label = yi->dtype == ETCH_I64 ? ((const int64_t *)y.data)[b] : ((const int32_t *)y.data)[b];
            correct += logits_row((const float *)out.a[logits].data + b * classes, classes, label, &nll);
        }
    }
    if (mse >= 0) printf("Test MSE: %.6f (%lld examples of %s)\n", se / ((double)s->n * (double)y_per), (long long)s->n, what);
    if (logits >= 0)
        printf("Test accuracy: %.2f%%, mean NLL: %.4f (%lld examples of %s)\n", 100.0 * (double)correct / (double)s->n,
               nll / (double)s->n, (long long)s->n, what);
    etch_array_free(&x);
    etch_array_free(&y);
    outputs_free(&out);
    return 0;
}

/* --eval --data DIR (arrays): the report of the given weights. */
static int eval_arrays(const Args *a) {
    char err[1024];
    ArrayData d;
    if (load_arrays(a->data, &d, err, sizeof err)) return fail(err);
    int rc = ETCH_MODEL(load)(a->weights, 0, err, sizeof err) ? fail(err) : arrays_report(&d.test, d.has_test_files);
    arrays_free(&d);
    return rc;
}

/* Training on arrays (see the section comment). */
static int train_arrays(const Args *a) {
    const char *weights = a->init ? a->init : a->resume;
    char err[1024], path[4096];
    ArrayData d;
    remove_stale_temps(a);
    if (load_arrays(a->data, &d, err, sizeof err)) return fail(err);
    int status = load_training(a, weights, err, sizeof err) ? fail(err) : 0;
    Batches b = {.n = d.train.n, .fill = fill_array_batch, .set = &d.train};
    if (!status) status = train_epochs(a, weights, &b, path, sizeof path);
    if (!status && !dp_rank) status = arrays_report(&d.test, d.has_test_files); /* rank 0 reports */
    if (!status) printf("Weights written to %s\n", path);
    arrays_free(&d);
    return status;
}
