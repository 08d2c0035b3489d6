/* cse.c: common-subexpression elimination. Two nodes that apply the same op
 * to the same operands with the same attributes and result type compute the
 * same value (every op is pure), so the later one is dropped and its users
 * read the first. The graph is rebuilt in id order with operands already
 * remapped, so whole duplicated chains (autodiff recomputing a transpose, the
 * optimizer materializing `1` and `0.9` per parameter) merge in one sweep.
 *
 * What it does not merge: inputs and params (distinct interface slots even
 * when they look alike), constants whose values differ in any bit (0 and -0,
 * NaN payloads), and nodes in different fusion groups. The survivor is the
 * first occurrence, so its source location is the one kept. */
#include <string.h>

#include "passes/pass.h"
#include "passes/rewrite.h"

/* a + b == b + a bit for bit (IEEE addition and multiplication commute, as do
 * == and !=); max/min do not once NaN or signed zeros are involved. */
static bool commutes(OpKind op) { return op == OP_ADD || op == OP_MUL || op == OP_EQ || op == OP_NE; }

static bool same_node(const Node *a, const Node *b) {
    if (a->op != b->op || a->dtype != b->dtype || !shape_equal(&a->shape, &b->shape) || a->n_in != b->n_in)
        return false;
    bool straight = true, swapped = a->n_in == 2 && commutes(a->op);
    for (int k = 0; k < a->n_in; k++) {
        straight = straight && a->in[k] == b->in[k];
        swapped = swapped && a->in[k] == b->in[1 - k];
    }
    return (straight || swapped) && attr_equal(a, b);
}

/* Hashes only what same_node compares, order-independently for operands of
 * commuting ops so both spellings land in the same bucket chain. */
static uint64_t node_hash(const Node *n) {
    uint64_t h = 1469598103934665603ull;
#define MIX(v) (h = (h ^ (uint64_t)(v)) * 1099511628211ull)
    MIX(n->op);
    MIX(n->dtype);
    MIX(n->shape.rank);
    for (int i = 0; i < n->shape.rank; i++) MIX(n->shape.dim[i]);
    uint64_t ops = 0;
    for (int k = 0; k < n->n_in; k++) ops += commutes(n->op) ? (uint64_t)n->in[k] * 0x9e3779b97f4a7c15ull : 0;
    for (int k = 0; k < n->n_in && !commutes(n->op); k++) MIX(n->in[k]);
    MIX(ops);
    if (n->op == OP_CONST) {
        uint64_t bits;
        memcpy(&bits, &n->attr.value, sizeof bits);
        MIX(bits);
    }
#undef MIX
    return h;
}

Graph *pass_cse(Graph *g, PassCtx *ctx) {
    Rewriter rw;
    rewrite_begin(&rw, g, ctx->d);
    /* open addressing over dst ids; at most half full */
    int cap = 16;
    while (cap < 2 * g->n_nodes) cap *= 2;
    int *table = arena_alloc(g->arena, sizeof(int) * (size_t)cap);
    for (int i = 0; i < cap; i++) table[i] = -1;

    for (int id = 0; id < g->n_nodes; id++) {
        OpKind op = g->nodes[id].op;
        if (op == OP_INPUT || op == OP_PARAM) {
            rewrite_copy_node(&rw, id);
            continue;
        }
        int ins[ETCH_MAX_OPERANDS];
        Node cand = rewrite_mapped_node(&rw, id, ins);
        size_t slot = (size_t)(node_hash(&cand) & (uint64_t)(cap - 1));
        while (table[slot] >= 0 && !same_node(&rw.dst->nodes[table[slot]], &cand))
            slot = (slot + 1) & (size_t)(cap - 1);
        if (table[slot] >= 0) {
            rw.map[id] = table[slot]; /* a duplicate: users read the first one */
            continue;
        }
        table[slot] = rewrite_copy_node(&rw, id);
    }
    return rewrite_finish(&rw);
}
