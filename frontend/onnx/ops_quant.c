/* ops_quant.c: QuantizeLinear and DequantizeLinear, the two ops of a QDQ
 * model (what onnxruntime's static quantization writes: float activations
 * quantized and dequantized around each op, int8 weights dequantized), as
 * the DSL's quantize(x, scale, zero_point, dtype, axis=) and
 * dequantize(q, scale, zero_point, axis=) (docs/onnx.md, docs/quantization.md).
 *
 * INT8 and UINT8 values (INT32 too for DequantizeLinear, a bias), per tensor
 * (a scale of one element) or per axis (a 1-D scale along `axis`, default 1,
 * negative counting from the end). The zero point becomes the i32 operand the
 * IR takes; an absent one is 0 with UINT8 values. With every input constant
 * the result is folded, as for every other op (a dequantized int8 weight
 * becomes its float values), by ir/quant.c's arithmetic, so folded and run-time
 * values agree bit for bit. Other element types (FLOAT8*, INT16, INT4) and
 * opset 21's block_size are refused naming the op and what is supported. */
#include <string.h>

#include "frontend/onnx/onnx_internal.h"
#include "ir/quant.h"

#define QDQ_SUPPORTED                                                                                              \
    "etch imports QuantizeLinear to INT8 or UINT8 and DequantizeLinear of INT8, UINT8 or INT32, per tensor or per " \
    "axis"

static bool is_qdq(const char *op) { return op && (!strcmp(op, "QuantizeLinear") || !strcmp(op, "DequantizeLinear")); }

const char *ox_quant_hint(OxImport *ox, const char *tensor) {
    const Onnx__GraphProto *g = ox->graph ? ox->graph : ox->model ? ox->model->graph : NULL;
    for (size_t i = 0; g && tensor && i < g->n_node; i++) {
        const Onnx__NodeProto *p = g->node[i];
        for (size_t k = 0; is_qdq(p->op_type) && k < p->n_input; k++)
            if (p->input[k] && !strcmp(p->input[k], tensor))
                return arena_printf(ox->a, " (read by the %s node '%s': " QDQ_SUPPORTED ")", p->op_type,
                                    p->name && *p->name ? p->name : p->n_output && p->output[0] ? p->output[0] : "?");
    }
    return "";
}

bool ox_float_inputs(OxImport *ox, const OxNode *n) {
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] && (n->in[k]->elem == OX_INT8 || n->in[k]->elem == OX_UINT8))
            return ox_error(ox, "input '%s' is %s; etch computes %s on FLOAT or DOUBLE values (a QDQ model dequantizes "
                                "it first with DequantizeLinear; QLinearMatMul, MatMulInteger and QLinearConv are not "
                                "supported)",
                            n->in[k]->name, ox_elem_name(n->in[k]->elem), n->proto->op_type);
    return true;
}

static DType quant_dtype_of(int32_t elem) {
    return elem == OX_INT8 ? DT_I8 : elem == OX_UINT8 ? DT_U8 : elem == OX_INT32 ? DT_I32 : DT_F32;
}

/* The scale and zero point of node n checked against x: per tensor (*axis
 * -1) or along *axis; zp may be NULL (absent). */
static bool qdq_params(OxImport *ox, OxNode *n, const OxValue *x, const OxValue *scale, const OxValue *zp, int *axis) {
    int64_t a;
    if (ox_attr(n, "block_size")) return ox_error(ox, "block_size (blocked quantization) is not supported; " QDQ_SUPPORTED);
    if (!ox_attr_int(ox, n, "axis", 1, &a)) return false;
    if (zp && (zp->rank != scale->rank || ox_numel(zp) != ox_numel(scale)))
        return ox_error(ox, "the zero point %s and the scale %s differ in shape", ox_list(ox, zp->dim, zp->rank),
                        ox_list(ox, scale->dim, scale->rank));
    if (scale->rank == 0 || (scale->rank == 1 && scale->dim[0] == 1)) {
        *axis = -1;
        return true;
    }
    if (scale->rank != 1) return ox_error(ox, "the scale must be a scalar (per tensor) or 1-D (per axis)");
    if (!ox_axis(ox, a, x->rank, "axis", axis)) return false;
    if (scale->dim[0] != x->dim[*axis])
        return ox_error(ox, "the scale has %lld values; dim %d of the input has %lld", (long long)scale->dim[0], *axis,
                        (long long)x->dim[*axis]);
    return true;
}

/* The constant c as the operand the IR wants: `elem`, a scalar when per
 * tensor (a literal), else a frozen param (never a trainable one: a scale is
 * no weight) under c's name, written once per value and dtype
 * (ox->quant_operands, keyed "<name>:<dtype>"). */
static const char *const_operand(OxImport *ox, OxValue *c, int32_t elem, int axis) {
    const char *key = arena_printf(ox->a, "%s:%s", c->name, ox_elem_dtype(elem));
    OxValue *seen = ox_lookup_in(&ox->quant_operands, key);
    if (seen) return seen->expr;
    OxValue *v = c->elem == elem ? ox_fold_reshape(ox, c->name, c, c->rank, c->dim) : ox_fold_cast(ox, c->name, c, elem);
    if (v && axis < 0 && v->rank == 1) v = ox_fold_reshape(ox, c->name, v, 0, NULL);
    const char *text = v ? ox_operand(ox, v, axis < 0 ? 0 : 1) : NULL;
    if (!text) return NULL;
    seen = arena_alloc(ox->a, sizeof *seen);
    seen->name = key;
    seen->expr = text;
    ox_table_put(ox->a, &ox->quant_operands, seen);
    return text;
}

/* The scale, or the zero point as the IR's i32 (0 when absent), as an
 * operand: a constant (const_operand), or a run-time value cast and, per
 * tensor, reshaped to a scalar. */
static const char *param_operand(OxImport *ox, OxValue *v, int32_t elem, int axis) {
    if (!v) return "0";
    if (v->data) return const_operand(ox, v, elem, axis);
    const char *s = v->elem == elem ? v->expr : arena_printf(ox->a, "cast(%s, %s)", v->expr, ox_elem_dtype(elem));
    return axis < 0 && v->rank == 1 ? arena_printf(ox->a, "reshape(%s, [])", s) : s;
}

/* The per-axis index of element i of x (0 per tensor). */
static int64_t channel_of(const OxValue *x, int axis, int64_t i) {
    if (axis < 0) return 0;
    int64_t inner = 1;
    for (int d = axis + 1; d < x->rank; d++) inner *= x->dim[d];
    return (i / inner) % x->dim[axis];
}

static const char *axis_text(OxImport *ox, int axis) { return axis < 0 ? "" : arena_printf(ox->a, ", axis=%d", axis); }

bool ox_rule_quantize_linear(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    OxValue *x = n->in[0], *s = n->in[1], *z = n->n_in > 2 ? n->in[2] : NULL;
    int32_t to = z ? z->elem : OX_UINT8;
    int axis;
    if (to != OX_INT8 && to != OX_UINT8)
        return ox_error(ox, "quantizing to %s is not supported; " QDQ_SUPPORTED, ox_elem_name(to));
    if ((x->elem != OX_FLOAT && x->elem != OX_DOUBLE) || s->elem != x->elem)
        return ox_error(ox, "the input %s and scale %s must both be FLOAT (or DOUBLE); " QDQ_SUPPORTED,
                        ox_elem_name(x->elem), ox_elem_name(s->elem));
    if (!qdq_params(ox, n, x, s, z, &axis)) return false;
    int lo, hi;
    quant_range(quant_dtype_of(to), &lo, &hi);
    if (x->data && s->data && (!z || z->data)) {
        OxValue *c = ox_new_const(ox, ox_out_name(n, 0), to, x->rank, x->dim);
        for (int64_t i = 0, numel = ox_numel(x); c && i < numel; i++) {
            int64_t k = channel_of(x, axis, i);
            ox_set(c, i, quant_quantize(ox_get(x, i), ox_get(s, k), z ? (int32_t)ox_get_int(z, k) : 0, lo, hi));
        }
        return ox_define_const(ox, n, 0, c);
    }
    const char *sx = ox_operand(ox, x, -1), *ss = param_operand(ox, s, s->elem, axis),
               *sz = param_operand(ox, z, OX_INT32, axis);
    if (!sx || !ss || !sz) return false;
    return ox_define(ox, n, 0, to, x->rank, x->dim, "quantize(%s, %s, %s, %s%s)", sx, ss, sz, ox_elem_dtype(to),
                     axis_text(ox, axis));
}

bool ox_rule_dequantize_linear(OxImport *ox, OxNode *n, const char *arg) {
    (void)arg;
    OxValue *x = n->in[0], *s = n->in[1], *z = n->n_in > 2 ? n->in[2] : NULL;
    int axis;
    if (x->elem != OX_INT8 && x->elem != OX_UINT8 && x->elem != OX_INT32)
        return ox_error(ox, "dequantizing %s is not supported; " QDQ_SUPPORTED, ox_elem_name(x->elem));
    if (z && z->elem != x->elem)
        return ox_error(ox, "the zero point is %s; it must have the input's type %s", ox_elem_name(z->elem),
                        ox_elem_name(x->elem));
    if (s->elem != OX_FLOAT && s->elem != OX_DOUBLE)
        return ox_error(ox, "the scale is %s; " QDQ_SUPPORTED " with a FLOAT (or DOUBLE) scale", ox_elem_name(s->elem));
    if (!qdq_params(ox, n, x, s, z, &axis)) return false;
    if (x->data && s->data && (!z || z->data)) {
        OxValue *c = ox_new_const(ox, ox_out_name(n, 0), s->elem, x->rank, x->dim);
        for (int64_t i = 0, numel = ox_numel(x); c && i < numel; i++) {
            int64_t k = channel_of(x, axis, i);
            ox_set(c, i, quant_dequantize((int32_t)ox_get_int(x, i), ox_get(s, k), z ? (int32_t)ox_get_int(z, k) : 0));
        }
        return ox_define_const(ox, n, 0, c);
    }
    const char *sx = ox_operand(ox, x, -1), *ss = param_operand(ox, s, s->elem, axis),
               *sz = param_operand(ox, z, OX_INT32, axis);
    if (!sx || !ss || !sz) return false;
    return ox_define(ox, n, 0, s->elem, x->rank, x->dim, "dequantize(%s, %s, %s%s)", sx, ss, sz, axis_text(ox, axis));
}
