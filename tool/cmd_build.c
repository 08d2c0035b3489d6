/* cmd_build.c: `etch build FILE -o DIR`: the model's C (model.c, model.h),
 * the runtime and lib<model>.so in DIR, with --exe also the program
 * DIR/<model>, and the weights file unless --embed-weights. With --backend
 * llvm: DIR/model.ll (the LLVM module before optimization) and the weights. */
#include <stdio.h>
#include <string.h>

#include "ir/params.h"
#include "tool/commands.h"
#include "tool/pipeline.h"

int cmd_build(const Options *o) {
    if (!o->out) return usage_error("%s", "build needs -o DIR");
    if (o->c_only && (o->exe || o->stats)) return usage_error("%s", "--c-only compiles nothing: no --exe or --stats");
    if (o->quantize && o->train) return usage_error("%s", "--quantize int8 builds inference only: no --train");
    if (o->mpi && !o->train) return usage_error("%s", "--mpi builds data-parallel training steps: add --train");
    if (o->backend && !strcmp(o->backend, "llvm") && (o->exe || o->c_only || o->embed || o->train || o->stats))
        return usage_error("%s", "--backend llvm writes the module's IR (DIR/model.ll) and the weights only: no "
                                 "--exe, --c-only, --embed-weights, --train or --stats yet");
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = load_program(a, o, &d);
    Tensor **params = p ? load_params(p, o, &d) : NULL;
    bool ok = params && (!o->train || !o->embed || usage_error("%s", "--train cannot embed weights") == 0) &&
              build_model(p, params, o, o->out, o->exe, a, &d);
    if (p) params_free(p->forward, params);
    diag_dispose(&d);
    arena_free(a);
    return ok ? 0 : 1;
}
