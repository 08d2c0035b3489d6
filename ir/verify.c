/* verify.c: the IR verifier. Checks the invariants every pass may assume and
 * every pass must keep (ir.h): operands precede their users, arities and
 * attributes fit the op, each node's stored dtype/shape is what its op's shape
 * rule infers from its operands, fusion groups are consistent, and the
 * graph's inputs/params/outputs lists agree with its nodes. Passes run it
 * after rewriting a graph, so a pass bug shows up as "in node %7
 * (transpose): ..." right where it was made instead of as a wrong number or a
 * crash in generated code much later.
 *
 * The verifier trusts nothing in the graph: it checks ranges (op kind, dtype,
 * rank, operand ids) before anything indexes with them, and only runs a shape
 * rule on a node whose operands are themselves well formed. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

typedef struct Verifier {
    const Graph *g;
    Diag *d;
    int n_errors;
    const SrcLoc *locs; /* where to report node problems (the parser's IR text); NULL: the nodes' own */
    bool first_only;    /* stop checking groups after the first problem */
} Verifier;

static void verify_error(Verifier *V, int id, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Reports "in node %N (op): MESSAGE" at the node's source location. */
static void verify_error(Verifier *V, int id, const char *fmt, ...) {
    const Node *n = &V->g->nodes[id];
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *op = (unsigned)n->op < OP_COUNT ? op_table[n->op].name : "?";
    diag_error(V->d, V->locs ? V->locs[id] : n->loc, "in node %%%d (%s): %s", id, op, msg);
    V->n_errors++;
}

static void verify_graph_error(Verifier *V, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Graph-level problems (the inputs/params/outputs lists) have no node to blame. */
static void verify_graph_error(Verifier *V, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    diag_error_plain(V->d, "in graph %s: %s", V->g->name ? V->g->name : "?", msg);
    V->n_errors++;
}

/* Rank in range, dims positive, element count fits int64; NULL when fine. */
static const char *shape_problem(const Shape *s) {
    if (s->rank < 0 || s->rank > ETCH_MAX_RANK) return "its rank is out of range";
    int64_t numel = 1;
    for (int i = 0; i < s->rank; i++) {
        if (s->dim[i] <= 0) return "it has a dimension that is not positive";
        if (numel > INT64_MAX / s->dim[i]) return "its element count overflows";
        numel *= s->dim[i];
    }
    return NULL;
}

/* Whether a node's own type fields can be read safely by a shape rule. */
static bool node_type_ok(const Node *n) { return (unsigned)n->dtype < DT_COUNT && !shape_problem(&n->shape); }

/* Checks n's own type; false if it is unusable. */
static bool verify_own_type(Verifier *V, int id) {
    const Node *n = &V->g->nodes[id];
    if ((unsigned)n->dtype >= DT_COUNT) {
        verify_error(V, id, "invalid dtype %d", (int)n->dtype);
        return false;
    }
    const char *why = shape_problem(&n->shape);
    if (why) {
        verify_error(V, id, "invalid result shape: %s", why);
        return false;
    }
    return true;
}

/* Operand count and ids; false if the operands cannot be looked at. */
static bool verify_operands(Verifier *V, int id) {
    const Node *n = &V->g->nodes[id];
    const OpInfo *info = &op_table[n->op];
    if (!op_arity_ok(n->op, n->n_in)) {
        verify_error(V, id, "has %d operand%s but '%s' takes %d", n->n_in, n->n_in == 1 ? "" : "s", info->name,
                     info->arity);
        return false;
    }
    if (n->n_in > 0 && !n->in) {
        verify_error(V, id, "has no operand array");
        return false;
    }
    bool ok = true;
    for (int k = 0; k < n->n_in; k++) {
        int x = n->in[k];
        if (x < 0 || x >= V->g->n_nodes) {
            verify_error(V, id, "operand %d refers to %%%d, which does not exist", k, x);
            ok = false;
        } else if (x >= id) {
            verify_error(V, id, "operand %d refers to %%%d, which does not precede it", k, x);
            ok = false;
        } else if (!node_type_ok(&V->g->nodes[x])) {
            ok = false; /* already reported at the operand itself */
        }
    }
    return ok;
}

static void format_axes(char *buf, size_t n, const int *axes, int count) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < count && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%d", i ? ", " : "", axes[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* Attribute checks with messages more specific than the shape rules give;
 * false stops the rule from running on attributes it would misread. */
static bool verify_attrs(Verifier *V, int id) {
    const Graph *g = V->g;
    const Node *n = &g->nodes[id];
    const NodeAttrs *at = &n->attr;
    int rank = n->n_in > 0 ? g->nodes[n->in[0]].shape.rank : 0;
    char buf[96];
    switch (n->op) {
    case OP_INPUT:
    case OP_PARAM:
        if (!at->name || !at->name[0]) {
            verify_error(V, id, "has no name");
            return false;
        }
        if (n->op == OP_PARAM && (unsigned)at->init.kind > INIT_NORMAL) {
            verify_error(V, id, "invalid init kind %d", (int)at->init.kind);
            return false;
        }
        break;
    case OP_TRANSPOSE: {
        bool seen[ETCH_MAX_RANK] = {false}, ok = at->n_axes == rank;
        for (int i = 0; ok && i < at->n_axes; i++) {
            ok = at->axes[i] >= 0 && at->axes[i] < rank && !seen[at->axes[i]];
            if (ok) seen[at->axes[i]] = true;
        }
        if (!ok) {
            format_axes(buf, sizeof buf, at->axes, at->n_axes < 0 ? 0 : at->n_axes > ETCH_MAX_RANK ? 0 : at->n_axes);
            verify_error(V, id, "perm %s is not a permutation of the operand's %d axes", buf, rank);
            return false;
        }
        break;
    }
    case OP_REDUCE_SUM:
    case OP_REDUCE_MAX:
    case OP_REDUCE_MEAN: {
        if (at->n_axes < 0 || at->n_axes > rank) {
            verify_error(V, id, "reduces %d axes of a rank-%d operand", at->n_axes, rank);
            return false;
        }
        bool seen[ETCH_MAX_RANK] = {false};
        for (int i = 0; i < at->n_axes; i++) {
            int ax = at->axes[i];
            if (ax < 0 || ax >= rank) {
                verify_error(V, id, "axis %d is out of range for a rank-%d operand", ax, rank);
                return false;
            }
            if (seen[ax]) {
                verify_error(V, id, "axis %d is listed twice", ax);
                return false;
            }
            seen[ax] = true;
        }
        break;
    }
    case OP_SOFTMAX:
    case OP_LOG_SOFTMAX:
        if (at->axis < 0 || at->axis >= rank) {
            verify_error(V, id, "axis %d is out of range for a rank-%d operand", at->axis, rank);
            return false;
        }
        break;
    default: break;
    }
    /* ops whose target type lives in the attrs: the rule reads attr.shape */
    if (op_table[n->op].cls == OPC_SOURCE || n->op == OP_RESHAPE || n->op == OP_BROADCAST ||
        n->op == OP_CONV2D_BWD_INPUT || n->op == OP_CONV2D_BWD_WEIGHT || n->op == OP_AVG_POOL2D_BWD ||
        n->op == OP_SCATTER_ADD_ROWS) {
        const char *why = shape_problem(&at->shape);
        if (why) {
            verify_error(V, id, "invalid target shape: %s", why);
            return false;
        }
    }
    return true;
}

/* Runs the op's shape rule on a copy of the node and compares its verdict
 * with what is stored. The rule reports into a private Diag; its message is
 * re-reported with the node's id so the user sees which node is wrong. */
static void verify_inferred_type(Verifier *V, int id) {
    const Node *n = &V->g->nodes[id];
    Node m = *n;
    m.loc = (SrcLoc){0}; /* the rule's message then reads "etch: error: MSG" */
    Diag tmp;
    diag_init(&tmp, NULL);
    /* Shape rules take a mutable graph only to share the builder's signature;
     * they read operands and write the node they are given (our copy). */
    bool ok = op_table[n->op].shape((Graph *)V->g, &m, &tmp);
    if (!ok) {
        const char *msg = tmp.text ? tmp.text : "";
        const char *prefix = "etch: error: ";
        if (strncmp(msg, prefix, strlen(prefix)) == 0) msg += strlen(prefix);
        verify_error(V, id, "%.*s", (int)strcspn(msg, "\n"), msg);
    } else if (m.dtype != n->dtype || !shape_equal(&m.shape, &n->shape)) {
        char stored[96], inferred[96];
        verify_error(V, id, "stored type %s disagrees with the inferred %s",
                     type_format(stored, sizeof stored, n->dtype, &n->shape),
                     type_format(inferred, sizeof inferred, m.dtype, &m.shape));
    }
    diag_dispose(&tmp);
}

/* Fusion groups (FuseGroup, ir.h), which backends trust without looking
 * again: a node in no group has kind FUSE_NONE and id and at zero; group ids
 * are 1..n_nodes; every member of a group has its kind and its `at`, which
 * names a member; params and scans are never members; an epilogue holds
 * exactly one matmul and no other kind holds one; a reduce group runs at a
 * reduction; a row group holds a reduction or a softmax. */
static void verify_groups(Verifier *V) {
    const Graph *g = V->g;
    int n = g->n_nodes;
    int *first = malloc(sizeof(int) * (size_t)(n + 1)), *matmuls = calloc((size_t)n + 1, sizeof(int));
    bool *stage = calloc((size_t)n + 1, sizeof(bool));
    if (!first || !matmuls || !stage) abort();
    for (int i = 0; i <= n; i++) first[i] = -1;
    for (int id = 0; id < n && !(V->first_only && V->n_errors); id++) {
        const Node *x = &g->nodes[id];
        const FuseGroup *fg = &x->attr.group;
        if ((unsigned)x->op >= OP_COUNT) continue;
        if (fg->kind == FUSE_NONE) {
            if (fg->id || fg->at)
                verify_error(V, id, "has group number %d and position %%%d but no group kind", fg->id, fg->at);
            continue;
        }
        if ((unsigned)fg->kind >= FUSE_KIND_COUNT) {
            verify_error(V, id, "invalid fusion group kind %d", (int)fg->kind);
            continue;
        }
        if (x->op == OP_PARAM || x->op == OP_SCAN) {
            verify_error(V, id, "a %s cannot be in a fusion group", op_table[x->op].name);
            continue;
        }
        if (fg->id < 1 || fg->id > n) {
            verify_error(V, id, "fusion group number %d is out of range (1 to %d)", fg->id, n);
            continue;
        }
        if (fg->at < 0 || fg->at >= n) {
            verify_error(V, id, "its fusion group runs at %%%d, which does not exist", fg->at);
            continue;
        }
        int f = first[fg->id];
        const FuseGroup *ff = f >= 0 ? &g->nodes[f].attr.group : fg;
        if (f < 0) first[fg->id] = id;
        else if (ff->kind != fg->kind || ff->at != fg->at) {
            verify_error(V, id, "is in fusion group %d as %s at %%%d, but %%%d is in it as %s at %%%d", fg->id,
                         fuse_kind_name(fg->kind), fg->at, f, fuse_kind_name(ff->kind), ff->at);
            continue;
        }
        matmuls[fg->id] += x->op == OP_MATMUL;
        stage[fg->id] = stage[fg->id] || op_table[x->op].cls == OPC_REDUCE || op_table[x->op].cls == OPC_SOFTMAX;
    }
    for (int gid = 1; gid <= n && !(V->first_only && V->n_errors); gid++) {
        if (first[gid] < 0) continue;
        const FuseGroup *fg = &g->nodes[first[gid]].attr.group;
        const Node *at = &g->nodes[fg->at];
        const char *kind = fuse_kind_name(fg->kind);
        if (at->attr.group.kind == FUSE_NONE || at->attr.group.id != gid)
            verify_error(V, first[gid], "fusion group %d runs at %%%d, which is not one of its members", gid, fg->at);
        else if (fg->kind == FUSE_EPILOGUE && matmuls[gid] != 1)
            verify_error(V, first[gid], "epilogue group %d holds %d matmuls (exactly one expected)", gid, matmuls[gid]);
        else if (fg->kind != FUSE_EPILOGUE && matmuls[gid])
            verify_error(V, first[gid], "%s group %d holds a matmul (only an epilogue group may)", kind, gid);
        else if (fg->kind == FUSE_REDUCE && op_table[at->op].cls != OPC_REDUCE)
            verify_error(V, first[gid], "reduce group %d runs at %%%d, which is not a reduction", gid, fg->at);
        else if (fg->kind == FUSE_ROWS && !stage[gid])
            verify_error(V, first[gid], "rows group %d holds no reduction or softmax", gid);
    }
    free(first);
    free(matmuls);
    free(stage);
}

/* The graph's inputs (or params) list must hold exactly the nodes of that op,
 * in node order, with distinct names. */
static void verify_source_list(Verifier *V, OpKind op, const int *list, int n_list, const char *what) {
    const Graph *g = V->g;
    int count = 0;
    for (int i = 0; i < g->n_nodes; i++) count += g->nodes[i].op == op;
    int *ids = malloc(sizeof(int) * (size_t)(count ? count : 1));
    if (!ids) abort();
    count = 0;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == op) ids[count++] = i;
    if (n_list < 0 || (n_list > 0 && !list)) {
        verify_graph_error(V, "the %s list is corrupt (%d entries)", what, n_list);
        n_list = 0;
    }
    /* one report at the first difference; the rest would only repeat it */
    for (int k = 0; k < count || k < n_list; k++) {
        if (k < count && k < n_list && list[k] == ids[k]) continue;
        if (k < count && k < n_list)
            verify_error(V, ids[k], "should be entry %d of the graph's %s list, which holds %%%d there", k, what,
                         list[k]);
        else if (k < count)
            verify_error(V, ids[k], "is missing from the graph's %s list (%d entries)", what, n_list);
        else
            verify_graph_error(V, "%s list entry %d is %%%d, which is not one of its %d %s nodes", what, k, list[k],
                               count, op_table[op].name);
        break;
    }
    for (int i = 0; i < count; i++) {
        const char *a = g->nodes[ids[i]].attr.name;
        for (int j = 0; a && j < i; j++) {
            const char *b = g->nodes[ids[j]].attr.name;
            if (b && strcmp(a, b) == 0) {
                verify_error(V, ids[i], "%s name \"%s\" is already used by %%%d", op_table[op].name, a, ids[j]);
                break;
            }
        }
    }
    free(ids);
}

bool ir_verify_groups(const Graph *g, const SrcLoc *locs, Diag *d) {
    Verifier V = {.g = g, .d = d, .locs = locs, .first_only = true};
    verify_groups(&V);
    return V.n_errors == 0;
}

bool ir_verify(const Graph *g, Diag *d) {
    Verifier V = {.g = g, .d = d};
    if (!g) return diag_error_plain(d, "no graph to verify");
    if (g->n_nodes < 0 || (g->n_nodes > 0 && !g->nodes)) {
        verify_graph_error(&V, "the node array is corrupt (%d nodes)", g->n_nodes);
        return false;
    }
    for (int id = 0; id < g->n_nodes; id++) {
        const Node *n = &g->nodes[id];
        if ((unsigned)n->op >= OP_COUNT) {
            verify_error(&V, id, "unknown op kind %d", (int)n->op);
            continue;
        }
        /* each stage needs the previous one's fields to be trustworthy */
        if (n->op == OP_SCAN) { /* the body first: the scan's shape rule reads it */
            if (!n->attr.body) {
                verify_error(&V, id, "scan has no body graph");
                continue;
            }
            if (!ir_verify(n->attr.body, d)) {
                verify_error(&V, id, "scan body '%s' does not verify", n->attr.body->name);
                continue;
            }
        }
        if (verify_own_type(&V, id) && verify_operands(&V, id) && verify_attrs(&V, id))
            verify_inferred_type(&V, id);
    }
    verify_groups(&V);
    verify_source_list(&V, OP_INPUT, g->inputs, g->n_inputs, "inputs");
    verify_source_list(&V, OP_PARAM, g->params, g->n_params, "params");
    if (g->n_outputs < 0 || (g->n_outputs > 0 && !g->outputs))
        verify_graph_error(&V, "the outputs list is corrupt (%d entries)", g->n_outputs);
    else
        for (int k = 0; k < g->n_outputs; k++)
            if (g->outputs[k] < 0 || g->outputs[k] >= g->n_nodes)
                verify_graph_error(&V, "output %d refers to %%%d, which does not exist", k, g->outputs[k]);
    for (int k = 0; k < g->n_updates; k++) {
        int dst = g->upd_dst[k], src = g->upd_src[k];
        if (dst < 0 || dst >= g->n_nodes || src < 0 || src >= g->n_nodes) {
            verify_graph_error(&V, "update %d refers to a value that does not exist", k);
            continue;
        }
        const Node *pd = &g->nodes[dst], *ps = &g->nodes[src];
        if (pd->op != OP_PARAM) verify_graph_error(&V, "update %d writes %%%d, which is not a param", k, dst);
        else if (pd->dtype != ps->dtype || !shape_equal(&pd->shape, &ps->shape)) {
            char a[96], b[96];
            verify_graph_error(&V, "update %d writes %s %%%d into param '%s' of type %s", k,
                               type_format(a, sizeof a, ps->dtype, &ps->shape), src, pd->attr.name,
                               type_format(b, sizeof b, pd->dtype, &pd->shape));
        }
        for (int j = 0; j < k; j++)
            if (g->upd_dst[j] == dst) verify_graph_error(&V, "param %%%d is updated twice", dst);
    }
    return V.n_errors == 0;
}
