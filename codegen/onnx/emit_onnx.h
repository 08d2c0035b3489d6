/* emit_onnx.h: what the ONNX exporter's files share (not used outside
 * codegen/onnx/). The exporter walks the graph in id order and appends, per
 * node, the ONNX nodes its table row's emitter writes; every IR value has
 * one ONNX name (an input's or param's own name, "/<op>_<id>" otherwise).
 *
 *   proto.c   building the protobuf-c messages: nodes, attributes, tensors
 *   ops.c     the emitters named in ops.def, one per op family
 *   scan.c    scan as an ONNX Scan whose body is the scan's body graph
 *   table.c   onnx_op_table[], expanded from ops.def
 *   export.c  the driver: the op check, names, inputs, initializers,
 *             outputs, the model, packing and the atomic write */
#ifndef ETCH_CODEGEN_ONNX_EMIT_ONNX_H
#define ETCH_CODEGEN_ONNX_EMIT_ONNX_H

#include "codegen/onnx/export.h"
#include "ir/ir.h"
#include "onnx.pb-c.h"

/* The model being written; everything lives in the arena. */
typedef struct OnnxEmitter {
    Arena *a;
    const Graph *g;
    const char **names; /* per node id: the ONNX name of its value */
    Onnx__NodeProto **nodes;
    size_t n_nodes, cap_nodes;
} OnnxEmitter;

typedef void (*OnnxEmitFn)(OnnxEmitter *e, const Graph *g, int id, const char *op_type);

/* One row of the exporter's op table. */
typedef struct OnnxOpRow {
    OnnxEmitFn emit;     /* NULL: no ONNX mapping (ONNX_UNSUPPORTED) */
    const char *op_type; /* the ONNX op it writes, for emitters shared by several ops */
} OnnxOpRow;

#define ONNX_UNSUPPORTED NULL
extern const OnnxOpRow onnx_op_table[OP_COUNT];

/* ---- proto.c ---- */
/* The ONNX element type of an IR dtype (TensorProto.DataType). */
int32_t onnx_elem_type(DType t);
/* Appends a node op_type(in[0..n_in)) -> out, named after its output. */
Onnx__NodeProto *onnx_node(OnnxEmitter *e, const char *op_type, const char *const *in, int n_in, const char *out);
/* Attributes of node n. */
void onnx_attr_int(OnnxEmitter *e, Onnx__NodeProto *n, const char *name, int64_t v);
void onnx_attr_float(OnnxEmitter *e, Onnx__NodeProto *n, const char *name, double v);
void onnx_attr_ints(OnnxEmitter *e, Onnx__NodeProto *n, const char *name, const int64_t *v, int count);
void onnx_attr_tensor(OnnxEmitter *e, Onnx__NodeProto *n, const char *name, Onnx__TensorProto *t);
void onnx_attr_graph(OnnxEmitter *e, Onnx__NodeProto *n, const char *name, Onnx__GraphProto *g);
/* Gives node n the outputs out[0..count) instead of its one. */
void onnx_node_outputs(OnnxEmitter *e, Onnx__NodeProto *n, const char *const *out, int count);
/* A tensor of dtype t and shape s whose raw_data is data (not copied: it
 * must live until the model is packed). */
Onnx__TensorProto *onnx_tensor(OnnxEmitter *e, const char *name, DType t, const Shape *s, const void *data);
/* A graph input or output's type: elem type and static dims. */
Onnx__ValueInfoProto *onnx_value_info(OnnxEmitter *e, const char *name, DType t, const Shape *s);
/* A name for a value the emitter of node id adds besides the node's own
 * ("<node's name>/<what>"). */
const char *onnx_aux_name(OnnxEmitter *e, int id, const char *what);
/* A Constant node holding the 1-D int64 list v (a shape, axes, pads) for
 * node id; returns its name. */
const char *onnx_const_ints(OnnxEmitter *e, int id, const char *what, const int64_t *v, int count);
/* One element of dtype t holding v, in the arena. */
void *onnx_scalar_data(OnnxEmitter *e, DType t, double v);
/* A Constant node holding the scalar v as dtype t, for node id; returns its name. */
const char *onnx_const_scalar(OnnxEmitter *e, int id, const char *what, DType t, double v);

/* ---- ops.c: the emitters of ops.def ---- */
void onnx_emit_source(OnnxEmitter *e, const Graph *g, int id, const char *op_type);
void onnx_emit_constant(OnnxEmitter *e, const Graph *g, int id, const char *op_type);
void onnx_emit_plain(OnnxEmitter *e, const Graph *g, int id, const char *op_type);
void onnx_emit_then_not(OnnxEmitter *e, const Graph *g, int id, const char *op_type);
void onnx_emit_rsqrt(OnnxEmitter *e, const Graph *g, int id, const char *op_type);
void onnx_emit_leaky_relu(OnnxEmitter *e, const Graph *g, int id, const char *op_type);
void onnx_emit_cast(OnnxEmitter *e, const Graph *g, int id, const char *op_type);
void onnx_emit_reduce(OnnxEmitter *e, const Graph *g, int id, const char *op_type);
void onnx_emit_matmul(OnnxEmitter *e, const Graph *g, int id, const char *op_type);
void onnx_emit_to_shape(OnnxEmitter *e, const Graph *g, int id, const char *op_type);
void onnx_emit_transpose(OnnxEmitter *e, const Graph *g, int id, const char *op_type);
void onnx_emit_softmax(OnnxEmitter *e, const Graph *g, int id, const char *op_type);
void onnx_emit_conv2d(OnnxEmitter *e, const Graph *g, int id, const char *op_type);
void onnx_emit_pool2d(OnnxEmitter *e, const Graph *g, int id, const char *op_type);
void onnx_emit_slice(OnnxEmitter *e, const Graph *g, int id, const char *op_type);
void onnx_emit_pad(OnnxEmitter *e, const Graph *g, int id, const char *op_type);
void onnx_emit_concat(OnnxEmitter *e, const Graph *g, int id, const char *op_type);
void onnx_emit_gather_rows(OnnxEmitter *e, const Graph *g, int id, const char *op_type);
void onnx_emit_quant(OnnxEmitter *e, const Graph *g, int id, const char *op_type);
/* Limits of ops the table maps only in part (an f64 scale; qmatmul, with a
 * message saying why), reported at node id's source location. */
bool onnx_check_node(const Graph *g, int id, Diag *d);
/* scan.c */
void onnx_emit_scan(OnnxEmitter *e, const Graph *g, int id, const char *op_type);

/* ---- export.c ---- */
/* A scan body as a GraphProto: its values named PREFIX/..., input k named
 * input_names[k] (the captures: the outer graph's values, which ONNX
 * subgraphs read by name), its first n_graph_inputs inputs declared. */
Onnx__GraphProto *onnx_subgraph(OnnxEmitter *e, const Graph *body, const char *prefix, const char *const *input_names,
                                int n_graph_inputs);

#endif
