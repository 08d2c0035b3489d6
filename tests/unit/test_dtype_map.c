/* test_dtype_map.c: the one mapping between IR dtypes and the runtime's file
 * dtypes (ir/params.h): a round trip for every IR dtype, distinct runtime
 * dtypes, DT_COUNT for the runtime dtype the IR lacks (ETCH_U8), and the
 * reading rule `etch show` and `etch compare` use: every runtime dtype gets
 * an IR dtype of its element size, u8 bytes read back as 0..255. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

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

static void test_reading(void **state) {
    (void)state;
    for (int t = 0; t < DT_COUNT; t++) assert_int_equal(ir_dtype_reading_rt(ir_dtype_to_rt((DType)t)), t);
    for (int r = 0; r < ETCH_DTYPE_COUNT; r++) {
        DType t = ir_dtype_reading_rt((etch_dtype)r);
        assert_true(t < DT_COUNT);
        assert_int_equal(dtype_size(t), etch_dtype_size((etch_dtype)r));
    }
    assert_int_equal(ir_dtype_reading_rt(ETCH_U8), DT_BOOL);
    uint8_t bytes[3] = {0, 200, 255};
    Tensor *u8 = tensor_wrap(ir_dtype_reading_rt(ETCH_U8), (Shape){.rank = 1, .dim = {3}}, bytes);
    assert_true(tensor_get(u8, 0) == 0 && tensor_get(u8, 1) == 200 && tensor_get(u8, 2) == 255);
    tensor_free(u8);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_round_trip), cmocka_unit_test(test_reading)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
