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
    free(d->held_msg);
    d->text = d->held_msg = NULL;
    d->len = d->cap = 0;
    d->hold = 0;
}

void diag_hold(Diag *d) {
    if (d) d->hold++;
}

bool diag_release(Diag *d, SrcLoc *loc, char **msg) {
    if (!d || --d->hold > 0 || !d->held_msg) return false;
    *loc = d->held_loc;
    *msg = d->held_msg;
    d->held_msg = NULL;
    return true;
}

/* While held: keeps the first error (the cause; later ones are consequences). */
static void diag_keep(Diag *d, SrcLoc loc, const char *fmt, va_list ap) {
    if (d->held_msg) return;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) n = 0;
    d->held_msg = malloc((size_t)n + 1);
    if (!d->held_msg) abort();
    vsnprintf(d->held_msg, (size_t)n + 1, fmt, ap);
    d->held_loc = loc;
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

/* Finds line `line` (1-based) of text: its start and length, without the line
 * end. A line ends at "\n", "\r\n" or a lone "\r" (old Mac files), as the DSL
 * lexer counts them. NULL when the text has fewer lines. */
static const char *diag_find_line(const char *text, int line, size_t *len) {
    const char *p = text;
    for (int l = 1; l < line; l++) {
        p += strcspn(p, "\r\n");
        if (!*p) return NULL;
        if (*p == '\r' && p[1] == '\n') p++;
        p++;
    }
    *len = strcspn(p, "\r\n");
    return p;
}

/* How much of a long line is quoted: a window of DIAG_QUOTE_WIDTH bytes with
 * the column about a third of the way in, "..." marking each cut. Messages stay
 * short and linear in size however long the line (a minified or generated
 * source can be one 50 MB line). */
enum { DIAG_QUOTE_WIDTH = 120, DIAG_QUOTE_BEFORE = 40 };

/* Prints the source line of loc and a caret under its column. Tabs in the line
 * are kept in the caret's indentation so the caret lines up in a terminal. */
static void diag_quote_line(Diag *d, SrcLoc loc) {
    const char *text = diag_find_source(loc.file);
    if (!text || loc.line <= 0) return;
    size_t n;
    const char *p = diag_find_line(text, loc.line, &n);
    if (!p) return;
    size_t col = loc.col > 0 ? (size_t)loc.col - 1 : 0; /* 0-based; may be n (just past the end) */
    if (col > n) col = n;
    size_t from = 0, to = n;
    if (n > DIAG_QUOTE_WIDTH) {
        from = col > DIAG_QUOTE_BEFORE ? col - DIAG_QUOTE_BEFORE : 0;
        if (from + DIAG_QUOTE_WIDTH > n) from = n - DIAG_QUOTE_WIDTH;
        to = from + DIAG_QUOTE_WIDTH;
    }
    const char *cut_l = from > 0 ? "..." : "", *cut_r = to < n ? "..." : "";
    diag_append(d, "%s%.*s%s\n", cut_l, (int)(to - from), p + from, cut_r);
    char caret[DIAG_QUOTE_WIDTH + 8];
    size_t k = strlen(cut_l);
    memset(caret, ' ', k);
    for (size_t i = from; i < col; i++) caret[k++] = p[i] == '\t' ? '\t' : ' ';
    caret[k] = '\0';
    diag_append(d, "%s^\n", caret);
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

static bool diag_verror(Diag *d, SrcLoc loc, const char *fmt, va_list ap) {
    if (d && d->hold > 0) {
        diag_keep(d, loc, fmt, ap);
        return false;
    }
    diag_vreport(d, "error", loc, fmt, ap);
    if (d) d->n_errors++;
    return false;
}

bool diag_error(Diag *d, SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_verror(d, loc, fmt, ap);
    va_end(ap);
    return false;
}

void diag_note(Diag *d, SrcLoc loc, const char *fmt, ...) {
    if (d && d->hold > 0) return;
    va_list ap;
    va_start(ap, fmt);
    diag_vreport(d, "note", loc, fmt, ap);
    va_end(ap);
}

bool diag_error_plain(Diag *d, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_verror(d, (SrcLoc){0}, fmt, ap);
    va_end(ap);
    return false;
}
