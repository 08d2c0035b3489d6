/* scan.c: the loop op (ir/ops/scan.c) as an ONNX Scan. The carries are
 * Scan's state variables and the sequences its scan inputs (time-major, as
 * in the IR); the body becomes the Scan's body graph (export.c's
 * onnx_subgraph), whose captured values are the outer graph's, read by name
 * as ONNX subgraphs may. Scan returns the final carries and the stacked
 * per-step outputs as separate values, while the IR's scan is one flat
 * tensor holding them in that order (ScanLayout), so each is flattened and
 * the pieces concatenated; the slices the front end cuts from it then
 * follow as usual. A reverse scan reads and stacks from the end
 * (scan_input_directions and scan_output_directions 1), as the IR's does. */
#include "codegen/onnx/emit_onnx.h"
#include "ir/ops/ops_impl.h"

void onnx_emit_scan(OnnxEmitter *e, const Graph *g, int id, const char *op_type) {
    const Node *n = &g->nodes[id];
    const Graph *B = n->attr.body;
    int nc = n->attr.n_carry, nx = n->attr.n_xs, nout = B->n_outputs;
    const char *prefix = e->names[id];
    const char **body_in = arena_alloc(e->a, sizeof *body_in * (size_t)(n->n_in + 1));
    const char **scan_in = arena_alloc(e->a, sizeof *scan_in * (size_t)(n->n_in + 1));
    for (int k = 0; k < n->n_in; k++) {
        scan_in[k] = e->names[n->in[k]];
        body_in[k] = k < nc + nx ? arena_printf(e->a, "%s/%s", prefix, B->nodes[B->inputs[k]].attr.name) : scan_in[k];
    }
    const char **outs = arena_alloc(e->a, sizeof *outs * (size_t)(nout + 1));
    for (int k = 0; k < nout; k++)
        outs[k] = arena_printf(e->a, "%s/%s_%d", prefix, k < nc ? "final" : "stacked", k < nc ? k : k - nc);
    Onnx__NodeProto *p = onnx_node(e, op_type, scan_in, nc + nx, outs[0]);
    onnx_node_outputs(e, p, outs, nout);
    onnx_attr_graph(e, p, "body", onnx_subgraph(e, B, prefix, body_in, nc + nx));
    onnx_attr_int(e, p, "num_scan_inputs", nx);
    if (n->attr.reverse) {
        int64_t ones[ETCH_MAX_OPERANDS];
        for (int k = 0; k < ETCH_MAX_OPERANDS; k++) ones[k] = 1;
        onnx_attr_ints(e, p, "scan_input_directions", ones, nx);
        if (nout > nc) onnx_attr_ints(e, p, "scan_output_directions", ones, nout - nc);
    }
    /* the IR's flat result: every output flattened, in order, concatenated */
    ScanLayout L;
    scan_layout(g, n, &L);
    const char **flat = arena_alloc(e->a, sizeof *flat * (size_t)(nout + 1));
    for (int k = 0; k < nout; k++) {
        int64_t numel = L.numel[k] * (k < nc ? 1 : L.T);
        const char *in[2] = {outs[k], onnx_const_ints(e, id, arena_printf(e->a, "flat_%d/shape", k), &numel, 1)};
        flat[k] = nout == 1 ? e->names[id] : arena_printf(e->a, "%s/flat_%d", prefix, k);
        onnx_node(e, "Reshape", in, 2, flat[k]);
    }
    if (nout > 1) onnx_attr_int(e, onnx_node(e, "Concat", flat, nout, e->names[id]), "axis", 0);
}
