/* avx512.c: the AVX-512 (F, VL, DQ, BW) + FMA kernel table (Intel Xeon since Skylake-SP, AMD since Zen 4).
 *
 * Compiled alone with -mavx512f -mavx512vl -mavx512dq -mavx512bw -mavx2 -mfma and reached only through dispatch.c,
 * which hands it out only when CPUID reports those extensions and XGETBV says the OS saves the zmm state. A packed
 * panel row (kernels.h) is exactly one zmm, so a 16-unit block is one vector: the GEMM keeps up to 12 rows x 2 panels
 * (or fewer rows against more panels) in 24 of the 32 registers; the implicit-GEMM convolution 12 rows x 32 columns;
 * the gate kernels do a block's gate in one vector where AVX2 needs two.
 *
 * Every lane sees exactly the operations of avx2.c, in the same order (each GEMM output one FMA chain over k, then
 * the bias; the activations approx.h's algorithm with the same instructions), so this table gives the AVX2 table's
 * bits in every entry (tests/test_isa_tables.py). The Winograd transforms are avx2.c's own functions, but for the
 * pooled output transform, which is avx2.c's at twice the width.
 */
#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "approx.h"
#include "kernels.h"

#define UB RNNF_UB
#define MR 12     /* rows of the GEMM's register block: 12 x 2 panels = 24 accumulators + 2 panel rows + 1 broadcast */
#define MBLOCK 96 /* rows of A kept hot in L2 while the panels stream through L1 */

/* ---- activations (algorithm, constants and measured errors: approx.h; the instructions are avx2.c's) ---- */

static inline __attribute__((always_inline)) void exp_n(int N, __m512 *x)
{
    __m512 r[8], p[8];
    __m512i e[8];
    RNNF_UNROLL
    for (int q = 0; q < N; q++) {
        /* operand order matters: max/min return their second operand for NaN, and NaN must stay NaN */
        const __m512 v = _mm512_min_ps(_mm512_set1_ps(EXP_HI), _mm512_max_ps(_mm512_set1_ps(EXP_LO), x[q]));
        const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(v, _mm512_set1_ps(LOG2E)),
                                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        r[q] = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), v);
        r[q] = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r[q]);
        e[q] = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
        p[q] = _mm512_set1_ps(INV_FACT[7]);
    }
    RNNF_UNROLL
    for (int i = 6; i >= 0; i--)
        RNNF_UNROLL
        for (int q = 0; q < N; q++) p[q] = _mm512_fmadd_ps(p[q], r[q], _mm512_set1_ps(INV_FACT[i]));
    RNNF_UNROLL
    for (int q = 0; q < N; q++) x[q] = _mm512_mul_ps(p[q], _mm512_castsi512_ps(e[q]));
}

/* x[0, NS) = sigmoid(x), x[NS, NS + NT) = tanh(x), with one interleaved exp pass for both kinds. */
static inline __attribute__((always_inline)) void sigmoid_tanh_n(int NS, int NT, __m512 *x)
{
    const __m512 sign = _mm512_set1_ps(-0.0f);
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 e[8], ax[8];
    RNNF_UNROLL
    for (int q = 0; q < NS; q++) e[q] = _mm512_sub_ps(_mm512_setzero_ps(), x[q]);
    RNNF_UNROLL
    for (int q = NS; q < NS + NT; q++) {
        ax[q] = _mm512_andnot_ps(sign, x[q]);
        e[q] = _mm512_add_ps(ax[q], ax[q]);
    }
    exp_n(NS + NT, e);
    RNNF_UNROLL
    for (int q = 0; q < NS; q++) x[q] = _mm512_div_ps(one, _mm512_add_ps(one, e[q]));
    RNNF_UNROLL
    for (int q = NS; q < NS + NT; q++) {
        __m512 big = _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e[q], one)));
        big = _mm512_or_ps(big, _mm512_and_ps(x[q], sign));
        const __m512 x2 = _mm512_mul_ps(x[q], x[q]);
        __m512 p = _mm512_set1_ps(TANH_SERIES[5]);
        RNNF_UNROLL
        for (int i = 4; i >= 0; i--) p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(TANH_SERIES[i]));
        const __m512 small = _mm512_mul_ps(p, x[q]);
        x[q] = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(ax[q], _mm512_set1_ps(TANH_SMALL), _CMP_LT_OQ), big, small);
    }
}

static inline __attribute__((always_inline)) void sigmoid_n(int N, __m512 *x) { sigmoid_tanh_n(N, 0, x); }

static inline __attribute__((always_inline)) void tanh_n(int N, __m512 *x) { sigmoid_tanh_n(0, N, x); }

static __m512 act_scalar_lanes(const rnnf_activation *a, __m512 x)
{
    float v[16] __attribute__((aligned(64)));
    _mm512_store_ps(v, x);
    for (int i = 0; i < 16; i++) v[i] = rnnf_act_scalar(a, v[i]);
    return _mm512_load_ps(v);
}

static inline __m512 act_ps(const rnnf_activation *a, __m512 x)
{
    switch (a->kind) {
    case RNNF_ACT_SIGMOID: sigmoid_n(1, &x); return x;
    case RNNF_ACT_TANH: tanh_n(1, &x); return x;
    case RNNF_ACT_RELU: return _mm512_max_ps(x, _mm512_setzero_ps());
    case RNNF_ACT_AFFINE: return _mm512_fmadd_ps(_mm512_set1_ps(a->alpha), x, _mm512_set1_ps(a->beta));
    case RNNF_ACT_HARDSIGMOID:
        return _mm512_min_ps(_mm512_max_ps(_mm512_fmadd_ps(_mm512_set1_ps(a->alpha), x, _mm512_set1_ps(a->beta)),
                                           _mm512_setzero_ps()),
                             _mm512_set1_ps(1.0f));
    case RNNF_ACT_SCALEDTANH: {
        __m512 t = _mm512_mul_ps(_mm512_set1_ps(a->beta), x);
        tanh_n(1, &t);
        return _mm512_mul_ps(_mm512_set1_ps(a->alpha), t);
    }
    default: return act_scalar_lanes(a, x);
    }
}

static inline __m512 clip_ps(__m512 x, float clip)
{
    if (clip > 0.0f) x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-clip)), _mm512_set1_ps(clip));
    return x;
}

/* clip, then the activation, on n vectors; the common kinds interleaved, the others one vector at a time */
static inline __attribute__((always_inline)) void act_n(const rnnf_activation *a, float clip, int n, __m512 *x)
{
    RNNF_UNROLL
    for (int v = 0; v < n; v++) x[v] = clip_ps(x[v], clip);
    switch (a->kind) {
    case RNNF_ACT_SIGMOID: sigmoid_n(n, x); break;
    case RNNF_ACT_TANH: tanh_n(n, x); break;
    default:
        RNNF_UNROLL
        for (int v = 0; v < n; v++) x[v] = act_ps(a, x[v]);
        break;
    }
}

static inline __m512 ld(const float *p) { return _mm512_loadu_ps(p); }

static inline __m512 add_ld(const float *a, const float *b) { return _mm512_add_ps(ld(a), ld(b)); }

/* NV vectors of sigmoid (S) or tanh at a time, the stages interleaved */
static inline __attribute__((always_inline)) void act_group(int S, int NV, const float *x, float *y)
{
    __m512 v[8];
    RNNF_UNROLL
    for (int q = 0; q < NV; q++) v[q] = ld(x + 16 * q);
    if (S)
        sigmoid_n(NV, v);
    else
        tanh_n(NV, v);
    RNNF_UNROLL
    for (int q = 0; q < NV; q++) _mm512_storeu_ps(y + 16 * q, v[q]);
}

/* avx2.c's split of x: whole 8-lane vectors through the vector code, the last n % 8 values through the scalar
 * definitions, so each value gets the AVX2 table's bits. */
static void activation_avx512(const rnnf_activation *act, const float *x, float *y, int n)
{
    int i = 0;
    if (act->kind == RNNF_ACT_SIGMOID) {
        for (; i + 128 <= n; i += 128) act_group(1, 8, x + i, y + i);
        for (; i + 64 <= n; i += 64) act_group(1, 4, x + i, y + i);
    } else if (act->kind == RNNF_ACT_TANH) {
        for (; i + 128 <= n; i += 128) act_group(0, 8, x + i, y + i);
        for (; i + 64 <= n; i += 64) act_group(0, 4, x + i, y + i);
    }
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, act_ps(act, ld(x + i)));
    if (i + 8 <= n) {
        const __mmask16 half = 0xff;
        _mm512_mask_storeu_ps(y + i, half, act_ps(act, _mm512_maskz_loadu_ps(half, x + i)));
        i += 8;
    }
    for (; i < n; i++) y[i] = rnnf_act_scalar(act, x[i]);
}

/* ---- GEMM ---- */

/* R rows of A against NP panels: R*NP accumulators, each output avx2.c's single FMA chain over k then the bias. */
static inline __attribute__((always_inline)) void gemm_block(int R, int NP, int K, const float *A, int lda,
                                                             const float *panel, size_t ps, const float *bias,
                                                             float *C, int ldc)
{
    __m512 acc[MR][8];
    RNNF_UNROLL
    for (int r = 0; r < R; r++)
        RNNF_UNROLL
        for (int q = 0; q < NP; q++) acc[r][q] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++) {
        const float *row = panel + (size_t)k * UB;
        RNNF_UNROLL
        for (int r = 0; r < R; r++) {
            const __m512 a = _mm512_set1_ps(A[(size_t)r * lda + k]);
            RNNF_UNROLL /* the panel rows' loads, the same for every r, are made once (in an array, gcc -O2 stored them) */
            for (int q = 0; q < NP; q++) acc[r][q] = _mm512_fmadd_ps(a, _mm512_loadu_ps(row + q * ps), acc[r][q]);
        }
    }
    RNNF_UNROLL
    for (int q = 0; q < NP; q++) {
        const __m512 z = bias ? _mm512_loadu_ps(bias + q * UB) : _mm512_setzero_ps();
        RNNF_UNROLL
        for (int r = 0; r < R; r++) _mm512_storeu_ps(C + (size_t)r * ldc + q * UB, _mm512_add_ps(acc[r][q], z));
    }
}

/* Panels side by side for R rows: enough accumulators to cover the FMA latency (two ports, four cycles: eight
 * chains) and few enough for the registers (R*NP + NP + 1 <= 32). */
#define PANELS_FOR(R) ((R) >= 7 ? 2 : (R) >= 3 ? 4 : (R) == 2 ? 6 : 8)

/* R rows against panels [p, p1): PANELS_FOR(R) at a time, the rest 4, 2, 1 at a time. */
static inline __attribute__((always_inline)) void rows_against_panels(int R, int K, const float *A, int lda,
                                                                      const float *Bp, int p, int p1,
                                                                      const float *bias, float *C, int ldc)
{
    const int NP = PANELS_FOR(R);
    const size_t ps = (size_t)K * UB;
#define RNNF_BLOCK(np)                                                                                             \
    gemm_block(R, np, K, A, lda, Bp + (size_t)p * ps, ps, bias ? bias + (size_t)p * UB : NULL, C + (size_t)p * UB, \
               ldc);                                                                                               \
    p += np
    while (p + NP <= p1) {
        RNNF_BLOCK(NP);
    }
    if (NP > 4 && p + 4 <= p1) {
        RNNF_BLOCK(4);
    }
    if (NP > 2 && p + 2 <= p1) {
        RNNF_BLOCK(2);
    }
    if (p < p1) {
        RNNF_BLOCK(1);
    }
#undef RNNF_BLOCK
}

static void rows_r(int R, int K, const float *A, int lda, const float *Bp, int p0, int p1, const float *bias,
                   float *C, int ldc)
{
    switch (R) { /* constant row counts keep the accumulators in registers */
    case 12: rows_against_panels(12, K, A, lda, Bp, p0, p1, bias, C, ldc); break;
    case 11: rows_against_panels(11, K, A, lda, Bp, p0, p1, bias, C, ldc); break;
    case 10: rows_against_panels(10, K, A, lda, Bp, p0, p1, bias, C, ldc); break;
    case 9: rows_against_panels(9, K, A, lda, Bp, p0, p1, bias, C, ldc); break;
    case 8: rows_against_panels(8, K, A, lda, Bp, p0, p1, bias, C, ldc); break;
    case 7: rows_against_panels(7, K, A, lda, Bp, p0, p1, bias, C, ldc); break;
    case 6: rows_against_panels(6, K, A, lda, Bp, p0, p1, bias, C, ldc); break;
    case 5: rows_against_panels(5, K, A, lda, Bp, p0, p1, bias, C, ldc); break;
    case 4: rows_against_panels(4, K, A, lda, Bp, p0, p1, bias, C, ldc); break;
    case 3: rows_against_panels(3, K, A, lda, Bp, p0, p1, bias, C, ldc); break;
    case 2: rows_against_panels(2, K, A, lda, Bp, p0, p1, bias, C, ldc); break;
    default: rows_against_panels(1, K, A, lda, Bp, p0, p1, bias, C, ldc); break;
    }
}

/* Rows go in balanced blocks of at most MR (13 = 7+6, 32 = 11+11+10): a short last block would have too few
 * accumulators. Within MBLOCK rows, a group of panels runs every row block while it sits in L1. */
static void gemm_packed_avx512(int M, int K, const float *A, int lda, const float *Bp, int p0, int p1,
                               const float *bias, float *C, int ldc)
{
    for (int m0 = 0; m0 < M; m0 += MBLOCK) {
        const int rows = M - m0 < MBLOCK ? M - m0 : MBLOCK, nb = (rows + MR - 1) / MR;
        const int group = PANELS_FOR(rows / nb);
        for (int g = p0; g < p1; g += group) {
            const int g1 = g + group < p1 ? g + group : p1;
            for (int b = 0, m = m0; b < nb; b++) {
                const int R = rows / nb + (b < rows % nb);
                rows_r(R, K, A + (size_t)m * lda, lda, Bp, g, g1, bias, C + (size_t)m * ldc, ldc);
                m += R;
            }
        }
    }
}

/* ---- implicit GEMM (convolution) ---- */

/* R rows of A against NC vectors of 16 columns whose B rows are read in place at X + off[k] (unaligned); the last
 * vector's store keeps the lanes of `last`. Bias per row, then relu, as avx2.c's conv_micro. */
static inline __attribute__((always_inline)) void conv_block(int R, int NC, int K, const float *A, int lda,
                                                             const float *X, const int32_t *off, const float *bias,
                                                             int relu, float *C, int ldc, __mmask16 last)
{
    __m512 acc[MR][2];
    RNNF_UNROLL
    for (int r = 0; r < R; r++)
        RNNF_UNROLL
        for (int q = 0; q < NC; q++) acc[r][q] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++) {
        const float *x = X + off[k];
        __m512 b[2];
        RNNF_UNROLL
        for (int q = 0; q < NC; q++) b[q] = _mm512_loadu_ps(x + 16 * q);
        RNNF_UNROLL
        for (int r = 0; r < R; r++) {
            const __m512 a = _mm512_set1_ps(A[(size_t)r * lda + k]);
            RNNF_UNROLL
            for (int q = 0; q < NC; q++) acc[r][q] = _mm512_fmadd_ps(a, b[q], acc[r][q]);
        }
    }
    RNNF_UNROLL
    for (int r = 0; r < R; r++) {
        const __m512 z = _mm512_set1_ps(bias ? bias[r] : 0.0f);
        RNNF_UNROLL
        for (int q = 0; q < NC; q++) {
            __m512 v = _mm512_add_ps(acc[r][q], z);
            if (relu) v = _mm512_max_ps(_mm512_setzero_ps(), v); /* NaN stays, as the graph's Relu keeps it */
            if (q == NC - 1)
                _mm512_mask_storeu_ps(C + (size_t)r * ldc + 16 * q, last, v);
            else
                _mm512_storeu_ps(C + (size_t)r * ldc + 16 * q, v);
        }
    }
}

#define RNNF_CONV_CASES(NC)                                                                                        \
    switch (R) { /* constant row counts keep the accumulators in registers */                                      \
    case 12: conv_block(12, NC, K, A, lda, X, off, bias, relu, C, ldc, last); break;                              \
    case 11: conv_block(11, NC, K, A, lda, X, off, bias, relu, C, ldc, last); break;                              \
    case 10: conv_block(10, NC, K, A, lda, X, off, bias, relu, C, ldc, last); break;                              \
    case 9: conv_block(9, NC, K, A, lda, X, off, bias, relu, C, ldc, last); break;                                \
    case 8: conv_block(8, NC, K, A, lda, X, off, bias, relu, C, ldc, last); break;                                \
    case 7: conv_block(7, NC, K, A, lda, X, off, bias, relu, C, ldc, last); break;                                \
    case 6: conv_block(6, NC, K, A, lda, X, off, bias, relu, C, ldc, last); break;                                \
    case 5: conv_block(5, NC, K, A, lda, X, off, bias, relu, C, ldc, last); break;                                \
    case 4: conv_block(4, NC, K, A, lda, X, off, bias, relu, C, ldc, last); break;                                \
    case 3: conv_block(3, NC, K, A, lda, X, off, bias, relu, C, ldc, last); break;                                \
    case 2: conv_block(2, NC, K, A, lda, X, off, bias, relu, C, ldc, last); break;                                \
    default: conv_block(1, NC, K, A, lda, X, off, bias, relu, C, ldc, last); break;                               \
    }

/* w columns (1..32): two vectors when w > 16, the last one's store masked to what is left */
static void conv_rows(int R, int w, int K, const float *A, int lda, const float *X, const int32_t *off,
                      const float *bias, int relu, float *C, int ldc)
{
    const int tail = w > 16 ? w - 16 : w;
    const __mmask16 last = (__mmask16)(tail == 16 ? 0xffff : (1u << tail) - 1);
    if (w > 16) {
        RNNF_CONV_CASES(2)
    } else {
        RNNF_CONV_CASES(1)
    }
}
#undef RNNF_CONV_CASES

/* Rows in balanced blocks of at most MR; 32 columns at a time (16 when fewer are left), each column chunk running
 * every row block of MBLOCK rows while its inputs sit in L1. The column split never changes a chain: the bits are
 * avx2.c's. Loads stay within what kernels.h allows (N rounded up to 16). */
static void gemm_offsets_avx512(int M, int K, const float *A, int lda, const float *X, const int32_t *off, int N,
                                const float *bias, int relu, float *C, int ldc)
{
    for (int m0 = 0; m0 < M; m0 += MBLOCK) {
        const int m1 = m0 + MBLOCK < M ? m0 + MBLOCK : M, nb = (m1 - m0 + MR - 1) / MR;
        for (int j = 0; j < N; j += 32) {
            const int w = N - j < 32 ? N - j : 32;
            for (int b = 0, m = m0; b < nb; b++) {
                const int R = (m1 - m0) / nb + (b < (m1 - m0) % nb);
                conv_rows(R, w, K, A + (size_t)m * lda, lda, X + j, off, bias ? bias + m : NULL, relu,
                          C + (size_t)m * ldc + j, ldc);
                m += R;
            }
        }
    }
}

/* One row of A's 2x2 pooled outputs from up (output row 0) and down (row 1) accumulators of 32 columns (c1 a copy
 * of c0 when there are only 16): bias and relu as conv_block, then the rows, then the even and odd columns, as
 * avx2.c's pool_store folds them; `keep` masks the n <= 16 outputs. */
static inline __attribute__((always_inline)) void pool_store(__m512 u0, __m512 u1, __m512 d0, __m512 d1, float b,
                                                             int relu, float *c, __mmask16 keep)
{
    const __m512 z = _mm512_set1_ps(b), ninf = _mm512_set1_ps(-INFINITY);
    u0 = _mm512_add_ps(u0, z);
    u1 = _mm512_add_ps(u1, z);
    d0 = _mm512_add_ps(d0, z);
    d1 = _mm512_add_ps(d1, z);
    if (relu) { /* max returns its second operand for NaN: NaN stays, as the graph's Relu keeps it */
        u0 = _mm512_max_ps(_mm512_setzero_ps(), u0);
        u1 = _mm512_max_ps(_mm512_setzero_ps(), u1);
        d0 = _mm512_max_ps(_mm512_setzero_ps(), d0);
        d1 = _mm512_max_ps(_mm512_setzero_ps(), d1);
    }
    const __m512 c0 = _mm512_max_ps(d0, _mm512_max_ps(u0, ninf)), c1 = _mm512_max_ps(d1, _mm512_max_ps(u1, ninf));
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512 ev = _mm512_permutex2var_ps(c0, even, c1), od = _mm512_permutex2var_ps(c0, odd, c1);
    _mm512_mask_storeu_ps(c, keep, _mm512_max_ps(od, _mm512_max_ps(ev, ninf)));
}

/* conv_block for two output rows (B rows at X + off[k] and X + dx + off[k]), R rows of A and NC vectors of 16
 * columns, each output the same chain as conv_block's, then each 2x2 block max-pooled in registers. */
static inline __attribute__((always_inline)) void conv_pool_block(int R, int NC, int K, const float *A, int lda,
                                                                  const float *X, int64_t dx, const int32_t *off,
                                                                  const float *bias, int relu, float *C, int ldc,
                                                                  __mmask16 keep)
{
    __m512 u[4][2], d[4][2];
    RNNF_UNROLL
    for (int r = 0; r < R; r++)
        RNNF_UNROLL
        for (int q = 0; q < NC; q++) u[r][q] = d[r][q] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++) {
        const float *x = X + off[k];
        __m512 bu[2], bd[2];
        RNNF_UNROLL
        for (int q = 0; q < NC; q++) {
            bu[q] = _mm512_loadu_ps(x + 16 * q);
            bd[q] = _mm512_loadu_ps(x + dx + 16 * q);
        }
        RNNF_UNROLL
        for (int r = 0; r < R; r++) {
            const __m512 a = _mm512_set1_ps(A[(size_t)r * lda + k]);
            RNNF_UNROLL
            for (int q = 0; q < NC; q++) {
                u[r][q] = _mm512_fmadd_ps(a, bu[q], u[r][q]);
                d[r][q] = _mm512_fmadd_ps(a, bd[q], d[r][q]);
            }
        }
    }
    RNNF_UNROLL
    for (int r = 0; r < R; r++)
        pool_store(u[r][0], u[r][NC - 1], d[r][0], d[r][NC - 1], bias ? bias[r] : 0.0f, relu, C + (size_t)r * ldc,
                   keep);
}

#define RNNF_POOL_CASES(NC)                                                                                        \
    switch (R) { /* constant row counts keep the accumulators in registers */                                      \
    case 4: conv_pool_block(4, NC, K, A, lda, X, dx, off, bias, relu, C, ldc, keep); break;                       \
    case 3: conv_pool_block(3, NC, K, A, lda, X, dx, off, bias, relu, C, ldc, keep); break;                       \
    case 2: conv_pool_block(2, NC, K, A, lda, X, dx, off, bias, relu, C, ldc, keep); break;                       \
    default: conv_pool_block(1, NC, K, A, lda, X, dx, off, bias, relu, C, ldc, keep); break;                      \
    }

/* w columns (2..32, even): two vectors a row when w > 16, one when fewer (as the contract's N rounded up to 16
 * allows); the w / 2 pooled outputs stored */
static void conv_pool_rows(int R, int w, int K, const float *A, int lda, const float *X, int64_t dx,
                           const int32_t *off, const float *bias, int relu, float *C, int ldc)
{
    const int n = w / 2;
    const __mmask16 keep = (__mmask16)(n == 16 ? 0xffff : (1u << n) - 1);
    if (w > 16) {
        RNNF_POOL_CASES(2)
    } else {
        RNNF_POOL_CASES(1)
    }
}

/* Four rows of A at a time (16 accumulators over 32 columns), 32 columns (16 pooled outputs) at a time. */
static void gemm_offsets_pool_avx512(int M, int K, const float *A, int lda, const float *X, int64_t dx,
                                     const int32_t *off, int N, const float *bias, int relu, float *C, int ldc)
{
    for (int j = 0; j < N; j += 32)
        for (int m = 0; m < M; m += 4)
            conv_pool_rows(M - m < 4 ? M - m : 4, N - j < 32 ? N - j : 32, K, A + (size_t)m * lda, lda, X + j, dx,
                           off, bias ? bias + m : NULL, relu, C + (size_t)m * ldc + j / 2, ldc);
}
#undef RNNF_POOL_CASES

/* ---- Winograd F(2x2, 3x3): the pooled output transform, avx2.c's sixteen tiles at a time (each lane the operations
 * of avx2.c in its order, NaN payloads included: tests/test_isa_tables.py); a group cut short is read and written
 * through a lane mask. The input and unpooled output transforms are avx2.c's own functions: written the same way,
 * they gave other NaN payloads than avx2.c's in ~5% of groups with both NaN and infinities (gcc is free to swap the
 * operands of an add, and a NaN sum keeps its first operand's payload), and they move less. ---- */

/* The first half of the output transform, A^T Y, for sixteen tiles of one channel. */
static inline __attribute__((always_inline)) void wino2_rows16(const float *y, int64_t ldp, __mmask16 k,
                                                               __m512 z[2][4])
{
    RNNF_UNROLL
    for (int b = 0; b < 4; b++) {
        const __m512 y0 = _mm512_maskz_loadu_ps(k, y + (size_t)b * ldp);
        const __m512 y1 = _mm512_maskz_loadu_ps(k, y + (size_t)(4 + b) * ldp);
        const __m512 y2 = _mm512_maskz_loadu_ps(k, y + (size_t)(8 + b) * ldp);
        const __m512 y3 = _mm512_maskz_loadu_ps(k, y + (size_t)(12 + b) * ldp);
        z[0][b] = _mm512_add_ps(_mm512_add_ps(y0, y1), y2);
        z[1][b] = _mm512_sub_ps(_mm512_sub_ps(y1, y2), y3);
    }
}

/* Sixteen whole tiles of one channel, pooled as avx2.c's wino2_pool8 folds them. */
static inline __attribute__((always_inline)) __m512 wino2_pool16(const float *y, int64_t ldp, __m512 bv, int relu,
                                                                 __mmask16 k)
{
    __m512 z[2][4];
    wino2_rows16(y, ldp, k, z);
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 c0 = ninf, c1 = ninf;
    RNNF_UNROLL
    for (int i = 0; i < 2; i++) {
        __m512 s0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(z[i][0], z[i][1]), z[i][2]), bv);
        __m512 s1 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(z[i][1], z[i][2]), z[i][3]), bv);
        if (relu) {
            s0 = _mm512_max_ps(_mm512_setzero_ps(), s0);
            s1 = _mm512_max_ps(_mm512_setzero_ps(), s1);
        }
        c0 = _mm512_max_ps(s0, c0);
        c1 = _mm512_max_ps(s1, c1);
    }
    return _mm512_max_ps(c1, _mm512_max_ps(c0, ninf));
}

static void wino2_out_pool_avx512(int M, int n, const float *Y, int64_t ldp, int ldv, const float *bias, int relu,
                                  float *out, int64_t ldoc)
{
    const int tt = n / 16 * 16;
    const __mmask16 tail = (__mmask16)((1u << (n - tt)) - 1);
    for (int m = 0; m < M; m++) {
        const float *y = Y + (size_t)m * ldv;
        float *o = out + (size_t)m * (size_t)ldoc;
        const __m512 bv = _mm512_set1_ps(bias ? bias[m] : 0.0f);
        const int ru = relu != 0;
        for (int t = 0; t < tt; t += 16) _mm512_storeu_ps(o + t, wino2_pool16(y + t, ldp, bv, ru, 0xffff));
        if (tt < n) _mm512_mask_storeu_ps(o + tt, tail, wino2_pool16(y + tt, ldp, bv, ru, tail));
    }
}

/* ---- gate kernels: a 16-unit block is one vector; each lane's operations are avx2.c's ---- */

/* f = sigmoid, g = tanh, no clip: the configuration of nearly every trained model, given straight-line code */
static inline int plain_gates(const rnnf_gate_params *gp)
{
    return gp->f.kind == RNNF_ACT_SIGMOID && gp->g.kind == RNNF_ACT_TANH && !(gp->clip > 0.0f);
}

/* h_new = (1-z)*n + z*h_prev, written as n + z*(h_prev - n) to use one FMA. */
static inline __m512 gru_mix(__m512 z, __m512 n, __m512 h_prev)
{
    return _mm512_fmadd_ps(z, _mm512_sub_ps(h_prev, n), n);
}

/* The gates and the new cell of one row; the output gate too unless it has a peephole (then it needs the new
 * cell). Stores the new cell at c. */
static inline __attribute__((always_inline)) void lstm_front(const float *x, const float *y, const float *peep,
                                                             float *c, __m512 *cn, __m512 *o,
                                                             const rnnf_gate_params *gp)
{
    const int ifg = gp->input_forget;
    const __m512 cp = ld(c);
    __m512 s[3], f, g; /* s: the gates activated together: i, o (f in its place with a peephole), f */
    s[0] = add_ld(x, y);
    s[1] = add_ld(x + UB, y + UB);
    f = add_ld(x + 2 * UB, y + 2 * UB);
    g = add_ld(x + 3 * UB, y + 3 * UB);
    if (peep) {
        s[0] = _mm512_fmadd_ps(ld(peep), cp, s[0]);
        f = _mm512_fmadd_ps(ld(peep + 2 * UB), cp, f);
    }
    s[2] = f;
    if (!peep && !ifg) {
        if (plain_gates(gp)) { /* the common LSTM: one interleaved pass for i, o, f and the candidate */
            __m512 v[4] = {s[0], s[1], s[2], g};
            sigmoid_tanh_n(3, 1, v);
            s[0] = v[0], s[1] = v[1], f = v[2], g = v[3];
        } else {
            act_n(&gp->f, gp->clip, 3, s);
            f = s[2];
            act_n(&gp->g, gp->clip, 1, &g);
        }
    } else {
        if (!peep) {
            act_n(&gp->f, gp->clip, 2, s);
        } else if (!ifg) {
            s[1] = f;
            act_n(&gp->f, gp->clip, 2, s);
            f = s[1];
        } else {
            act_n(&gp->f, gp->clip, 1, s);
        }
        if (ifg) f = _mm512_sub_ps(_mm512_set1_ps(1.0f), s[0]);
        act_n(&gp->g, gp->clip, 1, &g);
    }
    *cn = _mm512_fmadd_ps(f, cp, _mm512_mul_ps(s[0], g));
    _mm512_storeu_ps(c, *cn);
    *o = s[1];
}

/* h = o * h(c) of a row whose front has run. */
static inline __attribute__((always_inline)) void lstm_back(const float *x, const float *y, const float *peep,
                                                            __m512 cn, __m512 o, float *h, const rnnf_gate_params *gp)
{
    if (peep) {
        o = _mm512_fmadd_ps(ld(peep + UB), cn, add_ld(x + UB, y + UB));
        act_n(&gp->f, gp->clip, 1, &o);
    }
    act_n(&gp->h, 0.0f, 1, &cn);
    _mm512_storeu_ps(h, _mm512_mul_ps(o, cn));
}

static void lstm_block_avx512(const float *gx, const float *gh, const float *peep, float *c, float *h_out,
                              const rnnf_gate_params *gp)
{
    __m512 cn, o;
    lstm_front(gx, gh, peep, c, &cn, &o, gp);
    lstm_back(gx, gh, peep, cn, o, h_out, gp);
}

static void gru_lbr_block_avx512(const float *gx, const float *gh, const float *h_prev, float *h_new,
                                 const rnnf_gate_params *gp)
{
    __m512 zr[2] = {add_ld(gx, gh), add_ld(gx + UB, gh + UB)};
    act_n(&gp->f, gp->clip, 2, zr);
    __m512 n = _mm512_fmadd_ps(zr[1], ld(gh + 2 * UB), ld(gx + 2 * UB));
    act_n(&gp->g, gp->clip, 1, &n);
    _mm512_storeu_ps(h_new, gru_mix(zr[0], n, ld(h_prev)));
}

static void gru_zr_block_avx512(const float *gx, const float *gh, const float *h_prev, float *z_out, float *rh_out,
                                const rnnf_gate_params *gp)
{
    __m512 zr[2] = {add_ld(gx, gh), add_ld(gx + UB, gh + UB)};
    act_n(&gp->f, gp->clip, 2, zr);
    _mm512_storeu_ps(z_out, zr[0]);
    _mm512_storeu_ps(rh_out, _mm512_mul_ps(zr[1], ld(h_prev)));
}

static void gru_h_block_avx512(const float *gx_h, const float *gh_h, const float *z, const float *h_prev,
                               float *h_new, const rnnf_gate_params *gp)
{
    __m512 n = add_ld(gx_h, gh_h);
    act_n(&gp->g, gp->clip, 1, &n);
    _mm512_storeu_ps(h_new, gru_mix(ld(z), n, ld(h_prev)));
}

static void rnn_block_avx512(const float *gx, const float *gh, float *h_new, const rnnf_gate_params *gp)
{
    __m512 v = add_ld(gx, gh);
    act_n(&gp->f, gp->clip, 1, &v);
    _mm512_storeu_ps(h_new, v);
}

/* ---- batch > 1: the block kernels over many rows (rows_step.c) ----
 * Software-pipelined as in avx2.c: the back half of some rows (h(c) waits on the new cell) is issued beside the front
 * half of the next ones, so the out-of-order core always has independent activations to work on. A row's block is
 * one vector here, half of AVX2's two: the common LSTM takes its rows two at a time (eight activations in flight, as
 * AVX2 has with one row). */

/* lstm_front for rows r[0, n) (n <= 2) at once; the common LSTM's activations in one interleaved pass. */
static inline __attribute__((always_inline)) void lstm_front_rows(int n, const int *r, const float *gx,
                                                                  const float *gh, int ldg, const float *peep,
                                                                  float *c, int ldc, __m512 *cn, __m512 *o,
                                                                  const rnnf_gate_params *gp)
{
    if (n < 2 || peep || gp->input_forget || !plain_gates(gp)) {
        for (int q = 0; q < n; q++)
            lstm_front(gx + (size_t)r[q] * ldg, gh + (size_t)r[q] * ldg, peep, c + (size_t)r[q] * ldc, &cn[q], &o[q],
                       gp);
        return;
    }
    __m512 v[8], cp[2]; /* i0 o0 f0 i1 o1 f1 | g0 g1 */
    RNNF_UNROLL
    for (int q = 0; q < 2; q++) {
        const float *x = gx + (size_t)r[q] * ldg, *y = gh + (size_t)r[q] * ldg;
        cp[q] = ld(c + (size_t)r[q] * ldc);
        v[3 * q] = add_ld(x, y);
        v[3 * q + 1] = add_ld(x + UB, y + UB);
        v[3 * q + 2] = add_ld(x + 2 * UB, y + 2 * UB);
        v[6 + q] = add_ld(x + 3 * UB, y + 3 * UB);
    }
    sigmoid_tanh_n(6, 2, v);
    RNNF_UNROLL
    for (int q = 0; q < 2; q++) {
        cn[q] = _mm512_fmadd_ps(v[3 * q + 2], cp[q], _mm512_mul_ps(v[3 * q], v[6 + q]));
        _mm512_storeu_ps(c + (size_t)r[q] * ldc, cn[q]);
        o[q] = v[3 * q + 1];
    }
}

/* lstm_back for rows r[0, n); without peepholes and with h = tanh, the rows' h(c) in one pass. */
static inline __attribute__((always_inline)) void lstm_back_rows(int n, const int *r, const float *gx, const float *gh,
                                                                 int ldg, const float *peep, __m512 *cn, __m512 *o,
                                                                 float *h, int ldh, const rnnf_gate_params *gp)
{
    if (n < 2 || peep || gp->h.kind != RNNF_ACT_TANH) {
        for (int q = 0; q < n; q++)
            lstm_back(gx + (size_t)r[q] * ldg, gh + (size_t)r[q] * ldg, peep, cn[q], o[q], h + (size_t)r[q] * ldh, gp);
        return;
    }
    __m512 t[2] = {cn[0], cn[1]};
    tanh_n(2, t);
    RNNF_UNROLL
    for (int q = 0; q < 2; q++) _mm512_storeu_ps(h + (size_t)r[q] * ldh, _mm512_mul_ps(o[q], t[q]));
}

static void lstm_rows_avx512(int n_rows, const uint8_t *active, const float *gx, const float *gh, int ldg,
                             const float *peep, float *c, int ldc, float *h_out, int ldh, const rnnf_gate_params *gp)
{
    int rows[2][2], n[2] = {0, 0}, slot = 0; /* the previous pair's rows and results sit in slot ^ 1 */
    __m512 cn[2][2], o[2][2];
    for (int b = 0;;) {
        int *cur = rows[slot];
        n[slot] = 0;
        for (; b < n_rows && n[slot] < 2; b++)
            if (active[b]) cur[n[slot]++] = b;
        lstm_front_rows(n[slot], cur, gx, gh, ldg, peep, c, ldc, cn[slot], o[slot], gp);
        lstm_back_rows(n[slot ^ 1], rows[slot ^ 1], gx, gh, ldg, peep, cn[slot ^ 1], o[slot ^ 1], h_out, ldh, gp);
        if (!n[slot]) return;
        slot ^= 1;
    }
}

/* One pass of the common GRU's rows (plain gates): the z and r gates of rows cur[0, n) beside the candidates of
 * rows prev[0, np), whose activated z and r are zp[2q], zp[2q + 1]; n, np <= 2, so up to six activations in flight
 * where a row alone has three. The new z and r go to zc. Each lane's operations are gru_lbr_block's. */
static inline __attribute__((always_inline)) void gru_pass(int n, int np, const int *cur, const int *prev,
                                                           const float *gx, const float *gh, int ldg,
                                                           const float *h_prev, float *h_new, int ldh,
                                                           const __m512 *zp, __m512 *zc)
{
    __m512 v[6];
    RNNF_UNROLL
    for (int q = 0; q < n; q++) {
        const float *x = gx + (size_t)cur[q] * ldg, *y = gh + (size_t)cur[q] * ldg;
        v[2 * q] = add_ld(x, y);
        v[2 * q + 1] = add_ld(x + UB, y + UB);
    }
    RNNF_UNROLL
    for (int q = 0; q < np; q++) {
        const float *x = gx + (size_t)prev[q] * ldg, *y = gh + (size_t)prev[q] * ldg;
        v[2 * n + q] = _mm512_fmadd_ps(zp[2 * q + 1], ld(y + 2 * UB), ld(x + 2 * UB));
    }
    sigmoid_tanh_n(2 * n, np, v);
    RNNF_UNROLL
    for (int q = 0; q < np; q++)
        _mm512_storeu_ps(h_new + (size_t)prev[q] * ldh,
                         gru_mix(zp[2 * q], v[2 * n + q], ld(h_prev + (size_t)prev[q] * ldh)));
    RNNF_UNROLL
    for (int q = 0; q < 2 * n; q++) zc[q] = v[q];
}

/* Pipelined like lstm_rows: the candidates of one pair of rows (they wait on r) beside the z and r gates of the
 * next pair; other gate configurations one row at a time, the candidate of one beside the z and r of the next. */
static void gru_lbr_rows_avx512(int n_rows, const uint8_t *active, const float *gx, const float *gh, int ldg,
                                const float *h_prev, float *h_new, int ldh, const rnnf_gate_params *gp)
{
    if (plain_gates(gp)) {
        int rows[2][2], n[2] = {0, 0}, slot = 0; /* the previous pair's rows and gates sit in slot ^ 1 */
        __m512 zr[2][4];
        for (int b = 0;;) {
            int *cur = rows[slot];
            n[slot] = 0;
            for (; b < n_rows && n[slot] < 2; b++)
                if (active[b]) cur[n[slot]++] = b;
            const int *prev = rows[slot ^ 1];
            const __m512 *zp = zr[slot ^ 1];
            __m512 *zc = zr[slot];
#define RNNF_GRU_PASS(N, NP) gru_pass(N, NP, cur, prev, gx, gh, ldg, h_prev, h_new, ldh, zp, zc)
            switch (3 * n[slot] + n[slot ^ 1]) { /* constant counts keep the vectors in registers */
            case 8: RNNF_GRU_PASS(2, 2); break;
            case 7: RNNF_GRU_PASS(2, 1); break;
            case 6: RNNF_GRU_PASS(2, 0); break;
            case 5: RNNF_GRU_PASS(1, 2); break;
            case 4: RNNF_GRU_PASS(1, 1); break;
            case 3: RNNF_GRU_PASS(1, 0); break;
            case 2: RNNF_GRU_PASS(0, 2); break;
            case 1: RNNF_GRU_PASS(0, 1); break;
            default: break;
            }
#undef RNNF_GRU_PASS
            if (!n[slot]) return;
            slot ^= 1;
        }
    }
    int prev = -1, slot = 0;
    __m512 zr[2][2];
    for (int b = 0; b <= n_rows; b++) {
        if (b < n_rows && !active[b]) continue;
        if (b < n_rows) {
            const float *x = gx + (size_t)b * ldg, *y = gh + (size_t)b * ldg;
            zr[slot][0] = add_ld(x, y);
            zr[slot][1] = add_ld(x + UB, y + UB);
            act_n(&gp->f, gp->clip, 2, zr[slot]);
        }
        if (prev >= 0) {
            const float *x = gx + (size_t)prev * ldg, *y = gh + (size_t)prev * ldg;
            const __m512 *z = zr[slot ^ 1];
            __m512 n = _mm512_fmadd_ps(z[1], ld(y + 2 * UB), ld(x + 2 * UB));
            act_n(&gp->g, gp->clip, 1, &n);
            _mm512_storeu_ps(h_new + (size_t)prev * ldh, gru_mix(z[0], n, ld(h_prev + (size_t)prev * ldh)));
        }
        prev = b;
        slot ^= 1;
    }
}

static void rnn_rows_avx512(int n_rows, const uint8_t *active, const float *gx, const float *gh, int ldg,
                            float *h_new, int ldh, const rnnf_gate_params *gp)
{
    int b = 0;
    while (b < n_rows) { /* four active rows' blocks at a time */
        int rows[4], n = 0;
        for (; b < n_rows && n < 4; b++)
            if (active[b]) rows[n++] = b;
        __m512 v[4];
        for (int q = 0; q < n; q++) v[q] = add_ld(gx + (size_t)rows[q] * ldg, gh + (size_t)rows[q] * ldg);
        switch (n) {
        case 4: act_n(&gp->f, gp->clip, 4, v); break;
        case 3: act_n(&gp->f, gp->clip, 3, v); break;
        case 2: act_n(&gp->f, gp->clip, 2, v); break;
        case 1: act_n(&gp->f, gp->clip, 1, v); break;
        default: break;
        }
        for (int q = 0; q < n; q++) _mm512_storeu_ps(h_new + (size_t)rows[q] * ldh, v[q]);
    }
}

/* ---- sequence kernels (kernels.h rnnf_seq_args): a small layer's whole sequence for one row ----
 * A batch-1 step of a small layer is a few hundred cycles of work (an LSTM-32's: 256 FMAs of recurrent product and
 * ten activations), so the step drivers' calls, table lookups and memory round trips were a fifth of it: here each
 * step's input projection, recurrent product and gates run in one loop, the products in registers from the FMA
 * chains to the gates and the cell state from step to step. Each lane sees gemm_packed's chains (zero, one FMA per
 * k in order, then + bias or + 0) and the block kernels' gate operations, so the bits are the step drivers'. */

/* NP panels of a packed matrix with `depth` rows against the vector v: acc[p] = one FMA chain over k, as
 * gemm_block makes each output. */
static inline __attribute__((always_inline)) void seq_product(int NP, int depth, const float *v, const float *w,
                                                              __m512 *acc)
{
    const size_t ps = (size_t)depth * UB;
    RNNF_UNROLL
    for (int p = 0; p < NP; p++) acc[p] = _mm512_setzero_ps();
    for (int k = 0; k < depth; k++) {
        const __m512 a = _mm512_set1_ps(v[k]);
        const float *row = w + (size_t)k * UB;
        RNNF_UNROLL
        for (int p = 0; p < NP; p++) acc[p] = _mm512_fmadd_ps(a, _mm512_loadu_ps(row + p * ps), acc[p]);
    }
}

/* The step's input projection, x W_ih + bias_x as gemm_packed gives it, plus 0: the step drivers add a bias-less
 * recurrent product to it as gx + (acc + 0), which equals (gx + 0) + acc in every case (x + y is -0 only when both
 * are, and + 0 turns only -0 into +0; NaN keeps the first NaN operand either way), so the + 0 stays off the chain
 * from one step to the next. */
static inline __attribute__((always_inline)) void seq_input(int NP, const rnnf_seq_args *a, const float *x,
                                                            __m512 *gx, int plus_zero)
{
    if (a->gx) { /* made by gemm_packed, x is its row */
        RNNF_UNROLL
        for (int p = 0; p < NP; p++) gx[p] = ld(x + p * UB);
    } else {
        seq_product(NP, a->input_size, x, a->w_ih, gx);
        RNNF_UNROLL
        for (int p = 0; p < NP; p++) gx[p] = _mm512_add_ps(gx[p], ld(a->bias_x + p * UB));
    }
    if (plus_zero) {
        RNNF_UNROLL
        for (int p = 0; p < NP; p++) gx[p] = _mm512_add_ps(gx[p], _mm512_setzero_ps());
    }
}

/* Store the block vectors of a new state: all of them to hn (as the block kernels write them), the first out_len
 * values to y when it is given. */
static inline __attribute__((always_inline)) void seq_store(int NB, const __m512 *h, float *hn, float *y,
                                                            int out_len)
{
    RNNF_UNROLL
    for (int q = 0; q < NB; q++) {
        _mm512_storeu_ps(hn + q * UB, h[q]);
        if (!y) continue;
        const int left = out_len - q * UB;
        if (left >= UB)
            _mm512_storeu_ps(y + q * UB, h[q]);
        else if (left > 0)
            _mm512_mask_storeu_ps(y + q * UB, (__mmask16)((1u << left) - 1), h[q]);
    }
}

/* Calls GROUP(n, q0) for groups of blocks [q0, q0 + n) covering NB blocks in order: as few groups of at most MAX
 * blocks as will do (at most 5), their sizes as even as NB allows. */
#define RNNF_SEQ_GROUP_AT(NB, N, I, GROUP) GROUP((NB) * ((I) + 1) / (N) - (NB) * (I) / (N), (NB) * (I) / (N))
#define RNNF_SEQ_IN_GROUPS(NB, MAX, GROUP)                                  \
    do {                                                                     \
        const int n_groups_ = ((NB) + (MAX) - 1) / (MAX);                    \
        RNNF_SEQ_GROUP_AT(NB, n_groups_, 0, GROUP);                          \
        if (n_groups_ > 1) RNNF_SEQ_GROUP_AT(NB, n_groups_, 1, GROUP);       \
        if (n_groups_ > 2) RNNF_SEQ_GROUP_AT(NB, n_groups_, 2, GROUP);       \
        if (n_groups_ > 3) RNNF_SEQ_GROUP_AT(NB, n_groups_, 3, GROUP);       \
        if (n_groups_ > 4) RNNF_SEQ_GROUP_AT(NB, n_groups_, 4, GROUP);       \
    } while (0)

/* The most blocks of an LSTM or GRU that one group takes (RNNF_SEQ_IN_GROUPS): two up to three blocks, one from four.
 * A group's weight streams are its panels, depth*64 bytes apart, and Zen 4 read twelve or more at once from L2 more
 * slowly than one block's (a C harness timing rnnf_run, seq 100, input 64, one thread; all blocks at once, two at a
 * time, one: LSTM-64 151, 106, 92 us; GRU-64 84, 75, 68 us; GRU-80 107.5, 105.5, 99.5 us; LSTM-48 55, 55, 57 us). */
#define RNNF_SEQ_MAX_BLOCKS(nb) ((nb) >= 4 ? 1 : 2)

/* The group's columns of the input projection: its panels of w_ih and its bias. */
static inline rnnf_seq_args seq_group_args(const rnnf_seq_args *a, int G, int q0)
{
    rnnf_seq_args g = *a;
    g.w_ih = a->w_ih + (size_t)q0 * G * a->input_size * UB;
    g.bias_x = a->bias_x + q0 * G * UB;
    return g;
}

/* One step of blocks [q0, q0 + NB) of the common LSTM (lstm_front's plain_gates path, no peepholes, h = tanh): their
 * input projection and product chains in registers, then their gates, every block's in one interleaved pass (the
 * activations' dependent chains are most of a tiny step's latency: tiny LSTM 7.9 -> 7.6 us against a pass per
 * block); c: their cell states. */
static inline __attribute__((always_inline)) void lstm_plain_group(int NB, const rnnf_seq_args *a, const float *x,
                                                                   const float *hp, float *hn, float *y, int q0,
                                                                   __m512 *c)
{
    __m512 gx[8], acc[8], o[2], t[2];
    const rnnf_seq_args g = seq_group_args(a, 4, q0);
    seq_input(4 * NB, &g, a->gx ? x + q0 * 4 * UB : x, gx, 1);
    seq_product(4 * NB, a->depth, hp, a->w_hh + (size_t)q0 * 4 * a->depth * UB, acc);
    __m512 v[8]; /* every block's i, o, f, then every block's candidate */
    RNNF_UNROLL
    for (int q = 0; q < NB; q++) {
        RNNF_UNROLL
        for (int k = 0; k < 3; k++) v[3 * q + k] = _mm512_add_ps(gx[4 * q + k], acc[4 * q + k]);
        v[3 * NB + q] = _mm512_add_ps(gx[4 * q + 3], acc[4 * q + 3]);
    }
    sigmoid_tanh_n(3 * NB, NB, v);
    RNNF_UNROLL
    for (int q = 0; q < NB; q++) {
        c[q] = _mm512_fmadd_ps(v[3 * q + 2], c[q], _mm512_mul_ps(v[3 * q], v[3 * NB + q]));
        o[q] = v[3 * q + 1];
        t[q] = c[q];
    }
    tanh_n(NB, t);
    RNNF_UNROLL
    for (int q = 0; q < NB; q++) t[q] = _mm512_mul_ps(o[q], t[q]);
    seq_store(NB, t, hn + q0 * UB, y ? y + q0 * UB : NULL, a->out_len - q0 * UB);
}

/* The common LSTM, the cell state in registers, the blocks in groups of at most MAX one after the other
 * (RNNF_SEQ_IN_GROUPS). */
static inline __attribute__((always_inline)) void lstm_seq_plain(int NB, int MAX, const rnnf_seq_args *a)
{
    __m512 c[4];
    RNNF_UNROLL
    for (int q = 0; q < NB; q++) c[q] = ld(a->c + q * UB);
    const float *x = a->gx ? a->gx : a->x;
    float *y = a->y;
    for (int s = 0; s < a->steps; s++) {
        const float *hp = a->h[s & 1];
        float *hn = a->h[(s & 1) ^ 1];
#define RNNF_GROUP(n, q0) lstm_plain_group(n, a, x, hp, hn, y, q0, c + (q0))
        RNNF_SEQ_IN_GROUPS(NB, MAX, RNNF_GROUP);
#undef RNNF_GROUP
        x += a->x_step;
        if (y) y += a->y_step;
    }
    RNNF_UNROLL
    for (int q = 0; q < NB; q++) _mm512_storeu_ps(a->c + q * UB, c[q]);
}

/* Any other LSTM: the products staged as gemm_packed stores them, then lstm_block_avx512 on each block. */
static inline __attribute__((always_inline)) void lstm_seq_any(int NB, const rnnf_seq_args *a)
{
    float gx[16 * UB] __attribute__((aligned(64))), gh[16 * UB] __attribute__((aligned(64)));
    const float *x = a->gx ? a->gx : a->x;
    float *y = a->y;
    for (int s = 0; s < a->steps; s++) {
        float *hn = a->h[(s & 1) ^ 1];
        __m512 acc[16], h[4];
        seq_input(4 * NB, a, x, acc, 0);
        RNNF_UNROLL
        for (int p = 0; p < 4 * NB; p++) _mm512_store_ps(gx + p * UB, acc[p]);
        seq_product(4 * NB, a->depth, a->h[s & 1], a->w_hh, acc);
        RNNF_UNROLL
        for (int p = 0; p < 4 * NB; p++) _mm512_store_ps(gh + p * UB, _mm512_add_ps(acc[p], _mm512_setzero_ps()));
        RNNF_UNROLL
        for (int q = 0; q < NB; q++) {
            lstm_block_avx512(gx + q * 4 * UB, gh + q * 4 * UB, a->peep ? a->peep + q * 3 * UB : NULL, a->c + q * UB,
                              hn + q * UB, a->gp);
            h[q] = ld(hn + q * UB);
        }
        seq_store(NB, h, hn, y, a->out_len);
        x += a->x_step;
        if (y) y += a->y_step;
    }
}

static int lstm_seq_avx512(const rnnf_seq_args *a)
{
    const rnnf_gate_params *gp = a->gp;
    const int plain = !a->peep && !gp->input_forget && plain_gates(gp) && gp->h.kind == RNNF_ACT_TANH;
#define RNNF_SEQ_CASE(nb)                                 \
    case nb:                                              \
        if (plain)                                        \
            lstm_seq_plain(nb, RNNF_SEQ_MAX_BLOCKS(nb), a); \
        else                                              \
            lstm_seq_any(nb, a);                          \
        return 1
    switch (a->n_blocks) {
    RNNF_SEQ_CASE(1);
    RNNF_SEQ_CASE(2);
    RNNF_SEQ_CASE(3);
    RNNF_SEQ_CASE(4);
    default: return 0;
    }
#undef RNNF_SEQ_CASE
}

/* GRU, linear_before_reset = 1, as gru_lbr_block_avx512: z, r from gx + (product + Rb), the candidate from
 * r*(product + Rb) + gx; one step of blocks [q0, q0 + NB), hp: their previous state, in registers for the mix. Every
 * block's z and r in one interleaved pass, then every block's candidate (tiny GRU 6.4 -> 5.6 us against a block at
 * a time). */
static inline __attribute__((always_inline)) void gru_lbr_group(int NB, const rnnf_seq_args *a, const float *x,
                                                                const float *hv, float *hn, float *y, int q0,
                                                                __m512 *hp)
{
    const rnnf_gate_params *gp = a->gp;
    __m512 gx[6], acc[6];
    const rnnf_seq_args g = seq_group_args(a, 3, q0);
    seq_input(3 * NB, &g, a->gx ? x + q0 * 3 * UB : x, gx, 0);
    seq_product(3 * NB, a->depth, hv, a->w_hh + (size_t)q0 * 3 * a->depth * UB, acc);
    const float *b = a->bias_h + q0 * 3 * UB;
    __m512 zr[4], n[2]; /* every block's z and r, then every block's candidate */
    RNNF_UNROLL
    for (int q = 0; q < NB; q++) {
        zr[2 * q] = _mm512_add_ps(gx[3 * q], _mm512_add_ps(acc[3 * q], ld(b + 3 * q * UB)));
        zr[2 * q + 1] = _mm512_add_ps(gx[3 * q + 1], _mm512_add_ps(acc[3 * q + 1], ld(b + (3 * q + 1) * UB)));
    }
    act_n(&gp->f, gp->clip, 2 * NB, zr);
    RNNF_UNROLL
    for (int q = 0; q < NB; q++)
        n[q] = _mm512_fmadd_ps(zr[2 * q + 1], _mm512_add_ps(acc[3 * q + 2], ld(b + (3 * q + 2) * UB)), gx[3 * q + 2]);
    act_n(&gp->g, gp->clip, NB, n);
    RNNF_UNROLL
    for (int q = 0; q < NB; q++) hp[q] = gru_mix(zr[2 * q], n[q], hp[q]);
    seq_store(NB, hp, hn + q0 * UB, y ? y + q0 * UB : NULL, a->out_len - q0 * UB);
}

static inline __attribute__((always_inline)) void gru_lbr_seq_nb(int NB, int MAX, const rnnf_seq_args *a)
{
    __m512 hp[5];
    RNNF_UNROLL
    for (int q = 0; q < NB; q++) hp[q] = ld(a->h[0] + q * UB);
    const float *x = a->gx ? a->gx : a->x;
    float *y = a->y;
    for (int s = 0; s < a->steps; s++) {
        const float *hv = a->h[s & 1];
        float *hn = a->h[(s & 1) ^ 1];
#define RNNF_GROUP(n, q0) gru_lbr_group(n, a, x, hv, hn, y, q0, hp + (q0))
        RNNF_SEQ_IN_GROUPS(NB, MAX, RNNF_GROUP);
#undef RNNF_GROUP
        x += a->x_step;
        if (y) y += a->y_step;
    }
}

static int gru_lbr_seq_avx512(const rnnf_seq_args *a)
{
    switch (a->n_blocks) {
    case 1: gru_lbr_seq_nb(1, 1, a); return 1;
    case 2: gru_lbr_seq_nb(2, RNNF_SEQ_MAX_BLOCKS(2), a); return 1;
    case 3: gru_lbr_seq_nb(3, RNNF_SEQ_MAX_BLOCKS(3), a); return 1;
    case 4: gru_lbr_seq_nb(4, RNNF_SEQ_MAX_BLOCKS(4), a); return 1;
    case 5: gru_lbr_seq_nb(5, RNNF_SEQ_MAX_BLOCKS(5), a); return 1;
    default: return 0;
    }
}

/* Simple RNN, as rnn_block_avx512: h = f(clip(gx + product)), the blocks in groups of at most 4, one after the
 * other: a group's product chains and input projection in registers, its activations beside the next group's product.
 * The panels of a group are depth*64 bytes apart, a multiple of the 4 KiB that maps to one L1 set, and its chains
 * read one row of each per k: on Zen 4 eight or sixteen such streams at once fetched the weights from L2 more slowly
 * than four (lat-h256 rnn, one thread, bench harness over rnnf_run: 16 blocks at once 557 us, 8 at once 287 us, 4 at
 * once 272 us; lat-h128 rnn 8 at once 81.7 us, 4 at once 78 us). */
static inline __attribute__((always_inline)) void rnn_seq_group(int NB, const rnnf_seq_args *a, const float *x,
                                                                const float *hp, float *hn, float *y, int q0)
{
    const rnnf_gate_params *gp = a->gp;
    __m512 gx[4], acc[4];
    const rnnf_seq_args g = seq_group_args(a, 1, q0);
    seq_input(NB, &g, a->gx ? x + q0 * UB : x, gx, 1);
    seq_product(NB, a->depth, hp, a->w_hh + (size_t)q0 * a->depth * UB, acc);
    RNNF_UNROLL
    for (int q = 0; q < NB; q++) gx[q] = _mm512_add_ps(gx[q], acc[q]);
    act_n(&gp->f, gp->clip, NB, gx);
    seq_store(NB, gx, hn + q0 * UB, y ? y + q0 * UB : NULL, a->out_len - q0 * UB);
}

static inline __attribute__((always_inline)) void rnn_seq_nb(int NB, const rnnf_seq_args *a)
{
    const float *x = a->gx ? a->gx : a->x;
    float *y = a->y;
    for (int s = 0; s < a->steps; s++) {
        const float *hp = a->h[s & 1];
        float *hn = a->h[(s & 1) ^ 1];
#define RNNF_GROUP(n, q0) rnn_seq_group(n, a, x, hp, hn, y, q0)
        RNNF_SEQ_IN_GROUPS(NB, 4, RNNF_GROUP);
#undef RNNF_GROUP
        x += a->x_step;
        if (y) y += a->y_step;
    }
}

static int rnn_seq_avx512(const rnnf_seq_args *a)
{
#define RNNF_SEQ_CASE(nb) \
    case nb: rnn_seq_nb(nb, a); return 1
    switch (a->n_blocks) {
    RNNF_SEQ_CASE(1);
    RNNF_SEQ_CASE(2);
    RNNF_SEQ_CASE(3);
    RNNF_SEQ_CASE(4);
    RNNF_SEQ_CASE(5);
    RNNF_SEQ_CASE(6);
    RNNF_SEQ_CASE(7);
    RNNF_SEQ_CASE(8);
    RNNF_SEQ_CASE(9);
    RNNF_SEQ_CASE(10);
    RNNF_SEQ_CASE(11);
    RNNF_SEQ_CASE(12);
    RNNF_SEQ_CASE(13);
    RNNF_SEQ_CASE(14);
    RNNF_SEQ_CASE(15);
    RNNF_SEQ_CASE(16);
    default: return 0;
    }
#undef RNNF_SEQ_CASE
}

const rnnf_kernels rnnf_kernels_avx512 = {
    "avx512",
    gemm_packed_avx512,
    lstm_block_avx512,
    gru_lbr_block_avx512,
    gru_zr_block_avx512,
    gru_h_block_avx512,
    rnn_block_avx512,
    activation_avx512,
    lstm_rows_avx512,
    gru_lbr_rows_avx512,
    rnn_rows_avx512,
    gemm_offsets_avx512,
    rnnf_wino2_in_avx2,
    rnnf_wino2_out_avx2,
    wino2_out_pool_avx512,
    gemm_offsets_pool_avx512,
    lstm_seq_avx512,
    gru_lbr_seq_avx512,
    rnn_seq_avx512,
};
