/* emit.c: small helpers for writing C text with indentation and literals. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/c/emit.h"

void cemit_line(CEmitter *e, const char *fmt, ...) {
    for (int i = 0; i < e->indent; i++) sb_puts(e->out, "    ");
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(e->out, fmt, ap);
    va_end(ap);
    sb_puts(e->out, "\n");
}

void cemit_for(CEmitter *e, char *var, size_t var_size, int64_t n) {
    snprintf(var, var_size, "i%d", e->n_loops++);
    cemit_line(e, "for (int64_t %s = 0; %s < %lld; %s++) {", var, var, (long long)n, var);
    e->indent++;
}

void cemit_close(CEmitter *e) {
    e->indent--;
    cemit_line(e, "}");
}

void cemit_literal(char *buf, size_t n, double v, DType t) {
    if (t == DT_F32) v = (double)(float)v; /* a finite double past FLT_MAX is an f32 infinity, as in the eager executor */
    if (isnan(v)) {
        snprintf(buf, n, "NAN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, n, v > 0 ? "INFINITY" : "-INFINITY");
        return;
    }
    switch (t) {
    case DT_F32: snprintf(buf, n, "%af", v); break; /* hex floats are exact */
    case DT_F64: snprintf(buf, n, "%a", v); break;
    case DT_I64: snprintf(buf, n, "INT64_C(%lld)", (long long)v); break;
    case DT_I8: snprintf(buf, n, "%d", v <= -128 ? -128 : v >= 127 ? 127 : (int)v); break; /* saturates, as tensor_set */
    case DT_U8: snprintf(buf, n, "%d", v <= 0 ? 0 : v >= 255 ? 255 : (int)v); break;
    default: snprintf(buf, n, "%lld", (long long)v); break;
    }
}

bool cemit_define_once(CEmitter *e, const char *name) {
    for (int i = 0; i < e->n_defined; i++)
        if (!strcmp(e->defined[i], name)) return false;
    if (e->n_defined == e->cap_defined) {
        e->cap_defined = e->cap_defined ? 2 * e->cap_defined : 16;
        e->defined = realloc(e->defined, sizeof(char *) * (size_t)e->cap_defined);
        if (!e->defined) abort();
    }
    e->defined[e->n_defined++] = strdup(name);
    return true;
}

void cemit_scratch_support(CEmitter *e) {
    if (cemit_define_once(e, CEMIT_SCRATCH_NOW))
        sb_puts(e->preamble, "/* The scratch of the context whose call runs on this thread (set by each entry,\n"
                             " * inherited by GEMM worker threads). */\n"
                             "static _Thread_local unsigned char *" CEMIT_SCRATCH_NOW ";\n\n");
}
