/* fuzz_onnx.c: libFuzzer harness for the ONNX importer (frontend/onnx: the
 * protobuf-c reader of ModelProto, tensor contents, shape folding, the op
 * rules, the DSL writer) and the front end behind it, as `etch check
 * model.onnx` runs them. Any bytes as an .onnx file must end in a program or
 * in diagnostics: never a crash, a sanitizer report or a hang. The input is
 * written to model.onnx in a private temporary folder (not a memfd: external
 * data locations resolve next to the model, and there they find nothing).
 * Seeds: tests/fuzz/corpus/onnx/ (torch.onnx.export of small models like
 * those of tests/e2e/onnx_import.py: Sequential with ReLU6, convs and pools,
 * Split/Where/Expand, folded shapes, batched MatMul) and the catalogue's
 * tests/catalogue/models/onnx/; regress/onnx/ holds inputs that once failed.
 * Built only by scripts/fuzz.sh (clang, -fsanitize=fuzzer,address,undefined). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frontend/onnx/onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/etch-fuzz-onnx-XXXXXX", path[256];

static void remove_folder(void) { /* at exit: nothing left behind */
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!path[0]) {
        if (!mkdtemp(dir)) abort();
        snprintf(path, sizeof path, "%s/model.onnx", dir);
        atexit(remove_folder);
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f)) abort();
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, NULL);
    Program *p = onnx_compile_file(a, path, NULL, 0, &d);
    if (!p && d.n_errors == 0) abort(); /* a failure must say why */
    if (p && !ir_verify(p->forward, &d)) abort();
    char name[300];
    snprintf(name, sizeof name, "%s (imported)", path);
    diag_add_source(name, ""); /* the registry must not keep the freed text */
    diag_dispose(&d);
    arena_free(a);
    return 0;
}
