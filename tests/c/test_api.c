/* test_api.c: the C API without Python. Checks status codes on bad input, that stepping equals running,
 * that 1 and 2 threads give the same bits, and prints one run's outputs so the pytest driver
 * (tests/test_c_library.py) can compare them with the float64 reference on the same weights.
 * Weights are w[i] = 0.5*sin(0.37*i + seed), the same formula the driver uses. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnnfast/rnnf.h"
#include "check.h"

static float *filled(size_t n, double seed)
{
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = (float)(0.5 * sin(0.37 * (double)i + seed));
    return p;
}

enum { T = 6, B = 2, I = 3, H = 5 };

static rnnf_layer_desc lstm_desc(float *w_ih, float *w_hh, float *b_ih, float *b_hh, int n_dirs)
{
    rnnf_layer_desc d;
    memset(&d, 0, sizeof(d));
    d.cell = RNNF_CELL_LSTM;
    d.n_dirs = n_dirs;
    d.input_size = I;
    d.hidden_size = H;
    d.w_ih = w_ih;
    d.w_hh = w_hh;
    d.b_ih = b_ih;
    d.b_hh = b_hh;
    for (int dir = 0; dir < 2; dir++) {
        d.act[dir][0].kind = RNNF_ACT_SIGMOID;
        d.act[dir][1].kind = RNNF_ACT_TANH;
        d.act[dir][2].kind = RNNF_ACT_TANH;
    }
    return d;
}

int main(void)
{
    float *w_ih = filled(2 * 4 * H * I, 0.1), *w_hh = filled(2 * 4 * H * H, 0.2);
    float *b_ih = filled(2 * 4 * H, 0.3), *b_hh = filled(2 * 4 * H, 0.4), *x = filled(T * B * I, 0.5);
    rnnf_layer_desc desc = lstm_desc(w_ih, w_hh, b_ih, b_hh, 1);
    rnnf_model *model = NULL;
    rnnf_state *state = NULL;

    for (int s = RNNF_OK; s <= RNNF_ERR_UNSUPPORTED; s++) CHECK(rnnf_status_str((rnnf_status)s) != NULL, "status string");
    CHECK(rnnf_model_create(NULL, 1, &model) == RNNF_ERR_ARG, "null layers");
    CHECK(rnnf_model_create(&desc, 1, NULL) == RNNF_ERR_ARG, "null out");
    rnnf_layer_desc bad = desc;
    bad.hidden_size = 0;
    CHECK(rnnf_model_create(&bad, 1, &model) == RNNF_ERR_SHAPE, "zero hidden");
    bad = desc;
    bad.act[0][1].kind = 99;
    CHECK(rnnf_model_create(&bad, 1, &model) == RNNF_ERR_ARG, "unknown activation");
    rnnf_layer_desc pair[2] = {desc, desc}; /* layer 2 takes 5 inputs, not 3 */
    CHECK(rnnf_model_create(pair, 2, &model) == RNNF_ERR_SHAPE, "stacked sizes");

    CHECK(rnnf_model_create(&desc, 1, &model) == RNNF_OK, "create");
    CHECK(rnnf_state_create(model, 0, &state) == RNNF_ERR_ARG, "batch 0");
    CHECK(rnnf_state_create(model, B, &state) == RNNF_OK, "state");

    float y1[T * B * H], y2[T * B * H], h1[B * H], h2[B * H], c1[B * H];
    float *yh1[1] = {h1}, *yc1[1] = {c1};
    rnnf_run_args args;
    memset(&args, 0, sizeof(args));
    args.seq_len = T;
    args.batch = B;
    args.x = x;
    args.y = y1;
    args.y_h = yh1;
    args.y_c = yc1;
    args.n_threads = 1;
    CHECK(rnnf_run(model, state, &args) == RNNF_OK, "run");
    args.batch = B + 1;
    CHECK(rnnf_run(model, state, &args) == RNNF_ERR_SHAPE, "batch mismatch");
    args.batch = B;
    int32_t lens[B] = {T + 1, 1};
    args.sequence_lens = lens;
    CHECK(rnnf_run(model, state, &args) == RNNF_ERR_ARG, "sequence_lens out of range");
    args.sequence_lens = NULL;
    CHECK(rnnf_run(NULL, state, &args) == RNNF_ERR_ARG, "null model");

    args.y = y2;
    float *yh2[1] = {h2};
    args.y_h = yh2;
    args.y_c = NULL;
    args.n_threads = 2;
    CHECK(rnnf_run(model, state, &args) == RNNF_OK, "run 2 threads");
    CHECK(memcmp(y1, y2, sizeof(y1)) == 0 && memcmp(h1, h2, sizeof(h1)) == 0, "1 and 2 threads differ");

    rnnf_state *stream = NULL;
    CHECK(rnnf_state_create(model, B, &stream) == RNNF_OK, "stream state");
    float step_out[B * H];
    for (int t = 0; t < T; t++) {
        CHECK(rnnf_step(model, stream, x + t * B * I, step_out, 1) == RNNF_OK, "step");
        CHECK(memcmp(step_out, y1 + t * B * H, sizeof(step_out)) == 0, "step differs from run");
    }
    CHECK(rnnf_state_reset(stream, NULL, 0) == RNNF_OK, "reset");
    int32_t bad_row = B;
    CHECK(rnnf_state_reset(stream, &bad_row, 1) == RNNF_ERR_ARG, "reset row out of range");

    rnnf_layer_desc bi = lstm_desc(w_ih, w_hh, b_ih, b_hh, 2);
    rnnf_model *bimodel = NULL;
    rnnf_state *bistate = NULL;
    CHECK(rnnf_model_create(&bi, 1, &bimodel) == RNNF_OK, "bidirectional");
    CHECK(rnnf_state_create(bimodel, B, &bistate) == RNNF_OK, "bidirectional state");
    CHECK(rnnf_step(bimodel, bistate, x, step_out, 1) == RNNF_ERR_UNSUPPORTED, "bidirectional step refused");

    for (int i = 0; i < T * B * H; i++) printf("y %.9g\n", y1[i]);
    for (int i = 0; i < B * H; i++) printf("c %.9g\n", c1[i]);

    rnnf_state_free(bistate);
    rnnf_model_free(bimodel);
    rnnf_state_free(stream);
    rnnf_state_free(state);
    rnnf_model_free(model);
    free(w_ih); free(w_hh); free(b_ih); free(b_hh); free(x);
    printf("%d passed, %d failed\n", failures ? 0 : 1, failures);
    return failures ? 1 : 0;
}
