/* fuzz_dsl.c: libFuzzer harness for the DSL front end.
 *
 * One input is one .etch source, compiled as `etch check` does: lexed,
 * parsed, elaborated with the embedded standard library, shape-checked while
 * tracing, and the resulting graphs verified. Any input must end in a program
 * or in diagnostics: never a crash, a sanitizer report or a hang. Built only
 * by scripts/fuzz.sh (clang, -fsanitize=fuzzer,address,undefined). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/frontend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *src = malloc(size + 1); /* sources are C strings: text stops at a NUL, as a file's check would refuse */
    if (!src) return 0;
    memcpy(src, data, size);
    src[size] = '\0';
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, NULL);
    Program *p = frontend_compile_source(a, "fuzz.etch", src, NULL, 0, &d);
    if (p) {
        if (!ir_verify(p->forward, &d)) abort(); /* the front end made an invalid graph */
        for (int i = 0; p->train && i < p->train->n_steps; i++) /* every named step's loss graph */
            if (!ir_verify(p->train->steps[i].loss, &d)) abort();
    }
    diag_add_source("fuzz.etch", ""); /* the registry must not keep the freed text */
    diag_dispose(&d);
    arena_free(a);
    free(src);
    return 0;
}
