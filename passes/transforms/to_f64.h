/* to_f64.h: copy a graph with float32 promoted to float64 (see to_f64.c). */
#ifndef ETCH_PASSES_TRANSFORMS_TO_F64_H
#define ETCH_PASSES_TRANSFORMS_TO_F64_H

#include "ir/ir.h"

Graph *graph_to_f64(Arena *a, const Graph *g);

#endif
