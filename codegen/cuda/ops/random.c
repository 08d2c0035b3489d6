/* random.c (CUDA backend): random_uniform and random_normal, one thread per
 * Philox block: key = seed, counter = (trunc(step), block), as the
 * reference kernels (ir/ops/random.c) and the C backend
 * (codegen/c/ops/random.c) draw them, with the device copy of the runtime's
 * generator (etch_dev_philox4x32 and etch_dev_u01, runtime/cuda/etch_cuda.h).
 * A uniform block gives 4 elements (word k each), a normal block 2 (Box-Muller
 * in double on the word pairs, the same expression), so compiled dropout
 * and randn draw eager's numbers. */
#include <stdio.h>

#include "codegen/cuda/cuda_emit.h"

void cuda_emit_random(CudaEmitter *e, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    bool normal = n->op == OP_RANDOM_NORMAL;
    int per = normal ? 2 : 4;
    long long numel = shape_numel(&n->shape), blocks = (numel + per - 1) / per;
    const char *y = e->c.buf[id];
    char what[256];
    cuda_describe(g, id, what, sizeof what);
    cuda_elementwise_begin(e, blocks, what);
    /* random_step_counter (ir/ops/random.c), spelled out */
    cemit_line(&e->c, "const double s = (double)%s[0];", e->c.buf[n->in[0]]);
    cemit_line(&e->c, "const uint64_t ctr = !(s > 0) ? 0 : s >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)s;");
    cemit_line(&e->c, "uint32_t r[4];");
    cemit_line(&e->c, "etch_dev_philox4x32(UINT64_C(%llu), ctr, (uint64_t)i, r);", (unsigned long long)n->attr.seed);
    for (int k = 0; k < per; k++) { /* unrolled: r stays in registers */
        char value[256], guard[64] = "";
        if (normal)
            snprintf(value, sizeof value, "sqrt(-2.0 * log(1.0 - etch_dev_u01(r[%d]))) * "
                                          "cos(6.283185307179586476925 * etch_dev_u01(r[%d]))", 2 * k, 2 * k + 1);
        else
            snprintf(value, sizeof value, "etch_dev_u01(r[%d])", k);
        if (numel % per && k) snprintf(guard, sizeof guard, "if (i * %d + %d < %lld) ", per, k, numel);
        cemit_line(&e->c, "%s%s[i * %d + %d] = (%s)(%s);", guard, y, per, k, dtype_c_type(n->dtype), value);
    }
    cuda_elementwise_end(e);
}
