/* import.c: the ONNX importer's driver (see onnx.h). It loads the model,
 * binds the graph inputs' symbolic dims from -D, enters the initializers as
 * constants, walks the nodes in their (topological) order through the op
 * table, and assembles the text: a header comment, the model's members
 * (modules and params, gathered while walking) and its forward (one `let`
 * per value computed at run time), plus the weights. Also the name tables. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/onnx/onnx_internal.h"

/* ---- tables ---------------------------------------------------------------------- */

static uint64_t hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

OxValue *ox_lookup_in(const OxTable *t, const char *name) {
    if (!t->cap) return NULL;
    for (size_t i = hash(name) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        if (!t->slots[i]) return NULL;
        if (!strcmp(t->slots[i]->name, name)) return t->slots[i];
    }
}

void ox_table_put(Arena *a, OxTable *t, OxValue *v) {
    if (2 * (t->n + 1) > t->cap) { /* grow to keep the load under a half */
        OxTable bigger = {.cap = t->cap ? 2 * t->cap : 64};
        bigger.slots = arena_alloc(a, sizeof(OxValue *) * bigger.cap);
        for (size_t i = 0; i < t->cap; i++)
            if (t->slots[i]) ox_table_put(a, &bigger, t->slots[i]);
        *t = bigger;
    }
    size_t i = hash(v->name) & (t->cap - 1);
    while (t->slots[i] && strcmp(t->slots[i]->name, v->name)) i = (i + 1) & (t->cap - 1);
    if (!t->slots[i]) t->n++;
    t->slots[i] = v;
}

OxValue *ox_lookup(OxImport *ox, const char *name) { return ox_lookup_in(&ox->values, name); }

bool ox_bind(OxImport *ox, const char *name, OxValue *v) {
    if (!*name) return true; /* an omitted optional output */
    if (ox_lookup(ox, name)) return ox_error(ox, "the graph defines '%s' twice", name);
    v->name = name;
    ox_table_put(ox->a, &ox->values, v);
    return true;
}

bool onnx_is_model_path(const char *path) {
    size_t n = strlen(path);
    return n > 5 && !strcmp(path + n - 5, ".onnx");
}

/* ---- inputs and -D ------------------------------------------------------------------ */

/* The value of -D name, or -1 when none; -2 after an error. used[i] marks the defs read. */
static int64_t define_value(OxImport *ox, const Define *defs, int n_defs, bool *used, const char *name) {
    int64_t v = -1;
    for (int i = 0; i < n_defs; i++) { /* the last one wins, as for DSL constants */
        if (strcmp(defs[i].name, name)) continue;
        char *end;
        errno = 0;
        long long x = strtoll(defs[i].value, &end, 10);
        if (end == defs[i].value || *end || errno || x <= 0 || x > (1LL << 31)) {
            diag_error_plain(ox->d, "-D %s=%s: a dim must be a positive integer", name, defs[i].value);
            return -2;
        }
        used[i] = true;
        v = x;
    }
    return v;
}

static bool add_input(OxImport *ox, const Onnx__ValueInfoProto *in, const Define *defs, int n_defs, bool *used) {
    const char *name = in->name ? in->name : "";
    const Onnx__TypeProto *t = in->type;
    if (!*name) return ox_error(ox, "a graph input has no name");
    if (!t || t->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !t->tensor_type)
        return ox_error(ox, "input '%s' is not a tensor", name);
    const Onnx__TypeProto__Tensor *tt = t->tensor_type;
    int32_t elem = tt->has_elem_type ? tt->elem_type : 0;
    if (!ox_elem_dtype(elem))
        return ox_error(ox, "input '%s' has element type %s; etch supports " OX_ELEM_NAMES "%s", name,
                        ox_elem_name(elem), ox_quant_hint(ox, name));
    if (!tt->shape) return ox_error(ox, "input '%s' has no shape; etch needs every dim", name);
    if (tt->shape->n_dim > OX_MAX_RANK)
        return ox_error(ox, "input '%s' has %zu dims; etch tensors have at most %d", name, tt->shape->n_dim, OX_MAX_RANK);
    OxValue *v = arena_alloc(ox->a, sizeof *v);
    v->elem = elem;
    v->rank = (int)tt->shape->n_dim;
    v->producer = -1;
    for (int i = 0; i < v->rank; i++) {
        const Onnx__TensorShapeProto__Dimension *dm = tt->shape->dim[i];
        if (dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && dm->dim_value > 0) {
            v->dim[i] = dm->dim_value;
            continue;
        }
        if (dm->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM || !dm->dim_param || !*dm->dim_param)
            return ox_error(ox, "dim %d of input '%s' has no size and no name, so -D cannot set it (re-export with a fixed "
                                "or named dim)",
                            i, name);
        int64_t x = define_value(ox, defs, n_defs, used, dm->dim_param);
        if (x == -2) return false;
        if (x < 0)
            return ox_error(ox, "dim %d of input '%s' is the symbolic dim '%s': bind it with -D %s=N", i, name,
                            dm->dim_param, dm->dim_param);
        v->dim[i] = x;
    }
    if (!ox_check_dims(ox, name, v->rank, v->dim)) return false;
    v->expr = ox_fresh_name(ox, name);
    return ox_bind(ox, arena_strdup(ox->a, name), v);
}

/* The symbolic dims of the inputs, for the message about an unused -D. */
static const char *symbolic_dims(OxImport *ox) {
    StrBuf b = {0};
    const Onnx__GraphProto *g = ox->model->graph;
    for (size_t i = 0; i < g->n_input; i++) {
        const Onnx__TypeProto *t = g->input[i]->type;
        if (!t || t->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !t->tensor_type || !t->tensor_type->shape) continue;
        for (size_t k = 0; k < t->tensor_type->shape->n_dim; k++) {
            const Onnx__TensorShapeProto__Dimension *dm = t->tensor_type->shape->dim[k];
            if (dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && dm->dim_param && *dm->dim_param &&
                (!b.s || !strstr(b.s, dm->dim_param)))
                sb_printf(&b, "%s%s", b.len ? ", " : "", dm->dim_param);
        }
    }
    const char *s = b.s ? arena_strdup(ox->a, b.s) : NULL;
    sb_free(&b);
    return s;
}

static bool add_inputs(OxImport *ox, const Define *defs, int n_defs, StrBuf *params) {
    const Onnx__GraphProto *g = ox->model->graph;
    bool *used = calloc((size_t)n_defs + 1, sizeof *used), ok = true;
    if (!used) abort();
    for (size_t i = 0; ok && i < g->n_input; i++) {
        if (g->input[i]->name && ox_lookup(ox, g->input[i]->name)) continue; /* an initializer listed as an input */
        ok = add_input(ox, g->input[i], defs, n_defs, used);
        if (!ok) break;
        OxValue *v = ox_lookup(ox, g->input[i]->name ? g->input[i]->name : "");
        sb_printf(params, "%s%s: %s", params->len ? ", " : "", v->expr, ox_type_text(ox, v->elem, v->rank, v->dim));
    }
    for (int i = 0; ok && i < n_defs; i++) {
        if (used[i]) continue;
        const char *dims = symbolic_dims(ox);
        ok = diag_error_plain(ox->d, "-D %s: no symbolic dim named '%s' in %s (%s%s)", defs[i].name, defs[i].name,
                              ox->path, dims ? "its symbolic dims: " : "it has none", dims ? dims : "");
    }
    free(used);
    return ok;
}

/* ---- the walk --------------------------------------------------------------------- */

/* Counts name as read by node `reader` of the graph being walked (-1: a graph output). */
static void count_read(OxImport *ox, const char *name, int reader) {
    if (!name || !*name) return;
    OxValue *r = ox_lookup_in(&ox->readers, name);
    if (!r) {
        r = arena_alloc(ox->a, sizeof *r);
        r->name = name;
        ox_table_put(ox->a, &ox->readers, r);
    }
    r->uses++;
    r->producer = reader;
}

/* The values the nodes of a subgraph (a Scan's body, nested ones too) read,
 * counted as read by the node holding it. */
static void count_subgraph_reads(OxImport *ox, const Onnx__NodeProto *p, int reader) {
    for (size_t a = 0; a < p->n_attribute; a++) {
        const Onnx__GraphProto *g = p->attribute[a]->g;
        for (size_t i = 0; g && i < g->n_node; i++) {
            for (size_t k = 0; k < g->node[i]->n_input; k++) count_read(ox, g->node[i]->input[k], reader);
            count_subgraph_reads(ox, g->node[i], reader);
        }
        for (size_t k = 0; g && k < g->n_output; k++) count_read(ox, g->output[k]->name, reader);
    }
}

static void count_readers(OxImport *ox) {
    const Onnx__GraphProto *g = ox->graph;
    for (size_t i = 0; i < g->n_node; i++) {
        for (size_t k = 0; k < g->node[i]->n_input; k++) count_read(ox, g->node[i]->input[k], (int)i);
        count_subgraph_reads(ox, g->node[i], (int)i);
    }
    for (size_t k = 0; k < g->n_output; k++) count_read(ox, g->output[k]->name, -1);
}

static bool is_read(OxImport *ox, const char *name) {
    OxValue *r = ox_lookup_in(&ox->readers, name);
    return r && r->uses > 0;
}

static bool translate(OxImport *ox, int index) {
    const Onnx__NodeProto *p = ox->graph->node[index];
    OxNode n = {.proto = p, .index = index};
    ox->node = &n;
    if (!p->op_type) return ox_error(ox, "a node has no op_type");
    if (p->domain && *p->domain && strcmp(p->domain, "ai.onnx"))
        return ox_error(ox, "op '%s' of domain '%s' is not supported (only the default ONNX domain)", p->op_type, p->domain);
    if (ox->absorbed[index]) { /* the bias Add of a MatMul made into a Linear, the Reciprocal of an rsqrt */
        OxValue *linear = ox_lookup(ox, ox->absorbed[index]);
        bool ok = linear && ox_alias(ox, &n, 0, linear);
        ox->node = NULL;
        return ok;
    }
    const OxOp *op = ox_find_op(p->op_type);
    if (!op) {
        const char *near = ox_nearest_op(p->op_type);
        return ox_error(ox, "op '%s' is not supported by etch import%s%s%s (docs/onnx.md lists the ops)", p->op_type,
                        near ? " (nearest supported: " : "", near ? near : "", near ? ")" : "");
    }
    int count = (int)p->n_input;
    while (count > 0 && (!p->input[count - 1] || !*p->input[count - 1])) count--;
    if (count < op->min_in || count > op->max_in)
        return ox_error(ox, "it has %d inputs; %s takes %d to %d", count, p->op_type, op->min_in, op->max_in);
    n.n_in = count;
    n.in = arena_alloc(ox->a, sizeof(OxValue *) * (size_t)(count + 1));
    for (int k = 0; k < count; k++) {
        if (!*p->input[k]) {
            if (k < op->min_in) return ox_error(ox, "input %d is required", k);
            continue;
        }
        if (!(n.in[k] = ox_lookup(ox, p->input[k])))
            return ox_error(ox, "it reads '%s', which no earlier node, graph input or initializer defines", p->input[k]);
    }
    if (!p->n_output) return ox_error(ox, "it has no outputs");
    for (size_t k = 0; k < p->n_output; k++)
        if (!p->output[k]) return ox_error(ox, "an output has no name");
    int errors = ox->d ? ox->d->n_errors : 0;
    if (!op->rule(ox, &n, op->arg)) {
        if (ox->d && ox->d->n_errors == errors) ox_error(ox, "cannot import this node");
        return false;
    }
    for (size_t k = 0; k < p->n_output; k++)
        if (*p->output[k] && !ox_lookup(ox, p->output[k]) && is_read(ox, p->output[k]))
            return ox_error(ox, "output %zu ('%s') is not supported, and the graph reads it", k, p->output[k]);
    ox->node = NULL;
    return true;
}

bool ox_walk_body(OxImport *ox, const Onnx__GraphProto *g) {
    const Onnx__GraphProto *outer = ox->graph;
    const OxNode *node = ox->node;
    OxTable readers = ox->readers;
    const char **absorbed = ox->absorbed;
    ox->graph = g;
    ox->readers = (OxTable){0};
    ox->absorbed = arena_alloc(ox->a, sizeof(const char *) * (g->n_node + 1));
    count_readers(ox);
    bool ok = true;
    for (size_t i = 0; ok && i < g->n_initializer; i++) {
        OxValue *v = ox_tensor_value(ox, g->initializer[i], g->initializer[i]->name);
        ok = v && ox_bind(ox, v->name, v);
    }
    for (size_t i = 0; ok && i < g->n_node; i++) ok = translate(ox, (int)i);
    ox->graph = outer;
    ox->node = node;
    ox->readers = readers;
    ox->absorbed = absorbed;
    return ok;
}

/* "return a, b" and the declared type "-> T" or "-> (T, U)". */
static bool add_outputs(OxImport *ox, StrBuf *ret, StrBuf *types) {
    const Onnx__GraphProto *g = ox->model->graph;
    if (!g->n_output) return ox_error(ox, "the graph has no outputs");
    for (size_t i = 0; i < g->n_output; i++) {
        const char *name = g->output[i]->name ? g->output[i]->name : "";
        OxValue *v = ox_lookup(ox, name);
        if (!v) return ox_error(ox, "graph output '%s' is computed by no node", name);
        const char *s = ox_operand(ox, v, -1);
        if (!s) return false;
        const Onnx__TypeProto *t = g->output[i]->type;
        if (t && t->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && t->tensor_type && t->tensor_type->shape) {
            const Onnx__TensorShapeProto *sh = t->tensor_type->shape;
            bool same = (int)sh->n_dim == v->rank;
            for (int k = 0; same && k < v->rank; k++)
                same = sh->dim[k]->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ||
                       sh->dim[k]->dim_value == v->dim[k];
            if (!same) return ox_error(ox, "the graph declares output '%s' with %zu dims that disagree with %s, its shape "
                                           "as computed from the inputs",
                                       name, sh->n_dim, ox_list(ox, v->dim, v->rank));
        }
        sb_printf(ret, "%s%s", i ? ", " : "", s);
        sb_printf(types, "%s%s", i ? ", " : "", ox_type_text(ox, v->elem, v->rank, v->dim));
    }
    return true;
}

/* "mlp.onnx" -> "Mlp": the base name as an identifier, capitalized. */
static const char *model_name(OxImport *ox) {
    const char *base = strrchr(ox->path, '/');
    base = base ? base + 1 : ox->path;
    char *s = arena_strndup(ox->a, base, strlen(base) - 5);
    for (char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p)) *p = '_';
    if (!isalpha((unsigned char)s[0])) s = arena_printf(ox->a, "Model%s", s);
    s[0] = (char)toupper((unsigned char)s[0]);
    return ox_fresh_name(ox, ox_lookup_in(&ox->names, s) ? arena_printf(ox->a, "%sModel", s) : s);
}

static bool run(OxImport *ox, const Define *defs, int n_defs, const char *weights_note, OnnxModel *out) {
    if (!ox_load(ox)) return false;
    const Onnx__GraphProto *g = ox->graph = ox->model->graph;
    ox_names_init(ox);
    const char *name = model_name(ox);
    for (size_t i = 0; i < g->n_initializer; i++) {
        OxValue *v = ox_tensor_value(ox, g->initializer[i], g->initializer[i]->name);
        if (!v) return false;
        v->initializer = true;
        if (!ox_bind(ox, v->name, v)) return false;
    }
    StrBuf params = {0}, ret = {0}, types = {0};
    bool ok = add_inputs(ox, defs, n_defs, &params);
    if (ok) {
        count_readers(ox);
        ox->absorbed = arena_alloc(ox->a, sizeof(const char *) * (g->n_node + 1));
    }
    for (size_t i = 0; ok && i < g->n_node; i++) ok = translate(ox, (int)i);
    ox->node = NULL;
    ok = ok && add_outputs(ox, &ret, &types);
    if (ok) {
        StrBuf t = {0};
        const Onnx__ModelProto *m = ox->model;
        sb_printf(&t, "// Imported by `etch import` from %s", ox->path);
        if (m->producer_name && *m->producer_name)
            sb_printf(&t, " (%s%s%s)", m->producer_name, m->producer_version && *m->producer_version ? " " : "",
                      m->producer_version ? m->producer_version : "");
        sb_printf(&t, ": ONNX IR %lld, opset %lld.\n", (long long)m->ir_version, (long long)ox->opset);
        for (int i = 0; i < n_defs; i++) sb_printf(&t, "// -D %s=%s\n", defs[i].name, defs[i].value);
        if (weights_note) sb_printf(&t, "// Its weights: %s (etch run/build ... --weights %s).\n", weights_note, weights_note);
        sb_printf(&t, "model %s {\n%s  fn forward(%s) -> %s%s%s {\n%s    return %s\n  }\n}\n", name,
                  ox->members.s ? ox->members.s : "", params.s ? params.s : "", g->n_output > 1 ? "(" : "", types.s,
                  g->n_output > 1 ? ")" : "", ox->body.s ? ox->body.s : "", ret.s);
        out->source = arena_strdup(ox->a, t.s);
        out->model_name = name;
        out->weights = (etch_st_file){.n = ox->n_weights, .tensors = ox->weights};
        sb_free(&t);
    }
    sb_free(&params);
    sb_free(&ret);
    sb_free(&types);
    return ok;
}

bool onnx_import(Arena *a, const char *path, const Define *defs, int n_defs, const char *weights_note,
                 OnnxModel *out, Diag *d) {
    const char *slash = strrchr(path, '/');
    OxImport ox = {.a = a, .d = d, .path = path, .dir = slash ? arena_strndup(a, path, (size_t)(slash - path)) : "."};
    if (slash == path) ox.dir = "/";
    bool ok = run(&ox, defs, n_defs, weights_note, out);
    if (ox.model) onnx__model_proto__free_unpacked(ox.model, NULL);
    sb_free(&ox.members);
    sb_free(&ox.body);
    return ok;
}

Program *onnx_compile_file(Arena *a, const char *path, const Define *defs, int n_defs, Diag *d) {
    OnnxModel m;
    if (!onnx_import(a, path, defs, n_defs, NULL, &m, d)) return NULL;
    Program *p = frontend_compile_source(a, arena_printf(a, "%s (imported)", path), m.source, NULL, 0, d);
    if (!p) return NULL;
    etch_st_file *w = arena_alloc(a, sizeof *w);
    *w = m.weights;
    p->weights = w;
    return p;
}
