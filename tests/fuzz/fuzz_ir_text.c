/* fuzz_ir_text.c: libFuzzer harness for the textual IR reader.
 *
 * One input is one .etchir file, read as `etch opt` and `etch ir-roundtrip`
 * do: ir_parse, then ir_verify on what it returns. A file must be parsed into
 * a graph or refused with diagnostics, and a parsed graph verified or refused:
 * never a crash, a sanitizer report or a hang. Built only by scripts/fuzz.sh. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, NULL);
    diag_add_source("fuzz.etchir", text);
    Graph *g = ir_parse(a, "fuzz.etchir", text, &d);
    if (g) (void)ir_verify(g, &d);
    diag_add_source("fuzz.etchir", "");
    diag_dispose(&d);
    arena_free(a);
    free(text);
    return 0;
}
