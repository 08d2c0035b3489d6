/* ops.c: the ONNX exporter's emitters, named in codegen/onnx/ops.def. Each
 * writes the ONNX node (or the few nodes) computing node id of g, reading
 * its operands under e->names[operand] and defining e->names[id]. Lists an
 * op needs as inputs (a Reshape's shape, a Slice's starts) become Constant
 * nodes named after the node ("<name>/shape"), as torch.onnx.export writes
 * them, so the initializers are exactly the model's params. */
#include <string.h>

#include "codegen/onnx/emit_onnx.h"
#include "ir/tensor.h"

/* The ONNX names of node id's operands. */
static void operand_names(const OnnxEmitter *e, const Graph *g, int id, const char **out) {
    const Node *n = &g->nodes[id];
    for (int k = 0; k < n->n_in; k++) out[k] = e->names[n->in[k]];
}

/* Inputs and params are the graph's inputs and initializers (export.c). */
void onnx_emit_source(OnnxEmitter *e, const Graph *g, int id, const char *op_type) {
    (void)e, (void)g, (void)id, (void)op_type;
}

/* const: a Constant of the one value, or ConstantOfShape when it fills more
 * than one element; iota: a Constant of its values. */
void onnx_emit_constant(OnnxEmitter *e, const Graph *g, int id, const char *op_type) {
    const Node *n = &g->nodes[id];
    int64_t numel = shape_numel(&n->shape);
    if (n->op == OP_CONST && numel > 1) {
        int64_t dims[ETCH_MAX_RANK];
        for (int i = 0; i < n->shape.rank; i++) dims[i] = n->shape.dim[i];
        const char *shape = onnx_const_ints(e, id, "shape", dims, n->shape.rank);
        Shape one = {.rank = 1, .dim = {1}};
        Onnx__NodeProto *p = onnx_node(e, "ConstantOfShape", &shape, 1, e->names[id]);
        void *value = onnx_scalar_data(e, n->dtype, n->attr.value);
        onnx_attr_tensor(e, p, "value", onnx_tensor(e, NULL, n->dtype, &one, value));
        return;
    }
    void *data;
    if (n->op == OP_CONST) {
        data = onnx_scalar_data(e, n->dtype, n->attr.value);
    } else {
        Tensor *t = tensor_new(n->dtype, n->shape);
        op_table[n->op].eval(g, id, t, NULL);
        data = arena_alloc(e->a, tensor_nbytes(t) + 1);
        memcpy(data, t->data, tensor_nbytes(t));
        tensor_free(t);
    }
    onnx_attr_tensor(e, onnx_node(e, op_type, NULL, 0, e->names[id]), "value",
                     onnx_tensor(e, NULL, n->dtype, &n->shape, data));
}

/* One ONNX op of the same operands and no attributes (NumPy broadcasting on both sides). */
void onnx_emit_plain(OnnxEmitter *e, const Graph *g, int id, const char *op_type) {
    const char *in[ETCH_MAX_OPERANDS];
    operand_names(e, g, id, in);
    onnx_node(e, op_type, in, g->nodes[id].n_in, e->names[id]);
}

/* ne: Not(Equal(a, b)). */
void onnx_emit_then_not(OnnxEmitter *e, const Graph *g, int id, const char *op_type) {
    const char *in[2];
    operand_names(e, g, id, in);
    const char *eq = onnx_aux_name(e, id, op_type);
    onnx_node(e, op_type, in, 2, eq);
    onnx_node(e, "Not", &eq, 1, e->names[id]);
}

/* rsqrt: Reciprocal(Sqrt(x)). */
void onnx_emit_rsqrt(OnnxEmitter *e, const Graph *g, int id, const char *op_type) {
    const char *x = e->names[g->nodes[id].in[0]];
    const char *root = onnx_aux_name(e, id, "Sqrt");
    onnx_node(e, "Sqrt", &x, 1, root);
    onnx_node(e, op_type, &root, 1, e->names[id]);
}

void onnx_emit_leaky_relu(OnnxEmitter *e, const Graph *g, int id, const char *op_type) {
    Onnx__NodeProto *p = onnx_node(e, op_type, &e->names[g->nodes[id].in[0]], 1, e->names[id]);
    onnx_attr_float(e, p, "alpha", g->nodes[id].attr.value);
}

void onnx_emit_cast(OnnxEmitter *e, const Graph *g, int id, const char *op_type) {
    Onnx__NodeProto *p = onnx_node(e, op_type, &e->names[g->nodes[id].in[0]], 1, e->names[id]);
    onnx_attr_int(e, p, "to", onnx_elem_type(g->nodes[id].dtype));
}

/* ReduceSum takes its axes as an input from opset 13; ReduceMean and
 * ReduceMax as an attribute until opset 18. No axes: nothing is reduced. */
void onnx_emit_reduce(OnnxEmitter *e, const Graph *g, int id, const char *op_type) {
    const Node *n = &g->nodes[id];
    const char *in[2] = {e->names[n->in[0]]};
    if (n->attr.n_axes == 0) {
        onnx_node(e, "Identity", in, 1, e->names[id]);
        return;
    }
    int64_t axes[ETCH_MAX_RANK];
    for (int i = 0; i < n->attr.n_axes; i++) axes[i] = n->attr.axes[i];
    bool axes_input = !strcmp(op_type, "ReduceSum");
    if (axes_input) in[1] = onnx_const_ints(e, id, "axes", axes, n->attr.n_axes);
    Onnx__NodeProto *p = onnx_node(e, op_type, in, axes_input ? 2 : 1, e->names[id]);
    if (!axes_input) onnx_attr_ints(e, p, "axes", axes, n->attr.n_axes);
    onnx_attr_int(e, p, "keepdims", n->attr.keepdims);
}

/* matmul: an operand stored transposed (trans_a, trans_b) is transposed
 * back first (its last two dims swapped); MatMul has NumPy's rules, as the IR. */
void onnx_emit_matmul(OnnxEmitter *e, const Graph *g, int id, const char *op_type) {
    const Node *n = &g->nodes[id];
    const char *in[2];
    operand_names(e, g, id, in);
    bool trans[2] = {n->attr.trans_a, n->attr.trans_b};
    for (int k = 0; k < 2; k++) {
        int rank = g->nodes[n->in[k]].shape.rank;
        if (!trans[k] || rank < 2) continue;
        int64_t perm[ETCH_MAX_RANK];
        for (int i = 0; i < rank; i++) perm[i] = i;
        perm[rank - 2] = rank - 1, perm[rank - 1] = rank - 2;
        const char *t = onnx_aux_name(e, id, k ? "transpose_b" : "transpose_a");
        onnx_attr_ints(e, onnx_node(e, "Transpose", &in[k], 1, t), "perm", perm, rank);
        in[k] = t;
    }
    onnx_node(e, op_type, in, 2, e->names[id]);
}

/* reshape, broadcast: Reshape / Expand to the node's own static shape. */
void onnx_emit_to_shape(OnnxEmitter *e, const Graph *g, int id, const char *op_type) {
    const Node *n = &g->nodes[id];
    int64_t dims[ETCH_MAX_RANK];
    for (int i = 0; i < n->shape.rank; i++) dims[i] = n->shape.dim[i];
    const char *in[2] = {e->names[n->in[0]], onnx_const_ints(e, id, "shape", dims, n->shape.rank)};
    onnx_node(e, op_type, in, 2, e->names[id]);
}

void onnx_emit_transpose(OnnxEmitter *e, const Graph *g, int id, const char *op_type) {
    const Node *n = &g->nodes[id];
    int64_t perm[ETCH_MAX_RANK];
    for (int i = 0; i < n->attr.n_axes; i++) perm[i] = n->attr.axes[i];
    onnx_attr_ints(e, onnx_node(e, op_type, &e->names[n->in[0]], 1, e->names[id]), "perm", perm, n->attr.n_axes);
}

/* softmax, log_softmax: along one axis (the opset 13 definition). */
void onnx_emit_softmax(OnnxEmitter *e, const Graph *g, int id, const char *op_type) {
    const Node *n = &g->nodes[id];
    onnx_attr_int(e, onnx_node(e, op_type, &e->names[n->in[0]], 1, e->names[id]), "axis", n->attr.axis);
}

/* The window attributes conv2d and the pools share: strides and pads
 * ({h, w} as [h_begin, w_begin, h_end, w_end]). */
static void window_attrs(OnnxEmitter *e, Onnx__NodeProto *p, const NodeAttrs *a, const int *kernel) {
    int64_t k[2] = {kernel[0], kernel[1]}, s[2] = {a->conv.stride[0], a->conv.stride[1]};
    int64_t pads[4] = {a->conv.pad[0], a->conv.pad[1], a->conv.pad[0], a->conv.pad[1]};
    onnx_attr_ints(e, p, "kernel_shape", k, 2);
    onnx_attr_ints(e, p, "strides", s, 2);
    onnx_attr_ints(e, p, "pads", pads, 4);
}

/* conv2d (no bias: the front end adds it as its own op). */
void onnx_emit_conv2d(OnnxEmitter *e, const Graph *g, int id, const char *op_type) {
    const Node *n = &g->nodes[id];
    const Shape *w = &g->nodes[n->in[1]].shape;
    const char *in[2];
    operand_names(e, g, id, in);
    Onnx__NodeProto *p = onnx_node(e, op_type, in, 2, e->names[id]);
    int kernel[2] = {(int)w->dim[2], (int)w->dim[3]};
    window_attrs(e, p, &n->attr, kernel);
    int64_t dil[2] = {n->attr.conv.dilation[0], n->attr.conv.dilation[1]};
    onnx_attr_ints(e, p, "dilations", dil, 2);
    onnx_attr_int(e, p, "group", n->attr.conv.groups);
}

/* max_pool2d pads with -inf as MaxPool does; avg_pool2d counts the padding
 * (PyTorch's count_include_pad=True), so AveragePool gets count_include_pad=1. */
void onnx_emit_pool2d(OnnxEmitter *e, const Graph *g, int id, const char *op_type) {
    const Node *n = &g->nodes[id];
    Onnx__NodeProto *p = onnx_node(e, op_type, &e->names[n->in[0]], 1, e->names[id]);
    window_attrs(e, p, &n->attr, n->attr.conv.kernel);
    if (n->op == OP_AVG_POOL2D) onnx_attr_int(e, p, "count_include_pad", 1);
}

/* slice {axis, start, length}: Slice(x, [start], [start + length], [axis]). */
void onnx_emit_slice(OnnxEmitter *e, const Graph *g, int id, const char *op_type) {
    const Node *n = &g->nodes[id];
    int64_t start = n->attr.start, end = n->attr.start + n->attr.length, axis = n->attr.axis;
    const char *in[4] = {e->names[n->in[0]], onnx_const_ints(e, id, "starts", &start, 1),
                         onnx_const_ints(e, id, "ends", &end, 1), onnx_const_ints(e, id, "axes", &axis, 1)};
    onnx_node(e, op_type, in, 4, e->names[id]);
}

/* pad {before, after, value}: Pad in constant mode, pads = befores then afters. */
void onnx_emit_pad(OnnxEmitter *e, const Graph *g, int id, const char *op_type) {
    const Node *n = &g->nodes[id];
    int rank = n->shape.rank;
    int64_t pads[2 * ETCH_MAX_RANK];
    for (int i = 0; i < rank; i++) pads[i] = n->attr.pad_before[i], pads[rank + i] = n->attr.pad_after[i];
    const char *in[3] = {e->names[n->in[0]], onnx_const_ints(e, id, "pads", pads, 2 * rank),
                         onnx_const_scalar(e, id, "value", n->dtype, n->attr.value)};
    onnx_node(e, op_type, in, 3, e->names[id]);
}

void onnx_emit_concat(OnnxEmitter *e, const Graph *g, int id, const char *op_type) {
    const char *in[2];
    operand_names(e, g, id, in);
    onnx_attr_int(e, onnx_node(e, op_type, in, 2, e->names[id]), "axis", g->nodes[id].attr.axis);
}

/* gather_rows(table, ids): Gather along axis 0. An id out of range gives a
 * zero row in etch; ONNX leaves it undefined (onnxruntime refuses it). */
void onnx_emit_gather_rows(OnnxEmitter *e, const Graph *g, int id, const char *op_type) {
    const char *in[2];
    operand_names(e, g, id, in);
    onnx_attr_int(e, onnx_node(e, op_type, in, 2, e->names[id]), "axis", 0);
}

/* The zero point of quantize/dequantize node id as ONNX wants it, of the
 * quantized type t: a Constant for a const node, else Cast(zp) (the IR's is
 * i32; ONNX's has the values' type). INT32 values take it as it is. */
static const char *zero_point_as(OnnxEmitter *e, const Graph *g, int id, DType t) {
    const Node *z = &g->nodes[g->nodes[id].in[2]];
    if (t == DT_I32) return e->names[g->nodes[id].in[2]];
    if (z->op == OP_CONST && z->shape.rank == 0) return onnx_const_scalar(e, id, "zero_point", t, z->attr.value);
    const char *name = onnx_aux_name(e, id, "zero_point");
    onnx_attr_int(e, onnx_node(e, "Cast", &e->names[g->nodes[id].in[2]], 1, name), "to", onnx_elem_type(t));
    return name;
}

/* quantize, dequantize: QuantizeLinear / DequantizeLinear (opset 13: per
 * tensor, or per axis with `axis`), the same arithmetic (round half to even,
 * saturation; (q - zp) * scale). onnx_check_node refuses f64 scales first. */
void onnx_emit_quant(OnnxEmitter *e, const Graph *g, int id, const char *op_type) {
    const Node *n = &g->nodes[id];
    DType qt = n->op == OP_QUANTIZE ? n->dtype : g->nodes[n->in[0]].dtype;
    const char *in[3] = {e->names[n->in[0]], e->names[n->in[1]], zero_point_as(e, g, id, qt)};
    Onnx__NodeProto *p = onnx_node(e, op_type, in, 3, e->names[id]);
    if (g->nodes[n->in[1]].shape.rank == 1) onnx_attr_int(e, p, "axis", n->attr.axis);
}

bool onnx_check_node(const Graph *g, int id, Diag *d) {
    const Node *n = &g->nodes[id];
    if ((n->op == OP_QUANTIZE || n->op == OP_DEQUANTIZE) && g->nodes[n->in[1]].dtype != DT_F32)
        return diag_error(d, n->loc, "op '%s' with an %s scale has no ONNX mapping: %s takes FLOAT only (opsets 13 to 17)",
                          op_table[n->op].name, dtype_name(g->nodes[n->in[1]].dtype),
                          n->op == OP_QUANTIZE ? "QuantizeLinear" : "DequantizeLinear");
    if (n->op == OP_QMATMUL || n->op == OP_QCONV2D)
        return diag_error(d, n->loc, "op '%s' has no ONNX mapping: its fixed-point requantization has no exact ONNX "
                                     "form (QLinearMatMul and QLinearConv round a float multiplier); export the float "
                                     "model, whose quantize/dequantize become QuantizeLinear/DequantizeLinear",
                          op_table[n->op].name);
    return true;
}
