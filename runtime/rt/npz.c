/* rt/npz.c: a NumPy .npz writer (a zip archive of .npy members, stored
 * uncompressed, what numpy.savez writes) for programs with several outputs:
 * one file that numpy.load opens as a dict of arrays. */

/* ---- .npz (zip of .npy members, stored) -------------------------------------- */

static void put_le16(unsigned char *p, uint32_t v) { p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8); }
static void put_le32(unsigned char *p, uint32_t v) { put_le16(p, v), put_le16(p + 2, v >> 16); }

/* A zip header record: the fields every local and central header shares
 * (version 2.0, no flags, stored, 1980-01-01 00:00, CRC, sizes, name length). */
static void zip_common(unsigned char *p, uint32_t crc, uint32_t size, size_t name_len) {
    put_le16(p, 20), put_le16(p + 2, 0), put_le16(p + 4, 0), put_le16(p + 6, 0), put_le16(p + 8, 0x21);
    put_le32(p + 10, crc), put_le32(p + 14, size), put_le32(p + 18, size), put_le16(p + 22, (uint32_t)name_len);
}

/* One member's .npy bytes in a malloc'd buffer (little-endian data). */
static unsigned char *npz_member(const etch_array *a, size_t *n) {
    unsigned char pre[10], *b;
    char h[512];
    size_t k, nbytes;
    if (npy_header(a, pre, h, &k, &nbytes) || !(b = malloc(10 + k + nbytes + 1))) return NULL;
    memcpy(b, pre, 10);
    memcpy(b + 10, h, k);
    if (nbytes) memcpy(b + 10 + k, a->data, nbytes);
    le_swap(b + 10 + k, nbytes / dt_size[a->dtype], dt_size[a->dtype]);
    *n = 10 + k + nbytes;
    return b;
}

int etch_npz_write(const char *path, int n, const char *const *names, const etch_array *arrays, char *err,
                   size_t errlen) {
    enum { MAX_NAME = 250 };
    if (n < 1 || n > 65535 || !names || !arrays) return fail(err, errlen, "%s: invalid arguments (n=%d)", path, n);
    for (int i = 0; i < n; i++)
        if (!names[i] || !*names[i] || strlen(names[i]) > MAX_NAME || strchr(names[i], '/'))
            return fail(err, errlen, "%s: member %d needs a name of 1 to %d characters without '/'", path, i, MAX_NAME);
    uint32_t(*t)[256] = malloc(sizeof(uint32_t[8][256]));
    unsigned char *central = malloc((size_t)n * (46 + MAX_NAME + 4)), hdr[30 + MAX_NAME + 5];
    size_t offset = 0, cn = 0;
    int rc = -1;
    aw w;
    if (!t || !central) {
        fail(err, errlen, "%s: out of memory", path);
        goto done;
    }
    crc32_tables(t);
    if (aw_open(&w, path, err, errlen)) goto done;
    for (int i = 0; i < n; i++) {
        size_t size, name_len = strlen(names[i]) + 4;
        unsigned char *m = npz_member(&arrays[i], &size);
        if (!m || offset + 30 + name_len + size > 0xffffffffu) {
            int too_big = m != NULL;
            free(m);
            aw_abort(&w);
            if (too_big) fail(err, errlen, "%s: more than 4 GiB: too large for a zip without ZIP64", path);
            else fail(err, errlen, "%s: member '%s': invalid array (bad dtype, rank, shape or no data) or out of memory",
                      path, names[i]);
            goto done;
        }
        uint32_t crc = crc32_update(t, 0, m, size);
        put_le32(hdr, 0x04034b50);
        zip_common(hdr + 4, crc, (uint32_t)size, name_len);
        put_le16(hdr + 28, 0); /* no extra field */
        snprintf((char *)hdr + 30, MAX_NAME + 5, "%s.npy", names[i]);
        unsigned char *c = central + cn; /* the central directory's entry for it */
        put_le32(c, 0x02014b50);
        put_le16(c + 4, 20);
        zip_common(c + 6, crc, (uint32_t)size, name_len);
        memset(c + 30, 0, 12); /* extra, comment, disk, attributes */
        put_le32(c + 42, (uint32_t)offset);
        memcpy(c + 46, hdr + 30, name_len);
        cn += 46 + name_len;
        int bad = aw_write(&w, hdr, 30 + name_len, err, errlen) || aw_write(&w, m, size, err, errlen);
        free(m);
        if (bad) goto done;
        offset += 30 + name_len + size;
    }
    unsigned char end[22];
    put_le32(end, 0x06054b50);
    put_le32(end + 4, 0); /* this disk, the directory's disk */
    put_le16(end + 8, (uint32_t)n), put_le16(end + 10, (uint32_t)n);
    put_le32(end + 12, (uint32_t)cn), put_le32(end + 16, (uint32_t)offset), put_le16(end + 20, 0);
    if (offset + cn > 0xffffffffu) {
        aw_abort(&w);
        fail(err, errlen, "%s: more than 4 GiB: too large for a zip without ZIP64", path);
        goto done;
    }
    if (aw_write(&w, central, cn, err, errlen) || aw_write(&w, end, sizeof end, err, errlen)) goto done;
    rc = aw_commit(&w, err, errlen);
done:
    free(t);
    free(central);
    return rc;
}
