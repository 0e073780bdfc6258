/* test_barrier_wake.c: the recurrent layers' step barrier (src_c/threads.c) when a woken thread is slow to run.
 *
 * On a VM a thread woken from a futex sleep may take milliseconds to run again (its vCPU was halted). A waiter that
 * then gives up spinning after its usual 200 us halts its own vCPU, the slow thread finds it asleep at the next
 * barrier and wakes it in turn, and every later step pays a wake-up. Here two OpenMP threads run 400 barrier steps;
 * once, one thread arrives 2 ms late (its partner sleeps), and every wait that slept is followed by 2 ms of busy
 * waiting, as a slow vCPU wake-up would. The barrier must absorb that: a few sleeps, not one per step.
 * A thread the scheduler kept waiting for a CPU (other processes on the machine) sleeps at barriers for good reason,
 * so when either thread waited more than 1 ms on the run queue (/proc/thread-self/schedstat), the check is reported
 * as not made. Prints one line per check and exits non-zero on a failure.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <time.h>

#include <omp.h>

#include "internal.h"

#define STEPS 400
#define LATE_AT 20
#define WAKE_NS 2000000LL

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Nanoseconds this thread has waited on a run queue so far (0 where the kernel does not say). */
static long long run_queue_wait_ns(void)
{
    long long on_cpu = 0, waited = 0;
    FILE *f = fopen("/proc/thread-self/schedstat", "r");
    if (!f) return 0;
    if (fscanf(f, "%lld %lld", &on_cpu, &waited) != 2) waited = 0;
    fclose(f);
    return waited;
}

static void busy_ns(long long ns)
{
    const long long until = now_ns() + ns;
    while (now_ns() < until) {
    }
}

int main(void)
{
    if (!rnnf_openmp_enabled()) {
        printf("built without OpenMP: no barrier between threads\nall ok\n");
        return 0;
    }
    rnnf_barrier bar;
    rnnf_barrier_init(&bar, 2);
    int slept[2] = {0, 0}, threads = 0;
    long long queued[2] = {0, 0};
#pragma omp parallel num_threads(2)
    {
        const int me = omp_get_thread_num();
#pragma omp single
        threads = omp_get_num_threads();
        int sense = 0;
        const long long queued_before = run_queue_wait_ns();
        if (threads == 2) {
            for (int step = 0; step < STEPS; step++) {
                busy_ns(5000); /* a step's work */
                if (step == LATE_AT && me == 1) busy_ns(WAKE_NS);
                if (rnnf_barrier_wait(&bar, &sense)) {
                    slept[me]++;
                    busy_ns(WAKE_NS); /* the slow wake-up of a halted vCPU */
                }
            }
        }
        queued[me] = run_queue_wait_ns() - queued_before;
    }
    if (threads != 2) {
        printf("OpenMP gave %d threads: nothing to check\nall ok\n", threads);
        return 0;
    }
    const int sleeps = slept[0] + slept[1];
    const long long queued_most = queued[0] > queued[1] ? queued[0] : queued[1];
    if (queued_most > 1000000) {
        printf("%-64s %8s not made (a thread waited %.1f ms for a CPU)\nall ok\n",
               "waits that slept in 400 steps after one late arrival", "-", 1e-6 * (double)queued_most);
        return 0;
    }
    const int ok = sleeps >= 1 && sleeps <= 8;
    printf("%-64s %8d %s\n", "waits that slept in 400 steps after one late arrival (1 to 8)", sleeps,
           ok ? "ok" : "FAILED");
    printf("%s\n", ok ? "all ok" : "FAILED");
    return !ok;
}
