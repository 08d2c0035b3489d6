/* quantize.c: the quantize pass, post-training int8 quantization of Linear
 * and Conv2d layers (docs/quantization.md). Run only when asked (`--quantize int8
 * --calib STATS`, PassOptions.quant): it needs the parameter values and the
 * calibrated activation ranges, which it finds in its QuantRequest.
 *
 * Each Linear layer (passes/quantize.h: matmul by a weight param, + bias,
 * + relu) whose input has a calibrated range becomes
 *     quantize(x) -> qmatmul(int8 weights per output channel, int32 bias at
 *     s_x * s_w[c], q31 multipliers)
 * and each Conv2d layer (conv2d by a weight param, groups 1, + reshaped
 * bias, + relu) the same with qconv2d; and the layer's float weight and bias params leave the graph, replaced by
 * new params "<weight>.int8", "<bias or weight>.int32", "<weight>.multiplier"
 * and "<weight>.shift" whose values the pass computes. A layer whose result
 * feeds only the next quantized layer (directly, or through unpadded max
 * poolings and reshapes, which then move u8 values) is requantized to u8 at
 * its input's scale (relu fused as the clamp), so no dequantize -> quantize
 * pair is built between them; a layer feeding anything float returns f32
 * straight from the accumulator. Everything else stays float, and the
 * report (QuantRequest.report, `--stats`) names every op that does and why:
 * nothing falls back silently. Bad input is an error naming the tensor: a
 * weight or bias holding NaN or infinity, a layer with no calibrated range
 * or one of another shape, a range for a tensor the model does not have.
 *
 * quant_fake_quantize (quantization-aware training, `etch train --qat`)
 * finds the same layers and ranges and puts fake_quant on each layer's input
 * and weight as the pass will quantize them, leaving the params as they are. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/quant.h"
#include "passes/pass.h"
#include "passes/quantize.h"
#include "passes/rewrite.h"

enum { MAX_LINEARS = 256 };

/* ---- finding Linear layers ---- */

static bool is_f32_param(const Graph *g, int id, int rank) {
    const Node *n = &g->nodes[id];
    return n->op == OP_PARAM && n->dtype == DT_F32 && n->shape.rank == rank;
}

/* The user of id when it has exactly one use, else -1. */
static int only_user(const Graph *g, const int *uses, int id) {
    if (uses[id] != 1) return -1;
    for (int u = id + 1; u < g->n_nodes; u++)
        for (int k = 0; k < g->nodes[u].n_in; k++)
            if (g->nodes[u].in[k] == id) return u;
    return -1;
}

/* The layer's bias add (the other operand, through bias_of, an f32 param
 * [N]) and relu after l->out, each when it is the only use. */
static void match_epilogue(const Graph *g, const int *uses, QuantLinear *l, int64_t n_out,
                           int (*bias_of)(const Graph *, const int *, int)) {
    const Node *mm = &g->nodes[l->mm];
    int add = only_user(g, uses, l->out);
    if (add >= 0 && g->nodes[add].op == OP_ADD && shape_equal(&g->nodes[add].shape, &mm->shape)) {
        const Node *a = &g->nodes[add];
        int v = a->in[0] == l->mm ? a->in[1] : a->in[0], b = bias_of(g, uses, v);
        if (b >= 0 && is_f32_param(g, b, 1) && g->nodes[b].shape.dim[0] == n_out) {
            l->bias = b, l->add = add, l->out = add;
            if (b != v) l->bias_view = v;
        }
    }
    int relu = only_user(g, uses, l->out);
    if (relu >= 0 && g->nodes[relu].op == OP_RELU) l->relu = relu, l->out = relu;
}

static int bias_itself(const Graph *g, const int *uses, int v) { return (void)g, (void)uses, v; }

/* A conv's bias is reshaped to [N, 1, 1] (read by that reshape alone). */
static int bias_reshaped(const Graph *g, const int *uses, int v) {
    const Node *r = &g->nodes[v];
    if (r->op != OP_RESHAPE || uses[v] != 1 || r->shape.rank != 3 || r->shape.dim[1] != 1 || r->shape.dim[2] != 1)
        return -1;
    return r->in[0];
}

static bool match_linear(const Graph *g, const int *uses, int id, QuantLinear *l) {
    const Node *mm = &g->nodes[id];
    *l = (QuantLinear){.mm = id, .weight = -1, .transpose = -1, .bias = -1, .add = -1, .relu = -1, .bias_view = -1,
                       .out = id};
    if (mm->op == OP_CONV2D) {
        if (mm->dtype != DT_F32 || mm->attr.conv.groups != 1 || !is_f32_param(g, mm->in[1], 4)) return false;
        l->x = mm->in[0], l->weight = mm->in[1], l->conv = true;
        match_epilogue(g, uses, l, mm->shape.dim[1], bias_reshaped);
        return true;
    }
    if (mm->op != OP_MATMUL || mm->dtype != DT_F32 || mm->shape.rank != 2 || mm->attr.trans_a) return false;
    const Node *x = &g->nodes[mm->in[0]];
    if (x->shape.rank != 2) return false;
    l->x = mm->in[0];
    int w = mm->in[1];
    if (!mm->attr.trans_b) { /* x @ transpose(W) as the frontend writes it */
        const Node *t = &g->nodes[w];
        if (t->op != OP_TRANSPOSE || t->attr.n_axes != 2 || t->attr.axes[0] != 1) return false;
        l->transpose = w;
        w = t->in[0];
    }
    if (!is_f32_param(g, w, 2)) return false;
    l->weight = w;
    match_epilogue(g, uses, l, mm->shape.dim[1], bias_itself);
    return true;
}

int quant_find_linears(const Graph *g, QuantLinear *out, int max) {
    int *uses = malloc(sizeof(int) * (size_t)(g->n_nodes + 1)), n = 0;
    if (!uses) abort();
    graph_count_uses(g, uses);
    for (int id = 0; id < g->n_nodes && n < max; id++)
        if (match_linear(g, uses, id, &out[n])) n++;
    free(uses);
    return n;
}

void quant_input_name(const Graph *g, const QuantLinear *l, char *buf, size_t n) {
    snprintf(buf, n, "%s:input", g->nodes[l->weight].attr.name);
}

void quant_activation_params(double lo, double hi, double *scale, int32_t *zero_point) {
    lo = fmin(lo, 0), hi = fmax(hi, 0);
    double s = (float)((hi - lo) / 255); /* the scale the f32 operand holds */
    if (!(s > 0) || !isfinite(s)) s = 1;
    double z = rint(-lo / s);
    *scale = s;
    *zero_point = z < 0 ? 0 : z > 255 ? 255 : (int32_t)z;
}

/* ---- the pass ---- */

typedef struct Layer {
    QuantLinear l;
    const QuantRange *in; /* the input's calibrated range */
    int out_user;         /* the quantized layer whose input this one's result is (u8 output), or -1 */
    double sx;            /* input scale */
    int32_t zx;
} Layer;

typedef struct QuantPass {
    const Graph *g;
    QuantRequest *q;
    Diag *d;
    const Target *target;            /* float_conv_max_taps: convolutions kept float */
    Layer layers[MAX_LINEARS];
    int n_layers;
    int *layer_of_mm, *layer_of_out; /* src id -> layer index, -1 */
    bool *absorbed;                  /* src nodes the layers replace (members and dropped params) */
    bool *to_u8;                     /* src poolings and reshapes between two layers, which now move u8 values */
    Tensor **values;                 /* the new graph's params, in order */
    int n_values;
} QuantPass;

static const char *src_where(const Node *n, char *buf, size_t len) {
    if (n->loc.file) snprintf(buf, len, "%s:%d:%d", n->loc.file, n->loc.line, n->loc.col);
    else snprintf(buf, len, "(no location)");
    return buf;
}

static bool check_finite(QuantPass *s, int param) {
    if (!s->q->values) return true; /* quantization-aware training: the weights change as it trains */
    int i = 0;
    while (i < s->g->n_params && s->g->params[i] != param) i++;
    const Tensor *t = s->q->values[i];
    for (int64_t k = 0; k < tensor_numel(t); k++) {
        double v = tensor_get(t, k);
        if (!isfinite(v))
            return diag_error_plain(s->d, "cannot quantize: parameter '%s' holds %s at element %lld",
                                    s->g->nodes[param].attr.name, v != v ? "NaN" : v > 0 ? "inf" : "-inf",
                                    (long long)k);
    }
    return true;
}

static const Tensor *value_of(const QuantPass *s, int param) {
    for (int i = 0; i < s->g->n_params; i++)
        if (s->g->params[i] == param) return s->q->values[i];
    return NULL;
}

static const QuantRange *find_range(const QuantRequest *q, const char *name) {
    for (int i = 0; i < q->n_ranges; i++)
        if (!strcmp(q->ranges[i].name, name)) return &q->ranges[i];
    return NULL;
}

/* Every layer has a range of its input's shape (batch dim aside), every
 * range names a layer's input, and ranges are finite. */
static bool match_ranges(QuantPass *s) {
    const Graph *g = s->g;
    const char *file = s->q->calib_path ? s->q->calib_path : "the calibration file";
    bool ok = true;
    for (int i = 0; i < s->n_layers; i++) {
        Layer *L = &s->layers[i];
        char name[200], want[96], got[96];
        quant_input_name(g, &L->l, name, sizeof name);
        const Node *x = &g->nodes[L->l.x];
        type_format(want, sizeof want, x->dtype, &x->shape);
        L->in = find_range(s->q, name);
        if (!L->in) {
            ok = diag_error_plain(s->d, "%s has no range for '%s' (%s): it was made for another model "
                                  "(run etch calibrate on this one)", file, name, want) && ok;
            continue;
        }
        bool same = L->in->shape.rank == x->shape.rank;
        for (int k = 1; same && k < x->shape.rank; k++) same = L->in->shape.dim[k] == x->shape.dim[k];
        if (!same) {
            type_format(got, sizeof got, DT_F32, &L->in->shape);
            ok = diag_error_plain(s->d, "%s: '%s' was calibrated as %s, the model has %s (a file for another "
                                  "model?)", file, name, got, want) && ok;
        }
        if (!isfinite(L->in->lo) || !isfinite(L->in->hi) || L->in->lo > L->in->hi)
            ok = diag_error_plain(s->d, "%s: the range of '%s' is [%g, %g]: not a finite interval", file, name,
                                  L->in->lo, L->in->hi) && ok;
        ok = check_finite(s, L->l.weight) && (L->l.bias < 0 || check_finite(s, L->l.bias)) && ok;
    }
    for (int r = 0; r < s->q->n_ranges; r++) {
        bool known = false;
        for (int i = 0; i < s->n_layers && !known; i++) known = s->layers[i].in == &s->q->ranges[r];
        if (!known)
            ok = diag_error_plain(s->d, "%s has a range for '%s', which this model does not have (a file for "
                                  "another model?)", file, s->q->ranges[r].name) && ok;
    }
    return ok;
}

/* The taps per output of conv n when target t computes it directly in float
 * (ungrouped, not a plain 1x1, at most t->float_conv_max_taps), else 0. The
 * same rule as the C backend's (codegen/c/ops/conv.c, conv_is_direct). */
static int64_t direct_conv_taps(const Graph *g, const Target *t, const Node *n) {
    if (!t || t->float_conv_max_taps <= 0 || n->op != OP_CONV2D || n->attr.conv.groups != 1) return 0;
    const Shape *w = &g->nodes[n->in[1]].shape; /* [O, C, kh, kw] */
    const int *st = n->attr.conv.stride, *pad = n->attr.conv.pad;
    bool pointwise = w->dim[2] == 1 && w->dim[3] == 1 && st[0] == 1 && st[1] == 1 && pad[0] == 0 && pad[1] == 0;
    int64_t taps = w->dim[1] * w->dim[2] * w->dim[3];
    return !pointwise && taps <= t->float_conv_max_taps ? taps : 0;
}

/* s's Linear layers, each matched to its calibrated range (errors reported),
 * less the convolutions the target computes faster in float. */
static bool find_layers(QuantPass *s) {
    QuantLinear *found = arena_alloc(s->g->arena, sizeof(QuantLinear) * MAX_LINEARS);
    s->n_layers = quant_find_linears(s->g, found, MAX_LINEARS);
    for (int i = 0; i < s->n_layers; i++) s->layers[i].l = found[i];
    if (!match_ranges(s)) return false;
    int kept = 0;
    for (int i = 0; i < s->n_layers; i++)
        if (!direct_conv_taps(s->g, s->target, &s->g->nodes[s->layers[i].l.mm])) s->layers[kept++] = s->layers[i];
    s->n_layers = kept;
    return true;
}

static int add_const_shaped(Rewriter *rw, double v, DType t, Shape shape, SrcLoc loc) {
    NodeAttrs a = {.value = v, .dtype = t, .shape = shape};
    return rewrite_add(rw, OP_CONST, NULL, 0, &a, loc);
}

static int add_const(Rewriter *rw, double v, DType t, SrcLoc loc) { return add_const_shaped(rw, v, t, (Shape){0}, loc); }

/* A new param of the rewritten graph with value t (taken). */
static int add_param(QuantPass *s, Rewriter *rw, const char *base, const char *suffix, Tensor *t, SrcLoc loc) {
    char name[256];
    snprintf(name, sizeof name, "%s.%s", base, suffix);
    NodeAttrs a = {.name = name, .dtype = t->dtype, .shape = t->shape, .frozen = true};
    int id = rewrite_add(rw, OP_PARAM, NULL, 0, &a, loc);
    s->values[s->n_values++] = t;
    return id;
}

/* Builds layer L at its matmul's position; returns the float (or u8) value
 * standing for the layer's result, -1 after an error. */
static int build_layer(QuantPass *s, Rewriter *rw, Layer *L) {
    const Graph *g = s->g;
    const Node *mm = &g->nodes[L->l.mm];
    SrcLoc loc = mm->loc;
    const Shape *ws = &g->nodes[L->l.weight].shape;
    int64_t N = ws->dim[0], K = shape_numel(ws) / N; /* a conv's weight [N, C, kH, kW] is [N, C kH kW] */
    const char *wname = g->nodes[L->l.weight].attr.name;
    /* the input: already u8 when the layer before requantized to our scale (directly or through max pooling) */
    int xmap = rw->map[L->l.x], qx = -1;
    if (rw->dst->nodes[xmap].dtype == DT_U8) qx = xmap;
    else {
        int ins[3] = {xmap, add_const(rw, L->sx, DT_F32, loc), add_const(rw, L->zx, DT_I32, loc)};
        NodeAttrs a = {.dtype = DT_U8};
        qx = rewrite_add(rw, OP_QUANTIZE, ins, 3, &a, loc);
    }
    /* weights: symmetric per output channel, [-127, 127] */
    const Tensor *w = value_of(s, L->l.weight), *b = L->l.bias >= 0 ? value_of(s, L->l.bias) : NULL;
    Tensor *wq = tensor_new(DT_I8, *ws), *bq = tensor_new(DT_I32, (Shape){1, {N}});
    Tensor *mult = tensor_new(DT_I32, (Shape){1, {N}}), *shift = tensor_new(DT_I32, (Shape){1, {N}});
    const Layer *next = L->out_user >= 0 ? &s->layers[L->out_user] : NULL;
    double sy = next ? next->sx : 0;
    bool ok = true;
    for (int64_t c = 0; c < N; c++) {
        double amax = 0;
        for (int64_t k = 0; k < K; k++) amax = fmax(amax, fabs(tensor_get(w, c * K + k)));
        double sw = amax > 0 ? amax / 127 : 1;
        for (int64_t k = 0; k < K; k++) tensor_set(wq, c * K + k, quant_quantize(tensor_get(w, c * K + k), sw, 0, -127, 127));
        double acc_scale = L->sx * sw, bias = b ? rint(tensor_get(b, c) / acc_scale) : 0;
        if (fabs(bias) > 2147483647.0) {
            ok = diag_error_plain(s->d, "cannot quantize '%s': bias %g of channel %lld is beyond int32 at scale %g",
                                  b ? g->nodes[L->l.bias].attr.name : wname, tensor_get(b, c), (long long)c, acc_scale);
            break;
        }
        tensor_set(bq, c, bias);
        int32_t q31;
        int sh;
        if (!quant_multiplier(next ? acc_scale / sy : acc_scale, &q31, &sh)) {
            ok = diag_error_plain(s->d, "cannot quantize '%s': requantize multiplier %g of channel %lld is out of "
                                  "range", wname, next ? acc_scale / sy : acc_scale, (long long)c);
            break;
        }
        tensor_set(mult, c, q31);
        tensor_set(shift, c, sh);
    }
    if (!ok) {
        tensor_free(wq), tensor_free(bq), tensor_free(mult), tensor_free(shift);
        return -1;
    }
    int ins[5] = {qx, add_param(s, rw, wname, "int8", wq, loc),
                  add_param(s, rw, b ? g->nodes[L->l.bias].attr.name : wname, "int32", bq, loc),
                  add_param(s, rw, wname, "multiplier", mult, loc), add_param(s, rw, wname, "shift", shift, loc)};
    NodeAttrs a = {.dtype = next ? DT_U8 : DT_F32, .quant = {.clamp = {0, 0}, .zero_points = {L->zx, 0}}};
    if (L->l.conv) a.conv = mm->attr.conv;
    if (next) {
        a.quant.zero_points[1] = next->zx;
        a.quant.clamp[0] = L->l.relu >= 0 ? next->zx : 0;
        a.quant.clamp[1] = 255;
    }
    const char *qop = L->l.conv ? "qconv2d" : "qmatmul";
    int y = rewrite_add(rw, L->l.conv ? OP_QCONV2D : OP_QMATMUL, ins, 5, &a, loc);
    if (y < 0) return diag_error_plain(s->d, "cannot quantize '%s': the %s does not type-check", wname, qop), -1;
    sb_printf(&s->q->report, "quantized: %s at %s: %s%s%s -> %s %lldx%lld int8, %s\n", wname,
              src_where(mm, (char[256]){0}, 256), op_table[mm->op].name, b ? " + bias" : "",
              L->l.relu >= 0 ? " + relu" : "", qop, (long long)N, (long long)K,
              next ? "u8 output requantized for the next layer" : "f32 output");
    if (!next) {
        if (L->l.relu < 0) return y;
        return rewrite_add(rw, OP_RELU, &y, 1, NULL, g->nodes[L->l.relu].loc);
    }
    return y; /* u8: read only by the next layer, or by the max pooling and reshapes on the way to it */
}

/* Why an op of the final graph computes in float. */
static const char *float_reason(const QuantPass *s, const Graph *h, const Node *n) {
    switch (op_table[n->op].cls) {
    case OPC_LAYOUT: return "moves data only (no arithmetic to quantize)";
    case OPC_MATMUL: return "not a Linear layer: the right operand is no f32 weight param (a product of activations)";
    case OPC_CONV:
        if (direct_conv_taps(h, s->target, n))
            return "a small convolution: the backend computes it directly in float, faster than an int8 product";
        return n->op == OP_CONV2D ? "a grouped convolution (qconv2d takes groups 1)"
                                  : "pooling of float values (average, padded, or not between two quantized layers)";
    case OPC_SOFTMAX: return "softmax needs float exponentials";
    case OPC_REDUCE: return "reductions stay float";
    case OPC_LOOP: return "recurrences stay float";
    default:
        return n->op == OP_RELU && op_table[h->nodes[n->in[0]].op].cls == OPC_QUANT ? "relu of a quantized layer's f32 result"
                                                                       : "elementwise op between float values";
    }
}

static void report_float_ops(QuantPass *s, const Graph *h) {
    int n = 0;
    for (int id = 0; id < h->n_nodes; id++) {
        const Node *nd = &h->nodes[id];
        if (op_table[nd->op].cls == OPC_SOURCE || op_table[nd->op].cls == OPC_QUANT || !dtype_is_float(nd->dtype))
            continue;
        char where[256];
        sb_printf(&s->q->report, "stays float: %%%d %s at %s: %s\n", id, op_table[nd->op].name,
                  src_where(nd, where, sizeof where), float_reason(s, h, nd));
        n++;
    }
    sb_printf(&s->q->report, "quantize: %d layer%s int8, %d op%s float\n", s->n_layers, s->n_layers == 1 ? "" : "s", n,
              n == 1 ? "" : "s");
}

/* Marks the layers' member nodes and the params only they read. */
static void mark_absorbed(QuantPass *s) {
    const Graph *g = s->g;
    int *uses = rewrite_count_uses(g, g->arena);
    for (int i = 0; i < s->n_layers; i++) {
        const QuantLinear *l = &s->layers[i].l;
        int members[5] = {l->mm, l->add, l->relu, l->transpose, l->bias_view};
        for (int k = 0; k < 5; k++)
            if (members[k] >= 0) s->absorbed[members[k]] = true;
        uses[l->weight]--; /* read by the transpose or the matmul */
        if (l->bias >= 0) uses[l->bias]--;
        s->layer_of_mm[l->mm] = i;
        s->layer_of_out[l->out] = i;
    }
    for (int i = 0; i < s->n_layers; i++) {
        const QuantLinear *l = &s->layers[i].l;
        if (uses[l->weight] == 0) s->absorbed[l->weight] = true;
        if (l->bias >= 0 && uses[l->bias] == 0) s->absorbed[l->bias] = true;
        if (l->transpose >= 0 && uses[l->transpose] > 1) s->absorbed[l->transpose] = false;
    }
    /* a layer's result feeding only one other layer (its input, once), directly or through max poolings without
     * padding and reshapes each read once, is requantized for it: the pooling and reshapes then move u8 values
     * (the max of quantized values is the quantized max: quantize and the clamp are monotone) */
    for (int i = 0; i < s->n_layers; i++) {
        Layer *L = &s->layers[i];
        L->out_user = -1;
        quant_activation_params(L->in->lo, L->in->hi, &L->sx, &L->zx);
    }
    for (int i = 0; i < s->n_layers; i++) {
        int v = s->layers[i].l.out;
        while (uses[v] == 1) {
            for (int j = 0; j < s->n_layers; j++)
                if (s->layers[j].l.x == v) s->layers[i].out_user = j;
            int uid = s->layers[i].out_user < 0 ? only_user(g, uses, v) : -1;
            const Node *u = uid >= 0 ? &g->nodes[uid] : NULL;
            if (!u || !((u->op == OP_MAX_POOL2D && u->attr.conv.pad[0] == 0 && u->attr.conv.pad[1] == 0) ||
                        u->op == OP_RESHAPE))
                break;
            v = uid;
        }
        for (int w = s->layers[i].l.out; s->layers[i].out_user >= 0 && w != v;) s->to_u8[w = only_user(g, uses, w)] = true;
    }
}

Graph *pass_quantize(Graph *g, PassCtx *ctx) {
    QuantRequest *q = ctx->quant;
    if (!q || !q->values)
        return diag_error_plain(ctx->d, "the quantize pass needs calibration ranges and weights (--quantize int8 "
                                "--calib STATS)"), NULL;
    QuantPass s = {.g = g, .q = q, .d = ctx->d, .target = ctx->target};
    if (!find_layers(&s)) return NULL;
    s.layer_of_mm = arena_alloc(g->arena, sizeof(int) * (size_t)(g->n_nodes + 1));
    s.layer_of_out = arena_alloc(g->arena, sizeof(int) * (size_t)(g->n_nodes + 1));
    s.absorbed = arena_alloc(g->arena, sizeof(bool) * (size_t)(g->n_nodes + 1));
    s.to_u8 = arena_alloc(g->arena, sizeof(bool) * (size_t)(g->n_nodes + 1));
    for (int i = 0; i < g->n_nodes; i++) s.layer_of_mm[i] = s.layer_of_out[i] = -1, s.to_u8[i] = false;
    mark_absorbed(&s);
    s.values = calloc((size_t)g->n_params + 4 * (size_t)s.n_layers + 1, sizeof *s.values);
    if (!s.values) abort();
    sb_printf(&q->report, "quantize: calibration %s\n", q->calib_path ? q->calib_path : "(given)");

    Rewriter rw;
    rewrite_begin(&rw, g, ctx->d);
    int *result = arena_alloc(g->arena, sizeof(int) * (size_t)(s.n_layers + 1));
    bool ok = true;
    for (int id = 0; ok && id < g->n_nodes; id++) {
        int li = s.layer_of_mm[id];
        if (li >= 0) ok = (result[li] = build_layer(&s, &rw, &s.layers[li])) >= 0;
        if (s.layer_of_out[id] >= 0) rw.map[id] = result[s.layer_of_out[id]];
        if (s.absorbed[id]) continue;
        if (s.to_u8[id]) { /* the same op on the u8 values (pooling and reshape keep their operand's dtype) */
            int ins[ETCH_MAX_OPERANDS];
            Node n = rewrite_mapped_node(&rw, id, ins);
            n.dtype = DT_U8;
            rw.map[id] = graph_append_raw(rw.dst, &n);
            continue;
        }
        rewrite_copy_node(&rw, id);
        if (g->nodes[id].op == OP_PARAM) {
            int k = 0;
            while (g->params[k] != id) k++;
            s.values[s.n_values++] = q->values[k];
        }
    }
    if (!ok) {
        for (int i = 0; i < s.n_values; i++) {
            bool kept = false;
            for (int k = 0; k < g->n_params && !kept; k++) kept = q->values[k] == s.values[i];
            if (!kept) tensor_free(s.values[i]);
        }
        free(s.values);
        return NULL;
    }
    Graph *h = rewrite_finish(&rw);
    h = pass_dce(h, ctx); /* the nodes only the replaced layers read (a conv bias's reshape) */
    /* the float params the layers replaced go with the old graph's values */
    for (int k = 0; k < g->n_params; k++)
        if (s.absorbed[g->params[k]]) tensor_free(q->values[k]);
    free(q->values);
    q->values = s.values;
    report_float_ops(&s, h);
    return h;
}

/* ---- quantization-aware training ---- */

enum { UNARY = -2 };

/* op over dst ids a (and b, or UNARY); -1 when an operand is -1 (a rule rejected it) or the rule rejects this. */
static int add_op(Rewriter *rw, OpKind op, int a, int b, const NodeAttrs *attrs, SrcLoc loc) {
    int ins[2] = {a, b};
    if (a < 0 || b == -1) return -1;
    return rewrite_add(rw, op, ins, b == UNARY ? 1 : 2, attrs, loc);
}

/* fake_quant of weight w (dst id, f32 [N, K]) as build_layer quantizes it:
 * per output channel, symmetric, [-127, 127], s_w[c] = max_k |W[c,k]| / 127,
 * all in f64 as the pass computes it (so the integers are the pass's), from
 * the param's current value. A zero row keeps any scale (its values are 0):
 * max(amax, 1e-300) is below every nonzero f32. */
static int fake_quant_weight(Rewriter *rw, int w, int64_t N, SrcLoc loc) {
    NodeAttrs f64 = {.dtype = DT_F64}, f32 = {.dtype = DT_F32}, red = {.n_axes = 1, .axes = {1}};
    int wd = add_op(rw, OP_CAST, w, UNARY, &f64, loc);
    int amax = add_op(rw, OP_REDUCE_MAX, add_op(rw, OP_ABS, wd, UNARY, NULL, loc), UNARY, &red, loc);
    amax = add_op(rw, OP_MAX, amax, add_const(rw, 1e-300, DT_F64, loc), NULL, loc);
    int ins[3] = {wd, add_op(rw, OP_DIV, amax, add_const(rw, 127, DT_F64, loc), NULL, loc),
                  add_const_shaped(rw, 0, DT_I32, (Shape){1, {N}}, loc)};
    NodeAttrs fq = {.axis = 0, .quant = {.clamp = {-127, 127}}};
    if (wd < 0 || ins[1] < 0 || ins[2] < 0) return -1;
    return add_op(rw, OP_CAST, rewrite_add(rw, OP_FAKE_QUANT, ins, 3, &fq, loc), UNARY, &f32, loc);
}

Graph *quant_fake_quantize(const Graph *g, QuantRequest *q, Diag *d) {
    QuantPass s = {.g = g, .q = q, .d = d};
    if (!find_layers(&s)) return NULL;
    Rewriter rw;
    rewrite_begin(&rw, g, d);
    for (int id = 0; id < g->n_nodes; id++) {
        const Layer *L = NULL;
        for (int i = 0; i < s.n_layers && !L; i++)
            if (s.layers[i].l.mm == id) L = &s.layers[i];
        if (!L || L->l.conv) { /* Conv2d layers stay float in quantization-aware training (not yet done) */
            rewrite_copy_node(&rw, id);
            continue;
        }
        const Node *mm = &g->nodes[id];
        double sx;
        int32_t zx;
        quant_activation_params(L->in->lo, L->in->hi, &sx, &zx);
        int xq[3] = {rw.map[L->l.x], add_const(&rw, sx, DT_F32, mm->loc), add_const(&rw, zx, DT_I32, mm->loc)};
        NodeAttrs fq = {.quant = {.clamp = {0, 255}}};
        int ins[2] = {rewrite_add(&rw, OP_FAKE_QUANT, xq, 3, &fq, mm->loc),
                      fake_quant_weight(&rw, rw.map[L->l.weight], mm->shape.dim[1], mm->loc)};
        if (L->l.transpose >= 0) ins[1] = add_op(&rw, OP_TRANSPOSE, ins[1], UNARY, &g->nodes[L->l.transpose].attr, mm->loc);
        if ((rw.map[id] = add_op(&rw, OP_MATMUL, ins[0], ins[1], &mm->attr, mm->loc)) < 0)
            return diag_error_plain(d, "cannot fake-quantize '%s': the graph does not type-check",
                                    g->nodes[L->l.weight].attr.name), NULL;
    }
    return rewrite_finish(&rw);
}
