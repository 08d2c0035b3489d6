/* fuzz_npy.c: libFuzzer harness for the .npy reader (etch_npy_read in
 * runtime/etch_rt.h): any bytes as a .npy file must give an array whose
 * every byte is readable, or an error message, never a crash. Seeds:
 * tests/fuzz/corpus/npy/ (tests/fuzz/make_corpus.py). */
#include "tests/fuzz/fuzz_file.h"

#include <string.h>

#include "runtime/etch_rt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    etch_array a;
    memset(&a, 0, sizeof a);
    char err[512];
    if (etch_npy_read(fuzz_file(data, n), &a, err, sizeof err) == 0) {
        if (a.rank < 0 || a.rank > ETCH_RT_MAX_RANK) abort();
        fuzz_touch(a.data, etch_array_nbytes(&a));
        etch_array_free(&a);
    } else if (!err[0]) {
        abort(); /* a failure must say why */
    }
    return 0;
}
