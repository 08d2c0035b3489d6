/* kernels.c: the LLVM backend's kernels for the ops whose loops are more than
 * one expression per element (matmul, conv2d, pooling, softmax, the random
 * numbers). They are
 * written once, in C, with every size and stride an argument; the build
 * compiles this file with clang-14 to LLVM bitcode (no LLVM passes run on it
 * there), the tool carries the bitcode, and each JIT module starts from it
 * (codegen/llvm/jit.c). The emitted IR calls these functions with constant
 * arguments; O3 inlines them and specializes the loops to the shapes, with
 * the host's vector units. This file is not compiled into etch itself and
 * includes nothing: the JIT resolves expf, logf, malloc and free (a conv's
 * column matrix) from the process.
 *
 * The bitcode is compiled with reassociation allowed (-fassociative-math):
 * the dot products vectorize as the C backend's do under -ffp-contract=fast
 * and OpenBLAS's do; results stay within 1e-5 of the eager executor. */
typedef long i64;

float expf(float);
float logf(float);
void *malloc(unsigned long);
void free(void *);
/* etch's (runtime/rt/philox.c, ir/ops/random.c) */
void etch_philox4x32(unsigned long key, unsigned long counter_hi, unsigned long counter_lo, unsigned out[4]);
double etch_u01(unsigned x);
double random_normal_value(unsigned a, unsigned b);
unsigned long random_step_counter(double step);

/* C[m, n] = A[m, k] B[k, n] for `batch` products; A(i, p) = a[i*ars + p*acs],
 * B(p, j) = b[p*brs + j*bcs]; consecutive products are abs/bbs elements
 * apart in A and B (0: the operand is shared) and m*n apart in C. */
void etch_llvm_matmul_f32(const float *restrict a, const float *restrict b, float *restrict c, i64 batch, i64 abs,
                          i64 bbs, i64 m, i64 n, i64 k, i64 ars, i64 acs, i64 brs, i64 bcs) {
    for (i64 t = 0; t < batch; t++) {
        const float *A = a + t * abs, *B = b + t * bbs;
        float *C = c + t * m * n;
        if (bcs == 1) { /* B's rows are contiguous: C's row i is a sum of B's rows scaled by A(i, p) */
            for (i64 i = 0; i < m; i++) {
                float *Ci = C + i * n;
                for (i64 j = 0; j < n; j++) Ci[j] = 0;
                for (i64 p = 0; p < k; p++) {
                    float s = A[i * ars + p * acs];
                    const float *Bp = B + p * brs;
                    for (i64 j = 0; j < n; j++) Ci[j] += s * Bp[j];
                }
            }
        } else { /* B transposed (stored [n, k]): C(i, j) is a dot product of two contiguous rows */
            for (i64 i = 0; i < m; i++)
                for (i64 j = 0; j < n; j++) {
                    float s = 0;
                    for (i64 p = 0; p < k; p++) s += A[i * ars + p * acs] * B[j * bcs + p * brs];
                    C[i * n + j] = s;
                }
        }
    }
}

/* The outputs o in [0, len) whose input position o*s - p + k lands in
 * [0, size): [*lo, *hi). Keeps the conv's inner loops free of bounds tests. */
static void valid_range(i64 len, i64 size, i64 s, i64 p, i64 k, i64 *lo, i64 *hi) {
    i64 first = p - k, end = size + p - k; /* o*s must lie in [first, end) */
    *lo = first <= 0 ? 0 : (first + s - 1) / s;
    *hi = end <= 0 ? 0 : (end + s - 1) / s;
    if (*hi > len) *hi = len;
    if (*lo > *hi) *lo = *hi;
}

/* col[(c*KH + kh)*KW + kw][oh*OW + ow] = the input pixel under tap (kh, kw)
 * of output (oh, ow) in channel c of the C channels at x, or 0 in the padding. */
static void im2col(const float *restrict x, float *restrict col, i64 C, i64 H, i64 W, i64 KH, i64 KW, i64 OH,
                   i64 OW, i64 sh, i64 sw, i64 ph, i64 pw, i64 dh, i64 dw) {
    for (i64 c = 0; c < C; c++)
        for (i64 kh = 0; kh < KH; kh++)
            for (i64 kw = 0; kw < KW; kw++) {
                float *row = col + ((c * KH + kh) * KW + kw) * OH * OW;
                i64 oh0, oh1, ow0, ow1;
                valid_range(OH, H, sh, ph, kh * dh, &oh0, &oh1);
                valid_range(OW, W, sw, pw, kw * dw, &ow0, &ow1);
                for (i64 oh = 0; oh < OH; oh++) {
                    float *r = row + oh * OW;
                    if (oh < oh0 || oh >= oh1) {
                        for (i64 ow = 0; ow < OW; ow++) r[ow] = 0;
                        continue;
                    }
                    const float *xr = x + (c * H + oh * sh - ph + kh * dh) * W - pw + kw * dw;
                    for (i64 ow = 0; ow < ow0; ow++) r[ow] = 0;
                    for (i64 ow = ow0; ow < ow1; ow++) r[ow] = xr[ow * sw];
                    for (i64 ow = ow1; ow < OW; ow++) r[ow] = 0;
                }
            }
}

/* y[n, o, oh, ow] = sum over the group's input channels and the window of
 * x[n, c, h, w] * w[o, c / groups, kh, kw]; zero padding, stride, dilation.
 * Per image and group, a GEMM of the group's weights [og, cg*KH*KW] by the
 * image's columns (im2col) [cg*KH*KW, OH*OW], as the C backend's conv; a 1x1
 * conv of stride 1 without padding reads the image itself as the columns. */
void etch_llvm_conv2d_f32(const float *restrict x, const float *restrict w, float *restrict y, i64 N, i64 C, i64 H,
                          i64 W, i64 O, i64 KH, i64 KW, i64 OH, i64 OW, i64 sh, i64 sw, i64 ph, i64 pw, i64 dh,
                          i64 dw, i64 groups) {
    i64 cg = C / groups, og = O / groups, ckk = cg * KH * KW, ohw = OH * OW;
    int pointwise = KH == 1 && KW == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
    float *col = pointwise ? 0 : malloc((unsigned long)(ckk * ohw) * sizeof(float));
    if (!pointwise && !col) __builtin_trap();
    for (i64 n = 0; n < N; n++)
        for (i64 g = 0; g < groups; g++) {
            const float *xg = x + (n * C + g * cg) * H * W;
            if (!pointwise) im2col(xg, col, cg, H, W, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw);
            etch_llvm_matmul_f32(w + g * og * ckk, pointwise ? xg : col, y + (n * O + g * og) * ohw, 1, 0, 0, og, ohw,
                                 ckk, ckk, 1, ohw, 1);
        }
    free(col);
}

/* max (avg = 0) or average (avg = 1) pooling of `planes` images h x w; the
 * window is clipped to the image; an average divides by the window's full
 * area; NaN wins a max (as the eager kernel's). */
void etch_llvm_pool2d_f32(const float *restrict x, float *restrict y, i64 planes, i64 H, i64 W, i64 OH, i64 OW,
                          i64 KH, i64 KW, i64 sh, i64 sw, i64 ph, i64 pw, i64 avg) {
    for (i64 p = 0; p < planes; p++) {
        const float *xp = x + p * H * W;
        float *yp = y + p * OH * OW;
        for (i64 oh = 0; oh < OH; oh++)
            for (i64 ow = 0; ow < OW; ow++) {
                i64 h0 = oh * sh - ph, w0 = ow * sw - pw;
                i64 h1 = h0 + KH < H ? h0 + KH : H, w1 = w0 + KW < W ? w0 + KW : W;
                if (h0 < 0) h0 = 0;
                if (w0 < 0) w0 = 0;
                double s = 0;
                float m = -__builtin_inff();
                for (i64 i = h0; i < h1; i++)
                    for (i64 j = w0; j < w1; j++) {
                        float v = xp[i * W + j];
                        s += (double)v;
                        if (v > m || v != v) m = v;
                    }
                yp[oh * OW + ow] = avg ? (float)(s / (double)(KH * KW)) : m;
            }
    }
}

/* softmax (log = 0) or log_softmax (log = 1) along an axis of length len,
 * for outer x inner positions; sums in double as the eager kernel's. */
void etch_llvm_softmax_f32(const float *restrict x, float *restrict y, i64 outer, i64 len, i64 inner, i64 log) {
    for (i64 o = 0; o < outer; o++)
        for (i64 i = 0; i < inner; i++) {
            const float *xr = x + o * len * inner + i;
            float *yr = y + o * len * inner + i;
            float mx = -__builtin_inff();
            for (i64 k = 0; k < len; k++) mx = xr[k * inner] > mx ? xr[k * inner] : mx;
            double sum = 0;
            for (i64 k = 0; k < len; k++) sum += (double)expf(xr[k * inner] - mx);
            float ls = logf((float)sum), inv = (float)(1.0 / sum);
            for (i64 k = 0; k < len; k++) {
                /* (x - mx) - ls as written: reassociated to x - (mx + ls), the
                 * log term (as small as 1e-7) is lost against mx at x = mx */
#pragma clang fp reassociate(off)
                float v = xr[k * inner] - mx;
                yr[k * inner] = log ? v - ls : expf(v) * inv;
            }
        }
}

/* random_uniform (normal = 0) or random_normal (normal = 1) of n elements:
 * Philox4x32-10 keyed by seed at counter (step, i / 4) (uniform: word i % 4)
 * or (step, i / 2) (normal: Box-Muller of the word pair i % 2), as
 * ir/ops/random.c draws them. */
void etch_llvm_random_f32(float *restrict y, i64 n, i64 seed, double step, i64 normal) {
    unsigned long ctr = random_step_counter(step);
    unsigned r[4];
    for (i64 i = 0; i < n; i++) {
        if (normal) {
            if (i % 2 == 0) etch_philox4x32((unsigned long)seed, ctr, (unsigned long)(i / 2), r);
            y[i] = (float)random_normal_value(r[(i % 2) * 2], r[(i % 2) * 2 + 1]);
        } else {
            if (i % 4 == 0) etch_philox4x32((unsigned long)seed, ctr, (unsigned long)(i / 4), r);
            y[i] = (float)etch_u01(r[i % 4]);
        }
    }
}
