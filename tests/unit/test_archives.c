/* test_archives.c: the runtime's gzip inflater (runtime/rt/inflate.c,
 * gzip.c: known streams, hand-made stored/fixed/dynamic blocks, the system
 * gzip's output, hostile input), the IDX reader (idx.c: whole and prefix
 * reads, Fashion-MNIST when present) and the Philox generator (philox.c:
 * Random123's known answers). Helpers: rt_files.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/etch_rt.h"
#include "unit/rt_files.h"
#include "unit/test_support.h"

/* ---- gzip ------------------------------------------------------------------ */

/* printf hello | gzip -9 */
static const unsigned char hello_gz[] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xcb, 0x48, 0xcd,
                                         0xc9, 0xc9, 0x07, 0x00, 0x86, 0xa6, 0x10, 0x36, 0x05, 0x00, 0x00, 0x00};

/* gzip -9n of dyn_text() (a dynamic-Huffman block) */
static const unsigned char dyn_gz[] = {
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x75, 0xd1, 0x59, 0x12, 0x82, 0x30, 0x10, 0x04, 0xd0,
    0xab, 0xf4, 0x11, 0xb2, 0x90, 0x90, 0x94, 0xa7, 0x41, 0x8d, 0x80, 0x0b, 0xc1, 0x08, 0x2a, 0x9e, 0x1e, 0x8a, 0x4f,
    0x6b, 0xfa, 0x73, 0xaa, 0xe6, 0xd5, 0x2c, 0x3d, 0x75, 0x09, 0xcf, 0xb9, 0x3f, 0xdd, 0x70, 0x2c, 0xf9, 0x33, 0xe0,
    0x92, 0xbf, 0x50, 0xb8, 0xce, 0x8f, 0xf1, 0x85, 0xfc, 0x4e, 0x05, 0xd3, 0xd6, 0x70, 0x6f, 0x7e, 0x0b, 0xce, 0xb9,
    0x85, 0x3a, 0xec, 0xf5, 0x3f, 0xd0, 0x14, 0x68, 0x19, 0x18, 0x0a, 0x2a, 0x19, 0x58, 0x0a, 0xa2, 0x0c, 0x2a, 0xbe,
    0x92, 0x97, 0x85, 0xa3, 0xc2, 0x38, 0x59, 0x78, 0x2a, 0x2c, 0x99, 0x51, 0xf3, 0xbb, 0xc9, 0x1d, 0x81, 0x0a, 0x4f,
    0x5e, 0x15, 0xa9, 0x08, 0x24, 0x0d, 0xcd, 0x03, 0xb7, 0x44, 0xf0, 0xc4, 0xcd, 0xb6, 0xd6, 0x0a, 0xd7, 0xfa, 0xb9,
    0x7f, 0x55, 0x02, 0x00, 0x00};

static size_t dyn_text(char *out) {
    size_t k = 0;
    for (int i = 0; i < 12; i++)
        k += (size_t)sprintf(out + k, "the quick brown fox %d jumps over the lazy dog %d; ", i, i * i % 97);
    return k;
}

static int gunzip_str(const unsigned char *in, size_t n, const char *want) {
    unsigned char *out;
    size_t m;
    rt_err[0] = 0;
    if (etch_gunzip(in, n, &out, &m, rt_err, sizeof rt_err)) return -1;
    assert_int_equal(m, strlen(want));
    assert_memory_equal(out, want, m);
    assert_int_equal(out[m], 0);
    free(out);
    return 0;
}

/* Deflate bit writer, for hand-made streams. */
typedef struct bw {
    unsigned char b[256];
    size_t n;
    unsigned acc, nacc;
} bw;
static void bits(bw *w, unsigned v, unsigned n) { /* LSB first */
    for (unsigned i = 0; i < n; i++) {
        w->acc |= (v >> i & 1) << w->nacc++;
        if (w->nacc == 8) w->b[w->n++] = (unsigned char)w->acc, w->acc = w->nacc = 0;
    }
}
static void code(bw *w, unsigned c, unsigned len) { /* Huffman codes go MSB first */
    for (unsigned i = len; i-- > 0;) bits(w, c >> i & 1, 1);
}
static void fixed_lit(bw *w, unsigned sym) {
    if (sym < 144) code(w, 0x30 + sym, 8);
    else if (sym < 256) code(w, 0x190 + sym - 144, 9);
    else if (sym < 280) code(w, sym - 256, 7);
    else code(w, 0xC0 + sym - 280, 8);
}
static void flush(bw *w) {
    if (w->nacc) bits(w, 0, 8 - w->nacc);
}

/* gzip member around a raw deflate stream; header flags optional. */
static size_t wrap_gzip(unsigned char *out, unsigned flg, const bw *w, const char *plain, size_t pn) {
    size_t k = 0;
    unsigned char hd[10] = {0x1f, 0x8b, 8, (unsigned char)flg, 0, 0, 0, 0, 0, 3};
    memcpy(out, hd, 10);
    k = 10;
    if (flg & 4) out[k++] = 3, out[k++] = 0, out[k++] = 'a', out[k++] = 'b', out[k++] = 'c';
    if (flg & 8) memcpy(out + k, "name.txt", 9), k += 9;
    if (flg & 16) memcpy(out + k, "a comment", 10), k += 10;
    if (flg & 2) {
        uint32_t c = ts_crc32(out, k);
        out[k++] = (unsigned char)c, out[k++] = (unsigned char)(c >> 8);
    }
    memcpy(out + k, w->b, w->n);
    k += w->n;
    uint32_t c = ts_crc32((const unsigned char *)plain, pn);
    for (int i = 0; i < 4; i++) out[k++] = (unsigned char)(c >> (8 * i));
    for (int i = 0; i < 4; i++) out[k++] = (unsigned char)(pn >> (8 * i));
    return k;
}

static void test_gzip_known(void **state) {
    (void)state;
    assert_int_equal(gunzip_str(hello_gz, sizeof hello_gz, "hello"), 0);
    char text[1024];
    dyn_text(text);
    assert_int_equal(gunzip_str(dyn_gz, sizeof dyn_gz, text), 0);

    unsigned char bad[sizeof dyn_gz];
    memcpy(bad, hello_gz, sizeof hello_gz);
    bad[sizeof hello_gz - 8] ^= 1; /* CRC-32 */
    assert_int_equal(gunzip_str(bad, sizeof hello_gz, "hello"), -1);
    assert_string_equal(rt_err, "corrupt gzip data: crc mismatch: trailer says 3610a687, data has 3610a686");
    memcpy(bad, hello_gz, sizeof hello_gz);
    bad[sizeof hello_gz - 4] = 6; /* ISIZE */
    assert_int_equal(gunzip_str(bad, sizeof hello_gz, "hello"), -1);
    assert_string_equal(rt_err, "corrupt gzip data: length mismatch: trailer says 6 bytes, data has 5");
    memcpy(bad, dyn_gz, sizeof dyn_gz);
    bad[60] ^= 0x10; /* a data bit: the decode fails or the CRC catches it */
    assert_int_equal(gunzip_str(bad, sizeof dyn_gz, text), -1);
    assert_non_null(strstr(rt_err, "corrupt gzip data: "));
    for (size_t i = 0; i < sizeof dyn_gz; i++) { /* every truncation */
        assert_int_equal(gunzip_str(dyn_gz, i, text), -1);
        assert_true(rt_err[0] != 0);
    }
    for (size_t i = 0; i < sizeof hello_gz; i++) assert_int_equal(gunzip_str(hello_gz, i, "hello"), -1);
    assert_int_equal(gunzip_str((const unsigned char *)"PK\3\4", 4, ""), -1);
    assert_string_equal(rt_err, "not gzip data (no 1f 8b magic)");

    unsigned char two[2 * sizeof hello_gz + 5] = {0}; /* two members, then zero padding */
    memcpy(two, hello_gz, sizeof hello_gz);
    memcpy(two + sizeof hello_gz, hello_gz, sizeof hello_gz);
    assert_int_equal(gunzip_str(two, sizeof two, "hellohello"), 0);
    two[sizeof two - 1] = 'x';
    assert_int_equal(gunzip_str(two, sizeof two, "hellohello"), -1);
    assert_string_equal(rt_err, "corrupt gzip data: trailing garbage after the gzip data");

    rt_seed(3); /* mutations: fail with a message or succeed, never crash */
    for (int it = 0; it < 20000; it++) {
        memcpy(bad, dyn_gz, sizeof dyn_gz);
        for (int k = 0; k < 1 + it % 3; k++) bad[10 + rt_rnd() % (sizeof dyn_gz - 18)] = (unsigned char)rt_rnd();
        unsigned char *out;
        size_t m;
        if (etch_gunzip(bad, sizeof dyn_gz, &out, &m, rt_err, sizeof rt_err) == 0) free(out);
    }
}

static void test_gzip_handmade(void **state) {
    (void)state;
    unsigned char gz[512];
    size_t n;
    /* fixed block: literals "abc", then length 6 at distance 3 */
    bw w = {0};
    bits(&w, 1, 1), bits(&w, 1, 2);
    fixed_lit(&w, 'a'), fixed_lit(&w, 'b'), fixed_lit(&w, 'c');
    fixed_lit(&w, 260), code(&w, 2, 5); /* length 6, distance code 2 = 3 */
    fixed_lit(&w, 256);
    flush(&w);
    n = wrap_gzip(gz, 0, &w, "abcabcabc", 9);
    assert_int_equal(gunzip_str(gz, n, "abcabcabc"), 0);
    for (unsigned flg = 2; flg <= 30; flg += 2) { /* every header field combination */
        n = wrap_gzip(gz, flg, &w, "abcabcabc", 9);
        if (gunzip_str(gz, n, "abcabcabc")) fail_msg("flags %u: %s", flg, rt_err);
    }
    n = wrap_gzip(gz, 2 | 8, &w, "abcabcabc", 9);
    gz[12] ^= 1; /* the name, covered by the header CRC */
    assert_int_equal(gunzip_str(gz, n, "abcabcabc"), -1);
    assert_string_equal(rt_err, "corrupt gzip data: header crc mismatch");
    n = wrap_gzip(gz, 0x20, &w, "abcabcabc", 9);
    assert_int_equal(gunzip_str(gz, n, "abcabcabc"), -1);
    assert_string_equal(rt_err, "corrupt gzip data: reserved header flags set");

    /* a match before any output */
    bw d = {0};
    bits(&d, 1, 1), bits(&d, 1, 2);
    fixed_lit(&d, 257), code(&d, 0, 5), fixed_lit(&d, 256);
    flush(&d);
    n = wrap_gzip(gz, 0, &d, "", 0);
    assert_int_equal(gunzip_str(gz, n, ""), -1);
    assert_string_equal(rt_err, "corrupt gzip data: invalid distance (too far back)");
    /* distance codes 30 and 31 do not exist */
    bw d30 = {0};
    bits(&d30, 1, 1), bits(&d30, 1, 2);
    fixed_lit(&d30, 'a'), fixed_lit(&d30, 257), code(&d30, 30, 5), fixed_lit(&d30, 256);
    flush(&d30);
    n = wrap_gzip(gz, 0, &d30, "aaaa", 4);
    assert_int_equal(gunzip_str(gz, n, "aaaa"), -1);
    assert_string_equal(rt_err, "corrupt gzip data: invalid distance code");
    /* block type 3 */
    bw t3 = {0};
    bits(&t3, 1, 1), bits(&t3, 3, 2);
    flush(&t3);
    n = wrap_gzip(gz, 0, &t3, "", 0);
    assert_int_equal(gunzip_str(gz, n, ""), -1);
    assert_string_equal(rt_err, "corrupt gzip data: invalid block type 3");
    /* stored blocks: one non-final, then a final one; then a bad LEN/NLEN */
    bw st = {0};
    bits(&st, 0, 1), bits(&st, 0, 2), flush(&st);
    unsigned char s1[] = {3, 0, 0xfc, 0xff, 'x', 'y', 'z'};
    memcpy(st.b + st.n, s1, sizeof s1), st.n += sizeof s1;
    bits(&st, 1, 1), bits(&st, 0, 2), flush(&st);
    unsigned char s2[] = {2, 0, 0xfd, 0xff, '!', '?'};
    memcpy(st.b + st.n, s2, sizeof s2), st.n += sizeof s2;
    n = wrap_gzip(gz, 0, &st, "xyz!?", 5);
    assert_int_equal(gunzip_str(gz, n, "xyz!?"), 0);
    st.b[3] = 0; /* NLEN */
    n = wrap_gzip(gz, 0, &st, "xyz!?", 5);
    assert_int_equal(gunzip_str(gz, n, "xyz!?"), -1);
    assert_string_equal(rt_err, "corrupt gzip data: stored block length does not match its complement");
    /* empty input in a fixed block, then a final empty stored block */
    bw e = {0};
    bits(&e, 0, 1), bits(&e, 1, 2), fixed_lit(&e, 256), bits(&e, 1, 1), bits(&e, 0, 2), flush(&e);
    unsigned char s3[] = {0, 0, 0xff, 0xff};
    memcpy(e.b + e.n, s3, 4), e.n += 4;
    n = wrap_gzip(gz, 0, &e, "", 0);
    assert_int_equal(gunzip_str(gz, n, ""), 0);
}

/* Compresses plain with the system gzip (level given) and checks we inflate it. */
static void check_system_gzip(const unsigned char *plain, size_t n, const char *level) {
    rt_put_file(rt_path("plain.bin"), plain, n);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "gzip %s -c '%s' > '%s'", level, rt_path("plain.bin"), rt_path("plain.bin.gz"));
    assert_int_equal(system(cmd), 0);
    size_t gn, m;
    unsigned char *gz = rt_get_file(rt_path("plain.bin.gz"), &gn), *out;
    if (etch_gunzip(gz, gn, &out, &m, rt_err, sizeof rt_err)) fail_msg("gzip %s of %zu bytes: %s", level, n, rt_err);
    assert_int_equal(m, n);
    assert_memory_equal(out, plain, n);
    free(out);
    free(gz);
}

static void test_gzip_system(void **state) {
    (void)state;
    if (!rt_have_gzip()) skip();
    size_t n = 3 << 20;
    unsigned char *p = malloc(n);
    rt_seed(4);
    for (size_t i = 0; i < n; i++) { /* text-like runs, repeats and noise: all block kinds and long matches */
        size_t r = i / 4096 % 4;
        p[i] = r == 0 ? (unsigned char)("etch compiles graphs "[i % 21]) : r == 1 ? (unsigned char)(rt_rnd() & 0xff)
             : r == 2 ? (unsigned char)(i * i % 251)                    : (unsigned char)('a' + rt_rnd() % 3);
    }
    check_system_gzip(p, n, "-9");
    check_system_gzip(p, n, "-1");
    check_system_gzip(p, 100000, "-6");
    check_system_gzip(p + 4096, 4096, "-9"); /* random bytes: stored blocks */
    check_system_gzip(p, 0, "-9");
    memset(p, 'z', n); /* long runs of overlapping matches */
    check_system_gzip(p, n, "-9");
    free(p);
}

/* ---- IDX -------------------------------------------------------------------- */

/* A gzip file holding plain in one stored block (no compressor needed). */
static size_t stored_gzip(unsigned char *out, const unsigned char *plain, size_t n) {
    bw w = {0};
    bits(&w, 1, 1), bits(&w, 0, 2), flush(&w);
    unsigned char len[4] = {(unsigned char)n, (unsigned char)(n >> 8), (unsigned char)~n, (unsigned char)(~n >> 8)};
    memcpy(w.b + w.n, len, 4), w.n += 4;
    memcpy(w.b + w.n, plain, n), w.n += n;
    return wrap_gzip(out, 8, &w, (const char *)plain, n);
}

static void test_idx(void **state) {
    (void)state;
    const unsigned char u8[] = {0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 250, 5, 6};
    rt_put_file(rt_path("a-idx2-ubyte"), u8, sizeof u8);
    etch_array a;
    assert_int_equal(etch_idx_read(rt_path("a-idx2-ubyte"), &a, rt_err, sizeof rt_err), 0);
    assert_int_equal(a.dtype, ETCH_U8);
    assert_int_equal(a.rank, 2);
    assert_int_equal(a.dim[0], 2);
    assert_int_equal(a.dim[1], 3);
    assert_memory_equal(a.data, u8 + 12, 6);
    etch_array_free(&a);
    unsigned char gz[256];
    size_t n = stored_gzip(gz, u8, sizeof u8);
    rt_put_file(rt_path("a-idx2-ubyte.gz"), gz, n);
    assert_int_equal(etch_idx_read(rt_path("a-idx2-ubyte.gz"), &a, rt_err, sizeof rt_err), 0);
    assert_int_equal(a.dim[1], 3);
    assert_memory_equal(a.data, u8 + 12, 6);
    etch_array_free(&a);
    if (rt_have_gzip()) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "gzip -9 -c '%s' > '%s'", rt_path("a-idx2-ubyte"), rt_path("sys.gz"));
        assert_int_equal(system(cmd), 0);
        assert_int_equal(etch_idx_read(rt_path("sys.gz"), &a, rt_err, sizeof rt_err), 0);
        assert_memory_equal(a.data, u8 + 12, 6);
        etch_array_free(&a);
    }

    /* the other payload types, big-endian, widened */
    const unsigned char i8[] = {0, 0, 0x09, 1, 0, 0, 0, 2, 0x80, 0x7f};
    const unsigned char i16[] = {0, 0, 0x0B, 1, 0, 0, 0, 2, 0xff, 0xfe, 0x01, 0x02};
    const unsigned char i32[] = {0, 0, 0x0C, 1, 0, 0, 0, 1, 0x80, 0, 0, 1};
    const unsigned char f32[] = {0, 0, 0x0D, 1, 0, 0, 0, 1, 0x3f, 0xc0, 0, 0};
    const unsigned char f64[] = {0, 0, 0x0E, 0, 0xc0, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18}; /* rank 0: -pi */
    rt_put_file(rt_path("t"), i8, sizeof i8);
    assert_int_equal(etch_idx_read(rt_path("t"), &a, rt_err, sizeof rt_err), 0);
    assert_int_equal(a.dtype, ETCH_I32);
    assert_int_equal(((int32_t *)a.data)[0], -128);
    assert_int_equal(((int32_t *)a.data)[1], 127);
    etch_array_free(&a);
    rt_put_file(rt_path("t"), i16, sizeof i16);
    assert_int_equal(etch_idx_read(rt_path("t"), &a, rt_err, sizeof rt_err), 0);
    assert_int_equal(((int32_t *)a.data)[0], -2);
    assert_int_equal(((int32_t *)a.data)[1], 258);
    etch_array_free(&a);
    rt_put_file(rt_path("t"), i32, sizeof i32);
    assert_int_equal(etch_idx_read(rt_path("t"), &a, rt_err, sizeof rt_err), 0);
    assert_int_equal(((int32_t *)a.data)[0], INT32_MIN + 1);
    etch_array_free(&a);
    rt_put_file(rt_path("t"), f32, sizeof f32);
    assert_int_equal(etch_idx_read(rt_path("t"), &a, rt_err, sizeof rt_err), 0);
    assert_int_equal(a.dtype, ETCH_F32);
    assert_true(((float *)a.data)[0] == 1.5f);
    etch_array_free(&a);
    rt_put_file(rt_path("t"), f64, sizeof f64);
    assert_int_equal(etch_idx_read(rt_path("t"), &a, rt_err, sizeof rt_err), 0);
    assert_int_equal(a.dtype, ETCH_F64);
    assert_int_equal(a.rank, 0);
    assert_true(((double *)a.data)[0] == -3.141592653589793);
    etch_array_free(&a);

    struct {
        const char *bytes;
        size_t n;
        const char *want;
    } bad[] = {
        {"\0\0\x08\x01\0\0\0\x05\1\2", 10, "truncated: header says 5 bytes of data, file has 2"},
        {"\0\0\x08\x01\0\0\0\x01\1\2", 10, "1 unexpected bytes after the data (header says 1 bytes of data)"},
        {"\0\0\x07\x01\0\0\0\x01\1", 9, "unsupported IDX data type 0x07"},
        {"\1\0\x08\x01\0\0\0\x01\1", 9, "not an IDX file (magic 01 00 08 01, expected 00 00 type rank)"},
        {"\0\0\x08\x09", 4, "IDX rank 9 exceeds the maximum 8"},
        {"\0\0\x08\x02\0\0\0\1", 8, "truncated: 8 bytes, too short for 2 dimensions"},
        {"\0\0", 2, "truncated: 2 bytes, too short for an IDX header"},
        {"\0\0\x0E\x03\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 16,
         "shape f64[4294967295,4294967295,4294967295] is too large"}, /* 2^99 bytes: caught before any use */
    };
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        rt_put_file(rt_path("bad-idx"), bad[c].bytes, bad[c].n);
        assert_int_equal(etch_idx_read(rt_path("bad-idx"), &a, rt_err, sizeof rt_err), -1);
        assert_null(a.data);
        char full[512];
        snprintf(full, sizeof full, "%s: %s", rt_path("bad-idx"), bad[c].want);
        if (strcmp(rt_err, full)) fail_msg("case %zu: got \"%s\"\nwant \"%s\"", c, rt_err, full);
    }
    rt_put_file(rt_path("plain.gz"), u8, sizeof u8);
    assert_int_equal(etch_idx_read(rt_path("plain.gz"), &a, rt_err, sizeof rt_err), -1);
    assert_non_null(strstr(rt_err, "plain.gz: not gzip data (starts with 00 00, expected 1f 8b)"));
    gz[n - 8] ^= 0xff;
    rt_put_file(rt_path("c.gz"), gz, n);
    assert_int_equal(etch_idx_read(rt_path("c.gz"), &a, rt_err, sizeof rt_err), -1);
    char want[512];
    snprintf(want, sizeof want, "%s: corrupt gzip data: crc mismatch", rt_path("c.gz"));
    assert_true(strncmp(rt_err, want, strlen(want)) == 0);

    gz[n - 8] ^= 0xff;
    rt_check_truncations(u8, sizeof u8, rt_read_idx, NULL);
    rt_check_truncations(gz, n, rt_read_idx, NULL);
    rt_seed(5);
    rt_fuzz_file(u8, sizeof u8, 2000, rt_read_idx, NULL);
    rt_fuzz_file(gz, n, 2000, rt_read_idx, NULL);
}

static void check_fashion(const char *file, int rank, int64_t d0) {
    char path[256];
    snprintf(path, sizeof path, "/usr/share/datasets/fashion-mnist/%s", file);
    if (access(path, R_OK) != 0) return;
    etch_array a;
    if (etch_idx_read(path, &a, rt_err, sizeof rt_err)) fail_msg("%s", rt_err);
    assert_int_equal(a.dtype, ETCH_U8);
    assert_int_equal(a.rank, rank);
    assert_int_equal(a.dim[0], d0);
    if (rank == 1)
        for (int64_t i = 0; i < d0; i++) assert_true(((uint8_t *)a.data)[i] < 10);
    else
        assert_true(a.dim[1] == 28 && a.dim[2] == 28);
    etch_array_free(&a);
}

static void test_idx_fashion_mnist(void **state) {
    (void)state;
    if (access("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz", R_OK) != 0) skip();
    check_fashion("t10k-labels-idx1-ubyte.gz", 1, 10000);
    check_fashion("train-labels-idx1-ubyte.gz", 1, 60000);
    check_fashion("t10k-images-idx3-ubyte.gz", 3, 10000);
}

/* etch_gunzip_prefix and etch_idx_read_rows: a prefix of the output, equal
 * to the whole read's; rows past the file's are all of them; data after the
 * rows read is not needed (a file cut short there still gives them). */
static void test_idx_rows(void **state) {
    (void)state;
    if (!rt_have_gzip()) skip();
    enum { ROWS = 300, PER = 28 * 28 };
    size_t n = 16 + (size_t)ROWS * PER;
    unsigned char *idx = malloc(n);
    const unsigned char head[16] = {0, 0, 0x08, 3, 0, 0, ROWS >> 8, ROWS & 0xff, 0, 0, 0, 28, 0, 0, 0, 28};
    memcpy(idx, head, 16);
    rt_seed(9);
    for (size_t i = 16; i < n; i++) idx[i] = (unsigned char)(i % 97 < 40 ? 0 : rt_rnd() & 0xff); /* image-like runs */
    rt_put_file(rt_path("r-idx3-ubyte"), idx, n);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "gzip -9 -c '%s' > '%s'", rt_path("r-idx3-ubyte"), rt_path("r-idx3-ubyte.gz"));
    assert_int_equal(system(cmd), 0);
    size_t gn, m;
    unsigned char *gz = rt_get_file(rt_path("r-idx3-ubyte.gz"), &gn), *out;
    const size_t limits[] = {1, 16, 17, 1000, 100000, n - 1, n, n + 5};
    for (size_t k = 0; k < sizeof limits / sizeof limits[0]; k++) {
        assert_int_equal(etch_gunzip_prefix(gz, gn, limits[k], &out, &m, rt_err, sizeof rt_err), 0);
        assert_int_equal(m, limits[k] < n ? limits[k] : n);
        assert_memory_equal(out, idx, m);
        free(out);
    }
    const char *files[] = {rt_path("r-idx3-ubyte"), rt_path("r-idx3-ubyte.gz")};
    const int64_t rows[] = {0, 1, 64, ROWS - 1, ROWS, ROWS + 10};
    for (int f = 0; f < 2; f++)
        for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
            etch_array a;
            if (etch_idx_read_rows(files[f], rows[k], &a, rt_err, sizeof rt_err)) fail_msg("%s: %s", files[f], rt_err);
            int64_t want = rows[k] < ROWS ? rows[k] : ROWS;
            assert_int_equal(a.rank, 3);
            assert_int_equal(a.dim[0], want);
            assert_int_equal(a.dim[2], 28);
            if (want) assert_memory_equal(a.data, idx + 16, (size_t)want * PER);
            etch_array_free(&a);
        }
    /* the gzip file cut in half: the first rows still read, the whole file is an error */
    rt_put_file(rt_path("cut-idx3-ubyte.gz"), gz, gn / 2);
    etch_array a;
    assert_int_equal(etch_idx_read_rows(rt_path("cut-idx3-ubyte.gz"), 10, &a, rt_err, sizeof rt_err), 0);
    assert_memory_equal(a.data, idx + 16, 10 * PER);
    etch_array_free(&a);
    assert_int_equal(etch_idx_read_rows(rt_path("cut-idx3-ubyte.gz"), -1, &a, rt_err, sizeof rt_err), -1);
    assert_non_null(strstr(rt_err, "unexpected end of data"));
    /* rows of a file shorter than its header says: truncated, as for the whole read */
    rt_put_file(rt_path("short-idx3-ubyte"), idx, 16 + 5 * PER);
    assert_int_equal(etch_idx_read_rows(rt_path("short-idx3-ubyte"), 6, &a, rt_err, sizeof rt_err), -1);
    assert_non_null(strstr(rt_err, "truncated"));
    assert_int_equal(etch_idx_read_rows(rt_path("short-idx3-ubyte"), 5, &a, rt_err, sizeof rt_err), 0);
    etch_array_free(&a);
    free(gz);
    free(idx);
}

/* ---- Philox ---------------------------------------------------------------- */

static void test_philox(void **state) {
    (void)state;
    /* Random123 known-answer vectors for philox4x32_10 */
    uint32_t o[4];
    etch_philox4x32(0, 0, 0, o);
    assert_int_equal(o[0], 0x6627e8d5u);
    assert_int_equal(o[1], 0xe169c58du);
    assert_int_equal(o[2], 0xbc57ac4cu);
    assert_int_equal(o[3], 0x9b00dbd8u);
    etch_philox4x32(UINT64_MAX, UINT64_MAX, UINT64_MAX, o);
    assert_int_equal(o[0], 0x408f276du);
    assert_int_equal(o[1], 0x41c83b0eu);
    assert_int_equal(o[2], 0xa20bc7c6u);
    assert_int_equal(o[3], 0x6d5451fdu);
    /* counter words 243f6a88 85a308d3 13198a2e 03707344, key words a4093822 299f31d0 */
    etch_philox4x32(0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x85a308d3243f6a88ull, o);
    assert_int_equal(o[0], 0xd16cfe09u);
    assert_int_equal(o[1], 0x94fdccebu);
    assert_int_equal(o[2], 0x5001e420u);
    assert_int_equal(o[3], 0x24126ea1u);

    assert_true(etch_u01(0) == 0.0);
    assert_true(etch_u01(0xffffffffu) == 1.0 - 0x1p-24);
    assert_true(etch_u01(0x80000000u) == 0.5);
    assert_true(etch_u01(0xff) == 0.0); /* the low 8 bits are dropped */
    assert_true((double)(float)etch_u01(0x12345678u) == etch_u01(0x12345678u)); /* exact in float */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gzip_known),
        cmocka_unit_test(test_gzip_handmade),
        cmocka_unit_test(test_gzip_system),
        cmocka_unit_test(test_idx),
        cmocka_unit_test(test_idx_rows),
        cmocka_unit_test(test_idx_fashion_mnist),
        cmocka_unit_test(test_philox),
    };
    return cmocka_run_group_tests(tests, rt_setup, rt_teardown);
}
