/* rt/npy.c: .npy read (format 1.0/2.0/3.0, the header's Python dict parsed as
 * hostile text) and write (1.0, byte-identical to numpy's own header). */

/* ---- .npy ------------------------------------------------------------------- */

/* Cursor over the header's Python dict literal. */
typedef struct pcur {
    const char *p, *s, *end;
} pcur;

static void py_ws(pcur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int py_eat(pcur *c, char ch) { /* skips spaces, then eats ch if it is next */
    py_ws(c);
    return c->p < c->end && *c->p == ch ? (c->p++, 1) : 0;
}

/* A quoted Python string ('...' or "...") into out; 0 on success. */
static int py_str(pcur *c, char *out, size_t outlen) {
    if (!py_eat(c, '\'') && !py_eat(c, '"')) return -1;
    char q = c->p[-1];
    size_t k = 0;
    for (; c->p < c->end && *c->p != q; c->p++) {
        if (*c->p == '\\' && c->p + 1 < c->end) c->p++;
        if (k + 1 < outlen) out[k++] = *c->p;
    }
    out[k] = 0;
    return c->p < c->end ? (c->p++, 0) : -1;
}

static int npy_parse(const char *path, const unsigned char *buf, size_t n, etch_array *out, char *err,
                     size_t errlen) {
    if (memcmp(buf, "\x93NUMPY", n < 6 ? n : 6) != 0) return fail(err, errlen, "%s: not a .npy file (bad magic)", path);
    unsigned major = n > 7 ? buf[6] : 1, minor = n > 7 ? buf[7] : 0;
    size_t pre = major == 1 ? 10 : 12, hlen;
    if (major < 1 || major > 3) return fail(err, errlen, "%s: unsupported .npy version %u.%u", path, major, minor);
    if (n < pre) return fail(err, errlen, "%s: truncated: %zu bytes, too short for a .npy preamble", path, n);
    hlen = major == 1 ? (size_t)(buf[8] | buf[9] << 8) : (size_t)rd_le32(buf + 8);
    if (hlen > n - pre)
        return fail(err, errlen, "%s: truncated: header length is %zu bytes, file has %zu after the preamble", path,
                    hlen, n - pre);

    pcur c = {(const char *)buf + pre, (const char *)buf + pre, (const char *)buf + pre + hlen};
    char key[32], descr[32] = "";
    int have_descr = 0, have_fo = 0, have_shape = 0, rank = 0;
    int64_t dim[ETCH_RT_MAX_RANK] = {0};
    const char *what = "expected '{'";
    if (!py_eat(&c, '{')) goto bad;
    while (!py_eat(&c, '}')) {
        what = "expected a quoted key";
        if (py_str(&c, key, sizeof key)) goto bad;
        what = "expected ':'";
        if (!py_eat(&c, ':')) goto bad;
        if (!strcmp(key, "descr")) {
            if (py_eat(&c, '['))
                return fail(err, errlen, "%s: unsupported dtype: structured arrays are not supported", path);
            what = "expected a string for 'descr'";
            if (py_str(&c, descr, sizeof descr)) goto bad;
            have_descr = 1;
        } else if (!strcmp(key, "fortran_order")) {
            py_ws(&c);
            size_t left = (size_t)(c.end - c.p);
            if (left >= 4 && !memcmp(c.p, "True", 4))
                return fail(err, errlen, "%s: fortran_order is True; only C-order arrays are supported", path);
            what = "expected True or False for 'fortran_order'";
            if (left < 5 || memcmp(c.p, "False", 5)) goto bad;
            c.p += 5;
            have_fo = 1;
        } else if (!strcmp(key, "shape")) {
            what = "expected '(' for 'shape'";
            if (!py_eat(&c, '(')) goto bad;
            while (!py_eat(&c, ')')) {
                what = "expected a non-negative integer in 'shape'";
                if (c.p >= c.end || *c.p < '0' || *c.p > '9') goto bad;
                if (rank == ETCH_RT_MAX_RANK)
                    return fail(err, errlen, "%s: shape has more than %d dimensions", path, ETCH_RT_MAX_RANK);
                int64_t v = 0;
                for (; c.p < c.end && *c.p >= '0' && *c.p <= '9'; c.p++) {
                    if (v > (INT64_MAX - 9) / 10) return fail(err, errlen, "%s: shape dimension too large", path);
                    v = v * 10 + (*c.p - '0');
                }
                c.p += c.p < c.end && *c.p == 'L'; /* Python 2 long literal, as in (3L, 4L) */
                dim[rank++] = v;
                what = "expected ',' or ')' in 'shape'";
                if (!py_eat(&c, ',') && !py_eat(&c, ')')) goto bad;
                if (c.p[-1] == ')') break;
            }
            have_shape = 1;
        } else {
            return fail(err, errlen, "%s: unexpected key '%s' in .npy header", path, key);
        }
        what = "expected ',' or '}'";
        if (!py_eat(&c, ',') && !py_eat(&c, '}')) goto bad;
        if (c.p[-1] == '}') break;
    }
    what = "unexpected text after the closing '}'";
    py_ws(&c); /* numpy pads with spaces and a '\n' */
    if (c.p != c.end) goto bad;
    if (!have_descr || !have_fo || !have_shape)
        return fail(err, errlen, "%s: .npy header lacks '%s'", path,
                    !have_descr ? "descr" : !have_fo ? "fortran_order" : "shape");

    int t = 0;
    while (t < ETCH_DTYPE_COUNT && strcmp(descr, npy_descr[t])) t++;
    if (t == ETCH_DTYPE_COUNT)
        return fail(err, errlen, "%s: unsupported dtype '%s' (supported: <f4, <f8, <i4, <i8, |b1, |u1, |i1)", path, descr);
    size_t nbytes, avail = n - pre - hlen;
    char d[256];
    if (shape_size(rank, dim, dt_size[t], NULL, &nbytes))
        return fail(err, errlen, "%s: shape %s is too large", path,
                    etch_array_describe(d, sizeof d, (etch_dtype)t, rank, dim));
    if (avail < nbytes)
        return fail(err, errlen, "%s: truncated: header says %zu bytes of data, file has %zu", path, nbytes, avail);
    if (avail > nbytes)
        return fail(err, errlen, "%s: %zu unexpected bytes after the data (header says %zu bytes of data)", path,
                    avail - nbytes, nbytes);
    const unsigned char *data = buf + pre + hlen;
    for (size_t i = 0; t == ETCH_BOOL && i < nbytes; i++)
        if (data[i] > 1)
            return fail(err, errlen, "%s: bool element %zu has value %u, expected 0 or 1", path, i, data[i]);
    if (etch_array_alloc(out, (etch_dtype)t, rank, dim))
        return fail(err, errlen, "%s: out of memory for %zu bytes of data", path, nbytes);
    memcpy(out->data, data, nbytes);
    le_swap(out->data, nbytes / dt_size[t], dt_size[t]);
    return 0;
bad:
    return fail(err, errlen, "%s: malformed .npy header: %s at header byte %td", path, what, c.p - c.s);
}

int etch_npy_read(const char *path, etch_array *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    unsigned char *buf;
    size_t n;
    if (etch_read_file(path, &buf, &n, err, errlen)) return -1;
    int rc = npy_parse(path, buf, n, out, err, errlen);
    free(buf);
    return rc;
}

/* The .npy preamble (magic, version 1.0, header length) into pre and numpy's
 * exact header into h (its length in *k; h holds at least 512 bytes): the
 * dict, spare room for the first axis to grow to 21 digits, then spaces and
 * '\n' so the data starts at a multiple of 64. *nbytes: the data's size.
 * -1 when a is not a valid array (the writers' message names the path). */
static int npy_header(const etch_array *a, unsigned char pre[10], char *h, size_t *k, size_t *nbytes) {
    enum { H = 512 };
    char d0[24];
    if (!a || !dt_valid(a->dtype) || shape_size(a->rank, a->dim, dt_size[a->dtype], NULL, nbytes) ||
        (*nbytes && !a->data))
        return -1;
    *k = 0;
    append(h, H, k, "{'descr': '%s', 'fortran_order': False, 'shape': (", npy_descr[a->dtype]);
    for (int i = 0; i < a->rank; i++) append(h, H, k, "%s%lld", i ? ", " : "", (long long)a->dim[i]);
    append(h, H, k, "%s), }", a->rank == 1 ? "," : "");
    int grow = a->rank ? 21 - snprintf(d0, sizeof d0, "%lld", (long long)a->dim[0]) : 0;
    append(h, H, k, "%*s", grow > 0 ? grow : 0, "");
    int pad = 64 - (int)((10 + *k + 1) % 64); /* numpy never pads by 0: a full 64 when already aligned */
    append(h, H, k, "%*s\n", pad, "");
    const unsigned char magic[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(*k & 0xff),
                                     (unsigned char)(*k >> 8)};
    memcpy(pre, magic, sizeof magic);
    return 0;
}

int etch_npy_write(const char *path, const etch_array *a, char *err, size_t errlen) {
    size_t nbytes, k;
    unsigned char pre[10];
    char h[512];
    if (npy_header(a, pre, h, &k, &nbytes))
        return fail(err, errlen, "%s: invalid array (bad dtype, rank, shape or no data)", path);
    aw w;
    if (aw_open(&w, path, err, errlen) || aw_write(&w, pre, sizeof pre, err, errlen) ||
        aw_write(&w, h, k, err, errlen) ||
        aw_write_le(&w, a->data, nbytes / dt_size[a->dtype], dt_size[a->dtype], err, errlen))
        return -1;
    return aw_commit(&w, err, errlen);
}
