/* export.h: `etch export`: a model's forward (inference) graph written as an
 * ONNX model, its params as initializers under their own dotted names
 * (fc1.weight, PyTorch's state_dict names), so other tools (onnxruntime,
 * netron, etch import) read what etch compiled. Like the C backend, the
 * exporter keeps its own per-op table indexed by OpKind (codegen/onnx/ops.def):
 * each IR op becomes one ONNX node or a few (a scan a Scan with its body as
 * a subgraph); an op with no row (the training ops, random numbers,
 * fake_quant, qmatmul) is an error at its source location; quantize and
 * dequantize are QuantizeLinear and DequantizeLinear (QDQ). The file is packed with the protobuf-c code generated from
 * python3-onnx's onnx.proto (the importer's, frontend/onnx/) and written
 * atomically. See docs/onnx.md. */
#ifndef ETCH_CODEGEN_ONNX_EXPORT_H
#define ETCH_CODEGEN_ONNX_EXPORT_H

#include "ir/ir.h"
#include "ir/tensor.h"

/* The opsets written: the range etch import reads. The nodes written are
 * the same in each (none of their definitions changed between 13 and 17). */
enum { ONNX_EXPORT_OPSET_MIN = 13, ONNX_EXPORT_OPSET_MAX = 17 };

typedef struct OnnxExportOptions {
    int opset;                    /* ONNX_EXPORT_OPSET_MIN..MAX */
    const char *producer_version; /* etch's version, in the model's producer_version */
} OnnxExportOptions;

/* True when the exporter's table maps op to ONNX. */
bool onnx_export_supports(OpKind op);

/* Writes g (a forward graph as the front end built it, before the -O
 * pipeline fuses anything) to path, with params[i] the value of
 * g->params[i] as an initializer. The file appears whole or not at all; an
 * op without an ONNX mapping is reported at its source location and nothing
 * is written. */
bool onnx_export(const Graph *g, Tensor *const *params, const OnnxExportOptions *o, const char *path, Diag *d);

#endif
