/* builtins_layers.h: the layer builtins' private interface, shared by
 * builtins_layers.c (the table, slicing, embedding, activations, masks),
 * builtins_norm.c (dropout and batch_norm: the builtins that behave
 * differently while tracing a train block) and builtins_random.c (rand,
 * randn, randint). builtins.c reaches them through
 * layer_builtin_exists/_names/_call (elab.h). */
#ifndef ETCH_FRONTEND_BUILTINS_LAYERS_H
#define ETCH_FRONTEND_BUILTINS_LAYERS_H

#include "frontend/elab.h"

enum { LB_MAX_PARAMS = 10 };

typedef struct LayerBuiltin LayerBuiltin;
typedef bool (*LayerImpl)(Elab *e, const LayerBuiltin *b, SrcLoc loc, Value *args, bool *given, Value *out);

struct LayerBuiltin {
    const char *name;
    const char *params[LB_MAX_PARAMS];
    int n_params, n_required;
    LayerImpl impl;
};

/* "name()" for messages. */
const char *lb_fname(Elab *e, const LayerBuiltin *b);
/* "f32[2,4]" of node id (arena). */
const char *lb_type(Elab *e, int id);
/* A new node (add_op), -1 after reporting an error; -1 operands pass through. */
int lb_op(Elab *e, OpKind op, const int *ins, int n, const NodeAttrs *at, SrcLoc loc);
int lb_bin(Elab *e, OpKind op, int a, int b, SrcLoc loc);
/* A rank-0 constant of dtype t. */
int lb_const(Elab *e, double v, DType t, SrcLoc loc);
/* x reshaped (a view) to s; x itself when the shape already matches. */
int lb_reshape(Elab *e, int x, Shape s, SrcLoc loc);

/* A shape argument: a list of at most ETCH_MAX_RANK integers in [1, 2^31 - 1] ([] is rank 0). */
bool lb_shape_arg(Elab *e, const LayerBuiltin *b, const Value *v, Shape *out);

/* builtins_random.c */
/* The step operand of a random op traced now: the param "optimizer.step" in a
 * train block (created on first use), the constant 0 in inference; -1 after
 * reporting an error (fn names the builtin). */
int lb_random_step(Elab *e, const char *fn, SrcLoc loc);
/* The seed of the next random call site of g. */
uint64_t lb_site_seed(const Elab *e);
bool lb_rand(Elab *e, const LayerBuiltin *b, SrcLoc loc, Value *args, bool *given, Value *out);
bool lb_randint(Elab *e, const LayerBuiltin *b, SrcLoc loc, Value *args, bool *given, Value *out);

/* builtins_norm.c */
bool lb_dropout(Elab *e, const LayerBuiltin *b, SrcLoc loc, Value *args, bool *given, Value *out);
bool lb_batch_norm(Elab *e, const LayerBuiltin *b, SrcLoc loc, Value *args, bool *given, Value *out);

#endif
