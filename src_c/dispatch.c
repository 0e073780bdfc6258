/* dispatch.c: picks the kernel table once, from CPUID + XGETBV, or from RNNFAST_ISA.
 *
 * Compiled without ISA flags so it runs on any x86-64 (and any other) CPU; only the ISA files are built
 * with -mavx2 -mfma (and -mavx512f ... for avx512.c where the compiler has them), and they are reached only
 * through the table chosen here: the first of avx512, avx2, ref this CPU runs. On aarch64 NEON is part of
 * the base architecture, so its table is chosen at build time (RNNF_HAVE_NEON) and always supported.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

#ifdef RNNF_HAVE_AVX2
#include <cpuid.h>

static int cpu_has_avx2_fma(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    if (!(fma && osxsave && avx)) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0x6) != 0x6) return 0; /* the OS must save XMM and YMM state */
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b >> 5) & 1;
}
#endif

#ifdef RNNF_HAVE_AVX512
/* AVX-512 F, DQ, BW and VL (leaf 7 EBX bits 16, 17, 30, 31) beside AVX2 + FMA (the table shares avx2.c's
 * Winograd transforms), and an OS that saves the opmask and both halves of the zmm registers (XCR0 bits 5, 6, 7)
 * besides XMM and YMM (bits 1, 2): a kernel that did not check XCR0 would fault where the OS leaves them off. */
static int cpu_has_avx512(void)
{
    if (!cpu_has_avx2_fma()) return 0;
    unsigned a, b, c, d;
    __cpuid_count(7, 0, a, b, c, d);
    const unsigned need = 1u << 16 | 1u << 17 | 1u << 30 | 1u << 31;
    if ((b & need) != need) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 0xe6) == 0xe6;
}
#endif

typedef struct {
    const char *name;
    const rnnf_kernels *table;
    int (*supported)(void);
} isa_entry;

static int always(void) { return 1; }

/* best first */
static const isa_entry isas[] = {
#ifdef RNNF_HAVE_AVX512
    {"avx512", &rnnf_kernels_avx512, cpu_has_avx512},
#endif
#ifdef RNNF_HAVE_AVX2
    {"avx2", &rnnf_kernels_avx2, cpu_has_avx2_fma},
#endif
#ifdef RNNF_HAVE_NEON
    {"neon", &rnnf_kernels_neon, always},
#endif
    {"ref", &rnnf_kernels_ref, always},
};
#define N_ISAS (sizeof(isas) / sizeof(isas[0]))

/* Read on every kernel call from any thread and written once at first use (or by rnnf_isa_select): atomic so the
 * first-use race is defined behaviour (TSan-clean). An acquire load is a plain load on x86-64 and aarch64's ldar,
 * so the hot path costs what it did. */
static const rnnf_kernels *selected;

static const rnnf_kernels *load_selected(void) { return __atomic_load_n(&selected, __ATOMIC_ACQUIRE); }

static void store_selected(const rnnf_kernels *table) { __atomic_store_n(&selected, table, __ATOMIC_RELEASE); }

static const rnnf_kernels *best(void)
{
    for (size_t i = 0; i < N_ISAS; i++)
        if (isas[i].supported()) return isas[i].table;
    return &rnnf_kernels_ref;
}

rnnf_status rnnf_isa_select(const char *name)
{
    if (!name) return RNNF_ERR_ARG;
    for (size_t i = 0; i < N_ISAS; i++)
        if (strcmp(isas[i].name, name) == 0) {
            if (!isas[i].supported()) return RNNF_ERR_ISA;
            store_selected(isas[i].table);
            return RNNF_OK;
        }
    return RNNF_ERR_ISA;
}

const rnnf_kernels *rnnf_kernels_get(void)
{
    const rnnf_kernels *table = load_selected();
    if (table) return table;
    /* Threads racing here all pick the same table from the same inputs, so whichever store lands is right.
     * An unusable RNNFAST_ISA falls back to the best table here; the Python layer checks it at import and
     * raises, so the fallback only affects plain-C users, who can call rnnf_isa_select to see the error. */
    const char *env = getenv("RNNFAST_ISA");
    if (!env || !*env || rnnf_isa_select(env) != RNNF_OK) store_selected(best());
    return load_selected();
}

const char *rnnf_isa_compiled(void)
{
#if defined(RNNF_HAVE_AVX512)
    return "ref,avx2,avx512";
#elif defined(RNNF_HAVE_AVX2)
    return "ref,avx2";
#elif defined(RNNF_HAVE_NEON)
    return "ref,neon";
#else
    return "ref";
#endif
}

const char *rnnf_isa_supported(void)
{
    /* the compiled tables form a chain (avx512 needs avx2's): what this CPU runs is the chain up to the best one */
#ifdef RNNF_HAVE_AVX512
    if (best() == &rnnf_kernels_avx512) return "ref,avx2,avx512";
#endif
#ifdef RNNF_HAVE_AVX2
    if (best() == &rnnf_kernels_avx2) return "ref,avx2";
#endif
#ifdef RNNF_HAVE_NEON
    return "ref,neon";
#endif
    return "ref";
}

const char *rnnf_isa_selected(void) { return rnnf_kernels_get()->name; }
