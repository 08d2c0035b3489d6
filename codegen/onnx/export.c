/* export.c: the ONNX exporter's driver (export.h). It refuses a graph
 * holding an op without an ONNX mapping or beyond its mapping's limits (at
 * that op's source location, scan bodies included) before building anything, then builds the ModelProto:
 * the graph's inputs with their static types, each param as an initializer
 * under its dotted name, the nodes each op's table row writes, in id order
 * (already a topological order), and the outputs ("output", or "output_0",
 * "output_1", ... for several). A scan's body becomes a GraphProto the same
 * way (onnx_subgraph). The model is packed by protobuf-c and written
 * atomically (a temporary file renamed into place). */
#include <stdlib.h>
#include <string.h>

#include "codegen/onnx/emit_onnx.h"
#include "runtime/etch_rt.h"

/* The largest file written: protobuf's limit for one message, as for import. */
#define ONNX_EXPORT_MAX_BYTES ((size_t)2 << 30)

/* The ONNX IR version that goes with an opset (onnx/helper.py's table). */
static int64_t ir_version_of(int opset) { return opset <= 13 ? 7 : 8; }

static bool check_ops(const Graph *g, Diag *d) {
    for (int id = 0; id < g->n_nodes; id++) {
        const Node *n = &g->nodes[id];
        if (!onnx_check_node(g, id, d)) return false;
        if (!onnx_export_supports(n->op))
            return diag_error(d, n->loc, "op '%s' has no ONNX mapping: etch export cannot write it "
                                         "(docs/onnx.md lists the ops export writes)", op_table[n->op].name);
        if (n->attr.body && !check_ops(n->attr.body, d)) return false;
    }
    return true;
}

/* The name of output k of n: PREFIX/output[_k], or without a prefix the
 * plain name unless an input or a param has it. */
static const char *output_name(OnnxEmitter *e, const char *prefix, int k, int n) {
    const char *name = n == 1 ? "output" : arena_printf(e->a, "output_%d", k);
    if (prefix) return arena_printf(e->a, "%s/%s", prefix, name);
    if (graph_find_input(e->g, name) >= 0 || graph_find_param(e->g, name) >= 0) name = arena_printf(e->a, "/%s", name);
    return name;
}

/* Every value's name: input_names[k] for input k when given (a scan body's:
 * its captures are the outer graph's values), else an input's or param's
 * own; "PREFIX/<op>_<id>" for the rest (the slash keeps them apart from DSL
 * names), except that a computed value returned by the graph takes its
 * output's name. Output k that cannot be renamed (an input, a param, a value
 * returned twice) gets an Identity node, marked in *identity. */
static const char **name_values(OnnxEmitter *e, const char *prefix, const char *const *input_names,
                                const char **out_names, bool *identity) {
    const Graph *g = e->g;
    const char **names = arena_alloc(e->a, sizeof *names * (size_t)(g->n_nodes + 1));
    bool *renamed = arena_alloc(e->a, (size_t)g->n_nodes + 1);
    for (int id = 0; id < g->n_nodes; id++) {
        const Node *n = &g->nodes[id];
        names[id] = n->op == OP_INPUT || n->op == OP_PARAM
                        ? n->attr.name
                        : arena_printf(e->a, "%s/%s_%d", prefix ? prefix : "", op_table[n->op].name, id);
    }
    for (int k = 0; input_names && k < g->n_inputs; k++) names[g->inputs[k]] = input_names[k];
    for (int k = 0; k < g->n_outputs; k++) {
        int id = g->outputs[k];
        out_names[k] = output_name(e, prefix, k, g->n_outputs);
        OpKind op = g->nodes[id].op;
        identity[k] = op == OP_INPUT || op == OP_PARAM || renamed[id];
        if (!identity[k]) names[id] = out_names[k], renamed[id] = true;
    }
    return names;
}

/* g as a GraphProto: its first n_inputs inputs as graph inputs, params as
 * initializers (values params[i]; none when NULL), the nodes, the outputs. */
static Onnx__GraphProto *build_graph(Arena *a, const Graph *g, const char *prefix, const char *const *input_names,
                                     int n_inputs, Tensor *const *params) {
    OnnxEmitter e = {.a = a, .g = g};
    const char **out_names = arena_alloc(a, sizeof *out_names * (size_t)(g->n_outputs + 1));
    bool *identity = arena_alloc(a, (size_t)g->n_outputs + 1);
    e.names = name_values(&e, prefix, input_names, out_names, identity);
    Onnx__GraphProto *graph = arena_alloc(a, sizeof *graph);
    onnx__graph_proto__init(graph);
    graph->name = arena_strdup(a, g->name);
    graph->n_input = (size_t)n_inputs;
    graph->input = arena_alloc(a, sizeof *graph->input * (size_t)(n_inputs + 1));
    for (int i = 0; i < n_inputs; i++) {
        const Node *n = &g->nodes[g->inputs[i]];
        graph->input[i] = onnx_value_info(&e, e.names[g->inputs[i]], n->dtype, &n->shape);
    }
    if (params) {
        graph->n_initializer = (size_t)g->n_params;
        graph->initializer = arena_alloc(a, sizeof *graph->initializer * (size_t)(g->n_params + 1));
        for (int i = 0; i < g->n_params; i++) {
            const Node *n = &g->nodes[g->params[i]];
            graph->initializer[i] = onnx_tensor(&e, n->attr.name, n->dtype, &n->shape, params[i]->data);
        }
    }
    for (int id = 0; id < g->n_nodes; id++) {
        const OnnxOpRow *row = &onnx_op_table[g->nodes[id].op];
        row->emit(&e, g, id, row->op_type);
    }
    graph->n_output = (size_t)g->n_outputs;
    graph->output = arena_alloc(a, sizeof *graph->output * (size_t)(g->n_outputs + 1));
    for (int k = 0; k < g->n_outputs; k++) {
        const Node *n = &g->nodes[g->outputs[k]];
        if (identity[k]) onnx_node(&e, "Identity", &e.names[g->outputs[k]], 1, out_names[k]);
        graph->output[k] = onnx_value_info(&e, out_names[k], n->dtype, &n->shape);
    }
    graph->n_node = e.n_nodes;
    graph->node = e.nodes;
    return graph;
}

Onnx__GraphProto *onnx_subgraph(OnnxEmitter *e, const Graph *body, const char *prefix, const char *const *input_names,
                                int n_graph_inputs) {
    return build_graph(e->a, body, prefix, input_names, n_graph_inputs, NULL);
}

static bool write_model(const Onnx__ModelProto *m, const char *path, Diag *d) {
    size_t size = onnx__model_proto__get_packed_size(m);
    if (size > ONNX_EXPORT_MAX_BYTES)
        return diag_error_plain(d, "%s: the model would take %zu MiB; an ONNX file (one protobuf message) holds at "
                                   "most %zu MiB",
                                path, size >> 20, ONNX_EXPORT_MAX_BYTES >> 20);
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) abort();
    onnx__model_proto__pack(m, buf);
    char err[1024];
    int rc = etch_write_file_atomic(path, buf, size, err, sizeof err);
    free(buf);
    return rc ? diag_error_plain(d, "%s", err) : true;
}

bool onnx_export(const Graph *g, Tensor *const *params, const OnnxExportOptions *o, const char *path, Diag *d) {
    if (!check_ops(g, d)) return false;
    Arena *a = arena_new();
    Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    opset.domain = "";
    opset.has_version = 1;
    opset.version = o->opset;
    Onnx__OperatorSetIdProto *opsets[] = {&opset};
    Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
    m.has_ir_version = 1;
    m.ir_version = ir_version_of(o->opset);
    m.n_opset_import = 1;
    m.opset_import = opsets;
    m.producer_name = "etch";
    m.producer_version = (char *)(o->producer_version ? o->producer_version : "");
    m.graph = build_graph(a, g, NULL, NULL, g->n_inputs, params);
    bool ok = write_model(&m, path, d);
    arena_free(a);
    return ok;
}
