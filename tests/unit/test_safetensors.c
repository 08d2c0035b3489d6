/* test_safetensors.c: the runtime's safetensors reader and writer
 * (runtime/rt/safetensors.c): round trips, files laid out as the safetensors
 * crate writes them, the messages of P_load's checks word for word, and
 * hostile input (every truncation, random mutations, misaligned data) that
 * must fail with a message, never crash. Helpers: rt_files.c. */
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
        rt_fill(&arr[i], i);
    }
    const char *meta[] = {"format", "pt", "note", "a \"quoted\"\nline \\ /"};
    const char *path = rt_path("m.safetensors");
    assert_int_equal(etch_st_write(path, N, names, arr, 2, meta, rt_err, sizeof rt_err), 0);

    etch_st_file f;
    if (etch_st_read(path, &f, rt_err, sizeof rt_err)) fail_msg("%s", rt_err);
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
    unsigned char *raw = rt_get_file(path, &n);
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
    assert_int_equal(etch_st_write(rt_path("e.safetensors"), 0, NULL, NULL, 0, NULL, rt_err, sizeof rt_err), 0);
    assert_int_equal(etch_st_read(rt_path("e.safetensors"), &f, rt_err, sizeof rt_err), 0);
    assert_int_equal(f.n, 0);
    etch_st_close(&f);
    raw = rt_get_file(rt_path("e.safetensors"), &n);
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
    rt_put_file(rt_path("ref.safetensors"), f, n);
    etch_st_file st;
    assert_int_equal(etch_st_read(rt_path("ref.safetensors"), &st, rt_err, sizeof rt_err), 0);
    const void *p;
    assert_int_equal(etch_st_expect(&st, "ref", "a", ETCH_F32, 1, (int64_t[]){2}, &p, rt_err, sizeof rt_err), 0);
    assert_true(((const float *)p)[1] == -2.0f);
    assert_int_equal(etch_st_expect(&st, "ref", "b", ETCH_U8, 1, (int64_t[]){3}, &p, rt_err, sizeof rt_err), 0);
    assert_int_equal(((const uint8_t *)p)[2], 9);
    etch_st_close(&st);

    /* our writer emits the same bytes */
    etch_array arrs[2] = {{.dtype = ETCH_U8, .rank = 1, .dim = {3}, .data = data + 8},
                          {.dtype = ETCH_F32, .rank = 1, .dim = {2}, .data = fv}};
    const char *names[] = {"b", "a"};
    const char *meta[] = {"format", "np"};
    assert_int_equal(etch_st_write(rt_path("ours.safetensors"), 2, names, arrs, 1, meta, rt_err, sizeof rt_err), 0);
    size_t m;
    unsigned char *ours = rt_get_file(rt_path("ours.safetensors"), &m);
    assert_int_equal(m, n);
    assert_memory_equal(ours, f, n);
    free(ours);

    /* other writers: whitespace, escapes, key order, extra keys, metadata anywhere */
    const char *loose = " { \"b\" : { \"shape\" : [ 3 ] , \"data_offsets\" : [ 8 , 11 ], \"dtype\" : \"U8\" } ,\n"
                        "\"\\u00e9\\ud83d\\ude00\\/\" : {\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":[1,{\"y\":null}]},"
                        "\"__metadata__\":{\"k\":\"v\\\"\",\"n\":[true,false,-1.5e3]} }\n\t";
    n = make_st(f, loose, data, 11);
    rt_put_file(rt_path("loose.safetensors"), f, n);
    assert_int_equal(etch_st_read(rt_path("loose.safetensors"), &st, rt_err, sizeof rt_err), 0);
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
    const char *path = rt_path("w.safetensors");
    assert_int_equal(etch_st_write(path, 3, names, a, 0, NULL, rt_err, sizeof rt_err), 0);
    for (int i = 0; i < 3; i++) etch_array_free(&a[i]);
    etch_st_file f;
    assert_int_equal(etch_st_read(path, &f, rt_err, sizeof rt_err), 0);
    const void *data = NULL;
    assert_int_equal(etch_st_expect(&f, "w.safetensors", "fc1.weight", ETCH_F32, 2, (int64_t[]){128, 784}, &data,
                                    rt_err, sizeof rt_err),
                     -1);
    assert_string_equal(rt_err, "w.safetensors: tensor 'fc1.weight' is f32[128,700], expected f32[128,784]");
    assert_null(data);
    assert_int_equal(
        etch_st_expect(&f, "w.safetensors", "fc1.bias", ETCH_F64, 1, (int64_t[]){128}, NULL, rt_err, sizeof rt_err), -1);
    assert_string_equal(rt_err, "w.safetensors: tensor 'fc1.bias' is f32[128], expected f64[128]");
    assert_int_equal(etch_st_expect(&f, "w.safetensors", "step", ETCH_I64, 1, (int64_t[]){1}, NULL, rt_err, sizeof rt_err),
                     -1);
    assert_string_equal(rt_err, "w.safetensors: tensor 'step' is i64[], expected i64[1]");
    assert_int_equal(
        etch_st_expect(&f, "w.safetensors", "fc2.weight", ETCH_F32, 1, (int64_t[]){1}, NULL, rt_err, sizeof rt_err), -1);
    assert_string_equal(rt_err, "w.safetensors: missing tensor 'fc2.weight' (file has: step, fc1.bias, fc1.weight)");
    assert_int_equal(etch_st_expect(&f, "w.safetensors", "step", ETCH_I64, 0, NULL, &data, rt_err, sizeof rt_err), 0);
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
    assert_int_equal(etch_st_write(path, 12, many, z, 0, NULL, rt_err, sizeof rt_err), 0);
    for (int i = 0; i < 12; i++) etch_array_free(&z[i]);
    assert_int_equal(etch_st_read(path, &f, rt_err, sizeof rt_err), 0);
    assert_int_equal(etch_st_expect(&f, "m.st", "x", ETCH_U8, 0, NULL, NULL, rt_err, sizeof rt_err), -1);
    assert_string_equal(rt_err, "m.st: missing tensor 'x' (file has: t00, t01, t02, t03, t04, t05, t06, t07 and 4 more)");
    etch_st_close(&f);
    etch_st_file empty = {0};
    assert_int_equal(etch_st_expect(&empty, "e.st", "x", ETCH_U8, 0, NULL, NULL, rt_err, sizeof rt_err), -1);
    assert_string_equal(rt_err, "e.st: missing tensor 'x' (file has no tensors)");
}

static void expect_st_error(const char *header, size_t nd, const char *want) {
    unsigned char f[8192], data[64] = {0};
    size_t n = make_st(f, header, data, nd);
    const char *path = rt_path("bad.safetensors");
    rt_put_file(path, f, n);
    etch_st_file st;
    assert_int_equal(etch_st_read(path, &st, rt_err, sizeof rt_err), -1);
    assert_int_equal(st.n, 0);
    assert_null(st.buffer);
    char full[512];
    snprintf(full, sizeof full, "%s: %s", path, want);
    if (strncmp(rt_err, full, strlen(full))) fail_msg("got \"%s\"\nwant \"%s...\"", rt_err, full);
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
    rt_put_file(rt_path("h.safetensors"), f, 10);
    etch_st_file st;
    assert_int_equal(etch_st_read(rt_path("h.safetensors"), &st, rt_err, sizeof rt_err), -1);
    assert_non_null(strstr(rt_err, "truncated: header length says 18446744073709551615 bytes, file has 2 after it"));
    unsigned char b[] = {0, 1, 2};
    size_t n = make_st(f, "{\"m\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[0,3]}}", b, 3);
    rt_put_file(rt_path("h.safetensors"), f, n);
    assert_int_equal(etch_st_read(rt_path("h.safetensors"), &st, rt_err, sizeof rt_err), -1);
    assert_non_null(strstr(rt_err, "tensor 'm': bool element 2 has value 2, expected 0 or 1"));

    etch_array a = {.dtype = ETCH_U8, .rank = 1, .dim = {1}, .data = b};
    etch_array two[2] = {a, a};
    const char *dup[] = {"x", "x"}, *meta_name[] = {"__metadata__"};
    assert_int_equal(etch_st_write(rt_path("w.st"), 2, dup, two, 0, NULL, rt_err, sizeof rt_err), -1);
    assert_non_null(strstr(rt_err, "tensor name 'x' is given twice"));
    assert_int_equal(etch_st_write(rt_path("w.st"), 1, meta_name, two, 0, NULL, rt_err, sizeof rt_err), -1);
    two[0].dim[0] = -1;
    assert_int_equal(etch_st_write(rt_path("w.st"), 1, dup, two, 0, NULL, rt_err, sizeof rt_err), -1);
    assert_non_null(strstr(rt_err, "tensor 'x' is not a valid array"));
    assert_int_equal(etch_st_write(rt_path("nodir/w.st"), 1, dup, &a, 0, NULL, rt_err, sizeof rt_err), -1);
    assert_non_null(strstr(rt_err, "cannot create"));
    assert_int_equal(access(rt_path("w.st"), F_OK), -1); /* nothing was left behind */
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
    rt_put_file(rt_path("mis.safetensors"), f, n);
    etch_st_file st;
    assert_int_equal(etch_st_read(rt_path("mis.safetensors"), &st, rt_err, sizeof rt_err), 0);
    const void *p;
    assert_int_equal(etch_st_expect(&st, "mis", "d", ETCH_F64, 1, (int64_t[]){2}, &p, rt_err, sizeof rt_err), 0);
    assert_int_equal((uintptr_t)p % 8, 0);
    assert_memory_equal(p, dv, 16);
    assert_int_equal(etch_st_expect(&st, "mis", "u", ETCH_U8, 1, (int64_t[]){3}, &p, rt_err, sizeof rt_err), 0);
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
    assert_int_equal(etch_st_write(rt_path("s.safetensors"), 3, names, a, 1, meta, rt_err, sizeof rt_err), 0);
    for (int i = 0; i < 3; i++) etch_array_free(&a[i]);
    size_t n;
    unsigned char *b = rt_get_file(rt_path("s.safetensors"), &n);
    rt_check_truncations(b, n, rt_read_st, NULL);
    rt_seed(2);
    rt_fuzz_file(b, n, 4000, rt_read_st, NULL);
    free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_st_roundtrip),
        cmocka_unit_test(test_st_reference_layout),
        cmocka_unit_test(test_st_expect_messages),
        cmocka_unit_test(test_st_errors),
        cmocka_unit_test(test_st_misaligned),
        cmocka_unit_test(test_st_truncated_and_fuzzed),
    };
    return cmocka_run_group_tests(tests, rt_setup, rt_teardown);
}
