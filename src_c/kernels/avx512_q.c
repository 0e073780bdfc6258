/* avx512_q.c: AVX-512 GEMMs over int8 and float16 panels (kernels_q.h), the quantized GEMMs of the AVX-512 table.
 *
 * Compiled alone with avx512.c's flags and reached only through rnnf_qgemm_get when that table is in use. A panel's
 * k-row widens to float32 in one zmm (16 int8 or 16 halves: one load and one or two conversions, where AVX2 needs
 * two of each) and serves a block of up to QMR rows of A. Every output element is avx2_q.c's: one FMA chain over k
 * in order, then times the row scale (1 for float16) plus the bias, so both tables give the same bits.
 */
#include <immintrin.h>
#include <stdint.h>

#include "kernels_q.h"

#define UB RNNF_UB
#define QMR 8 /* 8 rows x 2 panels: 16 accumulators; the widened panel rows live in 2 more */

static inline __attribute__((always_inline)) __m512 widen(int i8, const unsigned char *panel, int k)
{
    if (i8)
        return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
            _mm_loadu_si128((const __m128i *)(const void *)(panel + UB * sizeof(float) + (size_t)k * UB))));
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(panel + (size_t)k * UB * 2)));
}

/* R rows against NP panels starting at `panel` (stride bytes apart). */
static inline __attribute__((always_inline)) void qblock(int i8, int R, int NP, int K, const float *A, int lda,
                                                         const unsigned char *panel, size_t stride, const float *bias,
                                                         float *C, int ldc)
{
    __m512 acc[QMR][4];
    RNNF_UNROLL
    for (int r = 0; r < R; r++)
        RNNF_UNROLL
        for (int q = 0; q < NP; q++) acc[r][q] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++) {
        const __m512 b0 = widen(i8, panel, k);
        const __m512 b1 = NP > 1 ? widen(i8, panel + stride, k) : b0;
        const __m512 b2 = NP > 2 ? widen(i8, panel + 2 * stride, k) : b0;
        const __m512 b3 = NP > 3 ? widen(i8, panel + 3 * stride, k) : b0;
        RNNF_UNROLL
        for (int r = 0; r < R; r++) {
            const __m512 a = _mm512_set1_ps(A[(size_t)r * lda + k]);
            acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
            if (NP > 1) acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
            if (NP > 2) acc[r][2] = _mm512_fmadd_ps(a, b2, acc[r][2]);
            if (NP > 3) acc[r][3] = _mm512_fmadd_ps(a, b3, acc[r][3]);
        }
    }
    RNNF_UNROLL
    for (int q = 0; q < NP; q++) {
        const __m512 s = i8 ? _mm512_loadu_ps((const float *)(const void *)(panel + q * stride)) : _mm512_set1_ps(1.0f);
        const __m512 z = bias ? _mm512_loadu_ps(bias + q * UB) : _mm512_setzero_ps();
        RNNF_UNROLL
        for (int r = 0; r < R; r++)
            _mm512_storeu_ps(C + (size_t)r * ldc + q * UB, _mm512_add_ps(_mm512_mul_ps(acc[r][q], s), z));
    }
}

/* R rows against panels [p, p1): four at a time for up to 4 rows, two for more, the rest one by one. */
static inline __attribute__((always_inline)) void qrows(int i8, int R, int K, const float *A, int lda,
                                                        const unsigned char *base, size_t stride, int p, int p1,
                                                        const float *bias, float *C, int ldc)
{
    const int NP = R > 4 ? 2 : 4;
    for (; p + NP <= p1; p += NP)
        qblock(i8, R, NP, K, A, lda, base + (size_t)p * stride, stride, bias ? bias + (size_t)p * UB : NULL,
               C + (size_t)p * UB, ldc);
    for (; p < p1; p++)
        qblock(i8, R, 1, K, A, lda, base + (size_t)p * stride, stride, bias ? bias + (size_t)p * UB : NULL,
               C + (size_t)p * UB, ldc);
}

static inline __attribute__((always_inline)) void qgemm(int i8, int M, int K, const float *A, int lda,
                                                        const float *Bp, int p0, int p1, const float *bias, float *C,
                                                        int ldc)
{
    const unsigned char *base = (const unsigned char *)Bp;
    const size_t stride = i8 ? RNNF_Q8_PANEL_BYTES(K) : (size_t)K * UB * 2;
    const int nb = (M + QMR - 1) / QMR;
    for (int b = 0, m = 0; b < nb; b++) { /* balanced row blocks: 10 = 5 + 5, not 8 + 2 */
        const int R = M / nb + (b < M % nb);
        const float *a = A + (size_t)m * lda;
        float *c = C + (size_t)m * ldc;
        switch (R) { /* constant row counts keep the accumulators in registers */
        case 8: qrows(i8, 8, K, a, lda, base, stride, p0, p1, bias, c, ldc); break;
        case 7: qrows(i8, 7, K, a, lda, base, stride, p0, p1, bias, c, ldc); break;
        case 6: qrows(i8, 6, K, a, lda, base, stride, p0, p1, bias, c, ldc); break;
        case 5: qrows(i8, 5, K, a, lda, base, stride, p0, p1, bias, c, ldc); break;
        case 4: qrows(i8, 4, K, a, lda, base, stride, p0, p1, bias, c, ldc); break;
        case 3: qrows(i8, 3, K, a, lda, base, stride, p0, p1, bias, c, ldc); break;
        case 2: qrows(i8, 2, K, a, lda, base, stride, p0, p1, bias, c, ldc); break;
        default: qrows(i8, 1, K, a, lda, base, stride, p0, p1, bias, c, ldc); break;
        }
        m += R;
    }
}

void rnnf_gemm_packed_i8_avx512(int M, int K, const float *A, int lda, const float *Bp, int p0, int p1,
                                const float *bias, float *C, int ldc)
{
    qgemm(1, M, K, A, lda, Bp, p0, p1, bias, C, ldc);
}

void rnnf_gemm_packed_f16_avx512(int M, int K, const float *A, int lda, const float *Bp, int p0, int p1,
                                 const float *bias, float *C, int ldc)
{
    qgemm(0, M, K, A, lda, Bp, p0, p1, bias, C, ldc);
}
