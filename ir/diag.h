/* diag.h: user-facing diagnostics with source locations.
 *
 * Every IR node and AST node carries a SrcLoc. A user error (bad syntax, unknown
 * name, shape mismatch, bad weights file) is reported through a Diag as
 *     FILE:LINE:COL: error: MESSAGE
 *         <the source line>
 *         ^
 * and returned up the call chain, so tests can inspect the text and the driver
 * can exit 1. Internal invariants are assert()s instead. Source text is looked
 * up in a small registry filled by whoever reads a file (diag_add_source). */
#ifndef ETCH_DIAG_H
#define ETCH_DIAG_H

#include <stdbool.h>
#include <stdio.h>

typedef struct SrcLoc {
    const char *file; /* NULL for "no location" (e.g. command-line input) */
    int line, col;    /* 1-based; 0 when unknown */
} SrcLoc;

typedef struct Diag {
    int n_errors;
    FILE *echo;     /* where messages are also printed as they arrive (stderr), or NULL */
    char *text;     /* all messages so far, NUL-terminated (heap, owned) */
    size_t len, cap;
    int hold;       /* > 0 while errors are held back (diag_hold) */
    SrcLoc held_loc; /* the first error held, when held_msg != NULL */
    char *held_msg; /* its message (heap, owned) */
} Diag;

void diag_init(Diag *d, FILE *echo);
void diag_dispose(Diag *d);

/* Registers the text of a file so errors can quote the offending line. The
 * text must outlive every diagnostic that mentions the file. */
void diag_add_source(const char *file, const char *text);
const char *diag_find_source(const char *file);

/* Reports an error at loc (prints "file:line:col: error: ..." plus the source
 * line and a caret when the source is known). Returns false so callers can
 * write `return diag_error(...)`. */
bool diag_error(Diag *d, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A "note:" line attached to the previous error (e.g. where a construct began). */
void diag_note(Diag *d, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* An error with no source location: "etch: error: MESSAGE" (files, flags). */
bool diag_error_plain(Diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Holds errors back: until the matching diag_release, the first error's
 * location and message are kept instead of reported, and notes are dropped,
 * so the caller can report it where the user can act on it (the front end
 * moves errors raised inside the standard library to the user's call). Holds
 * nest. */
void diag_hold(Diag *d);
/* Ends one hold. When it was the last and an error was held, returns true with
 * its location and message (heap; the caller frees it) and counts nothing:
 * the caller reports it, usually with diag_error. */
bool diag_release(Diag *d, SrcLoc *loc, char **msg);

#endif
