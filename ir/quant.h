/* quant.h: the integer arithmetic of quantized values (docs/quantization.md),
 * defined once here and used by the reference kernels (ir/ops/quant.c), the
 * compile-time preparation of requantize multipliers, and the tests. Every
 * backend emits the same operations (the C backend's text is
 * codegen/c/ops/quant.c) so that results agree bit for bit.
 *
 * Semantics are gemmlowp's / TFLite's: a real multiplier M in (0, 2^31) is
 * q31 * 2^(shift - 31) with q31 in [2^30, 2^31); an int32 x times M is
 * RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x << left, q31),
 * right) with left = max(shift, 0), right = max(-shift, 0). */
#ifndef ETCH_IR_QUANT_H
#define ETCH_IR_QUANT_H

#include <stdbool.h>
#include <stdint.h>

#include "ir/ir.h"

/* Shifts outside [QUANT_SHIFT_MIN, QUANT_SHIFT_MAX] are clamped into it by
 * quant_multiply (a multiplier below 2^-31 is 0, see quant_multiplier). */
enum { QUANT_SHIFT_MIN = -31, QUANT_SHIFT_MAX = 30 };

/* gemmlowp's SaturatingRoundingDoublingHighMul: (a * b + nudge) / 2^31 with
 * nudge 2^30 for a nonnegative product, 1 - 2^30 for a negative one, and C's
 * truncating division: round(a * b / 2^31) with ties toward +infinity (1.5
 * -> 2, -1.5 -> -1); INT32_MIN * INT32_MIN saturates to INT32_MAX. */
int32_t quant_srdhm(int32_t a, int32_t b);
/* x / 2^exponent rounded to nearest, ties away from zero; exponent in 0..31. */
int32_t quant_rounding_shift(int32_t x, int exponent);
/* x * q31 * 2^(shift - 31) in the fixed-point steps above; the left shift
 * saturates to int32. */
int32_t quant_multiply(int32_t x, int32_t q31, int shift);
/* Splits real multiplier m (>= 0, finite) into q31 in [2^30, 2^31) and shift
 * with m ~= q31 * 2^(shift - 31) (frexp, then q31 = round(f * 2^31), ties
 * away from zero; a carry to 2^31 halves it and bumps shift). m == 0 or m
 * below 2^-32 (shift < -31) gives (0, 0); m >= 2^30 (shift > 30) gives false. */
bool quant_multiplier(double m, int32_t *q31, int *shift);

/* acc * q31 * 2^(shift - 31) in double (qmatmul's f32 result): the shift
 * clamped as in quant_multiply, one rounding in the product. */
double quant_scale_acc(int32_t acc, int32_t q31, int shift);
/* The range of quantized dtype t: i8 [-128, 127], u8 [0, 255]. */
void quant_range(DType t, int *lo, int *hi);
/* round-half-to-even(x / scale) + zero_point, clamped to [lo, hi]; NaN gives
 * zero_point (clamped). x / scale is one double division. */
int32_t quant_quantize(double x, double scale, int32_t zero_point, int lo, int hi);
/* round-half-to-even(x / scale) + zero_point before clamping (as a double,
 * NaN for NaN): fake_quant's straight-through mask tests it against [lo, hi]. */
double quant_unclamped(double x, double scale, int32_t zero_point);
/* (q - zero_point) * scale in double. */
double quant_dequantize(int32_t q, double scale, int32_t zero_point);
/* qmatmul's epilogue: zero_point + quant_multiply(acc, q31, shift), clamped
 * to [lo, hi] (done in 64 bits: the sum cannot wrap). */
int32_t quant_requantize(int32_t acc, int32_t q31, int shift, int32_t zero_point, int lo, int hi);

#endif
