/* arena.h: bump allocator that owns all IR memory.
 *
 * Graphs, nodes' operand lists, interned strings and AST nodes are carved out of
 * large blocks and released together with arena_free(); nothing frees a single
 * object, so passes can share pointers freely without ownership bookkeeping. */
#ifndef ETCH_ARENA_H
#define ETCH_ARENA_H

#include <stddef.h>

typedef struct ArenaBlock ArenaBlock;

typedef struct Arena {
    ArenaBlock *head;   /* newest block; older blocks chain behind it */
    size_t used_total;  /* bytes handed out, for statistics */
} Arena;

Arena *arena_new(void);
void arena_free(Arena *a);
/* Zero-initialised, 16-byte aligned; aborts on out-of-memory (an internal failure). */
void *arena_alloc(Arena *a, size_t size);
/* Room for one more element in a growing array of n elements of elem_size
 * bytes (capacity *cap): arr itself, or a copy twice as large (at least
 * first elements) in a. Arrays in an arena are never freed, only outgrown. */
void *arena_grow(Arena *a, void *arr, size_t elem_size, int n, int *cap, int first);
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
