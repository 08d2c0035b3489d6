/* quant.c (CUDA backend): quantize, dequantize, fake_quant and its
 * backward, one thread per element, each the C backend's scalar expression
 * (codegen/c/ops/quant.c) on the quantized-arithmetic helpers it shares
 * (quant_emit_helpers: ir/quant.c's arithmetic step for step, here device
 * functions too: ETCH_MAYBE_UNUSED in runtime/cuda/etch_cuda.h), so values
 * are the eager executor's bit for bit. A per-axis scale and zero point are
 * read at the element's channel (the loops of ir/ops/quant.c, QuantLoops).
 * qmatmul and qconv2d are GEMMs and stay with the GEMM code. */
#include <stdio.h>

#include "codegen/c/ops/c_ops.h"
#include "codegen/cuda/cuda_emit.h"

void cuda_emit_quant(CudaEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    QuantLoops L;
    quant_loops(g, n, &L);
    quant_emit_helpers(&e->c);
    int lo, hi;
    quant_op_range(n, &lo, &hi);
    const char *y = e->c.buf[id], *x = e->c.buf[n->in[L.x]], *T = dtype_c_type(n->dtype);
    char what[256], ch[64] = "0";
    if (L.per_axis) snprintf(ch, sizeof ch, "i / %lld %% %lld", (long long)L.inner, (long long)L.len);
    cuda_describe(g, id, what, sizeof what);
    cuda_elementwise_begin(e, shape_numel(&n->shape), what);
    cemit_line(&e->c, "const double qs = (double)%s[%s];", e->c.buf[n->in[L.scale]], ch);
    cemit_line(&e->c, "const int32_t qz = %s[%s];", e->c.buf[n->in[L.zp]], ch);
    switch (n->op) {
    case OP_QUANTIZE:
        cemit_line(&e->c, "%s[i] = (%s)etch_q_quantize((double)%s[i], qs, qz, %d, %d);", y, T, x, lo, hi);
        break;
    case OP_DEQUANTIZE: cemit_line(&e->c, "%s[i] = (%s)etch_q_dequantize(%s[i], qs, qz);", y, T, x); break;
    case OP_FAKE_QUANT:
        cemit_line(&e->c, "%s[i] = (%s)etch_q_dequantize(etch_q_quantize((double)%s[i], qs, qz, %d, %d), qs, qz);", y, T,
                   x, lo, hi);
        break;
    default: /* fake_quant_backward: the gradient where the unclamped value is in range */
        cemit_line(&e->c, "const double qu = etch_q_unclamped((double)%s[i], qs, qz);", x);
        cemit_line(&e->c, "%s[i] = qu >= %d && qu <= %d ? %s[i] : (%s)0;", y, lo, hi, e->c.buf[n->in[0]], T);
        break;
    }
    cuda_elementwise_end(e);
}
