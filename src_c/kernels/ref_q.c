/* ref_q.c: scalar GEMMs over int8 and float16 panels (kernels_q.h), the executable spec of the quantized
 * kernels. Built like ref.c, without FMA contraction.
 */
#include <string.h>

#include "kernels_q.h"

#define UB RNNF_UB

float rnnf_half_to_float(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu, bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000u | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else {
        /* Subnormal half: shift the mantissa up until its leading one becomes the implicit bit. */
        exp = 113;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            exp--;
        }
        bits = sign | (exp << 23) | ((mant & 0x3FFu) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

void rnnf_gemm_packed_i8_ref(int M, int K, const float *A, int lda, const float *Bp, int p0, int p1,
                             const float *bias, float *C, int ldc)
{
    const unsigned char *base = (const unsigned char *)Bp;
    for (int p = p0; p < p1; p++) {
        const float *scale = (const float *)(const void *)(base + (size_t)p * RNNF_Q8_PANEL_BYTES(K));
        const int8_t *q = (const int8_t *)(scale + UB);
        for (int m = 0; m < M; m++) {
            const float *a = A + (size_t)m * lda;
            float *c = C + (size_t)m * ldc + (size_t)p * UB;
            for (int j = 0; j < UB; j++) {
                float s = 0.0f;
                for (int k = 0; k < K; k++) s += a[k] * (float)q[(size_t)k * UB + j];
                s *= scale[j];
                c[j] = bias ? s + bias[(size_t)p * UB + j] : s;
            }
        }
    }
}

void rnnf_gemm_packed_f16_ref(int M, int K, const float *A, int lda, const float *Bp, int p0, int p1,
                              const float *bias, float *C, int ldc)
{
    const uint16_t *base = (const uint16_t *)(const void *)Bp;
    for (int p = p0; p < p1; p++) {
        const uint16_t *panel = base + (size_t)p * K * UB;
        for (int m = 0; m < M; m++) {
            const float *a = A + (size_t)m * lda;
            float *c = C + (size_t)m * ldc + (size_t)p * UB;
            for (int j = 0; j < UB; j++) {
                float s = 0.0f;
                for (int k = 0; k < K; k++) s += a[k] * rnnf_half_to_float(panel[(size_t)k * UB + j]);
                c[j] = bias ? s + bias[(size_t)p * UB + j] : s;
            }
        }
    }
}
