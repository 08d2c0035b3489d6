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
#include "codegen/c/module.h"
#include "ir/params.h"
#include "codegen/c/ops/c_ops.h"
#include "passes/plan_memory.h"
#include "runtime/etch_rt.h"

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
        case STORE_INPUT: buf[id] = arena_printf(a, "in_%s", module_c_ident(a, n->attr.name)); break;
        case STORE_PARAM:
            buf[id] = arena_printf(a, "%s_p%d", P, module_param_index(pt, g->nodes[mp->ref[id]].attr.name));
            break;
        case STORE_OUTPUT: buf[id] = arena_printf(a, "out%d", mp->ref[id]); break;
        case STORE_ARENA: buf[id] = arena_printf(a, "t%d", id); break;
        case STORE_VIEW: buf[id] = buf[mp->ref[id]]; break;
        case STORE_REGISTER: buf[id] = NULL; break;
        }
    }
    if (!is_body) sb_puts(b, "ETCH_CLONES ");
    module_signature(b, a, P, en, false, !is_body);
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
    module_signature(b, a, P, en, false, false); /* P_E: P_E_ctx in the default context */
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
    if (!ok || !module_collect_params(entries, n_entries, a, &pt, d)) {
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
    module_tables(&b, entries, n_entries, &pt, P);
    emit_contexts(&b, P, arena_bytes, align, dr.scratch_bytes, dr.scratch_align);
    int64_t *offset = arena_alloc(a, sizeof(int64_t) * (size_t)(pt.n + 1));
    if (o->embed_weights) module_blob(&b, P, module_blob_layout(&pt, offset));
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
    module_load_save(&b, &pt, P, o->embed_weights, NULL, NULL);
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

bool cgen_write(const CGenEntry *entries, int n_entries, const CGenOptions *o, const char *dir, CGenStats *stats,
                Diag *d) {
    char *c = cgen_model_source(entries, n_entries, o, stats, d);
    if (!c) return false;
    bool ok = module_write_files(entries, n_entries, o, dir, "model.c", c, d);
    free(c);
    return ok;
}
