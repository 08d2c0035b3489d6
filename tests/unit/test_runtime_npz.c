/* test_runtime_npz.c: the runtime's .npz writer (several outputs of a model in
 * one file numpy.load opens) and its safetensors metadata reader (the training
 * program keeps its seed in a checkpoint's "__metadata__").
 *
 * The archive is taken apart here by the zip format's own rules, independently
 * of the writer: every member's local header, CRC-32 (a bitwise reference),
 * sizes and name, the central directory pointing back at each, the end record;
 * each member is byte for byte what etch_npy_write writes for the same array.
 * (tests/e2e/test_multi_output.sh opens a real one with Python's zipfile and,
 * when installed, numpy.load.) */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/etch_rt.h"
#include "unit/test_support.h"

static char g_dir[64], g_err[1024];

static const char *P(const char *name) { /* path of name in the temp folder (4 rotating buffers) */
    static char bufs[4][512];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", g_dir, name);
    return b;
}

static unsigned char *get_file(const char *path, size_t *n) {
    unsigned char *b;
    if (etch_read_file(path, &b, n, g_err, sizeof g_err)) fail_msg("%s", g_err);
    return b;
}

static uint32_t le16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const unsigned char *p) { return le16(p) | le16(p + 2) << 16; }

static int setup(void **state) {
    (void)state;
    strcpy(g_dir, "/tmp/etch_npz_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    const char *files[] = {"a.npz", "m0.npy", "m1.npy", "m2.npy", "bad.npz", "m.safetensors", "nometa.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) remove(P(files[i]));
    return rmdir(g_dir);
}

static void test_npz_layout(void **state) {
    (void)state;
    enum { N = 3 };
    etch_array a[N];
    assert_int_equal(etch_array_alloc(&a[0], ETCH_F32, 2, (int64_t[]){2, 3}), 0);
    assert_int_equal(etch_array_alloc(&a[1], ETCH_I64, 1, (int64_t[]){4}), 0);
    assert_int_equal(etch_array_alloc(&a[2], ETCH_U8, 0, NULL), 0);
    for (int k = 0; k < 6; k++) ((float *)a[0].data)[k] = (float)k - 2.5f;
    for (int k = 0; k < 4; k++) ((int64_t *)a[1].data)[k] = -k * 1000000007LL;
    ((uint8_t *)a[2].data)[0] = 200;
    const char *names[N] = {"out0", "logits", "x"};
    assert_int_equal(etch_npz_write(P("a.npz"), N, names, a, g_err, sizeof g_err), 0);
    size_t n, off = 0;
    unsigned char *z = get_file(P("a.npz"), &n);
    uint32_t offsets[N];
    for (int i = 0; i < N; i++) { /* local header, then the member: the .npy file of the array */
        char want_name[32], npy[16];
        snprintf(want_name, sizeof want_name, "%s.npy", names[i]);
        snprintf(npy, sizeof npy, "m%d.npy", i);
        assert_int_equal(etch_npy_write(P(npy), &a[i], g_err, sizeof g_err), 0);
        size_t mn;
        unsigned char *m = get_file(P(npy), &mn);
        size_t name_len = strlen(want_name);
        assert_true(off + 30 + name_len + mn <= n);
        const unsigned char *h = z + off;
        assert_int_equal(le32(h), 0x04034b50u);
        assert_int_equal(le16(h + 8), 0);          /* stored */
        assert_int_equal(le16(h + 6), 0);          /* no data descriptor */
        assert_int_equal(le32(h + 14), ts_crc32(m, mn));
        assert_int_equal(le32(h + 18), mn);        /* compressed size */
        assert_int_equal(le32(h + 22), mn);        /* uncompressed size */
        assert_int_equal(le16(h + 26), name_len);
        assert_int_equal(le16(h + 28), 0);         /* no extra field */
        assert_memory_equal(h + 30, want_name, name_len);
        assert_memory_equal(h + 30 + name_len, m, mn);
        offsets[i] = (uint32_t)off;
        off += 30 + name_len + mn;
        free(m);
    }
    size_t cd = off;
    assert_true(n >= 22);
    const unsigned char *e = z + n - 22; /* the end record */
    assert_int_equal(le32(e), 0x06054b50u);
    assert_int_equal(le16(e + 8), N);
    assert_int_equal(le16(e + 10), N);
    assert_int_equal(le32(e + 16), cd);
    assert_int_equal(le32(e + 12), n - 22 - cd);
    for (int i = 0; i < N; i++) { /* the central directory: one entry per member, pointing back at it */
        const unsigned char *c = z + off, *h = z + offsets[i];
        size_t name_len = le16(c + 28);
        assert_int_equal(le32(c), 0x02014b50u);
        assert_memory_equal(c + 6, h + 4, 26); /* version .. name length: as in the local header */
        assert_int_equal(le32(c + 42), offsets[i]);
        assert_memory_equal(c + 46, h + 30, name_len);
        off += 46 + name_len;
    }
    assert_int_equal(off, n - 22);
    free(z);
    for (int i = 0; i < N; i++) etch_array_free(&a[i]);
}

static void test_npz_errors(void **state) {
    (void)state;
    etch_array a;
    assert_int_equal(etch_array_alloc(&a, ETCH_F32, 1, (int64_t[]){3}), 0);
    const char *slash[] = {"a/b"}, *empty[] = {""};
    assert_int_equal(etch_npz_write(P("bad.npz"), 0, slash, &a, g_err, sizeof g_err), -1);
    assert_int_equal(etch_npz_write(P("bad.npz"), 1, slash, &a, g_err, sizeof g_err), -1);
    assert_non_null(strstr(g_err, "bad.npz: member 0 needs a name of 1 to 250 characters without '/'"));
    assert_int_equal(etch_npz_write(P("bad.npz"), 1, empty, &a, g_err, sizeof g_err), -1);
    etch_array b[2] = {a, {.dtype = ETCH_F32, .rank = 1, .dim = {3}, .data = NULL}}; /* the second has no data */
    const char *names[] = {"ok", "nodata"};
    assert_int_equal(etch_npz_write(P("bad.npz"), 2, names, b, g_err, sizeof g_err), -1);
    assert_non_null(strstr(g_err, "bad.npz: member 'nodata': invalid array"));
    assert_int_equal(access(P("bad.npz"), F_OK), -1); /* nothing left behind, not even the temp file */
    assert_int_equal(etch_npz_write("/nonexistent-dir/x.npz", 1, names, &a, g_err, sizeof g_err), -1);
    assert_non_null(strstr(g_err, "cannot create"));
    etch_array_free(&a);
}

static void test_st_metadata(void **state) {
    (void)state;
    etch_array w;
    assert_int_equal(etch_array_alloc(&w, ETCH_F32, 1, (int64_t[]){2}), 0);
    const char *names[] = {"w"}, *meta[] = {"format", "pt", "seed", "18446744073709551615", "note", "a \"q\"\n"};
    assert_int_equal(etch_st_write(P("m.safetensors"), 1, names, &w, 3, meta, g_err, sizeof g_err), 0);
    etch_st_file f;
    if (etch_st_read(P("m.safetensors"), &f, g_err, sizeof g_err)) fail_msg("%s", g_err);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.n_meta, 3);
    assert_string_equal(etch_st_meta(&f, "seed"), "18446744073709551615");
    assert_string_equal(etch_st_meta(&f, "format"), "pt");
    assert_string_equal(etch_st_meta(&f, "note"), "a \"q\"\n");
    assert_null(etch_st_meta(&f, "w"));
    assert_null(etch_st_meta(&f, NULL));
    assert_null(etch_st_meta(NULL, "seed"));
    etch_st_close(&f);
    assert_int_equal(f.n_meta, 0);

    /* none at all; and other writers' values that are not strings are skipped */
    assert_int_equal(etch_st_write(P("nometa.safetensors"), 1, names, &w, 0, NULL, g_err, sizeof g_err), 0);
    assert_int_equal(etch_st_read(P("nometa.safetensors"), &f, g_err, sizeof g_err), 0);
    assert_int_equal(f.n_meta, 0);
    assert_null(etch_st_meta(&f, "seed"));
    etch_st_close(&f);
    const char hdr[] = "{\"__metadata__\":{\"n\":[1,{\"k\":\"v\"}],\"seed\":\"7\",\"x\":null,\"seed\":\"9\"},"
                       "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}   ";
    unsigned char file[256] = {(unsigned char)(sizeof hdr - 1)};
    memcpy(file + 8, hdr, sizeof hdr - 1);
    FILE *out = fopen(P("m.safetensors"), "wb");
    assert_non_null(out);
    assert_int_equal(fwrite(file, 1, 8 + sizeof hdr - 1 + 8, out), 8 + sizeof hdr - 1 + 8);
    assert_int_equal(fclose(out), 0);
    if (etch_st_read(P("m.safetensors"), &f, g_err, sizeof g_err)) fail_msg("%s", g_err);
    assert_int_equal(f.n_meta, 2);
    assert_string_equal(etch_st_meta(&f, "seed"), "9"); /* the later duplicate wins, as in a JSON reader */
    etch_st_close(&f);
    /* a control character in a metadata string is invalid JSON, as anywhere in the header */
    char *seven = strstr((char *)file + 8, "\"7\"");
    assert_non_null(seven);
    seven[1] = 1;
    out = fopen(P("m.safetensors"), "wb");
    assert_int_equal(fwrite(file, 1, 8 + sizeof hdr - 1 + 8, out), 8 + sizeof hdr - 1 + 8);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(etch_st_read(P("m.safetensors"), &f, g_err, sizeof g_err), -1);
    assert_non_null(strstr(g_err, "invalid JSON header"));
    etch_array_free(&w);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npz_layout),
        cmocka_unit_test(test_npz_errors),
        cmocka_unit_test(test_st_metadata),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
