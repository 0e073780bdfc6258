/* lstm.c: one LSTM time step for one thread's hidden units (ONNX semantics, optional projection).
 *
 * Recurrent product for this thread's gate panels, then the fused gate kernel per unit block. With a
 * projection (PyTorch proj_size) the whole o*h(c) vector must exist before h = W_hr (o*h(c)), hence the
 * barrier in between; the projection rows are split across threads separately from the units.
 */
#include <string.h>

#include "internal.h"

void rnnf_lstm_step(const rnnf_step_ctx *ctx, const float *gx_t, const uint8_t *active, const float *hp, float *hn)
{
    const rnnf_layer *L = ctx->L;
    const rnnf_kernels *K = ctx->K;
    const int d = ctx->d, B = ctx->batch, G = 4, UB = RNNF_UB;
    const int cols = L->gh_cols, hs = L->hstride;
    float *gh = ctx->S->gh[d], *c = ctx->S->c[d], *m = ctx->S->m[d];
    const int proj = L->proj_size > 0;

    if (ctx->jb1 > ctx->jb0)
        rnnf_recurrent_product(ctx, B, L->out_size, hp, hs, L->w_hh[d], ctx->jb0 * G, ctx->jb1 * G, NULL, gh, cols);
    for (int b = 0; b < B; b++) {
        if (!active[b]) continue;
        for (int jb = ctx->jb0; jb < ctx->jb1; jb++) {
            size_t off = (size_t)b * cols + (size_t)jb * G * UB;
            float *dst = proj ? m + (size_t)b * L->hpad + jb * UB : hn + (size_t)b * hs + jb * UB;
            K->lstm_block(gx_t + off, gh + off, L->peep[d] ? L->peep[d] + (size_t)jb * 3 * UB : NULL,
                          c + (size_t)b * L->hpad + jb * UB, dst, &L->gp[d]);
        }
    }
    if (!proj) {
        rnnf_carry_inactive(B, active, hp, hn, hs, ctx->jb0 * UB, ctx->jb1 * UB);
        return;
    }
    rnnf_barrier_wait(ctx->barrier, ctx->sense);
    if (ctx->q1 > ctx->q0)
        rnnf_recurrent_product(ctx, B, L->hidden_size, m, L->hpad, L->w_hr[d], ctx->q0, ctx->q1, NULL, hn, hs);
    rnnf_carry_inactive(B, active, hp, hn, hs, ctx->q0 * UB, ctx->q1 * UB);
}
