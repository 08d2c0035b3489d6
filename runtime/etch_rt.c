/* etch_rt.c: the etch runtime, one self-contained C11 file (libc + libm only).
 *
 * The compiler embeds this text and copies it next to every emitted model, so
 * the model builds with nothing but a C compiler; the compiler links the same
 * code to read and write the same files. It implements etch_rt.h:
 *   - dtype and array helpers, 64-byte aligned allocation;
 *   - .npy read (format 1.0/2.0/3.0) and write (1.0, byte-identical to numpy);
 *   - safetensors read (zero-copy, one buffer) and write (the reference layout);
 *   - IDX (MNIST) read, with an in-memory gzip/deflate decoder (RFC 1951/1952);
 *   - atomic file writes (temp file + rename) and whole-file reads;
 *   - the Philox4x32-10 counter-based RNG.
 *
 * Readers treat every byte as hostile: each size comes from the file, so each
 * is checked against the file length with overflow-safe arithmetic before use.
 * Nothing prints or exits; failures return -1 with "PATH: what is wrong, naming
 * the values" in the caller's err buffer. File data is little-endian (IDX:
 * big-endian); a big-endian host byte-swaps after reading and before writing. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* fileno, fstat, fsync, getpid */
#endif
#include "etch_rt.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__GNUC__)
#define ETCH_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define ETCH_PRINTF(a, b)
#endif

/* ---- errors and small helpers --------------------------------------------- */

ETCH_PRINTF(3, 4)
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Appends formatted text at *k in buf (size n), truncating silently. */
ETCH_PRINTF(4, 5)
static void append(char *buf, size_t n, size_t *k, const char *fmt, ...) {
    if (*k >= n) return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *k, n - *k, fmt, ap);
    va_end(ap);
    if (w > 0) *k = (size_t)w >= n - *k ? n - 1 : *k + (size_t)w;
}

static int host_is_le(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Converts count elements of sz bytes between little-endian and host order. */
static void le_swap(void *p, size_t count, size_t sz) {
    if (sz == 1 || host_is_le()) return;
    unsigned char *b = p, t;
    for (size_t i = 0; i < count; i++, b += sz)
        for (size_t j = 0; j < sz / 2; j++) t = b[j], b[j] = b[sz - 1 - j], b[sz - 1 - j] = t;
}

static uint32_t rd_le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd_le64(const unsigned char *p) { return rd_le32(p) | (uint64_t)rd_le32(p + 4) << 32; }
static uint32_t rd_be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* ---- dtypes and arrays ------------------------------------------------------ */

static const char *const dt_name[ETCH_DTYPE_COUNT] = {"f32", "f64", "i32", "i64", "bool", "u8"};
static const size_t dt_size[ETCH_DTYPE_COUNT] = {4, 8, 4, 8, 1, 1};
static const char *const npy_descr[ETCH_DTYPE_COUNT] = {"<f4", "<f8", "<i4", "<i8", "|b1", "|u1"};
static const char *const st_dtype[ETCH_DTYPE_COUNT] = {"F32", "F64", "I32", "I64", "BOOL", "U8"};
/* The reference safetensors writer orders tensors by its Dtype enum, descending
 * (which keeps each aligned to its element size): I64 > F64 > F32 > I32 > U8 > BOOL. */
static const int st_order_key[ETCH_DTYPE_COUNT] = {3, 4, 2, 5, 0, 1};

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

/* ---- files ------------------------------------------------------------------ */

int etch_read_file(const char *path, unsigned char **out, size_t *n, char *err, size_t errlen) {
    *out = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    size_t cap = 1 << 16, len = 0, got = 1; /* pipes and the like: grow as needed */
    if (fstat(fileno(f), &st) == 0) {
        if (S_ISDIR(st.st_mode)) return fclose(f), fail(err, errlen, "%s: is a directory", path);
        if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < SIZE_MAX - 2)
            cap = (size_t)st.st_size + 2; /* +2: the NUL, and room to see EOF without growing */
    }
    unsigned char *buf = malloc(cap), *nb;
    while (buf && got) {
        if (cap - len < 2) { /* keep room for the NUL */
            nb = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!nb) free(buf);
            buf = nb;
            cap *= 2;
            if (!buf) break;
        }
        len += got = fread(buf + len, 1, cap - 1 - len, f);
    }
    int bad = ferror(f), e = errno;
    fclose(f);
    if (!buf) return fail(err, errlen, "%s: out of memory reading the file", path);
    if (bad) return free(buf), fail(err, errlen, "%s: read error: %s", path, strerror(e));
    buf[len] = 0;
    *out = buf;
    *n = len;
    return 0;
}

/* Atomic writer: everything goes to PATH.tmp.PID, renamed over PATH on commit;
 * any failure removes the temp file. */
typedef struct aw {
    FILE *f;
    char *tmp;
    const char *path;
} aw;

static void aw_abort(aw *w) {
    if (w->f) fclose(w->f);
    if (w->tmp) remove(w->tmp);
    free(w->tmp);
    w->f = NULL;
    w->tmp = NULL;
}

static int aw_fail(aw *w, const char *what, char *err, size_t errlen) {
    int e = errno;
    fail(err, errlen, "%s: %s %s: %s", w->path, what, w->tmp, strerror(e));
    aw_abort(w);
    return -1;
}

static int aw_open(aw *w, const char *path, char *err, size_t errlen) {
    size_t len = strlen(path) + 32;
    w->path = path;
    w->f = NULL;
    if (!(w->tmp = malloc(len))) return fail(err, errlen, "%s: out of memory", path);
    snprintf(w->tmp, len, "%s.tmp.%ld", path, (long)getpid());
    return (w->f = fopen(w->tmp, "wb")) ? 0 : aw_fail(w, "cannot create", err, errlen);
}

static int aw_write(aw *w, const void *p, size_t n, char *err, size_t errlen) {
    return n == 0 || fwrite(p, 1, n, w->f) == n ? 0 : aw_fail(w, "cannot write", err, errlen);
}

/* Writes count elements of sz bytes in little-endian order. */
static int aw_write_le(aw *w, const void *p, size_t count, size_t sz, char *err, size_t errlen) {
    if (sz == 1 || host_is_le()) return aw_write(w, p, count * sz, err, errlen);
    unsigned char chunk[4096];
    for (size_t i = 0, per = sizeof chunk / sz, m; i < count; i += per) {
        m = count - i < per ? count - i : per;
        memcpy(chunk, (const unsigned char *)p + i * sz, m * sz);
        le_swap(chunk, m, sz);
        if (aw_write(w, chunk, m * sz, err, errlen)) return -1;
    }
    return 0;
}

static int aw_commit(aw *w, char *err, size_t errlen) {
    /* fsync before rename: after a crash PATH holds the old file or the whole new one */
    if (fflush(w->f) || fsync(fileno(w->f))) return aw_fail(w, "cannot write", err, errlen);
    FILE *f = w->f;
    w->f = NULL;
    if (fclose(f)) return aw_fail(w, "cannot write", err, errlen);
    if (rename(w->tmp, w->path)) return aw_fail(w, "cannot rename", err, errlen);
    free(w->tmp);
    w->tmp = NULL;
    return 0;
}

int etch_write_file_atomic(const char *path, const void *data, size_t n, char *err, size_t errlen) {
    aw w;
    if (aw_open(&w, path, err, errlen) || aw_write(&w, data, n, err, errlen)) return -1;
    return aw_commit(&w, err, errlen);
}

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
        return fail(err, errlen, "%s: unsupported dtype '%s' (supported: <f4, <f8, <i4, <i8, |b1, |u1)", path, descr);
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

int etch_npy_write(const char *path, const etch_array *a, char *err, size_t errlen) {
    size_t nbytes;
    if (!a || !dt_valid(a->dtype) || shape_size(a->rank, a->dim, dt_size[a->dtype], NULL, &nbytes))
        return fail(err, errlen, "%s: invalid array (bad dtype, rank or shape)", path);
    if (nbytes && !a->data) return fail(err, errlen, "%s: array has no data", path);
    /* numpy's exact header: the dict, spare room for the first axis to grow to
     * 21 digits, then spaces and '\n' so the data starts at a multiple of 64. */
    char h[512], d0[24];
    size_t k = 0;
    append(h, sizeof h, &k, "{'descr': '%s', 'fortran_order': False, 'shape': (", npy_descr[a->dtype]);
    for (int i = 0; i < a->rank; i++) append(h, sizeof h, &k, "%s%lld", i ? ", " : "", (long long)a->dim[i]);
    append(h, sizeof h, &k, "%s), }", a->rank == 1 ? "," : "");
    int grow = a->rank ? 21 - snprintf(d0, sizeof d0, "%lld", (long long)a->dim[0]) : 0;
    append(h, sizeof h, &k, "%*s", grow > 0 ? grow : 0, "");
    int pad = 64 - (int)((10 + k + 1) % 64); /* numpy never pads by 0: a full 64 when already aligned */
    append(h, sizeof h, &k, "%*s\n", pad, "");
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(k & 0xff), (unsigned char)(k >> 8)};
    aw w;
    if (aw_open(&w, path, err, errlen) || aw_write(&w, pre, sizeof pre, err, errlen) ||
        aw_write(&w, h, k, err, errlen) ||
        aw_write_le(&w, a->data, nbytes / dt_size[a->dtype], dt_size[a->dtype], err, errlen))
        return -1;
    return aw_commit(&w, err, errlen);
}

/* ---- JSON, just enough for a safetensors header ------------------------------ */

typedef struct json {
    const unsigned char *p, *s, *end;
    const char *what; /* why parsing stopped */
} json;

static int js_fail(json *j, const char *what) {
    j->what = what;
    return -1;
}

static int js_peek(json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
    return j->p < j->end ? *j->p : -1;
}

static int js_eat(json *j, int ch) { return js_peek(j) == ch ? (j->p++, 1) : 0; }

static int js_hex4(json *j, unsigned *v) {
    if (j->end - j->p < 4) return js_fail(j, "truncated \\u escape");
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int c = *j->p++, d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                                       : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return js_fail(j, "bad \\u escape");
        *v = *v << 4 | (unsigned)d;
    }
    return 0;
}

/* A JSON string, decoded to UTF-8 in a malloc'd buffer (out NULL: skipped). */
static int js_string(json *j, char **out) {
    static const char esc[] = "\"\"\\\\//b\bf\fn\nr\rt\t"; /* escape letter, then its character */
    static const unsigned char lead[5] = {0, 0, 0xC0, 0xE0, 0xF0};
    if (out) *out = NULL;
    if (!js_eat(j, '"')) return js_fail(j, "expected a string");
    const unsigned char *q = j->p;
    while (q < j->end && *q != '"') q += *q == '\\' ? 2 : 1;
    if (q >= j->end) return js_fail(j, "unterminated string");
    char *s = out ? malloc((size_t)(q - j->p) + 1) : NULL; /* decoding never makes the text longer */
    if (out && !s) return js_fail(j, "out of memory");
    const char *bad = NULL;
    size_t k = 0;
    while (!bad && *j->p != '"') {
        unsigned c = *j->p++, lo, utf = 0;
        if (c < 0x20) {
            bad = "control character in string";
        } else if (c == '\\') {
            int i = 0;
            for (c = *j->p++; esc[i] && (unsigned char)esc[i] != c; i += 2) continue;
            if (esc[i]) c = (unsigned char)esc[i + 1];
            else if (c != 'u') bad = "bad escape in string";
            else if (js_hex4(j, &c)) bad = j->what;
            else if (c >= 0xD800 && c < 0xDC00) { /* the high half of a surrogate pair */
                if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u') bad = "unpaired surrogate";
                else if ((j->p += 2, js_hex4(j, &lo)) || lo < 0xDC00 || lo > 0xDFFF) bad = "bad surrogate pair";
                else c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
            }
            utf = !esc[i];
        }
        if (bad || !s) continue;
        if (!utf || c < 0x80) { /* raw bytes pass through; \u code points become UTF-8 */
            s[k++] = (char)c;
            continue;
        }
        unsigned nb = c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
        for (unsigned i = nb - 1; i > 0; i--, c >>= 6) s[k + i] = (char)(0x80 | (c & 0x3F));
        s[k] = (char)(lead[nb] | c);
        k += nb;
    }
    if (bad) return free(s), js_fail(j, bad);
    j->p++;
    if (s) s[k] = 0, *out = s;
    return 0;
}

/* An integer (no fraction or exponent). */
static int js_int(json *j, int64_t *v) {
    int neg = js_eat(j, '-');
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return js_fail(j, "expected an integer");
    uint64_t u = 0;
    for (; j->p < j->end && *j->p >= '0' && *j->p <= '9'; j->p++) {
        if (u > ((uint64_t)INT64_MAX - 9) / 10) return js_fail(j, "integer too large");
        u = u * 10 + (uint64_t)(*j->p - '0');
    }
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E')) return js_fail(j, "expected an integer");
    *v = neg ? -(int64_t)u : (int64_t)u;
    return 0;
}

/* Steps through an object's members after its '{': 1 when a member follows
 * (its key in *key unless key is NULL, the ':' eaten), 0 at the closing '}',
 * -1 on error. */
static int js_member(json *j, int *first, char **key) {
    if (key) *key = NULL;
    if (*first) {
        *first = 0;
        if (js_eat(j, '}')) return 0;
    } else if (!js_eat(j, ',')) {
        return js_eat(j, '}') ? 0 : js_fail(j, "expected ',' or '}'");
    }
    if (js_string(j, key)) return -1;
    if (js_eat(j, ':')) return 1;
    if (key) free(*key), *key = NULL;
    return js_fail(j, "expected ':'");
}

/* Skips any JSON value (used for __metadata__ and unknown keys). */
static int js_skip(json *j, int depth) {
    static const char *const lits[] = {"true", "false", "null"};
    if (depth > 64) return js_fail(j, "nested too deeply");
    int c = js_peek(j), first = 1, more;
    if (c == '"') return js_string(j, NULL);
    if (c == '{') {
        j->p++;
        while ((more = js_member(j, &first, NULL)) > 0)
            if (js_skip(j, depth + 1)) return -1;
        return more;
    }
    if (c == '[') {
        j->p++;
        if (js_eat(j, ']')) return 0;
        do
            if (js_skip(j, depth + 1)) return -1;
        while (js_eat(j, ','));
        return js_eat(j, ']') ? 0 : js_fail(j, "expected ',' or ']'");
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        while (j->p < j->end && *j->p && strchr("+-.eE0123456789", *j->p)) j->p++;
        return 0;
    }
    for (int i = 0; i < 3; i++) {
        size_t l = strlen(lits[i]);
        if ((size_t)(j->end - j->p) >= l && !memcmp(j->p, lits[i], l)) return j->p += l, 0;
    }
    return js_fail(j, "expected a value");
}

/* An array of up to max integers; returns the count or -1. */
static int js_int_array(json *j, int64_t *v, int max, const char *toolong) {
    int n = 0;
    if (!js_eat(j, '[')) return js_fail(j, "expected '['");
    if (js_eat(j, ']')) return 0;
    do {
        if (n == max) return js_fail(j, toolong);
        if (js_int(j, &v[n++])) return -1;
    } while (js_eat(j, ','));
    return js_eat(j, ']') ? n : js_fail(j, "expected ',' or ']'");
}

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
        bad = fail(err, errlen, "%s: unsupported dtype %s for tensor '%s' (supported: F32, F64, I32, I64, BOOL, U8)",
                   path, dtype, t->name);
    t->array.dtype = (etch_dtype)d;
    free(dtype);
    return bad;
}

void etch_st_close(etch_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) free(f->tensors[i].name);
    free(f->tensors);
    free(f->buffer);
    memset(f, 0, sizeof *f);
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
        if (!strcmp(name, "__metadata__")) { /* free-form str->str map: not needed */
            free(name);
            if (js_skip(&j, 1)) goto bad_json;
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
    return 0;
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

/* Inflates one raw deflate stream starting at s->pos; leaves s->pos after it. */
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
    return rc ? -1 : byte_align(s); /* the trailer starts at the next byte */
}

/* CRC-32 (IEEE), slicing by 8: t[k][b] is the CRC of byte b followed by k zero bytes. */
static void crc32_tables(uint32_t t[8][256]) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        t[0][i] = c;
    }
    for (int k = 1; k < 8; k++)
        for (int i = 0; i < 256; i++) t[k][i] = t[0][t[k - 1][i] & 0xff] ^ (t[k - 1][i] >> 8);
}

static uint32_t crc32_update(uint32_t (*t)[256], uint32_t crc, const unsigned char *p, size_t n) {
    crc = ~crc;
    for (; n >= 8; p += 8, n -= 8) {
        uint32_t a = crc ^ rd_le32(p), b = rd_le32(p + 4);
        crc = t[7][a & 0xff] ^ t[6][a >> 8 & 0xff] ^ t[5][a >> 16 & 0xff] ^ t[4][a >> 24] ^ t[3][b & 0xff] ^
              t[2][b >> 8 & 0xff] ^ t[1][b >> 16 & 0xff] ^ t[0][b >> 24];
    }
    for (; n; p++, n--) crc = t[0][(crc ^ *p) & 0xff] ^ (crc >> 8);
    return ~crc;
}

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
    if (inflate_stream(s)) return -1;
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

int etch_gunzip(const unsigned char *in, size_t n_in, unsigned char **out, size_t *n_out, char *err, size_t errlen) {
    *out = NULL;
    *n_out = 0;
    if (n_in < 2 || in[0] != 0x1f || in[1] != 0x8b) return fail(err, errlen, "not gzip data (no 1f 8b magic)");
    inflater *s = calloc(1, sizeof *s); /* ~16 KB of tables: kept off small thread stacks */
    if (!s) return fail(err, errlen, "out of memory");
    s->in = in;
    s->n = n_in;
    crc32_tables(s->crc);
    /* ISIZE hints the output size; trust it only as far as deflate's 1032:1 limit */
    uint32_t isize = n_in >= 4 ? rd_le32(in + n_in - 4) : 0;
    if (n_in < SIZE_MAX / 1032 && isize <= n_in * 1032 && (s->out = malloc((size_t)isize + 1)))
        s->cap = (size_t)isize + 1;
    int rc = grow(s, 1); /* never a NULL buffer, even for empty output */
    for (size_t pos = 0; !rc && pos < n_in; pos = s->pos) {
        size_t z = pos; /* after a member: another member, or zero padding to the end */
        while (pos > 0 && z < n_in && in[z] == 0) z++;
        if (z == n_in) break;
        rc = gz_member(s, pos);
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

/* ---- IDX ------------------------------------------------------------------------ */

static int idx_parse(const char *path, const unsigned char *b, size_t n, etch_array *out, char *err, size_t errlen) {
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
    size_t nbytes, off = 4 + 4 * (size_t)rank, avail = n - off;
    char d[256];
    etch_array_describe(d, sizeof d, t, (int)rank, dim);
    if (shape_size((int)rank, dim, es, &numel, &nbytes)) return fail(err, errlen, "%s: shape %s is too large", path, d);
    if (avail < nbytes)
        return fail(err, errlen, "%s: truncated: header says %zu bytes of data, file has %zu", path, nbytes, avail);
    if (avail > nbytes)
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

int etch_idx_read(const char *path, etch_array *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    unsigned char *buf, *raw;
    size_t n, rn, plen = strlen(path);
    char msg[256];
    if (etch_read_file(path, &buf, &n, err, errlen)) return -1;
    if (n >= 2 && buf[0] == 0x1f && buf[1] == 0x8b) { /* gzip, whatever the name */
        int rc = etch_gunzip(buf, n, &raw, &rn, msg, sizeof msg);
        free(buf);
        if (rc) return fail(err, errlen, "%s: %s", path, msg);
        buf = raw;
        n = rn;
    } else if (plen >= 3 && !strcmp(path + plen - 3, ".gz")) {
        unsigned b0 = n > 0 ? buf[0] : 0, b1 = n > 1 ? buf[1] : 0;
        free(buf);
        return fail(err, errlen, "%s: not gzip data (starts with %02x %02x, expected 1f 8b)", path, b0, b1);
    }
    int rc = idx_parse(path, buf, n, out, err, errlen);
    free(buf);
    return rc;
}

/* ---- Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011) ---- */

void etch_philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)counter_lo, c1 = (uint32_t)(counter_lo >> 32);
    uint32_t c2 = (uint32_t)counter_hi, c3 = (uint32_t)(counter_hi >> 32);
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c0 = n0, c1 = (uint32_t)p1, c2 = n2, c3 = (uint32_t)p0;
        k0 += 0x9E3779B9u; /* Weyl sequence key schedule */
        k1 += 0xBB67AE85u;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

double etch_u01(uint32_t x) { return (double)(x >> 8) * (1.0 / 16777216.0); }
