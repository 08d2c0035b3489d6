/* cmd_import.c: `etch import MODEL.onnx -o MODEL.etch [--weights-out W]
 * [-D NAME=V]`: an ONNX model as DSL source plus its initializers as a
 * safetensors file (default: -o's path with .safetensors). The text is
 * compiled, and its params checked against the weights, before anything is
 * written, so what is written compiles. Both files appear or neither: the
 * weights go to a temporary name, the text is written atomically, then the
 * weights are renamed into place; a failure removes what was written. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frontend/onnx/onnx.h"
#include "ir/params.h"
#include "tool/commands.h"
#include "tool/pipeline.h"

/* -o's path with ".etch" (if any) replaced by ".safetensors". */
static char *default_weights_path(Arena *a, const char *out) {
    size_t n = strlen(out);
    if (n > 5 && !strcmp(out + n - 5, ".etch")) n -= 5;
    return arena_printf(a, "%.*s.safetensors", (int)n, out);
}

static bool write_outputs(const OnnxModel *m, const char *out, const char *wpath, Arena *a, Diag *d) {
    int n = m->weights.n;
    const char **names = arena_alloc(a, sizeof *names * (size_t)(n + 1));
    etch_array *arrays = arena_alloc(a, sizeof *arrays * (size_t)(n + 1));
    for (int i = 0; i < n; i++) names[i] = m->weights.tensors[i].name, arrays[i] = m->weights.tensors[i].array;
    char err[1024];
    const char *meta[] = {"format", "pt"};
    char *wtmp = arena_printf(a, "%s.partial.%ld", wpath, (long)getpid());
    if (etch_st_write(wtmp, n, names, arrays, 1, meta, err, sizeof err)) return diag_error_plain(d, "%s", err);
    if (etch_write_file_atomic(out, m->source, strlen(m->source), err, sizeof err)) {
        remove(wtmp);
        return diag_error_plain(d, "%s", err);
    }
    if (rename(wtmp, wpath)) {
        int e = errno;
        remove(wtmp);
        remove(out);
        return diag_error_plain(d, "cannot write %s: %s", wpath, strerror(e));
    }
    return true;
}

int cmd_import(const Options *o) {
    if (!o->out) return usage_error("%s", "import needs -o MODEL.etch");
    if (!onnx_is_model_path(o->file)) return usage_error("import reads an .onnx model, got '%s'", o->file);
    Arena *a = arena_new();
    const char *wpath = o->weights_out ? o->weights_out : default_weights_path(a, o->out);
    if (!strcmp(wpath, o->out) || !strcmp(wpath, o->file) || !strcmp(o->out, o->file)) {
        arena_free(a);
        return usage_error("%s", "the model, -o and --weights-out must be three different files");
    }
    Diag d;
    diag_init(&d, stderr);
    /* the header comment names the weights as seen from the .etch file's folder */
    const char *wslash = strrchr(wpath, '/'), *oslash = strrchr(o->out, '/');
    size_t wdir = wslash ? (size_t)(wslash - wpath) : 0, odir = oslash ? (size_t)(oslash - o->out) : 0;
    const char *note = wdir == odir && !strncmp(wpath, o->out, wdir) ? wpath + (wslash ? wdir + 1 : 0) : wpath;
    OnnxModel m;
    bool ok = writable_output("-o", o->out, a, &d) &&
              writable_output(o->weights_out ? "--weights-out" : "the weights file", wpath, a, &d) &&
              onnx_import(a, o->file, o->defines, o->n_defines, note, &m, &d);
    Program *p = ok ? frontend_compile_source(a, o->out, m.source, NULL, 0, &d) : NULL;
    Tensor **params = p ? params_from_tensors(p->forward, &m.weights, o->file, &d) : NULL;
    ok = params && write_outputs(&m, o->out, wpath, a, &d);
    if (p) params_free(p->forward, params);
    diag_dispose(&d);
    arena_free(a);
    return ok ? 0 : 1;
}
