/* kernels_q.h: packed layouts and GEMM kernels for int8 and float16 weight storage (float32 compute).
 *
 * A quantized layer keeps the panel order of kernels.h (panel p = rows p*RNNF_UB .. +RNNF_UB-1, laid out
 * [K][RNNF_UB]) but stores each element in fewer bytes:
 *   float16: [K][UB] IEEE binary16 bit patterns, panel stride K*UB*2 bytes;
 *   int8:    [UB] float32 row scales, then [K][UB] int8, panel stride RNNF_Q8_PANEL_BYTES(K);
 *            w[row][k] = scale[row] * q[k][row], so a row's sum over k is taken on q and scaled once.
 * The quantized GEMMs have the signature of rnnf_kernels.gemm_packed, with Bp pointing at such a blob, so
 * a quantized layer runs through the same cell drivers with only the GEMM entry of its table replaced.
 */
#ifndef RNNF_KERNELS_Q_H
#define RNNF_KERNELS_Q_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

struct rnnf_pool;

#define RNNF_Q8_PANEL_BYTES(K) ((size_t)RNNF_UB * sizeof(float) + (size_t)(K) * RNNF_UB)

typedef void (*rnnf_gemm_packed_fn)(int M, int K, const float *A, int lda, const float *Bp, int p0, int p1,
                                    const float *bias, float *C, int ldc);

void rnnf_gemm_packed_i8_ref(int M, int K, const float *A, int lda, const float *Bp, int p0, int p1,
                             const float *bias, float *C, int ldc);
void rnnf_gemm_packed_f16_ref(int M, int K, const float *A, int lda, const float *Bp, int p0, int p1,
                              const float *bias, float *C, int ldc);
#ifdef RNNF_HAVE_AVX2
void rnnf_gemm_packed_i8_avx2(int M, int K, const float *A, int lda, const float *Bp, int p0, int p1,
                              const float *bias, float *C, int ldc);
/* Needs F16C besides AVX2: chosen only when CPUID reports it. */
void rnnf_gemm_packed_f16_avx2(int M, int K, const float *A, int lda, const float *Bp, int p0, int p1,
                               const float *bias, float *C, int ldc);
#endif
#ifdef RNNF_HAVE_AVX512
void rnnf_gemm_packed_i8_avx512(int M, int K, const float *A, int lda, const float *Bp, int p0, int p1,
                                const float *bias, float *C, int ldc);
void rnnf_gemm_packed_f16_avx512(int M, int K, const float *A, int lda, const float *Bp, int p0, int p1,
                                 const float *bias, float *C, int ldc);
#endif

/* Exact widening of an IEEE binary16 bit pattern (subnormals, infinities and NaN included). */
float rnnf_half_to_float(uint16_t h);

/* The GEMM for weights stored as `weight_dtype` (rnnf_weight_dtype) beside the table `K` in use. */
rnnf_gemm_packed_fn rnnf_qgemm_get(const rnnf_kernels *K, int weight_dtype);

/* Gate-major source rows [G][H][Kd] (int8 with scales [G*H], or float16) -> quantized panels, as pack_gates
 * in model.c does for float32; plain rows [R][Kd] are G = 1, H = R. NULL when out of memory. Memory from pool.h. */
void *rnnf_pack_gates_q(struct rnnf_pool *pool, const void *src, const float *scales, int weight_dtype, int G, int H,
                        int Kd, int n_blocks);

#endif
