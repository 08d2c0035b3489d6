/* cmd_export.c: `etch export FILE -o MODEL.onnx [--weights W] [--opset N]
 * [-D NAME=V]`: the model's forward (inference) graph as ONNX
 * (codegen/onnx/), as the front end built it (before the -O pipeline fuses
 * anything), with the params as initializers under their own names: from
 * --weights W, else those that came with the model (an .onnx input's), else
 * the initializers with the default seed. The file is written atomically;
 * on an error (an op without an ONNX mapping, a bad weights file) nothing is. */
#include <string.h>

#include "codegen/onnx/export.h"
#include "frontend/onnx/onnx.h"
#include "ir/params.h"
#include "tool/commands.h"
#include "tool/pipeline.h"

#ifndef ETCH_VERSION
#define ETCH_VERSION "0.0.0"
#endif

int cmd_export(const Options *o) {
    if (!o->out) return usage_error("%s", "export needs -o MODEL.onnx");
    if (!onnx_is_model_path(o->out)) return usage_error("export writes an .onnx file, got -o '%s'", o->out);
    if (!strcmp(o->out, o->file)) return usage_error("%s", "-o must differ from the model it exports");
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = writable_output("-o", o->out, a, &d) ? load_program(a, o, &d) : NULL;
    Tensor **params = p ? load_params(p, o, &d) : NULL;
    OnnxExportOptions eo = {.opset = o->opset ? o->opset : ONNX_EXPORT_OPSET_MAX, .producer_version = ETCH_VERSION};
    bool ok = params && onnx_export(p->forward, params, &eo, o->out, &d);
    if (params) params_free(p->forward, params);
    diag_dispose(&d);
    arena_free(a);
    return ok ? 0 : 1;
}
