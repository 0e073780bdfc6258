/* test_contention_backoff.c: the recurrent calls' back-off to one thread under contention (src_c/threads.c), driven
 * with synthetic barrier tallies.
 *
 * The policy is time-based: contention (over a quarter of the barrier waits of at least 64 steps of calls with
 * threads slept) sends calls to one thread for a window that starts at 20 ms, doubles each time the call that tries
 * threads again is contended too (up to 1 s), and returns to 20 ms after an uncontended multi-thread call. The checks below only wait longer than a window (a sleep never ends early); a
 * check that needs "no time passed" is made only when the clock says so, else reported as not made, so a descheduled
 * test process cannot fail it. Prints one line per check and exits non-zero on a failure.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <time.h>

#include "internal.h"

static int failures = 0;

static void expect(int ok, const char *what, long got)
{
    printf("%-64s %8ld %s\n", what, got, ok ? "ok" : "FAILED");
    failures += !ok;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* A 2-thread call of 100 steps, 50 of whose barrier waits slept (contended) or none did. */
static void contended_call(void) { rnnf_threads_after_call(2, 100, 50); }
static void quiet_call(void) { rnnf_threads_after_call(2, 100, 0); }

/* The back-off left right after a contended call, or -1 when the process lost the CPU for too long to tell. */
static long backed_off_after_contended_call(void)
{
    const long long t0 = now_ms();
    contended_call();
    const int threads = rnnf_threads_for_call(2);
    const long left = rnnf_threads_backed_off();
    if (now_ms() - t0 > 5) return -1;
    return threads == 1 ? left : 0;
}

static void expect_window(long left, long low, long high, const char *what)
{
    if (left < 0) {
        printf("%-64s %8s not made (descheduled)\n", what, "-");
        return;
    }
    expect(left > low && left <= high, what, left);
}

int main(void)
{
    if (!rnnf_openmp_enabled()) {
        printf("built without OpenMP: one thread always, nothing to back off from\nall ok\n");
        return 0;
    }
    expect(rnnf_threads_for_call(2) == 2 && rnnf_threads_backed_off() == 0, "quiet start: 2 threads", 2);
    expect(rnnf_threads_for_call(1) == 1, "one asked: one thread", 1);

    rnnf_threads_after_call(1, 100, 100); /* a one-thread call says nothing about the second core */
    expect(rnnf_threads_for_call(2) == 2, "a one-thread call never backs off", 2);
    rnnf_threads_after_call(2, 100, 20); /* 20 of 100 waits slept: below the share that counts as contended */
    expect(rnnf_threads_for_call(2) == 2, "a few slept waits are not contention", 2);
    /* One-step calls of a two-layer stream: one slept wait among 2 steps is a hiccup, judged with the next calls. */
    rnnf_threads_after_call(2, 2, 1);
    expect(rnnf_threads_for_call(2) == 2, "one slept wait in a short call: not judged alone", 2);
    for (int i = 0; i < 40; i++) rnnf_threads_after_call(2, 2, 0);
    expect(rnnf_threads_for_call(2) == 2, "... nor with 80 quiet steps after it", 2);
    int calls = 0, backed = 0;
    while (calls < 32 && !backed) {
        rnnf_threads_after_call(2, 2, 1);
        calls++;
        backed = rnnf_threads_for_call(2) == 1;
    }
    expect(backed && calls <= 4, "short calls that keep sleeping: backed off within 4 calls", calls);
    sleep_ms(25);
    quiet_call(); /* the window back at 20 ms for the checks below */

    expect_window(backed_off_after_contended_call(), 0, 20, "contended: one thread for at most 20 ms");
    sleep_ms(25);
    expect(rnnf_threads_for_call(2) == 2 && rnnf_threads_backed_off() == 0, "after the window: threads again", 2);
    expect_window(backed_off_after_contended_call(), 20, 40, "still contended: the window doubles to 40 ms");
    sleep_ms(45);
    expect(rnnf_threads_for_call(2) == 2, "after 40 ms: threads again", 2);
    quiet_call();
    expect_window(backed_off_after_contended_call(), 0, 20, "an uncontended call resets the window to 20 ms");

    for (int i = 0; i < 12; i++) contended_call(); /* 20 ms doubled twelve times would be 80 s */
    const long capped = rnnf_threads_backed_off();
    expect(capped > 500 && capped <= 1000, "long contention: the window stops at 1 s", capped);
    quiet_call(); /* a multi-thread call that was not contended (made by another caller) resets the window only */
    expect(rnnf_threads_for_call(2) == 1, "the window in force still holds", 1);

    printf(failures ? "%d FAILED\n" : "all ok\n", failures);
    return failures != 0;
}
