/* backend_cuda.c: the CUDA backend's entries in the backend interface
 * (codegen/backend.h): its op table (codegen/cuda/ops.def), its target for
 * the passes, emitting model.cu (emit_cuda.c), and compiling: with nvcc for
 * the GPU (backend_cuda), or model_host.c with the system C compiler, the
 * same kernels run on the CPU (backend_cuda_emulated, `--host-emulate`). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/build.h"
#include "codegen/cuda/cuda_emit.h"
#include "codegen/cuda/emit_cuda.h"

static bool cuda_op_supported(OpKind op) { return cuda_op_table[op] != CUDA_UNSUPPORTED; }

static const Target cuda_target = {
    .name = "cuda",
    .max_group_leaves = OPS_MAX_OPERANDS, /* the C backend's group helpers' leaf arrays, which group.c uses */
    .max_group_members = 20,
    .max_row_group_members = 48, /* as the C backend: layer norm, softmax, their gradients (rowgroup.c) */
    /* GEMM epilogues of any size: a block applies the group to its own
     * 64 x 64 tile of the product (ops/matmul.c), reading each full-size
     * operand's elements of that tile once, along rows of 64 consecutive
     * values (whole 32-byte sectors), exactly what the separate elementwise
     * kernel would read, but without storing the product and loading it
     * back. No per-core cache is thrashed by it, unlike the C backend's
     * column strips (passes/fuse.c, epilogue_pays), so fusing always pays. */
    .epilogue_cache_bytes = INT64_MAX,
    .arena_align = 256, /* the device allocation's alignment, good for coalesced and vector loads */
    .float_conv_max_taps = 0,
};

/* The sources as the system compiler sees them on the CPU: model.cu is
 * compiled through model_host.c, which defines ETCH_HOST_EMULATE. */
static bool compile_emulated(const char *dir, const char *const *sources, int n_sources, const char *out, bool shared,
                             const char *opt_flags, const char *libs, Diag *d) {
    const char *src[32];
    for (int i = 0; i < n_sources && i < 32; i++) src[i] = strcmp(sources[i], "model.cu") ? sources[i] : "model_host.c";
    return build_compile_libs(dir, src, n_sources < 32 ? n_sources : 32, out, shared, opt_flags, libs, d);
}

/* nvcc: $ETCH_NVCC, else nvcc of $CUDA_HOME or /usr/local/cuda, else on PATH. */
static bool find_nvcc(char *buf, size_t n, char *home, size_t hn, Diag *d) {
    const char *env = getenv("ETCH_NVCC"), *cuda_home = getenv("CUDA_HOME");
    snprintf(home, hn, "%s", cuda_home && *cuda_home ? cuda_home : "/usr/local/cuda");
    if (env && *env) return snprintf(buf, n, "%s", env), true;
    snprintf(buf, n, "%s/bin/nvcc", home);
    if (access(buf, X_OK) == 0) return true;
    const char *path = getenv("PATH");
    for (const char *p = path ? path : ""; *p;) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        snprintf(buf, n, "%.*s/nvcc", (int)len, p);
        if (len && access(buf, X_OK) == 0) return true;
        p += len + (end ? 1 : 0);
    }
    return diag_error_plain(d, "nvcc not found (looked at $ETCH_NVCC, %s/bin/nvcc and PATH): the cuda backend compiles "
                               "model.cu with the CUDA toolkit's nvcc (NVIDIA's cuda-toolkit package, installed "
                               "under /usr/local/cuda; or set CUDA_HOME or ETCH_NVCC); --host-emulate runs the same "
                               "kernels on the CPU without it", home);
}

/* The GPU build: nvcc compiles model.cu into an object (for sm_80 and
 * sm_90, or $ETCH_CUDA_ARCH, e.g. "-arch=native"), then the system compiler
 * links it with the other sources and the CUDA runtime. */
static bool compile_nvcc(const char *dir, const char *const *sources, int n_sources, const char *out, bool shared,
                         const char *opt_flags, const char *libs, Diag *d) {
    char nvcc[4096], home[2048], obj[4096], cu[4096];
    if (!find_nvcc(nvcc, sizeof nvcc, home, sizeof home, d)) return false;
    snprintf(obj, sizeof obj, "%s/model.cu.o", dir);
    snprintf(cu, sizeof cu, "%s/model.cu", dir);
    const char *arch = getenv("ETCH_CUDA_ARCH");
    char *arch_copy = strdup(arch && *arch ? arch : "-gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_90,code=[sm_90,compute_90]");
    if (!arch_copy) abort();
    const char *argv[48];
    int n = 0;
    argv[n++] = nvcc;
    argv[n++] = "-O3";
    argv[n++] = "-std=c++17";
    argv[n++] = "-Xcompiler";
    argv[n++] = "-fPIC";
    char asm_inc[4200]; /* embedded weights: model.cu's .incbin finds <prefix>_weights.bin here */
    snprintf(asm_inc, sizeof asm_inc, "-Wa\\,-I%s", dir); /* nvcc splits -Xcompiler at unescaped commas */
    argv[n++] = "-Xcompiler";
    argv[n++] = asm_inc;
    argv[n++] = "-Werror";
    argv[n++] = "all-warnings";
    for (char *tok = strtok(arch_copy, " \t"); tok && n < 40; tok = strtok(NULL, " \t")) argv[n++] = tok;
    argv[n++] = "-c";
    argv[n++] = cu;
    argv[n++] = "-o";
    argv[n++] = obj;
    argv[n] = NULL;
    bool ok = build_spawn(argv, d);
    free(arch_copy);
    if (!ok) return false;
    const char *src[32];
    for (int i = 0; i < n_sources && i < 32; i++) src[i] = strcmp(sources[i], "model.cu") ? sources[i] : "model.cu.o";
    char link[4600];
    snprintf(link, sizeof link, "%s -L%s/lib64 -Wl,-rpath,%s/lib64 -lcudart -lstdc++", libs ? libs : "", home, home);
    ok = build_compile_libs(dir, src, n_sources < 32 ? n_sources : 32, out, shared, opt_flags, link, d);
    unlink(obj);
    return ok;
}

const Backend backend_cuda = {
    .name = "cuda",
    .op_supported = cuda_op_supported,
    .target = &cuda_target,
    .model_source = cuda_model_source,
    .write = cuda_write,
    .compile = compile_nvcc,
};

const Backend backend_cuda_emulated = {
    .name = "cuda",
    .op_supported = cuda_op_supported,
    .target = &cuda_target,
    .model_source = cuda_model_source,
    .write = cuda_write,
    .compile = compile_emulated,
};
