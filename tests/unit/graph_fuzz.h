/* graph_fuzz.h: random well-typed graphs for tests (test_passes,
 * test_codegen_ops). Nodes are proposed at random and kept when the op
 * table's shape rules accept them, so every graph is valid by construction;
 * mostly recent nodes are picked as operands, so chains (and the patterns
 * the passes rewrite) form. Header-only: each test includes it once. */
#ifndef ETCH_TESTS_GRAPH_FUZZ_H
#define ETCH_TESTS_GRAPH_FUZZ_H

#include <stdio.h>

#include "ir/ir.h"

static SrcLoc FUZZ_LOC = {"fuzz.etch", 1, 1};

static uint64_t fuzz_rng_next(uint64_t *s) {
    *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

typedef struct Fuzz {
    Graph *g;
    uint64_t rng;
    int n_params;
} Fuzz;

static int fz_rand(Fuzz *F, int n) { return (int)(fuzz_rng_next(&F->rng) % (uint64_t)n); }

/* Mostly recent nodes, so chains (and rewrite patterns) form. */
static int fz_pick(Fuzz *F) {
    int n = F->g->n_nodes;
    return fz_rand(F, 3) ? n - 1 - fz_rand(F, n < 4 ? n : 4) : fz_rand(F, n);
}

static int fz_try(Fuzz *F, OpKind op, const int *ins, int n, const NodeAttrs *at) {
    /* integer x / 0 is inf, and storing that into an integer is UB in the kernels */
    if (op == OP_DIV && !dtype_is_float(F->g->nodes[ins[0]].dtype)) return -1;
    Diag d;
    diag_init(&d, NULL);
    int id = graph_add_op(F->g, op, ins, n, at, FUZZ_LOC, &d); /* rejected when ill-typed */
    diag_dispose(&d);
    return id;
}

static Shape fz_shape(Fuzz *F) {
    Shape s = {.rank = fz_rand(F, 4)};
    for (int i = 0; i < s.rank; i++) s.dim[i] = 1 + fz_rand(F, 3);
    return s;
}

/* One random node (or -1 when the builder rejected the combination). */
static int fz_node(Fuzz *F) {
    Graph *g = F->g;
    int x = fz_pick(F), y = fz_pick(F);
    const Node *xn = &g->nodes[x];
    int r = xn->shape.rank;
    NodeAttrs at = {0};
    static const OpKind bin[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MAX, OP_MIN, OP_GT, OP_EQ};
    static const OpKind un[] = {OP_NEG, OP_EXP, OP_TANH, OP_RELU, OP_ABS, OP_SIGMOID, OP_SQRT};
    static const double vals[] = {0, 1, -1, 2, 0.5, -0.0};
    switch (fz_rand(F, 16)) {
    case 0:
    case 1: return fz_try(F, bin[fz_rand(F, 8)], (int[]){x, y}, 2, NULL);
    case 2: return fz_try(F, un[fz_rand(F, 7)], &x, 1, NULL);
    case 3: { /* identity-shaped arithmetic with a constant */
        Shape s = fz_rand(F, 2) ? (Shape){0} : xn->shape;
        int c = graph_add_const(g, vals[fz_rand(F, 6)], xn->dtype, s, FUZZ_LOC);
        OpKind op = bin[fz_rand(F, 4)];
        return fz_try(F, op, fz_rand(F, 2) ? (int[]){x, c} : (int[]){c, x}, 2, NULL);
    }
    case 4: at.dtype = fz_rand(F, 2) ? DT_F64 : DT_F32; return fz_try(F, OP_CAST, &x, 1, &at);
    case 5:
    case 6: {
        at.keepdims = fz_rand(F, 2);
        for (int i = 0; i < r; i++)
            if (fz_rand(F, 2)) at.axes[at.n_axes++] = i;
        static const OpKind red[] = {OP_REDUCE_SUM, OP_REDUCE_MAX, OP_REDUCE_MEAN};
        return fz_try(F, red[fz_rand(F, 3)], &x, 1, &at);
    }
    case 7: {
        at.n_axes = r;
        for (int i = 0; i < r; i++) at.axes[i] = i;
        for (int i = r - 1; i > 0; i--) { /* Fisher-Yates; sometimes just the last two */
            int j = fz_rand(F, 2) && i == r - 1 ? i - 1 : fz_rand(F, i + 1), t = at.axes[i];
            at.axes[i] = at.axes[j], at.axes[j] = t;
        }
        return fz_try(F, OP_TRANSPOSE, &x, 1, &at);
    }
    case 8: { /* flatten, add a leading 1, or drop the 1s */
        int64_t n = shape_numel(&xn->shape);
        int k = fz_rand(F, 3);
        if (k == 0) at.shape = (Shape){1, {n}};
        else if (k == 1 && r < ETCH_MAX_RANK) {
            at.shape.rank = r + 1, at.shape.dim[0] = 1;
            for (int i = 0; i < r; i++) at.shape.dim[i + 1] = xn->shape.dim[i];
        } else
            for (int i = 0; i < r; i++)
                if (xn->shape.dim[i] != 1) at.shape.dim[at.shape.rank++] = xn->shape.dim[i];
        return fz_try(F, OP_RESHAPE, &x, 1, &at);
    }
    case 9: {
        at.shape.rank = r + fz_rand(F, 2);
        int lead = at.shape.rank - r;
        if (lead) at.shape.dim[0] = 1 + fz_rand(F, 3);
        for (int i = 0; i < r; i++) at.shape.dim[lead + i] = xn->shape.dim[i] == 1 ? 1 + fz_rand(F, 3) : xn->shape.dim[i];
        return fz_try(F, OP_BROADCAST, &x, 1, &at);
    }
    case 10:
    case 11: { /* x @ y, x @ x^T, or a Linear layer x @ W^T, sometimes transposed after */
        static const NodeAttrs last2[] = {{.n_axes = 2, .axes = {1, 0}}, {.n_axes = 3, .axes = {0, 2, 1}}};
        int k = fz_rand(F, 3), m;
        if (k == 0) return fz_try(F, OP_MATMUL, (int[]){x, y}, 2, NULL);
        if (r < 2 || r > 3) return -1;
        int t;
        if (k == 1) t = fz_try(F, OP_TRANSPOSE, &x, 1, &last2[r - 2]);
        else {
            char name[32];
            snprintf(name, sizeof name, "w%d", F->n_params++);
            int w = graph_add_param(g, name, DT_F32, (Shape){2, {1 + fz_rand(F, 3), xn->shape.dim[r - 1]}},
                                    (ParamInit){INIT_UNIFORM, -1, 1}, false, FUZZ_LOC);
            t = fz_try(F, OP_TRANSPOSE, &w, 1, &last2[0]);
        }
        m = fz_try(F, OP_MATMUL, fz_rand(F, 2) || k == 2 ? (int[]){x, t} : (int[]){t, x}, 2, NULL);
        int mr = m < 0 ? 0 : g->nodes[m].shape.rank;
        if (m < 0 || fz_rand(F, 2) || mr < 2 || mr > 3) return m;
        return fz_try(F, OP_TRANSPOSE, &m, 1, &last2[mr - 2]);
    }
    case 12: at.axis = r ? fz_rand(F, r) : 0; return fz_try(F, fz_rand(F, 2) ? OP_SOFTMAX : OP_LOG_SOFTMAX, &x, 1, &at);
    case 13: {
        int c = fz_try(F, OP_GT, (int[]){x, y}, 2, NULL);
        return c < 0 ? -1 : fz_try(F, OP_WHERE, (int[]){c, x, fz_rand(F, 2) ? y : x}, 3, NULL);
    }
    case 14: { /* a repeated subexpression */
        const Node *n = &g->nodes[x];
        if (op_table[n->op].cls == OPC_SOURCE) return -1;
        Node copy = *n;
        return fz_try(F, copy.op, copy.in, copy.n_in, &copy.attr);
    }
    default: { /* a fresh source */
        char name[32];
        snprintf(name, sizeof name, "p%d", F->n_params++);
        return graph_add_param(g, name, DT_F32, fz_rand(F, 2) ? xn->shape : fz_shape(F),
                               (ParamInit){INIT_UNIFORM, -1.5, 1.5}, false, FUZZ_LOC);
    }
    }
}

static Graph *fz_graph(Arena *a, uint64_t seed) {
    Fuzz F = {.g = graph_new(a, "fuzz"), .rng = seed * 0x9E3779B97F4A7C15ull + 7};
    Graph *g = F.g;
    int n_in = 1 + fz_rand(&F, 2);
    for (int i = 0; i < n_in; i++) {
        char name[16];
        snprintf(name, sizeof name, "x%d", i);
        graph_add_input(g, name, DT_F32, fz_shape(&F), FUZZ_LOC);
    }
    if (fz_rand(&F, 3) == 0) graph_add_input(g, "k", DT_I32, fz_shape(&F), FUZZ_LOC);
    int want = 4 + fz_rand(&F, 14);
    for (int tries = 0; g->n_nodes < want + n_in && tries < 400; tries++) fz_node(&F);
    graph_add_output(g, g->n_nodes - 1);
    for (int i = fz_rand(&F, 5); i > 0; i--) graph_add_output(g, fz_rand(&F, g->n_nodes));
    /* write some params back from nodes of their type */
    for (int i = 0; i < g->n_params; i++) {
        const Node *p = &g->nodes[g->params[i]];
        for (int id = g->n_nodes - 1; id >= 0; id--) {
            const Node *n = &g->nodes[id];
            if (op_table[n->op].cls == OPC_SOURCE || n->dtype != p->dtype || !shape_equal(&n->shape, &p->shape)) continue;
            if (fz_rand(&F, 2)) graph_add_update(g, g->params[i], id);
            break;
        }
    }
    return g;
}


#endif
