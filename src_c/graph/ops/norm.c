/* norm.c: Softmax / LogSoftmax, LayerNormalization and the per-channel affine (BatchNorm folded in Python).
 *
 * Softmax and LayerNorm sum whole rows, where float32 accumulation loses digits as rows grow (onnxruntime's
 * LayerNorm drifts to 5e-6 relative at 50,000 elements), so they work in double: Softmax's exponentials and
 * denominator, LayerNorm's mean and variance (two passes, so the variance does not cancel as E[x^2] - E[x]^2
 * would) and its normalised values; each result is rounded to float once. Softmax subtracts the row's maximum
 * first (opset 13: one axis); a row holding NaN or +inf, or only -inf, gives NaN throughout, as onnxruntime.
 * Threads split rows or columns, never a sum, so any thread count gives the same bits.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "graph/graph.h"

/* Softmax over an axis with an inner stride: columns per unit of work, which bounds the per-thread scratch. */
#define SOFTMAX_COLS 512
/* ChannelAffine applies the activation to at least this many elements at a time (whole rows), while in cache. */
#define AFFINE_ROW_ACT 256

static int64_t prod(const int64_t *d, int a, int b)
{
    int64_t p = 1;
    for (int i = a; i < b; i++) p *= d[i];
    return p;
}

static rnnf_status bad_counts(char *message, const char *op, const rnnf_gnode *node)
{
    snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "%s: %d inputs, %d outputs, %d integer and %d float attributes", op,
             node->n_in, node->n_out, node->n_iattr, node->n_fattr);
    return RNNF_ERR_FORMAT;
}

/* ---- Softmax ---- */

/* NaN-propagating max in a form the compiler vectorizes (a NaN m stays NaN: both comparisons are false) */
static inline float max_nan(float m, float v)
{
    const float t = v > m ? v : m;
    return v != v ? v : t;
}

/* 32 running maxima updated element-wise, which vectorizes where a single running maximum would not */
static float row_max(const float *x, int64_t n)
{
    float m = x[0];
    int64_t i = 0;
    if (n >= 32) {
        float b[32];
        for (int k = 0; k < 32; k++) b[k] = x[k];
        for (i = 32; i + 32 <= n; i += 32)
            for (int k = 0; k < 32; k++) b[k] = max_nan(b[k], x[i + k]);
        for (int k = 0; k < 32; k++) m = max_nan(m, b[k]);
    }
    for (; i < n; i++) m = max_nan(m, x[i]);
    return m;
}

static void softmax_row(const float *x, float *y, int64_t L, int log_out)
{
    const float m = row_max(x, L);
    const double md = m;
    double s = 0.0;
    if (log_out) {
        for (int64_t i = 0; i < L; i++) s += exp((double)x[i] - md);
        const double ls = log(s);
        for (int64_t i = 0; i < L; i++) y[i] = (float)(((double)x[i] - md) - ls);
        return;
    }
    for (int64_t i = 0; i < L; i++) {
        const double e = exp((double)x[i] - md);
        y[i] = (float)e;
        s += e;
    }
    const double inv = 1.0 / s;
    for (int64_t i = 0; i < L; i++) y[i] = (float)((double)y[i] * inv);
}

/* Columns [c0, c1) of one outer block [L][inner]: the same operations per column as softmax_row. */
static void softmax_cols(const float *x, float *y, int64_t L, int64_t inner, int64_t c0, int64_t c1, int log_out,
                         float *mx, double *sum)
{
    const int64_t w = c1 - c0;
    x += c0;
    y += c0;
    for (int64_t j = 0; j < w; j++) {
        mx[j] = x[j];
        sum[j] = 0.0;
    }
    for (int64_t l = 1; l < L; l++)
        for (int64_t j = 0; j < w; j++) mx[j] = max_nan(mx[j], x[l * inner + j]);
    for (int64_t l = 0; l < L; l++)
        for (int64_t j = 0; j < w; j++) {
            const double e = exp((double)x[l * inner + j] - (double)mx[j]);
            if (!log_out) y[l * inner + j] = (float)e;
            sum[j] += e;
        }
    if (log_out) {
        for (int64_t j = 0; j < w; j++) sum[j] = log(sum[j]);
        for (int64_t l = 0; l < L; l++)
            for (int64_t j = 0; j < w; j++)
                y[l * inner + j] = (float)(((double)x[l * inner + j] - (double)mx[j]) - sum[j]);
        return;
    }
    for (int64_t j = 0; j < w; j++) sum[j] = 1.0 / sum[j];
    for (int64_t l = 0; l < L; l++)
        for (int64_t j = 0; j < w; j++) y[l * inner + j] = (float)((double)y[l * inner + j] * sum[j]);
}

static rnnf_status softmax_prepare(rnnf_gnode *node, const rnnf_tensor *const_in, char *message)
{
    (void)const_in;
    if (node->n_in != 1 || node->n_out != 1 || node->n_iattr != 2 || node->n_fattr != 0)
        return bad_counts(message, "softmax", node);
    if (node->iattr[0] < 0 || node->iattr[0] >= RNNF_G_MAX_RANK || (node->iattr[1] != 0 && node->iattr[1] != 1)) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "softmax: axis %" PRId64 " and log %" PRId64
                 ", expected an axis >= 0 and log 0 or 1", node->iattr[0], node->iattr[1]);
        return RNNF_ERR_FORMAT;
    }
    return RNNF_OK;
}

static size_t softmax_scratch(const rnnf_gnode *node, const rnnf_tensor *in, const rnnf_tensor *out, int n_threads)
{
    (void)out;
    const int axis = (int)node->iattr[0];
    if (axis >= in[0].rank || prod(in[0].dims, axis + 1, in[0].rank) == 1) return 0;
    return (size_t)n_threads * SOFTMAX_COLS * (sizeof(float) + sizeof(double));
}

static rnnf_status softmax_run(const rnnf_gnode *node, const rnnf_tensor *in, rnnf_tensor *out, rnnf_op_ctx *ctx)
{
    const int axis = (int)node->iattr[0], log_out = (int)node->iattr[1];
    const rnnf_tensor *x = &in[0];
    if (x->dtype != RNNF_DT_F32 || out[0].dtype != RNNF_DT_F32 || axis >= x->rank ||
        rnnf_tensor_numel(&out[0]) != rnnf_tensor_numel(x)) {
        snprintf(ctx->message, RNNF_ERROR_MESSAGE_SIZE, "softmax: axis %d of a rank-%d tensor (float32 in and out)",
                 axis, x->rank);
        return RNNF_ERR_SHAPE;
    }
    const int64_t outer = prod(x->dims, 0, axis), L = x->dims[axis], inner = prod(x->dims, axis + 1, x->rank);
    const int64_t n = outer * L * inner;
    if (n == 0) return RNNF_OK;
    const float *X = x->data;
    float *Y = out[0].data;
    if (inner == 1) {
        const int nt = par_threads(n, ctx->n_threads, outer);
        PARALLEL_TASKS(t, {
            for (int64_t r = outer * t / nt; r < outer * (t + 1) / nt; r++) softmax_row(X + r * L, Y + r * L, L, log_out);
        });
        return RNNF_OK;
    }
    const int64_t chunks = (inner + SOFTMAX_COLS - 1) / SOFTMAX_COLS, units = outer * chunks;
    const int nt = par_threads(n, ctx->n_threads, units);
    PARALLEL_TASKS(t, {
        double *sum = (double *)ctx->scratch + (size_t)t * SOFTMAX_COLS;
        float *mx = (float *)((double *)ctx->scratch + (size_t)nt * SOFTMAX_COLS) + (size_t)t * SOFTMAX_COLS;
        for (int64_t u = units * t / nt; u < units * (t + 1) / nt; u++) {
            const int64_t o = u / chunks, c0 = (u % chunks) * SOFTMAX_COLS;
            const int64_t c1 = c0 + SOFTMAX_COLS < inner ? c0 + SOFTMAX_COLS : inner;
            softmax_cols(X + o * L * inner, Y + o * L * inner, L, inner, c0, c1, log_out, mx, sum);
        }
    });
    return RNNF_OK;
}

const rnnf_op_vtable rnnf_op_softmax = {"softmax", softmax_prepare, softmax_scratch, softmax_run, NULL};

/* ---- LayerNormalization ---- */

static rnnf_status layernorm_prepare(rnnf_gnode *node, const rnnf_tensor *const_in, char *message)
{
    (void)const_in;
    if (node->n_in < 2 || node->n_in > 3 || node->n_out < 1 || node->n_out > 3 || node->n_iattr != 1 ||
        node->n_fattr != 1)
        return bad_counts(message, "layernorm", node);
    if (node->iattr[0] < 0 || node->iattr[0] >= RNNF_G_MAX_RANK || !(node->fattr[0] >= 0.0f)) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "layernorm: axis %" PRId64 " and epsilon %g, expected an axis "
                 ">= 0 and epsilon >= 0", node->iattr[0], (double)node->fattr[0]);
        return RNNF_ERR_FORMAT;
    }
    return RNNF_OK;
}

/* sum of x[i] (sq = 0) or of (x[i] - c)^2 (sq = 1) in double: eight partial sums in a fixed order, so the loop
 * is not one chain of dependent additions and vectorizes */
static double row_sum(const float *x, int64_t n, int sq, double c)
{
    double p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    if (sq)
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) {
                const double d = (double)x[i + k] - c;
                p[k] += d * d;
            }
    else
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) p[k] += (double)x[i + k];
    double s = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
    for (; i < n; i++) {
        const double d = (double)x[i] - c;
        s += sq ? d * d : (double)x[i];
    }
    return s;
}

static void layernorm_row(const float *x, float *y, int64_t D, double eps, const float *scale, int64_t s_step,
                          const float *bias, int64_t b_step, float *mean_out, float *inv_out)
{
    const double mean = row_sum(x, D, 0, 0.0) / (double)D;
    const double inv = 1.0 / sqrt(row_sum(x, D, 1, mean) / (double)D + eps);
    if (mean_out) *mean_out = (float)mean;
    if (inv_out) *inv_out = (float)inv;
    if (s_step && b_step) {
        for (int64_t i = 0; i < D; i++) y[i] = (float)(((double)x[i] - mean) * inv * scale[i] + bias[i]);
    } else if (s_step && !bias) {
        for (int64_t i = 0; i < D; i++) y[i] = (float)(((double)x[i] - mean) * inv * scale[i]);
    } else {
        const double b0 = bias ? bias[0] : 0.0;
        for (int64_t i = 0; i < D; i++)
            y[i] = (float)(((double)x[i] - mean) * inv * scale[i * s_step] + (bias ? bias[i * b_step] : b0));
    }
}

static rnnf_status layernorm_run(const rnnf_gnode *node, const rnnf_tensor *in, rnnf_tensor *out, rnnf_op_ctx *ctx)
{
    const int axis = (int)node->iattr[0];
    const rnnf_tensor *x = &in[0], *sc = &in[1], *bi = node->n_in > 2 ? &in[2] : NULL;
    if (bi && bi->dtype == RNNF_DT_NONE) bi = NULL;
    if (x->dtype != RNNF_DT_F32 || sc->dtype != RNNF_DT_F32 || (bi && bi->dtype != RNNF_DT_F32) ||
        out[0].dtype != RNNF_DT_F32 || axis >= x->rank || rnnf_tensor_numel(&out[0]) != rnnf_tensor_numel(x)) {
        snprintf(ctx->message, RNNF_ERROR_MESSAGE_SIZE, "layernorm: axis %d of a rank-%d tensor (float32 in and out)",
                 axis, x->rank);
        return RNNF_ERR_SHAPE;
    }
    const int64_t rows = prod(x->dims, 0, axis), D = prod(x->dims, axis, x->rank);
    const int64_t ns = rnnf_tensor_numel(sc), nb = bi ? rnnf_tensor_numel(bi) : 1;
    if ((ns != D && ns != 1) || (nb != D && nb != 1)) {
        snprintf(ctx->message, RNNF_ERROR_MESSAGE_SIZE, "layernorm: scale of %" PRId64 " and bias of %" PRId64
                 " elements for rows of %" PRId64, ns, bi ? nb : 0, D);
        return RNNF_ERR_SHAPE;
    }
    float *mean_out = NULL, *inv_out = NULL;
    for (int k = 1; k < node->n_out; k++) {
        if (out[k].dtype == RNNF_DT_NONE) continue;
        if (out[k].dtype != RNNF_DT_F32 || rnnf_tensor_numel(&out[k]) != rows) {
            snprintf(ctx->message, RNNF_ERROR_MESSAGE_SIZE, "layernorm: output %d must hold %" PRId64 " float32", k,
                     rows);
            return RNNF_ERR_SHAPE;
        }
        if (k == 1) mean_out = out[k].data;
        else inv_out = out[k].data;
    }
    if (rows == 0 || D == 0) return RNNF_OK;
    const float *X = x->data, *S = sc->data, *B = bi ? bi->data : NULL;
    float *Y = out[0].data;
    const int64_t s_step = ns == D && D > 1, b_step = bi && nb == D && D > 1;
    const double eps = node->fattr[0];
    const int nt = par_threads(rows * D, ctx->n_threads, rows);
    PARALLEL_TASKS(t, {
        for (int64_t r = rows * t / nt; r < rows * (t + 1) / nt; r++)
            layernorm_row(X + r * D, Y + r * D, D, eps, S, s_step, B, b_step, mean_out ? mean_out + r : NULL,
                          inv_out ? inv_out + r : NULL);
    });
    return RNNF_OK;
}

const rnnf_op_vtable rnnf_op_layernorm = {"layernorm", layernorm_prepare, NULL, layernorm_run, NULL};

/* ---- ChannelAffine ---- */

static rnnf_status affine_prepare(rnnf_gnode *node, const rnnf_tensor *const_in, char *message)
{
    (void)const_in;
    if (node->n_in != 3 || node->n_out != 1 || node->n_iattr != 1 || node->n_fattr != 2)
        return bad_counts(message, "channel_affine", node);
    if (node->iattr[0] < 0 || node->iattr[0] >= RNNF_UN_COUNT) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "channel_affine: unknown activation %" PRId64, node->iattr[0]);
        return RNNF_ERR_FORMAT;
    }
    return RNNF_OK;
}

static rnnf_status affine_run(const rnnf_gnode *node, const rnnf_tensor *in, rnnf_tensor *out, rnnf_op_ctx *ctx)
{
    const rnnf_tensor *x = &in[0];
    if (x->dtype != RNNF_DT_F32 || in[1].dtype != RNNF_DT_F32 || in[2].dtype != RNNF_DT_F32 ||
        out[0].dtype != RNNF_DT_F32 || x->rank < 2 || rnnf_tensor_numel(&out[0]) != rnnf_tensor_numel(x) ||
        rnnf_tensor_numel(&in[1]) != x->dims[1] || rnnf_tensor_numel(&in[2]) != x->dims[1]) {
        snprintf(ctx->message, RNNF_ERROR_MESSAGE_SIZE, "channel_affine: needs float32 x [N, C, ...] (rank %d) with "
                 "scale and shift of C elements", x->rank);
        return RNNF_ERR_SHAPE;
    }
    const int kind = (int)node->iattr[0];
    const float alpha = node->fattr[0], beta = node->fattr[1];
    const int64_t C = x->dims[1], inner = prod(x->dims, 2, x->rank), rows = x->dims[0] * C, n = rows * inner;
    if (n == 0) return RNNF_OK;
    const float *X = x->data, *S = in[1].data, *B = in[2].data;
    float *Y = out[0].data;
    /* the activation runs over groups of whole rows fixed by the shape alone, so the kernel table's vector and
     * scalar-tail split, and with it every bit, does not depend on the thread count */
    const int64_t group = inner >= AFFINE_ROW_ACT ? 1 : (AFFINE_ROW_ACT + inner - 1) / inner;
    const int64_t units = (rows + group - 1) / group;
    const int nt = par_threads(n, ctx->n_threads, units);
    PARALLEL_TASKS(t, {
        for (int64_t u = units * t / nt; u < units * (t + 1) / nt; u++) {
            const int64_t r0 = u * group, r1 = r0 + group < rows ? r0 + group : rows;
            for (int64_t r = r0; r < r1; r++) {
                const float s = S[r % C], b = B[r % C];
                const float *xr = X + r * inner;
                float *yr = Y + r * inner;
                for (int64_t i = 0; i < inner; i++) yr[i] = xr[i] * s + b;
            }
            if (kind != RNNF_UN_NONE)
                rnnf_unary_apply(kind, alpha, beta, Y + r0 * inner, Y + r0 * inner, (r1 - r0) * inner);
        }
    });
    return RNNF_OK;
}

const rnnf_op_vtable rnnf_op_channel_affine = {"channel_affine", affine_prepare, NULL, affine_run, NULL};
