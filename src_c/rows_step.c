/* rows_step.c: the time step for a batch of more than one row, one unit block at a time (float32 LSTM without
 * projection, GRU with linear_before_reset = 1, simple RNN).
 *
 * Batch 1 hoists every step's input projection into one GEMM before the time loop. At batch 64 that GEMM writes
 * seq*batch*gh_cols floats (26 MB for a 100-step LSTM at H=256) that go to DRAM and come back one step at a
 * time, and the gate kernels then read the recurrent product of all of a thread's units from L2. Here each unit
 * block's input projection and recurrent product go into two small per-thread buffers that stay in L1 and the
 * gate kernel reads them at once. gemm_packed makes every output one FMA chain over k in order whatever the
 * rows or panels of a call, so the bits are those of the hoisted path.
 */
#include "internal.h"

/* Below this batch the hoisted input GEMM and the whole-layer step are faster (GRU-96 at batch 2: 182 vs 240 us for
 * 50 steps; batch 8: 596 vs 647 us; LSTM-256 batch 8: 4.1 vs 4.4 ms, one thread): the unit-block path pays off once
 * the rows fill the microkernel's tiles. */
#define RNNF_ROWS_MIN_BATCH 9

int rnnf_rows_step_applies(const rnnf_layer *L, int batch)
{
    if (batch < RNNF_ROWS_MIN_BATCH || L->weight_dtype != RNNF_WEIGHTS_F32 || L->proj_size) return 0;
    return L->cell != RNNF_CELL_GRU || L->linear_before_reset;
}

/* The block's G panels start at panel jb*G: pass that panel as the first, so the outputs land at column 0 of
 * the block buffers (row stride G*UB). */
static void block_products(const rnnf_step_ctx *ctx, int jb, const float *x_t, int x_ld, const float *hp,
                           const float *bias_h)
{
    const rnnf_layer *L = ctx->L;
    const int d = ctx->d, G = L->n_gates, W = G * RNNF_UB;
    const size_t first = (size_t)jb * G;
    ctx->K->gemm_packed(ctx->batch, L->input_size, x_t, x_ld, L->w_ih[d] + first * L->input_size * RNNF_UB, 0, G,
                        L->bias_x[d] + first * RNNF_UB, ctx->gx_blk, W);
    ctx->K->gemm_packed(ctx->batch, L->out_size, hp, L->hstride, L->w_hh[d] + first * L->out_size * RNNF_UB, 0, G,
                        bias_h ? bias_h + first * RNNF_UB : NULL, ctx->gh_blk, W);
}

void rnnf_rows_block(const rnnf_step_ctx *ctx, int jb, const float *x_t, int x_ld, const uint8_t *active,
                     const float *hp, float *hn)
{
    const rnnf_layer *L = ctx->L;
    const rnnf_kernels *K = ctx->K;
    const int d = ctx->d, B = ctx->batch, UB = RNNF_UB, W = L->n_gates * UB, hs = L->hstride;
    const rnnf_gate_params *gp = &L->gp[d];
    block_products(ctx, jb, x_t, x_ld, hp, L->linear_before_reset ? L->bias_h[d] : NULL);
    const float *gx = ctx->gx_blk, *gh = ctx->gh_blk, *peep = L->peep[d] ? L->peep[d] + (size_t)jb * 3 * UB : NULL;
    float *c = L->cell == RNNF_CELL_LSTM ? ctx->S->c[d] + (size_t)ctx->row0 * L->hpad + (size_t)jb * UB : NULL;
    const size_t u = (size_t)jb * UB;
    if (L->cell == RNNF_CELL_LSTM && K->lstm_rows)
        K->lstm_rows(B, active, gx, gh, W, peep, c, L->hpad, hn + u, hs, gp);
    else if (L->cell == RNNF_CELL_GRU && K->gru_lbr_rows)
        K->gru_lbr_rows(B, active, gx, gh, W, hp + u, hn + u, hs, gp);
    else if (L->cell == RNNF_CELL_RNN && K->rnn_rows)
        K->rnn_rows(B, active, gx, gh, W, hn + u, hs, gp);
    else
        for (int b = 0; b < B; b++) {
            if (!active[b]) continue;
            const size_t o = (size_t)b * W, h = (size_t)b * hs + u;
            if (L->cell == RNNF_CELL_LSTM)
                K->lstm_block(gx + o, gh + o, peep, c + (size_t)b * L->hpad, hn + h, gp);
            else if (L->cell == RNNF_CELL_GRU)
                K->gru_lbr_block(gx + o, gh + o, hp + h, hn + h, gp);
            else
                K->rnn_block(gx + o, gh + o, hn + h, gp);
        }
    rnnf_carry_inactive(B, active, hp, hn, hs, jb * UB, (jb + 1) * UB);
}
