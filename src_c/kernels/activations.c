/* activations.c: the scalar definition of every activation function, from libm.
 *
 * This is the accurate path: the reference kernels use it for everything, and the SIMD kernels fall back to it
 * for the activations they do not vectorize. Compiled without FMA contraction so results do not depend on
 * the compiler's choices.
 */
#include <math.h>

#include "kernels.h"

static float sigmoid_scalar(float x)
{
    /* exp of a negative argument only, so neither branch overflows. */
    if (x >= 0.0f) {
        float e = expf(-x);
        return 1.0f / (1.0f + e);
    }
    float e = expf(x);
    return e / (1.0f + e);
}

float rnnf_act_scalar(const rnnf_activation *act, float x)
{
    const float a = act->alpha, b = act->beta;
    switch (act->kind) {
    case RNNF_ACT_RELU: return x > 0.0f ? x : 0.0f;
    case RNNF_ACT_TANH: return tanhf(x);
    case RNNF_ACT_SIGMOID: return sigmoid_scalar(x);
    case RNNF_ACT_AFFINE: return a * x + b;
    case RNNF_ACT_LEAKYRELU: return x >= 0.0f ? x : a * x;
    case RNNF_ACT_THRESHOLDEDRELU: return x > a ? x : 0.0f;
    case RNNF_ACT_SCALEDTANH: return a * tanhf(b * x);
    case RNNF_ACT_HARDSIGMOID: {
        float v = a * x + b;
        return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
    }
    case RNNF_ACT_ELU: return x >= 0.0f ? x : a * expm1f(x);
    case RNNF_ACT_SOFTSIGN: return x / (1.0f + fabsf(x));
    case RNNF_ACT_SOFTPLUS: return x > 0.0f ? x + log1pf(expf(-x)) : log1pf(expf(x));
    case RNNF_ACT_SELU: {
        /* Constants of Klambauer et al. 2017, as Keras and PyTorch use them. */
        const float scale = 1.0507009873554805f, alpha = 1.6732632423543772f;
        return x > 0.0f ? scale * x : scale * alpha * expm1f(x);
    }
    case RNNF_ACT_SWISH: return x * sigmoid_scalar(x);
    case RNNF_ACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case RNNF_ACT_EXP: return expf(x);
    default: return NAN; /* unreachable: kinds are validated at model creation */
    }
}
