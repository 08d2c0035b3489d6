/* elaborate.c: from parsed files to the model's forward graph.
 *
 * The steps, in order:
 *   1. parse the embedded standard library (nn.etch) and the user's file;
 *      bind their top-level modules and fns; evaluate top-level constants in
 *      order, with -D overrides replacing the user's constants' values;
 *   2. find the one model and instantiate it: walk its members in order,
 *      evaluating constants, resolving param types and initializers, and
 *      instantiating submodules recursively with their constructor arguments
 *      (which are compile-time values; `if` in a module body picks members);
 *   3. add the graph inputs (the model forward's typed parameters), then every
 *      param in PyTorch state_dict order (a module's own params in declaration
 *      order, then each submodule's, depth first) under its dotted name;
 *   4. call forward with the inputs: statements execute at compile time and
 *      tensor expressions append nodes; the returned tensors become outputs.
 * Every error stops elaboration: functions return false after reporting.
 * This file holds the top level (steps 1 and 3 and the entry points); module
 * instantiation is in instantiate.c, fn calls and types in calls.c, statements
 * and loops in statements.c, expressions in eval.c (the shared state: elab.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/elab.h"

/* All of a model's params are allocated together (and embedded together), so
 * their sum is bounded too, not only each one. */
static bool check_params_total(Elab *e, const ModuleDecl *md) {
    int64_t total = 0; /* each param is at most ELAB_MAX_TENSOR_BYTES: no overflow */
    for (int i = 0; i < e->graph->n_nodes; i++) {
        const Node *n = &e->graph->nodes[i];
        if (n->op == OP_PARAM) total += shape_numel(&n->shape) * (int64_t)dtype_size(n->dtype);
    }
    if (total <= ELAB_MAX_PARAMS_BYTES) return true;
    return diag_error(e->diag, md->loc, "the params of model '%s' take %lld bytes (%.1f GiB); at most %lld GiB in all",
                      md->name, (long long)total, (double)total / (1 << 30), (long long)(ELAB_MAX_PARAMS_BYTES >> 30));
}

/* ---- top level ---------------------------------------------------------- */

static bool bind_global(Elab *e, Scope *s, const char *name, SrcLoc loc, Value v) {
    for (Binding *b = s->head; b; b = b->next)
        if (strcmp(b->name, name) == 0) {
            diag_error(e->diag, loc, "duplicate definition of '%s'", name);
            diag_note(e->diag, b->loc, "previous definition of '%s' is here", name);
            return false;
        }
    scope_bind(e, s, name, loc, v, false);
    return true;
}

static bool bind_decls(Elab *e, Scope *s, const Unit *u) {
    for (int i = 0; i < u->n_modules; i++) {
        const ModuleDecl *m = u->modules[i];
        if (!bind_global(e, s, m->name, m->loc, (Value){.kind = V_MODULE, .module = m, .home = s, .loc = m->loc}))
            return false;
    }
    for (int i = 0; i < u->n_fns; i++) {
        const FnDecl *f = u->fns[i];
        if (!bind_global(e, s, f->name, f->loc, (Value){.kind = V_FN, .fn = f, .home = s, .loc = f->loc})) return false;
    }
    return true;
}

/* Parses a -D value: an integer, a number or true/false. */
static bool parse_define(Elab *e, const Define *d, SrcLoc loc, Value *out) {
    const char *s = d->value ? d->value : "";
    if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0) {
        *out = (Value){.kind = V_BOOL, .b = s[0] == 't', .loc = loc};
        return true;
    }
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (!s[0] || *end || !isfinite(x) || errno == ERANGE || strpbrk(s, "xXnN"))
        return diag_error_plain(e->diag, "-D %s=%s: the value must be a number or true/false", d->name, s);
    bool is_int = strspn(s + (s[0] == '-' || s[0] == '+'), "0123456789") == strlen(s + (s[0] == '-' || s[0] == '+'));
    if (is_int && fabs(x) >= 9007199254740992.0) /* a rounded result lands on 2^53 or beyond */
        return diag_error_plain(e->diag, "-D %s=%s: the integer is too large", d->name, s);
    *out = value_num(x, is_int, loc);
    return true;
}

static bool eval_consts(Elab *e, Scope *s, const Unit *u, const Define *defs, int n_defs) {
    for (int i = 0; i < n_defs; i++) {
        bool found = false;
        for (int j = 0; j < u->n_consts && !found; j++) found = strcmp(u->consts[j]->name, defs[i].name) == 0;
        if (!found)
            return diag_error_plain(e->diag, "-D %s: no constant named '%s' in %s", defs[i].name, defs[i].name,
                                    u->path);
    }
    for (int j = 0; j < u->n_consts; j++) {
        const ConstDecl *c = u->consts[j];
        const Define *def = NULL;
        for (int i = 0; i < n_defs; i++)
            if (strcmp(defs[i].name, c->name) == 0) def = &defs[i]; /* the last -D wins */
        Value v;
        if (def) {
            if (!parse_define(e, def, c->value->loc, &v)) return false;
        } else if (!eval_expr(e, s, c->value, &v)) {
            return false;
        }
        if (!value_is_const(&v))
            return diag_error(e->diag, c->value->loc, "constant '%s' must be a compile-time value, got %s", c->name,
                              value_describe(e, &v));
        if (!bind_global(e, s, c->name, c->loc, v)) return false;
    }
    return true;
}

static const ModuleDecl *find_model(Elab *e, const Unit *u) {
    const ModuleDecl *model = NULL;
    for (int i = 0; i < u->n_modules; i++) {
        const ModuleDecl *m = u->modules[i];
        if (!m->is_model) continue;
        if (model) {
            diag_error(e->diag, m->loc, "more than one model in this file: '%s' here and '%s' at %d:%d", m->name,
                       model->name, model->loc.line, model->loc.col);
            return NULL;
        }
        model = m;
    }
    if (!model && !u->n_consts && !u->n_modules && !u->n_fns && !u->train)
        diag_error(e->diag, (SrcLoc){u->path, 1, 1},
                   "the file has no declarations (it is empty or only comments); write 'model Name { ... }' with "
                   "a 'fn forward(...)'");
    else if (!model)
        diag_error(e->diag, (SrcLoc){u->path, 0, 0},
                   "no model defined; write 'model Name { ... }' with a 'fn forward(...)'");
    return model;
}

/* Adds the forward's typed parameters as graph inputs, in order. */
static bool add_inputs(Elab *e, Instance *model, const FnDecl *fn, CallArgs *ca) {
    ca->n = fn->n_params;
    ca->vals = arena_alloc(e->arena, sizeof(Value) * (size_t)(fn->n_params + 1));
    ca->names = arena_alloc(e->arena, sizeof(char *) * (size_t)(fn->n_params + 1));
    ca->locs = arena_alloc(e->arena, sizeof(SrcLoc) * (size_t)(fn->n_params + 1));
    for (int i = 0; i < fn->n_params; i++) {
        const Param *p = &fn->params[i];
        if (!p->type)
            return diag_error(e->diag, p->loc,
                              "parameter '%s' of the model's forward needs a tensor type, e.g. '%s: f32[64, 784]'",
                              p->name, p->name);
        if (p->dflt)
            return diag_error(e->diag, p->dflt->loc,
                              "parameter '%s' of the model's forward is a graph input and cannot have a default",
                              p->name);
        NodeAttrs a = {.name = p->name};
        if (!resolve_type(e, &model->scope, p->type, arena_printf(e->arena, "input '%s'", p->name), &a.dtype, &a.shape))
            return false;
        if (!add_op(e, OP_INPUT, NULL, 0, &a, p->loc, &ca->vals[i])) return false;
        ca->locs[i] = p->loc;
    }
    return true;
}

static bool add_outputs(Elab *e, const char *display, const Value *ret) {
    int n = ret->kind == V_TUPLE ? ret->n_items : 1;
    for (int i = 0; i < n; i++) {
        const Value *v = ret->kind == V_TUPLE ? &ret->items[i] : ret;
        if (v->kind != V_TENSOR) {
            if (n == 1) return diag_error(e->diag, v->loc, "%s must return tensors, got %s", display, value_describe(e, v));
            return diag_error(e->diag, v->loc, "%s must return tensors; value %d is %s", display, i + 1,
                              value_describe(e, v));
        }
        graph_add_output(e->graph, v->id);
    }
    return true;
}

static Program *elaborate(Elab *e, const Unit *std, const Unit *user, const Define *defs, int n_defs) {
    e->user_scope.parent = &e->std_scope;
    const ModuleDecl *md = find_model(e, user);
    if (!md) return NULL;
    e->graph = graph_new(e->arena, arena_printf(e->arena, "%s.forward", md->name));
    if (!bind_decls(e, &e->std_scope, std) || !eval_consts(e, &e->std_scope, std, NULL, 0) ||
        !bind_decls(e, &e->user_scope, user) || !eval_consts(e, &e->user_scope, user, defs, n_defs))
        return NULL;
    Value mv = {.kind = V_MODULE, .module = md, .home = &e->user_scope, .loc = md->loc};
    CallArgs none = {0};
    Instance *model = instantiate(e, &mv, "", "", NULL, &none, md->loc);
    if (!model) return NULL;
    Binding *fb = own_binding(model, "forward");
    if (!fb || fb->val.kind != V_FN) {
        diag_error(e->diag, md->loc, "model '%s' has no forward function", md->name);
        return NULL;
    }
    CallArgs inputs;
    Value ret;
    const char *display = arena_printf(e->arena, "%s.forward()", md->name);
    if (!add_inputs(e, model, fb->val.fn, &inputs) || !emit_params(e, model) || !check_params_total(e, md) ||
        !call_fn(e, &fb->val, display, fb->val.fn->loc, &inputs, &ret) || !add_outputs(e, display, &ret))
        return NULL;
    Program *p = arena_alloc(e->arena, sizeof *p);
    p->model_name = md->name;
    p->model_loc = md->loc;
    p->forward = e->graph;
    if (user->train && !(p->train = elab_train(e, user->train, model, fb->val.fn))) return NULL;
    return p;
}

Program *frontend_compile_source(Arena *a, const char *path, const char *src, const Define *defs, int n_defs,
                                 Diag *d) {
    size_t size = strlen(src);
    if (size > FRONTEND_MAX_SOURCE) {
        diag_error(d, (SrcLoc){path, 0, 0}, "the source is %zu bytes; model sources are limited to %zu MiB", size,
                   FRONTEND_MAX_SOURCE >> 20);
        return NULL;
    }
    diag_add_source(etch_stdlib_nn_name, etch_stdlib_nn_source);
    diag_add_source(path, src);
    Unit *std = parse_unit(a, etch_stdlib_nn_name, etch_stdlib_nn_source, d);
    if (!std) return NULL;
    Unit *user = parse_unit(a, path, src, d);
    if (!user) return NULL;
    Elab e = {.arena = a, .diag = d};
    return elaborate(&e, std, user, defs, n_defs);
}

Program *frontend_compile_file(Arena *a, const char *path, const Define *defs, int n_defs, Diag *d) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        diag_error_plain(d, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) abort();
        len += fread(buf + len, 1, cap - len - 1, f);
        if (len < cap - 1 || len > FRONTEND_MAX_SOURCE) break;
        cap *= 2;
        buf = realloc(buf, cap);
    }
    bool failed = ferror(f);
    fclose(f);
    buf[len] = '\0';
    if (failed) {
        free(buf);
        diag_error_plain(d, "cannot read '%s'", path);
        return NULL;
    }
    if (len > FRONTEND_MAX_SOURCE) {
        free(buf);
        diag_error(d, (SrcLoc){path, 0, 0}, "the file is larger than %zu MiB, the limit for model sources",
                   FRONTEND_MAX_SOURCE >> 20);
        return NULL;
    }
    if (strlen(buf) != len) {
        free(buf);
        diag_error_plain(d, "'%s' contains a NUL byte; is it a text file?", path);
        return NULL;
    }
    char *text = arena_strndup(a, buf, len);
    free(buf);
    return frontend_compile_source(a, path, text, defs, n_defs, d);
}
