/* test_runtime.c: the dependency-free runtime (the parts in runtime/rt/, joined
 * into etch_rt.c): arrays, files and .npy. test_safetensors.c and
 * test_archives.c (gzip, IDX, Philox) check the other parts the same way.
 *
 * Each file format is checked three ways: round trips through our own writer,
 * files laid out byte-for-byte as the reference tools write them (numpy,
 * the safetensors crate, gzip), and hostile input: every truncation of a valid
 * file and thousands of random byte mutations, which must fail with a message
 * (or, for mutations, possibly succeed) but never crash; run it under
 * -fsanitize=address,undefined. Error messages are checked word for word where
 * the API promises their form. All files live in a mkdtemp folder (rt_files.c). */
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
    const char *path = rt_path("atomic.txt");
    assert_int_equal(etch_write_file_atomic(path, "hello", 5, rt_err, sizeof rt_err), 0);
    assert_int_equal(etch_write_file_atomic(path, "bye!", 4, rt_err, sizeof rt_err), 0); /* replaces */
    size_t n;
    unsigned char *b = rt_get_file(path, &n);
    assert_int_equal(n, 4);
    assert_string_equal((char *)b, "bye!"); /* NUL-terminated */
    free(b);
    assert_int_equal(etch_write_file_atomic(rt_path("empty"), "", 0, rt_err, sizeof rt_err), 0);
    b = rt_get_file(rt_path("empty"), &n);
    assert_int_equal(n, 0);
    free(b);
    DIR *d = opendir(rt_dir); /* no temp files left behind */
    struct dirent *e;
    while ((e = readdir(d))) assert_null(strstr(e->d_name, ".tmp."));
    closedir(d);

    const char *nodir = rt_path("no/such/dir/x.bin");
    assert_int_equal(etch_write_file_atomic(nodir, "x", 1, rt_err, sizeof rt_err), -1);
    assert_true(strncmp(rt_err, nodir, strlen(nodir)) == 0);
    assert_non_null(strstr(rt_err, "cannot create"));
    const char *missing = rt_path("missing.bin");
    assert_int_equal(etch_read_file(missing, &b, &n, rt_err, sizeof rt_err), -1);
    char want[512];
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", missing);
    assert_string_equal(rt_err, want);
    assert_int_equal(etch_read_file(rt_dir, &b, &n, rt_err, sizeof rt_err), -1); /* a folder */
    assert_int_equal(etch_read_file(missing, &b, &n, NULL, 0), -1);          /* no err buffer: still fine */
}

/* ---- .npy ------------------------------------------------------------------ */

static void test_npy_roundtrip(void **state) {
    (void)state;
    const int64_t dims[4] = {3, 1, 4, 5};
    for (int t = 0; t < ETCH_DTYPE_COUNT; t++)
        for (int rank = 0; rank <= 4; rank++) {
            etch_array a, b;
            assert_int_equal(etch_array_alloc(&a, (etch_dtype)t, rank, dims), 0);
            rt_fill(&a, t + rank);
            const char *path = rt_path("rt.npy");
            assert_int_equal(etch_npy_write(path, &a, rt_err, sizeof rt_err), 0);
            assert_int_equal(etch_npy_read(path, &b, rt_err, sizeof rt_err), 0);
            assert_int_equal(b.dtype, t);
            assert_int_equal(b.rank, rank);
            for (int i = 0; i < rank; i++) assert_int_equal(b.dim[i], dims[i]);
            assert_memory_equal(a.data, b.data, etch_array_nbytes(&a));
            assert_int_equal((uintptr_t)b.data % 64, 0);
            size_t n;
            unsigned char *raw = rt_get_file(path, &n); /* data starts on a 64-byte boundary, after '\n' */
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
    assert_int_equal(etch_npy_write(rt_path("empty.npy"), &e, rt_err, sizeof rt_err), 0);
    etch_array_free(&e);
    assert_int_equal(etch_npy_read(rt_path("empty.npy"), &e, rt_err, sizeof rt_err), 0);
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
    rt_put_file(rt_path("np.npy"), f, n);
    etch_array a;
    assert_int_equal(etch_npy_read(rt_path("np.npy"), &a, rt_err, sizeof rt_err), 0);
    assert_int_equal(a.dtype, ETCH_F32);
    assert_int_equal(a.rank, 2);
    assert_int_equal(a.dim[0], 2);
    assert_int_equal(a.dim[1], 3);
    assert_true(((float *)a.data)[5] == 5.0f);
    /* our writer produces numpy's exact bytes */
    assert_int_equal(etch_npy_write(rt_path("ours.npy"), &a, rt_err, sizeof rt_err), 0);
    size_t m;
    unsigned char *ours = rt_get_file(rt_path("ours.npy"), &m);
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
        rt_put_file(rt_path("np.npy"), f, n);
        if (etch_npy_read(rt_path("np.npy"), &a, rt_err, sizeof rt_err)) fail_msg("case %zu: %s", c, rt_err);
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
    const char *path = rt_path("bad.npy");
    rt_put_file(path, f, n);
    etch_array a;
    assert_int_equal(etch_npy_read(path, &a, rt_err, sizeof rt_err), -1);
    assert_null(a.data);
    char full[512];
    snprintf(full, sizeof full, "%s: %s", path, want);
    if (strncmp(rt_err, full, strlen(full))) fail_msg("got \"%s\"\nwant \"%s...\"", rt_err, full);
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
    rt_put_file(rt_path("b.npy"), f, n);
    etch_array a;
    assert_int_equal(etch_npy_read(rt_path("b.npy"), &a, rt_err, sizeof rt_err), -1);
    assert_non_null(strstr(rt_err, "bool element 2 has value 2, expected 0 or 1"));
    rt_put_file(rt_path("b.npy"), "PK\3\4 not npy", 13);
    assert_int_equal(etch_npy_read(rt_path("b.npy"), &a, rt_err, sizeof rt_err), -1);
    assert_non_null(strstr(rt_err, "not a .npy file"));
    f[8] = 0xff; /* header length beyond the file */
    f[9] = 0x7f;
    rt_put_file(rt_path("b.npy"), f, n);
    assert_int_equal(etch_npy_read(rt_path("b.npy"), &a, rt_err, sizeof rt_err), -1);
    assert_non_null(strstr(rt_err, "truncated: header length is 32767 bytes, file has 121 after the preamble"));

    etch_array w = {.dtype = ETCH_F32, .rank = 1, .dim = {-3}};
    assert_int_equal(etch_npy_write(rt_path("w.npy"), &w, rt_err, sizeof rt_err), -1);
    w.dim[0] = 3; /* no data */
    assert_int_equal(etch_npy_write(rt_path("w.npy"), &w, rt_err, sizeof rt_err), -1);
    assert_int_equal(etch_array_alloc(&w, ETCH_F32, 1, (int64_t[]){3}), 0);
    assert_int_equal(etch_npy_write(rt_path("nodir/w.npy"), &w, rt_err, sizeof rt_err), -1);
    assert_non_null(strstr(rt_err, "cannot create"));
    etch_array_free(&w);
}

static void test_npy_truncated_and_fuzzed(void **state) {
    (void)state;
    unsigned char f[1024];
    size_t n = numpy_f4_2x3(f);
    rt_check_truncations(f, n, rt_read_npy, NULL);
    unsigned char v2[1024], d[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    size_t n2 = make_npy(v2, 2, "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", 64, d, 12);
    rt_check_truncations(v2, n2, rt_read_npy, NULL);
    rt_seed(1);
    rt_fuzz_file(f, n, 3000, rt_read_npy, NULL);
    rt_fuzz_file(v2, n2, 1000, rt_read_npy, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtypes_and_describe),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_npy_roundtrip),
        cmocka_unit_test(test_npy_numpy_layouts),
        cmocka_unit_test(test_npy_errors),
        cmocka_unit_test(test_npy_truncated_and_fuzzed),
    };
    return cmocka_run_group_tests(tests, rt_setup, rt_teardown);
}
