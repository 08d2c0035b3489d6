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
 * Every error stops elaboration: functions return false after reporting. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/elab.h"
#include "ir/ops/ops_impl.h"

/* A "note:" for the error being unwound, skipped when it repeats the previous
 * one (a recursive call would otherwise print one per level). */
static void note_once(Elab *e, SrcLoc loc, const char *text) {
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

static bool in_stdlib(SrcLoc loc) { return loc.file && strcmp(loc.file, etch_stdlib_nn_name) == 0; }

/* Starts holding errors when site (user code) calls body (library code). */
static bool lib_hold(Elab *e, SrcLoc site, SrcLoc body) {
    if (!in_stdlib(body) || in_stdlib(site)) return false;
    diag_hold(e->diag);
    return true;
}

/* Ends lib_hold. When the call failed, reports the held error at site as
 * "WHAT: message"; what is built only then ("Linear(783, 128) called with
 * f32[64,784]"). */
static void lib_release(Elab *e, bool ok, SrcLoc site, const char *(*what)(Elab *, const void *), const void *arg,
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
            return diag_error(e->diag, t->loc, "'%s' is not a dtype (expected f32, f64, i32, i64 or bool%s)",
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
static bool check_type(Elab *e, Scope *s, const TypeExpr *t, Value *v, const char *what) {
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

/* ---- statements --------------------------------------------------------- */

typedef enum ExecResult { EXEC_NEXT, EXEC_RETURNED, EXEC_FAILED } ExecResult;

typedef struct Frame {
    const FnDecl *fn;
    const char *display; /* "Linear.forward()" */
    Value ret;
    SrcLoc ret_loc;
} Frame;

static Scope *new_scope(Elab *e, Scope *parent, bool is_fn) {
    Scope *s = arena_alloc(e->arena, sizeof *s);
    s->parent = parent;
    s->is_fn = is_fn;
    return s;
}

static ExecResult exec_block(Elab *e, Scope *parent, const Block *b, Frame *fr);

/* The values of a return or let: one value, or a tuple of several. */
static bool eval_values(Elab *e, Scope *s, const Stmt *st, Value *out) {
    Value *vals = arena_alloc(e->arena, sizeof(Value) * (size_t)st->n_values);
    for (int i = 0; i < st->n_values; i++)
        if (!eval_expr(e, s, st->values[i], &vals[i])) return false;
    *out = st->n_values == 1 ? vals[0] : (Value){.kind = V_TUPLE, .items = vals, .n_items = st->n_values, .loc = st->loc};
    return true;
}

static ExecResult exec_let(Elab *e, Scope *s, const Stmt *st) {
    Value v;
    if (!eval_values(e, s, st, &v)) return EXEC_FAILED;
    if (st->type && !check_type(e, s, st->type, &v, arena_printf(e->arena, "'%s'", st->names[0])))
        return EXEC_FAILED;
    if (st->n_names == 1) {
        scope_bind(e, s, st->names[0], st->name_locs[0], v, false);
        return EXEC_NEXT;
    }
    if (v.kind != V_TUPLE || v.n_items != st->n_names) {
        diag_error(e->diag, st->loc, "cannot unpack %s into %d names", value_describe(e, &v), st->n_names);
        return EXEC_FAILED;
    }
    for (int i = 0; i < st->n_names; i++) scope_bind(e, s, st->names[i], st->name_locs[i], v.items[i], false);
    return EXEC_NEXT;
}

/* The variable `name = ...` assigns from scope s: the nearest binding inside
 * the current fn; NULL when there is none. */
static Binding *find_assignable(Scope *s, const char *name) {
    for (Scope *sc = s; sc; sc = sc->parent) {
        for (Binding *x = sc->head; x; x = x->next)
            if (strcmp(x->name, name) == 0) return x;
        if (sc->is_fn) break;
    }
    return NULL;
}

static ExecResult exec_assign(Elab *e, Scope *s, const Stmt *st) {
    Binding *b = find_assignable(s, st->names[0]);
    if (!b) {
        if (scope_find(s, st->names[0]))
            diag_error(e->diag, st->name_locs[0], "cannot assign to '%s': only local variables can be reassigned",
                       st->names[0]);
        else
            diag_error(e->diag, st->name_locs[0], "unknown name '%s' (declare it with 'let %s = ...')", st->names[0],
                       st->names[0]);
        return EXEC_FAILED;
    }
    Value v;
    if (!eval_expr(e, s, st->values[0], &v)) return EXEC_FAILED;
    b->val = v;
    return EXEC_NEXT;
}

/* What a 'for' body being traced has yielded (one step's outputs). */
typedef struct LoopCtx {
    Value yield;
    bool yielded;
    SrcLoc yield_loc;
} LoopCtx;

static ExecResult exec_for(Elab *e, Scope *s, const Stmt *st, Frame *fr);

static ExecResult exec_stmt(Elab *e, Scope *s, const Stmt *st, Frame *fr) {
    switch (st->kind) {
    case ST_FOR: return exec_for(e, s, st, fr);
    case ST_YIELD:
        if (!e->loop) {
            diag_error(e->diag, st->loc, "'yield' outside a 'for' loop");
            return EXEC_FAILED;
        }
        if (e->loop->yielded) {
            diag_error(e->diag, st->loc, "a second 'yield' in one step of the loop (the first is at line %d)",
                       e->loop->yield_loc.line);
            return EXEC_FAILED;
        }
        if (!eval_values(e, s, st, &e->loop->yield)) return EXEC_FAILED;
        e->loop->yielded = true;
        e->loop->yield_loc = st->loc;
        return EXEC_NEXT;
    case ST_LET: return exec_let(e, s, st);
    case ST_ASSIGN: return exec_assign(e, s, st);
    case ST_RETURN:
        if (!eval_values(e, s, st, &fr->ret)) return EXEC_FAILED;
        fr->ret_loc = st->loc;
        return EXEC_RETURNED;
    case ST_IF: {
        Value c;
        bool b;
        if (!eval_expr(e, s, st->cond, &c) || !value_bool(e, &c, "an 'if' condition", &b)) return EXEC_FAILED;
        if (b) return exec_block(e, s, &st->then_block, fr);
        return st->else_block ? exec_block(e, s, st->else_block, fr) : EXEC_NEXT;
    }
    }
    return EXEC_FAILED;
}

static ExecResult exec_block(Elab *e, Scope *parent, const Block *b, Frame *fr) {
    if (!elab_enter(e, b->open)) return EXEC_FAILED;
    Scope *s = new_scope(e, parent, false);
    ExecResult r = EXEC_NEXT;
    for (int i = 0; i < b->n_stmts && r == EXEC_NEXT; i++) r = exec_stmt(e, s, b->stmts[i], fr);
    e->eval_depth--;
    return r;
}

/* ---- loops over time ------------------------------------------------------
 *
 * `for x in xs { ... }` runs at run time, once per step of xs's first dim, and
 * becomes one scan node (ir/ops/scan.c), not T copies of its body. The body is
 * traced once into the current graph after placeholder inputs for the step
 * and for the carries (the variables from outside the loop that it assigns);
 * the nodes it added are then moved into a body graph, every outer value they
 * read becoming a captured input, and the graph is cut back to where the loop
 * began. After the loop the carries hold their final values, and `let ys =
 * for ...` binds what each step yields, stacked over time. */

/* Names assigned anywhere in b (nested blocks too), each once, in order. */
static bool collect_assigned(Elab *e, const Block *b, const char **names, SrcLoc *locs, int *n) {
    for (int i = 0; i < b->n_stmts; i++) {
        const Stmt *st = b->stmts[i];
        if (st->kind == ST_ASSIGN) {
            bool seen = false;
            for (int k = 0; k < *n && !seen; k++) seen = strcmp(names[k], st->names[0]) == 0;
            if (seen) continue;
            if (*n == ETCH_MAX_OPERANDS / 2)
                return diag_error(e->diag, st->name_locs[0], "a loop can update at most %d variables",
                                  ETCH_MAX_OPERANDS / 2);
            locs[*n] = st->name_locs[0];
            names[(*n)++] = st->names[0];
        } else if (st->kind == ST_IF || st->kind == ST_FOR) {
            if (!collect_assigned(e, &st->then_block, names, locs, n)) return false;
            if (st->else_block && !collect_assigned(e, st->else_block, names, locs, n)) return false;
        }
    }
    return true;
}

static Shape shape_drop_first(Shape s) {
    s.rank--;
    memmove(s.dim, s.dim + 1, sizeof(int64_t) * (size_t)s.rank);
    return s;
}

/* Moves nodes [start, g->n_nodes) into a body graph whose inputs are the
 * placeholders ph[0..n_ph) (carries, then the step) and then every outer
 * value they read (captures, listed in cap[] for the scan's operands). */
static Graph *extract_body(Elab *e, int start, const int *ph, const char *const *ph_names, int n_ph,
                           const int *outs, int n_outs, int *cap, int *n_cap) {
    Graph *g = e->graph;
    int end = g->n_nodes;
    int *map = arena_alloc(e->arena, sizeof(int) * (size_t)(end + 1));
    for (int i = 0; i < end; i++) map[i] = -1;
    Graph *B = graph_new(e->arena, arena_printf(e->arena, "%s.loop%d", g->name, e->n_loops++));
    for (int i = 0; i < n_ph; i++) {
        const Node *p = &g->nodes[ph[i]];
        map[ph[i]] = graph_add_input(B, ph_names[i], p->dtype, p->shape, p->loc);
    }
    /* captures, in the order the body first reads them */
    *n_cap = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int id = pass ? 0 : start; id < (pass ? n_outs : end); id++) {
            int n_in = pass ? 1 : g->nodes[id].n_in;
            for (int k = 0; k < n_in; k++) {
                int x = pass ? outs[id] : g->nodes[id].in[k];
                if (x >= start || map[x] >= 0) continue;
                if (*n_cap + n_ph >= ETCH_MAX_OPERANDS) {
                    diag_error(e->diag, g->nodes[x].loc, "a loop body may read at most %d values from outside it",
                               ETCH_MAX_OPERANDS - n_ph);
                    return NULL;
                }
                cap[(*n_cap)++] = x;
                map[x] = -2; /* numbered below, after all placeholders */
            }
        }
    for (int i = 0; i < *n_cap; i++) {
        const Node *c = &g->nodes[cap[i]];
        map[cap[i]] = graph_add_input(B, arena_printf(e->arena, "capture.%d", i), c->dtype, c->shape, c->loc);
    }
    for (int id = start; id < end; id++) {
        if (map[id] >= 0) continue; /* a placeholder */
        Node m = g->nodes[id];
        int ins[ETCH_MAX_OPERANDS];
        for (int k = 0; k < m.n_in; k++) ins[k] = map[m.in[k]];
        m.in = ins;
        map[id] = graph_append_raw(B, &m);
    }
    for (int i = 0; i < n_outs; i++) graph_add_output(B, map[outs[i]]);
    return B;
}

static ExecResult exec_for(Elab *e, Scope *s, const Stmt *st, Frame *fr) {
    Graph *g = e->graph;
    Value xv;
    int xs;
    if (!eval_expr(e, s, st->values[0], &xv) || !need_tensor(e, &xv, "a 'for' loop", &xs)) return EXEC_FAILED;
    const Node X = g->nodes[xs];
    char ty[96], ty2[96];
    if (X.shape.rank < 1) {
        diag_error(e->diag, st->values[0]->loc, "a 'for' loop steps along the first dim of a tensor; got %s",
                   type_format(ty, sizeof ty, X.dtype, &X.shape));
        return EXEC_FAILED;
    }
    /* carries: variables from outside the loop that its body assigns */
    const char *names[ETCH_MAX_OPERANDS];
    SrcLoc locs[ETCH_MAX_OPERANDS];
    int n_names = 0, nc = 0, init[ETCH_MAX_OPERANDS], ph[ETCH_MAX_OPERANDS];
    const char *ph_names[ETCH_MAX_OPERANDS];
    Binding *carry[ETCH_MAX_OPERANDS];
    if (!collect_assigned(e, &st->then_block, names, locs, &n_names)) return EXEC_FAILED;
    for (int i = 0; i < n_names; i++) {
        Binding *b = find_assignable(s, names[i]);
        if (!b) continue; /* a variable of the body itself */
        if (b->val.kind != V_TENSOR) {
            diag_error(e->diag, locs[i],
                       "'%s' is assigned inside the loop over '%s', which runs at run time, so it must be a "
                       "tensor; it is %s",
                       names[i], st->loop_var, value_describe(e, &b->val));
            return EXEC_FAILED;
        }
        carry[nc] = b;
        init[nc] = b->val.id;
        ph_names[nc] = arena_printf(e->arena, "carry.%s", names[i]);
        nc++;
    }
    int start = g->n_nodes, saved_inputs = g->n_inputs;
    for (int k = 0; k < nc; k++) {
        const Node *c = &g->nodes[init[k]];
        ph[k] = graph_add_input(g, ph_names[k], c->dtype, c->shape, carry[k]->loc);
        carry[k]->val = (Value){.kind = V_TENSOR, .id = ph[k], .loc = carry[k]->val.loc};
    }
    ph_names[nc] = arena_printf(e->arena, "step.%s", st->loop_var);
    ph[nc] = graph_add_input(g, ph_names[nc], X.dtype, shape_drop_first(X.shape), st->loop_var_loc);

    LoopCtx lc = {0}, *outer = e->loop;
    e->loop = &lc;
    Scope *bs = new_scope(e, s, false);
    scope_bind(e, bs, st->loop_var, st->loop_var_loc, (Value){.kind = V_TENSOR, .id = ph[nc], .loc = st->loop_var_loc},
               false);
    ExecResult r = exec_block(e, bs, &st->then_block, fr);
    e->loop = outer;
    bool ok = r == EXEC_NEXT;
    if (r == EXEC_RETURNED) ok = diag_error(e->diag, fr->ret_loc, "'return' inside a 'for' loop (use 'yield' for a step's outputs)");

    /* the body's outputs: new carries, the carries again (stacked: the gradient reads them), the yields */
    int outs[ETCH_MAX_OPERANDS], n_outs = 0, n_yield = 0;
    for (int k = 0; ok && k < nc; k++) {
        const Value *v = &carry[k]->val;
        const Node *c0 = &g->nodes[init[k]];
        if (v->kind != V_TENSOR) {
            ok = diag_error(e->diag, locs[k], "'%s' must stay a tensor inside the loop; it became %s", names[k],
                            value_describe(e, v));
        } else if (g->nodes[v->id].dtype != c0->dtype || !shape_equal(&g->nodes[v->id].shape, &c0->shape)) {
            ok = diag_error(e->diag, v->loc, "'%s' is %s before the loop but the loop body makes it %s", names[k],
                            type_format(ty, sizeof ty, c0->dtype, &c0->shape),
                            type_format(ty2, sizeof ty2, g->nodes[v->id].dtype, &g->nodes[v->id].shape));
        } else {
            outs[n_outs++] = v->id;
        }
    }
    for (int k = 0; ok && k < nc; k++) outs[n_outs++] = outs[k];
    if (ok && lc.yielded) {
        n_yield = lc.yield.kind == V_TUPLE ? lc.yield.n_items : 1;
        for (int i = 0; ok && i < n_yield; i++) {
            const Value *v = lc.yield.kind == V_TUPLE ? &lc.yield.items[i] : &lc.yield;
            if (v->kind != V_TENSOR) ok = diag_error(e->diag, v->loc, "a loop can only yield tensors; got %s", value_describe(e, v));
            else if (n_outs >= ETCH_MAX_OPERANDS) ok = diag_error(e->diag, v->loc, "a loop yields too many values");
            else outs[n_outs++] = v->id;
        }
    }
    if (ok && st->n_names != n_yield)
        ok = diag_error(e->diag, st->n_names ? st->name_locs[0] : st->loc,
                        "the loop binds %d name%s but each step yields %d value%s", st->n_names,
                        st->n_names == 1 ? "" : "s", n_yield, n_yield == 1 ? "" : "s");
    if (ok && n_outs == 0)
        ok = diag_error(e->diag, st->loc, "this loop computes nothing: it neither assigns a tensor from outside it nor yields");
    int cap[ETCH_MAX_OPERANDS], n_cap = 0;
    Graph *B = ok ? extract_body(e, start, ph, ph_names, nc + 1, outs, n_outs, cap, &n_cap) : NULL;
    g->n_nodes = start; /* the traced body now lives in B */
    g->n_inputs = saved_inputs;
    if (!B) {
        for (int k = 0; k < nc; k++) carry[k]->val.id = init[k];
        return EXEC_FAILED;
    }
    int ops[ETCH_MAX_OPERANDS], n = 0;
    for (int k = 0; k < nc; k++) ops[n++] = init[k];
    ops[n++] = xs;
    for (int i = 0; i < n_cap; i++) ops[n++] = cap[i];
    NodeAttrs at = {.body = B, .n_carry = nc, .n_xs = 1};
    Value res;
    if (!add_op(e, OP_SCAN, ops, n, &at, st->loc, &res)) return EXEC_FAILED;
    for (int k = 0; k < nc; k++) {
        int id = scan_add_extract(g, res.id, k, st->loc, e->diag);
        if (id < 0) return EXEC_FAILED;
        carry[k]->val = (Value){.kind = V_TENSOR, .id = id, .loc = st->loc};
    }
    for (int i = 0; i < n_yield; i++) {
        int id = scan_add_extract(g, res.id, 2 * nc + i, st->loc, e->diag);
        if (id < 0) return EXEC_FAILED;
        scope_bind(e, s, st->names[i], st->name_locs[i], (Value){.kind = V_TENSOR, .id = id, .loc = st->name_locs[i]},
                   false);
    }
    return EXEC_NEXT;
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

static Binding *own_binding(Instance *inst, const char *name) {
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

/* ---- module instantiation ----------------------------------------------- */

static bool value_equal(const Value *a, const Value *b) {
    if (a->kind != b->kind) return false;
    switch (a->kind) {
    case V_NUM: return a->num == b->num;
    case V_BOOL: return a->b == b->b;
    case V_DTYPE: return a->dtype == b->dtype;
    case V_LIST:
        if (a->n_items != b->n_items) return false;
        for (int i = 0; i < a->n_items; i++)
            if (!value_equal(&a->items[i], &b->items[i])) return false;
        return true;
    default: return false;
    }
}

static bool check_unique_member(Elab *e, Instance *inst, const char *name, SrcLoc loc) {
    for (Binding *b = inst->scope.head; b; b = b->next)
        if (!b->is_arg && strcmp(b->name, name) == 0) {
            diag_error(e->diag, loc, "duplicate definition of '%s' in %s '%s'", name,
                       inst->decl->is_model ? "model" : "module", inst->decl->name);
            diag_note(e->diag, b->loc, "previous definition of '%s' is here", name);
            return false;
        }
    return true;
}

static const char *join_path(Elab *e, const char *path, const char *name) {
    return path[0] ? arena_printf(e->arena, "%s.%s", path, name) : name;
}

static bool elab_param(Elab *e, Instance *inst, const Member *m) {
    ParamSpec *p = arena_alloc(e->arena, sizeof *p);
    p->name = join_path(e, inst->path, m->name);
    p->loc = m->loc;
    p->frozen = m->frozen;
    p->id = -1;
    if (!resolve_type(e, &inst->scope, m->type, arena_printf(e->arena, "param '%s'", p->name), &p->dtype, &p->shape))
        return false;
    static const char *const names[] = {"a", "b"}, *const normal_names[] = {"mean", "std"}, *const full_names[] = {"value"};
    const Expr *call = m->value;
    const char *init = call->name, *fname = arena_printf(e->arena, "%s()", init);
    CallArgs ca;
    Value slots[2];
    bool given[2] = {false, false};
    double a = 0, b = 1;
    if (!eval_args(e, &inst->scope, call, NULL, &ca)) return false;
    const char *const *pn = NULL;
    int n_params = 0, n_required = 0;
    if (strcmp(init, "uniform") == 0) pn = names, n_params = 2, p->init.kind = INIT_UNIFORM;
    else if (strcmp(init, "normal") == 0) pn = normal_names, n_params = 2, p->init.kind = INIT_NORMAL;
    else if (strcmp(init, "full") == 0) pn = full_names, n_params = n_required = 1, p->init.kind = INIT_CONST;
    else if (strcmp(init, "zeros") == 0) pn = names, p->init.kind = INIT_ZEROS;
    else if (strcmp(init, "ones") == 0) pn = names, p->init.kind = INIT_ONES;
    else
        return diag_error(e->diag, call->loc, "unknown initializer '%s' (use uniform, normal, zeros, ones or full)",
                          init);
    if (!bind_args(e, call->loc, fname, pn, n_params, n_required, &ca, slots, given)) return false;
    if (given[0] && n_params > 0 &&
        !value_number(e, &slots[0], arena_printf(e->arena, "argument '%s' of %s", pn[0], fname), &a))
        return false;
    if (n_params > 1 && given[1] &&
        !value_number(e, &slots[1], arena_printf(e->arena, "argument '%s' of %s", pn[1], fname), &b))
        return false;
    if (p->init.kind == INIT_UNIFORM && a > b)
        return diag_error(e->diag, call->loc, "uniform(a, b) needs a <= b, got a = %g and b = %g", a, b);
    if (p->init.kind == INIT_NORMAL && b < 0)
        return diag_error(e->diag, call->loc, "normal(mean, std) needs std >= 0, got %g", b);
    p->init.a = a;
    p->init.b = p->init.kind == INIT_CONST ? 0 : b;
    if (p->init.kind == INIT_ZEROS || p->init.kind == INIT_ONES) p->init.a = p->init.b = 0;
    if (!check_unique_member(e, inst, m->name, m->loc)) return false;
    scope_bind(e, &inst->scope, m->name, m->loc, (Value){.kind = V_PARAM, .param = p, .loc = m->loc}, false);
    if (inst->n_params == inst->cap_params) {
        int cap = inst->cap_params ? inst->cap_params * 2 : 4;
        ParamSpec **ps = arena_alloc(e->arena, sizeof(ParamSpec *) * (size_t)cap);
        if (inst->n_params) memcpy(ps, inst->params, sizeof(ParamSpec *) * (size_t)inst->n_params);
        inst->params = ps;
        inst->cap_params = cap;
    }
    inst->params[inst->n_params++] = p;
    return true;
}

static Instance *instantiate(Elab *e, const Value *mod, const char *path, Instance *parent, const CallArgs *ca,
                             SrcLoc loc);

static bool elab_instance(Elab *e, Instance *inst, const Member *m) {
    const Expr *call = m->value;
    Binding *b = scope_find(&inst->scope, call->name);
    if (!b) {
        if (builtin_exists(call->name))
            return diag_error(e->diag, call->loc, "'%s' is a builtin function, not a module; call it inside fn",
                              call->name);
        const char *sug = suggest_name(e, &inst->scope, call->name);
        return diag_error(e->diag, call->loc, "unknown module '%s'%s", call->name,
                          sug ? arena_printf(e->arena, " (did you mean '%s'?)", sug) : "");
    }
    if (b->val.kind != V_MODULE)
        return diag_error(e->diag, call->loc, "'%s' is not a module: it is %s", call->name,
                          value_describe(e, &b->val));
    if (b->val.module->is_model)
        return diag_error(e->diag, call->loc, "'%s' is a model; only modules can be instantiated", call->name);
    if (!check_unique_member(e, inst, m->name, m->loc)) return false;
    CallArgs ca;
    if (!eval_args(e, &inst->scope, call, NULL, &ca)) return false;
    Instance *child = instantiate(e, &b->val, join_path(e, inst->path, m->name), inst, &ca, call->loc);
    if (!child) return false;
    scope_bind(e, &inst->scope, m->name, m->loc, (Value){.kind = V_INSTANCE, .inst = child, .loc = m->loc}, false);
    if (inst->n_children == inst->cap_children) {
        int cap = inst->cap_children ? inst->cap_children * 2 : 4;
        Instance **cs = arena_alloc(e->arena, sizeof(Instance *) * (size_t)cap);
        if (inst->n_children) memcpy(cs, inst->children, sizeof(Instance *) * (size_t)inst->n_children);
        inst->children = cs;
        inst->cap_children = cap;
    }
    inst->children[inst->n_children++] = child;
    return true;
}

static bool elab_members(Elab *e, Instance *inst, const MemberList *ml) {
    for (int i = 0; i < ml->n; i++) {
        const Member *m = ml->items[i];
        switch (m->kind) {
        case MB_CONST: {
            Value v;
            if (!eval_expr(e, &inst->scope, m->value, &v)) return false;
            if (!value_is_const(&v))
                return diag_error(e->diag, m->value->loc, "constant '%s' must be a compile-time value, got %s", m->name,
                                  value_describe(e, &v));
            if (!check_unique_member(e, inst, m->name, m->loc)) return false;
            scope_bind(e, &inst->scope, m->name, m->loc, v, false);
            break;
        }
        case MB_PARAM:
            if (!elab_param(e, inst, m)) return false;
            break;
        case MB_INSTANCE:
            if (!elab_instance(e, inst, m)) return false;
            break;
        case MB_FN:
            if (!check_unique_member(e, inst, m->name, m->loc)) return false;
            scope_bind(e, &inst->scope, m->name, m->loc,
                       (Value){.kind = V_FN, .fn = m->fn, .inst = inst, .home = &inst->scope, .loc = m->loc}, false);
            break;
        case MB_IF: {
            Value c;
            bool b;
            if (!eval_expr(e, &inst->scope, m->cond, &c) || !value_bool(e, &c, "an 'if' condition", &b)) return false;
            if (!elab_enter(e, m->loc)) return false;
            bool ok = elab_members(e, inst, b ? &m->then_members : &m->else_members);
            e->eval_depth--;
            if (!ok) return false;
            break;
        }
        }
    }
    return true;
}

static Instance *instantiate_body(Elab *e, const Value *mod, const char *path, Instance *parent,
                                  const CallArgs *ca, SrcLoc loc) {
    const ModuleDecl *md = mod->module;
    const char *fname = arena_printf(e->arena, "%s()", md->name);
    if (e->inst_depth >= ELAB_MAX_INST_DEPTH) {
        diag_error(e->diag, loc, "modules nested more than %d deep at '%s' (does %s instantiate itself?)",
                   ELAB_MAX_INST_DEPTH, path, md->name);
        return NULL;
    }
    int n = md->n_params;
    const char **pnames = arena_alloc(e->arena, sizeof(char *) * (size_t)(n + 1));
    Value *args = arena_alloc(e->arena, sizeof(Value) * (size_t)(n + 1));
    bool *given = arena_alloc(e->arena, sizeof(bool) * (size_t)(n + 1));
    int n_required = 0;
    for (int i = 0; i < n; i++) {
        pnames[i] = md->params[i].name;
        if (!md->params[i].dflt) n_required = i + 1;
    }
    if (!bind_args(e, loc, fname, pnames, n, n_required, ca, args, given)) return NULL;
    /* defaults see the module's file scope and the arguments before them */
    Scope *arg_scope = new_scope(e, mod->home, false);
    for (int i = 0; i < n; i++) {
        if (!given[i] && !eval_expr(e, arg_scope, md->params[i].dflt, &args[i])) return NULL;
        scope_bind(e, arg_scope, pnames[i], md->params[i].loc, args[i], true);
        if (!value_is_const(&args[i])) {
            diag_error(e->diag, args[i].loc,
                       "argument '%s' of %s must be a compile-time constant (number, bool, list or dtype), got %s",
                       pnames[i], fname, value_describe(e, &args[i]));
            return NULL;
        }
    }
    for (Instance *p = parent; p; p = p->parent) {
        if (p->decl != md) continue;
        bool same = true;
        for (int i = 0; i < n && same; i++) same = value_equal(&p->args[i], &args[i]);
        if (!same) continue;
        const char *chain = md->name;
        for (Instance *q = parent; q != p; q = q->parent) chain = arena_printf(e->arena, "%s -> %s", q->decl->name, chain);
        diag_error(e->diag, loc, "module '%s' instantiates itself: %s -> %s", md->name, md->name, chain);
        return NULL;
    }
    Instance *inst = arena_alloc(e->arena, sizeof *inst);
    inst->decl = md;
    inst->path = path;
    inst->loc = loc;
    inst->parent = parent;
    inst->args = args;
    inst->n_args = n;
    if (in_stdlib(md->loc)) inst->call_text = call_text(e, md->name, ca);
    inst->scope.parent = mod->home;
    for (int i = 0; i < n; i++) scope_bind(e, &inst->scope, pnames[i], md->params[i].loc, args[i], true);
    e->inst_depth++;
    bool ok = elab_members(e, inst, &md->members);
    e->inst_depth--;
    if (!ok) {
        if (parent) note_once(e, loc, arena_printf(e->arena, "while instantiating '%s' (%s) here", path, md->name));
        return NULL;
    }
    return inst;
}

typedef struct CtorCall {
    const char *name;
    const CallArgs *ca;
} CtorCall;

static const char *ctor_call_what(Elab *e, const void *arg) {
    const CtorCall *c = arg;
    return call_text(e, c->name, c->ca);
}

static Instance *instantiate(Elab *e, const Value *mod, const char *path, Instance *parent, const CallArgs *ca,
                             SrcLoc loc) {
    bool held = lib_hold(e, loc, mod->module->loc);
    Instance *inst = instantiate_body(e, mod, path, parent, ca, loc);
    CtorCall c = {mod->module->name, ca};
    if (held) lib_release(e, inst != NULL, loc, ctor_call_what, &c, mod->module->name);
    return inst;
}

/* Own params first, in declaration order, then each submodule's: PyTorch's state_dict order. */
bool emit_params(Elab *e, Instance *inst) {
    for (int i = 0; i < inst->n_params; i++) {
        ParamSpec *p = inst->params[i];
        NodeAttrs a = {.name = p->name, .dtype = p->dtype, .shape = p->shape, .init = p->init, .frozen = p->frozen};
        Value v;
        if (!add_op(e, OP_PARAM, NULL, 0, &a, p->loc, &v)) return false;
        p->id = v.id;
    }
    for (int i = 0; i < inst->n_children; i++)
        if (!emit_params(e, inst->children[i])) return false;
    return true;
}

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
    Instance *model = instantiate(e, &mv, "", NULL, &none, md->loc);
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
