/* builtins_layers.c: the builtins sequence models need, mapped onto the layer
 * ops (ir/ops/layers.c, gather.c, random.c) and composites of primitives:
 *
 *   erf, gelu                          activations (gelu: PyTorch's exact erf form)
 *   narrow, slice, split, chunk        slices along one dim (split/chunk return tuples)
 *   cat / concat, pad                  joining and constant padding
 *   embedding                          row lookup in a table (gather_rows)
 *   causal_mask, masked_fill           attention masks
 *   dropout, batch_norm                builtins_norm.c (training-mode behaviour)
 *   rand, randn, randint               builtins_random.c
 *
 * The table is separate from builtins.c's so the two can grow independently;
 * builtins.c forwards names it does not know here (layer_builtin_*). Dims
 * follow PyTorch: negative dims count from the end. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "frontend/builtins_layers.h"

/* ---- helpers shared with builtins_norm.c ---- */

const char *lb_fname(Elab *e, const LayerBuiltin *b) { return arena_printf(e->arena, "%s()", b->name); }

const char *lb_type(Elab *e, int id) {
    char buf[96];
    const Node *n = &e->graph->nodes[id];
    return arena_strdup(e->arena, type_format(buf, sizeof buf, n->dtype, &n->shape));
}

int lb_op(Elab *e, OpKind op, const int *ins, int n, const NodeAttrs *at, SrcLoc loc) {
    for (int i = 0; i < n; i++)
        if (ins[i] < 0) return -1;
    Value v;
    return add_op(e, op, ins, n, at, loc, &v) ? v.id : -1;
}

int lb_bin(Elab *e, OpKind op, int a, int b, SrcLoc loc) { return lb_op(e, op, (int[]){a, b}, 2, NULL, loc); }

int lb_const(Elab *e, double v, DType t, SrcLoc loc) {
    NodeAttrs a = {.value = v, .dtype = t};
    return lb_op(e, OP_CONST, NULL, 0, &a, loc);
}

int lb_reshape(Elab *e, int x, Shape s, SrcLoc loc) {
    if (x < 0) return -1;
    if (shape_equal(&e->graph->nodes[x].shape, &s)) return x;
    NodeAttrs a = {.shape = s};
    return lb_op(e, OP_RESHAPE, &x, 1, &a, loc);
}

static bool result(int id, SrcLoc loc, Value *out) {
    if (id < 0) return false;
    *out = (Value){.kind = V_TENSOR, .id = id, .loc = loc};
    return true;
}

static const Shape *shape_of(Elab *e, int id) { return &e->graph->nodes[id].shape; }

/* A PyTorch-style dim of node id, normalized to 0..rank-1 (fn names the call). */
static bool lb_dim(Elab *e, const char *fn, SrcLoc loc, int id, const Value *v, int *out) {
    int64_t d;
    if (!value_int(e, v, arena_printf(e->arena, "dim of %s", fn), &d)) return false;
    int rank = shape_of(e, id)->rank;
    if (d < -rank || d >= rank) {
        if (rank == 0)
            return diag_error(e->diag, loc, "dim %lld is out of range for %s of %s (rank 0 has no dims)", (long long)d,
                              fn, lb_type(e, id));
        return diag_error(e->diag, loc, "dim %lld is out of range for %s of %s (rank %d; valid dims are %d to %d)",
                          (long long)d, fn, lb_type(e, id), rank, -rank, rank - 1);
    }
    *out = (int)(d < 0 ? d + rank : d);
    return true;
}

/* The dim argument in slot k, 0 when not given. */
static bool dim_arg(Elab *e, const LayerBuiltin *b, SrcLoc loc, int x, Value *args, bool *given, int k, int *dim) {
    Value zero = value_num(0, true, loc);
    return lb_dim(e, lb_fname(e, b), loc, x, given[k] ? &args[k] : &zero, dim);
}

static bool need_float(Elab *e, const LayerBuiltin *b, const Value *v, int *x) {
    if (!need_tensor(e, v, lb_fname(e, b), x)) return false;
    if (!dtype_is_float(e->graph->nodes[*x].dtype))
        return diag_error(e->diag, v->loc, "%s needs a floating-point tensor, got %s (cast it first)", lb_fname(e, b),
                          lb_type(e, *x));
    return true;
}

/* ---- activations ---- */

static bool lb_erf(Elab *e, const LayerBuiltin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    (void)given;
    if (args[0].kind == V_NUM) {
        *out = value_num(erf(args[0].num), false, loc);
        return true;
    }
    int x;
    return need_float(e, b, &args[0], &x) && result(lb_op(e, OP_ERF, &x, 1, NULL, loc), loc, out);
}

/* gelu(x) = x * 0.5 * (1 + erf(x / sqrt(2))), PyTorch's default (approximate='none') */
static bool lb_gelu(Elab *e, const LayerBuiltin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    (void)given;
    const double rsqrt2 = 0.70710678118654752440;
    if (args[0].kind == V_NUM) {
        double x = args[0].num;
        *out = value_num(x * 0.5 * (1 + erf(x * rsqrt2)), false, loc);
        return true;
    }
    int x;
    if (!need_float(e, b, &args[0], &x)) return false;
    DType t = e->graph->nodes[x].dtype;
    int er = lb_op(e, OP_ERF, (int[]){lb_bin(e, OP_MUL, x, lb_const(e, rsqrt2, t, loc), loc)}, 1, NULL, loc);
    int half = lb_bin(e, OP_MUL, x, lb_const(e, 0.5, t, loc), loc);
    return result(lb_bin(e, OP_MUL, half, lb_bin(e, OP_ADD, lb_const(e, 1, t, loc), er, loc), loc), loc, out);
}

/* ---- slicing ---- */

/* [start, start + len) of dim `dim`; x itself when that is all of it. */
static int slice_of(Elab *e, int x, int dim, int64_t start, int64_t len, SrcLoc loc) {
    if (start == 0 && len == shape_of(e, x)->dim[dim]) return x;
    NodeAttrs a = {.axis = dim, .start = start, .length = len};
    return lb_op(e, OP_SLICE, &x, 1, &a, loc);
}

static bool lb_narrow(Elab *e, const LayerBuiltin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    (void)given;
    int x, dim;
    int64_t start, length;
    if (!need_tensor(e, &args[0], lb_fname(e, b), &x) || !lb_dim(e, lb_fname(e, b), loc, x, &args[1], &dim) ||
        !value_int(e, &args[2], "start of narrow()", &start) || !value_int(e, &args[3], "length of narrow()", &length))
        return false;
    int64_t size = shape_of(e, x)->dim[dim];
    if (start < -size || start >= size)
        return diag_error(e->diag, args[2].loc, "start %lld of narrow() is out of range for dim %d of %s (size %lld)",
                          (long long)start, dim, lb_type(e, x), (long long)size);
    if (start < 0) start += size;
    if (length < 1) return diag_error(e->diag, args[3].loc, "length of narrow() must be positive, got %lld", (long long)length);
    if (length > size - start)
        return diag_error(e->diag, loc, "narrow() of %s: start %lld + length %lld exceeds the size %lld of dim %d",
                          lb_type(e, x), (long long)start, (long long)length, (long long)size, dim);
    return result(slice_of(e, x, dim, start, length, loc), loc, out);
}

/* slice(x, dim, start, end=size): Python's x[..., start:end] along dim, negative indices from the end. */
static bool lb_slice(Elab *e, const LayerBuiltin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    int x, dim;
    int64_t start, end;
    if (!need_tensor(e, &args[0], lb_fname(e, b), &x) || !lb_dim(e, lb_fname(e, b), loc, x, &args[1], &dim) ||
        !value_int(e, &args[2], "start of slice()", &start))
        return false;
    int64_t size = shape_of(e, x)->dim[dim];
    end = size;
    if (given[3] && !value_int(e, &args[3], "end of slice()", &end)) return false;
    int64_t s = start < 0 ? start + size : start, t = end < 0 ? end + size : end;
    if (s < 0 || t > size || s >= t)
        return diag_error(e->diag, loc,
                          "slice() [%lld:%lld] of dim %d of %s (size %lld) is empty or out of range", (long long)start,
                          (long long)end, dim, lb_type(e, x), (long long)size);
    return result(slice_of(e, x, dim, s, t - s, loc), loc, out);
}

/* The pieces as a tuple (one piece: the tensor itself). */
static bool tuple_of(Elab *e, const int *ids, int n, SrcLoc loc, Value *out) {
    if (n == 1) return result(ids[0], loc, out);
    Value *items = arena_alloc(e->arena, sizeof(Value) * (size_t)n);
    for (int i = 0; i < n; i++) items[i] = (Value){.kind = V_TENSOR, .id = ids[i], .loc = loc};
    *out = (Value){.kind = V_TUPLE, .items = items, .n_items = n, .loc = loc};
    return true;
}

enum { LB_MAX_PIECES = 1024 };

/* Consecutive slices of the given sizes along dim (they add up to its size). */
static bool split_into(Elab *e, int x, int dim, const int64_t *sizes, int n, SrcLoc loc, Value *out) {
    int *ids = arena_alloc(e->arena, sizeof(int) * (size_t)n);
    int64_t start = 0;
    for (int i = 0; i < n; i++) {
        if ((ids[i] = slice_of(e, x, dim, start, sizes[i], loc)) < 0) return false;
        start += sizes[i];
    }
    return tuple_of(e, ids, n, loc, out);
}

/* Pieces of `each` elements (the last one smaller when it does not divide). */
static bool split_even(Elab *e, const char *fn, int x, int dim, int64_t each, SrcLoc loc, Value *out) {
    int64_t size = shape_of(e, x)->dim[dim], n = (size + each - 1) / each;
    if (n > LB_MAX_PIECES)
        return diag_error(e->diag, loc, "%s of %s would make %lld pieces; at most %d are supported", fn, lb_type(e, x),
                          (long long)n, LB_MAX_PIECES);
    int64_t *sizes = arena_alloc(e->arena, sizeof(int64_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) sizes[i] = i + 1 < n ? each : size - each * (n - 1);
    return split_into(e, x, dim, sizes, (int)n, loc, out);
}

/* split(x, split_size_or_sections, dim=0): torch.split */
static bool lb_split(Elab *e, const LayerBuiltin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    int x, dim;
    if (!need_tensor(e, &args[0], lb_fname(e, b), &x) || !dim_arg(e, b, loc, x, args, given, 2, &dim)) return false;
    int64_t size = shape_of(e, x)->dim[dim];
    const Value *s = &args[1];
    if (s->kind != V_LIST) {
        int64_t each;
        if (!value_int(e, s, "split_size of split()", &each)) return false;
        if (each < 1) return diag_error(e->diag, s->loc, "split_size of split() must be positive, got %lld", (long long)each);
        return split_even(e, "split()", x, dim, each, loc, out);
    }
    if (s->n_items == 0 || s->n_items > LB_MAX_PIECES)
        return diag_error(e->diag, s->loc, "split() takes 1 to %d sizes, got %d", LB_MAX_PIECES, s->n_items);
    int64_t *sizes = arena_alloc(e->arena, sizeof(int64_t) * (size_t)s->n_items), sum = 0;
    for (int i = 0; i < s->n_items; i++) {
        if (!value_int(e, &s->items[i], "a size in split()", &sizes[i])) return false;
        if (sizes[i] < 1 || sizes[i] > size)
            return diag_error(e->diag, s->items[i].loc, "size %lld in split() must be between 1 and %lld (dim %d of %s)",
                              (long long)sizes[i], (long long)size, dim, lb_type(e, x));
        sum += sizes[i];
    }
    if (sum != size)
        return diag_error(e->diag, s->loc, "split() sizes add up to %lld, but dim %d of %s has size %lld", (long long)sum,
                          dim, lb_type(e, x), (long long)size);
    return split_into(e, x, dim, sizes, s->n_items, loc, out);
}

/* chunk(x, chunks, dim=0): torch.chunk (pieces of ceil(size / chunks), so possibly fewer) */
static bool lb_chunk(Elab *e, const LayerBuiltin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    int x, dim;
    int64_t chunks;
    if (!need_tensor(e, &args[0], lb_fname(e, b), &x) || !dim_arg(e, b, loc, x, args, given, 2, &dim) ||
        !value_int(e, &args[1], "chunks of chunk()", &chunks))
        return false;
    if (chunks < 1) return diag_error(e->diag, args[1].loc, "chunks of chunk() must be positive, got %lld", (long long)chunks);
    int64_t size = shape_of(e, x)->dim[dim];
    return split_even(e, "chunk()", x, dim, (size + chunks - 1) / chunks, loc, out);
}

/* cat(a, b, ..., dim=0), also cat(split(...), dim=1): binary concats chained left to right.
 * Positional arguments are tensors or tuples of tensors; a trailing number is the dim. */
static bool lb_cat(Elab *e, const char *name, SrcLoc loc, const CallArgs *ca, Value *out) {
    const char *fn = arena_printf(e->arena, "%s()", name);
    const Value *dimv = NULL;
    int n_pos = 0, n = 0, cap = 8;
    int *pieces = arena_alloc(e->arena, sizeof(int) * (size_t)cap);
    while (n_pos < ca->n && !ca->names[n_pos]) n_pos++;
    for (int k = n_pos; k < ca->n; k++) {
        if (strcmp(ca->names[k], "dim") != 0)
            return diag_error(e->diag, ca->locs[k], "unknown keyword argument '%s' for %s (it takes tensors and dim)",
                              ca->names[k], fn);
        if (dimv) return diag_error(e->diag, ca->locs[k], "%s got multiple values for argument 'dim'", fn);
        dimv = &ca->vals[k];
    }
    for (int k = 0; k < n_pos; k++) {
        const Value *v = &ca->vals[k];
        if (v->kind == V_NUM && k > 0 && k == n_pos - 1 && !dimv) {
            dimv = v;
            continue;
        }
        int count = v->kind == V_TUPLE ? v->n_items : 1;
        for (int i = 0; i < count; i++) {
            const Value *item = v->kind == V_TUPLE ? &v->items[i] : v;
            if (item->kind != V_TENSOR)
                return diag_error(e->diag, item->loc, "%s joins tensors, got %s", fn, value_describe(e, item));
            if (n == cap) {
                int *grown = arena_alloc(e->arena, sizeof(int) * (size_t)(cap *= 2));
                memcpy(grown, pieces, sizeof(int) * (size_t)n);
                pieces = grown;
            }
            pieces[n++] = item->id;
        }
    }
    if (n == 0) return diag_error(e->diag, loc, "%s needs at least one tensor", fn);
    Value zero = value_num(0, true, loc);
    NodeAttrs a = {0};
    if (!lb_dim(e, fn, loc, pieces[0], dimv ? dimv : &zero, &a.axis)) return false;
    int acc = pieces[0];
    for (int i = 1; i < n && acc >= 0; i++) acc = lb_op(e, OP_CONCAT, (int[]){acc, pieces[i]}, 2, &a, loc);
    return result(acc, loc, out);
}

/* pad(x, pad, value=0): torch.nn.functional.pad, constant mode: pad lists
 * (before, after) pairs starting from the last dim. */
static bool lb_pad(Elab *e, const LayerBuiltin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    int x;
    if (!need_tensor(e, &args[0], lb_fname(e, b), &x)) return false;
    const Value *p = &args[1];
    int rank = shape_of(e, x)->rank;
    if (p->kind != V_LIST)
        return diag_error(e->diag, p->loc, "pad of pad() must be a list of integers like [1, 1] (last dim first), got %s",
                          value_describe(e, p));
    if (p->n_items % 2 || p->n_items > 2 * rank)
        return diag_error(e->diag, p->loc,
                          "pad() of %s takes (before, after) pairs for up to %d dims, last dim first; got %d numbers",
                          lb_type(e, x), rank, p->n_items);
    NodeAttrs a = {0};
    bool any = false;
    for (int i = 0; i < p->n_items; i++) {
        int64_t v;
        if (!value_int(e, &p->items[i], "a pad amount", &v)) return false;
        if (v < 0 || v > ((int64_t)1 << 40))
            return diag_error(e->diag, p->items[i].loc,
                              "pad amounts must be between 0 and 2^40, got %lld (to crop, use narrow or slice)",
                              (long long)v);
        int dim = rank - 1 - i / 2;
        if (i % 2) a.pad_after[dim] = v;
        else a.pad_before[dim] = v;
        any |= v != 0;
    }
    DType t = e->graph->nodes[x].dtype;
    if (given[2]) {
        if (!value_number(e, &args[2], "value of pad()", &a.value)) return false;
        if (!dtype_is_float(t) && (a.value != trunc(a.value) || (t == DT_BOOL && a.value != 0 && a.value != 1)))
            return diag_error(e->diag, args[2].loc, "value %g of pad() cannot fill %s", a.value, lb_type(e, x));
    }
    if (!any) return result(x, loc, out);
    return result(lb_op(e, OP_PAD, &x, 1, &a, loc), loc, out);
}

/* ---- embedding and masks ---- */

/* embedding(input, weight): rows of weight [num_embeddings, embedding_dim] picked
 * by integer ids of any shape; out-of-range ids give zero rows (ir/ops/gather.c). */
static bool lb_embedding(Elab *e, const LayerBuiltin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    (void)given;
    int ids, w;
    if (!need_tensor(e, &args[0], lb_fname(e, b), &ids) || !need_tensor(e, &args[1], lb_fname(e, b), &w)) return false;
    DType it = e->graph->nodes[ids].dtype;
    if (it != DT_I32 && it != DT_I64)
        return diag_error(e->diag, args[0].loc, "embedding() indices must be an integer tensor (i32 or i64), got %s",
                          lb_type(e, ids));
    if (shape_of(e, w)->rank != 2 || !dtype_is_float(e->graph->nodes[w].dtype))
        return diag_error(e->diag, args[1].loc,
                          "embedding() weight must be a float table [num_embeddings, embedding_dim], got %s",
                          lb_type(e, w));
    return result(lb_op(e, OP_GATHER_ROWS, (int[]){w, ids}, 2, NULL, loc), loc, out);
}

/* causal_mask(size): bool [size, size], true where key j <= query i (the
 * positions a query may attend to), like torch.ones(T, T).tril().bool(). */
static bool lb_causal_mask(Elab *e, const LayerBuiltin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    (void)b, (void)given;
    int64_t T;
    if (!value_int(e, &args[0], "size of causal_mask()", &T)) return false;
    if (T < 1 || T > 2147483647)
        return diag_error(e->diag, args[0].loc, "size of causal_mask() must be between 1 and 2^31 - 1, got %lld",
                          (long long)T);
    NodeAttrs rows = {.dtype = DT_I64, .shape = {2, {T, 1}}, .axis = 0};
    NodeAttrs cols = {.dtype = DT_I64, .shape = {2, {1, T}}, .axis = 1};
    int i = lb_op(e, OP_IOTA, NULL, 0, &rows, loc), j = lb_op(e, OP_IOTA, NULL, 0, &cols, loc);
    return result(lb_bin(e, OP_GE, i, j, loc), loc, out);
}

/* masked_fill(x, mask, value): value where mask is true, x elsewhere (mask broadcasts to x). */
static bool lb_masked_fill(Elab *e, const LayerBuiltin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    (void)given;
    int x, m, v;
    if (!need_tensor(e, &args[0], lb_fname(e, b), &x) || !need_tensor(e, &args[1], lb_fname(e, b), &m)) return false;
    if (e->graph->nodes[m].dtype != DT_BOOL)
        return diag_error(e->diag, args[1].loc, "mask of masked_fill() must be a bool tensor, got %s", lb_type(e, m));
    if (!value_tensor(e, &args[2], e->graph->nodes[x].dtype, lb_fname(e, b), &v)) return false;
    int y = lb_op(e, OP_WHERE, (int[]){m, v, x}, 3, NULL, loc);
    if (y >= 0 && !shape_equal(shape_of(e, y), shape_of(e, x)))
        return diag_error(e->diag, loc, "masked_fill() mask %s does not broadcast to %s", lb_type(e, m), lb_type(e, x));
    return result(y, loc, out);
}

/* full(shape, value, dtype = f32) and zeros(shape, dtype = f32): a constant
 * tensor, like torch.full and torch.zeros (a loop's initial state). */
static bool lb_full(Elab *e, const LayerBuiltin *b, SrcLoc loc, Value *args, bool *given, Value *out) {
    bool is_full = strcmp(b->name, "full") == 0;
    const Value *sv = &args[0], *dv = &args[is_full ? 2 : 1];
    NodeAttrs a = {.dtype = DT_F32};
    if (given[is_full ? 2 : 1]) {
        if (dv->kind != V_DTYPE)
            return diag_error(e->diag, dv->loc, "dtype of %s must be a dtype like f32, got %s", lb_fname(e, b),
                              value_describe(e, dv));
        a.dtype = dv->dtype;
    }
    if (is_full && !value_number(e, &args[1], arena_printf(e->arena, "value of %s", lb_fname(e, b)), &a.value))
        return false;
    if (!lb_shape_arg(e, b, sv, &a.shape)) return false;
    return result(lb_op(e, OP_CONST, NULL, 0, &a, loc), loc, out);
}

bool lb_shape_arg(Elab *e, const LayerBuiltin *b, const Value *sv, Shape *out) {
    if (sv->kind == V_TENSOR)
        return diag_error(e->diag, sv->loc,
                          "shape of %s must be a compile-time list of integers like [64, 128], got %s (x.shape is "
                          "the shape of a tensor x)",
                          lb_fname(e, b), value_describe(e, sv));
    if (sv->kind != V_LIST || sv->n_items > ETCH_MAX_RANK)
        return diag_error(e->diag, sv->loc, "shape of %s must be a list of at most %d integers like [64, 128], got %s",
                          lb_fname(e, b), ETCH_MAX_RANK, value_describe(e, sv));
    out->rank = sv->n_items;
    for (int i = 0; i < sv->n_items; i++) {
        int64_t d;
        if (!value_int(e, &sv->items[i], arena_printf(e->arena, "a dimension in %s", lb_fname(e, b)), &d)) return false;
        if (d < 1 || d > 2147483647)
            return diag_error(e->diag, sv->items[i].loc, "dimension %lld in %s must be between 1 and 2^31 - 1",
                              (long long)d, lb_fname(e, b));
        out->dim[i] = d;
    }
    return true;
}

/* ---- the table ---- */

static const LayerBuiltin layer_builtins[] = {
    {"erf", {"x"}, 1, 1, lb_erf},
    {"gelu", {"x"}, 1, 1, lb_gelu},
    {"narrow", {"x", "dim", "start", "length"}, 4, 4, lb_narrow},
    {"slice", {"x", "dim", "start", "end"}, 4, 3, lb_slice},
    {"split", {"x", "split_size_or_sections", "dim"}, 3, 2, lb_split},
    {"chunk", {"x", "chunks", "dim"}, 3, 2, lb_chunk},
    {"cat", {"tensors", "dim"}, 0, 0, NULL}, /* variadic: lb_cat */
    {"concat", {"tensors", "dim"}, 0, 0, NULL},
    {"pad", {"x", "pad", "value"}, 3, 2, lb_pad},
    {"embedding", {"input", "weight"}, 2, 2, lb_embedding},
    {"causal_mask", {"size"}, 1, 1, lb_causal_mask},
    {"full", {"shape", "value", "dtype"}, 3, 2, lb_full},
    {"zeros", {"shape", "dtype"}, 2, 1, lb_full},
    {"masked_fill", {"x", "mask", "value"}, 3, 3, lb_masked_fill},
    {"dropout", {"x", "p"}, 2, 1, lb_dropout},
    {"rand", {"shape", "dtype", "seed"}, 3, 1, lb_rand},
    {"randn", {"shape", "dtype", "seed"}, 3, 1, lb_rand},
    {"randint", {"low", "high", "shape", "dtype", "seed"}, 5, 2, lb_randint},
    {"batch_norm",
     {"x", "running_mean", "running_var", "weight", "bias", "momentum", "eps", "num_batches_tracked", "ndim"},
     9, 3, lb_batch_norm},
};
enum { N_LAYER_BUILTINS = sizeof layer_builtins / sizeof layer_builtins[0] };
_Static_assert((int)N_LAYER_BUILTINS <= (int)LAYER_BUILTINS_MAX, "raise LAYER_BUILTINS_MAX in elab.h");

static const LayerBuiltin *layer_find(const char *name) {
    for (int i = 0; i < N_LAYER_BUILTINS; i++)
        if (strcmp(layer_builtins[i].name, name) == 0) return &layer_builtins[i];
    return NULL;
}

bool layer_builtin_exists(const char *name) { return layer_find(name) != NULL; }

const char *const *layer_builtin_names(void) {
    static const char *names[N_LAYER_BUILTINS + 1];
    for (int i = 0; i < N_LAYER_BUILTINS; i++) names[i] = layer_builtins[i].name;
    names[N_LAYER_BUILTINS] = NULL;
    return names;
}

bool layer_builtin_call(Elab *e, const char *name, SrcLoc loc, const CallArgs *ca, Value *out, bool *found) {
    const LayerBuiltin *b = layer_find(name);
    *found = b != NULL;
    if (!b) return false;
    if (!b->impl) return lb_cat(e, b->name, loc, ca, out);
    Value slots[LB_MAX_PARAMS];
    bool given[LB_MAX_PARAMS];
    if (!bind_args(e, loc, lb_fname(e, b), b->params, b->n_params, b->n_required, ca, slots, given)) return false;
    for (int i = 0; i < b->n_params; i++)
        if (given[i] && slots[i].kind == V_TUPLE)
            return diag_error(e->diag, slots[i].loc, "argument '%s' of %s is %s; unpack it with 'let a, b = ...' first",
                              b->params[i], lb_fname(e, b), value_describe(e, &slots[i]));
    return b->impl(e, b, loc, slots, given, out);
}
