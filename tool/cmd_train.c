/* cmd_train.c: `etch train FILE`: compiles the train block's step and the
 * training driver into one program (OUTDIR/build/) and runs it on IDX image
 * data (--data) or a text corpus (--text); the program writes the weights and
 * checkpoints. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codegen/build.h"
#include "ir/params.h"
#include "tool/commands.h"
#include "tool/pipeline.h"

/* The data folder must exist before we spend time compiling. */
static bool check_data_dir(const char *dir, Diag *d) {
    struct stat st;
    if (stat(dir, &st) != 0) return diag_error_plain(d, "--data %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return diag_error_plain(d, "--data %s: not a folder", dir);
    return true;
}

/* The corpus must be a readable, non-empty file before we spend time compiling. */
static bool check_text_file(const char *path, Diag *d) {
    struct stat st;
    if (stat(path, &st) != 0) return diag_error_plain(d, "--text %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return diag_error_plain(d, "--text %s: not a regular file", path);
    if (st.st_size == 0) return diag_error_plain(d, "--text %s: empty corpus", path);
    return true;
}

bool train_check_input(const Options *o, Diag *d) {
    return o->text ? check_text_file(o->text, d) : check_data_dir(o->data, d);
}

int cmd_train(const Options *o) {
    if (!o->data && !o->text) return usage_error("%s", "train needs --data DIR (images) or --text CORPUS (bytes)");
    if (o->data && o->text) return usage_error("%s", "--data and --text exclude each other");
    if (o->init && o->resume) return usage_error("%s", "--init and --resume exclude each other");
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = train_check_input(o, &d) ? load_program(a, o, &d) : NULL;
    const char *out = o->out ? o->out : "out";
    char build_dir[4096], init_path[4096 + 32], num[6][32];
    snprintf(build_dir, sizeof build_dir, "%s/build", out);
    char *program = p ? build_trainer(p, o, build_dir, &d) : NULL;
    bool ok = program != NULL;
    if (ok && !o->init && !o->resume) { /* start from the initializers, seeded */
        Tensor **init = params_init(p->train->loss, o->seed);
        snprintf(init_path, sizeof init_path, "%s/init.safetensors", build_dir);
        ok = params_save(p->train->loss, init, init_path, &d);
        params_free(p->train->loss, init);
    }
    if (ok) {
        const char *argv[32];
        int n = 0;
        argv[n++] = program;
        argv[n++] = o->text ? "--text" : "--data", argv[n++] = o->text ? o->text : o->data;
        argv[n++] = o->resume ? "--resume" : "--init";
        argv[n++] = o->resume ? o->resume : o->init ? o->init : init_path;
        argv[n++] = "-o", argv[n++] = out;
        argv[n++] = "--name", argv[n++] = p->model_name;
        snprintf(num[0], sizeof num[0], "%ld", o->epochs >= 0 ? o->epochs : (long)p->train->epochs);
        if (!o->text || o->epochs >= 0 || o->steps < 0) argv[n++] = "--epochs", argv[n++] = num[0]; /* text: --steps alone counts */
        snprintf(num[1], sizeof num[1], "%llu", (unsigned long long)o->seed);
        argv[n++] = "--seed", argv[n++] = num[1];
        if (o->steps >= 0) {
            snprintf(num[2], sizeof num[2], "%ld", o->steps);
            argv[n++] = "--steps", argv[n++] = num[2];
        }
        if (o->limit >= 0) {
            snprintf(num[3], sizeof num[3], "%ld", o->limit);
            argv[n++] = "--limit", argv[n++] = num[3];
        }
        if (o->no_shuffle) argv[n++] = "--no-shuffle";
        argv[n] = NULL;
        fflush(stdout);
        ok = build_spawn(argv, &d);
    }
    free(program);
    diag_dispose(&d);
    arena_free(a);
    return ok ? 0 : 1;
}
