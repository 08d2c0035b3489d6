/* text_parse.c: reads etch's textual IR back into a Graph (docs/ir.md).
 *
 * A hand-written lexer and recursive-descent parser over the grammar in
 * docs/ir.md. The text is untrusted (tests, hand-written reproducers), so
 * every token is checked, numbers are range-checked before they reach a
 * Shape or an int, and each node is re-typed through its op's shape rule: a
 * written type that disagrees with what the rule infers is an error; once a
 * graph's nodes are read, its fusion groups are checked against each other
 * (ir_verify_groups), since a group names the later node it runs at. The first
 * error is reported at its exact line:col in the IR text, naming what was
 * expected and what was found; parsing then stops and NULL is returned. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/attrs.h"

typedef enum TokKind { TK_EOF, TK_IDENT, TK_VALUE, TK_STRING, TK_NUMBER, TK_PUNCT } TokKind;

typedef struct Token {
    TokKind kind;
    const char *text; /* into the source; len bytes */
    size_t len;
    SrcLoc loc;
    int value;        /* TK_VALUE: the N of %N */
    char *str;        /* TK_STRING: decoded contents (arena) */
} Token;

typedef struct Parser {
    Arena *a;
    Diag *d;
    const char *file;
    const char *p, *line_start; /* lexer position and the start of its line */
    int line;
    Token tok;                  /* one token of lookahead */
    Graph *g;
    SrcLoc *node_loc;           /* where each node of g starts in the text (its %N) */
    int cap_node_loc;
} Parser;

/* ---- lexer ---- */

static bool is_ident_start(char c) { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_ident_char(char c) { return is_ident_start(c) || is_digit(c) || c == '.'; }

static SrcLoc lex_loc(const Parser *P, const char *at) {
    return (SrcLoc){.file = P->file, .line = P->line, .col = (int)(at - P->line_start) + 1};
}

static int hex_value(char c) {
    if (is_digit(c)) return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes the string starting at the opening quote P->p into t->str. */
static bool lex_string(Parser *P, Token *t) {
    const char *s = P->p + 1;
    size_t n = strcspn(s, "\n"); /* the string ends on this line; decoding never grows it */
    char *out = arena_alloc(P->a, n + 1);
    n = 0;
    for (;;) {
        char c = *s;
        if (c == '\0' || c == '\n')
            return diag_error(P->d, t->loc, "unterminated string (expected '\"' before the end of the line)");
        if (c == '"') break;
        if (c != '\\') {
            out[n++] = c;
            s++;
            continue;
        }
        const char *esc = s++;
        switch (*s) {
        case '"': out[n++] = '"'; break;
        case '\\': out[n++] = '\\'; break;
        case 'n': out[n++] = '\n'; break;
        case 't': out[n++] = '\t'; break;
        case 'r': out[n++] = '\r'; break;
        case 'x': {
            int hi = hex_value(s[1]), lo = hi < 0 ? -1 : hex_value(s[2]);
            if (hi < 0 || lo < 0)
                return diag_error(P->d, lex_loc(P, esc), "expected two hex digits after '\\x' in string");
            if (hi == 0 && lo == 0) return diag_error(P->d, lex_loc(P, esc), "strings may not contain '\\x00'");
            out[n++] = (char)(hi * 16 + lo);
            s += 2;
            break;
        }
        default:
            if (*s == '\0' || *s == '\n')
                return diag_error(P->d, t->loc, "unterminated string (expected '\"' before the end of the line)");
            return diag_error(P->d, lex_loc(P, esc), "unknown escape sequence '\\%c' in string", *s);
        }
        s++;
    }
    out[n] = '\0';
    t->str = out;
    P->p = s + 1;
    return true;
}

/* Numbers: an optional sign, then letters, digits, '.', '_' and a sign right
 * after an exponent letter. What that spells is checked by whoever wants a
 * number (strtod/strtoll must consume all of it), so "-inf" and "1e-3" are
 * one token and "1.2.3" is one bad token rather than three confusing ones. */
static void lex_number(Parser *P) {
    const char *start = P->p + (P->p[0] == '-' || P->p[0] == '+'), *s = start;
    while (is_ident_char(*s) || ((*s == '+' || *s == '-') && s > start && strchr("eEpP", s[-1]))) s++;
    P->p = s;
}

/* Advances P->tok to the next token; false (after reporting) on a lexical error. */
static bool lex_next(Parser *P) {
    for (;;) { /* skip whitespace and // comments */
        char c = *P->p;
        if (c == '\n') {
            P->line++;
            P->line_start = ++P->p;
        } else if (c == ' ' || c == '\t' || c == '\r') {
            P->p++;
        } else if (c == '/' && P->p[1] == '/') {
            while (*P->p && *P->p != '\n') P->p++;
        } else {
            break;
        }
    }
    Token *t = &P->tok;
    *t = (Token){.text = P->p, .loc = lex_loc(P, P->p)};
    char c = *P->p;
    if (c == '\0') {
        t->kind = TK_EOF;
    } else if (is_ident_start(c)) {
        t->kind = TK_IDENT;
        while (is_ident_char(*P->p)) P->p++;
    } else if (is_digit(c) || ((c == '-' || c == '+') && (is_ident_char(P->p[1]))) ||
               (c == '.' && is_digit(P->p[1]))) {
        t->kind = TK_NUMBER;
        lex_number(P);
    } else if (c == '%') {
        const char *s = P->p + 1;
        long long v = 0;
        if (!is_digit(*s)) return diag_error(P->d, t->loc, "expected a value number after '%%'");
        for (; is_digit(*s); s++) {
            v = v * 10 + (*s - '0');
            if (v > INT_MAX) return diag_error(P->d, t->loc, "value number is too large");
        }
        t->kind = TK_VALUE;
        t->value = (int)v;
        P->p = s;
    } else if (c == '"') {
        t->kind = TK_STRING;
        if (!lex_string(P, t)) return false;
    } else if (strchr("=:,[]{}()@", c)) {
        t->kind = TK_PUNCT;
        P->p++;
    } else if (c > 0x20 && c < 0x7f) {
        return diag_error(P->d, t->loc, "unexpected character '%c'", c);
    } else {
        return diag_error(P->d, t->loc, "unexpected byte 0x%02x", (unsigned char)c);
    }
    t->len = (size_t)(P->p - t->text);
    return true;
}

/* ---- token helpers ---- */

static bool tok_is(const Parser *P, const char *s) {
    return P->tok.kind != TK_STRING && P->tok.kind != TK_EOF && P->tok.len == strlen(s) &&
           memcmp(P->tok.text, s, P->tok.len) == 0;
}

/* The current token as error messages show it: 'text', string "...", or
 * "end of input"; long tokens are cut so one bad line stays one line. */
static const char *tok_describe(const Parser *P, char *buf, size_t n) {
    const Token *t = &P->tok;
    int len = t->len > 40 ? 40 : (int)t->len;
    const char *more = t->len > 40 ? "..." : "";
    if (t->kind == TK_EOF) snprintf(buf, n, "end of input");
    else if (t->kind == TK_STRING) snprintf(buf, n, "string %.*s%s", len, t->text, more);
    else snprintf(buf, n, "'%.*s%s'", len, t->text, more);
    return buf;
}

/* Reports "expected WHAT, found <current token>" at the current token. */
static bool parse_expected(Parser *P, const char *what) {
    char buf[80];
    return diag_error(P->d, P->tok.loc, "expected %s, found %s", what, tok_describe(P, buf, sizeof buf));
}

/* Consumes punctuation/keyword s or reports "expected 's' CONTEXT, found ...". */
static bool parse_expect(Parser *P, const char *s, const char *context) {
    if (!tok_is(P, s)) {
        char what[160];
        snprintf(what, sizeof what, "'%s' %s", s, context);
        return parse_expected(P, what);
    }
    return lex_next(P);
}

/* An integer token in [lo, hi]; what names it in messages ("a dimension"). */
static bool parse_int(Parser *P, int64_t lo, int64_t hi, const char *what, int64_t *out) {
    if (P->tok.kind != TK_NUMBER) return parse_expected(P, what);
    char buf[64];
    if (P->tok.len >= sizeof buf) return parse_expected(P, what);
    memcpy(buf, P->tok.text, P->tok.len);
    buf[P->tok.len] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (*end || end == buf) return parse_expected(P, what);
    if (errno == ERANGE || v < lo || v > hi)
        return diag_error(P->d, P->tok.loc, "%s %s is out of range (%lld to %lld)", what, buf, (long long)lo,
                          (long long)hi);
    *out = v;
    return lex_next(P);
}

/* A floating-point literal: anything strtod reads entirely (inf, nan, 1e-3). */
static bool parse_double(Parser *P, const char *what, double *out) {
    char buf[128];
    if ((P->tok.kind != TK_NUMBER && P->tok.kind != TK_IDENT) || P->tok.len >= sizeof buf)
        return parse_expected(P, what);
    memcpy(buf, P->tok.text, P->tok.len);
    buf[P->tok.len] = '\0';
    char *end;
    double v = strtod(buf, &end);
    if (*end || end == buf) return parse_expected(P, what);
    *out = v;
    return lex_next(P);
}

/* ---- types, attributes, locations ---- */

/* dtype "[" [dim {"," dim}] "]", checking that the element count fits int64
 * (so shape rules may multiply dims without overflowing). */
static bool parse_type(Parser *P, DType *t, Shape *s) {
    if (P->tok.kind != TK_IDENT) return parse_expected(P, "a type like f32[2,3] after ':'");
    char name[16];
    snprintf(name, sizeof name, "%.*s", P->tok.len < 15 ? (int)P->tok.len : 15, P->tok.text);
    *t = P->tok.len < 15 ? dtype_from_name(name) : DT_COUNT;
    if (*t == DT_COUNT) {
        char buf[80];
        return diag_error(P->d, P->tok.loc, "unknown dtype %s (expected f32, f64, i32, i64, bool, i8 or u8)",
                          tok_describe(P, buf, sizeof buf));
    }
    if (!lex_next(P) || !parse_expect(P, "[", "after the dtype")) return false;
    *s = (Shape){0};
    int64_t numel = 1;
    while (!tok_is(P, "]")) {
        if (s->rank > 0 && !parse_expect(P, ",", "or ']' in the type's dimension list")) return false;
        if (s->rank == ETCH_MAX_RANK)
            return diag_error(P->d, P->tok.loc, "too many dimensions (at most %d)", ETCH_MAX_RANK);
        SrcLoc at = P->tok.loc;
        int64_t dim = 0;
        if (!parse_int(P, 0, INT64_MAX, "a dimension", &dim)) return false;
        if (dim > 0 && numel > INT64_MAX / dim)
            return diag_error(P->d, at, "the type has too many elements (more than 2^63)");
        numel *= dim;
        s->dim[s->rank++] = dim;
    }
    return lex_next(P);
}

/* Keys without a sensible default; the others default to zeros/false. */
static unsigned attrs_required(OpKind op) {
    return attr_keys_allowed(op) &
           (ATTR_VALUE | ATTR_AXES | ATTR_PERM | ATTR_AXIS | ATTR_KERNEL | ATTR_STRIDE | ATTR_PADDING | ATTR_DILATION | ATTR_GROUPS |
            ATTR_START | ATTR_LENGTH | ATTR_BEFORE | ATTR_AFTER | ATTR_SEED | ATTR_CARRIES | ATTR_XS | ATTR_CLAMP |
            ATTR_ZERO_POINTS);
}

/* "[" [int {"," int}] "]" into out[0..ETCH_MAX_RANK) (pad amounts; missing entries are 0). */
static bool parse_i64_list(Parser *P, const char *key, int64_t *out) {
    if (!parse_expect(P, "[", "to start the list")) return false;
    int n = 0;
    for (int i = 0; i < ETCH_MAX_RANK; i++) out[i] = 0;
    while (!tok_is(P, "]")) {
        if (n > 0 && !parse_expect(P, ",", "or ']' in the list")) return false;
        if (n == ETCH_MAX_RANK)
            return diag_error(P->d, P->tok.loc, "too many entries in '%s' (at most %d)", key, ETCH_MAX_RANK);
        if (!parse_int(P, INT64_MIN, INT64_MAX, "an integer", &out[n])) return false;
        n++;
    }
    return lex_next(P);
}

/* "[" [int {"," int}] "]" into attr->axes (transpose's perm shares them). */
static bool parse_axis_list(Parser *P, const char *key, NodeAttrs *attr) {
    if (!parse_expect(P, "[", "to start the axis list")) return false;
    attr->n_axes = 0;
    while (!tok_is(P, "]")) {
        if (attr->n_axes > 0 && !parse_expect(P, ",", "or ']' in the axis list")) return false;
        if (attr->n_axes == ETCH_MAX_RANK)
            return diag_error(P->d, P->tok.loc, "too many entries in '%s' (at most %d)", key, ETCH_MAX_RANK);
        int64_t v = 0;
        if (!parse_int(P, INT_MIN, INT_MAX, "an axis", &v)) return false;
        attr->axes[attr->n_axes++] = (int)v;
    }
    return lex_next(P);
}

/* "[" int "," int "]": a {h, w} pair of a window attribute. */
static bool parse_pair(Parser *P, const char *key, int *out) {
    char what[64];
    snprintf(what, sizeof what, "to start the [h, w] pair of '%s'", key);
    if (!parse_expect(P, "[", what)) return false;
    for (int i = 0; i < 2; i++) {
        int64_t v = 0;
        if (i && !parse_expect(P, ",", "between the two values of the pair")) return false;
        if (!parse_int(P, INT_MIN, INT_MAX, "an integer", &v)) return false;
        out[i] = (int)v;
    }
    return parse_expect(P, "]", "after the two values of the pair");
}

static bool parse_bool(Parser *P, const char *key, bool *out) {
    if (tok_is(P, "true") || tok_is(P, "false")) {
        *out = tok_is(P, "true");
        return lex_next(P);
    }
    char what[64];
    snprintf(what, sizeof what, "true or false for '%s'", key);
    return parse_expected(P, what);
}

/* zeros | ones | const(a) | uniform(a, b) | normal(mean, std) */
static bool parse_init(Parser *P, ParamInit *init) {
    static const struct {
        const char *name;
        InitKind kind;
        int n_args;
    } kinds[] = {{"zeros", INIT_ZEROS, 0}, {"ones", INIT_ONES, 0}, {"const", INIT_CONST, 1},
                 {"uniform", INIT_UNIFORM, 2}, {"normal", INIT_NORMAL, 2}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        if (!tok_is(P, kinds[k].name)) continue;
        *init = (ParamInit){.kind = kinds[k].kind};
        if (!lex_next(P)) return false;
        if (kinds[k].n_args == 0) return true;
        char ctx[64];
        snprintf(ctx, sizeof ctx, "after '%s'", kinds[k].name);
        if (!parse_expect(P, "(", ctx) || !parse_double(P, "a number", &init->a)) return false;
        snprintf(ctx, sizeof ctx, "after the argument%s of '%s'", kinds[k].n_args == 2 ? "s" : "", kinds[k].name);
        if (kinds[k].n_args == 2 &&
            (!parse_expect(P, ",", "between the two arguments") || !parse_double(P, "a number", &init->b)))
            return false;
        return parse_expect(P, ")", ctx);
    }
    return parse_expected(P, "an init kind (zeros, ones, const, uniform or normal)");
}

/* KIND ID "at" VALUE: a fusion group ("epilogue 3 at %12"). `at` may name a
 * later node (a group runs at its last member), so the group is checked
 * against its other members once the whole graph is read (parse_graph). */
static bool parse_group(Parser *P, FuseGroup *out) {
    const char *kinds = "a fusion group kind (elementwise, reduce, epilogue or rows)";
    FuseKind kind = P->tok.kind == TK_IDENT ? fuse_kind_from_name(P->tok.text, P->tok.len) : FUSE_KIND_COUNT;
    if (kind == FUSE_KIND_COUNT) return parse_expected(P, kinds);
    int64_t id = 0;
    if (!lex_next(P) || !parse_int(P, 1, INT_MAX, "a positive group number", &id) ||
        !parse_expect(P, "at", "after the group number"))
        return false;
    if (P->tok.kind != TK_VALUE) return parse_expected(P, "the value the group runs at (%N)");
    *out = (FuseGroup){.kind = kind, .id = (int)id, .at = P->tok.value};
    return lex_next(P);
}

/* "{" key "=" value {"," key "=" value} "}"; *seen gets the keys present. */
static bool parse_attrs(Parser *P, OpKind op, NodeAttrs *attr, unsigned *seen) {
    const char *opname = op_table[op].name;
    char ctx[96];
    snprintf(ctx, sizeof ctx, "or '}' in the attributes of '%s'", opname);
    if (!lex_next(P)) return false;
    while (!tok_is(P, "}")) {
        if (*seen && !parse_expect(P, ",", ctx)) return false;
        if (P->tok.kind != TK_IDENT) return parse_expected(P, "an attribute name");
        unsigned key = 0;
        const char *name = NULL;
        for (int k = 0; k < ATTR_N_KEYS; k++)
            if (tok_is(P, attr_specs[k].name)) key = 1u << k, name = attr_specs[k].name;
        if (!(key & attr_keys_allowed(op)))
            return diag_error(P->d, P->tok.loc, "unknown attribute '%.*s' for '%s'", (int)P->tok.len, P->tok.text,
                              opname);
        if (*seen & key) return diag_error(P->d, P->tok.loc, "duplicate attribute '%s'", name);
        *seen |= key;
        char after[64];
        snprintf(after, sizeof after, "after attribute name '%s'", name);
        if (!lex_next(P) || !parse_expect(P, "=", after)) return false;
        int64_t v = 0;
        bool ok = true;
        switch (key) {
        case ATTR_INIT: ok = parse_init(P, &attr->init); break;
        case ATTR_FROZEN: ok = parse_bool(P, name, &attr->frozen); break;
        case ATTR_KEEPDIMS: ok = parse_bool(P, name, &attr->keepdims); break;
        case ATTR_TRANS_A: ok = parse_bool(P, name, &attr->trans_a); break;
        case ATTR_TRANS_B: ok = parse_bool(P, name, &attr->trans_b); break;
        case ATTR_GROUP: ok = parse_group(P, &attr->group); break;
        case ATTR_VALUE: ok = parse_double(P, "a number for 'value'", &attr->value); break;
        case ATTR_AXES:
        case ATTR_PERM: ok = parse_axis_list(P, name, attr); break;
        case ATTR_AXIS:
            ok = parse_int(P, INT_MIN, INT_MAX, "an axis", &v);
            attr->axis = ok ? (int)v : 0;
            break;
        case ATTR_KERNEL: ok = parse_pair(P, name, attr->conv.kernel); break;
        case ATTR_STRIDE: ok = parse_pair(P, name, attr->conv.stride); break;
        case ATTR_PADDING: ok = parse_pair(P, name, attr->conv.pad); break;
        case ATTR_DILATION: ok = parse_pair(P, name, attr->conv.dilation); break;
        case ATTR_GROUPS:
            ok = parse_int(P, INT_MIN, INT_MAX, "a number of groups", &v);
            attr->conv.groups = ok ? (int)v : 0;
            break;
        case ATTR_START: ok = parse_int(P, INT64_MIN, INT64_MAX, "an integer for 'start'", &attr->start); break;
        case ATTR_LENGTH: ok = parse_int(P, INT64_MIN, INT64_MAX, "an integer for 'length'", &attr->length); break;
        case ATTR_BEFORE: ok = parse_i64_list(P, name, attr->pad_before); break;
        case ATTR_AFTER: ok = parse_i64_list(P, name, attr->pad_after); break;
        case ATTR_SEED:
            ok = parse_int(P, 0, INT64_MAX, "a seed", &v);
            attr->seed = ok ? (uint64_t)v : 0;
            break;
        case ATTR_CARRIES:
            ok = parse_int(P, 0, ETCH_MAX_OPERANDS, "a number of carries", &v);
            attr->n_carry = ok ? (int)v : 0;
            break;
        case ATTR_XS:
            ok = parse_int(P, 0, ETCH_MAX_OPERANDS, "a number of sequences", &v);
            attr->n_xs = ok ? (int)v : 0;
            break;
        case ATTR_REVERSE: ok = parse_bool(P, name, &attr->reverse); break;
        case ATTR_CLAMP: ok = parse_pair(P, name, attr->quant.clamp); break;
        case ATTR_ZERO_POINTS: ok = parse_pair(P, name, attr->quant.zero_points); break;
        }
        if (!ok) return false;
    }
    return lex_next(P);
}

/* "@" STRING ":" line ":" col */
static bool parse_loc(Parser *P, SrcLoc *loc) {
    if (!lex_next(P)) return false;
    if (P->tok.kind != TK_STRING) return parse_expected(P, "a quoted file name after '@'");
    loc->file = P->tok.str;
    int64_t line = 0, col = 0;
    if (!lex_next(P) || !parse_expect(P, ":", "after the file name") ||
        !parse_int(P, 0, INT_MAX, "a line number", &line) || !parse_expect(P, ":", "after the line number") ||
        !parse_int(P, 0, INT_MAX, "a column number", &col))
        return false;
    loc->line = (int)line;
    loc->col = (int)col;
    return true;
}

/* ---- nodes and the graph ---- */

static Graph *parse_graph(Parser *P, bool top);

/* A "%N" operand that must name an already defined value. */
static bool parse_use(Parser *P, const char *what, int *id) {
    if (P->tok.kind != TK_VALUE) return parse_expected(P, what);
    if (P->tok.value >= P->g->n_nodes)
        return diag_error(P->d, P->tok.loc, "use of undefined value %%%d (values must be defined before use)",
                          P->tok.value);
    *id = P->tok.value;
    return lex_next(P);
}

enum { PARSE_MAX_OPERANDS = ETCH_MAX_OPERANDS };

/* %N = op ["name"] [operands] [{attrs}] : type [@ loc] */
static bool parse_node(Parser *P) {
    Graph *g = P->g;
    SrcLoc node_loc = P->tok.loc;
    if (P->tok.value != g->n_nodes)
        return diag_error(P->d, P->tok.loc, "expected value %%%d here (ids are dense and in order), found %%%d",
                          g->n_nodes, P->tok.value);
    char ctx[96];
    snprintf(ctx, sizeof ctx, "after %%%d", g->n_nodes);
    if (!lex_next(P) || !parse_expect(P, "=", ctx)) return false;
    if (P->tok.kind != TK_IDENT) return parse_expected(P, "an op name after '='");
    char name[32];
    OpKind op = OP_COUNT;
    if (P->tok.len < sizeof name) {
        memcpy(name, P->tok.text, P->tok.len);
        name[P->tok.len] = '\0';
        op = op_from_name(name);
    }
    if (op == OP_COUNT)
        return diag_error(P->d, P->tok.loc, "unknown op '%.*s'", P->tok.len > 40 ? 40 : (int)P->tok.len,
                          P->tok.text);
    const OpInfo *info = &op_table[op];
    SrcLoc op_loc = P->tok.loc;
    Node n = {.op = op};
    if (!lex_next(P)) return false;

    /* input/param carry their name as a quoted string right after the op */
    const char *after = ""; /* what the attrs/':' follow, for messages */
    if (op == OP_INPUT || op == OP_PARAM) {
        snprintf(ctx, sizeof ctx, "a quoted name after '%s'", info->name);
        if (P->tok.kind != TK_STRING) return parse_expected(P, ctx);
        n.attr.name = P->tok.str;
        /* names key weights files and driver arguments: one node per name */
        int dup = op == OP_INPUT ? graph_find_input(g, n.attr.name) : graph_find_param(g, n.attr.name);
        if (dup >= 0)
            return diag_error(P->d, P->tok.loc, "duplicate %s name %.*s (already used by %%%d)", info->name,
                              P->tok.len > 60 ? 60 : (int)P->tok.len, P->tok.text, dup);
        if (!lex_next(P)) return false;
        after = "the name of ";
    }
    int ins[PARSE_MAX_OPERANDS], n_in = 0;
    if (P->tok.kind == TK_VALUE) {
        SrcLoc first = P->tok.loc;
        for (;;) {
            int id = -1;
            if (!parse_use(P, "an operand after ','", &id)) return false;
            if (n_in < PARSE_MAX_OPERANDS) ins[n_in] = id;
            n_in++;
            if (!tok_is(P, ",")) break;
            if (!lex_next(P)) return false;
        }
        if (info->arity != 0) after = "operands of ";
        if (info->arity < 0 && !op_arity_ok(op, n_in))
            return diag_error(P->d, first, "'%s' takes at most %d operands, got %d", info->name, ETCH_MAX_OPERANDS,
                              n_in);
        if (info->arity >= 0 && n_in != info->arity)
            return diag_error(P->d, first, "'%s' takes %d operand%s, got %d", info->name, info->arity,
                              info->arity == 1 ? "" : "s", n_in);
    } else if (info->arity > 0) {
        snprintf(ctx, sizeof ctx, "%d operand%s after '%s'", info->arity, info->arity == 1 ? "" : "s", info->name);
        return parse_expected(P, ctx);
    }
    n.n_in = n_in;
    n.in = ins;

    unsigned seen = 0;
    char what[128];
    snprintf(ctx, sizeof ctx, "after %s'%s'", after, info->name);
    if (attr_keys_allowed(op)) {
        if (tok_is(P, "{")) {
            if (!parse_attrs(P, op, &n.attr, &seen)) return false;
            snprintf(ctx, sizeof ctx, "after the attributes of '%s'", info->name);
            snprintf(what, sizeof what, "':' %s", ctx);
        } else {
            snprintf(what, sizeof what, "'{' or ':' %s", ctx);
        }
    } else {
        snprintf(what, sizeof what, "':' %s", ctx);
    }
    if (!tok_is(P, ":")) return parse_expected(P, what);
    unsigned missing = attrs_required(op) & ~seen;
    for (int k = 0; k < ATTR_N_KEYS; k++)
        if (missing & (1u << k))
            return diag_error(P->d, op_loc, "'%s' requires attribute '%s'", info->name, attr_specs[k].name);
    if (!lex_next(P)) return false;
    SrcLoc type_loc = P->tok.loc;
    DType dtype = DT_COUNT;
    Shape shape = {0};
    if (!parse_type(P, &dtype, &shape)) return false;
    if (tok_is(P, "@") && !parse_loc(P, &n.loc)) return false;
    if (op == OP_SCAN) { /* the body graph follows its scan node */
        Graph *outer = P->g;
        n.attr.body = parse_graph(P, false);
        P->g = outer;
        if (!n.attr.body) return false;
    }

    /* Ops whose result type is their target read it from the attrs; the
     * written type is that target (docs/ir.md, "Types"). */
    if (info->cls == OPC_SOURCE || op == OP_RESHAPE || op == OP_BROADCAST || op == OP_CONV2D_BWD_INPUT ||
        op == OP_CONV2D_BWD_WEIGHT || op == OP_AVG_POOL2D_BWD || op == OP_SCATTER_ADD_ROWS)
        n.attr.shape = shape;
    if (info->cls == OPC_SOURCE || op == OP_CAST || op == OP_QUANTIZE || op == OP_QMATMUL ||
        op == OP_QCONV2D) n.attr.dtype = dtype;

    /* Re-type the node through its shape rule; errors point into the IR text. */
    Node m = n;
    m.loc = op_loc;
    if (!info->shape(g, &m, P->d)) return false;
    if (m.dtype != dtype || !shape_equal(&m.shape, &shape)) {
        char w[96], inf[96];
        return diag_error(P->d, type_loc, "written type %s disagrees with the inferred %s",
                          type_format(w, sizeof w, dtype, &shape), type_format(inf, sizeof inf, m.dtype, &m.shape));
    }
    m.loc = n.loc;
    int id = graph_append_raw(g, &m);
    if (id >= P->cap_node_loc) {
        int cap = P->cap_node_loc ? 2 * P->cap_node_loc : 64;
        SrcLoc *grown = arena_alloc(P->a, sizeof(SrcLoc) * (size_t)cap);
        if (P->cap_node_loc) memcpy(grown, P->node_loc, sizeof(SrcLoc) * (size_t)P->cap_node_loc);
        P->node_loc = grown, P->cap_node_loc = cap;
    }
    P->node_loc[id] = node_loc;
    return true;
}

/* "graph" name "{" {node} {"update" %param "from" %value} "return" [%a {"," %b}] "}" EOF.
 * A scan's body is a nested graph right after the scan node (not followed by EOF). */
static Graph *parse_graph(Parser *P, bool top) {
    if (!tok_is(P, "graph"))
        return parse_expected(P, top ? "'graph' at the start of the IR" : "the body 'graph' after a scan node"), NULL;
    if (!lex_next(P)) return NULL;
    const char *name;
    if (P->tok.kind == TK_IDENT) name = arena_strndup(P->a, P->tok.text, P->tok.len);
    else if (P->tok.kind == TK_STRING) name = P->tok.str;
    else return parse_expected(P, "a graph name after 'graph'"), NULL;
    Graph *g = P->g = graph_new(P->a, name);
    if (!lex_next(P) || !parse_expect(P, "{", "after the graph name")) return NULL;
    SrcLoc *outer_loc = P->node_loc; /* a scan body's nodes are numbered apart */
    int outer_cap = P->cap_node_loc;
    P->node_loc = NULL, P->cap_node_loc = 0;
    while (P->tok.kind == TK_VALUE)
        if (!parse_node(P)) return NULL;
    /* fusion groups name later nodes (where they run): checked once all are read */
    bool groups_ok = ir_verify_groups(g, P->node_loc, P->d);
    P->node_loc = outer_loc, P->cap_node_loc = outer_cap;
    if (!groups_ok) return NULL;
    while (tok_is(P, "update")) {
        int dst = -1, src = -1;
        if (!lex_next(P) || !parse_use(P, "the updated param after 'update'", &dst)) return NULL;
        if (!tok_is(P, "from")) return parse_expected(P, "'from' after the updated param"), NULL;
        if (!lex_next(P) || !parse_use(P, "the new value after 'from'", &src)) return NULL;
        graph_add_update(g, dst, src);
    }
    if (!tok_is(P, "return")) {
        char what[64];
        snprintf(what, sizeof what, "a node '%%%d = ...' or 'return'", g->n_nodes);
        return parse_expected(P, what), NULL;
    }
    if (!lex_next(P)) return NULL;
    if (P->tok.kind == TK_VALUE) {
        for (;;) {
            int id = -1;
            if (!parse_use(P, "a value after ','", &id)) return NULL;
            graph_add_output(g, id);
            if (!tok_is(P, ",")) break;
            if (!lex_next(P)) return NULL;
        }
        if (!tok_is(P, "}")) return parse_expected(P, "',' or '}' after the returned values"), NULL;
    } else if (!tok_is(P, "}")) {
        return parse_expected(P, "a returned value or '}' after 'return'"), NULL;
    }
    if (!lex_next(P)) return NULL;
    if (top && P->tok.kind != TK_EOF) return parse_expected(P, "end of input after the graph's '}'"), NULL;
    return g;
}

Graph *ir_parse(Arena *a, const char *file, const char *text, Diag *d) {
    Parser P = {.a = a, .d = d, .file = file ? file : "<ir>", .p = text, .line_start = text, .line = 1};
    if (!text) return diag_error(d, (SrcLoc){.file = P.file}, "no IR text"), NULL;
    if (!lex_next(&P)) return NULL;
    return parse_graph(&P, true);
}
