/* rt/prelude.c: the top of the joined etch_rt.c: the file's header comment,
 * the includes, and the helpers every part uses (fail: format an error into
 * the caller's buffer; append: bounded formatting; byte order and little-/
 * big-endian loads). The parts under runtime/rt/ are not separate translation
 * units: scripts/embed.cmake joins them, in the order CMakeLists.txt lists,
 * into one etch_rt.c (so every helper stays static and emitted programs get
 * one file), dropping each part's first comment, like this one. */

/* etch_rt.c: the etch runtime, one self-contained C11 file (libc + libm only).
 *
 * The compiler embeds this text and copies it next to every emitted model, so
 * the model builds with nothing but a C compiler; the compiler links the same
 * code to read and write the same files. It implements etch_rt.h:
 *   - dtype and array helpers, 64-byte aligned allocation;
 *   - .npy read (format 1.0/2.0/3.0) and write (1.0, byte-identical to numpy);
 *   - .npz write (numpy.savez's uncompressed zip of .npy members);
 *   - safetensors read (zero-copy, one buffer; metadata strings kept) and write
 *     (the reference layout);
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
