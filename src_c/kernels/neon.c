/* neon.c: the NEON kernel table for aarch64 (Advanced SIMD and FMA are baseline there, so no extra flags).
 *
 * The same entry points and structure as avx2.c, with 4-lane vectors: a 16-unit block is four float32x4_t.
 * The GEMM microkernel keeps up to 5 rows x 16 columns in 20 of the 32 vector registers; one row (the
 * recurrent product at batch 1) takes a GEMV over two panels at once. Each output element is summed in one
 * thread, over k in order, whatever the row count or thread count, so results do not depend on either. The activations follow
 * approx.h's algorithm and constants (shared with avx2.c); the measured errors are written there. Activations
 * not vectorized here fall back to the scalar definitions (activations.c).
 */
#include <arm_neon.h>
#include <stddef.h>

#include "approx.h"
#include "kernels.h"

#define UB RNNF_UB
/* rows per microkernel call: 20 accumulators + 4 panel loads + 5 row values = 29 of the 32 vector registers
 * (6 rows need 34, and GCC 12 then spills accumulators in the inner loop) */
#define MR 5
#define MBLOCK 96 /* rows of A kept hot in L2 while the panels stream through L1 */

/* ---- GEMM ---- */

static inline __attribute__((always_inline)) void micro_rows(int R, int K, const float *A, int lda,
                                                             const float *panel, const float *bias, float *C,
                                                             int ldc)
{
    float32x4_t acc[MR][4];
    RNNF_UNROLL
    for (int r = 0; r < R; r++)
        RNNF_UNROLL
        for (int v = 0; v < 4; v++) acc[r][v] = vdupq_n_f32(0.0f);
    for (int k = 0; k < K; k++) {
        const float *p = panel + (size_t)k * UB;
        const float32x4_t b0 = vld1q_f32(p), b1 = vld1q_f32(p + 4), b2 = vld1q_f32(p + 8), b3 = vld1q_f32(p + 12);
        RNNF_UNROLL
        for (int r = 0; r < R; r++) {
            const float a = A[(size_t)r * lda + k];
            acc[r][0] = vfmaq_n_f32(acc[r][0], b0, a);
            acc[r][1] = vfmaq_n_f32(acc[r][1], b1, a);
            acc[r][2] = vfmaq_n_f32(acc[r][2], b2, a);
            acc[r][3] = vfmaq_n_f32(acc[r][3], b3, a);
        }
    }
    RNNF_UNROLL
    for (int v = 0; v < 4; v++) {
        const float32x4_t z = bias ? vld1q_f32(bias + 4 * v) : vdupq_n_f32(0.0f);
        RNNF_UNROLL
        for (int r = 0; r < R; r++) vst1q_f32(C + (size_t)r * ldc + 4 * v, vaddq_f32(acc[r][v], z));
    }
}

/* One row (the recurrent product at batch 1) over NP = 1 or 2 consecutive panels. Every element is summed over
 * k in order in one chain, exactly as micro_rows sums it, so a row's bits do not depend on how many rows share
 * the call: stepping one row at a time must give the bits of a whole-sequence run. Two panels at once give 8
 * independent chains, enough to cover the FMA latency. */
static inline __attribute__((always_inline)) void micro_one_row(int NP, int K, const float *a, const float *panel,
                                                                const float *bias, float *c)
{
    float32x4_t s[2][4];
    RNNF_UNROLL
    for (int q = 0; q < NP; q++)
        RNNF_UNROLL
        for (int v = 0; v < 4; v++) s[q][v] = vdupq_n_f32(0.0f);
    for (int k = 0; k < K; k++)
        RNNF_UNROLL
        for (int q = 0; q < NP; q++) {
            const float *p = panel + ((size_t)q * K + k) * UB;
            RNNF_UNROLL
            for (int v = 0; v < 4; v++) s[q][v] = vfmaq_n_f32(s[q][v], vld1q_f32(p + 4 * v), a[k]);
        }
    /* zero is added even without a bias, as micro_rows does, so -0 sums come out alike */
    RNNF_UNROLL
    for (int q = 0; q < NP; q++)
        RNNF_UNROLL
        for (int v = 0; v < 4; v++)
            vst1q_f32(c + q * UB + 4 * v,
                      vaddq_f32(s[q][v], bias ? vld1q_f32(bias + q * UB + 4 * v) : vdupq_n_f32(0.0f)));
}

static void gemm_packed_neon(int M, int K, const float *A, int lda, const float *Bp, int p0, int p1,
                             const float *bias, float *C, int ldc)
{
    for (int m0 = 0; m0 < M; m0 += MBLOCK) {
        const int m1 = m0 + MBLOCK < M ? m0 + MBLOCK : M;
        for (int p = p0; p < p1; p++) {
            const float *panel = Bp + (size_t)p * K * UB;
            const float *bp = bias ? bias + (size_t)p * UB : NULL;
            if (m1 - m0 == 1) {
                const float *a = A + (size_t)m0 * lda;
                float *c = C + (size_t)m0 * ldc + (size_t)p * UB;
                if (p + 1 < p1) {
                    micro_one_row(2, K, a, panel, bp, c);
                    p++;
                } else {
                    micro_one_row(1, K, a, panel, bp, c);
                }
                continue;
            }
            int m = m0;
            for (; m + MR <= m1; m += MR)
                micro_rows(MR, K, A + (size_t)m * lda, lda, panel, bp, C + (size_t)m * ldc + (size_t)p * UB, ldc);
            const float *a = A + (size_t)m * lda;
            float *c = C + (size_t)m * ldc + (size_t)p * UB;
            switch (m1 - m) { /* constant row counts let the compiler keep the accumulators in registers */
            case 4: micro_rows(4, K, a, lda, panel, bp, c, ldc); break;
            case 3: micro_rows(3, K, a, lda, panel, bp, c, ldc); break;
            case 2: micro_rows(2, K, a, lda, panel, bp, c, ldc); break;
            case 1: micro_rows(1, K, a, lda, panel, bp, c, ldc); break;
            default: break;
            }
        }
    }
}

/* ---- activations (algorithm, constants and measured errors: approx.h) ---- */

static inline float32x4_t exp_ps(float32x4_t x)
{
    /* FMIN/FMAX return NaN when either operand is NaN, so NaN stays NaN through the clamp */
    x = vminq_f32(vdupq_n_f32(EXP_HI), vmaxq_f32(vdupq_n_f32(EXP_LO), x));
    const float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(LOG2E)));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(LN2_HI));
    r = vfmsq_f32(r, n, vdupq_n_f32(LN2_LO));
    float32x4_t p = vdupq_n_f32(INV_FACT[7]);
    RNNF_UNROLL
    for (int i = 6; i >= 0; i--) p = vfmaq_f32(vdupq_n_f32(INV_FACT[i]), p, r);
    const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
    return vmulq_f32(p, vreinterpretq_f32_s32(e));
}

static inline float32x4_t sigmoid_ps(float32x4_t x)
{
    const float32x4_t one = vdupq_n_f32(1.0f);
    return vdivq_f32(one, vaddq_f32(one, exp_ps(vnegq_f32(x))));
}

static inline float32x4_t tanh_ps(float32x4_t x)
{
    const uint32x4_t sign = vdupq_n_u32(0x80000000u);
    const float32x4_t ax = vabsq_f32(x);
    const float32x4_t one = vdupq_n_f32(1.0f);
    /* large branch: 1 - 2/(e^{2|x|}+1), sign restored */
    const float32x4_t e = exp_ps(vaddq_f32(ax, ax));
    const float32x4_t big_abs = vsubq_f32(one, vdivq_f32(vdupq_n_f32(2.0f), vaddq_f32(e, one)));
    const float32x4_t big = vreinterpretq_f32_u32(
        vorrq_u32(vreinterpretq_u32_f32(big_abs), vandq_u32(vreinterpretq_u32_f32(x), sign)));
    /* small branch: x * P(x^2) */
    const float32x4_t x2 = vmulq_f32(x, x);
    float32x4_t p = vdupq_n_f32(TANH_SERIES[5]);
    RNNF_UNROLL
    for (int i = 4; i >= 0; i--) p = vfmaq_f32(vdupq_n_f32(TANH_SERIES[i]), p, x2);
    const float32x4_t small = vmulq_f32(p, x);
    return vbslq_f32(vcltq_f32(ax, vdupq_n_f32(TANH_SMALL)), small, big);
}

static float32x4_t act_scalar_lanes(const rnnf_activation *a, float32x4_t x)
{
    float v[4];
    vst1q_f32(v, x);
    RNNF_UNROLL
    for (int i = 0; i < 4; i++) v[i] = rnnf_act_scalar(a, v[i]);
    return vld1q_f32(v);
}

static inline float32x4_t act_ps(const rnnf_activation *a, float32x4_t x)
{
    switch (a->kind) {
    case RNNF_ACT_SIGMOID: return sigmoid_ps(x);
    case RNNF_ACT_TANH: return tanh_ps(x);
    case RNNF_ACT_RELU: return vmaxq_f32(x, vdupq_n_f32(0.0f));
    case RNNF_ACT_AFFINE: return vfmaq_n_f32(vdupq_n_f32(a->beta), x, a->alpha);
    case RNNF_ACT_HARDSIGMOID:
        return vminq_f32(vmaxq_f32(vfmaq_n_f32(vdupq_n_f32(a->beta), x, a->alpha), vdupq_n_f32(0.0f)),
                         vdupq_n_f32(1.0f));
    case RNNF_ACT_SCALEDTANH: return vmulq_n_f32(tanh_ps(vmulq_n_f32(x, a->beta)), a->alpha);
    default: return act_scalar_lanes(a, x);
    }
}

static inline float32x4_t clip_ps(float32x4_t x, float clip)
{
    if (clip > 0.0f) x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-clip)), vdupq_n_f32(clip));
    return x;
}

static inline float32x4_t ld(const float *p) { return vld1q_f32(p); }

/* ---- gate kernels: each loops over the four 4-lane quarters of a 16-unit block ---- */

static void lstm_block_neon(const float *gx, const float *gh, const float *peep, float *c, float *h_out,
                            const rnnf_gate_params *gp)
{
    RNNF_UNROLL
    for (int j = 0; j < UB; j += 4) {
        const float32x4_t c_prev = ld(c + j);
        float32x4_t pi = vaddq_f32(ld(gx + j), ld(gh + j));
        float32x4_t po = vaddq_f32(ld(gx + UB + j), ld(gh + UB + j));
        float32x4_t pf = vaddq_f32(ld(gx + 2 * UB + j), ld(gh + 2 * UB + j));
        const float32x4_t pc = vaddq_f32(ld(gx + 3 * UB + j), ld(gh + 3 * UB + j));
        if (peep) {
            pi = vfmaq_f32(pi, ld(peep + j), c_prev);
            pf = vfmaq_f32(pf, ld(peep + 2 * UB + j), c_prev);
        }
        const float32x4_t i = act_ps(&gp->f, clip_ps(pi, gp->clip));
        const float32x4_t f =
            gp->input_forget ? vsubq_f32(vdupq_n_f32(1.0f), i) : act_ps(&gp->f, clip_ps(pf, gp->clip));
        const float32x4_t g = act_ps(&gp->g, clip_ps(pc, gp->clip));
        const float32x4_t c_new = vfmaq_f32(vmulq_f32(i, g), f, c_prev);
        if (peep) po = vfmaq_f32(po, ld(peep + UB + j), c_new);
        const float32x4_t o = act_ps(&gp->f, clip_ps(po, gp->clip));
        vst1q_f32(c + j, c_new);
        vst1q_f32(h_out + j, vmulq_f32(o, act_ps(&gp->h, c_new)));
    }
}

/* h_new = (1-z)*n + z*h_prev, written as n + z*(h_prev - n) to use one FMA (as avx2.c does). */
static inline float32x4_t gru_mix(float32x4_t z, float32x4_t n, float32x4_t h_prev)
{
    return vfmaq_f32(n, z, vsubq_f32(h_prev, n));
}

static void gru_lbr_block_neon(const float *gx, const float *gh, const float *h_prev, float *h_new,
                               const rnnf_gate_params *gp)
{
    RNNF_UNROLL
    for (int j = 0; j < UB; j += 4) {
        const float32x4_t z = act_ps(&gp->f, clip_ps(vaddq_f32(ld(gx + j), ld(gh + j)), gp->clip));
        const float32x4_t r = act_ps(&gp->f, clip_ps(vaddq_f32(ld(gx + UB + j), ld(gh + UB + j)), gp->clip));
        const float32x4_t n =
            act_ps(&gp->g, clip_ps(vfmaq_f32(ld(gx + 2 * UB + j), r, ld(gh + 2 * UB + j)), gp->clip));
        vst1q_f32(h_new + j, gru_mix(z, n, ld(h_prev + j)));
    }
}

static void gru_zr_block_neon(const float *gx, const float *gh, const float *h_prev, float *z_out, float *rh_out,
                              const rnnf_gate_params *gp)
{
    RNNF_UNROLL
    for (int j = 0; j < UB; j += 4) {
        vst1q_f32(z_out + j, act_ps(&gp->f, clip_ps(vaddq_f32(ld(gx + j), ld(gh + j)), gp->clip)));
        const float32x4_t r = act_ps(&gp->f, clip_ps(vaddq_f32(ld(gx + UB + j), ld(gh + UB + j)), gp->clip));
        vst1q_f32(rh_out + j, vmulq_f32(r, ld(h_prev + j)));
    }
}

static void gru_h_block_neon(const float *gx_h, const float *gh_h, const float *z, const float *h_prev,
                             float *h_new, const rnnf_gate_params *gp)
{
    RNNF_UNROLL
    for (int j = 0; j < UB; j += 4) {
        const float32x4_t n = act_ps(&gp->g, clip_ps(vaddq_f32(ld(gx_h + j), ld(gh_h + j)), gp->clip));
        vst1q_f32(h_new + j, gru_mix(ld(z + j), n, ld(h_prev + j)));
    }
}

static void rnn_block_neon(const float *gx, const float *gh, float *h_new, const rnnf_gate_params *gp)
{
    RNNF_UNROLL
    for (int j = 0; j < UB; j += 4)
        vst1q_f32(h_new + j, act_ps(&gp->f, clip_ps(vaddq_f32(ld(gx + j), ld(gh + j)), gp->clip)));
}

static void activation_neon(const rnnf_activation *act, const float *x, float *y, int n)
{
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, act_ps(act, ld(x + i)));
    for (; i < n; i++) y[i] = rnnf_act_scalar(act, x[i]);
}

const rnnf_kernels rnnf_kernels_neon = {
    "neon",
    gemm_packed_neon,
    lstm_block_neon,
    gru_lbr_block_neon,
    gru_zr_block_neon,
    gru_h_block_neon,
    rnn_block_neon,
    activation_neon,
    NULL, /* lstm_rows, gru_lbr_rows, rnn_rows: rows_step.c loops over the block kernels */
    NULL,
    NULL,
    rnnf_gemm_offsets_c, /* no NEON version yet: ref.c's loops */
    rnnf_wino2_in_c,
    rnnf_wino2_out_c,
    rnnf_wino2_out_pool_c,
    rnnf_gemm_offsets_pool_c,
};
