/* lexer.c: source text -> tokens for the etch DSL.
 *
 * The language is free-form (newlines are whitespace, ';' is optional), so
 * the lexer only needs to recognise names, keywords, dtype names, decimal
 * numbers, punctuation and `//` comments. The whole file is tokenized up
 * front into an arena array terminated by TK_EOF; the parser then walks it
 * with arbitrary lookahead. Every token records its line and column (1-based,
 * columns counted in bytes, a tab counts as one; lines end at LF, CRLF or a
 * lone CR) for diagnostics. */
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
    case TK_ELLIPSIS: return "'...'";
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

/* Names longer than this are refused: no real program needs them, and every
 * message that quotes a name stays short. */
enum { LEX_MAX_NAME = 255, LEX_QUOTE_MAX = 40 };

/* How a possibly huge piece of source is quoted in a message: at most
 * LEX_QUOTE_MAX bytes, then "...". */
static int quote_len(int len) { return len > LEX_QUOTE_MAX ? LEX_QUOTE_MAX : len; }
static const char *quote_more(int len) { return len > LEX_QUOTE_MAX ? "..." : ""; }

/* Tokens grow in a heap buffer (realloc, no zeroing) and are copied into the
 * arena once at the end: lexing stays linear in time and memory. */
static Token *lex_push(Lexer *L, TokKind kind, const char *start, int len) {
    if (L->n == L->cap) {
        int cap = L->cap ? L->cap * 2 : 256;
        Token *t = realloc(L->toks, sizeof(Token) * (size_t)cap);
        if (!t) abort();
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
            int len = (int)(q - s);
            return diag_error(L->diag, lex_loc(L, s), "malformed number '%.*s%s'", quote_len(len), s, quote_more(len));
        }
        while (isdigit((unsigned char)*e)) e++;
        q = e;
        is_float = true;
    }
    /* 1.2.3 or 1e3.5 is one malformed number, not 1.2 followed by .3 (which
     * failed later as "expected a statement ..., found '.3'") */
    if (*q == '.' && isdigit((unsigned char)q[1])) {
        int dots = 0;
        for (const char *c = s; c < q; c++) dots += *c == '.';
        while (isalnum((unsigned char)*q) || *q == '_' || *q == '.') q++;
        int len = (int)(q - s);
        return diag_error(L->diag, lex_loc(L, s), "malformed number '%.*s%s'%s", quote_len(len), s, quote_more(len),
                          dots ? ": a number has at most one '.'" : "");
    }
    if (isalpha((unsigned char)*q) || *q == '_') {
        while (isalnum((unsigned char)*q) || *q == '_') q++;
        int len = (int)(q - s);
        return diag_error(L->diag, lex_loc(L, s), "malformed number '%.*s%s'", quote_len(len), s, quote_more(len));
    }
    char buf[128];
    int len = (int)(q - s);
    if (len >= (int)sizeof buf)
        return diag_error(L->diag, lex_loc(L, s), "number '%.*s%s' is too long (%d characters)", quote_len(len), s,
                          quote_more(len), len);
    memcpy(buf, s, (size_t)len);
    buf[len] = '\0';
    errno = 0;
    double v = strtod(buf, NULL);
    if (!isfinite(v) || (errno == ERANGE && v != 0))
        return diag_error(L->diag, lex_loc(L, s), "number '%s' is out of range", buf);
    if (!is_float && v >= 9007199254740992.0) /* from 2^53 on, integers stop being exact in a double (2^53 + 1 reads as 2^53) */
        return diag_error(L->diag, lex_loc(L, s), "integer '%s' is too large (the largest is 2^53 - 1 = 9007199254740991)", buf);
    Token *t = lex_push(L, is_float ? TK_FLOAT : TK_INT, s, len);
    t->num = v;
    L->p = q;
    return true;
}

static bool lex_word(Lexer *L) {
    const char *s = L->p;
    while (isalnum((unsigned char)*L->p) || *L->p == '_') L->p++;
    int len = (int)(L->p - s);
    if (len > LEX_MAX_NAME)
        return diag_error(L->diag, lex_loc(L, s), "name '%.*s...' is too long (%d characters; the limit is %d)",
                          LEX_QUOTE_MAX, s, len, LEX_MAX_NAME);
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if (keywords[i].word[0] == *s && strncmp(keywords[i].word, s, (size_t)len) == 0 && !keywords[i].word[len]) {
            lex_push(L, keywords[i].kind, s, len);
            return true;
        }
    char buf[8];
    if (len < (int)sizeof buf) {
        memcpy(buf, s, (size_t)len);
        buf[len] = '\0';
        DType dt = dtype_from_name(buf);
        if (dt != DT_COUNT) {
            lex_push(L, TK_DTYPE, s, len)->dtype = dt;
            return true;
        }
    }
    lex_push(L, TK_IDENT, s, len);
    return true;
}

Token *lex_source(Arena *a, const char *path, const char *src, int *n, Diag *d) {
    Lexer L = {.arena = a, .path = path, .p = src, .line_start = src, .line = 1, .diag = d};
    bool ok = true;
    for (;;) {
        char c = *L.p;
        if (c == '\0') break;
        if (c == '\n' || c == '\r') { /* a line ends at "\n", "\r\n" or a lone "\r" */
            L.p += c == '\r' && L.p[1] == '\n' ? 2 : 1;
            L.line++;
            L.line_start = L.p;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\f' || c == '\v') {
            L.p++;
            continue;
        }
        if (c == '/' && L.p[1] == '/') {
            L.p += strcspn(L.p, "\r\n");
            continue;
        }
        if (isdigit((unsigned char)c) || (c == '.' && isdigit((unsigned char)L.p[1]))) {
            if (!(ok = lex_number(&L))) break;
            continue;
        }
        if (isalpha((unsigned char)c) || c == '_') {
            if (!(ok = lex_word(&L))) break;
            continue;
        }
        if (c == '.' && L.p[1] == '.' && L.p[2] == '.') {
            lex_push(&L, TK_ELLIPSIS, L.p, 3);
            L.p += 3;
            continue;
        }
        bool matched = false;
        for (size_t i = 0; i < sizeof puncts / sizeof puncts[0]; i++) {
            if (puncts[i].text[0] != c) continue;
            size_t len = puncts[i].text[1] ? 2 : 1;
            if (len == 1 || L.p[1] == puncts[i].text[1]) {
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
        ok = false;
        break;
    }
    if (!ok) {
        free(L.toks);
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
    Token *toks = arena_alloc(a, sizeof(Token) * (size_t)L.n);
    memcpy(toks, L.toks, sizeof(Token) * (size_t)L.n);
    free(L.toks);
    return toks;
}
