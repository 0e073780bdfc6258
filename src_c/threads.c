/* threads.c: the per-group barrier and the row carry used between time steps.
 *
 * Steps are microseconds long, so a sleeping barrier would cost more than the step: threads first spin on a
 * sense flag. But when the machine is oversubscribed the partner thread may not be running at all, and a
 * spinning (or merely yielding) waiter then burns the very core the partner needs: a 100-step run measured
 * 200x slower at 2 threads than at 1 under load. So after a short spin the waiter sleeps in the kernel (a
 * futex on Linux, sched_yield elsewhere) and the last thread to arrive wakes the sleepers.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

#include "internal.h"

long long rnnf_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* How long a waiter spins before it sleeps: longer than a balanced wait (a few us) and than waking a sleeping
 * thread, much shorter than a scheduler time slice (milliseconds). Waking is the part that matters on a VM: a
 * sleeping waiter halts its vCPU, and waking that takes longer than a step, so the woken thread reaches the next
 * barrier late and its partner sleeps there in turn: once started, every step paid a wake-up (a 2-thread
 * LSTM-512 call 4 ms -> 12-28 ms, then judged contended) with a spin of 4000 PAUSEs (~50 us on this Xeon). In time,
 * not PAUSEs: a PAUSE takes 10-140 cycles from one core to another. */
#define RNNF_SPIN_NS 200000
/* After a release that woke sleepers, the next wait keeps waiting up to this long before it sleeps itself: the
 * woken thread is on its way but its vCPU may take milliseconds to run again (0.1-9 ms measured), and a waiter that
 * gave up at 200 us halted its own vCPU, so the woken one found it asleep at the next barrier and woke it in turn:
 * once one wait slept, every step of the call paid a wake-up (a bidirectional LSTM-512 call 8 ms -> 48-58 ms on a
 * quiet machine). Past the usual spin it yields instead of PAUSEs: on a busy machine the woken thread may be queued
 * on this very CPU, and a waiter that kept the CPU for 10 ms made every step wait out a time slice (one 2-thread
 * call 812 ms beside four busy processes). */
#define RNNF_SPIN_AFTER_WAKE_NS 10000000
#define RNNF_SPINS_PER_CLOCK_READ 64
/* The machine is contended when more than one barrier step in this many slept, counted over the last
 * RNNF_JUDGED_STEPS steps or more of calls with threads (a 100-step call is judged alone; a stream's one-step calls
 * are judged together: one slept wait in a two-layer step, a vCPU's hiccup, had sent a stream to one thread at
 * 2.8x its step time). Oversubscription is a property of the machine, not of one model, so contention sends every
 * call in the process (default or explicit count) to one thread for a while (results are bit-identical for any
 * thread count: only the speed changes); then the next call tries threads again. "A while" is time, not a number
 * of calls: 64 calls of a 33 ms batch-1 LSTM-512 stack kept it at one thread for 2 s after one busy moment, at 3.7x
 * its 2-thread time. The window starts short and doubles each time the call that tries threads again finds the
 * machine still busy (so a long contention costs one slow call a second), and an uncontended call with threads
 * shortens it again. */
#define RNNF_CONTENDED_STEP_SHARE 4
#define RNNF_JUDGED_STEPS 64
#define RNNF_CONTENDED_CALLS_IN_A_ROW 4
#define RNNF_SOLO_MIN_NS 20000000LL   /* 20 ms */
#define RNNF_SOLO_MAX_NS 1000000000LL /* 1 s */

#ifdef _OPENMP

static long long solo_until_ns = 0; /* 0: not backed off */
static long long solo_window_ns = RNNF_SOLO_MIN_NS;
/* Steps and slept waits of the calls with threads not judged yet. Updated without a lock: two calls ending at once
 * may lose a count, which only delays a verdict. */
static int tally_steps = 0, tally_sleeps = 0;
static int contended_calls_in_a_row = 0;
#endif

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
    b->sleepers = 0;
    b->sleeps = 0;
    b->woke = 0;
    b->n = n;
}

/* Sleep while *word still holds `old` (the kernel re-reads it before sleeping, so a change that lands in between is
 * never missed), and wake every sleeper on word. */
static void futex_wait(volatile int *word, int old)
{
#ifdef __linux__
    syscall(SYS_futex, (int *)word, FUTEX_WAIT_PRIVATE, old, NULL, NULL, 0);
#else
    (void)word;
    (void)old;
    sched_yield();
#endif
}

static void futex_wake_all(volatile int *word)
{
#ifdef __linux__
    syscall(SYS_futex, (int *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)word;
#endif
}

/* Spin with PAUSE until *word reaches `want` (equals it, or with at_least is >= it) or the clock passes until_ns;
 * 1 when it did. */
static int spin_until(volatile int *word, int want, int at_least, long long until_ns)
{
    do {
        for (int spins = 0; spins < RNNF_SPINS_PER_CLOCK_READ; spins++) {
            const int v = __atomic_load_n(word, __ATOMIC_ACQUIRE);
            if (at_least ? v >= want : v == want) return 1;
            RNNF_PAUSE();
        }
    } while (rnnf_monotonic_ns() < until_ns);
    return 0;
}

int rnnf_barrier_wait(rnnf_barrier *b, int *local_sense)
{
    if (b->n <= 1) return 0;
    int want = !*local_sense;
    *local_sense = want;
    if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == b->n) {
        __atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
        /* Sequentially consistent with the sleepers' increment: either the releaser sees a sleeper and wakes it,
         * or the sleeper's futex call sees the new sense and returns at once. */
        __atomic_store_n(&b->sense, want, __ATOMIC_SEQ_CST);
        const int sleepers = __atomic_load_n(&b->sleepers, __ATOMIC_SEQ_CST) > 0;
        __atomic_store_n(&b->woke, sleepers, __ATOMIC_RELAXED);
        if (sleepers) futex_wake_all(&b->sense);
        return 0;
    }
    const long long t0 = rnnf_monotonic_ns();
    if (spin_until(&b->sense, want, 0, t0 + RNNF_SPIN_NS)) return 0;
    if (__atomic_load_n(&b->woke, __ATOMIC_RELAXED)) {
        const long long yield_until = t0 + RNNF_SPIN_AFTER_WAKE_NS;
        do {
            if (__atomic_load_n(&b->sense, __ATOMIC_ACQUIRE) == want) return 0;
            sched_yield();
        } while (rnnf_monotonic_ns() < yield_until);
    }
    __atomic_add_fetch(&b->sleeps, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&b->sleepers, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&b->sense, __ATOMIC_SEQ_CST) != want) futex_wait(&b->sense, !want);
    __atomic_sub_fetch(&b->sleepers, 1, __ATOMIC_SEQ_CST);
    return 1;
}

void rnnf_progress_init(rnnf_progress *p)
{
    p->done = 0;
    p->sleepers = 0;
}

void rnnf_progress_publish(rnnf_progress *p, int done)
{
    /* Sequentially consistent with the sleepers' increment, as in rnnf_barrier_wait: either this sees the sleeper
     * or the sleeper's futex call sees the new count. */
    __atomic_store_n(&p->done, done, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&p->sleepers, __ATOMIC_SEQ_CST) > 0) futex_wake_all(&p->done);
}

int rnnf_progress_wait(rnnf_progress *p, int at_least)
{
    if (__atomic_load_n(&p->done, __ATOMIC_ACQUIRE) >= at_least) return 0;
    if (spin_until(&p->done, at_least, 1, rnnf_monotonic_ns() + RNNF_SPIN_NS)) return 0;
    __atomic_add_fetch(&p->sleepers, 1, __ATOMIC_SEQ_CST);
    for (;;) {
        const int seen = __atomic_load_n(&p->done, __ATOMIC_SEQ_CST);
        if (seen >= at_least) break;
        futex_wait(&p->done, seen);
    }
    __atomic_sub_fetch(&p->sleepers, 1, __ATOMIC_SEQ_CST);
    return 1;
}

void rnnf_carry_inactive(int batch, const uint8_t *active, const float *hp, float *hn, int stride, int c0, int c1)
{
    if (c1 <= c0) return;
    for (int b = 0; b < batch; b++)
        if (!active[b])
            memcpy(hn + (size_t)b * stride + c0, hp + (size_t)b * stride + c0, (size_t)(c1 - c0) * sizeof(float));
}

#ifdef _OPENMP
int rnnf_threads_for_call(int n_threads)
{
    /* An explicit count is the most threads a call may use, like the default: a count of 2 asked on a machine that
     * has no second core free right now collapsed the same way (0.65x onnxruntime beside two busy processes). */
    const int want = n_threads > 0 ? n_threads : rnnf_default_threads();
    if (want <= 1) return 1;
    /* The clock is read only while backed off: an uncontended call costs one relaxed load. */
    const long long until = __atomic_load_n(&solo_until_ns, __ATOMIC_RELAXED);
    if (until != 0) {
        if (rnnf_monotonic_ns() < until) return 1;
        __atomic_store_n(&solo_until_ns, 0, __ATOMIC_RELAXED); /* this call tries threads again */
    }
    return want;
}

int rnnf_threads_backed_off(void)
{
    const long long until = __atomic_load_n(&solo_until_ns, __ATOMIC_RELAXED);
    if (until == 0) return 0;
    const long long left = until - rnnf_monotonic_ns();
    return left > 0 ? (int)((left + 999999) / 1000000) : 0;
}

void rnnf_threads_after_call(int threads, int steps, int sleeps)
{
    if (threads <= 1) return; /* a call on one thread says nothing about the second core */
    /* Judged at once when several calls in a row were contended on their own: a stream whose steps waited out a
     * busy process's time slice (16 ms a step beside one busy process) must not take 64 steps, a second, to see
     * it, nor again after each window. */
    const int run = sleeps * RNNF_CONTENDED_STEP_SHARE > steps
                        ? __atomic_add_fetch(&contended_calls_in_a_row, 1, __ATOMIC_RELAXED)
                        : (__atomic_store_n(&contended_calls_in_a_row, 0, __ATOMIC_RELAXED), 0);
    steps += __atomic_load_n(&tally_steps, __ATOMIC_RELAXED);
    sleeps += __atomic_load_n(&tally_sleeps, __ATOMIC_RELAXED);
    if (steps < RNNF_JUDGED_STEPS && run < RNNF_CONTENDED_CALLS_IN_A_ROW) {
        __atomic_store_n(&tally_steps, steps, __ATOMIC_RELAXED);
        __atomic_store_n(&tally_sleeps, sleeps, __ATOMIC_RELAXED);
        return;
    }
    __atomic_store_n(&tally_steps, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&tally_sleeps, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&contended_calls_in_a_row, 0, __ATOMIC_RELAXED);
    if (run >= RNNF_CONTENDED_CALLS_IN_A_ROW || sleeps * RNNF_CONTENDED_STEP_SHARE > steps) {
        const long long window = __atomic_load_n(&solo_window_ns, __ATOMIC_RELAXED);
        __atomic_store_n(&solo_until_ns, rnnf_monotonic_ns() + window, __ATOMIC_RELAXED);
        __atomic_store_n(&solo_window_ns, window * 2 < RNNF_SOLO_MAX_NS ? window * 2 : RNNF_SOLO_MAX_NS,
                         __ATOMIC_RELAXED);
    } else if (__atomic_load_n(&solo_window_ns, __ATOMIC_RELAXED) != RNNF_SOLO_MIN_NS) {
        __atomic_store_n(&solo_window_ns, RNNF_SOLO_MIN_NS, __ATOMIC_RELAXED);
    }
}
size_t rnnf_core_l2_bytes(void)
{
    /* Read once (a relaxed race only repeats the query). The fallback is a conservative 512 KiB, the smallest L2 of
     * the x86 and Arm server cores this runs on, where the C library cannot ask. */
    static long bytes = 0;
    long b = __atomic_load_n(&bytes, __ATOMIC_RELAXED);
    if (b == 0) {
#ifdef _SC_LEVEL2_CACHE_SIZE
        b = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
        if (b <= 0) b = 512L << 10;
        __atomic_store_n(&bytes, b, __ATOMIC_RELAXED);
    }
    return (size_t)b;
}

#else
/* One thread without OpenMP: nothing to back off from, and no global to keep (export-c has no writable one). */
int rnnf_threads_for_call(int n_threads) { return n_threads > 0 ? n_threads : rnnf_default_threads(); }

int rnnf_threads_backed_off(void) { return 0; }

/* One thread: no group to size, so no cache to ask about (and no global to keep it in). */
size_t rnnf_core_l2_bytes(void) { return 512u << 10; }

void rnnf_threads_after_call(int threads, int steps, int sleeps)
{
    (void)threads;
    (void)steps;
    (void)sleeps;
}
#endif
