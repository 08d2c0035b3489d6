/* test_runtime.c: the dependency-free runtime (the parts in runtime/rt/, joined into etch_rt.c).
 *
 * Each file format is checked three ways: round trips through our own writer,
 * files laid out byte-for-byte as the reference tools write them (numpy,
 * the safetensors crate, gzip), and hostile input: every truncation of a valid
 * file and thousands of random byte mutations, which must fail with a message
 * (or, for mutations, possibly succeed) but never crash; run it under
 * -fsanitize=address,undefined. Error messages are checked word for word where
 * the API promises their form. All files live in a mkdtemp folder. */
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
#include "unit/test_support.h"

static char g_dir[64];
static char g_err[1024];
static unsigned g_sink;

/* ---- helpers -------------------------------------------------------------- */

static const char *P(const char *name) { /* path of name in the temp folder (8 rotating buffers) */
    static char bufs[8][512];
    static int k;
    char *b = bufs[k++ % 8];
    size_t dl = strlen(g_dir), nl = strlen(name);
    assert_true(dl + 1 + nl < sizeof bufs[0]);
    memcpy(b, g_dir, dl);
    b[dl] = '/';
    memcpy(b + dl + 1, name, nl + 1);
    return b;
}

static void put_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static unsigned char *get_file(const char *path, size_t *n) {
    unsigned char *b;
    assert_int_equal(etch_read_file(path, &b, n, g_err, sizeof g_err), 0);
    return b;
}

static int have_gzip(void) { return system("gzip --version >/dev/null 2>&1") == 0; }

static uint32_t rng_state;
static uint32_t rnd(void) { /* deterministic, via the runtime's own Philox */
    uint32_t o[4];
    etch_philox4x32(0x5eed, 0, rng_state++, o);
    return o[0];
}

/* Writes prefixes of a valid file of every length below n; each must be rejected with a message naming path. */
static void check_truncations(const unsigned char *b, size_t n, int (*reader)(const char *, void *), void *obj) {
    const char *path = P("trunc.bin");
    for (size_t i = 0; i < n; i++) {
        put_file(path, b, i);
        g_err[0] = 0;
        if (reader(path, obj) != -1) fail_msg("prefix of %zu/%zu bytes was accepted", i, n);
        assert_true(strncmp(g_err, path, strlen(path)) == 0);
    }
}

/* Random byte mutations of a valid file: any outcome but a crash is fine. */
static void fuzz_file(const unsigned char *b, size_t n, int iters, int (*reader)(const char *, void *), void *obj) {
    const char *path = P("fuzz.bin");
    unsigned char *m = malloc(n);
    for (int it = 0; it < iters; it++) {
        memcpy(m, b, n);
        int flips = 1 + (int)(rnd() % 4);
        for (int k = 0; k < flips; k++) {
            uint32_t r = rnd();
            size_t at = (r >> 8) % n;
            m[at] = (r & 3) == 0 ? (unsigned char)rnd() : (r & 3) == 1 ? 0xff : (r & 3) == 2 ? m[at] ^ 1 : '9';
        }
        size_t len = rnd() % 8 == 0 ? rnd() % (n + 1) : n;
        put_file(path, m, len);
        g_err[0] = 0;
        if (reader(path, obj) != 0) assert_true(g_err[0] != 0);
    }
    free(m);
}

static int read_npy(const char *path, void *obj) {
    etch_array a;
    int rc = etch_npy_read(path, &a, g_err, sizeof g_err);
    (void)obj;
    etch_array_free(&a);
    return rc;
}
static int read_st(const char *path, void *obj) {
    etch_st_file f;
    int rc = etch_st_read(path, &f, g_err, sizeof g_err);
    (void)obj;
    if (rc == 0) /* touch every tensor so ASan sees any bad pointer */
        for (int i = 0; i < f.n; i++) {
            for (size_t k = 0; k < etch_array_nbytes(&f.tensors[i].array); k++)
                g_sink += ((unsigned char *)f.tensors[i].array.data)[k];
        }
    etch_st_close(&f);
    return rc;
}
static int read_idx(const char *path, void *obj) {
    etch_array a;
    int rc = etch_idx_read(path, &a, g_err, sizeof g_err);
    (void)obj;
    etch_array_free(&a);
    return rc;
}

static int setup(void **state) {
    (void)state;
    strcpy(g_dir, "/tmp/etch_rt_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    DIR *d = opendir(g_dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) remove(P(e->d_name));
    if (d) closedir(d);
    return rmdir(g_dir);
}

/* ---- arrays, allocation, files ------------------------------------------- */

static void test_dtypes_and_describe(void **state) {
    (void)state;
    const char *names[] = {"f32", "f64", "i32", "i64", "bool", "u8", "i8"};
    const size_t sizes[] = {4, 8, 4, 8, 1, 1, 1};
    for (int t = 0; t < ETCH_DTYPE_COUNT; t++) {
        assert_string_equal(etch_dtype_name((etch_dtype)t), names[t]);
        assert_int_equal(etch_dtype_size((etch_dtype)t), sizes[t]);
    }
    char buf[64];
    int64_t d[2] = {64, 784};
    assert_string_equal(etch_array_describe(buf, sizeof buf, ETCH_F32, 2, d), "f32[64,784]");
    assert_string_equal(etch_array_describe(buf, sizeof buf, ETCH_F32, 0, NULL), "f32[]");
    assert_string_equal(etch_array_describe(buf, 6, ETCH_I64, 2, d), "i64[6"); /* truncates safely */

    etch_array a;
    assert_int_equal(etch_array_alloc(&a, ETCH_F64, 2, d), 0);
    assert_int_equal(etch_array_numel(&a), 64 * 784);
    assert_int_equal(etch_array_nbytes(&a), 64 * 784 * 8);
    assert_int_equal((uintptr_t)a.data % 64, 0);
    for (int i = 0; i < 64 * 784; i++) assert_true(((double *)a.data)[i] == 0.0);
    etch_array_free(&a);
    assert_null(a.data);
    int64_t bad[3] = {1LL << 40, 1LL << 40, 1LL << 40};
    assert_int_equal(etch_array_alloc(&a, ETCH_F32, 3, bad), -1);
    int64_t neg[1] = {-1};
    assert_int_equal(etch_array_alloc(&a, ETCH_F32, 1, neg), -1);
    a.rank = 1;
    a.dim[0] = -5;
    assert_int_equal(etch_array_numel(&a), -1);
    int64_t zero[3] = {1LL << 62, 0, 1LL << 62}; /* 0 elements, however large the others */
    assert_int_equal(etch_array_alloc(&a, ETCH_U8, 3, zero), 0);
    assert_non_null(a.data);
    assert_int_equal(etch_array_numel(&a), 0);
    etch_array_free(&a);

    void *p = etch_aligned_alloc(0);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 64, 0);
    etch_aligned_free(p);
    p = etch_aligned_alloc(100);
    assert_int_equal((uintptr_t)p % 64, 0);
    memset(p, 1, 100);
    etch_aligned_free(p);
    assert_null(etch_aligned_alloc(SIZE_MAX - 10));
}

static void test_files(void **state) {
    (void)state;
    const char *path = P("atomic.txt");
    assert_int_equal(etch_write_file_atomic(path, "hello", 5, g_err, sizeof g_err), 0);
    assert_int_equal(etch_write_file_atomic(path, "bye!", 4, g_err, sizeof g_err), 0); /* replaces */
    size_t n;
    unsigned char *b = get_file(path, &n);
    assert_int_equal(n, 4);
    assert_string_equal((char *)b, "bye!"); /* NUL-terminated */
    free(b);
    assert_int_equal(etch_write_file_atomic(P("empty"), "", 0, g_err, sizeof g_err), 0);
    b = get_file(P("empty"), &n);
    assert_int_equal(n, 0);
    free(b);
    DIR *d = opendir(g_dir); /* no temp files left behind */
    struct dirent *e;
    while ((e = readdir(d))) assert_null(strstr(e->d_name, ".tmp."));
    closedir(d);

    const char *nodir = P("no/such/dir/x.bin");
    assert_int_equal(etch_write_file_atomic(nodir, "x", 1, g_err, sizeof g_err), -1);
    assert_true(strncmp(g_err, nodir, strlen(nodir)) == 0);
    assert_non_null(strstr(g_err, "cannot create"));
    const char *missing = P("missing.bin");
    assert_int_equal(etch_read_file(missing, &b, &n, g_err, sizeof g_err), -1);
    char want[512];
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", missing);
    assert_string_equal(g_err, want);
    assert_int_equal(etch_read_file(g_dir, &b, &n, g_err, sizeof g_err), -1); /* a folder */
    assert_int_equal(etch_read_file(missing, &b, &n, NULL, 0), -1);          /* no err buffer: still fine */
}

/* ---- .npy ------------------------------------------------------------------ */

static void fill(etch_array *a, int seed) {
    int64_t n = etch_array_numel(a);
    for (int64_t i = 0; i < n; i++) {
        int v = (int)(i * 7 + seed) % 23 - 11;
        switch (a->dtype) {
        case ETCH_F32: ((float *)a->data)[i] = (float)v * 0.25f; break;
        case ETCH_F64: ((double *)a->data)[i] = v * 1e-3 + 1e300 * (i == 1); break;
        case ETCH_I32: ((int32_t *)a->data)[i] = v * 100000; break;
        case ETCH_I64: ((int64_t *)a->data)[i] = (int64_t)v * 10000000000LL; break;
        case ETCH_BOOL: ((uint8_t *)a->data)[i] = (uint8_t)(v > 0); break;
        default: ((uint8_t *)a->data)[i] = (uint8_t)(v + 200); break;
        }
    }
}

static void test_npy_roundtrip(void **state) {
    (void)state;
    const int64_t dims[4] = {3, 1, 4, 5};
    for (int t = 0; t < ETCH_DTYPE_COUNT; t++)
        for (int rank = 0; rank <= 4; rank++) {
            etch_array a, b;
            assert_int_equal(etch_array_alloc(&a, (etch_dtype)t, rank, dims), 0);
            fill(&a, t + rank);
            const char *path = P("rt.npy");
            assert_int_equal(etch_npy_write(path, &a, g_err, sizeof g_err), 0);
            assert_int_equal(etch_npy_read(path, &b, g_err, sizeof g_err), 0);
            assert_int_equal(b.dtype, t);
            assert_int_equal(b.rank, rank);
            for (int i = 0; i < rank; i++) assert_int_equal(b.dim[i], dims[i]);
            assert_memory_equal(a.data, b.data, etch_array_nbytes(&a));
            assert_int_equal((uintptr_t)b.data % 64, 0);
            size_t n;
            unsigned char *raw = get_file(path, &n); /* data starts on a 64-byte boundary, after '\n' */
            size_t hlen = raw[8] | raw[9] << 8;
            assert_int_equal((10 + hlen) % 64, 0);
            assert_int_equal(raw[9 + hlen], '\n');
            assert_int_equal(n, 10 + hlen + etch_array_nbytes(&a));
            free(raw);
            etch_array_free(&a);
            etch_array_free(&b);
        }
    etch_array e; /* zero elements */
    int64_t z[2] = {0, 7};
    assert_int_equal(etch_array_alloc(&e, ETCH_F32, 2, z), 0);
    assert_int_equal(etch_npy_write(P("empty.npy"), &e, g_err, sizeof g_err), 0);
    etch_array_free(&e);
    assert_int_equal(etch_npy_read(P("empty.npy"), &e, g_err, sizeof g_err), 0);
    assert_int_equal(e.rank, 2);
    assert_int_equal(e.dim[0], 0);
    assert_int_equal(e.dim[1], 7);
    etch_array_free(&e);
}

/* A .npy file: preamble for the version, the given header text padded (numpy
 * style: spaces, then '\n', to a multiple of align), then data. */
static size_t make_npy(unsigned char *out, int major, const char *dict, size_t align, const void *data, size_t nd) {
    size_t pre = major == 1 ? 10 : 12, k = strlen(dict);
    size_t hlen = k + 1;
    hlen += (align - (pre + hlen) % align) % align;
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (unsigned char)major;
    out[7] = 0;
    for (size_t i = 0; i < pre - 8; i++) out[8 + i] = (unsigned char)(hlen >> (8 * i));
    memcpy(out + pre, dict, k);
    memset(out + pre + k, ' ', hlen - k - 1);
    out[pre + hlen - 1] = '\n';
    memcpy(out + pre + hlen, data, nd);
    return pre + hlen + nd;
}

/* numpy.save(np.arange(6, dtype='<f4').reshape(2, 3)), byte for byte (numpy >= 1.23). */
static size_t numpy_f4_2x3(unsigned char *out) {
    static const char dict[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
                               "                    "; /* 21 - len('2') spaces of growth room */
    float v[6] = {0, 1, 2, 3, 4, 5};
    size_t n = make_npy(out, 1, dict, 64, v, sizeof v);
    assert_int_equal(n, 128 + 24); /* numpy's 118-byte header */
    assert_int_equal(out[8], 118);
    return n;
}

static void test_npy_numpy_layouts(void **state) {
    (void)state;
    unsigned char f[1024];
    size_t n = numpy_f4_2x3(f);
    put_file(P("np.npy"), f, n);
    etch_array a;
    assert_int_equal(etch_npy_read(P("np.npy"), &a, g_err, sizeof g_err), 0);
    assert_int_equal(a.dtype, ETCH_F32);
    assert_int_equal(a.rank, 2);
    assert_int_equal(a.dim[0], 2);
    assert_int_equal(a.dim[1], 3);
    assert_true(((float *)a.data)[5] == 5.0f);
    /* our writer produces numpy's exact bytes */
    assert_int_equal(etch_npy_write(P("ours.npy"), &a, g_err, sizeof g_err), 0);
    size_t m;
    unsigned char *ours = get_file(P("ours.npy"), &m);
    assert_int_equal(m, n);
    assert_memory_equal(ours, f, n);
    free(ours);
    etch_array_free(&a);

    struct {
        int major;
        const char *dict;
        size_t align;
        etch_dtype t;
        int rank;
        int64_t d0;
        size_t nbytes;
    } cases[] = {
        {1, "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }", 16, ETCH_I64, 1, 4, 32}, /* numpy < 1.14 */
        {2, "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }", 64, ETCH_U8, 1, 3, 3},
        {1, "{'descr': '|i1', 'fortran_order': False, 'shape': (3,), }", 64, ETCH_I8, 1, 3, 3},
        {3, "{'descr': '|b1', 'fortran_order': False, 'shape': (), }", 64, ETCH_BOOL, 0, 0, 1},
        {1, "{'shape': (2L, 2L), 'fortran_order': False, 'descr': '<f8'}", 16, ETCH_F64, 2, 2, 32}, /* Python 2 */
        {1, "{\"descr\": \"<i4\", \"fortran_order\": False, \"shape\": (5, )}", 64, ETCH_I32, 1, 5, 20},
    };
    unsigned char data[64];
    for (int i = 0; i < 64; i++) data[i] = (unsigned char)(i % 2);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        n = make_npy(f, cases[c].major, cases[c].dict, cases[c].align, data, cases[c].nbytes);
        put_file(P("np.npy"), f, n);
        if (etch_npy_read(P("np.npy"), &a, g_err, sizeof g_err)) fail_msg("case %zu: %s", c, g_err);
        assert_int_equal(a.dtype, cases[c].t);
        assert_int_equal(a.rank, cases[c].rank);
        if (a.rank) assert_int_equal(a.dim[0], cases[c].d0);
        assert_memory_equal(a.data, data, cases[c].nbytes);
        etch_array_free(&a);
    }
}

static void expect_npy_error(const char *dict, size_t nd, int major, const char *want) {
    unsigned char f[1024], data[64] = {0};
    size_t n = make_npy(f, major, dict, 64, data, nd);
    const char *path = P("bad.npy");
    put_file(path, f, n);
    etch_array a;
    assert_int_equal(etch_npy_read(path, &a, g_err, sizeof g_err), -1);
    assert_null(a.data);
    char full[512];
    snprintf(full, sizeof full, "%s: %s", path, want);
    if (strncmp(g_err, full, strlen(full))) fail_msg("got \"%s\"\nwant \"%s...\"", g_err, full);
}

static void test_npy_errors(void **state) {
    (void)state;
    expect_npy_error("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24, 1,
                     "fortran_order is True; only C-order arrays are supported");
    expect_npy_error("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", 24, 1,
                     "unsupported dtype '>f4' (supported: <f4, <f8, <i4, <i8, |b1, |u1, |i1)");
    expect_npy_error("{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", 4, 1, "unsupported dtype '<f2'");
    expect_npy_error("{'descr': '<i2', 'fortran_order': False, 'shape': (2,), }", 4, 1, "unsupported dtype '<i2'");
    expect_npy_error("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8, 1,
                     "unsupported dtype: structured arrays");
    expect_npy_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20, 1,
                     "truncated: header says 24 bytes of data, file has 20");
    expect_npy_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 28, 1,
                     "4 unexpected bytes after the data (header says 24 bytes of data)");
    expect_npy_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24, 4, "unsupported .npy version 4.0");
    expect_npy_error("{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4, 1,
                     "shape has more than 8 dimensions");
    expect_npy_error("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", 4, 1,
                     "shape f32[4611686018427387904,4] is too large");
    expect_npy_error("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 4, 1,
                     "shape dimension too large");
    expect_npy_error("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", 4, 1,
                     "malformed .npy header: expected a non-negative integer in 'shape'");
    expect_npy_error("{'descr': '<f4', 'fortran_order': False}", 4, 1, ".npy header lacks 'shape'");
    expect_npy_error("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", 4, 1,
                     "unexpected key 'x' in .npy header");
    expect_npy_error("{'descr': '<f4', 'fortran_order': False, 'shape': (1,) ", 4, 1, "malformed .npy header");
    expect_npy_error("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} junk", 4, 1,
                     "malformed .npy header: unexpected text after the closing '}'");
    expect_npy_error("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,)}", 4, 1,
                     "malformed .npy header: expected True or False for 'fortran_order'");

    unsigned char f[256], data[3] = {0, 1, 2};
    size_t n = make_npy(f, 1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", 64, data, 3);
    put_file(P("b.npy"), f, n);
    etch_array a;
    assert_int_equal(etch_npy_read(P("b.npy"), &a, g_err, sizeof g_err), -1);
    assert_non_null(strstr(g_err, "bool element 2 has value 2, expected 0 or 1"));
    put_file(P("b.npy"), "PK\3\4 not npy", 13);
    assert_int_equal(etch_npy_read(P("b.npy"), &a, g_err, sizeof g_err), -1);
    assert_non_null(strstr(g_err, "not a .npy file"));
    f[8] = 0xff; /* header length beyond the file */
    f[9] = 0x7f;
    put_file(P("b.npy"), f, n);
    assert_int_equal(etch_npy_read(P("b.npy"), &a, g_err, sizeof g_err), -1);
    assert_non_null(strstr(g_err, "truncated: header length is 32767 bytes, file has 121 after the preamble"));

    etch_array w = {.dtype = ETCH_F32, .rank = 1, .dim = {-3}};
    assert_int_equal(etch_npy_write(P("w.npy"), &w, g_err, sizeof g_err), -1);
    w.dim[0] = 3; /* no data */
    assert_int_equal(etch_npy_write(P("w.npy"), &w, g_err, sizeof g_err), -1);
    assert_int_equal(etch_array_alloc(&w, ETCH_F32, 1, (int64_t[]){3}), 0);
    assert_int_equal(etch_npy_write(P("nodir/w.npy"), &w, g_err, sizeof g_err), -1);
    assert_non_null(strstr(g_err, "cannot create"));
    etch_array_free(&w);
}

static void test_npy_truncated_and_fuzzed(void **state) {
    (void)state;
    unsigned char f[1024];
    size_t n = numpy_f4_2x3(f);
    check_truncations(f, n, read_npy, NULL);
    unsigned char v2[1024], d[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    size_t n2 = make_npy(v2, 2, "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", 64, d, 12);
    check_truncations(v2, n2, read_npy, NULL);
    rng_state = 1;
    fuzz_file(f, n, 3000, read_npy, NULL);
    fuzz_file(v2, n2, 1000, read_npy, NULL);
}

/* ---- safetensors ---------------------------------------------------------- */

/* 8-byte length + header + data. */
static size_t make_st(unsigned char *out, const char *header, const void *data, size_t nd) {
    uint64_t h = strlen(header);
    for (int i = 0; i < 8; i++) out[i] = (unsigned char)(h >> (8 * i));
    memcpy(out + 8, header, h);
    memcpy(out + 8 + h, data, nd);
    return 8 + h + nd;
}

static void test_st_roundtrip(void **state) {
    (void)state;
    const char *names[] = {"w", "b", "idx", "c", "mask", "u", "empty", "\"odd\\name\n\x01\xc3\xa9", "q"};
    etch_dtype ts[] = {ETCH_F32, ETCH_F64, ETCH_I64, ETCH_I32, ETCH_BOOL, ETCH_U8, ETCH_F32, ETCH_F64, ETCH_I8};
    int ranks[] = {2, 1, 1, 0, 1, 1, 2, 1, 1};
    int64_t dims[][2] = {{2, 3}, {3, 0}, {2, 0}, {0, 0}, {5, 0}, {7, 0}, {0, 3}, {1, 0}, {3, 0}};
    enum { N = 9 };
    etch_array arr[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(etch_array_alloc(&arr[i], ts[i], ranks[i], dims[i]), 0);
        fill(&arr[i], i);
    }
    const char *meta[] = {"format", "pt", "note", "a \"quoted\"\nline \\ /"};
    const char *path = P("m.safetensors");
    assert_int_equal(etch_st_write(path, N, names, arr, 2, meta, g_err, sizeof g_err), 0);

    etch_st_file f;
    if (etch_st_read(path, &f, g_err, sizeof g_err)) fail_msg("%s", g_err);
    assert_int_equal(f.n, N);
    for (int i = 0; i < N; i++) {
        const etch_st_tensor *t = etch_st_find(&f, names[i]);
        assert_non_null(t);
        assert_int_equal(t->array.dtype, ts[i]);
        assert_int_equal(t->array.rank, ranks[i]);
        for (int k = 0; k < ranks[i]; k++) assert_int_equal(t->array.dim[k], dims[i][k]);
        assert_memory_equal(t->array.data, arr[i].data, etch_array_nbytes(&arr[i]));
        assert_int_equal((uintptr_t)t->array.data % etch_dtype_size(ts[i]), 0);
    }
    assert_null(etch_st_find(&f, "__metadata__"));
    assert_null(etch_st_find(&f, "nope"));
    /* header order is the reference's: descending dtype (I64 > F64 > F32 > I32 > I8 > U8 > BOOL), then name */
    const char *order[] = {"idx", "\"odd\\name\n\x01\xc3\xa9", "b", "empty", "w", "c", "q", "u", "mask"};
    for (int i = 0; i < N; i++) assert_string_equal(f.tensors[i].name, order[i]);
    etch_st_close(&f);
    assert_int_equal(f.n, 0);

    size_t n;
    unsigned char *raw = get_file(path, &n);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)raw[i] << (8 * i);
    assert_int_equal(hl % 8, 0);
    const char *want = "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"a \\\"quoted\\\"\\nline \\\\ /\"},"
                       "\"idx\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},"
                       "\"\\\"odd\\\\name\\n\\u0001\xc3\xa9\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[16,24]},";
    assert_memory_equal(raw + 8, want, strlen(want));
    free(raw);
    for (int i = 0; i < N; i++) etch_array_free(&arr[i]);

    /* no tensors, no metadata */
    assert_int_equal(etch_st_write(P("e.safetensors"), 0, NULL, NULL, 0, NULL, g_err, sizeof g_err), 0);
    assert_int_equal(etch_st_read(P("e.safetensors"), &f, g_err, sizeof g_err), 0);
    assert_int_equal(f.n, 0);
    etch_st_close(&f);
    raw = get_file(P("e.safetensors"), &n);
    assert_int_equal(n, 16);
    assert_memory_equal(raw, "\x08\0\0\0\0\0\0\0{}      ", 16);
    free(raw);
}

static void test_st_reference_layout(void **state) {
    (void)state;
    /* what safetensors.numpy.save_file({"a": f32[2], "b": u8[3]}, metadata={"format": "np"}) writes */
    const char *hdr = "{\"__metadata__\":{\"format\":\"np\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[8,11]}}";
    char padded[256];
    snprintf(padded, sizeof padded, "%s%*s", hdr, (int)((8 - strlen(hdr) % 8) % 8), "");
    unsigned char f[512], data[11];
    float fv[2] = {1.5f, -2.0f};
    memcpy(data, fv, 8);
    data[8] = 7, data[9] = 8, data[10] = 9;
    size_t n = make_st(f, padded, data, 11);
    put_file(P("ref.safetensors"), f, n);
    etch_st_file st;
    assert_int_equal(etch_st_read(P("ref.safetensors"), &st, g_err, sizeof g_err), 0);
    const void *p;
    assert_int_equal(etch_st_expect(&st, "ref", "a", ETCH_F32, 1, (int64_t[]){2}, &p, g_err, sizeof g_err), 0);
    assert_true(((const float *)p)[1] == -2.0f);
    assert_int_equal(etch_st_expect(&st, "ref", "b", ETCH_U8, 1, (int64_t[]){3}, &p, g_err, sizeof g_err), 0);
    assert_int_equal(((const uint8_t *)p)[2], 9);
    etch_st_close(&st);

    /* our writer emits the same bytes */
    etch_array arrs[2] = {{.dtype = ETCH_U8, .rank = 1, .dim = {3}, .data = data + 8},
                          {.dtype = ETCH_F32, .rank = 1, .dim = {2}, .data = fv}};
    const char *names[] = {"b", "a"};
    const char *meta[] = {"format", "np"};
    assert_int_equal(etch_st_write(P("ours.safetensors"), 2, names, arrs, 1, meta, g_err, sizeof g_err), 0);
    size_t m;
    unsigned char *ours = get_file(P("ours.safetensors"), &m);
    assert_int_equal(m, n);
    assert_memory_equal(ours, f, n);
    free(ours);

    /* other writers: whitespace, escapes, key order, extra keys, metadata anywhere */
    const char *loose = " { \"b\" : { \"shape\" : [ 3 ] , \"data_offsets\" : [ 8 , 11 ], \"dtype\" : \"U8\" } ,\n"
                        "\"\\u00e9\\ud83d\\ude00\\/\" : {\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":[1,{\"y\":null}]},"
                        "\"__metadata__\":{\"k\":\"v\\\"\",\"n\":[true,false,-1.5e3]} }\n\t";
    n = make_st(f, loose, data, 11);
    put_file(P("loose.safetensors"), f, n);
    assert_int_equal(etch_st_read(P("loose.safetensors"), &st, g_err, sizeof g_err), 0);
    assert_int_equal(st.n, 2);
    assert_non_null(etch_st_find(&st, "\xc3\xa9\xf0\x9f\x98\x80/"));
    etch_st_close(&st);
}

static void test_st_expect_messages(void **state) {
    (void)state;
    etch_array a[3];
    const char *names[] = {"fc1.weight", "fc1.bias", "step"};
    assert_int_equal(etch_array_alloc(&a[0], ETCH_F32, 2, (int64_t[]){128, 700}), 0);
    assert_int_equal(etch_array_alloc(&a[1], ETCH_F32, 1, (int64_t[]){128}), 0);
    assert_int_equal(etch_array_alloc(&a[2], ETCH_I64, 0, NULL), 0);
    const char *path = P("w.safetensors");
    assert_int_equal(etch_st_write(path, 3, names, a, 0, NULL, g_err, sizeof g_err), 0);
    for (int i = 0; i < 3; i++) etch_array_free(&a[i]);
    etch_st_file f;
    assert_int_equal(etch_st_read(path, &f, g_err, sizeof g_err), 0);
    const void *data = NULL;
    assert_int_equal(etch_st_expect(&f, "w.safetensors", "fc1.weight", ETCH_F32, 2, (int64_t[]){128, 784}, &data,
                                    g_err, sizeof g_err),
                     -1);
    assert_string_equal(g_err, "w.safetensors: tensor 'fc1.weight' is f32[128,700], expected f32[128,784]");
    assert_null(data);
    assert_int_equal(
        etch_st_expect(&f, "w.safetensors", "fc1.bias", ETCH_F64, 1, (int64_t[]){128}, NULL, g_err, sizeof g_err), -1);
    assert_string_equal(g_err, "w.safetensors: tensor 'fc1.bias' is f32[128], expected f64[128]");
    assert_int_equal(etch_st_expect(&f, "w.safetensors", "step", ETCH_I64, 1, (int64_t[]){1}, NULL, g_err, sizeof g_err),
                     -1);
    assert_string_equal(g_err, "w.safetensors: tensor 'step' is i64[], expected i64[1]");
    assert_int_equal(
        etch_st_expect(&f, "w.safetensors", "fc2.weight", ETCH_F32, 1, (int64_t[]){1}, NULL, g_err, sizeof g_err), -1);
    assert_string_equal(g_err, "w.safetensors: missing tensor 'fc2.weight' (file has: step, fc1.bias, fc1.weight)");
    assert_int_equal(etch_st_expect(&f, "w.safetensors", "step", ETCH_I64, 0, NULL, &data, g_err, sizeof g_err), 0);
    assert_non_null(data);
    etch_st_close(&f);

    /* many tensors: the list stops at 8 */
    const char *many[12];
    char nbuf[12][16];
    etch_array z[12];
    for (int i = 0; i < 12; i++) {
        snprintf(nbuf[i], sizeof nbuf[i], "t%02d", i);
        many[i] = nbuf[i];
        assert_int_equal(etch_array_alloc(&z[i], ETCH_U8, 1, (int64_t[]){1}), 0);
    }
    assert_int_equal(etch_st_write(path, 12, many, z, 0, NULL, g_err, sizeof g_err), 0);
    for (int i = 0; i < 12; i++) etch_array_free(&z[i]);
    assert_int_equal(etch_st_read(path, &f, g_err, sizeof g_err), 0);
    assert_int_equal(etch_st_expect(&f, "m.st", "x", ETCH_U8, 0, NULL, NULL, g_err, sizeof g_err), -1);
    assert_string_equal(g_err, "m.st: missing tensor 'x' (file has: t00, t01, t02, t03, t04, t05, t06, t07 and 4 more)");
    etch_st_close(&f);
    etch_st_file empty = {0};
    assert_int_equal(etch_st_expect(&empty, "e.st", "x", ETCH_U8, 0, NULL, NULL, g_err, sizeof g_err), -1);
    assert_string_equal(g_err, "e.st: missing tensor 'x' (file has no tensors)");
}

static void expect_st_error(const char *header, size_t nd, const char *want) {
    unsigned char f[8192], data[64] = {0};
    size_t n = make_st(f, header, data, nd);
    const char *path = P("bad.safetensors");
    put_file(path, f, n);
    etch_st_file st;
    assert_int_equal(etch_st_read(path, &st, g_err, sizeof g_err), -1);
    assert_int_equal(st.n, 0);
    assert_null(st.buffer);
    char full[512];
    snprintf(full, sizeof full, "%s: %s", path, want);
    if (strncmp(g_err, full, strlen(full))) fail_msg("got \"%s\"\nwant \"%s...\"", g_err, full);
}

static void test_st_errors(void **state) {
    (void)state;
    expect_st_error("{\"x\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
                    "unsupported dtype F16 for tensor 'x' (supported: F32, F64, I32, I64, BOOL, U8, I8)");
    expect_st_error("{\"x\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
                    "unsupported dtype BF16 for tensor 'x'");
    expect_st_error("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,400]}}", 8,
                    "tensor 'x' has data_offsets [0,400] outside the 8-byte data buffer");
    expect_st_error("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8,
                    "tensor 'x' has data_offsets [8,0] outside");
    expect_st_error("{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
                    "tensor 'x' is f32[3] (12 bytes) but data_offsets [0,8] span 8 bytes");
    expect_st_error("{\"x\":{\"dtype\":\"F32\",\"shape\":[-1,2],\"data_offsets\":[0,8]}}", 8,
                    "tensor 'x' has an invalid shape f32[-1,2]");
    expect_st_error("{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
                    "tensor 'x' has an invalid shape");
    expect_st_error("{\"x\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
                    "invalid JSON header: shape has more than 8 dimensions");
    expect_st_error("{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                    "\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
                    1, "tensor 'x' appears twice in the header");
    expect_st_error("{\"x\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "tensor 'x' lacks \"dtype\"");
    expect_st_error("{\"x\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, "tensor 'x' lacks \"shape\"");
    expect_st_error("{\"x\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1, "tensor 'x' lacks \"data_offsets\"");
    expect_st_error("{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1,
                    "invalid JSON header: data_offsets must hold 2 integers");
    expect_st_error("{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,-1]}}", 1,
                    "invalid JSON header: data_offsets must be non-negative");
    expect_st_error("{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,99999999999999999999]}}", 1,
                    "invalid JSON header: integer too large");
    expect_st_error("{\"x\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,1]}}", 1,
                    "invalid JSON header: expected an integer at header byte 29");
    expect_st_error("{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}", 1,
                    "invalid JSON header: expected ',' or '}'");
    expect_st_error("{\"x\":1}", 0, "invalid JSON header: expected '{' for a tensor entry");
    expect_st_error("[]", 0, "invalid JSON header: expected '{' at header byte 0");
    expect_st_error("", 0, "invalid JSON header: expected '{'");
    expect_st_error("{\"a\\q\":{}}", 0, "invalid JSON header: bad escape in string");
    expect_st_error("{\"a\\ud800x\":{}}", 0, "invalid JSON header: unpaired surrogate");
    expect_st_error("{\"a\\u12\":{}}", 0, "invalid JSON header: bad \\u escape");
    expect_st_error("{\"a\tb\":{}}", 0, "invalid JSON header: control character in string");
    expect_st_error("{\"abc", 0, "invalid JSON header: unterminated string");
    expect_st_error("{} x", 0, "invalid JSON header: unexpected text after the closing '}'");
    expect_st_error("{\"__metadata__\":{\"k\":tru}}", 0, "invalid JSON header: expected a value");
    char deep[400] = "{\"__metadata__\":";
    for (int i = 0; i < 100; i++) strcat(deep, "[");
    expect_st_error(deep, 0, "invalid JSON header: nested too deeply");
    expect_st_error("{\"x\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[0,2]}}\x01\x05", 0,
                    "invalid JSON header: unexpected text");
    unsigned char f[256] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'}; /* header length 2^64-1 */
    put_file(P("h.safetensors"), f, 10);
    etch_st_file st;
    assert_int_equal(etch_st_read(P("h.safetensors"), &st, g_err, sizeof g_err), -1);
    assert_non_null(strstr(g_err, "truncated: header length says 18446744073709551615 bytes, file has 2 after it"));
    unsigned char b[] = {0, 1, 2};
    size_t n = make_st(f, "{\"m\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[0,3]}}", b, 3);
    put_file(P("h.safetensors"), f, n);
    assert_int_equal(etch_st_read(P("h.safetensors"), &st, g_err, sizeof g_err), -1);
    assert_non_null(strstr(g_err, "tensor 'm': bool element 2 has value 2, expected 0 or 1"));

    etch_array a = {.dtype = ETCH_U8, .rank = 1, .dim = {1}, .data = b};
    etch_array two[2] = {a, a};
    const char *dup[] = {"x", "x"}, *meta_name[] = {"__metadata__"};
    assert_int_equal(etch_st_write(P("w.st"), 2, dup, two, 0, NULL, g_err, sizeof g_err), -1);
    assert_non_null(strstr(g_err, "tensor name 'x' is given twice"));
    assert_int_equal(etch_st_write(P("w.st"), 1, meta_name, two, 0, NULL, g_err, sizeof g_err), -1);
    two[0].dim[0] = -1;
    assert_int_equal(etch_st_write(P("w.st"), 1, dup, two, 0, NULL, g_err, sizeof g_err), -1);
    assert_non_null(strstr(g_err, "tensor 'x' is not a valid array"));
    assert_int_equal(etch_st_write(P("nodir/w.st"), 1, dup, &a, 0, NULL, g_err, sizeof g_err), -1);
    assert_non_null(strstr(g_err, "cannot create"));
    assert_int_equal(access(P("w.st"), F_OK), -1); /* nothing was left behind */
}

static void test_st_misaligned(void **state) {
    (void)state;
    /* a writer that neither pads the header nor orders by alignment: data would
     * sit at odd addresses, so the reader moves it to aligned storage */
    const char *hdr = "{\"u\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
                      "\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[3,19]}}";
    unsigned char f[512], data[19] = {1, 2, 3};
    double dv[2] = {3.25, -1e-300};
    memcpy(data + 3, dv, 16);
    size_t n = make_st(f, hdr, data, 19);
    put_file(P("mis.safetensors"), f, n);
    etch_st_file st;
    assert_int_equal(etch_st_read(P("mis.safetensors"), &st, g_err, sizeof g_err), 0);
    const void *p;
    assert_int_equal(etch_st_expect(&st, "mis", "d", ETCH_F64, 1, (int64_t[]){2}, &p, g_err, sizeof g_err), 0);
    assert_int_equal((uintptr_t)p % 8, 0);
    assert_memory_equal(p, dv, 16);
    assert_int_equal(etch_st_expect(&st, "mis", "u", ETCH_U8, 1, (int64_t[]){3}, &p, g_err, sizeof g_err), 0);
    assert_memory_equal(p, data, 3);
    etch_st_close(&st);
}

static void test_st_truncated_and_fuzzed(void **state) {
    (void)state;
    etch_array a[3];
    const char *names[] = {"w", "b", "m"};
    assert_int_equal(etch_array_alloc(&a[0], ETCH_F32, 2, (int64_t[]){2, 3}), 0);
    assert_int_equal(etch_array_alloc(&a[1], ETCH_I64, 1, (int64_t[]){2}), 0);
    assert_int_equal(etch_array_alloc(&a[2], ETCH_BOOL, 1, (int64_t[]){3}), 0);
    const char *meta[] = {"k", "v"};
    assert_int_equal(etch_st_write(P("s.safetensors"), 3, names, a, 1, meta, g_err, sizeof g_err), 0);
    for (int i = 0; i < 3; i++) etch_array_free(&a[i]);
    size_t n;
    unsigned char *b = get_file(P("s.safetensors"), &n);
    check_truncations(b, n, read_st, NULL);
    rng_state = 2;
    fuzz_file(b, n, 4000, read_st, NULL);
    free(b);
}

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
    g_err[0] = 0;
    if (etch_gunzip(in, n, &out, &m, g_err, sizeof g_err)) return -1;
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
    assert_string_equal(g_err, "corrupt gzip data: crc mismatch: trailer says 3610a687, data has 3610a686");
    memcpy(bad, hello_gz, sizeof hello_gz);
    bad[sizeof hello_gz - 4] = 6; /* ISIZE */
    assert_int_equal(gunzip_str(bad, sizeof hello_gz, "hello"), -1);
    assert_string_equal(g_err, "corrupt gzip data: length mismatch: trailer says 6 bytes, data has 5");
    memcpy(bad, dyn_gz, sizeof dyn_gz);
    bad[60] ^= 0x10; /* a data bit: the decode fails or the CRC catches it */
    assert_int_equal(gunzip_str(bad, sizeof dyn_gz, text), -1);
    assert_non_null(strstr(g_err, "corrupt gzip data: "));
    for (size_t i = 0; i < sizeof dyn_gz; i++) { /* every truncation */
        assert_int_equal(gunzip_str(dyn_gz, i, text), -1);
        assert_true(g_err[0] != 0);
    }
    for (size_t i = 0; i < sizeof hello_gz; i++) assert_int_equal(gunzip_str(hello_gz, i, "hello"), -1);
    assert_int_equal(gunzip_str((const unsigned char *)"PK\3\4", 4, ""), -1);
    assert_string_equal(g_err, "not gzip data (no 1f 8b magic)");

    unsigned char two[2 * sizeof hello_gz + 5] = {0}; /* two members, then zero padding */
    memcpy(two, hello_gz, sizeof hello_gz);
    memcpy(two + sizeof hello_gz, hello_gz, sizeof hello_gz);
    assert_int_equal(gunzip_str(two, sizeof two, "hellohello"), 0);
    two[sizeof two - 1] = 'x';
    assert_int_equal(gunzip_str(two, sizeof two, "hellohello"), -1);
    assert_string_equal(g_err, "corrupt gzip data: trailing garbage after the gzip data");

    rng_state = 3; /* mutations: fail with a message or succeed, never crash */
    for (int it = 0; it < 20000; it++) {
        memcpy(bad, dyn_gz, sizeof dyn_gz);
        for (int k = 0; k < 1 + it % 3; k++) bad[10 + rnd() % (sizeof dyn_gz - 18)] = (unsigned char)rnd();
        unsigned char *out;
        size_t m;
        if (etch_gunzip(bad, sizeof dyn_gz, &out, &m, g_err, sizeof g_err) == 0) free(out);
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
        if (gunzip_str(gz, n, "abcabcabc")) fail_msg("flags %u: %s", flg, g_err);
    }
    n = wrap_gzip(gz, 2 | 8, &w, "abcabcabc", 9);
    gz[12] ^= 1; /* the name, covered by the header CRC */
    assert_int_equal(gunzip_str(gz, n, "abcabcabc"), -1);
    assert_string_equal(g_err, "corrupt gzip data: header crc mismatch");
    n = wrap_gzip(gz, 0x20, &w, "abcabcabc", 9);
    assert_int_equal(gunzip_str(gz, n, "abcabcabc"), -1);
    assert_string_equal(g_err, "corrupt gzip data: reserved header flags set");

    /* a match before any output */
    bw d = {0};
    bits(&d, 1, 1), bits(&d, 1, 2);
    fixed_lit(&d, 257), code(&d, 0, 5), fixed_lit(&d, 256);
    flush(&d);
    n = wrap_gzip(gz, 0, &d, "", 0);
    assert_int_equal(gunzip_str(gz, n, ""), -1);
    assert_string_equal(g_err, "corrupt gzip data: invalid distance (too far back)");
    /* distance codes 30 and 31 do not exist */
    bw d30 = {0};
    bits(&d30, 1, 1), bits(&d30, 1, 2);
    fixed_lit(&d30, 'a'), fixed_lit(&d30, 257), code(&d30, 30, 5), fixed_lit(&d30, 256);
    flush(&d30);
    n = wrap_gzip(gz, 0, &d30, "aaaa", 4);
    assert_int_equal(gunzip_str(gz, n, "aaaa"), -1);
    assert_string_equal(g_err, "corrupt gzip data: invalid distance code");
    /* block type 3 */
    bw t3 = {0};
    bits(&t3, 1, 1), bits(&t3, 3, 2);
    flush(&t3);
    n = wrap_gzip(gz, 0, &t3, "", 0);
    assert_int_equal(gunzip_str(gz, n, ""), -1);
    assert_string_equal(g_err, "corrupt gzip data: invalid block type 3");
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
    assert_string_equal(g_err, "corrupt gzip data: stored block length does not match its complement");
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
    put_file(P("plain.bin"), plain, n);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "gzip %s -c '%s' > '%s'", level, P("plain.bin"), P("plain.bin.gz"));
    assert_int_equal(system(cmd), 0);
    size_t gn, m;
    unsigned char *gz = get_file(P("plain.bin.gz"), &gn), *out;
    if (etch_gunzip(gz, gn, &out, &m, g_err, sizeof g_err)) fail_msg("gzip %s of %zu bytes: %s", level, n, g_err);
    assert_int_equal(m, n);
    assert_memory_equal(out, plain, n);
    free(out);
    free(gz);
}

static void test_gzip_system(void **state) {
    (void)state;
    if (!have_gzip()) skip();
    size_t n = 3 << 20;
    unsigned char *p = malloc(n);
    rng_state = 4;
    for (size_t i = 0; i < n; i++) { /* text-like runs, repeats and noise: all block kinds and long matches */
        size_t r = i / 4096 % 4;
        p[i] = r == 0 ? (unsigned char)("etch compiles graphs "[i % 21]) : r == 1 ? (unsigned char)(rnd() & 0xff)
             : r == 2 ? (unsigned char)(i * i % 251)                    : (unsigned char)('a' + rnd() % 3);
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
    put_file(P("a-idx2-ubyte"), u8, sizeof u8);
    etch_array a;
    assert_int_equal(etch_idx_read(P("a-idx2-ubyte"), &a, g_err, sizeof g_err), 0);
    assert_int_equal(a.dtype, ETCH_U8);
    assert_int_equal(a.rank, 2);
    assert_int_equal(a.dim[0], 2);
    assert_int_equal(a.dim[1], 3);
    assert_memory_equal(a.data, u8 + 12, 6);
    etch_array_free(&a);
    unsigned char gz[256];
    size_t n = stored_gzip(gz, u8, sizeof u8);
    put_file(P("a-idx2-ubyte.gz"), gz, n);
    assert_int_equal(etch_idx_read(P("a-idx2-ubyte.gz"), &a, g_err, sizeof g_err), 0);
    assert_int_equal(a.dim[1], 3);
    assert_memory_equal(a.data, u8 + 12, 6);
    etch_array_free(&a);
    if (have_gzip()) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "gzip -9 -c '%s' > '%s'", P("a-idx2-ubyte"), P("sys.gz"));
        assert_int_equal(system(cmd), 0);
        assert_int_equal(etch_idx_read(P("sys.gz"), &a, g_err, sizeof g_err), 0);
        assert_memory_equal(a.data, u8 + 12, 6);
        etch_array_free(&a);
    }

    /* the other payload types, big-endian, widened */
    const unsigned char i8[] = {0, 0, 0x09, 1, 0, 0, 0, 2, 0x80, 0x7f};
    const unsigned char i16[] = {0, 0, 0x0B, 1, 0, 0, 0, 2, 0xff, 0xfe, 0x01, 0x02};
    const unsigned char i32[] = {0, 0, 0x0C, 1, 0, 0, 0, 1, 0x80, 0, 0, 1};
    const unsigned char f32[] = {0, 0, 0x0D, 1, 0, 0, 0, 1, 0x3f, 0xc0, 0, 0};
    const unsigned char f64[] = {0, 0, 0x0E, 0, 0xc0, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18}; /* rank 0: -pi */
    put_file(P("t"), i8, sizeof i8);
    assert_int_equal(etch_idx_read(P("t"), &a, g_err, sizeof g_err), 0);
    assert_int_equal(a.dtype, ETCH_I32);
    assert_int_equal(((int32_t *)a.data)[0], -128);
    assert_int_equal(((int32_t *)a.data)[1], 127);
    etch_array_free(&a);
    put_file(P("t"), i16, sizeof i16);
    assert_int_equal(etch_idx_read(P("t"), &a, g_err, sizeof g_err), 0);
    assert_int_equal(((int32_t *)a.data)[0], -2);
    assert_int_equal(((int32_t *)a.data)[1], 258);
    etch_array_free(&a);
    put_file(P("t"), i32, sizeof i32);
    assert_int_equal(etch_idx_read(P("t"), &a, g_err, sizeof g_err), 0);
    assert_int_equal(((int32_t *)a.data)[0], INT32_MIN + 1);
    etch_array_free(&a);
    put_file(P("t"), f32, sizeof f32);
    assert_int_equal(etch_idx_read(P("t"), &a, g_err, sizeof g_err), 0);
    assert_int_equal(a.dtype, ETCH_F32);
    assert_true(((float *)a.data)[0] == 1.5f);
    etch_array_free(&a);
    put_file(P("t"), f64, sizeof f64);
    assert_int_equal(etch_idx_read(P("t"), &a, g_err, sizeof g_err), 0);
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
        put_file(P("bad-idx"), bad[c].bytes, bad[c].n);
        assert_int_equal(etch_idx_read(P("bad-idx"), &a, g_err, sizeof g_err), -1);
        assert_null(a.data);
        char full[512];
        snprintf(full, sizeof full, "%s: %s", P("bad-idx"), bad[c].want);
        if (strcmp(g_err, full)) fail_msg("case %zu: got \"%s\"\nwant \"%s\"", c, g_err, full);
    }
    put_file(P("plain.gz"), u8, sizeof u8);
    assert_int_equal(etch_idx_read(P("plain.gz"), &a, g_err, sizeof g_err), -1);
    assert_non_null(strstr(g_err, "plain.gz: not gzip data (starts with 00 00, expected 1f 8b)"));
    gz[n - 8] ^= 0xff;
    put_file(P("c.gz"), gz, n);
    assert_int_equal(etch_idx_read(P("c.gz"), &a, g_err, sizeof g_err), -1);
    char want[512];
    snprintf(want, sizeof want, "%s: corrupt gzip data: crc mismatch", P("c.gz"));
    assert_true(strncmp(g_err, want, strlen(want)) == 0);

    gz[n - 8] ^= 0xff;
    check_truncations(u8, sizeof u8, read_idx, NULL);
    check_truncations(gz, n, read_idx, NULL);
    rng_state = 5;
    fuzz_file(u8, sizeof u8, 2000, read_idx, NULL);
    fuzz_file(gz, n, 2000, read_idx, NULL);
}

static void check_fashion(const char *file, int rank, int64_t d0) {
    char path[256];
    snprintf(path, sizeof path, "/usr/share/datasets/fashion-mnist/%s", file);
    if (access(path, R_OK) != 0) return;
    etch_array a;
    if (etch_idx_read(path, &a, g_err, sizeof g_err)) fail_msg("%s", g_err);
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
    if (!have_gzip()) skip();
    enum { ROWS = 300, PER = 28 * 28 };
    size_t n = 16 + (size_t)ROWS * PER;
    unsigned char *idx = malloc(n);
    const unsigned char head[16] = {0, 0, 0x08, 3, 0, 0, ROWS >> 8, ROWS & 0xff, 0, 0, 0, 28, 0, 0, 0, 28};
    memcpy(idx, head, 16);
    rng_state = 9;
    for (size_t i = 16; i < n; i++) idx[i] = (unsigned char)(i % 97 < 40 ? 0 : rnd() & 0xff); /* image-like runs */
    put_file(P("r-idx3-ubyte"), idx, n);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "gzip -9 -c '%s' > '%s'", P("r-idx3-ubyte"), P("r-idx3-ubyte.gz"));
    assert_int_equal(system(cmd), 0);
    size_t gn, m;
    unsigned char *gz = get_file(P("r-idx3-ubyte.gz"), &gn), *out;
    const size_t limits[] = {1, 16, 17, 1000, 100000, n - 1, n, n + 5};
    for (size_t k = 0; k < sizeof limits / sizeof limits[0]; k++) {
        assert_int_equal(etch_gunzip_prefix(gz, gn, limits[k], &out, &m, g_err, sizeof g_err), 0);
        assert_int_equal(m, limits[k] < n ? limits[k] : n);
        assert_memory_equal(out, idx, m);
        free(out);
    }
    const char *files[] = {P("r-idx3-ubyte"), P("r-idx3-ubyte.gz")};
    const int64_t rows[] = {0, 1, 64, ROWS - 1, ROWS, ROWS + 10};
    for (int f = 0; f < 2; f++)
        for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
            etch_array a;
            if (etch_idx_read_rows(files[f], rows[k], &a, g_err, sizeof g_err)) fail_msg("%s: %s", files[f], g_err);
            int64_t want = rows[k] < ROWS ? rows[k] : ROWS;
            assert_int_equal(a.rank, 3);
            assert_int_equal(a.dim[0], want);
            assert_int_equal(a.dim[2], 28);
            if (want) assert_memory_equal(a.data, idx + 16, (size_t)want * PER);
            etch_array_free(&a);
        }
    /* the gzip file cut in half: the first rows still read, the whole file is an error */
    put_file(P("cut-idx3-ubyte.gz"), gz, gn / 2);
    etch_array a;
    assert_int_equal(etch_idx_read_rows(P("cut-idx3-ubyte.gz"), 10, &a, g_err, sizeof g_err), 0);
    assert_memory_equal(a.data, idx + 16, 10 * PER);
    etch_array_free(&a);
    assert_int_equal(etch_idx_read_rows(P("cut-idx3-ubyte.gz"), -1, &a, g_err, sizeof g_err), -1);
    assert_non_null(strstr(g_err, "unexpected end of data"));
    /* rows of a file shorter than its header says: truncated, as for the whole read */
    put_file(P("short-idx3-ubyte"), idx, 16 + 5 * PER);
    assert_int_equal(etch_idx_read_rows(P("short-idx3-ubyte"), 6, &a, g_err, sizeof g_err), -1);
    assert_non_null(strstr(g_err, "truncated"));
    assert_int_equal(etch_idx_read_rows(P("short-idx3-ubyte"), 5, &a, g_err, sizeof g_err), 0);
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
        cmocka_unit_test(test_dtypes_and_describe),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_npy_roundtrip),
        cmocka_unit_test(test_npy_numpy_layouts),
        cmocka_unit_test(test_npy_errors),
        cmocka_unit_test(test_npy_truncated_and_fuzzed),
        cmocka_unit_test(test_st_roundtrip),
        cmocka_unit_test(test_st_reference_layout),
        cmocka_unit_test(test_st_expect_messages),
        cmocka_unit_test(test_st_errors),
        cmocka_unit_test(test_st_misaligned),
        cmocka_unit_test(test_st_truncated_and_fuzzed),
        cmocka_unit_test(test_gzip_known),
        cmocka_unit_test(test_gzip_handmade),
        cmocka_unit_test(test_gzip_system),
        cmocka_unit_test(test_idx),
        cmocka_unit_test(test_idx_rows),
        cmocka_unit_test(test_idx_fashion_mnist),
        cmocka_unit_test(test_philox),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
