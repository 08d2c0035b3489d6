/* build.h: turning emitted C into binaries with the system C compiler, and
 * running programs, for `etch build` and `etch run`. */
#ifndef ETCH_CODEGEN_BUILD_H
#define ETCH_CODEGEN_BUILD_H

#include <sys/types.h>

#include "ir/diag.h"

/* Runs argv (NULL-terminated) and waits; true when it exits 0. Failures to
 * start, signals and non-zero exits are reported through d (quiet: only
 * report, the child's own stderr is passed through). */
bool build_spawn(const char *const *argv, Diag *d);
/* Starts argv with its stdout and stderr written to the file log (created
 * or truncated) and returns at once: the child's pid, or -1 after reporting. */
pid_t build_start_logged(const char *const *argv, const char *log, Diag *d);
/* Compiles sources (in dir) into dir/out with $CC (default cc): a shared
 * library when shared, else a program. Links only libm. Writes out.tmp and
 * renames it, so a failed build leaves nothing behind. */
bool build_compile(const char *dir, const char *const *sources, int n_sources, const char *out, bool shared,
                   const char *opt_flags, Diag *d);
/* The same, with extra libraries (space-separated, e.g. "-lopenblas") linked
 * after the sources. */
bool build_compile_libs(const char *dir, const char *const *sources, int n_sources, const char *out, bool shared,
                        const char *opt_flags, const char *libs, Diag *d);
/* mkdir -p */
bool build_mkdirs(const char *path, Diag *d);
/* A fresh temporary folder ($TMPDIR or /tmp); caller removes it with build_rmtree. */
char *build_tempdir(Diag *d);
void build_rmtree(const char *path);

/* The C compiler flags for emitted code unless --cflags says otherwise. -O3
 * vectorizes the fused elementwise loops (GCC's -O2 cost model will not
 * version them for aliasing). No -ffast-math: results do not change. Not
 * -fno-trapping-math either: GCC 12 at -O3 -march=x86-64-v3 with it
 * miscompiles a fused where-and-sum loop of LeNet's gradient (found by
 * tests/e2e/test_torch_conv.sh), so codegen/c/cmath.c is written to
 * vectorize without it. -ffp-contract=fast lets a * b + c be one fused
 * multiply-add: -std=c11 turns contraction off, which left the exp, erf and
 * tanh polynomials and every fused a * b + c as two roundings and two
 * instructions (GPT-mini inference 13% slower; measured in
 * docs/performance.md). A contracted expression rounds once, so results move
 * by an ulp, never by more; the code is the same for every thread count, so
 * --threads N stays bit-identical. The GEMM kernels use fma() explicitly. */
#define BUILD_DEFAULT_CFLAGS "-O3 -ffp-contract=fast -fopenmp-simd"

/* Open MPI's compile and link flags (`mpicc --showme:compile`, `--showme:link`)
 * into cflags and libs, for a data-parallel training build; false (with the
 * error) when mpicc is missing. */
bool build_mpi_flags(char *cflags, size_t cflags_len, char *libs, size_t libs_len, Diag *d);

#endif
