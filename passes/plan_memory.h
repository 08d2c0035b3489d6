/* plan_memory.h: static memory planning, the pass pipeline's last stage
 * (`plan-memory`, every -O level). Decides where every value of a graph lives
 * when compiled: an entry argument, a parameter's storage (including
 * optimizer updates done in place), a register inside a fused loop, a view of
 * another value, or an offset in the one arena of intermediates, with buffers
 * reused once their last reader has run (from -O1). The sizes are exact and
 * known at compile time (`etch build --stats`). The plan is attached to the
 * graph (Graph.mem_plan), where backends read it. */
#ifndef ETCH_PASSES_PLAN_MEMORY_H
#define ETCH_PASSES_PLAN_MEMORY_H

#include <stdio.h>

#include "ir/ir.h"

typedef enum StoreKind {
    STORE_INPUT,    /* the entry's input argument */
    STORE_PARAM,    /* a parameter's storage; ref = the param node (itself, or the param an update writes in place) */
    STORE_OUTPUT,   /* the entry's output argument ref */
    STORE_ARENA,    /* offset bytes into the arena */
    STORE_VIEW,     /* shares node ref's storage (reshape) */
    STORE_REGISTER, /* a fused-group member nobody outside the group reads: never stored */
} StoreKind;

struct MemPlan {
    StoreKind *kind;       /* per node */
    int64_t *offset;       /* STORE_ARENA */
    int *ref;              /* STORE_PARAM, STORE_OUTPUT, STORE_VIEW */
    int *pos;              /* where the node is computed: its group's position (group.at) for fused members */
    bool *update_in_place; /* per graph update: the new value is computed straight into the param */
    int64_t arena_bytes;   /* the planned arena */
    int64_t naive_bytes;   /* every computed intermediate in its own buffer (as an eager run allocates) */
    int align;             /* every arena offset is a multiple of this (Target.arena_align) */
    bool reuse;            /* values share storage once dead, updates in place */
};
typedef struct MemPlan MemPlan;

/* g's plan (g->mem_plan) in one `//` comment line (a comment in the textual
 * IR): its totals and how many values live where. The pass manager prints it
 * after the IR in dumps (--print-after=plan-memory). */
void plan_memory_print_summary(FILE *f, const Graph *g);

#endif
