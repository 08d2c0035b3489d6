/* matmul_bench.c: GFLOP/s of etch's emitted matmul kernels against OpenBLAS
 * sgemm, in one process so both see the same machine state. Each shape is a
 * one-node graph (out = a @ b, with the node's transpose flags), emitted by
 * the C backend like any model (emit_matmul -> codegen/c/gemm.c), compiled
 * with the system cc at -O2 into a shared library and timed through its
 * entry function. Built and run by bench/matmul.sh; not a test. */
#include <cblas.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codegen/build.h"
#include "codegen/c/emit_c.h"
#include "ir/ir.h"
#include "passes/pass.h"

typedef struct Shape3 {
    const char *what;
    int m, n, k;
    bool ta, tb;
} Shape3;

/* The 512^3 target; the MLP's products as written in the task ([in, out]
 * weights); then as samples/mlp.etch really compiles them (Linear keeps
 * W as [out, in], the simplify pass folds the transposes into the matmuls). */
static const Shape3 SHAPES[] = {
    {"512^3", 512, 512, 512, 0, 0},
    {"[64,784]x[784,128]", 64, 128, 784, 0, 0},
    {"[64,128]x[128,10]", 64, 10, 128, 0, 0},
    {"[784,64]x[64,128] (A^T stored)", 784, 128, 64, 1, 0},
    {"[64,128]x[128,784]", 64, 784, 128, 0, 0},
    {"[1,784]x[784,128]", 1, 128, 784, 0, 0},
    {"mlp fc1 fwd x W1^T", 64, 128, 784, 0, 1},
    {"mlp fc2 fwd h W2^T", 64, 10, 128, 0, 1},
    {"mlp fc2 dh  gy W2", 64, 128, 10, 0, 0},
    {"mlp fc2 dW  gy^T h", 10, 128, 64, 1, 0},
    {"mlp fc1 dW  gy^T x", 128, 784, 64, 1, 0},
    {"mlp batch-1 x W1^T", 1, 128, 784, 0, 1},
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

typedef void (*EntryFn)(const void *const *, void *const *);

/* Emits and compiles the product for s with `threads`; returns the entry (and the handle in *h). */
static EntryFn build(const Shape3 *s, int threads, void **h, char **dir) {
    Diag d;
    diag_init(&d, stderr);
    Arena *a = arena_new();
    Graph *g = graph_new(a, "matmul");
    SrcLoc L = {"bench", 1, 1};
    Shape sa = {.rank = 2}, sb = {.rank = 2};
    sa.dim[0] = s->ta ? s->k : s->m, sa.dim[1] = s->ta ? s->m : s->k;
    sb.dim[0] = s->tb ? s->n : s->k, sb.dim[1] = s->tb ? s->k : s->n;
    int x = graph_add_input(g, "a", DT_F32, sa, L), y = graph_add_input(g, "b", DT_F32, sb, L);
    NodeAttrs at = {0};
    at.trans_a = s->ta, at.trans_b = s->tb;
    int z = graph_add_op(g, OP_MATMUL, (int[]){x, y}, 2, &at, L, &d);
    if (z < 0) exit(1);
    graph_add_output(g, z);
    g = passes_run(g, &(PassOptions){.opt_level = 0, .target = backend_c.target}, &d); /* the memory plan */
    if (!g) exit(1);
    *dir = build_tempdir(&d);
    CGenOptions o = {.prefix = "m", .threads = threads};
    CGenEntry entry = {g, "forward"};
    const char *src[] = {"model.c", "etch_rt.c"};
    if (!*dir || !cgen_write(&entry, 1, &o, *dir, NULL, &d) || !build_compile(*dir, src, 2, "libm.so", true, "-O2", &d))
        exit(1);
    char lib[4096];
    snprintf(lib, sizeof lib, "%s/libm.so", *dir);
    *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!*h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        exit(1);
    }
    EntryFn f;
    *(void **)&f = dlsym(*h, "m_forward_v");
    arena_free(a);
    diag_dispose(&d);
    return f;
}

/* Best time of many short batches, the two contenders interleaved. */
static void timeit(const Shape3 *s, EntryFn *fs, int nf, double *best) {
    size_t na = (size_t)s->m * (size_t)s->k, nb = (size_t)s->k * (size_t)s->n, nc = (size_t)s->m * (size_t)s->n;
    float *a = malloc(na * 4), *b = malloc(nb * 4), *c = malloc(nc * 4);
    for (size_t i = 0; i < na; i++) a[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    for (size_t i = 0; i < nb; i++) b[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    double flops = 2.0 * s->m * s->n * s->k;
    int inner = (int)(4e6 / flops) + 1;
    const void *ins[2] = {a, b};
    void *outs[1] = {c};
    for (int f = 0; f <= nf; f++) best[f] = 1e30;
    for (double start = now(); now() - start < 2.0;) {
        for (int f = 0; f <= nf; f++) {
            double t = now();
            for (int i = 0; i < inner; i++) {
                if (f < nf) fs[f](ins, outs);
                else
                    cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans,
                                s->m, s->n, s->k, 1.0f, a, s->ta ? s->m : s->k, b, s->tb ? s->k : s->n, 0.0f, c, s->n);
            }
            t = (now() - t) / inner;
            if (t < best[f]) best[f] = t;
        }
    }
    for (int f = 0; f <= nf; f++) best[f] = flops / best[f] * 1e-9;
    free(a), free(b), free(c);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    printf("%-34s %10s %10s %7s", "f32 matmul (GFLOP/s, best of 2 s)", "etch", "OpenBLAS", "ratio");
    char col[32];
    snprintf(col, sizeof col, "etch x%d", threads);
    if (threads > 1) printf(" %10s", col);
    printf("\n");
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++) {
        const Shape3 *s = &SHAPES[i];
        void *h[2];
        char *dir[2];
        EntryFn f[2];
        int nf = threads > 1 ? 2 : 1;
        for (int j = 0; j < nf; j++) f[j] = build(s, j ? threads : 1, &h[j], &dir[j]);
        double g[3];
        timeit(s, f, nf, g);
        double blas = g[nf];
        printf("%-34s %10.1f %10.1f %7.2f", s->what, g[0], blas, g[0] / blas);
        if (threads > 1) printf(" %10.1f", g[1]);
        printf("\n");
        fflush(stdout);
        for (int j = 0; j < nf; j++) {
            dlclose(h[j]);
            build_rmtree(dir[j]);
            free(dir[j]);
        }
    }
    return 0;
}
