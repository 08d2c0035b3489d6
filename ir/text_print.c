/* text_print.c: prints a Graph in etch's textual IR (docs/ir.md).
 *
 * The printed form is canonical: one line per node in id order, attributes in a
 * fixed order per op, numbers in the shortest decimal form that reads back to
 * the same double. ir_parse() reads it back losslessly, so printing is also the
 * way graphs are compared in tests (print(parse(print(g))) == print(g)).
 *
 * The printer never trusts the graph: a corrupted node (bad op, dtype, rank)
 * still prints something readable, since dumping a broken graph is exactly
 * what one does while debugging a pass that the verifier complained about. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/attrs.h"
#include "ir/strbuf.h"

/* Column at which the "@ location" part starts when the node text is shorter;
 * aligning them keeps long dumps scannable. */
enum { PRINT_LOC_COLUMN = 56 };

/* Shortest "%.*g" that strtod maps back to exactly x; inf/nan by name. Every
 * finite double round-trips at 17 significant digits, so the loop ends. */
static void print_double(StrBuf *b, double x) {
    if (isnan(x)) {
        sb_puts(b, "nan");
        return;
    }
    if (isinf(x)) {
        sb_puts(b, x < 0 ? "-inf" : "inf");
        return;
    }
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) break;
    }
    sb_puts(b, buf);
}

/* Quoted C-style string: \" \\ \n \t \r, other control bytes as \xHH; bytes
 * >= 0x80 are kept as they are so UTF-8 file names stay readable. */
static void print_string(StrBuf *b, const char *s) {
    sb_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"': sb_puts(b, "\\\""); break;
        case '\\': sb_puts(b, "\\\\"); break;
        case '\n': sb_puts(b, "\\n"); break;
        case '\t': sb_puts(b, "\\t"); break;
        case '\r': sb_puts(b, "\\r"); break;
        default:
            if (*p < 0x20 || *p == 0x7f) sb_printf(b, "\\x%02x", *p);
            else sb_printf(b, "%c", *p);
        }
    }
    sb_puts(b, "\"");
}

/* Graph names print bare when they lex as one identifier ("Net.forward"),
 * quoted otherwise. */
static bool name_is_bare(const char *s) {
    if (!s || !(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))) return false;
    for (; *s; s++)
        if (!(*s == '_' || *s == '.' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

static void print_int_list(StrBuf *b, const int *v, int n) {
    sb_puts(b, "[");
    for (int i = 0; i < n; i++) sb_printf(b, "%s%d", i ? ", " : "", v[i]);
    sb_puts(b, "]");
}

static void print_i64_list(StrBuf *b, const int64_t *v, int n) {
    sb_puts(b, "[");
    for (int i = 0; i < n; i++) sb_printf(b, "%s%lld", i ? ", " : "", (long long)v[i]);
    sb_puts(b, "]");
}

static void print_type(StrBuf *b, DType t, const Shape *s) {
    sb_printf(b, "%s[", dtype_name(t));
    int rank = s->rank < 0 ? 0 : s->rank > ETCH_MAX_RANK ? ETCH_MAX_RANK : s->rank;
    for (int i = 0; i < rank; i++) sb_printf(b, "%s%lld", i ? "," : "", (long long)s->dim[i]);
    sb_puts(b, "]");
}

static void print_init(StrBuf *b, const ParamInit *in) {
    switch (in->kind) {
    case INIT_ZEROS: sb_puts(b, "zeros"); return;
    case INIT_ONES: sb_puts(b, "ones"); return;
    case INIT_CONST:
        sb_puts(b, "const(");
        print_double(b, in->a);
        sb_puts(b, ")");
        return;
    case INIT_UNIFORM:
    case INIT_NORMAL:
        sb_puts(b, in->kind == INIT_UNIFORM ? "uniform(" : "normal(");
        print_double(b, in->a);
        sb_puts(b, ", ");
        print_double(b, in->b);
        sb_puts(b, ")");
        return;
    }
    sb_printf(b, "?%d", (int)in->kind);
}

/* The "{...}" block: only the attributes that mean something for n's op
 * (its attrs column, ops.def), in a fixed order (attr_print_order), so two
 * graphs that behave alike print alike. A fusion group (any op) comes last. */
static void print_attrs(StrBuf *b, const Node *n) {
    int n_axes = n->attr.n_axes < 0 ? 0 : n->attr.n_axes > ETCH_MAX_RANK ? ETCH_MAX_RANK : n->attr.n_axes;
    int rank = n->shape.rank < 0 ? 0 : n->shape.rank > ETCH_MAX_RANK ? ETCH_MAX_RANK : n->shape.rank;
    unsigned keys = ((unsigned)n->op < OP_COUNT ? op_table[n->op].attrs : 0u) |
                    (n->attr.group.kind != FUSE_NONE ? (unsigned)ATTR_GROUP : 0u);
    size_t start = b->len;
    for (int i = 0; i < ATTR_N_KEYS; i++) {
        int k = attr_print_order[i];
        if (!(keys >> k & 1u)) continue;
        const AttrSpec *s = &attr_specs[k];
        const void *f = attr_field(&n->attr, k);
        if (s->shape == AS_BOOL) {
            if (*(const bool *)f) sb_printf(b, ", %s = true", s->name);
            continue;
        }
        sb_printf(b, ", %s = ", s->name);
        switch (s->shape) {
        case AS_BOOL:
        case AS_BOOL_ALWAYS: sb_puts(b, *(const bool *)f ? "true" : "false"); break;
        case AS_INT: sb_printf(b, "%d", *(const int *)f); break;
        case AS_I64: sb_printf(b, "%lld", (long long)*(const int64_t *)f); break;
        case AS_U64: sb_printf(b, "%llu", (unsigned long long)*(const uint64_t *)f); break;
        case AS_DOUBLE: print_double(b, *(const double *)f); break;
        case AS_PAIR: print_int_list(b, f, 2); break;
        case AS_AXES: print_int_list(b, n->attr.axes, n_axes); break;
        case AS_RANK_LIST: print_i64_list(b, f, rank); break;
        case AS_INIT: print_init(b, f); break;
        case AS_GROUP: {
            const FuseGroup *fg = f;
            sb_printf(b, "%s %d at %%%d", fuse_kind_name(fg->kind), fg->id, fg->at);
            break;
        }
        }
    }
    if (b->len > start) { /* turn the leading ", " into " {" and close */
        b->s[start] = ' ';
        b->s[start + 1] = '{';
        sb_puts(b, "}");
    }
}

static void print_graph(StrBuf *b, const Graph *g, int depth);

static void print_node(StrBuf *b, int id, const Node *n, int depth) {
    size_t start = b->len;
    bool known = (unsigned)n->op < OP_COUNT;
    sb_printf(b, "%*s  %%%d = ", 4 * depth, "", id);
    if (known) sb_puts(b, op_table[n->op].name);
    else sb_printf(b, "?op%d", (int)n->op);
    if (n->op == OP_INPUT || n->op == OP_PARAM) {
        sb_puts(b, " ");
        print_string(b, n->attr.name);
    }
    for (int k = 0; k < n->n_in; k++) sb_printf(b, "%s%%%d", k ? ", " : " ", n->in ? n->in[k] : -1);
    if (known) print_attrs(b, n);
    sb_puts(b, " : ");
    print_type(b, n->dtype, &n->shape);
    if (n->loc.file) {
        size_t width = b->len - start;
        int pad = width + 2 < PRINT_LOC_COLUMN ? (int)(PRINT_LOC_COLUMN - width) : 2;
        sb_printf(b, "%*s@ ", pad, "");
        print_string(b, n->loc.file);
        sb_printf(b, ":%d:%d", n->loc.line, n->loc.col);
    }
    sb_puts(b, "\n");
    if (n->op == OP_SCAN && n->attr.body) print_graph(b, n->attr.body, depth + 1); /* nested, indented */
}

static void print_graph(StrBuf *b, const Graph *g, int depth) {
    int ind = 4 * depth;
    sb_printf(b, "%*sgraph ", ind, "");
    if (name_is_bare(g->name)) sb_puts(b, g->name);
    else print_string(b, g->name);
    sb_puts(b, " {\n");
    for (int i = 0; i < g->n_nodes; i++) print_node(b, i, &g->nodes[i], depth);
    for (int i = 0; i < g->n_updates; i++) /* state written back after the run */
        sb_printf(b, "%*s  update %%%d from %%%d\n", ind, "", g->upd_dst[i], g->upd_src[i]);
    sb_printf(b, "%*s  return", ind, "");
    for (int i = 0; i < g->n_outputs; i++) sb_printf(b, "%s%%%d", i ? ", " : " ", g->outputs[i]);
    sb_printf(b, "\n%*s}\n", ind, "");
}

char *ir_print_to_string(const Graph *g) {
    StrBuf b = {0};
    print_graph(&b, g, 0);
    return sb_take(&b);
}

void ir_print(FILE *f, const Graph *g) {
    char *s = ir_print_to_string(g);
    fputs(s, f);
    free(s);
}
