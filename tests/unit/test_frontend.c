/* test_frontend.c: unit tests for the DSL front end (lexer, parser,
 * elaborator, standard library) through its public entry points and the
 * internal lexer/parser API in frontend/ast.h. Graph-level checks look at
 * node ops, shapes, attributes, names and source locations directly;
 * diagnostics are checked by their exact text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <math.h>

#include "frontend/ast.h"
#include "frontend/frontend.h"

/* ---- helpers ------------------------------------------------------------ */

typedef struct Fixture {
    Arena *arena;
    Diag diag;
} Fixture;

static int setup(void **state) {
    Fixture *f = calloc(1, sizeof *f);
    f->arena = arena_new();
    diag_init(&f->diag, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    Fixture *f = *state;
    diag_dispose(&f->diag);
    arena_free(f->arena);
    free(f);
    return 0;
}

/* Compiles src (path and src must be string literals: the diagnostics
 * registry keeps the pointers). */
static Program *compile(Fixture *f, const char *path, const char *src) {
    return frontend_compile_source(f->arena, path, src, NULL, 0, &f->diag);
}

static void assert_error(Fixture *f, const char *path, const char *src, const char *expected) {
    Program *p = compile(f, path, src);
    assert_null(p);
    assert_true(f->diag.n_errors > 0);
    assert_non_null(f->diag.text);
    if (!strstr(f->diag.text, expected)) {
        print_error("expected diagnostic containing:\n  %s\ngot:\n%s\n", expected, f->diag.text);
        fail();
    }
}

static const Node *node(const Program *p, int id) {
    assert_true(id >= 0 && id < p->forward->n_nodes);
    return &p->forward->nodes[id];
}

/* The first node with op k at or after `from`; fails if none. */
static int find_op(const Program *p, OpKind k, int from) {
    for (int i = from; i < p->forward->n_nodes; i++)
        if (p->forward->nodes[i].op == k) return i;
    print_error("no '%s' node from %%%d\n", op_table[k].name, from);
    fail();
    return -1;
}

static void assert_shape(const Node *n, int rank, const int64_t *dims) {
    assert_int_equal(n->shape.rank, rank);
    for (int i = 0; i < rank; i++) assert_int_equal(n->shape.dim[i], dims[i]);
}

static const char MLP[] = "// an MLP\n"
                          "const B = 64\n"
                          "model Net {\n"
                          "  fc1 = Linear(784, 128)\n"
                          "  fc2 = Linear(128, 10)\n"
                          "  fn forward(x: f32[B, 1, 28, 28]) -> f32[B, 10] {\n"
                          "    let h = relu(fc1(flatten(x, 1)))\n"
                          "    return fc2(h)\n"
                          "  }\n"
                          "}\n";

/* ---- lexer -------------------------------------------------------------- */

static void test_lex_tokens(void **state) {
    Fixture *f = *state;
    int n;
    Token *t = lex_source(f->arena, "t.etch", "const B = 64 // c\n  x ** 2.5e1 -> f64 <= != @ frozen", &n, &f->diag);
    assert_non_null(t);
    TokKind want[] = {TK_CONST, TK_IDENT, TK_ASSIGN, TK_INT, TK_IDENT, TK_STARSTAR, TK_FLOAT,
                      TK_ARROW, TK_DTYPE, TK_LE,     TK_NE,  TK_AT,    TK_FROZEN,   TK_EOF};
    assert_int_equal(n, (int)(sizeof want / sizeof want[0]));
    for (int i = 0; i < n; i++) assert_int_equal(t[i].kind, want[i]);
    assert_true(t[3].num == 64);
    assert_true(t[6].num == 25.0);
    assert_int_equal(t[8].dtype, DT_F64);
    assert_int_equal(t[4].loc.line, 2); /* x */
    assert_int_equal(t[4].loc.col, 3);
    assert_string_equal(t[4].loc.file, "t.etch");
}

static void test_lex_errors(void **state) {
    Fixture *f = *state;
    int n;
    assert_null(lex_source(f->arena, "t.etch", "const A = 1e+", &n, &f->diag));
    assert_non_null(strstr(f->diag.text, "t.etch:1:11: error: malformed number '1e'"));
    assert_null(lex_source(f->arena, "t.etch", "\n  a ? b", &n, &f->diag));
    assert_non_null(strstr(f->diag.text, "t.etch:2:5: error: unexpected character '?'"));
    assert_null(lex_source(f->arena, "t.etch", "x = 3abc", &n, &f->diag));
    assert_non_null(strstr(f->diag.text, "malformed number '3abc'"));
    assert_null(lex_source(f->arena, "t.etch", "x = 99999999999999999999", &n, &f->diag));
    assert_non_null(strstr(f->diag.text, "is too large"));
    assert_int_equal(f->diag.n_errors, 4);
}

/* ---- parser ------------------------------------------------------------- */

static const Expr *parse_const_expr(Fixture *f, const char *src) {
    Unit *u = parse_unit(f->arena, "p.etch", src, &f->diag);
    assert_non_null(u);
    assert_int_equal(u->n_consts, 1);
    return u->consts[0]->value;
}

static void test_parse_precedence(void **state) {
    Fixture *f = *state;
    /* a + b * c -> +(a, *(b, c)) */
    const Expr *e = parse_const_expr(f, "const k = a + b * c");
    assert_int_equal(e->kind, EX_BINARY);
    assert_int_equal(e->op, TK_PLUS);
    assert_int_equal(e->rhs->op, TK_STAR);
    /* -x ** 2 -> -( x ** 2 ) ; 2 ** -1 parses */
    e = parse_const_expr(f, "const k = -x ** 2");
    assert_int_equal(e->kind, EX_UNARY);
    assert_int_equal(e->lhs->op, TK_STARSTAR);
    e = parse_const_expr(f, "const k = 2 ** 3 ** 2"); /* right-associative */
    assert_int_equal(e->rhs->op, TK_STARSTAR);
    /* a @ b + c -> +(@(a, b), c) ; comparisons below arithmetic, 'and' below 'not' */
    e = parse_const_expr(f, "const k = a @ b + c");
    assert_int_equal(e->op, TK_PLUS);
    assert_int_equal(e->lhs->op, TK_AT);
    e = parse_const_expr(f, "const k = not a < b and c");
    assert_int_equal(e->op, TK_AND);
    assert_int_equal(e->lhs->kind, EX_UNARY);
    assert_int_equal(e->lhs->lhs->op, TK_LT);
    /* the operator token is the node's location */
    e = parse_const_expr(f, "const k = aa  -  b");
    assert_int_equal(e->loc.col, 15);
}

static void test_parse_calls_and_members(void **state) {
    Fixture *f = *state;
    const Expr *e = parse_const_expr(f, "const k = m.sum(x, dim=[1, -1], keepdim=true)[0]");
    assert_int_equal(e->kind, EX_INDEX);
    const Expr *c = e->lhs;
    assert_int_equal(c->kind, EX_CALL);
    assert_string_equal(c->name, "sum");
    assert_int_equal(c->callee->kind, EX_MEMBER);
    assert_int_equal(c->n_args, 3);
    assert_null(c->args[0].name);
    assert_string_equal(c->args[1].name, "dim");
    assert_int_equal(c->args[1].value->kind, EX_LIST);
    assert_int_equal(c->args[1].value->n_items, 2);
    assert_string_equal(c->args[2].name, "keepdim");
}

static void test_parse_declarations(void **state) {
    Fixture *f = *state;
    Unit *u = parse_unit(f->arena, "p.etch",
                         "module M(a, b = 2) {\n"
                         "  const k = a\n"
                         "  frozen param w: f32[a, b] = normal(0, 1);\n"
                         "  sub = Linear(a, b)\n"
                         "  if b > 1 { param v: f32 = zeros() } else { const z = 1 }\n"
                         "  fn forward(x, y: f64[3] = 1) -> (f32[a], f64[3]) { let p, q = x, y; return p, q }\n"
                         "}\n"
                         "model Net { fn forward(x: f32[1]) { return x } }\n"
                         "fn helper(x) { return x }\n",
                         &f->diag);
    assert_non_null(u);
    assert_int_equal(u->n_modules, 2);
    assert_int_equal(u->n_fns, 1);
    const ModuleDecl *m = u->modules[0];
    assert_false(m->is_model);
    assert_true(u->modules[1]->is_model);
    assert_int_equal(m->n_params, 2);
    assert_null(m->params[0].dflt);
    assert_non_null(m->params[1].dflt);
    assert_int_equal(m->members.n, 5);
    assert_int_equal(m->members.items[0]->kind, MB_CONST);
    assert_int_equal(m->members.items[1]->kind, MB_PARAM);
    assert_true(m->members.items[1]->frozen);
    assert_int_equal(m->members.items[1]->type->n_dims, 2);
    assert_int_equal(m->members.items[2]->kind, MB_INSTANCE);
    assert_int_equal(m->members.items[3]->kind, MB_IF);
    assert_int_equal(m->members.items[3]->then_members.n, 1);
    assert_int_equal(m->members.items[3]->else_members.n, 1);
    const FnDecl *fn = m->members.items[4]->fn;
    assert_string_equal(fn->name, "forward");
    assert_int_equal(fn->n_params, 2);
    assert_null(fn->params[0].type);
    assert_non_null(fn->params[1].type);
    assert_int_equal(fn->n_rets, 2);
    assert_int_equal(fn->body.n_stmts, 2);
    assert_int_equal(fn->body.stmts[0]->kind, ST_LET);
    assert_int_equal(fn->body.stmts[0]->n_names, 2);
    assert_int_equal(fn->body.stmts[1]->kind, ST_RETURN);
    assert_int_equal(fn->body.stmts[1]->n_values, 2);
}

static void test_parse_errors(void **state) {
    static const struct {
        const char *src, *msg;
    } cases[] = {
        {"model N {\n  fn forward(x: f32[1]) {\n    let h = relu(x\n    let y = h\n  }\n}",
         "p.etch:4:5: error: expected ')' to close '(' at 3:17, found 'let'"},
        {"model N {", "p.etch:1:10: error: expected '}' to close '{' at 1:9, found end of file"},
        {"const = 3", "p.etch:1:7: error: expected a name after 'const', found '='"},
        {"fn f(x, x) { return x }", "p.etch:1:9: error: duplicate parameter 'x'"},
        {"fn f(a = 1, b) { return a }", "p.etch:1:13: error: parameter 'b' without a default follows one with a default"},
        {"module M(n: f32) {}", "constructor arguments are compile-time constants and take no type"},
        {"model N { x = 3 }", "'x = ...' in a module body must instantiate a module"},
        {"model N { param w: f32[2] = 0 }", "a param initializer must be a call"},
        {"const k = (1, 2)", "tuples are not values"},
        {"const k = f(a=1, 2)", "p.etch:1:18: error: positional argument follows keyword argument"},
        {"let x = 1", "p.etch:1:1: error: expected 'const', 'module', 'model', 'fn' or 'train' at top level, found 'let'"},
        {"fn f() { 3 }", "expected a statement ('let', 'return', 'if', 'for', 'yield' or 'name = ...'), found '3'"},
        {"const k = f32[1, 2]", NULL},
        {"const k = x[1:2:3:4]", "p.etch:1:18: error: expected ']' to close '[' at 1:12, found ':'"},
        {"const k = x[1, , 2]", "p.etch:1:16: error: expected an expression, found ','"},
        {"fn f(x: f32[1,1,1,1,1,1,1,1,1]) { return x }", "tensor type has 9 dimensions; at most 8 are supported"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Fixture *f = *state;
        diag_dispose(&f->diag);
        diag_init(&f->diag, NULL);
        Unit *u = parse_unit(f->arena, "p.etch", cases[i].src, &f->diag);
        if (!cases[i].msg) { /* parses (an index into a dtype is an elaboration error) */
            assert_non_null(u);
            continue;
        }
        if (u) {
            print_error("case %zu: parsed without error\n", i);
            fail();
        }
        assert_int_equal(f->diag.n_errors, 1);
        if (!strstr(f->diag.text, cases[i].msg)) {
            print_error("case %zu: expected '%s', got:\n%s\n", i, cases[i].msg, f->diag.text);
            fail();
        }
    }
}

/* ---- elaboration: the MLP ----------------------------------------------- */

static void test_mlp_graph(void **state) {
    Fixture *f = *state;
    Program *p = compile(f, "mlp.etch", MLP);
    assert_non_null(p);
    assert_int_equal(f->diag.n_errors, 0);
    assert_string_equal(p->model_name, "Net");
    assert_int_equal(p->model_loc.line, 3);
    assert_int_equal(p->model_loc.col, 7);
    Graph *g = p->forward;
    assert_string_equal(g->name, "Net.forward");
    assert_true(ir_verify(g, &f->diag));

    assert_int_equal(g->n_inputs, 1);
    const Node *x = node(p, g->inputs[0]);
    assert_string_equal(x->attr.name, "x");
    assert_shape(x, 4, (int64_t[]){64, 1, 28, 28});
    assert_int_equal(x->loc.line, 6);
    assert_int_equal(x->loc.col, 14);

    assert_int_equal(g->n_params, 4);
    const char *names[] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
    const int64_t shapes[4][2] = {{128, 784}, {128, 0}, {10, 128}, {10, 0}};
    for (int i = 0; i < 4; i++) {
        const Node *w = node(p, g->params[i]);
        assert_string_equal(w->attr.name, names[i]);
        assert_int_equal(w->dtype, DT_F32);
        assert_int_equal(w->shape.rank, i % 2 ? 1 : 2);
        assert_int_equal(w->shape.dim[0], shapes[i][0]);
        if (i % 2 == 0) assert_int_equal(w->shape.dim[1], shapes[i][1]);
        /* PyTorch's default Linear init: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias */
        double bound = 1 / sqrt(i < 2 ? 784.0 : 128.0);
        assert_int_equal(w->attr.init.kind, INIT_UNIFORM);
        assert_true(fabs(w->attr.init.a + bound) < 1e-15);
        assert_true(fabs(w->attr.init.b - bound) < 1e-15);
        assert_false(w->attr.frozen);
        assert_string_equal(w->loc.file, "nn.etch"); /* params come from the stdlib */
    }

    assert_int_equal(g->n_outputs, 1);
    const Node *out = node(p, g->outputs[0]);
    assert_int_equal(out->op, OP_ADD);
    assert_shape(out, 2, (int64_t[]){64, 10});

    int r = find_op(p, OP_RESHAPE, 0);
    assert_shape(node(p, r), 2, (int64_t[]){64, 784});
    assert_string_equal(node(p, r)->loc.file, "mlp.etch"); /* flatten( ... at 7:22 */
    assert_int_equal(node(p, r)->loc.line, 7);
    assert_int_equal(node(p, r)->loc.col, 22);
    int t = find_op(p, OP_TRANSPOSE, 0);
    assert_int_equal(node(p, t)->attr.n_axes, 2);
    assert_int_equal(node(p, t)->attr.axes[0], 1);
    assert_int_equal(node(p, t)->attr.axes[1], 0);
    int relu = find_op(p, OP_RELU, 0);
    assert_int_equal(node(p, relu)->loc.line, 7);
    assert_int_equal(node(p, relu)->loc.col, 13);
    int mm = find_op(p, OP_MATMUL, 0);
    assert_string_equal(node(p, mm)->loc.file, "nn.etch");
}

static void test_defines(void **state) {
    Fixture *f = *state;
    Define d1[] = {{"B", "3"}};
    Program *p = frontend_compile_source(f->arena, "mlp.etch", MLP, d1, 1, &f->diag);
    assert_non_null(p);
    assert_int_equal(node(p, p->forward->inputs[0])->shape.dim[0], 3);
    assert_int_equal(node(p, p->forward->outputs[0])->shape.dim[0], 3);

    Define d2[] = {{"B", "three"}};
    assert_null(frontend_compile_source(f->arena, "mlp.etch", MLP, d2, 1, &f->diag));
    assert_non_null(strstr(f->diag.text, "etch: error: -D B=three: the value must be a number or true/false"));
    Define d3[] = {{"BATCH", "2"}};
    assert_null(frontend_compile_source(f->arena, "mlp.etch", MLP, d3, 1, &f->diag));
    assert_non_null(strstr(f->diag.text, "etch: error: -D BATCH: no constant named 'BATCH' in mlp.etch"));
    Define d4[] = {{"B", "1.5"}};
    assert_null(frontend_compile_source(f->arena, "mlp.etch", MLP, d4, 1, &f->diag));
    assert_non_null(strstr(f->diag.text, "mlp.etch:6:21: error: tensor dimension must be an integer, got the number 1.5"));
    Define d5[] = {{"B", "5"}, {"B", "7"}}; /* the last one wins */
    p = frontend_compile_source(f->arena, "mlp.etch", MLP, d5, 2, &f->diag);
    assert_non_null(p);
    assert_int_equal(node(p, p->forward->inputs[0])->shape.dim[0], 7);
}

static void test_param_order_and_attrs(void **state) {
    Fixture *f = *state;
    Program *p = compile(f, "params.etch",
                         "module Inner(d) {\n"
                         "  lin = Linear(d, d, bias=false)\n"
                         "  frozen param scale: f64[d] = full(2.5)\n"
                         "  fn forward(x) { return lin(x) }\n"
                         "}\n"
                         "model Net {\n"
                         "  a = Inner(3)\n"
                         "  param w: f32[3] = normal(0.5, 0.01)\n"
                         "  b = Inner(3)\n"
                         "  param z: i32 = zeros()\n"
                         "  fn forward(x: f32[2, 3]) { return b(a(x)) + w }\n"
                         "}\n");
    assert_non_null(p);
    const Graph *g = p->forward;
    const char *names[] = {"w", "z", "a.scale", "a.lin.weight", "b.scale", "b.lin.weight"};
    assert_int_equal(g->n_params, 6);
    for (int i = 0; i < 6; i++) assert_string_equal(node(p, g->params[i])->attr.name, names[i]);
    const Node *w = node(p, g->params[0]), *z = node(p, g->params[1]), *s = node(p, g->params[2]);
    assert_int_equal(w->attr.init.kind, INIT_NORMAL);
    assert_true(w->attr.init.a == 0.5 && w->attr.init.b == 0.01);
    assert_int_equal(z->attr.init.kind, INIT_ZEROS);
    assert_int_equal(z->dtype, DT_I32);
    assert_int_equal(z->shape.rank, 0);
    assert_int_equal(s->attr.init.kind, INIT_CONST);
    assert_true(s->attr.init.a == 2.5);
    assert_true(s->attr.frozen);
    assert_int_equal(s->dtype, DT_F64);
    assert_int_equal(s->loc.line, 3);
    assert_int_equal(s->loc.col, 16);
    assert_true(ir_verify(g, &f->diag));
}

static void test_builtin_attrs(void **state) {
    Fixture *f = *state;
    Program *p = compile(f, "b.etch",
                         "model M {\n"
                         "  fn forward(x: f32[2, 3, 4]) {\n"
                         "    return sum(x, dim=[-1, 0], keepdim=true), softmax(x, dim=-2), permute(x, [2, 0, 1]),\n"
                         "           transpose(x, -1, 0), reshape(x, [-1, 4]), flatten(x, 0, -2), mean(x), max(x, -1),\n"
                         "           broadcast_to(x, [5, 2, 3, 4]), x.to(i64), log_softmax(x)\n"
                         "  }\n"
                         "}\n");
    assert_non_null(p);
    const Graph *g = p->forward;
    assert_int_equal(g->n_outputs, 11);
    const Node *o[11];
    for (int i = 0; i < 11; i++) o[i] = node(p, g->outputs[i]);
    assert_int_equal(o[0]->op, OP_REDUCE_SUM);
    assert_int_equal(o[0]->attr.n_axes, 2);
    assert_int_equal(o[0]->attr.axes[0], 0); /* normalized and sorted */
    assert_int_equal(o[0]->attr.axes[1], 2);
    assert_true(o[0]->attr.keepdims);
    assert_shape(o[0], 3, (int64_t[]){1, 3, 1});
    assert_int_equal(o[1]->op, OP_SOFTMAX);
    assert_int_equal(o[1]->attr.axis, 1);
    assert_int_equal(o[2]->op, OP_TRANSPOSE);
    assert_int_equal(o[2]->attr.n_axes, 3);
    assert_shape(o[2], 3, (int64_t[]){4, 2, 3});
    assert_int_equal(o[3]->attr.axes[0], 2);
    assert_int_equal(o[3]->attr.axes[1], 1);
    assert_int_equal(o[3]->attr.axes[2], 0);
    assert_int_equal(o[4]->op, OP_RESHAPE);
    assert_shape(o[4], 2, (int64_t[]){6, 4});
    assert_shape(o[5], 2, (int64_t[]){6, 4});
    assert_int_equal(o[6]->op, OP_REDUCE_MEAN);
    assert_int_equal(o[6]->attr.n_axes, 3);
    assert_int_equal(o[6]->shape.rank, 0);
    assert_int_equal(o[7]->op, OP_REDUCE_MAX);
    assert_int_equal(o[7]->attr.axes[0], 2);
    assert_false(o[7]->attr.keepdims);
    assert_int_equal(o[8]->op, OP_BROADCAST);
    assert_shape(o[8], 4, (int64_t[]){5, 2, 3, 4});
    assert_int_equal(o[9]->op, OP_CAST);
    assert_int_equal(o[9]->dtype, DT_I64);
    assert_int_equal(o[10]->op, OP_LOG_SOFTMAX);
    assert_int_equal(o[10]->attr.axis, 2);
    assert_true(ir_verify(g, &f->diag));
}

static void test_literal_dtypes(void **state) {
    Fixture *f = *state;
    Program *p = compile(f, "l.etch",
                         "model M {\n"
                         "  fn forward(x: f64[3], n: i32[3]) { return x * 2, n + 1, 0.5 * x, n > 2, where(n > 0, 1, x) }\n"
                         "}\n");
    assert_non_null(p);
    const Graph *g = p->forward;
    int c = find_op(p, OP_CONST, 0);
    assert_int_equal(node(p, c)->dtype, DT_F64);
    assert_int_equal(node(p, c)->shape.rank, 0);
    assert_true(node(p, c)->attr.value == 2);
    assert_int_equal(node(p, c)->loc.col, 49);
    c = find_op(p, OP_CONST, c + 1);
    assert_int_equal(node(p, c)->dtype, DT_I32);
    assert_int_equal(node(p, g->outputs[1])->dtype, DT_I32);
    assert_int_equal(node(p, g->outputs[2])->dtype, DT_F64);
    assert_int_equal(node(p, g->outputs[3])->dtype, DT_BOOL);
    assert_int_equal(node(p, g->outputs[4])->dtype, DT_F64);
}

static void test_constant_folding(void **state) {
    Fixture *f = *state;
    Program *p = compile(f, "c.etch",
                         "const A = 2 ** 3 + 7 % 3 - 12 / 4\n" /* 8 + 1 - 3 = 6 (an integer) */
                         "const S = 1 / sqrt(16)\n"
                         "const T = int(2.9) + float(1)\n"
                         "const U = A > 5 and not (S == 1)\n"
                         "model M {\n"
                         "  param w: f32[A] = uniform(-S, S + T)\n"
                         "  fn forward(x: f32[A]) { if U { return x + w } else { return x } }\n"
                         "}\n");
    assert_non_null(p);
    const Node *w = node(p, p->forward->params[0]);
    assert_int_equal(w->shape.dim[0], 6);
    assert_true(w->attr.init.a == -0.25);
    assert_true(w->attr.init.b == 3.25);
    assert_int_equal(node(p, p->forward->outputs[0])->op, OP_ADD);
}

static void test_typed_and_untyped_calls(void **state) {
    Fixture *f = *state;
    Program *p = compile(f, "m.etch",
                         "fn twice(x, k = 2) { return x * k }\n"
                         "module Split(d) {\n"
                         "  fn forward(x: f32[1, d]) -> (f32[1, d], f32[1, d]) { return relu(x), -x }\n"
                         "  fn scale(x, s) { return x * s }\n"
                         "}\n"
                         "model M {\n"
                         "  sp = Split(4)\n"
                         "  fn forward(x: f32[1, 4]) -> f32[1, 4] {\n"
                         "    let a, b = sp(x)\n"
                         "    let c: f32[1, 4] = sp.scale(a, 3) + twice(b, k=0.5)\n"
                         "    c = c + 1\n"
                         "    let d, e = c, 2\n"
                         "    return d * e\n"
                         "  }\n"
                         "}\n");
    assert_non_null(p);
    assert_int_equal(p->forward->n_outputs, 1);
    assert_true(ir_verify(p->forward, &f->diag));
}

static void test_defaults(void **state) {
    Fixture *f = *state;
    Program *p = compile(f, "d.etch",
                         "const DT = f64\n"
                         "fn affine(x, k = 2, j = k * 3) { return x * k + j }\n"
                         "module Mlp(d, hidden = 4 * d, dt = DT) {\n"
                         "  fc = Linear(d, hidden, bias=false)\n"
                         "  param s: dt[hidden] = zeros()\n"
                         "  fn forward(x) { return affine(fc(x)) }\n"
                         "}\n"
                         "model M { m = Mlp(3)\n fn forward(x: f32[1, 3]) { return m(x) } }\n");
    assert_non_null(p);
    const Graph *g = p->forward;
    assert_int_equal(g->n_params, 2);
    assert_string_equal(node(p, g->params[0])->attr.name, "m.s");
    assert_int_equal(node(p, g->params[0])->dtype, DT_F64);
    assert_int_equal(node(p, g->params[0])->shape.dim[0], 12);
    assert_int_equal(node(p, g->params[1])->shape.dim[0], 12);
    int c = find_op(p, OP_CONST, 0);
    assert_true(node(p, c)->attr.value == 2);
    c = find_op(p, OP_CONST, c + 1);
    assert_true(node(p, c)->attr.value == 6);
}

static void test_stdlib_modules(void **state) {
    Fixture *f = *state;
    Program *p = compile(f, "s.etch",
                         "model M {\n"
                         "  flat = Flatten()\n"
                         "  norm = LayerNorm(6)\n"
                         "  acts = Sigmoid()\n"
                         "  t = Tanh()\n"
                         "  r = ReLU()\n"
                         "  sm = LogSoftmax(dim=1)\n"
                         "  id = Identity()\n"
                         "  fn forward(x: f32[2, 2, 3]) { return sm(id(t(acts(r(norm(silu(flat(x)))))))) }\n"
                         "}\n");
    assert_non_null(p);
    const Graph *g = p->forward;
    assert_int_equal(g->n_params, 2);
    assert_string_equal(node(p, g->params[0])->attr.name, "norm.weight");
    assert_int_equal(node(p, g->params[0])->attr.init.kind, INIT_ONES);
    assert_string_equal(node(p, g->params[1])->attr.name, "norm.bias");
    assert_int_equal(node(p, g->params[1])->attr.init.kind, INIT_ZEROS);
    assert_int_equal(node(p, g->outputs[0])->op, OP_LOG_SOFTMAX);
    assert_int_equal(node(p, g->outputs[0])->attr.axis, 1);
}

static void test_compile_time_recursion(void **state) {
    Fixture *f = *state;
    Program *p = compile(f, "r.etch",
                         "module Tower(n) {\n"
                         "  if n > 0 { sub = Tower(n - 1)\n param w: f32[n] = ones() }\n"
                         "  fn forward(x) { if n > 0 { return sub(x) } else { return x } }\n"
                         "}\n"
                         "model M { t = Tower(3)\n fn forward(x: f32[1]) { return t(x) } }\n");
    assert_non_null(p);
    const Graph *g = p->forward;
    assert_int_equal(g->n_params, 3);
    assert_string_equal(node(p, g->params[2])->attr.name, "t.sub.sub.w");
    assert_int_equal(node(p, g->params[2])->shape.dim[0], 1);
}

/* ---- elaboration errors ------------------------------------------------- */

static void test_errors(void **state) {
    static const struct {
        const char *src, *msg;
    } cases[] = {
        {"model N {\n  fc1 = Linear(4, 2)\n  fn forward(x: f32[1, 4]) { return fc3(x) }\n}",
         "e.etch:3:37: error: unknown name 'fc3'"},
        {"model N {\n  fn forward(x: f32[64, 784]) { return x @ w }\n  param w: f32[128, 10] = zeros()\n}",
         "e.etch:2:42: error: cannot matmul f32[64,784] by f32[128,10]: inner dims 784 and 128 differ"},
        {"module S(n) { fn forward(x) { return x } }\nmodel N { s = S(1, 2)\n fn forward(x: f32[1]) { return s(x) } }",
         "e.etch:2:15: error: S() takes 1 argument, got 2"},
        {"model N { fn forward(x: f32[2, 3]) { return sum(x, dims=1) } }",
         "error: unknown keyword argument 'dims' for sum()"},
        {"model N { fn forward(x: f32[2, 3]) -> f32[3] { return x } }",
         "error: the return value of N.forward() has type f32[2,3], expected f32[3]"},
        {"model N { fn forward(x: f32[2, 0]) { return x } }", "e.etch:1:32: error: tensor dimension must be positive, got 0"},
        {"model N { fn forward(x: f32[2, 1.5]) { return x } }", "tensor dimension must be an integer, got the number 1.5"},
        {"model N { a = Linear(1, 1)\n a = Linear(1, 1)\n fn forward(x: f32[1]) { return x } }",
         "e.etch:2:2: error: duplicate definition of 'a' in model 'N'"},
        {"module A() { a = A() }\nmodel N { a = A()\n fn forward(x: f32[1]) { return x } }",
         "e.etch:1:18: error: module 'A' instantiates itself: A -> A"},
        {"module A(n) { a = A(n + 1) }\nmodel N { a = A(0)\n fn forward(x: f32[1]) { return x } }",
         "modules nested more than 32 deep"},
        {"module A() { fn forward(x) { return x } }", "e.etch: error: no model defined"},
        {"model A { fn forward(x: f32[1]) { return x } }\nmodel B { fn forward(x: f32[1]) { return x } }",
         "e.etch:2:7: error: more than one model in this file: 'B' here and 'A' at 1:7"},
        {"model N { p = ReLU() }", "e.etch:1:7: error: model 'N' has no forward function"},
        {"const Z = 1 / (2 - 2)\nmodel N { fn forward(x: f32[1]) { return x } }",
         "e.etch:1:13: error: division by zero in constant expression (1 / 0)"},
        {"model N { fn forward(x: f32[2, 3]) { return reshape(x, [x, 3]) } }",
         "list elements must be compile-time numbers, got a tensor f32[2,3]"},
        {"model N { fn forward(x: f32[2, 3]) { return softmax(x, dim=-3) } }",
         "error: dim -3 is out of range for softmax() of f32[2,3] (rank 2; valid dims are -2 to 1)"},
        {"model N { fn forward(x) { return x } }", "parameter 'x' of the model's forward needs a tensor type"},
        {"fn f(x) { return f(x) }\nmodel N { fn forward(x: f32[1]) { return f(x) } }", "calls nested more than 64 deep"},
        {"model N { fn forward(x: f32[1]) { let y = x } }", "e.etch:1:45: error: N.forward() ends without a 'return'"},
        {"model N { fn forward(x: f32[1]) { if x > 0 { return x } return x } }",
         "an 'if' condition must be a compile-time bool, got a tensor bool[1]"},
        {"model N { fc = Linear(2, 2)\n fn forward(x: f32[1, 3]) { return fc(x) } }",
         "e.etch:2:36: error: Linear(2, 2) called with f32[1,3]: cannot matmul f32[1,3] by f32[2,2]: inner dims 3 and 2 "
         "differ\n fn forward(x: f32[1, 3]) { return fc(x) } }\n                                   ^\n"
         "nn.etch:18:16: note: raised here, in Linear.forward() in the standard library\n"},
        {"model N { fn forward(x: f32[1]) { return x.foo } }", "a tensor has no member 'foo'"},
        {"model N { fn forward(x: f32[1]) { return relu } }", "'relu' is a builtin function; call it"},
        {"model N { fn forward(x: f32[1]) { return uniform(0, 1) } }", "uniform() is a param initializer"},
        {"model N { fn forward(x: f32[1]) { return 3 } }", "N.forward() must return tensors, got the integer 3"},
        {"model N { fn forward(x: f32[1], y: f32[1] = 2) { return x } }", "is a graph input and cannot have a default"},
        {"module M(k) { fn forward(x) { return x } }\nmodel N { m = M(relu)\n fn forward(x: f32[1]) { return m(x) } }",
         "'relu' is a builtin function"},
        {"model N { param w: f32[2] = normal(0, -1)\n fn forward(x: f32[1]) { return x } }",
         "normal(mean, std) needs std >= 0, got -1"},
        {"model N { param w: f32[2] = zeros(1)\n fn forward(x: f32[1]) { return x } }", "zeros() takes 0 arguments, got 1"},
        {"model N { r = relu()\n fn forward(x: f32[1]) { return x } }", "'relu' is a builtin function, not a module"},
        {"model N { fn forward(x: f32[1]) { return sqrt(-1) + x } }", "sqrt(-1) is not a finite number"},
        {"model N { fn forward(x: f32[1]) { return x + [1, 2] } }", "operator '+' needs tensors or numbers, got a list"},
        {"model N { fn forward(x: f32[2, 3]) { return transpose(x, 0) } }", "transpose() needs both dim0 and dim1"},
        {"model N { fn forward(x: f32[2, 3]) { return permute(x, [0, 0]) } }", "dims of permute() lists dim 0 twice"},
        {"model N { fn forward(x: f32[2, 3]) { return broadcast_to(x, [3, 3]) } }", "cannot broadcast f32[2,3]"},
        {"model N { fn forward(x: f32[2, 3]) { return cast(x, 3) } }", "the dtype of cast() must be f32, f64"},
        {"model N { fn forward(x: f32[2, 3]) { return x.shape[2] * x } }", "index 2 is out of range for a list of 2"},
        {"model N { fn forward(x: f32[2, 3]) { let a, b = x\n return a } }", "cannot unpack a tensor f32[2,3] into 2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Fixture *f = *state;
        diag_dispose(&f->diag);
        diag_init(&f->diag, NULL);
        Program *p = compile(f, "e.etch", cases[i].src);
        if (p || !f->diag.text || !strstr(f->diag.text, cases[i].msg)) {
            print_error("case %zu: expected '%s', got:\n%s\n", i, cases[i].msg,
                        f->diag.text ? f->diag.text : "(no diagnostics)");
            fail();
        }
        assert_true(f->diag.n_errors == 1); /* stops at the first error */
    }
}

/* Errors raised inside the standard library are located at the user's call
 * (what they can fix), naming the module, its arguments and the input; the
 * library line is a note. Holds at construction, in forward, through a user
 * module, and for keyword arguments. */
static void test_stdlib_errors_at_user_call(void **state) {
    Fixture *f = *state;
    assert_error(f, "s1.etch",
                 "model Net {\n  fc1 = Linear(783, 128)\n  fn forward(x: f32[64, 784]) {\n    return fc1(x)\n  }\n}\n",
                 "s1.etch:4:12: error: Linear(783, 128) called with f32[64,784]: cannot matmul f32[64,784] by "
                 "f32[783,128]: inner dims 784 and 783 differ\n    return fc1(x)\n           ^\n"
                 "nn.etch:18:16: note: raised here, in Linear.forward() in the standard library\n");
    assert_int_equal(f->diag.n_errors, 1);
    diag_dispose(&f->diag);
    assert_error(f, "s2.etch",
                 "model Net {\n  ln = LayerNorm(32, eps=0.001)\n  fn forward(x: f32[4, 16]) { return ln(x) }\n}\n",
                 "s2.etch:3:38: error: LayerNorm(32, eps=0.001) called with f32[4,16]: cannot broadcast f32[4,16] with "
                 "f32[32]");
    assert_non_null(strstr(f->diag.text, "nn.etch:32:40: note: raised here, in LayerNorm.forward() in the standard "
                                         "library\n    return centered"));
    diag_dispose(&f->diag);
    assert_error(f, "s3.etch",
                 "module Block(c) {\n  conv = Conv2d(c, 8, 3)\n  fn forward(x) { return relu(conv(x)) }\n}\n"
                 "model Net {\n  b = Block(3)\n  fn forward(x: f32[2, 4, 8, 8]) { return b(x) }\n}\n",
                 "s3.etch:3:31: error: Conv2d(3, 8, 3) called with f32[2,4,8,8]: conv2d: input has 4 channels but "
                 "weight expects 3");
    assert_non_null(strstr(f->diag.text, "note: raised here, in Conv2d.forward() in the standard library"));
    assert_non_null(strstr(f->diag.text, "s3.etch:7:43: note: in the call to Block.forward() here"));
    diag_dispose(&f->diag);
    assert_error(f, "s4.etch", "model Net {\n  fc = Linear(0, 3)\n  fn forward(x: f32[1, 3]) { return fc(x) }\n}\n",
                 "s4.etch:2:8: error: Linear(0, 3): division by zero in constant expression (1 / 0.0)\n"
                 "  fc = Linear(0, 3)\n       ^\nnn.etch:10:19: note: raised here, in Linear in the standard library\n");
    diag_dispose(&f->diag);
    /* an error at the user's own call is reported as it was */
    assert_error(f, "s5.etch", "model Net {\n  fc = Linear(2, 3)\n  fn forward(x: f32[1, 2]) { return fc(x, x) }\n}\n",
                 "s5.etch:3:37: error: Linear.forward() takes 1 argument, got 2\n");
}

static void test_error_quotes_source(void **state) {
    Fixture *f = *state;
    assert_error(f, "q.etch", "model N {\n  fn forward(x: f32[2]) {\n    return x +  y\n  }\n}\n",
                 "q.etch:3:17: error: unknown name 'y' (did you mean 'x'?)\n"
                 "    return x +  y\n"
                 "                ^\n");
}

/* ---- files -------------------------------------------------------------- */

static void test_compile_file(void **state) {
    Fixture *f = *state;
    static char path[256];
    snprintf(path, sizeof path, "%s/etch_test_frontend_%d.etch", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(MLP, fp);
    fclose(fp);
    Program *p = frontend_compile_file(f->arena, path, NULL, 0, &f->diag);
    assert_non_null(p);
    assert_int_equal(p->forward->n_params, 4);
    assert_string_equal(node(p, p->forward->inputs[0])->loc.file, path);
    remove(path);

    assert_null(frontend_compile_file(f->arena, path, NULL, 0, &f->diag));
    assert_non_null(strstr(f->diag.text, "etch: error: cannot open"));
}

static void test_stdlib_embedded(void **state) {
    (void)state;
    assert_string_equal(etch_stdlib_nn_name, "nn.etch");
    assert_non_null(strstr(etch_stdlib_nn_source, "module Linear(in_features, out_features, bias = true)"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lex_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lex_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_calls_and_members, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_declarations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mlp_graph, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_param_order_and_attrs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_builtin_attrs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_literal_dtypes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_constant_folding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_typed_and_untyped_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stdlib_modules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compile_time_recursion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stdlib_errors_at_user_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_quotes_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compile_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stdlib_embedded, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
