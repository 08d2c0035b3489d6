/* backend.h: what a code generation target provides. A backend turns the
 * optimized graphs of a model (its entries: forward, train_step) into files
 * and, from those, a program or a shared library. The IR knows nothing of
 * backends; each backend keeps its own per-op table indexed by OpKind (the C
 * backend's is codegen/c/ops.def, with an emitter and a C template per op)
 * and says through op_supported which ops it can emit, so a graph holding an
 * op it cannot emit is refused with an error at that op's source location
 * (backend_check_ops) instead of a crash.
 *
 * Filled by codegen/c (backend_c, codegen/c/backend_c.c) and, when LLVM 14 is
 * found at configure time, codegen/llvm (backend_llvm, docs/llvm.md), and
 * codegen/cuda (backend_cuda, docs/cuda.md). The ONNX exporter (codegen/onnx,
 * `etch export`) is no Backend: it writes one file from the unoptimized
 * graph and compiles nothing, but keeps its per-op table the same way. Fused-group emitters (elementwise
 * group, row group, matmul epilogue) are typed by each backend's emitter
 * state and listed in its own table (the C backend's: c_group_emitters,
 * codegen/c/fused.h). A backend reads where values live from the memory plan
 * the pass pipeline attached to each graph (Graph.mem_plan,
 * passes/plan_memory.h) and describes itself to the passes by its Target
 * (passes/target.h). The CGen* names below are historical: they describe a
 * build for any target. */
#ifndef ETCH_CODEGEN_BACKEND_H
#define ETCH_CODEGEN_BACKEND_H

#include "ir/ir.h"
#include "ir/tensor.h"
#include "passes/target.h"

typedef struct CGenEntry {
    const Graph *g;              /* run through the pass pipeline: it carries its memory plan */
    const char *name;            /* C function suffix: "forward" -> net_forward */
} CGenEntry;

typedef enum CGenDriver {
    CGEN_DRIVER_NONE,
    CGEN_DRIVER_INFER, /* main.c: PROGRAM [--weights W] IN.npy... OUT.npy... */
    CGEN_DRIVER_TRAIN, /* main.c: the training loop over IDX data (etch train) */
} CGenDriver;

/* One step of a training program (CGEN_DRIVER_TRAIN): its entry, the
 * name its loss is printed under (NULL: a train block without named steps)
 * and its step counter param. */
typedef struct CGenTrainStep {
    const char *entry;   /* "train_step", "train_step_d" */
    const char *label;   /* "d", or NULL */
    const char *counter; /* "optimizer.step", "optimizer.d.step" */
} CGenTrainStep;

typedef struct CGenOptions {
    const char *prefix;          /* C identifier prefix, e.g. "net" */
    bool embed_weights;          /* params as const arrays in model.c (needs param_values) */
    Tensor *const *param_values; /* per param of entry 0 (g->params order), for embedding */
    CGenDriver driver;
    int threads;                 /* kernels may use this many threads (0/1: single-threaded) */
    bool blas;                   /* matmuls call OpenBLAS (the program then links -lopenblas) */
    bool mpi;                    /* data-parallel training (--mpi): also etch_mpi.c, the MPI driver part */
    bool device_params;          /* set by a device backend: params live on the device too (model.h says how) */
    /* CGEN_DRIVER_TRAIN: the steps, and the order each batch runs them
     * (indices into train_steps), written as train_steps.h for the driver */
    const CGenTrainStep *train_steps;
    int n_train_steps;
    const int *schedule;
    int n_schedule;
} CGenOptions;

/* Statistics of the emitted code, for --stats and tests. */
typedef struct CGenStats {
    int64_t arena_bytes;   /* intermediates' arena size */
    int64_t naive_bytes;   /* every intermediate in its own buffer */
    int64_t param_bytes;   /* parameters and optimizer state */
    int kernels;           /* loop nests emitted (all entries) */
} CGenStats;

typedef struct Backend {
    const char *name;                /* "c": the name in diagnostics and --target */
    /* True when the per-op table has an emitter for op (false: an explicit
     * "unsupported" row). */
    bool (*op_supported)(OpKind op);
    /* What the passes need to know about it (fusion limits, arena
     * alignment); the tool passes it on in PassOptions.target. */
    const Target *target;
    /* The model's main source text (malloc'd), NULL with a diagnostic. */
    char *(*model_source)(const CGenEntry *entries, int n_entries, const CGenOptions *o, CGenStats *stats, Diag *d);
    /* Writes every file of the model into dir, each atomically. */
    bool (*write)(const CGenEntry *entries, int n_entries, const CGenOptions *o, const char *dir, CGenStats *stats,
                  Diag *d);
    /* How its output becomes a binary: compiles sources in dir into dir/out (a
     * shared library when shared) with extra libraries libs (may be NULL). */
    bool (*compile)(const char *dir, const char *const *sources, int n_sources, const char *out, bool shared,
                    const char *opt_flags, const char *libs, Diag *d);
} Backend;

extern const Backend backend_c; /* codegen/c/backend_c.c; the CUDA backend's: codegen/cuda/emit_cuda.h */

/* Reports, at the op's source location, the first node of g (or of a scan
 * body in it) whose op backend b cannot emit: "the c backend cannot emit op
 * 'softmax'". True when b can emit every op. */
bool backend_check_ops(const Backend *b, const Graph *g, Diag *d);
/* Reports the first of g and its scan bodies that has no memory plan (the
 * pass pipeline's plan-memory stage did not run on it). True when all have one. */
bool backend_check_planned(const Backend *b, const Graph *g, Diag *d);

#endif
