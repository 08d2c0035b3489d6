/* cmd_train.c: `etch train FILE`: compiles the train block's step and the
 * training driver into one program (OUTDIR/build/) and runs it on IDX image
 * data or .npy arrays (--data) or a text corpus (--text); the program writes
 * the weights and checkpoints. With --ranks N it is a data-parallel program
 * (etch_mpi.c linked in) run as N ranks under mpirun. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codegen/build.h"
#include "ir/params.h"
#include "tool/commands.h"
#include "tool/pipeline.h"
#include "tool/quant_tool.h"

/* DIR/NAME is readable. */
static bool readable_in(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, R_OK) == 0;
}

/* DIR/BASE or DIR/BASE.gz is readable (the training program takes either). */
static bool has_idx(const char *dir, const char *base) {
    char gz[512];
    snprintf(gz, sizeof gz, "%s.gz", base);
    return readable_in(dir, base) || readable_in(dir, gz);
}

/* The data folder must exist and hold the IDX files of the splits the
 * program reads (the test split; the training split too when training), or
 * x.npy and y.npy (arrays named after the train block's inputs), before we
 * spend time compiling. The program checks what the files hold. */
static bool check_data_dir(const char *dir, bool training, Diag *d) {
    struct stat st;
    if (stat(dir, &st) != 0) return diag_error_plain(d, "--data %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return diag_error_plain(d, "--data %s: not a folder", dir);
    if (readable_in(dir, "x.npy") || readable_in(dir, "y.npy")) {
        static const char *const arrays[] = {"x.npy", "y.npy"};
        for (int i = 0; i < 2; i++)
            if (!readable_in(dir, arrays[i]))
                return diag_error_plain(d, "--data %s: no readable %s in the folder (a folder of arrays holds x.npy "
                                           "and y.npy)", dir, arrays[i]);
        return true;
    }
    static const char *const files[] = {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte",
                                        "train-labels-idx1-ubyte"};
    for (int i = 0; i < (training ? 4 : 2); i++)
        if (!has_idx(dir, files[i]))
            return diag_error_plain(d, "--data %s: no readable %s (or %s.gz) in the folder", dir, files[i], files[i]);
    return true;
}

/* A file option (--text, --init, --resume) must name a readable, non-empty
 * regular file before we spend time compiling. */
static bool check_file(const char *opt, const char *path, const char *empty, Diag *d) {
    struct stat st;
    if (stat(path, &st) != 0 || access(path, R_OK) != 0) return diag_error_plain(d, "%s %s: %s", opt, path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return diag_error_plain(d, "%s %s: not a regular file", opt, path);
    if (st.st_size == 0) return diag_error_plain(d, "%s %s: %s", opt, path, empty);
    return true;
}

bool train_check_input(const Options *o, bool training, Diag *d) {
    if (o->init && !check_file("--init", o->init, "empty file", d)) return false;
    if (o->resume && !check_file("--resume", o->resume, "empty file", d)) return false;
    return o->text ? check_file("--text", o->text, "empty corpus", d) : check_data_dir(o->data, training, d);
}

/* Whether PROGRAM is an executable file in a folder of $PATH. */
static bool on_path(const char *program) {
    const char *path = getenv("PATH");
    char buf[4096];
    for (const char *p = path ? path : ""; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, p, program);
        if (n && access(buf, X_OK) == 0) return true;
        p += n + (p[n] == ':');
    }
    return false;
}

/* --ranks N: the launcher's arguments before the program's, into argv:
 * mpirun -np N, with --oversubscribe when N is more than the cores (Open
 * MPI refuses that otherwise) and --allow-run-as-root under root. */
static int mpirun_prefix(const Options *o, const char **argv, char *np, size_t np_len) {
    int n = 0;
    snprintf(np, np_len, "%d", o->ranks);
    argv[n++] = "mpirun", argv[n++] = "-np", argv[n++] = np;
    if (o->ranks > sysconf(_SC_NPROCESSORS_ONLN)) argv[n++] = "--oversubscribe";
    if (geteuid() == 0) argv[n++] = "--allow-run-as-root";
    return n;
}

int cmd_train(const Options *o) {
    if (!o->data && !o->text) return usage_error("%s", "train needs --data DIR (images) or --text CORPUS (bytes)");
    if (o->data && o->text) return usage_error("%s", "--data and --text exclude each other");
    if (o->init && o->resume) return usage_error("%s", "--init and --resume exclude each other");
    if (o->partial && !o->init) return usage_error("%s", "--partial needs --init W (a checkpoint to resume is whole)");
    if (o->qat && !o->calib) return usage_error("%s", "--qat needs --calib STATS.json (from etch calibrate)");
    if (o->calib && !o->qat) return usage_error("%s", "train takes --calib STATS.json only with --qat");
    if (o->ranks && !on_path("mpirun"))
        return fprintf(stderr, "etch train: error: --ranks %d runs the program under mpirun, which is not on PATH; "
                               "install Open MPI (apt-get install openmpi-bin libopenmpi-dev, or scripts/deps.sh)\n",
                       o->ranks), 1;
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = load_program(a, o, &d); /* the model's own errors first, then its data */
    if (p && !train_check_input(o, true, &d)) p = NULL;
    if (p && o->qat && !qat_program(p, o, &d)) p = NULL;
    const char *out = o->out ? o->out : "out";
    char build_dir[4096], init_path[4096 + 32], num[6][32];
    snprintf(build_dir, sizeof build_dir, "%s/build", out);
    /* where training starts without --init/--resume: the initializers, seeded; with --partial, W's tensors
     * over them (checked before compiling). A file without a train block gets build_trainer's error. */
    bool own_init = o->partial || (!o->init && !o->resume);
    Tensor **init = NULL;
    if (p && p->train && own_init)
        init = o->partial ? load_params_partial(p->train->loss, o->init, o->seed, &d) : params_init(p->train->loss, o->seed);
    bool ready = p && (init || !own_init || !p->train);
    char *program = ready ? build_trainer(p, o, build_dir, &d) : NULL;
    bool ok = program != NULL;
    if (ok && init) {
        snprintf(init_path, sizeof init_path, "%s/init.safetensors", build_dir);
        ok = params_save(p->train->loss, init, init_path, &d);
    }
    if (init) params_free(p->train->loss, init);
    if (ok) {
        const char *argv[40];
        char np[16];
        int n = o->ranks ? mpirun_prefix(o, argv, np, sizeof np) : 0;
        argv[n++] = program;
        argv[n++] = o->text ? "--text" : "--data", argv[n++] = o->text ? o->text : o->data;
        argv[n++] = o->resume ? "--resume" : "--init";
        argv[n++] = o->resume ? o->resume : o->init && !o->partial ? o->init : init_path;
        argv[n++] = "-o", argv[n++] = out;
        argv[n++] = "--name", argv[n++] = p->model_name;
        snprintf(num[0], sizeof num[0], "%ld", o->epochs >= 0 ? o->epochs : (long)p->train->epochs);
        if (!o->text || o->epochs >= 0 || o->steps < 0) argv[n++] = "--epochs", argv[n++] = num[0]; /* text: --steps alone counts */
        snprintf(num[1], sizeof num[1], "%llu", (unsigned long long)o->seed);
        if (o->seed_given) argv[n++] = "--seed", argv[n++] = num[1]; /* else 0, or a checkpoint's own */
        snprintf(num[4], sizeof num[4], "%d", o->digits);
        if (o->digits >= 0) argv[n++] = "--digits", argv[n++] = num[4];
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
