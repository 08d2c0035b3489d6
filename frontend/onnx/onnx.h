/* onnx.h: the ONNX front end. It turns an ONNX model (a ModelProto file, as
 * torch.onnx.export writes it) into etch's own source language: one `model`
 * whose forward is the ONNX graph, stdlib modules (Linear, Conv2d,
 * BatchNorm2d, LayerNorm, Embedding) where a pattern is recognized and
 * builtins otherwise, plus the initializers as named tensors under the DSL's
 * parameter names. The normal front end then compiles that text, so an
 * imported model goes through exactly the checks and passes a written one
 * does. Symbolic dims are bound with -D NAME=V; shape computations (Shape,
 * Gather, Concat, ConstantOfShape, ...) are folded at import time, so every
 * shape in the result is static. See docs/onnx.md. */
#ifndef ETCH_FRONTEND_ONNX_H
#define ETCH_FRONTEND_ONNX_H

#include <stdbool.h>

#include "frontend/frontend.h"
#include "ir/arena.h"
#include "ir/diag.h"
#include "runtime/etch_rt.h"

/* The largest .onnx file read: protobuf's own limit for one message. */
#define ONNX_MAX_FILE ((size_t)2 << 30)

/* What an import produces; everything lives in the arena given to onnx_import. */
typedef struct OnnxModel {
    const char *source;     /* the DSL text of the model */
    const char *model_name; /* its `model` name (from the file name: mlp.onnx -> Mlp) */
    /* the initial parameter values, named as the DSL's params (fc1.weight);
     * tensors point into the arena; buffer is NULL (never etch_st_close it) */
    etch_st_file weights;
} OnnxModel;

/* True when path names an ONNX model (it ends in ".onnx"). */
bool onnx_is_model_path(const char *path);

/* Reads the model at path, binds its symbolic dims with defs (-D NAME=V) and
 * writes the DSL text and the weights into *out. weights_note, when set,
 * names the weights file in the text's header comment. Errors name the file
 * ("model.onnx: error: ..."); false after one. */
bool onnx_import(Arena *a, const char *path, const Define *defs, int n_defs, const char *weights_note,
                 OnnxModel *out, Diag *d);

/* onnx_import, then the DSL text compiled by the normal front end (named
 * "<path>.etch" in diagnostics); the program's weights are the imported ones. */
Program *onnx_compile_file(Arena *a, const char *path, const Define *defs, int n_defs, Diag *d);

#endif
