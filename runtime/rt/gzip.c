/* rt/gzip.c: the gzip wrapper (RFC 1952) around the inflater: headers with
 * their optional fields, members one after another, CRC-32 and length
 * checked against each member's trailer. */

/* One gzip member at in[pos]: header, deflate data, CRC-32 and ISIZE trailer. */
static int gz_member(inflater *s, size_t pos) {
    const unsigned char *in = s->in;
    size_t n = s->n, p = pos + 10, start = s->len;
    if (n - pos < 2 || in[pos] != 0x1f || in[pos + 1] != 0x8b) return inf_fail(s, "trailing garbage after the gzip data");
    if (n - pos < 10) return inf_fail(s, "truncated header");
    if (in[pos + 2] != 8) {
        snprintf(s->detail, sizeof s->detail, "unsupported compression method %u", in[pos + 2]);
        return inf_fail(s, s->detail);
    }
    unsigned flg = in[pos + 3];
    if (flg & 0xE0) return inf_fail(s, "reserved header flags set");
    if (flg & 4) { /* FEXTRA: a 2-byte length, then that many bytes */
        if (n - p < 2 || n - p - 2 < (size_t)(in[p] | in[p + 1] << 8)) return inf_fail(s, "truncated header");
        p += 2 + (size_t)(in[p] | in[p + 1] << 8);
    }
    for (unsigned f = 8; f <= 16; f <<= 1) /* FNAME, FCOMMENT: NUL-terminated */
        if (flg & f) {
            while (p < n && in[p]) p++;
            if (p++ >= n) return inf_fail(s, "truncated header");
        }
    if (flg & 2) { /* FHCRC: the low 16 bits of the header's CRC-32 */
        if (n - p < 2) return inf_fail(s, "truncated header");
        if ((crc32_update(s->crc, 0, in + pos, p - pos) & 0xffff) != (unsigned)(in[p] | in[p + 1] << 8))
            return inf_fail(s, "header crc mismatch");
        p += 2;
    }
    s->pos = p;
    int rc = inflate_stream(s);
    if (rc) return rc; /* 1: the output limit, reached before the trailer */
    if (n - s->pos < 8) return inf_fail(s, "truncated: the CRC-32/ISIZE trailer is missing");
    uint32_t want = rd_le32(in + s->pos), got = crc32_update(s->crc, 0, s->out + start, s->len - start);
    uint32_t wlen = rd_le32(in + s->pos + 4);
    s->pos += 8;
    if (want != got)
        snprintf(s->detail, sizeof s->detail, "crc mismatch: trailer says %08x, data has %08x", (unsigned)want,
                 (unsigned)got);
    else if (wlen != (uint32_t)(s->len - start))
        snprintf(s->detail, sizeof s->detail, "length mismatch: trailer says %u bytes, data has %zu", (unsigned)wlen,
                 s->len - start);
    else
        return 0;
    return inf_fail(s, s->detail);
}

int etch_gunzip_prefix(const unsigned char *in, size_t n_in, size_t limit, unsigned char **out, size_t *n_out,
                       char *err, size_t errlen) {
    *out = NULL;
    *n_out = 0;
    if (n_in < 2 || in[0] != 0x1f || in[1] != 0x8b) return fail(err, errlen, "not gzip data (no 1f 8b magic)");
    inflater *s = calloc(1, sizeof *s); /* ~16 KB of tables: kept off small thread stacks */
    if (!s) return fail(err, errlen, "out of memory");
    s->in = in;
    s->n = n_in;
    s->limit = limit;
    crc32_tables(s->crc);
    /* ISIZE hints the output size; trust it only as far as deflate's 1032:1 limit */
    uint32_t isize = n_in >= 4 ? rd_le32(in + n_in - 4) : 0;
    size_t hint = limit && limit < (size_t)isize ? limit : (size_t)isize;
    if (n_in < SIZE_MAX / 1032 && isize <= n_in * 1032 && (s->out = malloc(hint + 1))) s->cap = hint + 1;
    int rc = grow(s, 1); /* never a NULL buffer, even for empty output */
    for (size_t pos = 0; !rc && pos < n_in; pos = s->pos) {
        size_t z = pos; /* after a member: another member, or zero padding to the end */
        while (pos > 0 && z < n_in && in[z] == 0) z++;
        if (z == n_in) break;
        rc = gz_member(s, pos);
    }
    if (rc > 0) { /* the limit: its first limit bytes */
        rc = 0;
        s->len = limit;
    }
    if (!rc) rc = grow(s, 1); /* room for a terminating NUL */
    if (rc) {
        int oom = !strcmp(s->what, "out of memory") || !strcmp(s->what, "output too large");
        fail(err, errlen, "%s%s", oom ? "" : "corrupt gzip data: ", s->what);
        free(s->out);
    } else {
        s->out[s->len] = 0;
        *out = s->out;
        *n_out = s->len;
    }
    free(s);
    return rc ? -1 : 0;
}

int etch_gunzip(const unsigned char *in, size_t n_in, unsigned char **out, size_t *n_out, char *err, size_t errlen) {
    return etch_gunzip_prefix(in, n_in, 0, out, n_out, err, errlen);
}
