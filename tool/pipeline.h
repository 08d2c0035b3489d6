/* pipeline.h: the steps the `etch` commands share to drive the compiler's
 * layers: frontend (read the program) -> parameters -> autodiff and the
 * training step -> the pass pipeline -> the C backend -> the system
 * compiler. Each returns NULL/false after reporting an error to the Diag. */
#ifndef ETCH_TOOL_PIPELINE_H
#define ETCH_TOOL_PIPELINE_H

#include "codegen/c/emit_c.h"
#include "codegen/llvm/backend_llvm.h"
#include "frontend/frontend.h"
#include "ir/tensor.h"
#include "passes/pass.h"
#include "runtime/etch_rt.h"
#include "tool/options.h"

/* Whether o asks for data-parallel training (build --mpi, train --ranks N). */
bool data_parallel(const Options *o);
/* With data_parallel(o): every step of p's train block averages its
 * gradients over the ranks (OptimSpec.allreduce_bucket_bytes); else nothing. */
void make_data_parallel(Program *p, const Options *o);

/* Model name -> C identifier prefix ("Net" -> "net"). */
void model_prefix(const char *model, char *buf, size_t n);
/* The model in o->file, with o's -D definitions; an .onnx file is imported
 * (frontend/onnx), its -D binding symbolic dims. */
Program *load_program(Arena *a, const Options *o, Diag *d);
/* The forward's params: --weights W (with --partial, load_params_partial(W,
 * the default seed)), else the weights that came with the model (an imported
 * ONNX file's), else the initializers with the default seed. With
 * --quantize int8 the program's forward is then quantized (quantize_program,
 * tool/quant_tool.h) and the params returned are the quantized graph's. */
Tensor **load_params(Program *p, const Options *o, Diag *d);
/* The tensors path has; the rest keep their initializers (seed) and are
 * named in a note on stderr (optimizer state, zeros either way, is not). */
Tensor **load_params_partial(const Graph *g, const char *path, uint64_t seed, Diag *d);
bool require_train(const Program *p, Diag *d);
/* The training step (loss, gradients, optimizer update), on a copy of the
 * loss graph: of the train block's step i, or of its first step. */
Graph *train_step_graph_at(Program *p, int i, Arena *a, Diag *d);
Graph *train_step_graph(Program *p, Arena *a, Diag *d);
/* Outputs: loss, then the gradient of each param step i trains (every
 * trainable one unless its optimizer names some) in declaration order. */
Graph *grad_graph_at(Program *p, int i, Arena *a, Diag *d);
Graph *grad_graph(Program *p, Arena *a, Diag *d);
/* Step i's C entry name: `what` ("train_step", "grad"), with "_<name>" for a named step. */
const char *train_step_entry(const Program *p, int i, const char *what, Arena *a);
/* A clone of g run through the pass pipeline the options ask for (verified
 * after every pass in debug builds). */
Graph *optimize_graph(const Graph *g, const Options *o, Arena *a, Diag *d);
/* Optimizes the entries, emits them into dir and compiles lib<prefix>.so
 * and, with a driver, dir/<program> (the training driver: the program alone). */
bool emit_and_compile(const Program *p, const CGenEntry *entries, int n, Tensor **params, const Options *o,
                      const char *dir, CGenDriver driver, const char *program, Diag *d);
/* `etch build`'s output in dir: the forward entry (with o->train also grad
 * and train_step), the program with exe, the weights file unless embedded. */
bool build_model(Program *p, Tensor **params, const Options *o, const char *dir, bool exe, Arena *a, Diag *d);
/* The entries of a training program: the forward, then each step's
 * train_step ("train_step", or "train_step_<name>" for named steps); *n
 * gets their count. NULL after reporting (no train block, a bad step). */
CGenEntry *training_entries(Program *p, Arena *a, int *n, Diag *d);
/* The training program (forward + train_step + the training driver) in dir;
 * returns its path (malloc'd). */
char *build_trainer(Program *p, const Options *o, const char *dir, Diag *d);

/* A compiled entry point: <prefix>_<entry>_v(inputs, outputs). */
typedef void (*CompiledFn)(const void *const *in, void *const *out);
/* Opens dir/lib<prefix>.so (built by emit_and_compile) and loads the weights
 * file into it; NULL after reporting an error. Close with compiled_close. */
void *compiled_open(const char *dir, const char *prefix, const char *weights, Diag *d);
/* Closes a library compiled_open opened (NULL: nothing), first giving back
 * the device memory a CUDA module holds (<prefix>_release), whose pointers
 * are lost with the library. */
void compiled_close(void *lib, const char *prefix);
/* The entry <prefix>_<entry>_v of an opened library; NULL after an error. */
CompiledFn compiled_entry(void *lib, const char *prefix, const char *entry, Diag *d);
/* The backend --backend names (default: the C backend); NULL after
 * reporting one this etch was built without. */
const Backend *selected_backend(const Options *o, Diag *d);
/* The llvm backend's module (tool/llvm_module.c), loaded on the first call;
 * NULL after reporting (built without LLVM, or the module will not load). */
const LlvmPlugin *llvm_module(Diag *d);
/* The module if an earlier llvm_module loaded it, else NULL. */
const LlvmPlugin *llvm_module_loaded(void);
/* p's forward run through the pass pipeline for the llvm backend and
 * JIT-compiled, with its params (values per p->forward->params) bound:
 * call fn(in, out, params, arena) with inputs and outputs in p->forward's
 * order. False after reporting. */
typedef struct JitForward {
    const LlvmPlugin *llvm;
    LlvmJit *jit;
    LlvmEntryFn fn;
    void **params;        /* per param of the optimized graph */
    unsigned char *arena; /* its arena, 64-byte aligned */
    int64_t arena_bytes;  /* as planned */
    int kernels;          /* nodes emitted as loops or kernel calls (not sources or views) */
} JitForward;
bool jit_forward_open(JitForward *j, const Program *p, Tensor **params, const Options *o, Diag *d);
void jit_forward_close(JitForward *j);
/* The pass manager's options as the command line sets them (the target:
 * the selected backend's). */
PassOptions pass_options(const Options *o);

/* path can be created: its folder exists and it is not a folder itself;
 * flag names it in the error ("-o"). Checked before any work, so a typo
 * costs nothing and leaves nothing behind. */
bool writable_output(const char *flag, const char *path, Arena *a, Diag *d);

/* t as an .npy file, written atomically. */
bool write_tensor(const char *path, const Tensor *t, Diag *d);

#endif
