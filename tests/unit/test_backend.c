/* test_backend.c: the backend interface (codegen/backend.h). The C backend's
 * table covers every op; a backend whose table marks an op unsupported refuses
 * a graph holding it (also inside a scan body) with an error at that node's
 * source location naming the op and the backend, not a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "codegen/backend.h"

static bool no_softmax(OpKind op) { return op != OP_SOFTMAX; }

static const Backend fake = {.name = "fake", .op_supported = no_softmax};

static Graph *softmax_graph(Arena *a, SrcLoc at) {
    Graph *g = graph_new(a, "t.forward");
    int64_t dims[2] = {2, 3};
    int x = graph_add_input(g, "x", DT_F32, shape_make(2, dims), (SrcLoc){"t.etch", 1, 1});
    Diag d;
    diag_init(&d, NULL);
    int y = graph_add_op(g, OP_SOFTMAX, &x, 1, &(NodeAttrs){.axis = 1}, at, &d);
    assert_int_equal(d.n_errors, 0);
    diag_dispose(&d);
    graph_add_output(g, y);
    return g;
}

static void test_c_backend_covers_every_op(void **state) {
    (void)state;
    for (int op = 0; op < OP_COUNT; op++) assert_true(backend_c.op_supported((OpKind)op));
    assert_string_equal(backend_c.name, "c");
}

static void test_unsupported_op_is_a_located_error(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = softmax_graph(a, (SrcLoc){"t.etch", 7, 19});
    Diag d;
    diag_init(&d, NULL);
    assert_true(backend_check_ops(&backend_c, g, &d));
    assert_false(backend_check_ops(&fake, g, &d));
    assert_int_equal(d.n_errors, 1);
    assert_non_null(strstr(d.text, "t.etch:7:19: error: the fake backend cannot emit op 'softmax'"));
    diag_dispose(&d);
    arena_free(a);
}

static void test_unsupported_op_in_scan_body(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *body = softmax_graph(a, (SrcLoc){"t.etch", 3, 5});
    Graph *g = graph_new(a, "outer");
    /* the check walks attr.body of any node; a bare node carrying the body suffices */
    Node n = {.op = OP_INPUT, .dtype = DT_F32, .shape = {.rank = 0}, .attr = {.name = "s", .body = body}};
    graph_append_raw(g, &n);
    Diag d;
    diag_init(&d, NULL);
    assert_false(backend_check_ops(&fake, g, &d));
    assert_non_null(strstr(d.text, "t.etch:3:5: error: the fake backend cannot emit op 'softmax'"));
    diag_dispose(&d);
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_c_backend_covers_every_op),
        cmocka_unit_test(test_unsupported_op_is_a_located_error),
        cmocka_unit_test(test_unsupported_op_in_scan_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
