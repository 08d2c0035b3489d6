/* cmd_model.c: subcommands that compile and run a model's forward pass:
 * check, ir, ir-roundtrip, build, run (also --sample: text generation by a
 * byte-level language model), make-input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/build.h"
#include "tool/tool.h"
#include "ir/eager.h"
#include "ir/params.h"
#include "passes/pass.h"

int cmd_check(const Options *o) {
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = load_program(a, o, &d);
    bool ok = p && ir_verify(p->forward, &d);
    if (ok && p->train) { /* the training step too: optimizer settings, differentiability */
        Graph *step = train_step_graph(p, a, &d);
        ok = step && ir_verify(step, &d);
    }
    int rc = ok ? 0 : 1;
    diag_dispose(&d);
    arena_free(a);
    return rc;
}

int cmd_ir(const Options *o) {
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = load_program(a, o, &d);
    Graph *g = p ? (o->grad ? train_step_graph(p, a, &d) : p->forward) : NULL;
    if (g && (o->opt_given || o->print_after_all || o->n_print_after)) g = optimize_graph(g, o, a, &d);
    if (g) ir_print(stdout, g);
    diag_dispose(&d);
    arena_free(a);
    return g ? 0 : 1;
}

/* Reads, parses and verifies a textual IR file. *text (caller frees) stays
 * registered for diagnostics that quote it. NULL after reporting an error. */
static Graph *read_ir_file(Arena *a, const char *path, unsigned char **text, Diag *d) {
    size_t n;
    char err[1024];
    if (etch_read_file(path, text, &n, err, sizeof err)) {
        diag_error_plain(d, "%s", err);
        return NULL;
    }
    diag_add_source(path, (const char *)*text);
    Graph *g = ir_parse(a, path, (const char *)*text, d);
    return g && ir_verify(g, d) ? g : NULL;
}

int cmd_ir_roundtrip(const Options *o) {
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    unsigned char *text = NULL;
    Graph *g = read_ir_file(a, o->file, &text, &d);
    if (g) ir_print(stdout, g);
    diag_dispose(&d);
    arena_free(a);
    free(text);
    return g ? 0 : 1;
}

/* `etch build`: the forward entry (with --train also "grad" and "train_step"),
 * and the weights file beside it unless embedded. */
static bool build_model(Program *p, Tensor **params, const Options *o, const char *dir, bool exe, Arena *a, Diag *d) {
    CGenEntry entries[3] = {{p->forward, "forward"}};
    int n = 1;
    if (o->train) {
        Graph *grad = grad_graph(p, a, d), *step = grad ? train_step_graph(p, a, d) : NULL;
        if (!step) return false;
        entries[n++] = (CGenEntry){grad, "grad"};
        entries[n++] = (CGenEntry){step, "train_step"};
    }
    if (!emit_and_compile(p, entries, n, params, o, dir, exe ? CGEN_DRIVER_INFER : CGEN_DRIVER_NONE, p->model_name, d))
        return false;
    if (!o->embed) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, p->model_name);
        if (!params_save(p->forward, params, path, d)) return false;
    }
    return true;
}

int cmd_build(const Options *o) {
    if (!o->out) return usage_error("%s", "build needs -o DIR");
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = load_program(a, o, &d);
    Tensor **params = p ? load_params(p->forward, o, &d) : NULL;
    bool ok = params && (!o->train || !o->embed || usage_error("%s", "--train cannot embed weights") == 0) &&
              build_model(p, params, o, o->out, o->exe, a, &d);
    if (p) params_free(p->forward, params);
    diag_dispose(&d);
    arena_free(a);
    return ok ? 0 : 1;
}

/* Reads an .npy input and checks it against graph input node id. */
static Tensor *read_input(const Graph *g, int id, const char *path, Diag *d) {
    etch_array arr;
    char err[1024];
    if (etch_npy_read(path, &arr, err, sizeof err)) {
        diag_error_plain(d, "%s", err);
        return NULL;
    }
    const Node *n = &g->nodes[id];
    bool same = arr.dtype == dtype_to_rt(n->dtype) && arr.rank == n->shape.rank;
    for (int k = 0; same && k < arr.rank; k++) same = arr.dim[k] == n->shape.dim[k];
    if (!same) {
        char want[96], got[128];
        type_format(want, sizeof want, n->dtype, &n->shape);
        etch_array_describe(got, sizeof got, arr.dtype, arr.rank, arr.dim);
        diag_error_plain(d, "%s: input '%s' must be %s, the file holds %s", path, n->attr.name, want, got);
        etch_array_free(&arr);
        return NULL;
    }
    Tensor *t = tensor_new(n->dtype, n->shape);
    memcpy(t->data, arr.data, tensor_nbytes(t));
    etch_array_free(&arr);
    return t;
}

static bool run_eager(const Program *p, const Options *o, Diag *d) {
    const Graph *g = p->forward;
    Tensor **params = load_params(g, o, d);
    Tensor **ins = calloc((size_t)g->n_inputs + 1, sizeof *ins);
    Tensor **outs = calloc((size_t)g->n_outputs + 1, sizeof *outs);
    bool ok = params != NULL;
    for (int i = 0; ok && i < g->n_inputs; i++) ok = (ins[i] = read_input(g, g->inputs[i], o->inputs[i], d)) != NULL;
    ok = ok && eager_run(g, ins, params, outs, NULL, d);
    for (int i = 0; ok && i < g->n_outputs; i++) ok = write_tensor(o->outs[i], outs[i], d);
    for (int i = 0; i < g->n_inputs; i++) tensor_free(ins[i]);
    for (int i = 0; i < g->n_outputs; i++) tensor_free(outs[i]);
    free(ins);
    free(outs);
    params_free(g, params);
    return ok;
}

static bool run_compiled(const Program *p, const Options *o, Diag *d) {
    const Graph *g = p->forward;
    Tensor **params = load_params(g, o, d); /* validates the weights file with etch's own messages */
    if (!params) return false;
    char *dir = build_tempdir(d);
    bool ok = dir != NULL;
    Options bo = *o;
    bo.embed = false;
    bo.stats = false;
    bo.train = false;
    ok = ok && build_model((Program *)p, params, &bo, dir, true, NULL, d);
    if (ok) {
        char exe[4096], weights[4096];
        snprintf(exe, sizeof exe, "%s/%s", dir, p->model_name);
        snprintf(weights, sizeof weights, "%s/%s.safetensors", dir, p->model_name);
        const char *argv[2 * MAX_FILES + 4];
        int n = 0;
        argv[n++] = exe;
        argv[n++] = "--weights";
        argv[n++] = weights;
        for (int i = 0; i < o->n_inputs; i++) argv[n++] = o->inputs[i];
        for (int i = 0; i < o->n_outs; i++) argv[n++] = o->outs[i];
        argv[n] = NULL;
        ok = build_spawn(argv, d);
    }
    if (dir) build_rmtree(dir);
    free(dir);
    params_free(g, params);
    return ok;
}

/* `etch run FILE --sample N`: a byte-level language model (forward: ids
 * [1, T] -> logits [1, T, 256]) generates N bytes, printed to stdout as they
 * come. The forward is traced at batch 1 (-D B=1 unless -D B is given) and run
 * by the eager executor. The context starts as the prompt (default "\n"); each
 * step runs the last min(len, T) bytes at positions 0.. (later positions hold
 * zeros, which causal attention does not see), samples the next byte from the
 * softmax of the logits at the last context position with a uniform from
 * Philox keyed by (seed, byte index), and appends it: reproducible per seed. */
static bool run_sample(const Options *o, Arena *a, Diag *d) {
    Program *p = load_program(a, o, d);
    if (!p) return false;
    const Graph *g = p->forward;
    bool has_b = false;
    for (int i = 0; i < o->n_defines; i++) has_b |= !strcmp(o->defines[i].name, "B");
    if (g->n_inputs == 1 && g->nodes[g->inputs[0]].shape.rank >= 1 && g->nodes[g->inputs[0]].shape.dim[0] != 1 &&
        !has_b && o->n_defines < MAX_DEFINES) {
        Options bo = *o;
        bo.defines[bo.n_defines++] = (Define){"B", "1"};
        if (!(p = load_program(a, &bo, d))) return false;
        g = p->forward;
    }
    const Node *in = g->n_inputs == 1 ? &g->nodes[g->inputs[0]] : NULL;
    const Node *out = g->n_outputs == 1 ? &g->nodes[g->outputs[0]] : NULL;
    if (!in || !out || in->shape.rank != 2 || in->shape.dim[0] != 1 || (in->dtype != DT_I64 && in->dtype != DT_I32) ||
        out->shape.rank != 3 || out->shape.dim[1] != in->shape.dim[1] || out->shape.dim[2] != 256 ||
        out->dtype != DT_F32)
        return diag_error(d, p->model_loc,
                          "--sample needs a forward from byte ids i64[1, T] to logits f32[1, T, 256] at batch 1 "
                          "(-D B=1)");
    int64_t T = in->shape.dim[1];
    Tensor **params = load_params(g, o, d);
    if (!params) return false;
    const char *prompt = o->prompt && *o->prompt ? o->prompt : "\n";
    size_t plen = strlen(prompt), cap = plen + (size_t)o->sample + 1;
    unsigned char *hist = malloc(cap);
    if (!hist) abort();
    memcpy(hist, prompt, plen);
    size_t len = plen;
    Tensor *x = tensor_new(in->dtype, in->shape);
    bool ok = true;
    for (long i = 0; ok && i < o->sample; i++) {
        size_t ctx = len < (size_t)T ? len : (size_t)T;
        for (int64_t t = 0; t < T; t++) tensor_set(x, t, (size_t)t < ctx ? hist[len - ctx + (size_t)t] : 0);
        Tensor *outs[1] = {NULL};
        if (!(ok = eager_run(g, &x, params, outs, NULL, d))) break;
        const float *row = (const float *)outs[0]->data + (int64_t)(ctx - 1) * 256;
        double mx = row[0], sum = 0, prob[256];
        for (int c = 1; c < 256; c++) mx = row[c] > mx ? row[c] : mx;
        for (int c = 0; c < 256; c++) sum += prob[c] = exp(row[c] - mx);
        uint32_t r[4];
        etch_philox4x32(o->seed, 3, (uint64_t)i, r);
        double u = etch_u01(r[0]) * sum, acc = 0;
        int pick = 255;
        for (int c = 0; c < 256; c++)
            if ((acc += prob[c]) > u) {
                pick = c;
                break;
            }
        tensor_free(outs[0]);
        hist[len++] = (unsigned char)pick;
        putchar(pick);
        fflush(stdout);
    }
    tensor_free(x);
    free(hist);
    params_free(g, params);
    return ok;
}

int cmd_run(const Options *o) {
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    if (o->sample >= 0 || o->prompt) {
        bool ok = o->sample < 0 ? usage_error("%s", "--prompt needs --sample N") == 0
                  : o->n_inputs || o->n_outs ? usage_error("%s", "--sample prints text: no --input or -o") == 0
                                             : run_sample(o, a, &d);
        diag_dispose(&d);
        arena_free(a);
        return ok ? 0 : 1;
    }
    Program *p = load_program(a, o, &d);
    bool ok = p != NULL;
    if (ok && o->n_inputs != p->forward->n_inputs) {
        ok = diag_error(&d, p->model_loc, "%s.forward takes %d input%s; %d --input file%s given", p->model_name,
                        p->forward->n_inputs, p->forward->n_inputs == 1 ? "" : "s", o->n_inputs,
                        o->n_inputs == 1 ? "" : "s");
    }
    if (ok && o->n_outs != p->forward->n_outputs) {
        ok = diag_error(&d, p->model_loc, "%s.forward returns %d value%s; %d -o file%s given", p->model_name,
                        p->forward->n_outputs, p->forward->n_outputs == 1 ? "" : "s", o->n_outs,
                        o->n_outs == 1 ? "" : "s");
    }
    if (ok) ok = o->eager ? run_eager(p, o, &d) : run_compiled(p, o, &d);
    diag_dispose(&d);
    arena_free(a);
    return ok ? 0 : 1;
}

int cmd_make_input(const Options *o) {
    if (!o->out) return usage_error("%s", "make-input needs -o IN.npy");
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = load_program(a, o, &d);
    bool ok = p != NULL;
    if (ok && p->forward->n_inputs != 1)
        ok = diag_error(&d, p->model_loc, "make-input needs a forward with one input, %s.forward has %d",
                        p->model_name, p->forward->n_inputs);
    if (ok) {
        const Node *n = &p->forward->nodes[p->forward->inputs[0]];
        Tensor *t = tensor_new(n->dtype, n->shape);
        int64_t numel = tensor_numel(t);
        if (o->idx) {
            etch_array img;
            char err[1024];
            if (etch_idx_read(o->idx, &img, err, sizeof err)) {
                ok = diag_error_plain(&d, "%s", err);
            } else {
                int64_t per = img.rank ? etch_array_numel(&img) / img.dim[0] : 1;
                int64_t count = img.rank ? img.dim[0] : 1;
                if (img.dtype != ETCH_U8)
                    ok = diag_error_plain(&d, "%s: expected unsigned byte images, got %s", o->idx,
                                          etch_dtype_name(img.dtype));
                else if (numel % per != 0)
                    ok = diag_error_plain(&d, "%s: images of %lld pixels do not fill input '%s' of %lld elements",
                                          o->idx, (long long)per, n->attr.name, (long long)numel);
                else if (o->index + numel / per > count)
                    ok = diag_error_plain(&d, "%s: --index %ld needs %lld images, the file has %lld", o->idx,
                                          o->index, (long long)(numel / per), (long long)count);
                for (int64_t i = 0; ok && i < numel; i++)
                    tensor_set(t, i, ((const uint8_t *)img.data)[o->index * per + i] / 255.0);
                etch_array_free(&img);
            }
        } else {
            uint32_t r[4];
            for (int64_t i = 0; i < numel; i++) {
                etch_philox4x32(o->seed, 1, (uint64_t)i, r);
                tensor_set(t, i, etch_u01(r[0]));
            }
        }
        ok = ok && write_tensor(o->out, t, &d);
        tensor_free(t);
    }
    diag_dispose(&d);
    arena_free(a);
    return ok ? 0 : 1;
}

/* `etch opt FILE.etchir`: textual IR through the pass pipeline (or the passes
 * named by --passes, in that order), verified after every pass, printed. */
int cmd_opt(const Options *o) {
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    unsigned char *text = NULL;
    Graph *g = read_ir_file(a, o->file, &text, &d);
    PassOptions po = {.opt_level = o->opt_level, .print_after_all = o->print_after_all, .verify = true,
                      .n_print_after = o->n_print_after, .n_disabled = o->n_disabled};
    memcpy(po.print_after, o->print_after, sizeof po.print_after);
    memcpy(po.disabled, o->disabled, sizeof po.disabled);
    if (g && o->passes) {
        const char *names[32];
        int k = 0;
        char *list = arena_strdup(a, o->passes);
        for (char *tok = strtok(list, ","); tok && k < 32; tok = strtok(NULL, ",")) names[k++] = tok;
        g = passes_run_list(g, names, k, &po, &d);
    } else if (g) {
        g = passes_run(g, &po, &d);
    }
    if (g) ir_print(stdout, g);
    diag_dispose(&d);
    arena_free(a);
    free(text);
    return g ? 0 : 1;
}
