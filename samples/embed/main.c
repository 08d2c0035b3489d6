/* main.c: classifies one Fashion-MNIST image with samples/mlp.etch compiled
 * in (etch_add_model in CMakeLists.txt; its C API is in model.h, documented
 * in docs/c-api.md). The image is an .npy file of f32[1,1,28,28] in [0,1],
 * as `etch make-input samples/mlp.etch -D B=1 --idx IMAGES --index N -o
 * img.npy` writes it. Prints the class index and name; exit 1 on bad input. */
#include <stdio.h>

#include "model.h"

static const char *const CLASS_NAMES[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                          "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s IMAGE.npy [WEIGHTS.safetensors]\n", argv[0]);
        return 2;
    }
    char err[1024];
    /* The weights are compiled in; a file given here replaces them. */
    if (argc == 3 && mlp_load(argv[2], 0, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    etch_array image;
    if (etch_npy_read(argv[1], &image, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    /* The model's input descriptor says what it takes: check the file against it. */
    const etch_tensor_info *in = &mlp_forward_inputs[0];
    int same = image.dtype == in->dtype && image.rank == in->rank;
    for (int k = 0; same && k < in->rank; k++) same = image.dim[k] == in->dim[k];
    if (!same) {
        char want[128], got[128];
        fprintf(stderr, "%s: the model takes %s, the file holds %s\n", argv[1],
                etch_array_describe(want, sizeof want, in->dtype, in->rank, in->dim),
                etch_array_describe(got, sizeof got, image.dtype, image.rank, image.dim));
        etch_array_free(&image);
        return 1;
    }
    float logits[10];
    mlp_forward(image.data, logits);
    int best = 0;
    for (int c = 1; c < 10; c++)
        if (logits[c] > logits[best]) best = c;
    printf("%d %s\n", best, CLASS_NAMES[best]);
    etch_array_free(&image);
    return 0;
}
