/* entry_ab.c: times one compiled entry from several builds of the same model
 * in one process, calling them in turn (A, B, C, A, B, C, ...), so the drift
 * of a shared machine hits every build alike; prints the best and the median
 * time per call of each. Used by bench/ab_etch.sh to compare etch versions.
 *
 * usage: entry_ab SYMBOL REPS LIB.so... (SYMBOL: an entry's `_v` form, e.g.
 * gpt_train_step_v). Inputs are zero-filled buffers, except that
 * ENTRY_AB_INPUT0=X.npy (a version 1 .npy, e.g. from `etch make-input --idx`)
 * fills input 0 with its data; parameters keep whatever the library starts
 * with (zeros unless embedded), except that ENTRY_AB_LOAD=<prefix>_load and
 * ENTRY_AB_WEIGHTS=W.safetensors load those weights into every library. Emitted code has no
 * data-dependent branches left, but zeros still flatter some kernels (a max
 * pooling over constant windows was 1.7x faster before it lost its branch):
 * time real inputs. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "entry_timing.h"

enum { MAX_LIBS = 8, MAX_ARGS = 16, BUF_BYTES = 1 << 25 };

/* Copies the data of a version 1 .npy file into buf (at most cap bytes); 0 on success. */
static int read_npy(const char *path, void *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    unsigned char head[10];
    if (!f || fread(head, 1, 10, f) != 10 || memcmp(head, "\x93NUMPY\x01", 7) != 0) {
        if (f) fclose(f);
        return fprintf(stderr, "%s: not a version 1 .npy file\n", path), 1;
    }
    long data = 10 + (long)(head[8] | head[9] << 8);
    if (fseek(f, data, SEEK_SET) != 0) return fclose(f), 1;
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n == 0 ? (fprintf(stderr, "%s: no data\n", path), 1) : 0;
}

int main(int argc, char **argv) {
    if (argc < 4 || argc - 3 > MAX_LIBS) {
        fprintf(stderr, "usage: %s SYMBOL REPS LIB.so... (at most %d libraries)\n", argv[0], MAX_LIBS);
        return 2;
    }
    int n_libs = argc - 3, reps = atoi(argv[2]);
    if (reps < 1) reps = 1;
    EntryFn fn[MAX_LIBS];
    for (int k = 0; k < n_libs; k++) {
        void *h = dlopen(argv[3 + k], RTLD_NOW | RTLD_LOCAL);
        if (!h) return fprintf(stderr, "%s\n", dlerror()), 1;
        fn[k] = (EntryFn)(size_t)dlsym(h, argv[1]);
        if (!fn[k]) return fprintf(stderr, "%s: no symbol %s\n", argv[3 + k], argv[1]), 1;
        const char *load = getenv("ENTRY_AB_LOAD"), *weights = getenv("ENTRY_AB_WEIGHTS");
        if (load && *load && weights && *weights) {
            LoadFn lf = (LoadFn)(size_t)dlsym(h, load);
            char err[512];
            if (!lf) return fprintf(stderr, "%s: no symbol %s\n", argv[3 + k], load), 1;
            if (lf(weights, 0, err, sizeof err) != 0) return fprintf(stderr, "%s\n", err), 1;
        }
    }
    void *in[MAX_ARGS], *out[MAX_ARGS];
    for (int i = 0; i < MAX_ARGS; i++) {
        in[i] = calloc(1, BUF_BYTES), out[i] = calloc(1, BUF_BYTES);
        if (!in[i] || !out[i]) return fprintf(stderr, "out of memory\n"), 1;
    }
    const char *input0 = getenv("ENTRY_AB_INPUT0");
    if (input0 && *input0 && read_npy(input0, in[0], BUF_BYTES) != 0) return 1;
    double *t[MAX_LIBS];
    for (int k = 0; k < n_libs; k++) {
        if (!(t[k] = malloc(sizeof(double) * (size_t)reps))) return fprintf(stderr, "out of memory\n"), 1;
        fn[k]((const void *const *)in, out); /* warm-up */
    }
    for (int r = 0; r < reps; r++)
        for (int k = 0; k < n_libs; k++) {
            double s = now_s();
            fn[k]((const void *const *)in, out);
            t[k][r] = now_s() - s;
        }
    for (int k = 0; k < n_libs; k++) {
        qsort(t[k], (size_t)reps, sizeof(double), cmp_double);
        printf("  %-48s best %10.1f us  median %10.1f us\n", argv[3 + k], t[k][0] * 1e6, t[k][reps / 2] * 1e6);
    }
    return 0;
}
