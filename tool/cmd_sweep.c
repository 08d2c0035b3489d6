/* cmd_sweep.c: `etch sweep FILE --data DIR --grid lr=0.1,0.01 --grid
 * momentum=0.9,0.5 [--random N] [--jobs J] [--epochs E] [-o R.csv]`: a
 * hyperparameter search that compiles the training program once. The swept
 * optimizer hyperparameters become runtime values of the step (Hparam in
 * passes/transforms/train.h: frozen f64 params "optimizer.hparam.NAME"), so
 * every combination is the same program run with other --hparam arguments;
 * J trainings run at a time as separate processes, each in its own folder
 * R/NNN/ with its log. The table of results, sorted by validation accuracy
 * (a regression or reconstruction: by validation MSE; without either, by the
 * last epoch's loss), is printed and written to R.csv. Values are checked for
 * every combination before anything is compiled (a negative lr, nesterov
 * without momentum, ...), with the optimizer's location. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codegen/build.h"
#include "ir/params.h"
#include "tool/commands.h"
#include "tool/pipeline.h"

enum {
    MAX_VALUES = 64,      /* values of one --grid */
    MAX_COMBOS = 4096,    /* trainings of one sweep */
};

typedef struct Grid {
    Hparam hp;
    double values[MAX_VALUES];
    int n;
} Grid;

/* One training: its values (one per grid), then what its log says. */
typedef struct Run {
    int index;                  /* its folder R/NNN */
    double values[MAX_GRIDS];
    bool ok;                    /* exited 0 */
    bool has_loss, has_acc, has_mse;
    double loss, acc, nll, mse; /* the last epoch's mean loss; validation accuracy (%), NLL, MSE */
} Run;

/* --grid NAME=V,V,...: NAME one of the optimizer's hyperparameters (else an
 * error at the optimizer, naming those it takes), values finite numbers. */
static bool parse_grid(const char *arg, const OptimSpec *spec, const Grid *grids, int n_grids, Grid *out, Diag *d) {
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1]) return usage_error("--grid needs NAME=V,V,..., got '%s'", arg), false;
    char name[64], known[128];
    snprintf(name, sizeof name, "%.*s", (int)(eq - arg < 63 ? eq - arg : 63), arg);
    out->hp = hparam_lookup(spec, name);
    hparam_list(spec, known, sizeof known);
    if (out->hp == HP_COUNT)
        return diag_error(d, spec->loc, "--grid %s: %s has no hyperparameter '%s'; it takes %s", arg,
                          optim_name(spec->kind), name, known);
    for (int g = 0; g < n_grids; g++)
        if (grids[g].hp == out->hp) return usage_error("--grid %s: '%s' is swept twice", arg, name), false;
    out->n = 0;
    for (const char *p = eq + 1;; p++) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || (*end && *end != ',') || !isfinite(v) || errno == ERANGE)
            return usage_error("--grid %s: '%.*s' is not a finite number", arg, (int)strcspn(p, ","), p), false;
        if (out->n == MAX_VALUES) return usage_error("--grid %s: more than %d values", arg, MAX_VALUES), false;
        out->values[out->n++] = v;
        if (!*end) return true;
        p = end;
    }
}

/* v with the fewest digits that read back as v ("0.1", not 0.10000000000000001). */
static void shortest(double v, char *buf, size_t n) {
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, n, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) return;
    }
}

/* "lr=0.1 momentum=0.9": a run's values, for messages. */
static void describe(const Grid *grids, int n_grids, const double *values, char *buf, size_t n) {
    size_t used = 0;
    buf[0] = 0;
    for (int g = 0; g < n_grids && used < n; g++) {
        char v[32];
        shortest(values[g], v, sizeof v);
        used += (size_t)snprintf(buf + used, n - used, "%s%s=%s", g ? " " : "", hparam_name(grids[g].hp), v);
    }
}

/* Every combination of the grids (the last grid varying fastest), or --random
 * N of them drawn without repetition by a Philox-keyed shuffle of the seed.
 * Each is checked as the optimizer will see it; *n_runs gets the count. */
static Run *plan_runs(const Options *o, const OptimSpec *spec, const Grid *grids, int n_grids, int *n_runs, Diag *d) {
    long total = 1;
    for (int g = 0; g < n_grids; g++) {
        total *= grids[g].n;
        if (total > MAX_COMBOS)
            return usage_error("the grid has more than %d combinations; sample some with --random N", MAX_COMBOS), NULL;
    }
    int *order = malloc(sizeof(int) * (size_t)(total > 0 ? total : 1)); /* grids hold at least one value each */
    if (!order) abort();
    for (int i = 0; i < total; i++) order[i] = i;
    int n = o->random >= 0 && o->random < total ? (int)o->random : (int)total;
    if (o->random >= 0)
        for (int i = 0; i < n; i++) { /* the first n of a Fisher-Yates shuffle */
            uint32_t r[4];
            etch_philox4x32(o->seed, 0x5377656570ULL /* "Sweep" */, (uint64_t)i, r);
            int j = i + (int)((((uint64_t)r[0] << 32) | r[1]) % (uint64_t)(total - i)), t = order[i];
            order[i] = order[j], order[j] = t;
        }
    Run *runs = calloc((size_t)(n > 0 ? n : 1), sizeof *runs);
    if (!runs) abort();
    bool ok = true;
    for (int k = 0; k < n && ok; k++) {
        runs[k].index = k + 1;
        OptimSpec s = *spec;
        for (int g = n_grids - 1, rest = order[k]; g >= 0; rest /= grids[g].n, g--) {
            runs[k].values[g] = grids[g].values[rest % grids[g].n];
            *hparam_field(&s, grids[g].hp) = runs[k].values[g];
        }
        diag_hold(d);
        ok = optim_check(&s, d);
        SrcLoc at;
        char *msg, what[512];
        if (diag_release(d, &at, &msg)) { /* the optimizer's own message, with the combination that breaks it */
            describe(grids, n_grids, runs[k].values, what, sizeof what);
            diag_error(d, at, "the sweep's combination %s: %s", what, msg);
            free(msg);
        }
    }
    free(order);
    if (!ok) free(runs), runs = NULL;
    *n_runs = n;
    return runs;
}

/* What run r's log (the training program's output) says: the last
 * "Epoch: N, Loss: X", "Test accuracy: A%, mean NLL: L", "Test MSE: M" or
 * "Test reconstruction MSE: M". */
static void read_log(const char *path, Run *r) {
    FILE *f = fopen(path, "r");
    char line[1024];
    long long epoch;
    while (f && fgets(line, sizeof line, f)) {
        double a, b;
        if (sscanf(line, "Epoch: %lld, Loss: %lf", &epoch, &a) == 2) r->loss = a, r->has_loss = true;
        else if (sscanf(line, "Test accuracy: %lf%%, mean NLL: %lf", &a, &b) == 2) r->acc = a, r->nll = b, r->has_acc = true;
        else if (sscanf(line, "Test MSE: %lf", &a) == 1 || sscanf(line, "Test reconstruction MSE: %lf", &a) == 1)
            r->mse = a, r->has_mse = true;
    }
    if (f) fclose(f);
}

/* The order of the table: finished runs first, then by accuracy (higher
 * first; ties by NLL), else validation MSE, else the last loss (lower
 * first); then in the order they were planned. */
static int g_sort_by; /* 0: accuracy, 1: MSE, 2: loss */
static int run_cmp(const void *pa, const void *pb) {
    const Run *a = pa, *b = pb;
    if (a->ok != b->ok) return a->ok ? -1 : 1;
    double ka[3] = {-a->acc, a->mse, a->loss}, kb[3] = {-b->acc, b->mse, b->loss};
    if (ka[g_sort_by] != kb[g_sort_by]) return ka[g_sort_by] < kb[g_sort_by] ? -1 : 1;
    if (g_sort_by == 0 && a->nll != b->nll) return a->nll < b->nll ? -1 : 1;
    if (a->loss != b->loss) return a->loss < b->loss ? -1 : 1;
    return a->index - b->index;
}

/* Runs the program once per run, jobs at a time, each logging to
 * runs_dir/NNN/log.txt; prints a line as each one ends. False when a run
 * could not be started (the others are waited for). */
static bool run_all(const char *program, const char *const *base_argv, int n_base, const char *runs_dir,
                    const Grid *grids, int n_grids, Run *runs, int n_runs, int jobs, Diag *d) {
    pid_t *pids = calloc((size_t)n_runs, sizeof *pids);
    if (!pids) abort();
    int started = 0, running = 0, done = 0;
    bool ok = true;
    while (done < started || (ok && started < n_runs)) {
        if (ok && started < n_runs && running < jobs) {
            Run *r = &runs[started];
            char dir[4112], log[4200], hp[MAX_GRIDS][96];
            const char *argv[64];
            int n = 0;
            snprintf(dir, sizeof dir, "%s/%03d", runs_dir, r->index);
            snprintf(log, sizeof log, "%s/log.txt", dir);
            argv[n++] = program;
            for (int i = 0; i < n_base; i++) argv[n++] = base_argv[i];
            argv[n++] = "-o", argv[n++] = dir;
            for (int g = 0; g < n_grids; g++) {
                char v[32];
                shortest(r->values[g], v, sizeof v);
                snprintf(hp[g], sizeof hp[g], "%s=%s", hparam_name(grids[g].hp), v);
                argv[n++] = "--hparam", argv[n++] = hp[g];
            }
            argv[n] = NULL;
            if (!build_mkdirs(dir, d) || (pids[started] = build_start_logged(argv, log, d)) < 0) {
                ok = false;
                continue;
            }
            started++, running++;
            continue;
        }
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == EINTR) continue;
            diag_error_plain(d, "waiting for the trainings: %s", strerror(errno));
            free(pids);
            return false;
        }
        for (int k = 0; k < started; k++) {
            if (pids[k] != pid) continue;
            Run *r = &runs[k];
            char log[4200], what[512];
            snprintf(log, sizeof log, "%s/%03d/log.txt", runs_dir, r->index);
            r->ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            read_log(log, r);
            describe(grids, n_grids, r->values, what, sizeof what);
            printf("[%d/%d] %s: ", ++done, n_runs, what);
            if (WIFSIGNALED(status)) printf("killed by signal %d (%s)\n", WTERMSIG(status), log);
            else if (!r->ok) printf("failed with exit status %d (%s)\n", WEXITSTATUS(status), log);
            else if (r->has_acc) printf("validation accuracy %.2f%%\n", r->acc);
            else if (r->has_mse) printf("validation MSE %.6f\n", r->mse);
            else printf("loss %.6f\n", r->loss);
            fflush(stdout);
            running--;
        }
    }
    free(pids);
    return ok;
}

/* The sorted table on stdout and as CSV in csv_path (atomically). */
static bool write_results(const char *csv_path, const char *runs_dir, const Grid *grids, int n_grids, Run *runs,
                          int n_runs, Diag *d) {
    bool any_acc = false, any_mse = false;
    for (int k = 0; k < n_runs; k++) any_acc |= runs[k].has_acc, any_mse |= runs[k].has_mse;
    g_sort_by = any_acc ? 0 : any_mse ? 1 : 2;
    qsort(runs, (size_t)n_runs, sizeof *runs, run_cmp);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", csv_path, (long)getpid());
    FILE *csv = fopen(tmp, "w");
    if (!csv) return diag_error_plain(d, "cannot write %s: %s", csv_path, strerror(errno));
    printf("\n%-5s", "rank");
    fprintf(csv, "rank");
    for (int g = 0; g < n_grids; g++) printf(" %12s", hparam_name(grids[g].hp)), fprintf(csv, ",%s", hparam_name(grids[g].hp));
    printf(" %12s%s%s  run\n", "loss", any_acc ? "   val_acc%   val_nll" : "", any_mse ? "     val_mse" : "");
    fprintf(csv, ",loss,val_accuracy,val_nll,val_mse,status,dir\n");
    for (int k = 0; k < n_runs; k++) {
        const Run *r = &runs[k];
        char dir[4112];
        snprintf(dir, sizeof dir, "%s/%03d", runs_dir, r->index);
        printf("%-5d", k + 1);
        fprintf(csv, "%d", k + 1);
        for (int g = 0; g < n_grids; g++) {
            char v[32];
            shortest(r->values[g], v, sizeof v);
            printf(" %12s", v), fprintf(csv, ",%s", v);
        }
        if (r->has_loss) printf(" %12.6f", r->loss), fprintf(csv, ",%.9g", r->loss);
        else printf(" %12s", "-"), fprintf(csv, ",");
        if (r->has_acc) printf(" %10.2f %9.4f", r->acc, r->nll), fprintf(csv, ",%.4f,%.6g", r->acc, r->nll);
        else printf("%s", any_acc ? " " "         -         -" : ""), fprintf(csv, ",,");
        if (r->has_mse) printf(" %11.6f", r->mse), fprintf(csv, ",%.9g", r->mse);
        else printf("%s", any_mse ? "           -" : ""), fprintf(csv, ",");
        printf("  %s%s\n", dir, r->ok ? "" : " (failed: see log.txt)");
        fprintf(csv, ",%s,%s\n", r->ok ? "ok" : "failed", dir);
    }
    bool ok = fclose(csv) == 0 && rename(tmp, csv_path) == 0;
    if (!ok) {
        remove(tmp);
        return diag_error_plain(d, "cannot write %s: %s", csv_path, strerror(errno));
    }
    printf("\nResults written to %s\n", csv_path);
    return true;
}

int cmd_sweep(const Options *o) {
    if (!o->data) return usage_error("%s", "sweep needs --data DIR (images or .npy arrays)");
    if (o->n_grids == 0) return usage_error("%s", "sweep needs at least one --grid NAME=V,V,... (e.g. --grid lr=0.1,0.01)");
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    const char *csv = o->out ? o->out : "sweep.csv";
    char runs_dir[4096], build_dir[4200], init_path[4300], num[4][32];
    size_t len = strlen(csv);
    if (len > 4 && !strcmp(csv + len - 4, ".csv")) snprintf(runs_dir, sizeof runs_dir, "%.*s", (int)(len - 4), csv);
    else snprintf(runs_dir, sizeof runs_dir, "%s.runs", csv);
    snprintf(build_dir, sizeof build_dir, "%s/build", runs_dir);
    snprintf(init_path, sizeof init_path, "%s/init.safetensors", build_dir);
    Grid grids[MAX_GRIDS];
    Run *runs = NULL;
    int n_runs = 0, status = 1;
    char *program = NULL;
    Program *p = load_program(a, o, &d);
    if (!p || !require_train(p, &d) || !train_check_input(o, true, &d)) goto done;
    if (p->train->n_steps > 1) {
        const TrainStep *st = &p->train->steps[1];
        diag_error(&d, st->loc, "etch sweep trains a model with one training step; this train block has %d named "
                                "steps ('%s', '%s'%s), each with its own optimizer", p->train->n_steps,
                   p->train->steps[0].name, st->name, p->train->n_steps > 2 ? ", ..." : "");
        goto done;
    }
    OptimSpec *spec = &p->train->steps[0].optim; /* what train_step_graph builds from */
    for (int g = 0; g < o->n_grids; g++)
        if (!parse_grid(o->grids[g], spec, grids, g, &grids[g], &d)) goto done;
    if (!(runs = plan_runs(o, spec, grids, o->n_grids, &n_runs, &d))) goto done;
    for (int g = 0; g < o->n_grids; g++) spec->runtime |= 1u << grids[g].hp;
    /* one program; every run starts from the same initial weights (the seed's), hyperparameters at their compiled values */
    Graph *step = train_step_graph(p, a, &d);
    Tensor **init = step ? params_init(step, o->seed) : NULL;
    bool saved = init && build_mkdirs(build_dir, &d) && params_save(step, init, init_path, &d);
    if (init) params_free(step, init);
    if (!saved || !(program = build_trainer(p, o, build_dir, &d))) goto done;

    const char *base[24];
    int n = 0;
    base[n++] = "--data", base[n++] = o->data;
    base[n++] = "--init", base[n++] = init_path;
    base[n++] = "--name", base[n++] = p->model_name;
    base[n++] = "--digits", base[n++] = "6";
    snprintf(num[0], sizeof num[0], "%ld", o->epochs >= 0 ? o->epochs : (long)p->train->epochs);
    base[n++] = "--epochs", base[n++] = num[0];
    snprintf(num[1], sizeof num[1], "%llu", (unsigned long long)o->seed);
    base[n++] = "--seed", base[n++] = num[1];
    if (o->steps >= 0) snprintf(num[2], sizeof num[2], "%ld", o->steps), base[n++] = "--steps", base[n++] = num[2];
    if (o->limit >= 0) snprintf(num[3], sizeof num[3], "%ld", o->limit), base[n++] = "--limit", base[n++] = num[3];
    if (o->no_shuffle) base[n++] = "--no-shuffle";
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int jobs = o->jobs > 0 ? o->jobs : cores > 0 ? (int)cores : 1;
    printf("%d trainings of %s, %d at a time (logs in %s/NNN/log.txt)\n", n_runs, program, jobs, runs_dir);
    fflush(stdout);
    bool ran = run_all(program, base, n, runs_dir, grids, o->n_grids, runs, n_runs, jobs, &d);
    if (write_results(csv, runs_dir, grids, o->n_grids, runs, n_runs, &d) && ran) {
        status = 0;
        for (int k = 0; k < n_runs; k++)
            if (!runs[k].ok) status = 1;
        if (status) diag_error_plain(&d, "some trainings failed (their logs are named in the table)");
    }
done:
    free(program);
    free(runs);
    diag_dispose(&d);
    arena_free(a);
    return status;
}
