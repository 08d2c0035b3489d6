// main.cpp: for test_install.sh. Loads the weights file into mlp_b1 (mlp_b2
// has the same weights compiled in), runs the image through both (batch 2:
// the image twice) and prints "ok" and the class when all three rows agree,
// then the class the int8 model mlp_q gives (run in a context of its own).
#include <cmath>
#include <cstdio>

#include "mlp_b1/model.h"
#include "mlp_b2/model.h"
#include "mlp_q/model.h"

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    char err[1024];
    if (mlp_b1_load(argv[2], 0, err, sizeof err)) {
        std::fprintf(stderr, "%s\n", err);
        return 1;
    }
    etch_array image;
    if (etch_npy_read(argv[1], &image, err, sizeof err) || etch_array_numel(&image) != 784) {
        std::fprintf(stderr, "%s: not one 28x28 image %s\n", argv[1], err);
        return 1;
    }
    static float two[2 * 784], one_out[10], two_out[20];
    const float *pixels = static_cast<const float *>(image.data);
    for (int i = 0; i < 2 * 784; i++) two[i] = pixels[i % 784];
    mlp_b1_forward(pixels, one_out);
    const void *inputs[] = {two};
    void *outputs[] = {two_out};
    mlp_b2_forward_v(inputs, outputs);
    int best = 0;
    for (int c = 0; c < 10; c++) {
        for (int row = 0; row < 2; row++)
            if (std::fabs(two_out[row * 10 + c] - one_out[c]) > 1e-4f * (1 + std::fabs(one_out[c]))) {
                std::fprintf(stderr, "class %d row %d: %g vs %g\n", c, row, two_out[row * 10 + c], one_out[c]);
                return 1;
            }
        if (one_out[c] > one_out[best]) best = c;
    }
    mlp_q_ctx *ctx = mlp_q_ctx_create(err, sizeof err);
    if (!ctx) {
        std::fprintf(stderr, "%s\n", err);
        return 1;
    }
    float q_out[10];
    mlp_q_forward_ctx(ctx, pixels, q_out);
    mlp_q_ctx_free(ctx);
    int q_best = 0;
    for (int c = 1; c < 10; c++)
        if (q_out[c] > q_out[q_best]) q_best = c;
    std::printf("ok %d %s %s q%d\n", best, mlp_b1_forward_inputs[0].name, MLP_B2_ETCH_VERSION == ETCH_RT_VERSION ? "v" : "?",
                q_best);
    etch_array_free(&image);
    return 0;
}
