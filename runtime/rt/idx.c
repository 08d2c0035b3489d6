/* rt/idx.c: IDX (MNIST, Fashion-MNIST) read: the big-endian header checked
 * against the file length, every payload type widened to a runtime dtype;
 * gzip-compressed files are inflated in memory first. etch_idx_read_rows
 * reads only the first rows (a prefix of the file, inflated only that far),
 * so a tool that needs some images does not hold all of them. */

/* ---- IDX ------------------------------------------------------------------------ */

/* b[0, n): an IDX file, or with max_rows >= 0 at least its first max_rows
 * rows (dim 0), which are all out gets. */
static int idx_parse(const char *path, const unsigned char *b, size_t n, int64_t max_rows, etch_array *out, char *err,
                     size_t errlen) {
    if (n < 4) return fail(err, errlen, "%s: truncated: %zu bytes, too short for an IDX header", path, n);
    if (b[0] || b[1])
        return fail(err, errlen, "%s: not an IDX file (magic %02x %02x %02x %02x, expected 00 00 type rank)", path,
                    b[0], b[1], b[2], b[3]);
    unsigned type = b[2], rank = b[3];
    size_t es = type == 0x08 || type == 0x09 ? 1 : type == 0x0B ? 2 : type == 0x0C || type == 0x0D ? 4 : 8;
    etch_dtype t = type == 0x08 ? ETCH_U8 : type == 0x0D ? ETCH_F32 : type == 0x0E ? ETCH_F64 : ETCH_I32;
    if (type < 0x08 || type > 0x0E || type == 0x0A)
        return fail(err, errlen, "%s: unsupported IDX data type 0x%02x", path, type);
    if (rank > ETCH_RT_MAX_RANK)
        return fail(err, errlen, "%s: IDX rank %u exceeds the maximum %d", path, rank, ETCH_RT_MAX_RANK);
    if (n - 4 < 4 * (size_t)rank)
        return fail(err, errlen, "%s: truncated: %zu bytes, too short for %u dimensions", path, n, rank);
    int64_t dim[ETCH_RT_MAX_RANK], numel;
    for (unsigned i = 0; i < rank; i++) dim[i] = rd_be32(b + 4 + 4 * i);
    if (max_rows >= 0 && rank > 0 && dim[0] > max_rows) dim[0] = max_rows;
    size_t nbytes, off = 4 + 4 * (size_t)rank, avail = n - off;
    char d[256];
    etch_array_describe(d, sizeof d, t, (int)rank, dim);
    if (shape_size((int)rank, dim, es, &numel, &nbytes)) return fail(err, errlen, "%s: shape %s is too large", path, d);
    if (avail < nbytes)
        return fail(err, errlen, "%s: truncated: header says %zu bytes of data, file has %zu", path, nbytes, avail);
    if (avail > nbytes && max_rows < 0)
        return fail(err, errlen, "%s: %zu unexpected bytes after the data (header says %zu bytes of data)", path,
                    avail - nbytes, nbytes);
    if (etch_array_alloc(out, t, (int)rank, dim)) return fail(err, errlen, "%s: out of memory for %s", path, d);
    const unsigned char *p = b + off;
    unsigned char *o = out->data;
    if (type == 0x08) memcpy(o, p, nbytes);
    for (size_t i = 0; type != 0x08 && i < (size_t)numel; i++, p += es) { /* the payload is big-endian */
        int32_t v = type == 0x09 ? p[0] - (p[0] & 0x80 ? 256 : 0)
                  : type == 0x0B ? (p[0] << 8 | p[1]) - (p[0] & 0x80 ? 65536 : 0) : 0;
        uint32_t u = es == 4 ? rd_be32(p) : (uint32_t)v; /* i32 and f32 bits, or the widened value */
        uint64_t w = es == 8 ? (uint64_t)rd_be32(p) << 32 | rd_be32(p + 4) : 0;
        if (es == 8) memcpy(o + 8 * i, &w, 8);
        else memcpy(o + 4 * i, &u, 4);
    }
    return 0;
}

/* The file's bytes, inflated when gzip; with limit > 0 at least its first
 * limit bytes (fewer only when it is shorter). */
static int idx_bytes(const char *path, size_t limit, unsigned char **buf, size_t *n, char *err, size_t errlen) {
    unsigned char *raw;
    size_t rn, plen = strlen(path);
    char msg[256];
    if (etch_read_file(path, buf, n, err, errlen)) return -1;
    if (*n >= 2 && (*buf)[0] == 0x1f && (*buf)[1] == 0x8b) { /* gzip, whatever the name */
        int rc = etch_gunzip_prefix(*buf, *n, limit, &raw, &rn, msg, sizeof msg);
        free(*buf);
        *buf = NULL;
        if (rc) return fail(err, errlen, "%s: %s", path, msg);
        *buf = raw;
        *n = rn;
    } else if (plen >= 3 && !strcmp(path + plen - 3, ".gz")) {
        unsigned b0 = *n > 0 ? (*buf)[0] : 0, b1 = *n > 1 ? (*buf)[1] : 0;
        free(*buf);
        *buf = NULL;
        return fail(err, errlen, "%s: not gzip data (starts with %02x %02x, expected 1f 8b)", path, b0, b1);
    }
    return 0;
}

int etch_idx_read(const char *path, etch_array *out, char *err, size_t errlen) {
    return etch_idx_read_rows(path, -1, out, err, errlen);
}

int etch_idx_read_rows(const char *path, int64_t max_rows, etch_array *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    unsigned char *buf;
    size_t n, limit = 0;
    if (max_rows >= 0) { /* the header first (at most 4 + 4 * max rank bytes), then as many bytes as the rows take */
        if (idx_bytes(path, 4 + 4 * ETCH_RT_MAX_RANK, &buf, &n, err, errlen)) return -1;
        unsigned rank = n >= 4 ? buf[3] : 0, type = n >= 4 ? buf[2] : 0;
        size_t es = type == 0x08 || type == 0x09 ? 1 : type == 0x0B ? 2 : type == 0x0C || type == 0x0D ? 4 : 8;
        size_t row = es, head = 4 + 4 * (size_t)rank;
        int big = rank > ETCH_RT_MAX_RANK || n < head;
        for (unsigned i = 1; !big && i < rank; i++) {
            uint32_t dim = rd_be32(buf + 4 + 4 * i);
            if (dim && row > SIZE_MAX / dim) big = 1;
            else row *= dim;
        }
        free(buf);
        /* a header idx_parse refuses, or rows too large to count: read it all and let idx_parse say why */
        if (!big && rank > 0 && (uint64_t)max_rows <= (SIZE_MAX - head) / (row ? row : 1)) limit = head + row * (size_t)max_rows;
        if (limit == 0) limit = SIZE_MAX; /* no rows: still the whole header */
    }
    if (idx_bytes(path, limit == SIZE_MAX ? 0 : limit, &buf, &n, err, errlen)) return -1;
    int rc = idx_parse(path, buf, n, max_rows, out, err, errlen);
    free(buf);
    return rc;
}
