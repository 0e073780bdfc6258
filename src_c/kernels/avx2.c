/* avx2.c: the AVX2 + FMA kernel table (x86-64 since Haswell / Zen).
 *
 * Compiled alone with -mavx2 -mfma and reached only through dispatch.c. The GEMM is a register-blocked
 * microkernel over the packed panels of kernels.h (up to 6 rows x 16 columns in 12 accumulators), also run with
 * B's rows read in place at per-k offsets (a convolution as an implicit GEMM, gemm_offsets; also the 16 GEMMs of a
 * Winograd F(2x2, 3x3) convolution, whose input and output transforms are here too, eight tiles a vector); the gate
 * kernels fuse bias-free pre-activation sums, clip, activations and the state update into one pass over a
 * block of 16 units; for batch > 1 the row kernels run the same per-lane operations over a block's rows with
 * several rows in flight (rows_step.c). Activations not vectorized here fall back to the scalar definitions
 * (activations.c).
 */
#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "approx.h"
#include "kernels.h"

#define UB RNNF_UB
#define MR 6     /* rows per microkernel call: 12 accumulators + 2 panel loads + 1 broadcast = 15 ymm */
#define MBLOCK 96 /* rows of A kept hot in L2 while the panels stream through L1 */

/* ---- GEMM ---- */

static inline __attribute__((always_inline)) void micro_rows(int R, int K, const float *A, int lda,
                                                             const float *panel, const float *bias, float *C,
                                                             int ldc)
{
    __m256 acc[MR][2];
    RNNF_UNROLL
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int k = 0; k < K; k++) {
        const __m256 b0 = _mm256_load_ps(panel + (size_t)k * UB);
        const __m256 b1 = _mm256_load_ps(panel + (size_t)k * UB + 8);
        RNNF_UNROLL
        for (int r = 0; r < R; r++) {
            const __m256 a = _mm256_broadcast_ss(A + (size_t)r * lda + k);
            acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
        }
    }
    const __m256 z0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    const __m256 z1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
    RNNF_UNROLL
    for (int r = 0; r < R; r++) {
        _mm256_storeu_ps(C + (size_t)r * ldc, _mm256_add_ps(acc[r][0], z0));
        _mm256_storeu_ps(C + (size_t)r * ldc + 8, _mm256_add_ps(acc[r][1], z1));
    }
}

/* One row against NP <= 4 panels. Each output keeps the single FMA chain over k that micro_rows uses, so a
 * row's result never depends on how many rows share the call (a stream's step equals the run's step to the
 * bit); the FMA latency is hidden by running the 2*NP chains of several panels side by side instead. */
static inline __attribute__((always_inline)) void one_row_panels(int NP, int K, const float *a, const float *panel,
                                                                 size_t panel_size, const float *bias, float *c)
{
    __m256 acc[4][2];
    RNNF_UNROLL
    for (int q = 0; q < NP; q++) acc[q][0] = acc[q][1] = _mm256_setzero_ps();
    for (int k = 0; k < K; k++) {
        const __m256 av = _mm256_broadcast_ss(a + k);
        RNNF_UNROLL
        for (int q = 0; q < NP; q++) {
            const float *p = panel + q * panel_size + (size_t)k * UB;
            acc[q][0] = _mm256_fmadd_ps(av, _mm256_load_ps(p), acc[q][0]);
            acc[q][1] = _mm256_fmadd_ps(av, _mm256_load_ps(p + 8), acc[q][1]);
        }
    }
    RNNF_UNROLL
    for (int q = 0; q < NP; q++) {
        const __m256 z0 = bias ? _mm256_loadu_ps(bias + q * UB) : _mm256_setzero_ps();
        const __m256 z1 = bias ? _mm256_loadu_ps(bias + q * UB + 8) : _mm256_setzero_ps();
        _mm256_storeu_ps(c + q * UB, _mm256_add_ps(acc[q][0], z0));
        _mm256_storeu_ps(c + q * UB + 8, _mm256_add_ps(acc[q][1], z1));
    }
}

static void one_row(int K, const float *a, const float *Bp, int p0, int p1, const float *bias, float *c_row)
{
    const size_t ps = (size_t)K * UB;
    int p = p0;
    for (; p + 4 <= p1; p += 4)
        one_row_panels(4, K, a, Bp + (size_t)p * ps, ps, bias ? bias + (size_t)p * UB : NULL, c_row + (size_t)p * UB);
    const float *panel = Bp + (size_t)p * ps, *bp = bias ? bias + (size_t)p * UB : NULL;
    float *c = c_row + (size_t)p * UB;
    switch (p1 - p) { /* constant panel counts keep the accumulators in registers */
    case 3: one_row_panels(3, K, a, panel, ps, bp, c); break;
    case 2: one_row_panels(2, K, a, panel, ps, bp, c); break;
    case 1: one_row_panels(1, K, a, panel, ps, bp, c); break;
    default: break;
    }
}

/* R < MR rows against NP panels at once. micro_rows on 2 or 3 rows has only 4 or 6 accumulators, too few to
 * cover the FMA latency (two ports, four cycles: eight chains in flight), so a batch-2 recurrent product ran at
 * half speed; NP panels side by side give 12. Each output keeps micro_rows's single FMA chain over k. */
static inline __attribute__((always_inline)) void micro_rows_panels(int R, int NP, int K, const float *A, int lda,
                                                                    const float *panel, size_t panel_size,
                                                                    const float *bias, float *C, int ldc)
{
    __m256 acc[3][3][2];
    RNNF_UNROLL
    for (int r = 0; r < R; r++)
        RNNF_UNROLL
        for (int q = 0; q < NP; q++) acc[r][q][0] = acc[r][q][1] = _mm256_setzero_ps();
    for (int k = 0; k < K; k++) {
        __m256 a[3];
        RNNF_UNROLL
        for (int r = 0; r < R; r++) a[r] = _mm256_broadcast_ss(A + (size_t)r * lda + k);
        RNNF_UNROLL
        for (int q = 0; q < NP; q++) {
            const float *p = panel + q * panel_size + (size_t)k * UB;
            const __m256 b0 = _mm256_load_ps(p), b1 = _mm256_load_ps(p + 8);
            RNNF_UNROLL
            for (int r = 0; r < R; r++) {
                acc[r][q][0] = _mm256_fmadd_ps(a[r], b0, acc[r][q][0]);
                acc[r][q][1] = _mm256_fmadd_ps(a[r], b1, acc[r][q][1]);
            }
        }
    }
    RNNF_UNROLL
    for (int q = 0; q < NP; q++) {
        const __m256 z0 = bias ? _mm256_loadu_ps(bias + q * UB) : _mm256_setzero_ps();
        const __m256 z1 = bias ? _mm256_loadu_ps(bias + q * UB + 8) : _mm256_setzero_ps();
        RNNF_UNROLL
        for (int r = 0; r < R; r++) {
            _mm256_storeu_ps(C + (size_t)r * ldc + q * UB, _mm256_add_ps(acc[r][q][0], z0));
            _mm256_storeu_ps(C + (size_t)r * ldc + q * UB + 8, _mm256_add_ps(acc[r][q][1], z1));
        }
    }
}

/* Rows left over after the MR blocks, over panels [p, p + np): 2 rows go three panels at a time, 3 rows two. */
static void rest_rows(int R, int K, const float *A, int lda, const float *Bp, int p, int np, const float *bias,
                      float *C, int ldc)
{
    const size_t ps = (size_t)K * UB;
    const int per = R == 2 ? 3 : R == 3 ? 2 : 1;
    for (int q = p; q < p + np; q += per) {
        const int n = p + np - q < per ? p + np - q : per;
        const float *panel = Bp + (size_t)q * ps, *bq = bias ? bias + (size_t)q * UB : NULL;
        float *c = C + (size_t)q * UB;
        if (R == 2 && n == 3) micro_rows_panels(2, 3, K, A, lda, panel, ps, bq, c, ldc);
        else if (R == 2 && n == 2) micro_rows_panels(2, 2, K, A, lda, panel, ps, bq, c, ldc);
        else if (R == 3 && n == 2) micro_rows_panels(3, 2, K, A, lda, panel, ps, bq, c, ldc);
        else switch (R) { /* constant row counts let the compiler keep the accumulators in registers */
            case 5: micro_rows(5, K, A, lda, panel, bq, c, ldc); break;
            case 4: micro_rows(4, K, A, lda, panel, bq, c, ldc); break;
            case 3: micro_rows(3, K, A, lda, panel, bq, c, ldc); break;
            case 2: micro_rows(2, K, A, lda, panel, bq, c, ldc); break;
            default: break;
            }
    }
}

static void gemm_packed_avx2(int M, int K, const float *A, int lda, const float *Bp, int p0, int p1,
                             const float *bias, float *C, int ldc)
{
    const int GROUP = 6; /* panels whose row blocks run before the leftover rows read them, still in L1/L2 */
    for (int m0 = 0; m0 < M; m0 += MBLOCK) {
        const int m1 = m0 + MBLOCK < M ? m0 + MBLOCK : M;
        const int full = m0 + (m1 - m0) / MR * MR, rest = m1 - full;
        for (int g = p0; g < p1; g += GROUP) {
            const int g1 = g + GROUP < p1 ? g + GROUP : p1;
            for (int p = g; p < g1; p++) {
                const float *panel = Bp + (size_t)p * K * UB;
                const float *bp = bias ? bias + (size_t)p * UB : NULL;
                for (int m = m0; m < full; m += MR)
                    micro_rows(MR, K, A + (size_t)m * lda, lda, panel, bp, C + (size_t)m * ldc + (size_t)p * UB, ldc);
            }
            if (rest > 1)
                rest_rows(rest, K, A + (size_t)full * lda, lda, Bp, g, g1 - g, bias, C + (size_t)full * ldc, ldc);
        }
        if (rest == 1) one_row(K, A + (size_t)full * lda, Bp, p0, p1, bias, C + (size_t)full * ldc);
    }
}

/* ---- implicit GEMM (convolution) ---- */

/* micro_rows with B's row k read in place at X + off[k] (unaligned) instead of from a packed panel: a conv's
 * 16 consecutive output positions along a row read 16 consecutive staged inputs per tap, so no im2col copy is
 * needed. The bias is per row (output channel) here; the epilogue adds it, or zero, as gemm_packed does. */
static inline __attribute__((always_inline)) void conv_micro(int R, int K, const float *A, int lda, const float *X,
                                                             const int32_t *off, const float *bias, int relu,
                                                             float *C, int ldc)
{
    __m256 acc[MR][2];
    RNNF_UNROLL
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int k = 0; k < K; k++) {
        const float *x = X + off[k];
        const __m256 b0 = _mm256_loadu_ps(x), b1 = _mm256_loadu_ps(x + 8);
        RNNF_UNROLL
        for (int r = 0; r < R; r++) {
            const __m256 a = _mm256_broadcast_ss(A + (size_t)r * lda + k);
            acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
        }
    }
    RNNF_UNROLL
    for (int r = 0; r < R; r++) {
        const __m256 z = _mm256_set1_ps(bias ? bias[r] : 0.0f);
        __m256 v0 = _mm256_add_ps(acc[r][0], z), v1 = _mm256_add_ps(acc[r][1], z);
        if (relu) { /* max returns its second operand for NaN: NaN stays, as the graph's Relu keeps it */
            v0 = _mm256_max_ps(_mm256_setzero_ps(), v0);
            v1 = _mm256_max_ps(_mm256_setzero_ps(), v1);
        }
        _mm256_storeu_ps(C + (size_t)r * ldc, v0);
        _mm256_storeu_ps(C + (size_t)r * ldc + 8, v1);
    }
}

static void conv_micro_r(int R, int K, const float *A, int lda, const float *X, const int32_t *off,
                         const float *bias, int relu, float *C, int ldc)
{
    switch (R) { /* constant row counts keep the accumulators in registers */
    case 6: conv_micro(6, K, A, lda, X, off, bias, relu, C, ldc); break;
    case 5: conv_micro(5, K, A, lda, X, off, bias, relu, C, ldc); break;
    case 4: conv_micro(4, K, A, lda, X, off, bias, relu, C, ldc); break;
    case 3: conv_micro(3, K, A, lda, X, off, bias, relu, C, ldc); break;
    case 2: conv_micro(2, K, A, lda, X, off, bias, relu, C, ldc); break;
    default: conv_micro(1, K, A, lda, X, off, bias, relu, C, ldc); break;
    }
}

/* Rows go in balanced blocks of at most MR (16 = 6+5+5, 32 = 6+6+5+5+5+5): a short last block would have too
 * few accumulators to cover the FMA latency. Within MBLOCK rows, each 16-column panel runs every row block
 * while its inputs sit in L1. A partial last panel goes through a tile. */
static void gemm_offsets_avx2(int M, int K, const float *A, int lda, const float *X, const int32_t *off, int N,
                              const float *bias, int relu, float *C, int ldc)
{
    float tile[MR * UB] __attribute__((aligned(32)));
    for (int m0 = 0; m0 < M; m0 += MBLOCK) {
        const int m1 = m0 + MBLOCK < M ? m0 + MBLOCK : M, nb = (m1 - m0 + MR - 1) / MR;
        for (int j = 0; j < N; j += UB) {
            const int w = N - j < UB ? N - j : UB;
            for (int b = 0, m = m0; b < nb; b++) {
                const int R = (m1 - m0) / nb + (b < (m1 - m0) % nb);
                const float *a = A + (size_t)m * lda, *bp = bias ? bias + m : NULL;
                float *c = C + (size_t)m * ldc + j;
                if (w == UB) {
                    conv_micro_r(R, K, a, lda, X + j, off, bp, relu, c, ldc);
                } else {
                    conv_micro_r(R, K, a, lda, X + j, off, bp, relu, tile, UB);
                    for (int r = 0; r < R; r++)
                        for (int q = 0; q < w; q++) c[(size_t)r * ldc + q] = tile[r * UB + q];
                }
                m += R;
            }
        }
    }
}

/* One row of A's 2x2 pooled outputs from its accumulators: up (output row 0) and down (row 1), 16 columns each in
 * two halves; bias and relu as conv_micro's epilogue, then the rows, then the even and odd columns, n <= 8 out. */
static inline __attribute__((always_inline)) void pool_store(__m256 u0, __m256 u1, __m256 d0, __m256 d1, float b,
                                                             int relu, float *c, int n)
{
    const __m256 z = _mm256_set1_ps(b), ninf = _mm256_set1_ps(-INFINITY);
    u0 = _mm256_add_ps(u0, z);
    u1 = _mm256_add_ps(u1, z);
    d0 = _mm256_add_ps(d0, z);
    d1 = _mm256_add_ps(d1, z);
    if (relu) { /* max returns its second operand for NaN: NaN stays, as the graph's Relu keeps it */
        u0 = _mm256_max_ps(_mm256_setzero_ps(), u0);
        u1 = _mm256_max_ps(_mm256_setzero_ps(), u1);
        d0 = _mm256_max_ps(_mm256_setzero_ps(), d0);
        d1 = _mm256_max_ps(_mm256_setzero_ps(), d1);
    }
    const __m256 c0 = _mm256_max_ps(d0, _mm256_max_ps(u0, ninf)), c1 = _mm256_max_ps(d1, _mm256_max_ps(u1, ninf));
    /* even and odd columns: within each 128-bit lane, then the 64-bit pairs back in order */
    const __m256 ev = _mm256_castpd_ps(
        _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(c0, c1, _MM_SHUFFLE(2, 0, 2, 0))), 0xd8));
    const __m256 od = _mm256_castpd_ps(
        _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(c0, c1, _MM_SHUFFLE(3, 1, 3, 1))), 0xd8));
    const __m256 p = _mm256_max_ps(od, _mm256_max_ps(ev, ninf));
    if (n == 8) {
        _mm256_storeu_ps(c, p);
    } else { /* through the stack: a masked store costs ~20 cycles on Zen 2 */
        float tmp[8] __attribute__((aligned(32)));
        _mm256_store_ps(tmp, p);
        for (int q = 0; q < n; q++) c[q] = tmp[q];
    }
}

/* conv_micro for two output rows (B rows at X + off[k] and X + dx + off[k]) and R <= 2 rows of A, 16 columns:
 * 8 accumulators as named variables (in arrays, or with 3 rows of A, gcc stored them to the stack every k and
 * the kernel ran slower than two gemm_offsets calls and a pool pass), each output the same chain as
 * conv_micro's, then each 2x2 block max-pooled in registers as wino2_out_pool folds a tile. */
static inline __attribute__((always_inline)) void conv_pool_micro(int R, int K, const float *A, int lda,
                                                                  const float *X, int64_t dx, const int32_t *off,
                                                                  const float *bias, int relu, float *C, int ldc,
                                                                  int n)
{
    __m256 u00 = _mm256_setzero_ps(), u01 = u00, d00 = u00, d01 = u00, u10 = u00, u11 = u00, d10 = u00, d11 = u00;
    const float *a1 = A + (R > 1 ? lda : 0);
    for (int k = 0; k < K; k++) {
        const float *x = X + off[k];
        const __m256 b00 = _mm256_loadu_ps(x), b01 = _mm256_loadu_ps(x + 8);
        const __m256 b10 = _mm256_loadu_ps(x + dx), b11 = _mm256_loadu_ps(x + dx + 8);
        const __m256 a = _mm256_broadcast_ss(A + k);
        u00 = _mm256_fmadd_ps(a, b00, u00);
        u01 = _mm256_fmadd_ps(a, b01, u01);
        d00 = _mm256_fmadd_ps(a, b10, d00);
        d01 = _mm256_fmadd_ps(a, b11, d01);
        if (R > 1) {
            const __m256 e = _mm256_broadcast_ss(a1 + k);
            u10 = _mm256_fmadd_ps(e, b00, u10);
            u11 = _mm256_fmadd_ps(e, b01, u11);
            d10 = _mm256_fmadd_ps(e, b10, d10);
            d11 = _mm256_fmadd_ps(e, b11, d11);
        }
    }
    pool_store(u00, u01, d00, d01, bias ? bias[0] : 0.0f, relu, C, n);
    if (R > 1) pool_store(u10, u11, d10, d11, bias ? bias[1] : 0.0f, relu, C + ldc, n);
}

static void gemm_offsets_pool_avx2(int M, int K, const float *A, int lda, const float *X, int64_t dx,
                                   const int32_t *off, int N, const float *bias, int relu, float *C, int ldc)
{
    for (int j = 0; j < N; j += UB) {
        const int n = (N - j < UB ? N - j : UB) / 2;
        for (int m = 0; m < M;) {
            const int R = M - m >= 2 ? 2 : 1;
            const float *a = A + (size_t)m * lda, *bp = bias ? bias + m : NULL;
            float *c = C + (size_t)m * ldc + j / 2;
            if (R == 2) /* constant row counts keep the accumulators in registers */
                conv_pool_micro(2, K, a, lda, X + j, dx, off, bp, relu, c, ldc, n);
            else
                conv_pool_micro(1, K, a, lda, X + j, dx, off, bp, relu, c, ldc, n);
            m += R;
        }
    }
}

/* ---- Winograd F(2x2, 3x3) transforms (the order of every add is ref.c's, so the bits are its bits) ---- */

/* Lanes [0, n) of a mask (n <= 8). */
static inline __m256i lane_mask(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline __attribute__((always_inline)) __m256 load_m(const float *p, int masked, __m256i mk)
{
    return masked ? _mm256_maskload_ps(p, mk) : _mm256_loadu_ps(p);
}

/* Eight tiles of one channel; masked: only the lanes of mk are read (all eight are written, see kernels.h). */
static inline __attribute__((always_inline)) void wino2_in8(const float *x, int ldx, int odd, float *v, int64_t ldp,
                                                            int masked, __m256i mk)
{
    __m256 e[4][4];
    RNNF_UNROLL
    for (int j = 0; j < 4; j++) {
        const float *s = x + (j & 1 ? odd : 0) + (j >> 1);
        const __m256 d0 = load_m(s, masked, mk), d1 = load_m(s + ldx, masked, mk);
        const __m256 d2 = load_m(s + 2 * (size_t)ldx, masked, mk), d3 = load_m(s + 3 * (size_t)ldx, masked, mk);
        e[0][j] = _mm256_sub_ps(d0, d2);
        e[1][j] = _mm256_add_ps(d1, d2);
        e[2][j] = _mm256_sub_ps(d2, d1);
        e[3][j] = _mm256_sub_ps(d1, d3);
    }
    RNNF_UNROLL
    for (int a = 0; a < 4; a++) {
        __m256 r[4];
        r[0] = _mm256_sub_ps(e[a][0], e[a][2]);
        r[1] = _mm256_add_ps(e[a][1], e[a][2]);
        r[2] = _mm256_sub_ps(e[a][2], e[a][1]);
        r[3] = _mm256_sub_ps(e[a][1], e[a][3]);
        RNNF_UNROLL
        for (int b = 0; b < 4; b++) _mm256_storeu_ps(v + (size_t)(4 * a + b) * ldp, r[b]);
    }
}

/* Eight tiles at a time, the last group's loads masked: the even/odd split of the staged rows makes each tile
 * column j one unaligned load. (A masked store costs ~20 cycles on Zen 2: the last group writes whole vectors.) */
void rnnf_wino2_in_avx2(int C, int n, const float *X, int64_t ldc, int ldx, int odd, float *V, int64_t ldp, int ldv)
{
    const __m256i mk = lane_mask(n % 8);
    for (int c = 0; c < C; c++) {
        const float *x = X + (size_t)c * (size_t)ldc;
        float *v = V + (size_t)c * (size_t)ldv;
        int t = 0;
        for (; t + 8 <= n; t += 8) wino2_in8(x + t, ldx, odd, v + t, ldp, 0, mk);
        if (t < n) wino2_in8(x + t, ldx, odd, v + t, ldp, 1, mk);
    }
}

/* The first half of F(2,3)'s output transform, A^T Y, for eight tiles of one channel: both epilogues start here. */
static inline __attribute__((always_inline)) void wino2_rows8(const float *y, int64_t ldp, int masked, __m256i mk,
                                                              __m256 z[2][4])
{
    RNNF_UNROLL
    for (int b = 0; b < 4; b++) {
        const __m256 y0 = load_m(y + (size_t)b * ldp, masked, mk), y1 = load_m(y + (size_t)(4 + b) * ldp, masked, mk);
        const __m256 y2 = load_m(y + (size_t)(8 + b) * ldp, masked, mk);
        const __m256 y3 = load_m(y + (size_t)(12 + b) * ldp, masked, mk);
        z[0][b] = _mm256_add_ps(_mm256_add_ps(y0, y1), y2);
        z[1][b] = _mm256_sub_ps(_mm256_sub_ps(y1, y2), y3);
    }
}

/* Eight tiles of one channel: h rows of `cols` output columns (16 unless masked). */
static inline __attribute__((always_inline)) void wino2_out8(const float *y, int64_t ldp, __m256 bv, int relu,
                                                             float *o, int ldo, int h, int cols, int masked,
                                                             __m256i mk)
{
    __m256 z[2][4];
    wino2_rows8(y, ldp, masked, mk, z);
    RNNF_UNROLL
    for (int i = 0; i < h; i++) {
        __m256 s0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(z[i][0], z[i][1]), z[i][2]), bv);
        __m256 s1 = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(z[i][1], z[i][2]), z[i][3]), bv);
        if (relu) { /* max returns its second operand for NaN: NaN stays, as ref.c's compare keeps it */
            s0 = _mm256_max_ps(_mm256_setzero_ps(), s0);
            s1 = _mm256_max_ps(_mm256_setzero_ps(), s1);
        }
        const __m256 lo = _mm256_unpacklo_ps(s0, s1), hi = _mm256_unpackhi_ps(s0, s1);
        const __m256 r0 = _mm256_permute2f128_ps(lo, hi, 0x20), r1 = _mm256_permute2f128_ps(lo, hi, 0x31);
        float *r = o + (size_t)i * ldo;
        if (!masked) {
            _mm256_storeu_ps(r, r0);
            _mm256_storeu_ps(r + 8, r1);
        } else { /* through the stack: a masked store costs ~20 cycles on Zen 2 */
            float tmp[16] __attribute__((aligned(32)));
            _mm256_store_ps(tmp, r0);
            _mm256_store_ps(tmp + 8, r1);
            for (int q = 0; q < cols; q++) r[q] = tmp[q];
        }
    }
}

/* Eight tiles at a time, the last group (or one cut by w) masked; each output row's two columns are interleaved
 * in registers before the store. */
void rnnf_wino2_out_avx2(int M, int n, const float *Y, int64_t ldp, int ldv, const float *bias, int relu,
                         float *out, int64_t ldoc, int ldo, int h, int w)
{
    const int nf = w / 16 < n / 8 ? w / 16 : n / 8, tt = 8 * nf; /* whole groups: 8 tiles, 16 columns */
    const int cols = w - 2 * tt < 16 ? w - 2 * tt : 16;
    const __m256i mk = lane_mask(n - tt < 8 ? n - tt : 8);
    for (int m = 0; m < M; m++) {
        const float *y = Y + (size_t)m * ldv;
        float *o = out + (size_t)m * (size_t)ldoc;
        const __m256 bv = _mm256_set1_ps(bias ? bias[m] : 0.0f);
        const int ru = relu != 0, h2 = h == 2;
        for (int t = 0; t < tt; t += 8) {
            if (h2)
                wino2_out8(y + t, ldp, bv, ru, o + 2 * t, ldo, 2, 16, 0, mk);
            else
                wino2_out8(y + t, ldp, bv, ru, o + 2 * t, ldo, 1, 16, 0, mk);
        }
        if (tt < n) wino2_out8(y + tt, ldp, bv, ru, o + 2 * tt, ldo, h, cols, 1, mk);
    }
}

/* Eight whole tiles of one channel, pooled: each tile's 2x2 outputs folded as ref.c's rnnf_wino2_out_pool_c folds
 * them (max(v, acc) is _mm256_max_ps(v, acc): v only when greater), one output per tile, so no interleave. */
static inline __attribute__((always_inline)) __m256 wino2_pool8(const float *y, int64_t ldp, __m256 bv, int relu,
                                                                int masked, __m256i mk)
{
    __m256 z[2][4];
    wino2_rows8(y, ldp, masked, mk, z);
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 c0 = ninf, c1 = ninf;
    RNNF_UNROLL
    for (int i = 0; i < 2; i++) {
        __m256 s0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(z[i][0], z[i][1]), z[i][2]), bv);
        __m256 s1 = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(z[i][1], z[i][2]), z[i][3]), bv);
        if (relu) {
            s0 = _mm256_max_ps(_mm256_setzero_ps(), s0);
            s1 = _mm256_max_ps(_mm256_setzero_ps(), s1);
        }
        c0 = _mm256_max_ps(s0, c0);
        c1 = _mm256_max_ps(s1, c1);
    }
    return _mm256_max_ps(c1, _mm256_max_ps(c0, ninf));
}

static void wino2_out_pool_avx2(int M, int n, const float *Y, int64_t ldp, int ldv, const float *bias, int relu,
                                float *out, int64_t ldoc)
{
    const int tt = n / 8 * 8;
    const __m256i mk = lane_mask(n - tt);
    for (int m = 0; m < M; m++) {
        const float *y = Y + (size_t)m * ldv;
        float *o = out + (size_t)m * (size_t)ldoc;
        const __m256 bv = _mm256_set1_ps(bias ? bias[m] : 0.0f);
        const int ru = relu != 0;
        for (int t = 0; t < tt; t += 8) _mm256_storeu_ps(o + t, wino2_pool8(y + t, ldp, bv, ru, 0, mk));
        if (tt < n) { /* through the stack: a masked store costs ~20 cycles on Zen 2 */
            float tmp[8] __attribute__((aligned(32)));
            _mm256_store_ps(tmp, wino2_pool8(y + tt, ldp, bv, ru, 1, mk));
            for (int q = 0; q < n - tt; q++) o[tt + q] = tmp[q];
        }
    }
}

/* ---- activations (algorithm, constants and measured errors: approx.h, shared with neon.c) ---- */

/* The activations work on N vectors at once, stage by stage: a gate kernel's activations are independent
 * chains of ~20 dependent operations, and interleaving them in program order lets the core overlap them
 * instead of waiting on one chain at a time. Every lane gets the same operations for any N. */
static inline __attribute__((always_inline)) void exp_n(int N, __m256 *x)
{
    __m256 r[8], p[8];
    __m256i e[8];
    RNNF_UNROLL
    for (int q = 0; q < N; q++) {
        /* operand order matters: max/min return their second operand for NaN, and NaN must stay NaN */
        const __m256 v = _mm256_min_ps(_mm256_set1_ps(EXP_HI), _mm256_max_ps(_mm256_set1_ps(EXP_LO), x[q]));
        const __m256 n = _mm256_round_ps(_mm256_mul_ps(v, _mm256_set1_ps(LOG2E)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        r[q] = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), v);
        r[q] = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r[q]);
        e[q] = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
        p[q] = _mm256_set1_ps(INV_FACT[7]);
    }
    RNNF_UNROLL
    for (int i = 6; i >= 0; i--)
        RNNF_UNROLL
        for (int q = 0; q < N; q++) p[q] = _mm256_fmadd_ps(p[q], r[q], _mm256_set1_ps(INV_FACT[i]));
    RNNF_UNROLL
    for (int q = 0; q < N; q++) x[q] = _mm256_mul_ps(p[q], _mm256_castsi256_ps(e[q]));
}

/* x[0, NS) = sigmoid(x), x[NS, NS + NT) = tanh(x), with one interleaved exp pass for both kinds. */
static inline __attribute__((always_inline)) void sigmoid_tanh_n(int NS, int NT, __m256 *x)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 e[8], ax[8];
    RNNF_UNROLL
    for (int q = 0; q < NS; q++) e[q] = _mm256_sub_ps(_mm256_setzero_ps(), x[q]);
    RNNF_UNROLL
    for (int q = NS; q < NS + NT; q++) {
        ax[q] = _mm256_andnot_ps(sign, x[q]);
        e[q] = _mm256_add_ps(ax[q], ax[q]);
    }
    exp_n(NS + NT, e);
    RNNF_UNROLL
    for (int q = 0; q < NS; q++) x[q] = _mm256_div_ps(one, _mm256_add_ps(one, e[q]));
    RNNF_UNROLL
    for (int q = NS; q < NS + NT; q++) {
        /* tanh, large branch: 1 - 2/(e^{2|x|}+1), sign restored */
        __m256 big = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e[q], one)));
        big = _mm256_or_ps(big, _mm256_and_ps(x[q], sign));
        /* small branch: x * P(x^2) */
        const __m256 x2 = _mm256_mul_ps(x[q], x[q]);
        __m256 p = _mm256_set1_ps(TANH_SERIES[5]);
        RNNF_UNROLL
        for (int i = 4; i >= 0; i--) p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(TANH_SERIES[i]));
        const __m256 small = _mm256_mul_ps(p, x[q]);
        x[q] = _mm256_blendv_ps(big, small, _mm256_cmp_ps(ax[q], _mm256_set1_ps(TANH_SMALL), _CMP_LT_OQ));
    }
}

static inline __attribute__((always_inline)) void sigmoid_n(int N, __m256 *x) { sigmoid_tanh_n(N, 0, x); }

static inline __attribute__((always_inline)) void tanh_n(int N, __m256 *x) { sigmoid_tanh_n(0, N, x); }

static inline __m256 sigmoid_ps(__m256 x)
{
    sigmoid_n(1, &x);
    return x;
}

static inline __m256 tanh_ps(__m256 x)
{
    tanh_n(1, &x);
    return x;
}

static __m256 act_scalar_lanes(const rnnf_activation *a, __m256 x)
{
    float v[8] __attribute__((aligned(32)));
    _mm256_store_ps(v, x);
    for (int i = 0; i < 8; i++) v[i] = rnnf_act_scalar(a, v[i]);
    return _mm256_load_ps(v);
}

static inline __m256 act_ps(const rnnf_activation *a, __m256 x)
{
    switch (a->kind) {
    case RNNF_ACT_SIGMOID: return sigmoid_ps(x);
    case RNNF_ACT_TANH: return tanh_ps(x);
    case RNNF_ACT_RELU: return _mm256_max_ps(x, _mm256_setzero_ps());
    case RNNF_ACT_AFFINE: return _mm256_fmadd_ps(_mm256_set1_ps(a->alpha), x, _mm256_set1_ps(a->beta));
    case RNNF_ACT_HARDSIGMOID:
        return _mm256_min_ps(_mm256_max_ps(_mm256_fmadd_ps(_mm256_set1_ps(a->alpha), x, _mm256_set1_ps(a->beta)),
                                           _mm256_setzero_ps()),
                             _mm256_set1_ps(1.0f));
    case RNNF_ACT_SCALEDTANH:
        return _mm256_mul_ps(_mm256_set1_ps(a->alpha), tanh_ps(_mm256_mul_ps(_mm256_set1_ps(a->beta), x)));
    default: return act_scalar_lanes(a, x);
    }
}

static inline __m256 clip_ps(__m256 x, float clip)
{
    if (clip > 0.0f) x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-clip)), _mm256_set1_ps(clip));
    return x;
}

static inline __m256 ld(const float *p) { return _mm256_loadu_ps(p); }

/* f = sigmoid, g = tanh, no clip: the configuration of nearly every trained model, given straight-line code */
static inline int plain_gates(const rnnf_gate_params *gp)
{
    return gp->f.kind == RNNF_ACT_SIGMOID && gp->g.kind == RNNF_ACT_TANH && !(gp->clip > 0.0f);
}

/* ---- gate kernels: each loops over the two 8-lane halves of a 16-unit block ---- */

static void lstm_block_avx2(const float *gx, const float *gh, const float *peep, float *c, float *h_out,
                            const rnnf_gate_params *gp)
{
    if (!peep && !gp->input_forget && plain_gates(gp) && gp->h.kind == RNNF_ACT_TANH) {
        /* the common LSTM, both 8-unit halves interleaved, the cell update's inputs (i, f, g) first and o with
         * tanh(c): the same operations per lane as the loop below */
        __m256 v[6], w[4];
        RNNF_UNROLL
        for (int q = 0; q < 2; q++) {
            const int j = 8 * q;
            v[q] = _mm256_add_ps(ld(gx + j), ld(gh + j));                      /* i */
            v[2 + q] = _mm256_add_ps(ld(gx + 2 * UB + j), ld(gh + 2 * UB + j)); /* f */
            v[4 + q] = _mm256_add_ps(ld(gx + 3 * UB + j), ld(gh + 3 * UB + j)); /* c */
            w[q] = _mm256_add_ps(ld(gx + UB + j), ld(gh + UB + j));             /* o */
        }
        sigmoid_tanh_n(4, 2, v);
        RNNF_UNROLL
        for (int q = 0; q < 2; q++) {
            w[2 + q] = _mm256_fmadd_ps(v[2 + q], ld(c + 8 * q), _mm256_mul_ps(v[q], v[4 + q]));
            _mm256_storeu_ps(c + 8 * q, w[2 + q]);
        }
        sigmoid_tanh_n(2, 2, w);
        for (int q = 0; q < 2; q++) _mm256_storeu_ps(h_out + 8 * q, _mm256_mul_ps(w[q], w[2 + q]));
        return;
    }
    RNNF_UNROLL
    for (int j = 0; j < UB; j += 8) {
        const __m256 c_prev = ld(c + j);
        __m256 pi = _mm256_add_ps(ld(gx + j), ld(gh + j));
        __m256 po = _mm256_add_ps(ld(gx + UB + j), ld(gh + UB + j));
        __m256 pf = _mm256_add_ps(ld(gx + 2 * UB + j), ld(gh + 2 * UB + j));
        const __m256 pc = _mm256_add_ps(ld(gx + 3 * UB + j), ld(gh + 3 * UB + j));
        if (peep) {
            pi = _mm256_fmadd_ps(ld(peep + j), c_prev, pi);
            pf = _mm256_fmadd_ps(ld(peep + 2 * UB + j), c_prev, pf);
        }
        const __m256 i = act_ps(&gp->f, clip_ps(pi, gp->clip));
        const __m256 f = gp->input_forget ? _mm256_sub_ps(_mm256_set1_ps(1.0f), i) : act_ps(&gp->f, clip_ps(pf, gp->clip));
        const __m256 g = act_ps(&gp->g, clip_ps(pc, gp->clip));
        const __m256 c_new = _mm256_fmadd_ps(f, c_prev, _mm256_mul_ps(i, g));
        if (peep) po = _mm256_fmadd_ps(ld(peep + UB + j), c_new, po);
        const __m256 o = act_ps(&gp->f, clip_ps(po, gp->clip));
        _mm256_storeu_ps(c + j, c_new);
        _mm256_storeu_ps(h_out + j, _mm256_mul_ps(o, act_ps(&gp->h, c_new)));
    }
}

/* h_new = (1-z)*n + z*h_prev, written as n + z*(h_prev - n) to use one FMA. */
static inline __m256 gru_mix(__m256 z, __m256 n, __m256 h_prev)
{
    return _mm256_fmadd_ps(z, _mm256_sub_ps(h_prev, n), n);
}

static void gru_lbr_block_avx2(const float *gx, const float *gh, const float *h_prev, float *h_new,
                               const rnnf_gate_params *gp)
{
    if (plain_gates(gp)) {
        /* sigmoid/tanh without clip, both halves interleaved: the same operations as the loop below */
        __m256 zr[4], n[2];
        RNNF_UNROLL
        for (int q = 0; q < 2; q++) {
            zr[q] = _mm256_add_ps(ld(gx + 8 * q), ld(gh + 8 * q));
            zr[2 + q] = _mm256_add_ps(ld(gx + UB + 8 * q), ld(gh + UB + 8 * q));
        }
        sigmoid_n(4, zr);
        RNNF_UNROLL
        for (int q = 0; q < 2; q++)
            n[q] = _mm256_fmadd_ps(zr[2 + q], ld(gh + 2 * UB + 8 * q), ld(gx + 2 * UB + 8 * q));
        tanh_n(2, n);
        RNNF_UNROLL
        for (int q = 0; q < 2; q++) _mm256_storeu_ps(h_new + 8 * q, gru_mix(zr[q], n[q], ld(h_prev + 8 * q)));
        return;
    }
    RNNF_UNROLL
    for (int j = 0; j < UB; j += 8) {
        const __m256 z = act_ps(&gp->f, clip_ps(_mm256_add_ps(ld(gx + j), ld(gh + j)), gp->clip));
        const __m256 r = act_ps(&gp->f, clip_ps(_mm256_add_ps(ld(gx + UB + j), ld(gh + UB + j)), gp->clip));
        const __m256 n = act_ps(&gp->g, clip_ps(_mm256_fmadd_ps(r, ld(gh + 2 * UB + j), ld(gx + 2 * UB + j)), gp->clip));
        _mm256_storeu_ps(h_new + j, gru_mix(z, n, ld(h_prev + j)));
    }
}

static void gru_zr_block_avx2(const float *gx, const float *gh, const float *h_prev, float *z_out, float *rh_out,
                              const rnnf_gate_params *gp)
{
    RNNF_UNROLL
    for (int j = 0; j < UB; j += 8) {
        _mm256_storeu_ps(z_out + j, act_ps(&gp->f, clip_ps(_mm256_add_ps(ld(gx + j), ld(gh + j)), gp->clip)));
        const __m256 r = act_ps(&gp->f, clip_ps(_mm256_add_ps(ld(gx + UB + j), ld(gh + UB + j)), gp->clip));
        _mm256_storeu_ps(rh_out + j, _mm256_mul_ps(r, ld(h_prev + j)));
    }
}

static void gru_h_block_avx2(const float *gx_h, const float *gh_h, const float *z, const float *h_prev,
                             float *h_new, const rnnf_gate_params *gp)
{
    RNNF_UNROLL
    for (int j = 0; j < UB; j += 8) {
        const __m256 n = act_ps(&gp->g, clip_ps(_mm256_add_ps(ld(gx_h + j), ld(gh_h + j)), gp->clip));
        _mm256_storeu_ps(h_new + j, gru_mix(ld(z + j), n, ld(h_prev + j)));
    }
}

static void rnn_block_avx2(const float *gx, const float *gh, float *h_new, const rnnf_gate_params *gp)
{
    if (gp->f.kind == RNNF_ACT_TANH && !(gp->clip > 0.0f)) {
        __m256 v[2] = {_mm256_add_ps(ld(gx), ld(gh)), _mm256_add_ps(ld(gx + 8), ld(gh + 8))};
        tanh_n(2, v);
        _mm256_storeu_ps(h_new, v[0]);
        _mm256_storeu_ps(h_new + 8, v[1]);
        return;
    }
    RNNF_UNROLL
    for (int j = 0; j < UB; j += 8)
        _mm256_storeu_ps(h_new + j, act_ps(&gp->f, clip_ps(_mm256_add_ps(ld(gx + j), ld(gh + j)), gp->clip)));
}

/* ---- batch > 1: the block kernels over many rows (rows_step.c) ----
 * Even with a row's activations interleaved (exp_n), one block of one row is a ~170-cycle chain (gates, new
 * cell, h(c)) with too little beside it to fill the core. These kernels also overlap consecutive rows: the
 * second half of one row is issued beside the first half of the next. Each lane sees exactly the operations
 * of the block kernels, so the results are theirs to the bit, for every activation, clip and peephole. */

/* clip, then the activation, on n vectors; the common kinds interleaved, the others one vector at a time */
static inline __attribute__((always_inline)) void act_n(const rnnf_activation *a, float clip, int n, __m256 *x)
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

/* The gates and the new cell of row b; the output gate too unless it has a peephole (then it needs the new cell). */
static inline __attribute__((always_inline)) void lstm_row_front(const float *x, const float *y, const float *peep,
                                                                 float *cb, __m256 cn[2], __m256 o[2],
                                                                 const rnnf_gate_params *gp)
{
    const int ifg = gp->input_forget;
    __m256 cp[2], s[6], f[2], g[2]; /* s: the gates activated together: i, o (f in its place with a peephole), f */
    RNNF_UNROLL
    for (int j = 0; j < 2; j++) {
        cp[j] = ld(cb + 8 * j);
        s[j] = _mm256_add_ps(ld(x + 8 * j), ld(y + 8 * j));
        s[2 + j] = _mm256_add_ps(ld(x + UB + 8 * j), ld(y + UB + 8 * j));
        f[j] = _mm256_add_ps(ld(x + 2 * UB + 8 * j), ld(y + 2 * UB + 8 * j));
        g[j] = _mm256_add_ps(ld(x + 3 * UB + 8 * j), ld(y + 3 * UB + 8 * j));
        if (peep) {
            s[j] = _mm256_fmadd_ps(ld(peep + 8 * j), cp[j], s[j]);
            f[j] = _mm256_fmadd_ps(ld(peep + 2 * UB + 8 * j), cp[j], f[j]);
        }
        s[4 + j] = f[j];
    }
    if (!peep && !ifg) {
        act_n(&gp->f, gp->clip, 6, s);
        f[0] = s[4], f[1] = s[5];
    } else if (!peep) {
        act_n(&gp->f, gp->clip, 4, s);
    } else if (!ifg) {
        s[2] = f[0], s[3] = f[1];
        act_n(&gp->f, gp->clip, 4, s);
        f[0] = s[2], f[1] = s[3];
    } else {
        act_n(&gp->f, gp->clip, 2, s);
    }
    if (ifg) f[0] = _mm256_sub_ps(_mm256_set1_ps(1.0f), s[0]), f[1] = _mm256_sub_ps(_mm256_set1_ps(1.0f), s[1]);
    act_n(&gp->g, gp->clip, 2, g);
    RNNF_UNROLL
    for (int j = 0; j < 2; j++) {
        cn[j] = _mm256_fmadd_ps(f[j], cp[j], _mm256_mul_ps(s[j], g[j]));
        _mm256_storeu_ps(cb + 8 * j, cn[j]);
        o[j] = s[2 + j];
    }
}

/* h = o * h(c) of a row whose front has run. */
static inline __attribute__((always_inline)) void lstm_row_back(const float *x, const float *y, const float *peep,
                                                                __m256 cn[2], __m256 o[2], float *hb,
                                                                const rnnf_gate_params *gp)
{
    if (peep) {
        RNNF_UNROLL
        for (int j = 0; j < 2; j++)
            o[j] = _mm256_fmadd_ps(ld(peep + UB + 8 * j), cn[j], _mm256_add_ps(ld(x + UB + 8 * j), ld(y + UB + 8 * j)));
        act_n(&gp->f, gp->clip, 2, o);
    }
    act_n(&gp->h, 0.0f, 2, cn);
    RNNF_UNROLL
    for (int j = 0; j < 2; j++) _mm256_storeu_ps(hb + 8 * j, _mm256_mul_ps(o[j], cn[j]));
}

/* Software-pipelined over rows: the back half of one row (h(c) waits on the new cell) is issued beside the
 * front half of the next, so the out-of-order core always has independent activations to work on. */
static void lstm_rows_avx2(int n_rows, const uint8_t *active, const float *gx, const float *gh, int ldg,
                           const float *peep, float *c, int ldc, float *h_out, int ldh, const rnnf_gate_params *gp)
{
    int prev = -1, slot = 0; /* the previous active row's results sit in slot ^ 1 */
    __m256 cn[2][2], o[2][2];
    for (int b = 0; b < n_rows; b++) {
        if (!active[b]) continue;
        lstm_row_front(gx + (size_t)b * ldg, gh + (size_t)b * ldg, peep, c + (size_t)b * ldc, cn[slot], o[slot], gp);
        if (prev >= 0)
            lstm_row_back(gx + (size_t)prev * ldg, gh + (size_t)prev * ldg, peep, cn[slot ^ 1], o[slot ^ 1],
                          h_out + (size_t)prev * ldh, gp);
        prev = b;
        slot ^= 1;
    }
    if (prev >= 0)
        lstm_row_back(gx + (size_t)prev * ldg, gh + (size_t)prev * ldg, peep, cn[slot ^ 1], o[slot ^ 1],
                      h_out + (size_t)prev * ldh, gp);
}

/* Pipelined like lstm_rows: the candidate of one row (it waits on r) beside the z and r gates of the next. */
static void gru_lbr_rows_avx2(int n_rows, const uint8_t *active, const float *gx, const float *gh, int ldg,
                              const float *h_prev, float *h_new, int ldh, const rnnf_gate_params *gp)
{
    int prev = -1, slot = 0;
    __m256 zr[2][4], n[2];
    for (int b = 0; b <= n_rows; b++) {
        if (b < n_rows && !active[b]) continue;
        if (b < n_rows) {
            const float *x = gx + (size_t)b * ldg, *y = gh + (size_t)b * ldg;
            RNNF_UNROLL
            for (int j = 0; j < 2; j++) {
                zr[slot][j] = _mm256_add_ps(ld(x + 8 * j), ld(y + 8 * j));
                zr[slot][2 + j] = _mm256_add_ps(ld(x + UB + 8 * j), ld(y + UB + 8 * j));
            }
            act_n(&gp->f, gp->clip, 4, zr[slot]);
        }
        if (prev >= 0) {
            const float *x = gx + (size_t)prev * ldg, *y = gh + (size_t)prev * ldg, *hp = h_prev + (size_t)prev * ldh;
            const __m256 *z = zr[slot ^ 1];
            RNNF_UNROLL
            for (int j = 0; j < 2; j++) n[j] = _mm256_fmadd_ps(z[2 + j], ld(y + 2 * UB + 8 * j), ld(x + 2 * UB + 8 * j));
            act_n(&gp->g, gp->clip, 2, n);
            RNNF_UNROLL
            for (int j = 0; j < 2; j++)
                _mm256_storeu_ps(h_new + (size_t)prev * ldh + 8 * j, gru_mix(z[j], n[j], ld(hp + 8 * j)));
        }
        prev = b;
        slot ^= 1;
    }
}

static void rnn_rows_avx2(int n_rows, const uint8_t *active, const float *gx, const float *gh, int ldg,
                          float *h_new, int ldh, const rnnf_gate_params *gp)
{
    int b = 0;
    while (b < n_rows) { /* three active rows' blocks at a time: 6 vectors */
        int rows[3], n = 0;
        for (; b < n_rows && n < 3; b++)
            if (active[b]) rows[n++] = b;
        __m256 v[6];
        for (int q = 0; q < n; q++)
            RNNF_UNROLL
            for (int j = 0; j < 2; j++)
                v[2 * q + j] = _mm256_add_ps(ld(gx + (size_t)rows[q] * ldg + 8 * j), ld(gh + (size_t)rows[q] * ldg + 8 * j));
        switch (n) {
        case 3: act_n(&gp->f, gp->clip, 6, v); break;
        case 2: act_n(&gp->f, gp->clip, 4, v); break;
        case 1: act_n(&gp->f, gp->clip, 2, v); break;
        default: break;
        }
        for (int q = 0; q < n; q++)
            RNNF_UNROLL
            for (int j = 0; j < 2; j++) _mm256_storeu_ps(h_new + (size_t)rows[q] * ldh + 8 * j, v[2 * q + j]);
    }
}

/* NV vectors of sigmoid (S) or tanh at a time, the stages interleaved (sigmoid_tanh_n) */
static inline __attribute__((always_inline)) void act_group(int S, int NV, const float *x, float *y)
{
    __m256 v[8];
    RNNF_UNROLL
    for (int q = 0; q < NV; q++) v[q] = ld(x + 8 * q);
    if (S)
        sigmoid_n(NV, v);
    else
        tanh_n(NV, v);
    RNNF_UNROLL
    for (int q = 0; q < NV; q++) _mm256_storeu_ps(y + 8 * q, v[q]);
}

static void activation_avx2(const rnnf_activation *act, const float *x, float *y, int n)
{
    int i = 0;
    /* sigmoid and tanh several vectors at a time: each is a chain of ~20 dependent operations, which the core
     * overlaps only across independent vectors in flight (one at a time: 25 and 31 cycles a vector, eight: 9
     * and 14). A lane's operations, so its bits, are act_ps's whatever the group. */
    if (act->kind == RNNF_ACT_SIGMOID) {
        for (; i + 64 <= n; i += 64) act_group(1, 8, x + i, y + i);
        for (; i + 32 <= n; i += 32) act_group(1, 4, x + i, y + i);
    } else if (act->kind == RNNF_ACT_TANH) {
        for (; i + 64 <= n; i += 64) act_group(0, 8, x + i, y + i);
        for (; i + 32 <= n; i += 32) act_group(0, 4, x + i, y + i);
    }
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, act_ps(act, ld(x + i)));
    for (; i < n; i++) y[i] = rnnf_act_scalar(act, x[i]);
}

/* ---- sequence kernels (kernels.h rnnf_seq_args): a small layer's whole sequence for one row ----
 * Each step is the step drivers' batch-1 step, one_row's products (the input projection unless it was made
 * beforehand, then the recurrent product) and the block kernels, inlined into one loop: no call, table lookup or
 * driver bookkeeping per step, the same operations on every lane. */
static inline __attribute__((always_inline)) int seq_avx2(int cell, const rnnf_seq_args *a)
{
    const int G = cell == RNNF_CELL_LSTM ? 4 : cell == RNNF_CELL_GRU ? 3 : 1, panels = G * a->n_blocks;
    float gx[RNNF_SEQ_MAX_COLS] __attribute__((aligned(32))), gh[RNNF_SEQ_MAX_COLS] __attribute__((aligned(32)));
    if (panels * UB > RNNF_SEQ_MAX_COLS) return 0;
    const float *x = a->gx ? a->gx : a->x;
    float *y = a->y;
    for (int s = 0; s < a->steps; s++) {
        const float *hp = a->h[s & 1];
        float *hn = a->h[(s & 1) ^ 1];
        const float *g = x;
        if (!a->gx) {
            one_row(a->input_size, x, a->w_ih, 0, panels, a->bias_x, gx);
            g = gx;
        }
        one_row(a->depth, hp, a->w_hh, 0, panels, a->bias_h, gh);
        for (int jb = 0; jb < a->n_blocks; jb++) {
            const int off = jb * G * UB;
            if (cell == RNNF_CELL_LSTM)
                lstm_block_avx2(g + off, gh + off, a->peep ? a->peep + jb * 3 * UB : NULL, a->c + jb * UB, hn + jb * UB,
                                a->gp);
            else if (cell == RNNF_CELL_GRU)
                gru_lbr_block_avx2(g + off, gh + off, hp + jb * UB, hn + jb * UB, a->gp);
            else
                rnn_block_avx2(g + off, gh + off, hn + jb * UB, a->gp);
        }
        if (y) {
            int j = 0;
            for (; j + 8 <= a->out_len; j += 8) _mm256_storeu_ps(y + j, ld(hn + j));
            for (; j < a->out_len; j++) y[j] = hn[j];
            y += a->y_step;
        }
        x += a->x_step;
    }
    return 1;
}

static int lstm_seq_avx2(const rnnf_seq_args *a) { return seq_avx2(RNNF_CELL_LSTM, a); }

static int gru_lbr_seq_avx2(const rnnf_seq_args *a) { return seq_avx2(RNNF_CELL_GRU, a); }

static int rnn_seq_avx2(const rnnf_seq_args *a) { return seq_avx2(RNNF_CELL_RNN, a); }

const rnnf_kernels rnnf_kernels_avx2 = {
    "avx2",
    gemm_packed_avx2,
    lstm_block_avx2,
    gru_lbr_block_avx2,
    gru_zr_block_avx2,
    gru_h_block_avx2,
    rnn_block_avx2,
    activation_avx2,
    lstm_rows_avx2,
    gru_lbr_rows_avx2,
    rnn_rows_avx2,
    gemm_offsets_avx2,
    rnnf_wino2_in_avx2,
    rnnf_wino2_out_avx2,
    wino2_out_pool_avx2,
    gemm_offsets_pool_avx2,
    lstm_seq_avx2,
    gru_lbr_seq_avx2,
    rnn_seq_avx2,
};
