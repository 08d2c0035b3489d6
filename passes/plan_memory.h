/* plan_memory.h: static memory planning. Decides where every value of a graph
 * lives when compiled: an entry argument, a parameter's storage (including
 * optimizer updates done in place), a register inside a fused loop, a view of
 * another value, or an offset in the one arena of intermediates, with buffers
 * reused once their last reader has run. The sizes are exact and known at
 * compile time (`etch build --stats`). */
#ifndef ETCH_PASSES_PLAN_MEMORY_H
#define ETCH_PASSES_PLAN_MEMORY_H

#include "ir/ir.h"

typedef enum StoreKind {
    STORE_INPUT,    /* the entry's input argument */
    STORE_PARAM,    /* a parameter's storage; ref = the param node (itself, or the param an update writes in place) */
    STORE_OUTPUT,   /* the entry's output argument ref */
    STORE_ARENA,    /* offset bytes into the arena */
    STORE_VIEW,     /* shares node ref's storage (reshape) */
    STORE_REGISTER, /* a fused-group member nobody outside the group reads: never stored */
} StoreKind;

typedef struct MemPlan {
    StoreKind *kind;       /* per node */
    int64_t *offset;       /* STORE_ARENA */
    int *ref;              /* STORE_PARAM, STORE_OUTPUT, STORE_VIEW */
    int *pos;              /* where the node is computed: its group's root for fused members */
    bool *update_in_place; /* per graph update: the new value is computed straight into the param */
    int64_t arena_bytes;   /* the planned arena */
    int64_t naive_bytes;   /* every computed intermediate in its own buffer (as an eager run allocates) */
} MemPlan;

/* Plans g (with fusion groups, if any). reuse=false gives every arena value
 * its own buffer and no in-place updates (-O0). Allocated in arena a. */
MemPlan *plan_memory(Arena *a, const Graph *g, bool reuse);

#endif
