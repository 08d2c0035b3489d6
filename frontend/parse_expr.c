/* parse_expr.c: the parser's expression rules, from `expr` (or) down to
 * `primary`, one function per precedence level, plus tensor types
 * (f32[64, 784]); each function is headed by its grammar rule (docs/dsl.md). */
#include <string.h>

#include "frontend/parse.h"

/* ---- expressions -------------------------------------------------------- */

/* args = arg { "," arg } [","] ;  arg = [ IDENT "=" ] expr ;   ("(" already consumed) */
static bool parse_args(Parser *P, const Token *open, Arg **out, int *n_out) {
    Arg *args = NULL;
    int n = 0, cap = 0;
    bool seen_kw = false;
    while (!at(P, TK_RPAREN)) {
        Arg a = {0};
        if (at(P, TK_IDENT) && peek_at(P, 1)->kind == TK_ASSIGN) {
            Token *name = next(P);
            next(P);
            a.name = tok_name(P, name);
            a.name_loc = name->loc;
            seen_kw = true;
        } else if (seen_kw) {
            return diag_error(P->diag, peek(P)->loc, "positional argument follows keyword argument");
        }
        if (!(a.value = parse_expr(P))) return false;
        if (!a.name) a.name_loc = a.value->loc;
        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            Arg *b = arena_alloc(P->arena, sizeof(Arg) * (size_t)cap);
            if (n) memcpy(b, args, sizeof(Arg) * (size_t)n);
            args = b;
        }
        args[n++] = a;
        if (!accept(P, TK_COMMA)) break;
    }
    if (!expect_close(P, TK_RPAREN, open)) return false;
    *out = args;
    *n_out = n;
    return true;
}

/* list = "[" [ expr { "," expr } [","] ] "]" ;   ("[" already consumed) */
static Expr *parse_list(Parser *P, const Token *open) {
    Expr *e = new_expr(P, EX_LIST, open->loc);
    int cap = 0;
    while (!at(P, TK_RBRACKET)) {
        Expr *item = parse_expr(P);
        if (!item) return NULL;
        e->items = push_ptr(P, e->items, &e->n_items, &cap, item);
        if (!accept(P, TK_COMMA)) break;
    }
    if (!expect_close(P, TK_RBRACKET, open)) return NULL;
    return expr_finish(P, e);
}

/* primary = INT | FLOAT | "true" | "false" | IDENT | DTYPE | "(" expr ")" | list ; */
static Expr *parse_primary(Parser *P) {
    Token *t = peek(P);
    switch (t->kind) {
    case TK_INT:
    case TK_FLOAT: {
        next(P);
        Expr *e = new_expr(P, EX_NUM, t->loc);
        e->num = t->num;
        e->is_int = t->kind == TK_INT;
        return e;
    }
    case TK_TRUE:
    case TK_FALSE: {
        next(P);
        Expr *e = new_expr(P, EX_BOOL, t->loc);
        e->bval = t->kind == TK_TRUE;
        return e;
    }
    case TK_IDENT: {
        next(P);
        Expr *e = new_expr(P, EX_NAME, t->loc);
        e->name = tok_name(P, t);
        return e;
    }
    case TK_DTYPE: {
        next(P);
        Expr *e = new_expr(P, EX_DTYPE, t->loc);
        e->dtype = t->dtype;
        return e;
    }
    case TK_LPAREN: {
        next(P);
        Expr *e = parse_expr(P);
        if (!e) return NULL;
        if (at(P, TK_COMMA)) {
            diag_error(P->diag, peek(P)->loc, "tuples are not values; use a list [a, b] or 'return a, b'");
            return NULL;
        }
        if (!expect_close(P, TK_RPAREN, t)) return NULL;
        return e;
    }
    case TK_LBRACKET: next(P); return parse_list(P, t);
    default:
        diag_error(P->diag, t->loc, "expected an expression, found %s", tok_found(P, t));
        return NULL;
    }
}

/* subscript = "..." | [ expr ] ":" [ expr ] [ ":" [ expr ] ] | expr ; */
static Expr *parse_subscript(Parser *P) {
    Token *t = peek(P);
    if (t->kind == TK_ELLIPSIS) {
        next(P);
        return new_expr(P, EX_ELLIPSIS, t->loc);
    }
    Expr *start = NULL;
    if (t->kind != TK_COLON && !(start = parse_expr(P))) return NULL;
    if (!at(P, TK_COLON)) return start;
    Expr *sl = new_expr(P, EX_SLICE, start ? start->loc : t->loc);
    sl->lhs = start;
    next(P);
    for (int part = 0; part < 2; part++) { /* stop, then ':' step */
        if (part == 1 && !accept(P, TK_COLON)) break;
        if (at(P, TK_COMMA) || at(P, TK_RBRACKET) || at(P, TK_COLON)) continue;
        Expr *v = parse_expr(P);
        if (!v) return NULL;
        if (part == 0) sl->rhs = v;
        else sl->step = v;
    }
    return expr_finish(P, sl);
}

/* index = "[" subscript { "," subscript } [","] "]" ;   ("[" already consumed) */
static Expr *parse_index(Parser *P, const Token *open, Expr *base) {
    Expr *ix = new_expr(P, EX_INDEX, open->loc);
    ix->lhs = base;
    int cap = 0;
    do {
        if (at(P, TK_RBRACKET) && ix->n_items) break;
        Expr *sub = parse_subscript(P);
        if (!sub) return NULL;
        ix->items = push_ptr(P, ix->items, &ix->n_items, &cap, sub);
    } while (accept(P, TK_COMMA));
    if (!expect_close(P, TK_RBRACKET, open)) return NULL;
    return expr_finish(P, ix);
}

/* postfix = primary { "(" [ args ] ")" | "." IDENT | index } ;  (a call's callee: a name, member or item) */
static Expr *parse_postfix(Parser *P) {
    Expr *e = parse_primary(P);
    while (e) {
        Token *t = peek(P);
        if (t->kind == TK_LPAREN) {
            next(P);
            if (e->kind != EX_NAME && e->kind != EX_MEMBER && e->kind != EX_INDEX)
                return diag_error(P->diag, t->loc, "only names, members and list items (f, m.f, blocks[0]) can be called"), NULL;
            Expr *c = new_expr(P, EX_CALL, e->loc);
            c->callee = e;
            c->name = e->name;
            if (!parse_args(P, t, &c->args, &c->n_args)) return NULL;
            e = expr_finish(P, c);
        } else if (t->kind == TK_DOT) {
            next(P);
            Token *name = expect(P, TK_IDENT, "after '.'");
            if (!name) return NULL;
            Expr *m = new_expr(P, EX_MEMBER, name->loc);
            m->lhs = e;
            m->name = tok_name(P, name);
            e = expr_finish(P, m);
        } else if (t->kind == TK_LBRACKET) {
            next(P);
            e = parse_index(P, t, e);
        } else {
            break;
        }
    }
    return e;
}

static Expr *parse_unary(Parser *P);

static Expr *new_binary(Parser *P, const Token *op, Expr *lhs, Expr *rhs) {
    Expr *e = new_expr(P, EX_BINARY, op->loc);
    e->op = op->kind;
    e->lhs = lhs;
    e->rhs = rhs;
    return expr_finish(P, e);
}

/* power = postfix [ "**" unary ] ;   (right-associative, binds tighter than unary minus on its left) */
static Expr *parse_power(Parser *P) {
    Expr *e = parse_postfix(P);
    if (!e || !at(P, TK_STARSTAR)) return e;
    Token *op = next(P);
    if (!parse_enter(P, "expression")) return NULL;
    Expr *rhs = parse_unary(P);
    P->depth--;
    return rhs ? new_binary(P, op, e, rhs) : NULL;
}

/* unary = ("-" | "+") unary | power ; */
static Expr *parse_unary(Parser *P) {
    if (at(P, TK_MINUS) || at(P, TK_PLUS)) {
        Token *op = next(P);
        if (!parse_enter(P, "expression")) return NULL;
        Expr *x = parse_unary(P);
        P->depth--;
        if (!x) return NULL;
        Expr *e = new_expr(P, EX_UNARY, op->loc);
        e->op = op->kind;
        e->lhs = x;
        return expr_finish(P, e);
    }
    return parse_power(P);
}

/* term = unary { ("*" | "/" | "%" | "@") unary } ; */
static Expr *parse_term(Parser *P) {
    Expr *e = parse_unary(P);
    while (e && (at(P, TK_STAR) || at(P, TK_SLASH) || at(P, TK_PERCENT) || at(P, TK_AT))) {
        Token *op = next(P);
        Expr *rhs = parse_unary(P);
        e = rhs ? new_binary(P, op, e, rhs) : NULL;
    }
    return e;
}

/* sum = term { ("+" | "-") term } ; */
static Expr *parse_sum(Parser *P) {
    Expr *e = parse_term(P);
    while (e && (at(P, TK_PLUS) || at(P, TK_MINUS))) {
        Token *op = next(P);
        Expr *rhs = parse_term(P);
        e = rhs ? new_binary(P, op, e, rhs) : NULL;
    }
    return e;
}

static bool is_compare(TokKind k) {
    return k == TK_LT || k == TK_LE || k == TK_GT || k == TK_GE || k == TK_EQEQ || k == TK_NE;
}

/* comparison = sum [ ("<" | "<=" | ">" | ">=" | "==" | "!=") sum ] ;   (no chaining) */
static Expr *parse_comparison(Parser *P) {
    Expr *e = parse_sum(P);
    if (!e || !is_compare(peek(P)->kind)) return e;
    Token *op = next(P);
    Expr *rhs = parse_sum(P);
    if (!rhs) return NULL;
    if (is_compare(peek(P)->kind)) {
        diag_error(P->diag, peek(P)->loc, "comparisons cannot be chained; combine them with 'and'");
        return NULL;
    }
    return new_binary(P, op, e, rhs);
}

/* not_expr = "not" not_expr | comparison ; */
static Expr *parse_not(Parser *P) {
    if (!at(P, TK_NOT)) return parse_comparison(P);
    Token *op = next(P);
    if (!parse_enter(P, "expression")) return NULL;
    Expr *x = parse_not(P);
    P->depth--;
    if (!x) return NULL;
    Expr *e = new_expr(P, EX_UNARY, op->loc);
    e->op = TK_NOT;
    e->lhs = x;
    return expr_finish(P, e);
}

/* and_expr = not_expr { "and" not_expr } ; */
static Expr *parse_and(Parser *P) {
    Expr *e = parse_not(P);
    while (e && at(P, TK_AND)) {
        Token *op = next(P);
        Expr *rhs = parse_not(P);
        e = rhs ? new_binary(P, op, e, rhs) : NULL;
    }
    return e;
}

/* expr = and_expr { "or" and_expr } ;   (every nested expression enters a level) */
Expr *parse_expr(Parser *P) {
    if (!parse_enter(P, "expression")) return NULL;
    Expr *e = parse_and(P);
    while (e && at(P, TK_OR)) {
        Token *op = next(P);
        Expr *rhs = parse_and(P);
        e = rhs ? new_binary(P, op, e, rhs) : NULL;
    }
    P->depth--;
    return e;
}

/* ---- types -------------------------------------------------------------- */

/* type = ( DTYPE | IDENT ) [ "[" [ expr { "," expr } [","] ] "]" ] ; */
TypeExpr *parse_type(Parser *P) {
    Token *t = peek(P);
    if (t->kind != TK_DTYPE && t->kind != TK_IDENT) {
        diag_error(P->diag, t->loc, "expected a tensor type such as f32[64, 784], found %s", tok_found(P, t));
        return NULL;
    }
    next(P);
    TypeExpr *ty = arena_alloc(P->arena, sizeof *ty);
    ty->loc = t->loc;
    if (t->kind == TK_DTYPE) {
        ty->has_dtype = true;
        ty->dtype = t->dtype;
    } else {
        ty->dtype_name = tok_name(P, t);
    }
    if (!at(P, TK_LBRACKET)) return ty;
    Token *open = next(P);
    int cap = 0;
    while (!at(P, TK_RBRACKET)) {
        Expr *d = parse_expr(P);
        if (!d) return NULL;
        ty->dims = push_ptr(P, ty->dims, &ty->n_dims, &cap, d);
        if (!accept(P, TK_COMMA)) break;
    }
    if (!expect_close(P, TK_RBRACKET, open)) return NULL;
    if (ty->n_dims > ETCH_MAX_RANK) {
        diag_error(P->diag, ty->loc, "tensor type has %d dimensions; at most %d are supported", ty->n_dims,
                   ETCH_MAX_RANK);
        return NULL;
    }
    return ty;
}
