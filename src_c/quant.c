/* quant.c: packing of int8 and float16 weights into the quantized panels of kernels/kernels_q.h, and the
 * choice of the quantized GEMM for the kernel table in use.
 *
 * Compiled without ISA flags: the F16C check lives here so the AVX2 float16 kernel is only handed out on a
 * CPU that can run it (AVX2 alone does not imply F16C); otherwise the scalar kernel does the same work.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kernels/kernels_q.h"

#define UB RNNF_UB

#if defined(RNNF_HAVE_AVX2) && (defined(__x86_64__) || defined(__i386__))
#if defined(__F16C__)
/* the compiler's target has F16C (an export's runtime, rnnf_target.h): nothing to ask the CPU */
static int cpu_has_f16c(void) { return 1; }
#else
#include <cpuid.h>

/* Asked once: a layer asks on every run, and CPUID traps to the hypervisor in a virtual machine (measured 10-50 us
 * per float16 step). Atomic as dispatch.c's table, so the first-use race is defined behaviour. */
static int f16c_known; /* 0 not asked yet, 1 no, 2 yes */

static int cpu_has_f16c(void)
{
    int known = __atomic_load_n(&f16c_known, __ATOMIC_ACQUIRE);
    if (!known) {
        unsigned a, b, c, d;
        known = __get_cpuid(1, &a, &b, &c, &d) && ((c >> 29) & 1) ? 2 : 1;
        __atomic_store_n(&f16c_known, known, __ATOMIC_RELEASE);
    }
    return known == 2;
}
#endif
#endif

rnnf_gemm_packed_fn rnnf_qgemm_get(const rnnf_kernels *K, int weight_dtype)
{
#ifdef RNNF_HAVE_AVX512
    if (K == &rnnf_kernels_avx512) /* AVX-512F widens halves itself: no F16C question */
        return weight_dtype == RNNF_WEIGHTS_I8 ? rnnf_gemm_packed_i8_avx512 : rnnf_gemm_packed_f16_avx512;
#endif
#ifdef RNNF_HAVE_AVX2
    if (K == &rnnf_kernels_avx2) {
        if (weight_dtype == RNNF_WEIGHTS_I8) return rnnf_gemm_packed_i8_avx2;
#if defined(__x86_64__) || defined(__i386__)
        if (weight_dtype == RNNF_WEIGHTS_F16 && cpu_has_f16c()) return rnnf_gemm_packed_f16_avx2;
#endif
    }
#endif
    (void)K;
    return weight_dtype == RNNF_WEIGHTS_I8 ? rnnf_gemm_packed_i8_ref : rnnf_gemm_packed_f16_ref;
}

void *rnnf_pack_gates_q(rnnf_pool *pool, const void *src, const float *scales, int weight_dtype, int G, int H, int Kd,
                        int n_blocks)
{
    const size_t n_panels = (size_t)n_blocks * G;
    const size_t stride = weight_dtype == RNNF_WEIGHTS_I8 ? RNNF_Q8_PANEL_BYTES(Kd) : (size_t)Kd * UB * 2;
    size_t bytes = n_panels * stride;
    void *dst = rnnf_mem_alloc(pool, bytes);
    if (!dst) return NULL;
    for (int jb = 0; jb < n_blocks; jb++)
        for (int g = 0; g < G; g++) {
            unsigned char *panel = (unsigned char *)dst + (size_t)(jb * G + g) * stride;
            for (int jj = 0; jj < UB; jj++) {
                const int j = jb * UB + jj;
                if (j >= H) break;
                const size_t row = (size_t)g * H + j;
                if (weight_dtype == RNNF_WEIGHTS_I8) {
                    float *scale = (float *)(void *)panel;
                    int8_t *q = (int8_t *)(scale + UB);
                    const int8_t *s = (const int8_t *)src + row * Kd;
                    scale[jj] = scales[row];
                    for (int k = 0; k < Kd; k++) q[(size_t)k * UB + jj] = s[k];
                } else {
                    uint16_t *h = (uint16_t *)(void *)panel;
                    const uint16_t *s = (const uint16_t *)src + row * Kd;
                    for (int k = 0; k < Kd; k++) h[(size_t)k * UB + jj] = s[k];
                }
            }
        }
    return dst;
}
