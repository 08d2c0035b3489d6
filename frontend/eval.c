/* eval.c: evaluating DSL expressions at compile time.
 *
 * An expression evaluates to a Value: compile-time numbers, bools, lists and
 * dtypes fold on the spot (Python's arithmetic: `/` is true division,
 * except that integers that divide exactly stay integers, `%` takes the divisor's
 * sign); anything involving a tensor
 * appends IR nodes through graph_add_op, whose shape rules report mismatches
 * at the operator's location. A number meeting a tensor becomes a rank-0
 * const node of the tensor's dtype. Also here: value descriptions for
 * messages, scopes and "did you mean" suggestions. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "frontend/elab.h"

/* ---- values ------------------------------------------------------------- */

Value value_num(double x, bool is_int, SrcLoc loc) { return (Value){.kind = V_NUM, .num = x, .is_int = is_int, .loc = loc}; }

bool value_is_module_list(const Value *v) {
    return v->kind == V_LIST && v->n_items > 0 && v->items[0].kind == V_INSTANCE;
}

bool value_is_const(const Value *v) {
    return v->kind == V_NUM || v->kind == V_BOOL || (v->kind == V_LIST && !value_is_module_list(v)) ||
           v->kind == V_DTYPE;
}

static const char *fmt_num(Elab *e, double x, bool is_int) {
    if (is_int) return arena_printf(e->arena, "%lld", (long long)x);
    const char *s = arena_printf(e->arena, "%g", x);
    /* keep floats recognisable: 2.0, not 2 */
    return strpbrk(s, ".einf") ? s : arena_printf(e->arena, "%s.0", s);
}

const char *value_describe(Elab *e, const Value *v) {
    char buf[96];
    switch (v->kind) {
    case V_NUM: return arena_printf(e->arena, "the %s %s", v->is_int ? "integer" : "number", fmt_num(e, v->num, v->is_int));
    case V_BOOL: return v->b ? "the bool true" : "the bool false";
    case V_LIST:
        if (value_is_module_list(v))
            return arena_printf(e->arena, "a list of %d %s instance%s", v->n_items, v->items[0].inst->decl->name,
                                v->n_items == 1 ? "" : "s");
        return arena_printf(e->arena, "a list of %d value%s", v->n_items, v->n_items == 1 ? "" : "s");
    case V_DTYPE: return arena_printf(e->arena, "the dtype %s", dtype_name(v->dtype));
    case V_TENSOR: {
        const Node *n = &e->graph->nodes[v->id];
        return arena_printf(e->arena, "a tensor %s", type_format(buf, sizeof buf, n->dtype, &n->shape));
    }
    case V_TUPLE: return arena_printf(e->arena, "a tuple of %d values", v->n_items);
    case V_INSTANCE:
        if (!v->inst->path[0]) return arena_printf(e->arena, "the model %s", v->inst->decl->name);
        return arena_printf(e->arena, "the module instance '%s' (%s)", v->inst->path, v->inst->decl->name);
    case V_PARAM: return arena_printf(e->arena, "the param '%s'", v->param->name);
    case V_MODULE: return arena_printf(e->arena, "the %s '%s'", v->module->is_model ? "model" : "module", v->module->name);
    case V_FN: return arena_printf(e->arena, "the fn '%s'", v->fn->name);
    }
    return "a value";
}

const char *value_brief(Elab *e, const Value *v) {
    char buf[96];
    switch (v->kind) {
    case V_NUM: return fmt_num(e, v->num, v->is_int);
    case V_BOOL: return v->b ? "true" : "false";
    case V_DTYPE: return dtype_name(v->dtype);
    case V_LIST: {
        const char *s = "[";
        for (int i = 0; i < v->n_items; i++)
            s = arena_printf(e->arena, "%s%s%s", s, i ? ", " : "", value_brief(e, &v->items[i]));
        return arena_printf(e->arena, "%s]", s);
    }
    case V_TENSOR: {
        const Node *n = &e->graph->nodes[v->id];
        return arena_strdup(e->arena, type_format(buf, sizeof buf, n->dtype, &n->shape));
    }
    default: return value_describe(e, v);
    }
}

const char *call_text(Elab *e, const char *name, const CallArgs *ca) {
    const char *s = arena_printf(e->arena, "%s(", name);
    for (int i = 0; i < ca->n; i++)
        s = arena_printf(e->arena, "%s%s%s%s%s", s, i ? ", " : "", ca->names[i] ? ca->names[i] : "",
                         ca->names[i] ? "=" : "", value_brief(e, &ca->vals[i]));
    return arena_printf(e->arena, "%s)", s);
}

/* ---- scopes ------------------------------------------------------------- */

Binding *scope_find(Scope *s, const char *name) {
    for (; s; s = s->parent)
        for (Binding *b = s->head; b; b = b->next)
            if (strcmp(b->name, name) == 0) return b;
    return NULL;
}

void scope_bind(Elab *e, Scope *s, const char *name, SrcLoc loc, Value v, bool is_arg) {
    Binding *b = arena_alloc(e->arena, sizeof *b);
    *b = (Binding){.name = name, .loc = loc, .val = v, .is_arg = is_arg, .next = s->head};
    s->head = b;
}

static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 63 || lb > 63) return 99;
    int row[64];
    for (int j = 0; j <= lb; j++) row[j] = j;
    for (int i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = i;
        for (int j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *suggest_name(Elab *e, Scope *s, const char *name) {
    (void)e;
    int limit = (int)strlen(name) / 3;
    if (limit < 1) limit = 1;
    if (limit > 3) limit = 3;
    const char *best = NULL;
    int best_d = limit + 1;
    for (; s; s = s->parent)
        for (Binding *b = s->head; b; b = b->next) {
            int d = edit_distance(name, b->name);
            if (d < best_d) best_d = d, best = b->name;
        }
    for (const char *const *bn = builtin_names(); *bn; bn++) {
        int d = edit_distance(name, *bn);
        if (d < best_d) best_d = d, best = *bn;
    }
    return best;
}

static const char *did_you_mean(Elab *e, Scope *s, const char *name) {
    const char *sug = suggest_name(e, s, name);
    return sug ? arena_printf(e->arena, " (did you mean '%s'?)", sug) : "";
}

/* ---- conversions -------------------------------------------------------- */

bool value_number(Elab *e, const Value *v, const char *what, double *out) {
    if (v->kind == V_NUM) {
        *out = v->num;
        return true;
    }
    if (v->kind == V_TENSOR || v->kind == V_PARAM)
        return diag_error(e->diag, v->loc, "%s must be a compile-time number, got %s", what, value_describe(e, v));
    return diag_error(e->diag, v->loc, "%s must be a number, got %s", what, value_describe(e, v));
}

bool value_int(Elab *e, const Value *v, const char *what, int64_t *out) {
    double x = 0;
    if (!value_number(e, v, what, &x)) return false;
    if (!v->is_int) return diag_error(e->diag, v->loc, "%s must be an integer, got %s", what, value_describe(e, v));
    *out = (int64_t)x;
    return true;
}

bool value_bool(Elab *e, const Value *v, const char *what, bool *out) {
    if (v->kind == V_BOOL) {
        *out = v->b;
        return true;
    }
    if (v->kind == V_TENSOR)
        return diag_error(e->diag, v->loc, "%s must be a compile-time bool, got %s (use where() to select elementwise)",
                          what, value_describe(e, v));
    return diag_error(e->diag, v->loc, "%s must be a bool, got %s", what, value_describe(e, v));
}

bool add_op(Elab *e, OpKind op, const int *ins, int n_in, const NodeAttrs *attrs, SrcLoc loc, Value *out) {
    int id = graph_add_op(e->graph, op, ins, n_in, attrs, loc, e->diag);
    if (id < 0) return false;
    *out = (Value){.kind = V_TENSOR, .id = id, .loc = loc};
    return true;
}

bool value_tensor(Elab *e, const Value *v, DType like, const char *what, int *id) {
    if (v->kind == V_TENSOR) {
        *id = v->id;
        return true;
    }
    if (v->kind == V_NUM || v->kind == V_BOOL) {
        double x = v->kind == V_BOOL ? (double)v->b : v->num;
        if (v->kind == V_NUM && !dtype_is_float(like) && x != floor(x))
            return diag_error(e->diag, v->loc, "cannot combine %s %s tensor with the non-integer %s; cast the tensor to f32 first",
                              like == DT_I32 || like == DT_I64 ? "an" : "a", dtype_name(like), fmt_num(e, x, false));
        NodeAttrs a = {.value = x, .dtype = like, .shape = {.rank = 0}};
        Value t;
        if (!add_op(e, OP_CONST, NULL, 0, &a, v->loc, &t)) return false;
        *id = t.id;
        return true;
    }
    return diag_error(e->diag, v->loc, "%s needs a tensor or a number, got %s", what, value_describe(e, v));
}

bool need_tensor(Elab *e, const Value *v, const char *what, int *id) {
    if (v->kind == V_TENSOR) {
        *id = v->id;
        return true;
    }
    return diag_error(e->diag, v->loc, "%s needs a tensor, got %s", what, value_describe(e, v));
}

/* ---- operators ---------------------------------------------------------- */

static const char *op_spelling(TokKind op) {
    switch (op) {
    case TK_PLUS: return "+";
    case TK_MINUS: return "-";
    case TK_STAR: return "*";
    case TK_SLASH: return "/";
    case TK_PERCENT: return "%";
    case TK_STARSTAR: return "**";
    case TK_AT: return "@";
    case TK_LT: return "<";
    case TK_LE: return "<=";
    case TK_GT: return ">";
    case TK_GE: return ">=";
    case TK_EQEQ: return "==";
    case TK_NE: return "!=";
    case TK_AND: return "and";
    case TK_OR: return "or";
    case TK_NOT: return "not";
    default: return "?";
    }
}

static OpKind tensor_op(TokKind op) {
    switch (op) {
    case TK_PLUS: return OP_ADD;
    case TK_MINUS: return OP_SUB;
    case TK_STAR: return OP_MUL;
    case TK_SLASH: return OP_DIV;
    case TK_STARSTAR: return OP_POW;
    case TK_AT: return OP_MATMUL;
    case TK_LT: return OP_LT;
    case TK_LE: return OP_LE;
    case TK_GT: return OP_GT;
    case TK_GE: return OP_GE;
    case TK_EQEQ: return OP_EQ;
    case TK_NE: return OP_NE;
    default: return OP_COUNT;
    }
}

/* A folded number: finite, and integers exact (|x| < 2^53: a sum or product that reaches 2^53 may have been rounded). */
static bool fold_result(Elab *e, double x, bool is_int, SrcLoc loc, const char *what, Value *out) {
    if (!isfinite(x)) return diag_error(e->diag, loc, "%s is not a finite number in a constant expression", what);
    if (is_int && fabs(x) >= 9007199254740992.0) /* a rounded result lands on 2^53 or beyond */
        return diag_error(e->diag, loc, "integer overflow in constant expression (%s)", what);
    *out = value_num(x, is_int, loc);
    return true;
}

static bool fold_binary(Elab *e, TokKind op, const Value *a, const Value *b, SrcLoc loc, Value *out) {
    if (op == TK_EQEQ || op == TK_NE) {
        bool eq;
        if (a->kind == V_BOOL && b->kind == V_BOOL) eq = a->b == b->b;
        else if (a->kind == V_NUM && b->kind == V_NUM) eq = a->num == b->num;
        else if (a->kind == V_DTYPE && b->kind == V_DTYPE) eq = a->dtype == b->dtype;
        else
            return diag_error(e->diag, loc, "cannot compare %s with %s", value_describe(e, a), value_describe(e, b));
        *out = (Value){.kind = V_BOOL, .b = (op == TK_EQEQ) == eq, .loc = loc};
        return true;
    }
    const Value *bad = a->kind != V_NUM ? a : b->kind != V_NUM ? b : NULL;
    if (bad)
        return diag_error(e->diag, loc, "operator '%s' needs numbers or tensors, got %s", op_spelling(op),
                          value_describe(e, bad));
    double x = a->num, y = b->num;
    bool both_int = a->is_int && b->is_int;
    const char *what = arena_printf(e->arena, "%s %s %s", fmt_num(e, x, a->is_int), op_spelling(op),
                                    fmt_num(e, y, b->is_int));
    switch (op) {
    case TK_PLUS: return fold_result(e, x + y, both_int, loc, what, out);
    case TK_MINUS: return fold_result(e, x - y, both_int, loc, what, out);
    case TK_STAR: return fold_result(e, x * y, both_int, loc, what, out);
    case TK_SLASH: /* integers that divide exactly stay integers: f32[B, H / 2] */
        if (y == 0) return diag_error(e->diag, loc, "division by zero in constant expression (%s)", what);
        return fold_result(e, x / y, both_int && fmod(x, y) == 0, loc, what, out);
    case TK_PERCENT:
        if (y == 0) return diag_error(e->diag, loc, "division by zero in constant expression (%s)", what);
        return fold_result(e, x - y * floor(x / y), both_int, loc, what, out);
    case TK_STARSTAR:
        if (x == 0 && y < 0) return diag_error(e->diag, loc, "division by zero in constant expression (%s)", what);
        return fold_result(e, pow(x, y), both_int && y >= 0, loc, what, out);
    case TK_LT: *out = (Value){.kind = V_BOOL, .b = x < y, .loc = loc}; return true;
    case TK_LE: *out = (Value){.kind = V_BOOL, .b = x <= y, .loc = loc}; return true;
    case TK_GT: *out = (Value){.kind = V_BOOL, .b = x > y, .loc = loc}; return true;
    case TK_GE: *out = (Value){.kind = V_BOOL, .b = x >= y, .loc = loc}; return true;
    case TK_AT:
        return diag_error(e->diag, loc, "operator '@' needs tensors, got %s and %s", value_describe(e, a),
                          value_describe(e, b));
    default: break;
    }
    return diag_error(e->diag, loc, "operator '%s' is not defined here", op_spelling(op));
}

static bool is_scalar_const(const Value *v) { return v->kind == V_NUM || v->kind == V_BOOL; }

bool eval_binary_op(Elab *e, TokKind op, const Value *a, const Value *b, SrcLoc loc, Value *out) {
    if ((is_scalar_const(a) || a->kind == V_DTYPE) && (is_scalar_const(b) || b->kind == V_DTYPE))
        return fold_binary(e, op, a, b, loc, out);
    OpKind k = tensor_op(op);
    if (k == OP_COUNT)
        return diag_error(e->diag, loc, "operator '%s' is only defined for compile-time numbers, got %s and %s",
                          op_spelling(op), value_describe(e, a), value_describe(e, b));
    const Value *bad = (a->kind != V_TENSOR && !is_scalar_const(a)) ? a
                       : (b->kind != V_TENSOR && !is_scalar_const(b)) ? b
                                                                        : NULL;
    if (bad)
        return diag_error(e->diag, bad->loc, "operator '%s' needs tensors or numbers, got %s", op_spelling(op),
                          value_describe(e, bad));
    if (k == OP_MATMUL && (a->kind != V_TENSOR || b->kind != V_TENSOR))
        return diag_error(e->diag, loc, "operator '@' needs tensors, got %s and %s", value_describe(e, a),
                          value_describe(e, b));
    /* a number takes the dtype of the tensor it meets */
    DType like = a->kind == V_TENSOR ? e->graph->nodes[a->id].dtype : e->graph->nodes[b->id].dtype;
    int ins[2];
    const char *what = arena_printf(e->arena, "operator '%s'", op_spelling(op));
    if (!value_tensor(e, a, like, what, &ins[0]) || !value_tensor(e, b, like, what, &ins[1])) return false;
    return add_op(e, k, ins, 2, NULL, loc, out);
}

static bool eval_unary(Elab *e, Scope *s, const Expr *x, Value *out) {
    Value v;
    if (!eval_expr(e, s, x->lhs, &v)) return false;
    if (x->op == TK_NOT) {
        bool b = false;
        if (!value_bool(e, &v, "the operand of 'not'", &b)) return false;
        *out = (Value){.kind = V_BOOL, .b = !b, .loc = x->loc};
        return true;
    }
    if (v.kind == V_NUM) {
        *out = value_num(x->op == TK_MINUS ? -v.num : v.num, v.is_int, x->loc);
        return true;
    }
    if (v.kind != V_TENSOR)
        return diag_error(e->diag, x->loc, "unary '%s' needs a number or a tensor, got %s", op_spelling(x->op),
                          value_describe(e, &v));
    if (x->op == TK_PLUS) {
        *out = v;
        return true;
    }
    return add_op(e, OP_NEG, &v.id, 1, NULL, x->loc, out);
}

static bool eval_binary(Elab *e, Scope *s, const Expr *x, Value *out) {
    Value a, b;
    if (!eval_expr(e, s, x->lhs, &a)) return false;
    if (x->op == TK_AND || x->op == TK_OR) {
        bool ab = false, bb = false;
        const char *what = arena_printf(e->arena, "the left operand of '%s'", op_spelling(x->op));
        if (!value_bool(e, &a, what, &ab)) return false;
        if (ab == (x->op == TK_OR)) { /* short-circuit, as in Python */
            *out = (Value){.kind = V_BOOL, .b = ab, .loc = x->loc};
            return true;
        }
        if (!eval_expr(e, s, x->rhs, &b)) return false;
        what = arena_printf(e->arena, "the right operand of '%s'", op_spelling(x->op));
        if (!value_bool(e, &b, what, &bb)) return false;
        *out = (Value){.kind = V_BOOL, .b = bb, .loc = x->loc};
        return true;
    }
    if (!eval_expr(e, s, x->rhs, &b)) return false;
    return eval_binary_op(e, x->op, &a, &b, x->loc, out);
}

/* ---- names, members, lists ---------------------------------------------- */

/* A bound value as seen from an expression: params read as their tensor once
 * they are in the graph; before that (while modules are being built) they
 * are not compile-time values. */
static bool read_binding(Elab *e, const Binding *b, SrcLoc loc, Value *out) {
    *out = b->val;
    out->loc = loc;
    if (b->val.kind == V_PARAM) {
        if (b->val.param->id < 0)
            return diag_error(e->diag, loc, "param '%s' is a tensor; a compile-time constant is needed here",
                              b->name);
        *out = (Value){.kind = V_TENSOR, .id = b->val.param->id, .loc = loc};
    }
    return true;
}

/* A dtype as other languages spell it (float32, double, f16, uint8, ...):
 * an unknown name that is one gets etch's dtypes listed. */
static bool looks_like_dtype(const char *name) {
    static const char *const words[] = {"double", "half", "long", "short"};
    static const char *const prefixes[] = {"float", "int", "uint", "bfloat", "complex", "bf", "f", "i", "u"};
    static const char *const widths[] = {"8", "16", "32", "64", "128"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcmp(name, words[i]) == 0) return true;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        size_t n = strlen(prefixes[i]);
        if (strncmp(name, prefixes[i], n) != 0) continue;
        for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++)
            if (strcmp(name + n, widths[w]) == 0) return true;
    }
    return false;
}

static bool eval_name(Elab *e, Scope *s, const Expr *x, Value *out) {
    Binding *b = scope_find(s, x->name);
    if (b) return read_binding(e, b, x->loc, out);
    if (strcmp(x->name, "float") == 0 || strcmp(x->name, "int") == 0) /* cast(x, float), x.to(int) */
        return diag_error(e->diag, x->loc,
                          "'%s' is a builtin function, not a dtype: call it as %s(x) to convert a number, or name "
                          "a dtype: %s",
                          x->name, x->name, DTYPE_NAMES);
    if (builtin_exists(x->name))
        return diag_error(e->diag, x->loc, "'%s' is a builtin function; call it, e.g. %s(x)", x->name, x->name);
    if (strcmp(x->name, "self") == 0)
        return diag_error(e->diag, x->loc, "there is no 'self': refer to members by name (fc1, weight)");
    if (looks_like_dtype(x->name))
        return diag_error(e->diag, x->loc, "unknown name '%s' (the dtypes are %s)", x->name, DTYPE_NAMES);
    return diag_error(e->diag, x->loc, "unknown name '%s'%s", x->name, did_you_mean(e, s, x->name));
}

static Binding *instance_member(Instance *inst, const char *name) {
    for (Binding *b = inst->scope.head; b; b = b->next)
        if (strcmp(b->name, name) == 0) return b;
    return NULL;
}

static bool eval_member(Elab *e, Scope *s, const Expr *x, Value *out) {
    Value v;
    if (!eval_expr(e, s, x->lhs, &v)) return false;
    if (v.kind == V_INSTANCE) {
        Binding *b = instance_member(v.inst, x->name);
        if (!b)
            return diag_error(e->diag, x->loc, "%s has no member '%s'", value_describe(e, &v), x->name);
        return read_binding(e, b, x->loc, out);
    }
    if (v.kind == V_TENSOR) {
        const Node *n = &e->graph->nodes[v.id];
        if (strcmp(x->name, "shape") == 0) {
            Value *items = arena_alloc(e->arena, sizeof(Value) * (size_t)(n->shape.rank ? n->shape.rank : 1));
            for (int i = 0; i < n->shape.rank; i++) items[i] = value_num((double)n->shape.dim[i], true, x->loc);
            *out = (Value){.kind = V_LIST, .items = items, .n_items = n->shape.rank, .loc = x->loc};
            return true;
        }
        if (strcmp(x->name, "ndim") == 0) {
            *out = value_num(n->shape.rank, true, x->loc);
            return true;
        }
        if (strcmp(x->name, "dtype") == 0) {
            *out = (Value){.kind = V_DTYPE, .dtype = n->dtype, .loc = x->loc};
            return true;
        }
        return diag_error(e->diag, x->loc, "a tensor has no member '%s' (tensors have .shape, .ndim and .dtype)",
                          x->name);
    }
    return diag_error(e->diag, x->loc, "%s has no member '%s'", value_describe(e, &v), x->name);
}

static bool eval_list(Elab *e, Scope *s, const Expr *x, Value *out) {
    Value *items = arena_alloc(e->arena, sizeof(Value) * (size_t)(x->n_items ? x->n_items : 1));
    for (int i = 0; i < x->n_items; i++) {
        if (!eval_expr(e, s, x->items[i], &items[i])) return false;
        if (items[i].kind != V_NUM && items[i].kind != V_BOOL)
            return diag_error(e->diag, items[i].loc, "list elements must be compile-time numbers, got %s",
                              value_describe(e, &items[i]));
    }
    *out = (Value){.kind = V_LIST, .items = items, .n_items = x->n_items, .loc = x->loc};
    return true;
}

/* ---- calls -------------------------------------------------------------- */

bool eval_args(Elab *e, Scope *s, const Expr *call, const Value *self, CallArgs *ca) {
    int n = call->n_args + (self ? 1 : 0), k = 0;
    ca->n = n;
    ca->vals = arena_alloc(e->arena, sizeof(Value) * (size_t)(n ? n : 1));
    ca->names = arena_alloc(e->arena, sizeof(char *) * (size_t)(n ? n : 1));
    ca->locs = arena_alloc(e->arena, sizeof(SrcLoc) * (size_t)(n ? n : 1));
    if (self) {
        ca->vals[0] = *self;
        ca->locs[0] = self->loc;
        k = 1;
    }
    for (int i = 0; i < call->n_args; i++, k++) {
        if (!eval_expr(e, s, call->args[i].value, &ca->vals[k])) return false;
        ca->names[k] = call->args[i].name;
        ca->locs[k] = call->args[i].name ? call->args[i].name_loc : call->args[i].value->loc;
    }
    return true;
}

static bool eval_call(Elab *e, Scope *s, const Expr *x, Value *out) {
    const Expr *callee = x->callee;
    CallArgs ca;
    if (callee->kind == EX_NAME) {
        Binding *b = scope_find(s, callee->name);
        if (!b) {
            if (!builtin_exists(callee->name)) {
                if (strcmp(callee->name, "uniform") == 0 || strcmp(callee->name, "normal") == 0 ||
                    strcmp(callee->name, "zeros") == 0 || strcmp(callee->name, "ones") == 0 ||
                    strcmp(callee->name, "full") == 0)
                    return diag_error(e->diag, x->loc, "%s() is a param initializer; it is only allowed after "
                                                       "'param name: type ='",
                                      callee->name);
                return diag_error(e->diag, x->loc, "unknown name '%s'%s", callee->name,
                                  did_you_mean(e, s, callee->name));
            }
            bool found;
            if (!eval_args(e, s, x, NULL, &ca)) return false;
            return builtin_call(e, callee->name, x->loc, &ca, out, &found);
        }
        Value f;
        if (!read_binding(e, b, callee->loc, &f)) return false;
        if (f.kind == V_FN) {
            if (!eval_args(e, s, x, NULL, &ca)) return false;
            const char *display = f.inst ? arena_printf(e->arena, "%s.%s()", f.inst->decl->name, f.fn->name)
                                         : arena_printf(e->arena, "%s()", f.fn->name);
            return call_fn(e, &f, display, x->loc, &ca, out);
        }
        if (f.kind == V_INSTANCE) {
            if (!eval_args(e, s, x, NULL, &ca)) return false;
            return call_instance(e, f.inst, x->loc, &ca, out);
        }
        if (f.kind == V_MODULE)
            return diag_error(e->diag, x->loc,
                              "%s cannot be called here; instantiate it in a module body ('name = %s(...)') and "
                              "call the instance",
                              value_describe(e, &f), f.module->name);
        return diag_error(e->diag, x->loc, "'%s' is not callable: it is %s", callee->name, value_describe(e, &f));
    }
    if (callee->kind == EX_INDEX) { /* blocks[0](h) */
        Value f;
        if (!eval_expr(e, s, callee, &f)) return false;
        if (f.kind != V_INSTANCE)
            return diag_error(e->diag, x->loc, "this item is not callable: it is %s", value_describe(e, &f));
        if (!eval_args(e, s, x, NULL, &ca)) return false;
        return call_instance(e, f.inst, x->loc, &ca, out);
    }
    /* receiver.name(args) */
    Value self;
    if (!eval_expr(e, s, callee->lhs, &self)) return false;
    if (self.kind == V_INSTANCE) {
        Binding *b = instance_member(self.inst, callee->name);
        if (!b) return diag_error(e->diag, x->loc, "%s has no member '%s'", value_describe(e, &self), callee->name);
        Value f;
        if (!read_binding(e, b, x->loc, &f)) return false;
        if (!eval_args(e, s, x, NULL, &ca)) return false;
        if (f.kind == V_FN)
            return call_fn(e, &f, arena_printf(e->arena, "%s.%s()", self.inst->decl->name, f.fn->name), x->loc, &ca,
                           out);
        if (f.kind == V_INSTANCE) return call_instance(e, f.inst, x->loc, &ca, out);
        return diag_error(e->diag, x->loc, "'%s' is not callable: it is %s", callee->name, value_describe(e, &f));
    }
    if (self.kind == V_TENSOR) {
        const char *name = strcmp(callee->name, "to") == 0 ? "cast" : callee->name;
        if (!builtin_exists(name) || strcmp(name, "int") == 0 || strcmp(name, "float") == 0)
            return diag_error(e->diag, x->loc, "a tensor has no method '%s'", callee->name);
        bool found;
        if (!eval_args(e, s, x, &self, &ca)) return false;
        return builtin_call(e, name, x->loc, &ca, out, &found);
    }
    return diag_error(e->diag, x->loc, "%s has no method '%s'", value_describe(e, &self), callee->name);
}

bool elab_enter(Elab *e, SrcLoc loc) {
    if (e->eval_depth >= ELAB_MAX_EVAL_DEPTH)
        return diag_error(e->diag, loc,
                          "evaluation nested too deeply: more than %d levels of expressions and blocks across calls",
                          ELAB_MAX_EVAL_DEPTH);
    e->eval_depth++;
    return true;
}

static bool eval_expr_kind(Elab *e, Scope *s, const Expr *x, Value *out) {
    switch (x->kind) {
    case EX_NUM: *out = value_num(x->num, x->is_int, x->loc); return true;
    case EX_BOOL: *out = (Value){.kind = V_BOOL, .b = x->bval, .loc = x->loc}; return true;
    case EX_DTYPE: *out = (Value){.kind = V_DTYPE, .dtype = x->dtype, .loc = x->loc}; return true;
    case EX_NAME: return eval_name(e, s, x, out);
    case EX_LIST: return eval_list(e, s, x, out);
    case EX_UNARY: return eval_unary(e, s, x, out);
    case EX_BINARY: return eval_binary(e, s, x, out);
    case EX_CALL: return eval_call(e, s, x, out);
    case EX_MEMBER: return eval_member(e, s, x, out);
    case EX_INDEX: return eval_index(e, s, x, out);
    case EX_SLICE:
    case EX_ELLIPSIS: break; /* only inside an EX_INDEX (index.c) */
    }
    return diag_error(e->diag, x->loc, "unsupported expression");
}

bool eval_expr(Elab *e, Scope *s, const Expr *x, Value *out) {
    if (!elab_enter(e, x->loc)) return false;
    bool ok = eval_expr_kind(e, s, x, out);
    e->eval_depth--;
    return ok;
}
