/* rt/inflate.c: a raw deflate decoder (RFC 1951): table-driven Huffman
 * decoding with a one-lookup fast path, stored/fixed/dynamic blocks, every
 * length and distance checked against the input and the output so far. */

/* ---- gzip / inflate (RFC 1952 / RFC 1951) ---------------------------------------- */

#define FAST_BITS 10 /* codes up to 10 bits decode with one table lookup */

typedef struct huff {
    uint16_t fast[1 << FAST_BITS]; /* by the next FAST_BITS input bits: sym << 4 | len; 0: longer code */
    uint16_t count[16];            /* codes of each length, for the canonical slow path */
    uint16_t sym[288];             /* symbols ordered by code */
} huff;

typedef struct inflater {
    const unsigned char *in;
    size_t n, pos;
    uint64_t bb;    /* bit buffer, next bit in bit 0 */
    unsigned bc;    /* bits in bb */
    unsigned zeros; /* zero bytes fed in past the end of input: reading them means truncation */
    unsigned char *out;
    size_t len, cap;
    size_t limit; /* > 0: stop (return 1) once the output holds this many bytes */
    const char *what; /* why decoding stopped */
    char detail[96];
    huff lit, dist;
    uint32_t crc[8][256];
} inflater;

/* Builds the decoder for n code lengths. Returns 0 for a complete code, > 0
 * for an incomplete one, < 0 for an over-subscribed one. */
static int huff_build(huff *h, const uint8_t *lens, int n) {
    uint16_t offs[16] = {0};
    int left = 1;
    memset(h->count, 0, sizeof h->count);
    for (int i = 0; i < n; i++) h->count[lens[i]]++;
    for (int l = 1; l < 16; l++)
        if ((left = (left << 1) - h->count[l]) < 0) return -1;
    for (int l = 1; l < 15; l++) offs[l + 1] = (uint16_t)(offs[l] + h->count[l]);
    for (int i = 0; i < n; i++)
        if (lens[i]) h->sym[offs[lens[i]]++] = (uint16_t)i;
    memset(h->fast, 0, sizeof h->fast);
    unsigned code = 0, k = 0;
    for (unsigned l = 1; l <= FAST_BITS; l++, code <<= 1)
        for (unsigned i = 0; i < h->count[l]; i++, k++, code++) {
            unsigned rev = 0; /* deflate sends codes MSB first into an LSB-first stream */
            for (unsigned b = 0; b < l; b++) rev |= (code >> b & 1) << (l - 1 - b);
            for (unsigned e = rev; e < (1u << FAST_BITS); e += 1u << l) h->fast[e] = (uint16_t)(h->sym[k] << 4 | l);
        }
    return left;
}

static void refill(inflater *s) {
    if (s->n - s->pos >= 8) { /* one 8-byte load; the bits past bc are the stream's own next bits */
        s->bb |= rd_le64(s->in + s->pos) << s->bc;
        s->pos += (63 - s->bc) >> 3;
        s->bc |= 56;
        return;
    }
    for (; s->bc <= 56; s->bc += 8)
        if (s->pos < s->n) s->bb |= (uint64_t)s->in[s->pos++] << s->bc;
        else s->zeros++;
}

static int truncated(const inflater *s) { return s->bc < 8u * s->zeros; }

static unsigned getbits(inflater *s, unsigned k) {
    if (s->bc < k) refill(s);
    unsigned v = (unsigned)(s->bb & ((1ull << k) - 1));
    s->bb >>= k;
    s->bc -= k;
    return v;
}

/* Canonical decode one bit at a time, for codes longer than FAST_BITS. */
static int decode_slow(inflater *s, const huff *h) {
    int code = 0, first = 0, index = 0;
    uint64_t bb = s->bb;
    for (unsigned l = 1; l < 16; l++, code <<= 1) {
        code |= (int)(bb & 1);
        bb >>= 1;
        int count = h->count[l];
        if (code - count < first) {
            s->bb >>= l;
            s->bc -= l;
            return truncated(s) ? -2 : h->sym[index + (code - first)];
        }
        index += count;
        first = (first + count) << 1;
    }
    return truncated(s) ? -2 : -1;
}

/* Next symbol, or -1 (invalid code) / -2 (input ran out). */
static inline int decode(inflater *s, const huff *h) {
    if (s->bc < 15) refill(s);
    unsigned e = h->fast[s->bb & ((1u << FAST_BITS) - 1)];
    if (!e) return decode_slow(s, h);
    s->bb >>= e & 15;
    s->bc -= e & 15;
    return truncated(s) ? -2 : (int)(e >> 4);
}

static int inf_fail(inflater *s, const char *what) {
    s->what = what;
    return -1;
}

static int grow(inflater *s, size_t need) {
    if (s->out && need <= s->cap - s->len) return 0;
    size_t ncap = s->cap ? s->cap : 1 << 16;
    while (ncap - s->len < need)
        if (ncap > SIZE_MAX / 2) return inf_fail(s, "output too large");
        else ncap *= 2;
    unsigned char *o = realloc(s->out, ncap);
    if (!o) return inf_fail(s, "out of memory");
    s->out = o;
    s->cap = ncap;
    return 0;
}

static const uint16_t len_base[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                      31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dist_base[30] = {1,   2,   3,    4,    5,    7,    9,    13,   17,    25,
                                       33,  49,  65,   97,   129,  193,  257,  385,  513,   769,
                                       1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                       6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/* Decodes one Huffman-coded block's symbols into the output. */
static int inflate_codes(inflater *s, const huff *lit, const huff *dist) {
    for (;;) {
        int sym = decode(s, lit);
        if (sym < 0) return inf_fail(s, sym == -2 ? "unexpected end of data" : "invalid literal/length code");
        if (sym < 256) {
            if (s->len == s->cap && grow(s, 1)) return -1;
            s->out[s->len++] = (unsigned char)sym;
            if (s->len == s->limit) return 1;
            continue;
        }
        if (sym == 256) return 0;
        if ((sym -= 257) >= 29) return inf_fail(s, "invalid literal/length code");
        size_t len = len_base[sym] + getbits(s, len_extra[sym]);
        int ds = decode(s, dist);
        if (ds < 0) return inf_fail(s, ds == -2 ? "unexpected end of data" : "invalid distance code");
        if (ds >= 30) return inf_fail(s, "invalid distance code");
        size_t d = dist_base[ds] + getbits(s, dist_extra[ds]);
        if (truncated(s)) return inf_fail(s, "unexpected end of data");
        if (d > s->len) return inf_fail(s, "invalid distance (too far back)");
        if (grow(s, len)) return -1;
        unsigned char *dst = s->out + s->len;
        const unsigned char *src = dst - d;
        if (d >= len) memcpy(dst, src, len);
        else if (d == 1) memset(dst, *src, len); /* runs, e.g. image backgrounds */
        else
            for (size_t i = 0; i < len; i++) dst[i] = src[i]; /* overlapping copy repeats the pattern */
        s->len += len;
        if (s->limit && s->len >= s->limit) return 1;
    }
}

/* Skips to a byte boundary and gives back the whole bytes read ahead. */
static int byte_align(inflater *s) {
    getbits(s, s->bc & 7);
    if (truncated(s)) return inf_fail(s, "unexpected end of data");
    s->pos -= s->bc / 8 - s->zeros;
    s->bb = 0;
    s->bc = s->zeros = 0;
    return 0;
}

static int inflate_stored(inflater *s) {
    if (byte_align(s)) return -1;
    if (s->n - s->pos < 4) return inf_fail(s, "unexpected end of data");
    const unsigned char *p = s->in + s->pos;
    unsigned len = p[0] | p[1] << 8, nlen = p[2] | p[3] << 8;
    s->pos += 4;
    if (len != (~nlen & 0xffff)) return inf_fail(s, "stored block length does not match its complement");
    if (s->n - s->pos < len) return inf_fail(s, "unexpected end of data");
    if (grow(s, len)) return -1;
    memcpy(s->out + s->len, s->in + s->pos, len);
    s->len += len;
    s->pos += len;
    return s->limit && s->len >= s->limit ? 1 : 0;
}

/* An incomplete code is legal only if it holds a single code of length 1. */
static int bad_code(const huff *h, int built, unsigned n) {
    return built < 0 || (built > 0 && n != (unsigned)h->count[0] + h->count[1]);
}

static int inflate_dynamic(inflater *s) {
    static const uint8_t order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    uint8_t lens[288 + 32] = {0};
    unsigned nlen = getbits(s, 5) + 257, ndist = getbits(s, 5) + 1, ncode = getbits(s, 4) + 4;
    if (nlen > 286 || ndist > 30) return inf_fail(s, "too many length or distance codes");
    for (unsigned i = 0; i < ncode; i++) lens[order[i]] = (uint8_t)getbits(s, 3);
    if (truncated(s)) return inf_fail(s, "unexpected end of data");
    if (huff_build(&s->lit, lens, 19) != 0) return inf_fail(s, "invalid code lengths code");
    for (unsigned i = 0; i < nlen + ndist;) {
        int sym = decode(s, &s->lit);
        if (sym < 0) return inf_fail(s, sym == -2 ? "unexpected end of data" : "invalid code lengths code");
        if (sym < 16) {
            lens[i++] = (uint8_t)sym;
            continue;
        }
        if (sym == 16 && i == 0) return inf_fail(s, "repeated length with no previous length");
        uint8_t v = sym == 16 ? lens[i - 1] : 0;
        unsigned rep = sym == 16 ? 3 + getbits(s, 2) : sym == 17 ? 3 + getbits(s, 3) : 11 + getbits(s, 7);
        if (i + rep > nlen + ndist) return inf_fail(s, "too many code lengths");
        while (rep--) lens[i++] = v;
    }
    if (lens[256] == 0) return inf_fail(s, "no end-of-block code");
    if (bad_code(&s->lit, huff_build(&s->lit, lens, (int)nlen), nlen))
        return inf_fail(s, "invalid literal/length code lengths");
    if (bad_code(&s->dist, huff_build(&s->dist, lens + nlen, (int)ndist), ndist))
        return inf_fail(s, "invalid distance code lengths");
    return inflate_codes(s, &s->lit, &s->dist);
}

/* Inflates one raw deflate stream starting at s->pos; leaves s->pos after it.
 * Returns 0, -1 (s->what says why), or 1: the output reached s->limit (the
 * rest of the stream is neither decoded nor checked). */
static int inflate_stream(inflater *s) {
    int last, rc = 0;
    s->bb = 0;
    s->bc = s->zeros = 0;
    do {
        last = (int)getbits(s, 1);
        unsigned type = getbits(s, 2);
        if (truncated(s)) rc = inf_fail(s, "unexpected end of data");
        else if (type == 0) rc = inflate_stored(s);
        else if (type == 2) rc = inflate_dynamic(s);
        else if (type == 3) rc = inf_fail(s, "invalid block type 3");
        else { /* the fixed code of RFC 1951 3.2.6 */
            uint8_t lens[288 + 30];
            for (int i = 0; i < 288 + 30; i++) lens[i] = i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : i < 288 ? 8 : 5;
            huff_build(&s->lit, lens, 288);
            huff_build(&s->dist, lens + 288, 30);
            rc = inflate_codes(s, &s->lit, &s->dist);
        }
    } while (!rc && !last);
    if (rc) return rc > 0 ? 1 : -1;
    return byte_align(s); /* the trailer starts at the next byte */
}
