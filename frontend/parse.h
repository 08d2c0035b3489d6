/* parse.h: the parser's state and token helpers, shared by its files
 * (internal to frontend/; the entry point is parse_unit in ast.h):
 *   parser.c      token helpers, nesting limits, declarations, parse_unit
 *   parse_expr.c  expressions and types
 *   parse_stmt.c  statements and blocks
 * Every rule returns NULL (or false) after reporting its error. */
#ifndef ETCH_FRONTEND_PARSE_H
#define ETCH_FRONTEND_PARSE_H

#include "frontend/ast.h"

typedef struct Parser {
    Arena *arena;
    Diag *diag;
    Token *toks;
    int pos;
    int depth; /* nesting of the rules being parsed (see parse_enter) */
} Parser;

/* ---- token helpers ------------------------------------------------------ */

static inline Token *peek(Parser *P) { return &P->toks[P->pos]; }
static inline Token *peek_at(Parser *P, int k) {
    Token *t = &P->toks[P->pos];
    for (int i = 0; i < k && t->kind != TK_EOF; i++) t++;
    return t;
}
static inline bool at(Parser *P, TokKind k) { return peek(P)->kind == k; }
static inline Token *next(Parser *P) {
    Token *t = &P->toks[P->pos];
    if (t->kind != TK_EOF) P->pos++;
    return t;
}
static inline bool accept(Parser *P, TokKind k) {
    if (!at(P, k)) return false;
    next(P);
    return true;
}

static inline const char *tok_name(Parser *P, const Token *t) {
    return arena_strndup(P->arena, t->text, (size_t)t->len);
}

static inline void skip_semis(Parser *P) {
    while (accept(P, TK_SEMI)) {}
}

/* "'let'", "'3.5'", "end of file": what the parser found instead. */
const char *tok_found(Parser *P, const Token *t);
/* Reports "expected K WHAT, found T" at the current token. */
Token *expect(Parser *P, TokKind k, const char *what);
/* A closing bracket: "expected ')' to close '(' at 3:14, found 'let'". */
Token *expect_close(Parser *P, TokKind k, const Token *open);
/* Just after the previous token: where something missing should have been. */
SrcLoc prev_end(Parser *P);
/* Growable arrays of pointers in the arena (old copies are abandoned). */
void *push_ptr(Parser *P, void *arr, int *n, int *cap, void *item);
Expr *new_expr(Parser *P, ExprKind kind, SrcLoc loc);

/* Nesting limits (parser.c): parse_enter enters one level, false after
 * reporting one too many (a successful enter is paired with P->depth--);
 * expr_finish sets e's height from its operands, NULL after reporting a tree
 * that is too tall. */
bool parse_enter(Parser *P, const char *what);
Expr *expr_finish(Parser *P, Expr *e);

/* ---- rules used across files -------------------------------------------- */
Expr *parse_expr(Parser *P);           /* parse_expr.c */
TypeExpr *parse_type(Parser *P);       /* parse_expr.c */
bool parse_block(Parser *P, Block *b); /* parse_stmt.c */

#endif
