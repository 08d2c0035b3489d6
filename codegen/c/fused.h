/* fused.h: emitting fusion groups (passes/fuse.c): the C backend's group
 * emitters, one per group kind (FuseKind, ir.h; group.c: elementwise and
 * reduction groups, rowgroup.c: row groups, epilogue.c: matmul epilogues)
 * and the helpers they share (group.c). The driver (emit_c.c) includes this
 * and calls the emitter of each group's kind; none of them calls back into
 * the driver. Internal to the C backend. */
#ifndef ETCH_CODEGEN_C_FUSED_H
#define ETCH_CODEGEN_C_FUSED_H

#include "codegen/c/emit.h"
#include "passes/plan_memory.h"

/* Emits `const T vN = expr;` for group member id from its op's C template:
 * operands in the group are registers (vK), scalar constants are literals,
 * and every other operand (a leaf) is read as e->buf[operand] at the index
 * expression leaf_idx[leaf_slot[operand]]. */
void cemit_group_member(CEmitter *e, const Graph *g, int id, const int *leaf_slot, char (*leaf_idx)[320]);

/* The C expression of operand k of group member id, appended to out: a
 * register (vK) for a member, a literal for a scalar constant, else the
 * leaf's read e->buf[operand][leaf_idx[leaf_slot[operand]]]. */
void cemit_group_operand(const CEmitter *e, const Graph *g, int id, int k, const int *leaf_slot,
                         char (*leaf_idx)[320], StrBuf *out);

/* The index "i0 * 784 + i2 * 1" of strides st over loop variables var[] for a
 * loop nest over S (dims of size 1 and zero strides skipped; "0" when none). */
void cemit_strided_index(const Shape *S, const int64_t *st, char (*var)[16], char *buf, size_t n);

/* Collects the members of the fusion group numbered gid (attr.group.id)
 * among nodes [0, end) except `skip` (-1: none), in id order, and its
 * leaves: the operands outside the group, each once, numbered in leaf_slot
 * (which must hold -1 for them; the caller resets it). Scalar constants are
 * no leaves when skip_literals (members read them as literals). The arrays
 * hold OPS_MAX_OPERANDS * 4 members and OPS_MAX_OPERANDS leaves. */
void cemit_group_collect(const Graph *g, int gid, int end, int skip, bool skip_literals, int *leaf_slot, int *members,
                         int *n_members, int *leaves, int *n_leaves);

/* An elementwise group rooted at `root`: one loop nest over the group's shape;
 * each member a local scalar computed in id order from the op's C template;
 * members read outside the group stored after all members of an element
 * (so a member written in place over a param reads the old value first). */
void emit_elementwise_group(CEmitter *e, const Graph *g, const MemPlan *mp, int root, int *leaf_slot);
/* A group rooted at a reduction (over leading axes): its elementwise producers
 * computed inside the reduction's loops and folded into the accumulator. */
void emit_reduce_group(CEmitter *e, const Graph *g, const MemPlan *mp, int root, int *leaf_slot);

/* Emits the group of node `at` (the node at the group's position: its root,
 * or the product itself, see passes/fuse.c) around its matmul: the group's
 * expression as the epilogue function of the product's GEMM, and the call.
 * leaf_slot (-1 for every node) is scratch, restored on return. */
void emit_matmul_group(CEmitter *e, const Graph *g, const MemPlan *mp, int at, int *leaf_slot);

/* Emits the row group whose last member is `at` (codegen/c/rowgroup.c):
 * per row, one walk per reduction, the per-row values, and a last walk that
 * stores the members read outside. leaf_slot as for emit_matmul_group. */
void emit_row_group(CEmitter *e, const Graph *g, const MemPlan *mp, int at, int *leaf_slot);

/* The C backend's fused-group emitters, indexed by the group's kind
 * (attr.group.kind, set by passes/fuse.c); each is called with the group's
 * position `at` (attr.group.at). */
typedef void (*CGroupEmitFn)(CEmitter *e, const Graph *g, const MemPlan *mp, int at, int *leaf_slot);
extern const CGroupEmitFn c_group_emitters[FUSE_KIND_COUNT];

#endif
