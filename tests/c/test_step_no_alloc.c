/* test_step_no_alloc.c: proves that rnnf_step allocates nothing, for every cell, stacked layers, a projection
 * and 1 or 2 threads. Linked with -Wl,--wrap=malloc,... so every allocation made by librnnfast.a goes through
 * the counters below (libgomp's own, inside its shared library, does not: that is OpenMP's business, not ours).
 * Prints "create_allocations C steps N allocations K" per case; the pytest driver (tests/test_c_library.py)
 * checks K == 0, and C > 0 (model and state creation do allocate, so the counters are live). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnnfast/rnnf.h"
#include "count_allocations.h"

static float *filled(size_t n, double seed)
{
    float *p = __real_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = (float)(0.4 * sin(0.37 * (double)i + seed));
    return p;
}

/* BATCH > 1 takes rows_step.c with its per-thread block buffers; HID is large enough that 2 threads really
 * split every layer (recurrent.c runs a layer below 2 x RNNF_MIN_MACS_PER_THREAD per step on one thread) and
 * leaves a 4-unit tail in the last 16-unit block. */
enum { BATCH = 3, IN = 7, HID = 100, PROJ = 9, STEPS = 50 };

/* Two stacked layers of one cell; the LSTM's first layer has a projection when `proj` is set. */
static int run_case(int cell, int proj, int n_threads)
{
    int gates = cell == RNNF_CELL_LSTM ? 4 : cell == RNNF_CELL_GRU ? 3 : 1;
    rnnf_layer_desc d[2];
    float *owned[16];
    int n_owned = 0;
    memset(d, 0, sizeof(d));
    for (int k = 0; k < 2; k++) {
        int in = k == 0 ? IN : (d[0].proj_size ? d[0].proj_size : HID);
        int out = (k == 0 && proj) ? PROJ : HID;
        d[k].cell = cell;
        d[k].n_dirs = 1;
        d[k].input_size = in;
        d[k].hidden_size = HID;
        d[k].proj_size = (k == 0 && proj) ? PROJ : 0;
        d[k].w_ih = owned[n_owned++] = filled((size_t)gates * HID * in, 0.1 + k);
        d[k].w_hh = owned[n_owned++] = filled((size_t)gates * HID * out, 0.2 + k);
        d[k].b_ih = owned[n_owned++] = filled((size_t)gates * HID, 0.3 + k);
        d[k].b_hh = owned[n_owned++] = filled((size_t)gates * HID, 0.4 + k);
        if (d[k].proj_size) d[k].w_hr = owned[n_owned++] = filled((size_t)PROJ * HID, 0.5);
        d[k].act[0][0].kind = cell == RNNF_CELL_RNN ? RNNF_ACT_TANH : RNNF_ACT_SIGMOID;
        d[k].act[0][1].kind = RNNF_ACT_TANH;
        d[k].act[0][2].kind = RNNF_ACT_TANH;
        d[k].linear_before_reset = cell == RNNF_CELL_GRU && k == 1;
    }
    rnnf_model *model = NULL;
    rnnf_state *state = NULL;
    long at_create = allocations;
    if (rnnf_model_create(d, 2, &model) != RNNF_OK || rnnf_state_create(model, BATCH, &state) != RNNF_OK) {
        fprintf(stderr, "FAIL: cannot build the model for cell %d\n", cell);
        return 1;
    }
    at_create = allocations - at_create;
    float *x = filled((size_t)BATCH * IN, 0.6), *y = __real_malloc((size_t)BATCH * HID * sizeof(float));
    int failed = 0;
    long before = allocations;
    for (int t = 0; t < STEPS && !failed; t++) {
        x[t % (BATCH * IN)] += 0.01f;
        failed = rnnf_step(model, state, x, y, n_threads) != RNNF_OK;
    }
    long during = allocations - before;
    /* create_allocations > 0 shows the counters see the library's allocations at all */
    printf("cell %d proj %d threads %d create_allocations %ld steps %d allocations %ld status %s\n", cell, proj,
           n_threads, at_create, STEPS, during, failed ? "error" : "ok");
    rnnf_state_free(state);
    rnnf_model_free(model);
    for (int i = 0; i < n_owned; i++) free(owned[i]);
    free(x);
    free(y);
    return failed;
}

int main(void)
{
    int failed = 0;
    for (int threads = 1; threads <= 2; threads++) {
        failed |= run_case(RNNF_CELL_RNN, 0, threads);
        failed |= run_case(RNNF_CELL_GRU, 0, threads);
        failed |= run_case(RNNF_CELL_LSTM, 0, threads);
        failed |= run_case(RNNF_CELL_LSTM, 1, threads);
    }
    return failed;
}
