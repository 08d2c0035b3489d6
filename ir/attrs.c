/* attrs.c: the attribute keys' table (ir/attrs.h) and what is decided by it
 * alone: which keys an op accepts, attribute equality for CSE, and the
 * spelling of fusion-group kinds. */
#include "ir/attrs.h"

#include <string.h>

_Static_assert(ATTR_ZERO_POINTS == 1u << (ATTR_N_KEYS - 1), "ATTR_N_KEYS counts the AttrKey bits; attr_specs has a row each");

#define F(field) offsetof(NodeAttrs, field)
const AttrSpec attr_specs[ATTR_N_KEYS] = {
    {"init", AS_INIT, F(init)},           {"frozen", AS_BOOL, F(frozen)},
    {"value", AS_DOUBLE, F(value)},       {"axes", AS_AXES, F(n_axes)},
    {"keepdims", AS_BOOL_ALWAYS, F(keepdims)}, {"perm", AS_AXES, F(n_axes)},
    {"axis", AS_INT, F(axis)},            {"transpose_a", AS_BOOL, F(trans_a)},
    {"transpose_b", AS_BOOL, F(trans_b)}, {"group", AS_GROUP, F(group)},
    {"kernel", AS_PAIR, F(conv.kernel)},  {"stride", AS_PAIR, F(conv.stride)},
    {"padding", AS_PAIR, F(conv.pad)},    {"dilation", AS_PAIR, F(conv.dilation)},
    {"groups", AS_INT, F(conv.groups)},   {"start", AS_I64, F(start)},
    {"length", AS_I64, F(length)},        {"before", AS_RANK_LIST, F(pad_before)},
    {"after", AS_RANK_LIST, F(pad_after)}, {"seed", AS_U64, F(seed)},
    {"carries", AS_INT, F(n_carry)},      {"xs", AS_INT, F(n_xs)},
    {"reverse", AS_BOOL, F(reverse)},     {"clamp", AS_PAIR, F(quant.clamp)},
    {"zero_points", AS_PAIR, F(quant.zero_points)},
};
#undef F

/* Lists before the scalars that follow them (pad: before, after, value), the
 * fusion group last. */
const int attr_print_order[ATTR_N_KEYS] = {0,  1,  3,  4,  5,  7,  8,  6,  10, 11, 12, 13, 14,
                                           15, 16, 17, 18, 2,  19, 20, 21, 22, 24, 23, 9};

unsigned attr_keys_allowed(OpKind op) {
    return op_table[op].attrs | (op == OP_PARAM || op == OP_SCAN ? 0u : (unsigned)ATTR_GROUP);
}

static bool field_equal(const NodeAttrs *x, const NodeAttrs *y, int k) {
    const void *a = attr_field(x, k), *b = attr_field(y, k);
    switch (attr_specs[k].shape) {
    case AS_BOOL:
    case AS_BOOL_ALWAYS: return *(const bool *)a == *(const bool *)b;
    case AS_INT: return *(const int *)a == *(const int *)b;
    case AS_I64: return *(const int64_t *)a == *(const int64_t *)b;
    case AS_U64: return *(const uint64_t *)a == *(const uint64_t *)b;
    case AS_DOUBLE: return memcmp(a, b, sizeof(double)) == 0; /* 0 and -0 differ, as do NaN payloads */
    case AS_PAIR: return memcmp(a, b, 2 * sizeof(int)) == 0;
    case AS_AXES: return x->n_axes == y->n_axes && memcmp(x->axes, y->axes, sizeof(int) * (size_t)x->n_axes) == 0;
    case AS_RANK_LIST: return memcmp(a, b, sizeof x->pad_before) == 0;
    case AS_INIT: {
        const ParamInit *p = a, *q = b;
        return p->kind == q->kind && !memcmp(&p->a, &q->a, sizeof p->a) && !memcmp(&p->b, &q->b, sizeof p->b);
    }
    case AS_GROUP: {
        const FuseGroup *p = a, *q = b;
        return p->kind == q->kind && p->id == q->id && p->at == q->at;
    }
    }
    return false;
}

bool attr_equal(const Node *a, const Node *b) {
    unsigned keys = op_table[a->op].attrs | ATTR_GROUP;
    if (a->attr.body != b->attr.body) return false; /* a scan's body graph */
    for (int k = 0; k < ATTR_N_KEYS; k++)
        if ((keys >> k & 1u) && !field_equal(&a->attr, &b->attr, k)) return false;
    return true;
}

static const char *const fuse_kind_names[FUSE_KIND_COUNT] = {
    [FUSE_NONE] = NULL, /* no group prints no key */
    [FUSE_ELEMENTWISE] = "elementwise",
    [FUSE_REDUCE] = "reduce",
    [FUSE_EPILOGUE] = "epilogue",
    [FUSE_ROWS] = "rows",
};

const char *fuse_kind_name(FuseKind k) {
    return (unsigned)k < FUSE_KIND_COUNT && fuse_kind_names[k] ? fuse_kind_names[k] : "?";
}

FuseKind fuse_kind_from_name(const char *name, size_t len) {
    for (int k = 0; k < FUSE_KIND_COUNT; k++)
        if (fuse_kind_names[k] && strlen(fuse_kind_names[k]) == len && !memcmp(fuse_kind_names[k], name, len))
            return (FuseKind)k;
    return FUSE_KIND_COUNT;
}
