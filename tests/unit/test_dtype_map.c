/* test_dtype_map.c: the one mapping between IR dtypes and the runtime's file
 * dtypes (ir/params.h): a round trip for every IR dtype, distinct runtime
 * dtypes, every runtime dtype an IR dtype (u8 and i8 too), and the reading
 * rule `etch show` and `etch compare` use: every runtime dtype gets an IR
 * dtype of its element size, u8 bytes read back as 0..255, i8 as -128..127;
 * and i8/u8/i32 parameters through safetensors (params_save, params_load)
 * and .npy files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    for (int t = 0; t < DT_COUNT; t++) assert_int_equal(ir_dtype_from_rt(ir_dtype_to_rt((DType)t)), t);
    for (int r = 0; r < ETCH_DTYPE_COUNT; r++) {
        DType t = ir_dtype_from_rt((etch_dtype)r);
        assert_true(t < DT_COUNT);
        assert_int_equal(dtype_size(t), etch_dtype_size((etch_dtype)r));
    }
    assert_int_equal(ir_dtype_from_rt(ETCH_U8), DT_U8);
    uint8_t bytes[3] = {0, 200, 255};
    Tensor *u8 = tensor_wrap(ir_dtype_from_rt(ETCH_U8), (Shape){.rank = 1, .dim = {3}}, bytes);
    assert_true(tensor_get(u8, 0) == 0 && tensor_get(u8, 1) == 200 && tensor_get(u8, 2) == 255);
    tensor_free(u8);
    int8_t sbytes[3] = {-128, -1, 127};
    Tensor *i8 = tensor_wrap(ir_dtype_from_rt(ETCH_I8), (Shape){.rank = 1, .dim = {3}}, sbytes);
    assert_true(tensor_get(i8, 0) == -128 && tensor_get(i8, 1) == -1 && tensor_get(i8, 2) == 127);
    tensor_set(i8, 0, -300.5), tensor_set(i8, 1, 1e9), tensor_set(i8, 2, -7.9); /* saturating, truncating stores */
    assert_true(tensor_get(i8, 0) == -128 && tensor_get(i8, 1) == 127 && tensor_get(i8, 2) == -7);
    tensor_free(i8);
}

static void test_quantized_files(void **state) {
    (void)state;
    Arena *a = arena_new();
    Graph *g = graph_new(a, "q");
    static const DType ts[3] = {DT_I8, DT_U8, DT_I32};
    static const char *const names[3] = {"w.q", "x.q", "bias"};
    for (int i = 0; i < 3; i++)
        graph_add_param(g, names[i], ts[i], (Shape){.rank = 2, .dim = {2, 3}}, (ParamInit){INIT_ZEROS, 0, 0}, true,
                        (SrcLoc){0});
    Tensor **p = params_init(g, 0);
    static const double v[3][6] = {{-128, -1, 0, 1, 126, 127}, {0, 1, 128, 200, 254, 255}, {-2147483648.0, -7, 0, 5, 65536, 2147483647}};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 6; k++) tensor_set(p[i], k, v[i][k]);
    char path[64], npy[64], err[512];
    snprintf(path, sizeof path, "/tmp/etch_dtype_map_%d.safetensors", (int)getpid());
    snprintf(npy, sizeof npy, "/tmp/etch_dtype_map_%d.npy", (int)getpid());
    Diag d;
    diag_init(&d, stderr);
    assert_true(params_save(g, p, path, &d));
    Tensor **back = params_load(g, path, &d);
    assert_non_null(back);
    for (int i = 0; i < 3; i++) assert_memory_equal(back[i]->data, p[i]->data, tensor_nbytes(p[i]));
    /* .npy: the same bytes under '|i1' / '|u1' / '<i4' */
    for (int i = 0; i < 3; i++) {
        etch_array arr = {.dtype = ir_dtype_to_rt(ts[i]), .rank = 2, .dim = {2, 3}, .data = p[i]->data}, in;
        assert_int_equal(etch_npy_write(npy, &arr, err, sizeof err), 0);
        assert_int_equal(etch_npy_read(npy, &in, err, sizeof err), 0);
        assert_int_equal(ir_dtype_from_rt(in.dtype), ts[i]);
        assert_memory_equal(in.data, p[i]->data, tensor_nbytes(p[i]));
        unsigned char *raw;
        size_t n;
        assert_int_equal(etch_read_file(npy, &raw, &n, err, sizeof err), 0);
        static const char *const descr[3] = {"'descr': '|i1'", "'descr': '|u1'", "'descr': '<i4'"};
        raw[n - 1] = 0;
        assert_true(n > 10);
        assert_non_null(strstr((char *)raw + 10, descr[i])); /* the header text after magic, version, length */
        free(raw);
        etch_array_free(&in);
    }
    remove(path);
    remove(npy);
    params_free(g, back);
    params_free(g, p);
    diag_dispose(&d);
    arena_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_round_trip), cmocka_unit_test(test_reading),
                                       cmocka_unit_test(test_quantized_files)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
