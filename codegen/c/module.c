/* module.c: the host side of an emitted model that every backend writing C
 * or CUDA source shares (codegen/c/module.h): the parameters of all entries
 * unified by name, the tensor-info tables, entry signatures, model.h (the C
 * API of docs/c-api.md), loading and saving weights, the embedded-weights
 * blob, train_steps.h, and writing the files of a model folder (the
 * runtime and drivers beside the model's own source). The C backend's
 * driver (emit_c.c) and the CUDA backend (codegen/cuda) emit their entry
 * bodies; the rest of a model is this. */
#include "codegen/c/module.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/c/emit_c.h"
#include "ir/params.h"
#include "runtime/etch_rt.h"


/* The runtime's enum constant for an IR dtype (ir_dtype_to_rt), as C text. */
const char *module_rt_dtype(DType t) {
    static const char *names[ETCH_DTYPE_COUNT] = {[ETCH_F32] = "ETCH_F32", [ETCH_F64] = "ETCH_F64", [ETCH_I32] = "ETCH_I32",
                                                  [ETCH_I64] = "ETCH_I64", [ETCH_BOOL] = "ETCH_BOOL", [ETCH_U8] = "ETCH_U8", [ETCH_I8] = "ETCH_I8"};
    return names[ir_dtype_to_rt(t)];
}

/* "fc1.weight" -> "fc1_weight": a C identifier fragment. */
char *module_c_ident(Arena *a, const char *name) {
    char *s = arena_strdup(a, name);
    for (char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p)) *p = '_';
    return s;
}

char *module_upper(Arena *a, const char *s) {
    char *u = module_c_ident(a, s);
    for (char *p = u; *p; p++) *p = (char)toupper((unsigned char)*p);
    return u;
}

int module_param_index(const ParamTable *t, const char *name) {
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->node[i]->attr.name, name)) return i;
    return -1;
}

bool module_collect_params(const CGenEntry *e, int n, Arena *a, ParamTable *t, Diag *d) {
    int cap = 0;
    for (int k = 0; k < n; k++) cap += e[k].g->n_params;
    t->node = arena_alloc(a, sizeof(Node *) * (size_t)(cap + 1));
    t->n = 0;
    for (int k = 0; k < n; k++)
        for (int i = 0; i < e[k].g->n_params; i++) {
            const Node *p = &e[k].g->nodes[e[k].g->params[i]];
            int j = module_param_index(t, p->attr.name);
            if (j < 0) {
                t->node[t->n++] = p;
                continue;
            }
            if (t->node[j]->dtype != p->dtype || !shape_equal(&t->node[j]->shape, &p->shape)) {
                char a1[96], a2[96];
                return diag_error(d, p->loc, "parameter '%s' is %s in %s but %s in %s", p->attr.name,
                                  type_format(a1, sizeof a1, p->dtype, &p->shape), e[k].g->name,
                                  type_format(a2, sizeof a2, t->node[j]->dtype, &t->node[j]->shape), e[0].g->name);
            }
        }
    return true;
}

void module_shape_list(StrBuf *b, const Shape *s) {
    sb_puts(b, "{");
    for (int i = 0; i < s->rank; i++) sb_printf(b, "%s%lld", i ? ", " : "", (long long)s->dim[i]);
    if (s->rank == 0) sb_puts(b, "0");
    sb_puts(b, "}");
}

void module_info_table(StrBuf *b, const char *decl, const Graph *g, const int *ids, int n) {
    sb_printf(b, "const etch_tensor_info %s[] = {\n", decl);
    for (int i = 0; i < n; i++) {
        const Node *nd = &g->nodes[ids[i]];
        sb_printf(b, "    {\"%s\", %s, %d, ", nd->attr.name ? nd->attr.name : "out", module_rt_dtype(nd->dtype),
                  nd->shape.rank);
        module_shape_list(b, &nd->shape);
        sb_puts(b, "},\n");
    }
    sb_puts(b, "    {0},\n};\n\n");
}

/* `void P_E<suffix>(inputs, outputs)`, with_ctx `void P_E<suffix>(P_ctx *ctx, ...)`, the
 * inputs only when with_inputs, the outputs only when with_outputs (the CUDA
 * backend's P_E_begin and P_E_end). */
void module_signature_part(StrBuf *b, Arena *a, const char *prefix, const CGenEntry *e, const char *suffix,
                           bool with_types, bool with_ctx, bool with_inputs, bool with_outputs) {
    const Graph *g = e->g;
    char ty[96];
    int n_in = with_inputs ? g->n_inputs : 0, n_out = with_outputs ? g->n_outputs : 0;
    sb_printf(b, "void %s_%s%s(", prefix, e->name, suffix);
    if (with_ctx) sb_printf(b, "%s_ctx *ctx%s", prefix, n_in || n_out ? ", " : "");
    for (int i = 0; i < n_in; i++) {
        const Node *n = &g->nodes[g->inputs[i]];
        sb_printf(b, "%sconst %s *in_%s", i ? ", " : "", dtype_c_type(n->dtype), module_c_ident(a, n->attr.name));
        if (with_types) sb_printf(b, " /* %s */", type_format(ty, sizeof ty, n->dtype, &n->shape));
    }
    for (int i = 0; i < n_out; i++) {
        const Node *n = &g->nodes[g->outputs[i]];
        sb_printf(b, "%s%s *out%d", i || n_in ? ", " : "", dtype_c_type(n->dtype), i);
        if (with_types) sb_printf(b, " /* %s */", type_format(ty, sizeof ty, n->dtype, &n->shape));
    }
    if (!n_in && !n_out && !with_ctx) sb_puts(b, "void");
    sb_puts(b, ")");
}

/* `void P_E(inputs, outputs)`, or with_ctx `void P_E_ctx(P_ctx *ctx, inputs, outputs)`. */
void module_signature(StrBuf *b, Arena *a, const char *prefix, const CGenEntry *e, bool with_types, bool with_ctx) {
    module_signature_part(b, a, prefix, e, with_ctx ? "_ctx" : "", with_types, with_ctx, true, true);
}

/* The etch version that wrote the header, and a compile-time stop when the
 * runtime header beside it comes from another version (their ABI may differ). */
void module_version_check(StrBuf *h, const char *upper_prefix) {
    int v = ETCH_RT_VERSION;
    sb_printf(h, "/* Written by etch %d.%d.%d: compile against that version's runtime. */\n", v / 10000, v / 100 % 100,
              v % 100);
    sb_printf(h, "#define %s_ETCH_VERSION %d\n#if ETCH_RT_VERSION != %d\n", upper_prefix, v, v);
    sb_printf(h, "#error \"model.h was generated by etch %d.%d.%d, but etch_rt.h is another etch version's runtime: "
                 "use the etch_rt.h and etch_rt.c written beside model.h, or regenerate the model\"\n#endif\n\n",
              v / 10000, v / 100 % 100, v % 100);
}

char *cgen_model_header(const CGenEntry *entries, int n_entries, const CGenOptions *o) {
    Arena *a = arena_new();
    ParamTable pt;
    Diag quiet;
    diag_init(&quiet, NULL);
    module_collect_params(entries, n_entries, a, &pt, &quiet);
    diag_dispose(&quiet);
    StrBuf h = {0};
    const char *P = o->prefix;
    sb_printf(&h, "/* model.h: generated by etch. Do not edit.\n * Entry points:");
    for (int k = 0; k < n_entries; k++) sb_printf(&h, " %s_%s (graph %s)", P, entries[k].name, entries[k].g->name);
    sb_printf(&h, ". */\n#ifndef ETCH_MODEL_%s_H\n#define ETCH_MODEL_%s_H\n\n", module_upper(a, P), module_upper(a, P));
    sb_printf(&h, "#include <stddef.h>\n#include <stdint.h>\n\n#include \"etch_rt.h\"\n\n");
    module_version_check(&h, module_upper(a, P));
    sb_printf(&h, "/* Generic names for the drivers in runtime/drivers (one model per program;\n"
                  " * with several model.h in one file, the first one included has them). */\n#ifndef ETCH_MODEL\n");
    sb_printf(&h, "#define ETCH_MODEL(name) %s_##name\n#define ETCH_N_PARAMS %d\n#define ETCH_WEIGHTS_EMBEDDED %d\n", P,
              pt.n, o->embed_weights ? 1 : 0);
    for (int k = 0; k < n_entries; k++) {
        const char *E = module_upper(a, entries[k].name);
        sb_printf(&h, "#define ETCH_HAS_%s 1\n#define ETCH_%s_N_INPUTS %d\n#define ETCH_%s_N_OUTPUTS %d\n", E, E,
                  entries[k].g->n_inputs, E, entries[k].g->n_outputs);
    }
    /* parameters kept on a device too (codegen/cuda): a driver that reads
     * P_param_data after a call asks for the device's values first, and one
     * that writes them says so before the next call */
    /* and calls that run asynchronously (P_E_begin, P_E_end: a driver prepares
     * the next inputs meanwhile, in buffers of ETCH_HOST_ALLOC, pinned on the
     * GPU); the C backend's calls are synchronous and its buffers malloc's */
    if (o->device_params)
        sb_printf(&h, "#define ETCH_PARAMS_TO_HOST() %s_params_to_host()\n#define ETCH_PARAMS_CHANGED() "
                      "%s_params_changed()\n#define ETCH_ASYNC_ENTRIES 1\n#define ETCH_HOST_ALLOC(bytes) "
                      "%s_host_alloc(bytes)\n#define ETCH_HOST_FREE(p) %s_host_free(p)\n", P, P, P, P);
    else
        sb_printf(&h, "#define ETCH_PARAMS_TO_HOST() ((void)0)\n#define ETCH_PARAMS_CHANGED() ((void)0)\n"
                      "#define ETCH_ASYNC_ENTRIES 0\n#define ETCH_HOST_ALLOC(bytes) malloc(bytes)\n"
                      "#define ETCH_HOST_FREE(p) free(p)\n");
    sb_printf(&h, "#endif\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n");
    sb_printf(&h, "\n/* Every parameter (model weights, then optimizer state named \"optimizer.*\"). */\n");
    sb_printf(&h, "extern const etch_tensor_info %s_params[];\nextern void *const %s_param_data[];\n\n", P, P);
    sb_printf(&h, "/* Loads parameters from a safetensors file, checking names, dtypes and shapes.\n"
                  " * Optimizer state (\"optimizer.*\") is required only when state_required; absent\n"
                  " * state stays zero. Returns 0, or -1 with a message in err. */\n");
    sb_printf(&h, "int %s_load(const char *path, int state_required, char *err, size_t errlen);\n", P);
    sb_printf(&h, "/* Writes the weights (and the optimizer state when with_state) atomically. */\n");
    sb_printf(&h, "int %s_save(const char *path, int with_state, char *err, size_t errlen);\n\n", P);
    if (o->device_params)
        sb_printf(&h, "/* The parameters live on the device too. %s_params_to_host copies the device's\n"
                      " * values into %s_param_data (after calls that update them, before reading them);\n"
                      " * %s_params_changed says %s_param_data was written (the next call uploads it).\n"
                      " * %s_load and %s_save do both themselves. */\n"
                      "void %s_params_to_host(void);\nvoid %s_params_changed(void);\n"
                      "/* Frees the device memory the model holds (the default context, the device's\n"
                      " * parameters, after copying them into %s_param_data); contexts the caller made\n"
                      " * are the caller's to free. The next call allocates again. */\n"
                      "void %s_release(void);\n\n", P, P, P, P, P, P, P, P, P, P);
    if (o->device_params)
        sb_printf(&h, "/* Host memory the device copies from and to without the host waiting (pinned:\n"
                      " * cudaHostAlloc), for the inputs of P_E_begin; NULL when memory runs out. */\n"
                      "void *%s_host_alloc(size_t bytes);\nvoid %s_host_free(void *p);\n\n", P, P);
    sb_printf(&h, "/* A context: the working memory of one call in flight (intermediates and\n"
                  " * scratch; the parameters are the model's, shared by every context). Calls in\n"
                  " * different contexts may run at once, from different threads, unless one of\n"
                  " * them updates the parameters (see each entry). %s_ctx_create returns NULL and a\n"
                  " * message in err when memory runs out. */\n", P);
    sb_printf(&h, "typedef struct %s_ctx %s_ctx;\n%s_ctx *%s_ctx_create(char *err, size_t errlen);\n", P, P, P, P);
    sb_printf(&h, "void %s_ctx_free(%s_ctx *ctx);\n\n", P, P);
    for (int k = 0; k < n_entries; k++) {
        const char *E = entries[k].name;
        sb_printf(&h, "extern const etch_tensor_info %s_%s_inputs[], %s_%s_outputs[];\n", P, E, P, E);
        if (entries[k].g->n_updates)
            sb_printf(&h, "/* Updates the parameters every context shares: no other call of this model\n"
                          " * may run meanwhile, in any context. */\n");
        else
            sb_printf(&h, "/* Reentrant in ctx: concurrent calls need different contexts. */\n");
        module_signature(&h, a, P, &entries[k], true, true);
        sb_printf(&h, ";\n/* The same in the default context (static memory): one call at a time. */\n");
        module_signature(&h, a, P, &entries[k], true, false);
        sb_printf(&h, ";\n/* The same, with arrays of pointers in %s_%s_inputs / _outputs order. */\n", P, E);
        sb_printf(&h, "void %s_%s_v(const void *const *inputs, void *const *outputs);\n\n", P, E);
        if (!o->device_params) continue;
        sb_printf(&h, "/* %s_%s_ctx in two halves: _begin queues the inputs' upload, the kernels and the\n"
                      " * outputs' download on ctx's stream and returns; the inputs must stay unchanged\n"
                      " * until _end (from %s_host_alloc memory the upload does not wait). _end waits, fails\n"
                      " * as the call does, and copies the outputs into the buffers given. One call\n"
                      " * begun per context: its _end before the next _begin there. */\n", P, E, P);
        module_signature_part(&h, a, P, &entries[k], "_begin", true, true, true, false);
        sb_puts(&h, ";\n");
        module_signature_part(&h, a, P, &entries[k], "_end", true, true, false, true);
        sb_printf(&h, ";\n/* The same in the default context, with arrays of pointers. */\n"
                      "void %s_%s_begin_v(const void *const *inputs);\nvoid %s_%s_end_v(void *const *outputs);\n\n",
                  P, E, P, E);
    }
    sb_printf(&h, "#ifdef __cplusplus\n}\n#endif\n\n#endif\n");
    arena_free(a);
    return sb_take(&h);
}

/* --embed-weights: the parameters' bytes, in the table's order, each at a
 * multiple of 64 (as the _Alignas(64) arrays of a weights file are), form one
 * binary file, <prefix>_weights.bin, that model.c assembles into the program
 * with .incbin: the source stays small (hex literals made the MLP's model.c
 * 1.8 MB for 407 KB of weights) and the C compiler parses no literals. The
 * bytes are the host's (little-endian on every target etch emits for today).
 * Fills offset[i] (pt->n of them) and returns the file's size. */
int64_t module_blob_layout(const ParamTable *pt, int64_t *offset) {
    int64_t at = 0;
    for (int i = 0; i < pt->n; i++) {
        at = (at + 63) / 64 * 64;
        offset[i] = at;
        at += shape_numel(&pt->node[i]->shape) * (int64_t)dtype_size(pt->node[i]->dtype);
    }
    return at;
}

/* The blob's declaration and the .incbin that fills it. The assembler looks
 * for the file in its working directory and its -I folders: etch compiles
 * with -Wa,-I<output folder>, etch_add_model adds the same, and a build of
 * one's own adds -Wa,-I<the folder of model.c> (docs/c-api.md). */
void module_blob(StrBuf *b, const char *P, int64_t bytes) {
    sb_printf(b, "/* The weights: %s_weights.bin (%lld bytes, each parameter at a multiple of 64), assembled in by "
                 ".incbin: compile with -Wa,-I<the folder of that file>. */\n", P, (long long)bytes);
    sb_puts(b, "#if !defined(__ELF__)\n#error \"embedded weights are assembled with ELF directives (Linux, BSD)\"\n"
               "#endif\n");
    sb_printf(b, "__asm__(\".section .rodata\\n.balign 64\\n.globl %s_weights\\n.hidden %s_weights\\n"
                 ".type %s_weights, @object\\n%s_weights:\\n.incbin \\\"%s_weights.bin\\\"\\n"
                 ".size %s_weights, .-%s_weights\\n.previous\");\n", P, P, P, P, P, P, P);
    sb_printf(b, "extern const unsigned char %s_weights[] __attribute__((visibility(\"hidden\")));\n", P);
}

void module_load_save(StrBuf *b, const ParamTable *pt, const char *P, bool embedded, const char *on_load,
                      const char *on_save) {
    if (embedded) {
        sb_printf(b, "int %s_load(const char *path, int state_required, char *err, size_t errlen) {\n"
                     "    (void)state_required;\n    if (!path) return 0;\n"
                     "    snprintf(err, errlen, \"%%s: this program has its weights embedded; it takes no weights "
                     "file\", path);\n    return -1;\n}\n\n", P);
    } else {
        sb_printf(b,
                  "int %s_load(const char *path, int state_required, char *err, size_t errlen) {\n"
                  "    if (!path) {\n        snprintf(err, errlen, \"no weights file given (weights are not "
                  "embedded)\");\n        return -1;\n    }\n"
                  "    etch_st_file f;\n    if (etch_st_read(path, &f, err, errlen)) return -1;\n"
                  "    for (int i = 0; %s_params[i].name; i++) {\n"
                  "        const etch_tensor_info *p = &%s_params[i];\n        const void *src;\n"
                  "        if (!state_required && !strncmp(p->name, \"optimizer.\", 10) && !etch_st_find(&f, p->name))\n"
                  "            continue;\n"
                  "        if (etch_st_expect(&f, path, p->name, p->dtype, p->rank, p->dim, &src, err, errlen)) {\n"
                  "            etch_st_close(&f);\n            return -1;\n        }\n"
                  "        etch_array desc = {p->dtype, p->rank, {0}, NULL};\n"
                  "        memcpy(desc.dim, p->dim, sizeof desc.dim);\n"
                  "        memcpy(%s_param_data[i], src, etch_array_nbytes(&desc));\n    }\n"
                  "    etch_st_close(&f);\n%s    return 0;\n}\n\n",
                  P, P, P, P, on_load ? on_load : "");
    }
    sb_printf(b,
              "int %s_save(const char *path, int with_state, char *err, size_t errlen) {\n%s"
              "    const char *names[%d];\n    etch_array arrays[%d];\n    int n = 0;\n"
              "    for (int i = 0; %s_params[i].name; i++) {\n"
              "        const etch_tensor_info *p = &%s_params[i];\n"
              "        if (!with_state && !strncmp(p->name, \"optimizer.\", 10)) continue;\n"
              "        names[n] = p->name;\n"
              "        arrays[n] = (etch_array){p->dtype, p->rank, {0}, %s_param_data[i]};\n"
              "        memcpy(arrays[n].dim, p->dim, sizeof arrays[n].dim);\n        n++;\n    }\n"
              "    const char *meta[] = {\"format\", \"pt\"};\n"
              "    return etch_st_write(path, n, names, arrays, 1, meta, err, errlen);\n}\n\n",
              P, on_save ? on_save : "", pt->n + 1, pt->n + 1, P, P, P);
}

bool module_write_text(const char *dir, const char *name, const char *text, Diag *d) {
    char path[4096], err[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (etch_write_file_atomic(path, text, strlen(text), err, sizeof err)) return diag_error_plain(d, "%s", err);
    return true;
}

/* dir/<prefix>_weights.bin (module_blob_layout) from o->param_values. */
static bool module_write_blob(const CGenEntry *entries, int n_entries, const CGenOptions *o, const char *dir, Diag *d) {
    Arena *a = arena_new();
    ParamTable pt;
    bool ok = module_collect_params(entries, n_entries, a, &pt, d);
    int64_t *offset = arena_alloc(a, sizeof(int64_t) * (size_t)(pt.n + 1));
    int64_t bytes = ok ? module_blob_layout(&pt, offset) : 0;
    unsigned char *blob = ok ? calloc((size_t)bytes + 1, 1) : NULL;
    for (int i = 0; ok && i < pt.n; i++) {
        const Tensor *t = o->param_values[i];
        const Node *n = pt.node[i];
        if (t->dtype != n->dtype || tensor_numel(t) != shape_numel(&n->shape)) /* the caller converted them */
            ok = diag_error_plain(d, "internal error: the value of parameter '%s' does not match its type",
                                  n->attr.name);
        else
            memcpy(blob + offset[i], t->data, (size_t)tensor_numel(t) * dtype_size(t->dtype));
    }
    char name[256], path[4096], err[1024];
    snprintf(name, sizeof name, "%s_weights.bin", o->prefix);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (ok && etch_write_file_atomic(path, blob, (size_t)bytes, err, sizeof err)) ok = diag_error_plain(d, "%s", err);
    free(blob);
    arena_free(a);
    return ok;
}

extern const char etch_rt_h_source[], etch_rt_c_source[], etch_infer_main_source[], etch_train_main_source[],
    etch_train_mpi_source[];

/* train_steps.h, which the training driver includes: its steps' entry
 * points, loss labels and step counters, and the order of one batch. */
static char *module_train_steps_header(const CGenOptions *o) {
    StrBuf h = {0};
    const char *P = o->prefix;
    int n = o->n_train_steps;
    sb_printf(&h, "/* train_steps.h: generated by etch. Do not edit.\n * The training steps (one per named step of the "
                  "train block) and the order each batch runs them. */\n");
    sb_printf(&h, "#define ETCH_TRAIN_N_STEPS %d\n#define ETCH_TRAIN_N_SCHEDULE %d\n", n, o->n_schedule);
    sb_printf(&h, "typedef void (*etch_step_fn)(const void *const *inputs, void *const *outputs);\n");
    sb_printf(&h, "static const etch_step_fn etch_step_fns[] = {");
    for (int i = 0; i < n; i++) sb_printf(&h, "%s%s_%s_v", i ? ", " : "", P, o->train_steps[i].entry);
    if (o->device_params) { /* ETCH_ASYNC_ENTRIES: each step in two halves */
        sb_printf(&h, "};\nstatic void (*const etch_step_begin_fns[])(const void *const *inputs) = {");
        for (int i = 0; i < n; i++) sb_printf(&h, "%s%s_%s_begin_v", i ? ", " : "", P, o->train_steps[i].entry);
        sb_printf(&h, "};\nstatic void (*const etch_step_end_fns[])(void *const *outputs) = {");
        for (int i = 0; i < n; i++) sb_printf(&h, "%s%s_%s_end_v", i ? ", " : "", P, o->train_steps[i].entry);
    }
    sb_printf(&h, "};\nstatic const etch_tensor_info *const etch_step_inputs[] = {");
    for (int i = 0; i < n; i++) sb_printf(&h, "%s%s_%s_inputs", i ? ", " : "", P, o->train_steps[i].entry);
    sb_printf(&h, "};\n/* the loss labels (NULL: a train block without named steps) */\n");
    sb_printf(&h, "static const char *const etch_step_labels[] = {");
    for (int i = 0; i < n; i++) {
        const char *label = o->train_steps[i].label;
        sb_printf(&h, "%s%s%s%s", i ? ", " : "", label ? "\"" : "", label ? label : "NULL", label ? "\"" : "");
    }
    sb_printf(&h, "};\nstatic const char *const etch_step_counters[] = {");
    for (int i = 0; i < n; i++) sb_printf(&h, "%s\"%s\"", i ? ", " : "", o->train_steps[i].counter);
    sb_printf(&h, "};\nstatic const int etch_schedule[] = {");
    for (int i = 0; i < o->n_schedule; i++) sb_printf(&h, "%s%d", i ? ", " : "", o->schedule[i]);
    sb_printf(&h, "};\n");
    return sb_take(&h);
}

void module_tables(StrBuf *b, const CGenEntry *entries, int n_entries, const ParamTable *pt, const char *P) {
    for (int k = 0; k < n_entries; k++) {
        const Graph *g = entries[k].g;
        char decl[256];
        snprintf(decl, sizeof decl, "%s_%s_inputs", P, entries[k].name);
        module_info_table(b, decl, g, g->inputs, g->n_inputs);
        snprintf(decl, sizeof decl, "%s_%s_outputs", P, entries[k].name);
        module_info_table(b, decl, g, g->outputs, g->n_outputs);
    }
    sb_printf(b, "const etch_tensor_info %s_params[] = {\n", P);
    for (int i = 0; i < pt->n; i++) {
        sb_printf(b, "    {\"%s\", %s, %d, ", pt->node[i]->attr.name, module_rt_dtype(pt->node[i]->dtype),
                  pt->node[i]->shape.rank);
        module_shape_list(b, &pt->node[i]->shape);
        sb_puts(b, "},\n");
    }
    sb_puts(b, "    {0},\n};\n\n");
}

bool module_write_files(const CGenEntry *entries, int n_entries, const CGenOptions *o, const char *dir,
                        const char *source_name, const char *source, Diag *d) {
    char *h = cgen_model_header(entries, n_entries, o);
    bool ok = (!o->embed_weights || module_write_blob(entries, n_entries, o, dir, d)) &&
              module_write_text(dir, "model.h", h, d) && module_write_text(dir, source_name, source, d) &&
              module_write_text(dir, "etch_rt.h", etch_rt_h_source, d) &&
              module_write_text(dir, "etch_rt.c", etch_rt_c_source, d);
    if (ok && o->mpi) ok = module_write_text(dir, "etch_mpi.c", etch_train_mpi_source, d);
    if (ok && o->driver == CGEN_DRIVER_INFER) ok = module_write_text(dir, "main.c", etch_infer_main_source, d);
    if (ok && o->driver == CGEN_DRIVER_TRAIN) {
        char *steps = module_train_steps_header(o);
        ok = module_write_text(dir, "train_steps.h", steps, d) &&
             module_write_text(dir, "main.c", etch_train_main_source, d);
        free(steps);
    }
    free(h);
    return ok;
}
