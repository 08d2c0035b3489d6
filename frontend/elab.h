/* elab.h: the elaborator's shared state: compile-time values, scopes, module
 * instances and the entry points of its files.
 *
 * Elaboration runs the program at compile time. Everything that is not a
 * tensor (numbers, bools, lists, dtypes, module instances) is a compile-time
 * Value computed on the spot; tensor expressions append IR nodes to the graph
 * and evaluate to the node id. So module construction, compile-time `if` and
 * constant folding are ordinary evaluation, and tracing forward is just
 * calling it with the model's inputs.
 *
 *   elaborate.c    the top level: globals, -D, the model, inputs and outputs
 *   instantiate.c  module instantiation: constructor arguments, members, params
 *   calls.c        fn calls: argument binding, types, errors inside nn.etch
 *   statements.c   let, assignment, return, if, for loops (scan)
 *   eval.c         expressions: names, operators, constant folding, calls
 *   index.c        subscripts: list and tuple items, tensor indexing and slicing
 *   builtins.c     the builtin function table (relu, sum, reshape, ...) */
#ifndef ETCH_FRONTEND_ELAB_H
#define ETCH_FRONTEND_ELAB_H

#include "frontend/ast.h"
#include "frontend/frontend.h"

typedef enum ValKind {
    V_NUM,      /* compile-time number (is_int: an integer) */
    V_BOOL,     /* compile-time bool */
    V_LIST,     /* compile-time list of numbers/bools: [64, -1]; or a module list (items V_INSTANCE) */
    V_DTYPE,    /* f32, f64, ... as a value */
    V_TENSOR,   /* an IR value: node id */
    V_TUPLE,    /* several values returned by a fn */
    V_INSTANCE, /* a module instance (fc1) */
    V_PARAM,    /* a param before the params are added to the graph */
    V_MODULE,   /* a module declaration (Linear) */
    V_FN,       /* a fn declaration, bound to its instance (or top-level) */
} ValKind;

typedef struct Scope Scope;
typedef struct Instance Instance;
typedef struct ParamSpec ParamSpec;

typedef struct Value {
    ValKind kind;
    SrcLoc loc;          /* the expression that produced it */
    double num;          /* V_NUM */
    bool is_int;         /* V_NUM */
    bool b;              /* V_BOOL */
    DType dtype;         /* V_DTYPE */
    int id;              /* V_TENSOR */
    struct Value *items; /* V_LIST, V_TUPLE */
    int n_items;
    Instance *inst;          /* V_INSTANCE; V_FN: the instance whose method it is (NULL: top-level) */
    ParamSpec *param;        /* V_PARAM */
    const ModuleDecl *module; /* V_MODULE */
    const FnDecl *fn;        /* V_FN */
    Scope *home;             /* V_MODULE, V_FN: the scope its body resolves names in */
} Value;

typedef struct Binding {
    const char *name;
    SrcLoc loc;
    Value val;
    bool is_arg; /* a constructor argument: members may shadow it */
    struct Binding *next;
} Binding;

/* Names visible somewhere. Lookup walks head (newest first) then parent. */
struct Scope {
    Binding *head;
    Scope *parent;
    bool is_fn; /* the outermost scope of a fn call: assignments stop here */
};

struct ParamSpec {
    const char *name;  /* dotted: "fc1.weight" */
    SrcLoc loc;
    DType dtype;
    Shape shape;
    ParamInit init;
    bool frozen;
    int id;            /* node id once added to the graph, -1 before */
};

struct Instance {
    const ModuleDecl *decl;
    const char *path;  /* "" for the model, "fc1", "encoder.layer1", "blocks.0" */
    const char *suffix; /* appended to its params' names: "" or, under 'inline' members, "_l1_reverse" */
    SrcLoc loc;        /* where it was instantiated */
    Instance *parent;
    Value *args;       /* constructor argument values (recursion detection) */
    int n_args;
    const char *call_text; /* standard-library modules: the constructor call as written, "Linear(783, 128)" */
    Scope scope;       /* arguments and members; parent: the module's file scope */
    ParamSpec **params;
    int n_params, cap_params;
    Instance **children;
    int n_children, cap_children;
};

typedef struct Elab {
    Arena *arena;
    Diag *diag;
    Graph *graph;
    Scope std_scope;  /* the standard library's top level */
    Scope user_scope; /* the user file's top level; parent: std_scope */
    int call_depth;
    int inst_depth;
    int eval_depth;        /* expressions and blocks being evaluated, across calls (ELAB_MAX_EVAL_DEPTH) */
    bool training;         /* tracing a train block: dropout and friends are active */
    const char *step_counter; /* the step counter random ops read while training (NULL: "optimizer.step") */
    int random_sites_before; /* random ops traced in earlier named train steps (their seeds differ) */
    struct LoopCtx *loop;  /* the innermost 'for' body being traced (its yield), NULL outside loops */
    int scan_depth;        /* run-time 'for' bodies (scans) being traced */
    int unrolled_steps;    /* steps taken by compile-time 'for' loops so far (ELAB_MAX_UNROLLED_STEPS) */
    int n_loops;           /* loops traced so far (names their body graphs) */
    const char *last_note; /* the last note printed while unwinding an error */
    SrcLoc last_note_loc;
} Elab;

/* Evaluated call arguments: positional ones first, then keywords (names[i] != NULL). */
typedef struct CallArgs {
    int n;
    Value *vals;
    const char **names;
    SrcLoc *locs;
} CallArgs;

/* Recursion limits. The parser bounds one expression's height and block
 * nesting by PARSE_MAX_DEPTH, but calls stack those (a fn whose deepest
 * expression calls a fn whose deepest expression ...), so evaluation counts its
 * own depth across calls too: about 1 KiB of stack a level under ASan, so the
 * limit stays well inside an 8 MiB stack. */
enum { ELAB_MAX_CALL_DEPTH = 64, ELAB_MAX_INST_DEPTH = 32, ELAB_MAX_EVAL_DEPTH = 3000 };
/* Compile-time sequences: the longest range(), and the steps all unrolled
 * `for` loops of a compilation may take together (a loop over a list or a
 * range runs its body once per item while tracing). */
enum { ELAB_MAX_SEQUENCE = 1 << 16, ELAB_MAX_UNROLLED_STEPS = 1 << 16 };
/* Enters one level of evaluation at loc; false after reporting one too many.
 * A successful enter is paired with e->eval_depth--. */
bool elab_enter(Elab *e, SrcLoc loc);

/* ---- values and scopes (eval.c) ---- */
const char *value_describe(Elab *e, const Value *v); /* "a tensor f32[64,10]", "the integer 3" */
/* Values as source spells them, for messages: "Linear(783, 128)", "f32[64,784]", "true". */
const char *value_brief(Elab *e, const Value *v);
const char *call_text(Elab *e, const char *name, const CallArgs *ca);
bool value_is_const(const Value *v);                  /* number, bool, list, dtype */
bool value_is_module_list(const Value *v);            /* a V_LIST of instances */
Value value_num(double x, bool is_int, SrcLoc loc);
Binding *scope_find(Scope *s, const char *name);
void scope_bind(Elab *e, Scope *s, const char *name, SrcLoc loc, Value v, bool is_arg);
/* A close spelling of name among the names visible from s and the builtins, or NULL. */
const char *suggest_name(Elab *e, Scope *s, const char *name);

/* ---- expressions (eval.c) ---- */
bool eval_expr(Elab *e, Scope *s, const Expr *x, Value *out);
/* a[...]: lists, tuples and tensors (index.c). */
bool eval_index(Elab *e, Scope *s, const Expr *x, Value *out);
/* Evaluates a call's arguments into ca (prepending self when given). */
bool eval_args(Elab *e, Scope *s, const Expr *call, const Value *self, CallArgs *ca);
/* A constant integer / number / bool, or an error naming what was found and `what` it is for. */
bool value_int(Elab *e, const Value *v, const char *what, int64_t *out);
bool value_number(Elab *e, const Value *v, const char *what, double *out);
bool value_bool(Elab *e, const Value *v, const char *what, bool *out);
/* The tensor node for v, making a scalar const node (dtype `like`) for a number or bool. */
bool value_tensor(Elab *e, const Value *v, DType like, const char *what, int *id);
/* A tensor operand for op `what`: errors for anything but a tensor. */
bool need_tensor(Elab *e, const Value *v, const char *what, int *id);
/* Elementwise binary op on tensors and/or constants (constants fold). */
bool eval_binary_op(Elab *e, TokKind op, const Value *a, const Value *b, SrcLoc loc, Value *out);
/* A tensor result of graph_add_op (false when the op table reported an error). */
bool add_op(Elab *e, OpKind op, const int *ins, int n_in, const NodeAttrs *attrs, SrcLoc loc, Value *out);

/* ---- calls (calls.c, builtins.c) ---- */
/* Maps arguments onto parameter slots; reports count/keyword errors naming fname ("sum()"). */
bool bind_args(Elab *e, SrcLoc loc, const char *fname, const char *const *pnames, int n_params, int n_required,
               const CallArgs *ca, Value *slots, bool *given);
/* Calls a DSL fn (module method when fv->inst, top-level otherwise). */
bool call_fn(Elab *e, const Value *fv, const char *display, SrcLoc loc, const CallArgs *ca, Value *out);
/* Calls instance's forward. */
bool call_instance(Elab *e, Instance *inst, SrcLoc loc, const CallArgs *ca, Value *out);
/* Builtin function by name: true if it exists (*found), result in out. */
bool builtin_call(Elab *e, const char *name, SrcLoc loc, const CallArgs *ca, Value *out, bool *found);
bool builtin_exists(const char *name);
/* Names of all builtins, NULL-terminated (for suggestions). */
const char *const *builtin_names(void);
/* The layer builtins (builtins_layers.c, builtins_norm.c: slicing, embedding,
 * dropout, batch_norm, ...), consulted by the three above for names not in
 * builtins.c's table. */
enum { LAYER_BUILTINS_MAX = 32 };
bool layer_builtin_exists(const char *name);
const char *const *layer_builtin_names(void); /* NULL-terminated */
bool layer_builtin_call(Elab *e, const char *name, SrcLoc loc, const CallArgs *ca, Value *out, bool *found);
/* Adds the params of inst and its children to e->graph (PyTorch state_dict order; instantiate.c). */
bool emit_params(Elab *e, Instance *inst);
/* The train block of the user file (train.c); e->graph is the new loss graph. */
TrainSpec *elab_train(Elab *e, const TrainDecl *td, Instance *model, const FnDecl *forward);
/* A tensor type from a TypeExpr, dims evaluated in s (calls.c). Refuses a tensor over
 * ELAB_MAX_TENSOR_BYTES, naming it as `what` ("param 'fc1.weight'"; NULL: by
 * its type alone). */
bool resolve_type(Elab *e, Scope *s, const TypeExpr *t, const char *what, DType *dt, Shape *sh);
/* The largest tensor a source may declare (a param, an input, an annotation):
 * every one is allocated whole by the eager executor and by emitted programs,
 * and embedded params are compiled into C arrays. */
#define ELAB_MAX_TENSOR_BYTES ((int64_t)4 << 30)
#define ELAB_MAX_PARAMS_BYTES ((int64_t)16 << 30) /* all of a model's params together */
/* The DSL's dtypes, for messages. */
#define DTYPE_NAMES "f32, f64, i32, i64 or bool"

/* ---- between the elaborator's own files ---- */
/* Checks v against a declared type; a number meeting a rank-0 type becomes a const node (calls.c). */
bool check_type(Elab *e, Scope *s, const TypeExpr *t, Value *v, const char *what);
/* inst's own binding of name (a member or argument), not its file scope's (calls.c). */
Binding *own_binding(Instance *inst, const char *name);
/* Errors inside the standard library are reported at the user's call (calls.c):
 * lib_hold starts holding them when site (user code) calls body (library
 * code); lib_release ends it, reporting a held error at site as "WHAT:
 * message", what(e, arg) built only then. note_once adds a note for the
 * error being unwound unless it repeats the previous one. */
bool in_stdlib(SrcLoc loc);
bool lib_hold(Elab *e, SrcLoc site, SrcLoc body);
void lib_release(Elab *e, bool ok, SrcLoc site, const char *(*what)(Elab *, const void *), const void *arg,
                 const char *where);
void note_once(Elab *e, SrcLoc loc, const char *text);
/* Instantiates module mod (a V_MODULE) as path under parent (instantiate.c). */
Instance *instantiate(Elab *e, const Value *mod, const char *path, const char *suffix, Instance *parent,
                      const CallArgs *ca, SrcLoc loc);

/* How a statement or block ended (statements.c). */
typedef enum ExecResult { EXEC_NEXT, EXEC_RETURNED, EXEC_FAILED } ExecResult;

/* The fn call whose body is executing: what its 'return' delivers. */
typedef struct Frame {
    const FnDecl *fn;
    const char *display; /* "Linear.forward()" */
    Value ret;
    SrcLoc ret_loc;
} Frame;

Scope *new_scope(Elab *e, Scope *parent, bool is_fn);
/* Executes block b in a new scope under parent. */
ExecResult exec_block(Elab *e, Scope *parent, const Block *b, Frame *fr);

#endif
