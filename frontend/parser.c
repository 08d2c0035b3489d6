/* parser.c: tokens -> syntax tree for the etch DSL (recursive descent).
 *
 * One function per grammar rule, each headed by its rule (docs/dsl.md has the
 * whole grammar). The language is free-form: statements need no terminator
 * because every statement and member starts with a keyword or `name =`, and
 * no expression can continue with a name; an optional ';' may still separate
 * them. The parser stops at the first error: every function returns NULL (or
 * false) after reporting it, and callers pass that straight up. Semantic
 * checks (names, types, values) wait for the elaborator; the parser only
 * rejects what is ill-formed on its face (e.g. a parameter listed twice). */
#include <stdio.h>
#include <string.h>

#include "frontend/ast.h"

typedef struct Parser {
    Arena *arena;
    Diag *diag;
    Token *toks;
    int pos;
    int depth; /* nesting of the rules being parsed (see parse_enter) */
} Parser;

/* ---- token helpers ------------------------------------------------------ */

static Token *peek(Parser *P) { return &P->toks[P->pos]; }
static Token *peek_at(Parser *P, int k) {
    Token *t = &P->toks[P->pos];
    for (int i = 0; i < k && t->kind != TK_EOF; i++) t++;
    return t;
}
static bool at(Parser *P, TokKind k) { return peek(P)->kind == k; }
static Token *next(Parser *P) {
    Token *t = &P->toks[P->pos];
    if (t->kind != TK_EOF) P->pos++;
    return t;
}
static bool accept(Parser *P, TokKind k) {
    if (!at(P, k)) return false;
    next(P);
    return true;
}

/* "'let'", "'3.5'", "end of file": what the parser found instead. */
static const char *tok_found(Parser *P, const Token *t) {
    if (t->kind == TK_EOF) return "end of file";
    return arena_printf(P->arena, "'%.*s'", t->len, t->text); /* names are at most 255 bytes, numbers 127 */
}

/* Reports "expected K WHAT, found T" at the current token. */
static Token *expect(Parser *P, TokKind k, const char *what) {
    if (at(P, k)) return next(P);
    diag_error(P->diag, peek(P)->loc, "expected %s%s%s, found %s", tok_kind_str(k), what[0] ? " " : "", what,
               tok_found(P, peek(P)));
    return NULL;
}

/* A closing bracket: "expected ')' to close '(' at 3:14, found 'let'". */
static Token *expect_close(Parser *P, TokKind k, const Token *open) {
    if (at(P, k)) return next(P);
    diag_error(P->diag, peek(P)->loc, "expected %s to close %s at %d:%d, found %s", tok_kind_str(k),
               tok_kind_str(open->kind), open->loc.line, open->loc.col, tok_found(P, peek(P)));
    return NULL;
}

/* Just after the previous token: where something missing should have been. */
static SrcLoc prev_end(Parser *P) {
    if (P->pos == 0) return peek(P)->loc;
    const Token *t = &P->toks[P->pos - 1];
    SrcLoc loc = t->loc;
    loc.col += t->len;
    return loc;
}

static const char *tok_name(Parser *P, const Token *t) { return arena_strndup(P->arena, t->text, (size_t)t->len); }

static void skip_semis(Parser *P) {
    while (accept(P, TK_SEMI)) {}
}

/* Growable arrays of pointers in the arena (old copies are abandoned). */
static void *push_ptr(Parser *P, void *arr, int *n, int *cap, void *item) {
    void **a = arr;
    if (*n == *cap) {
        int c = *cap ? *cap * 2 : 4;
        void **b = arena_alloc(P->arena, sizeof(void *) * (size_t)c);
        if (*n) memcpy(b, a, sizeof(void *) * (size_t)*n);
        a = b;
        *cap = c;
    }
    a[(*n)++] = item;
    return a;
}

static Expr *new_expr(Parser *P, ExprKind kind, SrcLoc loc) {
    Expr *e = arena_alloc(P->arena, sizeof *e);
    e->kind = kind;
    e->loc = loc;
    e->depth = 1;
    return e;
}

/* ---- nesting limits ------------------------------------------------------
 * Two guards keep every recursive walk bounded by PARSE_MAX_DEPTH. The parser
 * recurses once per '(' '[' or call, unary operator, '**' and block, and
 * parse_enter counts that before recursing. Operator chains (a + b + c ...),
 * member and index chains are built by loops into a deep left spine instead,
 * so expr_finish records each node's height and rejects a tree taller than
 * the limit: the elaborator recurses along that height. */

static const char *const nesting_hint = "; split it with 'let' or 'const'";

/* Enters one nesting level; false after reporting when that is one too many.
 * A successful enter is paired with P->depth-- when the rule returns. */
static bool parse_enter(Parser *P, const char *what) {
    if (P->depth >= PARSE_MAX_DEPTH)
        return diag_error(P->diag, peek(P)->loc, "%s nested too deeply: more than %d levels of blocks and expressions%s",
                          what, PARSE_MAX_DEPTH, what[0] == 'e' ? nesting_hint : "");
    P->depth++;
    return true;
}

static int max_depth(int d, const Expr *x) { return x && x->depth > d ? x->depth : d; }

/* Sets e's height from its operands; NULL after reporting a tree that is too tall. */
static Expr *expr_finish(Parser *P, Expr *e) {
    int d = max_depth(max_depth(max_depth(0, e->lhs), e->rhs), e->callee);
    for (int i = 0; i < e->n_args; i++) d = max_depth(d, e->args[i].value);
    for (int i = 0; i < e->n_items; i++) d = max_depth(d, e->items[i]);
    e->depth = d + 1;
    if (e->depth <= PARSE_MAX_DEPTH) return e;
    diag_error(P->diag, e->loc, "expression nested too deeply: more than %d levels (each operator of a chain such as "
               "a + b + c is a level)%s", PARSE_MAX_DEPTH, nesting_hint);
    return NULL;
}

/* ---- expressions -------------------------------------------------------- */

static Expr *parse_expr(Parser *P);

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

/* postfix = primary { "(" [ args ] ")" | "." IDENT | "[" expr "]" } ; */
static Expr *parse_postfix(Parser *P) {
    Expr *e = parse_primary(P);
    while (e) {
        Token *t = peek(P);
        if (t->kind == TK_LPAREN) {
            next(P);
            if (e->kind != EX_NAME && e->kind != EX_MEMBER)
                return diag_error(P->diag, t->loc, "only names and members (f, m.f) can be called"), NULL;
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
            Expr *ix = new_expr(P, EX_INDEX, t->loc);
            ix->lhs = e;
            if (!(ix->rhs = parse_expr(P))) return NULL;
            if (!expect_close(P, TK_RBRACKET, t)) return NULL;
            e = expr_finish(P, ix);
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
static Expr *parse_expr(Parser *P) {
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
static TypeExpr *parse_type(Parser *P) {
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

/* ---- statements --------------------------------------------------------- */

static bool parse_block(Parser *P, Block *b);

/* if_stmt = "if" expr block [ "else" ( if_stmt | block ) ] ; */
static Stmt *parse_if_stmt(Parser *P) {
    Token *kw = next(P);
    Stmt *s = arena_alloc(P->arena, sizeof *s);
    s->kind = ST_IF;
    s->loc = kw->loc;
    if (!(s->cond = parse_expr(P)) || !parse_block(P, &s->then_block)) return NULL;
    if (!accept(P, TK_ELSE)) return s;
    s->else_block = arena_alloc(P->arena, sizeof(Block));
    if (at(P, TK_IF)) {
        if (!parse_enter(P, "'else if' chain")) return NULL;
        Stmt *inner = parse_if_stmt(P);
        P->depth--;
        if (!inner) return NULL;
        s->else_block->stmts = arena_alloc(P->arena, sizeof(Stmt *));
        s->else_block->stmts[0] = inner;
        s->else_block->n_stmts = 1;
        s->else_block->open = s->else_block->close = inner->loc;
        return s;
    }
    return parse_block(P, s->else_block) ? s : NULL;
}

/* for_stmt = "for" IDENT "in" expr block ; (s: the statement, already holding any let names) */
static Stmt *parse_for_stmt(Parser *P, Stmt *s) {
    Token *kw = expect(P, TK_FOR, "after '='");
    if (!kw) return NULL;
    s->kind = ST_FOR;
    if (!s->n_names) s->loc = kw->loc;
    Token *var = expect(P, TK_IDENT, "after 'for'");
    if (!var) return NULL;
    s->loop_var = tok_name(P, var);
    s->loop_var_loc = var->loc;
    if (!expect(P, TK_IN, "after the loop variable")) return NULL;
    s->values = arena_alloc(P->arena, sizeof(Expr *));
    if (!(s->values[0] = parse_expr(P))) return NULL;
    s->n_values = 1;
    if (!parse_block(P, &s->then_block)) return NULL;
    skip_semis(P);
    return s;
}

/* stmt = "let" IDENT { "," IDENT } [ ":" type ] "=" ( expr { "," expr } | for_stmt )
 *      | IDENT "=" expr
 *      | "return" expr { "," expr }
 *      | "yield" expr { "," expr }
 *      | if_stmt | for_stmt ;                        (each optionally followed by ";") */
static Stmt *parse_stmt(Parser *P) {
    Token *t = peek(P);
    Stmt *s = arena_alloc(P->arena, sizeof *s);
    s->loc = t->loc;
    int cap_names = 0, cap_vals = 0;
    if (t->kind == TK_IF) return parse_if_stmt(P);
    if (t->kind == TK_FOR) return parse_for_stmt(P, s);
    if (t->kind == TK_LET) {
        next(P);
        s->kind = ST_LET;
        do {
            Token *name = expect(P, TK_IDENT, s->n_names ? "after ','" : "after 'let'");
            if (!name) return NULL;
            SrcLoc *locs = arena_alloc(P->arena, sizeof(SrcLoc) * (size_t)(s->n_names + 1));
            if (s->n_names) memcpy(locs, s->name_locs, sizeof(SrcLoc) * (size_t)s->n_names);
            locs[s->n_names] = name->loc;
            s->name_locs = locs;
            int n = s->n_names;
            s->names = push_ptr(P, (void *)s->names, &n, &cap_names, (void *)tok_name(P, name));
            s->n_names = n;
        } while (accept(P, TK_COMMA));
        if (accept(P, TK_COLON)) {
            if (s->n_names > 1) {
                diag_error(P->diag, P->toks[P->pos - 1].loc, "a type annotation needs a single name");
                return NULL;
            }
            if (!(s->type = parse_type(P))) return NULL;
        }
        if (!expect(P, TK_ASSIGN, s->n_names > 1 ? "after the names" : "after the name")) return NULL;
        if (at(P, TK_FOR)) {
            if (s->type) {
                diag_error(P->diag, peek(P)->loc, "a 'for' loop's results take no type annotation");
                return NULL;
            }
            return parse_for_stmt(P, s);
        }
    } else if (t->kind == TK_IDENT && peek_at(P, 1)->kind == TK_ASSIGN) {
        next(P);
        next(P);
        s->kind = ST_ASSIGN;
        s->names = arena_alloc(P->arena, sizeof(char *));
        s->names[0] = tok_name(P, t);
        s->name_locs = arena_alloc(P->arena, sizeof(SrcLoc));
        s->name_locs[0] = t->loc;
        s->n_names = 1;
    } else if (t->kind == TK_RETURN || t->kind == TK_YIELD) {
        next(P);
        s->kind = t->kind == TK_RETURN ? ST_RETURN : ST_YIELD;
        do {
            Expr *e = parse_expr(P);
            if (!e) return NULL;
            s->values = push_ptr(P, s->values, &s->n_values, &cap_vals, e);
        } while (accept(P, TK_COMMA));
        skip_semis(P);
        return s;
    } else {
        const char *hint = t->kind == TK_PARAM || t->kind == TK_CONST || t->kind == TK_FN
                               ? " (declare members in the module body, not inside fn)"
                               : "";
        diag_error(P->diag, t->loc, "expected a statement ('let', 'return', 'if', 'for', 'yield' or 'name = ...'), found %s%s",
                   tok_found(P, t), hint);
        return NULL;
    }
    do { /* let a, b = x, y binds several values at once */
        Expr *e = parse_expr(P);
        if (!e) return NULL;
        s->values = push_ptr(P, s->values, &s->n_values, &cap_vals, e);
    } while (s->kind == ST_LET && s->n_names > 1 && accept(P, TK_COMMA));
    skip_semis(P);
    return s;
}

/* block = "{" { stmt } "}" ; */
static bool parse_block(Parser *P, Block *b) {
    Token *open = expect(P, TK_LBRACE, "to start a block");
    if (!open || !parse_enter(P, "blocks")) return false;
    b->open = open->loc;
    int cap = 0;
    while (!at(P, TK_RBRACE) && !at(P, TK_EOF)) {
        Stmt *s = parse_stmt(P);
        if (!s) return false;
        b->stmts = push_ptr(P, b->stmts, &b->n_stmts, &cap, s);
    }
    P->depth--;
    Token *close = expect_close(P, TK_RBRACE, open);
    if (!close) return false;
    b->close = close->loc;
    return true;
}

/* ---- declarations ------------------------------------------------------- */

/* A parameter list: "(" [ p { "," p } [","] ] ")" with p = IDENT [ ":" type ] [ "=" expr ]
 * (types only where allow_types). Rejects a name listed twice and a required
 * parameter after one with a default. */
static bool parse_params(Parser *P, bool allow_types, Param **out, int *n_out) {
    Token *open = expect(P, TK_LPAREN, "to start the parameter list");
    if (!open) return false;
    Param *ps = NULL;
    int n = 0, cap = 0;
    bool seen_default = false;
    while (!at(P, TK_RPAREN)) {
        Token *name = expect(P, TK_IDENT, "(a parameter name)");
        if (!name) return false;
        Param p = {.name = tok_name(P, name), .loc = name->loc};
        for (int i = 0; i < n; i++)
            if (strcmp(ps[i].name, p.name) == 0)
                return diag_error(P->diag, name->loc, "duplicate parameter '%s'", p.name);
        if (at(P, TK_COLON)) {
            if (!allow_types)
                return diag_error(P->diag, peek(P)->loc,
                                  "constructor arguments are compile-time constants and take no type");
            next(P);
            if (!(p.type = parse_type(P))) return false;
        }
        if (accept(P, TK_ASSIGN)) {
            if (!(p.dflt = parse_expr(P))) return false;
            seen_default = true;
        } else if (seen_default) {
            return diag_error(P->diag, name->loc, "parameter '%s' without a default follows one with a default",
                              p.name);
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 4;
            Param *b = arena_alloc(P->arena, sizeof(Param) * (size_t)cap);
            if (n) memcpy(b, ps, sizeof(Param) * (size_t)n);
            ps = b;
        }
        ps[n++] = p;
        if (!accept(P, TK_COMMA)) break;
    }
    if (!expect_close(P, TK_RPAREN, open)) return false;
    *out = ps;
    *n_out = n;
    return true;
}

/* fn_decl = "fn" IDENT "(" [ fn_params ] ")" [ "->" ( type | "(" type { "," type } ")" ) ] block ; */
static FnDecl *parse_fn(Parser *P) {
    next(P); /* fn */
    Token *name = expect(P, TK_IDENT, "after 'fn'");
    if (!name) return NULL;
    FnDecl *f = arena_alloc(P->arena, sizeof *f);
    f->name = tok_name(P, name);
    f->loc = name->loc;
    if (!parse_params(P, true, &f->params, &f->n_params)) return NULL;
    if (accept(P, TK_ARROW)) {
        int cap = 0;
        if (at(P, TK_LPAREN)) {
            Token *open = next(P);
            do {
                TypeExpr *t = parse_type(P);
                if (!t) return NULL;
                f->rets = push_ptr(P, f->rets, &f->n_rets, &cap, t);
            } while (accept(P, TK_COMMA) && !at(P, TK_RPAREN));
            if (!expect_close(P, TK_RPAREN, open)) return NULL;
        } else {
            TypeExpr *t = parse_type(P);
            if (!t) return NULL;
            f->rets = push_ptr(P, f->rets, &f->n_rets, &cap, t);
        }
    }
    return parse_block(P, &f->body) ? f : NULL;
}

static bool parse_members(Parser *P, const Token *open, MemberList *out);

/* const_decl = "const" IDENT "=" expr ; */
static bool parse_const(Parser *P, const char **name, SrcLoc *loc, Expr **value) {
    next(P); /* const */
    Token *t = expect(P, TK_IDENT, "after 'const'");
    if (!t || !expect(P, TK_ASSIGN, "after the constant's name")) return false;
    *name = tok_name(P, t);
    *loc = t->loc;
    if (!(*value = parse_expr(P))) return false;
    skip_semis(P);
    return true;
}

/* member = const_decl
 *        | [ "frozen" ] "param" IDENT ":" type "=" IDENT "(" [ args ] ")"
 *        | IDENT "=" IDENT "(" [ args ] ")"
 *        | fn_decl
 *        | "if" expr "{" { member } "}" [ "else" ( member_if | "{" { member } "}" ) ] ; */
static Member *parse_member(Parser *P) {
    Token *t = peek(P);
    Member *m = arena_alloc(P->arena, sizeof *m);
    m->loc = t->loc;
    switch (t->kind) {
    case TK_CONST:
        m->kind = MB_CONST;
        return parse_const(P, &m->name, &m->loc, &m->value) ? m : NULL;
    case TK_FROZEN:
    case TK_PARAM: {
        m->kind = MB_PARAM;
        if (accept(P, TK_FROZEN)) {
            m->frozen = true;
            if (!expect(P, TK_PARAM, "after 'frozen'")) return NULL;
        } else {
            next(P);
        }
        Token *name = expect(P, TK_IDENT, "after 'param'");
        if (!name) return NULL;
        m->name = tok_name(P, name);
        m->loc = name->loc;
        if (!at(P, TK_COLON)) {
            diag_error(P->diag, peek(P)->loc, "expected ':' and a type after param '%s', found %s", m->name,
                       tok_found(P, peek(P)));
            return NULL;
        }
        next(P);
        if (!(m->type = parse_type(P))) return NULL;
        if (!at(P, TK_ASSIGN)) {
            diag_error(P->diag, prev_end(P),
                       "param '%s' needs an initializer such as '= zeros()' or '= uniform(-0.1, 0.1)'", m->name);
            return NULL;
        }
        next(P);
        Expr *init = parse_expr(P);
        if (!init) return NULL;
        if (init->kind != EX_CALL || init->callee->kind != EX_NAME) {
            diag_error(P->diag, init->loc,
                       "a param initializer must be a call: uniform(a, b), normal(mean, std), zeros(), ones() or "
                       "full(v)");
            return NULL;
        }
        m->value = init;
        skip_semis(P);
        return m;
    }
    case TK_FN:
        m->kind = MB_FN;
        if (!(m->fn = parse_fn(P))) return NULL;
        m->name = m->fn->name;
        m->loc = m->fn->loc;
        skip_semis(P);
        return m;
    case TK_IF: {
        next(P);
        m->kind = MB_IF;
        if (!(m->cond = parse_expr(P))) return NULL;
        Token *open = expect(P, TK_LBRACE, "after the condition");
        if (!open || !parse_members(P, open, &m->then_members)) return NULL;
        if (!accept(P, TK_ELSE)) return m;
        if (at(P, TK_IF)) {
            if (!parse_enter(P, "'else if' chain")) return NULL;
            Member *inner = parse_member(P);
            P->depth--;
            if (!inner) return NULL;
            m->else_members.items = arena_alloc(P->arena, sizeof(Member *));
            m->else_members.items[0] = inner;
            m->else_members.n = 1;
            return m;
        }
        open = expect(P, TK_LBRACE, "after 'else'");
        return open && parse_members(P, open, &m->else_members) ? m : NULL;
    }
    case TK_IDENT:
        if (peek_at(P, 1)->kind == TK_ASSIGN) {
            next(P);
            next(P);
            m->kind = MB_INSTANCE;
            m->name = tok_name(P, t);
            Expr *e = parse_expr(P);
            if (!e) return NULL;
            if (e->kind != EX_CALL || e->callee->kind != EX_NAME) {
                diag_error(P->diag, e->loc,
                           "'%s = ...' in a module body must instantiate a module, like '%s = Linear(784, 10)'; "
                           "write 'const %s = ...' for a constant",
                           m->name, m->name, m->name);
                return NULL;
            }
            m->value = e;
            skip_semis(P);
            return m;
        }
        break;
    case TK_LET:
        diag_error(P->diag, t->loc, "'let' is only allowed inside fn bodies; use 'const' in a module body");
        return NULL;
    default: break;
    }
    diag_error(P->diag, t->loc,
               "expected a member ('param', 'const', 'fn', 'if' or 'name = Module(...)'), found %s",
               tok_found(P, t));
    return NULL;
}

/* "{" { member } "}"   ("{" already consumed) */
static bool parse_members(Parser *P, const Token *open, MemberList *out) {
    int cap = 0;
    if (!parse_enter(P, "blocks")) return false;
    skip_semis(P);
    while (!at(P, TK_RBRACE) && !at(P, TK_EOF)) {
        Member *m = parse_member(P);
        if (!m) return false;
        out->items = push_ptr(P, out->items, &out->n, &cap, m);
        skip_semis(P);
    }
    P->depth--;
    return expect_close(P, TK_RBRACE, open) != NULL;
}

/* module_decl = "module" IDENT [ "(" [ ctor_params ] ")" ] "{" { member } "}" ;
 * model_decl  = "model" IDENT "{" { member } "}" ; */
static ModuleDecl *parse_module(Parser *P) {
    Token *kw = next(P);
    ModuleDecl *md = arena_alloc(P->arena, sizeof *md);
    md->is_model = kw->kind == TK_MODEL;
    Token *name = expect(P, TK_IDENT, md->is_model ? "after 'model'" : "after 'module'");
    if (!name) return NULL;
    md->name = tok_name(P, name);
    md->loc = name->loc;
    if (at(P, TK_LPAREN)) {
        if (md->is_model) {
            diag_error(P->diag, peek(P)->loc,
                       "a model takes no constructor arguments; use top-level 'const' (overridable with -D)");
            return NULL;
        }
        if (!parse_params(P, false, &md->params, &md->n_params)) return NULL;
    }
    Token *open = expect(P, TK_LBRACE, md->is_model ? "to start the model body" : "to start the module body");
    if (!open || !parse_members(P, open, &md->members)) return NULL;
    return md;
}

/* train_decl  = "train" "{" { train_entry } "}" ;
 * train_entry = IDENT "=" expr | IDENT ":" type ;
 * 'train' is a word, not a keyword: it starts a block only at top level. */
static TrainDecl *parse_train(Parser *P) {
    Token *kw = next(P);
    TrainDecl *td = arena_alloc(P->arena, sizeof *td);
    td->loc = kw->loc;
    Token *open = expect(P, TK_LBRACE, "after 'train'");
    if (!open) return NULL;
    int cap = 0;
    for (;;) {
        skip_semis(P);
        if (at(P, TK_RBRACE) || at(P, TK_EOF)) break;
        Token *name = expect(P, TK_IDENT, "(an entry such as 'loss = ...') in the train block");
        if (!name) return NULL;
        TrainEntry en = {.name = tok_name(P, name), .loc = name->loc};
        if (accept(P, TK_COLON)) {
            if (!(en.type = parse_type(P))) return NULL;
        } else {
            if (!expect(P, TK_ASSIGN, "after the train entry's name")) return NULL;
            if (!(en.value = parse_expr(P))) return NULL;
        }
        if (td->n_entries == cap) {
            cap = cap ? 2 * cap : 8;
            TrainEntry *grown = arena_alloc(P->arena, sizeof *grown * (size_t)cap);
            if (td->n_entries) memcpy(grown, td->entries, sizeof *grown * (size_t)td->n_entries);
            td->entries = grown;
        }
        td->entries[td->n_entries++] = en;
    }
    return expect_close(P, TK_RBRACE, open) ? td : NULL;
}

/* file = { const_decl | module_decl | model_decl | fn_decl | train_decl } EOF ; */
Unit *parse_unit(Arena *a, const char *path, const char *src, Diag *d) {
    int n_toks;
    Token *toks = lex_source(a, path, src, &n_toks, d);
    if (!toks) return NULL;
    Parser P = {.arena = a, .diag = d, .toks = toks};
    Unit *u = arena_alloc(a, sizeof *u);
    u->path = path;
    int cap_c = 0, cap_m = 0, cap_f = 0;
    for (;;) {
        skip_semis(&P);
        Token *t = peek(&P);
        if (t->kind == TK_EOF) break;
        if (t->kind == TK_CONST) {
            ConstDecl *c = arena_alloc(a, sizeof *c);
            if (!parse_const(&P, &c->name, &c->loc, &c->value)) return NULL;
            u->consts = push_ptr(&P, u->consts, &u->n_consts, &cap_c, c);
        } else if (t->kind == TK_MODULE || t->kind == TK_MODEL) {
            ModuleDecl *m = parse_module(&P);
            if (!m) return NULL;
            u->modules = push_ptr(&P, u->modules, &u->n_modules, &cap_m, m);
        } else if (t->kind == TK_FN) {
            FnDecl *f = parse_fn(&P);
            if (!f) return NULL;
            u->fns = push_ptr(&P, u->fns, &u->n_fns, &cap_f, f);
        } else if (t->kind == TK_IDENT && t->len == 5 && !memcmp(t->text, "train", 5) &&
                   peek_at(&P, 1)->kind == TK_LBRACE) {
            if (u->train) {
                diag_error(d, t->loc, "more than one train block (the first is at %d:%d)", u->train->loc.line,
                           u->train->loc.col);
                return NULL;
            }
            if (!(u->train = parse_train(&P))) return NULL;
        } else {
            diag_error(d, t->loc, "expected 'const', 'module', 'model', 'fn' or 'train' at top level, found %s",
                       tok_found(&P, t));
            return NULL;
        }
    }
    return u;
}
