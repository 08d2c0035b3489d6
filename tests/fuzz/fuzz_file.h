/* fuzz_file.h: for the libFuzzer harnesses of the runtime's file readers
 * (tests/fuzz/fuzz_<reader>.c). The readers take a path, so each input is
 * written to one anonymous in-memory file (memfd) whose /proc/self/fd path
 * the harness passes on: no disk traffic, nothing left behind. fuzz_touch
 * reads every byte a reader returned, so AddressSanitizer sees a buffer that
 * is shorter than the array it claims to hold. Include it first (it asks
 * for memfd_create with _GNU_SOURCE). */
#ifndef ETCH_FUZZ_FILE_H
#define ETCH_FUZZ_FILE_H

#define _GNU_SOURCE /* memfd_create */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* The path of a file now holding data[0..n); aborts when it cannot be made. */
static inline const char *fuzz_file(const uint8_t *data, size_t n) {
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("etch-fuzz", 0);
        if (fd < 0) abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0) abort();
    for (size_t done = 0; done < n;) {
        ssize_t w = pwrite(fd, data + done, n - done, (off_t)done);
        if (w <= 0) abort();
        done += (size_t)w;
    }
    return path;
}

/* Reads n bytes at p (a sum the compiler cannot drop). */
static inline void fuzz_touch(const void *p, size_t n) {
    const volatile unsigned char *b = p;
    unsigned s = 0;
    for (size_t i = 0; i < n; i++) s += b[i];
    __asm__ volatile("" : : "r"(s)); /* the sum is used */
}

#endif
