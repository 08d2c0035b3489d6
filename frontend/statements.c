/* statements.c: executing fn bodies at compile time: let, assignment,
 * return, compile-time if, and `for` loops over time, which trace their body
 * once into a scan node (ir/ops/scan.c) instead of unrolling it. */
#include <string.h>

#include "frontend/elab.h"
#include "ir/ops/ops_impl.h"

/* ---- statements --------------------------------------------------------- */

Scope *new_scope(Elab *e, Scope *parent, bool is_fn) {
    Scope *s = arena_alloc(e->arena, sizeof *s);
    s->parent = parent;
    s->is_fn = is_fn;
    return s;
}

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

ExecResult exec_block(Elab *e, Scope *parent, const Block *b, Frame *fr) {
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

/* 'for' over a compile-time list (a module list, a list of numbers): the
 * body runs once per item at compile time, like Python's loop over an
 * nn.ModuleList; nothing of the loop remains in the graph. */
static ExecResult exec_for_unrolled(Elab *e, Scope *s, const Stmt *st, Frame *fr, const Value *xv) {
    if (st->n_names) {
        diag_error(e->diag, st->name_locs[0],
                   "a loop over %s runs at compile time and yields nothing; assign variables from outside it instead",
                   value_describe(e, xv));
        return EXEC_FAILED;
    }
    struct LoopCtx *outer = e->loop;
    e->loop = NULL; /* a 'yield' here is an error, not a step of an enclosing run-time loop */
    ExecResult r = EXEC_NEXT;
    for (int i = 0; i < xv->n_items && r == EXEC_NEXT; i++) {
        Scope *bs = new_scope(e, s, false);
        Value item = xv->items[i];
        item.loc = st->loop_var_loc;
        scope_bind(e, bs, st->loop_var, st->loop_var_loc, item, false);
        r = exec_block(e, bs, &st->then_block, fr);
    }
    e->loop = outer;
    return r;
}

static ExecResult exec_for(Elab *e, Scope *s, const Stmt *st, Frame *fr) {
    Graph *g = e->graph;
    Value xv;
    int xs;
    if (!eval_expr(e, s, st->values[0], &xv)) return EXEC_FAILED;
    if (xv.kind == V_LIST) return exec_for_unrolled(e, s, st, fr, &xv);
    if (!need_tensor(e, &xv, "a 'for' loop", &xs)) return EXEC_FAILED;
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
