/* emit_cuda.c: the CUDA backend driver: graphs -> model.cu (+ model.h, the
 * same C API as the C backend's, docs/c-api.md, and etch_cuda.h, the kernel
 * macro layer). It reads where every value lives from each graph's memory
 * plan and writes, per entry, the kernels (each op's emitter from
 * codegen/cuda/ops.def, each fusion group's from group.c) and a host
 * function that launches them in order.
 *
 * Device memory: a context owns one allocation: the arena of intermediates
 * (the memory plan's offsets, shared by the entries, which run one at a
 * time per context), then a staging area for the entry's inputs and
 * outputs, then the scratch (cuda_scratch: a scan's carries and step slots
 * and its body's own arena; an entry's reservations, which the entries
 * share too). The parameters (weights and optimizer state) are one allocation
 * shared by the contexts, each at a multiple of 64 bytes, mirrored by host
 * arrays (P_param_data): uploaded before a call when the host's are newer
 * (after P_load, or P_params_changed), downloaded by P_save and
 * P_params_to_host after a call that updated them (a training step, whose
 * updates are device copies after its kernels). Kernels address every value
 * at a literal offset from the two base pointers.
 *
 * A call: upload the inputs, run the entry's kernels (on the GPU the whole
 * sequence is captured once per context as a CUDA graph and replayed, so a
 * call is one graph launch), download the outputs into the context's pinned
 * host staging, wait, copy them to the caller. P_E_begin queues all but the
 * wait and the copy, P_E_end does those (emit_entry_function), so a caller
 * prepares its next inputs while the device runs. Errors (no device, out
 * of memory, a failed launch) print the reason and exit with status 1.
 * The same file compiled as C with ETCH_HOST_EMULATE (model_host.c) runs the
 * kernels on the CPU (etch_cuda.h). */
#include "codegen/cuda/emit_cuda.h"

#include <stdlib.h>
#include <string.h>

#include "codegen/c/module.h"
#include "codegen/cuda/cuda_emit.h"

extern const char etch_cuda_h_source[];

/* Where a value of an entry lives on the device, as a typed C expression. */
static const char *device_ref(Arena *a, const char *base, int64_t off, DType t) {
    return arena_printf(a, "((%s *)(%s + %lld))", dtype_c_type(t), base, (long long)off);
}

static int64_t align_up(int64_t x, int64_t a) { return (x + a - 1) / a * a; }

/* The staging area of an entry's inputs and outputs: each at a multiple of
 * 256 bytes from io_base; returns the area's size. */
static int64_t io_layout(const Graph *g, int64_t *in_off, int64_t *out_off) {
    int64_t at = 0;
    for (int i = 0; i < g->n_inputs; i++) {
        const Node *n = &g->nodes[g->inputs[i]];
        in_off[i] = at;
        at = align_up(at + shape_numel(&n->shape) * (int64_t)dtype_size(n->dtype), 256);
    }
    for (int i = 0; i < g->n_outputs; i++) {
        const Node *n = &g->nodes[g->outputs[i]];
        out_off[i] = at;
        at = align_up(at + shape_numel(&n->shape) * (int64_t)dtype_size(n->dtype), 256);
    }
    return at;
}

typedef struct CudaModule {
    Arena *a;
    const ParamTable *pt;
    const int64_t *param_off;
    const char *P;
    int64_t io_base; /* the staging area's offset in a context's memory */
    int64_t scratch_base;  /* the scratch's offset in a context's memory, after the staging area */
    int64_t scratch_used;  /* reserved by the entry being written */
    int64_t scratch_bytes; /* the most any entry reserved */
} CudaModule;

int64_t cuda_scratch(CudaEmitter *e, int64_t bytes, int align) {
    CudaModule *cm = e->module;
    int64_t at = align_up(cm->scratch_used, align > 256 ? align : 256);
    cm->scratch_used = at + bytes;
    if (cm->scratch_used > cm->scratch_bytes) cm->scratch_bytes = cm->scratch_used;
    return cm->scratch_base + at;
}

/* Graph g's kernels, their launches into e->launches, then copies of the
 * outputs that are no kernel's result (sources, views, an earlier output)
 * into their places: g's input k lives at in_ref[k], its output k at
 * out_ref[k], its arena at arena_base in a context's memory. Returns where
 * each node lives (buf). */
static const char **emit_graph_kernels(CudaModule *cm, CudaEmitter *e, const Graph *g, const char *const *in_ref,
                                       const char *const *out_ref, int64_t arena_base) {
    Arena *a = cm->a;
    const MemPlan *mp = g->mem_plan;
    const char **buf = arena_alloc(a, sizeof(char *) * (size_t)(g->n_nodes + 1));
    int *leaf_slot = arena_alloc(a, sizeof(int) * (size_t)(g->n_nodes + 1));
    for (int id = 0; id < g->n_nodes; id++) {
        const Node *n = &g->nodes[id];
        leaf_slot[id] = -1;
        switch (mp->kind[id]) {
        case STORE_INPUT: {
            int k = 0;
            while (g->inputs[k] != id) k++;
            buf[id] = in_ref[k];
            break;
        }
        case STORE_PARAM:
            buf[id] = device_ref(a, "w", cm->param_off[module_param_index(cm->pt, g->nodes[mp->ref[id]].attr.name)],
                                 n->dtype);
            break;
        case STORE_OUTPUT: buf[id] = out_ref[mp->ref[id]]; break;
        case STORE_ARENA: buf[id] = device_ref(a, "m", arena_base + mp->offset[id], n->dtype); break;
        case STORE_VIEW: buf[id] = buf[mp->ref[id]]; break;
        case STORE_REGISTER: buf[id] = NULL; break;
        }
    }
    const Graph *outer_g = e->c.g;
    const char **outer_buf = e->c.buf;
    e->c.g = g, e->c.buf = buf;
    for (int id = 0; id < g->n_nodes; id++) {
        const Node *n = &g->nodes[id];
        if (n->op == OP_INPUT || n->op == OP_PARAM) continue;
        if (n->attr.group.kind != FUSE_NONE) {
            if (n->attr.group.at == id) cuda_group_emitters[n->attr.group.kind](e, g, mp, id, leaf_slot);
            continue;
        }
        if (op_is_view(n->op) && buf[id] == buf[n->in[0]]) continue;
        cuda_op_table[n->op](e, g, id);
    }
    for (int i = 0; i < g->n_outputs; i++) { /* outputs that are sources, views or repeat an earlier output */
        int id = g->outputs[i];
        if (strcmp(buf[id], out_ref[i]) != 0)
            sb_printf(e->launches, "    etch_dev_copy(%s, %s, %zu, stream);\n", out_ref[i], buf[id],
                      (size_t)shape_numel(&g->nodes[id].shape) * dtype_size(g->nodes[id].dtype));
    }
    e->c.g = outer_g, e->c.buf = outer_buf;
    return buf;
}

void cuda_emit_subgraph(CudaEmitter *e, const Graph *body, const char *const *in_ref, const char *const *out_ref) {
    emit_graph_kernels(e->module, e, body, in_ref, out_ref,
                       cuda_scratch(e, body->mem_plan->arena_bytes, body->mem_plan->align));
}

/* The entry's kernels and its host function P_E_kernels (launches, then the
 * outputs that are no kernel's result copied into their staging slots and
 * the state updates committed); returns nothing, counts launches in e. */
static void emit_entry_kernels(CudaModule *cm, CudaEmitter *e, const CGenEntry *en, StrBuf *host, int64_t *in_off,
                               int64_t *out_off) {
    Arena *a = cm->a;
    const Graph *g = en->g;
    const MemPlan *mp = g->mem_plan;
    const char **in_ref = arena_alloc(a, sizeof(char *) * (size_t)(g->n_inputs + 1));
    const char **out_ref = arena_alloc(a, sizeof(char *) * (size_t)(g->n_outputs + 1));
    for (int i = 0; i < g->n_inputs; i++)
        in_ref[i] = device_ref(a, "m", cm->io_base + in_off[i], g->nodes[g->inputs[i]].dtype);
    for (int i = 0; i < g->n_outputs; i++)
        out_ref[i] = device_ref(a, "m", cm->io_base + out_off[i], g->nodes[g->outputs[i]].dtype);
    e->launch_count = 0;
    cm->scratch_used = 0;
    StrBuf launches = {0};
    e->launches = &launches;
    const char **buf = emit_graph_kernels(cm, e, g, in_ref, out_ref, 0);
    sb_printf(host, "/* %s (graph %s): %d kernels */\n", en->name, g->name, e->launch_count);
    sb_printf(host, "static void %s_%s_kernels(unsigned char *m, unsigned char *w, etch_stream stream) {\n", cm->P,
              en->name);
    sb_printf(host, "    (void)m, (void)w, (void)stream;\n%s", launches.s ? launches.s : "");
    for (int i = 0; i < g->n_updates; i++) { /* every source was computed above; now commit the state */
        const Node *dst = &g->nodes[g->upd_dst[i]];
        if (mp->update_in_place[i]) continue;
        sb_printf(host, "    etch_dev_copy(%s, %s, %zu, stream); /* %s */\n", buf[g->upd_dst[i]], buf[g->upd_src[i]],
                  (size_t)shape_numel(&dst->shape) * dtype_size(dst->dtype), dst->attr.name);
    }
    sb_puts(host, "}\n\n");
    sb_free(&launches);
}

/* The arguments of a call of g's entry: ", in_x, ..." (inputs) and/or
 * ", out0, ..." (outputs), or from arrays of pointers (from_arrays: the
 * _v functions' "inputs[0], ..." cast to their types), comma-separated. */
static void entry_args(StrBuf *b, Arena *a, const Graph *g, bool inputs, bool outputs, bool from_arrays) {
    int n = 0;
    for (int i = 0; inputs && i < g->n_inputs; i++, n++) {
        const Node *nd = &g->nodes[g->inputs[i]];
        if (from_arrays) sb_printf(b, "%s(const %s *)inputs[%d]", n ? ", " : "", dtype_c_type(nd->dtype), i);
        else sb_printf(b, "%sin_%s", n ? ", " : "", module_c_ident(a, nd->attr.name));
    }
    for (int i = 0; outputs && i < g->n_outputs; i++, n++) {
        if (from_arrays)
            sb_printf(b, "%s(%s *)outputs[%d]", n ? ", " : "", dtype_c_type(g->nodes[g->outputs[i]].dtype), i);
        else sb_printf(b, "%sout%d", n ? ", " : "", i);
    }
}

/* An entry E (the index-th) as the functions of model.h:
 *   P_E_queue (static): E's work on the context's stream: the inputs the
 *     begin recorded (ctx->in) uploaded into their staging slots, the
 *     kernels (on the GPU a CUDA graph, recorded at the context's first
 *     call), the outputs downloaded into the context's pinned host staging
 *     (ctx->host_io, laid out as the device's staging area);
 *   P_E_begin(ctx, inputs): records the inputs and queues the work without
 *     waiting (the inputs must stay unchanged until P_E_end: from memory of
 *     P_host_alloc the upload is asynchronous); at most one call begun per
 *     context;
 *   P_E_end(ctx, outputs): waits, fails as a call does (message, exit 1),
 *     copies the outputs from the staging into the caller's buffers and marks
 *     the parameters newer on the device when E updates them;
 *   P_E_ctx = begin + end; P_E and the _v forms in the default context.
 * Emulated (ETCH_HOST_EMULATE) the queue runs in P_E_end, as late as a GPU
 * may run it: a caller that changes the inputs between begin and end gets
 * the wrong result here too, not only on the device. */
static void emit_entry_function(CudaModule *cm, const CGenEntry *en, int index, StrBuf *b, const int64_t *in_off,
                                const int64_t *out_off) {
    Arena *a = cm->a;
    const char *P = cm->P, *E = en->name;
    const Graph *g = en->g;
    sb_printf(b, "static void %s_%s_queue(%s_ctx *ctx) {\n    %s_params_to_device(ctx->stream);\n", P, E, P, P);
    for (int i = 0; i < g->n_inputs; i++) {
        const Node *n = &g->nodes[g->inputs[i]];
        sb_printf(b, "    etch_dev_upload(ctx->mem + %lld, ctx->in[%d], %zu, ctx->stream); /* %s */\n",
                  (long long)(cm->io_base + in_off[i]), i, (size_t)shape_numel(&n->shape) * dtype_size(n->dtype),
                  n->attr.name);
    }
    sb_printf(b, "#ifdef ETCH_HOST_EMULATE\n    %s_%s_kernels(ctx->mem, %s_dparams, ctx->stream);\n#else\n", P, E, P);
    sb_printf(b, "    char err[512];\n"
                 "    if (!ctx->graph[%d]) { /* the first call in this context records the kernels as a CUDA graph */\n"
                 "        cudaGraph_t graph;\n"
                 "        if (etch_cuda_error(cudaStreamBeginCapture(ctx->stream, cudaStreamCaptureModeThreadLocal),\n"
                 "                            \"cudaStreamBeginCapture\", err, sizeof err))\n"
                 "            etch_cuda_fail(\"%s_%s\", err);\n"
                 "        %s_%s_kernels(ctx->mem, %s_dparams, ctx->stream);\n"
                 "        if (etch_cuda_error(cudaStreamEndCapture(ctx->stream, &graph), \"cudaStreamEndCapture\", err,\n"
                 "                            sizeof err) ||\n"
                 "            etch_cuda_error(cudaGraphInstantiate(&ctx->graph[%d], graph, 0), \"cudaGraphInstantiate\",\n"
                 "                            err, sizeof err))\n"
                 "            etch_cuda_fail(\"%s_%s\", err);\n"
                 "        cudaGraphDestroy(graph);\n    }\n"
                 "    cudaGraphLaunch(ctx->graph[%d], ctx->stream);\n#endif\n",
              index, P, E, P, E, P, index, P, E, index);
    for (int i = 0; i < g->n_outputs; i++) {
        const Node *n = &g->nodes[g->outputs[i]];
        sb_printf(b, "    etch_dev_download(ctx->host_io + %lld, ctx->mem + %lld, %zu, ctx->stream);\n",
                  (long long)out_off[i], (long long)(cm->io_base + out_off[i]),
                  (size_t)shape_numel(&n->shape) * dtype_size(n->dtype));
    }
    sb_puts(b, "}\n\n");
    module_signature_part(b, a, P, en, "_begin", false, true, true, false);
    sb_printf(b, " {\n    if (ctx->pending)\n        etch_cuda_fail(\"%s_%s_begin\", \"a call begun in this context has not "
                 "ended (its _end comes first)\");\n", P, E);
    for (int i = 0; i < g->n_inputs; i++)
        sb_printf(b, "    ctx->in[%d] = in_%s;\n", i, module_c_ident(a, g->nodes[g->inputs[i]].attr.name));
    sb_printf(b, "    ctx->pending = %d;\n#ifndef ETCH_HOST_EMULATE\n    %s_%s_queue(ctx);\n#endif\n}\n\n", index + 1, P,
              E);
    module_signature_part(b, a, P, en, "_end", false, true, false, true);
    sb_printf(b, " {\n    char err[512];\n    if (ctx->pending != %d)\n        etch_cuda_fail(\"%s_%s_end\", \"no call of "
                 "%s_%s begun in this context\");\n#ifdef ETCH_HOST_EMULATE\n    %s_%s_queue(ctx);\n#endif\n"
                 "    ctx->pending = 0;\n", index + 1, P, E, P, E, P, E);
    sb_printf(b, "    if (etch_stream_sync(ctx->stream, err, sizeof err)) etch_cuda_fail(\"%s_%s\", err);\n", P, E);
    for (int i = 0; i < g->n_outputs; i++) {
        const Node *n = &g->nodes[g->outputs[i]];
        sb_printf(b, "    memcpy(out%d, ctx->host_io + %lld, %zu);\n", i, (long long)out_off[i],
                  (size_t)shape_numel(&n->shape) * dtype_size(n->dtype));
    }
    if (g->n_updates) sb_printf(b, "    %s_device_newer = 1;\n", P);
    sb_puts(b, "}\n\n");
    module_signature(b, a, P, en, false, true);
    sb_printf(b, " {\n    %s_%s_begin(ctx%s", P, E, g->n_inputs ? ", " : "");
    entry_args(b, a, g, true, false, false);
    sb_printf(b, ");\n    %s_%s_end(ctx%s", P, E, g->n_outputs ? ", " : "");
    entry_args(b, a, g, false, true, false);
    sb_puts(b, ");\n}\n\n");
    /* the default context's forms: P_E (typed), P_E_v, P_E_begin_v, P_E_end_v (arrays of pointers) */
    static const char *const suffix[] = {"", "_v", "_begin_v", "_end_v"}, *const callee[] = {"_ctx", "_ctx", "_begin", "_end"};
    for (int f = 0; f < 4; f++) {
        bool ins = f != 3, outs = f != 2;
        if (f == 0) module_signature(b, a, P, en, false, false);
        else sb_printf(b, "void %s_%s%s(%s%s%s)", P, E, suffix[f], ins ? "const void *const *inputs" : "",
                       ins && outs ? ", " : "", outs ? "void *const *outputs" : "");
        sb_printf(b, " {\n%s%s    %s_%s%s(%s_ctx_default(\"%s_%s\")", f && ins && !g->n_inputs ? "    (void)inputs;\n" : "",
                  f && outs && !g->n_outputs ? "    (void)outputs;\n" : "", P, E, callee[f], P, P, E);
        if ((ins && g->n_inputs) || (outs && g->n_outputs)) sb_puts(b, ", ");
        entry_args(b, a, g, ins, outs, f != 0);
        sb_puts(b, ");\n}\n\n");
    }
}

/* The parameters' host arrays (with embedded weights: the blob, laid out as
 * the device copy is), their device copy and the copies between. */
static void emit_params(StrBuf *b, const ParamTable *pt, const char *P, const int64_t *off, int64_t bytes,
                        bool embedded, CGenStats *st) {
    char ty[96];
    if (embedded) module_blob(b, P, bytes);
    for (int i = 0; i < pt->n; i++) {
        const Node *n = pt->node[i];
        int64_t numel = shape_numel(&n->shape);
        st->param_bytes += numel * (int64_t)dtype_size(n->dtype);
        sb_printf(b, "/* %s: %s, on the device at +%lld */\n", n->attr.name, type_format(ty, sizeof ty, n->dtype, &n->shape),
                  (long long)off[i]);
        if (embedded)
            sb_printf(b, "#define %s_p%d ((const %s *)(%s_weights + %lld))\n", P, i, dtype_c_type(n->dtype), P,
                      (long long)off[i]);
        else
            sb_printf(b, "ETCH_ALIGN64 static %s %s_p%d[%lld];\n", dtype_c_type(n->dtype), P, i, (long long)numel);
    }
    sb_printf(b, "\nvoid *const %s_param_data[] = {", P);
    for (int i = 0; i < pt->n; i++) sb_printf(b, "%s(void *)%s_p%d", i ? ", " : "", P, i);
    sb_printf(b, "%sNULL};\n\n", pt->n ? ", " : "");
    sb_printf(b, "/* The parameters on the device (%lld bytes), shared by every context; which side is newer. */\n"
                 "static unsigned char *%s_dparams;\nstatic int %s_host_newer = 1, %s_device_newer = 0;\n\n",
              (long long)bytes, P, P, P);
    sb_printf(b, "void %s_params_changed(void) { %s_host_newer = 1; }\n\n", P, P);
    sb_printf(b, "static void %s_params_to_device(etch_stream s) {\n    if (!%s_host_newer) return;\n", P, P);
    for (int i = 0; i < pt->n; i++)
        sb_printf(b, "    etch_dev_upload(%s_dparams + %lld, %s_p%d, %lld, s);\n", P, (long long)off[i], P, i,
                  (long long)(shape_numel(&pt->node[i]->shape) * (int64_t)dtype_size(pt->node[i]->dtype)));
    sb_printf(b, "    (void)s;\n    %s_host_newer = 0, %s_device_newer = 0;\n}\n\n", P, P);
    sb_printf(b, "void %s_params_to_host(void) {\n    if (!%s_device_newer || !%s_dparams) return;\n", P, P, P);
    sb_printf(b, "    etch_stream s;\n    char err[512];\n"
                 "    if (etch_stream_create(&s, err, sizeof err)) etch_cuda_fail(\"%s_params_to_host\", err);\n", P);
    for (int i = 0; i < pt->n; i++)
        sb_printf(b, "    etch_dev_download((void *)%s_p%d, %s_dparams + %lld, %lld, s);\n", P, i, P, (long long)off[i],
                  (long long)(shape_numel(&pt->node[i]->shape) * (int64_t)dtype_size(pt->node[i]->dtype)));
    sb_printf(b, "    if (etch_stream_sync(s, err, sizeof err)) etch_cuda_fail(\"%s_params_to_host\", err);\n"
                 "    etch_stream_destroy(s);\n    %s_device_newer = 0;\n}\n\n", P, P);
}

/* struct P_ctx (device memory, stream, recorded graphs, the pinned host
 * staging of the outputs, the call begun), create and free, the default
 * context (made at the first call), and P_host_alloc / P_host_free. */
static void emit_contexts(StrBuf *b, const char *P, int n_entries, int64_t mem_bytes, int64_t param_bytes,
                          int64_t io_bytes, int max_inputs) {
    sb_printf(b, "/* A context: %lld bytes of device memory (arena, the inputs' and outputs' staging, scratch), its\n"
                 " * stream, %lld bytes of pinned host memory the outputs are downloaded into, the call begun\n"
                 " * (pending: its entry's index + 1, 0 when none) and its inputs. */\n",
              (long long)mem_bytes, (long long)io_bytes);
    sb_printf(b, "struct %s_ctx {\n    unsigned char *mem, *host_io;\n    etch_stream stream;\n    int pending;\n"
                 "    const void *in[%d];\n#ifndef ETCH_HOST_EMULATE\n    cudaGraphExec_t graph[%d];\n#endif\n};\n\n",
              P, max_inputs > 0 ? max_inputs : 1, n_entries);
    sb_printf(b, "void %s_ctx_free(%s_ctx *ctx) {\n    if (!ctx) return;\n#ifndef ETCH_HOST_EMULATE\n"
                 "    for (int i = 0; i < %d; i++)\n        if (ctx->graph[i]) cudaGraphExecDestroy(ctx->graph[i]);\n"
                 "#endif\n    etch_dev_free(ctx->mem);\n    etch_host_free(ctx->host_io);\n"
                 "    if (ctx->stream) etch_stream_destroy(ctx->stream);\n    free(ctx);\n}\n\n", P, P, n_entries);
    sb_printf(b, "%s_ctx *%s_ctx_create(char *err, size_t errlen) {\n"
                 "    if (etch_device_check(err, errlen)) return NULL;\n"
                 "    if (!%s_dparams && etch_dev_alloc(&%s_dparams, %lld, err, errlen)) return NULL;\n"
                 "    %s_ctx *ctx = (%s_ctx *)calloc(1, sizeof *ctx);\n"
                 "    if (!ctx) {\n        snprintf(err, errlen, \"%s_ctx_create: out of memory\");\n        return NULL;\n    }\n"
                 "    if (etch_stream_create(&ctx->stream, err, errlen) || etch_dev_alloc(&ctx->mem, %lld, err, errlen)) {\n"
                 "        %s_ctx_free(ctx);\n        return NULL;\n    }\n"
                 "    if (!(ctx->host_io = (unsigned char *)etch_host_alloc(%lld))) {\n"
                 "        snprintf(err, errlen, \"%s_ctx_create: out of pinned host memory (%lld bytes)\");\n"
                 "        %s_ctx_free(ctx);\n        return NULL;\n    }\n    return ctx;\n}\n\n",
              P, P, P, P, (long long)(param_bytes ? param_bytes : 64), P, P, P, (long long)mem_bytes, P,
              (long long)io_bytes, P, (long long)io_bytes, P);
    sb_printf(b, "static %s_ctx *%s_default_ctx;\n\nstatic %s_ctx *%s_ctx_default(const char *entry) {\n"
                 "    char err[512];\n"
                 "    if (!%s_default_ctx && !(%s_default_ctx = %s_ctx_create(err, sizeof err))) etch_cuda_fail(entry, err);\n"
                 "    return %s_default_ctx;\n}\n\n", P, P, P, P, P, P, P, P);
    sb_printf(b, "void %s_release(void) {\n    %s_params_to_host();\n    %s_ctx_free(%s_default_ctx);\n"
                 "    %s_default_ctx = NULL;\n    etch_dev_free(%s_dparams);\n    %s_dparams = NULL;\n"
                 "    %s_host_newer = 1, %s_device_newer = 0;\n}\n\n", P, P, P, P, P, P, P, P, P);
    sb_printf(b, "void *%s_host_alloc(size_t bytes) {\n    char err[512];\n"
                 "    if (etch_device_check(err, sizeof err)) etch_cuda_fail(\"%s_host_alloc\", err);\n"
                 "    return etch_host_alloc(bytes);\n}\n\nvoid %s_host_free(void *p) { etch_host_free(p); }\n\n",
              P, P, P);
}

char *cuda_model_source(const CGenEntry *entries, int n_entries, const CGenOptions *o, CGenStats *stats, Diag *d) {
    Arena *a = arena_new();
    ParamTable pt;
    bool ok = true;
    for (int k = 0; k < n_entries && ok; k++)
        ok = backend_check_ops(&backend_cuda, entries[k].g, d) && backend_check_planned(&backend_cuda, entries[k].g, d);
    if (!ok || !module_collect_params(entries, n_entries, a, &pt, d)) {
        arena_free(a);
        return NULL;
    }
    const char *P = o->prefix;
    CGenStats st = {0};
    int64_t *param_off = arena_alloc(a, sizeof(int64_t) * (size_t)(pt.n + 1));
    int64_t param_bytes = module_blob_layout(&pt, param_off), arena_bytes = 0, io_bytes = 0;
    int max_inputs = 0;
    int64_t **in_off = arena_alloc(a, sizeof(int64_t *) * (size_t)n_entries);
    int64_t **out_off = arena_alloc(a, sizeof(int64_t *) * (size_t)n_entries);
    for (int k = 0; k < n_entries; k++) {
        const Graph *g = entries[k].g;
        in_off[k] = arena_alloc(a, sizeof(int64_t) * (size_t)(g->n_inputs + 1));
        out_off[k] = arena_alloc(a, sizeof(int64_t) * (size_t)(g->n_outputs + 1));
        int64_t io = io_layout(g, in_off[k], out_off[k]);
        if (io > io_bytes) io_bytes = io;
        if (g->n_inputs > max_inputs) max_inputs = g->n_inputs;
        if (g->mem_plan->arena_bytes > arena_bytes) arena_bytes = g->mem_plan->arena_bytes;
        st.naive_bytes += g->mem_plan->naive_bytes;
    }
    CudaModule cm = {.a = a, .pt = &pt, .param_off = param_off, .P = P, .io_base = align_up(arena_bytes, 256)};
    cm.scratch_base = align_up(cm.io_base + io_bytes, 256);
    StrBuf b = {0}, kernels = {0}, host = {0}, pre = {0};
    CudaEmitter e = {.c = {.preamble = &pre, .threads = 1}, .kernels = &kernels, .P = P, .module = &cm};
    for (int k = 0; k < n_entries; k++) {
        emit_entry_kernels(&cm, &e, &entries[k], &host, in_off[k], out_off[k]);
        st.kernels += e.launch_count;
    }
    st.arena_bytes = arena_bytes;
    sb_printf(&b, "/* model.cu: generated by etch's CUDA backend. Do not edit.\n"
                  " * nvcc compiles it for the GPU; model_host.c (ETCH_HOST_EMULATE) compiles the same\n"
                  " * kernels for the CPU. Every bound and offset is a literal. */\n");
    sb_printf(&b, "#include \"model.h\"\n#include \"etch_cuda.h\"\n\n");
    module_tables(&b, entries, n_entries, &pt, P);
    emit_params(&b, &pt, P, param_off, param_bytes, o->embed_weights, &st);
    char on_load[128], on_save[128];
    snprintf(on_load, sizeof on_load, "    %s_params_changed();\n", P);
    snprintf(on_save, sizeof on_save, "    %s_params_to_host();\n", P);
    module_load_save(&b, &pt, P, o->embed_weights, on_load, on_save);
    emit_contexts(&b, P, n_entries, cm.scratch_base + cm.scratch_bytes, param_bytes, io_bytes, max_inputs);
    sb_puts(&b, pre.s ? pre.s : "");
    sb_puts(&b, "/* ---- kernels ---- */\n\n");
    sb_puts(&b, kernels.s ? kernels.s : "");
    sb_puts(&b, "/* ---- entries ---- */\n\n");
    sb_puts(&b, host.s ? host.s : "");
    for (int k = 0; k < n_entries; k++) emit_entry_function(&cm, &entries[k], k, &b, in_off[k], out_off[k]);
    sb_free(&kernels);
    sb_free(&host);
    sb_free(&pre);
    for (int i = 0; i < e.c.n_defined; i++) free((void *)e.c.defined[i]);
    free(e.c.defined);
    if (stats) *stats = st;
    arena_free(a);
    return sb_take(&b);
}

static const char model_host_c[] =
    "/* model_host.c: written by etch. model.cu compiled as C with its kernels run on\n"
    " * the CPU (ETCH_HOST_EMULATE, etch_cuda.h): the same kernels, no GPU. */\n"
    "#define ETCH_HOST_EMULATE 1\n#include \"model.cu\"\n";

bool cuda_write(const CGenEntry *entries, int n_entries, const CGenOptions *o, const char *dir, CGenStats *stats,
                Diag *d) {
    char *src = cuda_model_source(entries, n_entries, o, stats, d);
    if (!src) return false;
    CGenOptions co = *o;
    co.device_params = true;
    bool ok = module_write_files(entries, n_entries, &co, dir, "model.cu", src, d) &&
              module_write_text(dir, "etch_cuda.h", etch_cuda_h_source, d) &&
              module_write_text(dir, "model_host.c", model_host_c, d);
    free(src);
    return ok;
}
