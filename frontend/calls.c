/* calls.c: calling fns and module forwards from the elaborator: arguments
 * bound to parameters (positional, keyword, defaults), declared types
 * resolved and checked (typed parameters, returns, lets, inputs), a fn's body
 * executed in its own scope, and errors raised inside the standard library
 * reported at the user's call. Statements are in statements.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/elab.h"

/* A "note:" for the error being unwound, skipped when it repeats the previous
 * one (a recursive call would otherwise print one per level). */
void note_once(Elab *e, SrcLoc loc, const char *text) {
    if (e->last_note && strcmp(e->last_note, text) == 0 && e->last_note_loc.line == loc.line &&
        e->last_note_loc.col == loc.col && e->last_note_loc.file == loc.file)
        return;
    diag_note(e->diag, loc, "%s", text);
    e->last_note = text;
    e->last_note_loc = loc;
}

/* ---- errors inside the standard library -----------------------------------
 * A shape error inside nn.etch (Linear(783, 128) applied to f32[64,784]) is
 * the user's to fix at their call, not in the library. So a call from user
 * code into a library body (a module's construction, its forward, a library
 * fn) holds errors back (diag_hold); the first one raised is then reported at
 * the user's call, naming the module with its arguments and what it was
 * called with, and the library line where it arose becomes a note. */

bool in_stdlib(SrcLoc loc) { return loc.file && strcmp(loc.file, etch_stdlib_nn_name) == 0; }

/* Starts holding errors when site (user code) calls body (library code). */
bool lib_hold(Elab *e, SrcLoc site, SrcLoc body) {
    if (!in_stdlib(body) || in_stdlib(site)) return false;
    diag_hold(e->diag);
    return true;
}

/* Ends lib_hold. When the call failed, reports the held error at site as
 * "WHAT: message"; what is built only then ("Linear(783, 128) called with
 * f32[64,784]"). */
void lib_release(Elab *e, bool ok, SrcLoc site, const char *(*what)(Elab *, const void *), const void *arg,
                 const char *where) {
    SrcLoc loc;
    char *msg;
    if (!diag_release(e->diag, &loc, &msg)) return;
    if (ok) { /* not an error after all: the call succeeded */
    } else if (in_stdlib(loc)) {
        diag_error(e->diag, site, "%s: %s", what(e, arg), msg);
        diag_note(e->diag, loc, "raised here, in %s in the standard library", where);
    } else { /* at the user's own call (e.g. an argument count): as it was */
        diag_error(e->diag, loc, "%s", msg);
    }
    e->last_note = NULL;
    free(msg);
}

/* ---- argument binding --------------------------------------------------- */

static bool arity_error(Elab *e, SrcLoc loc, const char *fname, int n_required, int n_params, int got) {
    if (n_required == n_params)
        return diag_error(e->diag, loc, "%s takes %d argument%s, got %d", fname, n_params, n_params == 1 ? "" : "s",
                          got);
    return diag_error(e->diag, loc, "%s takes %d to %d arguments, got %d", fname, n_required, n_params, got);
}

bool bind_args(Elab *e, SrcLoc loc, const char *fname, const char *const *pnames, int n_params, int n_required,
               const CallArgs *ca, Value *slots, bool *given) {
    for (int i = 0; i < n_params; i++) given[i] = false;
    int n_pos = 0;
    while (n_pos < ca->n && !ca->names[n_pos]) n_pos++;
    if (n_pos > n_params) return arity_error(e, loc, fname, n_required, n_params, n_pos);
    for (int i = 0; i < n_pos; i++) {
        slots[i] = ca->vals[i];
        given[i] = true;
    }
    for (int k = n_pos; k < ca->n; k++) {
        int i = 0;
        while (i < n_params && strcmp(pnames[i], ca->names[k]) != 0) i++;
        if (i == n_params) {
            const char *hint = "";
            for (int j = 0; j < n_params; j++)
                if (strncmp(pnames[j], ca->names[k], 3) == 0)
                    hint = arena_printf(e->arena, " (did you mean '%s'?)", pnames[j]);
            return diag_error(e->diag, ca->locs[k], "unknown keyword argument '%s' for %s%s", ca->names[k], fname,
                              hint);
        }
        if (given[i])
            return diag_error(e->diag, ca->locs[k], "%s got multiple values for argument '%s'", fname, pnames[i]);
        slots[i] = ca->vals[k];
        given[i] = true;
    }
    for (int i = 0; i < n_required; i++)
        if (!given[i]) {
            if (n_pos == ca->n) return arity_error(e, loc, fname, n_required, n_params, n_pos);
            return diag_error(e->diag, loc, "%s is missing argument '%s'", fname, pnames[i]);
        }
    return true;
}

/* ---- types -------------------------------------------------------------- */

bool resolve_type(Elab *e, Scope *s, const TypeExpr *t, const char *what, DType *dt, Shape *sh) {
    if (t->has_dtype) {
        *dt = t->dtype;
    } else {
        Binding *b = scope_find(s, t->dtype_name);
        if (!b || b->val.kind != V_DTYPE)
            return diag_error(e->diag, t->loc, "'%s' is not a dtype (expected " DTYPE_NAMES "%s)",
                              t->dtype_name, b ? ", or a name bound to one" : "");
        *dt = b->val.dtype;
    }
    *sh = (Shape){.rank = t->n_dims};
    int64_t numel = 1;
    bool overflow = false; /* the element count does not fit in 64 bits */
    for (int i = 0; i < t->n_dims; i++) {
        Value v;
        if (!eval_expr(e, s, t->dims[i], &v)) return false;
        if (v.kind != V_NUM)
            return diag_error(e->diag, v.loc, "tensor dimension must be a compile-time integer, got %s",
                              value_describe(e, &v));
        if (!v.is_int)
            return diag_error(e->diag, v.loc, "tensor dimension must be an integer, got %s", value_describe(e, &v));
        if (v.num <= 0)
            return diag_error(e->diag, v.loc, "tensor dimension must be positive, got %lld", (long long)v.num);
        if (v.num > 2147483647.0)
            return diag_error(e->diag, v.loc, "tensor dimension %lld is too large", (long long)v.num);
        sh->dim[i] = (int64_t)v.num;
        overflow = overflow || __builtin_mul_overflow(numel, sh->dim[i], &numel);
    }
    int64_t bytes = 0;
    overflow = overflow || __builtin_mul_overflow(numel, (int64_t)dtype_size(*dt), &bytes);
    if (!overflow && bytes <= ELAB_MAX_TENSOR_BYTES) return true;
    char buf[96], size[64];
    const char *ty = type_format(buf, sizeof buf, *dt, sh);
    if (overflow)
        snprintf(size, sizeof size, "more than 2^63 bytes");
    else
        snprintf(size, sizeof size, "%lld elements, %lld bytes (%.1f GiB)", (long long)numel, (long long)bytes,
                 (double)bytes / (1 << 30));
    return diag_error(e->diag, t->loc, "%s%s%s is %s; a tensor may take at most %lld GiB", what ? what : "", what ? " of type " : "type ", ty,
                      size, (long long)(ELAB_MAX_TENSOR_BYTES >> 30));
}



static const char *type_str(Elab *e, DType dt, const Shape *s) {
    char buf[96];
    return arena_strdup(e->arena, type_format(buf, sizeof buf, dt, s));
}

/* Checks v against a declared type; a number meeting a rank-0 type becomes a const node. */
bool check_type(Elab *e, Scope *s, const TypeExpr *t, Value *v, const char *what) {
    DType dt;
    Shape sh;
    if (!resolve_type(e, s, t, NULL, &dt, &sh)) return false;
    if ((v->kind == V_NUM || v->kind == V_BOOL) && sh.rank == 0) {
        SrcLoc loc = v->loc;
        int id;
        if (!value_tensor(e, v, dt, what, &id)) return false;
        *v = (Value){.kind = V_TENSOR, .id = id, .loc = loc};
        return true;
    }
    if (v->kind != V_TENSOR) {
        diag_error(e->diag, v->loc, "%s must be a tensor %s, got %s", what, type_str(e, dt, &sh), value_describe(e, v));
        diag_note(e->diag, t->loc, "declared here");
        return false;
    }
    const Node *n = &e->graph->nodes[v->id];
    if (n->dtype != dt || !shape_equal(&n->shape, &sh)) {
        diag_error(e->diag, v->loc, "%s has type %s, expected %s", what, type_str(e, n->dtype, &n->shape),
                   type_str(e, dt, &sh));
        diag_note(e->diag, t->loc, "declared here");
        return false;
    }
    return true;
}

/* ---- fn calls ----------------------------------------------------------- */

static bool check_returns(Elab *e, Scope *home, const Frame *fr, Value *ret) {
    const FnDecl *fn = fr->fn;
    if (fn->n_rets == 0) return true;
    int n = ret->kind == V_TUPLE ? ret->n_items : 1;
    if (n != fn->n_rets)
        return diag_error(e->diag, fr->ret_loc, "%s returns %d value%s, but its declared return type has %d",
                          fr->display, n, n == 1 ? "" : "s", fn->n_rets);
    for (int i = 0; i < n; i++) {
        Value *v = ret->kind == V_TUPLE ? &ret->items[i] : ret;
        const char *what = n == 1 ? arena_printf(e->arena, "the return value of %s", fr->display)
                                  : arena_printf(e->arena, "return value %d of %s", i + 1, fr->display);
        if (!check_type(e, home, fn->rets[i], v, what)) return false;
    }
    return true;
}

static bool call_fn_body(Elab *e, const Value *fv, const char *display, SrcLoc loc, const CallArgs *ca, Value *out) {
    const FnDecl *fn = fv->fn;
    if (e->call_depth >= ELAB_MAX_CALL_DEPTH)
        return diag_error(e->diag, loc, "calls nested more than %d deep at %s (unbounded recursion?)",
                          ELAB_MAX_CALL_DEPTH, display);
    const char **pnames = arena_alloc(e->arena, sizeof(char *) * (size_t)(fn->n_params + 1));
    Value *slots = arena_alloc(e->arena, sizeof(Value) * (size_t)(fn->n_params + 1));
    bool *given = arena_alloc(e->arena, sizeof(bool) * (size_t)(fn->n_params + 1));
    int n_required = 0;
    for (int i = 0; i < fn->n_params; i++) {
        pnames[i] = fn->params[i].name;
        if (!fn->params[i].dflt) n_required = i + 1;
    }
    if (!bind_args(e, loc, display, pnames, fn->n_params, n_required, ca, slots, given)) return false;
    Scope *fs = new_scope(e, fv->home, true);
    for (int i = 0; i < fn->n_params; i++) {
        const Param *p = &fn->params[i];
        Value v;
        if (given[i]) v = slots[i];
        else if (!eval_expr(e, fs, p->dflt, &v)) return false; /* sees the parameters before it */
        if (v.kind == V_TUPLE)
            return diag_error(e->diag, v.loc, "argument '%s' of %s is %s; unpack it with 'let a, b = ...' first",
                              p->name, display, value_describe(e, &v));
        if (p->type &&
            !check_type(e, fv->home, p->type, &v, arena_printf(e->arena, "argument '%s' of %s", p->name, display)))
            return false;
        scope_bind(e, fs, p->name, p->loc, v, false);
    }
    Frame fr = {.fn = fn, .display = display};
    e->call_depth++;
    ExecResult r = exec_block(e, fs, &fn->body, &fr);
    e->call_depth--;
    if (r == EXEC_NEXT) {
        diag_error(e->diag, fn->body.close, "%s ends without a 'return'", display);
        r = EXEC_FAILED;
    }
    if (r == EXEC_RETURNED && !check_returns(e, fv->home, &fr, &fr.ret)) r = EXEC_FAILED;
    if (r == EXEC_FAILED) {
        if (e->call_depth > 0) note_once(e, loc, arena_printf(e->arena, "in the call to %s here", display));
        return false;
    }
    *out = fr.ret;
    out->loc = loc; /* to the caller, the value comes from the call */
    return true;
}

typedef struct FnCall {
    const Value *fv;
    const char *display;
    const CallArgs *ca;
} FnCall;

/* "Linear(783, 128) called with f32[64,784]", "silu() called with f32[4]". */
static const char *fn_call_what(Elab *e, const void *arg) {
    const FnCall *c = arg;
    const Instance *inst = c->fv->inst;
    bool forward = inst && strcmp(c->fv->fn->name, "forward") == 0;
    const char *who = !inst ? c->display
                      : forward ? inst->call_text
                                : arena_printf(e->arena, "%s.%s()", inst->call_text, c->fv->fn->name);
    if (c->ca->n == 0) return who;
    const char *args = call_text(e, "", c->ca); /* "(f32[64,784])" */
    return arena_printf(e->arena, "%s called with %.*s", who, (int)strlen(args) - 2, args + 1);
}

bool call_fn(Elab *e, const Value *fv, const char *display, SrcLoc loc, const CallArgs *ca, Value *out) {
    bool held = lib_hold(e, loc, fv->fn->loc);
    bool ok = call_fn_body(e, fv, display, loc, ca, out);
    FnCall c = {fv, display, ca};
    if (held) lib_release(e, ok, loc, fn_call_what, &c, display);
    return ok;
}

Binding *own_binding(Instance *inst, const char *name) {
    for (Binding *b = inst->scope.head; b; b = b->next)
        if (strcmp(b->name, name) == 0) return b;
    return NULL;
}

bool call_instance(Elab *e, Instance *inst, SrcLoc loc, const CallArgs *ca, Value *out) {
    Binding *b = own_binding(inst, "forward");
    if (!b || b->val.kind != V_FN)
        return diag_error(e->diag, loc, "module '%s' has no forward function, so '%s' cannot be called",
                          inst->decl->name, inst->path);
    return call_fn(e, &b->val, arena_printf(e->arena, "%s.forward()", inst->decl->name), loc, ca, out);
}
