/* ir.h: etch's typed SSA graph IR.
 *
 * A Graph owns a dense array of Nodes; values are referred to by small integer
 * ids (a node's index), never by pointer, so graphs are cheap to copy, print and
 * verify (the QBE habit). Every node is one primitive tensor op with a static
 * shape and a dtype, its operand ids, op-specific attributes and the source
 * location it came from. Operands always precede their users (ids increase),
 * so the node array is already a topological order.
 *
 * What each op means (its shape rule, reference kernel, scalar reference and
 * VJP rule) lives in one table, op_table[], generated from ops.def. How an op
 * runs on a target is not the IR's business: backends keep their own tables
 * indexed by OpKind (codegen/backend.h). */
#ifndef ETCH_IR_H
#define ETCH_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/arena.h"
#include "ir/diag.h"

enum { ETCH_MAX_RANK = 8 };
/* Most operands one node takes (a scan passes its carries, sequences and
 * captured values; every other op takes at most three). */
enum { ETCH_MAX_OPERANDS = 32 };

typedef enum DType {
    DT_F32,
    DT_F64,
    DT_I32,
    DT_I64,
    DT_BOOL, /* stored as one byte, 0 or 1 */
    DT_I8,   /* quantized values (docs/quantization.md) */
    DT_U8,
    DT_COUNT
} DType;

typedef struct Shape {
    int rank;
    int64_t dim[ETCH_MAX_RANK];
} Shape;

typedef enum OpKind {
#define OP(e, name, arity, cls, attrs, shape, eval, scalar, vjp) OP_##e,
#include "ir/ops.def"
#undef OP
    OP_COUNT
} OpKind;

/* Which shared machinery handles an op (printing, fusion and codegen group by it). */
typedef enum OpClass {
    OPC_SOURCE,   /* no data operands: input, param, const, iota; random_uniform reads only a step counter */
    OPC_ELEMWISE, /* out[i] = f(broadcast operands[i]) */
    OPC_REDUCE,   /* reduce attr.axes */
    OPC_MATMUL,
    OPC_LAYOUT, /* moves data without arithmetic */
    OPC_SOFTMAX,
    OPC_CONV, /* sliding windows over NCHW images: conv2d, pools and their gradients (ir/ops/conv.c) */
    OPC_LOOP, /* scan: runs a body graph once per time step (ir/ops/scan.c) */
    OPC_QUANT, /* quantize, dequantize, fake_quant (per tensor or per axis), qmatmul (ir/ops/quant.c) */
    OPC_COLLECTIVE, /* allreduce_start/_wait: combine a value across the processes of a data-parallel job (ir/ops/collective.c) */
} OpClass;

/* How a parameter gets its initial value when no weights file is given. */
typedef enum InitKind {
    INIT_ZEROS,
    INIT_ONES,
    INIT_CONST,   /* every element = a */
    INIT_UNIFORM, /* U(a, b) */
    INIT_NORMAL,  /* N(mean a, std b) */
} InitKind;

typedef struct ParamInit {
    InitKind kind;
    double a, b;
} ParamInit;

/* The kinds of fusion group passes/fuse.c builds; each is one kernel, and a
 * backend has one emitter per kind (the C backend's: codegen/c/fused.h). */
typedef enum FuseKind {
    FUSE_NONE,        /* not in a group: the node is its own kernel */
    FUSE_ELEMENTWISE, /* elementwise ops of one shape: one loop nest, members in registers */
    FUSE_REDUCE,      /* a reduction over leading axes with its elementwise producers in its loops */
    FUSE_EPILOGUE,    /* a 2-D matmul and its elementwise consumers, applied to each tile by the GEMM */
    FUSE_ROWS,        /* reductions (and softmaxes) over trailing axes with their producers and consumers */
    FUSE_KIND_COUNT
} FuseKind;

/* A node's fusion group (passes/fuse.c). Every member of group `id` has the
 * same kind and `at`; `at` is the id of the member at whose position the
 * group runs as one kernel (its last member, or a fused matmul). No group:
 * all zero (kind FUSE_NONE). Textual IR: `group = epilogue 3 at %12`. */
typedef struct FuseGroup {
    FuseKind kind;
    int id; /* 1, 2, ... in the order the groups run (the fuse pass numbers them) */
    int at;
} FuseGroup;

/* Op-specific attributes; which fields matter is up to the op. */
typedef struct NodeAttrs {
    const char *name;   /* input/param: dotted name ("fc1.weight"); NULL otherwise */
    int n_axes;         /* reduce: axes to reduce; transpose: permutation (n_axes == rank) */
    int axes[ETCH_MAX_RANK];
    bool keepdims;      /* reduce */
    int axis;           /* softmax, log_softmax, iota, slice, concat (normalized to 0..rank-1) */
    double value;       /* const: every element */
    Shape shape;        /* input/param/const/reshape/broadcast, conv2d_backward_*, avg_pool2d_backward,
                         * scatter_add_rows, random_uniform: the requested result shape */
    DType dtype;        /* input/param/const/cast/random_uniform: the requested result dtype */
    ParamInit init;     /* param */
    bool frozen;        /* param: excluded from gradients */
    bool trans_a, trans_b; /* matmul: operand stored transposed (last two dims swapped) */
    /* conv2d, max_pool2d, avg_pool2d and their backward ops: {h, w} pairs.
     * kernel: pools only (a conv's comes from its weight); dilation, groups:
     * conv only. Their backward ops that cannot infer their result read it
     * from `shape`. */
    struct {
        int kernel[2], stride[2], pad[2], dilation[2], groups;
    } conv;
    /* slice: elements [start, start + length) along `axis` (step 1) */
    int64_t start, length;
    /* pad: elements added before / after each dim, filled with `value` */
    int64_t pad_before[ETCH_MAX_RANK], pad_after[ETCH_MAX_RANK];
    uint64_t seed;      /* random_uniform: the Philox key */
    /* scan (ir/ops/scan.c): operands are n_carry initial carries, n_xs
     * sequences [T, ...] (time-major) and then the values the body captures;
     * body maps (carries, one step of each sequence, captures) to (new
     * carries, per-step outputs). reverse: steps run T-1 down to 0. */
    struct Graph *body;
    int n_carry, n_xs;
    bool reverse;
    /* quantized ops (ir/ops/quant.c, docs/quantization.md): clamp = [lo, hi],
     * fake_quant's integer range or qmatmul's output clamp (relu: lo = the
     * output zero point); zero_points = [x's, the output's] of qmatmul */
    struct {
        int clamp[2], zero_points[2];
    } quant;
    FuseGroup group;    /* fusion group (passes/fuse.c): nodes with the same group id run as one kernel */
} NodeAttrs;

typedef struct Node {
    OpKind op;
    DType dtype; /* result dtype */
    Shape shape; /* result shape (static) */
    int n_in;
    int *in;     /* operand node ids (arena) */
    NodeAttrs attr;
    SrcLoc loc;  /* where the user wrote it */
} Node;

typedef struct Graph {
    Arena *arena;    /* owns everything below: node array, operand lists, strings */
    const char *name; /* "Net.forward" */
    Node *nodes;     /* dense, topologically ordered; grows by doubling */
    int n_nodes, cap_nodes;
    int *inputs, n_inputs, cap_inputs;    /* OP_INPUT ids in call order */
    int *params, n_params, cap_params;    /* OP_PARAM ids in declaration order */
    int *outputs, n_outputs, cap_outputs; /* returned values in order */
    /* State updates applied after the graph has run (a training step's new
     * weights and optimizer state): param upd_dst[i] takes value upd_src[i]. */
    int *upd_dst, *upd_src, n_updates, cap_updates;
    /* Where every value lives when compiled: set by the pass pipeline's last
     * stage, plan-memory (passes/plan_memory.h), read by backends; NULL
     * until then, and dropped by the pass manager before any other pass runs
     * (a plan describes exactly the graph it was made for). In g->arena. */
    const struct MemPlan *mem_plan;
} Graph;

/* ---- the op table ------------------------------------------------------- */

typedef struct Tensor Tensor;   /* ir/tensor.h */

typedef bool (*ShapeFn)(Graph *g, Node *n, Diag *d);
typedef void (*EvalFn)(const Graph *g, int id, Tensor *out, const Tensor *const *ins);
/* An elementwise op's value at one element: operands x[], attributes a. */
typedef double (*ScalarFn)(const double *x, const NodeAttrs *a);
typedef struct VjpCtx VjpCtx; /* ir/vjp.h */
typedef void (*VjpFn)(VjpCtx *c); /* fills c->gx[k] for operands with c->needs[k] */

/* Attribute keys: the NodeAttrs fields an op reads, as spelled in the textual
 * IR. An op's row in ops.def names its keys (the attrs column); that drives
 * the textual IR's printer and parser and CSE's equality (ir/attrs.c), so an
 * op whose attributes use existing keys needs nothing else. */
typedef enum AttrKey {
    ATTR_INIT = 1u << 0,      /* param: init (ParamInit) */
    ATTR_FROZEN = 1u << 1,    /* param: frozen (printed when true) */
    ATTR_VALUE = 1u << 2,     /* const: every element; pad: the fill; leaky_relu: the negative slope */
    ATTR_AXES = 1u << 3,      /* reduce: axes (n_axes, axes) */
    ATTR_KEEPDIMS = 1u << 4,  /* reduce: keepdims (always printed) */
    ATTR_PERM = 1u << 5,      /* transpose: perm (n_axes, axes) */
    ATTR_AXIS = 1u << 6,      /* iota, softmax, slice, concat: axis */
    ATTR_TRANS_A = 1u << 7,   /* matmul: trans_a (printed when true) */
    ATTR_TRANS_B = 1u << 8,   /* matmul: trans_b (printed when true) */
    ATTR_GROUP = 1u << 9,     /* fusion group (FuseGroup, passes/fuse.c); not in op rows: any op but param and scan */
    ATTR_KERNEL = 1u << 10,   /* pools: conv.kernel [kh, kw] */
    ATTR_STRIDE = 1u << 11,   /* conv2d, pools and their backward ops: conv.stride */
    ATTR_PADDING = 1u << 12,  /* same: conv.pad */
    ATTR_DILATION = 1u << 13, /* conv2d ops: conv.dilation */
    ATTR_GROUPS = 1u << 14,   /* conv2d ops: conv.groups */
    ATTR_START = 1u << 15,    /* slice */
    ATTR_LENGTH = 1u << 16,   /* slice */
    ATTR_BEFORE = 1u << 17,   /* pad: pad_before, one per dim */
    ATTR_AFTER = 1u << 18,    /* pad: pad_after */
    ATTR_SEED = 1u << 19,     /* random_uniform */
    ATTR_CARRIES = 1u << 20,  /* scan: n_carry */
    ATTR_XS = 1u << 21,       /* scan: n_xs */
    ATTR_REVERSE = 1u << 22,  /* scan (printed when true) */
    ATTR_CLAMP = 1u << 23,    /* fake_quant, qmatmul: quant.clamp [lo, hi] */
    ATTR_ZERO_POINTS = 1u << 24, /* qmatmul: quant.zero_points [x, output] */
} AttrKey;
enum { ATTR_N_KEYS = 25 };

typedef struct OpInfo {
    const char *name;
    int arity; /* -1: any number up to ETCH_MAX_OPERANDS (scan) */
    OpClass cls;
    unsigned attrs; /* AttrKey bits: the attributes the op reads */
    ShapeFn shape;
    EvalFn eval;
    ScalarFn scalar;
    VjpFn vjp;
} OpInfo;

extern const OpInfo op_table[OP_COUNT];

/* True for ops whose result shares its operand's storage (reshape of a dense
 * tensor): backends give them no buffer of their own. */
bool op_is_view(OpKind op);
/* For a reduction over an operand of rank `rank`: true when its axes are
 * exactly the trailing ones, first.. rank-1 (each once, any order), with
 * *first set to the first of them. A row reduction (passes/fuse.c). */
bool reduce_axes_trailing(const Node *n, int rank, int *first);
/* True when n operands suit op's arity. */
bool op_arity_ok(OpKind op, int n);
/* Looks an op up by its textual-IR name; returns OP_COUNT if unknown. */
OpKind op_from_name(const char *name);

/* ---- attributes (ir/attrs.c), driven by the attrs column ---- */
/* The keys the textual IR accepts for op: its attrs column, plus the fusion
 * group for every op but param and scan. */
unsigned attr_keys_allowed(OpKind op);
/* True when a and b (same op) agree on every attribute of the op, the fusion
 * group and the body graph: what CSE compares besides operands and type. */
bool attr_equal(const Node *a, const Node *b);
/* A group kind's name in the textual IR ("epilogue"), and back (FUSE_KIND_COUNT
 * if unknown; "none" is not a name: a node without a group prints no key). */
const char *fuse_kind_name(FuseKind k);
FuseKind fuse_kind_from_name(const char *name, size_t len);
/* Whether nodes a and b are members of one fusion group. */
static inline bool fuse_same_group(const Node *a, const Node *b) {
    return a->attr.group.kind != FUSE_NONE && a->attr.group.id == b->attr.group.id;
}

/* ---- dtypes and shapes -------------------------------------------------- */

const char *dtype_name(DType t);     /* "f32" */
DType dtype_from_name(const char *s); /* DT_COUNT if unknown */
size_t dtype_size(DType t);
bool dtype_is_float(DType t);
/* i8 and u8: quantized values (docs/quantization.md). Arithmetic that can
 * leave their range (add, sub, mul, div, pow, neg, abs, sums, iota) is
 * rejected by the shape rules: such values are dequantized or cast to i32
 * first. Moving, comparing, selecting (max, min, relu, where) and casting
 * them is allowed. */
bool dtype_is_quantized(DType t);
const char *dtype_c_type(DType t);   /* "float", "double", "int32_t", ... */

int64_t shape_numel(const Shape *s);
bool shape_equal(const Shape *a, const Shape *b);
Shape shape_make(int rank, const int64_t *dims);
/* "f32[64,784]" into buf (returns buf). 96 bytes always suffice. */
char *type_format(char *buf, size_t n, DType t, const Shape *s);
/* Row-major strides in elements. */
void shape_strides(const Shape *s, int64_t *strides);

/* ---- building graphs ---------------------------------------------------- */

Graph *graph_new(Arena *a, const char *name);
/* Appends a node and runs the op's shape rule. On a user error (incompatible
 * shapes, bad axes, ...) reports it at loc through d and returns -1; the node
 * is not added. attrs may be NULL. */
int graph_add_op(Graph *g, OpKind op, const int *ins, int n_in, const NodeAttrs *attrs, SrcLoc loc, Diag *d);
/* Conveniences over graph_add_op. */
int graph_add_input(Graph *g, const char *name, DType t, Shape s, SrcLoc loc);
int graph_add_param(Graph *g, const char *name, DType t, Shape s, ParamInit init, bool frozen, SrcLoc loc);
int graph_add_const(Graph *g, double value, DType t, Shape s, SrcLoc loc);
void graph_add_output(Graph *g, int id);
/* After a run, param `param` takes the value of node `value` (same type). */
void graph_add_update(Graph *g, int param, int value);
/* Appends a node verbatim (shape/dtype already set, no checks); used by the
 * textual-IR parser and passes that rebuild graphs. Returns its id. */
int graph_append_raw(Graph *g, const Node *n);
/* A deep copy into arena a (name NULL keeps g's name); passes that extend a
 * graph (autodiff) work on a clone when the original is still needed. */
Graph *graph_clone(Arena *a, const Graph *g, const char *name);
/* Looks up a param/input by name; -1 if absent. */
int graph_find_param(const Graph *g, const char *name);
int graph_find_input(const Graph *g, const char *name);

/* Number of uses of every node (outputs count as uses). counts has n_nodes slots. */
void graph_count_uses(const Graph *g, int *counts);

/* ---- textual IR (ir/text_print.c, ir/text_parse.c) ---------------------- */

/* Prints g in the textual form; parse(print(g)) prints identically. */
void ir_print(FILE *f, const Graph *g);
char *ir_print_to_string(const Graph *g); /* malloc'd */
/* Parses one graph; file names the text for diagnostics. NULL on error. */
Graph *ir_parse(Arena *a, const char *file, const char *text, Diag *d);

/* ---- verifier (ir/verify.c) --------------------------------------------- */

/* Checks structural invariants (operand ids precede users, arity, shape rules
 * reproduce stored shapes, fusion groups consistent, inputs/params/outputs
 * lists consistent). Reports problems through d; returns true when the graph
 * is well formed. */
bool ir_verify(const Graph *g, Diag *d);
/* Only the fusion groups' checks (docs/ir.md), for a graph whose nodes are
 * otherwise well formed; reports the first problem at locs[node] (the
 * parser's IR text positions; NULL: the nodes' own locations). */
bool ir_verify_groups(const Graph *g, const SrcLoc *locs, Diag *d);

#endif
