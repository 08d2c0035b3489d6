/* entry_timing.h: what the harnesses that call compiled entries and time them
 * (bench/entry_ab.c, bench/cuda_entry.c) share: the monotonic clock and the
 * comparison qsort needs to take the median of the times. */
#ifndef ETCH_BENCH_ENTRY_TIMING_H
#define ETCH_BENCH_ENTRY_TIMING_H

#include <time.h>

typedef void (*EntryFn)(const void *const *inputs, void *const *outputs);
typedef int (*LoadFn)(const char *path, int state_required, char *err, size_t errlen);

static inline double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static inline int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
