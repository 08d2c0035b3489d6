/* train/curve.c: the loss curve: every step's loss kept in memory and drawn,
 * after each epoch, as OUTDIR/loss.png with the runtime's PNG writer (libc
 * only: axes, a polyline, a 3x5 pixel font for the numbers). */

/* ---- the loss curve (OUTDIR/loss.png) -------------------------------------------
 * A CURVE_W x CURVE_H grayscale image: the mean loss of consecutive groups of
 * steps (one group per pixel column when there are more steps than columns,
 * otherwise one point per step) joined by lines, black on white; the y axis
 * is labelled with the highest and lowest plotted loss, the x axis with the
 * first and last step number of this run (a resumed run draws its own steps,
 * numbered from the checkpoint's). */

enum { CURVE_W = 480, CURVE_H = 320, CURVE_LEFT = 60, CURVE_RIGHT = 12, CURVE_TOP = 12, CURVE_BOTTOM = 24 };

typedef struct Curve {
    float *loss;        /* per step of this run, ETCH_TRAIN_N_STEPS losses (one per named train step) */
    int64_t n, cap;     /* batches */
    long long first;    /* the optimizer step before this run's first */
} Curve;

/* One batch's losses, one per train step. */
static void curve_add(Curve *c, const float *loss) {
    if (c->n == c->cap) {
        int64_t cap = c->cap ? 2 * c->cap : 1024;
        float *grown = realloc(c->loss, sizeof(float) * ETCH_TRAIN_N_STEPS * (size_t)cap);
        if (!grown) return; /* the plot misses the rest; training goes on */
        c->loss = grown, c->cap = cap;
    }
    memcpy(c->loss + c->n++ * ETCH_TRAIN_N_STEPS, loss, sizeof(float) * ETCH_TRAIN_N_STEPS);
}

/* The glyphs of "0123456789.-e+" in 3x5 pixels: 5 rows of 3 bits, top first. */
static void curve_text(unsigned char *img, int x, int y, const char *s) {
    static const char chars[] = "0123456789.-e+";
    static const unsigned short glyph[] = {075557, 026227, 071747, 071717, 055711, 074717, 074757, 071111,
                                           075757, 075717, 000002, 000700, 007747, 002720};
    for (; *s; s++, x += 8) {
        const char *at = strchr(chars, *s);
        for (int r = 0; at && *at && r < 5; r++)
            for (int c = 0; c < 3; c++)
                if (glyph[at - chars] >> (3 * (4 - r) + 2 - c) & 1)
                    for (int k = 0; k < 4; k++) { /* each font pixel is 2x2 */
                        int px = x + 2 * c + k % 2, py = y + 2 * r + k / 2;
                        if (px >= 0 && px < CURVE_W && py >= 0 && py < CURVE_H) img[py * CURVE_W + px] = 0;
                    }
    }
}

static void curve_line(unsigned char *img, int x0, int y0, int x1, int y1, unsigned char v) {
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, e = dx + dy;
    for (;;) {
        if (x0 >= 0 && x0 < CURVE_W && y0 >= 0 && y0 < CURVE_H) img[y0 * CURVE_W + x0] = v;
        if (x0 == x1 && y0 == y1) return;
        int e2 = 2 * e;
        if (e2 >= dy) e += dy, x0 += sx;
        if (e2 <= dx) e += dx, y0 += sy;
    }
}

/* Draws the curve into path (nothing when no step was taken), signals held:
 * one line per train step, the first black, the others lighter grays. */
static int curve_write(const Curve *c, const char *path) {
    enum { PW = CURVE_W - CURVE_LEFT - CURVE_RIGHT, PH = CURVE_H - CURVE_TOP - CURVE_BOTTOM };
    if (c->n == 0) return 0;
    int64_t points = c->n < PW ? c->n : PW;
    static double means[ETCH_TRAIN_N_STEPS][PW];
    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < ETCH_TRAIN_N_STEPS; k++)
        for (int64_t p = 0; p < points; p++) {
            int64_t from = p * c->n / points, to = (p + 1) * c->n / points;
            double sum = 0;
            for (int64_t s = from; s < to; s++) sum += c->loss[s * ETCH_TRAIN_N_STEPS + k];
            means[k][p] = sum / (double)(to - from);
            lo = fmin(lo, means[k][p]), hi = fmax(hi, means[k][p]);
        }
    if (hi - lo < 1e-9 * fmax(1, fabs(hi))) hi += 0.5, lo -= 0.5; /* a flat curve sits mid-height */
    unsigned char *img = malloc(CURVE_W * CURVE_H);
    if (!img) return fail("out of memory for the loss curve");
    memset(img, 255, CURVE_W * CURVE_H);
    curve_line(img, CURVE_LEFT - 1, CURVE_TOP, CURVE_LEFT - 1, CURVE_TOP + PH, 96);           /* y axis */
    curve_line(img, CURVE_LEFT - 1, CURVE_TOP + PH, CURVE_LEFT + PW, CURVE_TOP + PH, 96);     /* x axis */
    for (int k = ETCH_TRAIN_N_STEPS - 1; k >= 0; k--) { /* the first step's line on top */
        int px = 0, py = 0;
        unsigned char gray = (unsigned char)(k * 160 / ETCH_TRAIN_N_STEPS);
        for (int64_t p = 0; p < points; p++) {
            int x = CURVE_LEFT + (points > 1 ? (int)(p * (PW - 1) / (points - 1)) : PW / 2);
            int y = CURVE_TOP + (int)lround((hi - means[k][p]) / (hi - lo) * (PH - 1));
            if (p) curve_line(img, px, py, x, y, gray);
            else curve_line(img, x, y, x, y, gray);
            px = x, py = y;
        }
    }
    char label[32];
    snprintf(label, sizeof label, "%.4g", hi);
    curve_text(img, 4, CURVE_TOP, label);
    snprintf(label, sizeof label, "%.4g", lo);
    curve_text(img, 4, CURVE_TOP + PH - 10, label);
    snprintf(label, sizeof label, "%lld", c->first + 1);
    curve_text(img, CURVE_LEFT, CURVE_TOP + PH + 6, label);
    snprintf(label, sizeof label, "%lld", c->first + (long long)c->n);
    curve_text(img, CURVE_W - CURVE_RIGHT - 8 * (int)strlen(label), CURVE_TOP + PH + 6, label);
    char err[1024];
    sigset_t old;
    signals_hold(&old);
    int rc = etch_png_write_gray(path, CURVE_W, CURVE_H, img, err, sizeof err);
    signals_release(&old);
    free(img);
    return rc ? fail(err) : 0;
}

/* After each epoch: the epoch line (mean: each train step's mean loss), the
 * checkpoint, then the loss curve. */
static int end_epoch(const Args *a, int tty, long long epoch, const double *mean, const Curve *c) {
    char path[4096];
    if (dp_rank) return 0; /* rank 0 prints and writes */
    epoch_line(a, tty, epoch, mean);
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", a->out);
    if (save_or_fail(a, path, 1)) return 1;
    snprintf(path, sizeof path, "%s/loss.png", a->out);
    return curve_write(c, path);
}
