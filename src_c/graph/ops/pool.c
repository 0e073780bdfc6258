/* pool.c: RNNF_OP_MAXPOOL and RNNF_OP_AVGPOOL over 1-D and 2-D inputs, with ONNX / onnxruntime semantics.
 *
 * Padding never takes part in a max, and a window with no real element (possible only with dilations) gives
 * -inf, the max of nothing (onnxruntime starts from the lowest finite float, so it returns that there and for
 * a window of -inf values). The average divides the sum of the real elements by the window's
 * real element count (count_include_pad = 0) or by its size clipped to the padded input (count_include_pad
 * = 1), so ceil-mode windows that run past the end pad count only up to the end padding, as in onnxruntime.
 * The output dims arrive resolved (ceil_mode included); they are checked against the floor and ceil sizes.
 *
 * Max and sum are separable, so a 2-D window is a column pass (over kh) then a row pass (over kw). Long output
 * rows take them one row at a time, up to three rows or taps folded per loop with the accumulator in a register
 * (pool_rows); short ones lay a band of rows end to end so each pass is one long loop (pool_plane); the 2x2
 * stride-2 window fuses both passes in SSE2 registers (pool_2x2). All three fold an output's taps in the same
 * order with the same operations, so they give the same bits, whatever the path or thread count (threads split
 * whole planes). The average's order (columns first) differs from onnxruntime's row-major sum by rounding only.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h> /* baseline on x86-64: no flags, no dispatch */
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

#include "graph/graph.h"

/* Below this a parallel region's start-up costs more than it saves (the crnn's 2x2 pool over 41k taps: 4.0 us on
 * one thread, 3.0 on two, each reading the planes its thread of the conv before wrote). */
#define PAR_MIN_TAPS 32768
#define MAX_ATTR (1 << 24)
#define BAND_FLOATS 4096 /* a band of padded rows (16 KiB) stays in L1 between the two passes */
#define ROW_MIN_WO 12    /* output rows at least this long are pooled one at a time (pool_rows) */
#define ROW_TABLE 64     /* pool_rows: window rows gathered per column-pass chunk */

typedef struct {
    int ns, avg, include_pad;
    int64_t kh, kw, sh, sw, dh, dw, ph, pw, phe, pwe; /* 1-D: the H entries are 1, 1, 1, 0, 0 */
} pool_attr;

typedef struct {
    int64_t planes, H, W, Ho, Wo;
    int64_t Wp, Wz, band; /* padded row width (a multiple of sw), Wp / sw, output rows per band */
    int direct;           /* 1-D without padding: the row pass reads the input in place */
    int rowwise;          /* long output rows: pool_rows, not the bands of pool_plane */
    size_t thread_bytes;
} pool_geom;

static void attr_of(const rnnf_gnode *node, pool_attr *a)
{
    const int64_t *ia = node->iattr;
    memset(a, 0, sizeof(*a));
    a->ns = (int)ia[0];
    a->avg = node->op == RNNF_OP_AVGPOOL;
    a->include_pad = a->avg && ia[11] != 0;
    a->kh = a->sh = a->dh = 1;
    if (a->ns == 1) {
        a->kw = ia[1];
        a->sw = ia[3];
        a->dw = ia[5];
        a->pw = ia[7];
        a->pwe = ia[9];
    } else {
        a->kh = ia[1];
        a->kw = ia[2];
        a->sh = ia[3];
        a->sw = ia[4];
        a->dh = ia[5];
        a->dw = ia[6];
        a->ph = ia[7];
        a->pw = ia[8];
        a->phe = ia[9];
        a->pwe = ia[10];
    }
}

/* msg = "<name>: " + text with up to three integers. */
static rnnf_status fail(char *msg, rnnf_status st, const char *name, const char *text, long long a, long long b,
                        long long c)
{
    if (msg) {
        const int n = snprintf(msg, RNNF_ERROR_MESSAGE_SIZE, "%s: ", name);
        if (n > 0 && n < RNNF_ERROR_MESSAGE_SIZE) snprintf(msg + n, RNNF_ERROR_MESSAGE_SIZE - (size_t)n, text, a, b, c);
    }
    return st;
}

static rnnf_status pool_prepare(rnnf_gnode *node, const rnnf_tensor *ci, char *msg)
{
    (void)ci;
    node->prep = NULL;
    const int avg = node->op == RNNF_OP_AVGPOOL;
    const char *name = avg ? "avgpool" : "maxpool";
    if (node->n_in != 1 || node->n_out != 1)
        return fail(msg, RNNF_ERR_FORMAT, name, "expects 1 input and 1 output, got %lld and %lld", node->n_in,
                    node->n_out, 0);
    if (node->n_iattr != (avg ? 12 : 11))
        return fail(msg, RNNF_ERR_FORMAT, name, "expects %lld integer attributes, got %lld", avg ? 12 : 11,
                    node->n_iattr, 0);
    const int64_t *ia = node->iattr;
    const int64_t ns = ia[0];
    if (ns != 1 && ns != 2) return fail(msg, RNNF_ERR_UNSUPPORTED, name, "%lld spatial dimensions (1 or 2)", ns, 0, 0);
    for (int d = 0; d < ns; d++) {
        const int64_t k = ia[1 + d], s = ia[3 + d], dil = ia[5 + d], pb = ia[7 + d], pe = ia[9 + d];
        if (k < 1 || k > MAX_ATTR || s < 1 || s > MAX_ATTR || dil < 1 || dil > MAX_ATTR)
            return fail(msg, RNNF_ERR_FORMAT, name, "kernel %lld, stride %lld, dilation %lld", k, s, dil);
        if (avg && dil != 1)
            return fail(msg, RNNF_ERR_UNSUPPORTED, name, "dilation %lld (only 1 is supported)", dil, 0, 0);
        /* onnxruntime refuses pads as large as the kernel: such windows could hold padding alone */
        const int64_t extent = (k - 1) * dil + 1;
        if (pb < 0 || pe < 0 || pb >= extent || pe >= extent)
            return fail(msg, RNNF_ERR_UNSUPPORTED, name, "pads %lld and %lld are not in [0, the kernel's %lld)", pb, pe,
                        extent);
    }
    return RNNF_OK;
}

/* The output length must be the floor size or the ceil size; a ceil-mode window must start inside the input. */
static int out_len_ok(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe, int64_t out)
{
    const int64_t e = in + pb + pe - d * (k - 1) - 1;
    if (e < 0) return 0;
    const int64_t fl = e / s + 1;
    int64_t ce = (e + s - 1) / s + 1;
    if ((ce - 1) * s >= in + pb) ce--;
    return out == fl || out == ce;
}

static rnnf_status pool_geom_of(const pool_attr *a, const rnnf_tensor *in,
                                const rnnf_tensor *out, pool_geom *g, char *msg)
{
    const rnnf_tensor *x = &in[0], *y = &out[0];
    const char *name = a->avg ? "avgpool" : "maxpool";
    memset(g, 0, sizeof(*g));
    if (x->dtype != RNNF_DT_F32 || y->dtype != RNNF_DT_F32)
        return fail(msg, RNNF_ERR_UNSUPPORTED, name, "float32 only", 0, 0, 0);
    if (x->rank != 2 + a->ns || y->rank != 2 + a->ns || y->dims[0] != x->dims[0] || y->dims[1] != x->dims[1])
        return fail(msg, RNNF_ERR_SHAPE, name, "an input of rank %lld and an output of rank %lld do not match", x->rank,
                    y->rank, 0);
    g->planes = x->dims[0] * x->dims[1];
    g->H = a->ns == 2 ? x->dims[2] : 1;
    g->W = x->dims[1 + a->ns];
    g->Ho = a->ns == 2 ? y->dims[2] : 1;
    g->Wo = y->dims[1 + a->ns];
    if ((a->ns == 2 && !out_len_ok(g->H, a->kh, a->sh, a->dh, a->ph, a->phe, g->Ho)) ||
        !out_len_ok(g->W, a->kw, a->sw, a->dw, a->pw, a->pwe, g->Wo))
        return fail(msg, RNNF_ERR_SHAPE, name, "an output of %lld x %lld does not fit this input (width %lld)", g->Ho,
                    g->Wo, g->W);
    if (g->Ho == 0 || g->Wo == 0) return RNNF_OK;
    const int64_t reach = (g->Wo - 1) * a->sw + (a->kw - 1) * a->dw + 1;
    g->Wp = (reach + a->sw - 1) / a->sw * a->sw;
    g->Wz = g->Wp / a->sw;
    g->band = BAND_FLOATS / g->Wp;
    g->band = g->band < 1 ? 1 : g->band > g->Ho ? g->Ho : g->band;
    g->direct = a->ns == 1 && a->pw == 0 && reach <= g->W;
    g->rowwise = g->Wo >= ROW_MIN_WO;
    g->thread_bytes = g->direct ? 0 : (((size_t)(g->band * g->Wp) * sizeof(float) + 63) & ~(size_t)63);
    g->thread_bytes += ((size_t)(g->band * g->Wz) * sizeof(float) + 63) & ~(size_t)63;
    return RNNF_OK;
}

/* Scratch: the average's per-column counts, then per thread a band of padded rows and its row-pooled values. */
static size_t counts_bytes(const pool_attr *a, const pool_geom *g)
{
    return a->avg ? ((size_t)g->Wo * sizeof(float) + 63) & ~(size_t)63 : 0;
}

static size_t pool_scratch(const rnnf_gnode *node, const rnnf_tensor *in, const rnnf_tensor *out, int n_threads)
{
    pool_attr a;
    pool_geom g;
    attr_of(node, &a);
    if (pool_geom_of(&a, in, out, &g, NULL) != RNNF_OK) return 0;
    return counts_bytes(&a, &g) + (size_t)(n_threads > 0 ? n_threads : 1) * g.thread_bytes;
}

/* Elements a window starting at `start` averages over along one dimension. */
static int64_t avg_count(const pool_attr *a, int64_t start, int64_t k, int64_t len, int64_t pe)
{
    int64_t end = start + k;
    if (a->include_pad) return (end < len + pe ? end : len + pe) - start;
    if (end > len) end = len;
    return end - (start > 0 ? start : 0);
}

#define ADD_TO(acc, v) ((acc) += (v))
#define MAX_TO(acc, v) ((acc) = (v) > (acc) ? (v) : (acc)) /* NaN never wins, as padding never does */

/* z[i] op= v[i*s + off] for i < n; strides 1 and 2 as constants so the compiler vectorizes them. */
#define STRIDED(OP, z, v, s, off, n)                                                                                  \
    do {                                                                                                              \
        if ((s) == 1)                                                                                                 \
            for (int64_t i = 0; i < (n); i++) OP((z)[i], (v)[i + (off)]);                                             \
        else if ((s) == 2)                                                                                            \
            for (int64_t i = 0; i < (n); i++) OP((z)[i], (v)[2 * i + (off)]);                                         \
        else                                                                                                          \
            for (int64_t i = 0; i < (n); i++) OP((z)[i], (v)[i * (s) + (off)]);                                       \
    } while (0)

/* Max and sum are separable: a window's value is the row pass (over kw) of the column pass (over kh). Both
 * passes are long contiguous loops: the column pass runs over whole padded rows, and the row pass over a band
 * of rows laid end to end (rows Wp apart, Wp a multiple of the stride, so output i of the band reads from
 * i*stride; the outputs between rows are computed and dropped). A short output row would otherwise cost a
 * loop start-up per tap. Windows fold their taps in the same order whatever the band or thread. */
static void pool_plane(const pool_attr *a, const pool_geom *g, const float *x, float *y, const float *count_w,
                       float *scratch)
{
    const int64_t W = g->W, Wp = g->Wp, Wz = g->Wz, s = a->sw;
    const float init = a->avg ? 0.0f : -INFINITY;
    float *v = scratch, *z = scratch + (g->direct ? 0 : ((size_t)(g->band * Wp) + 15) / 16 * 16);
    for (int64_t o0 = 0; o0 < g->Ho; o0 += g->band) {
        const int64_t rows = g->Ho - o0 < g->band ? g->Ho - o0 : g->band;
        const float *src = x;
        if (!g->direct) {
            /* column pass: v[r][wp] = op over kh of x[ih][wp - pw], the init value in the padding */
            const int64_t c0 = a->pw, c1 = a->pw + W < Wp ? a->pw + W : Wp; /* padded columns holding input */
            for (int64_t r = 0; r < rows; r++) {
                float *restrict vr = v + (size_t)(r * Wp);
                for (int64_t c = 0; c < Wp; c++) vr[c] = init;
                for (int64_t kh = 0; kh < a->kh; kh++) {
                    const int64_t ih = (o0 + r) * a->sh + kh * a->dh - a->ph;
                    if (ih < 0 || ih >= g->H || c1 <= c0) continue;
                    const float *restrict xr = x + (size_t)(ih * W); /* padded column c is input column c - c0 */
                    if (a->avg)
                        for (int64_t c = c0; c < c1; c++) vr[c] += xr[c - c0];
                    else
                        for (int64_t c = c0; c < c1; c++) MAX_TO(vr[c], xr[c - c0]);
                }
            }
            src = v;
        }
        /* row pass over the band laid end to end, the last row's tail left out */
        const int64_t nz = (rows - 1) * Wz + g->Wo;
        for (int64_t i = 0; i < nz; i++) z[i] = init;
        for (int64_t kw = 0; kw < a->kw; kw++) {
            const int64_t off = kw * a->dw;
            if (a->avg)
                STRIDED(ADD_TO, z, src, s, off, nz);
            else
                STRIDED(MAX_TO, z, src, s, off, nz);
        }
        for (int64_t r = 0; r < rows; r++) {
            float *yr = y + (size_t)((o0 + r) * g->Wo);
            const float *zr = z + (size_t)(r * Wz);
            if (a->avg) {
                const float ch = (float)avg_count(a, (o0 + r) * a->sh - a->ph, a->kh, g->H, a->phe);
                for (int64_t ow = 0; ow < g->Wo; ow++) yr[ow] = zr[ow] / (ch * count_w[ow]);
            } else {
                memcpy(yr, zr, (size_t)g->Wo * sizeof(float));
            }
        }
    }
}

/* The per-row passes: each folds up to 3 rows (or taps) per loop with the accumulator in a register, the first
 * chunk from the init value and later ones from what the previous chunk stored, so the taps fold in the same
 * order and with the same operations as pool_plane's passes (the same bits), without a store per tap. SSE2
 * (x86-64 baseline) where the compiler would not find the single instruction: x86's max returns its second
 * operand unless the first is greater, exactly MAX_TO, but a max from the -inf init compiles to four. */
#define INIT(AVG) ((AVG) ? 0.0f : -INFINITY)
#ifdef __SSE2__
#define VOP(AVG, acc, v) ((AVG) ? _mm_add_ps((acc), (v)) : _mm_max_ps((v), (acc)))
#endif
#define SOP(AVG, acc, v)                                                                                              \
    do {                                                                                                              \
        if (AVG)                                                                                                      \
            ADD_TO(acc, v);                                                                                           \
        else                                                                                                          \
            MAX_TO(acc, v);                                                                                           \
    } while (0)

/* v[i] = op over rows r0, r1, r2 (the first M) of r[i], from the init value (FIRST) or from v[i]. */
static inline __attribute__((always_inline)) void col_fold_k(int AVG, int M, int FIRST, const float *restrict r0,
                                                             const float *restrict r1, const float *restrict r2,
                                                             float *restrict v, int64_t n)
{
    int64_t i = 0;
#ifdef __SSE2__
    for (; i + 4 <= n; i += 4) {
        __m128 acc = FIRST ? _mm_set1_ps(INIT(AVG)) : _mm_loadu_ps(v + i);
        acc = VOP(AVG, acc, _mm_loadu_ps(r0 + i));
        if (M > 1) acc = VOP(AVG, acc, _mm_loadu_ps(r1 + i));
        if (M > 2) acc = VOP(AVG, acc, _mm_loadu_ps(r2 + i));
        _mm_storeu_ps(v + i, acc);
    }
#endif
    for (; i < n; i++) {
        float acc = FIRST ? INIT(AVG) : v[i];
        SOP(AVG, acc, r0[i]);
        if (M > 1) SOP(AVG, acc, r1[i]);
        if (M > 2) SOP(AVG, acc, r2[i]);
        v[i] = acc;
    }
}

/* v[i] = op over the nr rows (in order) of rows[q][i], from the init value (first) or from v[i]. */
static void col_fold(int avg, const float *const *rows, int64_t nr, float *restrict v, int64_t n, int first)
{
    if (nr == 0 && first)
        for (int64_t i = 0; i < n; i++) v[i] = INIT(avg);
    for (int64_t q = 0; q < nr; q += 3) {
        const int m = nr - q < 3 ? (int)(nr - q) : 3, f = first && q == 0;
        const float *r0 = rows[q], *r1 = rows[q + (m > 1)], *r2 = rows[q + 2 * (m > 2)];
        switch ((avg ? 6 : 0) + (f ? 3 : 0) + m - 1) { /* constant arguments: one specialized loop each */
        case 0: col_fold_k(0, 1, 0, r0, r1, r2, v, n); break;
        case 1: col_fold_k(0, 2, 0, r0, r1, r2, v, n); break;
        case 2: col_fold_k(0, 3, 0, r0, r1, r2, v, n); break;
        case 3: col_fold_k(0, 1, 1, r0, r1, r2, v, n); break;
        case 4: col_fold_k(0, 2, 1, r0, r1, r2, v, n); break;
        case 5: col_fold_k(0, 3, 1, r0, r1, r2, v, n); break;
        case 6: col_fold_k(1, 1, 0, r0, r1, r2, v, n); break;
        case 7: col_fold_k(1, 2, 0, r0, r1, r2, v, n); break;
        case 8: col_fold_k(1, 3, 0, r0, r1, r2, v, n); break;
        case 9: col_fold_k(1, 1, 1, r0, r1, r2, v, n); break;
        case 10: col_fold_k(1, 2, 1, r0, r1, r2, v, n); break;
        default: col_fold_k(1, 3, 1, r0, r1, r2, v, n); break;
        }
    }
}

#ifdef __SSE2__
/* v[S*i .. S*i + 3*S) as the four values at stride S (1 or 2) */
static inline __attribute__((always_inline)) __m128 load_s(int S, const float *p)
{
    if (S == 1) return _mm_loadu_ps(p);
    return _mm_shuffle_ps(_mm_loadu_ps(p), _mm_loadu_ps(p + 4), _MM_SHUFFLE(2, 0, 2, 0));
}
#endif

/* z[i] = op over taps o0, o1, o2 (the first M) of v[S*i + o], from the init value (FIRST) or from z[i]; S is 1,
 * 2, or 0 for the run-time stride s. */
static inline __attribute__((always_inline)) void row_fold_k(int AVG, int M, int FIRST, int S, int64_t s,
                                                             const float *restrict v, int64_t o0, int64_t o1,
                                                             int64_t o2, float *restrict z, int64_t n)
{
    const int64_t st = S ? S : s;
    int64_t i = 0;
#ifdef __SSE2__
    /* the stride-2 loads read one float past the last tap: stop the vector loop a group early */
    for (; S && i + 4 + (S == 2) <= n; i += 4) {
        __m128 acc = FIRST ? _mm_set1_ps(INIT(AVG)) : _mm_loadu_ps(z + i);
        acc = VOP(AVG, acc, load_s(S, v + S * i + o0));
        if (M > 1) acc = VOP(AVG, acc, load_s(S, v + S * i + o1));
        if (M > 2) acc = VOP(AVG, acc, load_s(S, v + S * i + o2));
        _mm_storeu_ps(z + i, acc);
    }
#endif
    for (; i < n; i++) {
        float acc = FIRST ? INIT(AVG) : z[i];
        SOP(AVG, acc, v[st * i + o0]);
        if (M > 1) SOP(AVG, acc, v[st * i + o1]);
        if (M > 2) SOP(AVG, acc, v[st * i + o2]);
        z[i] = acc;
    }
}

#define ROW_FOLD_M(AVG, FIRST, S)                                                                                     \
    do {                                                                                                              \
        if (m == 1)                                                                                                   \
            row_fold_k(AVG, 1, FIRST, S, s, v, o0, o1, o2, z, n);                                                     \
        else if (m == 2)                                                                                              \
            row_fold_k(AVG, 2, FIRST, S, s, v, o0, o1, o2, z, n);                                                     \
        else                                                                                                          \
            row_fold_k(AVG, 3, FIRST, S, s, v, o0, o1, o2, z, n);                                                     \
    } while (0)
#define ROW_FOLD_S(AVG, FIRST)                                                                                        \
    do {                                                                                                              \
        if (s == 1)                                                                                                   \
            ROW_FOLD_M(AVG, FIRST, 1);                                                                                \
        else if (s == 2)                                                                                              \
            ROW_FOLD_M(AVG, FIRST, 2);                                                                                \
        else                                                                                                          \
            ROW_FOLD_M(AVG, FIRST, 0);                                                                                \
    } while (0)

/* z[i] = op over taps q < kw (in order) of v[i*s + q*dw], from the init value. */
static void row_fold(int avg, const float *restrict v, int64_t s, int64_t dw, int64_t kw, float *restrict z, int64_t n)
{
    for (int64_t q = 0; q < kw; q += 3) {
        const int m = kw - q < 3 ? (int)(kw - q) : 3;
        const int64_t o0 = q * dw, o1 = (q + (m > 1)) * dw, o2 = (q + 2 * (m > 2)) * dw;
        if (avg && q == 0)
            ROW_FOLD_S(1, 1);
        else if (avg)
            ROW_FOLD_S(1, 0);
        else if (q == 0)
            ROW_FOLD_S(0, 1);
        else
            ROW_FOLD_S(0, 0);
    }
}

/* The 2x2 stride-2 window with every window inside the input (no padding), both passes fused per output row.
 * The same operations in the same order as the passes (column pass of each column from the init value, then the
 * row pass over the pair), so the same bits. SSE2 has the x86 max's exact semantics (the first operand if
 * greater, else the second: NaN never wins against the accumulator) and deinterleaves the pairs in registers. */
static void pool_2x2(const pool_attr *a, const pool_geom *g, const float *x, float *y, const float *count_w)
{
    const int64_t W = g->W, Wo = g->Wo;
    for (int64_t oh = 0; oh < g->Ho; oh++) {
        const float *r0 = x + (size_t)(2 * oh * W), *r1 = r0 + W;
        float *yr = y + (size_t)(oh * Wo);
        int64_t ow = 0;
        if (a->avg) {
            const float ch = 2.0f; /* every window is whole: its row count is 2 with or without count_include_pad */
#ifdef __SSE2__
            const __m128 zero = _mm_setzero_ps(), vch = _mm_set1_ps(ch);
            for (; ow + 4 <= Wo; ow += 4) {
                const __m128 c0 = _mm_add_ps(_mm_add_ps(zero, _mm_loadu_ps(r0 + 2 * ow)), _mm_loadu_ps(r1 + 2 * ow));
                const __m128 c1 =
                    _mm_add_ps(_mm_add_ps(zero, _mm_loadu_ps(r0 + 2 * ow + 4)), _mm_loadu_ps(r1 + 2 * ow + 4));
                const __m128 ev = _mm_shuffle_ps(c0, c1, _MM_SHUFFLE(2, 0, 2, 0));
                const __m128 od = _mm_shuffle_ps(c0, c1, _MM_SHUFFLE(3, 1, 3, 1));
                const __m128 z = _mm_add_ps(_mm_add_ps(zero, ev), od);
                _mm_storeu_ps(yr + ow, _mm_div_ps(z, _mm_mul_ps(vch, _mm_loadu_ps(count_w + ow))));
            }
#endif
            for (; ow < Wo; ow++) {
                const float c0 = (0.0f + r0[2 * ow]) + r1[2 * ow], c1 = (0.0f + r0[2 * ow + 1]) + r1[2 * ow + 1];
                yr[ow] = ((0.0f + c0) + c1) / (ch * count_w[ow]);
            }
        } else {
            rnnf_maxpool_2x2_row(r0, r1, yr, Wo);
        }
    }
}

void rnnf_maxpool_2x2_row(const float *r0, const float *r1, float *yr, int64_t Wo)
{
    int64_t ow = 0;
#ifdef __SSE2__
    const __m128 ninf = _mm_set1_ps(-INFINITY);
    for (; ow + 4 <= Wo; ow += 4) {
        const __m128 c0 = _mm_max_ps(_mm_loadu_ps(r1 + 2 * ow), _mm_max_ps(_mm_loadu_ps(r0 + 2 * ow), ninf));
        const __m128 c1 = _mm_max_ps(_mm_loadu_ps(r1 + 2 * ow + 4), _mm_max_ps(_mm_loadu_ps(r0 + 2 * ow + 4), ninf));
        const __m128 ev = _mm_shuffle_ps(c0, c1, _MM_SHUFFLE(2, 0, 2, 0));
        const __m128 od = _mm_shuffle_ps(c0, c1, _MM_SHUFFLE(3, 1, 3, 1));
        _mm_storeu_ps(yr + ow, _mm_max_ps(od, _mm_max_ps(ev, ninf)));
    }
#endif
    for (; ow < Wo; ow++) {
        float c0 = -INFINITY, c1 = -INFINITY, z = -INFINITY;
        MAX_TO(c0, r0[2 * ow]);
        MAX_TO(c0, r1[2 * ow]);
        MAX_TO(c1, r0[2 * ow + 1]);
        MAX_TO(c1, r1[2 * ow + 1]);
        MAX_TO(z, c0);
        MAX_TO(z, c1);
        yr[ow] = z;
    }
}

static int is_2x2(const pool_attr *a, const pool_geom *g)
{
    return a->ns == 2 && a->kh == 2 && a->kw == 2 && a->sh == 2 && a->sw == 2 && a->dh == 1 && a->dw == 1 &&
           a->ph == 0 && a->pw == 0 && 2 * g->Ho <= g->H && 2 * g->Wo <= g->W;
}

/* Long output rows, one at a time: the column pass over the kh input rows into one padded row v (its padding
 * columns hold the init value, written once), then the row pass straight into the output row. Two loops per
 * output row, each reading its inputs once. */
static void pool_rows(const pool_attr *a, const pool_geom *g, const float *x, float *y, const float *count_w,
                      float *v)
{
    const int64_t W = g->W, Wp = g->Wp, Wo = g->Wo;
    const int64_t c0 = a->pw, c1 = a->pw + W < Wp ? a->pw + W : Wp; /* padded columns holding input */
    const int in_place = a->kh == 1 && g->direct;                  /* 1-D, no padding: no column pass */
    if (!in_place) {
        const float init = a->avg ? 0.0f : -INFINITY;
        for (int64_t c = 0; c < c0 && c < Wp; c++) v[c] = init;
        for (int64_t c = c1 > c0 ? c1 : c0; c < Wp; c++) v[c] = init;
    }
    const float *rows[ROW_TABLE];
    for (int64_t oh = 0; oh < g->Ho; oh++) {
        float *yr = y + (size_t)(oh * Wo);
        const float *src = x;
        if (!in_place) {
            /* the window's rows in chunks (the table is on the stack); later chunks fold into what earlier stored */
            for (int64_t kh0 = 0; kh0 < a->kh; kh0 += ROW_TABLE) {
                const int64_t kh1 = a->kh - kh0 < ROW_TABLE ? a->kh : kh0 + ROW_TABLE;
                int64_t nr = 0;
                for (int64_t kh = kh0; kh < kh1; kh++) {
                    const int64_t ih = oh * a->sh + kh * a->dh - a->ph;
                    if (ih >= 0 && ih < g->H) rows[nr++] = x + (size_t)(ih * W);
                }
                if (c1 > c0) col_fold(a->avg, rows, nr, v + c0, c1 - c0, kh0 == 0);
            }
            src = v;
        }
        row_fold(a->avg, src, a->sw, a->dw, a->kw, yr, Wo);
        if (a->avg) {
            const float ch = (float)avg_count(a, oh * a->sh - a->ph, a->kh, g->H, a->phe);
            for (int64_t ow = 0; ow < Wo; ow++) yr[ow] = yr[ow] / (ch * count_w[ow]);
        }
    }
}

static void pool_one(const pool_attr *a, const pool_geom *g, const float *x, float *y, const float *count_w,
                     float *scratch)
{
    if (is_2x2(a, g))
        pool_2x2(a, g, x, y, count_w);
    else if (g->rowwise)
        pool_rows(a, g, x, y, count_w, scratch);
    else
        pool_plane(a, g, x, y, count_w, scratch);
}

static rnnf_status pool_run(const rnnf_gnode *node, const rnnf_tensor *in, rnnf_tensor *out, rnnf_op_ctx *ctx)
{
    pool_attr a;
    pool_geom g;
    attr_of(node, &a);
    rnnf_status st = pool_geom_of(&a, in, out, &g, ctx->message);
    if (st != RNNF_OK || g.planes == 0 || g.Ho == 0 || g.Wo == 0) return st;
    float *count_w = ctx->scratch;
    if (a.avg)
        for (int64_t ow = 0; ow < g.Wo; ow++) count_w[ow] = (float)avg_count(&a, ow * a.sw - a.pw, a.kw, g.W, a.pwe);
    char *threads = (char *)ctx->scratch + counts_bytes(&a, &g);
    const float *x = in[0].data;
    float *y = out[0].data;
    const size_t in_plane = (size_t)(g.H * g.W), out_plane = (size_t)(g.Ho * g.Wo);
    const double taps = (double)g.planes * (double)out_plane * (double)(a.kh * a.kw);
#ifdef _OPENMP
    int nt = ctx->n_threads < g.planes ? ctx->n_threads : (int)g.planes;
    if (nt > 1 && taps >= PAR_MIN_TAPS) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t p = 0; p < g.planes; p++)
            pool_one(&a, &g, x + p * in_plane, y + p * out_plane, count_w,
                     (float *)(threads + (size_t)omp_get_thread_num() * g.thread_bytes));
        return RNNF_OK;
    }
#endif
    (void)taps;
    for (int64_t p = 0; p < g.planes; p++)
        pool_one(&a, &g, x + p * in_plane, y + p * out_plane, count_w, (float *)threads);
    return RNNF_OK;
}

const rnnf_op_vtable rnnf_op_maxpool = {"maxpool", pool_prepare, pool_scratch, pool_run, NULL};
const rnnf_op_vtable rnnf_op_avgpool = {"avgpool", pool_prepare, pool_scratch, pool_run, NULL};
