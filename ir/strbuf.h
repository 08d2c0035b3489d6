/* strbuf.h: a growable string for building text (emitted C, printed IR). */
#ifndef ETCH_STRBUF_H
#define ETCH_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct StrBuf {
    char *s;     /* NUL-terminated, heap */
    size_t len, cap;
} StrBuf;

void sb_printf(StrBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_vprintf(StrBuf *b, const char *fmt, va_list ap);
void sb_puts(StrBuf *b, const char *s);
void sb_free(StrBuf *b);
/* Takes the string out (caller frees); the buffer is left empty. */
char *sb_take(StrBuf *b);

#endif
