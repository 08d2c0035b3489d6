/* elementwise.c (C backend): one loop nest over an unfused elementwise node,
 * its operands read at their broadcast strides (merged loops, ops_loops), its
 * value the op's C template (codegen/c/ops.def) over the operand reads. Fused
 * groups use the same templates (codegen/c/fuse_emit.c). */
#include <stdio.h>

#include "codegen/c/ops/c_ops.h"

void emit_elementwise(CEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    OpsLoops L;
    elementwise_loops(g, n, &L);
    char var[ETCH_MAX_RANK][16], idx[256];
    for (int r = 0; r < L.rank; r++) cemit_for(e, var[r], sizeof var[r], L.dim[r]);
    char operands[3][320];
    for (int k = 0; k < n->n_in; k++) {
        cemit_loops_index(&L, k, var, idx, sizeof idx);
        snprintf(operands[k], sizeof operands[k], "%s[%s]", e->buf[n->in[k]], idx);
    }
    cemit_loops_index(&L, -1, var, idx, sizeof idx);
    StrBuf expr = {0};
    cemit_expand_template(&expr, c_op_table[n->op].c_expr, (const char *const[]){operands[0], operands[1], operands[2]}, n);
    cemit_line(e, "%s[%s] = (%s)%s;", e->buf[id], idx, dtype_c_type(n->dtype), expr.s);
    sb_free(&expr);
    for (int r = 0; r < L.rank; r++) cemit_close(e);
}

void cemit_loops_index(const OpsLoops *L, int k, char (*vars)[16], char *buf, size_t n) {
    size_t len = 0;
    int64_t dense = 1;
    buf[0] = 0;
    for (int r = L->rank - 1; r >= 0; r--) {
        int64_t s = k < 0 ? dense : L->stride[k][r];
        dense *= L->dim[r];
        if (!s) continue;
        if (s == 1) len += (size_t)snprintf(buf + len, len < n ? n - len : 0, "%s%s", len ? " + " : "", vars[r]);
        else len += (size_t)snprintf(buf + len, len < n ? n - len : 0, "%s%s * %lld", len ? " + " : "", vars[r], (long long)s);
    }
    if (!len) snprintf(buf, n, "0");
}

void cemit_convert(StrBuf *b, const char *x, DType t) {
    if (!dtype_is_quantized(t)) {
        sb_printf(b, "ETCH_CAST(%s, %s)", dtype_c_type(t), x);
        return;
    }
    /* clamp, then truncate toward zero, NaN to 0: the eager store's rule
     * (tensor_set). Compared as doubles so that no integer source draws a
     * range warning. */
    int lo = t == DT_I8 ? -128 : 0, hi = t == DT_I8 ? 127 : 255;
    sb_printf(b, "(%s)((double)(%s) >= %d ? %d : (double)(%s) >= %d ? (%s) : (double)(%s) < %d ? %d : 0)",
              dtype_c_type(t), x, hi, hi, x, lo, x, x, lo, lo);
}

void cemit_expand_template(StrBuf *b, const char *tmpl, const char *const *operands, const Node *n) {
    const char *ctype = dtype_c_type(n->dtype);
    for (const char *p = tmpl; *p; p++) {
        if (p[0] == '$' && p[1] >= '0' && p[1] <= '2') {
            sb_puts(b, operands[p[1] - '0']);
            p++;
        } else if (p[0] == '$' && p[1] == 'T') {
            sb_puts(b, ctype);
            p++;
        } else if (p[0] == '$' && p[1] == 'C') {
            cemit_convert(b, operands[0], n->dtype);
            p++;
        } else if (p[0] == '$' && p[1] == 'V') {
            char lit[64];
            cemit_literal(lit, sizeof lit, n->attr.value, n->dtype);
            sb_puts(b, lit);
            p++;
        } else {
            sb_printf(b, "%c", *p);
        }
    }
}
