/* test_frontend_limits.c: hostile sources against the DSL front end.
 *
 * Each case is an input that once crashed, hung or misled (issue 13): deep
 * nesting and long operator chains (stack overflow in the parser and the
 * constant evaluator), a multi-megabyte line (diagnostics that quoted all of
 * it), CR-only line endings, an empty file, oversized names and sources. The
 * inputs are generated here; each must give one clear, located error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frontend/ast.h"
#include "frontend/frontend.h"

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

/* A growable source text in the fixture's arena (the diagnostics registry
 * keeps a pointer to it until the arena is freed). */
typedef struct Src {
    Arena *arena;
    char *text;
    size_t len, cap;
} Src;

static void src_add(Src *s, const char *piece, int times) {
    size_t k = strlen(piece);
    size_t need = s->len + k * (size_t)times + 1;
    if (need > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap < need) cap *= 2;
        char *t = arena_alloc(s->arena, cap);
        if (s->len) memcpy(t, s->text, s->len);
        s->text = t;
        s->cap = cap;
    }
    for (int i = 0; i < times; i++, s->len += k) memcpy(s->text + s->len, piece, k);
    s->text[s->len] = '\0';
}

static Program *compile(Fixture *f, const char *src) {
    diag_dispose(&f->diag);
    diag_init(&f->diag, NULL);
    return frontend_compile_source(f->arena, "h.etch", src, NULL, 0, &f->diag);
}

/* Compiling src fails with exactly one error whose text contains want. */
static void expect_error(Fixture *f, const char *src, const char *want) {
    Program *p = compile(f, src);
    if (p || f->diag.n_errors != 1 || !f->diag.text || !strstr(f->diag.text, want)) {
        print_error("expected one error containing '%s', got %d:\n%.2000s\n", want, f->diag.n_errors,
                    f->diag.text ? f->diag.text : "(none)");
        fail();
    }
}

static const char FWD[] = "\nmodel N { fn forward(x: f32[1]) { return x } }\n";

/* ---- nesting ------------------------------------------------------------ */

static void test_deep_parens(void **state) {
    Fixture *f = *state;
    Src s = {.arena = f->arena};
    src_add(&s, "const A = ", 1);
    src_add(&s, "(", 19000);
    src_add(&s, "1", 1);
    src_add(&s, ")", 19000);
    src_add(&s, FWD, 1);
    expect_error(f, s.text, "h.etch:1:1011: error: expression nested too deeply: more than 1000 levels");
}

static void test_long_chain(void **state) {
    Fixture *f = *state;
    Src s = {.arena = f->arena};
    src_add(&s, "const A = 1", 1);
    src_add(&s, " + 1", 29999);
    src_add(&s, FWD, 1);
    expect_error(f, s.text, "expression nested too deeply: more than 1000 levels (each operator of a chain");

    Src t = {.arena = f->arena}; /* the same in a traced expression, and other operators that recurse */
    src_add(&t, "model N { fn forward(x: f32[1]) { return x", 1);
    src_add(&t, " * x", 30000);
    src_add(&t, " } }", 1);
    expect_error(f, t.text, "expression nested too deeply");
    Src u = {.arena = f->arena};
    src_add(&u, "const A = ", 1);
    src_add(&u, "-", 30000);
    src_add(&u, "1", 1);
    src_add(&u, FWD, 1);
    expect_error(f, u.text, "expression nested too deeply");
    Src v = {.arena = f->arena};
    src_add(&v, "const A = 2", 1);
    src_add(&v, " ** 2", 30000);
    src_add(&v, FWD, 1);
    expect_error(f, v.text, "expression nested too deeply");
    Src w = {.arena = f->arena};
    src_add(&w, "const A = [", 1);
    src_add(&w, "[", 30000);
    expect_error(f, w.text, "expression nested too deeply");
}

static void test_deep_blocks(void **state) {
    Fixture *f = *state;
    Src s = {.arena = f->arena};
    src_add(&s, "model N { fn forward(x: f32[1]) {", 1);
    src_add(&s, " if true {", 5000);
    expect_error(f, s.text, "nested too deeply: more than 1000 levels"); /* blocks and their conditions */
    Src t = {.arena = f->arena};
    src_add(&t, "model N { fn forward(x: f32[1]) { if false { return x }", 1);
    src_add(&t, " else if false { return x }", 5000);
    expect_error(f, t.text, "nested too deeply: more than 1000 levels of blocks and expressions");
    Src u = {.arena = f->arena};
    src_add(&u, "model N {", 1);
    src_add(&u, " if true {", 5000);
    expect_error(f, u.text, "nested too deeply");
    Src v = {.arena = f->arena}; /* members nest blocks without conditions in between */
    src_add(&v, "module M {", 1);
    src_add(&v, " if true {} else {", 5000);
    expect_error(f, v.text, "nested too deeply: more than 1000 levels");
}

/* Just inside the limits everything still compiles: the limit is not hit by
 * anything a person writes, and the walks below it fit the stack (this test
 * runs under ASan too). */
static void test_nesting_below_limit(void **state) {
    Fixture *f = *state;
    Src s = {.arena = f->arena};
    src_add(&s, "const A = ", 1);
    src_add(&s, "(", 990);
    src_add(&s, "1", 1);
    src_add(&s, ")", 990);
    src_add(&s, "\nconst C = 1", 1);
    src_add(&s, " + 1", 990);
    src_add(&s, "\nmodel N { fn forward(x: f32[1]) { return x", 1);
    src_add(&s, " + x", 990);
    src_add(&s, " } }\n", 1);
    Program *p = compile(f, s.text);
    if (!p) print_error("%s\n", f->diag.text);
    assert_non_null(p);
}

/* Calls stack expression depths: 60 fns, each returning a 990-term chain that
 * starts with a call to the next, would recurse 60,000 levels deep. */
static void test_deep_calls(void **state) {
    Fixture *f = *state;
    Src s = {.arena = f->arena};
    char line[64];
    for (int i = 0; i < 60; i++) {
        snprintf(line, sizeof line, "fn g%d(x) { return g%d(x)", i, i + 1);
        src_add(&s, line, 1);
        src_add(&s, " + x", 990);
        src_add(&s, " }\n", 1);
    }
    src_add(&s, "fn g60(x) { return x }\nmodel N { fn forward(x: f32[1]) { return g0(x) } }\n", 1);
    expect_error(f, s.text, "evaluation nested too deeply: more than 3000 levels of expressions and blocks");
}

/* ---- long lines, line endings, empty and oversized files ----------------- */

/* An error at the end of a 4 MB line: the quote is a window around the column
 * with "..." where cut, the caret under the offending character, and the
 * whole diagnostic a few hundred bytes. */
static void test_long_line_quote(void **state) {
    Fixture *f = *state;
    Src s = {.arena = f->arena};
    src_add(&s, "const A = 1 ", 1);
    src_add(&s, "const B = 2 ", 350000);
    src_add(&s, "? const C = 3", 1);
    src_add(&s, " const D = 4", 1000);
    src_add(&s, FWD, 1);
    expect_error(f, s.text, "h.etch:1:4200013: error: unexpected character '?'");
    assert_true(f->diag.len < 400);
    const char *quote = strchr(f->diag.text, '\n') + 1;
    const char *caret = strchr(quote, '\n') + 1;
    assert_memory_equal(quote, "...", 3);
    assert_memory_equal(strchr(quote, '\n') - 3, "...", 3);
    assert_int_equal(quote[strchr(caret, '^') - caret], '?');

    Src t = {.arena = f->arena}; /* near the start of a long line: no cut on the left */
    src_add(&t, "const A = 1 $ ", 1);
    src_add(&t, "const B = 2 ", 1000);
    expect_error(f, t.text, "h.etch:1:13: error: unexpected character '$'\nconst A = 1 $ const");
    assert_true(f->diag.len < 400);
    assert_non_null(strstr(f->diag.text, "...\n            ^\n"));
}

static void test_line_endings(void **state) {
    Fixture *f = *state;
    expect_error(f, "// CR only\rconst B = 1\rmodel N {\r  fn forward(x: f32[B]) {\r    return y\r  }\r}\r",
                 "h.etch:5:12: error: unknown name 'y' (did you mean 'x'?)\n    return y\n           ^\n");
    expect_error(f, "// CRLF\r\nconst B = 1\r\nmodel N {\r\n  fn forward(x: f32[B]) {\r\n    return y\r\n  }\r\n}\r\n",
                 "h.etch:5:12: error: unknown name 'y' (did you mean 'x'?)\n    return y\n           ^\n");
    expect_error(f, "// mixed\nconst B = 1\r\rmodel N {\r\n  fn forward(x: f32[B]) {\n    return y\r  }\r\n}",
                 "h.etch:6:12: error: unknown name 'y'");
}

static void test_empty_file(void **state) {
    Fixture *f = *state;
    expect_error(f, "", "h.etch:1:1: error: the file has no declarations (it is empty or only comments)");
    expect_error(f, "// nothing here\n\n", "h.etch:1:1: error: the file has no declarations");
}

static void test_oversized_tokens(void **state) {
    Fixture *f = *state;
    Src s = {.arena = f->arena};
    src_add(&s, "const A = ", 1);
    src_add(&s, "a", 100000);
    src_add(&s, FWD, 1);
    expect_error(f, s.text, "h.etch:1:11: error: name 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' is too long "
                            "(100000 characters; the limit is 255)");
    assert_true(f->diag.len < 400);
    Src t = {.arena = f->arena};
    src_add(&t, "const A = 1", 1);
    src_add(&t, "x", 100000);
    expect_error(f, t.text, "malformed number '1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'");
    assert_true(f->diag.len < 400);
    Src u = {.arena = f->arena};
    src_add(&u, "const A = 1", 1);
    src_add(&u, "0", 100000);
    expect_error(f, u.text, "is too long (100001 characters)");
    assert_true(f->diag.len < 400);
}

static void test_oversized_source(void **state) {
    Fixture *f = *state;
    Src s = {.arena = f->arena};
    src_add(&s, "// 32 bytes of padding ........\n", (int)(FRONTEND_MAX_SOURCE / 32) + 1);
    assert_int_equal(s.len, FRONTEND_MAX_SOURCE + 32);
    expect_error(f, s.text, "h.etch: error: the source is 16777248 bytes; model sources are limited to 16 MiB");
}

/* ---- sizes --------------------------------------------------------------- */

/* Sizes are 64-bit and overflow-checked: a 1e12-element param once passed the
 * element limit and aborted in the allocator; a rank-8 shape of 2^31 dims
 * overflows int64 itself. */
static void test_tensor_size_limits(void **state) {
    Fixture *f = *state;
    expect_error(f,
                 "module L { param w: f32[1000000, 1000000] = zeros()\n fn forward(x) { return x @ w } }\n"
                 "model N { fc = L()\n fn forward(x: f32[1000000]) { return fc(x) } }",
                 "h.etch:1:21: error: param 'fc.w' of type f32[1000000,1000000] is 1000000000000 elements, "
                 "4000000000000 bytes (3725.3 GiB); a tensor may take at most 4 GiB");
    expect_error(f,
                 "model N { fn forward(x: f32[2147483647, 2147483647, 2147483647, 2147483647]) { return x } }",
                 "h.etch:1:25: error: input 'x' of type f32[2147483647,2147483647,2147483647,2147483647] is more "
                 "than 2^63 bytes; a tensor may take at most 4 GiB");
    expect_error(f, "model N { fn forward(x: f32[4]) { let y: f64[65536, 65536] = x\n return y } }",
                 "type f64[65536,65536] is 4294967296 elements, 34359738368 bytes (32.0 GiB)");
    /* just under the per-tensor limit is fine; five of them are over the model's total */
    Src s = {.arena = f->arena};
    src_add(&s, "model N {\n", 1);
    for (int i = 0; i < 5; i++) {
        char line[96];
        snprintf(line, sizeof line, "  param w%d: f32[1024, 1048576] = zeros()\n", i);
        src_add(&s, line, 1);
    }
    src_add(&s, "  fn forward(x: f32[1]) { return x }\n}\n", 1);
    expect_error(f, s.text, "h.etch:1:7: error: the params of model 'N' take 21474836480 bytes (20.0 GiB); at most "
                            "16 GiB in all");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_deep_parens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nesting_below_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_quote, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_endings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tensor_size_limits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
