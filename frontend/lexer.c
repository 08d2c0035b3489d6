/* lexer.c: source text -> tokens for the etch DSL.
 *
 * The language is free-form (newlines are whitespace, ';' is optional), so
 * the lexer only needs to recognise names, keywords, dtype names, decimal
 * numbers, punctuation and `//` comments. The whole file is tokenized up
 * front into an arena array terminated by TK_EOF; the parser then walks it
 * with arbitrary lookahead. Every token records its line and column (1-based,
 * columns counted in bytes, a tab counts as one) for diagnostics. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/ast.h"

static const struct {
    const char *word;
    TokKind kind;
} keywords[] = {
    {"const", TK_CONST}, {"module", TK_MODULE}, {"model", TK_MODEL}, {"fn", TK_FN},       {"let", TK_LET},
    {"return", TK_RETURN}, {"param", TK_PARAM}, {"frozen", TK_FROZEN}, {"if", TK_IF},     {"else", TK_ELSE},
    {"true", TK_TRUE},   {"false", TK_FALSE},   {"and", TK_AND},       {"or", TK_OR},     {"not", TK_NOT},
    {"for", TK_FOR},     {"in", TK_IN},         {"yield", TK_YIELD},
};

/* Multi-character punctuation first, so the longest match wins. */
static const struct {
    const char *text;
    TokKind kind;
} puncts[] = {
    {"->", TK_ARROW}, {"**", TK_STARSTAR}, {"<=", TK_LE}, {">=", TK_GE},
    {"==", TK_EQEQ},  {"!=", TK_NE},         {"(", TK_LPAREN},    {")", TK_RPAREN}, {"[", TK_LBRACKET},
    {"]", TK_RBRACKET}, {"{", TK_LBRACE},    {"}", TK_RBRACE},    {",", TK_COMMA}, {":", TK_COLON},
    {";", TK_SEMI},   {".", TK_DOT},         {"=", TK_ASSIGN},    {"+", TK_PLUS},  {"-", TK_MINUS},
    {"*", TK_STAR},   {"/", TK_SLASH},       {"%", TK_PERCENT},   {"@", TK_AT},    {"<", TK_LT},
    {">", TK_GT},
};

const char *tok_kind_str(TokKind k) {
    switch (k) {
    case TK_EOF: return "end of file";
    case TK_IDENT: return "a name";
    case TK_INT:
    case TK_FLOAT: return "a number";
    case TK_DTYPE: return "a dtype";
    default: break;
    }
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if (keywords[i].kind == k) {
            static char buf[TK_COUNT][16];
            snprintf(buf[k], sizeof buf[k], "'%s'", keywords[i].word);
            return buf[k];
        }
    for (size_t i = 0; i < sizeof puncts / sizeof puncts[0]; i++)
        if (puncts[i].kind == k) {
            static char buf[TK_COUNT][8];
            snprintf(buf[k], sizeof buf[k], "'%s'", puncts[i].text);
            return buf[k];
        }
    return "?";
}

typedef struct Lexer {
    Arena *arena;
    const char *path;
    const char *p;          /* current position */
    const char *line_start; /* start of the current line */
    int line;
    Diag *diag;
    Token *toks;
    int n, cap;
} Lexer;

static SrcLoc lex_loc(const Lexer *L, const char *at) {
    return (SrcLoc){L->path, L->line, (int)(at - L->line_start) + 1};
}

static Token *lex_push(Lexer *L, TokKind kind, const char *start, int len) {
    if (L->n == L->cap) {
        int cap = L->cap ? L->cap * 2 : 256;
        Token *t = arena_alloc(L->arena, sizeof(Token) * (size_t)cap);
        if (L->n) memcpy(t, L->toks, sizeof(Token) * (size_t)L->n);
        L->toks = t;
        L->cap = cap;
    }
    Token *t = &L->toks[L->n++];
    *t = (Token){.kind = kind, .text = start, .len = len, .loc = lex_loc(L, start)};
    return t;
}

/* number = digits [ "." digits ] [ ("e"|"E") ["+"|"-"] digits ] | "." digits ... */
static bool lex_number(Lexer *L) {
    const char *s = L->p, *q = s;
    bool is_float = false;
    while (isdigit((unsigned char)*q)) q++;
    if (*q == '.' && !isalpha((unsigned char)q[1]) && q[1] != '_') {
        is_float = true;
        q++;
        while (isdigit((unsigned char)*q)) q++;
    }
    if (*q == 'e' || *q == 'E') {
        const char *e = q + 1;
        if (*e == '+' || *e == '-') e++;
        if (!isdigit((unsigned char)*e)) {
            while (isalnum((unsigned char)*q) || *q == '_') q++;
            return diag_error(L->diag, lex_loc(L, s), "malformed number '%.*s'", (int)(q - s), s);
        }
        while (isdigit((unsigned char)*e)) e++;
        q = e;
        is_float = true;
    }
    if (isalpha((unsigned char)*q) || *q == '_') {
        while (isalnum((unsigned char)*q) || *q == '_') q++;
        return diag_error(L->diag, lex_loc(L, s), "malformed number '%.*s'", (int)(q - s), s);
    }
    char buf[128];
    int len = (int)(q - s);
    if (len >= (int)sizeof buf) return diag_error(L->diag, lex_loc(L, s), "number '%.*s' is too long", len, s);
    memcpy(buf, s, (size_t)len);
    buf[len] = '\0';
    errno = 0;
    double v = strtod(buf, NULL);
    if (!isfinite(v) || (errno == ERANGE && v != 0))
        return diag_error(L->diag, lex_loc(L, s), "number '%s' is out of range", buf);
    if (!is_float && v > 9007199254740992.0) /* 2^53: integers stay exact in a double */
        return diag_error(L->diag, lex_loc(L, s), "integer '%s' is too large (the limit is 2^53)", buf);
    Token *t = lex_push(L, is_float ? TK_FLOAT : TK_INT, s, len);
    t->num = v;
    L->p = q;
    return true;
}

static void lex_word(Lexer *L) {
    const char *s = L->p;
    while (isalnum((unsigned char)*L->p) || *L->p == '_') L->p++;
    int len = (int)(L->p - s);
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if ((int)strlen(keywords[i].word) == len && memcmp(keywords[i].word, s, (size_t)len) == 0) {
            lex_push(L, keywords[i].kind, s, len);
            return;
        }
    char buf[8];
    if (len < (int)sizeof buf) {
        memcpy(buf, s, (size_t)len);
        buf[len] = '\0';
        DType dt = dtype_from_name(buf);
        if (dt != DT_COUNT) {
            lex_push(L, TK_DTYPE, s, len)->dtype = dt;
            return;
        }
    }
    lex_push(L, TK_IDENT, s, len);
}

Token *lex_source(Arena *a, const char *path, const char *src, int *n, Diag *d) {
    Lexer L = {.arena = a, .path = path, .p = src, .line_start = src, .line = 1, .diag = d};
    for (;;) {
        char c = *L.p;
        if (c == '\0') break;
        if (c == '\n') {
            L.p++;
            L.line++;
            L.line_start = L.p;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
            L.p++;
            continue;
        }
        if (c == '/' && L.p[1] == '/') {
            while (*L.p && *L.p != '\n') L.p++;
            continue;
        }
        if (isdigit((unsigned char)c) || (c == '.' && isdigit((unsigned char)L.p[1]))) {
            if (!lex_number(&L)) return NULL;
            continue;
        }
        if (isalpha((unsigned char)c) || c == '_') {
            lex_word(&L);
            continue;
        }
        bool matched = false;
        for (size_t i = 0; i < sizeof puncts / sizeof puncts[0]; i++) {
            size_t len = strlen(puncts[i].text);
            if (strncmp(L.p, puncts[i].text, len) == 0) {
                lex_push(&L, puncts[i].kind, L.p, (int)len);
                L.p += len;
                matched = true;
                break;
            }
        }
        if (matched) continue;
        if (c == '#')
            diag_error(d, lex_loc(&L, L.p), "unexpected character '#' (comments start with '//')");
        else if (c == '!')
            diag_error(d, lex_loc(&L, L.p), "unexpected character '!' (write 'not' for negation, '!=' for inequality)");
        else if (isprint((unsigned char)c))
            diag_error(d, lex_loc(&L, L.p), "unexpected character '%c'", c);
        else
            diag_error(d, lex_loc(&L, L.p), "unexpected byte 0x%02x", (unsigned)(unsigned char)c);
        return NULL;
    }
    /* end of file is reported just after the last token, on a line that has text */
    Token *eof = lex_push(&L, TK_EOF, L.p, 0);
    if (L.n > 1) {
        const Token *last = &L.toks[L.n - 2];
        eof->loc = last->loc;
        eof->loc.col += last->len;
    }
    *n = L.n;
    return L.toks;
}
