/* test_dtype_map.c: the one mapping between IR dtypes and the runtime's file
 * dtypes (ir/params.h): a round trip for every IR dtype, distinct runtime
 * dtypes, and DT_COUNT for the runtime dtype the IR lacks (ETCH_U8). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "ir/params.h"

static void test_round_trip(void **state) {
    (void)state;
    for (int t = 0; t < DT_COUNT; t++) {
        assert_int_equal(ir_dtype_from_rt(ir_dtype_to_rt((DType)t)), t);
        for (int u = 0; u < t; u++) assert_int_not_equal(ir_dtype_to_rt((DType)t), ir_dtype_to_rt((DType)u));
    }
    assert_int_equal(ir_dtype_to_rt(DT_BOOL), ETCH_BOOL);
    assert_int_equal(ir_dtype_from_rt(ETCH_U8), DT_COUNT);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_round_trip)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
