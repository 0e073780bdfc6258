/* gru.c: one GRU time step for one thread's hidden units, both ONNX variants.
 *
 * linear_before_reset = 1 (PyTorch, Keras reset_after=True): one recurrent product for all three gates,
 * h~ = g(x W_h + r*(h R_h + Rb_h)). linear_before_reset = 0: h~ needs (r*h) R_h, and r*h spans every unit,
 * so the z/r half runs first, then a barrier, then the second recurrent product for the h gate.
 */
#include "internal.h"

/* The i-th unit block of this thread's in the order of this step (rnnf_recurrent_product says why). */
static int walk(const rnnf_step_ctx *ctx, int i) { return ctx->backwards ? ctx->jb1 - 1 - (i - ctx->jb0) : i; }

/* The blocks of a row as the rows of the table's row kernel (block stride G*UB in gx and gh, UB in h): the
 * activations of neighbouring blocks then overlap as neighbouring rows' do (GRU-96 at batch 2: 28 -> 20 ns a block
 * and row, AVX-512), with the block kernel's bits (kernels.h). */
static void lbr_blocks(const rnnf_kernels *K, int n, const float *gx, const float *gh, const float *hp, float *hn,
                       const rnnf_gate_params *gp)
{
    static const uint8_t every[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    const int W = 3 * RNNF_UB;
    if (!K->gru_lbr_rows) {
        for (int i = 0; i < n; i++) K->gru_lbr_block(gx + (size_t)i * W, gh + (size_t)i * W, hp + i * RNNF_UB,
                                                     hn + i * RNNF_UB, gp);
        return;
    }
    for (int i = 0; i < n; i += 16) {
        const int m = n - i < 16 ? n - i : 16;
        K->gru_lbr_rows(m, every, gx + (size_t)i * W, gh + (size_t)i * W, W, hp + i * RNNF_UB, hn + i * RNNF_UB,
                        RNNF_UB, gp);
    }
}

void rnnf_gru_step(const rnnf_step_ctx *ctx, const float *gx_t, const uint8_t *active, const float *hp, float *hn)
{
    const rnnf_layer *L = ctx->L;
    const rnnf_kernels *K = ctx->K;
    const int d = ctx->d, B = ctx->batch, G = 3, UB = RNNF_UB;
    const int cols = L->gh_cols, hs = L->hstride, hpad = L->hpad, H = L->hidden_size;
    float *gh = ctx->S->gh[d];

    if (L->linear_before_reset) {
        if (ctx->jb1 > ctx->jb0)
            rnnf_recurrent_product(ctx, B, H, hp, hs, L->w_hh[d], ctx->jb0 * G, ctx->jb1 * G, L->bias_h[d], gh, cols);
        for (int b = 0; b < B; b++) {
            if (!active[b]) continue;
            const size_t off = (size_t)b * cols + (size_t)ctx->jb0 * G * UB, hoff = (size_t)b * hs + ctx->jb0 * UB;
            lbr_blocks(K, ctx->jb1 - ctx->jb0, gx_t + off, gh + off, hp + hoff, hn + hoff, &L->gp[d]);
        }
    } else {
        float *rh = ctx->S->m[d], *z = ctx->S->z[d];
        for (int i = ctx->jb0; i < ctx->jb1; i++) {
            const int jb = walk(ctx, i);
            K->gemm_packed(B, H, hp, hs, L->w_hh[d], jb * G, jb * G + 2, NULL, gh, cols);
        }
        for (int b = 0; b < B; b++) {
            if (!active[b]) continue;
            for (int jb = ctx->jb0; jb < ctx->jb1; jb++) {
                size_t off = (size_t)b * cols + (size_t)jb * G * UB;
                K->gru_zr_block(gx_t + off, gh + off, hp + (size_t)b * hs + jb * UB, z + (size_t)b * hpad + jb * UB,
                                rh + (size_t)b * hpad + jb * UB, &L->gp[d]);
            }
        }
        rnnf_barrier_wait(ctx->barrier, ctx->sense);
        for (int i = ctx->jb0; i < ctx->jb1; i++) {
            const int jb = walk(ctx, i);
            K->gemm_packed(B, H, rh, hpad, L->w_hh[d], jb * G + 2, jb * G + 3, NULL, gh, cols);
        }
        for (int b = 0; b < B; b++) {
            if (!active[b]) continue;
            for (int jb = ctx->jb0; jb < ctx->jb1; jb++) {
                size_t off = (size_t)b * cols + (size_t)(jb * G + 2) * UB;
                size_t hoff = (size_t)b * hs + jb * UB;
                K->gru_h_block(gx_t + off, gh + off, z + (size_t)b * hpad + jb * UB, hp + hoff, hn + hoff, &L->gp[d]);
            }
        }
    }
    rnnf_carry_inactive(B, active, hp, hn, hs, ctx->jb0 * UB, ctx->jb1 * UB);
}
