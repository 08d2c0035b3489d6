/* rt_files.h: helpers of the runtime's unit tests (test_runtime.c,
 * test_safetensors.c, test_archives.c): a mkdtemp folder per test group,
 * files in it, a deterministic byte stream, and the two hostile-input
 * drivers every reader goes through (every truncation; random mutations). */
#ifndef ETCH_TESTS_RT_FILES_H
#define ETCH_TESTS_RT_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/etch_rt.h"

extern char rt_dir[64];   /* the group's temp folder */
extern char rt_err[1024]; /* the last reader's message */
extern unsigned rt_sink;  /* bytes summed so ASan sees every read */

/* The path of name in the temp folder (8 rotating buffers). */
const char *rt_path(const char *name);
void rt_put_file(const char *path, const void *p, size_t n);
/* The whole file through the runtime's reader (malloc'd); fails the test on error. */
unsigned char *rt_get_file(const char *path, size_t *n);
int rt_have_gzip(void);
/* Deterministic 32-bit values, from the runtime's own Philox; rt_seed restarts them. */
uint32_t rt_rnd(void);
void rt_seed(uint32_t seed);
/* Writes prefixes of a valid file of every length below n; each must be rejected with a message naming path. */
void rt_check_truncations(const unsigned char *b, size_t n, int (*reader)(const char *, void *), void *obj);
/* Random byte mutations of a valid file: any outcome but a crash is fine. */
void rt_fuzz_file(const unsigned char *b, size_t n, int iters, int (*reader)(const char *, void *), void *obj);
/* A deterministic pattern of seed in a's dtype, edge values included. */
void rt_fill(etch_array *a, int seed);
/* Readers in the form the two drivers take: 0, or -1 with a message in rt_err. */
int rt_read_npy(const char *path, void *obj);
int rt_read_st(const char *path, void *obj);
int rt_read_idx(const char *path, void *obj);
/* cmocka group setup and teardown: make and remove the temp folder. */
int rt_setup(void **state);
int rt_teardown(void **state);

#endif
