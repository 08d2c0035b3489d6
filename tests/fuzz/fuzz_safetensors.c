/* fuzz_safetensors.c: libFuzzer harness for the safetensors reader
 * (etch_st_read, etch_st_find, etch_st_expect, etch_st_close in
 * runtime/etch_rt.h): any bytes as a file give tensors whose every data byte
 * lies in the file and that can each be found and checked by name, or an
 * error message; never a crash or a leak. Seeds: tests/fuzz/corpus/safetensors/. */
#include "tests/fuzz/fuzz_file.h"

#include <string.h>

#include "runtime/etch_rt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    etch_st_file f;
    char err[512];
    const char *path = fuzz_file(data, n);
    if (etch_st_read(path, &f, err, sizeof err) != 0) {
        if (!err[0]) abort();
        return 0;
    }
    for (int i = 0; i < f.n; i++) {
        const etch_st_tensor *t = &f.tensors[i];
        fuzz_touch(t->array.data, etch_array_nbytes(&t->array));
        if (etch_st_find(&f, t->name) != t) abort(); /* names are unique */
        const void *p;
        if (etch_st_expect(&f, path, t->name, t->array.dtype, t->array.rank, t->array.dim, &p, err, sizeof err) ||
            p != t->array.data)
            abort();
    }
    etch_st_expect(&f, path, "no such tensor", ETCH_F32, 0, NULL, &(const void *){NULL}, err, sizeof err);
    etch_st_close(&f);
    return 0;
}
