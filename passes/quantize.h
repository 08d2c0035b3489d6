/* quantize.h: post-training int8 quantization (docs/quantization.md), the
 * pieces the quantize pass (passes/quantize.c) shares with the tool's
 * calibration: which values a model's Linear layers read (the activations
 * calibration measures, named stably as "<weight param>:input"), the ranges a
 * calibration file gives them, and the request the pass works from: those
 * ranges and the parameter values, which it turns into int8 weights, int32
 * biases and requantize multipliers (new params of the rewritten graph). */
#ifndef ETCH_PASSES_QUANTIZE_H
#define ETCH_PASSES_QUANTIZE_H

#include "ir/ir.h"
#include "ir/strbuf.h"
#include "ir/tensor.h"

/* A layer the pass quantizes, as the frontend builds it: a Linear layer
 * y = x @ W^T (+ b) (then relu), with W an f32 param [N, K] (read through
 * transpose(W) or matmul's transpose_b), b an f32 param [N], x f32 [M, K];
 * or (conv) a Conv2d layer y = conv2d(x, W) (+ reshape(b) to [N, 1, 1])
 * (then relu), W an f32 param [N, C, kH, kW], groups 1. Node ids; -1 where
 * absent. */
typedef struct QuantLinear {
    int mm, x, weight, transpose, bias, add, relu; /* mm: the matmul or conv2d */
    int bias_view; /* conv: the reshape of b to [N, 1, 1] */
    int out;       /* the last node of the layer: relu, add or mm */
    bool conv;
} QuantLinear;

/* The Linear and Conv2d layers of g in id order (at most max); returns their count. */
int quant_find_linears(const Graph *g, QuantLinear *out, int max);
/* The stable name of a layer's input activation: "<weight param>:input". */
void quant_input_name(const Graph *g, const QuantLinear *l, char *buf, size_t n);

/* One calibrated activation: the range [lo, hi] calibration chose for it
 * (minmax: what it saw; percentile: its histogram's tails cut) and the
 * shape it had (the batch dim, dim 0, may differ from the model's). */
typedef struct QuantRange {
    char name[160];
    Shape shape;
    double lo, hi;
} QuantRange;

/* What the quantize pass works from and what it leaves (PassCtx.quant). */
typedef struct QuantRequest {
    const QuantRange *ranges; /* one per calibrated activation */
    int n_ranges;
    const char *calib_path;   /* names the stats file in messages */
    /* in: one tensor per param of the graph the pass gets; out (on success):
     * a new malloc'd array, one per param of the graph it returns (params it
     * drops freed, new ones allocated); params_free frees it */
    Tensor **values;
    StrBuf report;            /* out: what was quantized, and every op left in float and why */
} QuantRequest;

/* The u8 per-tensor scale and zero point of range [lo, hi] (widened to hold
 * 0): scale (hi - lo) / 255, zero point round(-lo / scale). */
void quant_activation_params(double lo, double hi, double *scale, int32_t *zero_point);

/* Quantization-aware training (`etch train --qat --calib STATS`): g (a loss
 * graph, before autodiff) with each Linear layer's operands fake-quantized
 * as the quantize pass will quantize them, so the loss sees int8 rounding
 * and the gradients pass fake_quant's straight-through estimator: the input
 * per tensor to u8 at its calibrated range's scale and zero point
 * (quant_activation_params), the weight per output channel to [-127, 127]
 * at max_k |W[c,k]| / 127 computed in the graph, in f64 as the pass does,
 * from the param's current value (so the scale follows training and the
 * integers are the ones the pass takes from the trained weights). The
 * ranges must match the layers as for the pass (q->values is not read).
 * The params are unchanged. NULL after reporting an error. */
Graph *quant_fake_quantize(const Graph *g, QuantRequest *q, Diag *d);

#endif
