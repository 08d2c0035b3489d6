/* ast.h: tokens and the syntax tree of the etch DSL.
 *
 * The lexer turns a source file into a token array; the parser turns tokens
 * into the tree below; the elaborator (elab.h) walks the tree to instantiate
 * modules and trace the model's forward into an IR graph. Every token and
 * every node carries the SrcLoc it came from, and everything is allocated from
 * the compilation's Arena (nothing is freed individually). */
#ifndef ETCH_FRONTEND_AST_H
#define ETCH_FRONTEND_AST_H

#include <stdbool.h>
#include <stdint.h>

#include "ir/ir.h"

/* ---- tokens ------------------------------------------------------------- */

typedef enum TokKind {
    TK_EOF,
    TK_IDENT,
    TK_INT,   /* 64, 0x10 is not supported: decimal only */
    TK_FLOAT, /* 0.5, 1e-3, 2.0 */
    TK_DTYPE, /* f32 f64 i32 i64 bool */
    /* keywords */
    TK_CONST,
    TK_MODULE,
    TK_MODEL,
    TK_FN,
    TK_LET,
    TK_RETURN,
    TK_PARAM,
    TK_FROZEN,
    TK_IF,
    TK_ELSE,
    TK_TRUE,
    TK_FALSE,
    TK_AND,
    TK_OR,
    TK_NOT,
    TK_FOR,
    TK_IN,
    TK_YIELD,
    /* punctuation */
    TK_LPAREN,
    TK_RPAREN,
    TK_LBRACKET,
    TK_RBRACKET,
    TK_LBRACE,
    TK_RBRACE,
    TK_COMMA,
    TK_COLON,
    TK_SEMI,
    TK_DOT,
    TK_ASSIGN,
    TK_ARROW,
    TK_ELLIPSIS, /* ... (in subscripts) */
    /* operators */
    TK_PLUS,
    TK_MINUS,
    TK_STAR,
    TK_SLASH,
    TK_PERCENT,
    TK_STARSTAR,
    TK_AT,
    TK_LT,
    TK_LE,
    TK_GT,
    TK_GE,
    TK_EQEQ,
    TK_NE,
    TK_COUNT
} TokKind;

typedef struct Token {
    TokKind kind;
    const char *text; /* points into the source */
    int len;
    SrcLoc loc;
    double num;   /* TK_INT, TK_FLOAT */
    DType dtype;  /* TK_DTYPE */
} Token;

/* Spelling of a token kind for messages: "')'", "'let'", "a name". */
const char *tok_kind_str(TokKind k);
/* Lexes src (named path in locations). Returns a TK_EOF-terminated array and
 * its length through n, or NULL after reporting an error through d. */
Token *lex_source(Arena *a, const char *path, const char *src, int *n, Diag *d);

/* ---- expressions -------------------------------------------------------- */

typedef enum ExprKind {
    EX_NUM,    /* 3, 0.5 (is_int tells which) */
    EX_BOOL,   /* true, false */
    EX_NAME,   /* fc1, x, B */
    EX_DTYPE,  /* f64 as a value: cast(x, f64) */
    EX_LIST,   /* [a, b, c] */
    EX_UNARY,  /* -x, +x, not c */
    EX_BINARY, /* a + b, a @ b, a < b, a and b ... */
    EX_CALL,   /* f(args), m.f(args) */
    EX_MEMBER, /* a.name */
    EX_INDEX,  /* a[i], x[a:b, -1, ...]: lhs[items] */
    EX_SLICE,  /* a subscript start:stop:step (lhs, rhs, step; each NULL when left out) */
    EX_ELLIPSIS, /* a subscript ... */
} ExprKind;

typedef struct Expr Expr;

/* How deep source may nest: expressions (parentheses, operators, a chain such
 * as a + b + c counts one level per operator) and blocks. The parser rejects
 * anything deeper, so every later recursive walk over the tree (the parser
 * itself, constant evaluation, elaboration) stays far inside the stack, with
 * room for the sanitizers' bigger frames. */
enum { PARSE_MAX_DEPTH = 1000 };

/* One call argument: positional (name == NULL) or keyword (name = value). */
typedef struct Arg {
    const char *name;
    SrcLoc name_loc;
    Expr *value;
} Arg;

struct Expr {
    ExprKind kind;
    SrcLoc loc;         /* operator token, call name, or the literal/name itself */
    double num;         /* EX_NUM */
    bool is_int;        /* EX_NUM: written without '.' or exponent */
    bool bval;          /* EX_BOOL */
    DType dtype;        /* EX_DTYPE */
    const char *name;   /* EX_NAME, EX_MEMBER (the member), EX_CALL (callee's last name) */
    TokKind op;         /* EX_UNARY, EX_BINARY */
    Expr *lhs, *rhs;    /* EX_UNARY (lhs), EX_BINARY, EX_MEMBER (lhs), EX_INDEX (lhs), EX_SLICE (start, stop) */
    Expr *step;         /* EX_SLICE */
    Expr *callee;       /* EX_CALL: an EX_NAME or EX_MEMBER */
    Arg *args;          /* EX_CALL */
    int n_args;
    Expr **items;       /* EX_LIST; EX_INDEX: the subscripts */
    int n_items;
    int depth;          /* height of this subtree (a leaf is 1), at most PARSE_MAX_DEPTH */
};

/* ---- types -------------------------------------------------------------- */

/* f32[B, 784], f32 (rank 0), or dt[...] where dt names a dtype value. */
typedef struct TypeExpr {
    SrcLoc loc;
    bool has_dtype;      /* spelled with a dtype keyword ... */
    DType dtype;
    const char *dtype_name; /* ... or with a name bound to a dtype (a constructor argument) */
    Expr **dims;
    int n_dims;
} TypeExpr;

/* ---- statements (fn bodies) --------------------------------------------- */

typedef enum StmtKind {
    ST_LET,    /* let a = e; let a: T = e; let a, b = e */
    ST_ASSIGN, /* a = e (a must be bound) */
    ST_RETURN, /* return e, ... */
    ST_IF,     /* if c { ... } else { ... }   (c a compile-time constant) */
    ST_FOR,    /* [let a, b =] for x in xs { ... [yield e, ...] }: a loop over time, run at run time */
    ST_YIELD,  /* yield e, ...: a for body's per-step outputs */
} StmtKind;

typedef struct Stmt Stmt;

typedef struct Block {
    Stmt **stmts;
    int n_stmts;
    SrcLoc open, close; /* the braces */
} Block;

struct Stmt {
    StmtKind kind;
    SrcLoc loc;          /* the keyword, or the assigned name */
    const char **names;  /* ST_LET, ST_ASSIGN (one) */
    SrcLoc *name_locs;
    int n_names;
    TypeExpr *type;      /* ST_LET: optional annotation */
    Expr **values;       /* ST_ASSIGN: one; ST_LET, ST_RETURN: one or more (several form a tuple) */
    int n_values;
    Expr *cond;          /* ST_IF */
    Block then_block;    /* ST_IF; ST_FOR: the loop body */
    const char *loop_var; /* ST_FOR: the step variable, values[0] the sequence; names: the let-bound results */
    SrcLoc loop_var_loc;
    Block *else_block;   /* ST_IF: NULL when absent; an else-if is a block holding one ST_IF */
};

/* ---- declarations ------------------------------------------------------- */

/* A parameter of a module constructor or a fn: name [: type] [= default]. */
typedef struct Param {
    const char *name;
    SrcLoc loc;
    TypeExpr *type;  /* fn parameters only; NULL = untyped */
    Expr *dflt;      /* NULL = required */
} Param;

typedef struct FnDecl {
    const char *name;
    SrcLoc loc;
    Param *params;
    int n_params;
    TypeExpr **rets; /* declared return types; n_rets == 0: not declared */
    int n_rets;
    Block body;
} FnDecl;

typedef enum MemberKind {
    MB_CONST,    /* const k = e */
    MB_PARAM,    /* [frozen] param w: T = init(args) */
    MB_INSTANCE, /* fc1 = Linear(784, 128); blocks = [Block(d) for i in range(N)]; inline l = ... */
    MB_FN,       /* fn forward(x) { ... } */
    MB_IF,       /* if c { members } else { members } */
} MemberKind;

typedef struct Member Member;

typedef struct MemberList {
    Member **items;
    int n;
} MemberList;

struct Member {
    MemberKind kind;
    const char *name; /* CONST, PARAM, INSTANCE, FN */
    SrcLoc loc;       /* the name (or 'if') */
    Expr *value;      /* CONST: the expression; PARAM: the initializer call; INSTANCE: the constructor call */
    Expr *list_count; /* INSTANCE: N of a module list '[Ctor(...) for i in range(N)]', NULL for one instance */
    const char *list_var; /* INSTANCE list: the index name the constructor arguments may use */
    SrcLoc list_var_loc;
    bool inline_names; /* INSTANCE: 'inline': params named as the parent's, '_<name>[<i>]' appended */
    TypeExpr *type;   /* PARAM */
    bool frozen;      /* PARAM; INSTANCE: every param of the submodule is frozen */
    FnDecl *fn;       /* FN */
    Expr *cond;       /* IF */
    MemberList then_members, else_members; /* IF (an else-if is an else list holding one MB_IF) */
};

typedef struct ModuleDecl {
    const char *name;
    SrcLoc loc;
    bool is_model;
    Param *params; /* constructor arguments (models have none) */
    int n_params;
    MemberList members;
} ModuleDecl;

typedef struct ConstDecl {
    const char *name;
    SrcLoc loc;
    Expr *value;
} ConstDecl;

/* One entry of a train block: `name = expr` or `name: type`. */
typedef struct TrainEntry {
    const char *name;
    SrcLoc loc;      /* the name */
    Expr *value;     /* `=` entries */
    TypeExpr *type;  /* `:` entries (x, y) */
} TrainEntry;

/* train { loss = ...  optimizer = sgd(...)  batch = 64  epochs = 10  [x: T]  [y: T] }, or with named
 * steps: train { step d { loss = ...  optimizer = ... }  step g { ... }  schedule = [d, g] } */
typedef struct TrainDecl {
    SrcLoc loc;      /* the 'train' word; a step's: its 'step' word */
    const char *name; /* a step's name; NULL for the train block */
    SrcLoc name_loc;
    TrainEntry *entries;
    int n_entries;
    struct TrainDecl *steps; /* the block's `step NAME { ... }`, in source order */
    int n_steps;
} TrainDecl;

/* One parsed file: its top-level declarations, each kind in source order. */
typedef struct Unit {
    const char *path;
    ConstDecl **consts;
    int n_consts;
    ModuleDecl **modules; /* modules and models */
    int n_modules;
    FnDecl **fns;
    int n_fns;
    TrainDecl *train; /* NULL when the file has no train block */
} Unit;

/* Parses a whole file. NULL after reporting the first error through d. */
Unit *parse_unit(Arena *a, const char *path, const char *src, Diag *d);

#endif
