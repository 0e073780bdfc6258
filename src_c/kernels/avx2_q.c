/* avx2_q.c: AVX2 + FMA GEMMs over int8 and float16 panels (kernels_q.h); float16 also needs F16C.
 *
 * Compiled alone with -mavx2 -mfma -mf16c and reached only through rnnf_qgemm_get, which checks F16C at run
 * time before handing out the float16 kernel. Each k-row of a panel is widened to float32 once and used
 * for up to MR rows of A, so the conversion cost shrinks with the batch; at batch 1 the win is the 4x
 * (int8) or 2x (float16) smaller weight stream. Every output element is one FMA chain over k in order,
 * whatever the row blocking, so any split of rows or panels across threads gives the same bits.
 */
#include <immintrin.h>
#include <stdint.h>

#include "kernels_q.h"

#define UB RNNF_UB
#define MR 4

static inline __attribute__((always_inline)) void finish(int R, __m256 acc[][2], const float *scale,
                                                        const float *bias, float *C, int ldc)
{
    const __m256 s0 = scale ? _mm256_loadu_ps(scale) : _mm256_set1_ps(1.0f);
    const __m256 s1 = scale ? _mm256_loadu_ps(scale + 8) : _mm256_set1_ps(1.0f);
    const __m256 z0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    const __m256 z1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
    RNNF_UNROLL
    for (int r = 0; r < R; r++) {
        _mm256_storeu_ps(C + (size_t)r * ldc, _mm256_add_ps(_mm256_mul_ps(acc[r][0], s0), z0));
        _mm256_storeu_ps(C + (size_t)r * ldc + 8, _mm256_add_ps(_mm256_mul_ps(acc[r][1], s1), z1));
    }
}

static inline __attribute__((always_inline)) void rows_i8(int R, int K, const float *A, int lda,
                                                         const int8_t *q, const float *scale,
                                                         const float *bias, float *C, int ldc)
{
    __m256 acc[MR][2];
    RNNF_UNROLL
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int k = 0; k < K; k++) {
        const int8_t *row = q + (size_t)k * UB;
        const __m256 b0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)row)));
        const __m256 b1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(row + 8))));
        RNNF_UNROLL
        for (int r = 0; r < R; r++) {
            const __m256 a = _mm256_broadcast_ss(A + (size_t)r * lda + k);
            acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
        }
    }
    finish(R, acc, scale, bias, C, ldc);
}

static inline __attribute__((always_inline)) void rows_f16(int R, int K, const float *A, int lda,
                                                          const uint16_t *h, const float *bias, float *C,
                                                          int ldc)
{
    __m256 acc[MR][2];
    RNNF_UNROLL
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int k = 0; k < K; k++) {
        const uint16_t *row = h + (size_t)k * UB;
        const __m256 b0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)row));
        const __m256 b1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 8)));
        RNNF_UNROLL
        for (int r = 0; r < R; r++) {
            const __m256 a = _mm256_broadcast_ss(A + (size_t)r * lda + k);
            acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
        }
    }
    finish(R, acc, NULL, bias, C, ldc);
}

void rnnf_gemm_packed_i8_avx2(int M, int K, const float *A, int lda, const float *Bp, int p0, int p1,
                              const float *bias, float *C, int ldc)
{
    const unsigned char *base = (const unsigned char *)Bp;
    for (int p = p0; p < p1; p++) {
        const float *scale = (const float *)(const void *)(base + (size_t)p * RNNF_Q8_PANEL_BYTES(K));
        const int8_t *q = (const int8_t *)(scale + UB);
        const float *bp = bias ? bias + (size_t)p * UB : NULL;
        int m = 0;
        for (; m + MR <= M; m += MR)
            rows_i8(MR, K, A + (size_t)m * lda, lda, q, scale, bp, C + (size_t)m * ldc + (size_t)p * UB, ldc);
        for (; m < M; m++)
            rows_i8(1, K, A + (size_t)m * lda, lda, q, scale, bp, C + (size_t)m * ldc + (size_t)p * UB, ldc);
    }
}

void rnnf_gemm_packed_f16_avx2(int M, int K, const float *A, int lda, const float *Bp, int p0, int p1,
                               const float *bias, float *C, int ldc)
{
    const uint16_t *base = (const uint16_t *)(const void *)Bp;
    for (int p = p0; p < p1; p++) {
        const uint16_t *h = base + (size_t)p * K * UB;
        const float *bp = bias ? bias + (size_t)p * UB : NULL;
        int m = 0;
        for (; m + MR <= M; m += MR)
            rows_f16(MR, K, A + (size_t)m * lda, lda, h, bp, C + (size_t)m * ldc + (size_t)p * UB, ldc);
        for (; m < M; m++)
            rows_f16(1, K, A + (size_t)m * lda, lda, h, bp, C + (size_t)m * ldc + (size_t)p * UB, ldc);
    }
}
