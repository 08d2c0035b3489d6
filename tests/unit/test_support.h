/* test_support.h: helpers shared by the unit tests (tests/unit/test_support.c,
 * linked into every unit test executable; not a test itself):
 *   - S(rank, dims...) builds a Shape; ts_add adds an op and asserts it took,
 *     ts_expect_error that it is refused with a given message;
 *   - ts_random_tensor: deterministic inputs (Philox);
 *   - ts_check_graph: eager executor vs emitted C at -O0 and -O2, compiled
 *     into a shared library, loaded and compared under a TsTol;
 *   - ts_check_grad: autodiff vs central finite differences in float64;
 *   - ts_crc32: a bitwise CRC-32, to check the runtime's gzip, PNG and zip code.
 *   - ts_optimize: the pass pipeline for the C backend's target.
 *   - ts_compile: DSL source to a Program; ts_run_at_step: a random graph run eagerly.
 *   - ts_build_train_step: a loss graph made its training step, verified.
 * A test file that defines `static SrcLoc L` gets the short forms add(), U()
 * and B(), which pass L as the ops' location. */
#ifndef ETCH_TEST_SUPPORT_H
#define ETCH_TEST_SUPPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "frontend/frontend.h"
#include "ir/ir.h"

Shape S(int rank, ...);

/* train_build_step(g, spec) (spec: a passes/transforms/train.h OptimSpec)
 * then ir_verify, asserting both; diagnostics go to stderr. */
struct OptimSpec;
void ts_build_train_step(Graph *g, const struct OptimSpec *spec);

/* graph_add_op that asserts success (diagnostics go to stderr). */
int ts_add(SrcLoc loc, Graph *g, OpKind op, int n, const int *ins, const NodeAttrs *at);
/* add(g, op, n, ins, at) */
#define add(...) ts_add(L, __VA_ARGS__)
#define U(g, op, x, ...) add(g, op, 1, (int[]){x}, __VA_ARGS__)
#define B(g, op, x, y) add(g, op, 2, (int[]){x, y}, NULL)

/* Expects graph_add_op (at m.etch:7:19) to fail with an error containing `want`. */
void ts_expect_error(Graph *g, OpKind op, const int *ins, int n, const NodeAttrs *at, const char *want);

/* Philox stream (seed, 7): floats in [lo, hi), ints in [0, 10), bools 0/1. */
Tensor *ts_random_tensor(DType t, Shape s, uint64_t seed, double lo, double hi);

/* How ts_check_graph draws inputs and compares eager (want) with compiled
 * (have), element by element. An element passes when
 *     |want - have| <= rel * (|want| + scale) + abs
 * where scale is max |want| over that output if `scaled`, else 0; or, if
 * eq_ok, when want == have; or, if nan_ok, when both are NaN. With `exact`
 * every output must also be bit-identical. */
typedef struct TsTol {
    double lo, hi; /* float inputs in [lo, hi) */
    double rel, abs;
    bool scaled, eq_ok, nan_ok, exact;
} TsTol;

/* A clone of g (in g's arena) through the pass pipeline at -O<level> for the
 * C backend's target (backend_c.target), verified after every pass; asserts
 * success. At -O0 only the memory plan is made, which the backend needs. */
Graph *ts_optimize(Graph *g, int level);

/* Runs g with the eager executor (inputs: ts_random_tensor seeds 100 + i,
 * params: params_init seed 0), then as emitted C at -O0 (as built, with its
 * memory plan) and -O2 (the pass pipeline), each compiled with the system
 * compiler into a shared library and loaded, and compares every output. */
void ts_check_graph(Graph *g, const TsTol *tol);
/* The same with given values: inputs[i] for input i and param_values[i] for
 * param i (each of the node's type), either NULL for the defaults above. */
void ts_check_graph_with(Graph *g, Tensor *const *inputs, Tensor *const *param_values, const TsTol *tol);
/* Compares outputs got with want under tol; a mismatch names g, label (the
 * build compared, e.g. "-O2") and the element, and fails. */
void ts_compare_outputs(const Graph *g, const char *label, Tensor *const *want, Tensor *const *got, const TsTol *tol);

/* The LLVM backend in ts_check_graph (unit/llvm_check.c): after
 * ts_check_llvm_too, every ts_check_graph also runs the graph JIT-compiled by
 * the LLVM backend (-O2, its target) when etch was built with it, skipping
 * graphs with an op its table marks unsupported or a dtype it refuses;
 * ts_llvm_coverage prints the ops skipped and asserts they are exactly the
 * unsupported ones among the ops seen. */
void ts_check_llvm_too(void);
void ts_llvm_check(Graph *g, Tensor *const *ins, Tensor *const *params, Tensor *const *want, const TsTol *tol);
void ts_llvm_coverage(void);

/* The CUDA backend in ts_check_graph (unit/cuda_check.c): after
 * ts_check_cuda_too, every ts_check_graph also runs the graph emitted by the
 * CUDA backend (-O2, its target) with its kernels compiled for the CPU
 * (model_host.c), skipping graphs with an op its table marks unsupported;
 * ts_cuda_coverage prints the ops skipped and asserts they are exactly the
 * unsupported ones among the ops seen. */
void ts_check_cuda_too(void);
void ts_cuda_check(Graph *g, Tensor *const *ins, Tensor *const *params, Tensor *const *want, const TsTol *tol);
void ts_cuda_coverage(void);
/* ts_cuda_coverage as a cmocka test, listed last: every graph checked
 * before it went through the CUDA backend too (kernels emulated on the CPU). */
void ts_cuda_coverage_test(void **state);

/* Compiles DSL source (named path in diagnostics, printed to stderr),
 * asserting success. */
Program *ts_compile(Arena *a, const char *path, const char *src);

/* Runs g (one f64[] input, the step of its random ops; one output) eagerly
 * at `step` and returns the output, which the caller frees. */
Tensor *ts_run_at_step(const Graph *g, double step);

/* The source tree (ETCH_SOURCE_DIR, which ctest sets, else found from this file's path). */
const char *ts_source_dir(void);
/* Compiles dir/model.c (written by cgen_write) with flags (NULL: etch's
 * defaults) into dir/lib, linked against the runtime compiled once per test
 * process, and dlopens it. */
void *ts_load_model(const char *dir, const char *lib, const char *flags);
/* The same for another source file of dir (model_host.c of the CUDA backend). */
void *ts_load_model_source(const char *dir, const char *source, const char *lib, const char *flags);
/* dlopens a private copy of dir/lib (dir/lib.tag.so), so what the library
 * decides once per load (its kernels' instruction set) is decided afresh. */
void *ts_open_copy(const char *dir, const char *lib, const char *tag);
/* Builds g (pass pipeline -O2, prefix "m", weights pv embedded, threads)
 * once, then loads it once per instruction set of the integer and float
 * GEMMs this CPU runs (ETCH_GEMM_ISA = portable, avx2, and "any" where
 * AVX-512 VNNI is present; `who` names the test in the note when it is not)
 * and checks every output of m_forward_v bit-identical to want. */
void ts_check_isas(Graph *g, Tensor *const *in, Tensor *const *pv, Tensor *const *want, int threads, const char *who);

/* Adds loss = sum(f * R) (f cast to float64 if needed; R a float64 input from
 * Philox stream (9, r_stream), uniform in [-1, 1)), differentiates it with the
 * autodiff pass and checks every element of every param's gradient against
 * (loss(p + h) - loss(p - h)) / 2h with h = rel_h * max(1, |p|):
 * |num - autodiff| / max(1, |num|) <= tol. Params from params_init seed 42. */
void ts_check_grad(Graph *g, int f, double tol, double rel_h, uint64_t r_stream, SrcLoc loc);

/* CRC-32 (IEEE) bit by bit: independent of the runtime's table version. */
uint32_t ts_crc32(const unsigned char *p, size_t n);

#endif
