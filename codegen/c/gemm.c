/* gemm.c: emits matrix-multiply kernels specialized to static shapes (see
 * gemm.h). Everything is decided per descriptor at compile time:
 *
 *  - the register tile: MR rows of C times NV vectors, held in registers
 *    while K runs. A's values are broadcast straight from A (packing A costs
 *    more than it saves once B is packed), B's rows are loaded as vectors.
 *    Row remainders get a tile of exactly the remaining rows; column
 *    remainders use masked loads and stores.
 *  - the form: "direct" (B not transposed and M <= 4, or N within one tile,
 *    or B small enough to stay in L2): B is read in place and the whole K
 *    loop stays in registers; packing would rival the arithmetic there.
 *    "dot-product" (B transposed, M <= 4: batch-1 x @ W^T): outputs as
 *    vectors along contiguous k, reduced at the end. "blocked" otherwise
 *    (the BLIS scheme): C is cut into NC-column and MC-row blocks, K into
 *    slices of <= KC; each K slice of B is packed into zero-padded KC x NR
 *    panels (contiguous, aligned, L1-resident while the block's row tiles
 *    pass). Packing buffers are in the context's scratch (cemit_scratch), one per kernel and thread part, at
 *    most KC x NC (2 MiB); each kernel's comment states its size.
 *
 * Every variant (portable C, AVX2+FMA, AVX-512F) is emitted; the first call
 * picks the best the CPU supports (ETCH_GEMM_ISA=portable|avx2 caps it).
 * Products of at most SMALL_GEMM_MACS multiply-adds get the portable one only.
 * Determinism: an output element is acc = 0; acc = fma(a, b, acc) over one
 * K slice in order; C = acc (first slice) or C + acc (dot products: lanes
 * over k, a fixed reduction tree, the K tail in order). The K slicing and
 * the form depend only on the shape, and padding or masking never mixes
 * lanes, so splitting rows or columns over threads cannot change a bit. */
#include "codegen/c/gemm.h"
#include "codegen/c/gemm_support.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* One instruction-set variant of a kernel. */
typedef enum IsaKind { KIND_PLAIN, KIND_VEC, KIND_AVX2, KIND_AVX512 } IsaKind;
typedef struct Isa {
    IsaKind kind;
    const char *sfx;     /* kernel name suffix */
    const char *attr;    /* function attribute macro (defined in the support block) */
    int vbytes;          /* vector width (the portable variants tile for 16-byte SIMD) */
    int acc_regs;        /* vector registers the accumulator tile may use */
    const char *pfx;     /* intrinsics prefix */
    int tiles[2][2];     /* blocked-kernel register tiles {MR, NV}, best first */
} Isa;

/* The portable variant comes in two spellings with one plan: GNU C vector
 * extensions (any GCC/clang target: SSE2, NEON, ...) and plain C loops. */
enum { ISA_PORTABLE, ISA_AVX2, ISA_AVX512, N_ISA };
static const Isa ISAS[N_ISA] = {
    {KIND_VEC, "c", "", 16, 8, NULL, {{4, 2}, {4, 2}}},
    {KIND_AVX2, "avx2", "ETCH_GEMM_AVX2 ", 32, 12, "_mm256_", {{6, 2}, {4, 3}}},
    {KIND_AVX512, "avx512", "ETCH_GEMM_AVX512 ", 64, 24, "_mm512_", {{12, 2}, {8, 3}}},
};
static const Isa PLAIN_C = {KIND_PLAIN, "c", "", 16, 8, NULL, {{4, 2}, {4, 2}}};

/* Blocking targets: a KC x NR panel of B plus MR rows of A stay in a 32 KiB
 * L1; MC rows x KC of A in L2; the KC x NC slice of B in L2/L3. */
enum { KC_MAX = 256, A_BLOCK_BYTES = 160 * 1024, B_BLOCK_BYTES = 2 * 1024 * 1024 };
/* A kernel splits into as many parts as it has this many flops, up to
 * --threads: 4 Mflop is about 50 us of GEMM on one core, against a few
 * microseconds to wake a pool worker (docs/performance.md, issue 15). */
#define FLOPS_PER_THREAD (1 << 22)
/* Products of at most this many multiply-adds get only the portable variant
 * (GNU C vectors, 16-byte lanes): a few microseconds at most whatever the
 * ISA, while the AVX2 and AVX-512 copies of every such kernel made most of
 * the C compiler's time on recurrent models, whose per-step products are
 * tiny (a 2-layer bidirectional LSTM cell: 10 shapes of 432 to 6,048). */
#define SMALL_GEMM_MACS 8192

/* How a kernel reaches its operands (see the top of the file). */
typedef enum Mode { MODE_DIRECT, MODE_DOT, MODE_BLOCKED } Mode;
static const char *const MODE_NAME[] = {"direct", "dot-product", "blocked"};

typedef struct Plan {
    Mode mode;
    int vl, mr, nv, nr;      /* vector lanes; register tile MR x (NV vectors = NR elements);
                              * dot-product tiles: MR rows x NR columns, each a vector over k */
    int64_t kc, mc, nc;      /* K slice depth; cache blocks (blocked kernels) */
    int parts;               /* threads that share the work */
    bool split_m;            /* parts own row ranges (else column ranges) */
    int64_t chunk;           /* rows or columns per part (a multiple of MR or NR) */
    int64_t pack;            /* packing buffer elements per part (64-byte multiple) */
} Plan;

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t round_up(int64_t a, int64_t b) { return cdiv(a, b) * b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* The form depends on the shape only (not on the instruction set or the
 * thread count), so the order of additions does not either. Direct when B
 * can be read in place cheaply: few rows of A share it, it is one tile wide,
 * or it stays in L2 (its panels are then re-read from L2, not packed). */
#define DIRECT_B_BYTES (512 * 1024)
static Mode mode_of(const GemmDesc *d) {
    int64_t es = (int64_t)dtype_size(d->dtype);
    /* rows of B 2 KiB apart (or a multiple) collide in the caches' sets: pack those */
    bool in_l2 = d->k * d->n * es <= DIRECT_B_BYTES && (d->ldb * es) % 2048 != 0;
    if (!d->trans_b && (d->m <= 4 || d->n * es <= 64 || in_l2)) return MODE_DIRECT;
    /* few rows times transposed B (batch-1 x @ W^T): dot products along contiguous k */
    if (d->trans_b && !d->trans_a && d->m <= 4) return MODE_DOT;
    return MODE_BLOCKED;
}

/* Chooses tile, blocking and the thread split of d for one variant. */
static Plan plan_make(const GemmDesc *d, const Isa *isa, int threads) {
    Plan p = {0};
    int es = (int)dtype_size(d->dtype);
    p.vl = isa->vbytes / es;
    p.mode = mode_of(d);
    if (p.mode == MODE_DOT) {
        p.mr = (int)d->m;
        p.nr = (int)min64(d->n, min64(8, isa->acc_regs / d->m));
        p.nv = 1;
    } else if (p.mode == MODE_DIRECT) {
        int64_t nvec = cdiv(d->n, p.vl);
        p.nv = (int)(d->m <= 4 ? min64(nvec, min64(8, isa->acc_regs / d->m)) : min64(nvec, 2));
        p.mr = (int)min64(d->m, min64(12, isa->acc_regs / p.nv));
    } else { /* the tile that wastes the least work on padding (first wins ties) */
        int64_t best = -1;
        for (int t = 0; t < 2; t++) {
            int mr = isa->tiles[t][0], nr = isa->tiles[t][1] * p.vl;
            int64_t cost = round_up(d->m, mr) * round_up(d->n, nr);
            if (best < 0 || cost < best) best = cost, p.mr = mr, p.nv = isa->tiles[t][1];
        }
    }
    if (p.mode != MODE_DOT) p.nr = p.nv * p.vl;
    /* K slices of equal depth <= KC_MAX: they fix the order of additions */
    p.kc = p.mode != MODE_BLOCKED ? d->k : cdiv(d->k, cdiv(d->k, KC_MAX));
    int64_t flops = 2 * d->m * d->n * d->k, tiles_m = cdiv(d->m, p.mr), tiles_n = cdiv(d->n, p.nr);
    int64_t want = min64(threads, max64(1, flops / FLOPS_PER_THREAD));
    /* direct kernels share B (L2-resident) and split A's rows; blocked ones
     * split B's columns, each part packing its own */
    p.split_m = p.mode == MODE_DIRECT ? tiles_m >= 2 * want : tiles_n < 2 * want && tiles_m > tiles_n;
    p.chunk = cdiv(p.split_m ? tiles_m : tiles_n, want) * (p.split_m ? p.mr : p.nr);
    p.parts = (int)cdiv(p.split_m ? d->m : d->n, p.chunk);
    if (p.mode != MODE_BLOCKED) return p;
    int64_t rows = p.split_m ? p.chunk : d->m, cols = p.split_m ? d->n : p.chunk;
    p.mc = min64(round_up(rows, p.mr), max64(1, A_BLOCK_BYTES / (p.kc * es) / p.mr) * p.mr);
    p.nc = min64(round_up(cols, p.nr), max64(1, B_BLOCK_BYTES / (p.kc * es) / p.nr) * p.nr);
    p.pack = round_up(p.nc * p.kc, 64 / es);
    return p;
}

void gemm_kernel_name(char *buf, size_t n, const GemmDesc *d) {
    snprintf(buf, n, "etch_gemm_%s_%lldx%lldx%lld_%c%c_%lld_%lld_%lld%s%s%s", d->dtype == DT_F64 ? "f64" : "f32",
             (long long)d->m, (long long)d->n, (long long)d->k, d->trans_a ? 't' : 'n', d->trans_b ? 't' : 'n',
             (long long)d->lda, (long long)d->ldb, (long long)d->ldc, d->accumulate ? "_acc" : "",
             d->epilogue ? "_" : "", d->epilogue ? d->epilogue : "");
}

/* ---- text helpers ---- */

typedef struct Gen {
    StrBuf *b;
    const GemmDesc *d;
    const Isa *isa;
    const Plan *p;
    const char *T, *name;
    char vt[16], sx[4];      /* vector type and intrinsic suffix ("__m256", "ps") */
} Gen;

static void line(Gen *g, int ind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void line(Gen *g, int ind, const char *fmt, ...) {
    for (int i = 0; i < ind; i++) sb_puts(g->b, "    ");
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(g->b, fmt, ap);
    va_end(ap);
    sb_puts(g->b, "\n");
}

/* Declares the variant function, its operand pointers and its part's range. */
static void open_variant(Gen *g) {
    const Plan *p = g->p;
    const GemmDesc *d = g->d;
    sb_printf(g->b, "%sstatic void %s_%s(const void *a_, const void *b_, void *c_, int part) {\n", g->isa->attr,
              g->name, g->isa->sfx);
    line(g, 1, "const %s *restrict A = (const %s *)a_, *restrict B = (const %s *)b_;", g->T, g->T, g->T);
    line(g, 1, "%s *restrict C = (%s *)c_;", g->T, g->T);
    line(g, 1, "(void)part;");
    const char *lo = p->split_m ? "m0" : "n0", *hi = p->split_m ? "m1" : "n1";
    long long full = (long long)(p->split_m ? d->m : d->n), ch = (long long)p->chunk;
    if (p->parts > 1)
        line(g, 1, "const int64_t %s = (int64_t)part * %lld, %s = %s + %lld < %lld ? %s + %lld : %lld;", lo, ch, hi,
             lo, ch, full, lo, ch, full);
    else
        line(g, 1, "const int64_t %s = 0, %s = %lld;", lo, hi, full);
    line(g, 1, "const int64_t %s = 0, %s = %lld;", p->split_m ? "n0" : "m0", p->split_m ? "n1" : "m1",
         (long long)(p->split_m ? d->n : d->m));
    if (p->mode == MODE_BLOCKED) line(g, 1, "%s *restrict bp = %s_pack[part];", g->T, g->name);
}

/* ---- register tiles ---- */

/* How a tile reaches B and C. */
typedef struct Tile {
    int rows, nv;            /* literal tile size */
    bool packed;             /* B from a packed panel (aligned, stride NR) or in place (stride ldb) */
    bool masked;             /* only the first `nr` columns are valid */
    const char *klen;        /* K loop length (C expression) */
    const char *first;       /* condition for C = acc (else C = C + acc): "1", "0" or an expression */
    const char *col;         /* the tile's first column in C (C expression), for the epilogue */
} Tile;

/* A(i, k) relative to the tile's row pointer pa. */
static void a_at(const Gen *g, char *buf, size_t n, const char *i, const char *k) {
    if (g->d->trans_a) snprintf(buf, n, "pa[%s * %lld + %s]", k, (long long)g->d->lda, i);
    else snprintf(buf, n, "pa[%s * %lld + %s]", i, (long long)g->d->lda, k);
}

/* Vector operation spellings: intrinsics, or GNU C vector extensions (with
 * the support block's load/store/broadcast helpers; no masks there). */
static void vload(const Gen *g, char *buf, size_t n, const char *ptr, bool aligned, bool masked, int v) {
    const char *P = g->isa->pfx, *S = g->sx;
    if (g->isa->kind == KIND_VEC) snprintf(buf, n, "etch_gemm_ld_%s(%s)", S, ptr);
    else if (masked && g->isa->kind == KIND_AVX512) snprintf(buf, n, "%smaskz_loadu_%s(mk%d, %s)", P, S, v, ptr);
    else if (masked) snprintf(buf, n, "%smaskload_%s(%s, mk%d)", P, S, ptr, v);
    else snprintf(buf, n, "%sload%s_%s(%s)", P, aligned ? "" : "u", S, ptr);
}

static void vstore(Gen *g, int ind, const char *ptr, const char *val, bool masked, int v) {
    const char *P = g->isa->pfx, *S = g->sx;
    if (g->isa->kind == KIND_VEC) line(g, ind, "etch_gemm_st_%s(%s, %s);", S, ptr, val);
    else if (masked && g->isa->kind == KIND_AVX512) line(g, ind, "%smask_storeu_%s(%s, mk%d, %s);", P, S, ptr, v, val);
    else if (masked) line(g, ind, "%smaskstore_%s(%s, mk%d, %s);", P, S, ptr, v, val);
    else line(g, ind, "%sstoreu_%s(%s, %s);", P, S, ptr, val);
}

static void vzero(const Gen *g, char *buf, size_t n) {
    if (g->isa->kind == KIND_VEC) snprintf(buf, n, "(%s){0}", g->vt);
    else snprintf(buf, n, "%ssetzero_%s()", g->isa->pfx, g->sx);
}

static void vbcast(const Gen *g, char *buf, size_t n, const char *x) {
    if (g->isa->kind == KIND_VEC) snprintf(buf, n, "etch_gemm_bc_%s(%s)", g->sx, x);
    else snprintf(buf, n, "%sset1_%s(%s)", g->isa->pfx, g->sx, x);
}

/* acc + a * b: fused with intrinsics; one expression (so contracted or not
 * alike everywhere) with vector extensions. */
static void vfma(const Gen *g, char *buf, size_t n, const char *a, const char *b, const char *acc) {
    if (g->isa->kind == KIND_VEC) snprintf(buf, n, "%s + %s * %s", acc, a, b);
    else snprintf(buf, n, "%sfmadd_%s(%s, %s, %s)", g->isa->pfx, g->sx, a, b, acc);
}

static void vadd(const Gen *g, char *buf, size_t n, const char *a, const char *b) {
    if (g->isa->kind == KIND_VEC) snprintf(buf, n, "%s + %s", a, b);
    else snprintf(buf, n, "%sadd_%s(%s, %s)", g->isa->pfx, g->sx, a, b);
}

/* Lane masks mk0.. for the valid columns (nr of them) of each vector. */
static void emit_masks(Gen *g, int ind, int nv) {
    int vl = g->p->vl;
    bool f64 = g->d->dtype == DT_F64;
    if (g->isa->kind == KIND_AVX512) {
        for (int v = 0; v < nv; v++)
            line(g, ind, "const __mmask%d mk%d = (__mmask%d)(nr - %d >= %d ? 0x%x : nr <= %d ? 0 : (1u << (nr - %d)) - 1);",
                 vl, v, vl, v * vl, vl, (1u << vl) - 1, v * vl, v * vl);
        return;
    }
    if (f64) line(g, ind, "const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);");
    else line(g, ind, "const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);");
    for (int v = 0; v < nv; v++) {
        if (f64) line(g, ind, "const __m256i mk%d = _mm256_cmpgt_epi64(_mm256_set1_epi64x(nr - %d), lane);", v, v * vl);
        else line(g, ind, "const __m256i mk%d = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)nr - %d), lane);", v, v * vl);
    }
}

/* Writes a tile's accumulators: to C (C = acc, or C = C + acc when `add`),
 * or, when `to_tile`, to the tile buffer (rows x NR: `ep`, or the portable
 * tile's own sums `t`) that the epilogue reads, leaving C as it is. */
typedef void (*TileResults)(Gen *g, int ind, const Tile *t, bool add, bool to_tile);

static void simd_results(Gen *g, int ind, const Tile *t, bool add, bool to_tile) {
    int vl = g->p->vl;
    long long ldc = (long long)g->d->ldc;
    char ptr[96], dst[96], ld[160], y[256], c[32];
    for (int i = 0; i < t->rows; i++)
        for (int v = 0; v < t->nv; v++) {
            snprintf(ptr, sizeof ptr, "cp + %lld", i * ldc + v * vl);
            snprintf(c, sizeof c, "c%d_%d", i, v);
            if (add) {
                vload(g, ld, sizeof ld, ptr, false, t->masked, v);
                vadd(g, y, sizeof y, ld, c);
            } else {
                snprintf(y, sizeof y, "%s", c);
            }
            if (!to_tile) {
                vstore(g, ind, ptr, y, t->masked, v);
                continue;
            }
            snprintf(dst, sizeof dst, "ep + %d", i * t->nv * vl + v * vl); /* whole vectors: ep has NR columns */
            vstore(g, ind, dst, y, false, v);
        }
}

/* Stores a finished K slice of a tile. Without an epilogue: C = acc on the
 * first slice, C = C + acc after. With one, the last slice's sums go to a
 * tile buffer instead and the epilogue maps them to the group's outputs;
 * the product reaches C only while later slices still add to it. */
static void emit_tile_finish(Gen *g, int ind, const Tile *t, TileResults results, bool simd) {
    bool store = strcmp(t->first, "0") != 0, add = strcmp(t->first, "1") != 0;
    if (!g->d->epilogue) {
        if (store && add) line(g, ind, "if (%s) {", t->first);
        if (store) results(g, ind + add, t, false, false);
        if (store && add) line(g, ind, "} else {");
        if (add) results(g, ind + store, t, true, false);
        if (store && add) line(g, ind, "}");
        return;
    }
    int nr = t->nv * g->p->vl;
    char cols[16];
    snprintf(cols, sizeof cols, t->masked ? "nr" : "%d", nr);
    if (add) { /* several K slices: the last one ends in the tile buffer */
        line(g, ind, "if (%s) {", t->first);
        results(g, ind + 1, t, false, false);
        line(g, ind, "} else if (pc + kc < %lld) {", (long long)g->d->k);
        results(g, ind + 1, t, true, false);
        line(g, ind, "} else {");
        ind++;
    }
    if (simd) line(g, ind, "_Alignas(64) %s ep[%d];", g->T, t->rows * nr); /* the portable tile sums in t[] */
    results(g, ind, t, add, true);
    line(g, ind, "%s(%s, %d, i0, %s, %d, %s);", g->d->epilogue, simd ? "ep" : "t", nr, t->col, t->rows, cols);
    if (add) line(g, ind - 1, "}");
}

/* One register tile: C[rows x nv*VL] (+)= A[rows x klen] B[klen x nv*VL],
 * with pa, pb, cp pointing at the tile's corner in A, B and C. */
static void emit_tile_simd(Gen *g, int ind, const Tile *t) {
    int vl = g->p->vl;
    long long ldb = (long long)g->d->ldb;
    char ptr[96], ld[160], a[96], k_row[32], x[256];
    line(g, ind, "{");
    ind++;
    /* masks serve B's loads in place and C's loads and stores (none when an epilogue takes the only slice) */
    bool touches_c = !(g->d->epilogue && !strcmp(t->first, "1"));
    if (t->masked && (!t->packed || touches_c)) emit_masks(g, ind, t->nv);
    vzero(g, x, sizeof x);
    for (int i = 0; i < t->rows; i++) {
        char decl[1024];
        size_t l = 0;
        for (int v = 0; v < t->nv; v++)
            l += (size_t)snprintf(decl + l, sizeof decl - l, "%sc%d_%d = %s", v ? ", " : "", i, v, x);
        line(g, ind, "%s %s;", g->vt, decl);
    }
    line(g, ind, "for (int64_t k = 0; k < %s; k++) {", t->klen);
    if (t->packed) snprintf(k_row, sizeof k_row, "k * %d", g->p->nr);
    else snprintf(k_row, sizeof k_row, "k * %lld", ldb);
    for (int v = 0; v < t->nv; v++) {
        snprintf(ptr, sizeof ptr, "pb + %s + %d", k_row, v * vl);
        vload(g, ld, sizeof ld, ptr, t->packed, t->masked && !t->packed, v);
        line(g, ind + 1, "const %s b%d = %s;", g->vt, v, ld);
    }
    for (int i = 0; i < t->rows; i++) {
        char is[16], av[32], bv[32], cv[32];
        snprintf(is, sizeof is, "%d", i);
        a_at(g, a, sizeof a, is, "k");
        vbcast(g, x, sizeof x, a);
        line(g, ind + 1, "const %s a%d = %s;", g->vt, i, x);
        for (int v = 0; v < t->nv; v++) {
            snprintf(av, sizeof av, "a%d", i), snprintf(bv, sizeof bv, "b%d", v), snprintf(cv, sizeof cv, "c%d_%d", i, v);
            vfma(g, x, sizeof x, av, bv, cv);
            line(g, ind + 1, "%s = %s;", cv, x);
        }
    }
    line(g, ind, "}");
    emit_tile_finish(g, ind, t, simd_results, true);
    line(g, ind - 1, "}");
}

static void c_results(Gen *g, int ind, const Tile *t, bool add, bool to_tile) {
    int NR = t->nv * g->p->vl;
    long long ldc = (long long)g->d->ldc;
    if (to_tile && !add) return; /* the sums are already in t */
    line(g, ind, "for (int64_t i = 0; i < %d; i++)", t->rows);
    if (t->masked) line(g, ind + 1, "for (int64_t jj = 0; jj < nr; jj++)");
    else line(g, ind + 1, "for (int64_t jj = 0; jj < %d; jj++)", NR);
    if (to_tile) line(g, ind + 2, "t[i * %d + jj] = cp[i * %lld + jj] + t[i * %d + jj];", NR, ldc, NR);
    else if (add) line(g, ind + 2, "cp[i * %lld + jj] = cp[i * %lld + jj] + t[i * %d + jj];", ldc, ldc, NR);
    else line(g, ind + 2, "cp[i * %lld + jj] = t[i * %d + jj];", ldc, NR);
}

/* The portable tile: small arrays and literal loops that compilers vectorize. */
static void emit_tile_c(Gen *g, int ind, const Tile *t) {
    int NR = t->nv * g->p->vl;
    long long ldb = (long long)g->d->ldb;
    char a[96];
    a_at(g, a, sizeof a, "i", "k");
    line(g, ind, "{");
    line(g, ind + 1, "%s t[%d] = {0};", g->T, t->rows * NR);
    line(g, ind + 1, "for (int64_t k = 0; k < %s; k++)", t->klen);
    line(g, ind + 2, "for (int64_t i = 0; i < %d; i++) {", t->rows);
    line(g, ind + 3, "const %s a = %s;", g->T, a);
    char jn[16], bk[32]; /* packed B is zero-padded: whole panels are safe to read */
    if (t->masked && !t->packed) snprintf(jn, sizeof jn, "nr");
    else snprintf(jn, sizeof jn, "%d", NR);
    if (t->packed) snprintf(bk, sizeof bk, "k * %d", NR);
    else snprintf(bk, sizeof bk, "k * %lld", ldb);
    line(g, ind + 3, "for (int64_t jj = 0; jj < %s; jj++) t[i * %d + jj] += a * pb[%s + jj];", jn, NR, bk);
    line(g, ind + 2, "}");
    emit_tile_finish(g, ind + 1, t, c_results, false);
    line(g, ind, "}");
}

/* Vector-extension tiles leave partial widths to the plain loops: the same
 * per-element arithmetic (one multiply-add expression), without masks. */
static void emit_tile(Gen *g, int ind, const Tile *t) {
    if (g->isa->kind == KIND_PLAIN || (g->isa->kind == KIND_VEC && t->masked)) emit_tile_c(g, ind, t);
    else emit_tile_simd(g, ind, t);
}

/* Full-width tiles where nr == NR can hold, masked ones where nr < NR can. */
static void emit_tile_cols(Gen *g, int ind, Tile t) {
    bool full = g->d->n >= g->p->nr, part = g->d->n % g->p->nr != 0;
    if (full && part) line(g, ind, "if (nr == %d)", g->p->nr);
    if (full) emit_tile(g, ind + part, &t);
    if (full && part) line(g, ind, "else");
    t.masked = true;
    if (part) emit_tile(g, ind + full, &t);
}

/* The A row pointer of the tile at row i, K offset kk. */
static void a_ptr(const Gen *g, char *buf, size_t n, const char *i, const char *kk) {
    if (g->d->trans_a) snprintf(buf, n, "A + %s * %lld + %s", kk, (long long)g->d->lda, i);
    else snprintf(buf, n, "A + %s * %lld + %s", i, (long long)g->d->lda, kk);
}

/* The loop over MR-row tiles from row `start` to `end`; the last M % MR rows
 * (only ever at the end of the matrix) get a tile of exactly that height. */
static void emit_row_tiles(Gen *g, int ind, const char *start, const char *end, const char *kk, const char *ccol,
                           Tile t) {
    const Plan *p = g->p;
    int rem = (int)(g->d->m % p->mr);
    char ap[96];
    a_ptr(g, ap, sizeof ap, "i0", kk);
    t.col = ccol;
    line(g, ind, "for (int64_t i0 = %s; i0 < %s; i0 += %d) {", start, end, p->mr);
    line(g, ind + 1, "const %s *restrict pa = %s;", g->T, ap);
    line(g, ind + 1, "%s *restrict cp = C + i0 * %lld + %s;", g->T, (long long)g->d->ldc, ccol);
    if (g->d->epilogue && !strcmp(t.first, "1")) line(g, ind + 1, "(void)cp; /* one K slice: C is not written */");
    if (rem) {
        line(g, ind + 1, "if (%s - i0 < %d) { /* the last %d rows */", end, p->mr, rem);
        Tile r = t;
        r.rows = rem;
        emit_tile_cols(g, ind + 2, r);
        line(g, ind + 2, "break;");
        line(g, ind + 1, "}");
    }
    t.rows = p->mr;
    emit_tile_cols(g, ind + 1, t);
    line(g, ind, "}");
}

/* ---- kernels ---- */

static void emit_pack_b(Gen *g, int ind) {
    const GemmDesc *d = g->d;
    int NR = g->p->nr;
    long long ldb = (long long)d->ldb;
    line(g, ind, "for (int64_t jr = 0; jr < nc; jr += %d) { /* B slice -> kc x %d panels, zero-padded */", NR, NR);
    line(g, ind + 1, "const int64_t nr = nc - jr < %d ? nc - jr : %d;", NR, NR);
    line(g, ind + 1, "%s *restrict d = bp + jr * kc;", g->T);
    if (!d->trans_b) {
        line(g, ind + 1, "const %s *restrict s = B + pc * %lld + jc + jr;", g->T, ldb);
        /* fixed-size memcpy: compilers inline it as vector moves (a copy loop
         * stays scalar at -O2 with some) */
        line(g, ind + 1, "if (nr == %d)", NR);
        line(g, ind + 2, "for (int64_t k = 0; k < kc; k++) memcpy(d + k * %d, s + k * %lld, sizeof(%s) * %d);", NR,
             ldb, g->T, NR);
        line(g, ind + 1, "else");
        line(g, ind + 2, "for (int64_t k = 0; k < kc; k++) {");
        line(g, ind + 3, "memcpy(d + k * %d, s + k * %lld, sizeof(%s) * (size_t)nr);", NR, ldb, g->T);
        line(g, ind + 3, "for (int64_t j = nr; j < %d; j++) d[k * %d + j] = 0;", NR, NR);
        line(g, ind + 2, "}");
    } else {
        line(g, ind + 1, "const %s *restrict s = B + (jc + jr) * %lld + pc;", g->T, ldb);
        if (g->isa->kind == KIND_AVX2 || g->isa->kind == KIND_AVX512) {
            /* full panels: register transposes of W x W blocks, 8 floats or 4 doubles */
            int W = d->dtype == DT_F64 ? 4 : 8;
            line(g, ind + 1, "if (nr == %d) {", NR);
            line(g, ind + 2, "int64_t k = 0;");
            line(g, ind + 2, "for (; k + %d <= kc; k += %d)", W, W);
            line(g, ind + 3, "for (int64_t j = 0; j < %d; j += %d)", NR, W);
            line(g, ind + 4, "etch_gemm_tr%d_%s(s + j * %lld + k, %lld, d + k * %d + j, %d);", W,
                 d->dtype == DT_F64 ? "f64" : "f32", ldb, ldb, NR, NR);
            line(g, ind + 2, "for (; k < kc; k++)");
            line(g, ind + 3, "for (int64_t j = 0; j < %d; j++) d[k * %d + j] = s[j * %lld + k];", NR, NR, ldb);
            line(g, ind + 2, "continue;");
            line(g, ind + 1, "}");
        }
        line(g, ind + 1, "for (int64_t j = 0; j < nr; j++)");
        line(g, ind + 2, "for (int64_t k = 0; k < kc; k++) d[k * %d + j] = s[j * %lld + k];", NR, ldb);
        line(g, ind + 1, "for (int64_t j = nr; j < %d; j++)", NR);
        line(g, ind + 2, "for (int64_t k = 0; k < kc; k++) d[k * %d + j] = 0;", NR);
    }
    line(g, ind, "}");
}

static void emit_blocked(Gen *g) {
    const Plan *p = g->p;
    long long K = (long long)g->d->k;
    const char *first = g->d->accumulate ? "0" : g->d->k <= p->kc ? "1" : "pc == 0";
    open_variant(g);
    line(g, 1, "for (int64_t jc = n0; jc < n1; jc += %lld) {", (long long)p->nc);
    line(g, 2, "const int64_t nc = n1 - jc < %lld ? n1 - jc : %lld;", (long long)p->nc, (long long)p->nc);
    line(g, 2, "for (int64_t pc = 0; pc < %lld; pc += %lld) {", K, (long long)p->kc);
    line(g, 3, "const int64_t kc = %lld - pc < %lld ? %lld - pc : %lld;", K, (long long)p->kc, K, (long long)p->kc);
    emit_pack_b(g, 3);
    line(g, 3, "for (int64_t ic = m0; ic < m1; ic += %lld) {", (long long)p->mc);
    line(g, 4, "const int64_t ie = m1 - ic < %lld ? m1 : ic + %lld;", (long long)p->mc, (long long)p->mc);
    /* the B panel (kc x NR) stays in L1 while the block's row tiles pass */
    line(g, 4, "for (int64_t jr = 0; jr < nc; jr += %d) {", p->nr);
    if (g->d->n % p->nr) line(g, 5, "const int64_t nr = nc - jr < %d ? nc - jr : %d;", p->nr, p->nr);
    line(g, 5, "const %s *restrict pb = bp + jr * kc;", g->T);
    Tile t = {.nv = p->nv, .packed = true, .klen = "kc", .first = first};
    emit_row_tiles(g, 5, "ic", "ie", "pc", "jc + jr", t);
    line(g, 4, "}");
    line(g, 3, "}");
    line(g, 2, "}");
    line(g, 1, "}");
    sb_puts(g->b, "}\n");
}

static void emit_direct(Gen *g) {
    const Plan *p = g->p;
    char klen[32];
    snprintf(klen, sizeof klen, "%lld", (long long)g->d->k);
    open_variant(g);
    line(g, 1, "for (int64_t j = n0; j < n1; j += %d) {", p->nr);
    if (g->d->n % p->nr) line(g, 2, "const int64_t nr = n1 - j < %d ? n1 - j : %d;", p->nr, p->nr);
    line(g, 2, "const %s *restrict pb = B + j;", g->T);
    Tile t = {.nv = p->nv, .packed = false, .klen = klen, .first = g->d->accumulate ? "0" : "1"};
    emit_row_tiles(g, 2, "m0", "m1", "0", "j", t);
    line(g, 1, "}");
    sb_puts(g->b, "}\n");
}

/* Dot-product tile: rows x cols outputs, each accumulated as a vector over k
 * (lane l sums k = l mod VL), then reduced by a fixed tree, then the K % VL
 * tail added in order: the same sequence for every element. */
static void emit_dot_tile(Gen *g, int ind, int rows, int cols) {
    const GemmDesc *d = g->d;
    int vl = g->p->vl;
    long long lda = (long long)d->lda, ldb = (long long)d->ldb, ldc = (long long)d->ldc;
    long long kv = (long long)(d->k - d->k % vl), K = (long long)d->k;
    bool plain = g->isa->kind == KIND_PLAIN;
    char x[256], y[64], z[64], w[64];
    line(g, ind, "{");
    ind++;
    line(g, ind, "const %s *restrict pa = A + i0 * %lld, *restrict pb = B + j0 * %lld;", g->T, lda, ldb);
    line(g, ind, "%s *restrict cp = C + i0 * %lld + j0;", g->T, ldc);
    if (d->epilogue) line(g, ind, "%s ep[%d]; /* the tile for the epilogue; C is not written */", g->T, rows * cols);
    if (d->epilogue) line(g, ind, "(void)cp;");
    if (plain) {
        line(g, ind, "%s s[%d][%d] = {{0}};", g->T, rows * cols, vl);
        line(g, ind, "for (int64_t k = 0; k < %lld; k += %d)", kv, vl);
        line(g, ind + 1, "for (int i = 0; i < %d; i++)", rows);
        line(g, ind + 2, "for (int j = 0; j < %d; j++)", cols);
        line(g, ind + 3, "for (int l = 0; l < %d; l++) s[i * %d + j][l] += pa[i * %lld + k + l] * pb[j * %lld + k + l];",
             vl, cols, lda, ldb);
    } else {
        vzero(g, x, sizeof x);
        for (int i = 0; i < rows * cols; i++) line(g, ind, "%s s%d = %s;", g->vt, i, x);
        line(g, ind, "for (int64_t k = 0; k < %lld; k += %d) {", kv, vl);
        for (int i = 0; i < rows; i++) {
            snprintf(y, sizeof y, "pa + %lld + k", i * lda);
            vload(g, x, sizeof x, y, false, false, 0);
            line(g, ind + 1, "const %s a%d = %s;", g->vt, i, x);
        }
        for (int j = 0; j < cols; j++) {
            snprintf(y, sizeof y, "pb + %lld + k", j * ldb);
            vload(g, x, sizeof x, y, false, false, 0);
            line(g, ind + 1, "const %s b%d = %s;", g->vt, j, x);
            for (int i = 0; i < rows; i++) {
                snprintf(y, sizeof y, "a%d", i), snprintf(z, sizeof z, "b%d", j), snprintf(w, sizeof w, "s%d", i * cols + j);
                vfma(g, x, sizeof x, y, z, w);
                line(g, ind + 1, "%s = %s;", w, x);
            }
        }
        line(g, ind, "}");
    }
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            int q = i * cols + j;
            if (plain) line(g, ind, "%s x%d = etch_gemm_hs_c%d(s[%d]);", g->T, q, vl, q);
            else line(g, ind, "%s x%d = etch_gemm_hs_%s_%s(s%d);", g->T, q, g->isa->sfx, g->sx, q);
            if (kv < K) {
                snprintf(y, sizeof y, "pa[%lld + k]", i * lda), snprintf(z, sizeof z, "pb[%lld + k]", j * ldb);
                if (g->isa->kind == KIND_AVX2 || g->isa->kind == KIND_AVX512)
                    line(g, ind, "for (int64_t k = %lld; k < %lld; k++) x%d = %s(%s, %s, x%d);", kv, K, q,
                         d->dtype == DT_F64 ? "__builtin_fma" : "__builtin_fmaf", y, z, q);
                else line(g, ind, "for (int64_t k = %lld; k < %lld; k++) x%d = x%d + %s * %s;", kv, K, q, q, y, z);
            }
            if (d->epilogue) line(g, ind, "ep[%d] = x%d;", q, q);
            else if (d->accumulate) line(g, ind, "cp[%lld] = cp[%lld] + x%d;", i * ldc + j, i * ldc + j, q);
            else line(g, ind, "cp[%lld] = x%d;", i * ldc + j, q);
        }
    if (d->epilogue) line(g, ind, "%s(ep, %d, i0, j0, %d, %d);", d->epilogue, cols, rows, cols);
    line(g, ind - 1, "}");
}

static void emit_dot_rows(Gen *g, int ind, int cols) {
    int R = g->p->mr, rem = (int)(g->d->m % R);
    line(g, ind, "for (int64_t i0 = m0; i0 < m1; i0 += %d) {", R);
    if (rem) {
        line(g, ind + 1, "if (m1 - i0 < %d) { /* the last %d rows */", R, rem);
        emit_dot_tile(g, ind + 2, rem, cols);
        line(g, ind + 2, "break;");
        line(g, ind + 1, "}");
    }
    emit_dot_tile(g, ind + 1, R, cols);
    line(g, ind, "}");
}

static void emit_dot(Gen *g) {
    int J = g->p->nr, rem = (int)(g->d->n % J);
    open_variant(g);
    line(g, 1, "for (int64_t j0 = n0; j0 < n1; j0 += %d) {", J);
    if (rem) { /* parts own multiples of J columns: a short block is the matrix's last */
        line(g, 2, "if (n1 - j0 < %d) {", J);
        emit_dot_rows(g, 3, rem);
        line(g, 3, "break;");
        line(g, 2, "}");
    }
    emit_dot_rows(g, 2, J);
    line(g, 1, "}");
    sb_puts(g->b, "}\n");
}

/* ---- per-file support, kernels, calls ---- */

static void emit_kernel(CEmitter *e, const GemmDesc *d, const char *name) {
    const char *T = dtype_c_type(d->dtype);
    Plan plans[N_ISA];
    int max_parts = 1;
    int64_t pack = 0;
    bool f64 = d->dtype == DT_F64, small = d->m * d->n * d->k <= SMALL_GEMM_MACS;
    for (int i = 0; i < (small ? 1 : N_ISA); i++) {
        plans[i] = plan_make(d, &ISAS[i], e->threads > 1 ? e->threads : 1);
        max_parts = plans[i].parts > max_parts ? plans[i].parts : max_parts;
        pack = max64(pack, plans[i].pack);
    }
    gemm_emit_support(e);
    if (max_parts > 1) gemm_emit_thread_support(e);
    StrBuf *b = e->preamble;
    const Plan *px = &plans[small ? ISA_PORTABLE : ISA_AVX2];
    sb_printf(b, "\n/* C[%lld x %lld] %s A%s B%s (K = %lld): %s kernel, %s tile %dx%d", (long long)d->m,
              (long long)d->n, d->accumulate ? "+=" : "=", d->trans_a ? "^T" : "", d->trans_b ? "^T" : "",
              (long long)d->k, MODE_NAME[px->mode], small ? "portable only (small), 16-byte" : "AVX2", px->mr, px->nr);
    if (px->mode == MODE_BLOCKED)
        sb_printf(b, ", KC %lld, MC %lld, NC %lld", (long long)px->kc, (long long)px->mc, (long long)px->nc);
    sb_printf(b, ", %d part%s", px->parts, px->parts > 1 ? "s" : "");
    if (d->epilogue) sb_printf(b, ", %s applied to each finished tile", d->epilogue);
    sb_puts(b, ". */\n");
    if (pack)
        sb_printf(b, "#define %s_pack (*(%s (*)[%d][%lld])%s) /* packed B: %lld bytes of scratch */\n", name, T, max_parts,
                  (long long)pack, cemit_scratch(e, pack * max_parts * (int64_t)dtype_size(d->dtype)), (long long)(pack * max_parts * (int64_t)dtype_size(d->dtype)));
    /* the portable variant twice (vector extensions, else plain C), then the x86 ones */
    const Isa *order[4] = {&ISAS[ISA_PORTABLE], &PLAIN_C, &ISAS[ISA_AVX2], &ISAS[ISA_AVX512]};
    const int plan_of[4] = {ISA_PORTABLE, ISA_PORTABLE, ISA_AVX2, ISA_AVX512};
    const char *before[4] = {"#if defined(ETCH_GEMM_VEC)\n", "#else\n", "#if defined(ETCH_GEMM_X86)\n", ""};
    const char *after[4] = {"", "#endif\n", "", "#endif\n"};
    for (int i = 0; i < (small ? 2 : 4); i++) {
        const Isa *isa = order[i];
        Gen g = {.b = b, .d = d, .isa = isa, .p = &plans[plan_of[i]], .T = T, .name = name};
        if (isa->kind == KIND_VEC || isa->kind == KIND_PLAIN) {
            snprintf(g.vt, sizeof g.vt, "etch_gemm_%s", f64 ? "v2d" : "v4f");
            snprintf(g.sx, sizeof g.sx, "%s", f64 ? "v2d" : "v4f");
        } else {
            snprintf(g.vt, sizeof g.vt, "__m%d%s", isa->vbytes * 8, f64 ? "d" : "");
            snprintf(g.sx, sizeof g.sx, "%s", f64 ? "pd" : "ps");
        }
        sb_puts(b, before[i]);
        if (g.p->mode == MODE_DIRECT) emit_direct(&g);
        else if (g.p->mode == MODE_DOT) emit_dot(&g);
        else emit_blocked(&g);
        sb_puts(b, after[i]);
    }
    /* the entry: pick the variant once, fan out over threads when it pays */
    sb_printf(b, "static void %s(const %s *a, const %s *b, %s *c) {\n", name, T, T, T);
    sb_printf(b, "    void (*f)(const void *, const void *, void *, int) = %s_c;\n", name);
    if (small) {
        sb_printf(b, "    int parts = %d;\n", plans[ISA_PORTABLE].parts);
    } else {
        sb_printf(b, "    int parts = %d, isa = etch_gemm_isa();\n    (void)isa;\n", plans[ISA_PORTABLE].parts);
        sb_puts(b, "#if defined(ETCH_GEMM_X86)\n");
        sb_printf(b, "    if (isa == 2) f = %s_avx512, parts = %d;\n", name, plans[ISA_AVX512].parts);
        sb_printf(b, "    if (isa == 1) f = %s_avx2, parts = %d;\n", name, plans[ISA_AVX2].parts);
        sb_puts(b, "#endif\n");
    }
    if (max_parts > 1)
        sb_puts(b, "    if (parts > 1) {\n        etch_gemm_parallel(f, a, b, c, parts);\n        return;\n    }\n");
    else
        sb_puts(b, "    (void)parts;\n");
    sb_puts(b, "    f(a, b, c, 0);\n}\n");
}

/* The whole product in C, then the epilogue over it as one tile (the paths
 * without tiles of their own: empty sums, OpenBLAS). */
static void emit_epilogue_after(CEmitter *e, const GemmDesc *d, const char *c) {
    if (d->epilogue)
        cemit_line(e, "%s(%s, %lld, 0, 0, %lld, %lld);", d->epilogue, c, (long long)d->ldc, (long long)d->m,
                   (long long)d->n);
}

void gemm_emit(CEmitter *e, const GemmDesc *d, const char *a, const char *b, const char *c) {
    assert(!(d->epilogue && d->accumulate));
    if (d->m == 0 || d->n == 0) return;
    if (d->k == 0) { /* an empty sum */
        if (d->accumulate) return;
        char i[16], j[16];
        cemit_for(e, i, sizeof i, d->m);
        cemit_for(e, j, sizeof j, d->n);
        cemit_line(e, "(%s)[%s * %lld + %s] = 0;", c, i, (long long)d->ldc, j);
        cemit_close(e);
        cemit_close(e);
        emit_epilogue_after(e, d, c);
        return;
    }
    if (e->blas) { /* --blas=openblas: the library call, same operands and layout */
        if (cemit_define_once(e, "<cblas.h>")) sb_puts(e->preamble, "#include <cblas.h>\n\n");
        bool f32 = d->dtype == DT_F32;
        cemit_line(e, "cblas_%cgemm(CblasRowMajor, %s, %s, %lld, %lld, %lld, %s, %s, %lld, %s, %lld, %s, %s, %lld);",
                   f32 ? 's' : 'd', d->trans_a ? "CblasTrans" : "CblasNoTrans", d->trans_b ? "CblasTrans" : "CblasNoTrans",
                   (long long)d->m, (long long)d->n, (long long)d->k, f32 ? "1.0f" : "1.0", a, (long long)d->lda, b,
                   (long long)d->ldb, d->accumulate ? (f32 ? "1.0f" : "1.0") : (f32 ? "0.0f" : "0.0"), c,
                   (long long)d->ldc);
        emit_epilogue_after(e, d, c);
        return;
    }
    char name[256];
    gemm_kernel_name(name, sizeof name, d);
    if (cemit_define_once(e, name)) emit_kernel(e, d, name);
    cemit_line(e, "%s(%s, %s, %s);", name, a, b, c);
}
