/* test_thread_choice.c: the executor's thread choice (src_c/graph/adapt.c) driven with synthetic run times.
 *
 * Timing tests on a real machine would be flaky; the policy itself is deterministic given the times, so it is checked
 * here on the situations it exists for: a quiet machine where the second thread pays, a busy one where it costs up to
 * 500x, and the machine changing from one to the other. Prints one line per case and exits non-zero on a failure.
 */
#include <stdio.h>

#include "graph/plan.h"

typedef struct {
    double total;   /* seconds the runs took */
    long at_asked;  /* runs made with the asked count */
} tally;

static tally simulate(rnnf_thread_choice *c, long runs, double t_one, double t_two)
{
    tally r = {0, 0};
    for (long i = 0; i < runs; i++) {
        int arm;
        const int n = rnnf_thread_choice_begin(c, 2, &arm);
        const double t = n == 2 ? t_two : t_one;
        rnnf_thread_choice_end(c, arm, t);
        r.total += t;
        r.at_asked += n == 2;
    }
    return r;
}

/* Short runs on a shared VM: now and then a burst of one to three runs with two threads takes 100-300 us (the
 * partner's vCPU halted or preempted) against 17 us usually; one thread always takes 75 us. `ideal` is every run on
 * two threads with the same bursts. Deterministic: the bursts come from a fixed linear congruential sequence. */
static tally simulate_blips(rnnf_thread_choice *c, long runs, double *ideal)
{
    tally r = {0, 0};
    unsigned long long seed = 12345;
    int burst = 0;
    *ideal = 0;
    for (long i = 0; i < runs; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        const unsigned draw = (unsigned)(seed >> 33);
        if (!burst && draw % 100 < 3) burst = 1 + (int)(draw / 100 % 3);
        const double t_two = burst ? 100e-6 + (double)(draw / 300 % 200) * 1e-6 : 17e-6;
        if (burst) burst--;
        int arm;
        const int n = rnnf_thread_choice_begin(c, 2, &arm);
        const double t = n == 2 ? t_two : 75e-6;
        rnnf_thread_choice_end(c, arm, t);
        r.total += t;
        r.at_asked += n == 2;
        *ideal += t_two;
    }
    return r;
}

static int failures = 0;

static void expect(int ok, const char *what, double got, double limit)
{
    printf("%-58s %12.4f (limit %.4f) %s\n", what, got, limit, ok ? "ok" : "FAILED");
    failures += !ok;
}

int main(void)
{
    rnnf_thread_choice c;

    /* Quiet: two threads take 1.0, one takes 1.5. Nearly every run uses two. */
    rnnf_thread_choice_reset(&c);
    tally q = simulate(&c, 100000, 1.5e-3, 1.0e-3);
    expect(q.total <= 1.01 * 100000 * 1.0e-3, "quiet: total time / ideal two-thread time", q.total / 100.0, 1.01);

    /* Busy: two threads take 107 ms (a partner thread waiting for time slices), one 0.22 ms. */
    rnnf_thread_choice_reset(&c);
    tally b = simulate(&c, 200000, 0.22e-3, 107e-3);
    const double ideal = 200000 * 0.22e-3;
    expect(b.total <= 1.10 * ideal, "busy (500x): total time / ideal one-thread time", b.total / ideal, 1.10);

    /* A long model timed over its first ten calls (25 ms at two threads, 50 at one): the try of one thread must cost
     * one run, not four. */
    rnnf_thread_choice_reset(&c);
    tally l = simulate(&c, 10, 50e-3, 25e-3);
    expect(l.total <= 1.15 * 10 * 25e-3, "long model, first 10 runs: total time / ideal", l.total / 0.25, 1.15);

    /* Mildly busy: two threads 2x slower than one. */
    rnnf_thread_choice_reset(&c);
    tally m = simulate(&c, 100000, 1e-3, 2e-3);
    expect(m.total <= 1.05 * 100000 * 1e-3, "mildly busy (2x): total time / ideal", m.total / 100.0, 1.05);

    /* The machine gets busy, then quiet again: the choice follows both ways. */
    rnnf_thread_choice_reset(&c);
    simulate(&c, 10000, 1.5e-3, 1.0e-3);
    expect(rnnf_thread_choice_current(&c, NULL, NULL) == 2, "quiet phase ends on two threads",
           rnnf_thread_choice_current(&c, NULL, NULL), 2);
    tally busy = simulate(&c, 10000, 1.6e-3, 50e-3);
    expect(busy.at_asked <= 20, "busy phase: runs made with two threads", (double)busy.at_asked, 20);
    simulate(&c, 200000, 1.5e-3, 1.0e-3);
    tally back = simulate(&c, 10000, 1.5e-3, 1.0e-3);
    expect(back.at_asked >= 9900, "quiet again: runs with two threads of the last 10000", (double)back.at_asked, 9900);

    /* A VM: the first run with two threads after runs on one waits for the idle partner's vCPU to wake (5 ms
     * against a 0.4 ms run, 0.7 ms on one thread). Two threads still pay: nearly every run uses them. */
    rnnf_thread_choice_reset(&c);
    tally w = {0, 0};
    int last = 2;
    for (long i = 0; i < 100000; i++) {
        int arm_w;
        const int n_w = rnnf_thread_choice_begin(&c, 2, &arm_w);
        const double t = n_w == 2 ? 0.4e-3 + (last == 1 ? 5e-3 : 0) : 0.7e-3;
        rnnf_thread_choice_end(&c, arm_w, t);
        w.total += t;
        w.at_asked += n_w == 2;
        last = n_w;
    }
    expect(w.total <= 1.05 * 100000 * 0.4e-3, "partner wakes slowly: total time / ideal two-thread time",
           w.total / 40.0, 1.05);

    /* Short runs with bursts of slow two-thread runs: they must not send the choice to one thread for long. */
    rnnf_thread_choice_reset(&c);
    double ideal_blips;
    tally nb = simulate_blips(&c, 200000, &ideal_blips);
    expect(nb.total <= 1.10 * ideal_blips, "bursts of slow runs: total time / ideal two-thread time",
           nb.total / ideal_blips, 1.10);

    /* A busy moment during quiet work (300 runs at which two threads take 16 ms, one 75 us): once it is over, the
     * choice is back on two threads within about a second of run time. */
    rnnf_thread_choice_reset(&c);
    simulate(&c, 20000, 75e-6, 17e-6);
    simulate(&c, 300, 75e-6, 16e-3);
    tally after = simulate(&c, 30000, 75e-6, 17e-6);
    tally settled = simulate(&c, 100000, 75e-6, 17e-6);
    expect(after.total <= 1.3, "after a busy moment: seconds to run the next 30000 quiet runs", after.total, 1.3);
    expect(settled.at_asked >= 99000, "after a busy moment: two-thread runs of the 100000 after",
           (double)settled.at_asked, 99000);

    /* One thread asked: nothing to choose, nothing recorded. */
    rnnf_thread_choice_reset(&c);
    int arm = 0;
    const int n = rnnf_thread_choice_begin(&c, 1, &arm);
    expect(n == 1 && arm == -1, "one thread asked: one thread, not recorded", n, 1);

    printf("%s\n", failures ? "FAILED" : "all ok");
    return failures != 0;
}
