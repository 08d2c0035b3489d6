/* epilogue.c: matrix products fused with their elementwise consumers. When
 * passes/fuse.c puts a matmul into an elementwise group, the group becomes
 * the GEMM's epilogue: a function the kernel calls on each finished tile of
 * the product (GemmDesc.epilogue, codegen/c/gemm.h), while the tile is still
 * in L1. Each member is computed per element by the same member emitter as
 * any fused loop (the op table's C templates); the product's element comes
 * from the tile, the other operands (a bias broadcast along rows, tensors of
 * the product's shape) are read at the element's row and column. Only
 * members read outside the group are stored; a relu(x @ W + b) never writes
 * x @ W.
 *
 * The function reads its operands' pointers from a struct in the context's
 * scratch that the entry fills right before the call: the kernel's
 * signature stays the same for every product, and the GEMM's worker threads
 * see the same context's scratch (cemit_scratch). */
#include "codegen/c/fused.h"

#include <stdlib.h>
#include <string.h>

#include "codegen/c/ops/c_ops.h"

/* The product in the epilogue group of node `at` (the verifier checks there is exactly one). */
static int fused_matmul_of(const Graph *g, int at) {
    for (int id = 0; id < g->n_nodes; id++)
        if (fuse_same_group(&g->nodes[at], &g->nodes[id]) && g->nodes[id].op == OP_MATMUL) return id;
    return -1;
}

/* "r * 784 + c" for an operand of shape s read as if broadcast to out ([M, N]). */
static void leaf_index(char *buf, size_t n, const Shape *s, const Shape *out) {
    int64_t st[ETCH_MAX_RANK];
    ops_broadcast_strides(s, out, st);
    const char *var[2] = {"r", "c"};
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < 2; i++) {
        if (!st[i] || out->dim[i] == 1) continue;
        if (st[i] == 1) len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? " + " : "", var[i]);
        else len += (size_t)snprintf(buf + len, n - len, "%s%s * %lld", len ? " + " : "", var[i], (long long)st[i]);
    }
    if (!len) snprintf(buf, n, "0");
}

void emit_matmul_group(CEmitter *e, const Graph *g, const MemPlan *mp, int at, int *leaf_slot) {
    int gid = g->nodes[at].attr.group.id, mm = fused_matmul_of(g, at), root = mm;
    for (int id = mm; id < g->n_nodes; id++)
        if (g->nodes[id].attr.group.id == gid) root = id; /* the last member: it gives the group's type */
    const Node *P = &g->nodes[mm];
    int members[OPS_MAX_OPERANDS * 4], n_members, leaves[OPS_MAX_OPERANDS], n_leaves;
    int stores[OPS_MAX_OPERANDS * 4], n_stores = 0;
    /* scalar constants are read in place, as literals */
    cemit_group_collect(g, gid, root + 1, mm, true, leaf_slot, members, &n_members, leaves, &n_leaves);
    for (int m = 0; m < n_members; m++)
        if (mp->kind[members[m]] != STORE_REGISTER) stores[n_stores++] = members[m];
    char name[64], ty[96];
    for (int k = 0;; k++) { /* a name not yet taken in this file */
        snprintf(name, sizeof name, "etch_epilogue%d", k);
        if (cemit_define_once(e, name)) break;
    }
    const char *T = dtype_c_type(P->dtype);
    long long N = (long long)P->shape.dim[1];
    /* one restrict pointer per distinct buffer: a weight updated in place is
     * read and written through the same one, so the loop vectorizes */
    int ptr_of[2 * OPS_MAX_OPERANDS], ptr_node[2 * OPS_MAX_OPERANDS], n_ptrs = 0;
    bool ptr_written[2 * OPS_MAX_OPERANDS] = {false};
    for (int k = 0; k < n_leaves + n_stores; k++) {
        int id = k < n_leaves ? leaves[k] : stores[k - n_leaves], q = 0;
        while (q < n_ptrs && strcmp(e->buf[ptr_node[q]], e->buf[id]) != 0) q++;
        if (q == n_ptrs) ptr_node[n_ptrs++] = id;
        ptr_of[k] = q;
        ptr_written[q] |= k >= n_leaves;
    }

    /* the function, into the preamble before its kernel */
    StrBuf fn = {0};
    if (cemit_define_once(e, "etch_epilogue_support"))
        sb_puts(&fn, "\n/* Epilogues are inlined into each kernel variant, so their loops vectorize per tile\n"
                     " * with its ISA. An element's operands and results sit at that element's index\n"
                     " * (or are read-only), so the column loop carries no dependence: gcc is told so\n"
                     " * (its -O2 vectorizer will not add run-time alias checks, and inlining loses\n"
                     " * `restrict`). */\n"
                     "#if defined(__GNUC__)\n#define ETCH_EPILOGUE static inline __attribute__((always_inline))\n"
                     "#else\n#define ETCH_EPILOGUE static inline\n#endif\n"
                     "#if defined(__GNUC__) && !defined(__clang__)\n#define ETCH_EPILOGUE_IVDEP _Pragma(\"GCC ivdep\")\n"
                     "#else\n#define ETCH_EPILOGUE_IVDEP\n#endif\n");
    sb_printf(&fn, "\n/* %s: %d ops after %%%d = matmul %s (%s), applied by its GEMM to each finished tile\n",
              name, n_members, mm, type_format(ty, sizeof ty, P->dtype, &P->shape), g->name);
    sb_printf(&fn, " * R (rows x cols at row i0, column j0 of the product). */\nstruct %s_args_t {\n", name);
    for (int q = 0; q < n_ptrs; q++)
        sb_printf(&fn, "    %s%s *p%d; /* %s */\n", ptr_written[q] ? "" : "const ", dtype_c_type(g->nodes[ptr_node[q]].dtype),
                  q, e->buf[ptr_node[q]]);
    sb_printf(&fn, "};\n#define %s_args (*(struct %s_args_t *)%s)\n", name, name,
              cemit_scratch(e, (int64_t)sizeof(void *) * n_ptrs));
    sb_printf(&fn, "ETCH_EPILOGUE void %s(const %s *restrict R, int64_t ldr, int64_t i0, int64_t j0, int64_t rows, int64_t cols) {\n",
              name, T);
    for (int q = 0; q < n_ptrs; q++)
        sb_printf(&fn, "    %s%s *restrict const P%d = %s_args.p%d;\n", ptr_written[q] ? "" : "const ",
                  dtype_c_type(g->nodes[ptr_node[q]].dtype), q, name, q);
    const char **buf = malloc(sizeof(char *) * ((size_t)g->n_nodes + 1));
    char (*idx)[320] = malloc(sizeof *idx * ((size_t)n_leaves + 1));
    char (*local)[16] = malloc(sizeof *local * ((size_t)n_ptrs + 1));
    if (!buf || !idx || !local) abort();
    for (int id = 0; id < g->n_nodes; id++) buf[id] = e->buf[id];
    for (int q = 0; q < n_ptrs; q++) snprintf(local[q], sizeof local[q], "P%d", q);
    for (int l = 0; l < n_leaves; l++) {
        buf[leaves[l]] = local[ptr_of[l]];
        leaf_index(idx[l], sizeof idx[l], &g->nodes[leaves[l]].shape, &P->shape);
    }
    sb_printf(&fn, "    for (int64_t i = 0; i < rows; i++)\n        ETCH_EPILOGUE_IVDEP for (int64_t j = 0; j < cols; j++) {\n");
    sb_printf(&fn, "            const int64_t r = i0 + i, c = j0 + j;\n");
    sb_printf(&fn, "            const %s v%d = R[i * ldr + j]; /* matmul */\n", T, mm);
    CEmitter body = *e;
    body.out = &fn, body.buf = buf, body.indent = 3;
    for (int m = 0; m < n_members; m++) cemit_group_member(&body, g, members[m], leaf_slot, idx);
    for (int s = 0; s < n_stores; s++)
        sb_printf(&fn, "            P%d[r * %lld + c] = v%d;\n", ptr_of[n_leaves + s], N, stores[s]);
    sb_puts(&fn, "        }\n}\n");
    sb_puts(e->preamble, fn.s);
    sb_free(&fn);

    /* the call site: the pointers, then the product with the epilogue */
    cemit_line(e, "{ /* fused: %d ops -> %s, the epilogue of %%%d = matmul */", n_members + 1,
               type_format(ty, sizeof ty, g->nodes[root].dtype, &g->nodes[root].shape), mm);
    e->indent++;
    for (int q = 0; q < n_ptrs; q++) cemit_line(e, "%s_args.p%d = %s;", name, q, e->buf[ptr_node[q]]);
    emit_matmul_with(e, g, mm, name);
    e->indent--;
    cemit_line(e, "}");
    for (int l = 0; l < n_leaves; l++) leaf_slot[leaves[l]] = -1;
    free(buf);
    free(idx);
    free(local);
}
