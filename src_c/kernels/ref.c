/* ref.c: scalar reference kernels, the executable spec of every kernel-table entry.
 *
 * Plain loops in the packed layout of kernels.h, compiled without FMA contraction, with libm activations.
 * The SIMD tables are tested against this one (RNNFAST_ISA=ref forces it).
 */
#include <math.h>
#include <stddef.h>

#include "kernels.h"

#define UB RNNF_UB

static void gemm_packed_ref(int M, int K, const float *A, int lda, const float *Bp, int p0, int p1,
                            const float *bias, float *C, int ldc)
{
    for (int p = p0; p < p1; p++) {
        const float *panel = Bp + (size_t)p * K * UB;
        for (int m = 0; m < M; m++) {
            const float *a = A + (size_t)m * lda;
            float *c = C + (size_t)m * ldc + (size_t)p * UB;
            for (int j = 0; j < UB; j++) {
                float s = 0.0f;
                for (int k = 0; k < K; k++) s += a[k] * panel[(size_t)k * UB + j];
                c[j] = bias ? s + bias[(size_t)p * UB + j] : s;
            }
        }
    }
}

static float clamp(float x, float clip)
{
    if (clip > 0.0f) {
        if (x > clip) return clip;
        if (x < -clip) return -clip;
    }
    return x;
}

static void lstm_block_ref(const float *gx, const float *gh, const float *peep, float *c, float *h_out,
                           const rnnf_gate_params *gp)
{
    for (int j = 0; j < UB; j++) {
        float c_prev = c[j];
        float pi = gx[0 * UB + j] + gh[0 * UB + j];
        float po = gx[1 * UB + j] + gh[1 * UB + j];
        float pf = gx[2 * UB + j] + gh[2 * UB + j];
        float pc = gx[3 * UB + j] + gh[3 * UB + j];
        if (peep) {
            pi += peep[0 * UB + j] * c_prev;
            pf += peep[2 * UB + j] * c_prev;
        }
        float i = rnnf_act_scalar(&gp->f, clamp(pi, gp->clip));
        float f = gp->input_forget ? 1.0f - i : rnnf_act_scalar(&gp->f, clamp(pf, gp->clip));
        float g = rnnf_act_scalar(&gp->g, clamp(pc, gp->clip));
        float c_new = f * c_prev + i * g;
        if (peep) po += peep[1 * UB + j] * c_new; /* ONNX: the o-gate peephole sees the new cell */
        float o = rnnf_act_scalar(&gp->f, clamp(po, gp->clip));
        c[j] = c_new;
        h_out[j] = o * rnnf_act_scalar(&gp->h, c_new);
    }
}

static void gru_lbr_block_ref(const float *gx, const float *gh, const float *h_prev, float *h_new,
                              const rnnf_gate_params *gp)
{
    for (int j = 0; j < UB; j++) {
        float z = rnnf_act_scalar(&gp->f, clamp(gx[0 * UB + j] + gh[0 * UB + j], gp->clip));
        float r = rnnf_act_scalar(&gp->f, clamp(gx[1 * UB + j] + gh[1 * UB + j], gp->clip));
        float n = rnnf_act_scalar(&gp->g, clamp(gx[2 * UB + j] + r * gh[2 * UB + j], gp->clip));
        h_new[j] = (1.0f - z) * n + z * h_prev[j];
    }
}

static void gru_zr_block_ref(const float *gx, const float *gh, const float *h_prev, float *z_out, float *rh_out,
                             const rnnf_gate_params *gp)
{
    for (int j = 0; j < UB; j++) {
        z_out[j] = rnnf_act_scalar(&gp->f, clamp(gx[0 * UB + j] + gh[0 * UB + j], gp->clip));
        float r = rnnf_act_scalar(&gp->f, clamp(gx[1 * UB + j] + gh[1 * UB + j], gp->clip));
        rh_out[j] = r * h_prev[j];
    }
}

static void gru_h_block_ref(const float *gx_h, const float *gh_h, const float *z, const float *h_prev,
                            float *h_new, const rnnf_gate_params *gp)
{
    for (int j = 0; j < UB; j++) {
        float n = rnnf_act_scalar(&gp->g, clamp(gx_h[j] + gh_h[j], gp->clip));
        h_new[j] = (1.0f - z[j]) * n + z[j] * h_prev[j];
    }
}

static void rnn_block_ref(const float *gx, const float *gh, float *h_new, const rnnf_gate_params *gp)
{
    for (int j = 0; j < UB; j++) h_new[j] = rnnf_act_scalar(&gp->f, clamp(gx[j] + gh[j], gp->clip));
}

void rnnf_gemm_offsets_c(int M, int K, const float *A, int lda, const float *X, const int32_t *off, int N,
                         const float *bias, int relu, float *C, int ldc)
{
    for (int m = 0; m < M; m++) {
        const float *a = A + (size_t)m * lda;
        for (int j = 0; j < N; j++) {
            float s = 0.0f;
            for (int k = 0; k < K; k++) s += a[k] * X[off[k] + j];
            s += bias ? bias[m] : 0.0f;
            C[(size_t)m * ldc + j] = relu && s < 0.0f ? 0.0f : s;
        }
    }
}

/* F(2x2, 3x3): B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], applied down the columns (rows i combined), then
 * along the rows. The order of every add here is the one the vector tables follow. */
void rnnf_wino2_in_c(int C, int n, const float *X, int64_t ldc, int ldx, int odd, float *V, int64_t ldp, int ldv)
{
    for (int c = 0; c < C; c++) {
        const float *x = X + (size_t)c * (size_t)ldc;
        float *v = V + (size_t)c * (size_t)ldv;
        for (int t = 0; t < n; t++) {
            float d[4][4], e[4][4];
            for (int i = 0; i < 4; i++) {
                const float *r = x + (size_t)i * ldx + t;
                d[i][0] = r[0];
                d[i][1] = r[odd];
                d[i][2] = r[1];
                d[i][3] = r[odd + 1];
            }
            for (int j = 0; j < 4; j++) {
                e[0][j] = d[0][j] - d[2][j];
                e[1][j] = d[1][j] + d[2][j];
                e[2][j] = d[2][j] - d[1][j];
                e[3][j] = d[1][j] - d[3][j];
            }
            for (int a = 0; a < 4; a++) {
                v[(size_t)(4 * a + 0) * ldp + t] = e[a][0] - e[a][2];
                v[(size_t)(4 * a + 1) * ldp + t] = e[a][1] + e[a][2];
                v[(size_t)(4 * a + 2) * ldp + t] = e[a][2] - e[a][1];
                v[(size_t)(4 * a + 3) * ldp + t] = e[a][1] - e[a][3];
            }
        }
    }
}

/* A^T = [1 1 1 0; 0 1 -1 -1], down the columns then along the rows; the bias is added last. */
void rnnf_wino2_out_c(int M, int n, const float *Y, int64_t ldp, int ldv, const float *bias, int relu, float *out,
                      int64_t ldoc, int ldo, int h, int w)
{
    for (int m = 0; m < M; m++) {
        const float *y = Y + (size_t)m * ldv;
        float *o = out + (size_t)m * (size_t)ldoc;
        const float bv = bias ? bias[m] : 0.0f;
        for (int t = 0; t < n; t++) {
            float z[2][4];
            for (int b = 0; b < 4; b++) {
                const float y0 = y[(size_t)b * ldp + t], y1 = y[(size_t)(4 + b) * ldp + t];
                const float y2 = y[(size_t)(8 + b) * ldp + t], y3 = y[(size_t)(12 + b) * ldp + t];
                z[0][b] = (y0 + y1) + y2;
                z[1][b] = (y1 - y2) - y3;
            }
            for (int i = 0; i < h; i++) {
                float s[2];
                s[0] = ((z[i][0] + z[i][1]) + z[i][2]) + bv;
                s[1] = ((z[i][1] - z[i][2]) - z[i][3]) + bv;
                for (int j = 0; j < 2 && 2 * t + j < w; j++)
                    o[(size_t)i * ldo + 2 * t + j] = relu && s[j] < 0.0f ? 0.0f : s[j];
            }
        }
    }
}

/* The pool's fold (graph/ops/pool.c): v wins only when greater, so NaN never does. */
#define MAX_TO(acc, v) ((acc) = (v) > (acc) ? (v) : (acc))

/* A 2x2 window's max in the fold order pool.c's rnnf_maxpool_2x2_row uses (columns first, then the two): the AVX2
 * epilogues fold the same way, so a fused pool gives the unfused MaxPool's bits, NaN included. */
static float pool2x2(float s[2][2])
{
    float c0 = -INFINITY, c1 = -INFINITY, p = -INFINITY;
    MAX_TO(c0, s[0][0]);
    MAX_TO(c0, s[1][0]);
    MAX_TO(c1, s[0][1]);
    MAX_TO(c1, s[1][1]);
    MAX_TO(p, c0);
    MAX_TO(p, c1);
    return p;
}

void rnnf_wino2_out_pool_c(int M, int n, const float *Y, int64_t ldp, int ldv, const float *bias, int relu,
                           float *out, int64_t ldoc)
{
    for (int m = 0; m < M; m++) {
        const float *y = Y + (size_t)m * ldv;
        const float bv = bias ? bias[m] : 0.0f;
        for (int t = 0; t < n; t++) {
            float z[2][4], s[2][2];
            for (int b = 0; b < 4; b++) {
                const float y0 = y[(size_t)b * ldp + t], y1 = y[(size_t)(4 + b) * ldp + t];
                const float y2 = y[(size_t)(8 + b) * ldp + t], y3 = y[(size_t)(12 + b) * ldp + t];
                z[0][b] = (y0 + y1) + y2;
                z[1][b] = (y1 - y2) - y3;
            }
            for (int i = 0; i < 2; i++) {
                s[i][0] = ((z[i][0] + z[i][1]) + z[i][2]) + bv;
                s[i][1] = ((z[i][1] - z[i][2]) - z[i][3]) + bv;
                for (int j = 0; j < 2; j++)
                    if (relu && s[i][j] < 0.0f) s[i][j] = 0.0f;
            }
            out[(size_t)m * (size_t)ldoc + t] = pool2x2(s);
        }
    }
}

void rnnf_gemm_offsets_pool_c(int M, int K, const float *A, int lda, const float *X, int64_t dx, const int32_t *off,
                              int N, const float *bias, int relu, float *C, int ldc)
{
    for (int m = 0; m < M; m++) {
        const float *a = A + (size_t)m * lda;
        for (int j = 0; j < N / 2; j++) {
            float s[2][2];
            for (int i = 0; i < 2; i++)
                for (int q = 0; q < 2; q++) {
                    const float *x = X + (size_t)i * (size_t)dx + 2 * j + q;
                    float v = 0.0f;
                    for (int k = 0; k < K; k++) v += a[k] * x[off[k]];
                    v += bias ? bias[m] : 0.0f;
                    s[i][q] = relu && v < 0.0f ? 0.0f : v;
                }
            C[(size_t)m * ldc + j] = pool2x2(s);
        }
    }
}

static void activation_ref(const rnnf_activation *act, const float *x, float *y, int n)
{
    for (int i = 0; i < n; i++) y[i] = rnnf_act_scalar(act, x[i]);
}

/* The sequence kernels' specification (kernels.h rnnf_seq_args): every step the step drivers' batch-1 step, the
 * input projection and the recurrent product by gemm_packed_ref, then each unit block's kernel, and the new state's
 * first out_len values to y. */
static int seq_ref(int cell, const rnnf_seq_args *a)
{
    const int G = cell == RNNF_CELL_LSTM ? 4 : cell == RNNF_CELL_GRU ? 3 : 1, panels = G * a->n_blocks;
    const int cols = panels * UB;
    float gx[RNNF_SEQ_MAX_COLS], gh[RNNF_SEQ_MAX_COLS];
    if (cols > RNNF_SEQ_MAX_COLS) return 0;
    const float *x = a->gx ? a->gx : a->x;
    float *y = a->y;
    for (int s = 0; s < a->steps; s++) {
        const float *hp = a->h[s & 1];
        float *hn = a->h[(s & 1) ^ 1];
        if (a->gx)
            for (int j = 0; j < cols; j++) gx[j] = x[j];
        else
            gemm_packed_ref(1, a->input_size, x, a->input_size, a->w_ih, 0, panels, a->bias_x, gx, cols);
        gemm_packed_ref(1, a->depth, hp, a->depth, a->w_hh, 0, panels, a->bias_h, gh, cols);
        for (int jb = 0; jb < a->n_blocks; jb++) {
            const size_t off = (size_t)jb * (size_t)(G * UB);
            if (cell == RNNF_CELL_LSTM)
                lstm_block_ref(gx + off, gh + off, a->peep ? a->peep + (size_t)jb * 3 * UB : NULL, a->c + jb * UB,
                               hn + jb * UB, a->gp);
            else if (cell == RNNF_CELL_GRU)
                gru_lbr_block_ref(gx + off, gh + off, hp + jb * UB, hn + jb * UB, a->gp);
            else
                rnn_block_ref(gx + off, gh + off, hn + jb * UB, a->gp);
        }
        if (y) {
            for (int j = 0; j < a->out_len; j++) y[j] = hn[j];
            y += a->y_step;
        }
        x += a->x_step;
    }
    return 1;
}

static int lstm_seq_ref(const rnnf_seq_args *a) { return seq_ref(RNNF_CELL_LSTM, a); }

static int gru_lbr_seq_ref(const rnnf_seq_args *a) { return seq_ref(RNNF_CELL_GRU, a); }

static int rnn_seq_ref(const rnnf_seq_args *a) { return seq_ref(RNNF_CELL_RNN, a); }

const rnnf_kernels rnnf_kernels_ref = {
    "ref",
    gemm_packed_ref,
    lstm_block_ref,
    gru_lbr_block_ref,
    gru_zr_block_ref,
    gru_h_block_ref,
    rnn_block_ref,
    activation_ref,
    NULL, /* lstm_rows, gru_lbr_rows, rnn_rows: rows_step.c loops over the block kernels */
    NULL,
    NULL,
    rnnf_gemm_offsets_c,
    rnnf_wino2_in_c,
    rnnf_wino2_out_c,
    rnnf_wino2_out_pool_c,
    rnnf_gemm_offsets_pool_c,
    lstm_seq_ref,
    gru_lbr_seq_ref,
    rnn_seq_ref,
};
