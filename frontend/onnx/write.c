/* write.c: the DSL text an import produces, and the weights beside it.
 *
 * Names: every DSL name is made from the ONNX one (/fc1/Gemm_output_0 ->
 * fc1_Gemm, fc1.weight -> member fc1) so a reader can find each line in
 * Netron or in the PyTorch code; a name that would hide a keyword, a builtin,
 * a standard library module or an earlier name gets a numeric suffix.
 * Numbers are written in the shortest form that reads back as the same f32
 * (or f64) value. A constant that cannot be a literal (more than one element,
 * inf, nan) becomes a frozen param whose value goes into the weights; an
 * initializer read directly by a plain op becomes a (trainable) param. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/elab.h"
#include "frontend/onnx/onnx_internal.h"

static const char *const KEYWORDS[] = {"const", "module", "model", "fn",   "let",  "return", "param", "frozen",
                                       "if",    "else",   "true",  "false", "and", "or",     "not",   "for",
                                       "in",    "yield",  "train", "f32",  "f64",  "i32",    "i64",   "bool", "i8", "u8"};

static bool name_taken(OxImport *ox, const char *s) { return ox_lookup_in(&ox->names, s) != NULL; }

static void take_name(OxImport *ox, const char *s) {
    OxValue *v = arena_alloc(ox->a, sizeof *v);
    v->name = s;
    ox_table_put(ox->a, &ox->names, v);
}

/* Keywords, dtype names and the standard library's module and fn names
 * (read from its source, so a module added there is avoided too). */
void ox_names_init(OxImport *ox) {
    for (size_t i = 0; i < sizeof KEYWORDS / sizeof KEYWORDS[0]; i++) take_name(ox, KEYWORDS[i]);
    for (const char *p = etch_stdlib_nn_source; p && *p;) {
        const char *line = p;
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
        size_t skip = !strncmp(line, "module ", 7) ? 7 : !strncmp(line, "fn ", 3) ? 3 : 0;
        if (!skip) continue;
        const char *s = line + skip, *e = s;
        while (isalnum((unsigned char)*e) || *e == '_') e++;
        if (e > s) take_name(ox, arena_strndup(ox->a, s, (size_t)(e - s)));
    }
}

/* The identifier form of an ONNX name: "/fc1/Gemm_output_0" -> "fc1_Gemm",
 * "input.1" -> "input_1", "0" -> "_0". */
static char *sanitize(OxImport *ox, const char *onnx_name) {
    size_t n = strlen(onnx_name);
    const char *suffix = "_output_0";
    if (n > strlen(suffix) && !strcmp(onnx_name + n - strlen(suffix), suffix)) n -= strlen(suffix);
    char *out = arena_alloc(ox->a, n + 3);
    size_t k = 0;
    out[k++] = '_';
    for (size_t i = 0; i < n && k < 64; i++) {
        char c = onnx_name[i];
        if (!isalnum((unsigned char)c)) c = '_';
        if (c == '_' && out[k - 1] == '_') continue;
        out[k++] = c;
    }
    while (k > 1 && out[k - 1] == '_') k--;
    out[k] = '\0';
    if (k == 1) return strcpy(out, "v");
    return isdigit((unsigned char)out[1]) ? out : out + 1; /* keep the '_' before a digit */
}

const char *ox_fresh_name(OxImport *ox, const char *onnx_name) {
    const char *base = sanitize(ox, onnx_name && *onnx_name ? onnx_name : "v");
    const char *s = base;
    for (int i = 2; name_taken(ox, s) || builtin_exists(s); i++) s = arena_printf(ox->a, "%s_%d", base, i);
    take_name(ox, s);
    return s;
}

const char *ox_number(OxImport *ox, double v, int32_t elem) {
    char buf[64];
    if (elem == OX_INT64 || elem == OX_INT32 || elem == OX_INT8 || elem == OX_UINT8) {
        if (fabs(v) > 9007199254740992.0) return NULL;
        snprintf(buf, sizeof buf, "%lld", (long long)v);
    } else if (elem == OX_FLOAT || elem == OX_DOUBLE) {
        if (!isfinite(v)) return NULL;
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, v);
            double back = strtod(buf, NULL);
            if (elem == OX_FLOAT ? (float)back == (float)v : back == v) break;
        }
    } else {
        return NULL;
    }
    return v < 0 ? arena_printf(ox->a, "(%s)", buf) : arena_strdup(ox->a, buf);
}

const char *ox_list(OxImport *ox, const int64_t *v, int n) {
    StrBuf b = {0};
    sb_puts(&b, "[");
    for (int i = 0; i < n; i++) sb_printf(&b, "%s%lld", i ? ", " : "", (long long)v[i]);
    sb_puts(&b, "]");
    const char *s = arena_strdup(ox->a, b.s);
    sb_free(&b);
    return s;
}

const char *ox_type_text(OxImport *ox, int32_t elem, int rank, const int64_t *dim) {
    const char *list = ox_list(ox, dim, rank);
    return rank ? arena_printf(ox->a, "%s%s", ox_elem_dtype(elem), list) : arena_printf(ox->a, "%s[]", ox_elem_dtype(elem));
}

void ox_member(OxImport *ox, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sb_puts(&ox->members, "  ");
    sb_vprintf(&ox->members, fmt, ap);
    sb_puts(&ox->members, "\n");
    va_end(ap);
}

static etch_dtype rt_dtype(int32_t elem) {
    switch (elem) {
    case OX_FLOAT: return ETCH_F32;
    case OX_DOUBLE: return ETCH_F64;
    case OX_INT32: return ETCH_I32;
    case OX_INT64: return ETCH_I64;
    case OX_INT8: return ETCH_I8;
    case OX_UINT8: return ETCH_U8;
    default: return ETCH_BOOL;
    }
}

void ox_add_weight(OxImport *ox, const char *name, int32_t elem, int rank, const int64_t *dim, const void *data) {
    if (ox->n_weights == ox->cap_weights) {
        int cap = ox->cap_weights ? 2 * ox->cap_weights : 32;
        etch_st_tensor *w = arena_alloc(ox->a, sizeof *w * (size_t)cap);
        if (ox->n_weights) memcpy(w, ox->weights, sizeof *w * (size_t)ox->n_weights);
        ox->weights = w;
        ox->cap_weights = cap;
    }
    etch_st_tensor *t = &ox->weights[ox->n_weights++];
    t->name = (char *)name;
    t->array = (etch_array){.dtype = rt_dtype(elem), .rank = rank, .data = (void *)data};
    if (rank) memcpy(t->array.dim, dim, sizeof(int64_t) * (size_t)rank);
}

bool ox_check_dims(OxImport *ox, const char *name, int rank, const int64_t *dim) {
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dim[i] <= 0)
            return ox_error(ox, "'%s' has the shape %s; etch tensors need every dim positive", name, ox_list(ox, dim, rank));
        if (dim[i] > OX_MAX_ELEMS / n)
            return ox_error(ox, "'%s' has the shape %s, more than %lld elements", name, ox_list(ox, dim, rank),
                            (long long)OX_MAX_ELEMS);
        n *= dim[i];
    }
    return true;
}

const char *ox_operand(OxImport *ox, OxValue *v, int peer_rank) {
    if (v->expr) return v->expr;
    if (!ox_elem_dtype(v->elem)) {
        ox_error(ox, "'%s' has element type %s, which etch lacks", v->name, ox_elem_name(v->elem));
        return NULL;
    }
    if (ox_numel(v) == 1 && v->rank <= peer_rank && v->elem != OX_BOOL) {
        const char *lit = ox_number(ox, ox_get(v, 0), v->elem);
        if (lit) return lit;
    }
    if (!ox_check_dims(ox, v->name, v->rank, v->dim)) return NULL;
    const char *name = ox_fresh_name(ox, v->name);
    bool trainable = v->initializer && (v->elem == OX_FLOAT || v->elem == OX_DOUBLE);
    ox_member(ox, "%sparam %s: %s = zeros()%s%s", trainable ? "" : "frozen ", name,
              ox_type_text(ox, v->elem, v->rank, v->dim), strcmp(name, v->name) ? "  // ONNX " : "",
              strcmp(name, v->name) ? v->name : "");
    ox_add_weight(ox, name, v->elem, v->rank, v->dim, v->data);
    v->expr = name;
    return name;
}

static OxValue *bind_output(OxImport *ox, OxNode *n, OxValue *v) {
    if (!ox_bind(ox, v->name, v)) return NULL;
    v->producer = n->index;
    return v;
}

OxValue *ox_define(OxImport *ox, OxNode *n, int k, int32_t elem, int rank, const int64_t *dim, const char *fmt, ...) {
    const char *out = k < (int)n->proto->n_output ? n->proto->output[k] : "";
    if (!ox_check_dims(ox, out, rank, dim)) return NULL;
    OxValue *v = arena_alloc(ox->a, sizeof *v);
    v->name = arena_strdup(ox->a, out);
    v->elem = elem;
    v->rank = rank;
    if (rank) memcpy(v->dim, dim, sizeof(int64_t) * (size_t)rank);
    v->expr = ox_fresh_name(ox, out);
    va_list ap;
    va_start(ap, fmt);
    sb_printf(&ox->body, "    let %s = ", v->expr);
    sb_vprintf(&ox->body, fmt, ap);
    sb_puts(&ox->body, "\n");
    va_end(ap);
    return bind_output(ox, n, v);
}

bool ox_alias(OxImport *ox, OxNode *n, int k, OxValue *v) {
    OxValue *c = arena_alloc(ox->a, sizeof *c);
    *c = *v;
    c->name = arena_strdup(ox->a, n->proto->output[k]);
    return bind_output(ox, n, c) != NULL;
}

bool ox_define_const(OxImport *ox, OxNode *n, int k, OxValue *c) {
    if (!c) return false;
    c->name = arena_strdup(ox->a, n->proto->output[k]);
    c->expr = NULL;
    return bind_output(ox, n, c) != NULL;
}

/* "fc1.weight" -> "fc1" (the part before the last dot), NULL without one. */
static const char *weight_prefix(OxImport *ox, const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name || strncmp(name, "onnx::", 6) == 0) return NULL;
    return arena_strndup(ox->a, name, (size_t)(dot - name));
}

/* "/layer1/conv1/Conv" -> "layer1/conv1" (the scope torch.onnx gives the node). */
static const char *node_scope(OxImport *ox, const OxNode *n) {
    const char *name = n->proto->name;
    if (!name || name[0] != '/') return NULL;
    const char *last = strrchr(name, '/');
    if (last == name) return NULL;
    return arena_strndup(ox->a, name + 1, (size_t)(last - name - 1));
}

const char *ox_member_name(OxImport *ox, const OxNode *n, const OxValue *w, const char *kind) {
    const char *base = w ? weight_prefix(ox, w->name) : NULL;
    if (!base) base = node_scope(ox, n);
    if (!base) base = arena_printf(ox->a, "%s%d", kind, ++ox->n_modules);
    return ox_fresh_name(ox, base);
}
