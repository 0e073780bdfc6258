/* adapt.c: how many threads a graph run uses, chosen from the run times the graph state measures.
 *
 * A second thread pays on a quiet machine (a CRNN call 245 -> 166 us) and ruins a busy one: every fork-join op and
 * every per-step barrier of a recurrent layer waits for a partner that the scheduler may not run for a whole time
 * slice (the same call took 2.5-6.8 ms at 2 threads beside other busy processes, 0.3 ms at 1). Whether it pays is a
 * property of the model, the shapes and the machine's load right now, so it is measured, not guessed: each state
 * keeps the last few run times of "1 thread" and of "the asked count", uses the faster, and now and then tries the
 * other. A try is two runs, the second timed: the first run with threads after a stretch on one thread waits for
 * the idle partner to wake, which on a VM took 5-9 ms against a 0.4 ms run, so one-run tries always lost and the
 * choice stayed on one thread (a bidirectional LSTM-128 at 0.7 ms a call instead of 0.4). A try that loses at least
 * doubles the interval to the next try, and spaces tries so that the slow ones cost under 5% of the time however
 * slow they are; a try that wins switches at once. Every op gives the same bits
 * for any thread count, so the choice only changes the speed.
 */
#include <string.h>

#include "graph/plan.h"

#define ADAPT_MIN_INTERVAL 4
#define ADAPT_MAX_INTERVAL (1 << 20)
/* The other count must be this much faster to take over: run times jitter by a few percent. */
#define ADAPT_MARGIN 0.95

/* The middle of the last three times; of two, the slower: one lucky run must not make a count look fast. */
static double median3(const double *t, int n)
{
    if (n < 3) return n == 1 ? t[0] : (n == 2 ? (t[0] > t[1] ? t[0] : t[1]) : 0.0);
    const double a = t[0], b = t[1], c = t[2];
    if (a < b) return b < c ? b : (a < c ? c : a);
    return a < c ? a : (b < c ? c : b);
}

static void reset(rnnf_thread_choice *c, int asked)
{
    memset(c, 0, sizeof *c);
    c->asked = asked;
    c->arm = 1;                 /* start with what was asked; the first try of one thread comes soon */
    c->interval = ADAPT_MIN_INTERVAL;
    c->explore_in = 2;          /* one sample of the asked count first, then one of a single thread */
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
    int use = c->arm;
    c->exploring = 0;
    if (c->explore_next) {
        c->explore_next = 0;
        use = !c->arm;
        c->exploring = 1;
    } else if (--c->explore_in <= 0) {
        use = !c->arm;
        c->exploring = 2;
    }
    *arm = use;
    return use ? asked : 1;
}

void rnnf_thread_choice_end(rnnf_thread_choice *c, int arm, double seconds)
{
    if (arm < 0) {
        if (c->asked > 1) c->warm = 1;
        return;
    }
    if (c->exploring == 2) { /* a try's first run: its partner may have slept, so the next run is the one timed */
        c->exploring = 0;
        c->explore_next = 1;
        return;
    }
    double *t = c->times[arm];
    t[c->next[arm]] = seconds;
    c->next[arm] = (c->next[arm] + 1) % 3;
    if (c->count[arm] < 3) c->count[arm]++;
    const double mine = median3(c->times[c->arm], c->count[c->arm]);
    const double other = median3(c->times[!c->arm], c->count[!c->arm]);
    if (c->exploring) {
        c->exploring = 0;
        if (seconds < mine * ADAPT_MARGIN) {
            c->arm = arm;
            c->interval = ADAPT_MIN_INTERVAL;
        } else {
            /* A losing try costs two runs of (its time - the usual time); spacing tries by at least 40x the ratio
             * keeps that under 5% even when a busy machine makes the other count 500x slower (seen: 107 ms vs
             * 0.22 ms). */
            double spacing = mine > 0 ? 40.0 * seconds / mine : 0;
            long next = 2L * c->interval;
            if (spacing > next) next = spacing > ADAPT_MAX_INTERVAL ? ADAPT_MAX_INTERVAL : (long)spacing;
            c->interval = next > ADAPT_MAX_INTERVAL ? ADAPT_MAX_INTERVAL : (int)next;
        }
        c->explore_in = c->interval;
        return;
    }
    /* The count in use got slower than the other was when last tried (the machine got busy or quiet): switch now
     * rather than wait for the next try; the interval keeps growing, so a flip-flop between the two stays rare. */
    if (c->count[!c->arm] > 0 && other < mine * ADAPT_MARGIN) {
        c->arm = !c->arm;
        c->explore_in = c->interval;
    }
}

int rnnf_thread_choice_current(const rnnf_thread_choice *c, double *seconds_one, double *seconds_asked)
{
    if (seconds_one) *seconds_one = median3(c->times[0], c->count[0]);
    if (seconds_asked) *seconds_asked = median3(c->times[1], c->count[1]);
    return c->asked <= 1 ? 1 : (c->arm ? c->asked : 1);
}
