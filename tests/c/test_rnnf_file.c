/* test_rnnf_file.c: .rnnf files in the C library, driven by tests/test_c_rnnf.py, which writes the files with
 * Python and compares what this program writes with rnnfast's own outputs (tolerances live in Python).
 *
 *   test_rnnf_file run FILE INPUT T B OUTPUT   load FILE (from the path and from a buffer), run INPUT (the
 *       pipeline's own layout: int32 ids or float32) and write the float32 output to OUTPUT; when the pipeline
 *       can step, step through the same input and require the bits of the run at every step.
 *   test_rnnf_file check FILE...               print "<status> <message>" per file; a file that loads is run.
 *   test_rnnf_file errors PIPELINE BIDI STACK  status codes of the API on bad arguments and unsupported uses.
 * Exit status 0 when every check passed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnnfast/rnnf.h"
#include "check.h"

/* Step t's input of one row out of the run's input, in the pipeline's layout. */
static const void *row_at(const rnnf_pipeline_info *info, const void *input, int T, int B, int t, int b)
{
    size_t w = info->takes_ids ? 1 : (size_t)info->input_size;
    size_t index = info->batch_first ? (size_t)b * T + t : (size_t)t * B + b;
    return (const char *)input + index * w * 4;
}

static int run_mode(const char *path, const char *input_path, int T, int B, const char *out_path)
{
    rnnf_error err;
    rnnf_pipeline *p = NULL, *pb = NULL;
    rnnf_status s = rnnf_pipeline_load_file(path, &p, &err);
    if (s != RNNF_OK) {
        fprintf(stderr, "load: %s: %s\n", rnnf_status_str(s), err.message);
        return 1;
    }
    CHECK(err.message[0] == '\0', "no message after success");
    size_t size = 0, in_size = 0;
    void *file = read_all(path, &size);
    void *input = read_all(input_path, &in_size);
    CHECK(file && input, "read the files");
    CHECK(rnnf_pipeline_load_buffer(file, size, &pb, &err) == RNNF_OK, "load from a buffer");
    rnnf_pipeline_info info;
    CHECK(rnnf_pipeline_get_info(p, &info) == RNNF_OK, "info");
    size_t in_count = (size_t)T * B * (info.takes_ids ? 1 : (size_t)info.input_size);
    CHECK(in_size == in_count * 4, "input size");
    size_t out_count = (info.returns_sequence ? (size_t)T * B : (size_t)B) * (size_t)info.output_size;
    float *y = calloc(out_count, sizeof(float)), *y2 = calloc(out_count, sizeof(float));
    rnnf_pipeline_state *st = NULL, *st2 = NULL;
    CHECK(rnnf_pipeline_state_create(p, B, &st) == RNNF_OK, "state");
    CHECK(rnnf_pipeline_state_create(pb, B, &st2) == RNNF_OK, "state of the buffer's pipeline");
    const float *x = info.takes_ids ? NULL : input;
    const int32_t *ids = info.takes_ids ? input : NULL;
    CHECK(rnnf_pipeline_run(p, st, T, x, ids, y, 1) == RNNF_OK, "run");
    CHECK(rnnf_pipeline_run(pb, st2, T, x, ids, y2, 2) == RNNF_OK, "run the buffer's pipeline on 2 threads");
    CHECK(memcmp(y, y2, out_count * sizeof(float)) == 0, "file and buffer, 1 and 2 threads give the same bits");

    if (info.can_step) {
        const size_t O = (size_t)info.output_size, w = info.takes_ids ? 1 : (size_t)info.input_size;
        char *xt = malloc((size_t)B * w * 4);
        float *yt = malloc((size_t)B * O * sizeof(float));
        int same = 1;
        CHECK(rnnf_pipeline_state_reset(st) == RNNF_OK, "reset");
        for (int t = 0; t < T; t++) {
            for (int b = 0; b < B; b++) memcpy(xt + (size_t)b * w * 4, row_at(&info, input, T, B, t, b), w * 4);
            CHECK(rnnf_pipeline_step(p, st, info.takes_ids ? NULL : (const float *)xt,
                                     info.takes_ids ? (const int32_t *)xt : NULL, yt, 1) == RNNF_OK, "step");
            for (int b = 0; b < B && info.returns_sequence; b++) {
                size_t row = info.batch_first ? (size_t)b * T + t : (size_t)t * B + b;
                same &= memcmp(yt + (size_t)b * O, y + row * O, O * sizeof(float)) == 0;
            }
        }
        if (!info.returns_sequence) same = memcmp(yt, y, (size_t)B * O * sizeof(float)) == 0;
        CHECK(same, "stepping gives the bits of the run");
        free(xt);
        free(yt);
    }
    FILE *f = fopen(out_path, "wb");
    CHECK(f && fwrite(y, sizeof(float), out_count, f) == out_count, "write the output");
    if (f) fclose(f);
    rnnf_pipeline_state_free(st);
    rnnf_pipeline_state_free(st2);
    rnnf_pipeline_free(p);
    rnnf_pipeline_free(pb);
    free(y);
    free(y2);
    free(file);
    free(input);
    printf("run: %d failed\n", failures);
    return failures != 0;
}

/* A file that loads is also run a few steps, so damage that passes the checks is exercised too. */
static void run_briefly(const rnnf_pipeline *p)
{
    rnnf_pipeline_info info;
    rnnf_pipeline_state *st = NULL;
    enum { T = 3, B = 2 };
    rnnf_pipeline_get_info(p, &info);
    if (rnnf_pipeline_state_create(p, B, &st) != RNNF_OK) return;
    size_t n_in = (size_t)T * B * (info.takes_ids ? 1 : (size_t)info.input_size);
    float *x = calloc(n_in, sizeof(float));
    int32_t *ids = calloc(n_in, sizeof(int32_t));
    float *y = calloc((size_t)T * B * (size_t)info.output_size, sizeof(float));
    for (size_t i = 0; i < n_in; i++) {
        x[i] = (float)i * 0.1f;
        ids[i] = (int32_t)(i % (size_t)(info.vocab_size > 0 ? info.vocab_size : 1));
    }
    CHECK(rnnf_pipeline_run(p, st, T, info.takes_ids ? NULL : x, info.takes_ids ? ids : NULL, y, 1) == RNNF_OK,
          "a loaded file runs");
    rnnf_pipeline_state_free(st);
    free(x);
    free(ids);
    free(y);
}

static int check_mode(int n, char **paths)
{
    for (int i = 0; i < n; i++) {
        rnnf_error err;
        rnnf_pipeline *p = NULL;
        rnnf_status s = rnnf_pipeline_load_file(paths[i], &p, &err);
        CHECK((s == RNNF_OK) == (p != NULL), "a pipeline exactly on success");
        CHECK(s == RNNF_OK || strncmp(err.message, paths[i], strlen(paths[i])) == 0, "the message names the file");
        printf("%d %s\n", (int)s, err.message);
        if (p) run_briefly(p);
        rnnf_pipeline_free(p);
    }
    return failures != 0;
}

static int errors_mode(const char *pipeline_path, const char *bidi_path, const char *stack_path)
{
    rnnf_error err;
    rnnf_pipeline *p = NULL, *bidi = NULL;
    rnnf_model *m = (rnnf_model *)&err; /* any non-NULL value: loaders must reset *out */
    CHECK(rnnf_status_str(RNNF_ERR_IO) != NULL && strcmp(rnnf_status_str(RNNF_ERR_IO), "unknown status") != 0,
          "status string");
    CHECK(rnnf_model_load_file("/nonexistent/x.rnnf", &m, &err) == RNNF_ERR_IO && m == NULL, "missing file");
    CHECK(strstr(err.message, "/nonexistent/x.rnnf") != NULL, "missing file named");
    CHECK(rnnf_model_load_file(NULL, &m, &err) == RNNF_ERR_ARG, "null path");
    CHECK(rnnf_model_load_file(stack_path, NULL, NULL) == RNNF_ERR_ARG, "null out");
    CHECK(rnnf_pipeline_load_buffer(NULL, 10, &p, &err) == RNNF_ERR_ARG, "null buffer");
    CHECK(rnnf_pipeline_load_buffer("RNNF", 4, &p, NULL) == RNNF_ERR_FORMAT, "short buffer, no error struct");
    CHECK(rnnf_pipeline_load_buffer("RNNF", 4, &p, &err) == RNNF_ERR_FORMAT && strstr(err.message, "<buffer>: header"),
          "short buffer named");
    CHECK(rnnf_model_load_file(pipeline_path, &m, &err) == RNNF_ERR_UNSUPPORTED && m == NULL,
          "model loader refuses a pipeline with other stages");
    CHECK(strstr(err.message, "rnnf_pipeline_load") != NULL, "and says what to use");

    /* A single recurrent stage loads as a plain model too, and runs as the pipeline does. */
    rnnf_pipeline *sp = NULL;
    CHECK(rnnf_model_load_file(stack_path, &m, &err) == RNNF_OK && m, "model loader");
    CHECK(rnnf_pipeline_load_file(stack_path, &sp, &err) == RNNF_OK, "single stage as a pipeline");
    if (m && sp) {
        rnnf_pipeline_info info;
        rnnf_pipeline_get_info(sp, &info);
        enum { T = 4, B = 2 };
        int in = 0, out = 0, n_dirs = 0;
        int n_layers = rnnf_model_n_layers(m);
        rnnf_model_layer_info(m, 0, NULL, NULL, &in, NULL, NULL);
        rnnf_model_layer_info(m, n_layers - 1, NULL, &n_dirs, NULL, NULL, &out);
        CHECK(in == info.input_size && n_dirs * out == info.output_size && info.returns_sequence && !info.batch_first,
              "sizes agree");
        float *x = malloc(sizeof(float) * T * B * in), *y1 = malloc(sizeof(float) * T * B * n_dirs * out);
        float *y2 = malloc(sizeof(float) * T * B * n_dirs * out);
        for (int i = 0; i < T * B * in; i++) x[i] = (float)(i % 7) * 0.25f - 0.7f;
        rnnf_state *st = NULL;
        rnnf_pipeline_state *ps = NULL;
        rnnf_state_create(m, B, &st);
        rnnf_pipeline_state_create(sp, B, &ps);
        rnnf_run_args a;
        memset(&a, 0, sizeof a);
        a.seq_len = T;
        a.batch = B;
        a.x = x;
        a.y = y1;
        a.y_layout = RNNF_Y_SEQ_BATCH_DIR;
        a.n_threads = 1;
        CHECK(rnnf_run(m, st, &a) == RNNF_OK, "run the loaded model");
        CHECK(rnnf_pipeline_run(sp, ps, T, x, NULL, y2, 1) == RNNF_OK, "run the pipeline");
        CHECK(memcmp(y1, y2, sizeof(float) * T * B * n_dirs * out) == 0, "model and pipeline agree");
        int32_t ids[T * B] = {0};
        CHECK(rnnf_pipeline_run(sp, ps, T, NULL, ids, y2, 1) == RNNF_ERR_ARG, "ids given to a float pipeline");
        CHECK(rnnf_pipeline_run(sp, ps, 0, x, NULL, y2, 1) == RNNF_ERR_ARG, "seq_len 0");
        CHECK(rnnf_pipeline_run(sp, ps, T, x, NULL, NULL, 1) == RNNF_ERR_ARG, "null y");
        CHECK(rnnf_pipeline_step(sp, NULL, x, NULL, y2, 1) == RNNF_ERR_ARG, "null state");
        rnnf_state_free(st);
        rnnf_pipeline_state_free(ps);
        free(x);
        free(y1);
        free(y2);
    }
    rnnf_model_free(m);
    rnnf_pipeline_free(sp);

    /* The embedding pipeline: ids out of range, floats where ids belong, another pipeline's state. */
    CHECK(rnnf_pipeline_load_file(pipeline_path, &p, &err) == RNNF_OK, "pipeline");
    CHECK(rnnf_pipeline_load_file(bidi_path, &bidi, &err) == RNNF_OK, "bidirectional pipeline");
    if (p && bidi) {
        rnnf_pipeline_info info, binfo;
        rnnf_pipeline_get_info(p, &info);
        rnnf_pipeline_get_info(bidi, &binfo);
        CHECK(info.takes_ids && info.vocab_size > 1 && info.can_step, "embedding pipeline info");
        CHECK(!binfo.can_step, "bidirectional cannot step");
        rnnf_pipeline_state *st = NULL, *bst = NULL;
        CHECK(rnnf_pipeline_state_create(p, 0, &st) == RNNF_ERR_ARG, "batch 0");
        CHECK(rnnf_pipeline_state_create(NULL, 1, &st) == RNNF_ERR_ARG, "null pipeline");
        CHECK(rnnf_pipeline_state_create(p, 2, &st) == RNNF_OK, "state");
        CHECK(rnnf_pipeline_state_create(bidi, 2, &bst) == RNNF_OK, "bidirectional state");
        int32_t ids[2] = {1, info.vocab_size};
        float x[2 * 64] = {0}, y[2 * 4096];
        CHECK(binfo.input_size <= 64 && info.output_size <= 4096 && binfo.output_size <= 4096, "sizes fit the test");
        CHECK(rnnf_pipeline_step(p, st, NULL, ids, y, 1) == RNNF_ERR_ARG, "id out of range");
        ids[1] = -1;
        CHECK(rnnf_pipeline_run(p, st, 1, NULL, ids, y, 1) == RNNF_ERR_ARG, "negative id");
        ids[1] = 0;
        CHECK(rnnf_pipeline_run(p, st, 1, x, NULL, y, 1) == RNNF_ERR_ARG, "floats to an embedding");
        CHECK(rnnf_pipeline_run(p, st, 1, NULL, ids, y, 1) == RNNF_OK, "ids in range");
        CHECK(rnnf_pipeline_run(bidi, st, 1, x, NULL, y, 1) == RNNF_ERR_ARG, "another pipeline's state");
        CHECK(rnnf_pipeline_step(bidi, bst, x, NULL, y, 1) == RNNF_ERR_UNSUPPORTED, "bidirectional step refused");
        CHECK(rnnf_pipeline_run(bidi, bst, 1, x, NULL, y, 1) == RNNF_OK, "bidirectional run");
        CHECK(rnnf_pipeline_get_info(p, NULL) == RNNF_ERR_ARG, "null info");
        CHECK(rnnf_pipeline_state_reset(NULL) == RNNF_ERR_ARG, "null reset");
        rnnf_pipeline_state_free(st);
        rnnf_pipeline_state_free(bst);
    }
    rnnf_pipeline_free(p);
    rnnf_pipeline_free(bidi);
    rnnf_pipeline_free(NULL);
    rnnf_pipeline_state_free(NULL);
    printf("errors: %d failed\n", failures);
    return failures != 0;
}

int main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "run") == 0) return run_mode(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]), argv[6]);
    if (argc >= 2 && strcmp(argv[1], "check") == 0) return check_mode(argc - 2, argv + 2);
    if (argc == 5 && strcmp(argv[1], "errors") == 0) return errors_mode(argv[2], argv[3], argv[4]);
    fprintf(stderr, "usage: test_rnnf_file run FILE INPUT T B OUTPUT | check FILE... | errors PIPELINE BIDI STACK\n");
    return 2;
}
