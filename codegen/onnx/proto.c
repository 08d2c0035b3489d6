/* proto.c: the protobuf-c messages the ONNX exporter builds (onnx.pb-c.h,
 * generated from python3-onnx's onnx.proto at build time): nodes, their
 * attributes, tensors and value types. Every message lives in the
 * emitter's arena; tensor contents point at data that outlives packing. */
#include <string.h>

#include "codegen/onnx/emit_onnx.h"
#include "ir/tensor.h"

int32_t onnx_elem_type(DType t) {
    switch (t) {
    case DT_F32: return ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    case DT_F64: return ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
    case DT_I32: return ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
    case DT_I64: return ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    case DT_BOOL: return ONNX__TENSOR_PROTO__DATA_TYPE__BOOL;
    case DT_I8: return ONNX__TENSOR_PROTO__DATA_TYPE__INT8;
    case DT_U8: return ONNX__TENSOR_PROTO__DATA_TYPE__UINT8;
    case DT_COUNT: break;
    }
    return ONNX__TENSOR_PROTO__DATA_TYPE__UNDEFINED;
}

Onnx__NodeProto *onnx_node(OnnxEmitter *e, const char *op_type, const char *const *in, int n_in, const char *out) {
    Onnx__NodeProto *n = arena_alloc(e->a, sizeof *n);
    onnx__node_proto__init(n);
    n->op_type = arena_strdup(e->a, op_type);
    n->n_input = (size_t)n_in;
    n->input = arena_alloc(e->a, sizeof *n->input * (size_t)(n_in + 1));
    for (int i = 0; i < n_in; i++) n->input[i] = arena_strdup(e->a, in[i]);
    n->n_output = 1;
    n->output = arena_alloc(e->a, sizeof *n->output);
    n->output[0] = arena_strdup(e->a, out);
    n->name = n->output[0];
    if (e->n_nodes == e->cap_nodes) {
        size_t cap = e->cap_nodes ? 2 * e->cap_nodes : 64;
        Onnx__NodeProto **grown = arena_alloc(e->a, sizeof *grown * cap);
        if (e->n_nodes) memcpy(grown, e->nodes, sizeof *grown * e->n_nodes);
        e->nodes = grown, e->cap_nodes = cap;
    }
    e->nodes[e->n_nodes++] = n;
    return n;
}

/* A new attribute of n (kept in n's attribute list). */
static Onnx__AttributeProto *new_attr(OnnxEmitter *e, Onnx__NodeProto *n, const char *name,
                                      Onnx__AttributeProto__AttributeType type) {
    Onnx__AttributeProto *at = arena_alloc(e->a, sizeof *at);
    onnx__attribute_proto__init(at);
    at->name = arena_strdup(e->a, name);
    at->has_type = 1;
    at->type = type;
    Onnx__AttributeProto **list = arena_alloc(e->a, sizeof *list * (n->n_attribute + 1));
    if (n->n_attribute) memcpy(list, n->attribute, sizeof *list * n->n_attribute);
    list[n->n_attribute++] = at;
    n->attribute = list;
    return at;
}

void onnx_attr_int(OnnxEmitter *e, Onnx__NodeProto *n, const char *name, int64_t v) {
    Onnx__AttributeProto *at = new_attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    at->has_i = 1;
    at->i = v;
}

void onnx_attr_float(OnnxEmitter *e, Onnx__NodeProto *n, const char *name, double v) {
    Onnx__AttributeProto *at = new_attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    at->has_f = 1;
    at->f = (float)v;
}

void onnx_attr_ints(OnnxEmitter *e, Onnx__NodeProto *n, const char *name, const int64_t *v, int count) {
    Onnx__AttributeProto *at = new_attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    at->n_ints = (size_t)count;
    at->ints = arena_alloc(e->a, sizeof *at->ints * (size_t)(count + 1));
    if (count) memcpy(at->ints, v, sizeof *v * (size_t)count);
}

void onnx_attr_tensor(OnnxEmitter *e, Onnx__NodeProto *n, const char *name, Onnx__TensorProto *t) {
    new_attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR)->t = t;
}

void onnx_attr_graph(OnnxEmitter *e, Onnx__NodeProto *n, const char *name, Onnx__GraphProto *g) {
    new_attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH)->g = g;
}

void onnx_node_outputs(OnnxEmitter *e, Onnx__NodeProto *n, const char *const *out, int count) {
    n->n_output = (size_t)count;
    n->output = arena_alloc(e->a, sizeof *n->output * (size_t)(count + 1));
    for (int k = 0; k < count; k++) n->output[k] = arena_strdup(e->a, out[k]);
}

Onnx__TensorProto *onnx_tensor(OnnxEmitter *e, const char *name, DType t, const Shape *s, const void *data) {
    Onnx__TensorProto *tp = arena_alloc(e->a, sizeof *tp);
    onnx__tensor_proto__init(tp);
    if (name) tp->name = arena_strdup(e->a, name);
    tp->has_data_type = 1;
    tp->data_type = onnx_elem_type(t);
    tp->n_dims = (size_t)s->rank;
    tp->dims = arena_alloc(e->a, sizeof *tp->dims * (size_t)(s->rank + 1));
    for (int i = 0; i < s->rank; i++) tp->dims[i] = s->dim[i];
    tp->has_raw_data = 1;
    tp->raw_data.len = (size_t)shape_numel(s) * dtype_size(t);
    tp->raw_data.data = (uint8_t *)data;
    return tp;
}

Onnx__ValueInfoProto *onnx_value_info(OnnxEmitter *e, const char *name, DType t, const Shape *s) {
    Onnx__TensorShapeProto *shape = arena_alloc(e->a, sizeof *shape);
    onnx__tensor_shape_proto__init(shape);
    shape->n_dim = (size_t)s->rank;
    shape->dim = arena_alloc(e->a, sizeof *shape->dim * (size_t)(s->rank + 1));
    for (int i = 0; i < s->rank; i++) {
        Onnx__TensorShapeProto__Dimension *dim = arena_alloc(e->a, sizeof *dim);
        onnx__tensor_shape_proto__dimension__init(dim);
        dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        dim->dim_value = s->dim[i];
        shape->dim[i] = dim;
    }
    Onnx__TypeProto__Tensor *tensor = arena_alloc(e->a, sizeof *tensor);
    onnx__type_proto__tensor__init(tensor);
    tensor->has_elem_type = 1;
    tensor->elem_type = onnx_elem_type(t);
    tensor->shape = shape;
    Onnx__TypeProto *type = arena_alloc(e->a, sizeof *type);
    onnx__type_proto__init(type);
    type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    type->tensor_type = tensor;
    Onnx__ValueInfoProto *vi = arena_alloc(e->a, sizeof *vi);
    onnx__value_info_proto__init(vi);
    vi->name = arena_strdup(e->a, name);
    vi->type = type;
    return vi;
}

const char *onnx_aux_name(OnnxEmitter *e, int id, const char *what) {
    return arena_printf(e->a, "%s/%s", e->names[id], what);
}

const char *onnx_const_ints(OnnxEmitter *e, int id, const char *what, const int64_t *v, int count) {
    const char *name = onnx_aux_name(e, id, what);
    int64_t *data = arena_alloc(e->a, sizeof *data * (size_t)(count + 1));
    if (count) memcpy(data, v, sizeof *v * (size_t)count);
    Shape s = {.rank = 1, .dim = {count}};
    onnx_attr_tensor(e, onnx_node(e, "Constant", NULL, 0, name), "value", onnx_tensor(e, NULL, DT_I64, &s, data));
    return name;
}

void *onnx_scalar_data(OnnxEmitter *e, DType t, double v) {
    Tensor *one = tensor_new(t, (Shape){0});
    tensor_set(one, 0, v); /* converted as the eager executor stores it */
    void *data = arena_alloc(e->a, 8);
    memcpy(data, one->data, dtype_size(t));
    tensor_free(one);
    return data;
}

const char *onnx_const_scalar(OnnxEmitter *e, int id, const char *what, DType t, double v) {
    const char *name = onnx_aux_name(e, id, what);
    Shape s = {0};
    onnx_attr_tensor(e, onnx_node(e, "Constant", NULL, 0, name), "value",
                     onnx_tensor(e, NULL, t, &s, onnx_scalar_data(e, t, v)));
    return name;
}
