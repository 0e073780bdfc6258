/* adapt.c: how many threads a graph run or a recurrent call uses, chosen from the run times its state measures
 * (a graph state; a recurrent state of rnnf_run / rnnf_step, timed per step).
 *
 * A second thread pays on a quiet machine (a CRNN call 245 -> 166 us) and ruins a busy one: every fork-join op and
 * every per-step barrier of a recurrent layer waits for a partner that the scheduler may not run for a whole time
 * slice (the same call took 2.5-6.8 ms at 2 threads beside other busy processes, 0.3 ms at 1). Whether it pays is a
 * property of the model, the shapes and the machine's load right now, so it is measured, not guessed: each state
 * keeps the last few run times of "1 thread" and of "the asked count", uses the faster, and now and then tries the
 * other. Every op gives the same bits for any thread count, so the choice only changes the speed.
 *
 * Short runs make single times unreliable: a one-step bidirectional LSTM takes 17 us at 2 threads and 75 at 1, and
 * on a shared VM two or three runs in a row now and then take 100-300 us (the partner's vCPU is halted or
 * preempted). With the median of the last three times such a burst sent the choice to one thread, and a try of
 * one run lost to the next blip and doubled the wait to the following try, so a whole benchmark block ran at 4x
 * its time. Hence the median of the last seven (a switch needs four slow runs of the last seven), and a try of the
 * asked count is one untimed run (its partner may have slept: waking a halted vCPU took 5-9 ms against a 0.4 ms run)
 * and then the median of three timed ones; such a try ends at once only when a timed run is 3x slower, since the
 * bursts above hit exactly those runs. A try of one thread has no partner to wake and no bursts of that kind: it
 * starts timed and ends at its first run 1.4x slower. It used to take four runs like the other, and a long model
 * (a 100-step batch-64 LSTM, 25 ms at 2 threads, 50 at 1) spent runs 3 to 6 of its life on one thread: a user
 * timing ten calls saw 1.4x the two-thread time.
 * A try that loses waits longer for the next (doubling, and at least 20x its extra cost so that lost tries cost
 * under 5% of the run time however slow they are), but never more than about a second of run time unless its cost
 * needs it: a machine that was busy during a try is often quiet again soon. A try that wins switches at once.
 */
#include <string.h>

#include "internal.h"

#define ADAPT_MIN_INTERVAL 4
#define ADAPT_MAX_INTERVAL (1 << 20)
/* The other count must be this much faster to take over: run times jitter by a few percent. */
#define ADAPT_MARGIN 0.95
/* A try's timed run this many times slower than the count in use has lost: the try stops there. */
#define ADAPT_TRY_GIVE_UP 3.0
#define ADAPT_TRY_ONE_GIVE_UP 1.4
/* Lost tries may cost this share of the run time. */
#define ADAPT_TRY_COST_SHARE 0.04
/* Doubling stops at this much run time between tries (the cost share may ask for more). */
#define ADAPT_DOUBLING_MAX_SECONDS 1.0

/* The median of n times; of an even count the slower middle one: one lucky run must not make a count look fast. */
static double median_of(const double *t, int n)
{
    if (n <= 0) return 0.0;
    double v[RNNF_ADAPT_RING > RNNF_ADAPT_TRY_RUNS ? RNNF_ADAPT_RING : RNNF_ADAPT_TRY_RUNS];
    for (int i = 0; i < n; i++) {
        int j = i;
        for (; j > 0 && v[j - 1] > t[i]; j--) v[j] = v[j - 1];
        v[j] = t[i];
    }
    return v[n / 2];
}

static double arm_median(const rnnf_thread_choice *c, int arm) { return median_of(c->times[arm], c->count[arm]); }

static void record(rnnf_thread_choice *c, int arm, double seconds)
{
    c->times[arm][c->next[arm]] = seconds;
    c->next[arm] = (c->next[arm] + 1) % RNNF_ADAPT_RING;
    if (c->count[arm] < RNNF_ADAPT_RING) c->count[arm]++;
}

static void reset(rnnf_thread_choice *c, int asked)
{
    memset(c, 0, sizeof *c);
    c->asked = asked;
    c->arm = 1;                 /* start with what was asked; the first try of one thread comes soon */
    c->interval = ADAPT_MIN_INTERVAL;
    c->explore_in = 2;          /* one sample of the asked count first, then a try of a single thread */
}

void rnnf_thread_choice_reset(rnnf_thread_choice *c)
{
    c->asked = 0;
}

int rnnf_thread_choice_begin(rnnf_thread_choice *c, int asked, int *arm)
{
    if (asked <= 1) {
        *arm = -1;
        return 1;
    }
    if (c->asked != asked) reset(c, asked);
    if (!c->warm) {             /* the first run of a plan touches fresh arena pages: not a fair sample */
        *arm = -1;
        return c->arm ? asked : 1;
    }
    if (!c->trying && --c->explore_in <= 0) {
        c->try_untimed = c->arm == 0; /* a try of the asked count starts with a run that wakes the partner */
        c->trying = RNNF_ADAPT_TRY_RUNS + c->try_untimed;
        c->try_taken = 0;
    }
    const int use = c->trying ? !c->arm : c->arm;
    *arm = use;
    return use ? asked : 1;
}

/* The try of the other arm is over: its times replace that arm's older ones (they describe another moment of the
 * machine), and it takes over or the next try is set. */
static void conclude_try(rnnf_thread_choice *c, double mine)
{
    if (mine < 1e-9) mine = 1e-9; /* a count in use with no time yet (only synthetic zero times) */
    const int other = !c->arm;
    c->trying = 0;
    c->count[other] = 0;
    c->next[other] = 0;
    for (int k = 0; k < c->try_taken; k++) record(c, other, c->try_times[k]);
    const double theirs = median_of(c->try_times, c->try_taken);
    if (theirs < mine * ADAPT_MARGIN) {
        c->arm = other;
        c->interval = ADAPT_MIN_INTERVAL;
        c->explore_in = c->interval;
        return;
    }
    /* What the try cost beyond running the count in use: its timed runs and, at about the same time, the untimed. */
    double extra = c->try_untimed && theirs > mine ? theirs - mine : 0.0;
    for (int k = 0; k < c->try_taken; k++) extra += c->try_times[k] > mine ? c->try_times[k] - mine : 0.0;
    const double for_cost = extra / (ADAPT_TRY_COST_SHARE * mine);
    const double doubling_cap = ADAPT_DOUBLING_MAX_SECONDS / mine;
    double next = 2.0 * c->interval;
    if (next > doubling_cap) next = doubling_cap;
    if (next < for_cost) next = for_cost;
    if (next < ADAPT_MIN_INTERVAL) next = ADAPT_MIN_INTERVAL;
    c->interval = next > ADAPT_MAX_INTERVAL ? ADAPT_MAX_INTERVAL : (int)next;
    c->explore_in = c->interval;
}

void rnnf_thread_choice_end(rnnf_thread_choice *c, int arm, double seconds)
{
    if (arm < 0) {
        if (c->asked > 1) c->warm = 1;
        return;
    }
    if (c->trying) {
        if (c->trying-- == RNNF_ADAPT_TRY_RUNS + 1) return; /* the untimed first run of the try */
        c->try_times[c->try_taken++] = seconds;
        const double mine = arm_median(c, c->arm);
        const double give_up = arm == 0 ? ADAPT_TRY_ONE_GIVE_UP : ADAPT_TRY_GIVE_UP;
        if (c->trying > 0 && seconds < give_up * mine) return;
        conclude_try(c, mine);
        return;
    }
    record(c, arm, seconds);
    /* The count in use got slower than the other was when last tried (the machine got busy or quiet): switch now
     * rather than wait for the next try. That time of the other count may be old, and a burst of slow runs can end
     * as soon as it is seen, so the count left is tried again soon (the spacing starts again: the tries that spaced out
     * were of the other count); if it still loses, its tries space out as any. */
    const double mine = arm_median(c, c->arm);
    if (c->count[!c->arm] > 0 && arm_median(c, !c->arm) < mine * ADAPT_MARGIN) {
        c->arm = !c->arm;
        c->interval = ADAPT_MIN_INTERVAL;
        c->explore_in = c->interval;
    }
}

int rnnf_thread_choice_start(rnnf_thread_choice *c, int n_threads)
{
    const int asked = n_threads > 0 ? n_threads : rnnf_default_threads();
    c->run_t0_ns = 0;
    if (asked > 1 && rnnf_threads_backed_off()) {
        c->run_arm = -1; /* the recurrent layers are backed off for a while (threads.c): the run follows, untimed */
        return 1;
    }
    const int n = rnnf_thread_choice_begin(c, asked, &c->run_arm);
    if (c->run_arm >= 0) c->run_t0_ns = rnnf_monotonic_ns(); /* timed only when the run is a sample */
    return n;
}

/* Unless the recurrent layers found the machine busy during the run and went to one thread on their own: then it
 * timed one thread as the asked count, and such samples had the choice settle on one thread for good on a quiet
 * machine (lat-h512 LSTM at 16 ms a call instead of 4). */
void rnnf_thread_choice_finish(rnnf_thread_choice *c, int units)
{
    const int fair = c->run_arm >= 0 && !rnnf_threads_backed_off();
    rnnf_thread_choice_end(c, fair ? c->run_arm : -1,
                           fair ? 1e-9 * (double)(rnnf_monotonic_ns() - c->run_t0_ns) / units : 0.0);
}

int rnnf_thread_choice_current(const rnnf_thread_choice *c, double *seconds_one, double *seconds_asked)
{
    if (seconds_one) *seconds_one = arm_median(c, 0);
    if (seconds_asked) *seconds_asked = arm_median(c, 1);
    return c->asked <= 1 ? 1 : (c->arm ? c->asked : 1);
}
