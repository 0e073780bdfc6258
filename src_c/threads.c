/* threads.c: the per-group spin barrier and the row carry used between time steps.
 *
 * Steps are microseconds long, so a sleeping barrier would cost more than the step; threads spin on a
 * sense flag and yield the core only after a long wait (an oversubscribed machine).
 */
#include <sched.h>
#include <string.h>

#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define RNNF_PAUSE() _mm_pause()
#else
#define RNNF_PAUSE() ((void)0)
#endif

void rnnf_barrier_init(rnnf_barrier *b, int n)
{
    b->count = 0;
    b->sense = 0;
    b->n = n;
}

void rnnf_barrier_wait(rnnf_barrier *b, int *local_sense)
{
    if (b->n <= 1) return;
    int want = !*local_sense;
    *local_sense = want;
    if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == b->n) {
        __atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&b->sense, want, __ATOMIC_RELEASE);
        return;
    }
    for (long spins = 0; __atomic_load_n(&b->sense, __ATOMIC_ACQUIRE) != want; spins++) {
        if (spins > 20000) sched_yield();
        else RNNF_PAUSE();
    }
}

void rnnf_carry_inactive(int batch, const uint8_t *active, const float *hp, float *hn, int stride, int c0, int c1)
{
    if (c1 <= c0) return;
    for (int b = 0; b < batch; b++)
        if (!active[b])
            memcpy(hn + (size_t)b * stride + c0, hp + (size_t)b * stride + c0, (size_t)(c1 - c0) * sizeof(float));
}
