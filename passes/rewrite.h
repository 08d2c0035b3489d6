/* rewrite.h: the graph-rebuilding machinery every rewriting pass shares.
 *
 * Passes never edit a graph in place: they walk the old graph in id order and
 * build a new one in the same arena, recording for every old node the new id
 * that now stands for it (a copy, an existing node it was merged into, or a
 * replacement expression). Because operands precede users, an old node's
 * operands are always mapped by the time the node itself is visited, so a
 * rule sees already-rewritten operands and rewrites compose in one sweep.
 * Finishing remaps the outputs, the state updates and the positions of
 * copied fusion groups; inputs and params keep their order because they are
 * copied in id order like everything else. */
#ifndef ETCH_PASSES_REWRITE_H
#define ETCH_PASSES_REWRITE_H

#include "ir/ir.h"

typedef struct Rewriter {
    const Graph *src; /* the graph being rewritten (read only) */
    Graph *dst;       /* the graph being built, in src's arena */
    int *map;         /* src id -> dst id, -1 until the src node is visited */
    Diag *d;
} Rewriter;

/* Starts an empty dst graph with src's name. */
void rewrite_begin(Rewriter *rw, const Graph *src, Diag *d);
/* The dst id of operand k of src node src_id (which must already be mapped). */
int rewrite_operand(const Rewriter *rw, int src_id, int k);
/* src node src_id with its operands replaced by their dst ids, not yet added;
 * ins must have room for the node's operands. */
Node rewrite_mapped_node(const Rewriter *rw, int src_id, int *ins);
/* Appends src node src_id verbatim (type, attributes, location, fusion group)
 * with remapped operands, records the mapping and returns the dst id. */
int rewrite_copy_node(Rewriter *rw, int src_id);
/* Appends a new node over dst operands through the op's shape rule. Returns
 * -1 without reporting anything when the rule rejects it, so rules may try a
 * form speculatively. */
int rewrite_add(Rewriter *rw, OpKind op, const int *ins, int n_in, const NodeAttrs *attrs, SrcLoc loc);
/* Types a prospective node (op, operands, attributes in *n) with its shape
 * rule without adding it; false when the rule rejects it. */
bool rewrite_infer(const Rewriter *rw, Node *n);
/* Remaps outputs and updates into dst, and the position (group.at) of every
 * fusion group copied along; a node whose group's position was dropped
 * leaves its group (running alone is always correct). Returns dst. */
Graph *rewrite_finish(Rewriter *rw);

/* Uses of every node of g: operand references, outputs, and both ends of
 * every state update (a param that is written back is part of the step's
 * effect even when nothing reads it). Arena-allocated, n_nodes entries. */
int *rewrite_count_uses(const Graph *g, Arena *a);

#endif
