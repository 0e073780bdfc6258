/* unary.c: the element-wise functions (rnnf_unary_apply) that the Unary op and every fused epilogue share, and
 * the Unary op itself.
 *
 * Each function is ONNX's as onnxruntime computes it, NaN and infinities included. Sigmoid, tanh, exp, elu and
 * softplus go through the kernel table, so the recurrent cells and the graph round them alike and whatever the
 * selected table vectorizes serves both (AVX2: sigmoid and tanh, within 2e-7 absolute, approx.h; the others
 * are libm per element in every table today). The table is not used where its definition differs from ONNX:
 * its relu and AVX2 hardsigmoid turn NaN into 0 (onnxruntime keeps NaN), its gelu cancels in float for
 * negative inputs, and its selu has fixed constants where ONNX has attributes. Functions that are a few
 * arithmetic operations (leakyrelu and softsign included, which the table would run one lane at a time) are
 * plain loops the compiler vectorizes; erf and the gelus are computed in double, since in float the
 * cancellation in 1 + erf(x) costs most of the digits for negative x.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "graph/graph.h"

/* Calls into the kernel table take an int count. */
#define TABLE_CHUNK (1 << 24)
static void table_apply(int act_kind, float alpha, float beta, const float *x, float *y, int64_t n)
{
    const rnnf_kernels *K = rnnf_kernels_get();
    const rnnf_activation act = {act_kind, alpha, beta};
    for (int64_t i = 0; i < n; i += TABLE_CHUNK) {
        const int64_t m = n - i < TABLE_CHUNK ? n - i : TABLE_CHUNK;
        K->activation(&act, x + i, y + i, (int)m);
    }
}

/* x * Phi(x) with Phi from erfc, which keeps its relative accuracy where 1 + erf(x) would cancel. */
static float gelu_erf(float xf)
{
    const double x = xf;
    return (float)(0.5 * x * erfc(-x * 0.70710678118654752440));
}

/* 0.5 x (1 + tanh(u)) == x / (1 + exp(-2u)): no cancellation for negative x; -inf gives NaN as in ONNX. */
static float gelu_tanh(float xf)
{
    const double x = xf;
    const double u = 0.79788456080286535588 * (x + 0.044715 * x * x * x);
    return (float)(x / (1.0 + exp(-2.0 * u)));
}

void rnnf_unary_apply(int kind, float alpha, float beta, const float *x, float *y, int64_t n)
{
    int64_t i;
    switch (kind) {
    case RNNF_UN_TANH: table_apply(RNNF_ACT_TANH, 0.0f, 0.0f, x, y, n); return;
    case RNNF_UN_SIGMOID: table_apply(RNNF_ACT_SIGMOID, 0.0f, 0.0f, x, y, n); return;
    case RNNF_UN_EXP: table_apply(RNNF_ACT_EXP, 0.0f, 0.0f, x, y, n); return;
    case RNNF_UN_ELU: table_apply(RNNF_ACT_ELU, alpha, 0.0f, x, y, n); return;
    case RNNF_UN_SOFTPLUS: table_apply(RNNF_ACT_SOFTPLUS, 0.0f, 0.0f, x, y, n); return;
    case RNNF_UN_NONE:
    case RNNF_UN_IDENTITY:
        if (x != y) memmove(y, x, (size_t)n * sizeof(float));
        return;
    case RNNF_UN_RELU:
        for (i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
        return;
    case RNNF_UN_LEAKYRELU:
        for (i = 0; i < n; i++) y[i] = x[i] >= 0.0f ? x[i] : alpha * x[i];
        return;
    case RNNF_UN_HARDSIGMOID:
        for (i = 0; i < n; i++) {
            const float v = alpha * x[i] + beta;
            y[i] = v > 1.0f ? 1.0f : (v < 0.0f ? 0.0f : v);
        }
        return;
    case RNNF_UN_SOFTSIGN:
        for (i = 0; i < n; i++) y[i] = x[i] / (1.0f + fabsf(x[i]));
        return;
    case RNNF_UN_SELU:
        /* beta is gamma; + 0.0f makes Selu(-0) +0 as onnxruntime's alpha*exp(x) - alpha gives */
        for (i = 0; i < n; i++) y[i] = x[i] > 0.0f ? beta * x[i] : beta * (alpha * expm1f(x[i])) + 0.0f;
        return;
    case RNNF_UN_GELU:
        for (i = 0; i < n; i++) y[i] = gelu_erf(x[i]);
        return;
    case RNNF_UN_GELU_TANH:
        for (i = 0; i < n; i++) y[i] = gelu_tanh(x[i]);
        return;
    case RNNF_UN_ERF:
        for (i = 0; i < n; i++) y[i] = (float)erf((double)x[i]);
        return;
    case RNNF_UN_LOG:
        for (i = 0; i < n; i++) y[i] = logf(x[i]);
        return;
    case RNNF_UN_SQRT:
        for (i = 0; i < n; i++) y[i] = sqrtf(x[i]);
        return;
    case RNNF_UN_ABS:
        for (i = 0; i < n; i++) y[i] = fabsf(x[i]);
        return;
    case RNNF_UN_NEG:
        for (i = 0; i < n; i++) y[i] = -x[i];
        return;
    case RNNF_UN_RECIPROCAL:
        for (i = 0; i < n; i++) y[i] = 1.0f / x[i];
        return;
    case RNNF_UN_CLIP:
        /* comparisons false for NaN, so NaN passes through as in onnxruntime */
        for (i = 0; i < n; i++) {
            const float v = x[i] < alpha ? alpha : x[i];
            y[i] = v > beta ? beta : v;
        }
        return;
    case RNNF_UN_AFFINE:
        /* two roundings, as the Mul and Add it replaces; a lone Mul keeps the sign of a zero product */
        if (beta == 0.0f)
            for (i = 0; i < n; i++) y[i] = alpha * x[i];
        else if (alpha == 1.0f)
            for (i = 0; i < n; i++) y[i] = x[i] + beta;
        else
            for (i = 0; i < n; i++) y[i] = alpha * x[i] + beta;
        return;
    default:
        /* unreachable: every op validates its kind at load */
        for (i = 0; i < n; i++) y[i] = NAN;
        return;
    }
}

static rnnf_status unary_prepare(rnnf_gnode *node, const rnnf_tensor *const_in, char *message)
{
    (void)const_in;
    if (node->n_in != 1 || node->n_out != 1) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "unary: %d inputs and %d outputs, expected 1 and 1",
                 node->n_in, node->n_out);
        return RNNF_ERR_FORMAT;
    }
    if (node->n_iattr != 1 || node->n_fattr != 2) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "unary: %d integer and %d float attributes, expected 1 and 2",
                 node->n_iattr, node->n_fattr);
        return RNNF_ERR_FORMAT;
    }
    if (node->iattr[0] < 0 || node->iattr[0] >= RNNF_UN_COUNT) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "unary: unknown function %" PRId64, node->iattr[0]);
        return RNNF_ERR_FORMAT;
    }
    return RNNF_OK;
}

static rnnf_status unary_run(const rnnf_gnode *node, const rnnf_tensor *in, rnnf_tensor *out, rnnf_op_ctx *ctx)
{
    const int64_t n = rnnf_tensor_numel(&out[0]);
    if (in[0].dtype != RNNF_DT_F32 || out[0].dtype != RNNF_DT_F32 || rnnf_tensor_numel(&in[0]) != n) {
        snprintf(ctx->message, RNNF_ERROR_MESSAGE_SIZE, "unary: needs float32 input and output of one size");
        return RNNF_ERR_SHAPE;
    }
    const int kind = (int)node->iattr[0];
    const float alpha = node->fattr[0], beta = node->fattr[1];
    const float *x = in[0].data;
    float *y = out[0].data;
    const int nt = par_threads(n, ctx->n_threads, n);
    if (nt <= 1) {
        rnnf_unary_apply(kind, alpha, beta, x, y, n);
        return RNNF_OK;
    }
    /* chunks on 16-element boundaries: each element takes the table's vector or scalar-tail path as with one
     * thread, so any thread count gives the same bits */
    const int64_t per = (n / nt + 15) / 16 * 16;
    PARALLEL_TASKS(t, {
        const int64_t a = (int64_t)t * per, b = a + per < n ? a + per : n;
        if (a < b) rnnf_unary_apply(kind, alpha, beta, x + a, y + a, b - a);
    });
    return RNNF_OK;
}

const rnnf_op_vtable rnnf_op_unary = {"unary", unary_prepare, NULL, unary_run, NULL};
