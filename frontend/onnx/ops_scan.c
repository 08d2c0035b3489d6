/* ops_scan.c: ONNX Scan (opset 9+ form) as one run-time `for` loop, the
 * construct ops_rnn.c writes LSTM/GRU recurrences with and the one etch's
 * exporter turns into Scan (codegen/onnx/scan.c), so exported loops read
 * back. The state variables become the loop's carries (`let s = init`
 * before it, `s = new` at the end of the body), the scan input the loop
 * variable (`for xt in xs`, or `reversed(xs)` when both directions are 1),
 * the scan outputs what each step yields, and the body graph's nodes are
 * translated in place, through the same op table, into the loop's body.
 * Supported: one scan input, scan axes 0, input and output directions all 0
 * or all 1 (what the DSL's loops mean); anything else is an error naming the
 * attribute. */
#include <string.h>

#include "frontend/onnx/onnx_internal.h"

/* The ints attribute name: absent, or every entry equal to want over count entries. */
static bool uniform_ints(OxImport *ox, OxNode *n, const char *name, int count, int64_t *value) {
    const int64_t *v;
    int c;
    if (!ox_attr_ints(ox, n, name, &v, &c)) return false;
    if (c < 0) return true;
    if (c != count) return ox_error(ox, "%s has %d entries; the Scan has %d", name, c, count);
    for (int i = 0; i < c; i++) {
        if (i == 0) *value = v[0];
        if (v[i] != *value)
            return ox_error(ox, "%s mixes values (%lld and %lld); etch import reads Scan with one direction for all", name,
                            (long long)*value, (long long)v[i]);
    }
    return true;
}

/* The text of a carry's initial value: zeros()/full() for a uniform float constant. */
static const char *initial_text(OxImport *ox, OxValue *v) {
    if (v->data && v->elem == OX_FLOAT) {
        double first = ox_get(v, 0);
        bool uniform = true;
        for (int64_t i = 1; uniform && i < ox_numel(v); i++) uniform = ox_get(v, i) == first;
        const char *lit = uniform ? ox_number(ox, first, v->elem) : NULL;
        if (lit && first == 0) return arena_printf(ox->a, "zeros(%s)", ox_list(ox, v->dim, v->rank));
        if (lit) return arena_printf(ox->a, "full(%s, %s)", ox_list(ox, v->dim, v->rank), lit);
    }
    return ox_operand(ox, v, -1);
}

/* Binds body input name to a run-time value held by the DSL name expr. */
static bool bind_body_input(OxImport *ox, const Onnx__ValueInfoProto *in, const OxValue *like, int skip_dim,
                            const char *expr) {
    OxValue *v = arena_alloc(ox->a, sizeof *v);
    v->elem = like->elem;
    v->rank = like->rank - skip_dim;
    memcpy(v->dim, like->dim + skip_dim, sizeof(int64_t) * (size_t)v->rank);
    v->expr = expr;
    v->producer = -1;
    return ox_bind(ox, arena_strdup(ox->a, in->name ? in->name : ""), v);
}

/* Appends text to b with two more spaces before each line (the loop's body). */
static void indent_into(StrBuf *b, const char *text) {
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);
        sb_printf(b, "  %.*s", (int)len, p);
        p += len;
    }
}

bool ox_rule_scan(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    const Onnx__AttributeProto *ba = ox_attr(n, "body");
    if (!ba || ba->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH || !ba->g)
        return ox_error(ox, "Scan needs a graph attribute 'body'");
    const Onnx__GraphProto *g = ba->g;
    int64_t nx;
    if (!ox_attr_int(ox, n, "num_scan_inputs", -1, &nx)) return false;
    if (nx < 1 || nx > n->n_in) return ox_error(ox, "num_scan_inputs is %lld; the Scan has %d inputs", (long long)nx, n->n_in);
    if (nx != 1)
        return ox_error(ox, "num_scan_inputs is %lld; etch import reads Scan with one scan input (a loop runs over one "
                            "sequence)",
                        (long long)nx);
    int nc = n->n_in - (int)nx, n_out = (int)n->proto->n_output, ny = n_out - nc;
    if (ny < 0 || (int)g->n_input != n->n_in || (int)g->n_output != n_out)
        return ox_error(ox, "its body has %zu inputs and %zu outputs; with %d state variables and %lld scan input it "
                            "needs %d and %d",
                        g->n_input, g->n_output, nc, (long long)nx, n->n_in, n_out);
    int64_t in_axis = 0, out_axis = 0, in_dir = 0, out_dir = -1;
    if (!uniform_ints(ox, n, "scan_input_axes", (int)nx, &in_axis) ||
        !uniform_ints(ox, n, "scan_output_axes", ny, &out_axis) ||
        !uniform_ints(ox, n, "scan_input_directions", (int)nx, &in_dir) ||
        !uniform_ints(ox, n, "scan_output_directions", ny, &out_dir))
        return false;
    if (in_axis != 0 || out_axis != 0)
        return ox_error(ox, "%s is %lld; etch import reads Scan over axis 0 only", in_axis ? "scan_input_axes" : "scan_output_axes",
                        (long long)(in_axis ? in_axis : out_axis));
    if (out_dir < 0) out_dir = in_dir; /* no scan outputs, or the attribute absent */
    if ((in_dir != 0 && in_dir != 1) || in_dir != out_dir)
        return ox_error(ox, "scan_input_directions %lld with scan_output_directions %lld; etch import reads both 0 "
                            "(forward) or both 1 (reverse)",
                        (long long)in_dir, (long long)out_dir);
    OxValue *xs = n->in[nc];
    if (!xs || xs->rank < 1) return ox_error(ox, "its scan input must have at least one dim");
    const char *xs_text = ox_operand(ox, xs, -1);
    if (!xs_text) return false;

    /* the carries, before the loop */
    const char **carry = arena_alloc(ox->a, sizeof *carry * (size_t)(nc + 1));
    for (int k = 0; k < nc; k++) {
        if (!n->in[k]) return ox_error(ox, "state variable %d is missing", k);
        const char *init = initial_text(ox, n->in[k]);
        if (!init) return false;
        carry[k] = ox_fresh_name(ox, g->input[k]->name ? g->input[k]->name : "carry");
        sb_printf(&ox->body, "    let %s = %s\n", carry[k], init);
        if (!bind_body_input(ox, g->input[k], n->in[k], 0, carry[k])) return false;
    }
    const char *xt = ox_fresh_name(ox, g->input[nc]->name ? g->input[nc]->name : "xt");
    if (!bind_body_input(ox, g->input[nc], xs, 1, xt)) return false;

    /* the body, translated into its own text, then indented into the loop */
    StrBuf outer = ox->body;
    ox->body = (StrBuf){0};
    bool ok = ox_walk_body(ox, g);
    StrBuf inner = ox->body;
    ox->body = outer;
    const char **text = arena_alloc(ox->a, sizeof *text * (size_t)(n_out + 1));
    OxValue **val = arena_alloc(ox->a, sizeof *val * (size_t)(n_out + 1));
    for (int k = 0; ok && k < n_out; k++) {
        const char *name = g->output[k]->name ? g->output[k]->name : "";
        val[k] = ox_lookup(ox, name);
        if (!val[k]) {
            ok = ox_error(ox, "body output '%s' is computed by no node", name);
            break;
        }
        text[k] = ox_operand(ox, val[k], -1);
        ok = text[k] != NULL;
        if (ok && k < nc && (val[k]->elem != n->in[k]->elem || val[k]->rank != n->in[k]->rank ||
                             memcmp(val[k]->dim, n->in[k]->dim, sizeof(int64_t) * (size_t)val[k]->rank)))
            ok = ox_error(ox, "body output %d (state '%s') is %s; the state is %s", k, name,
                          ox_type_text(ox, val[k]->elem, val[k]->rank, val[k]->dim),
                          ox_type_text(ox, n->in[k]->elem, n->in[k]->rank, n->in[k]->dim));
    }
    /* an output that is a state's old value reads it (one copy per state) before any state is assigned */
    const char **old = arena_alloc(ox->a, sizeof *old * (size_t)(nc + 1));
    for (int k = 0; ok && k < n_out; k++)
        for (int j = 0; j < nc; j++)
            if (j != k && !strcmp(text[k], carry[j])) {
                if (!old[j]) {
                    old[j] = ox_fresh_name(ox, arena_printf(ox->a, "%s_old", carry[j]));
                    sb_printf(&inner, "    let %s = %s\n", old[j], carry[j]);
                }
                text[k] = old[j];
                break;
            }
    const char **ys = arena_alloc(ox->a, sizeof *ys * (size_t)(ny + 1));
    if (ok) {
        StrBuf names = {0};
        for (int k = 0; k < ny; k++) {
            ys[k] = ox_fresh_name(ox, *ox_out_name(n, nc + k) ? ox_out_name(n, nc + k) : "scan_out");
            sb_printf(&names, "%s%s", k ? ", " : "", ys[k]);
        }
        if (ny) sb_printf(&ox->body, "    let %s = ", names.s);
        else sb_puts(&ox->body, "    ");
        sb_printf(&ox->body, "for %s in %s%s%s {\n", xt, in_dir ? "reversed(" : "", xs_text, in_dir ? ")" : "");
        indent_into(&ox->body, inner.s);
        for (int k = 0; k < nc; k++)
            if (strcmp(text[k], carry[k])) sb_printf(&ox->body, "      %s = %s\n", carry[k], text[k]);
        for (int k = 0; k < ny; k++) sb_printf(&ox->body, "%s%s", k ? ", " : "      yield ", text[nc + k]);
        sb_printf(&ox->body, "%s    }\n", ny ? "\n" : "");
        sb_free(&names);
    }
    sb_free(&inner);
    /* the node's outputs: the final states, then the stacked scan outputs */
    for (int k = 0; ok && k < n_out; k++) {
        if (!*ox_out_name(n, k)) continue;
        OxValue v = {.elem = val[k]->elem, .rank = val[k]->rank, .expr = k < nc ? carry[k] : ys[k - nc],
                     .producer = n->index};
        memcpy(v.dim, val[k]->dim, sizeof(int64_t) * (size_t)v.rank);
        if (k >= nc) { /* stacked: [T, ...] */
            if (v.rank + 1 > OX_MAX_RANK) return ox_error(ox, "scan output %d would have more than %d dims", k - nc, OX_MAX_RANK);
            memmove(v.dim + 1, v.dim, sizeof(int64_t) * (size_t)v.rank);
            v.dim[0] = xs->dim[0];
            v.rank++;
        }
        ok = ox_alias(ox, n, k, &v);
    }
    return ok;
}
