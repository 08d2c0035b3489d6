/* fuzz_gzip.c: libFuzzer harness for the gzip/inflate decoder (etch_gunzip
 * in runtime/etch_rt.h), which takes bytes in memory: the inflated bytes,
 * all readable, or an error message, never a crash or a hang. Seeds:
 * tests/fuzz/corpus/gzip/. */
#include "tests/fuzz/fuzz_file.h"

#include <stdlib.h>

#include "runtime/etch_rt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    unsigned char *out = NULL;
    size_t n_out = 0;
    char err[512];
    if (etch_gunzip(data, n, &out, &n_out, err, sizeof err) == 0) {
        fuzz_touch(out, n_out);
        free(out);
    } else if (!err[0]) {
        abort();
    }
    return 0;
}
