/* onnx_internal.h: what the files of the ONNX importer share (not used
 * outside frontend/onnx/). The importer walks the graph's nodes in order and
 * keeps, for every ONNX value, its static type and either its constant
 * contents (initializers, Constant nodes and everything folded from them at
 * import time) or the DSL name that holds it at run time.
 *
 *   load.c    the protobuf: file, limits, validation, tensor contents, attributes
 *   fold.c    constants: element access, folding helpers, the ops that make constants
 *   ops.c     the op table (ONNX op name -> rule) and the elementwise/layout rules
 *   ops_nn.c  the layer rules: Gemm/MatMul -> Linear, Conv -> Conv2d, pooling,
 *             BatchNormalization, LayerNormalization, Gather -> Embedding
 *   ops_rnn.c LSTM and GRU -> the stdlib's LSTM / GRU modules, or 'for' loops
 *   ops_scan.c Scan -> a 'for' loop whose body is the Scan's body graph
 *   ops_quant.c QuantizeLinear / DequantizeLinear -> quantize / dequantize
 *   write.c   the DSL text: names, number literals, members, params, weights
 *   import.c  the driver: inputs and -D, the node walk, outputs, the result */
#ifndef ETCH_FRONTEND_ONNX_INTERNAL_H
#define ETCH_FRONTEND_ONNX_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "frontend/onnx/onnx.h"
#include "ir/ir.h"
#include "ir/strbuf.h"
#include "onnx.pb-c.h"

enum {
    OX_MAX_RANK = ETCH_MAX_RANK, /* etch tensors have at most 8 dims */
    OX_OPSET_MIN = 13,           /* the default domain's opsets imported */
    OX_OPSET_MAX = 20,
};
/* The most elements of any value or initializer: 2^32 (the front end's
 * limit for one declared tensor is 4 GiB; this keeps size products in range). */
#define OX_MAX_ELEMS ((int64_t)1 << 32)
/* The most elements a constant made at import time may hold when it is
 * larger than what it is made from (ConstantOfShape, Range, Expand, a
 * broadcast, a Gather repeating rows): 2^24, a 4096 x 4096 mask. Folding
 * costs time per element; this bounds what a small file can ask for. */
#define OX_MAX_FOLD_ELEMS ((int64_t)1 << 24)

/* ONNX element types (TensorProto.DataType) etch has a dtype for. */
enum {
    OX_FLOAT = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
    OX_INT32 = ONNX__TENSOR_PROTO__DATA_TYPE__INT32,
    OX_INT64 = ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
    OX_BOOL = ONNX__TENSOR_PROTO__DATA_TYPE__BOOL,
    OX_DOUBLE = ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE,
    OX_INT8 = ONNX__TENSOR_PROTO__DATA_TYPE__INT8,   /* quantized values (QuantizeLinear, DequantizeLinear) */
    OX_UINT8 = ONNX__TENSOR_PROTO__DATA_TYPE__UINT8,
};
/* Their names, for messages. */
#define OX_ELEM_NAMES "FLOAT, DOUBLE, INT32, INT64, BOOL, INT8 and UINT8"

/* One value of the graph. */
typedef struct OxValue {
    const char *name; /* the ONNX name */
    int32_t elem;     /* element type, one of OX_* */
    int rank;
    int64_t dim[OX_MAX_RANK];
    void *data;        /* constant contents (float, double, int32, int64 or one byte per bool), or NULL */
    const char *expr;  /* the DSL name holding it at run time; NULL for a constant not (yet) written out */
    bool initializer;  /* a graph initializer: a weight, written as a trainable param when used directly */
    const char *owner; /* the module member that holds it as a weight (fc1), or NULL */
    int producer;      /* index of the node that defines it; -1 for inputs, initializers */
    int uses;          /* entries of ox->readers only: node inputs that read the name */
} OxValue;

typedef struct OxImport OxImport;

/* The node being translated: its inputs resolved ("" inputs are NULL). */
typedef struct OxNode {
    const Onnx__NodeProto *proto;
    int index;    /* its position in graph.node */
    OxValue **in; /* n_in entries */
    int n_in;
} OxNode;

/* The ONNX name of output k of n ("" for an omitted optional one). */
static inline const char *ox_out_name(const OxNode *n, int k) { return n->proto->output[k]; }

/* A row of the op table: how one ONNX op becomes DSL text. */
typedef bool (*OxRule)(OxImport *ox, OxNode *n, const char *arg);
typedef struct OxOp {
    const char *op;  /* ONNX op_type */
    OxRule rule;
    const char *arg; /* what the rule needs: the builtin name or operator ("relu", "+") */
    int min_in, max_in; /* the inputs it takes */
} OxOp;

/* A name -> value table (open addressing). */
typedef struct OxTable {
    OxValue **slots;
    size_t cap, n;
} OxTable;

struct OxImport {
    Arena *a;
    Diag *d;
    const char *path;            /* the .onnx file, for messages */
    const char *dir;             /* its folder, for external data */
    Onnx__ModelProto *model;
    const Onnx__GraphProto *graph; /* being walked: the model's, or a Scan's body (ox_walk_body) */
    int64_t opset;               /* of the default domain */
    OxTable values;
    const OxNode *node;          /* being translated, for messages; NULL between nodes */
    /* the text being written */
    StrBuf members, body;
    OxTable names;               /* DSL names taken (values with name only) */
    /* the weights: DSL param name -> contents */
    int n_weights, cap_weights;
    etch_st_tensor *weights;
    int n_modules;               /* members made, for names when nothing better exists */
    OxTable readers;             /* per value name: how many node inputs read it (uses) and the last
                                    node that does (producer, here); filled before the walk */
    OxTable quant_operands;      /* ops_quant.c: the scales and zero points written, per "<name>:<dtype>" */
    const char **absorbed;       /* per node: done by an earlier node's rule (the Add of MatMul + Add,
                                    the Reciprocal of Sqrt + Reciprocal), which names the input whose
                                    value output 0 takes; else NULL */
};

/* ---- load.c ------------------------------------------------------------- */
/* Reads and unpacks path; checks it is an ONNX model with a supported opset. */
bool ox_load(OxImport *ox);
/* The initializer or Constant tensor t as a new constant value named name. */
OxValue *ox_tensor_value(OxImport *ox, const Onnx__TensorProto *t, const char *name);
/* Attribute name of the current node, or NULL. */
const Onnx__AttributeProto *ox_attr(const OxNode *n, const char *name);
/* Typed attribute readers: the default when absent, an error (false) when of another type. */
bool ox_attr_int(OxImport *ox, const OxNode *n, const char *name, int64_t def, int64_t *out);
bool ox_attr_float(OxImport *ox, const OxNode *n, const char *name, double def, double *out);
/* ints: *count = -1 when absent */
bool ox_attr_ints(OxImport *ox, const OxNode *n, const char *name, const int64_t **ints, int *count);
bool ox_attr_string(OxImport *ox, const OxNode *n, const char *name, const char *def, const char **out);
/* Errors: "file: error: MESSAGE", or with a node current
 * "file: error: node 'NAME' (Op, opset N): MESSAGE". Return false. */
bool ox_error(OxImport *ox, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The etch dtype name of an ONNX element type ("f32"), or NULL. */
const char *ox_elem_dtype(int32_t elem);
/* Its size in bytes (0 for a type etch lacks) and its ONNX name ("FLOAT16"). */
size_t ox_elem_size(int32_t elem);
const char *ox_elem_name(int32_t elem);

/* ---- fold.c ------------------------------------------------------------- */
int64_t ox_numel(const OxValue *v);
double ox_get(const OxValue *v, int64_t i);
int64_t ox_get_int(const OxValue *v, int64_t i); /* exact for integer types */
void ox_set(OxValue *v, int64_t i, double x);
/* A new constant value (contents zeroed) of that type; NULL after an error
 * when it would exceed OX_MAX_ELEMS. */
OxValue *ox_new_const(OxImport *ox, const char *name, int32_t elem, int rank, const int64_t *dim);
/* False after an error when a constant of these dims, made larger than its
 * sources, would exceed OX_MAX_FOLD_ELEMS. */
bool ox_fold_limit(OxImport *ox, const char *name, int rank, const int64_t *dim);
/* The broadcast of two shapes (NumPy rules) into out; false after an error. */
bool ox_broadcast(OxImport *ox, const OxValue *a, const OxValue *b, int *rank, int64_t *dim);
/* A normalized axis in [0, rank); false after an error naming what. */
bool ox_axis(OxImport *ox, int64_t axis, int rank, const char *what, int *out);
/* Contiguous strides of a shape, in elements. */
void ox_strides(int rank, const int64_t *dim, int64_t *strides);
/* Copies the elements of a rank-dims box: dst (strides dst_str from
 * dst_off) <- src (strides src_str from src_off); same element type. The
 * views that Transpose, Slice, Expand, Concat and Gather make of constants. */
void ox_strided_copy(OxValue *dst, int64_t dst_off, const int64_t *dst_str, const OxValue *src, int64_t src_off,
                     const int64_t *src_str, int rank, const int64_t *dims);
/* An elementwise op over constants (at most 8) with broadcasting:
 * out[i] = f(x, arg), x[k] the element of in[k] at i; elem the result's type. */
OxValue *ox_fold_map(OxImport *ox, const char *name, int32_t elem, OxValue *const *in, int n_in,
                     double (*f)(const double *x, double arg), double arg);
/* + - * / over integer constants, exact in int64 (shape arithmetic). */
OxValue *ox_fold_int_binary(OxImport *ox, const char *name, OxValue *a, OxValue *b, char op);
/* The same contents under new dims (Reshape, Squeeze, Unsqueeze, Flatten). */
OxValue *ox_fold_reshape(OxImport *ox, const char *name, const OxValue *v, int rank, const int64_t *dim);
/* Element type conversion (Cast). */
OxValue *ox_fold_cast(OxImport *ox, const char *name, const OxValue *v, int32_t elem);
/* A constant integer input as a list (shape, axes, starts, pads); error
 * naming what when it is not a constant. */
bool ox_const_ints(OxImport *ox, const OxValue *v, const char *what, int64_t **ints, int *count);

/* The rules of the ops that only make constants: Constant, ConstantOfShape,
 * Shape, Size, Range (op table rows in ops.c). */
bool ox_rule_constant(OxImport *ox, OxNode *n, const char *arg);
bool ox_rule_constant_of_shape(OxImport *ox, OxNode *n, const char *arg);
bool ox_rule_shape(OxImport *ox, OxNode *n, const char *arg);
bool ox_rule_size(OxImport *ox, OxNode *n, const char *arg);
bool ox_rule_range(OxImport *ox, OxNode *n, const char *arg);

/* ---- ops.c, ops_nn.c ---------------------------------------------------- */
const OxOp *ox_find_op(const char *op_type);
/* The supported op nearest to an unknown one, or NULL (for the error message). */
const char *ox_nearest_op(const char *op_type);
bool ox_rule_gemm(OxImport *ox, OxNode *n, const char *arg);
bool ox_rule_matmul(OxImport *ox, OxNode *n, const char *arg);
bool ox_rule_conv(OxImport *ox, OxNode *n, const char *arg);
bool ox_rule_pool(OxImport *ox, OxNode *n, const char *arg);
bool ox_rule_global_pool(OxImport *ox, OxNode *n, const char *arg);
bool ox_rule_batchnorm(OxImport *ox, OxNode *n, const char *arg);
bool ox_rule_layernorm(OxImport *ox, OxNode *n, const char *arg);
bool ox_rule_gather(OxImport *ox, OxNode *n, const char *arg);
/* ops_rnn.c: LSTM and GRU */
bool ox_rule_rnn(OxImport *ox, OxNode *n, const char *arg);
/* ops_quant.c: QuantizeLinear, DequantizeLinear */
bool ox_rule_quantize_linear(OxImport *ox, OxNode *n, const char *arg);
bool ox_rule_dequantize_linear(OxImport *ox, OxNode *n, const char *arg);
/* " (read by the QuantizeLinear node 'q': etch imports ...)" when such a
 * node reads the tensor or input named tensor, else "" (for the element
 * type errors). */
const char *ox_quant_hint(OxImport *ox, const char *tensor);
/* An error naming the first INT8 or UINT8 input of n (Gemm, MatMul, Conv
 * compute on float values: a QDQ model dequantizes them first). */
bool ox_float_inputs(OxImport *ox, const OxNode *n);
/* ops_scan.c: Scan */
bool ox_rule_scan(OxImport *ox, OxNode *n, const char *arg);

/* ---- write.c ------------------------------------------------------------ */
/* A fresh DSL name made from an ONNX name (/fc1/Gemm_output_0 -> fc1_Gemm). */
const char *ox_fresh_name(OxImport *ox, const char *onnx_name);
/* The DSL text of v as an operand next to tensors of rank peer_rank: its
 * name, a number literal for a one-element constant, or a frozen param the
 * constant is written to. NULL after an error. */
const char *ox_operand(OxImport *ox, OxValue *v, int peer_rank);
/* Defines output k of n as `let NAME = <expr>` with the given type. */
OxValue *ox_define(OxImport *ox, OxNode *n, int k, int32_t elem, int rank, const int64_t *dim, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* Makes output k of n an alias of v (Identity, Dropout). */
bool ox_alias(OxImport *ox, OxNode *n, int k, OxValue *v);
/* Output k of n as the constant c (renamed to the output's name). */
bool ox_define_const(OxImport *ox, OxNode *n, int k, OxValue *c);
/* Adds a member line ("  fc1 = Linear(4, 8)") and a weight. */
void ox_member(OxImport *ox, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ox_add_weight(OxImport *ox, const char *name, int32_t elem, int rank, const int64_t *dim, const void *data);
/* Every dim positive and at most OX_MAX_ELEMS elements; false after an error naming name. */
bool ox_check_dims(OxImport *ox, const char *name, int rank, const int64_t *dim);
/* A number as a DSL literal for a tensor of type elem (shortest exact form);
 * NULL when it has none (inf, nan, integers beyond 2^53). */
const char *ox_number(OxImport *ox, double v, int32_t elem);
/* "[a, b, c]" */
const char *ox_list(OxImport *ox, const int64_t *v, int n);
/* "f32[2, 3]" */
const char *ox_type_text(OxImport *ox, int32_t elem, int rank, const int64_t *dim);
/* A member name for a module whose weights are named like w (fc1.weight ->
 * fc1), else from the node's name (/layer1/conv1/Conv -> layer1_conv1), else
 * kind1, kind2, ...; unique. */
const char *ox_member_name(OxImport *ox, const OxNode *n, const OxValue *w, const char *kind);
/* The name table: the DSL names a generated name must avoid (keywords,
 * builtins, the standard library's modules and fns). */
void ox_names_init(OxImport *ox);

/* ---- import.c: the tables ---------------------------------------------- */
/* The entry named name, or NULL. */
OxValue *ox_lookup_in(const OxTable *t, const char *name);
/* Adds v under v->name (replacing an entry of that name). */
void ox_table_put(Arena *a, OxTable *t, OxValue *v);
/* The value named name in the graph so far, or NULL. */
OxValue *ox_lookup(OxImport *ox, const char *name);
/* Defines name as v; an error when the graph defines it twice. */
bool ox_bind(OxImport *ox, const char *name, OxValue *v);
/* Translates the nodes of the subgraph g (a Scan's body, its inputs already
 * bound) into ox->body, then makes the outer graph current again. */
bool ox_walk_body(OxImport *ox, const Onnx__GraphProto *g);

#endif
