/* cmath.c: float exp and tanh for emitted code, written so that loops calling
 * them vectorize. libm's expf and tanhf are opaque calls: a fused loop over an
 * LSTM's gates that calls them runs one element at a time, and the calls
 * dominated the cell's time (measured: ~70% of samples/lstm.etch inference at
 * batch 64). These are branch-free (selects only), inline, and within a few
 * float ulps of libm (the test suite compares every op against the eager
 * executor, which uses libm in double). f64 code keeps libm: the macros
 * ETCH_EXP/ETCH_TANH pick by type, as <tgmath.h> does. */
#include "codegen/c/emit.h"

const char cemit_math_prelude[] =
    "/* exp for float, branch-free so loops calling it vectorize: x = n*ln2 + r with\n"
    " * |r| <= ln2/2 (ln2 split in two for an exact product), e^r by its Taylor\n"
    " * polynomial to degree 7 (truncation < 2^-27 relative), 2^n built from the\n"
    " * exponent bits (as 2^(n-1) * 2, so n = 128 still fits). Inputs are clamped to\n"
    " * [-86, 88.72]: below, the result is ~4e-38 instead of a subnormal or 0; above,\n"
    " * +inf. */\n"
    "static inline float etch_expf(float x) {\n"
    "    float c = x > 88.72283f ? 88.72283f : x;\n"
    "    c = c < -86.0f ? -86.0f : c;\n"
    "    const float n = (c * 1.44269504f + 12582912.0f) - 12582912.0f; /* round to nearest */\n"
    "    float r = c - n * 0.693359375f;\n"
    "    r = r + n * 2.12194440e-4f;\n"
    "    float p = 1.98412698e-4f;\n"
    "    p = p * r + 1.38888889e-3f;\n"
    "    p = p * r + 8.33333333e-3f;\n"
    "    p = p * r + 4.16666667e-2f;\n"
    "    p = p * r + 1.66666667e-1f;\n"
    "    p = p * r + 0.5f;\n"
    "    p = p * r + 1.0f;\n"
    "    p = p * r + 1.0f;\n"
    "    const int32_t bits = ((int32_t)n + 126) << 23;\n"
    "    float s;\n"
    "    memcpy(&s, &bits, sizeof s);\n"
    "    const float y = p * s * 2.0f;\n"
    "    return x > 88.72283f ? INFINITY : y;\n"
    "}\n\n"
    "/* tanh for float: odd Taylor polynomial to degree 13 below 0.3 (truncation\n"
    " * < 1e-10), else 1 - 2/(e^(2|x|) + 1) (|x| clamped to 9, where tanh is 1 in\n"
    " * float), with the sign of x. */\n"
    "static inline float etch_tanhf(float x) {\n"
    "    const float a = x < 0 ? -x : x;\n"
    "    const float e = etch_expf(2.0f * (a > 9.0f ? 9.0f : a));\n"
    "    const float big = 1.0f - 2.0f / (e + 1.0f);\n"
    "    const float z = a * a;\n"
    "    float p = 3.59212803e-3f;\n"
    "    p = p * z - 8.86323552e-3f;\n"
    "    p = p * z + 2.18694885e-2f;\n"
    "    p = p * z - 5.39682540e-2f;\n"
    "    p = p * z + 1.33333333e-1f;\n"
    "    p = p * z - 3.33333333e-1f;\n"
    "    const float small = a + a * z * p;\n"
    "    const float y = a < 0.3f ? small : big;\n"
    "    return x < 0 ? -y : y;\n"
    "}\n\n"
    "#define ETCH_EXP(x) _Generic((x), float: etch_expf, default: exp)(x)\n"
    "#define ETCH_TANH(x) _Generic((x), float: etch_tanhf, default: tanh)(x)\n\n";
