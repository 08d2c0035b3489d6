/* params.h: parameter values: initialization from the graph's initializers
 * with a fixed seed, loading from and saving to safetensors files.
 *
 * Initial values are reproducible and independent of parameter order: each
 * parameter draws from Philox4x32-10 keyed by (seed, FNV-1a hash of its
 * dotted name), element i using counter i. The default seed is 0
 * (ETCH_DEFAULT_SEED), so `etch run` without weights and `etch build` give the
 * same parameters every time and in every backend. */
#ifndef ETCH_PARAMS_H
#define ETCH_PARAMS_H

#include "ir/tensor.h"
#include "runtime/etch_rt.h"

#define ETCH_DEFAULT_SEED 0

/* One tensor per g->params[i], filled from its initializer. */
Tensor **params_init(const Graph *g, uint64_t seed);
/* One tensor per g->params[i] from a safetensors file; reports a missing
 * tensor or a dtype/shape mismatch naming the tensor and both types. */
Tensor **params_load(const Graph *g, const char *path, Diag *d);
/* params_load for a file that may lack some of g's params (fine-tuning
 * from a partial checkpoint): those take their initializers (seed, as
 * params_init) and are flagged in missing[i] (g->n_params entries); a tensor
 * present with another dtype or shape is still an error naming it, and so is
 * a file holding none of g's params. */
Tensor **params_load_partial(const Graph *g, const char *path, uint64_t seed, bool *missing, Diag *d);
/* The same from tensors already in memory (an imported model's); path names
 * them in messages. */
Tensor **params_from_tensors(const Graph *g, const etch_st_file *f, const char *path, Diag *d);
/* Writes the parameters (and optionally extra named tensors) atomically. */
bool params_save(const Graph *g, Tensor *const *values, const char *path, Diag *d);
void params_free(const Graph *g, Tensor **values);

/* The one mapping between IR dtypes and the runtime's file dtypes (npy,
 * safetensors, the emitted tensor tables); nothing else maps them.
 * Every runtime dtype has an IR dtype (ETCH_U8 is DT_U8, ETCH_I8 DT_I8);
 * ir_dtype_from_rt gives DT_COUNT only for a value that is no etch_dtype. */
etch_dtype ir_dtype_to_rt(DType t);
DType ir_dtype_from_rt(etch_dtype t);

#endif
