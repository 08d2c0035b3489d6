/* train/text.c: byte-level language models: a corpus split 90/10, windows
 * drawn by Philox for each step, the training loop, and the held-out loss. */

/* ---- byte text (--text) -------------------------------------------------------
 * For language models with x: i64[B, T] and y: i64[B, T]: the corpus is a
 * plain byte file; its first 90% is trained on, the last 10% is held out.
 * Step s takes B windows of T+1 bytes at offsets drawn by Philox keyed by
 * (seed, s, window) (x = the first T bytes, y = the next T), so a run resumed
 * from a checkpoint (whose optimizer.step is s) continues with the same
 * windows. With data-parallel ranks (etch train --ranks N) a step takes one
 * global batch of N x B windows, rank r windows r*B .. r*B+B-1: the windows
 * one process with batch N x B takes. An
 * "epoch" of text is TEXT_EPOCH_STEPS steps: the program prints the mean loss
 * over each one and writes the checkpoint and the loss curve after it. At the
 * end it reports the mean loss per byte (nats) on the held-out part (up to
 * TEXT_EVAL_WINDOWS windows spread evenly over it), read from the forward's
 * first output of logits [B, T, >= 256]. A train block with named steps
 * runs them all on each step's windows, in the schedule's order, and prints
 * each one's mean loss, as on images. */

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

/* The output the text evaluation reads: the first of the forward's outputs
 * that is f32 logits [B, T, >= 256] over the input's windows; -1 when none is. */
static int text_output(void) {
    const etch_tensor_info *fi = &ETCH_MODEL(forward_inputs)[0];
    for (int i = 0; i < ETCH_FORWARD_N_OUTPUTS; i++) {
        const etch_tensor_info *fo = &ETCH_MODEL(forward_outputs)[i];
        if (fo->dtype == ETCH_F32 && fo->rank == 3 && fi->rank == 2 && fo->dim[0] == fi->dim[0] &&
            fo->dim[1] == fi->dim[1] && fo->dim[2] >= 256)
            return i;
    }
    return -1;
}

/* Mean negative log-likelihood per predicted byte over windows of T+1 bytes
 * in text[lo, hi): up to TEXT_EVAL_WINDOWS windows spread evenly, every
 * position of each window predicted by the forward. */
static double text_eval(const unsigned char *text, int64_t lo, int64_t hi, int64_t *predictions) {
    int o = text_output();
    const etch_tensor_info *xi = &ETCH_MODEL(forward_inputs)[0], *oi = &ETCH_MODEL(forward_outputs)[o];
    int64_t batch = xi->dim[0], T = xi->dim[1], V = oi->dim[2];
    int64_t span = hi - lo - T - 1, windows = span / T + 1;
    if (windows > TEXT_EVAL_WINDOWS) windows = TEXT_EVAL_WINDOWS;
    etch_array x, y;
    Outputs out;
    etch_array_alloc(&x, xi->dtype, xi->rank, xi->dim);
    etch_array_alloc(&y, xi->dtype, xi->rank, xi->dim);
    outputs_alloc(&out);
    int64_t *starts = malloc(sizeof(int64_t) * (size_t)batch);
    double total = 0;
    int64_t count = 0;
    for (int64_t w = 0; w < windows; w += batch) {
        int64_t n = windows - w < batch ? windows - w : batch;
        for (int64_t b = 0; b < batch; b++) starts[b] = lo + (windows > 1 ? (b < n ? w + b : w) * span / (windows - 1) : 0);
        text_batch(text, starts, batch, T, x.data, xi->dtype, y.data, xi->dtype);
        run_forward(x.data, &out);
        for (int64_t b = 0; b < n; b++)
            for (int64_t t = 0; t < T; t++) {
                const float *row = (const float *)out.a[o].data + (b * T + t) * V;
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
    outputs_free(&out);
    *predictions = count;
    return count ? total / (double)count : 0;
}

/* Checks the model's text interface and reads the corpus, split into the
 * first 90% (training windows) and the last 10% (held out). */
static int load_corpus(const Args *a, unsigned char **text, size_t *n, int64_t *ntrain) {
    char err[1024];
    const etch_tensor_info *xi = &etch_step_inputs[0][0], *yi = &etch_step_inputs[0][1];
    const etch_tensor_info *fi = &ETCH_MODEL(forward_inputs)[0];
    int int_x = xi->dtype == ETCH_I64 || xi->dtype == ETCH_I32, int_y = yi->dtype == ETCH_I64 || yi->dtype == ETCH_I32;
    if (xi->rank != 2 || yi->rank != 2 || !int_x || !int_y || yi->dim[0] != xi->dim[0] || yi->dim[1] != xi->dim[1])
        return fail("--text needs a train step taking x: i64[B, T] and y: i64[B, T] (byte ids)");
    if (fi->rank != 2 || fi->dim[1] != xi->dim[1] || fi->dtype != xi->dtype || text_output() < 0)
        return fail("--text needs a forward taking byte ids [B, T] and returning f32 logits [B, T, >= 256] (as its "
                    "first such output)");
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

/* The batch of the step after `step` steps: its B windows' starts drawn by
 * Philox keyed by (seed, step + 1, the example's index in the global batch). */
static void text_step_batch(const Args *a, const unsigned char *text, int64_t ntrain, long long step, int64_t *starts,
                            void *x, void *y) {
    const etch_tensor_info *xi = &etch_step_inputs[0][0], *yi = &etch_step_inputs[0][1];
    int64_t batch = xi->dim[0], T = xi->dim[1];
    for (int64_t b = 0; b < batch; b++) {
        uint32_t r[4];
        etch_philox4x32(a->seed, (uint64_t)step + 1, (uint64_t)(dp_rank * batch + b), r);
        starts[b] = (int64_t)((((uint64_t)r[0] << 32) | r[1]) % (uint64_t)(ntrain - T));
    }
    text_batch(text, starts, batch, T, x, xi->dtype, y, yi->dtype);
}

/* Training a language model on a byte file (see the header comment). */
static int train_text(const Args *a) {
    char err[1024], path[4096];
    int64_t batch = etch_step_inputs[0][0].dim[0], ntrain = 0;
    unsigned char *text = NULL;
    size_t n = 0;
    long long end = -1, step, taken = 0; /* end: the step to stop at, or -1: --steps alone decides */
    if (a->epochs_given || a->steps < 0)
        end = a->epochs <= 0 ? 0 : a->epochs > INT64_MAX / TEXT_EPOCH_STEPS ? INT64_MAX : a->epochs * TEXT_EPOCH_STEPS;
    const char *weights = a->init ? a->init : a->resume;
    char why[128];
    snprintf(why, sizeof why, end >= 0 ? "%ld epochs of %d steps" : "the largest count exact in f64", a->epochs,
             TEXT_EPOCH_STEPS);
    remove_stale_temps(a);
    if (load_corpus(a, &text, &n, &ntrain)) return 1;
    if (load_training(a, weights, err, sizeof err)) {
        free(text);
        return fail(err);
    }
    if (checked_step(weights, end >= 0 ? end : INT64_MAX, why, &step) || dp_check_same_weights("at the start")) {
        free(text);
        return 1;
    }
    BatchBuffers buf;
    BatchInFlight flight;
    if (batch_buffers_alloc(&buf)) {
        free(text);
        return 1;
    }
    int64_t *starts = malloc(sizeof(int64_t) * (size_t)batch), cur = 0; /* cur: the buffer of this step's batch */
    int tty = isatty(2) && !dp_rank, status = 0, written = 0;
    double sum[ETCH_TRAIN_N_STEPS] = {0};
    int64_t count = 0;
    float loss[ETCH_TRAIN_N_STEPS];
    Curve curve = {.first = step};
    if ((end < 0 || step < end) && (a->steps < 0 || taken < a->steps))
        text_step_batch(a, text, ntrain, step, starts, buf.x[0], buf.y[0]);
    for (; (end < 0 || step < end) && (a->steps < 0 || taken < a->steps); cur ^= 1) {
        batch_begin(buf.x[cur], buf.y[cur], &flight); /* this step runs while the next one's batch is filled */
        if ((end < 0 || step + 1 < end) && (a->steps < 0 || taken + 1 < a->steps))
            text_step_batch(a, text, ntrain, step + 1, starts, buf.x[!cur], buf.y[!cur]);
        int bad = batch_end(&flight, loss);
        if (bad >= 0) {
            fprintf(stderr, "\nerror: %s became %f at step %lld\n", loss_of(bad), loss[bad], step + 1);
            status = 1;
            goto done;
        }
        for (int k = 0; k < ETCH_TRAIN_N_STEPS; k++) sum[k] += loss[k];
        count++;
        curve_add(&curve, loss);
        step++;
        taken++;
        int last = (end >= 0 && step == end) || (a->steps >= 0 && taken == a->steps);
        if (tty && step % 10 == 0)
            progress((long)((step - 1) / TEXT_EPOCH_STEPS + 1), (step - 1) % TEXT_EPOCH_STEPS + 1, TEXT_EPOCH_STEPS, sum,
                     count);
        if (step % TEXT_EPOCH_STEPS == 0 || last) {
            double mean[ETCH_TRAIN_N_STEPS];
            for (int k = 0; k < ETCH_TRAIN_N_STEPS; k++) mean[k] = sum[k] / (double)count, sum[k] = 0;
            if ((status = dp_check_same_weights("after an epoch")) ||
                (status = end_epoch(a, tty, (step - 1) / TEXT_EPOCH_STEPS + 1, mean, &curve)))
                goto done;
            count = 0;
        }
        written = step % TEXT_EPOCH_STEPS == 0 || last;
    }
    if ((status = save_final(a, written, path, sizeof path)) || dp_rank) goto done; /* rank 0 reports */
    int64_t predictions;
    double nll = text_eval(text, ntrain, (int64_t)n, &predictions);
    printf("Held-out loss: %.4f nats/byte (last 10%% of %s, %lld predictions)\n", nll, a->text, (long long)predictions);
    printf("Weights written to %s\n", path);
done:
    free(starts);
    free(text);
    free(curve.loss);
    batch_buffers_free(&buf);
    return status;
}
