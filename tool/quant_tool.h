/* quant_tool.h: the tool's side of int8 quantization (docs/quantization.md):
 * the calibration file (quant_stats.c), quantizing a loaded program with it,
 * and running a compiled forward over IDX images (calibrate.c), which both
 * `etch calibrate` and `etch eval --quantize int8` / `--limit N` do. */
#ifndef ETCH_TOOL_QUANT_TOOL_H
#define ETCH_TOOL_QUANT_TOOL_H

#include "frontend/frontend.h"
#include "passes/quantize.h"
#include "tool/options.h"

/* One calibrated activation as written: the range chosen and what was seen. */
typedef struct CalibTensor {
    QuantRange r;
    double min, max;
} CalibTensor;

/* Writes the calibration file atomically (nothing is left on failure). */
bool calib_write(const char *path, const char *model, const char *method, long batches, const CalibTensor *t, int n,
                 Diag *d);
/* Reads a calibration file: malloc'd ranges (*n of them), or NULL after an
 * error naming the file (and the tensor, for a range that is not finite). */
QuantRange *calib_read(const char *path, int *n, Diag *d);
/* Runs the quantize pass over p->forward with o->calib's ranges and *params
 * (the float weights, taken): on success p->forward is the quantized graph
 * and *params its params; with o->stats the pass's report goes to stdout.
 * On failure *params is freed and NULL. */
bool quantize_program(Program *p, Tensor ***params, const Options *o, Diag *d);
/* `etch train --qat`: every training step's loss graph fake-quantized with
 * o->calib's ranges (quant_fake_quantize); false after reporting. */
bool qat_program(Program *p, const Options *o, Diag *d);

/* The classification report of the compiled forward (quantized with
 * o->quantize) on the first o->limit test images of o->data (all without
 * --limit): accuracy and mean NLL, printed as the training program's eval
 * prints them. */
bool eval_compiled_images(const Options *o, Diag *d);

#endif
