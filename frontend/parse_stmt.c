/* parse_stmt.c: the parser's statement rules: let (with several names and
 * a for loop's results), assignment, return, yield, if/else if, for, and
 * blocks; each function is headed by its grammar rule (docs/dsl.md). */
#include <string.h>

#include "frontend/parse.h"

/* ---- statements --------------------------------------------------------- */

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
    } else if (t->kind == TK_IDENT && peek_at(P, 1)->kind == TK_EQEQ) {
        diag_error(P->diag, peek_at(P, 1)->loc,
                   "a comparison is not a statement; to assign, write '%s = ...' (or 'let %s = ...' for a new name)",
                   tok_name(P, t), tok_name(P, t));
        return NULL;
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
bool parse_block(Parser *P, Block *b) {
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
