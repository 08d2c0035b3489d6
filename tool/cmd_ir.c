/* cmd_ir.c: the commands that look at a model's graph without running it:
 * check (parse and type-check, the training step too), ir (print the graph
 * as textual IR), ir-roundtrip (parse textual IR and print it again), opt
 * (textual IR through the pass pipeline). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/pass.h"
#include "tool/commands.h"
#include "tool/pipeline.h"

int cmd_check(const Options *o) {
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = load_program(a, o, &d);
    bool ok = p && ir_verify(p->forward, &d);
    for (int i = 0; ok && p->train && i < p->train->n_steps; i++) { /* the training steps too: optimizer settings, differentiability */
        Graph *step = train_step_graph_at(p, i, a, &d);
        ok = step && ir_verify(step, &d);
    }
    int rc = ok ? 0 : 1;
    diag_dispose(&d);
    arena_free(a);
    return rc;
}

int cmd_ir(const Options *o) {
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = load_program(a, o, &d);
    if (p) make_data_parallel(p, o); /* --mpi: the steps' gradients through allreduce_start/_wait */
    /* --grad: every training step (one per named step), one after the other */
    int n = p && o->grad && p->train ? p->train->n_steps : 1;
    Graph *g = p ? p->forward : NULL;
    for (int i = 0; g && i < n; i++) {
        g = p ? (o->grad ? train_step_graph_at(p, i, a, &d) : p->forward) : NULL;
        if (g && (o->opt_given || o->print_after_all || o->n_print_after)) g = optimize_graph(g, o, a, &d);
        if (g && i) putchar('\n');
        if (g) ir_print(stdout, g);
    }
    diag_dispose(&d);
    arena_free(a);
    return g ? 0 : 1;
}

/* Reads, parses and verifies a textual IR file. *text (caller frees) stays
 * registered for diagnostics that quote it. NULL after reporting an error. */
static Graph *read_ir_file(Arena *a, const char *path, unsigned char **text, Diag *d) {
    size_t n;
    char err[1024];
    if (etch_read_file(path, text, &n, err, sizeof err)) {
        diag_error_plain(d, "%s", err);
        return NULL;
    }
    diag_add_source(path, (const char *)*text);
    Graph *g = ir_parse(a, path, (const char *)*text, d);
    return g && ir_verify(g, d) ? g : NULL;
}

int cmd_ir_roundtrip(const Options *o) {
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    unsigned char *text = NULL;
    Graph *g = read_ir_file(a, o->file, &text, &d);
    if (g) ir_print(stdout, g);
    diag_dispose(&d);
    arena_free(a);
    free(text);
    return g ? 0 : 1;
}

/* `etch opt FILE.etchir`: textual IR through the pass pipeline (or the passes
 * named by --passes, in that order), verified after every pass, printed. */
int cmd_opt(const Options *o) {
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    unsigned char *text = NULL;
    Graph *g = read_ir_file(a, o->file, &text, &d);
    PassOptions po = pass_options(o);
    po.verify = true;
    if (g && o->passes) {
        const char *names[32];
        int k = 0;
        char *list = arena_strdup(a, o->passes);
        for (char *tok = strtok(list, ","); tok && k < 32; tok = strtok(NULL, ",")) names[k++] = tok;
        g = passes_run_list(g, names, k, &po, &d);
    } else if (g) {
        g = passes_run(g, &po, &d);
    }
    if (g) ir_print(stdout, g);
    diag_dispose(&d);
    arena_free(a);
    free(text);
    return g ? 0 : 1;
}
