/* parser.c: tokens -> syntax tree for the etch DSL (recursive descent).
 *
 * One function per grammar rule, each headed by its rule (docs/dsl.md has the
 * whole grammar). The language is free-form: statements need no terminator
 * because every statement and member starts with a keyword or `name =`, and
 * no expression can continue with a name; an optional ';' may still separate
 * them. The parser stops at the first error: every function returns NULL (or
 * false) after reporting it, and callers pass that straight up. Semantic
 * checks (names, types, values) wait for the elaborator; the parser only
 * rejects what is ill-formed on its face (e.g. a parameter listed twice).
 * This file holds the token helpers, the nesting limits, the declarations
 * (modules, members, fns, train blocks) and parse_unit; expressions and types
 * are in parse_expr.c, statements in parse_stmt.c (shared state: parse.h). */
#include <stdio.h>
#include <string.h>

#include "frontend/parse.h"

/* ---- token helpers ------------------------------------------------------ */

/* "'let'", "'3.5'", "end of file": what the parser found instead. */
const char *tok_found(Parser *P, const Token *t) {
    if (t->kind == TK_EOF) return "end of file";
    return arena_printf(P->arena, "'%.*s'", t->len, t->text); /* names are at most 255 bytes, numbers 127 */
}

/* Reports "expected K WHAT, found T" at the current token. */
Token *expect(Parser *P, TokKind k, const char *what) {
    if (at(P, k)) return next(P);
    diag_error(P->diag, peek(P)->loc, "expected %s%s%s, found %s", tok_kind_str(k), what[0] ? " " : "", what,
               tok_found(P, peek(P)));
    return NULL;
}

/* A closing bracket: "expected ')' to close '(' at 3:14, found 'let'". */
Token *expect_close(Parser *P, TokKind k, const Token *open) {
    if (at(P, k)) return next(P);
    diag_error(P->diag, peek(P)->loc, "expected %s to close %s at %d:%d, found %s", tok_kind_str(k),
               tok_kind_str(open->kind), open->loc.line, open->loc.col, tok_found(P, peek(P)));
    return NULL;
}

/* Just after the previous token: where something missing should have been. */
SrcLoc prev_end(Parser *P) {
    if (P->pos == 0) return peek(P)->loc;
    const Token *t = &P->toks[P->pos - 1];
    SrcLoc loc = t->loc;
    loc.col += t->len;
    return loc;
}

/* Growable arrays of pointers in the arena (old copies are abandoned). */
void *push_ptr(Parser *P, void *arr, int *n, int *cap, void *item) {
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

Expr *new_expr(Parser *P, ExprKind kind, SrcLoc loc) {
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
bool parse_enter(Parser *P, const char *what) {
    if (P->depth >= PARSE_MAX_DEPTH)
        return diag_error(P->diag, peek(P)->loc, "%s nested too deeply: more than %d levels of blocks and expressions%s",
                          what, PARSE_MAX_DEPTH, what[0] == 'e' ? nesting_hint : "");
    P->depth++;
    return true;
}

static int max_depth(int d, const Expr *x) { return x && x->depth > d ? x->depth : d; }

/* Sets e's height from its operands; NULL after reporting a tree that is too tall. */
Expr *expr_finish(Parser *P, Expr *e) {
    int d = max_depth(max_depth(max_depth(max_depth(0, e->lhs), e->rhs), e->callee), e->step);
    for (int i = 0; i < e->n_args; i++) d = max_depth(d, e->args[i].value);
    for (int i = 0; i < e->n_items; i++) d = max_depth(d, e->items[i]);
    e->depth = d + 1;
    if (e->depth <= PARSE_MAX_DEPTH) return e;
    diag_error(P->diag, e->loc, "expression nested too deeply: more than %d levels (each operator of a chain such as "
               "a + b + c is a level)%s", PARSE_MAX_DEPTH, nesting_hint);
    return NULL;
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

/* module_list = "[" IDENT "(" [ args ] ")" "for" IDENT "in" "range" "(" expr ")" "]"
 * (after 'name ='): N instances, the index name visible in the arguments. */
static bool parse_module_list(Parser *P, Member *m) {
    Token *open = next(P);
    Expr *e = parse_expr(P);
    if (!e) return false;
    if (e->kind != EX_CALL || e->callee->kind != EX_NAME)
        return diag_error(P->diag, e->loc,
                          "a module list must instantiate a module, like '%s = [Block(64) for i in range(4)]'",
                          m->name);
    m->value = e;
    if (!expect(P, TK_FOR, "after the module of a module list")) return false;
    Token *var = expect(P, TK_IDENT, "after 'for'");
    if (!var || !expect(P, TK_IN, "after the index name")) return false;
    m->list_var = tok_name(P, var);
    m->list_var_loc = var->loc;
    Expr *r = parse_expr(P);
    if (!r) return false;
    if (r->kind != EX_CALL || r->callee->kind != EX_NAME || strcmp(r->name, "range") != 0 || r->n_args != 1 ||
        r->args[0].name)
        return diag_error(P->diag, r->loc, "a module list counts with 'range(N)', like '[Block(64) for %s in range(4)]'",
                          m->list_var);
    m->list_count = r->args[0].value;
    if (!expect_close(P, TK_RBRACKET, open)) return false;
    skip_semis(P);
    return true;
}

/* IDENT "=" ( IDENT "(" [ args ] ")" | module_list ) : a submodule or a module list
 * (m->frozen or m->inline_names already set by a leading 'frozen' or 'inline') */
static Member *parse_instance(Parser *P, Member *m) {
    Token *t = next(P);
    next(P); /* = */
    m->kind = MB_INSTANCE;
    m->name = tok_name(P, t);
    if (at(P, TK_LBRACKET)) return parse_module_list(P, m) ? m : NULL;
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

/* member = const_decl
 *        | [ "frozen" ] "param" IDENT ":" type "=" IDENT "(" [ args ] ")"
 *        | [ "frozen" | "inline" ] IDENT "=" ( IDENT "(" [ args ] ")" | module_list )
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
            if (at(P, TK_IDENT) && peek_at(P, 1)->kind == TK_ASSIGN) { /* frozen fc1 = Linear(...) */
                m->loc = peek(P)->loc;
                return parse_instance(P, m);
            }
            bool param_like = at(P, TK_IDENT) && peek_at(P, 1)->kind == TK_COLON; /* 'param' left out */
            if (!expect(P, TK_PARAM, param_like ? "after 'frozen'"
                                                : "after 'frozen' (or a submodule: 'frozen fc1 = Linear(...)')"))
                return NULL;
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
        if (t->len == 6 && strncmp(t->text, "inline", 6) == 0 && peek_at(P, 1)->kind == TK_IDENT &&
            peek_at(P, 2)->kind == TK_ASSIGN) {
            m->inline_names = true;
            next(P);
            t = peek(P);
            m->loc = t->loc;
        }
        if (peek_at(P, 1)->kind == TK_ASSIGN) return parse_instance(P, m);
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
/* train_body = "{" { IDENT "=" expr | IDENT ":" type | "step" IDENT train_body } "}" ;
 * steps only at the top (allow_steps): a step holds entries. */
static bool parse_train_body(Parser *P, TrainDecl *td, bool allow_steps) {
    Token *open = expect(P, TK_LBRACE, td->name ? "after the step's name" : "after 'train'");
    if (!open) return false;
    int cap = 0, cap_steps = 0;
    for (;;) {
        skip_semis(P);
        if (at(P, TK_RBRACE) || at(P, TK_EOF)) break;
        Token *name = expect(P, TK_IDENT, "(an entry such as 'loss = ...') in the train block");
        if (!name) return false;
        const char *word = tok_name(P, name);
        if (!strcmp(word, "step") && at(P, TK_IDENT)) { /* `step NAME {`: 'step' is a word, not a keyword */
            if (!allow_steps) {
                diag_error(P->diag, name->loc, "a step cannot hold another step (steps are listed in the train block)");
                return false;
            }
            Token *sname = next(P);
            TrainDecl st = {.loc = name->loc, .name = tok_name(P, sname), .name_loc = sname->loc};
            if (!parse_train_body(P, &st, false)) return false;
            td->steps = arena_grow(P->arena, td->steps, sizeof *td->steps, td->n_steps, &cap_steps, 4);
            td->steps[td->n_steps++] = st;
            continue;
        }
        TrainEntry en = {.name = word, .loc = name->loc};
        if (accept(P, TK_COLON)) {
            if (!(en.type = parse_type(P))) return false;
        } else {
            if (!expect(P, TK_ASSIGN, "after the train entry's name")) return false;
            if (!(en.value = parse_expr(P))) return false;
        }
        td->entries = arena_grow(P->arena, td->entries, sizeof *td->entries, td->n_entries, &cap, 8);
        td->entries[td->n_entries++] = en;
    }
    return expect_close(P, TK_RBRACE, open) != NULL;
}

static TrainDecl *parse_train(Parser *P) {
    Token *kw = next(P);
    TrainDecl *td = arena_alloc(P->arena, sizeof *td);
    td->loc = kw->loc;
    return parse_train_body(P, td, true) ? td : NULL;
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
        } else if (t->kind == TK_IDENT && t->len == 5 && !memcmp(t->text, "train", 5)) {
            /* 'train' is no keyword, but at top level only a train block can
             * start with it: 'train (' gets "expected '{' after 'train'" */
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
