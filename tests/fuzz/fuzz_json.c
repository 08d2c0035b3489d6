/* fuzz_json.c: libFuzzer harness for the runtime's JSON parser, which is
 * static in the runtime (it reads only safetensors headers), so it is fuzzed
 * through etch_st_read: the input is the header, wrapped here in a valid
 * safetensors frame (8-byte little-endian length, the header, then 64 bytes
 * of data for any offsets it names). The fuzzer then spends its time on the
 * JSON (strings, escapes, \u surrogates, nesting, numbers) rather than on the
 * frame. Seeds: tests/fuzz/corpus/json/ (headers only). */
#include "tests/fuzz/fuzz_file.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/etch_rt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    enum { DATA = 64 };
    uint8_t *file = malloc(8 + n + DATA);
    if (!file) return 0;
    for (int i = 0; i < 8; i++) file[i] = (uint8_t)((uint64_t)n >> (8 * i));
    if (n) memcpy(file + 8, data, n);
    memset(file + 8 + n, 0, DATA);
    etch_st_file f;
    char err[512];
    if (etch_st_read(fuzz_file(file, 8 + n + DATA), &f, err, sizeof err) == 0) {
        for (int i = 0; i < f.n; i++) fuzz_touch(f.tensors[i].array.data, etch_array_nbytes(&f.tensors[i].array));
        etch_st_close(&f);
    } else if (!err[0]) {
        abort();
    }
    free(file);
    return 0;
}
