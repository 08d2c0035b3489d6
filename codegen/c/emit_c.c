/* emit_c.c: the C backend driver. It reads where every value lives from each
 * graph's memory plan (Graph.mem_plan, made by the pass pipeline's
 * plan-memory stage), writes each entry function of the model as a sequence
 * of loop nests (each op's own emitter, from the op table, writes its nest;
 * each fusion group's, the emitter of its kind) and wraps them into model.c
 * and model.h, next to the runtime and, for programs, a driver main.c.
 *
 * Storage: an entry's inputs and outputs are its pointer arguments;
 * parameters are static arrays shared by all entries and contexts (bss,
 * filled from a safetensors file by <prefix>_load, or const arrays with
 * embedded weights); every other value lives at a fixed offset in the arena
 * of the call's context (P_ctx: the arena, whose size is a compile-time
 * constant and which a context's entries share since they run one at a time,
 * and the scratch that kernels keep across a call, cemit_scratch). Each entry
 * P_E_ctx takes its context; P_E runs P_E_ctx in the default context, whose
 * memory is static. Views (reshape) reuse their operand's storage. After an
 * entry's outputs are written, its state updates (a training step's new
 * weights and optimizer state) are copied into their parameters. */
#include "codegen/c/emit_c.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/c/emit.h"
#include "codegen/c/fused.h"
#include "ir/params.h"
#include "codegen/c/ops/c_ops.h"
#include "passes/plan_memory.h"
#include "runtime/etch_rt.h"

/* The parameters of all entries, unified by name. */
typedef struct ParamTable {
    int n;
    const Node **node; /* first node seen with that name (type and init) */
} ParamTable;

/* The runtime's enum constant for an IR dtype (ir_dtype_to_rt), as C text. */
static const char *rt_dtype_enum(DType t) {
    static const char *names[ETCH_DTYPE_COUNT] = {[ETCH_F32] = "ETCH_F32", [ETCH_F64] = "ETCH_F64", [ETCH_I32] = "ETCH_I32",
                                                  [ETCH_I64] = "ETCH_I64", [ETCH_BOOL] = "ETCH_BOOL", [ETCH_U8] = "ETCH_U8", [ETCH_I8] = "ETCH_I8"};
    return names[ir_dtype_to_rt(t)];
}

/* "fc1.weight" -> "fc1_weight": a C identifier fragment. */
static char *c_ident(Arena *a, const char *name) {
    char *s = arena_strdup(a, name);
    for (char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p)) *p = '_';
    return s;
}

static char *upper(Arena *a, const char *s) {
    char *u = c_ident(a, s);
    for (char *p = u; *p; p++) *p = (char)toupper((unsigned char)*p);
    return u;
}

static int param_index(const ParamTable *t, const char *name) {
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->node[i]->attr.name, name)) return i;
    return -1;
}

static bool collect_params(const CGenEntry *e, int n, Arena *a, ParamTable *t, Diag *d) {
    int cap = 0;
    for (int k = 0; k < n; k++) cap += e[k].g->n_params;
    t->node = arena_alloc(a, sizeof(Node *) * (size_t)(cap + 1));
    t->n = 0;
    for (int k = 0; k < n; k++)
        for (int i = 0; i < e[k].g->n_params; i++) {
            const Node *p = &e[k].g->nodes[e[k].g->params[i]];
            int j = param_index(t, p->attr.name);
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

static void emit_shape_list(StrBuf *b, const Shape *s) {
    sb_puts(b, "{");
    for (int i = 0; i < s->rank; i++) sb_printf(b, "%s%lld", i ? ", " : "", (long long)s->dim[i]);
    if (s->rank == 0) sb_puts(b, "0");
    sb_puts(b, "}");
}

static void emit_info_table(StrBuf *b, const char *decl, const Graph *g, const int *ids, int n) {
    sb_printf(b, "const etch_tensor_info %s[] = {\n", decl);
    for (int i = 0; i < n; i++) {
        const Node *nd = &g->nodes[ids[i]];
        sb_printf(b, "    {\"%s\", %s, %d, ", nd->attr.name ? nd->attr.name : "out", rt_dtype_enum(nd->dtype),
                  nd->shape.rank);
        emit_shape_list(b, &nd->shape);
        sb_puts(b, "},\n");
    }
    sb_puts(b, "    {0},\n};\n\n");
}

/* `void P_E(inputs, outputs)`, or with_ctx `void P_E_ctx(P_ctx *ctx, inputs, outputs)`. */
static void emit_signature(StrBuf *b, Arena *a, const char *prefix, const CGenEntry *e, bool with_types,
                           bool with_ctx) {
    const Graph *g = e->g;
    char ty[96];
    sb_printf(b, "void %s_%s%s(", prefix, e->name, with_ctx ? "_ctx" : "");
    if (with_ctx) sb_printf(b, "%s_ctx *ctx%s", prefix, g->n_inputs || g->n_outputs ? ", " : "");
    for (int i = 0; i < g->n_inputs; i++) {
        const Node *n = &g->nodes[g->inputs[i]];
        sb_printf(b, "%sconst %s *in_%s", i ? ", " : "", dtype_c_type(n->dtype), c_ident(a, n->attr.name));
        if (with_types) sb_printf(b, " /* %s */", type_format(ty, sizeof ty, n->dtype, &n->shape));
    }
    for (int i = 0; i < g->n_outputs; i++) {
        const Node *n = &g->nodes[g->outputs[i]];
        sb_printf(b, "%s%s *out%d", i || g->n_inputs ? ", " : "", dtype_c_type(n->dtype), i);
        if (with_types) sb_printf(b, " /* %s */", type_format(ty, sizeof ty, n->dtype, &n->shape));
    }
    if (!g->n_inputs && !g->n_outputs && !with_ctx) sb_puts(b, "void");
    sb_puts(b, ")");
}

/* The etch version that wrote the header, and a compile-time stop when the
 * runtime header beside it comes from another version (their ABI may differ). */
static void emit_version_check(StrBuf *h, const char *upper_prefix) {
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
    collect_params(entries, n_entries, a, &pt, &quiet);
    diag_dispose(&quiet);
    StrBuf h = {0};
    const char *P = o->prefix;
    sb_printf(&h, "/* model.h: generated by etch. Do not edit.\n * Entry points:");
    for (int k = 0; k < n_entries; k++) sb_printf(&h, " %s_%s (graph %s)", P, entries[k].name, entries[k].g->name);
    sb_printf(&h, ". */\n#ifndef ETCH_MODEL_%s_H\n#define ETCH_MODEL_%s_H\n\n", upper(a, P), upper(a, P));
    sb_printf(&h, "#include <stddef.h>\n#include <stdint.h>\n\n#include \"etch_rt.h\"\n\n");
    emit_version_check(&h, upper(a, P));
    sb_printf(&h, "/* Generic names for the drivers in runtime/drivers (one model per program;\n"
                  " * with several model.h in one file, the first one included has them). */\n#ifndef ETCH_MODEL\n");
    sb_printf(&h, "#define ETCH_MODEL(name) %s_##name\n#define ETCH_N_PARAMS %d\n#define ETCH_WEIGHTS_EMBEDDED %d\n", P,
              pt.n, o->embed_weights ? 1 : 0);
    for (int k = 0; k < n_entries; k++) {
        const char *E = upper(a, entries[k].name);
        sb_printf(&h, "#define ETCH_HAS_%s 1\n#define ETCH_%s_N_INPUTS %d\n#define ETCH_%s_N_OUTPUTS %d\n", E, E,
                  entries[k].g->n_inputs, E, entries[k].g->n_outputs);
    }
    sb_printf(&h, "#endif\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n");
    sb_printf(&h, "\n/* Every parameter (model weights, then optimizer state named \"optimizer.*\"). */\n");
    sb_printf(&h, "extern const etch_tensor_info %s_params[];\nextern void *const %s_param_data[];\n\n", P, P);
    sb_printf(&h, "/* Loads parameters from a safetensors file, checking names, dtypes and shapes.\n"
                  " * Optimizer state (\"optimizer.*\") is required only when state_required; absent\n"
                  " * state stays zero. Returns 0, or -1 with a message in err. */\n");
    sb_printf(&h, "int %s_load(const char *path, int state_required, char *err, size_t errlen);\n", P);
    sb_printf(&h, "/* Writes the weights (and the optimizer state when with_state) atomically. */\n");
    sb_printf(&h, "int %s_save(const char *path, int with_state, char *err, size_t errlen);\n\n", P);
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
        emit_signature(&h, a, P, &entries[k], true, true);
        sb_printf(&h, ";\n/* The same in the default context (static memory): one call at a time. */\n");
        emit_signature(&h, a, P, &entries[k], true, false);
        sb_printf(&h, ";\n/* The same, with arrays of pointers in %s_%s_inputs / _outputs order. */\n", P, E);
        sb_printf(&h, "void %s_%s_v(const void *const *inputs, void *const *outputs);\n\n", P, E);
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
static int64_t blob_layout(const ParamTable *pt, int64_t *offset) {
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
static void emit_blob(StrBuf *b, const char *P, int64_t bytes) {
    sb_printf(b, "/* The weights: %s_weights.bin (%lld bytes, each parameter at a multiple of 64), assembled in by "
                 ".incbin: compile with -Wa,-I<the folder of that file>. */\n", P, (long long)bytes);
    sb_puts(b, "#if !defined(__ELF__)\n#error \"embedded weights are assembled with ELF directives (Linux, BSD)\"\n"
               "#endif\n");
    sb_printf(b, "__asm__(\".section .rodata\\n.balign 64\\n.globl %s_weights\\n.hidden %s_weights\\n"
                 ".type %s_weights, @object\\n%s_weights:\\n.incbin \\\"%s_weights.bin\\\"\\n"
                 ".size %s_weights, .-%s_weights\\n.previous\");\n", P, P, P, P, P, P, P);
    sb_printf(b, "extern const unsigned char %s_weights[] __attribute__((visibility(\"hidden\")));\n", P);
}

/* What cemit_subgraph needs to emit a loop body the way entries are emitted. */
typedef struct EmitDriver {
    Arena *a;
    const ParamTable *pt;
    const char *P;
    CGenStats *st;
    int n_bodies;
    int64_t body_bytes;    /* the bodies' own arenas */
    int64_t scratch_bytes; /* the context's scratch so far (cemit_scratch) */
    int scratch_align;
} EmitDriver;

/* Reserves bytes of the context's scratch at a multiple of align (>= 64). */
static const char *reserve_scratch(EmitDriver *dr, int64_t bytes, int align) {
    if (align < 64) align = 64;
    if (align > dr->scratch_align) dr->scratch_align = align;
    int64_t at = (dr->scratch_bytes + align - 1) / align * align;
    dr->scratch_bytes = at + bytes;
    return arena_printf(dr->a, "(%s + %lld)", CEMIT_SCRATCH_NOW, (long long)at);
}

const char *cemit_scratch(CEmitter *e, int64_t bytes) {
    if (e->driver) return reserve_scratch(e->driver, bytes, 64);
    char name[48]; /* one kernel outside a model: a static array */
    snprintf(name, sizeof name, "etch_static_scratch%d", e->n_defined);
    cemit_define_once(e, name);
    sb_printf(e->preamble, "static _Alignas(64) unsigned char %s[%lld];\n", name, (long long)(bytes ? bytes : 64));
    return e->defined[e->n_defined - 1];
}

/* Emits one entry function, P_E_ctx (or, with a body_arena, a scan body: a
 * static function whose arena is that part of the context's scratch);
 * returns the arena bytes it needs. */
static int64_t emit_entry(StrBuf *b, StrBuf *pre, CEmitter *shared, EmitDriver *dr, const CGenEntry *en,
                          const char *body_arena) {
    Arena *a = dr->a;
    const ParamTable *pt = dr->pt;
    const char *P = dr->P;
    CGenStats *st = dr->st;
    bool is_body = body_arena != NULL;
    const Graph *g = en->g;
    const MemPlan *mp = g->mem_plan;
    const char **buf = arena_alloc(a, sizeof(char *) * (size_t)(g->n_nodes + 1));
    int *leaf_slot = arena_alloc(a, sizeof(int) * (size_t)(g->n_nodes + 1));
    char ty[96];
    for (int id = 0; id < g->n_nodes; id++) {
        const Node *n = &g->nodes[id];
        leaf_slot[id] = -1;
        switch (mp->kind[id]) {
        case STORE_INPUT: buf[id] = arena_printf(a, "in_%s", c_ident(a, n->attr.name)); break;
        case STORE_PARAM:
            buf[id] = arena_printf(a, "%s_p%d", P, param_index(pt, g->nodes[mp->ref[id]].attr.name));
            break;
        case STORE_OUTPUT: buf[id] = arena_printf(a, "out%d", mp->ref[id]); break;
        case STORE_ARENA: buf[id] = arena_printf(a, "t%d", id); break;
        case STORE_VIEW: buf[id] = buf[mp->ref[id]]; break;
        case STORE_REGISTER: buf[id] = NULL; break;
        }
    }
    if (!is_body) sb_puts(b, "ETCH_CLONES ");
    emit_signature(b, a, P, en, false, !is_body);
    sb_puts(b, " {\n");
    CEmitter e = *shared; /* carries the preamble's definitions across entries */
    e.out = b, e.g = g, e.buf = buf, e.indent = 1, e.preamble = pre, e.driver = dr;
    if (!is_body) cemit_line(&e, "%s = ctx->scratch;", CEMIT_SCRATCH_NOW);
    /* a body need not read every capture, nor an entry every input (an
     * autoencoder's training step ignores its labels) */
    for (int i = 0; i < g->n_inputs; i++) cemit_line(&e, "(void)%s;", buf[g->inputs[i]]);
    bool uses_arena = false;
    for (int id = 0; id < g->n_nodes; id++) uses_arena |= mp->kind[id] == STORE_ARENA;
    if (uses_arena) cemit_line(&e, "unsigned char *const arena = %s;", is_body ? body_arena : "ctx->arena");
    for (int id = 0; id < g->n_nodes; id++) {
        const Node *n = &g->nodes[id];
        if (mp->kind[id] == STORE_ARENA)
            cemit_line(&e, "%s *const %s = (%s *)(arena + %lld);", dtype_c_type(n->dtype), buf[id],
                       dtype_c_type(n->dtype), (long long)mp->offset[id]);
    }
    for (int id = 0; id < g->n_nodes; id++) {
        const Node *n = &g->nodes[id];
        if (n->op == OP_INPUT || n->op == OP_PARAM) continue;
        if (n->attr.group.kind != FUSE_NONE) {
            if (n->attr.group.at == id) { /* the whole group, once, at its position */
                c_group_emitters[n->attr.group.kind](&e, g, mp, id, leaf_slot);
                st->kernels++;
            }
            continue;
        }
        if (op_is_view(n->op) && buf[id] == buf[n->in[0]]) continue;
        if (n->op == OP_CONST && shape_numel(&n->shape) == 1 && mp->kind[id] == STORE_ARENA) {
            /* a scalar constant: one store, not a kernel */
        } else {
            st->kernels++;
        }
        cemit_line(&e, "{ /* %%%d = %s : %s  @ %s:%d:%d */", id, op_table[n->op].name,
                   type_format(ty, sizeof ty, n->dtype, &n->shape), n->loc.file ? n->loc.file : "?", n->loc.line,
                   n->loc.col);
        e.indent++;
        c_op_table[n->op].emit(&e, g, id);
        e.indent--;
        cemit_line(&e, "}");
    }
    for (int i = 0; i < g->n_outputs; i++) { /* outputs that are sources, views or repeat an earlier output */
        int id = g->outputs[i];
        char want[32];
        snprintf(want, sizeof want, "out%d", i);
        if (strcmp(buf[id], want) != 0)
            cemit_line(&e, "memcpy(out%d, %s, %zu);", i, buf[id],
                       (size_t)shape_numel(&g->nodes[id].shape) * dtype_size(g->nodes[id].dtype));
    }
    for (int i = 0; i < g->n_updates; i++) { /* every source was computed above; now commit the state */
        const Node *dst = &g->nodes[g->upd_dst[i]];
        if (mp->update_in_place[i]) continue;
        cemit_line(&e, "memcpy(%s, %s, %zu); /* %s */", buf[g->upd_dst[i]], buf[g->upd_src[i]],
                   (size_t)shape_numel(&dst->shape) * dtype_size(dst->dtype), dst->attr.name);
    }
    *shared = e;
    sb_puts(b, "}\n\n");
    st->naive_bytes += mp->naive_bytes;
    if (is_body) return mp->arena_bytes;
    emit_signature(b, a, P, en, false, false); /* P_E: P_E_ctx in the default context */
    sb_printf(b, " {\n    %s_%s_ctx(&%s_ctx_default", P, en->name, P);
    for (int i = 0; i < g->n_inputs; i++) sb_printf(b, ", %s", buf[g->inputs[i]]);
    for (int i = 0; i < g->n_outputs; i++) sb_printf(b, ", out%d", i);
    sb_puts(b, ");\n}\n\n");
    sb_printf(b, "void %s_%s_v(const void *const *inputs, void *const *outputs) {\n", P, en->name);
    sb_printf(b, "    (void)inputs, (void)outputs;\n    %s_%s(", P, en->name);
    for (int i = 0; i < g->n_inputs; i++)
        sb_printf(b, "%s(const %s *)inputs[%d]", i ? ", " : "", dtype_c_type(g->nodes[g->inputs[i]].dtype), i);
    for (int i = 0; i < g->n_outputs; i++)
        sb_printf(b, "%s(%s *)outputs[%d]", i || g->n_inputs ? ", " : "", dtype_c_type(g->nodes[g->outputs[i]].dtype), i);
    sb_puts(b, ");\n}\n\n");
    return mp->arena_bytes;
}

const char *cemit_subgraph(CEmitter *e, const Graph *body) {
    EmitDriver *dr = e->driver;
    CGenEntry en = {.g = body, .name = arena_printf(dr->a, "loop%d", dr->n_bodies++)};
    StrBuf fn = {0};
    sb_printf(&fn, "/* scan body %s: one time step */\nETCH_CLONES static ", body->name);
    CEmitter sub = *e; /* shares the preamble's definitions */
    const char *arena = reserve_scratch(dr, body->mem_plan->arena_bytes, body->mem_plan->align);
    int64_t need = emit_entry(&fn, e->preamble, &sub, dr, &en, arena);
    e->defined = sub.defined, e->n_defined = sub.n_defined, e->cap_defined = sub.cap_defined;
    e->n_loops = sub.n_loops;
    dr->body_bytes += need;
    sb_puts(e->preamble, fn.s);
    sb_free(&fn);
    return arena_printf(dr->a, "%s_%s", dr->P, en.name);
}

static void emit_load_save(StrBuf *b, const ParamTable *pt, const char *P, bool embedded) {
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
                  "    etch_st_close(&f);\n    return 0;\n}\n\n",
                  P, P, P, P);
    }
    sb_printf(b,
              "int %s_save(const char *path, int with_state, char *err, size_t errlen) {\n"
              "    const char *names[%d];\n    etch_array arrays[%d];\n    int n = 0;\n"
              "    for (int i = 0; %s_params[i].name; i++) {\n"
              "        const etch_tensor_info *p = &%s_params[i];\n"
              "        if (!with_state && !strncmp(p->name, \"optimizer.\", 10)) continue;\n"
              "        names[n] = p->name;\n"
              "        arrays[n] = (etch_array){p->dtype, p->rank, {0}, %s_param_data[i]};\n"
              "        memcpy(arrays[n].dim, p->dim, sizeof arrays[n].dim);\n        n++;\n    }\n"
              "    const char *meta[] = {\"format\", \"pt\"};\n"
              "    return etch_st_write(path, n, names, arrays, 1, meta, err, errlen);\n}\n\n",
              P, pt->n + 1, pt->n + 1, P, P, P);
}

/* struct P_ctx, the default context's static memory, P_ctx_create and P_ctx_free. */
static void emit_contexts(StrBuf *b, const char *P, int64_t arena_bytes, int arena_align, int64_t scratch_bytes,
                          int scratch_align) {
    int64_t arena = (arena_bytes + arena_align - 1) / arena_align * arena_align;
    int64_t scratch = (scratch_bytes + scratch_align - 1) / scratch_align * scratch_align;
    arena = arena ? arena : arena_align, scratch = scratch ? scratch : scratch_align;
    sb_printf(b, "/* A context's memory: intermediates (the arena: %lld bytes, fixed at compile time)\n"
                 " * and what kernels keep across a call (the scratch: %lld bytes). */\n",
              (long long)arena_bytes, (long long)scratch_bytes);
    sb_printf(b, "struct %s_ctx {\n    unsigned char *arena, *scratch;\n};\n", P);
    sb_printf(b, "static _Alignas(%d) unsigned char %s_arena[%lld];\n", arena_align, P, (long long)arena);
    sb_printf(b, "static _Alignas(%d) unsigned char %s_scratch[%lld];\n", scratch_align, P, (long long)scratch);
    sb_printf(b, "static %s_ctx %s_ctx_default = {%s_arena, %s_scratch};\n\n", P, P, P, P);
    sb_printf(b, "void %s_ctx_free(%s_ctx *ctx) {\n    if (!ctx) return;\n    free(ctx->arena);\n"
                 "    free(ctx->scratch);\n    free(ctx);\n}\n\n", P, P);
    sb_printf(b, "%s_ctx *%s_ctx_create(char *err, size_t errlen) {\n"
                 "    %s_ctx *ctx = calloc(1, sizeof *ctx);\n"
                 "    if (ctx) ctx->arena = aligned_alloc(%d, %lld), ctx->scratch = aligned_alloc(%d, %lld);\n"
                 "    if (!ctx || !ctx->arena || !ctx->scratch) {\n        %s_ctx_free(ctx);\n"
                 "        snprintf(err, errlen, \"%s_ctx_create: out of memory (%lld bytes)\");\n"
                 "        return NULL;\n    }\n"
                 "    memset(ctx->arena, 0, %lld);\n    memset(ctx->scratch, 0, %lld);\n    return ctx;\n}\n\n",
              P, P, P, arena_align, (long long)arena, scratch_align, (long long)scratch, P, P,
              (long long)(arena + scratch), (long long)arena, (long long)scratch);
}

char *cgen_model_source(const CGenEntry *entries, int n_entries, const CGenOptions *o, CGenStats *stats, Diag *d) {
    Arena *a = arena_new();
    ParamTable pt;
    bool ok = true;
    for (int k = 0; k < n_entries && ok; k++)
        ok = backend_check_ops(&backend_c, entries[k].g, d) && backend_check_planned(&backend_c, entries[k].g, d);
    if (!ok || !collect_params(entries, n_entries, a, &pt, d)) {
        arena_free(a);
        return NULL;
    }
    const char *P = o->prefix;
    CGenStats st = {0};
    StrBuf b = {0}, body = {0}, pre = {0};
    char ty[96];
    int64_t arena_bytes = 0;
    CEmitter shared = {.threads = o->threads > 0 ? o->threads : 1, .blas = o->blas, .preamble = &pre};
    EmitDriver dr = {.a = a, .pt = &pt, .P = P, .st = &st, .scratch_align = 64};
    cemit_scratch_support(&shared);
    int align = 1; /* the arena's: the strictest of the entries' plans */
    for (int k = 0; k < n_entries; k++) {
        int64_t need = emit_entry(&body, &pre, &shared, &dr, &entries[k], NULL);
        if (need > arena_bytes) arena_bytes = need;
        if (entries[k].g->mem_plan->align > align) align = entries[k].g->mem_plan->align;
    }
    st.arena_bytes = arena_bytes + dr.body_bytes;

    sb_printf(&b, "/* model.c: generated by etch. Do not edit.\n");
    sb_printf(&b, " * Every loop bound is a literal: the code is specialized to these shapes.\n");
    sb_printf(&b, " * Needs only libc and libm (and etch_rt.c for files). */\n");
    sb_printf(&b, "#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <tgmath.h>\n\n"
                  "#include \"model.h\"\n\n");
    sb_puts(&b, cemit_math_prelude);
    for (int k = 0; k < n_entries; k++) {
        const Graph *g = entries[k].g;
        char decl[256];
        snprintf(decl, sizeof decl, "%s_%s_inputs", P, entries[k].name);
        emit_info_table(&b, decl, g, g->inputs, g->n_inputs);
        snprintf(decl, sizeof decl, "%s_%s_outputs", P, entries[k].name);
        emit_info_table(&b, decl, g, g->outputs, g->n_outputs);
    }
    sb_printf(&b, "const etch_tensor_info %s_params[] = {\n", P);
    for (int i = 0; i < pt.n; i++) {
        sb_printf(&b, "    {\"%s\", %s, %d, ", pt.node[i]->attr.name, rt_dtype_enum(pt.node[i]->dtype),
                  pt.node[i]->shape.rank);
        emit_shape_list(&b, &pt.node[i]->shape);
        sb_puts(&b, "},\n");
    }
    sb_puts(&b, "    {0},\n};\n\n");
    emit_contexts(&b, P, arena_bytes, align, dr.scratch_bytes, dr.scratch_align);
    int64_t *offset = arena_alloc(a, sizeof(int64_t) * (size_t)(pt.n + 1));
    if (o->embed_weights) emit_blob(&b, P, blob_layout(&pt, offset));
    for (int i = 0; i < pt.n; i++) {
        const Node *n = pt.node[i];
        int64_t numel = shape_numel(&n->shape);
        st.param_bytes += numel * (int64_t)dtype_size(n->dtype);
        sb_printf(&b, "/* %s: %s */\n", n->attr.name, type_format(ty, sizeof ty, n->dtype, &n->shape));
        if (o->embed_weights) {
            sb_printf(&b, "#define %s_p%d ((const %s *)(%s_weights + %lld))\n", P, i, dtype_c_type(n->dtype), P,
                      (long long)offset[i]);
        } else {
            sb_printf(&b, "static _Alignas(64) %s %s_p%d[%lld];\n", dtype_c_type(n->dtype), P, i, (long long)numel);
        }
    }
    sb_printf(&b, "\nvoid *const %s_param_data[] = {", P);
    for (int i = 0; i < pt.n; i++) sb_printf(&b, "%s(void *)%s_p%d", i ? ", " : "", P, i);
    sb_printf(&b, "%sNULL};\n\n", pt.n ? ", " : "");
    emit_load_save(&b, &pt, P, o->embed_weights);
    sb_puts(&b, pre.s ? pre.s : "");
    sb_puts(&b, body.s ? body.s : "");
    sb_free(&body);
    sb_free(&pre);
    for (int i = 0; i < shared.n_defined; i++) free((void *)shared.defined[i]);
    free(shared.defined);
    if (stats) *stats = st;
    arena_free(a);
    return sb_take(&b);
}

static bool write_text(const char *dir, const char *name, const char *text, Diag *d) {
    char path[4096], err[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (etch_write_file_atomic(path, text, strlen(text), err, sizeof err)) return diag_error_plain(d, "%s", err);
    return true;
}

/* dir/<prefix>_weights.bin (blob_layout) from o->param_values. */
static bool write_blob(const CGenEntry *entries, int n_entries, const CGenOptions *o, const char *dir, Diag *d) {
    Arena *a = arena_new();
    ParamTable pt;
    bool ok = collect_params(entries, n_entries, a, &pt, d);
    int64_t *offset = arena_alloc(a, sizeof(int64_t) * (size_t)(pt.n + 1));
    int64_t bytes = ok ? blob_layout(&pt, offset) : 0;
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
static char *train_steps_header(const CGenOptions *o) {
    StrBuf h = {0};
    const char *P = o->prefix;
    int n = o->n_train_steps;
    sb_printf(&h, "/* train_steps.h: generated by etch. Do not edit.\n * The training steps (one per named step of the "
                  "train block) and the order each batch runs them. */\n");
    sb_printf(&h, "#define ETCH_TRAIN_N_STEPS %d\n#define ETCH_TRAIN_N_SCHEDULE %d\n", n, o->n_schedule);
    sb_printf(&h, "typedef void (*etch_step_fn)(const void *const *inputs, void *const *outputs);\n");
    sb_printf(&h, "static const etch_step_fn etch_step_fns[] = {");
    for (int i = 0; i < n; i++) sb_printf(&h, "%s%s_%s_v", i ? ", " : "", P, o->train_steps[i].entry);
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

bool cgen_write(const CGenEntry *entries, int n_entries, const CGenOptions *o, const char *dir, CGenStats *stats,
                Diag *d) {
    char *c = cgen_model_source(entries, n_entries, o, stats, d);
    if (!c) return false;
    char *h = cgen_model_header(entries, n_entries, o);
    bool ok = (!o->embed_weights || write_blob(entries, n_entries, o, dir, d)) && write_text(dir, "model.h", h, d) &&
              write_text(dir, "model.c", c, d) &&
              write_text(dir, "etch_rt.h", etch_rt_h_source, d) && write_text(dir, "etch_rt.c", etch_rt_c_source, d);
    if (ok && o->mpi) ok = write_text(dir, "etch_mpi.c", etch_train_mpi_source, d);
    if (ok && o->driver == CGEN_DRIVER_INFER) ok = write_text(dir, "main.c", etch_infer_main_source, d);
    if (ok && o->driver == CGEN_DRIVER_TRAIN) {
        char *steps = train_steps_header(o);
        ok = write_text(dir, "train_steps.h", steps, d) && write_text(dir, "main.c", etch_train_main_source, d);
        free(steps);
    }
    free(h);
    free(c);
    return ok;
}
