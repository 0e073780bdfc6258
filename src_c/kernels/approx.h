/* approx.h: the one copy of the vectorized activations' constants, shared by the SIMD tables (avx2.c, neon.c),
 * which implement the same algorithm with their own intrinsics so every table rounds alike.
 *
 * exp: x = n*ln2 + r, |r| <= ln2/2, exp(r) by its Taylor series to degree 7 (truncation < 1.2e-9
 * relative), 2^n built in the exponent bits. Inputs are clamped to [-87.3, 88.7] so 2^n stays normal.
 * sigmoid = 1/(1+exp(-x)) with a true division. tanh: for |x| < 0.25 its odd Taylor series to x^11
 * (truncation < 3e-10), above that 1 - 2/(exp(2|x|)+1), whose cancellation costs at most two bits at 0.25.
 * Measured against float64 on 2,000,001 points of [-20, 20] (tests/test_engine.py and tests/test_c_aarch64.py
 * assert 2e-7 for both):
 *   AVX2 (x86-64):                     sigmoid max abs error 8.9e-8, tanh 8.7e-8 (relative 3.2e-7)
 *   NEON (aarch64, glibc 2.36 static,  sigmoid max abs error 8.9e-8, tanh 8.6e-8 (relative 3.2e-7), through
 *   under qemu-user 7.2):              test_kernels act (tests/c) from `make -C src_c cross-aarch64`
 *   libm's expf/tanhf (the ref table): 8.9e-8 and 9.8e-8 (the same under qemu).
 */
#ifndef RNNF_APPROX_H
#define RNNF_APPROX_H

static const float EXP_HI = 88.3762626647949f, EXP_LO = -87.3365447504019f;
static const float LOG2E = 1.44269504088896341f;
static const float LN2_HI = 0.693359375f, LN2_LO = -2.12194440e-4f; /* ln 2 split so n*LN2_HI is exact */
static const float INV_FACT[8] = {1.0f, 1.0f, 0.5f, 1.66666667e-1f, 4.16666667e-2f, 8.33333333e-3f,
                                  1.38888889e-3f, 1.98412698e-4f};
static const float TANH_SERIES[6] = {1.0f, -3.33333333e-1f, 1.33333333e-1f, -5.39682540e-2f, 2.18694885e-2f,
                                     -8.86323552e-3f};
static const float TANH_SMALL = 0.25f;

#endif
