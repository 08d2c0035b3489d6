/* params.c: parameter initialization, loading and saving (see params.h). */
#include "ir/params.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/etch_rt.h"

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

static void fill_init(Tensor *t, const ParamInit *in, uint64_t key) {
    int64_t n = tensor_numel(t);
    uint32_t r[4];
    for (int64_t i = 0; i < n; i++) {
        double v = 0;
        switch (in->kind) {
        case INIT_ZEROS: v = 0; break;
        case INIT_ONES: v = 1; break;
        case INIT_CONST: v = in->a; break;
        case INIT_UNIFORM:
            etch_philox4x32(key, 0, (uint64_t)i, r);
            v = in->a + (in->b - in->a) * etch_u01(r[0]);
            break;
        case INIT_NORMAL: { /* Box-Muller on two uniforms; u1 in (0, 1] avoids log(0) */
            etch_philox4x32(key, 0, (uint64_t)i, r);
            double u1 = 1.0 - etch_u01(r[0]), u2 = etch_u01(r[1]);
            v = in->a + in->b * sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
            break;
        }
        }
        tensor_set(t, i, v);
    }
}

Tensor **params_init(const Graph *g, uint64_t seed) {
    Tensor **out = calloc((size_t)g->n_params + 1, sizeof *out);
    if (!out) abort();
    for (int i = 0; i < g->n_params; i++) {
        const Node *n = &g->nodes[g->params[i]];
        out[i] = tensor_new(n->dtype, n->shape);
        fill_init(out[i], &n->attr.init, fnv1a64(n->attr.name) ^ (seed * 0x9E3779B97F4A7C15ULL));
    }
    return out;
}

static const etch_dtype rt_of[DT_COUNT] = {[DT_F32] = ETCH_F32, [DT_F64] = ETCH_F64, [DT_I32] = ETCH_I32,
                                           [DT_I64] = ETCH_I64, [DT_BOOL] = ETCH_BOOL, [DT_I8] = ETCH_I8, [DT_U8] = ETCH_U8};

etch_dtype ir_dtype_to_rt(DType t) { return rt_of[t]; }

DType ir_dtype_from_rt(etch_dtype t) {
    for (int i = 0; i < DT_COUNT; i++)
        if (rt_of[i] == t) return (DType)i;
    return DT_COUNT;
}

/* g's params from the open safetensors file f (path names it in messages).
 * seed NULL: every param must be in f (params_load, params_from_tensors);
 * else params f lacks keep params_init(*seed)'s values and are flagged in
 * missing (params_load_partial). */
static Tensor **from_file(const Graph *g, const etch_st_file *f, const char *path, const uint64_t *seed, bool *missing,
                          Diag *d) {
    char err[1024];
    Tensor **out = seed ? params_init(g, *seed) : calloc((size_t)g->n_params + 1, sizeof *out);
    if (!out) abort();
    int found = 0;
    for (int i = 0; i < g->n_params; i++) {
        const Node *n = &g->nodes[g->params[i]];
        const void *src;
        if (seed && (missing[i] = !etch_st_find(f, n->attr.name))) continue;
        if (etch_st_expect(f, path, n->attr.name, ir_dtype_to_rt(n->dtype), n->shape.rank, n->shape.dim, &src, err,
                           sizeof err)) {
            diag_error_plain(d, "%s", err);
            params_free(g, out);
            return NULL;
        }
        if (!out[i]) out[i] = tensor_new(n->dtype, n->shape);
        memcpy(out[i]->data, src, tensor_nbytes(out[i]));
        found++;
    }
    if (found == 0 && g->n_params > 0) {
        diag_error_plain(d, "%s: none of the model's tensors is in the file (the model's are named like '%s')", path,
                         g->nodes[g->params[0]].attr.name);
        params_free(g, out);
        return NULL;
    }
    return out;
}

Tensor **params_from_tensors(const Graph *g, const etch_st_file *f, const char *path, Diag *d) {
    return from_file(g, f, path, NULL, NULL, d);
}

static Tensor **load_file(const Graph *g, const char *path, const uint64_t *seed, bool *missing, Diag *d) {
    etch_st_file f;
    char err[1024];
    if (etch_st_read(path, &f, err, sizeof err)) {
        diag_error_plain(d, "%s", err);
        return NULL;
    }
    Tensor **out = from_file(g, &f, path, seed, missing, d);
    etch_st_close(&f);
    return out;
}

Tensor **params_load(const Graph *g, const char *path, Diag *d) { return load_file(g, path, NULL, NULL, d); }

Tensor **params_load_partial(const Graph *g, const char *path, uint64_t seed, bool *missing, Diag *d) {
    return load_file(g, path, &seed, missing, d);
}

bool params_save(const Graph *g, Tensor *const *values, const char *path, Diag *d) {
    const char **names = calloc((size_t)g->n_params + 1, sizeof *names);
    etch_array *arrays = calloc((size_t)g->n_params + 1, sizeof *arrays);
    if (!names || !arrays) abort();
    for (int i = 0; i < g->n_params; i++) {
        const Node *n = &g->nodes[g->params[i]];
        names[i] = n->attr.name;
        arrays[i] = (etch_array){.dtype = ir_dtype_to_rt(n->dtype), .rank = n->shape.rank, .data = values[i]->data};
        memcpy(arrays[i].dim, n->shape.dim, sizeof n->shape.dim);
    }
    char err[1024];
    const char *meta[] = {"format", "pt"};
    int rc = etch_st_write(path, g->n_params, names, arrays, 1, meta, err, sizeof err);
    free(names);
    free(arrays);
    if (rc) return diag_error_plain(d, "%s", err);
    return true;
}

void params_free(const Graph *g, Tensor **values) {
    if (!values) return;
    for (int i = 0; i < g->n_params; i++) tensor_free(values[i]);
    free(values);
}
