/* conv.c: RNNF_OP_CONV (1-D and 2-D, any strides, dilations, pads and groups) and RNNF_OP_CONV_TRANSPOSE (1-D).
 *
 * A convolution is a GEMM between the weights [M/group][C/group*Kh*Kw] and the input's patches. Where output
 * rows are long enough to fill 16-wide panels, it is an implicit GEMM (the kernel table's gemm_offsets): the
 * input rows a task reads are staged once with their zero padding, and the microkernel reads each tap's 16
 * positions straight from the staged row, so no patch is ever copied (the gather took a quarter to a half of a
 * 16-channel 3x3 conv's time, and most of a 1-channel one's). Otherwise it is gemm_packed in one of two
 * orientations; the three are picked per call from the shapes, with the gather's cost counted:
 *  - positions as columns: the patches are gathered straight into packed panels of 16 output positions
 *    (im2col and packing in one pass) and multiplied by the weights as given, writing the NCHW output directly.
 *    Right when there are many output positions (images, long signals).
 *  - positions as rows: the weights, transposed and packed at load, are the panels, and each output position's
 *    patch is a row of A. Right for a streaming chunk of a few frames (L = 4: the first orientation would
 *    fill a quarter of every panel) and for a 1-input-channel front end whose strided patches are read from
 *    the input itself, with no gather. The result is transposed into place.
 * All give each output one FMA chain over the same patch order, so they agree to the bit. With padding, the
 * input a task reads is first copied with its zero border into scratch, so the patch gather has no bounds
 * checks. Depthwise convs (one input channel per group) have a reduction of only Kh*Kw: they skip the GEMM
 * and run each tap as one long vectorized pass over a band of output rows (conv_task_depthwise).
 *
 * A 2-D 3x3 conv with unit strides and dilations and at least WINO_MIN_C input channels per group may instead run
 * as Winograd F(2x2, 3x3) (conv_task_wino), when its cost model says it pays: each 4x4 input tile is transformed,
 * the 16 transformed positions are 16 GEMMs [Mg][Cg] x [Cg][tiles] through gemm_offsets (2.25x fewer multiply-adds
 * than the direct conv), and the products are transformed back to 2x2 outputs with the bias and activation. The
 * transforms are adds and subtractions only (kernel table: wino2_in, wino2_out), the weights' transform is done
 * once at load in double. Its error stays that of the direct conv (float64 reference, 16-64 channels of
 * conv-scale weights: max abs 4-8e-7 against 1.2-2.0e-6 for a direct sum); larger tiles do not hold the
 * tolerance the tests hold results to (wino_possible). Like any Winograd conv it differs from the direct sum on
 * infinite inputs (Inf - Inf in the transforms gives NaN where the direct sum gives +-Inf) and may overflow within
 * ~4x of FLT_MAX.
 *
 * A MaxPool 2x2 stride 2 after the conv may be fused (graph/fuse.py): a Winograd tile is one pool window
 * (wino2_out_pool), the implicit GEMM computes row pairs and pools them in registers (gemm_offsets_pool), and the
 * other modes write whole planes to the scratch and pool them after; every path folds as the MAXPOOL op does.
 *
 * Work is cut into tasks (image, group, block of positions or tiles) from the shapes alone; bias and activation
 * run per task on fixed segments, so any thread count gives the same bits.
 *
 * ConvTranspose: per group, the transposed weights (packed at load as rows [(m, k)][C/group]) times the input
 * packed as panels give every (m, k, l) product sum; these are then scattered into y[m][l*stride + k*dil - pad].
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "graph/graph.h"

#define UB RNNF_UB
#define COL_BLOCK_FLOATS 32768 /* one task's patch panels (128 KiB): L2-resident while the weights stream by */
#define ROW_BLOCK_FLOATS 32768 /* the same bound for the positions-as-rows orientation's patch rows */
#define MAX_ROWS 96
#define BAND_FLOATS 4096 /* depthwise: a band of padded input rows (16 KiB) stays in L1 across the taps */
#define MIN_TASKS 4
#define PAR_MIN_FMAS 200000 /* below this a parallel region's start-up (several us) costs more than it saves */
#define MAX_ATTR (1 << 24)
#define MAX_KW_PHASE 64 /* kernel widths up to this get phase-split stages for column strides > 1 */
#define IMPL_STAGE_FLOATS 32768 /* implicit GEMM: one task's staged input rows (128 KiB), L2-resident */
/* The im2col gather per (position, k), in GEMM cost units (one unit: an FMA lane, 1/32 cycle), fitted on this
 * file's shapes: whole 16-position runs along an output row are vector copies (GATHER_RUN), a run cut by a row
 * end is copied float by float (GATHER_RUN + GATHER_CUT). The rows orientation's gather is always the latter. */
#define GATHER_RUN 4
#define GATHER_CUT 16
/* Winograd F(2x2, 3x3) is considered from this many input channels per group: its GEMM has 16/9 of the weights
 * per tile of 4 outputs (2.25x fewer multiply-adds), but each tile's transforms cost about WINO_IN (per input
 * channel) and WINO_OUT (per output channel) GEMM units, and its 16 short GEMMs about WINO_FIXED per weight of
 * the group, which a thin reduction does not amortize. Fitted on 16 shapes from 8 to 64 channels and 4x4 to
 * 40x64 outputs (predicted against measured time ratios to the other modes: within ~10% where it matters). */
#define WINO_MIN_C 8
#define WINO_IN 96
#define WINO_OUT 96
#define WINO_FIXED 128
/* A task's tiles: 64 (measured best from 16 to 128 channels: 16 tiles took 15% longer with 64 channels), fewer
 * when their transformed input and products would pass WINO_BLOCK_FLOATS (512 KiB). */
#define WINO_TILES 64
#define WINO_BLOCK_FLOATS 131072

void rnnf_pack_b_strided(const float *b, int64_t K, int64_t N, int64_t ldk, int64_t ldn, float *dst);

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }
static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static rnnf_status fail(char *msg, rnnf_status st, const char *text, long long a, long long b, long long c)
{
    if (msg) snprintf(msg, RNNF_ERROR_MESSAGE_SIZE, text, a, b, c);
    return st;
}

static int threads_for(int n_threads, double fmas, int64_t tasks)
{
#ifdef _OPENMP
    if (fmas < PAR_MIN_FMAS || tasks < 2) return 1;
    return n_threads < tasks ? n_threads : (int)tasks;
#else
    (void)n_threads;
    (void)fmas;
    (void)tasks;
    return 1;
#endif
}

static void apply_act(int act, float alpha, float beta, float *y, int64_t n)
{
    if (act != RNNF_UN_NONE && act != RNNF_UN_IDENTITY) rnnf_unary_apply(act, alpha, beta, y, y, n);
}

/* The first j in [0, n) with 0 <= off + j*s, and one past the last with off + j*s < len. */
static void valid_range(int64_t off, int64_t s, int64_t len, int64_t n, int64_t *lo, int64_t *hi)
{
    int64_t a = off >= 0 ? 0 : cdiv(-off, s);
    int64_t b = len - 1 - off < 0 ? 0 : (len - 1 - off) / s + 1;
    if (b > n) b = n;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

/* ---- Conv ---- */

enum { MODE_DEPTHWISE = 0, MODE_COLS, MODE_ROWS, MODE_IMPLICIT, MODE_WINO };

typedef struct {
    int ns, G, act;
    int64_t kh, kw, sh, sw, dh, dw, ph, pw, phe, pwe; /* 1-D: the H entries are 1, 1, 1, 0, 0 */
    float alpha, beta;
    int64_t M, Mg, Cg, CK, npm; /* npm: panels of Mg output channels */
    int depthwise;
    int pool; /* 1: a MaxPool 2x2 stride 2 of the activated output is fused (graph.h) */
    const float *w; /* [M][CK], as given: a copy, or with a pool the graph's constant itself */
    float *wt;   /* per group, W_g^T packed: npm panels of [CK][UB]; NULL for depthwise */
    float *bias; /* [M] when constant at load */
    float *wu;   /* Winograd F(2x2, 3x3): per group and position p < 16, U_p = (G w G^T)_p as [Mg][Cg]; or NULL */
} conv_prep;

typedef struct {
    int64_t N, C, H, W, Ho, Wo, L;
    int mode;
    int64_t np, pb, nblk;  /* positions as columns: position panels, panels per task, tasks per (n, g) */
    int64_t rb, nrb;       /* positions as rows: rows per task, tasks per (n, g) */
    int64_t ob, nob;       /* implicit: output rows per task, tasks per (n, g) */
    int64_t th, tw, tb, ntb; /* Winograd: tile rows and columns, tiles per task, tasks per (n, g) */
    int64_t ncb, ldv, ldx;   /* Winograd: tasks per tile row (0: runs of whole rows), V's and the stage's rows */
    int64_t ldpv, ldpy;      /* Winograd: V's and Y's position strides */
    int direct;            /* rows read in place from the input (positions as rows: 1 input channel, 1-D,
                              dilation 1; depthwise: 1-D without padding) */
    int64_t Wp, Wz, band;  /* depthwise: padded row width (a multiple of sw), Wp / sw, output rows per band */
    int64_t set_rows;      /* depthwise: staged rows per row set */
    size_t stage_bytes;
    int64_t tasks;
    double fmas;
    int64_t Hq, Wq;        /* pooled output (pool): Ho / 2, Wo / 2 */
    size_t off_full;       /* pool in the modes that write whole outputs first: where they go in the scratch */
    size_t off_bias, off_thread, thread_bytes, total;
} conv_geom;

/* Winograd F(2x2, 3x3) needs a 2-D 3x3 kernel with unit strides and dilations; it is kept for reductions deep
 * enough to pay for its transforms (any pads and groups). Larger tiles lose too much accuracy to the float32 sums
 * of the position products. bench/winograd_tiles.py emulates each in float32 against the float64 conv on the
 * crnn's conv2 and on random 8-64 channel layers, as max |err| / (atol + rtol |y|) under the tests' tolerance
 * (1 fails): F(2x2) 0.19-0.52 (a direct float32 sum 0.19-0.51); F(2, 3) x F(4, 3), 3 products per output
 * instead of 4, 0.35-1.33 with the best points found ({0, +-1, 1/2, -2} or {0, +-1, -1/2, 2}), over 1 at 64
 * channels and 0.7-0.9 at 16-32; F(2, 3) x F(3, 3) 0.42-1.08; F(3x3) 0.98-2.65; F(4x4) 1.15-6.5. */
static int wino_possible(const conv_prep *p)
{
    return p->ns == 2 && p->kh == 3 && p->kw == 3 && p->sh == 1 && p->sw == 1 && p->dh == 1 && p->dw == 1 &&
           !p->depthwise && p->Cg >= WINO_MIN_C;
}

static void conv_release(rnnf_gnode *node)
{
    conv_prep *p = node->prep;
    if (p) {
        rnnf_mem_free(node->pool, (void *)(uintptr_t)p->w);
        rnnf_mem_free(node->pool, p->wt);
        rnnf_mem_free(node->pool, p->bias);
        rnnf_mem_free(node->pool, p->wu);
        rnnf_mem_free(node->pool, p);
    }
    node->prep = NULL;
}

/* Winograd weights, transformed in double and rounded once: U_p[m][c] = sum_kl G[a][k] w[m][c][k][l] G[b][l],
 * p = 4a + b, G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]. */
static void wino_weights(const conv_prep *p, float *u)
{
    static const double Gm[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    const int64_t Mg = p->Mg, Cg = p->Cg;
    for (int64_t gi = 0; gi < p->G; gi++)
        for (int64_t m = 0; m < Mg; m++)
            for (int64_t c = 0; c < Cg; c++) {
                const float *w = p->w + (size_t)(((gi * Mg + m) * Cg + c) * 9);
                double t[4][3]; /* G w */
                for (int a = 0; a < 4; a++)
                    for (int l = 0; l < 3; l++)
                        t[a][l] = Gm[a][0] * w[l] + Gm[a][1] * w[3 + l] + Gm[a][2] * w[6 + l];
                for (int a = 0; a < 4; a++)
                    for (int b = 0; b < 4; b++)
                        u[(size_t)(((gi * 16 + 4 * a + b) * Mg + m) * Cg + c)] =
                            (float)(t[a][0] * Gm[b][0] + t[a][1] * Gm[b][1] + t[a][2] * Gm[b][2]);
            }
}

static rnnf_status conv_prepare(rnnf_gnode *node, const rnnf_tensor *ci, char *msg)
{
    node->prep = NULL;
    if (node->n_in < 2 || node->n_in > 3 || node->n_out != 1)
        return fail(msg, RNNF_ERR_FORMAT, "conv: expects 2 or 3 inputs and 1 output, got %lld and %lld", node->n_in,
                    node->n_out, 0);
    if (node->n_iattr < 11 || node->n_iattr > 12 || node->n_fattr < 2)
        return fail(msg, RNNF_ERR_FORMAT, "conv: expects 11 or 12 integer and 2 float attributes, got %lld and %lld",
                    node->n_iattr, node->n_fattr, 0);
    const int64_t *ia = node->iattr;
    const int64_t ns = ia[0];
    if (ns != 1 && ns != 2)
        return fail(msg, RNNF_ERR_UNSUPPORTED, "conv: %lld spatial dimensions (1 or 2 supported)", ns, 0, 0);
    if (ia[1] < 1 || ia[1] > MAX_ATTR) return fail(msg, RNNF_ERR_FORMAT, "conv: group %lld", ia[1], 0, 0);
    for (int d = 0; d < ns; d++) {
        if (ia[2 + d] < 1 || ia[2 + d] > MAX_ATTR)
            return fail(msg, RNNF_ERR_FORMAT, "conv: stride %lld", ia[2 + d], 0, 0);
        if (ia[4 + d] < 1 || ia[4 + d] > MAX_ATTR)
            return fail(msg, RNNF_ERR_FORMAT, "conv: dilation %lld", ia[4 + d], 0, 0);
        if (ia[6 + d] < 0 || ia[6 + d] > MAX_ATTR || ia[8 + d] < 0 || ia[8 + d] > MAX_ATTR)
            return fail(msg, RNNF_ERR_FORMAT, "conv: pads %lld and %lld", ia[6 + d], ia[8 + d], 0);
    }
    if (ia[10] < 0 || ia[10] >= RNNF_UN_COUNT)
        return fail(msg, RNNF_ERR_FORMAT, "conv: unknown activation %lld", ia[10], 0, 0);
    const int64_t pool = node->n_iattr > 11 ? ia[11] : 0;
    if (pool < 0 || pool > 1)
        return fail(msg, RNNF_ERR_FORMAT, "conv: unknown fused pool %lld (0 none, 1 MaxPool 2x2 stride 2)", pool, 0, 0);
    if (pool && (ns != 2 || (ia[10] != RNNF_UN_NONE && ia[10] != RNNF_UN_IDENTITY && ia[10] != RNNF_UN_RELU)))
        return fail(msg, RNNF_ERR_UNSUPPORTED, "conv: a fused MaxPool needs a 2-D conv and no activation or Relu "
                    "(%lld spatial dimensions, activation %lld)", ns, ia[10], 0);
    const rnnf_tensor *w = &ci[1];
    if (!w->data) return fail(msg, RNNF_ERR_UNSUPPORTED, "conv: the weights must be a constant", 0, 0, 0);
    if (w->dtype != RNNF_DT_F32) return fail(msg, RNNF_ERR_UNSUPPORTED, "conv: float32 weights only", 0, 0, 0);
    if (w->rank != 2 + ns)
        return fail(msg, RNNF_ERR_FORMAT, "conv: weights of rank %lld for %lld spatial dimensions", w->rank, ns, 0);
    for (int i = 0; i < w->rank; i++)
        if (w->dims[i] < 1 || w->dims[i] > MAX_ATTR)
            return fail(msg, RNNF_ERR_FORMAT, "conv: weight dimension %lld is %lld", i, w->dims[i], 0);
    const int64_t G = ia[1], M = w->dims[0];
    if (M % G) return fail(msg, RNNF_ERR_FORMAT, "conv: group %lld does not divide %lld output channels", G, M, 0);
    const rnnf_tensor *b = node->n_in > 2 ? &ci[2] : NULL;
    if (b && b->data && (b->dtype != RNNF_DT_F32 || rnnf_tensor_numel(b) != M))
        return fail(msg, RNNF_ERR_FORMAT, "conv: a bias of %lld values for %lld output channels", rnnf_tensor_numel(b),
                    M, 0);

    conv_prep *p = rnnf_mem_alloc_raw(node->pool, sizeof(conv_prep));
    if (!p) return fail(msg, RNNF_ERR_NOMEM, "conv: out of memory", 0, 0, 0);
    memset(p, 0, sizeof(*p));
    p->ns = (int)ns;
    p->G = (int)G;
    p->act = (int)ia[10];
    p->pool = (int)pool;
    p->alpha = node->fattr[0];
    p->beta = node->fattr[1];
    if (ns == 1) {
        p->kh = p->sh = p->dh = 1;
        p->kw = w->dims[2];
        p->sw = ia[2];
        p->dw = ia[4];
        p->pw = ia[6];
        p->pwe = ia[8];
    } else {
        p->kh = w->dims[2];
        p->kw = w->dims[3];
        p->sh = ia[2];
        p->sw = ia[3];
        p->dh = ia[4];
        p->dw = ia[5];
        p->ph = ia[6];
        p->pw = ia[7];
        p->phe = ia[8];
        p->pwe = ia[9];
    }
    p->M = M;
    p->Mg = M / G;
    p->Cg = w->dims[1];
    p->CK = p->Cg * p->kh * p->kw;
    p->npm = cdiv(p->Mg, UB);
    p->depthwise = p->Cg == 1 && G > 1;
    if (p->CK > INT_MAX / UB || p->M * p->CK > (int64_t)1 << 40) {
        rnnf_mem_free(node->pool, p);
        return fail(msg, RNNF_ERR_FORMAT, "conv: weights of %lld x %lld are too large", p->M, p->CK, 0);
    }
    const size_t wn = (size_t)p->M * (size_t)p->CK;
    /* a pool's graph keeps its constants as long as itself (graph.c): read the weights there, not a copy */
    float *w_copy = node->pool ? NULL : rnnf_mem_alloc_raw(node->pool, wn * sizeof(float));
    p->w = node->pool ? (const float *)w->data : w_copy;
    if (!p->depthwise)
        p->wt = rnnf_mem_alloc_raw(node->pool, (size_t)G * (size_t)p->npm * UB * (size_t)p->CK * sizeof(float));
    if (b && b->data) p->bias = rnnf_mem_alloc_raw(node->pool, (size_t)M * sizeof(float));
    if (!p->w || (!p->depthwise && !p->wt) || (b && b->data && !p->bias)) {
        node->prep = p;
        conv_release(node);
        return fail(msg, RNNF_ERR_NOMEM, "conv: out of memory", 0, 0, 0);
    }
    if (w_copy) memcpy(w_copy, w->data, wn * sizeof(float));
    if (p->wt)
        for (int64_t g = 0; g < G; g++)
            rnnf_pack_b_strided(p->w + (size_t)(g * p->Mg * p->CK), p->CK, p->Mg, 1, p->CK,
                                p->wt + (size_t)(g * p->npm) * UB * (size_t)p->CK);
    if (p->bias) memcpy(p->bias, b->data, (size_t)M * sizeof(float));
    if (wino_possible(p)) {
        p->wu = rnnf_mem_alloc_raw(node->pool, (size_t)16 * wn / 9 * sizeof(float));
        if (!p->wu) {
            node->prep = p;
            conv_release(node);
            return fail(msg, RNNF_ERR_NOMEM, "conv: out of memory", 0, 0, 0);
        }
        wino_weights(p, p->wu);
    }
    node->prep = p;
    return RNNF_OK;
}

static rnnf_status out_len(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe, int64_t *out)
{
    const int64_t e = in + pb + pe - d * (k - 1) - 1;
    if (e < 0) return RNNF_ERR_SHAPE;
    *out = e / s + 1;
    return RNNF_OK;
}

/* Padded rows and columns that positions [la, lb) read. A block within one output row reads a window of
 * columns; one spanning several rows reads them whole. */
static void stage_region(const conv_prep *p, const conv_geom *g, int64_t la, int64_t lb, int64_t *r0, int64_t *r1,
                         int64_t *c0, int64_t *c1)
{
    const int64_t oha = la / g->Wo, ohb = (lb - 1) / g->Wo;
    *r0 = oha * p->sh;
    *r1 = ohb * p->sh + (p->kh - 1) * p->dh + 1;
    if (oha == ohb) {
        *c0 = (la % g->Wo) * p->sw;
        *c1 = ((lb - 1) % g->Wo) * p->sw + (p->kw - 1) * p->dw + 1;
    } else {
        *c0 = 0;
        *c1 = (g->Wo - 1) * p->sw + (p->kw - 1) * p->dw + 1;
    }
}

/* Whether staged rows are split into column-stride phases (see stage_input); the gather keeps one offset per
 * tap for that, on the stack. */
static int phase_split(const conv_prep *p) { return p->sw > 1 && p->kw <= MAX_KW_PHASE; }

/* Whether a task's input is staged: with padding (so the gather needs no bounds checks) or a column stride
 * (so the gather reads contiguous runs). */
static int staged(const conv_prep *p) { return (p->ph | p->pw | p->phe | p->pwe) != 0 || phase_split(p); }

/* Floats the staged region of one task takes at most (its columns rounded up to whole phases). */
static int64_t stage_floats(const conv_prep *p, const conv_geom *g)
{
    if (!staged(p)) return 0;
    const int64_t span = min64(g->pb * UB, g->Wo);
    int64_t best = ((p->kh - 1) * p->dh + 1) * ((span - 1) * p->sw + (p->kw - 1) * p->dw + p->sw);
    if (g->Ho > 1) {
        const int64_t rows = min64(g->Ho, (g->pb * UB + g->Wo - 2) / g->Wo + 1);
        best = max64(best, ((rows - 1) * p->sh + (p->kh - 1) * p->dh + 1) *
                               ((g->Wo - 1) * p->sw + (p->kw - 1) * p->dw + p->sw));
    }
    return p->Cg * best;
}

/* Implicit GEMM: the staged row length (whole output rows, phase-split for a column stride). */
static int64_t impl_ldr(const conv_prep *p, const conv_geom *g)
{
    const int64_t nph = phase_split(p) ? p->sw : 1, reach = (g->Wo - 1) * p->sw + (p->kw - 1) * p->dw + 1;
    return nph * cdiv(reach, nph);
}

/* The implicit GEMM reads 16 consecutive positions of an output row from 16 consecutive staged floats per tap:
 * column stride 1, or a phase-split stage. Its offsets are int32. */
static int impl_possible(const conv_prep *p, const conv_geom *g)
{
    if (p->depthwise || (p->sw > 1 && !phase_split(p))) return 0;
    const int64_t ext = (p->kh - 1) * p->dh + 1;
    return (double)p->Cg * (double)impl_ldr(p, g) * (double)(ext + p->sh) < (double)(INT32_MAX / 4);
}

/* A fused pool in the modes that write whole output planes: they go to the scratch first, then are pooled. */
static void add_full(const conv_prep *p, conv_geom *g)
{
    if (!p->pool) return;
    g->off_full = g->total;
    g->total += align64((size_t)(g->N * p->M * g->L) * sizeof(float));
}

static rnnf_status conv_geom_of(const rnnf_gnode *node, const rnnf_tensor *in, const rnnf_tensor *out, int n_threads,
                                conv_geom *g, char *msg)
{
    const conv_prep *p = node->prep;
    const rnnf_tensor *x = &in[0], *y = &out[0];
    memset(g, 0, sizeof(*g));
    if (!p) return fail(msg, RNNF_ERR_ARG, "conv: not prepared", 0, 0, 0);
    if (x->dtype != RNNF_DT_F32 || y->dtype != RNNF_DT_F32)
        return fail(msg, RNNF_ERR_UNSUPPORTED, "conv: float32 only", 0, 0, 0);
    if (x->rank != 2 + p->ns || y->rank != 2 + p->ns)
        return fail(msg, RNNF_ERR_SHAPE, "conv: input of rank %lld, output of rank %lld for %lld spatial dimensions",
                    x->rank, y->rank, p->ns);
    if (node->n_in > 2 && in[2].dtype != RNNF_DT_NONE && !p->bias &&
        (in[2].dtype != RNNF_DT_F32 || rnnf_tensor_numel(&in[2]) != p->M))
        return fail(msg, RNNF_ERR_SHAPE, "conv: a bias of %lld values for %lld output channels",
                    rnnf_tensor_numel(&in[2]), p->M, 0);
    g->N = x->dims[0];
    g->C = x->dims[1];
    g->H = p->ns == 2 ? x->dims[2] : 1;
    g->W = x->dims[1 + p->ns];
    if (g->C != p->Cg * p->G)
        return fail(msg, RNNF_ERR_SHAPE, "conv: %lld input channels, the weights expect %lld (group %lld)", g->C,
                    p->Cg * p->G, p->G);
    int64_t ho = 1, wo;
    if ((p->ns == 2 && out_len(g->H, p->kh, p->sh, p->dh, p->ph, p->phe, &ho) != RNNF_OK) ||
        out_len(g->W, p->kw, p->sw, p->dw, p->pw, p->pwe, &wo) != RNNF_OK)
        return fail(msg, RNNF_ERR_SHAPE, "conv: an input of %lld x %lld is smaller than the dilated kernel", g->H,
                    g->W, 0);
    g->Ho = ho;
    g->Wo = wo;
    g->Hq = p->pool ? ho / 2 : ho;
    g->Wq = p->pool ? wo / 2 : wo;
    if (y->dims[0] != g->N || y->dims[1] != p->M || (p->ns == 2 && y->dims[2] != g->Hq) ||
        y->dims[1 + p->ns] != g->Wq)
        return fail(msg, RNNF_ERR_SHAPE,
                    p->pool ? "conv: the output's dims are not the max-pooled convolution's (%lld x %lld positions)"
                            : "conv: the output's dims are not the convolution's (%lld x %lld positions)",
                    g->Hq, g->Wq, 0);
    g->L = ho * wo;
    if (g->L > INT_MAX - UB || g->H * g->W > ((int64_t)1 << 40))
        return fail(msg, RNNF_ERR_SHAPE, "conv: %lld output positions is too many", g->L, 0, 0);
    g->fmas = (double)g->N * (double)p->M * (double)g->L * (double)p->CK;
    if (g->N == 0 || g->L == 0) return RNNF_OK;

    const int64_t G = p->G, L = g->L;
    const size_t ths = (size_t)(n_threads > 0 ? n_threads : 1);
    if (p->depthwise) {
        g->mode = MODE_DEPTHWISE;
        g->tasks = g->N * p->M;
        const int64_t reach = (wo - 1) * p->sw + (p->kw - 1) * p->dw + 1;
        g->Wp = (reach + p->sw - 1) / p->sw * p->sw;
        g->Wz = g->Wp / p->sw;
        g->direct = p->ns == 1 && p->pw == 0 && reach <= g->W;
        /* band rows: the stage (shared rows for row stride 1, a row set per kh otherwise) within BAND_FLOATS */
        const int64_t extra = (p->kh - 1) * p->dh, sets = p->sh == 1 ? 1 : p->kh;
        g->band = p->sh == 1 ? BAND_FLOATS / g->Wp - extra : BAND_FLOATS / (g->Wp * sets);
        g->band = min64(max64(g->band, 1), ho);
        g->set_rows = p->sh == 1 ? g->band + extra : g->band;
        g->stage_bytes = g->direct ? 0 : align64((size_t)(sets * g->set_rows * g->Wp) * sizeof(float));
        g->off_thread = 0;
        g->thread_bytes = g->stage_bytes + align64((size_t)(g->band * g->Wz) * sizeof(float));
        g->total = ths * g->thread_bytes;
        add_full(p, g);
        return RNNF_OK;
    }
    g->np = cdiv(L, UB);
    const int64_t cost_cols = p->Mg * g->np * UB, cost_rows = L * p->npm * UB;
    g->mode = 5 * cost_rows < 4 * cost_cols ? MODE_ROWS : MODE_COLS;
    /* the chosen orientation's cost per unit of the reduction, its gather counted */
    const int rows_direct = p->Cg == 1 && p->ns == 1 && p->dw == 1;
    /* the share of positions in panels cut by a row end: none, all, or about one panel per row */
    const double cut = g->Wo % UB == 0 ? 0.0 : g->Wo < UB ? 1.0 : (double)UB / (double)g->Wo;
    double cost = g->mode == MODE_COLS ? (double)cost_cols + (GATHER_RUN + GATHER_CUT * cut) * (double)L
                                       : (double)cost_rows + (rows_direct ? 0.0 : (GATHER_RUN + GATHER_CUT) * (double)L);
    if (impl_possible(p, g)) {
        /* each output row's last panel is padded to UB */
        const double cost_impl = (double)(p->Mg * g->Ho * cdiv(g->Wo, UB) * UB);
        if (cost_impl <= cost) {
            g->mode = MODE_IMPLICIT;
            cost = cost_impl;
        }
    }
    if (p->wu) {
        /* 16 products of [Mg][Cg] per tile (tiles padded to whole panels), the transforms and the calls, per
         * unit of CK */
        const int64_t tiles = cdiv(ho, 2) * cdiv(wo, 2);
        const double cost_wino = (16.0 * (double)(p->Mg * p->Cg * cdiv(tiles, UB) * UB) +
                                  (double)tiles * (double)(p->Cg * WINO_IN + p->Mg * WINO_OUT) +
                                  (double)WINO_FIXED * (double)(p->Mg * p->Cg)) /
                                 (double)p->CK;
        if (cost_wino < cost) g->mode = MODE_WINO;
    }
    if (g->mode == MODE_WINO) {
        g->th = cdiv(ho, 2);
        g->tw = cdiv(wo, 2);
        const int64_t tiles = g->th * g->tw;
        g->fmas = 16.0 * (double)g->N * (double)G * (double)(p->Mg * p->Cg) * (double)tiles;
        g->tb = min64(max64(WINO_BLOCK_FLOATS / (16 * (p->Cg + p->Mg)) / UB * UB, UB), WINO_TILES);
        /* a task is a run of tiles in row-major order, or (rows wider than a task) a segment of one tile row */
        const int64_t span = g->tw <= g->tb ? tiles : g->tw;
        if (g->fmas >= PAR_MIN_FMAS)
            while (g->tb > UB && g->N * G * (tiles / span) * cdiv(span, g->tb) < MIN_TASKS)
                g->tb = max64(cdiv(g->tb / 2, UB) * UB, UB);
        g->ntb = cdiv(span, g->tb);
        g->tb = min64(cdiv(cdiv(span, g->ntb), UB) * UB, span); /* balanced, whole panels */
        g->ntb = cdiv(span, g->tb);
        g->ncb = span == tiles ? 0 : g->ntb;
        if (span != tiles) g->ntb *= g->th;
        g->tasks = g->N * G * g->ntb;
        g->ldv = cdiv(g->tb + 7, UB) * UB; /* the input transform may write 7 entries past a task's tiles */
        /* one panel more than the positions' [Cg][ldv] and [Mg][ldv]: the transforms touch all 16 positions at
         * once, and a stride of a multiple of 4 KiB between them put them all in one set of L1 (the transforms
         * ran 3x slower) */
        g->ldpv = p->Cg * g->ldv + UB;
        g->ldpy = p->Mg * g->ldv + UB;
        /* the stage: every padded input row the task's tile rows read, split into even and odd columns */
        const int64_t trows = g->ncb ? 1 : min64(g->th, (g->tb + g->tw - 2) / g->tw + 1);
        g->ldx = 2 * ((g->ncb ? g->tb : g->tw) + 1);
        g->off_thread = 0;
        g->stage_bytes = align64((size_t)(p->Cg * (2 * trows + 2) * g->ldx) * sizeof(float));
        g->thread_bytes = g->stage_bytes + align64((size_t)(16 * g->ldpv) * sizeof(float)) +
                          align64((size_t)(16 * g->ldpy) * sizeof(float)) +
                          align64((size_t)p->Cg * sizeof(int32_t));
    } else if (g->mode == MODE_IMPLICIT) {
        const int64_t ldr = impl_ldr(p, g), row_floats = p->Cg * ldr, ext = (p->kh - 1) * p->dh + 1;
        g->ob = min64(max64((IMPL_STAGE_FLOATS / row_floats - ext) / p->sh + 1, 1), g->Ho);
        if (g->fmas >= PAR_MIN_FMAS)
            while (g->ob > 1 && g->N * G * cdiv(g->Ho, g->ob) < MIN_TASKS) g->ob = cdiv(g->ob, 2);
        g->nob = cdiv(g->Ho, g->ob);
        g->ob = cdiv(g->Ho, g->nob); /* balanced */
        g->ob += p->pool && (g->ob & 1); /* a fused pool's row pairs stay within a task */
        g->nob = cdiv(g->Ho, g->ob);
        g->tasks = g->N * G * g->nob;
        g->off_thread = 0;
        g->stage_bytes = align64((size_t)(row_floats * ((g->ob - 1) * p->sh + ext) + UB) * sizeof(float));
        g->thread_bytes = g->stage_bytes + align64((size_t)p->CK * sizeof(int32_t));
    } else if (g->mode == MODE_COLS) {
        g->pb = min64(max64(COL_BLOCK_FLOATS / (p->CK * UB), 1), g->np);
        if (g->fmas >= PAR_MIN_FMAS)
            while (g->pb > 1 && g->N * G * cdiv(g->np, g->pb) < MIN_TASKS) g->pb = cdiv(g->pb, 2);
        g->nblk = cdiv(g->np, g->pb);
        g->pb = cdiv(g->np, g->nblk); /* the same number of panels in every block */
        g->tasks = g->N * G * g->nblk;
        g->off_thread = 0;
        g->thread_bytes = align64((size_t)g->pb * UB * (size_t)p->CK * sizeof(float)) +
                          align64((size_t)p->Mg * UB * sizeof(float)) +
                          align64((size_t)stage_floats(p, g) * sizeof(float));
    } else {
        g->direct = p->Cg == 1 && p->ns == 1 && p->dw == 1;
        g->rb = min64(max64(ROW_BLOCK_FLOATS / p->CK / 6 * 6, 6), MAX_ROWS);
        if (g->fmas >= PAR_MIN_FMAS)
            while (g->rb > 6 && g->N * G * cdiv(L, g->rb) < MIN_TASKS) g->rb = max64(g->rb / 2 / 6 * 6, 6);
        g->nrb = cdiv(L, min64(g->rb, L));
        g->rb = min64(cdiv(cdiv(L, g->nrb), 6) * 6, L); /* balanced blocks, whole microkernel row groups */
        g->nrb = cdiv(L, g->rb);
        g->tasks = g->N * G * g->nrb;
        g->off_bias = 0;
        g->off_thread = align64((size_t)G * (size_t)p->npm * UB * sizeof(float));
        g->thread_bytes = align64((size_t)g->rb * (size_t)p->CK * sizeof(float)) +
                          align64((size_t)g->rb * (size_t)p->npm * UB * sizeof(float));
    }
    g->total = g->off_thread + ths * g->thread_bytes;
    if (g->mode != MODE_WINO && g->mode != MODE_IMPLICIT) add_full(p, g);
    return RNNF_OK;
}

static size_t conv_scratch(const rnnf_gnode *node, const rnnf_tensor *in, const rnnf_tensor *out, int n_threads)
{
    conv_geom g;
    return conv_geom_of(node, in, out, n_threads, &g, NULL) == RNNF_OK ? g.total : 0;
}

typedef struct {
    const conv_prep *p;
    const conv_geom *g;
    void (*gemm)(int, int, const float *, int, const float *, int, int, const float *, float *, int);
    const rnnf_kernels *K;
    const float *x, *bias, *bias_pad;
    float *y;  /* the conv's whole output; with a fused pool, the scratch's (modes other than Winograd, implicit) */
    float *yq; /* the pooled output, or NULL */
    char *scratch;
} conv_job;

static inline void copy16(float *restrict d, const float *restrict s)
{
    for (int j = 0; j < UB; j++) d[j] = s[j];
}


/* Where one task's patches read. Element (c, ih, iw) of the group's input, in padded coordinates (ih + ph,
 * iw + pw) relative to the region's first row r0 and column c0 (r, q), is
 * base[c*plane + r*ldr + q] when phase_len is 0, else base[c*plane + r*ldr + (q % sw)*phase_len + q / sw]. */
typedef struct {
    const float *base;
    int64_t plane, ldr, r0, c0, phase_len;
} src_view;

/* The input a task's positions [la, lb) read: in place when there is neither padding nor a column stride;
 * else copied with its zero padding into stage, so the patch gather needs no bounds checks. With a column
 * stride s each staged row is split into s phases (columns q = phase mod s, in order): the columns one tap
 * reads for consecutive positions are then adjacent, and the gather copies runs instead of picking every s-th
 * float. Padding borders and the stride cost one pass over the region here, not one per tap. */
static src_view stage_input(const conv_prep *p, const conv_geom *g, const float *xg, int64_t la, int64_t lb,
                            float *stage, int force)
{
    src_view v;
    v.phase_len = 0;
    if (!force && !staged(p)) {
        v.base = xg;
        v.plane = g->H * g->W;
        v.ldr = g->W;
        v.r0 = v.c0 = 0;
        return v;
    }
    int64_t r0, r1, c0, c1;
    stage_region(p, g, la, lb, &r0, &r1, &c0, &c1);
    const int64_t nph = phase_split(p) ? p->sw : 1, plen = cdiv(c1 - c0, nph), ldr = nph * plen;
    const int64_t plane = (r1 - r0) * ldr;
    /* without a phase split, the columns holding input are the same for every row: [lo1, hi1) */
    int64_t lo1 = 0, hi1 = 0;
    if (nph == 1) valid_range(c0 - p->pw, 1, g->W, plen, &lo1, &hi1);
    for (int64_t c = 0; c < p->Cg; c++)
        for (int64_t r = r0; r < r1; r++) {
            float *d = stage + (size_t)(c * plane + (r - r0) * ldr);
            const int64_t ih = r - p->ph;
            if (ih < 0 || ih >= g->H) {
                memset(d, 0, (size_t)ldr * sizeof(float));
                continue;
            }
            const float *row = xg + (size_t)((c * g->H + ih) * g->W);
            if (nph == 1) {
                for (int64_t i = 0; i < lo1; i++) d[i] = 0.0f;
                memcpy(d + lo1, row + c0 - p->pw + lo1, (size_t)(hi1 - lo1) * sizeof(float));
                for (int64_t i = hi1; i < plen; i++) d[i] = 0.0f;
                continue;
            }
            for (int64_t ph = 0; ph < nph; ph++, d += plen) {
                /* phase entry i holds input column c0 - pw + ph + i*nph */
                const int64_t first = c0 - p->pw + ph;
                int64_t lo, hi, i = 0;
                valid_range(first, nph, g->W, plen, &lo, &hi);
                for (; i < lo; i++) d[i] = 0.0f;
                if (nph == 2)
                    for (; i < hi; i++) d[i] = row[first + 2 * i];
                else
                    for (; i < hi; i++) d[i] = row[first + i * nph];
                for (; i < plen; i++) d[i] = 0.0f;
            }
        }
    v.base = stage;
    v.plane = plane;
    v.ldr = ldr;
    v.r0 = r0;
    v.c0 = c0;
    v.phase_len = nph > 1 ? plen : 0;
    return v;
}

/* Patch panels [p0, p1) into col: panel q holds positions (p0+q)*UB.. as [CK][UB]. A tap (kh, kw) reads the
 * same offsets in every input channel, so the channel loop inside is a plain strided copy. */
static void im2col_panels(const conv_prep *p, const conv_geom *g, const src_view *v, int64_t p0, int64_t p1, float *col)
{
    const int64_t CK = p->CK, Wo = g->Wo, Cg = p->Cg, sw = p->sw;
    const size_t plane = (size_t)v->plane, cstride = (size_t)(p->kh * p->kw) * UB;
    int64_t tap_phase[MAX_KW_PHASE]; /* tap kw's first column in a phase-split stage row */
    if (v->phase_len)
        for (int64_t kw = 0; kw < p->kw; kw++) tap_phase[kw] = (kw * p->dw) % sw * v->phase_len + kw * p->dw / sw;
    for (int64_t q = 0; q < p1 - p0; q++) {
        float *panel = col + (size_t)q * (size_t)CK * UB;
        const int64_t l0 = (p0 + q) * UB, cnt = min64(UB, g->L - l0);
        if (cnt < UB)
            for (int64_t ck = 0; ck < CK; ck++) memset(panel + ck * UB + cnt, 0, (size_t)(UB - cnt) * sizeof(float));
        /* the panel's positions in runs along one output row */
        for (int64_t j = 0; j < cnt;) {
            const int64_t oh = (l0 + j) / Wo, ow = (l0 + j) % Wo, n = min64(cnt - j, Wo - ow);
            for (int64_t kh = 0; kh < p->kh; kh++) {
                const float *row = v->base + (size_t)((oh * p->sh + kh * p->dh - v->r0) * v->ldr);
                for (int64_t kw = 0; kw < p->kw; kw++) {
                    float *d = panel + (size_t)(kh * p->kw + kw) * UB + j;
                    /* a phase-split stage holds this tap's columns side by side (c0 is a multiple of sw) */
                    const float *s = v->phase_len ? row + tap_phase[kw] + ow - v->c0 / sw
                                                  : row + ow * sw + kw * p->dw - v->c0;
                    const int64_t step = v->phase_len ? 1 : sw;
                    if (n == UB && step == 1)
                        for (int64_t c = 0; c < Cg; c++) copy16(d + c * cstride, s + c * plane);
                    else
                        for (int64_t c = 0; c < Cg; c++)
                            for (int64_t i = 0; i < n; i++) d[c * cstride + i] = s[c * plane + i * step];
                }
            }
            j += n;
        }
    }
}

/* Rows [l0, l1) of image xg's patch matrix into a ([l1-l0][CK]); as for the panels, bounds are worked out once
 * per tap and the channel loop inside is a strided copy. */
static void im2col_rows(const conv_prep *p, const conv_geom *g, const float *xg, int64_t l0, int64_t l1, float *a)
{
    const int64_t CK = p->CK, KK = p->kh * p->kw, Cg = p->Cg;
    const size_t plane = (size_t)(g->H * g->W);
    for (int64_t l = l0; l < l1; l++) {
        const int64_t oh = l / g->Wo, ow = l % g->Wo;
        float *d = a + (size_t)(l - l0) * (size_t)CK;
        for (int64_t kh = 0; kh < p->kh; kh++) {
            const int64_t ih = oh * p->sh + kh * p->dh - p->ph;
            for (int64_t kw = 0; kw < p->kw; kw++) {
                const int64_t iw = ow * p->sw + kw * p->dw - p->pw, tap = kh * p->kw + kw;
                if (ih >= 0 && ih < g->H && iw >= 0 && iw < g->W) {
                    const float *s = xg + (size_t)(ih * g->W + iw);
                    for (int64_t c = 0; c < Cg; c++) d[c * KK + tap] = s[c * plane];
                } else {
                    for (int64_t c = 0; c < Cg; c++) d[c * KK + tap] = 0.0f;
                }
            }
        }
    }
}

static void conv_task_cols(const conv_job *j, int64_t t, int tid)
{
    const conv_prep *p = j->p;
    const conv_geom *g = j->g;
    const int64_t b = t % g->nblk, gi = (t / g->nblk) % p->G, n = t / (g->nblk * p->G);
    const int64_t p0 = b * g->pb, p1 = min64(p0 + g->pb, g->np), L = g->L, Mg = p->Mg;
    char *mine = j->scratch + g->off_thread + (size_t)tid * g->thread_bytes;
    float *col = (float *)mine;
    float *tile = (float *)(mine + align64((size_t)g->pb * UB * (size_t)p->CK * sizeof(float)));
    float *stage = (float *)((char *)tile + align64((size_t)Mg * UB * sizeof(float)));
    const float *xg = j->x + (size_t)((n * g->C + gi * p->Cg) * g->H * g->W);
    const src_view v = stage_input(p, g, xg, p0 * UB, min64(p1 * UB, L), stage, 0);
    im2col_panels(p, g, &v, p0, p1, col);
    const float *w = p->w + (size_t)(gi * Mg * p->CK);
    float *y = j->y + (size_t)((n * p->M + gi * Mg) * L);
    const int64_t pfull = p1 == g->np && L % UB ? p1 - 1 : p1;
    if (pfull > p0)
        j->gemm((int)Mg, (int)p->CK, w, (int)p->CK, col, 0, (int)(pfull - p0), NULL, y + p0 * UB, (int)L);
    if (pfull < p1) {
        j->gemm((int)Mg, (int)p->CK, w, (int)p->CK, col + (size_t)(pfull - p0) * (size_t)p->CK * UB, 0, 1, NULL, tile,
                UB);
        for (int64_t m = 0; m < Mg; m++)
            memcpy(y + (size_t)(m * L + pfull * UB), tile + (size_t)m * UB, (size_t)(L - pfull * UB) * sizeof(float));
    }
    const int64_t c0 = p0 * UB, c1 = min64(p1 * UB, L);
    for (int64_t m = 0; m < Mg; m++) {
        float *seg = y + (size_t)(m * L + c0);
        if (j->bias) {
            const float bv = j->bias[gi * Mg + m];
            for (int64_t i = 0; i < c1 - c0; i++) seg[i] += bv;
        }
        apply_act(p->act, p->alpha, p->beta, seg, c1 - c0);
    }
}

static void conv_task_rows(const conv_job *j, int64_t t, int tid)
{
    const conv_prep *p = j->p;
    const conv_geom *g = j->g;
    const int64_t b = t % g->nrb, gi = (t / g->nrb) % p->G, n = t / (g->nrb * p->G);
    const int64_t l0 = b * g->rb, l1 = min64(l0 + g->rb, g->L), L = g->L, Mg = p->Mg, CK = p->CK;
    const int ldt = (int)(p->npm * UB);
    char *mine = j->scratch + g->off_thread + (size_t)tid * g->thread_bytes;
    float *a = (float *)mine;
    float *tmp = (float *)(mine + align64((size_t)g->rb * (size_t)CK * sizeof(float)));
    const float *xg = j->x + (size_t)((n * g->C + gi * p->Cg) * g->H * g->W);
    const float *wt = p->wt + (size_t)(gi * p->npm) * UB * (size_t)CK;
    const float *bias = j->bias_pad ? j->bias_pad + gi * p->npm * UB : NULL;
    int64_t d0 = l1, d1 = l1; /* rows read in place */
    if (g->direct) {
        int64_t lo, hi;
        /* row l's patch x[l*s - pw .. + kw) lies inside the input for l in [lo, hi) */
        valid_range(-p->pw, p->sw, g->W - p->kw + 1, INT64_MAX / 2, &lo, &hi);
        d0 = min64(max64(lo, l0), l1);
        d1 = max64(min64(hi, l1), d0);
    }
    if (d0 > l0) {
        im2col_rows(p, g, xg, l0, d0, a);
        j->gemm((int)(d0 - l0), (int)CK, a, (int)CK, wt, 0, (int)p->npm, bias, tmp, ldt);
    }
    if (d1 > d0)
        j->gemm((int)(d1 - d0), (int)CK, xg + (size_t)(d0 * p->sw - p->pw), (int)p->sw, wt, 0, (int)p->npm, bias,
                tmp + (size_t)(d0 - l0) * ldt, ldt);
    if (l1 > d1) {
        im2col_rows(p, g, xg, d1, l1, a);
        j->gemm((int)(l1 - d1), (int)CK, a, (int)CK, wt, 0, (int)p->npm, bias, tmp + (size_t)(d1 - l0) * ldt, ldt);
    }
    float *y = j->y + (size_t)((n * p->M + gi * Mg) * L);
    /* ReLU in the transposing copy, as rnnf_unary_apply computes it: a streaming chunk's rows are a few positions
     * long, and a call per channel (its scalar loop, a branch per value) cost a VAD chunk 1-1.4 us of 16-24 */
    const int relu = p->act == RNNF_UN_RELU;
    for (int64_t m = 0; m < Mg; m++) {
        float *seg = y + (size_t)(m * L + l0);
        if (relu)
            for (int64_t r = 0; r < l1 - l0; r++) {
                const float v = tmp[(size_t)r * ldt + m];
                seg[r] = v < 0.0f ? 0.0f : v;
            }
        else {
            for (int64_t r = 0; r < l1 - l0; r++) seg[r] = tmp[(size_t)r * ldt + m];
            apply_act(p->act, p->alpha, p->beta, seg, l1 - l0);
        }
    }
}

/* Output rows [oh0, oh1) of one image and group as an implicit GEMM: the task's input rows are staged with their
 * zero padding (and phase split for a column stride), then each output row is the kernel table's gemm_offsets
 * over the weights, B's row (c, kh, kw) read in place at the staged row's tap offset. No patch is copied; each
 * output is the same single FMA chain over (c, kh, kw) as in the other orientations. ReLU is fused into the
 * kernel's epilogue, other activations run on the task's rows after. */
static void conv_task_implicit(const conv_job *j, int64_t t, int tid)
{
    const conv_prep *p = j->p;
    const conv_geom *g = j->g;
    const int64_t b = t % g->nob, gi = (t / g->nob) % p->G, n = t / (g->nob * p->G);
    const int64_t oh0 = b * g->ob, oh1 = min64(oh0 + g->ob, g->Ho), L = g->L, Mg = p->Mg, Wo = g->Wo;
    char *mine = j->scratch + g->off_thread + (size_t)tid * g->thread_bytes;
    float *stage = (float *)mine;
    int32_t *off = (int32_t *)(mine + g->stage_bytes);
    const float *xg = j->x + (size_t)((n * g->C + gi * p->Cg) * g->H * g->W);
    const src_view v = stage_input(p, g, xg, oh0 * Wo, oh1 * Wo, stage, 1);
    /* the last panel of the last row reads up to UB - 1 floats past the stage */
    memset(stage + (size_t)(p->Cg * v.plane), 0, UB * sizeof(float));
    for (int64_t c = 0, k = 0; c < p->Cg; c++)
        for (int64_t kh = 0; kh < p->kh; kh++)
            for (int64_t kw = 0; kw < p->kw; kw++, k++) {
                const int64_t q = kw * p->dw; /* phase-split: column q is in phase q % sw (c0 = 0 here) */
                const int64_t col = v.phase_len ? q % p->sw * v.phase_len + q / p->sw : q;
                off[k] = (int32_t)(c * v.plane + kh * p->dh * v.ldr + col);
            }
    const float *w = p->w + (size_t)(gi * Mg * p->CK);
    const float *bias = j->bias ? j->bias + gi * Mg : NULL;
    const int relu = p->act == RNNF_UN_RELU;
    if (j->yq) {
        /* row pairs (tasks start on even rows), pooled in the kernel's registers; the odd last row of an odd Ho
         * and the odd last column of an odd Wo are in no window, so they are not computed */
        const int64_t Wq = g->Wq, Lq = g->Hq * Wq;
        float *yq = j->yq + (size_t)((n * p->M + gi * Mg) * Lq);
        for (int64_t oh = oh0; oh + 1 < oh1 && oh / 2 < g->Hq; oh += 2)
            j->K->gemm_offsets_pool((int)Mg, (int)p->CK, w, (int)p->CK,
                                    v.base + (size_t)((oh * p->sh - v.r0) * v.ldr), p->sh * v.ldr, off, (int)(2 * Wq),
                                    bias, relu, yq + oh / 2 * Wq, (int)Lq);
        return;
    }
    float *y = j->y + (size_t)((n * p->M + gi * Mg) * L);
    for (int64_t oh = oh0; oh < oh1; oh++)
        j->K->gemm_offsets((int)Mg, (int)p->CK, w, (int)p->CK, v.base + (size_t)((oh * p->sh - v.r0) * v.ldr), off,
                           (int)Wo, bias, relu, y + oh * Wo, (int)L);
    if (!relu)
        for (int64_t m = 0; m < Mg; m++) apply_act(p->act, p->alpha, p->beta, y + m * L + oh0 * Wo, (oh1 - oh0) * Wo);
}

/* Entries [0, n) of a staged row's even and odd phases, e[i] = row[2i] and o[i] = row[2i + 1] where phase q's
 * [lo[q], hi[q]) holds input, zero elsewhere: [blo, bhi), where both do, in one pass the compiler vectorizes. */
static void split_row(const float *row, float *restrict e, float *restrict o, int64_t n, const int64_t *lo,
                      const int64_t *hi, int64_t blo, int64_t bhi)
{
    for (int64_t i = 0; i < blo; i++) {
        e[i] = i >= lo[0] && i < hi[0] ? row[2 * i] : 0.0f;
        o[i] = i >= lo[1] && i < hi[1] ? row[2 * i + 1] : 0.0f;
    }
    for (int64_t i = blo; i < bhi; i++) {
        e[i] = row[2 * i];
        o[i] = row[2 * i + 1];
    }
    for (int64_t i = bhi; i < n; i++) {
        e[i] = i >= lo[0] && i < hi[0] ? row[2 * i] : 0.0f;
        o[i] = i >= lo[1] && i < hi[1] ? row[2 * i + 1] : 0.0f;
    }
}

/* Tiles [T0, T1) (row-major over th x tw tiles of 2x2 outputs) of one image and group by Winograd F(2x2, 3x3):
 * the padded input rows the tiles read are staged, each split into even and odd columns (so a tile's column j
 * is one unit-stride run over the tiles), transformed into V_p [Cg][tiles] for the 16 positions p, multiplied as
 * 16 GEMMs Y_p = U_p V_p (the kernel table's gemm_offsets, each B row read in place), and transformed back with
 * the bias and ReLU. Each output is the same fixed sequence of operations whatever the task cut. */
static void conv_task_wino(const conv_job *j, int64_t t, int tid)
{
    const conv_prep *p = j->p;
    const conv_geom *g = j->g;
    const int64_t b = t % g->ntb, gi = (t / g->ntb) % p->G, n = t / (g->ntb * p->G);
    const int64_t tw = g->tw, Cg = p->Cg, Mg = p->Mg, ldv = g->ldv, W = g->W;
    int64_t T0, T1;
    if (g->ncb) {
        T0 = b / g->ncb * tw + b % g->ncb * g->tb;
        T1 = min64(T0 + g->tb, (b / g->ncb + 1) * tw);
    } else {
        T0 = b * g->tb;
        T1 = min64(T0 + g->tb, g->th * tw);
    }
    const int64_t nt = T1 - T0, ra = T0 / tw, rb = (T1 - 1) / tw;
    char *mine = j->scratch + g->off_thread + (size_t)tid * g->thread_bytes;
    float *stage = (float *)mine;
    float *V = (float *)(mine + g->stage_bytes);
    float *Y = (float *)((char *)V + align64((size_t)(16 * g->ldpv) * sizeof(float)));
    int32_t *off = (int32_t *)((char *)Y + align64((size_t)(16 * g->ldpy) * sizeof(float)));
    /* staged columns: the tiles' window of one tile row, or whole rows; cw is its first tile */
    const int64_t cw = ra == rb ? T0 % tw : 0, P = ra == rb ? nt + 1 : tw + 1, ldx = 2 * P;
    const int64_t rows = 2 * (rb - ra) + 4, ldc = rows * ldx;
    const float *xg = j->x + (size_t)((n * g->C + gi * Cg) * g->H * W);
    int64_t lo[2], hi[2]; /* each phase's entries that hold input columns; the same for every row */
    for (int q = 0; q < 2; q++) valid_range(2 * cw + q - p->pw, 2, W, P, &lo[q], &hi[q]);
    const int64_t blo = max64(lo[0], lo[1]), bhi = max64(min64(hi[0], hi[1]), blo); /* both phases' entries */
    for (int64_t c = 0; c < Cg; c++)
        for (int64_t r = 0; r < rows; r++) {
            float *d = stage + (size_t)(c * ldc + r * ldx);
            const int64_t ih = 2 * ra + r - p->ph;
            if (ih < 0 || ih >= g->H) {
                memset(d, 0, (size_t)ldx * sizeof(float));
                continue;
            }
            const float *row = xg + (size_t)((c * g->H + ih) * W) + 2 * cw - p->pw;
            split_row(row, d, d + P, P, lo, hi, blo, bhi);
        }
    for (int64_t r = ra; r <= rb; r++) {
        const int64_t ua = r == ra ? T0 % tw : 0, ub = r == rb ? (T1 - 1) % tw + 1 : tw;
        j->K->wino2_in((int)Cg, (int)(ub - ua), stage + (size_t)(2 * (r - ra) * ldx + ua - cw), ldc, (int)ldx,
                       (int)P, V + (r * tw + ua - T0), g->ldpv, (int)ldv);
    }
    /* the GEMM's last panel reads V up to a whole panel: zeros there, not whatever the scratch held */
    const int64_t nz = cdiv(nt, UB) * UB;
    if (nz > nt)
        for (int64_t q = 0; q < 16; q++)
            for (int64_t c = 0; c < Cg; c++) {
                float *z = V + (size_t)(q * g->ldpv + c * ldv);
                for (int64_t i = nt; i < nz; i++) z[i] = 0.0f; /* a few floats: no memset call per row */
            }
    for (int64_t c = 0; c < Cg; c++) off[c] = (int32_t)(c * ldv);
    const float *u = p->wu + (size_t)(gi * 16 * Mg * Cg);
    const float *bias = j->bias ? j->bias + gi * Mg : NULL;
    const int relu = p->act == RNNF_UN_RELU;
    for (int q = 0; q < 16; q++)
        j->K->gemm_offsets((int)Mg, (int)Cg, u + (size_t)(q * Mg * Cg), (int)Cg, V + (size_t)(q * g->ldpv), off,
                           (int)nt, NULL, 0, Y + (size_t)(q * g->ldpy), (int)ldv);
    if (j->yq) { /* a tile is a pool window; a partial last tile row or column is in none */
        const int64_t Wq = g->Wq, Lq = g->Hq * Wq;
        float *yq = j->yq + (size_t)((n * p->M + gi * Mg) * Lq);
        for (int64_t r = ra; r <= rb && r < g->Hq; r++) {
            const int64_t ua = r == ra ? T0 % tw : 0, ub = min64(r == rb ? (T1 - 1) % tw + 1 : tw, Wq);
            if (ub > ua)
                j->K->wino2_out_pool((int)Mg, (int)(ub - ua), Y + (r * tw + ua - T0), g->ldpy, (int)ldv, bias, relu,
                                     yq + r * Wq + ua, Lq);
        }
        return;
    }
    float *y = j->y + (size_t)((n * p->M + gi * Mg) * g->L);
    for (int64_t r = ra; r <= rb; r++) {
        const int64_t ua = r == ra ? T0 % tw : 0, ub = r == rb ? (T1 - 1) % tw + 1 : tw;
        const int64_t h = min64(2, g->Ho - 2 * r), w = min64(2 * (ub - ua), g->Wo - 2 * ua);
        float *o = y + 2 * r * g->Wo + 2 * ua;
        j->K->wino2_out((int)Mg, (int)(ub - ua), Y + (r * tw + ua - T0), g->ldpy, (int)ldv, bias, relu, o, g->L,
                        (int)g->Wo, (int)h, (int)w);
        if (!relu)
            for (int64_t m = 0; m < Mg; m++)
                for (int64_t i = 0; i < h; i++) apply_act(p->act, p->alpha, p->beta, o + m * g->L + i * g->Wo, w);
    }
}

/* z[i] += w[0]*v0[i*s] + ... (added one at a time, in order) for up to 4 taps per pass: the accumulator is
 * loaded and stored once per pass instead of once per tap. Strides 1 and 2 are constants so the compiler
 * vectorizes them. */
#define TAPS_PASS(S)                                                                                                  \
    do {                                                                                                              \
        switch (nt) {                                                                                                 \
        case 4:                                                                                                       \
            for (int64_t i = 0; i < n; i++) {                                                                         \
                float a = z[i] + w[0] * v0[(S) * i];                                                                  \
                a += w[1] * v1[(S) * i];                                                                              \
                a += w[2] * v2[(S) * i];                                                                              \
                z[i] = a + w[3] * v3[(S) * i];                                                                        \
            }                                                                                                         \
            break;                                                                                                    \
        case 3:                                                                                                       \
            for (int64_t i = 0; i < n; i++) {                                                                         \
                float a = z[i] + w[0] * v0[(S) * i];                                                                  \
                a += w[1] * v1[(S) * i];                                                                              \
                z[i] = a + w[2] * v2[(S) * i];                                                                        \
            }                                                                                                         \
            break;                                                                                                    \
        case 2:                                                                                                       \
            for (int64_t i = 0; i < n; i++) z[i] = (z[i] + w[0] * v0[(S) * i]) + w[1] * v1[(S) * i];                \
            break;                                                                                                    \
        default:                                                                                                      \
            for (int64_t i = 0; i < n; i++) z[i] += w[0] * v0[(S) * i];                                             \
            break;                                                                                                    \
        }                                                                                                             \
    } while (0)

static void taps_pass(float *restrict z, int nt, const float *w, const float *const *v, int64_t s, int64_t n)
{
    const float *restrict v0 = v[0], *restrict v1 = v[nt > 1 ? 1 : 0], *restrict v2 = v[nt > 2 ? 2 : 0],
                *restrict v3 = v[nt > 3 ? 3 : 0];
    if (s == 1)
        TAPS_PASS(1);
    else if (s == 2)
        TAPS_PASS(2);
    else
        TAPS_PASS(s);
}

/* One output channel of one image, a band of output rows at a time. The input rows each kh reads for the band
 * are laid end to end with their zero padding (rows Wp apart, Wp a multiple of the stride, so output i of the
 * band reads from i*stride; the outputs between rows are computed and dropped), so every tap is one long
 * vectorized pass rather than a short one per output row. With row stride 1 the kh row sets overlap: the band's
 * input rows are staged once and each kh starts kh*dh rows further. The padding columns of the stage are
 * zeroed before the tasks start and never written, so staging copies only the input's columns. Every output
 * sums its taps in (kh, kw) order. */
static void conv_task_depthwise(const conv_job *j, int64_t t, int tid)
{
    const conv_prep *p = j->p;
    const conv_geom *g = j->g;
    const int64_t oc = t % p->M, n = t / p->M, gi = oc / p->Mg, Wo = g->Wo, Wp = g->Wp, Wz = g->Wz, W = g->W;
    const float *xp = j->x + (size_t)((n * g->C + gi) * g->H * W);
    const float *w = p->w + (size_t)(oc * p->CK);
    float *y = j->y + (size_t)((n * p->M + oc) * g->L);
    char *mine = j->scratch + g->off_thread + (size_t)tid * g->thread_bytes;
    float *v = (float *)mine, *z = (float *)(mine + g->stage_bytes);
    const int64_t c0 = p->pw, cw = min64(W, Wp - p->pw); /* stage columns [c0, c0 + cw) hold input */
    const int64_t sets = p->sh == 1 ? 1 : p->kh;         /* staged row sets: one shared, or one per kh */
    for (int64_t o0 = 0; o0 < g->Ho; o0 += g->band) {
        const int64_t rows = min64(g->band, g->Ho - o0), nz = (rows - 1) * Wz + Wo;
        const int64_t set_rows = p->sh == 1 ? rows + (p->kh - 1) * p->dh : rows;
        if (!g->direct)
            for (int64_t k = 0; k < sets; k++)
                for (int64_t r = 0; r < set_rows; r++) {
                    float *vr = v + (size_t)((k * g->set_rows + r) * Wp);
                    const int64_t ih = (o0 + r) * p->sh + k * p->dh - p->ph;
                    if (ih < 0 || ih >= g->H)
                        memset(vr, 0, (size_t)Wp * sizeof(float));
                    else if (cw > 0)
                        memcpy(vr + c0, xp + (size_t)(ih * W), (size_t)cw * sizeof(float));
                }
        for (int64_t i = 0; i < nz; i++) z[i] = 0.0f;
        const int64_t KK = p->kh * p->kw;
        for (int64_t k0 = 0; k0 < KK; k0 += 4) {
            const float *src[4] = {0};
            const int nt = (int)min64(4, KK - k0);
            for (int q = 0; q < nt; q++) {
                const int64_t kh = (k0 + q) / p->kw, kw = (k0 + q) % p->kw;
                const float *set = g->direct ? xp
                                   : p->sh == 1 ? v + (size_t)(kh * p->dh * Wp)
                                                : v + (size_t)(kh * g->set_rows * Wp);
                src[q] = set + kw * p->dw;
            }
            taps_pass(z, nt, w + k0, src, p->sw, nz);
        }
        for (int64_t r = 0; r < rows; r++) {
            float *yr = y + (size_t)((o0 + r) * Wo);
            const float *zr = z + (size_t)(r * Wz);
            for (int64_t ow = 0; ow < Wo; ow++) yr[ow] = zr[ow];
        }
    }
    if (j->bias) {
        const float bv = j->bias[oc];
        for (int64_t i = 0; i < g->L; i++) y[i] += bv;
    }
    apply_act(p->act, p->alpha, p->beta, y, g->L);
}

static void conv_task(const conv_job *j, int64_t t, int tid)
{
    switch (j->g->mode) {
    case MODE_COLS: conv_task_cols(j, t, tid); break;
    case MODE_ROWS: conv_task_rows(j, t, tid); break;
    case MODE_IMPLICIT: conv_task_implicit(j, t, tid); break;
    case MODE_WINO: conv_task_wino(j, t, tid); break;
    default: conv_task_depthwise(j, t, tid); break;
    }
}

static rnnf_status conv_run(const rnnf_gnode *node, const rnnf_tensor *in, rnnf_tensor *out, rnnf_op_ctx *ctx)
{
    conv_geom g;
    rnnf_status st = conv_geom_of(node, in, out, ctx->n_threads, &g, ctx->message);
    if (st != RNNF_OK || g.N == 0 || g.L == 0) return st;
    const conv_prep *p = node->prep;
    conv_job j;
    j.p = p;
    j.g = &g;
    j.gemm = ctx->K->gemm_packed;
    j.K = ctx->K;
    j.x = in[0].data;
    j.y = out[0].data;
    j.yq = NULL;
    j.scratch = ctx->scratch;
    if (p->pool) {
        if (g.Hq == 0 || g.Wq == 0) return RNNF_OK;
        j.yq = out[0].data;
        j.y = g.mode == MODE_WINO || g.mode == MODE_IMPLICIT ? NULL : (float *)(j.scratch + g.off_full);
    }
    j.bias = p->bias ? p->bias : node->n_in > 2 && in[2].dtype != RNNF_DT_NONE ? (const float *)in[2].data : NULL;
    j.bias_pad = NULL;
    if (g.mode == MODE_ROWS && j.bias) {
        /* the positions-as-rows GEMM adds the bias per column, reading whole panels */
        float *bp = (float *)(j.scratch + g.off_bias);
        for (int64_t gi = 0; gi < p->G; gi++)
            for (int64_t m = 0; m < p->npm * UB; m++)
                bp[gi * p->npm * UB + m] = m < p->Mg ? j.bias[gi * p->Mg + m] : 0.0f;
        j.bias_pad = bp;
        j.bias = NULL;
    }
    const int nt = threads_for(ctx->n_threads, g.fmas, g.tasks);
    if (g.mode == MODE_DEPTHWISE && g.stage_bytes)
        for (int t = 0; t < nt; t++) memset(j.scratch + g.off_thread + (size_t)t * g.thread_bytes, 0, g.stage_bytes);
    (void)nt;
#ifdef _OPENMP
    if (nt > 1) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t t = 0; t < g.tasks; t++) conv_task(&j, t, omp_get_thread_num());
    } else
#endif
        for (int64_t t = 0; t < g.tasks; t++) conv_task(&j, t, 0);
    if (j.yq && j.y) /* the modes that wrote whole planes: pooled after */
        for (int64_t q = 0; q < g.N * p->M; q++)
            for (int64_t oh = 0; oh < g.Hq; oh++) {
                const float *r0 = j.y + (size_t)(q * g.L + 2 * oh * g.Wo);
                rnnf_maxpool_2x2_row(r0, r0 + g.Wo, j.yq + (size_t)((q * g.Hq + oh) * g.Wq), g.Wq);
            }
    return RNNF_OK;
}

const rnnf_op_vtable rnnf_op_conv = {"conv", conv_prepare, conv_scratch, conv_run, conv_release};

/* ---- ConvTranspose (1-D) ---- */

typedef struct {
    int64_t G, s, d, pb;
    int64_t C, Cg, Mg, M, K;
    float *a;    /* per group, rows (m, k) of [Cg]: A_g[(m*K + k)*Cg + c] = w[g*Cg + c][m][k] */
    float *bias; /* [M] when constant at load */
} convt_prep;

typedef struct {
    int64_t N, L, Lo, npl, mb, nmb, tasks;
    double fmas;
    size_t thread_bytes, total;
} convt_geom;

static void convt_release(rnnf_gnode *node)
{
    convt_prep *p = node->prep;
    if (p) {
        rnnf_mem_free(node->pool, p->a);
        rnnf_mem_free(node->pool, p->bias);
        rnnf_mem_free(node->pool, p);
    }
    node->prep = NULL;
}

static rnnf_status convt_prepare(rnnf_gnode *node, const rnnf_tensor *ci, char *msg)
{
    node->prep = NULL;
    if (node->n_in < 2 || node->n_in > 3 || node->n_out != 1)
        return fail(msg, RNNF_ERR_FORMAT, "conv_transpose: expects 2 or 3 inputs and 1 output, got %lld and %lld",
                    node->n_in, node->n_out, 0);
    if (node->n_iattr != 4)
        return fail(msg, RNNF_ERR_FORMAT, "conv_transpose: expects 4 integer attributes, got %lld", node->n_iattr, 0,
                    0);
    const int64_t *ia = node->iattr;
    if (ia[0] < 1 || ia[0] > MAX_ATTR || ia[1] < 1 || ia[1] > MAX_ATTR || ia[2] < 1 || ia[2] > MAX_ATTR || ia[3] < 0 ||
        ia[3] > MAX_ATTR)
        return fail(msg, RNNF_ERR_FORMAT, "conv_transpose: group %lld, stride %lld, dilation %lld", ia[0], ia[1],
                    ia[2]);
    const rnnf_tensor *w = &ci[1];
    if (!w->data) return fail(msg, RNNF_ERR_UNSUPPORTED, "conv_transpose: the weights must be a constant", 0, 0, 0);
    if (w->dtype != RNNF_DT_F32)
        return fail(msg, RNNF_ERR_UNSUPPORTED, "conv_transpose: float32 weights only", 0, 0, 0);
    if (w->rank != 3)
        return fail(msg, RNNF_ERR_UNSUPPORTED, "conv_transpose: weights of rank %lld (1-D only)", w->rank, 0, 0);
    for (int i = 0; i < 3; i++)
        if (w->dims[i] < 1 || w->dims[i] > MAX_ATTR)
            return fail(msg, RNNF_ERR_FORMAT, "conv_transpose: weight dimension %lld is %lld", i, w->dims[i], 0);
    const int64_t G = ia[0], C = w->dims[0];
    if (C % G)
        return fail(msg, RNNF_ERR_FORMAT, "conv_transpose: group %lld does not divide %lld input channels", G, C, 0);
    const int64_t Mg = w->dims[1], K = w->dims[2], Cg = C / G;
    if (Mg * K > INT_MAX / 2 || C * Mg * K > (int64_t)1 << 40)
        return fail(msg, RNNF_ERR_FORMAT, "conv_transpose: weights of %lld x %lld x %lld are too large", C, Mg, K);
    const rnnf_tensor *b = node->n_in > 2 ? &ci[2] : NULL;
    if (b && b->data && (b->dtype != RNNF_DT_F32 || rnnf_tensor_numel(b) != Mg * G))
        return fail(msg, RNNF_ERR_FORMAT, "conv_transpose: a bias of %lld values for %lld output channels",
                    rnnf_tensor_numel(b), Mg * G, 0);
    convt_prep *p = rnnf_mem_alloc_raw(node->pool, sizeof(convt_prep));
    if (!p) return fail(msg, RNNF_ERR_NOMEM, "conv_transpose: out of memory", 0, 0, 0);
    memset(p, 0, sizeof(*p));
    p->G = G;
    p->s = ia[1];
    p->d = ia[2];
    p->pb = ia[3];
    p->C = C;
    p->Cg = Cg;
    p->Mg = Mg;
    p->M = Mg * G;
    p->K = K;
    p->a = rnnf_mem_alloc_raw(node->pool, (size_t)(C * Mg * K) * sizeof(float));
    if (b && b->data) p->bias = rnnf_mem_alloc_raw(node->pool, (size_t)p->M * sizeof(float));
    if (!p->a || (b && b->data && !p->bias)) {
        node->prep = p;
        convt_release(node);
        return fail(msg, RNNF_ERR_NOMEM, "conv_transpose: out of memory", 0, 0, 0);
    }
    const float *wd = w->data;
    for (int64_t g = 0; g < G; g++)
        for (int64_t c = 0; c < Cg; c++)
            for (int64_t mk = 0; mk < Mg * K; mk++)
                p->a[(size_t)((g * Mg * K + mk) * Cg + c)] = wd[(size_t)((g * Cg + c) * Mg * K + mk)];
    if (p->bias) memcpy(p->bias, b->data, (size_t)p->M * sizeof(float));
    node->prep = p;
    return RNNF_OK;
}

static rnnf_status convt_geom_of(const rnnf_gnode *node, const rnnf_tensor *in, const rnnf_tensor *out, int n_threads,
                                 convt_geom *g, char *msg)
{
    const convt_prep *p = node->prep;
    const rnnf_tensor *x = &in[0], *y = &out[0];
    memset(g, 0, sizeof(*g));
    if (!p) return fail(msg, RNNF_ERR_ARG, "conv_transpose: not prepared", 0, 0, 0);
    if (x->dtype != RNNF_DT_F32 || y->dtype != RNNF_DT_F32)
        return fail(msg, RNNF_ERR_UNSUPPORTED, "conv_transpose: float32 only", 0, 0, 0);
    if (x->rank != 3 || y->rank != 3)
        return fail(msg, RNNF_ERR_SHAPE, "conv_transpose: input of rank %lld, output of rank %lld (1-D: 3)", x->rank,
                    y->rank, 0);
    if (x->dims[1] != p->C || y->dims[0] != x->dims[0] || y->dims[1] != p->M)
        return fail(msg, RNNF_ERR_SHAPE, "conv_transpose: %lld input channels (weights: %lld), %lld output channels",
                    x->dims[1], p->C, y->dims[1]);
    if (node->n_in > 2 && in[2].dtype != RNNF_DT_NONE && !p->bias &&
        (in[2].dtype != RNNF_DT_F32 || rnnf_tensor_numel(&in[2]) != p->M))
        return fail(msg, RNNF_ERR_SHAPE, "conv_transpose: a bias of %lld values for %lld output channels",
                    rnnf_tensor_numel(&in[2]), p->M, 0);
    g->N = x->dims[0];
    g->L = x->dims[2];
    g->Lo = y->dims[2];
    if (g->L > INT_MAX / 2 || g->Lo > ((int64_t)1 << 40))
        return fail(msg, RNNF_ERR_SHAPE, "conv_transpose: an input of length %lld is too long", g->L, 0, 0);
    g->npl = cdiv(g->L, UB);
    g->fmas = (double)g->N * (double)p->C * (double)p->Mg * (double)p->K * (double)(g->npl * UB);
    /* output channels per task: about MAX_ROWS GEMM rows, fewer when that leaves too few tasks to share */
    g->mb = min64(max64(MAX_ROWS / p->K, 1), p->Mg);
    if (g->fmas >= PAR_MIN_FMAS)
        while (g->mb > 1 && g->N * p->G * cdiv(p->Mg, g->mb) < MIN_TASKS) g->mb = cdiv(g->mb, 2);
    g->nmb = cdiv(p->Mg, g->mb);
    g->tasks = g->N * p->G * g->nmb;
    g->thread_bytes = align64((size_t)(p->Cg * g->npl * UB) * sizeof(float)) +
                      align64((size_t)(g->mb * p->K * g->npl * UB) * sizeof(float));
    g->total = (size_t)(n_threads > 0 ? n_threads : 1) * g->thread_bytes;
    return RNNF_OK;
}

static size_t convt_scratch(const rnnf_gnode *node, const rnnf_tensor *in, const rnnf_tensor *out, int n_threads)
{
    convt_geom g;
    return convt_geom_of(node, in, out, n_threads, &g, NULL) == RNNF_OK ? g.total : 0;
}

typedef struct {
    const convt_prep *p;
    const convt_geom *g;
    void (*gemm)(int, int, const float *, int, const float *, int, int, const float *, float *, int);
    const float *x, *bias;
    float *y;
    char *scratch;
} convt_job;

static void convt_task(const convt_job *j, int64_t t, int tid)
{
    const convt_prep *p = j->p;
    const convt_geom *g = j->g;
    const int64_t b = t % g->nmb, gi = (t / g->nmb) % p->G, n = t / (g->nmb * p->G);
    const int64_t m0 = b * g->mb, m1 = min64(m0 + g->mb, p->Mg), K = p->K, L = g->L, Lo = g->Lo;
    const int ldc = (int)(g->npl * UB);
    char *mine = j->scratch + (size_t)tid * g->thread_bytes;
    float *xp = (float *)mine;
    float *cols = (float *)(mine + align64((size_t)(p->Cg * g->npl * UB) * sizeof(float)));
    rnnf_pack_b_strided(j->x + (size_t)((n * p->C + gi * p->Cg) * L), p->Cg, L, L, 1, xp);
    j->gemm((int)((m1 - m0) * K), (int)p->Cg, p->a + (size_t)((gi * p->Mg + m0) * K * p->Cg), (int)p->Cg, xp, 0,
            (int)g->npl, NULL, cols, ldc);
    for (int64_t m = m0; m < m1; m++) {
        float *yr = j->y + (size_t)((n * p->M + gi * p->Mg + m) * Lo);
        for (int64_t o = 0; o < Lo; o++) yr[o] = 0.0f;
        for (int64_t k = 0; k < K; k++) {
            const float *cr = cols + (size_t)(((m - m0) * K + k) * ldc);
            const int64_t off = k * p->d - p->pb;
            int64_t lo, hi;
            valid_range(off, p->s, Lo, L, &lo, &hi);
            if (p->s == 1)
                for (int64_t l = lo; l < hi; l++) yr[l + off] += cr[l];
            else
                for (int64_t l = lo; l < hi; l++) yr[l * p->s + off] += cr[l];
        }
        if (j->bias) {
            const float bv = j->bias[gi * p->Mg + m];
            for (int64_t o = 0; o < Lo; o++) yr[o] += bv;
        }
    }
}

static rnnf_status convt_run(const rnnf_gnode *node, const rnnf_tensor *in, rnnf_tensor *out, rnnf_op_ctx *ctx)
{
    convt_geom g;
    rnnf_status st = convt_geom_of(node, in, out, ctx->n_threads, &g, ctx->message);
    if (st != RNNF_OK) return st;
    const convt_prep *p = node->prep;
    if (g.N == 0 || g.Lo == 0) return RNNF_OK;
    convt_job j;
    j.p = p;
    j.g = &g;
    j.gemm = ctx->K->gemm_packed;
    j.x = in[0].data;
    j.y = out[0].data;
    j.scratch = ctx->scratch;
    j.bias = p->bias ? p->bias : node->n_in > 2 && in[2].dtype != RNNF_DT_NONE ? (const float *)in[2].data : NULL;
    if (g.L == 0) {
        for (int64_t r = 0; r < g.N * p->M; r++)
            for (int64_t o = 0; o < g.Lo; o++) j.y[r * g.Lo + o] = j.bias ? j.bias[r % p->M] : 0.0f;
        return RNNF_OK;
    }
    const int nt = threads_for(ctx->n_threads, g.fmas, g.tasks);
#ifdef _OPENMP
    if (nt > 1) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t t = 0; t < g.tasks; t++) convt_task(&j, t, omp_get_thread_num());
        return RNNF_OK;
    }
#endif
    (void)nt;
    for (int64_t t = 0; t < g.tasks; t++) convt_task(&j, t, 0);
    return RNNF_OK;
}

const rnnf_op_vtable rnnf_op_conv_transpose = {"conv_transpose", convt_prepare, convt_scratch, convt_run,
                                                convt_release};
