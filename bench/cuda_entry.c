/* cuda_entry.c: calls one entry of a compiled model library (the cuda
 * backend's, on the GPU or emulated, or the C backend's) on deterministic
 * inputs, for bench/cuda_check.sh: the same inputs reach every build, so
 * their results can be compared, then times the entry.
 *
 *   cuda_entry LIB.so PREFIX ENTRY WEIGHTS SECONDS [SAVE.safetensors]
 *
 * Loads WEIGHTS (PREFIX_load, optimizer state zero), fills each input of
 * PREFIX_ENTRY_inputs from a fixed-seed generator (floats uniform in [0, 1),
 * integers in [0, 10): class labels and token ids alike), calls
 * PREFIX_ENTRY_v once and, with SAVE, writes the parameters after that call
 * (PREFIX_save with the optimizer state: a training step's updated
 * weights). Then calls it again for about SECONDS (at least 5 times, after 2
 * warm-up calls; a training step goes on updating) and prints
 * "median_us X best_us Y calls N". Each call of a cuda build is synchronous:
 * it uploads the inputs, runs the kernels (one CUDA graph launch) and
 * downloads the outputs, and all of that is timed. */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "entry_timing.h"
#include "etch_rt.h"

typedef int (*SaveFn)(const char *path, int with_state, char *err, size_t errlen);

enum { MAX_ARGS = 32, MAX_CALLS = 20000 };

/* etch_dtype_size's table, kept here: the harness links no copy of etch_rt.c
 * beside the library's own. */
static size_t dtype_bytes(etch_dtype t) {
    static const size_t size[ETCH_DTYPE_COUNT] = {4, 8, 4, 8, 1, 1, 1};
    return (unsigned)t < ETCH_DTYPE_COUNT ? size[t] : 0;
}

/* A buffer for tensor t, filled from the generator state *s (xorshift64),
 * or zeros when s is NULL. */
static void *filled(const etch_tensor_info *t, uint64_t *s) {
    int64_t n = 1;
    for (int d = 0; d < t->rank; d++) n *= t->dim[d];
    void *buf = calloc((size_t)n + 1, dtype_bytes(t->dtype) + 1);
    if (!buf || !s) return buf;
    for (int64_t i = 0; i < n; i++) {
        *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
        double u = (double)(*s >> 40) / (double)(1u << 24);
        switch (t->dtype) {
        case ETCH_F32: ((float *)buf)[i] = (float)u; break;
        case ETCH_F64: ((double *)buf)[i] = u; break;
        case ETCH_I32: ((int32_t *)buf)[i] = (int32_t)(u * 10); break;
        case ETCH_I64: ((int64_t *)buf)[i] = (int64_t)(u * 10); break;
        case ETCH_BOOL: ((uint8_t *)buf)[i] = u < 0.5; break;
        case ETCH_U8: ((uint8_t *)buf)[i] = (uint8_t)(u * 10); break;
        case ETCH_I8: ((int8_t *)buf)[i] = (int8_t)(u * 10); break;
        default: break;
        }
    }
    return buf;
}

static void *symbol(void *lib, const char *lib_path, const char *prefix, const char *name) {
    char sym[256];
    snprintf(sym, sizeof sym, "%s_%s", prefix, name);
    void *p = dlsym(lib, sym);
    if (!p) fprintf(stderr, "%s: no symbol %s\n", lib_path, sym);
    return p;
}

int main(int argc, char **argv) {
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: %s LIB.so PREFIX ENTRY WEIGHTS SECONDS [SAVE.safetensors]\n", argv[0]);
        return 2;
    }
    const char *path = argv[1], *prefix = argv[2], *entry = argv[3], *weights = argv[4], *save = argc == 7 ? argv[6] : NULL;
    double budget = atof(argv[5]);
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) return fprintf(stderr, "%s\n", dlerror()), 1;
    char name[256], err[1024];
    snprintf(name, sizeof name, "%s_v", entry);
    EntryFn fn;
    LoadFn load;
    SaveFn store;
    *(void **)&fn = symbol(lib, path, prefix, name);
    *(void **)&load = symbol(lib, path, prefix, "load");
    *(void **)&store = symbol(lib, path, prefix, "save");
    snprintf(name, sizeof name, "%s_inputs", entry);
    const etch_tensor_info *in_info = symbol(lib, path, prefix, name);
    snprintf(name, sizeof name, "%s_outputs", entry);
    const etch_tensor_info *out_info = symbol(lib, path, prefix, name);
    if (!fn || !load || !store || !in_info || !out_info) return 1;
    if (load(weights, 0, err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
    void *in[MAX_ARGS] = {0}, *out[MAX_ARGS] = {0};
    uint64_t state = 0x9E3779B97F4A7C15ULL;
    for (int i = 0; in_info[i].name; i++)
        if (i == MAX_ARGS || !(in[i] = filled(&in_info[i], &state))) return fprintf(stderr, "too many or too large inputs\n"), 1;
    for (int i = 0; out_info[i].name; i++)
        if (i == MAX_ARGS || !(out[i] = filled(&out_info[i], NULL))) return fprintf(stderr, "too many or too large outputs\n"), 1;
    fn((const void *const *)in, out);
    if (save && store(save, 1, err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
    fn((const void *const *)in, out);
    fn((const void *const *)in, out);
    static double t[MAX_CALLS];
    int n = 0;
    for (double start = now_s(); n < MAX_CALLS && (n < 5 || now_s() - start < budget);) {
        double t0 = now_s();
        fn((const void *const *)in, out);
        t[n++] = now_s() - t0;
    }
    qsort(t, (size_t)n, sizeof t[0], cmp_double);
    printf("median_us %.1f best_us %.1f calls %d\n", t[n / 2] * 1e6, t[0] * 1e6, n);
    return 0;
}
