/* rnn.c: one simple-RNN (Elman) time step for one thread's hidden units: h = f(x W + h R + Wb + Rb). */
#include "internal.h"

void rnnf_rnn_step(const rnnf_step_ctx *ctx, const float *gx_t, const uint8_t *active, const float *hp, float *hn)
{
    const rnnf_layer *L = ctx->L;
    const rnnf_kernels *K = ctx->K;
    const int d = ctx->d, B = ctx->batch, UB = RNNF_UB;
    const int cols = L->gh_cols, hs = L->hstride;
    float *gh = ctx->S->gh[d];

    if (ctx->jb1 > ctx->jb0)
        rnnf_recurrent_product(ctx, B, L->hidden_size, hp, hs, L->w_hh[d], ctx->jb0, ctx->jb1, NULL, gh, cols);
    for (int b = 0; b < B; b++) {
        if (!active[b]) continue;
        for (int jb = ctx->jb0; jb < ctx->jb1; jb++) {
            size_t off = (size_t)b * cols + (size_t)jb * UB;
            K->rnn_block(gx_t + off, gh + off, hn + (size_t)b * hs + jb * UB, &L->gp[d]);
        }
    }
    rnnf_carry_inactive(B, active, hp, hn, hs, ctx->jb0 * UB, ctx->jb1 * UB);
}
