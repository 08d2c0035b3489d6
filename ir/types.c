/* types.c: dtypes and static shapes: names, sizes, formatting. */
#include <stdio.h>
#include <string.h>

#include "ir/ir.h"

static const struct {
    const char *name, *c_type;
    size_t size;
    bool is_float;
} dtype_info[DT_COUNT] = {
    [DT_F32] = {"f32", "float", 4, true},
    [DT_F64] = {"f64", "double", 8, true},
    [DT_I32] = {"i32", "int32_t", 4, false},
    [DT_I64] = {"i64", "int64_t", 8, false},
    [DT_BOOL] = {"bool", "uint8_t", 1, false},
    [DT_I8] = {"i8", "int8_t", 1, false},
    [DT_U8] = {"u8", "uint8_t", 1, false},
};

const char *dtype_name(DType t) { return t < DT_COUNT ? dtype_info[t].name : "?"; }
const char *dtype_c_type(DType t) { return dtype_info[t].c_type; }
size_t dtype_size(DType t) { return dtype_info[t].size; }
bool dtype_is_float(DType t) { return dtype_info[t].is_float; }
bool dtype_is_quantized(DType t) { return t == DT_I8 || t == DT_U8; }

DType dtype_from_name(const char *s) {
    for (int t = 0; t < DT_COUNT; t++)
        if (strcmp(s, dtype_info[t].name) == 0) return (DType)t;
    return DT_COUNT;
}

int64_t shape_numel(const Shape *s) {
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++) n *= s->dim[i];
    return n;
}

bool shape_equal(const Shape *a, const Shape *b) {
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dim[i] != b->dim[i]) return false;
    return true;
}

Shape shape_make(int rank, const int64_t *dims) {
    Shape s = {.rank = rank};
    for (int i = 0; i < rank; i++) s.dim[i] = dims[i];
    return s;
}

void shape_strides(const Shape *s, int64_t *strides) {
    int64_t st = 1;
    for (int i = s->rank - 1; i >= 0; i--) {
        strides[i] = st;
        st *= s->dim[i];
    }
}

char *type_format(char *buf, size_t n, DType t, const Shape *s) {
    size_t k = (size_t)snprintf(buf, n, "%s[", dtype_name(t));
    for (int i = 0; i < s->rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? "," : "", (long long)s->dim[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}
