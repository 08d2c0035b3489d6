/* scan.c: the loop op. A scan runs its body graph once per time step, so a
 * recurrence (RNN, LSTM, GRU) is one node whatever the sequence length, and
 * the emitted C is one static function called in a loop: it does not grow
 * with T.
 *
 * Operands: n_carry initial carries, n_xs sequences [T, ...] (time-major),
 * then the values the body captures (weights). The body's inputs are the
 * same list with each sequence replaced by one step of it; its outputs are
 * the new carries, then per-step outputs. The result is one flat tensor
 * holding the final carries followed by every per-step output stacked over
 * time ([T, ...] each); scan_add_extract() cuts one of them out.
 *
 * The gradient is another scan running the other way (vjp_scan): its body is
 * the forward body followed by the body's own backward graph (built by the
 * same autodiff pass), its carries are the gradient of the carries and the
 * running sums of the captured values' gradients, and it reads the forward
 * carries of the step before from the stacked carries (so the forward body
 * must also output every carry as a per-step value; the front end does).
 * The backward body recomputes the step's forward values instead of storing
 * them: memory stays at the stacked carries, at the price of one more
 * forward per step. */
#include <stdlib.h>
#include <string.h>

#include "ir/eager.h"
#include "ir/ops/ops_impl.h"

void scan_layout(const Graph *g, const Node *n, ScanLayout *L) {
    const Graph *B = n->attr.body;
    L->T = n->attr.n_xs > 0 ? g->nodes[n->in[n->attr.n_carry]].shape.dim[0] : 0;
    L->total = 0;
    for (int k = 0; k < B->n_outputs && k < ETCH_MAX_OPERANDS; k++) {
        L->numel[k] = shape_numel(&B->nodes[B->outputs[k]].shape);
        L->off[k] = L->total;
        L->total += L->numel[k] * (k < n->attr.n_carry ? 1 : L->T);
    }
}

/* ---- shape rule ---- */

static bool same_type(const Node *a, DType t, const Shape *s) { return a->dtype == t && shape_equal(&a->shape, s); }

bool shape_scan(Graph *g, Node *n, Diag *d) {
    const Graph *B = n->attr.body;
    int nc = n->attr.n_carry, nx = n->attr.n_xs;
    char a[96], b[96];
    if (!B) return diag_error(d, n->loc, "'scan' has no body graph");
    if (nc < 0 || nx < 1 || nc + nx > n->n_in)
        return diag_error(d, n->loc, "'scan' with %d operands cannot have %d carries and %d sequences (at least one)",
                          n->n_in, nc, nx);
    if (B->n_inputs != n->n_in)
        return diag_error(d, n->loc, "'scan' has %d operands but its body '%s' takes %d inputs", n->n_in, B->name,
                          B->n_inputs);
    if (B->n_outputs < nc || B->n_outputs < 1 || B->n_outputs > ETCH_MAX_OPERANDS)
        return diag_error(d, n->loc, "'scan' body '%s' returns %d values; it must return its %d carries first", B->name,
                          B->n_outputs, nc);
    int64_t T = -1;
    for (int k = 0; k < n->n_in; k++) {
        const Node *x = &g->nodes[n->in[k]], *bi = &B->nodes[B->inputs[k]];
        Shape want = x->shape;
        if (k >= nc && k < nc + nx) { /* a sequence: the body sees one step */
            if (x->shape.rank < 1 || x->shape.dim[0] < 1)
                return diag_error(d, n->loc, "'scan' sequence %d must have a time dim of at least 1, got %s", k - nc,
                                  ops_type_str(a, g, n->in[k]));
            if (T >= 0 && x->shape.dim[0] != T)
                return diag_error(d, n->loc, "'scan' sequences differ in length: %lld steps and %s", (long long)T,
                                  ops_type_str(a, g, n->in[k]));
            T = x->shape.dim[0];
            want.rank--;
            memmove(want.dim, want.dim + 1, sizeof(int64_t) * (size_t)want.rank);
        }
        if (!same_type(bi, x->dtype, &want))
            return diag_error(d, n->loc, "'scan' operand %d is %s but body input '%s' is %s", k,
                              type_format(a, sizeof a, x->dtype, &want), bi->attr.name,
                              type_format(b, sizeof b, bi->dtype, &bi->shape));
    }
    DType t = B->nodes[B->outputs[0]].dtype;
    for (int k = 0; k < B->n_outputs; k++) {
        const Node *o = &B->nodes[B->outputs[k]];
        if (o->dtype != t)
            return diag_error(d, n->loc, "'scan' body outputs must share one dtype: output %d is %s, output 0 is %s",
                              k, type_format(a, sizeof a, o->dtype, &o->shape), dtype_name(t));
        if (k < nc && !same_type(o, g->nodes[n->in[k]].dtype, &g->nodes[n->in[k]].shape))
            return diag_error(d, n->loc, "'scan' carry %d starts as %s but the body makes it %s", k,
                              ops_type_str(a, g, n->in[k]), type_format(b, sizeof b, o->dtype, &o->shape));
    }
    ScanLayout L;
    scan_layout(g, n, &L);
    n->dtype = t;
    n->shape = (Shape){.rank = 1, .dim = {L.total}};
    return true;
}

/* ---- reference kernel: the eager executor runs the body once per step ---- */

void eval_scan(const Graph *g, int id, Tensor *out, const Tensor *const *ins) {
    const Node *n = &g->nodes[id];
    const Graph *B = n->attr.body;
    int nc = n->attr.n_carry, nx = n->attr.n_xs;
    ScanLayout L;
    scan_layout(g, n, &L);
    Tensor *bin[ETCH_MAX_OPERANDS], *bout[ETCH_MAX_OPERANDS], *carry[ETCH_MAX_OPERANDS];
    size_t es = dtype_size(out->dtype);
    for (int k = 0; k < n->n_in; k++) {
        const Node *bi = &B->nodes[B->inputs[k]];
        if (k < nc) carry[k] = tensor_new(bi->dtype, bi->shape);
        if (k < nc) memcpy(carry[k]->data, ins[k]->data, tensor_nbytes(ins[k]));
        bin[k] = k < nc ? carry[k] : k < nc + nx ? tensor_wrap(bi->dtype, bi->shape, NULL) : (Tensor *)ins[k];
    }
    Diag quiet;
    diag_init(&quiet, NULL);
    for (int64_t t = 0; t < L.T; t++) {
        int64_t s = n->attr.reverse ? L.T - 1 - t : t;
        for (int i = 0; i < nx; i++) {
            Tensor *x = bin[nc + i];
            x->data = (char *)ins[nc + i]->data + (size_t)s * tensor_nbytes(x);
        }
        if (!eager_run(B, bin, NULL, bout, NULL, &quiet)) abort(); /* the shape rule checked every type */
        for (int k = 0; k < B->n_outputs; k++) {
            if (k >= nc)
                memcpy((char *)out->data + (size_t)(L.off[k] + s * L.numel[k]) * es, bout[k]->data,
                       tensor_nbytes(bout[k]));
            if (k < nc) {
                tensor_free(carry[k]);
                bin[k] = carry[k] = bout[k];
            } else {
                tensor_free(bout[k]);
            }
        }
    }
    diag_dispose(&quiet);
    for (int k = 0; k < nc; k++) {
        memcpy((char *)out->data + (size_t)L.off[k] * es, carry[k]->data, tensor_nbytes(carry[k]));
        tensor_free(carry[k]);
    }
    for (int i = 0; i < nx; i++) {
        bin[nc + i]->data = NULL;
        tensor_free(bin[nc + i]);
    }
}

/* ---- cutting one body output out of the packed result ---- */

/* s with a leading dim of size t. */
static Shape shape_prepend(Shape s, int64_t t) {
    memmove(s.dim + 1, s.dim, sizeof(int64_t) * (size_t)s.rank);
    s.dim[0] = t;
    s.rank++;
    return s;
}

int scan_add_extract(Graph *g, int scan, int k, SrcLoc loc, Diag *d) { return scan_add_cut(g, scan, scan, k, loc, d); }

int scan_add_cut(Graph *g, int scan, int packed, int k, SrcLoc loc, Diag *d) {
    const Node *n = &g->nodes[scan];
    const Graph *B = n->attr.body;
    ScanLayout L;
    scan_layout(g, n, &L);
    Shape s = B->nodes[B->outputs[k]].shape;
    int64_t len = L.numel[k];
    if (k >= n->attr.n_carry) { /* stacked over time */
        s = shape_prepend(s, L.T);
        len *= L.T;
    }
    int x = packed;
    if (len != L.total) {
        NodeAttrs sl = {.axis = 0, .start = L.off[k], .length = len};
        x = graph_add_op(g, OP_SLICE, &x, 1, &sl, loc, d);
        if (x < 0) return -1;
    }
    NodeAttrs rs = {.shape = s};
    return graph_add_op(g, OP_RESHAPE, &x, 1, &rs, loc, d);
}

/* ---- gradient: a scan of the body's gradient, the other way ---- */

/* Appends node `src` of body B to BB with operands renumbered through map. */
static int copy_into(Graph *BB, const Graph *B, int src, const int *map) {
    Node m = B->nodes[src];
    int ins[ETCH_MAX_OPERANDS];
    for (int k = 0; k < m.n_in; k++) ins[k] = map[m.in[k]];
    m.in = ins;
    return graph_append_raw(BB, &m);
}

static int add_body_input(Graph *BB, const char *prefix, const Node *like, int k) {
    char name[64];
    snprintf(name, sizeof name, "%s%d", prefix, k);
    return graph_add_input(BB, arena_strdup(BB->arena, name), like->dtype, like->shape, like->loc);
}

void vjp_scan(VjpCtx *c) {
    Graph *g = c->g;
    const Node fw = g->nodes[c->id];
    const Graph *B = fw.attr.body;
    int nc = fw.attr.n_carry, nx = fw.attr.n_xs, np = fw.n_in - nc - nx, ny = B->n_outputs - nc;
    SrcLoc loc = fw.loc;
    ScanLayout L;
    scan_layout(g, &fw, &L);
    /* the stacked forward carries: carry k must also be a per-step output */
    int stacked_as[ETCH_MAX_OPERANDS];
    for (int k = 0; k < nc; k++) {
        stacked_as[k] = -1;
        for (int i = 0; i < ny && stacked_as[k] < 0; i++)
            if (B->outputs[nc + i] == B->outputs[k]) stacked_as[k] = nc + i;
        if (stacked_as[k] < 0) {
            diag_error(c->d, loc, "cannot differentiate this scan: carry %d is not also a per-step output", k);
            c->failed = true;
            return;
        }
    }
    bool x_grad[ETCH_MAX_OPERANDS], p_grad[ETCH_MAX_OPERANDS];
    int n_acc = 0, n_gx = 0;
    for (int i = 0; i < nx; i++) n_gx += x_grad[i] = c->needs[nc + i] && dtype_is_float(g->nodes[fw.in[nc + i]].dtype);
    for (int r = 0; r < np; r++) n_acc += p_grad[r] = c->needs[nc + nx + r] && dtype_is_float(g->nodes[fw.in[nc + nx + r]].dtype);
    int n_ops = nc + n_acc + nc + nx + ny + np;
    if (n_ops > ETCH_MAX_OPERANDS) {
        diag_error(c->d, loc, "cannot differentiate this scan: its gradient needs %d operands (at most %d)", n_ops,
                   ETCH_MAX_OPERANDS);
        c->failed = true;
        return;
    }

    /* the backward body: carries (carry gradients, running sums), per-step
     * (previous carries, sequence steps, output gradients), captures */
    Graph *BB = graph_new(g->arena, arena_printf(g->arena, "%s.grad", B->name));
    int *map = arena_alloc(g->arena, sizeof(int) * (size_t)(B->n_nodes + 1));
    int gc[ETCH_MAX_OPERANDS], acc[ETCH_MAX_OPERANDS], gyin[ETCH_MAX_OPERANDS];
    for (int k = 0; k < nc; k++) gc[k] = add_body_input(BB, "grad_carry", &B->nodes[B->inputs[k]], k);
    for (int r = 0, a = 0; r < np; r++)
        if (p_grad[r]) acc[a++] = add_body_input(BB, "grad_sum", &B->nodes[B->inputs[nc + nx + r]], r);
    for (int k = 0; k < nc; k++) map[B->inputs[k]] = add_body_input(BB, "carry", &B->nodes[B->inputs[k]], k);
    for (int i = 0; i < nx; i++) map[B->inputs[nc + i]] = add_body_input(BB, "x", &B->nodes[B->inputs[nc + i]], i);
    for (int i = 0; i < ny; i++) gyin[i] = add_body_input(BB, "grad_y", &B->nodes[B->outputs[nc + i]], i);
    for (int r = 0; r < np; r++) map[B->inputs[nc + nx + r]] = add_body_input(BB, "capture", &B->nodes[B->inputs[nc + nx + r]], r);
    for (int id = 0; id < B->n_nodes; id++)
        if (B->nodes[id].op != OP_INPUT) map[id] = copy_into(BB, B, id, map);
    int outs[ETCH_MAX_OPERANDS * 2], seeds[ETCH_MAX_OPERANDS * 2], wrt[ETCH_MAX_OPERANDS * 2], n_wrt = 0;
    for (int k = 0; k < B->n_outputs; k++) {
        outs[k] = map[B->outputs[k]];
        seeds[k] = k < nc ? gc[k] : gyin[k - nc];
    }
    for (int k = 0; k < nc; k++) wrt[n_wrt++] = map[B->inputs[k]];
    for (int i = 0; i < nx; i++)
        if (x_grad[i]) wrt[n_wrt++] = map[B->inputs[nc + i]];
    for (int r = 0; r < np; r++)
        if (p_grad[r]) wrt[n_wrt++] = map[B->inputs[nc + nx + r]];
    int grads[ETCH_MAX_OPERANDS * 2];
    if (!c->differentiate(BB, outs, seeds, B->n_outputs, wrt, n_wrt, grads, c->d)) {
        c->failed = true;
        return;
    }
    for (int k = 0; k < nc; k++) graph_add_output(BB, grads[k]);
    for (int a = 0; a < n_acc; a++) {
        int sum = graph_add_op(BB, OP_ADD, (int[]){acc[a], grads[nc + n_gx + a]}, 2, NULL, loc, c->d);
        if (sum < 0) {
            c->failed = true;
            return;
        }
        graph_add_output(BB, sum);
    }
    for (int i = 0; i < n_gx; i++) graph_add_output(BB, grads[nc + i]);

    /* operands of the backward scan, in the outer graph */
    int ops[ETCH_MAX_OPERANDS], n = 0;
    for (int k = 0; k < nc; k++) /* the final carries' gradient */
        ops[n++] = scan_add_cut(g, c->id, c->gy, k, loc, c->d);
    for (int r = 0; r < np; r++)
        if (p_grad[r]) {
            const Node *p = &g->nodes[fw.in[nc + nx + r]];
            ops[n++] = ad_node(c, OP_CONST, NULL, 0, &(NodeAttrs){.value = 0, .dtype = p->dtype, .shape = p->shape});
        }
    for (int k = 0; k < nc; k++) { /* the carry each step started from */
        int stacked = scan_add_extract(g, c->id, stacked_as[k], loc, c->d);
        int init = ad_reshape(c, fw.in[k], shape_prepend(g->nodes[fw.in[k]].shape, 1));
        if (stacked < 0 || init < 0) {
            c->failed = true;
            return;
        }
        if (L.T == 1) {
            ops[n++] = init;
            continue;
        }
        NodeAttrs sl = {.axis = 0, .start = fw.attr.reverse ? 1 : 0, .length = L.T - 1};
        int rest = ad_node(c, OP_SLICE, &stacked, 1, &sl);
        NodeAttrs cat = {.axis = 0};
        ops[n++] = fw.attr.reverse ? ad_node(c, OP_CONCAT, (int[]){rest, init}, 2, &cat)
                                   : ad_node(c, OP_CONCAT, (int[]){init, rest}, 2, &cat);
    }
    for (int i = 0; i < nx; i++) ops[n++] = fw.in[nc + i];
    for (int i = 0; i < ny; i++) /* the per-step outputs' gradient */
        ops[n++] = scan_add_cut(g, c->id, c->gy, nc + i, loc, c->d);
    for (int r = 0; r < np; r++) ops[n++] = fw.in[nc + nx + r];
    for (int k = 0; k < n; k++) c->failed |= ops[k] < 0;
    if (c->failed) return;
    NodeAttrs at = {.body = BB, .n_carry = nc + n_acc, .n_xs = nc + nx + ny, .reverse = !fw.attr.reverse};
    int bw = ad_node(c, OP_SCAN, ops, n, &at);
    if (bw < 0) return;
    for (int k = 0; k < nc; k++)
        if (c->needs[k]) c->gx[k] = scan_add_extract(g, bw, k, loc, c->d);
    for (int r = 0, a = 0; r < np; r++)
        if (p_grad[r]) c->gx[nc + nx + r] = scan_add_extract(g, bw, nc + a++, loc, c->d);
    for (int i = 0, j = 0; i < nx; i++)
        if (x_grad[i]) c->gx[nc + i] = scan_add_extract(g, bw, nc + n_acc + j++, loc, c->d);
    for (int k = 0; k < fw.n_in; k++)
        if (c->needs[k] && c->gx[k] < 0 && dtype_is_float(g->nodes[fw.in[k]].dtype)) c->failed = true;
}
