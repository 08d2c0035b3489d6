/* rt/safetensors.c: safetensors read (the whole file in one buffer, tensors
 * validated against it and pointed into it; misaligned ones moved) and write
 * (the reference implementation's header layout and tensor order). */

/* ---- safetensors -------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* A name occurring twice among n names, each the first member of a stride-byte
 * record; NULL when all differ (or on out of memory). */
static const char *find_dup(const void *base, int n, size_t stride) {
    const char **s = n > 1 ? malloc((size_t)n * sizeof *s) : NULL, *dup = NULL;
    for (int i = 0; s && i < n; i++) memcpy(&s[i], (const char *)base + (size_t)i * stride, sizeof *s);
    if (s) qsort(s, (size_t)n, sizeof *s, cmp_str);
    for (int i = 1; s && i < n && !dup; i++)
        if (!strcmp(s[i - 1], s[i])) dup = s[i];
    free(s);
    return dup;
}

typedef struct st_span { /* a tensor's data_offsets, [begin, end) in the data buffer */
    uint64_t begin, end;
} st_span;

/* Parses one tensor entry {"dtype":..,"shape":[..],"data_offsets":[b,e]}. JSON
 * errors leave j->what set; other errors are written to err. */
static int st_entry(const char *path, json *j, etch_st_tensor *t, st_span *r, char *err, size_t errlen) {
    char *dtype = NULL, *key;
    int have_shape = 0, have_off = 0, first = 1, more, bad = 0, d = 0;
    if (!js_eat(j, '{')) return js_fail(j, "expected '{' for a tensor entry");
    while (!bad && (more = js_member(j, &first, &key)) > 0) {
        if (!strcmp(key, "dtype")) {
            free(dtype);
            bad = js_string(j, &dtype);
        } else if (!strcmp(key, "shape")) {
            t->array.rank = js_int_array(j, t->array.dim, ETCH_RT_MAX_RANK, "shape has more than 8 dimensions");
            bad = t->array.rank < 0;
            have_shape = 1;
        } else if (!strcmp(key, "data_offsets")) {
            int64_t o[2];
            int m = js_int_array(j, o, 2, "data_offsets has more than 2 entries");
            if (m < 0) bad = -1;
            else if (m != 2) bad = js_fail(j, "data_offsets must hold 2 integers");
            else if (o[0] < 0 || o[1] < 0) bad = js_fail(j, "data_offsets must be non-negative");
            else r->begin = (uint64_t)o[0], r->end = (uint64_t)o[1];
            have_off = 1;
        } else {
            bad = js_skip(j, 1);
        }
        free(key);
    }
    if (bad || more < 0) return free(dtype), -1;
    j->what = NULL; /* from here on errors are about the tensor, not the JSON */
    if (!dtype || !have_shape || !have_off)
        bad = fail(err, errlen, "%s: tensor '%s' lacks \"%s\"", path, t->name,
                   !dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
    while (!bad && d < ETCH_DTYPE_COUNT && strcmp(dtype, st_dtype[d])) d++;
    if (!bad && d == ETCH_DTYPE_COUNT)
        bad = fail(err, errlen, "%s: unsupported dtype %s for tensor '%s' (supported: F32, F64, I32, I64, BOOL, U8, I8)",
                   path, dtype, t->name);
    t->array.dtype = (etch_dtype)d;
    free(dtype);
    return bad;
}

void etch_st_close(etch_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) free(f->tensors[i].name);
    for (int i = 0; i < 2 * f->n_meta; i++) free(f->meta[i]);
    free(f->meta);
    free(f->tensors);
    free(f->buffer);
    memset(f, 0, sizeof *f);
}

/* The "__metadata__" value: its string members go into f->meta (key, value
 * pairs; a later duplicate key wins in etch_st_meta); other values, and a
 * value that is not an object, are skipped. */
static int st_metadata(json *j, etch_st_file *f) {
    int first = 1, more;
    char *key;
    if (js_peek(j) != '{') return js_skip(j, 1);
    j->p++;
    while ((more = js_member(j, &first, &key)) > 0) {
        char *value = NULL;
        int bad = js_peek(j) == '"' ? js_string(j, &value) : js_skip(j, 1);
        char **grown = !bad && value ? realloc(f->meta, (size_t)(f->n_meta + 1) * 2 * sizeof *grown) : NULL;
        if (grown) {
            f->meta = grown;
            grown[2 * f->n_meta] = key, grown[2 * f->n_meta + 1] = value;
            f->n_meta++;
            continue;
        }
        free(key);
        free(value);
        if (bad) return -1;
        if (value) return js_fail(j, "out of memory");
    }
    return more;
}

/* Parses the header of the n-byte file in f->buffer into f->tensors and spans. */
static int st_parse(const char *path, etch_st_file *f, size_t n, st_span **spans, char *err, size_t errlen) {
    unsigned char *buf = f->buffer;
    if (n < 8) return fail(err, errlen, "%s: truncated: %zu bytes, too short for the 8-byte header length", path, n);
    uint64_t hlen = rd_le64(buf);
    if (hlen > n - 8)
        return fail(err, errlen, "%s: truncated: header length says %llu bytes, file has %zu after it", path,
                    (unsigned long long)hlen, n - 8);
    json j = {buf + 8, buf + 8, buf + 8 + hlen, NULL};
    char *name;
    int cap = 0, first = 1, more;
    if (!js_eat(&j, '{')) {
        js_fail(&j, "expected '{'");
        goto bad_json;
    }
    while ((more = js_member(&j, &first, &name)) > 0) {
        if (!strcmp(name, "__metadata__")) { /* free-form str->str map: kept for etch_st_meta */
            free(name);
            if (st_metadata(&j, f)) goto bad_json;
            continue;
        }
        if (f->n == cap) {
            int ncap = cap ? cap * 2 : 16;
            etch_st_tensor *nt = ncap < INT_MAX / 2 ? realloc(f->tensors, (size_t)ncap * sizeof *nt) : NULL;
            st_span *ns = nt ? realloc(*spans, (size_t)ncap * sizeof *ns) : NULL;
            if (nt) f->tensors = nt;
            if (ns) *spans = ns;
            if (!ns) return free(name), fail(err, errlen, "%s: out of memory", path);
            cap = ncap;
        }
        etch_st_tensor *t = &f->tensors[f->n++];
        memset(t, 0, sizeof *t);
        t->name = name; /* owned by f from here on */
        if (st_entry(path, &j, t, &(*spans)[f->n - 1], err, errlen)) {
            if (j.what) goto bad_json;
            return -1;
        }
    }
    if (more < 0) goto bad_json;
    if (js_peek(&j) == -1) return 0; /* the reference pads with spaces; anything else is wrong */
    js_fail(&j, "unexpected text after the closing '}'");
bad_json:
    return fail(err, errlen, "%s: invalid JSON header: %s at header byte %td", path, j.what,
                (const char *)j.p - (const char *)j.s);
}

/* Checks every tensor against the data buffer and points it at its data. */
static int st_place(const char *path, etch_st_file *f, size_t n, st_span *sp, char *err, size_t errlen) {
    const char *dup = find_dup(f->tensors, f->n, sizeof *f->tensors);
    if (dup) return fail(err, errlen, "%s: tensor '%s' appears twice in the header", path, dup);
    unsigned char *buf = f->buffer;
    size_t start = 8 + (size_t)rd_le64(buf), dlen = n - start, total = 0;
    int misaligned = 0;
    for (int i = 0; i < f->n; i++) {
        etch_st_tensor *t = &f->tensors[i];
        size_t es = dt_size[t->array.dtype], nbytes;
        char d[256];
        etch_array_describe(d, sizeof d, t->array.dtype, t->array.rank, t->array.dim);
        if (shape_size(t->array.rank, t->array.dim, es, NULL, &nbytes))
            return fail(err, errlen, "%s: tensor '%s' has an invalid shape %s", path, t->name, d);
        unsigned long long b = sp[i].begin, e = sp[i].end;
        if (e < b || e > dlen)
            return fail(err, errlen, "%s: tensor '%s' has data_offsets [%llu,%llu] outside the %zu-byte data buffer",
                        path, t->name, b, e, dlen);
        if (e - b != nbytes)
            return fail(err, errlen, "%s: tensor '%s' is %s (%zu bytes) but data_offsets [%llu,%llu] span %llu bytes",
                        path, t->name, d, nbytes, b, e, e - b);
        const unsigned char *p = buf + start + b;
        for (size_t k = 0; t->array.dtype == ETCH_BOOL && k < nbytes; k++)
            if (p[k] > 1)
                return fail(err, errlen, "%s: tensor '%s': bool element %zu has value %u, expected 0 or 1", path,
                            t->name, k, p[k]);
        misaligned |= (uintptr_t)p % es != 0;
        if (total > SIZE_MAX - 64 - nbytes) return fail(err, errlen, "%s: tensors too large to align", path);
        total += (nbytes + 63) & ~(size_t)63;
    }
    if (misaligned) {
        /* A writer that neither padded its header nor ordered tensors by alignment
         * left some misaligned for their type: move each to a 64-aligned slot. */
        unsigned char *nb = etch_aligned_alloc(total);
        if (!nb) return fail(err, errlen, "%s: out of memory", path);
        size_t off = 0;
        for (int i = 0; i < f->n; i++) {
            size_t len = (size_t)(sp[i].end - sp[i].begin);
            memcpy(nb + off, buf + start + sp[i].begin, len);
            sp[i].begin = (uint64_t)off;
            off += (len + 63) & ~(size_t)63;
        }
        free(buf);
        f->buffer = buf = nb;
        start = 0;
    }
    for (int i = 0; i < f->n; i++) {
        etch_st_tensor *t = &f->tensors[i];
        size_t es = dt_size[t->array.dtype];
        t->array.data = buf + start + sp[i].begin;
        le_swap(t->array.data, (size_t)(sp[i].end - sp[i].begin) / es, es);
    }
    return 0;
}

int etch_st_read(const char *path, etch_st_file *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    unsigned char *buf;
    size_t n;
    st_span *spans = NULL;
    if (etch_read_file(path, &buf, &n, err, errlen)) return -1;
    out->buffer = buf;
    int rc = st_parse(path, out, n, &spans, err, errlen) || st_place(path, out, n, spans, err, errlen) ? -1 : 0;
    free(spans);
    if (rc) etch_st_close(out);
    return rc;
}

const etch_st_tensor *etch_st_find(const etch_st_file *f, const char *name) {
    for (int i = 0; f && name && i < f->n; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

const char *etch_st_meta(const etch_st_file *f, const char *key) {
    for (int i = f && key ? f->n_meta - 1 : -1; i >= 0; i--)
        if (!strcmp(f->meta[2 * i], key)) return f->meta[2 * i + 1];
    return NULL;
}

int etch_st_expect(const etch_st_file *f, const char *path, const char *name, etch_dtype t, int rank,
                   const int64_t *dim, const void **data, char *err, size_t errlen) {
    const etch_st_tensor *x = etch_st_find(f, name);
    if (!x) {
        char list[512] = "";
        size_t k = 0;
        int n = f ? f->n : 0, shown = n < 8 ? n : 8;
        for (int i = 0; i < shown; i++) append(list, sizeof list, &k, "%s%s", i ? ", " : "", f->tensors[i].name);
        if (n > shown) append(list, sizeof list, &k, " and %d more", n - shown);
        if (n == 0) return fail(err, errlen, "%s: missing tensor '%s' (file has no tensors)", path, name);
        return fail(err, errlen, "%s: missing tensor '%s' (file has: %s)", path, name, list);
    }
    int same = x->array.dtype == t && x->array.rank == rank && (rank == 0 || dim);
    for (int i = 0; same && i < rank; i++) same = x->array.dim[i] == dim[i];
    if (!same) {
        char got[256], want[256];
        etch_array_describe(got, sizeof got, x->array.dtype, x->array.rank, x->array.dim);
        etch_array_describe(want, sizeof want, t, rank, dim);
        return fail(err, errlen, "%s: tensor '%s' is %s, expected %s", path, name, got, want);
    }
    if (data) *data = x->array.data;
    return 0;
}

/* Growable string for building a JSON header. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (!b->s || n >= b->cap - b->len) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap - b->len <= n && ncap <= SIZE_MAX / 2) ncap *= 2;
        char *ns = ncap - b->len > n ? realloc(b->s, ncap) : NULL;
        if (!(b->oom = !ns)) b->s = ns;
        if (b->oom) return;
        b->cap = ncap;
    }
    memcpy(b->s + b->len, s, n);
    b->s[b->len += n] = 0;
}

ETCH_PRINTF(2, 3)
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[128]; /* only short items: numbers, dtypes, punctuation */
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_put(b, tmp, w < 0 ? 0 : (size_t)w < sizeof tmp ? (size_t)w : sizeof tmp - 1);
}

/* A JSON string literal, escaped as serde_json does. */
static void sb_json(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        const char *e = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
                      : c == '\t' ? "\\t" : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
        if (e) sb_put(b, e, 2);
        else if (c < 0x20) sb_printf(b, "\\u%04x", c);
        else sb_put(b, s, 1);
    }
    sb_put(b, "\"", 1);
}

typedef struct st_item {
    const char *name; /* first member: find_dup reads it */
    const etch_array *a;
    size_t nbytes;
} st_item;

static int cmp_item(const void *a, const void *b) {
    const st_item *x = a, *y = b;
    int kx = st_order_key[x->a->dtype], ky = st_order_key[y->a->dtype];
    return kx != ky ? ky - kx : strcmp(x->name, y->name);
}

/* Validates the tensors and lays them out as the reference writer does. */
static int st_plan(const char *path, int n, const char *const *names, const etch_array *arrays, st_item *it,
                   char *err, size_t errlen) {
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        const etch_array *a = &arrays[i];
        if (!names[i] || !strcmp(names[i], "__metadata__"))
            return fail(err, errlen, "%s: tensor %d has an invalid name '%s'", path, i, names[i] ? names[i] : "(null)");
        it[i] = (st_item){names[i], a, 0};
        if (!dt_valid(a->dtype) || shape_size(a->rank, a->dim, dt_size[a->dtype], NULL, &it[i].nbytes) ||
            (it[i].nbytes && !a->data))
            return fail(err, errlen, "%s: tensor '%s' is not a valid array", path, names[i]);
        if ((total += it[i].nbytes) < it[i].nbytes) return fail(err, errlen, "%s: tensors too large", path);
    }
    const char *dup = find_dup(it, n, sizeof *it);
    if (dup) return fail(err, errlen, "%s: tensor name '%s' is given twice", path, dup);
    qsort(it, (size_t)n, sizeof *it, cmp_item);
    return 0;
}

int etch_st_write(const char *path, int n, const char *const *names, const etch_array *arrays, int n_meta,
                  const char *const *meta_kv, char *err, size_t errlen) {
    if (n < 0 || (n > 0 && (!names || !arrays)) || n_meta < 0 || (n_meta > 0 && !meta_kv))
        return fail(err, errlen, "%s: invalid arguments (n=%d, n_meta=%d)", path, n, n_meta);
    for (int i = 0; i < 2 * n_meta; i++)
        if (!meta_kv[i]) return fail(err, errlen, "%s: metadata entry %d is NULL", path, i / 2);
    st_item *it = malloc((size_t)(n ? n : 1) * sizeof *it);
    if (!it) return fail(err, errlen, "%s: out of memory", path);
    if (st_plan(path, n, names, arrays, it, err, errlen)) return free(it), -1;
    sbuf h = {0};
    uint64_t off = 0;
    int rc = 0;
    sb_put(&h, "{", 1);
    for (int i = 0; i < n_meta; i++) {
        sb_put(&h, i ? "," : "\"__metadata__\":{", i ? 1 : 16);
        sb_json(&h, meta_kv[2 * i]);
        sb_put(&h, ":", 1);
        sb_json(&h, meta_kv[2 * i + 1]);
    }
    if (n_meta) sb_put(&h, "}", 1);
    for (int i = 0, d; i < n; i++) {
        sb_put(&h, ",", n_meta || i);
        sb_json(&h, it[i].name);
        sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype[it[i].a->dtype]);
        for (d = 0; d < it[i].a->rank; d++) sb_printf(&h, "%s%lld", d ? "," : "", (long long)it[i].a->dim[d]);
        sb_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                  (unsigned long long)(off + it[i].nbytes));
        off += it[i].nbytes; /* st_plan checked the total */
    }
    sb_put(&h, "}", 1);
    while (!h.oom && h.len % 8) sb_put(&h, " ", 1); /* the reference pads with spaces to 8 bytes */
    if (h.oom) rc = fail(err, errlen, "%s: out of memory", path);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    aw w;
    if (!rc) rc = aw_open(&w, path, err, errlen) || aw_write(&w, len8, 8, err, errlen) ||
                  aw_write(&w, h.s, h.len, err, errlen);
    for (int i = 0; !rc && i < n; i++) {
        size_t es = dt_size[it[i].a->dtype];
        rc = aw_write_le(&w, it[i].a->data, it[i].nbytes / es, es, err, errlen);
    }
    if (!rc) rc = aw_commit(&w, err, errlen);
    free(h.s);
    free(it);
    return rc ? -1 : 0;
}
