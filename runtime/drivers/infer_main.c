/* infer_main.c: the driver `etch build --exe` compiles with a model into a
 * standalone inference program:
 *     PROGRAM [--weights W.safetensors] IN.npy... OUT.npy...
 *     PROGRAM [--weights W.safetensors] IN.npy... OUT.npz
 * One .npy path per forward output, in order, or one path ending in .npz for
 * all of them: a NumPy .npz whose members out0, out1, ... are the outputs in
 * order (numpy.load(OUT.npz)["out1"]). It is model-independent: model.h
 * describes the forward entry's inputs and outputs (names, dtypes, shapes),
 * and every input file is checked against them before the model runs. Needs
 * only libc, libm and etch_rt.c. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <stdio.h>
#include <string.h>

#include "etch_rt.h"
#include "model.h"

enum { N_IN = ETCH_FORWARD_N_INPUTS, N_OUT = ETCH_FORWARD_N_OUTPUTS };

static int usage(const char *prog, FILE *f) {
    fprintf(f, "usage: %s%s", prog, ETCH_WEIGHTS_EMBEDDED ? "" : " --weights W.safetensors");
    for (int i = 0; i < N_IN; i++) fprintf(f, " %s.npy", ETCH_MODEL(forward_inputs)[i].name);
    fprintf(f, " (");
    for (int i = 0; i < N_OUT; i++) fprintf(f, "OUT%d.npy ", i);
    fprintf(f, "| OUT.npz)\n");
    return f == stdout ? 0 : 2;
}

/* The one output path ends in .npz: all outputs go into it. */
static int is_npz(const char *path) {
    size_t n = strlen(path);
    return n >= 4 && !strcmp(path + n - 4, ".npz");
}

int main(int argc, char **argv) {
    const char *weights = NULL, *files[N_IN + N_OUT + 1];
    int n_files = 0;
    char err[1024];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(argv[0], stdout);
        if (!strcmp(argv[i], "--weights") && i + 1 < argc) {
            weights = argv[++i];
            continue;
        }
        if (n_files == N_IN + N_OUT) return usage(argv[0], stderr);
        files[n_files++] = argv[i];
    }
    int npz = n_files == N_IN + 1 && is_npz(files[N_IN]);
    if (n_files != N_IN + N_OUT && !npz) return usage(argv[0], stderr);
    if (ETCH_MODEL(load)(weights, 0, err, sizeof err)) {
        fprintf(stderr, "%s: error: %s\n", argv[0], err);
        return 1;
    }
    etch_array in[N_IN + 1], out[N_OUT + 1];
    const void *in_ptr[N_IN + 1];
    void *out_ptr[N_OUT + 1];
    int status = 1, n_in = 0, n_out = 0;
    for (; n_in < N_IN; n_in++) {
        const etch_tensor_info *t = &ETCH_MODEL(forward_inputs)[n_in];
        if (etch_npy_read(files[n_in], &in[n_in], err, sizeof err)) goto done;
        int same = in[n_in].dtype == t->dtype && in[n_in].rank == t->rank;
        for (int k = 0; same && k < t->rank; k++) same = in[n_in].dim[k] == t->dim[k];
        in_ptr[n_in] = in[n_in].data;
        if (!same) {
            char want[128], got[128];
            etch_array_describe(want, sizeof want, t->dtype, t->rank, t->dim);
            etch_array_describe(got, sizeof got, in[n_in].dtype, in[n_in].rank, in[n_in].dim);
            snprintf(err, sizeof err, "%s: input '%s' must be %s, the file holds %s", files[n_in], t->name, want, got);
            n_in++;
            goto done;
        }
    }
    for (; n_out < N_OUT; n_out++) {
        const etch_tensor_info *t = &ETCH_MODEL(forward_outputs)[n_out];
        if (etch_array_alloc(&out[n_out], t->dtype, t->rank, t->dim)) {
            snprintf(err, sizeof err, "out of memory");
            goto done;
        }
        out_ptr[n_out] = out[n_out].data;
    }
    ETCH_MODEL(forward_v)(in_ptr, out_ptr);
    char names[N_OUT][16];
    const char *name_ptr[N_OUT];
    for (int i = 0; i < N_OUT; i++) snprintf(names[i], sizeof names[i], "out%d", i), name_ptr[i] = names[i];
    if (npz && etch_npz_write(files[N_IN], N_OUT, name_ptr, out, err, sizeof err)) goto done;
    for (int i = 0; !npz && i < N_OUT; i++)
        if (etch_npy_write(files[N_IN + i], &out[i], err, sizeof err)) goto done;
    status = 0;
done:
    if (status) fprintf(stderr, "%s: error: %s\n", argv[0], err);
    for (int i = 0; i < n_in; i++) etch_array_free(&in[i]);
    for (int i = 0; i < n_out; i++) etch_array_free(&out[i]);
    return status;
}
