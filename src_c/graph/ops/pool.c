/* pool.c: RNNF_OP_MAXPOOL and RNNF_OP_AVGPOOL over 1-D and 2-D inputs, with ONNX / onnxruntime semantics.
 *
 * Padding never takes part in a max, and a window with no real element (possible only with dilations) gives
 * -inf, the max of nothing (onnxruntime starts from the lowest finite float, so it returns that there and for
 * a window of -inf values). The average divides the sum of the real elements by the window's
 * real element count (count_include_pad = 0) or by its size clipped to the padded input (count_include_pad
 * = 1), so ceil-mode windows that run past the end pad count only up to the end padding, as in onnxruntime.
 * The output dims arrive resolved (ceil_mode included); they are checked against the floor and ceil sizes.
 *
 * Max and sum are separable, so a 2-D window is a column pass (over kh) then a row pass (over kw), each a long
 * loop the compiler vectorizes (see pool_plane); an output folds its taps in the same order whatever the
 * thread count (threads split whole planes). The average's order (columns first) differs from onnxruntime's
 * row-major sum by rounding only.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "graph/graph.h"

#define PAR_MIN_TAPS 200000 /* below this a parallel region's start-up (several us) costs more than it saves */
#define MAX_ATTR (1 << 24)
#define BAND_FLOATS 4096 /* a band of padded rows (16 KiB) stays in L1 between the two passes */

typedef struct {
    int ns, avg, include_pad;
    int64_t kh, kw, sh, sw, dh, dw, ph, pw, phe, pwe; /* 1-D: the H entries are 1, 1, 1, 0, 0 */
} pool_attr;

typedef struct {
    int64_t planes, H, W, Ho, Wo;
    int64_t Wp, Wz, band; /* padded row width (a multiple of sw), Wp / sw, output rows per band */
    int direct;           /* 1-D without padding: the row pass reads the input in place */
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
            pool_plane(&a, &g, x + p * in_plane, y + p * out_plane, count_w,
                       (float *)(threads + (size_t)omp_get_thread_num() * g.thread_bytes));
        return RNNF_OK;
    }
#endif
    (void)taps;
    for (int64_t p = 0; p < g.planes; p++)
        pool_plane(&a, &g, x + p * in_plane, y + p * out_plane, count_w, (float *)threads);
    return RNNF_OK;
}

const rnnf_op_vtable rnnf_op_maxpool = {"maxpool", pool_prepare, pool_scratch, pool_run, NULL};
const rnnf_op_vtable rnnf_op_avgpool = {"avgpool", pool_prepare, pool_scratch, pool_run, NULL};
