/* manager.c: the pass pipeline and the pass manager.
 *
 * The pipeline is the plain table below, in order: reading it tells exactly
 * what -O0, -O1 and -O2 do, and it is the only place where a level turns
 * into behaviour (the tool only parses -O into PassOptions). The manager
 * runs the passes, verifies the IR after each one when asked (so a broken
 * rewrite is reported naming the pass that made it, not as a wrong number
 * later), and dumps the IR after the passes the user asked about. */
#include <string.h>

#include "passes/pass.h"
#include "passes/plan_memory.h"

static const PassInfo PIPELINE[] = {
    /* name, function, {-O0, -O1, -O2}, summary */
    /* first, and only when asked (--quantize int8): it matches Linear layers as the frontend builds them */
    {"quantize", pass_quantize, {PASS_SKIP, PASS_SKIP, PASS_SKIP},
     "int8 post-training quantization of Linear layers from calibrated ranges (--quantize int8)", true},
    {"simplify", pass_simplify, {PASS_SKIP, PASS_RUN, PASS_RUN}, "algebraic simplification and constant folding", false},
    {"cse", pass_cse, {PASS_SKIP, PASS_RUN, PASS_RUN}, "common-subexpression elimination", false},
    {"dce", pass_dce, {PASS_SKIP, PASS_RUN, PASS_RUN}, "dead-code elimination (inputs and params are kept)", false},
    /* after the passes that rebuild graphs: they would not keep groups consistent */
    {"fuse", pass_fuse, {PASS_SKIP, PASS_SKIP, PASS_RUN},
     "fuse elementwise chains, row reductions with their producers and consumers, "
     "and matmul epilogues into single kernels", false},
    /* last, at every level: where each value of the final graph lives, for the backend */
    {"plan-memory", pass_plan_memory, {PASS_RUN_NO_REUSE, PASS_RUN, PASS_RUN},
     "static memory plan: one arena, buffers reused once dead and updates in place (from -O1)", false},
    {NULL, NULL, {PASS_SKIP}, NULL, false},
};

const PassInfo *passes_all(void) { return PIPELINE; }

const PassInfo *pass_find(const char *name) {
    for (int i = 0; PIPELINE[i].name; i++)
        if (strcmp(PIPELINE[i].name, name) == 0) return &PIPELINE[i];
    return NULL;
}

/* -O3 and above read as -O2, negative levels as -O0. */
static int level_of(const PassOptions *o) {
    return o->opt_level < 0 ? 0 : o->opt_level >= PASS_LEVELS ? PASS_LEVELS - 1 : o->opt_level;
}

/* Reports name as unknown, listing the valid ones; false when unknown. */
static bool check_name(const char *name, const char *flag, Diag *d) {
    if (name && pass_find(name)) return true;
    char list[256] = "";
    size_t len = 0;
    for (int i = 0; PIPELINE[i].name && len < sizeof list; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", PIPELINE[i].name);
    diag_error_plain(d, "unknown pass '%s' in %s (valid passes: %s)", name ? name : "", flag, list);
    return false;
}

static bool listed(const char *const *names, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0) return true;
    return false;
}

/* The option lists name real passes and a target is given; every problem is reported. */
static bool check_options(const PassOptions *o, Diag *d) {
    bool ok = o->target || diag_error_plain(d, "no target to compile for (PassOptions.target is required)");
    for (int i = 0; i < o->n_disabled; i++) ok = check_name(o->disabled[i], "--disable-pass", d) && ok;
    for (int i = 0; i < o->n_print_after; i++) ok = check_name(o->print_after[i], "--print-after", d) && ok;
    return ok;
}

/* Runs one pass as the table's `use` says, with the manager's bookkeeping;
 * NULL on failure. Any plan g carries is dropped first: only plan-memory
 * leaves one, describing exactly the graph it returns. */
static Graph *run_one(const PassInfo *p, PassUse use, Graph *g, const PassOptions *o, Diag *d) {
    PassCtx ctx = {.d = d, .target = o->target, .reuse_buffers = use != PASS_RUN_NO_REUSE, .quant = o->quant};
    g->mem_plan = NULL;
    Graph *h = p->run(g, &ctx);
    if (!h) {
        diag_error_plain(d, "pass '%s' failed", p->name);
        return NULL;
    }
    if (o->verify && !ir_verify(h, d)) {
        diag_error_plain(d, "the IR does not verify after pass '%s' (a compiler bug)", p->name);
        return NULL;
    }
    if (o->print_after_all || listed(o->print_after, o->n_print_after, p->name)) {
        FILE *f = o->dump ? o->dump : stderr;
        fprintf(f, "// ----- IR after %s -----\n", p->name);
        ir_print(f, h);
        if (h->mem_plan) plan_memory_print_summary(f, h);
    }
    return h;
}

static bool verify_input(Graph *g, const PassOptions *o, Diag *d) {
    if (!o->verify || ir_verify(g, d)) return true;
    return diag_error_plain(d, "the IR does not verify before any pass ran");
}

/* Scan bodies are graphs of their own: the same pipeline optimizes each one
 * (after the outer graph, whose passes keep body pointers as they are). */
static Graph *run_bodies(Graph *g, Graph *(*run)(Graph *, const void *, const PassOptions *, Diag *),
                         const void *arg, const PassOptions *o, Diag *d) {
    for (int id = 0; g && id < g->n_nodes; id++) {
        Node *n = &g->nodes[id];
        if (n->op != OP_SCAN || !n->attr.body) continue;
        Graph *b = run(n->attr.body, arg, o, d);
        if (!b) return NULL;
        n->attr.body = b;
    }
    return g;
}

static Graph *run_pipeline(Graph *g, const void *unused, const PassOptions *o, Diag *d) {
    (void)unused;
    for (int i = 0; g && PIPELINE[i].name; i++) {
        const PassInfo *p = &PIPELINE[i];
        PassUse use = p->on_request ? (o->quant ? PASS_RUN : PASS_SKIP) : p->use[level_of(o)];
        if (use == PASS_SKIP || listed(o->disabled, o->n_disabled, p->name)) continue;
        g = run_one(p, use, g, o, d);
    }
    return run_bodies(g, run_pipeline, NULL, o, d);
}

Graph *passes_run(Graph *g, const PassOptions *o, Diag *d) {
    if (!check_options(o, d) || !verify_input(g, o, d)) return NULL;
    return run_pipeline(g, NULL, o, d);
}

typedef struct NameList {
    const char *const *names;
    int n;
} NameList;

static Graph *run_named(Graph *g, const void *arg, const PassOptions *o, Diag *d) {
    const NameList *l = arg;
    for (int i = 0; g && i < l->n; i++) {
        const PassInfo *p = pass_find(l->names[i]);
        PassUse use = p->use[level_of(o)];
        if (!listed(o->disabled, o->n_disabled, p->name)) g = run_one(p, use == PASS_SKIP ? PASS_RUN : use, g, o, d);
    }
    return run_bodies(g, run_named, arg, o, d);
}

Graph *passes_run_list(Graph *g, const char *const *names, int n, const PassOptions *o, Diag *d) {
    bool ok = check_options(o, d);
    for (int i = 0; i < n; i++) ok = check_name(names[i], "--passes", d) && ok;
    if (!ok || !verify_input(g, o, d)) return NULL;
    NameList l = {names, n};
    return run_named(g, &l, o, d);
}
