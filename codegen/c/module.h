/* module.h: the host side of an emitted model, shared by the backends that
 * write C or CUDA source (the C backend's emit_c.c, codegen/cuda): the
 * parameter table, tensor-info tables, entry signatures, model.h, weights
 * loading and saving, the embedded-weights blob and the model folder's
 * files. Each backend writes its own entry bodies and contexts around them. */
#ifndef ETCH_CODEGEN_C_MODULE_H
#define ETCH_CODEGEN_C_MODULE_H

#include "codegen/backend.h"
#include "ir/strbuf.h"

/* The parameters of all entries, unified by name. */
typedef struct ParamTable {
    int n;
    const Node **node; /* first node seen with that name (type and init) */
} ParamTable;

/* Fills t (allocated in a) with the params of every entry; an error when two
 * entries give one name different types. */
bool module_collect_params(const CGenEntry *e, int n, Arena *a, ParamTable *t, Diag *d);
int module_param_index(const ParamTable *t, const char *name); /* -1 when absent */
/* The runtime's enum constant for an IR dtype ("ETCH_F32"). */
const char *module_rt_dtype(DType t);
/* "fc1.weight" -> "fc1_weight" (a C identifier fragment, in a); module_upper upper-cases it too. */
char *module_c_ident(Arena *a, const char *name);
char *module_upper(Arena *a, const char *s);
/* "{2, 3}" ("{0}" for a scalar) */
void module_shape_list(StrBuf *b, const Shape *s);
/* `const etch_tensor_info decl[] = {...}` for nodes ids of g, NULL-terminated. */
void module_info_table(StrBuf *b, const char *decl, const Graph *g, const int *ids, int n);
/* Every entry's P_E_inputs / P_E_outputs tables, then P_params. */
void module_tables(StrBuf *b, const CGenEntry *entries, int n_entries, const ParamTable *pt, const char *P);
/* `void P_E(inputs, outputs)`, or with_ctx `void P_E_ctx(P_ctx *ctx, inputs, outputs)`;
 * inputs are named in_<name>, outputs out<i>. */
void module_signature(StrBuf *b, Arena *a, const char *prefix, const CGenEntry *e, bool with_types, bool with_ctx);
/* The same with a name suffix, and the inputs or outputs left out (P_E_begin: inputs, P_E_end: outputs). */
void module_signature_part(StrBuf *b, Arena *a, const char *prefix, const CGenEntry *e, const char *suffix,
                           bool with_types, bool with_ctx, bool with_inputs, bool with_outputs);
/* P_load and P_save over P_params / P_param_data (embedded: P_load refuses a
 * file); on_load / on_save (NULL: none) are statements run after a load and
 * before a save (a device backend's copies between host and device). */
void module_load_save(StrBuf *b, const ParamTable *pt, const char *P, bool embedded, const char *on_load,
                      const char *on_save);
/* --embed-weights: each param's offset in <prefix>_weights.bin (64-aligned)
 * into offset[i]; returns the file's size. module_blob declares it. */
int64_t module_blob_layout(const ParamTable *pt, int64_t *offset);
void module_blob(StrBuf *b, const char *P, int64_t bytes);
/* Writes dir/name atomically. */
bool module_write_text(const char *dir, const char *name, const char *text, Diag *d);
/* Writes the model's files into dir: its source (source_name, e.g. model.c),
 * model.h, the runtime, the weights blob with o->embed_weights, and the
 * driver (main.c, train_steps.h) o->driver asks for. */
bool module_write_files(const CGenEntry *entries, int n_entries, const CGenOptions *o, const char *dir,
                        const char *source_name, const char *source, Diag *d);

#endif
