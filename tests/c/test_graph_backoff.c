/* test_graph_backoff.c: a graph run while the recurrent layers are backed off to one thread (src_c/threads.c) runs
 * on one thread and is no sample for the graph's thread choice (src_c/graph/exec.c): such runs timed one thread as
 * "the asked count" and the choice settled on one thread for good on a quiet machine.
 *
 *   test_graph_backoff FILE D0,D1,...   FILE a .rnnf 2 graph whose first input is float32 of those dims (the others
 *                                       left to their defaults); prints one line per check, exits non-zero on a failure
 *
 * The back-off is forced through the library's own entry (rnnf_threads_after_call with a tally that counts as
 * contended), so nothing here depends on the machine's load; the check that needs the 20 ms window still open is
 * made only when the clock says it is, else reported as not made.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static int failures = 0;

static void expect(int ok, const char *what)
{
    printf("%-70s %s\n", what, ok ? "ok" : "FAILED");
    failures += !ok;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test_graph_backoff FILE D0,D1,...\n");
        return 2;
    }
    if (!rnnf_openmp_enabled()) {
        printf("built without OpenMP: one thread always\nall ok\n");
        return 0;
    }
    rnnf_error err;
    rnnf_graph *g = NULL;
    rnnf_graph_state *s = NULL;
    if (rnnf_graph_load_file(argv[1], &g, &err) != RNNF_OK || rnnf_graph_state_create(g, &s) != RNNF_OK) {
        fprintf(stderr, "load: %s\n", err.message);
        return 2;
    }
    const int n_in = rnnf_graph_n_inputs(g), n_out = rnnf_graph_n_outputs(g);
    rnnf_tensor in[8], out[8];
    if (n_in > 8 || n_out > 8) return 2;
    memset(in, 0, sizeof in);
    memset(out, 0, sizeof out);
    in[0].dtype = RNNF_DT_F32;
    size_t numel = 1;
    for (char *p = argv[2]; *p; p += *p == ',') {
        in[0].dims[in[0].rank] = strtol(p, &p, 10);
        numel *= (size_t)in[0].dims[in[0].rank++];
    }
    in[0].data = calloc(numel, sizeof(float));
    for (int i = 1; i < n_in; i++) in[i].dtype = RNNF_DT_NONE;
    if (rnnf_graph_prepare(s, in, out, &err) != RNNF_OK) {
        fprintf(stderr, "prepare: %s\n", err.message);
        return 2;
    }
    for (int o = 0; o < n_out; o++) {
        size_t n = 1;
        for (int a = 0; a < out[o].rank; a++) n *= (size_t)out[o].dims[a];
        out[o].data = calloc(n ? n : 1, 8);
    }
    for (int r = 0; r < 6; r++)
        if (rnnf_graph_run(s, in, out, 2, &err) != RNNF_OK) {
            fprintf(stderr, "run: %s\n", err.message);
            return 2;
        }
    int threads;
    double one, asked;
    rnnf_graph_state_threads(s, &threads, &one, &asked);
    expect(one > 0 && asked > 0, "quiet: both counts measured");

    const double t0 = now_s();
    rnnf_threads_after_call(2, 100, 100); /* every wait of a 100-step call slept: contended */
    int same = 1;
    for (int r = 0; r < 12; r++) {
        rnnf_graph_run(s, in, out, 2, &err);
        int t;
        double o, a;
        rnnf_graph_state_threads(s, &t, &o, &a);
        same &= o == one && a == asked;
    }
    if (now_s() - t0 < 0.015)
        expect(same, "backed off: runs are no samples for the choice");
    else
        printf("%-70s not made (descheduled)\n", "backed off: runs are no samples for the choice");

    struct timespec wait = {0, 30000000L};
    nanosleep(&wait, NULL);
    int changed = 0;
    for (int r = 0; r < 12 && !changed; r++) {
        rnnf_graph_run(s, in, out, 2, &err);
        int t;
        double o, a;
        rnnf_graph_state_threads(s, &t, &o, &a);
        changed = o != one || a != asked;
    }
    expect(changed, "after the window: runs are timed again");

    for (int o = 0; o < n_out; o++) free(out[o].data);
    free(in[0].data);
    rnnf_graph_state_free(s);
    rnnf_graph_free(g);
    printf(failures ? "%d FAILED\n" : "all ok\n", failures);
    return failures != 0;
}
