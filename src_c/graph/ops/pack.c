/* pack.c: the panel packing the GEMM-based ops (MatMul, Conv, ConvTranspose) share.
 *
 * gemm_packed streams B as panels of RNNF_UB columns, [K][RNNF_UB] each, with 32-byte aligned loads, so every
 * packed matrix and every scratch block handed to it starts on a 64-byte boundary. Packing at load (constant
 * weights) and packing into scratch at run (a MatMul's variable B, a ConvTranspose's input) use one routine;
 * the strided form lets a caller pack a transposed view (Conv's W^T) without first copying it. A MatMul's B stored
 * quantized (rnnf_tensor_desc.stored) is widened while it is packed, into scratch at each run.
 */
#include <string.h>

#include "graph/graph.h"
#include "kernels/kernels_q.h"

#define UB RNNF_UB

/* dst (ceil(N/UB) panels of [K][UB]) from element (k, n) at b[k*ldk + n*ldn]; columns past N are zero.
 * Not in graph.h: the ops that pack into scratch declare it themselves. */
void rnnf_pack_b_strided(const float *b, int64_t K, int64_t N, int64_t ldk, int64_t ldn, float *dst);

void rnnf_pack_b_strided(const float *b, int64_t K, int64_t N, int64_t ldk, int64_t ldn, float *dst)
{
    const int64_t n_panels = (N + UB - 1) / UB;
    for (int64_t p = 0; p < n_panels; p++) {
        float *panel = dst + (size_t)p * (size_t)K * UB;
        const int64_t n0 = p * UB, w = N - n0 < UB ? N - n0 : UB;
        if (ldn == 1) {
            for (int64_t k = 0; k < K; k++) {
                float *d = panel + (size_t)k * UB;
                const float *s = b + (size_t)(k * ldk + n0);
                int64_t j = 0;
                for (; j < w; j++) d[j] = s[j];
                for (; j < UB; j++) d[j] = 0.0f;
            }
        } else {
            /* a transposed view: walk the source along its rows (k), writing one panel column at a time */
            if (w < UB)
                for (int64_t k = 0; k < K; k++) memset(panel + (size_t)k * UB + w, 0, (size_t)(UB - w) * sizeof(float));
            for (int64_t j = 0; j < w; j++) {
                const float *s = b + (size_t)((n0 + j) * ldn);
                for (int64_t k = 0; k < K; k++) panel[(size_t)k * UB + j] = s[(size_t)(k * ldk)];
            }
        }
    }
}

void rnnf_pack_b_stored(const void *b, int stored, const float *scales, int64_t K, int64_t N, float *dst)
{
    const int64_t n_panels = (N + UB - 1) / UB;
    for (int64_t p = 0; p < n_panels; p++) {
        float *panel = dst + (size_t)p * (size_t)K * UB;
        const int64_t n0 = p * UB, w = N - n0 < UB ? N - n0 : UB;
        for (int64_t k = 0; k < K; k++) {
            float *d = panel + (size_t)k * UB;
            int64_t j = 0;
            if (stored == RNNF_WEIGHTS_I8) {
                /* (float)q * scale: the float32 product numpy's dequantization makes (rnnfast/quantize.py) */
                const int8_t *s = (const int8_t *)b + (size_t)(k * N + n0);
                for (; j < w; j++) d[j] = (float)s[j] * scales[n0 + j];
            } else {
                const uint16_t *s = (const uint16_t *)b + (size_t)(k * N + n0);
                for (; j < w; j++) d[j] = rnnf_half_to_float(s[j]);
            }
            for (; j < UB; j++) d[j] = 0.0f;
        }
    }
}

float *rnnf_pack_b(rnnf_pool *pool, const float *b, int64_t K, int64_t N)
{
    if (K < 0 || N < 0) return NULL;
    const int64_t n_panels = (N + UB - 1) / UB;
    if (K > 0 && (uint64_t)n_panels > (uint64_t)(SIZE_MAX / sizeof(float) / UB) / (uint64_t)K) return NULL;
    float *dst = rnnf_mem_alloc_raw(pool, (size_t)n_panels * (size_t)K * UB * sizeof(float));
    if (!dst) return NULL;
    rnnf_pack_b_strided(b, K, N, N, 1, dst);
    return dst;
}
