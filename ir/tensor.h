/* tensor.h: dense host tensors for the eager executor and the reference kernels.
 *
 * A Tensor is a dtype, a static shape and row-major storage. The eager executor
 * allocates one per op result as it goes, the way a dynamic framework does. */
#ifndef ETCH_TENSOR_H
#define ETCH_TENSOR_H

#include "ir/ir.h"

struct Tensor {
    DType dtype;
    Shape shape;
    void *data; /* 64-byte aligned, owned by the tensor unless borrowed */
    bool borrowed;
};

Tensor *tensor_new(DType t, Shape s);              /* zero-filled */
Tensor *tensor_wrap(DType t, Shape s, void *data); /* borrows data */
void tensor_free(Tensor *t);
int64_t tensor_numel(const Tensor *t);
size_t tensor_nbytes(const Tensor *t);
/* Element i (flat, row-major) as double, and back; for reference kernels. */
double tensor_get(const Tensor *t, int64_t i);
void tensor_set(Tensor *t, int64_t i, double v);

#endif
