/* softmax.c (C backend): softmax and log_softmax along one axis, per row:
 * its maximum, the sum of exponentials in double, then the result; the same
 * numerics as the reference kernel (ir/ops/softmax.c). */
#include <stdio.h>

#include "codegen/c/ops/c_ops.h"

void cemit_softmax_row(CEmitter *e, OpKind op, const char *T, int64_t len, int64_t inner) {
    char k[16];
    cemit_line(e, "double mx = -INFINITY, sum = 0;");
    cemit_for(e, k, sizeof k, len);
    cemit_line(e, "mx = (double)xr[%s * %lld] > mx ? (double)xr[%s * %lld] : mx;", k, (long long)inner, k,
               (long long)inner);
    cemit_close(e);
    /* exp in the value's own type (ETCH_EXP: the inlined, vectorizable float
     * exp for f32; libm for f64), the sum in double */
    cemit_line(e, "const %s mt = (%s)mx;", T, T);
    cemit_for(e, k, sizeof k, len);
    cemit_line(e, "sum += (double)ETCH_EXP((%s)(xr[%s * %lld] - mt));", T, k, (long long)inner);
    cemit_close(e);
    if (op == OP_LOG_SOFTMAX) cemit_line(e, "const double lse = mx + log(sum); (void)mt;");
    else cemit_line(e, "const double inv = 1.0 / sum;");
    cemit_for(e, k, sizeof k, len);
    if (op == OP_LOG_SOFTMAX)
        cemit_line(e, "yr[%s * %lld] = (%s)((double)xr[%s * %lld] - lse);", k, (long long)inner, T, k, (long long)inner);
    else
        cemit_line(e, "yr[%s * %lld] = ETCH_EXP((%s)(xr[%s * %lld] - mt)) * (%s)inv;", k, (long long)inner, T, k,
                   (long long)inner, T);
    cemit_close(e);
}

void emit_softmax(CEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    int64_t outer, len, inner;
    ops_split_axis(&n->shape, n->attr.axis, &outer, &len, &inner);
    const char *x = e->buf[n->in[0]], *y = e->buf[id], *T = dtype_c_type(n->dtype);
    char o[16], i[16], base[96];
    cemit_for(e, o, sizeof o, outer);
    cemit_for(e, i, sizeof i, inner);
    snprintf(base, sizeof base, "%s * %lld + %s", o, (long long)(len * inner), i);
    cemit_line(e, "const %s *xr = %s + %s;", T, x, base);
    cemit_line(e, "%s *yr = %s + %s;", T, y, base);
    cemit_softmax_row(e, n->op, T, len, inner);
    cemit_close(e);
    cemit_close(e);
}
