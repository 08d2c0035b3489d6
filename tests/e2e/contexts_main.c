/* contexts_main.c: one compiled model (prefix m, tests/e2e/contexts.etch)
 * run from several threads at once, each in its own context (m_ctx_create),
 * and the default context's m_forward on the main thread meanwhile. Every
 * result must equal, bit for bit, what m_forward computed for the same
 * input before any thread started. Usage: contexts WEIGHTS.safetensors.
 * Prints "contexts: ok" or the first mismatch; exit 1 on any failure. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

enum { N_THREADS = 3, N_INPUTS = N_THREADS + 1, ROUNDS = 4 };

static size_t numel(const etch_tensor_info *t) {
    size_t n = 1;
    for (int k = 0; k < t->rank; k++) n *= (size_t)t->dim[k];
    return n;
}

typedef struct Worker {
    m_ctx *ctx; /* NULL: the default context (m_forward) */
    const float *in, *want;
    float *got;
    size_t out_n;
    int mismatches;
} Worker;

static void *run(void *arg) {
    Worker *w = arg;
    for (int r = 0; r < ROUNDS; r++) {
        memset(w->got, 0, w->out_n * sizeof(float));
        if (w->ctx) m_forward_ctx(w->ctx, w->in, w->got);
        else m_forward(w->in, w->got);
        w->mismatches += memcmp(w->got, w->want, w->out_n * sizeof(float)) != 0;
    }
    return NULL;
}

int main(int argc, char **argv) {
    char err[512];
    if (argc != 2 || m_load(argv[1], 0, err, sizeof err)) {
        fprintf(stderr, "%s\n", argc != 2 ? "usage: contexts WEIGHTS.safetensors" : err);
        return 1;
    }
    size_t in_n = numel(&m_forward_inputs[0]), out_n = numel(&m_forward_outputs[0]);
    float *in = malloc(N_INPUTS * in_n * sizeof(float)), *want = malloc(N_INPUTS * out_n * sizeof(float));
    float *got = malloc(N_INPUTS * out_n * sizeof(float));
    if (!in || !want || !got) return 1;
    unsigned s = 12345; /* a different image per input: an LCG in [0, 1) */
    for (size_t i = 0; i < N_INPUTS * in_n; i++) in[i] = (float)((s = s * 1103515245u + 12345u) >> 8) / 16777216.0f;
    for (int k = 0; k < N_INPUTS; k++) m_forward(in + k * in_n, want + k * out_n); /* one at a time */
    for (int k = 1; k < N_INPUTS; k++)
        if (!memcmp(want, want + k * out_n, out_n * sizeof(float))) {
            fprintf(stderr, "inputs 0 and %d give the same output: the test cannot tell contexts apart\n", k);
            return 1;
        }
    Worker w[N_INPUTS];
    pthread_t th[N_THREADS];
    for (int k = 0; k < N_INPUTS; k++) {
        w[k] = (Worker){NULL, in + k * in_n, want + k * out_n, got + k * out_n, out_n, 0};
        if (k < N_THREADS && !(w[k].ctx = m_ctx_create(err, sizeof err))) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
    }
    for (int k = 0; k < N_THREADS; k++)
        if (pthread_create(&th[k], NULL, run, &w[k])) return 1;
    run(&w[N_THREADS]); /* the default context, on this thread, meanwhile */
    int bad = 0;
    for (int k = 0; k < N_INPUTS; k++) {
        if (k < N_THREADS) pthread_join(th[k], NULL);
        if (w[k].mismatches) fprintf(stderr, "input %d: %d of %d runs differ from m_forward's\n", k, w[k].mismatches, ROUNDS);
        bad |= w[k].mismatches;
        m_ctx_free(w[k].ctx);
    }
    free(in), free(want), free(got);
    if (bad) return 1;
    printf("contexts: ok\n");
    return 0;
}
