/* kernels.h: the kernel table every instruction set fills in, and the packed weight layout it assumes.
 *
 * Weights are packed once at load into panels of RNNF_UB rows: panel p holds rows p*RNNF_UB .. +RNNF_UB-1
 * as [K][RNNF_UB], so a microkernel streams one panel with unit-stride loads. Hidden units are grouped in
 * blocks of RNNF_UB; for a cell with G gates, unit block jb owns panels jb*G .. jb*G+G-1 (one per gate, in
 * canonical order), so a thread that owns a range of unit blocks owns a contiguous range of panels and all
 * of its units' gates. Every vector and matrix indexed by "packed row" follows the same order.
 */
#ifndef RNNF_KERNELS_H
#define RNNF_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "rnnfast/rnnf.h"

#define RNNF_UB 16

/* Before a loop whose trip count is a constant once the always-inline kernel it is in is inlined (rows, panels,
 * vectors of a register block): unroll it whole at any optimization level. gcc -O2 (export-c's documented build)
 * keeps such loops and so the accumulator arrays they index in memory: the crnn's exported C ran 2.2x slower than
 * the same sources at -O3. */
#if defined(__GNUC__)
#define RNNF_UNROLL _Pragma("GCC unroll 16")
#else
#define RNNF_UNROLL
#endif

typedef struct {
    rnnf_activation f, g, h; /* ONNX names: f gates, g candidate, h cell output (LSTM) */
    float clip;              /* > 0: clamp pre-activations */
    int input_forget;
} rnnf_gate_params;

/* The sequence kernels' arguments: one direction of a layer over `steps` steps for one row (batch 1) on one thread.
 * Step s takes its input projection from gx + s*x_step when gx is given (made by gemm_packed, bias_x included), else
 * projects the input row x + s*x_step itself (steps negative when the direction runs backwards); it reads the state
 * h[s % 2] and writes h[(s + 1) % 2] (the step drivers' double buffer: the last state ends in h[steps % 2]), both
 * [n_blocks * UB] with the padding units written as the block kernels write them; c (LSTM) is updated in place; the
 * new state's first out_len values go to y + s*y_step (y NULL: no output sequence). */
typedef struct {
    int steps, n_blocks;
    const float *gx, *x;
    ptrdiff_t x_step;
    int input_size;
    const float *w_ih, *bias_x; /* the input projection: packed panels and its bias (every bias it can hold) */
    int depth;                  /* the recurrent product's depth: the state's length (out_size) */
    const float *w_hh;          /* packed panels (n_gates per unit block, in canonical order) */
    const float *bias_h;        /* GRU linear_before_reset: Rb in r*(h R^T + Rb); NULL otherwise */
    const float *peep;          /* LSTM peepholes [n_blocks][3][UB] or NULL */
    float *h[2];
    float *c;
    float *y;
    ptrdiff_t y_step;
    int out_len;
    const rnnf_gate_params *gp;
} rnnf_seq_args;

/* The most packed columns (n_gates * n_blocks * UB) a sequence kernel takes: with AVX-512 the step's products stay
 * in registers from the FMA chains to the gates. */
#define RNNF_SEQ_MAX_COLS 256

typedef int (*rnnf_seq_fn)(const rnnf_seq_args *a);

typedef struct {
    const char *name;
    /* C[m][p*UB + j] = (bias ? bias[p*UB + j] : 0) + sum_k A[m*lda + k] * Bp[p][k][j], for m < M and
     * panels p in [p0, p1). Bp is the packed matrix with K rows per panel. */
    void (*gemm_packed)(int M, int K, const float *A, int lda, const float *Bp, int p0, int p1,
                        const float *bias, float *C, int ldc);
    /* One block of UB units of one row. gx, gh: [4][UB] gate pre-activations (i,o,f,c) from the input and
     * recurrent products; peep: [3][UB] (i,o,f) or NULL; c: cell state, updated in place; h_out: o*h(c). */
    void (*lstm_block)(const float *gx, const float *gh, const float *peep, float *c, float *h_out,
                       const rnnf_gate_params *gp);
    /* GRU, linear_before_reset = 1: gx, gh [3][UB] (z,r,h), gh's h part already holds h*R_h^T + Rb_h. */
    void (*gru_lbr_block)(const float *gx, const float *gh, const float *h_prev, float *h_new,
                          const rnnf_gate_params *gp);
    /* GRU, linear_before_reset = 0, first half: z into z_out, r*h_prev into rh_out. gx, gh: [2][UB] (z,r). */
    void (*gru_zr_block)(const float *gx, const float *gh, const float *h_prev, float *z_out, float *rh_out,
                         const rnnf_gate_params *gp);
    /* Second half: h~ = g(gx_h + gh_h), h_new = (1-z)*h~ + z*h_prev. gx_h, gh_h: [UB]. */
    void (*gru_h_block)(const float *gx_h, const float *gh_h, const float *z, const float *h_prev, float *h_new,
                        const rnnf_gate_params *gp);
    void (*rnn_block)(const float *gx, const float *gh, float *h_new, const rnnf_gate_params *gp);
    /* y = act(x) for n values (used by the gate kernels' slow paths and by the tests). */
    void (*activation)(const rnnf_activation *act, const float *x, float *y, int n);
    /* Batch > 1, optional (NULL: the caller loops over rows with the block kernels above): the block kernel for
     * rows b < n_rows whose active[b] is set, row b's data at b times the row strides (ldg for gx and gh, ldc
     * for c, ldh for h); the same bits as the block kernel, several rows' activations in flight at once. */
    void (*lstm_rows)(int n_rows, const uint8_t *active, const float *gx, const float *gh, int ldg, const float *peep,
                      float *c, int ldc, float *h_out, int ldh, const rnnf_gate_params *gp);
    void (*gru_lbr_rows)(int n_rows, const uint8_t *active, const float *gx, const float *gh, int ldg,
                         const float *h_prev, float *h_new, int ldh, const rnnf_gate_params *gp);
    void (*rnn_rows)(int n_rows, const uint8_t *active, const float *gx, const float *gh, int ldg, float *h_new,
                     int ldh, const rnnf_gate_params *gp);
    /* A convolution as an implicit GEMM (no im2col): B's row k is X + off[k], read in place.
     * C[m*ldc + j] = sum_k A[m*lda + k] * X[off[k] + j], plus (bias ? bias[m] : 0), then max(0, .) if relu (NaN
     * kept), for m < M and j < N. X must be readable (any values) up to X[off[k] + N rounded up to RNNF_UB].
     * Each output is one chain over k in order, as in gemm_packed, whatever M, N or the caller's split. */
    void (*gemm_offsets)(int M, int K, const float *A, int lda, const float *X, const int32_t *off, int N,
                         const float *bias, int relu, float *C, int ldc);
    /* Winograd F(2x2, 3x3) input transform of n tiles along one tile row, in each of C channels. Channel c's 4
     * input rows i start at X + c*ldc + i*ldx, each split into its even columns (at 0) and odd ones (at +odd),
     * n + 1 of each: tile t's block d[i][j] is column 2t + j. V = B^T d B, position p = 4a + b, goes to
     * V[p*ldp + c*ldv + t]; entries t in [n, n rounded up to 8) may be overwritten. Adds and subtractions only,
     * in ref.c's order, so every table gives the same bits. */
    void (*wino2_in)(int C, int n, const float *X, int64_t ldc, int ldx, int odd, float *V, int64_t ldp, int ldv);
    /* Its output transform for n tiles in each of M channels: S = A^T Y A of the 4x4 Y[p*ldp + m*ldv + t], plus
     * (bias ? bias[m] : 0), then max(0, .) if relu (NaN kept); S[i][j] goes to out[m*ldoc + i*ldo + 2t + j] for
     * i < h and 2t + j < w (h <= 2, w <= 2n: a partial last tile row or column). The same bits in every table. */
    void (*wino2_out)(int M, int n, const float *Y, int64_t ldp, int ldv, const float *bias, int relu, float *out,
                      int64_t ldoc, int ldo, int h, int w);
    /* wino2_out followed by a 2x2 stride-2 MaxPool of each whole tile: its four outputs S (bias and relu applied)
     * fold as the pool folds them, each column from -inf then the two columns, with max(v, acc) = v > acc ? v :
     * acc (NaN never wins; four NaNs give -inf), into out[m*ldoc + t]. The same bits in every table. */
    void (*wino2_out_pool)(int M, int n, const float *Y, int64_t ldp, int ldv, const float *bias, int relu,
                           float *out, int64_t ldoc);
    /* gemm_offsets for two output rows at once, row 0's B rows at X + off[k] and row 1's at X + dx + off[k], each
     * output made as gemm_offsets makes it, then each 2x2 block (columns 2j, 2j + 1 of both rows) folded as
     * wino2_out_pool folds a tile, into C[m*ldc + j] for j < N / 2 (N even). X must be readable (any values) up
     * to X + dx + off[k] + N rounded up to RNNF_UB. */
    void (*gemm_offsets_pool)(int M, int K, const float *A, int lda, const float *X, int64_t dx, const int32_t *off,
                              int N, const float *bias, int relu, float *C, int ldc);
    /* Optional (NULL: the step drivers run every step): a whole sequence of one small layer (rnnf_seq_args, at most
     * RNNF_SEQ_MAX_COLS packed columns) in one call, each step's input projection, recurrent product and gates in
     * registers, no call per step. The same bits as the step drivers with this table's gemm_packed and block
     * kernels: each product one FMA chain over k then its bias (bias_x; bias_h, else zero), the gates as the block
     * kernels compute them. Returns 0 having done nothing for a layer it does not cover. GRU: linear_before_reset =
     * 1 only. */
    rnnf_seq_fn lstm_seq, gru_lbr_seq, rnn_seq;
} rnnf_kernels;

extern const rnnf_kernels rnnf_kernels_ref;
#ifdef RNNF_HAVE_AVX2
extern const rnnf_kernels rnnf_kernels_avx2;
/* avx2.c's Winograd input and unpooled output transforms, also the entries of the AVX-512 table: they move data more
 * than they compute, and the same functions give the same bits by construction. */
void rnnf_wino2_in_avx2(int C, int n, const float *X, int64_t ldc, int ldx, int odd, float *V, int64_t ldp, int ldv);
void rnnf_wino2_out_avx2(int M, int n, const float *Y, int64_t ldp, int ldv, const float *bias, int relu, float *out,
                         int64_t ldoc, int ldo, int h, int w);
#endif
/* Built beside the AVX2 table (it shares two of avx2.c's Winograd transforms), chosen only where CPUID and XGETBV
 * allow. */
#ifdef RNNF_HAVE_AVX512
extern const rnnf_kernels rnnf_kernels_avx512;
#endif
#ifdef RNNF_HAVE_NEON
extern const rnnf_kernels rnnf_kernels_neon;
#endif

/* The table in use; chosen once (CPUID, or RNNFAST_ISA) on first call. */
const rnnf_kernels *rnnf_kernels_get(void);

/* Scalar activation shared by every table's slow path: the one definition of each function. */
float rnnf_act_scalar(const rnnf_activation *act, float x);

/* ref.c's gemm_offsets, also the entry of tables without a vector version of their own (neon). */
void rnnf_gemm_offsets_c(int M, int K, const float *A, int lda, const float *X, const int32_t *off, int N,
                         const float *bias, int relu, float *C, int ldc);
/* ref.c's Winograd transforms, also the entries of tables without a vector version of their own (neon). */
void rnnf_wino2_in_c(int C, int n, const float *X, int64_t ldc, int ldx, int odd, float *V, int64_t ldp, int ldv);
void rnnf_wino2_out_c(int M, int n, const float *Y, int64_t ldp, int ldv, const float *bias, int relu, float *out,
                      int64_t ldoc, int ldo, int h, int w);
void rnnf_wino2_out_pool_c(int M, int n, const float *Y, int64_t ldp, int ldv, const float *bias, int relu,
                           float *out, int64_t ldoc);
void rnnf_gemm_offsets_pool_c(int M, int K, const float *A, int lda, const float *X, int64_t dx, const int32_t *off,
                              int N, const float *bias, int relu, float *C, int ldc);

#endif
