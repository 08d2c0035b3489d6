/* rt_files.c: the runtime unit tests' shared helpers (rt_files.h). */
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

char rt_dir[64];
char rt_err[1024];
unsigned rt_sink;

const char *rt_path(const char *name) { /* path of name in the temp folder (8 rotating buffers) */
    static char bufs[8][512];
    static int k;
    char *b = bufs[k++ % 8];
    size_t dl = strlen(rt_dir), nl = strlen(name);
    assert_true(dl + 1 + nl < sizeof bufs[0]);
    memcpy(b, rt_dir, dl);
    b[dl] = '/';
    memcpy(b + dl + 1, name, nl + 1);
    return b;
}

void rt_put_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

unsigned char *rt_get_file(const char *path, size_t *n) {
    unsigned char *b;
    assert_int_equal(etch_read_file(path, &b, n, rt_err, sizeof rt_err), 0);
    return b;
}

int rt_have_gzip(void) { return system("gzip --version >/dev/null 2>&1") == 0; }

static uint32_t rng_state;
void rt_seed(uint32_t seed) { rng_state = seed; }
uint32_t rt_rnd(void) { /* deterministic, via the runtime's own Philox */
    uint32_t o[4];
    etch_philox4x32(0x5eed, 0, rng_state++, o);
    return o[0];
}

/* Writes prefixes of a valid file of every length below n; each must be rejected with a message naming path. */
void rt_check_truncations(const unsigned char *b, size_t n, int (*reader)(const char *, void *), void *obj) {
    const char *path = rt_path("trunc.bin");
    for (size_t i = 0; i < n; i++) {
        rt_put_file(path, b, i);
        rt_err[0] = 0;
        if (reader(path, obj) != -1) fail_msg("prefix of %zu/%zu bytes was accepted", i, n);
        assert_true(strncmp(rt_err, path, strlen(path)) == 0);
    }
}

/* Random byte mutations of a valid file: any outcome but a crash is fine. */
void rt_fuzz_file(const unsigned char *b, size_t n, int iters, int (*reader)(const char *, void *), void *obj) {
    const char *path = rt_path("fuzz.bin");
    unsigned char *m = malloc(n);
    for (int it = 0; it < iters; it++) {
        memcpy(m, b, n);
        int flips = 1 + (int)(rt_rnd() % 4);
        for (int k = 0; k < flips; k++) {
            uint32_t r = rt_rnd();
            size_t at = (r >> 8) % n;
            m[at] = (r & 3) == 0 ? (unsigned char)rt_rnd() : (r & 3) == 1 ? 0xff : (r & 3) == 2 ? m[at] ^ 1 : '9';
        }
        size_t len = rt_rnd() % 8 == 0 ? rt_rnd() % (n + 1) : n;
        rt_put_file(path, m, len);
        rt_err[0] = 0;
        if (reader(path, obj) != 0) assert_true(rt_err[0] != 0);
    }
    free(m);
}

void rt_fill(etch_array *a, int seed) {
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

int rt_read_npy(const char *path, void *obj) {
    etch_array a;
    int rc = etch_npy_read(path, &a, rt_err, sizeof rt_err);
    (void)obj;
    etch_array_free(&a);
    return rc;
}
int rt_read_st(const char *path, void *obj) {
    etch_st_file f;
    int rc = etch_st_read(path, &f, rt_err, sizeof rt_err);
    (void)obj;
    if (rc == 0) /* touch every tensor so ASan sees any bad pointer */
        for (int i = 0; i < f.n; i++) {
            for (size_t k = 0; k < etch_array_nbytes(&f.tensors[i].array); k++)
                rt_sink += ((unsigned char *)f.tensors[i].array.data)[k];
        }
    etch_st_close(&f);
    return rc;
}
int rt_read_idx(const char *path, void *obj) {
    etch_array a;
    int rc = etch_idx_read(path, &a, rt_err, sizeof rt_err);
    (void)obj;
    etch_array_free(&a);
    return rc;
}

int rt_setup(void **state) {
    (void)state;
    strcpy(rt_dir, "/tmp/etch_rt_XXXXXX");
    return mkdtemp(rt_dir) ? 0 : -1;
}

int rt_teardown(void **state) {
    (void)state;
    DIR *d = opendir(rt_dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) remove(rt_path(e->d_name));
    if (d) closedir(d);
    return rmdir(rt_dir);
}