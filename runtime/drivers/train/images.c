/* train/images.c: image classification (and reconstruction) data: IDX
 * files read into splits, shuffled batches, the training loop over epochs, and
 * the test-split report (accuracy and NLL, or reconstruction MSE and a PNG). */

/* ---- images (--data) ----------------------------------------------------------
 * IDX files as MNIST and Fashion-MNIST ship them (train-images-idx3-ubyte,
 * train-labels-idx1-ubyte, t10k-*; gzip-compressed or not), pixels scaled to
 * [0, 1] as byte/255 (torchvision's ToTensor). Each epoch takes the training
 * set in an order shuffled by Philox keyed by (seed, epoch), so a resumed run
 * sees the same batches as an uninterrupted one; the last partial batch is
 * dropped (the step's shapes are static). After every epoch the program writes
 * the checkpoint; at the end it reports accuracy and mean NLL on the test
 * split for a model that returns logits, and, for a model that reconstructs
 * its input (an autoencoder: one output value per input value), the
 * reconstruction MSE and OUTDIR/reconstructions.png. A forward returning
 * several tensors is evaluated on those outputs picked by shape (see
 * pick_outputs): a classifier with a decoder head gets both reports. */

typedef struct Split {
    etch_array images, labels; /* u8 [n, rows, cols], u8 [n] */
    int64_t n, per;            /* examples, values per example */
} Split;

/* Finds DIR/BASE or DIR/BASE.gz (its path goes into path). */
static int load_idx(const char *dir, const char *base, etch_array *out, char *path, size_t n, char *err,
                    size_t errlen) {
    snprintf(path, n, "%s/%s", dir, base);
    if (access(path, R_OK) != 0) snprintf(path, n, "%s/%s.gz", dir, base);
    return etch_idx_read(path, out, err, errlen);
}

/* The first label outside [0, classes), or -1 when all are class ids
 * (classes 0: the labels are not class ids, nothing to check). */
static int64_t bad_label(const etch_array *labels, int64_t classes) {
    const uint8_t *lb = labels->data;
    for (int64_t i = 0; classes > 0 && i < labels->dim[0]; i++)
        if (lb[i] >= classes) return i;
    return -1;
}

/* Reads DIR/PREFIX-images-idx3-ubyte and its labels (each maybe .gz) into s,
 * checked against the model: need_per values per image, labels below classes. */
static int load_split(const char *dir, const char *prefix, int64_t need_per, int64_t classes, Split *s, char *err,
                      size_t errlen) {
    char img[256], lab[256], lab_path[4096];
    snprintf(img, sizeof img, "%s-images-idx3-ubyte", prefix);
    snprintf(lab, sizeof lab, "%s-labels-idx1-ubyte", prefix);
    memset(s, 0, sizeof *s);
    if (load_idx(dir, img, &s->images, lab_path, sizeof lab_path, err, errlen)) return -1;
    if (load_idx(dir, lab, &s->labels, lab_path, sizeof lab_path, err, errlen)) {
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
    int64_t bad = why ? -1 : bad_label(&s->labels, classes);
    if (bad >= 0) {
        snprintf(err, errlen, "%s: label %lld is %u, outside the model's %lld classes (0 to %lld)", lab_path,
                 (long long)bad, ((const uint8_t *)s->labels.data)[bad], (long long)classes, (long long)classes - 1);
        why = err;
    }
    if (why) {
        if (why != err) snprintf(err, errlen, "%s/%s: %s", dir, img, why);
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

/* The outputs the image evaluation reads, picked by shape among the
 * forward's (a forward may return several): recon, the first f32 output with
 * one value per input value ([B, ...] with as many values per example as an
 * image has); logits, the first f32[B, C] output that is not image-shaped.
 * -1 where there is none. The further image-shaped outputs (a VAE's samples
 * decoded from the prior) are more rows of the PNG grid. */
typedef struct Picked {
    int logits, recon;
    int images[ETCH_FORWARD_N_OUTPUTS]; /* the image-shaped outputs after recon */
    int n_images;
} Picked;

static Picked pick_outputs(int64_t per) {
    const etch_tensor_info *xi = &ETCH_MODEL(forward_inputs)[0];
    Picked p = {.logits = -1, .recon = -1};
    for (int i = 0; i < ETCH_FORWARD_N_OUTPUTS; i++) {
        const etch_tensor_info *oi = &ETCH_MODEL(forward_outputs)[i];
        int64_t out_per = 1;
        for (int k = 1; k < oi->rank; k++) out_per *= oi->dim[k];
        if (oi->dtype != ETCH_F32 || oi->rank < 1 || oi->dim[0] != xi->dim[0]) continue;
        if (out_per == per && p.recon < 0) p.recon = i;
        else if (out_per == per) p.images[p.n_images++] = i;
        else if (oi->rank == 2 && p.logits < 0) p.logits = i;
    }
    return p;
}

/* One example's logits row against its label: adds the negative
 * log-likelihood of the label under softmax to *nll; 1 when the label is
 * the arg max. (Also the .npy data's classification report, arrays.c.) */
static int logits_row(const float *row, int64_t classes, int64_t label, double *nll) {
    int64_t best = 0;
    double mx = row[0], sum = 0;
    for (int64_t c = 1; c < classes; c++)
        if (row[c] > row[best]) best = c;
    for (int64_t c = 0; c < classes; c++) mx = fmax(mx, row[c]);
    for (int64_t c = 0; c < classes; c++) sum += exp(row[c] - mx);
    *nll += mx + log(sum) - row[label];
    return best == label;
}

/* The test-split report of the picked outputs over a split: accuracy and mean
 * negative log-likelihood of the logits; mean squared error of the
 * reconstructions and, when png is set, a PNG grid of the first 8 examples
 * (top row) above their reconstructions (second row), then a row per further
 * image-shaped output, like torchvision's make_grid/save_image. */
typedef struct Report {
    double accuracy, nll, mse;
} Report;

static int evaluate(const Split *s, Picked pick, Report *r, const char *png, char *err, size_t errlen) {
    const etch_tensor_info *xi = &ETCH_MODEL(forward_inputs)[0];
    int64_t batch = xi->dim[0], classes = pick.logits >= 0 ? ETCH_MODEL(forward_outputs)[pick.logits].dim[1] : 0;
    etch_array x, y;
    Outputs out;
    etch_array_alloc(&x, ETCH_F32, xi->rank, xi->dim);
    etch_array_alloc(&y, ETCH_I64, 1, (int64_t[]){batch});
    outputs_alloc(&out);
    int64_t correct = 0;
    double total_nll = 0, total_se = 0;
    int rows = s->images.rank >= 3 ? (int)s->images.dim[1] : 1, cols = (int)(s->per / rows), shown = 8, pad = 2;
    int n_rows = 2 + pick.n_images, gw = shown * (cols + pad) + pad, gh = n_rows * (rows + pad) + pad, rc = 0;
    unsigned char *grid = pick.recon >= 0 && png ? calloc((size_t)gw * (size_t)gh, 1) : NULL;
    for (int64_t start = 0; start < s->n; start += batch) {
        int64_t count = s->n - start < batch ? s->n - start : batch;
        fill_batch(s, NULL, start, count, batch, x.data, y.data, ETCH_I64);
        run_forward(x.data, &out);
        for (int64_t b = 0; pick.logits >= 0 && b < count; b++)
            correct += logits_row((const float *)out.a[pick.logits].data + b * classes, classes,
                                  ((int64_t *)y.data)[b], &total_nll);
        const float *xs = x.data, *rs = pick.recon >= 0 ? out.a[pick.recon].data : NULL;
        for (int64_t b = 0; rs && b < count; b++)
            for (int64_t k = 0; k < s->per; k++) {
                double d = rs[b * s->per + k] - xs[b * s->per + k];
                total_se += d * d;
            }
        for (int row = 0; start == 0 && grid && row < n_rows; row++) { /* inputs, reconstructions, the rest */
            const float *src = row == 0 ? xs : row == 1 ? rs : out.a[pick.images[row - 2]].data;
            for (int64_t b = 0; b < count && b < shown; b++)
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < cols; c++) {
                        float v = src[b * s->per + r * cols + c];
                        int gx = pad + (int)b * (cols + pad) + c, gy = pad + row * (rows + pad) + r;
                        grid[(size_t)gy * (size_t)gw + (size_t)gx] = (unsigned char)(fminf(fmaxf(v, 0), 1) * 255 + 0.5f);
                    }
        }
    }
    r->accuracy = s->n ? (double)correct / (double)s->n : 0;
    r->nll = s->n ? total_nll / (double)s->n : 0;
    r->mse = s->n ? total_se / ((double)s->n * (double)s->per) : 0;
    if (grid) rc = etch_png_write_gray(png, gw, gh, grid, err, errlen);
    free(grid);
    etch_array_free(&x);
    etch_array_free(&y);
    outputs_free(&out);
    return rc;
}

/* Prints the test-split report: accuracy and NLL when the forward returns
 * logits, MSE (and the PNG grid) when it returns a reconstruction; both for
 * a forward that returns both. */
static int report(const Split *test, int64_t per, const char *png, char *err, size_t errlen) {
    Picked pick = pick_outputs(per);
    Report r;
    if (evaluate(test, pick, &r, pick.recon >= 0 ? png : NULL, err, errlen)) return -1;
    if (pick.logits >= 0)
        printf("Test accuracy: %.2f%%, mean NLL: %.4f (%lld examples)\n", 100 * r.accuracy, r.nll, (long long)test->n);
    if (pick.recon >= 0) {
        printf("Test reconstruction MSE: %.6f (%lld examples)\n", r.mse, (long long)test->n);
        if (png && !pick.n_images) printf("Inputs (top) and reconstructions (bottom) written to %s\n", png);
        else if (png) printf("Inputs (top), reconstructions and %d more image output%s (one row each) written to %s\n",
                             pick.n_images, pick.n_images > 1 ? "s" : "", png);
    }
    return 0;
}

/* A generator (a GAN's G): a forward without inputs whose first f32 output
 * has per values per example (an image each). -1 when the forward is not one. */
static int generator_output(int64_t per) {
    for (int i = 0; ETCH_FORWARD_N_INPUTS == 0 && i < ETCH_FORWARD_N_OUTPUTS; i++) {
        const etch_tensor_info *oi = &ETCH_MODEL(forward_outputs)[i];
        int64_t out_per = 1;
        for (int k = 1; k < oi->rank; k++) out_per *= oi->dim[k];
        if (oi->dtype == ETCH_F32 && oi->rank >= 1 && out_per == per) return i;
    }
    return -1;
}

static int sample_rows; /* the images' rows (the IDX files'), for write_samples */

/* A generator's outputs as a grid PNG at path: up to 64 images, 8 a row,
 * values clamped to [0, 1] (torchvision's save_image of make_grid). */
static int samples_png(const char *path, int64_t per, int rows) {
    int gen = generator_output(per), pad = 2;
    Outputs out;
    outputs_alloc(&out);
    run_forward(NULL, &out);
    const etch_tensor_info *oi = &ETCH_MODEL(forward_outputs)[gen];
    int n = oi->dim[0] < 64 ? (int)oi->dim[0] : 64, cols = (int)(per / rows), across = n < 8 ? n : 8;
    int down = (n + 7) / 8, gw = across * (cols + pad) + pad, gh = down * (rows + pad) + pad;
    unsigned char *grid = calloc((size_t)gw * (size_t)gh, 1);
    const float *v = out.a[gen].data;
    for (int i = 0; grid && i < n; i++)
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) {
                size_t gy = (size_t)(pad + i / 8 * (rows + pad) + r), gx = (size_t)(pad + i % 8 * (cols + pad) + c);
                grid[gy * (size_t)gw + gx] = (unsigned char)(fminf(fmaxf(v[i * per + r * cols + c], 0), 1) * 255 + 0.5f);
            }
    char err[1024];
    sigset_t old;
    signals_hold(&old);
    int rc = grid ? etch_png_write_gray(path, gw, gh, grid, err, sizeof err) : (snprintf(err, sizeof err, "out of memory"), 1);
    signals_release(&old);
    free(grid);
    outputs_free(&out);
    return rc ? fail(err) : 0;
}

/* After each epoch of a generator's training: OUTDIR/samples-N.png. */
static int write_samples(const Args *a, long long epoch) {
    char path[4096];
    if (dp_rank) return 0;
    snprintf(path, sizeof path, "%s/samples-%lld.png", a->out, epoch);
    const etch_tensor_info *xi = &etch_step_inputs[0][0];
    int64_t per = 1;
    for (int k = 1; k < xi->rank; k++) per *= xi->dim[k];
    if (samples_png(path, per, sample_rows)) return 1;
    printf("Samples written to %s\n", path);
    return 0;
}

/* The image training step's interface: x: f32[B, ...], y: i64[B] or i32[B];
 * *per is the number of values in one example, *classes the logits' classes
 * (0 for a model without logits, a reconstruction model, whose labels are not
 * class ids). The forward must return logits or a reconstruction. */
static int image_interface(int64_t *per, int64_t *classes) {
    const etch_tensor_info *xi = &etch_step_inputs[0][0], *yi = &etch_step_inputs[0][1];
    *per = 1;
    for (int k = 1; k < xi->rank; k++) *per *= xi->dim[k];
    if (xi->dtype != ETCH_F32 || yi->rank != 1 || yi->dim[0] != xi->dim[0] ||
        (yi->dtype != ETCH_I64 && yi->dtype != ETCH_I32))
        return fail("the train step must take x: f32[B, ...] and y: i64[B] (or i32[B])");
    Picked pick = pick_outputs(*per);
    if (pick.logits < 0 && pick.recon < 0 && generator_output(*per) < 0)
        return fail("--data needs a forward returning logits f32[B, C] or a reconstruction (f32[B, ...] with one "
                    "value per input value), or a generator: a forward without inputs returning images");
    *classes = pick.logits >= 0 ? ETCH_MODEL(forward_outputs)[pick.logits].dim[1] : 0;
    return 0;
}

/* --eval --data: the test-split report of the given weights. */
static int eval_images(const Args *a) {
    char err[1024];
    int64_t per, classes;
    if (image_interface(&per, &classes)) return 1;
    Split test;
    if (load_split(a->data, "t10k", per, classes, &test, err, sizeof err)) return fail(err);
    int gen = generator_output(per), rows = test.images.rank >= 3 ? (int)test.images.dim[1] : 1;
    if (gen >= 0) { /* a generator: its samples (--png), no test metrics */
        int rc = ETCH_MODEL(load)(a->weights, 0, err, sizeof err) ? fail(err) : a->png ? samples_png(a->png, per, rows) : 0;
        if (!rc) printf(a->png ? "Samples written to %s\n" : "A generator: no test report (--png FILE writes its samples)%s\n",
                        a->png ? a->png : "");
        etch_array_free(&test.images);
        etch_array_free(&test.labels);
        return rc;
    }
    int rc = ETCH_MODEL(load)(a->weights, 0, err, sizeof err) || report(&test, per, a->png, err, sizeof err);
    etch_array_free(&test.images);
    etch_array_free(&test.labels);
    return rc ? fail(err) : 0;
}

/* A training set as the epoch loop reads it: n examples; fill writes the
 * examples order[start .. start+batch) into the step's x and y buffers.
 * Images fill from a Split, .npy arrays (arrays.c) from their own. */
typedef struct Batches {
    int64_t n;
    void (*fill)(const void *set, const int64_t *order, int64_t start, int64_t batch, void *x, void *y);
    const void *set;
    int (*after_epoch)(const Args *a, long long epoch); /* NULL, or what to write after each epoch (a generator's samples) */
} Batches;

/* The epochs of a training run from `weights` (already loaded) over d, as
 * the image section's comment says (shuffled by Philox keyed by (seed,
 * epoch), a resumed run placed by its optimizer.step, the last partial batch
 * dropped), then the checkpoint and final weights, whose path goes into
 * path. Returns the exit status. */
static int train_epochs(const Args *a, const char *weights, const Batches *d, char *path, size_t path_len) {
    char why[128];
    int64_t batch = etch_step_inputs[0][0].dim[0], n = a->limit >= 0 && a->limit < d->n ? a->limit : d->n, *order = NULL;
    int64_t steps_per_epoch = n / (batch * dp_size); /* a step takes one global batch: B examples per rank */
    BatchBuffers buf = {0};
    BatchInFlight flight;
    long long step = 0, taken = 0, max_step;
    int tty = isatty(2) && !dp_rank, status = 1, written = 0;
    Curve curve = {0};
    if (steps_per_epoch == 0) return fail(dp_size > 1 ? "fewer training examples than one global batch (the ranks "
                                                        "times the model's batch)" : "fewer training examples than one batch");
    max_step = a->epochs <= 0 ? 0 : a->epochs > INT64_MAX / steps_per_epoch ? INT64_MAX : a->epochs * steps_per_epoch;
    snprintf(why, sizeof why, "%ld epochs of %lld steps", a->epochs, (long long)steps_per_epoch);
    if (checked_step(weights, max_step, why, &step) || dp_check_same_weights("at the start")) return 1;
    if (batch_buffers_alloc(&buf)) return 1;
    order = malloc(sizeof(int64_t) * (size_t)d->n);
    float loss[ETCH_TRAIN_N_STEPS];
    long start_epoch = (long)(step / steps_per_epoch);
    int64_t skip = step % steps_per_epoch; /* resume mid-epoch where the checkpoint stopped */
    curve.first = step;
    status = 0;
    for (long epoch = start_epoch; epoch < a->epochs && (a->steps < 0 || taken < a->steps); epoch++) {
        if (a->shuffle) shuffle(order, n, a->seed, epoch);
        else for (int64_t i = 0; i < n; i++) order[i] = i;
        double sum[ETCH_TRAIN_N_STEPS] = {0}, mean[ETCH_TRAIN_N_STEPS] = {0};
        int64_t count = 0, cur = 0; /* cur: the buffer of step s's batch */
        if (skip < steps_per_epoch) d->fill(d->set, order, (skip * dp_size + dp_rank) * batch, batch, buf.x[0], buf.y[0]);
        for (int64_t s = skip; s < steps_per_epoch && (a->steps < 0 || taken < a->steps); s++, taken++, cur ^= 1) {
            batch_begin(buf.x[cur], buf.y[cur], &flight); /* step s runs while step s + 1's batch is filled */
            if (s + 1 < steps_per_epoch && (a->steps < 0 || taken + 1 < a->steps))
                d->fill(d->set, order, ((s + 1) * dp_size + dp_rank) * batch, batch, buf.x[!cur], buf.y[!cur]);
            int bad = batch_end(&flight, loss);
            if (bad >= 0) {
                fprintf(stderr, "\nerror: %s became %f at epoch %ld, step %lld\n", loss_of(bad), loss[bad], epoch + 1,
                        (long long)s);
                status = 1;
                goto done;
            }
            for (int k = 0; k < ETCH_TRAIN_N_STEPS; k++) sum[k] += loss[k];
            count++;
            curve_add(&curve, loss);
            if (tty && (s % 10 == 0 || s + 1 == steps_per_epoch)) progress(epoch + 1, s + 1, steps_per_epoch, sum, count);
        }
        skip = 0;
        for (int k = 0; count && k < ETCH_TRAIN_N_STEPS; k++) mean[k] = sum[k] / count;
        if ((status = dp_check_same_weights("after an epoch")) || (status = end_epoch(a, tty, epoch + 1, mean, &curve)))
            goto done;
        if (d->after_epoch && (status = d->after_epoch(a, epoch + 1))) goto done;
        written = 1;
    }
    status = save_final(a, written, path, path_len);
done:
    free(order);
    free(curve.loss);
    batch_buffers_free(&buf);
    return status;
}

static void fill_image_batch(const void *set, const int64_t *order, int64_t start, int64_t batch, void *x, void *y) {
    fill_batch(set, order, start, batch, batch, x, y, etch_step_inputs[0][1].dtype);
}

/* Training on images (see the section comment). */
static int train_images(const Args *a) {
    const char *weights = a->init ? a->init : a->resume;
    char err[1024], path[4096], png[4096];
    int64_t per, classes;
    Split test = {0}, train = {0};
    int status = 1;
    if (image_interface(&per, &classes)) return 1;
    remove_stale_temps(a);
    if (load_split(a->data, "t10k", per, classes, &test, err, sizeof err) ||
        load_training(a, weights, err, sizeof err) ||
        load_split(a->data, "train", per, classes, &train, err, sizeof err)) {
        fail(err);
        goto done;
    }
    int gen = generator_output(per);
    sample_rows = train.images.rank >= 3 ? (int)train.images.dim[1] : 1;
    Batches d = {.n = train.n, .fill = fill_image_batch, .set = &train, .after_epoch = gen < 0 ? NULL : write_samples};
    if ((status = train_epochs(a, weights, &d, path, sizeof path))) goto done;
    snprintf(png, sizeof png, "%s/reconstructions.png", a->out);
    if (dp_rank) goto done; /* rank 0 reports */
    if (gen < 0 && report(&test, per, png, err, sizeof err)) {
        status = fail(err);
        goto done;
    }
    printf("Weights written to %s\n", path);
done:
    etch_array_free(&train.images);
    etch_array_free(&train.labels);
    etch_array_free(&test.images);
    etch_array_free(&test.labels);
    return status;
}
