/* rt/array.c: dtypes (one table row per dtype: name, size, .npy descr,
 * safetensors name and order), overflow-checked shape sizes, array
 * allocation and description, 64-byte aligned allocation. */

/* ---- dtypes and arrays ------------------------------------------------------ */

static const char *const dt_name[ETCH_DTYPE_COUNT] = {"f32", "f64", "i32", "i64", "bool", "u8", "i8"};
static const size_t dt_size[ETCH_DTYPE_COUNT] = {4, 8, 4, 8, 1, 1, 1};
static const char *const npy_descr[ETCH_DTYPE_COUNT] = {"<f4", "<f8", "<i4", "<i8", "|b1", "|u1", "|i1"};
static const char *const st_dtype[ETCH_DTYPE_COUNT] = {"F32", "F64", "I32", "I64", "BOOL", "U8", "I8"};
/* The reference safetensors writer orders tensors by its Dtype enum, descending
 * (which keeps each aligned to its element size): I64 > F64 > F32 > I32 > I8 > U8 > BOOL. */
static const int st_order_key[ETCH_DTYPE_COUNT] = {4, 5, 3, 6, 0, 1, 2};

static int dt_valid(etch_dtype t) { return (int)t >= 0 && (int)t < (int)ETCH_DTYPE_COUNT; }

const char *etch_dtype_name(etch_dtype t) { return dt_valid(t) ? dt_name[t] : "?"; }
size_t etch_dtype_size(etch_dtype t) { return dt_valid(t) ? dt_size[t] : 0; }

/* Element count and byte size of a shape; -1 for a bad rank, a negative
 * dimension, or a product that overflows int64 or size_t. */
static int shape_size(int rank, const int64_t *dim, size_t elsize, int64_t *numel, size_t *nbytes) {
    if (rank < 0 || rank > ETCH_RT_MAX_RANK || (rank > 0 && !dim)) return -1;
    int64_t n = 1;
    for (int i = 0; i < rank; i++)
        if (dim[i] < 0) return -1;
        else if (dim[i] == 0) n = 0; /* no elements, however large the other dimensions */
    for (int i = 0; i < rank && n; i++) {
        if (n > INT64_MAX / dim[i]) return -1;
        n *= dim[i];
    }
    if (elsize && (uint64_t)n > (uint64_t)(SIZE_MAX / elsize)) return -1;
    if (numel) *numel = n;
    if (nbytes) *nbytes = (size_t)n * elsize;
    return 0;
}

int64_t etch_array_numel(const etch_array *a) {
    int64_t n;
    return a && shape_size(a->rank, a->dim, 0, &n, NULL) == 0 ? n : -1;
}

size_t etch_array_nbytes(const etch_array *a) {
    size_t nb;
    return a && dt_valid(a->dtype) && !shape_size(a->rank, a->dim, dt_size[a->dtype], NULL, &nb) ? nb : 0;
}

int etch_array_alloc(etch_array *a, etch_dtype t, int rank, const int64_t *dim) {
    if (!a) return -1;
    memset(a, 0, sizeof *a);
    size_t nb;
    if (!dt_valid(t) || shape_size(rank, dim, dt_size[t], NULL, &nb)) return -1;
    a->dtype = t;
    a->rank = rank;
    for (int i = 0; i < rank; i++) a->dim[i] = dim[i];
    if (!(a->data = etch_aligned_alloc(nb))) return -1;
    memset(a->data, 0, nb);
    return 0;
}

void etch_array_free(etch_array *a) {
    if (!a) return;
    etch_aligned_free(a->data);
    a->data = NULL;
}

char *etch_array_describe(char *buf, size_t n, etch_dtype t, int rank, const int64_t *dim) {
    if (!buf || n == 0) return buf;
    size_t k = 0;
    append(buf, n, &k, "%s[", etch_dtype_name(t));
    for (int i = 0; dim && i < rank && i < ETCH_RT_MAX_RANK; i++)
        append(buf, n, &k, "%s%lld", i ? "," : "", (long long)dim[i]);
    append(buf, n, &k, "]");
    return buf;
}

void *etch_aligned_alloc(size_t nbytes) {
    if (nbytes > SIZE_MAX - 63) return NULL;
    size_t n = (nbytes + 63) & ~(size_t)63; /* aligned_alloc wants a multiple of the alignment */
    return aligned_alloc(64, n ? n : 64);   /* 0 bytes still gives a real, freeable pointer */
}

void etch_aligned_free(void *p) { free(p); }
