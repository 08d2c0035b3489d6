/* tensor.c: host tensors for the eager executor (see tensor.h). */
#include "ir/tensor.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/etch_rt.h"

Tensor *tensor_new(DType t, Shape s) {
    Tensor *x = calloc(1, sizeof *x);
    if (!x) abort();
    x->dtype = t;
    x->shape = s;
    size_t n = (size_t)shape_numel(&s) * dtype_size(t);
    x->data = etch_aligned_alloc(n);
    if (!x->data) abort();
    memset(x->data, 0, n);
    return x;
}

Tensor *tensor_wrap(DType t, Shape s, void *data) {
    Tensor *x = calloc(1, sizeof *x);
    if (!x) abort();
    *x = (Tensor){.dtype = t, .shape = s, .data = data, .borrowed = true};
    return x;
}

void tensor_free(Tensor *t) {
    if (!t) return;
    if (!t->borrowed) etch_aligned_free(t->data);
    free(t);
}

int64_t tensor_numel(const Tensor *t) { return shape_numel(&t->shape); }
size_t tensor_nbytes(const Tensor *t) { return (size_t)tensor_numel(t) * dtype_size(t->dtype); }

double tensor_get(const Tensor *t, int64_t i) {
    switch (t->dtype) {
    case DT_F32: return ((const float *)t->data)[i];
    case DT_F64: return ((const double *)t->data)[i];
    case DT_I32: return ((const int32_t *)t->data)[i];
    case DT_I64: return (double)((const int64_t *)t->data)[i];
    case DT_BOOL: return ((const uint8_t *)t->data)[i];
    case DT_I8: return ((const int8_t *)t->data)[i];
    case DT_U8: return ((const uint8_t *)t->data)[i];
    default: abort();
    }
}

/* Integer stores saturate (NaN stores 0): converting an out-of-range double to
 * an integer type is undefined behaviour in C, and an integer division by zero
 * in the reference kernels produces exactly such values. */
static double clamp_int(double v, double lo, double hi) { return v != v ? 0 : v < lo ? lo : v > hi ? hi : v; }

void tensor_set(Tensor *t, int64_t i, double v) {
    switch (t->dtype) {
    case DT_F32: ((float *)t->data)[i] = (float)v; break;
    case DT_F64: ((double *)t->data)[i] = v; break;
    case DT_I32: ((int32_t *)t->data)[i] = (int32_t)clamp_int(v, INT32_MIN, INT32_MAX); break;
    case DT_I64: ((int64_t *)t->data)[i] = (int64_t)clamp_int(v, -9223372036854775808.0, 9223372036854774784.0); break;
    case DT_BOOL: ((uint8_t *)t->data)[i] = v != 0; break;
    case DT_I8: ((int8_t *)t->data)[i] = (int8_t)clamp_int(v, INT8_MIN, INT8_MAX); break;
    case DT_U8: ((uint8_t *)t->data)[i] = (uint8_t)clamp_int(v, 0, UINT8_MAX); break;
    default: abort();
    }
}
