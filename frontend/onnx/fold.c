/* fold.c: constant tensors at import time. Shape computations in exported
 * graphs (Shape -> Gather -> Unsqueeze -> Concat -> Reshape, ConstantOfShape,
 * Range, Equal/Where over shapes) have constant inputs once every dim is
 * static, so the op rules evaluate them here instead of writing them out:
 * elementwise maps with NumPy broadcasting, and strided copies that express
 * Transpose, Slice, Expand, Concat and Gather as views of their source.
 * Integer elements are read exactly (int64), floating ones as doubles. Also
 * the rules of the ops whose result is always a constant: Constant,
 * ConstantOfShape, Shape (the input's static dims), Size, Range. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "frontend/onnx/onnx_internal.h"

int64_t ox_numel(const OxValue *v) { /* saturates instead of overflowing */
    int64_t n = 1;
    for (int i = 0; i < v->rank; i++) {
        if (v->dim[i] <= 0) return 0;
        n = n > INT64_MAX / v->dim[i] ? INT64_MAX : n * v->dim[i];
    }
    return n;
}

double ox_get(const OxValue *v, int64_t i) {
    switch (v->elem) {
    case OX_FLOAT: return ((const float *)v->data)[i];
    case OX_DOUBLE: return ((const double *)v->data)[i];
    case OX_INT32: return ((const int32_t *)v->data)[i];
    case OX_INT64: return (double)((const int64_t *)v->data)[i];
    case OX_INT8: return ((const int8_t *)v->data)[i];
    case OX_UINT8: return ((const uint8_t *)v->data)[i];
    default: return ((const unsigned char *)v->data)[i];
    }
}

int64_t ox_get_int(const OxValue *v, int64_t i) {
    switch (v->elem) {
    case OX_INT64: return ((const int64_t *)v->data)[i];
    case OX_INT32: return ((const int32_t *)v->data)[i];
    case OX_BOOL: return ((const unsigned char *)v->data)[i];
    case OX_INT8: return ((const int8_t *)v->data)[i];
    case OX_UINT8: return ((const uint8_t *)v->data)[i];
    default: {
        double x = ox_get(v, i);
        return x != x ? 0 : x >= 9.2e18 ? INT64_MAX : x <= -9.2e18 ? INT64_MIN : (int64_t)x;
    }
    }
}

void ox_set(OxValue *v, int64_t i, double x) {
    switch (v->elem) {
    case OX_FLOAT: ((float *)v->data)[i] = (float)x; break;
    case OX_DOUBLE: ((double *)v->data)[i] = x; break;
    case OX_INT32: ((int32_t *)v->data)[i] = x != x ? 0 : x >= 2147483647.0 ? INT32_MAX : x <= -2147483648.0 ? INT32_MIN : (int32_t)x; break;
    case OX_INT64: ((int64_t *)v->data)[i] = x != x ? 0 : x >= 9.2e18 ? INT64_MAX : x <= -9.2e18 ? INT64_MIN : (int64_t)x; break;
    case OX_INT8: ((int8_t *)v->data)[i] = (int8_t)(x != x ? 0 : x >= 127 ? 127 : x <= -128 ? -128 : x); break;
    case OX_UINT8: ((uint8_t *)v->data)[i] = (uint8_t)(x != x ? 0 : x >= 255 ? 255 : x <= 0 ? 0 : x); break;
    default: ((unsigned char *)v->data)[i] = x != 0; break;
    }
}

/* The element count of dims, or -1 when negative or above limit. */
static int64_t count_within(int rank, const int64_t *dim, int64_t limit) {
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dim[i] < 0 || (dim[i] && n > limit / dim[i])) return -1;
        n *= dim[i];
    }
    return n;
}

bool ox_fold_limit(OxImport *ox, const char *name, int rank, const int64_t *dim) {
    if (count_within(rank, dim, OX_MAX_FOLD_ELEMS) >= 0) return true;
    return ox_error(ox, "folding '%s' would make a constant of shape %s, more than %lld elements", name,
                    ox_list(ox, dim, rank), (long long)OX_MAX_FOLD_ELEMS);
}

OxValue *ox_new_const(OxImport *ox, const char *name, int32_t elem, int rank, const int64_t *dim) {
    int64_t n = count_within(rank, dim, OX_MAX_ELEMS);
    if (n < 0) {
        ox_error(ox, "the constant '%s' would have the shape %s", name, ox_list(ox, dim, rank));
        return NULL;
    }
    OxValue *v = arena_alloc(ox->a, sizeof *v);
    v->name = name;
    v->elem = elem;
    v->rank = rank;
    if (rank) memcpy(v->dim, dim, sizeof(int64_t) * (size_t)rank);
    v->data = arena_alloc(ox->a, (size_t)n * ox_elem_size(elem) + 1);
    v->producer = -1;
    return v;
}

bool ox_broadcast(OxImport *ox, const OxValue *a, const OxValue *b, int *rank, int64_t *dim) {
    int r = a->rank > b->rank ? a->rank : b->rank;
    int64_t out[OX_MAX_RANK]; /* dim may be a's or b's own */
    for (int i = 0; i < r; i++) {
        int ia = i - (r - a->rank), ib = i - (r - b->rank);
        int64_t da = ia >= 0 ? a->dim[ia] : 1, db = ib >= 0 ? b->dim[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return ox_error(ox, "cannot broadcast %s with %s", ox_list(ox, a->dim, a->rank), ox_list(ox, b->dim, b->rank));
        out[i] = da == 1 ? db : da;
    }
    memcpy(dim, out, sizeof(int64_t) * (size_t)r);
    *rank = r;
    return true;
}

bool ox_axis(OxImport *ox, int64_t axis, int rank, const char *what, int *out) {
    if (axis < -rank || axis >= (rank ? rank : 1))
        return ox_error(ox, "%s %lld is out of range for rank %d", what, (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return true;
}

bool ox_const_ints(OxImport *ox, const OxValue *v, const char *what, int64_t **ints, int *count) {
    if (!v || !v->data)
        return ox_error(ox, "%s must be a constant (computed from shapes and initializers only); '%s' is known only at "
                            "run time",
                        what, v ? v->name : "?");
    if (v->elem != OX_INT64 && v->elem != OX_INT32) return ox_error(ox, "%s must be integers", what);
    int64_t n = ox_numel(v);
    if (v->rank > 1 || n > 64) return ox_error(ox, "%s must be a list of at most 64 integers", what);
    *ints = arena_alloc(ox->a, sizeof(int64_t) * (size_t)(n + 1));
    for (int64_t i = 0; i < n; i++) (*ints)[i] = ox_get_int(v, i);
    *count = (int)n;
    return true;
}

void ox_strides(int rank, const int64_t *dim, int64_t *strides) {
    int64_t s = 1;
    for (int i = rank - 1; i >= 0; i--) {
        strides[i] = s;
        s *= dim[i];
    }
}

/* The strides with which a contiguous v is read at each index of a broadcast
 * shape of out_rank dims (0 along stretched dims). */
static void broadcast_strides(const OxValue *v, int out_rank, const int64_t *out_dim, int64_t *strides) {
    int64_t own[OX_MAX_RANK];
    ox_strides(v->rank, v->dim, own);
    for (int i = 0; i < out_rank; i++) {
        int k = i - (out_rank - v->rank);
        strides[i] = k >= 0 && v->dim[k] == out_dim[i] && out_dim[i] != 1 ? own[k] : 0;
    }
}

/* Copies the elements of a rank-dims box: dst (contiguous strides dst_str
 * from dst_off) <- src (strides src_str from src_off). Same element type. */
void ox_strided_copy(OxValue *dst, int64_t dst_off, const int64_t *dst_str, const OxValue *src, int64_t src_off,
                     const int64_t *src_str, int rank, const int64_t *dims) {
    size_t es = ox_elem_size(src->elem);
    int64_t n = 1, idx[OX_MAX_RANK] = {0};
    for (int i = 0; i < rank; i++) n *= dims[i];
    for (int64_t k = 0; k < n; k++) {
        int64_t so = src_off, d = dst_off;
        for (int i = 0; i < rank; i++) so += idx[i] * src_str[i], d += idx[i] * dst_str[i];
        memcpy((char *)dst->data + d * (int64_t)es, (const char *)src->data + so * (int64_t)es, es);
        for (int i = rank - 1; i >= 0; i--) {
            if (++idx[i] < dims[i]) break;
            idx[i] = 0;
        }
    }
}

/* An elementwise op over constants with broadcasting: out[i] = f(x, arg)
 * with x[k] the element of in[k] at i; elem is the result's type. */
OxValue *ox_fold_map(OxImport *ox, const char *name, int32_t elem, OxValue *const *in, int n_in,
                     double (*f)(const double *x, double arg), double arg) {
    int rank = 0;
    int64_t dim[OX_MAX_RANK] = {0};
    for (int k = 0; k < n_in; k++) {
        OxValue acc = {.rank = rank};
        memcpy(acc.dim, dim, sizeof dim); /* dim holds the broadcast so far */
        if (!ox_broadcast(ox, &acc, in[k], &rank, dim)) return NULL;
    }
    if (!ox_fold_limit(ox, name, rank, dim)) return NULL;
    OxValue *out = ox_new_const(ox, name, elem, rank, dim);
    if (!out) return NULL;
    int64_t str[8][OX_MAX_RANK], idx[OX_MAX_RANK] = {0}, n = ox_numel(out);
    for (int k = 0; k < n_in && k < 8; k++) broadcast_strides(in[k], rank, dim, str[k]);
    for (int64_t i = 0; i < n; i++) {
        double x[8];
        for (int k = 0; k < n_in && k < 8; k++) {
            int64_t off = 0;
            for (int j = 0; j < rank; j++) off += idx[j] * str[k][j];
            x[k] = ox_get(in[k], off);
        }
        ox_set(out, i, f(x, arg));
        for (int j = rank - 1; j >= 0; j--) {
            if (++idx[j] < dim[j]) break;
            idx[j] = 0;
        }
    }
    return out;
}

/* Integer elementwise arithmetic stays exact in int64 (shape products). */
OxValue *ox_fold_int_binary(OxImport *ox, const char *name, OxValue *a, OxValue *b, char op) {
    int rank;
    int64_t dim[OX_MAX_RANK], sa[OX_MAX_RANK], sb[OX_MAX_RANK], idx[OX_MAX_RANK] = {0};
    if (!ox_broadcast(ox, a, b, &rank, dim) || !ox_fold_limit(ox, name, rank, dim)) return NULL;
    OxValue *out = ox_new_const(ox, name, a->elem, rank, dim);
    if (!out) return NULL;
    broadcast_strides(a, rank, dim, sa);
    broadcast_strides(b, rank, dim, sb);
    int64_t n = ox_numel(out);
    for (int64_t i = 0; i < n; i++) {
        int64_t oa = 0, ob = 0;
        for (int j = 0; j < rank; j++) oa += idx[j] * sa[j], ob += idx[j] * sb[j];
        int64_t x = ox_get_int(a, oa), y = ox_get_int(b, ob), r = 0;
        switch (op) {
        case '+': r = (int64_t)((uint64_t)x + (uint64_t)y); break;
        case '-': r = (int64_t)((uint64_t)x - (uint64_t)y); break;
        case '*': r = (int64_t)((uint64_t)x * (uint64_t)y); break;
        default:
            if (y == 0 || (x == INT64_MIN && y == -1)) {
                ox_error(ox, "integer division by zero or overflow while folding a constant");
                return NULL;
            }
            r = x / y;
            break;
        }
        if (a->elem == OX_INT64) ((int64_t *)out->data)[i] = r;
        else ((int32_t *)out->data)[i] = (int32_t)r;
        for (int j = rank - 1; j >= 0; j--) {
            if (++idx[j] < dim[j]) break;
            idx[j] = 0;
        }
    }
    return out;
}

/* A constant with new dims over the same contents (Reshape, Squeeze, Flatten, ...). */
OxValue *ox_fold_reshape(OxImport *ox, const char *name, const OxValue *v, int rank, const int64_t *dim) {
    OxValue *out = arena_alloc(ox->a, sizeof *out);
    *out = *v;
    out->name = name;
    out->rank = rank;
    if (rank) memcpy(out->dim, dim, sizeof(int64_t) * (size_t)rank);
    out->expr = NULL;
    out->initializer = false;
    out->owner = NULL;
    return out;
}

/* Element type conversion of a constant (Cast). */
OxValue *ox_fold_cast(OxImport *ox, const char *name, const OxValue *v, int32_t elem) {
    OxValue *out = ox_new_const(ox, name, elem, v->rank, v->dim);
    if (!out) return NULL;
    int64_t n = ox_numel(v);
    bool ints = (v->elem == OX_INT64 || v->elem == OX_INT32) && (elem == OX_INT64 || elem == OX_INT32);
    for (int64_t i = 0; i < n; i++) {
        if (ints && elem == OX_INT64) ((int64_t *)out->data)[i] = ox_get_int(v, i);
        else if (ints) ((int32_t *)out->data)[i] = (int32_t)ox_get_int(v, i);
        else ox_set(out, i, ox_get(v, i));
    }
    return out;
}

/* ---- the ops that make constants ------------------------------------------ */

static OxValue *const_from_list(OxImport *ox, const char *name, int32_t elem, int rank, const void *v, size_t n,
                                bool floats) {
    int64_t dim[1] = {(int64_t)n};
    OxValue *c = ox_new_const(ox, name, elem, rank, dim);
    for (size_t i = 0; c && i < n; i++) ox_set(c, (int64_t)i, floats ? ((const float *)v)[i] : (double)((const int64_t *)v)[i]);
    if (c && !floats) /* exact for large int64 */
        for (size_t i = 0; i < n; i++) ((int64_t *)c->data)[i] = ((const int64_t *)v)[i];
    return c;
}

bool ox_rule_constant(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    const Onnx__AttributeProto *at;
    const char *name = ox_out_name(n, 0);
    if ((at = ox_attr(n, "value")) && at->t) return ox_define_const(ox, n, 0, ox_tensor_value(ox, at->t, name));
    if ((at = ox_attr(n, "value_float"))) return ox_define_const(ox, n, 0, const_from_list(ox, name, OX_FLOAT, 0, &at->f, 1, true));
    if ((at = ox_attr(n, "value_floats")))
        return ox_define_const(ox, n, 0, const_from_list(ox, name, OX_FLOAT, 1, at->floats, at->n_floats, true));
    if ((at = ox_attr(n, "value_int"))) return ox_define_const(ox, n, 0, const_from_list(ox, name, OX_INT64, 0, &at->i, 1, false));
    if ((at = ox_attr(n, "value_ints")))
        return ox_define_const(ox, n, 0, const_from_list(ox, name, OX_INT64, 1, at->ints, at->n_ints, false));
    return ox_error(ox, "only tensor, float and int values are supported (not strings or sparse tensors)");
}

bool ox_rule_constant_of_shape(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    int64_t *shape;
    int rank;
    if (!ox_const_ints(ox, n->in[0], "the shape", &shape, &rank)) return false;
    if (rank > OX_MAX_RANK) return ox_error(ox, "the shape has %d dims; etch tensors have at most %d", rank, OX_MAX_RANK);
    const Onnx__AttributeProto *at = ox_attr(n, "value");
    OxValue *fill = at && at->t ? ox_tensor_value(ox, at->t, "value") : NULL;
    if (at && !fill) return false;
    if (fill && ox_numel(fill) != 1) return ox_error(ox, "value must hold one element");
    if (!ox_fold_limit(ox, ox_out_name(n, 0), rank, shape)) return false;
    OxValue *c = ox_new_const(ox, ox_out_name(n, 0), fill ? fill->elem : OX_FLOAT, rank, shape);
    if (!c) return false;
    int64_t total = ox_numel(c);
    size_t es = ox_elem_size(c->elem);
    for (int64_t i = 0; fill && i < total; i++) memcpy((char *)c->data + (size_t)i * es, fill->data, es);
    return ox_define_const(ox, n, 0, c);
}

bool ox_rule_shape(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    OxValue *x = n->in[0];
    int64_t start, end;
    if (!ox_attr_int(ox, n, "start", 0, &start) || !ox_attr_int(ox, n, "end", x->rank, &end)) return false;
    if (start < 0) start += x->rank;
    if (end < 0) end += x->rank;
    start = start < 0 ? 0 : start > x->rank ? x->rank : start;
    end = end < start ? start : end > x->rank ? x->rank : end;
    int64_t len = end - start;
    OxValue *c = ox_new_const(ox, ox_out_name(n, 0), OX_INT64, 1, &len);
    for (int64_t i = 0; c && i < len; i++) ((int64_t *)c->data)[i] = x->dim[start + i];
    return ox_define_const(ox, n, 0, c);
}

bool ox_rule_size(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    OxValue *c = ox_new_const(ox, ox_out_name(n, 0), OX_INT64, 0, NULL);
    if (c) ((int64_t *)c->data)[0] = ox_numel(n->in[0]);
    return ox_define_const(ox, n, 0, c);
}

bool ox_rule_range(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    for (int i = 0; i < 3; i++)
        if (!n->in[i]->data || ox_numel(n->in[i]) != 1)
            return ox_error(ox, "start, limit and delta must be constant scalars");
    double start = ox_get(n->in[0], 0), limit = ox_get(n->in[1], 0), delta = ox_get(n->in[2], 0);
    if (delta == 0) return ox_error(ox, "delta is 0");
    double count = ceil((limit - start) / delta);
    int64_t len = count > 0 ? (int64_t)(count < 1e12 ? count : 1e12) : 0;
    if (!ox_fold_limit(ox, ox_out_name(n, 0), 1, &len)) return false;
    OxValue *c = ox_new_const(ox, ox_out_name(n, 0), n->in[0]->elem, 1, &len);
    for (int64_t i = 0; c && i < len; i++) ox_set(c, i, start + (double)i * delta);
    return ox_define_const(ox, n, 0, c);
}
