/* test_dtype_map.c: the one mapping between IR dtypes and the runtime's file
 * dtypes (ir/params.h): a round trip for every IR dtype, distinct runtime
 * dtypes, every runtime dtype an IR dtype (u8 and i8 too), and the reading
 * rule `etch show` and `etch compare` use: every runtime dtype gets an IR
 * dtype of its element size, u8 bytes read back as 0..255, i8 as -128..127. */
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
    assert_int_equal(ir_dtype_to_rt(DT_U8), ETCH_U8);
    assert_int_equal(ir_dtype_to_rt(DT_I8), ETCH_I8);
    for (int r = 0; r < ETCH_DTYPE_COUNT; r++) assert_int_not_equal(ir_dtype_from_rt((etch_dtype)r), DT_COUNT);
    assert_int_equal(ir_dtype_from_rt(ETCH_DTYPE_COUNT), DT_COUNT);
}

static void test_reading(void **state) {
    (void)state;
    for (int t = 0; t < DT_COUNT; t++) assert_int_equal(ir_dtype_reading_rt(ir_dtype_to_rt((DType)t)), t);
    for (int r = 0; r < ETCH_DTYPE_COUNT; r++) {
        DType t = ir_dtype_reading_rt((etch_dtype)r);
        assert_true(t < DT_COUNT);
        assert_int_equal(dtype_size(t), etch_dtype_size((etch_dtype)r));
    }
    assert_int_equal(ir_dtype_reading_rt(ETCH_U8), DT_U8);
    uint8_t bytes[3] = {0, 200, 255};
    Tensor *u8 = tensor_wrap(ir_dtype_reading_rt(ETCH_U8), (Shape){.rank = 1, .dim = {3}}, bytes);
    assert_true(tensor_get(u8, 0) == 0 && tensor_get(u8, 1) == 200 && tensor_get(u8, 2) == 255);
    tensor_free(u8);
    int8_t sbytes[3] = {-128, -1, 127};
    Tensor *i8 = tensor_wrap(ir_dtype_reading_rt(ETCH_I8), (Shape){.rank = 1, .dim = {3}}, sbytes);
    assert_true(tensor_get(i8, 0) == -128 && tensor_get(i8, 1) == -1 && tensor_get(i8, 2) == 127);
    tensor_set(i8, 0, -300.5), tensor_set(i8, 1, 1e9), tensor_set(i8, 2, -7.9); /* saturating, truncating stores */
    assert_true(tensor_get(i8, 0) == -128 && tensor_get(i8, 1) == 127 && tensor_get(i8, 2) == -7);
    tensor_free(i8);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_round_trip), cmocka_unit_test(test_reading)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
