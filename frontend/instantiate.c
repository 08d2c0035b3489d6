/* instantiate.c: module instantiation: a module's constructor arguments
 * bound and checked (compile-time constants; a module that instantiates
 * itself is an error), its members walked in order (constants, params with
 * their types and initializers, submodules and module lists (a frozen one
 * freezes all its params), fns, compile-time if), and its params added to
 * the graph in PyTorch state_dict order. */
#include <string.h>

#include "frontend/elab.h"

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

/* arr (n pointers, room for *cap) with room for one more: a doubled copy in the arena when full. */
static void *grow_ptrs(Elab *e, void *arr, int n, int *cap) {
    if (n < *cap) return arr;
    *cap = *cap ? *cap * 2 : 4;
    void *bigger = arena_alloc(e->arena, sizeof(void *) * (size_t)*cap);
    if (n) memcpy(bigger, arr, sizeof(void *) * (size_t)n);
    return bigger;
}

static const char *join_path(Elab *e, const char *path, const char *name) {
    return path[0] ? arena_printf(e->arena, "%s.%s", path, name) : name;
}

static bool elab_param(Elab *e, Instance *inst, const Member *m) {
    ParamSpec *p = arena_alloc(e->arena, sizeof *p);
    p->name = arena_printf(e->arena, "%s%s", join_path(e, inst->path, m->name), inst->suffix);
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
    inst->params = grow_ptrs(e, inst->params, inst->n_params, &inst->cap_params);
    inst->params[inst->n_params++] = p;
    return true;
}

/* `frozen fc1 = Linear(...)`: no param under inst gets a gradient or an update. */
static void freeze(Instance *inst) {
    for (int i = 0; i < inst->n_params; i++) inst->params[i]->frozen = true;
    for (int i = 0; i < inst->n_children; i++) freeze(inst->children[i]);
}

/* The largest module list: far beyond any real model, small enough that a
 * typo (range(1000000)) is an error rather than a long wait. */
enum { MODULE_LIST_MAX = 4096 };

/* A submodule member: one instance (fc1 = Linear(...)) or a module list
 * (blocks = [Block(...) for i in range(N)], element i at path "blocks.i", as
 * torch.nn.ModuleList names it). An 'inline' member's params are named as
 * its parent's own with "_<name>" (one instance) or "_<name><i>" (a list's
 * element i) appended: PyTorch's RNN names, weight_ih_l1_reverse. */
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
    int64_t count = 1;
    if (m->list_count) {
        Value nv;
        if (!eval_expr(e, &inst->scope, m->list_count, &nv)) return false;
        if (nv.kind != V_NUM || !nv.is_int || nv.num < 0 || nv.num > MODULE_LIST_MAX)
            return diag_error(e->diag, m->list_count->loc,
                              "the length of module list '%s' must be a compile-time integer from 0 to %d, got %s",
                              m->name, MODULE_LIST_MAX, value_describe(e, &nv));
        count = (int64_t)nv.num;
    }
    Value *items = arena_alloc(e->arena, sizeof(Value) * (size_t)(count ? count : 1));
    for (int64_t i = 0; i < count; i++) {
        Scope *s = &inst->scope;
        const char *index = "";
        if (m->list_count) {
            s = new_scope(e, &inst->scope, false);
            scope_bind(e, s, m->list_var, m->list_var_loc, value_num((double)i, true, m->list_var_loc), false);
            index = arena_printf(e->arena, "%lld", (long long)i);
        }
        CallArgs ca;
        if (!eval_args(e, s, call, NULL, &ca)) return false;
        const char *path, *suffix = "";
        if (m->inline_names) {
            path = inst->path;
            suffix = arena_printf(e->arena, "%s_%s%s", inst->suffix, m->name, index);
        } else {
            /* a plain submodule of an inline one keeps the suffix in its path, so names stay unique */
            path = join_path(e, inst->path, arena_printf(e->arena, "%s%s", m->name, inst->suffix));
            if (m->list_count) path = arena_printf(e->arena, "%s.%s", path, index);
        }
        Instance *child = instantiate(e, &b->val, path, suffix, inst, &ca, call->loc);
        if (!child) return false;
        if (m->frozen) freeze(child);
        items[i] = (Value){.kind = V_INSTANCE, .inst = child, .loc = m->loc};
        inst->children = grow_ptrs(e, inst->children, inst->n_children, &inst->cap_children);
        inst->children[inst->n_children++] = child;
    }
    Value v = items[0];
    if (m->list_count) v = (Value){.kind = V_LIST, .items = items, .n_items = (int)count, .loc = m->loc};
    scope_bind(e, &inst->scope, m->name, m->loc, v, false);
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

static Instance *instantiate_body(Elab *e, const Value *mod, const char *path, const char *suffix,
                                  Instance *parent, const CallArgs *ca, SrcLoc loc) {
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
    inst->suffix = suffix;
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

Instance *instantiate(Elab *e, const Value *mod, const char *path, const char *suffix, Instance *parent,
                      const CallArgs *ca, SrcLoc loc) {
    bool held = lib_hold(e, loc, mod->module->loc);
    Instance *inst = instantiate_body(e, mod, path, suffix, parent, ca, loc);
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
