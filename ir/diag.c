/* diag.c: formatting and collecting diagnostics (see diag.h). */
#include "ir/diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct SourceEntry {
    const char *file, *text;
} SourceEntry;

/* A few files per compilation (the model, the standard library): a tiny table. */
enum { DIAG_MAX_SOURCES = 64 };
static SourceEntry g_sources[DIAG_MAX_SOURCES];
static int g_n_sources;

void diag_add_source(const char *file, const char *text) {
    for (int i = 0; i < g_n_sources; i++)
        if (strcmp(g_sources[i].file, file) == 0) {
            g_sources[i].text = text;
            return;
        }
    /* the name is copied: callers' strings may live in arenas freed before a later lookup */
    if (g_n_sources < DIAG_MAX_SOURCES) g_sources[g_n_sources++] = (SourceEntry){strdup(file), text};
}

const char *diag_find_source(const char *file) {
    if (!file) return NULL;
    for (int i = g_n_sources - 1; i >= 0; i--)
        if (strcmp(g_sources[i].file, file) == 0) return g_sources[i].text;
    return NULL;
}

void diag_init(Diag *d, FILE *echo) {
    memset(d, 0, sizeof *d);
    d->echo = echo;
}

void diag_dispose(Diag *d) {
    free(d->text);
    d->text = NULL;
    d->len = d->cap = 0;
}

static void diag_append(Diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void diag_vappend(Diag *d, const char *fmt, va_list ap) {
    if (!d) { /* no collector: an internal caller that expects no error; still say it */
        vfprintf(stderr, fmt, ap);
        return;
    }
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return;
    if (d->len + (size_t)n + 1 > d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 256;
        while (cap < d->len + (size_t)n + 1) cap *= 2;
        char *t = realloc(d->text, cap);
        if (!t) abort();
        d->text = t;
        d->cap = cap;
    }
    vsnprintf(d->text + d->len, (size_t)n + 1, fmt, ap);
    if (d->echo) fputs(d->text + d->len, d->echo);
    d->len += (size_t)n;
}
static void diag_append(Diag *d, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_vappend(d, fmt, ap);
    va_end(ap);
}

/* Prints the source line of loc and a caret under its column. Tabs in the line
 * are kept in the caret's indentation so the caret lines up in a terminal. */
static void diag_quote_line(Diag *d, SrcLoc loc) {
    const char *text = diag_find_source(loc.file);
    if (!text || loc.line <= 0) return;
    const char *p = text;
    for (int l = 1; l < loc.line && *p; p++)
        if (*p == '\n') l++;
    if (!*p && loc.line > 1 && p[-1] != '\n') return;
    const char *end = strchr(p, '\n');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n > 0 && p[n - 1] == '\r') n--;
    diag_append(d, "%.*s\n", (int)n, p);
    int col = loc.col > 0 ? loc.col : 1;
    for (int i = 0; i < col - 1 && (size_t)i < n; i++) diag_append(d, "%c", p[i] == '\t' ? '\t' : ' ');
    diag_append(d, "^\n");
}

static void diag_vreport(Diag *d, const char *kind, SrcLoc loc, const char *fmt, va_list ap) {
    if (loc.file && loc.line > 0)
        diag_append(d, "%s:%d:%d: %s: ", loc.file, loc.line, loc.col, kind);
    else if (loc.file)
        diag_append(d, "%s: %s: ", loc.file, kind);
    else
        diag_append(d, "etch: %s: ", kind);
    diag_vappend(d, fmt, ap);
    diag_append(d, "\n");
    diag_quote_line(d, loc);
}

bool diag_error(Diag *d, SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_vreport(d, "error", loc, fmt, ap);
    va_end(ap);
    if (d) d->n_errors++;
    return false;
}

void diag_note(Diag *d, SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_vreport(d, "note", loc, fmt, ap);
    va_end(ap);
}

bool diag_error_plain(Diag *d, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_vreport(d, "error", (SrcLoc){0}, fmt, ap);
    va_end(ap);
    if (d) d->n_errors++;
    return false;
}
