/* entry_ab.c: times one compiled entry from several builds of the same model
 * in one process, calling them in turn (A, B, C, A, B, C, ...), so the drift
 * of a shared machine hits every build alike; prints the best and the median
 * time per call of each. Used by bench/ab_etch.sh to compare etch versions.
 *
 * usage: entry_ab SYMBOL REPS LIB.so... (SYMBOL: an entry's `_v` form, e.g.
 * gpt_train_step_v). Inputs are zero-filled buffers and parameters keep
 * whatever the library starts with: kernel times do not depend on values
 * here (no data-dependent branches in emitted code). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef void (*EntryFn)(const void *const *inputs, void *const *outputs);

enum { MAX_LIBS = 8, MAX_ARGS = 16, BUF_BYTES = 1 << 25 };

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
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
    }
    void *in[MAX_ARGS], *out[MAX_ARGS];
    for (int i = 0; i < MAX_ARGS; i++) {
        in[i] = calloc(1, BUF_BYTES), out[i] = calloc(1, BUF_BYTES);
        if (!in[i] || !out[i]) return fprintf(stderr, "out of memory\n"), 1;
    }
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
