/* cmd_graph.c: `etch graph FILE [--grad] [--after PASS] -o OUT.svg|OUT.dot`:
 * draws a graph with Graphviz. Inputs, params and constants are styled apart;
 * every fusion group (passes/fuse.c) is a cluster, so what -O2 turns into one
 * kernel shows as one box. The DOT text is written by etch itself; an .svg
 * output runs Graphviz's `dot` (Debian package graphviz) on it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/build.h"
#include "tool/commands.h"
#include "tool/pipeline.h"
#include "ir/strbuf.h"
#include "passes/pass.h"

static void dot_node(StrBuf *b, const Graph *g, int id) {
    const Node *n = &g->nodes[id];
    char ty[96];
    type_format(ty, sizeof ty, n->dtype, &n->shape);
    const char *style = n->op == OP_INPUT   ? "shape=box, style=filled, fillcolor=\"#cfe2ff\""
                        : n->op == OP_PARAM ? "shape=box, style=filled, fillcolor=\"#fff3cd\""
                        : n->op == OP_CONST ? "shape=plaintext"
                                            : "shape=ellipse";
    sb_printf(b, "    n%d [label=\"%%%d %s%s%s\\n%s\", %s];\n", id, id, op_table[n->op].name,
              n->attr.name ? " " : "", n->attr.name ? n->attr.name : "", ty, style);
}

/* The DOT text of g: clusters for fusion groups, edges operand -> user,
 * outputs and state updates marked. */
static char *graph_to_dot(const Graph *g) {
    StrBuf b = {0};
    sb_printf(&b, "digraph \"%s\" {\n  rankdir=TB;\n  node [fontname=\"monospace\", fontsize=10];\n", g->name);
    for (int id = 0; id < g->n_nodes; id++) {
        const FuseGroup *fg = &g->nodes[id].attr.group;
        if (fg->kind == FUSE_NONE || fg->at != id) continue; /* each group once, at its position */
        sb_printf(&b, "  subgraph cluster_%d {\n    label=\"fused kernel (%s %d)\"; style=rounded; color=\"#d63384\";\n",
                  fg->id, fuse_kind_name(fg->kind), fg->id);
        for (int m = 0; m < g->n_nodes; m++) /* a fused product's group sits at the product */
            if (fuse_same_group(&g->nodes[id], &g->nodes[m])) dot_node(&b, g, m);
        sb_puts(&b, "  }\n");
    }
    for (int id = 0; id < g->n_nodes; id++)
        if (g->nodes[id].attr.group.kind == FUSE_NONE) dot_node(&b, g, id);
    for (int id = 0; id < g->n_nodes; id++)
        for (int k = 0; k < g->nodes[id].n_in; k++) sb_printf(&b, "  n%d -> n%d;\n", g->nodes[id].in[k], id);
    for (int i = 0; i < g->n_outputs; i++)
        sb_printf(&b, "  out%d [label=\"output %d\", shape=doublecircle];\n  n%d -> out%d;\n", i, i, g->outputs[i], i);
    for (int i = 0; i < g->n_updates; i++)
        sb_printf(&b, "  n%d -> n%d [style=dashed, label=\"update\"];\n", g->upd_src[i], g->upd_dst[i]);
    sb_puts(&b, "}\n");
    return sb_take(&b);
}

int cmd_graph(const Options *o) {
    if (!o->out) return usage_error("%s", "graph needs -o OUT.svg (or OUT.dot)");
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stderr);
    Program *p = load_program(a, o, &d);
    Graph *g = p ? (o->grad ? train_step_graph(p, a, &d) : p->forward) : NULL;
    if (g && o->after) { /* the pipeline up to and including --after PASS */
        const PassInfo *all = passes_all();
        Options po = *o;
        po.opt_level = 2;
        bool found = false;
        for (int i = 0; all[i].name; i++) {
            if (found && po.n_disabled < 16) po.disabled[po.n_disabled++] = all[i].name;
            if (!strcmp(all[i].name, o->after)) found = true;
        }
        if (!found) {
            diag_error_plain(&d, "--after %s: no such pass", o->after);
            g = NULL;
        } else {
            g = optimize_graph(g, &po, a, &d);
        }
    } else if (g && o->opt_given) {
        g = optimize_graph(g, o, a, &d);
    }
    bool ok = g != NULL;
    if (ok) {
        char *dot = graph_to_dot(g), err[1024];
        size_t len = strlen(o->out);
        bool svg = len > 4 && !strcmp(o->out + len - 4, ".svg");
        if (!svg) {
            if (etch_write_file_atomic(o->out, dot, strlen(dot), err, sizeof err)) ok = diag_error_plain(&d, "%s", err);
        } else {
            char tmp_dot[4096], tmp_svg[4096];
            snprintf(tmp_dot, sizeof tmp_dot, "%s.%ld.dot", o->out, (long)getpid());
            snprintf(tmp_svg, sizeof tmp_svg, "%s.%ld.tmp", o->out, (long)getpid());
            if (etch_write_file_atomic(tmp_dot, dot, strlen(dot), err, sizeof err)) {
                ok = diag_error_plain(&d, "%s", err);
            } else {
                const char *argv[] = {"dot", "-Tsvg", "-o", tmp_svg, tmp_dot, NULL};
                ok = build_spawn(argv, &d);
                if (!ok) diag_note(&d, (SrcLoc){0}, "SVG output needs Graphviz's 'dot' (apt-get install graphviz); "
                                                    "-o FILE.dot writes the DOT text without it");
                if (ok && rename(tmp_svg, o->out) != 0) ok = diag_error_plain(&d, "cannot write %s", o->out);
                unlink(tmp_dot);
                unlink(tmp_svg);
            }
        }
        free(dot);
    }
    diag_dispose(&d);
    arena_free(a);
    return ok ? 0 : 1;
}
