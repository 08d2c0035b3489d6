/* quant.c: the integer arithmetic of quantized values (see quant.h and
 * docs/quantization.md). The C backend emits the same steps as text
 * (codegen/c/ops/quant.c); tests/unit/test_quant.c holds them to each other. */
#include "ir/quant.h"

#include <math.h>

int32_t quant_srdhm(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    int64_t ab = (int64_t)a * b;
    int64_t nudge = ab >= 0 ? (1 << 30) : 1 - (1 << 30);
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31)); /* C division truncates toward zero */
}

int32_t quant_rounding_shift(int32_t x, int exponent) {
    int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    int32_t remainder = x & mask, threshold = (mask >> 1) + (x < 0);
    return (x >> exponent) + (remainder > threshold); /* >> of a negative is arithmetic on every supported compiler */
}

static int clamp_shift(int shift) {
    return shift < QUANT_SHIFT_MIN ? QUANT_SHIFT_MIN : shift > QUANT_SHIFT_MAX ? QUANT_SHIFT_MAX : shift;
}

int32_t quant_multiply(int32_t x, int32_t q31, int shift) {
    shift = clamp_shift(shift);
    int64_t up = (int64_t)x * ((int64_t)1 << (shift > 0 ? shift : 0));
    int32_t xs = up > INT32_MAX ? INT32_MAX : up < INT32_MIN ? INT32_MIN : (int32_t)up;
    return quant_rounding_shift(quant_srdhm(xs, q31), shift > 0 ? 0 : -shift);
}

bool quant_multiplier(double m, int32_t *q31, int *shift) {
    *q31 = 0, *shift = 0;
    if (!(m >= 0) || isinf(m)) return false;
    if (m == 0) return true;
    int e;
    double f = frexp(m, &e); /* m = f * 2^e, f in [0.5, 1) */
    int64_t q = (int64_t)round(f * 2147483648.0);
    if (q == (int64_t)1 << 31) q /= 2, e++;
    if (e < QUANT_SHIFT_MIN) return true; /* below 2^-32: the product rounds to 0 anyway */
    if (e > QUANT_SHIFT_MAX) return false;
    *q31 = (int32_t)q, *shift = e;
    return true;
}

double quant_scale_acc(int32_t acc, int32_t q31, int shift) {
    return (double)acc * ldexp((double)q31, clamp_shift(shift) - 31);
}

void quant_range(DType t, int *lo, int *hi) {
    *lo = t == DT_I8 ? -128 : 0;
    *hi = t == DT_I8 ? 127 : 255;
}

double quant_unclamped(double x, double scale, int32_t zero_point) { return rint(x / scale) + zero_point; }

int32_t quant_quantize(double x, double scale, int32_t zero_point, int lo, int hi) {
    double v = quant_unclamped(x, scale, zero_point);
    if (v != v) v = zero_point;
    return v <= lo ? lo : v >= hi ? hi : (int32_t)v;
}

double quant_dequantize(int32_t q, double scale, int32_t zero_point) { return ((double)q - zero_point) * scale; }

int32_t quant_requantize(int32_t acc, int32_t q31, int shift, int32_t zero_point, int lo, int hi) {
    int64_t v = (int64_t)zero_point + quant_multiply(acc, q31, shift);
    return v <= lo ? lo : v >= hi ? hi : (int32_t)v;
}
