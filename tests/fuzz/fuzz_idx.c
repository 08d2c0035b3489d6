/* fuzz_idx.c: libFuzzer harness for the IDX reader (etch_idx_read in
 * runtime/etch_rt.h), plain or gzip-compressed (a file starting with the gzip
 * magic is inflated first): an array whose every byte is readable, or an
 * error message, never a crash. Seeds: tests/fuzz/corpus/idx/. */
#include "tests/fuzz/fuzz_file.h"

#include <string.h>

#include "runtime/etch_rt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    etch_array a;
    memset(&a, 0, sizeof a);
    char err[512];
    if (etch_idx_read(fuzz_file(data, n), &a, err, sizeof err) == 0) {
        if (a.rank < 0 || a.rank > ETCH_RT_MAX_RANK) abort();
        fuzz_touch(a.data, etch_array_nbytes(&a));
        etch_array_free(&a);
    } else if (!err[0]) {
        abort();
    }
    return 0;
}
