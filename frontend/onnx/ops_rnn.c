/* ops_rnn.c: the rules for ONNX's recurrent ops, LSTM and GRU, as
 * torch.onnx.export writes them (opsets 13 to 17): one node per layer,
 * X [T, B, I] (batch_first is a Transpose around it), W [D, G*H, I],
 * R [D, G*H, H], B [D, 2*G*H], initial states [D, B, H] given or absent,
 * outputs Y [T, D, B, H], Y_h and Y_c [D, B, H].
 *
 * ONNX orders the gates i, o, f, c (LSTM) and z, r, h (GRU); PyTorch and the
 * standard library order them i, f, g, o and r, z, n. The weights are
 * re-packed into PyTorch's layout (weight_ih_l0 [G*H, I], weight_hh_l0,
 * bias_ih_l0, bias_hh_l0, ..._reverse for the second direction), so:
 *   - with zero or absent initial states, forward or bidirectional, the node
 *     becomes a member of the standard library's LSTM / GRU module and a
 *     call to it (GRU's linear_before_reset=1 is PyTorch's GRU);
 *   - otherwise (initial states computed at run time or not zero, direction
 *     reverse) the recurrence is written out as a `for` loop per direction
 *     with the same cell the module uses, the weights as params.
 * What PyTorch never writes (sequence_lens, peepholes, clip, other
 * activations, layout=1, input_forget, GRU linear_before_reset=0) is an error. */
#include <string.h>

#include "frontend/onnx/onnx_internal.h"

/* PyTorch's gate k is ONNX's gate PERM[k]. */
static const int LSTM_PERM[4] = {0, 2, 3, 1}; /* i f g o <- i o f c */
static const int GRU_PERM[3] = {1, 0, 2};     /* r z n <- z r h */

typedef struct RnnShape {
    bool lstm;
    int gates, dirs;
    int64_t T, B, I, H;
    bool reverse_only; /* direction "reverse" */
} RnnShape;

/* Rows of direction d of a [D, G*H, cols] tensor (or the bias half at
 * offset), gates put in PyTorch's order. */
static float *repack(OxImport *ox, const RnnShape *s, const OxValue *v, int d, int64_t cols, int64_t offset) {
    const int *perm = s->lstm ? LSTM_PERM : GRU_PERM;
    int64_t GH = s->gates * s->H, stride = v->rank == 2 ? 2 * GH : GH * cols;
    float *out = arena_alloc(ox->a, sizeof(float) * (size_t)(GH * cols));
    for (int k = 0; k < s->gates; k++)
        for (int64_t r = 0; r < s->H; r++)
            for (int64_t c = 0; c < cols; c++)
                out[(k * s->H + r) * cols + c] =
                    (float)ox_get(v, d * stride + offset + (perm[k] * s->H + r) * cols + c);
    return out;
}

/* True when v is absent or a constant of zeros. */
static bool zero_state(const OxValue *v) {
    if (!v) return true;
    if (!v->data) return false;
    for (int64_t i = 0; i < ox_numel(v); i++)
        if (ox_get(v, i) != 0) return false;
    return true;
}

static bool check_attrs(OxImport *ox, OxNode *n, RnnShape *s) {
    const char *dir;
    int64_t hidden, layout = 0, input_forget = 0, lbr = 1;
    const Onnx__AttributeProto *clip = ox_attr(n, "clip");
    if (!ox_attr_string(ox, n, "direction", "forward", &dir) || !ox_attr_int(ox, n, "hidden_size", 0, &hidden) ||
        !ox_attr_int(ox, n, "layout", 0, &layout) || (s->lstm && !ox_attr_int(ox, n, "input_forget", 0, &input_forget)) ||
        (!s->lstm && !ox_attr_int(ox, n, "linear_before_reset", 0, &lbr)))
        return false;
    if (strcmp(dir, "forward") && strcmp(dir, "reverse") && strcmp(dir, "bidirectional"))
        return ox_error(ox, "direction '%s' is not forward, reverse or bidirectional", dir);
    s->dirs = strcmp(dir, "bidirectional") ? 1 : 2;
    s->reverse_only = !strcmp(dir, "reverse");
    if (layout) return ox_error(ox, "layout=1 is not supported (torch.onnx.export writes layout 0 and Transposes)");
    if (input_forget) return ox_error(ox, "input_forget=1 is not supported");
    if (clip) return ox_error(ox, "clip is not supported (PyTorch's recurrent layers do not clip)");
    if (!lbr) return ox_error(ox, "linear_before_reset=0 is not supported (PyTorch's GRU is linear_before_reset=1)");
    const Onnx__AttributeProto *act = ox_attr(n, "activations");
    if (act) {
        static const char *const DEFAULT[] = {"Sigmoid", "Tanh", "Tanh"};
        int per = s->lstm ? 3 : 2;
        if ((int)act->n_strings != per * s->dirs) return ox_error(ox, "activations must name %d functions", per * s->dirs);
        for (size_t i = 0; i < act->n_strings; i++) {
            const char *want = DEFAULT[i % (size_t)per];
            if (act->strings[i].len != strlen(want) || memcmp(act->strings[i].data, want, act->strings[i].len))
                return ox_error(ox, "activations other than the defaults (Sigmoid, Tanh%s) are not supported",
                                s->lstm ? ", Tanh" : "");
        }
    }
    if (hidden <= 0) return ox_error(ox, "hidden_size must be given and positive");
    s->H = hidden;
    return true;
}

static bool check_inputs(OxImport *ox, OxNode *n, RnnShape *s) {
    OxValue *X = n->in[0], *W = n->in[1], *R = n->in[2], *B = n->n_in > 3 ? n->in[3] : NULL;
    int64_t GH = s->gates * s->H;
    if (n->n_in > 4 && n->in[4]) return ox_error(ox, "sequence_lens is not supported (every sequence has the full length)");
    if (n->n_in > 7 && n->in[7]) return ox_error(ox, "peepholes (input P) are not supported");
    if (X->rank != 3 || X->elem != OX_FLOAT) return ox_error(ox, "X must be a 3-D FLOAT tensor [seq, batch, input]");
    s->T = X->dim[0], s->B = X->dim[1], s->I = X->dim[2];
    if (!W->data || !R->data || (B && !B->data))
        return ox_error(ox, "W, R and B must be constants (initializers)");
    if (W->elem != OX_FLOAT || R->elem != OX_FLOAT || (B && B->elem != OX_FLOAT))
        return ox_error(ox, "W, R and B must be FLOAT");
    if (W->rank != 3 || W->dim[0] != s->dirs || W->dim[1] != GH || W->dim[2] != s->I)
        return ox_error(ox, "W has the shape %s; expected [%d, %lld, %lld]", ox_list(ox, W->dim, W->rank), s->dirs,
                        (long long)GH, (long long)s->I);
    if (R->rank != 3 || R->dim[0] != s->dirs || R->dim[1] != GH || R->dim[2] != s->H)
        return ox_error(ox, "R has the shape %s; expected [%d, %lld, %lld]", ox_list(ox, R->dim, R->rank), s->dirs,
                        (long long)GH, (long long)s->H);
    if (B && (B->rank != 2 || B->dim[0] != s->dirs || B->dim[1] != 2 * GH))
        return ox_error(ox, "B has the shape %s; expected [%d, %lld]", ox_list(ox, B->dim, B->rank), s->dirs,
                        (long long)(2 * GH));
    for (int k = 5; k <= 6 && k < n->n_in; k++) {
        OxValue *st = n->in[k];
        if (st && (st->rank != 3 || st->dim[0] != s->dirs || st->dim[1] != s->B || st->dim[2] != s->H || st->elem != OX_FLOAT))
            return ox_error(ox, "%s must be FLOAT [%d, %lld, %lld]", k == 5 ? "initial_h" : "initial_c", s->dirs,
                            (long long)s->B, (long long)s->H);
    }
    return true;
}

static const char *const ROLES[] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};

/* The four PyTorch tensors of direction d (biases NULL without B). */
static void direction_weights(OxImport *ox, const RnnShape *s, OxNode *n, int d, float *t[4]) {
    OxValue *B = n->n_in > 3 ? n->in[3] : NULL;
    int64_t GH = s->gates * s->H;
    t[0] = repack(ox, s, n->in[1], d, s->I, 0);
    t[1] = repack(ox, s, n->in[2], d, s->H, 0);
    t[2] = B ? repack(ox, s, B, d, 1, 0) : NULL;
    t[3] = B ? repack(ox, s, B, d, 1, GH) : NULL;
}

static void tensor_dims(const RnnShape *s, int role, int *rank, int64_t dim[2]) {
    dim[0] = s->gates * s->H;
    dim[1] = role == 0 ? s->I : s->H;
    *rank = role < 2 ? 2 : 1;
}

/* Defines the node's outputs from Y [T, D, B, H], Y_h, Y_c expressions. */
static bool define_outputs(OxImport *ox, OxNode *n, const RnnShape *s, const char *y, const char *yh, const char *yc) {
    const char *text[3] = {y, yh, yc};
    int64_t ydim[4] = {s->T, s->dirs, s->B, s->H}, sdim[3] = {s->dirs, s->B, s->H};
    for (int k = 0; k < 3 && k < (int)n->proto->n_output; k++) {
        if (!*ox_out_name(n, k)) continue;
        if (!text[k]) return ox_error(ox, "output %d is not defined", k);
        if (strchr(text[k], '(')) {
            if (!ox_define(ox, n, k, OX_FLOAT, k ? 3 : 4, k ? sdim : ydim, "%s", text[k])) return false;
            continue;
        }
        /* a name the module call bound: the output is that name */
        OxValue v = {.elem = OX_FLOAT, .rank = 3, .dim = {s->dirs, s->B, s->H}, .expr = text[k], .producer = n->index};
        if (!ox_alias(ox, n, k, &v)) return false;
    }
    return true;
}

/* The standard library's LSTM / GRU module. */
static bool as_module(OxImport *ox, OxNode *n, const RnnShape *s, const char *x) {
    bool bias = n->n_in > 3 && n->in[3];
    const char *kind = s->lstm ? "LSTM" : "GRU";
    const char *m = ox_member_name(ox, n, NULL, s->lstm ? "lstm" : "gru");
    ox_member(ox, "%s = %s(%lld, %lld%s%s)  // ONNX %s%s%s%s%s", m, kind, (long long)s->I, (long long)s->H,
              bias ? "" : ", bias=false", s->dirs == 2 ? ", bidirectional=true" : "", n->in[1]->name, ", ",
              n->in[2]->name, bias ? ", " : "", bias ? n->in[3]->name : "");
    for (int d = 0; d < s->dirs; d++) {
        float *t[4];
        direction_weights(ox, s, n, d, t);
        for (int r = 0; r < 4; r++) {
            if (!t[r]) continue;
            int rank;
            int64_t dim[2];
            tensor_dims(s, r, &rank, dim);
            ox_add_weight(ox, arena_printf(ox->a, "%s.%s_l0%s", m, ROLES[r], d ? "_reverse" : ""), OX_FLOAT, rank, dim,
                          t[r]);
        }
    }
    for (int k = 1; k < 4 && k < n->n_in; k++)
        if (n->in[k]) n->in[k]->owner = m;
    const char *out = ox_fresh_name(ox, arena_printf(ox->a, "%s_out", m));
    const char *h = ox_fresh_name(ox, arena_printf(ox->a, "%s_h", m));
    const char *c = s->lstm ? ox_fresh_name(ox, arena_printf(ox->a, "%s_c", m)) : NULL;
    sb_printf(&ox->body, "    let %s, %s%s%s = %s(%s)\n", out, h, c ? ", " : "", c ? c : "", m, x);
    const char *y = arena_printf(ox->a, "permute(reshape(%s, [%lld, %lld, %d, %lld]), [0, 2, 1, 3])", out,
                                 (long long)s->T, (long long)s->B, s->dirs, (long long)s->H);
    return define_outputs(ox, n, s, y, h, c);
}

/* A param holding a re-packed tensor; its name. */
static const char *loop_param(OxImport *ox, const char *m, int role, int d, const RnnShape *s, float *data) {
    int rank;
    int64_t dim[2];
    tensor_dims(s, role, &rank, dim);
    const char *name = ox_fresh_name(ox, arena_printf(ox->a, "%s_%s_l0%s", m, ROLES[role], d ? "_reverse" : ""));
    ox_member(ox, "param %s: %s = zeros()", name, ox_type_text(ox, OX_FLOAT, rank, dim));
    ox_add_weight(ox, name, OX_FLOAT, rank, dim, data);
    return name;
}

/* The initial state k (5: h, 6: c) of direction d as [B, H] text. */
static const char *initial(OxImport *ox, OxNode *n, const RnnShape *s, int k, int d) {
    OxValue *v = k < n->n_in ? n->in[k] : NULL;
    if (zero_state(v)) return arena_printf(ox->a, "zeros([%lld, %lld])", (long long)s->B, (long long)s->H);
    const char *t = ox_operand(ox, v, -1);
    if (!t) return NULL;
    return arena_printf(ox->a, "reshape(slice(%s, 0, %d, %d), [%lld, %lld])", t, d, d + 1, (long long)s->B,
                        (long long)s->H);
}

/* The recurrence written out: one `for` loop per direction. */
static bool as_loops(OxImport *ox, OxNode *n, const RnnShape *s, const char *x) {
    const char *m = ox_member_name(ox, n, NULL, s->lstm ? "lstm" : "gru");
    ox_member(ox, "// %s: the %s %s's weights in PyTorch's layout (ONNX %s, %s%s%s)", m, ox_out_name(n, 0),
              s->lstm ? "LSTM" : "GRU", n->in[1]->name, n->in[2]->name, n->n_in > 3 && n->in[3] ? ", " : "",
              n->n_in > 3 && n->in[3] ? n->in[3]->name : "");
    StrBuf y = {0}, yh = {0}, yc = {0};
    const char *sep = "";
    bool ok = true;
    for (int d = 0; d < s->dirs && ok; d++) {
        float *t[4];
        const char *p[4] = {0};
        direction_weights(ox, s, n, d, t);
        for (int r = 0; r < 4; r++)
            if (t[r]) p[r] = loop_param(ox, m, r, d, s, t[r]);
        bool backward = s->reverse_only || d == 1;
        const char *tag = arena_printf(ox->a, "%s%s", m, d ? "_reverse" : "");
        const char *xw = ox_fresh_name(ox, arena_printf(ox->a, "%s_xw", tag));
        const char *h = ox_fresh_name(ox, arena_printf(ox->a, "%s_h", tag));
        const char *c = ox_fresh_name(ox, arena_printf(ox->a, "%s_c", tag));
        const char *out = ox_fresh_name(ox, arena_printf(ox->a, "%s_out", tag));
        const char *xt = ox_fresh_name(ox, arena_printf(ox->a, "%s_xt", tag));
        const char *h0 = initial(ox, n, s, 5, d), *c0 = s->lstm ? initial(ox, n, s, 6, d) : "";
        if (!h0 || !c0) {
            ok = false;
            break;
        }
        const char *bias = !p[2] ? "" : s->lstm ? arena_printf(ox->a, " + (%s + %s)", p[2], p[3]) : arena_printf(ox->a, " + %s", p[2]);
        sb_printf(&ox->body, "    let %s = %s @ transpose(%s)%s\n", xw, x, p[0], bias);
        sb_printf(&ox->body, "    let %s = %s\n", h, h0);
        if (s->lstm) sb_printf(&ox->body, "    let %s = %s\n", c, c0);
        sb_printf(&ox->body, "    let %s = for %s in %s%s%s {\n", out, xt, backward ? "reversed(" : "", xw, backward ? ")" : "");
        if (s->lstm) {
            const char *g[4];
            for (int k = 0; k < 4; k++) g[k] = ox_fresh_name(ox, arena_printf(ox->a, "%s_%c", tag, "ifgo"[k]));
            sb_printf(&ox->body, "      let %s, %s, %s, %s = chunk(%s + %s @ transpose(%s), 4, dim=-1)\n", g[0], g[1], g[2],
                      g[3], xt, h, p[1]);
            sb_printf(&ox->body, "      %s = sigmoid(%s) * %s + sigmoid(%s) * tanh(%s)\n", c, g[1], c, g[0], g[2]);
            sb_printf(&ox->body, "      %s = sigmoid(%s) * tanh(%s)\n", h, g[3], c);
        } else {
            const char *hw = ox_fresh_name(ox, arena_printf(ox->a, "%s_hw", tag)), *g[6];
            for (int k = 0; k < 6; k++)
                g[k] = ox_fresh_name(ox, arena_printf(ox->a, "%s_%c%c", tag, "xh"[k / 3], "rzn"[k % 3]));
            const char *z = ox_fresh_name(ox, arena_printf(ox->a, "%s_z", tag));
            sb_printf(&ox->body, "      let %s = %s @ transpose(%s)%s%s\n", hw, h, p[1], p[3] ? " + " : "", p[3] ? p[3] : "");
            sb_printf(&ox->body, "      let %s, %s, %s = chunk(%s, 3, dim=-1)\n", g[0], g[1], g[2], xt);
            sb_printf(&ox->body, "      let %s, %s, %s = chunk(%s, 3, dim=-1)\n", g[3], g[4], g[5], hw);
            sb_printf(&ox->body, "      let %s = sigmoid(%s + %s)\n", z, g[1], g[4]);
            sb_printf(&ox->body, "      %s = (1.0 - %s) * tanh(%s + sigmoid(%s + %s) * %s) + %s * %s\n", h, z, g[2], g[0],
                      g[3], g[5], z, h);
        }
        sb_printf(&ox->body, "      yield %s\n    }\n", h);
        sb_printf(&y, "%sreshape(%s, [%lld, 1, %lld, %lld])", sep, out, (long long)s->T, (long long)s->B, (long long)s->H);
        sb_printf(&yh, "%sreshape(%s, [1, %lld, %lld])", sep, h, (long long)s->B, (long long)s->H);
        sb_printf(&yc, "%sreshape(%s, [1, %lld, %lld])", sep, c, (long long)s->B, (long long)s->H);
        sep = ", ";
    }
    const char *wrap = s->dirs == 2 ? "cat(" : "";
    if (ok)
        ok = define_outputs(ox, n, s, arena_printf(ox->a, "%s%s%s", wrap, y.s, s->dirs == 2 ? ", dim=1)" : ""),
                            arena_printf(ox->a, "%s%s%s", wrap, yh.s, s->dirs == 2 ? ", dim=0)" : ""),
                            s->lstm ? arena_printf(ox->a, "%s%s%s", wrap, yc.s, s->dirs == 2 ? ", dim=0)" : "") : NULL);
    sb_free(&y);
    sb_free(&yh);
    sb_free(&yc);
    return ok;
}

bool ox_rule_rnn(OxImport *ox, OxNode *n, const char *arg) {
    RnnShape s = {.lstm = !strcmp(arg, "LSTM")};
    s.gates = s.lstm ? 4 : 3;
    if (!check_attrs(ox, n, &s) || !check_inputs(ox, n, &s)) return false;
    const char *x = ox_operand(ox, n->in[0], -1);
    if (!x) return false;
    bool zero = zero_state(n->n_in > 5 ? n->in[5] : NULL) && zero_state(n->n_in > 6 ? n->in[6] : NULL);
    if (zero && !s.reverse_only) return as_module(ox, n, &s, x);
    return as_loops(ox, n, &s, x);
}
