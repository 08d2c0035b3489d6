/* attrs.h: one descriptor per attribute key (AttrKey, ir.h): its textual-IR
 * name, the NodeAttrs field it lives in and how that field is shaped. The
 * textual IR's printer and parser and CSE's equality walk an op's keys (its
 * attrs column in ops.def) through this table instead of switching on ops. */
#ifndef ETCH_IR_ATTRS_H
#define ETCH_IR_ATTRS_H

#include "ir/ir.h"

typedef enum AttrShape {
    AS_BOOL,      /* bool; printed only when true */
    AS_BOOL_ALWAYS, /* bool; always printed (keepdims) */
    AS_INT,       /* int */
    AS_I64,       /* int64_t */
    AS_U64,       /* uint64_t (seed) */
    AS_DOUBLE,    /* double, compared bit for bit */
    AS_PAIR,      /* int[2] */
    AS_AXES,      /* n_axes, axes[n_axes] */
    AS_RANK_LIST, /* int64_t[rank of the result] (pad amounts) */
    AS_INIT,      /* ParamInit */
    AS_GROUP,     /* FuseGroup: "KIND ID at %AT"; printed when kind is not FUSE_NONE */
} AttrShape;

typedef struct AttrSpec {
    const char *name; /* spelling in the textual IR */
    AttrShape shape;
    size_t offset;    /* of the field in NodeAttrs */
} AttrSpec;

/* Indexed by key bit number (ATTR_AXES = 1 << 3 -> attr_specs[3]). */
extern const AttrSpec attr_specs[ATTR_N_KEYS];
/* The order keys print in (bit numbers); every key once. */
extern const int attr_print_order[ATTR_N_KEYS];

/* The field of key bit k in a, typed by the caller per its AttrShape. */
static inline const void *attr_field(const NodeAttrs *a, int k) { return (const char *)a + attr_specs[k].offset; }

#endif
