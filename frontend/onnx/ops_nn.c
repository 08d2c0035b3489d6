/* ops_nn.c: the rules for layer ops. Where the weights are constants of the
 * shapes a torch.nn layer has, the node becomes a member of the standard
 * library's matching module and a call to it, with the weights stored under
 * the module's param names:
 *   Gemm (B, C constant), MatMul + Add (B, bias constant)  -> Linear
 *   Conv over NCHW with constant W (and B)                 -> Conv2d
 *   BatchNormalization with constant statistics            -> BatchNorm2d/1d
 *   LayerNormalization over the last dim, constant scale   -> LayerNorm
 *   Gather of run-time ids from a constant 2-D table       -> Embedding
 * Otherwise the same computation is written with builtins (matmul, conv2d,
 * the pools, reductions). Member names come from the weights' names
 * (fc1.weight -> fc1) or the node's scope (/layer1/conv1/Conv -> layer1_conv1). */
#include <math.h>
#include <string.h>

#include "frontend/onnx/onnx_internal.h"

static bool is_weight(const OxValue *v) { return v && v->data && v->elem == OX_FLOAT && !v->owner; }

/* "  // ONNX fc.weight -> fc1.weight" notes for the weights whose names changed. */
static const char *renames(OxImport *ox, const char *member, const char *const *roles, OxValue *const *vals, int n) {
    StrBuf b = {0};
    for (int i = 0; i < n; i++) {
        if (!vals[i]) continue;
        const char *dsl = arena_printf(ox->a, "%s.%s", member, roles[i]);
        if (strcmp(dsl, vals[i]->name)) sb_printf(&b, "%s%s", b.len ? ", " : "  // ONNX ", vals[i]->name);
    }
    const char *s = b.s ? arena_strdup(ox->a, b.s) : "";
    sb_free(&b);
    return s;
}

/* Stores a weight of member under member.role and marks its source value owned. */
static void member_weight(OxImport *ox, const char *member, const char *role, OxValue *src, int rank,
                          const int64_t *dim, const void *data) {
    ox_add_weight(ox, arena_printf(ox->a, "%s.%s", member, role), src ? src->elem : OX_FLOAT, rank, dim, data);
    if (src) src->owner = member;
}

/* ---- Gemm, MatMul -> Linear ------------------------------------------------ */

/* A Linear member from W ([N, K] as w[n * K + k]) and an optional bias of N. */
static const char *make_linear(OxImport *ox, const OxNode *n, OxValue *wsrc, OxValue *bsrc, int64_t K, int64_t N,
                               const float *w, const float *bias) {
    const char *m = ox_member_name(ox, n, wsrc->name && strncmp(wsrc->name, "onnx::", 6) ? wsrc : bsrc, "linear");
    const char *roles[] = {"weight", "bias"};
    OxValue *vals[] = {wsrc, bsrc};
    ox_member(ox, "%s = Linear(%lld, %lld%s)%s", m, (long long)K, (long long)N, bias ? "" : ", bias=false",
              renames(ox, m, roles, vals, 2));
    member_weight(ox, m, "weight", wsrc, 2, (int64_t[]){N, K}, w);
    if (bias) member_weight(ox, m, "bias", bsrc, 1, &N, bias);
    return m;
}

/* b as a bias of n elements: [N], [1, N] or one element broadcast; scaled. */
static float *bias_of(OxImport *ox, const OxValue *b, int64_t n, double scale) {
    int64_t numel = ox_numel(b);
    if (!b->data || b->elem != OX_FLOAT || (numel != n && numel != 1) || (b->rank == 2 && b->dim[0] != 1) || b->rank > 2)
        return NULL;
    float *out = arena_alloc(ox->a, sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) out[i] = (float)(scale * ox_get(b, numel == 1 ? 0 : i));
    return out;
}

bool ox_rule_gemm(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    if (!ox_float_inputs(ox, n)) return false;
    OxValue *A = n->in[0], *B = n->in[1], *C = n->n_in > 2 ? n->in[2] : NULL;
    double alpha, beta;
    int64_t ta, tb;
    if (!ox_attr_float(ox, n, "alpha", 1, &alpha) || !ox_attr_float(ox, n, "beta", 1, &beta) ||
        !ox_attr_int(ox, n, "transA", 0, &ta) || !ox_attr_int(ox, n, "transB", 0, &tb))
        return false;
    if (A->rank != 2 || B->rank != 2) return ox_error(ox, "A and B must be 2-D");
    if (A->elem != OX_FLOAT && A->elem != OX_DOUBLE) return ox_error(ox, "Gemm on %s tensors is not supported", ox_elem_name(A->elem));
    if (!isfinite(alpha) || !isfinite(beta)) return ox_error(ox, "alpha and beta must be finite");
    int64_t M = A->dim[ta ? 1 : 0], K = A->dim[ta ? 0 : 1], N = B->dim[tb ? 0 : 1];
    if (B->dim[tb ? 1 : 0] != K) return ox_error(ox, "cannot multiply %s by %s", ox_list(ox, A->dim, 2), ox_list(ox, B->dim, 2));
    int64_t dim[2] = {M, N};
    float *bias = C ? bias_of(ox, C, N, beta) : NULL;
    if (!ta && !A->data && is_weight(B) && (!C || bias)) {
        float *w = arena_alloc(ox->a, sizeof(float) * (size_t)(N * K));
        for (int64_t i = 0; i < N; i++)
            for (int64_t k = 0; k < K; k++) w[i * K + k] = (float)(alpha * ox_get(B, tb ? i * K + k : k * N + i));
        const char *m = make_linear(ox, n, B, C, K, N, w, bias);
        return ox_define(ox, n, 0, OX_FLOAT, 2, dim, "%s(%s)", m, A->expr) != NULL;
    }
    const char *sa = ox_operand(ox, A, -1), *sb = ox_operand(ox, B, -1), *sc = C ? ox_operand(ox, C, 2) : NULL;
    if (!sa || !sb || (C && !sc)) return false;
    const char *text = arena_printf(ox->a, "%s%s%s @ %s%s%s", ta ? "transpose(" : "", sa, ta ? ")" : "",
                                    tb ? "transpose(" : "", sb, tb ? ")" : "");
    if (alpha != 1) text = arena_printf(ox->a, "%s * %s", text, ox_number(ox, alpha, A->elem));
    if (C) text = arena_printf(ox->a, beta != 1 ? "%s + %s * %s" : "%s + %s", text, sc, ox_number(ox, beta, A->elem));
    return ox_define(ox, n, 0, A->elem, 2, dim, "%s", text) != NULL;
}

/* The Add right after a MatMul whose other input is a bias of N elements,
 * when the MatMul's result is read by nothing else: its node index, or -1. */
static int bias_add(OxImport *ox, const OxNode *n, int64_t N, OxValue **bias) {
    OxValue *r = ox_lookup_in(&ox->readers, ox_out_name(n, 0));
    if (!r || r->uses != 1 || r->producer < 0) return -1;
    const Onnx__NodeProto *add = ox->graph->node[r->producer];
    if (strcmp(add->op_type, "Add") || (add->domain && *add->domain) || add->n_input != 2) return -1;
    int other = !strcmp(add->input[0], ox_out_name(n, 0)) ? 1 : 0;
    OxValue *b = ox_lookup(ox, add->input[other]);
    if (!b || !b->data || b->elem != OX_FLOAT || b->rank != 1 || b->dim[0] != N || b->owner) return -1;
    *bias = b;
    return r->producer;
}

bool ox_rule_matmul(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    if (!ox_float_inputs(ox, n)) return false;
    OxValue *A = n->in[0], *B = n->in[1];
    if (A->rank < 1 || B->rank < 1) return ox_error(ox, "MatMul needs inputs of rank 1 or more");
    /* NumPy: rank-1 operands get a dim of 1 that the result drops; the batch dims broadcast */
    OxValue a = *A, b = *B;
    if (a.rank == 1) a.rank = 2, a.dim[1] = a.dim[0], a.dim[0] = 1;
    if (b.rank == 1) b.rank = 2, b.dim[1] = 1;
    int64_t K = a.dim[a.rank - 1], N = b.dim[b.rank - 1], M = a.dim[a.rank - 2], dim[OX_MAX_RANK + 2];
    if (b.dim[b.rank - 2] != K)
        return ox_error(ox, "cannot multiply %s by %s", ox_list(ox, A->dim, A->rank), ox_list(ox, B->dim, B->rank));
    OxValue ba = a, bb = b;
    ba.rank -= 2, bb.rank -= 2;
    int rank;
    if (!ox_broadcast(ox, &ba, &bb, &rank, dim)) return false;
    if (A->rank > 1) dim[rank++] = M;
    if (B->rank > 1) dim[rank++] = N;
    if (rank > OX_MAX_RANK) return ox_error(ox, "the result has more than %d dims", OX_MAX_RANK);
    OxValue *bias = NULL;
    int add = B->rank == 2 && is_weight(B) && !A->data ? bias_add(ox, n, N, &bias) : -1;
    if (B->rank == 2 && is_weight(B) && !A->data && (add >= 0 || !strncmp(B->name, "onnx::", 6))) {
        /* torch.onnx writes nn.Linear on inputs of rank > 2 as MatMul(x, W^T) + Add(bias) */
        float *w = arena_alloc(ox->a, sizeof(float) * (size_t)(N * K)), *bv = NULL;
        for (int64_t i = 0; i < N; i++)
            for (int64_t k = 0; k < K; k++) w[i * K + k] = (float)ox_get(B, k * N + i);
        if (bias) {
            bv = arena_alloc(ox->a, sizeof(float) * (size_t)N);
            for (int64_t i = 0; i < N; i++) bv[i] = (float)ox_get(bias, i);
        }
        const char *m = make_linear(ox, n, B, bias, K, N, w, bv);
        if (add >= 0) ox->absorbed[add] = arena_strdup(ox->a, ox_out_name(n, 0));
        return ox_define(ox, n, 0, OX_FLOAT, rank, dim, "%s(%s)", m, A->expr) != NULL;
    }
    const char *sa = ox_operand(ox, A, -1), *sb = ox_operand(ox, B, -1);
    return sa && sb && ox_define(ox, n, 0, A->elem, rank, dim, "%s @ %s", sa, sb);
}

/* ---- Conv, pooling ------------------------------------------------------------ */

/* The 2-D window geometry of Conv and the pools, from their attributes. */
typedef struct Window {
    int64_t k[2], s[2], d[2], pad[4]; /* pad: top, left, bottom, right (ONNX: begins then ends) */
    int64_t extra[2];                 /* of pad's ends: the rows/columns ceil_mode adds */
    int64_t out[2];
} Window;

static bool pair_attr(OxImport *ox, const OxNode *n, const char *name, int64_t def, int64_t *v) {
    const int64_t *p;
    int count;
    if (!ox_attr_ints(ox, n, name, &p, &count)) return false;
    if (count >= 0 && count != 2) return ox_error(ox, "%s has %d entries; 2 are expected (a 2-D window)", name, count);
    for (int i = 0; i < 2; i++) v[i] = count < 0 ? def : p[i];
    return true;
}

/* Reads kernel (given for Conv by W), strides, dilations, pads, auto_pad and
 * ceil_mode, and sizes the output over input dims h, w. */
static bool window(OxImport *ox, const OxNode *n, const OxValue *x, const int64_t *kernel, bool ceil_ok, Window *g) {
    const int64_t *p;
    int count;
    const char *auto_pad;
    int64_t ceil_mode = 0;
    if (x->rank != 4)
        return ox_error(ox, "only 2-D windows over NCHW inputs are supported; the input is %s", ox_list(ox, x->dim, x->rank));
    if (kernel) memcpy(g->k, kernel, sizeof g->k);
    else if (!pair_attr(ox, n, "kernel_shape", 0, g->k)) return false;
    if (!pair_attr(ox, n, "strides", 1, g->s) || !pair_attr(ox, n, "dilations", 1, g->d) ||
        !ox_attr_ints(ox, n, "pads", &p, &count) || !ox_attr_string(ox, n, "auto_pad", "NOTSET", &auto_pad) ||
        (ceil_ok && !ox_attr_int(ox, n, "ceil_mode", 0, &ceil_mode)))
        return false;
    if (count >= 0 && count != 4) return ox_error(ox, "pads has %d entries; 4 are expected", count);
    for (int i = 0; i < 2; i++)
        if (g->k[i] <= 0 || g->s[i] <= 0 || g->d[i] <= 0 || g->k[i] > 1 << 20 || g->s[i] > 1 << 20 || g->d[i] > 1 << 20)
            return ox_error(ox, "kernel, strides and dilations must be positive (and at most 2^20)");
    for (int i = 0; i < 4; i++) {
        g->pad[i] = count < 0 ? 0 : p[i];
        if (g->pad[i] < 0 || g->pad[i] > 1 << 20) return ox_error(ox, "pads must be non-negative");
    }
    for (int i = 0; i < 2; i++) {
        int64_t in = x->dim[2 + i], span = g->d[i] * (g->k[i] - 1) + 1;
        if (!strcmp(auto_pad, "SAME_UPPER") || !strcmp(auto_pad, "SAME_LOWER")) {
            int64_t out = (in + g->s[i] - 1) / g->s[i], total = (out - 1) * g->s[i] + span - in;
            total = total < 0 ? 0 : total;
            g->pad[i] = !strcmp(auto_pad, "SAME_UPPER") ? total / 2 : total - total / 2;
            g->pad[i + 2] = total - g->pad[i];
        } else if (!strcmp(auto_pad, "VALID")) {
            g->pad[i] = g->pad[i + 2] = 0;
        } else if (strcmp(auto_pad, "NOTSET")) {
            return ox_error(ox, "auto_pad '%s' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID", auto_pad);
        }
        int64_t room = in + g->pad[i] + g->pad[i + 2] - span;
        if (room < 0) return ox_error(ox, "the window (%lld) is larger than the padded input (%lld)", (long long)span, (long long)(room + span));
        g->out[i] = room / g->s[i] + 1;
        g->extra[i] = 0;
        if (ceil_mode && room % g->s[i]) {
            int64_t out = g->out[i] + 1;
            if ((out - 1) * g->s[i] < in + g->pad[i]) { /* the last window starts inside: PyTorch's rule */
                g->extra[i] = (out - 1) * g->s[i] + span - (in + g->pad[i] + g->pad[i + 2]);
                g->pad[i + 2] += g->extra[i];
                g->out[i] = out;
            }
        }
    }
    return true;
}

static bool symmetric(const Window *g) { return g->pad[0] == g->pad[2] && g->pad[1] == g->pad[3]; }

/* "[a, b]", or "a" when both are equal (PyTorch's int form). */
static const char *pair_text(OxImport *ox, const int64_t *v) {
    return v[0] == v[1] ? arena_printf(ox->a, "%lld", (long long)v[0]) : ox_list(ox, v, 2);
}

/* x padded explicitly (left, right, top, bottom as pad() takes them), with value. */
static const char *padded(OxImport *ox, const char *x, const Window *g, const char *value) {
    int64_t p[4] = {g->pad[1], g->pad[3], g->pad[0], g->pad[2]};
    return arena_printf(ox->a, "pad(%s, %s%s%s)", x, ox_list(ox, p, 4), value ? ", value=" : "", value ? value : "");
}

bool ox_rule_conv(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    if (!ox_float_inputs(ox, n)) return false;
    OxValue *X = n->in[0], *W = n->in[1], *B = n->n_in > 2 ? n->in[2] : NULL;
    int64_t group;
    Window g;
    if (!ox_attr_int(ox, n, "group", 1, &group)) return false;
    if (W->rank != 4) return ox_error(ox, "only 2-D convolutions are supported; the weight is %s", ox_list(ox, W->dim, W->rank));
    if (!window(ox, n, X, W->dim + 2, false, &g)) return false;
    int64_t C = X->dim[1], M = W->dim[0];
    if (group <= 0 || C % group || M % group || W->dim[1] != C / group)
        return ox_error(ox, "the weight %s does not fit %lld input channels in %lld groups", ox_list(ox, W->dim, 4),
                        (long long)C, (long long)group);
    if (B && (B->rank != 1 || B->dim[0] != M)) return ox_error(ox, "the bias must have %lld elements", (long long)M);
    int64_t dim[4] = {X->dim[0], M, g.out[0], g.out[1]};
    const char *sx = ox_operand(ox, X, -1);
    if (!sx) return false;
    bool sym = symmetric(&g);
    if (!sym) sx = padded(ox, sx, &g, NULL);
    int64_t pads[2] = {sym ? g.pad[0] : 0, sym ? g.pad[1] : 0};
    const char *opts = arena_printf(ox->a, "%s%s%s%s%s%s%s%s", g.s[0] != 1 || g.s[1] != 1 ? ", stride=" : "",
                                    g.s[0] != 1 || g.s[1] != 1 ? pair_text(ox, g.s) : "", pads[0] || pads[1] ? ", padding=" : "",
                                    pads[0] || pads[1] ? pair_text(ox, pads) : "", g.d[0] != 1 || g.d[1] != 1 ? ", dilation=" : "",
                                    g.d[0] != 1 || g.d[1] != 1 ? pair_text(ox, g.d) : "", group != 1 ? ", groups=" : "",
                                    group != 1 ? arena_printf(ox->a, "%lld", (long long)group) : "");
    if (X->elem == OX_FLOAT && is_weight(W) && (!B || is_weight(B))) {
        const char *m = ox_member_name(ox, n, strncmp(W->name, "onnx::", 6) ? W : B, "conv");
        const char *roles[] = {"weight", "bias"};
        OxValue *vals[] = {W, B};
        ox_member(ox, "%s = Conv2d(%lld, %lld, %s%s%s)%s", m, (long long)C, (long long)M, pair_text(ox, W->dim + 2), opts,
                  B ? "" : ", bias=false", renames(ox, m, roles, vals, 2));
        member_weight(ox, m, "weight", W, 4, W->dim, W->data);
        if (B) member_weight(ox, m, "bias", B, 1, B->dim, B->data);
        return ox_define(ox, n, 0, OX_FLOAT, 4, dim, "%s(%s)", m, sx) != NULL;
    }
    const char *sw = ox_operand(ox, W, -1), *sb = B ? ox_operand(ox, B, -1) : NULL;
    if (!sw || (B && !sb)) return false;
    const char *text = arena_printf(ox->a, "conv2d(%s, %s%s)", sx, sw, opts);
    if (B) text = arena_printf(ox->a, "%s + reshape(%s, [%lld, 1, 1])", text, sb, (long long)M);
    return ox_define(ox, n, 0, X->elem, 4, dim, "%s", text) != NULL;
}

/* MaxPool (arg "max_pool2d") and AveragePool ("avg_pool2d"). Padding the
 * builtins cannot express (uneven, ceil_mode, more than half the kernel, or
 * average pooling that does not count the padding) is written as an explicit
 * pad() and, for averages, a constant divisor per output position. */
bool ox_rule_pool(OxImport *ox, OxNode *n, const char *fn) {
    OxValue *X = n->in[0];
    Window g;
    int64_t count_pad = 0;
    bool avg = !strcmp(fn, "avg_pool2d");
    if (!window(ox, n, X, NULL, true, &g) || (avg && !ox_attr_int(ox, n, "count_include_pad", 0, &count_pad)))
        return false;
    if (g.d[0] != 1 || g.d[1] != 1) return ox_error(ox, "dilated pooling is not supported");
    int64_t dim[4] = {X->dim[0], X->dim[1], g.out[0], g.out[1]};
    const char *sx = ox_operand(ox, X, -1), *stride = pair_text(ox, g.s), *k = pair_text(ox, g.k);
    if (!sx) return false;
    bool any_pad = g.pad[0] || g.pad[1] || g.pad[2] || g.pad[3];
    bool simple = symmetric(&g) && 2 * g.pad[0] <= g.k[0] && 2 * g.pad[1] <= g.k[1] && (!avg || count_pad || !any_pad);
    if (simple) {
        int64_t p[2] = {g.pad[0], g.pad[1]};
        return ox_define(ox, n, 0, X->elem, 4, dim, "%s(%s, %s, stride=%s%s%s)", fn, sx, k, stride,
                         any_pad ? ", padding=" : "", any_pad ? pair_text(ox, p) : "") != NULL;
    }
    if (!avg)
        return ox_define(ox, n, 0, X->elem, 4, dim, "%s(%s, %s, stride=%s)", fn, padded(ox, sx, &g, "(-3.40282347e+38)"),
                         k, stride) != NULL;
    /* the mean over what each window counts: the input, plus the padding with
     * count_include_pad, never the extra rows ceil_mode adds */
    int64_t out2[2] = {g.out[0], g.out[1]};
    OxValue *div = ox_new_const(ox, arena_printf(ox->a, "%s_divisor", ox_out_name(n, 0)), X->elem, 2, out2);
    if (!div) return false;
    for (int64_t i = 0; i < g.out[0]; i++)
        for (int64_t j = 0; j < g.out[1]; j++) {
            int64_t cnt[2], at[2] = {i, j};
            for (int a = 0; a < 2; a++) {
                int64_t lo = at[a] * g.s[a] - g.pad[a], hi = lo + g.k[a], in = X->dim[2 + a];
                int64_t min = count_pad ? -g.pad[a] : 0, max = count_pad ? in + g.pad[a + 2] - g.extra[a] : in;
                cnt[a] = (hi < max ? hi : max) - (lo > min ? lo : min);
            }
            ox_set(div, i * g.out[1] + j, (double)(cnt[0] * cnt[1]));
        }
    const char *sd = ox_operand(ox, div, -1);
    return sd && ox_define(ox, n, 0, X->elem, 4, dim, "%s(%s, %s, stride=%s) * %lld / %s", fn, padded(ox, sx, &g, NULL), k,
                           stride, (long long)(g.k[0] * g.k[1]), sd);
}

bool ox_rule_global_pool(OxImport *ox, OxNode *n, const char *fn) {
    OxValue *X = n->in[0];
    if (X->rank < 3) return ox_error(ox, "the input must have a batch, a channel and at least one spatial dim");
    int64_t dim[OX_MAX_RANK], axes[OX_MAX_RANK];
    for (int i = 0; i < X->rank; i++) dim[i] = i < 2 ? X->dim[i] : 1, axes[i] = i + 2;
    const char *sx = ox_operand(ox, X, -1);
    return sx && ox_define(ox, n, 0, X->elem, X->rank, dim, "%s(%s, dim=%s, keepdim=true)", fn, sx,
                           ox_list(ox, axes, X->rank - 2));
}

/* ---- normalization ------------------------------------------------------------- */

/* ", eps=E" unless E is the modules' default 1e-5 (as an f32). */
static const char *eps_arg(OxImport *ox, double eps) {
    return (float)eps == 1e-5f ? "" : arena_printf(ox->a, ", eps=%s", ox_number(ox, eps, OX_FLOAT));
}

bool ox_rule_batchnorm(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    OxValue *X = n->in[0], *scale = n->in[1], *B = n->in[2], *mean = n->in[3], *var = n->in[4];
    double eps;
    int64_t training;
    if (!ox_attr_float(ox, n, "epsilon", 1e-5, &eps) || !ox_attr_int(ox, n, "training_mode", 0, &training)) return false;
    if (training) return ox_error(ox, "training_mode is set: export the model in eval mode");
    if (!isfinite(eps) || (X->elem != OX_FLOAT && X->elem != OX_DOUBLE)) return ox_error(ox, "needs a finite epsilon and a FLOAT or DOUBLE input");
    if (X->rank < 2) return ox_error(ox, "the input needs a channel dim");
    int64_t C = X->dim[1];
    OxValue *p[4] = {scale, B, mean, var};
    bool module = X->elem == OX_FLOAT && X->rank <= 4;
    for (int i = 0; i < 4; i++) {
        if (p[i]->rank != 1 || p[i]->dim[0] != C) return ox_error(ox, "'%s' must have %lld elements", p[i]->name, (long long)C);
        module &= is_weight(p[i]);
    }
    const char *sx = ox_operand(ox, X, -1);
    if (!sx) return false;
    if (module) {
        const char *m = ox_member_name(ox, n, strncmp(mean->name, "onnx::", 6) ? mean : scale, "bn");
        const char *roles[] = {"weight", "bias", "running_mean", "running_var"};
        ox_member(ox, "%s = BatchNorm%dd(%lld%s)%s", m, X->rank == 4 ? 2 : 1, (long long)C, eps_arg(ox, eps),
                  renames(ox, m, roles, p, 4));
        for (int i = 0; i < 4; i++) member_weight(ox, m, roles[i], p[i], 1, &C, p[i]->data);
        static const int64_t zero = 0;
        ox_add_weight(ox, arena_printf(ox->a, "%s.num_batches_tracked", m), OX_INT64, 0, NULL, &zero);
        return ox_define(ox, n, 0, OX_FLOAT, X->rank, X->dim, "%s(%s)", m, sx) != NULL;
    }
    /* (x - mean) / sqrt(var + eps) * scale + B, the statistics shaped [C, 1, ...] */
    int64_t shape[OX_MAX_RANK];
    for (int i = 1; i < X->rank; i++) shape[i - 1] = i == 1 ? C : 1;
    const char *s[4], *list = ox_list(ox, shape, X->rank - 1);
    for (int i = 0; i < 4; i++)
        if (!(s[i] = ox_operand(ox, p[i], -1))) return false;
    return ox_define(ox, n, 0, X->elem, X->rank, X->dim,
                     "(%s - reshape(%s, %s)) / sqrt(reshape(%s, %s) + %s) * reshape(%s, %s) + reshape(%s, %s)", sx, s[2],
                     list, s[3], list, ox_number(ox, eps, X->elem), s[0], list, s[1], list) != NULL;
}

bool ox_rule_layernorm(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    OxValue *X = n->in[0], *scale = n->in[1], *B = n->n_in > 2 ? n->in[2] : NULL;
    double eps;
    int64_t axis;
    int k;
    if (!ox_attr_float(ox, n, "epsilon", 1e-5, &eps) || !ox_attr_int(ox, n, "axis", -1, &axis) ||
        !ox_axis(ox, axis, X->rank, "axis", &k))
        return false;
    if (!isfinite(eps) || (X->elem != OX_FLOAT && X->elem != OX_DOUBLE)) return ox_error(ox, "needs a finite epsilon and a FLOAT or DOUBLE input");
    const char *sx = ox_operand(ox, X, -1);
    if (!sx) return false;
    int64_t D = X->dim[X->rank - 1];
    if (k == X->rank - 1 && X->elem == OX_FLOAT && is_weight(scale) && scale->rank == 1 && (!B || (is_weight(B) && B->rank == 1))) {
        const char *m = ox_member_name(ox, n, strncmp(scale->name, "onnx::", 6) ? scale : B, "norm");
        const char *roles[] = {"weight", "bias"};
        OxValue *vals[] = {scale, B};
        ox_member(ox, "%s = LayerNorm(%lld%s)%s", m, (long long)D, eps_arg(ox, eps), renames(ox, m, roles, vals, 2));
        member_weight(ox, m, "weight", scale, 1, &D, scale->data);
        if (B) member_weight(ox, m, "bias", B, 1, &D, B->data);
        else member_weight(ox, m, "bias", NULL, 1, &D, arena_alloc(ox->a, sizeof(float) * (size_t)D));
        return ox_define(ox, n, 0, OX_FLOAT, X->rank, X->dim, "%s(%s)", m, sx) != NULL;
    }
    /* over dims k.. : (x - mean) * rsqrt(mean((x - mean)^2) + eps) * scale + B */
    int64_t axes[OX_MAX_RANK];
    for (int i = k; i < X->rank; i++) axes[i - k] = i;
    const char *dims = ox_list(ox, axes, X->rank - k), *ss = ox_operand(ox, scale, X->rank), *sb = B ? ox_operand(ox, B, X->rank) : NULL;
    if (!ss || (B && !sb)) return false;
    const char *centered = arena_printf(ox->a, "(%s - mean(%s, dim=%s, keepdim=true))", sx, sx, dims);
    return ox_define(ox, n, 0, X->elem, X->rank, X->dim, "%s * rsqrt(mean(%s * %s, dim=%s, keepdim=true) + %s) * %s%s%s",
                     centered, centered, centered, dims, ox_number(ox, eps, X->elem), ss, B ? " + " : "", B ? sb : "") != NULL;
}

/* ---- Gather ------------------------------------------------------------------- */

bool ox_rule_gather(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    OxValue *X = n->in[0], *I = n->in[1];
    int64_t axis, dim[2 * OX_MAX_RANK];
    int k, rank = 0;
    if (!ox_attr_int(ox, n, "axis", 0, &axis) || !ox_axis(ox, axis, X->rank, "axis", &k)) return false;
    if (I->elem != OX_INT64 && I->elem != OX_INT32) return ox_error(ox, "the indices must be INT64 or INT32");
    for (int i = 0; i < k; i++) dim[rank++] = X->dim[i];
    for (int i = 0; i < I->rank; i++) dim[rank++] = I->dim[i];
    for (int i = k + 1; i < X->rank; i++) dim[rank++] = X->dim[i];
    if (rank > OX_MAX_RANK) return ox_error(ox, "the result would have %d dims", rank);
    if (I->data) {
        int64_t count = ox_numel(I), str[OX_MAX_RANK], box[OX_MAX_RANK], dst[OX_MAX_RANK];
        int64_t *idx = arena_alloc(ox->a, sizeof(int64_t) * (size_t)(count + 1));
        for (int64_t j = 0; j < count; j++) {
            idx[j] = ox_get_int(I, j);
            if (idx[j] < -X->dim[k] || idx[j] >= X->dim[k])
                return ox_error(ox, "index %lld is out of range for dim %d of size %lld", (long long)idx[j], k, (long long)X->dim[k]);
            if (idx[j] < 0) idx[j] += X->dim[k];
        }
        if (X->data) { /* each index copies one slab of X */
            if (count > X->dim[k] && !ox_fold_limit(ox, ox_out_name(n, 0), rank, dim)) return false;
            OxValue *c = ox_new_const(ox, ox_out_name(n, 0), X->elem, rank, dim);
            if (!c) return false;
            /* the result laid out as X with dim k replaced by the indices */
            ox_strides(X->rank, X->dim, str);
            memcpy(box, X->dim, sizeof box);
            box[k] = count;
            ox_strides(X->rank, box, dst);
            box[k] = 1;
            for (int64_t j = 0; j < count; j++) ox_strided_copy(c, j * dst[k], dst, X, idx[j] * str[k], str, X->rank, box);
            return ox_define_const(ox, n, 0, c);
        }
        if (I->rank > 1 || count > 256) return ox_error(ox, "constant indices must be a scalar or a list of at most 256");
        StrBuf b = {0};
        int runs = 0;
        for (int64_t j = 0; j < count; runs++) { /* runs of consecutive indices as one slice each */
            int64_t e = j + 1;
            while (e < count && idx[e] == idx[e - 1] + 1) e++;
            sb_printf(&b, "%sslice(%s, %d, %lld, %lld)", runs ? ", " : "", X->expr, k, (long long)idx[j], (long long)(idx[j] + e - j));
            j = e;
        }
        if (!runs) return sb_free(&b), ox_error(ox, "no indices: the result would be empty");
        const char *text = runs == 1 ? arena_strdup(ox->a, b.s) : arena_printf(ox->a, "cat(%s, dim=%d)", b.s, k);
        sb_free(&b);
        if (I->rank == 0) text = arena_printf(ox->a, "reshape(%s, %s)", text, ox_list(ox, dim, rank));
        return ox_define(ox, n, 0, X->elem, rank, dim, "%s", text) != NULL;
    }
    if (k != 0 || X->rank != 2) return ox_error(ox, "run-time indices are supported only into a 2-D table along axis 0 (an embedding)");
    if (is_weight(X)) {
        const char *m = ox_member_name(ox, n, X, "embedding");
        const char *roles[] = {"weight"};
        ox_member(ox, "%s = Embedding(%lld, %lld)%s", m, (long long)X->dim[0], (long long)X->dim[1], renames(ox, m, roles, &X, 1));
        member_weight(ox, m, "weight", X, 2, X->dim, X->data);
        return ox_define(ox, n, 0, OX_FLOAT, rank, dim, "%s(%s)", m, I->expr) != NULL;
    }
    const char *sx = ox_operand(ox, X, -1);
    return sx && ox_define(ox, n, 0, X->elem, rank, dim, "embedding(%s, %s)", I->expr, sx);
}
