/* rt/png.c: an 8-bit grayscale PNG writer (stored deflate blocks, no
 * compressor) for image grids such as an autoencoder's reconstructions. */

/* ---- PNG (8-bit grayscale), for image grids ------------------------------ */

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* Appends one chunk (length, type, data, CRC over type and data). */
static unsigned char *png_chunk(unsigned char *o, uint32_t (*t)[256], const char *type, const unsigned char *d, size_t n) {
    put_be32(o, (uint32_t)n);
    memcpy(o + 4, type, 4);
    if (n) memcpy(o + 8, d, n);
    put_be32(o + 8 + n, crc32_update(t, 0, o + 4, n + 4));
    return o + 12 + n;
}

/* The image data goes into the zlib stream as stored (uncompressed) deflate
 * blocks: no compressor needed, any viewer reads it, and grids are small. */
int etch_png_write_gray(const char *path, int width, int height, const unsigned char *pixels, char *err,
                        size_t errlen) {
    if (width <= 0 || height <= 0 || width > 65535 || height > 65535) {
        snprintf(err, errlen, "%s: cannot write a %dx%d image", path, width, height);
        return -1;
    }
    size_t raw_n = (size_t)height * ((size_t)width + 1), blocks = raw_n / 65535 + 1;
    size_t z_n = 2 + raw_n + 5 * blocks + 4, total = 8 + 25 + 12 + z_n + 12;
    unsigned char *raw = malloc(raw_n), *z = malloc(z_n), *out = malloc(total);
    uint32_t(*t)[256] = malloc(sizeof(uint32_t[8][256]));
    if (!raw || !z || !out || !t) {
        free(raw), free(z), free(out), free(t);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    crc32_tables(t);
    for (int y = 0; y < height; y++) { /* filter byte 0 (none) before each row */
        raw[(size_t)y * ((size_t)width + 1)] = 0;
        memcpy(raw + (size_t)y * ((size_t)width + 1) + 1, pixels + (size_t)y * (size_t)width, (size_t)width);
    }
    size_t zp = 0;
    z[zp++] = 0x78, z[zp++] = 0x01; /* zlib header: deflate, 32K window, no dictionary */
    uint32_t a = 1, b = 0;           /* Adler-32 of the raw data */
    for (size_t i = 0; i < raw_n; i++) a = (a + raw[i]) % 65521, b = (b + a) % 65521;
    for (size_t off = 0; off < raw_n || off == 0;) {
        size_t n = raw_n - off > 65535 ? 65535 : raw_n - off;
        z[zp++] = off + n == raw_n ? 1 : 0; /* BFINAL on the last block, BTYPE 00 */
        z[zp++] = (unsigned char)(n & 0xff), z[zp++] = (unsigned char)(n >> 8);
        z[zp++] = (unsigned char)(~n & 0xff), z[zp++] = (unsigned char)((~n >> 8) & 0xff);
        memcpy(z + zp, raw + off, n);
        zp += n;
        off += n;
        if (off == raw_n) break;
    }
    put_be32(z + zp, b << 16 | a);
    zp += 4;
    unsigned char ihdr[13], *o = out;
    memcpy(o, "\x89PNG\r\n\x1a\n", 8);
    o += 8;
    put_be32(ihdr, (uint32_t)width), put_be32(ihdr + 4, (uint32_t)height);
    ihdr[8] = 8, ihdr[9] = 0, ihdr[10] = 0, ihdr[11] = 0, ihdr[12] = 0; /* 8-bit gray, no interlace */
    o = png_chunk(o, t, "IHDR", ihdr, 13);
    o = png_chunk(o, t, "IDAT", z, zp);
    o = png_chunk(o, t, "IEND", NULL, 0);
    int rc = etch_write_file_atomic(path, out, (size_t)(o - out), err, errlen);
    free(raw), free(z), free(out), free(t);
    return rc;
}
