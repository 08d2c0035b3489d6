/* alternate_forward.c: times the forward of several builds of one model in
 * one process, alternating between them (rounds of N calls each, best round
 * kept), so that ratios are measured under the same load (docs/quantization.md,
 * "Measured"). Each build is a folder of `etch build` (libnet.so, prefix net:
 * a model named Net) with its weights file; inputs are pixels k/255.
 *
 *   cc -O2 -o /tmp/alt bench/alternate_forward.c -ldl
 *   /tmp/alt BATCH CALLS LIB1 WEIGHTS1 [LIB2 WEIGHTS2 ...]   (in_x f32[BATCH, 784]) */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef int (*load_fn)(const char *, int, char *, size_t);
typedef void (*forward_fn)(const float *, float *);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 5 || argc % 2 == 0 || argc > 19) {
        fprintf(stderr, "usage: %s BATCH CALLS LIB WEIGHTS [LIB WEIGHTS ...] (at most 8)\n", argv[0]);
        return 2;
    }
    int batch = atoi(argv[1]), calls = atoi(argv[2]), n = (argc - 3) / 2;
    float *x = malloc(sizeof(float) * batch * 784), *y = malloc(sizeof(float) * batch * 1000);
    srand(1);
    for (int i = 0; i < batch * 784; i++) x[i] = (float)(rand() % 256) / 255.0f;
    forward_fn f[8];
    double best[8];
    for (int i = 0; i < n; i++) {
        void *h = dlopen(argv[3 + 2 * i], RTLD_NOW | RTLD_LOCAL);
        char err[256];
        if (!h) return fprintf(stderr, "%s\n", dlerror()), 1;
        if (((load_fn)dlsym(h, "net_load"))(argv[4 + 2 * i], 0, err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
        *(void **)&f[i] = dlsym(h, "net_forward");
        best[i] = 1e9;
    }
    for (int round = 0; round < 7; round++)
        for (int i = 0; i < n; i++) {
            double t = now();
            for (int k = 0; k < calls; k++) f[i](x, y);
            t = (now() - t) / calls;
            if (t < best[i]) best[i] = t;
        }
    for (int i = 0; i < n; i++)
        printf("%-40s %10.2f us  %5.2fx the first\n", argv[3 + 2 * i], best[i] * 1e6, best[0] / best[i]);
    return 0;
}
