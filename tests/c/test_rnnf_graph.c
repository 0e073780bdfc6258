/* test_rnnf_graph.c: .rnnf 2 graphs in the C library with no Python, driven by tests/test_c_rnnf_graph.py, which
 * converts ONNX fixtures with `rnnfast convert` and compares what this program writes with onnxruntime's outputs.
 * Tensors travel as raw files: int64 rank, int64 dims[rank], then the elements (little-endian, the graph's dtype).
 *
 *   test_rnnf_graph run FILE DIR        read DIR/in<k>.bin for every graph input, load FILE from the path and from a
 *       buffer, run both (1 and 2 threads: the same bits), write DIR/out<k>.bin; print the inputs' and outputs'
 *       names, shapes and the state loops.
 *   test_rnnf_graph stream FILE DIR N   step N times on DIR/step<t>_in<k>.bin (the inputs that are not states),
 *       write DIR/step<t>_out<k>.bin; count allocations from the second step on (must be 0: linked with
 *       -Wl,--wrap=malloc,...); reset and require the first step's bits again.
 *   test_rnnf_graph check FILE...       print "<status> <message>" per file (a .rnnf 1 file goes to the pipeline
 *       loader, as rnnfast.load does); a graph that loads is run once on small zero inputs.
 * Exit status 0 when every check passed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnnfast/rnnf.h"
#include "check.h"
#include "count_allocations.h"

static const size_t ITEM[] = {4, 8, 4, 1, 1}; /* rnnf_dtype sizes */

static size_t nbytes(const rnnf_tensor *t)
{
    size_t n = ITEM[t->dtype];
    for (int a = 0; a < t->rank; a++) n *= (size_t)t->dims[a];
    return n;
}

static int read_tensor(const char *path, int dtype, rnnf_tensor *t)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    int64_t rank = 0;
    int ok = fread(&rank, 8, 1, f) == 1 && rank >= 0 && rank <= RNNF_G_MAX_RANK;
    t->dtype = dtype;
    t->rank = (int)rank;
    for (int a = 0; ok && a < t->rank; a++) ok = fread(&t->dims[a], 8, 1, f) == 1 && t->dims[a] >= 0;
    t->data = ok ? malloc(nbytes(t) + 1) : NULL;
    ok = ok && t->data && fread(t->data, 1, nbytes(t), f) == nbytes(t);
    fclose(f);
    return ok;
}

static void write_tensor(const char *path, const rnnf_tensor *t)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "open an output file");
    if (!f) return;
    int64_t rank = t->rank;
    fwrite(&rank, 8, 1, f);
    fwrite(t->dims, 8, (size_t)t->rank, f);
    fwrite(t->data, 1, nbytes(t), f);
    fclose(f);
}

static void print_io(const rnnf_graph *g)
{
    rnnf_graph_io_info info;
    for (int i = 0; i < rnnf_graph_n_inputs(g); i++) {
        CHECK(rnnf_graph_input_info(g, i, &info) == RNNF_OK, "input info");
        printf("input %s %s dtype %d rank %d\n", info.name, info.shape, info.dtype, info.rank);
        if (rnnf_graph_input_default(g, i) != RNNF_INPUT_REQUIRED)
            printf("optional %s %s\n", info.name, rnnf_graph_input_default(g, i) == RNNF_INPUT_ZEROS ? "zeros" :
                   "constant");
    }
    CHECK(rnnf_graph_input_default(g, -1) == RNNF_INPUT_REQUIRED, "no default out of range");
    for (int i = 0; i < rnnf_graph_n_outputs(g); i++) {
        CHECK(rnnf_graph_output_info(g, i, &info) == RNNF_OK, "output info");
        printf("output %s %s dtype %d rank %d\n", info.name, info.shape, info.dtype, info.rank);
    }
    CHECK(rnnf_graph_input_info(g, rnnf_graph_n_inputs(g), &info) == RNNF_ERR_ARG, "input index out of range");
    for (int k = 0; k < rnnf_graph_n_state_loops(g); k++) {
        int i = -1, o = -1;
        CHECK(rnnf_graph_state_loop(g, k, &i, &o) == RNNF_OK, "state loop");
        printf("loop %d %d\n", i, o);
    }
    printf("source %s\n", rnnf_graph_source(g));
}

/* Outputs of one run: prepare for the inputs' shapes, allocate, run. */
static rnnf_status run_once(const rnnf_graph *g, const rnnf_tensor *in, rnnf_tensor *out, int n_threads)
{
    rnnf_graph_state *st = NULL;
    rnnf_error err;
    rnnf_status s = rnnf_graph_state_create(g, &st);
    if (s == RNNF_OK) s = rnnf_graph_prepare(st, in, out, &err);
    for (int i = 0; s == RNNF_OK && i < rnnf_graph_n_outputs(g); i++) out[i].data = calloc(nbytes(&out[i]) + 1, 1);
    if (s != RNNF_OK)
        for (int i = 0; i < rnnf_graph_n_outputs(g); i++) out[i].data = NULL;
    if (s == RNNF_OK) s = rnnf_graph_run(st, in, out, n_threads, &err);
    if (s != RNNF_OK) {
        fprintf(stderr, "run: %s: %s\n", rnnf_status_str(s), err.message);
        for (int i = 0; i < rnnf_graph_n_outputs(g); i++) free(out[i].data);
    }
    rnnf_graph_state_free(st);
    return s;
}

static int run_mode(const char *path, const char *dir)
{
    rnnf_error err;
    rnnf_graph *g = NULL, *gb = NULL;
    rnnf_status s = rnnf_graph_load_file(path, &g, &err);
    if (s != RNNF_OK) {
        fprintf(stderr, "load: %s: %s\n", rnnf_status_str(s), err.message);
        return 1;
    }
    CHECK(err.message[0] == 0, "no message after success");
    size_t size = 0;
    void *file = read_all(path, &size);
    CHECK(file && rnnf_graph_load_buffer(file, size, &gb, &err) == RNNF_OK, "load from a buffer");
    free(file);
    print_io(g);
    const int n_in = rnnf_graph_n_inputs(g), n_out = rnnf_graph_n_outputs(g);
    rnnf_tensor in[16], out[16], out2[16];
    char name[4096];
    for (int i = 0; i < n_in; i++) {
        rnnf_graph_io_info info;
        rnnf_graph_input_info(g, i, &info);
        snprintf(name, sizeof name, "%s/in%d.bin", dir, i);
        FILE *given = fopen(name, "rb");
        if (given) fclose(given);
        if (!given && rnnf_graph_input_default(g, i) != RNNF_INPUT_REQUIRED) { /* left out: its default */
            memset(&in[i], 0, sizeof in[i]);
            in[i].dtype = RNNF_DT_NONE;
            continue;
        }
        CHECK(read_tensor(name, info.dtype, &in[i]), "read an input");
    }
    if (run_once(g, in, out, 1) == RNNF_OK && gb && run_once(gb, in, out2, 2) == RNNF_OK) {
        for (int i = 0; i < n_out; i++) {
            CHECK(memcmp(out[i].data, out2[i].data, nbytes(&out[i])) == 0,
                  "file and buffer, 1 and 2 threads give the same bits");
            snprintf(name, sizeof name, "%s/out%d.bin", dir, i);
            write_tensor(name, &out[i]);
            free(out[i].data);
            free(out2[i].data);
        }
    } else {
        failures++;
    }
    for (int i = 0; i < n_in; i++) free(in[i].data);
    rnnf_graph_free(g);
    rnnf_graph_free(gb);
    printf("run: %d failed\n", failures);
    return failures != 0;
}

static int stream_mode(const char *path, const char *dir, int n_steps)
{
    rnnf_error err;
    rnnf_graph *g = NULL;
    rnnf_graph_stream *s = NULL;
    if (rnnf_graph_load_file(path, &g, &err) != RNNF_OK) {
        fprintf(stderr, "load: %s\n", err.message);
        return 1;
    }
    rnnf_tensor in0[16];
    char name[4096];
    const int n_graph_in = rnnf_graph_n_inputs(g);
    int dtypes[16], n = 0;
    for (int i = 0; i < n_graph_in; i++) {
        int is_state = 0;
        for (int k = 0; k < rnnf_graph_n_state_loops(g); k++) {
            int li;
            rnnf_graph_state_loop(g, k, &li, NULL);
            is_state |= li == i;
        }
        rnnf_graph_io_info info;
        rnnf_graph_input_info(g, i, &info);
        if (!is_state) dtypes[n++] = info.dtype;
    }
    for (int k = 0; k < n; k++) {
        snprintf(name, sizeof name, "%s/step0_in%d.bin", dir, k);
        CHECK(read_tensor(name, dtypes[k], &in0[k]), "read the first step's inputs");
    }
    rnnf_status st = rnnf_graph_stream_create(g, in0[0].rank ? in0[0].dims[0] : 1, &s, &err);
    if (st != RNNF_OK) {
        fprintf(stderr, "stream: %s: %s\n", rnnf_status_str(st), err.message);
        return 1;
    }
    CHECK(rnnf_graph_stream_n_inputs(s) == n, "step inputs: the graph inputs that are not states");
    const int n_out = rnnf_graph_stream_n_outputs(s);
    rnnf_tensor in[16], out[16], first[16];
    CHECK(rnnf_graph_stream_prepare(s, in0, out, &err) == RNNF_OK, "prepare");
    for (int k = 0; k < n_out; k++) {
        out[k].data = malloc(nbytes(&out[k]) + 1);
        first[k] = out[k];
        first[k].data = malloc(nbytes(&out[k]) + 1);
    }
    long in_steps = 0; /* allocations inside the steps after the first (reading and writing files allocate too) */
    for (int t = 0; t < n_steps; t++) {
        for (int k = 0; k < n; k++) {
            snprintf(name, sizeof name, "%s/step%d_in%d.bin", dir, t, k);
            CHECK(read_tensor(name, dtypes[k], &in[k]), "read a step's inputs");
        }
        const long before = allocations;
        st = rnnf_graph_stream_step(s, in, out, 1, &err);
        if (t) in_steps += allocations - before;
        if (t == n_steps - 1) printf("allocations from step 1 on: %ld\n", in_steps);
        CHECK(st == RNNF_OK, "step");
        if (st != RNNF_OK) fprintf(stderr, "step %d: %s\n", t, err.message);
        for (int k = 0; k < n_out; k++) {
            snprintf(name, sizeof name, "%s/step%d_out%d.bin", dir, t, k);
            write_tensor(name, &out[k]);
            if (t == 0) memcpy(first[k].data, out[k].data, nbytes(&out[k]));
        }
        for (int k = 0; k < n; k++) free(in[k].data);
    }
    CHECK(rnnf_graph_stream_reset(s) == RNNF_OK, "reset");
    CHECK(rnnf_graph_stream_step(s, in0, out, 2, &err) == RNNF_OK, "the first step again, on 2 threads");
    for (int k = 0; k < n_out; k++) {
        CHECK(memcmp(first[k].data, out[k].data, nbytes(&out[k])) == 0, "after reset: the first step's bits");
        free(out[k].data);
        free(first[k].data);
    }
    rnnf_tensor state;
    CHECK(rnnf_graph_stream_state(s, 0, &state) == RNNF_OK && state.data, "state 0");
    CHECK(rnnf_graph_stream_state(s, rnnf_graph_n_state_loops(g), &state) == RNNF_ERR_ARG, "state out of range");
    for (int k = 0; k < n; k++) free(in0[k].data);
    rnnf_graph_stream_free(s);
    rnnf_graph_free(g);
    printf("stream: %d failed\n", failures);
    return failures != 0;
}

/* Zero inputs with every symbolic dim 2: a graph that loads must run or refuse by status, never crash. */
static void run_briefly(const rnnf_graph *g)
{
    rnnf_tensor in[16], out[16];
    const int n_in = rnnf_graph_n_inputs(g);
    if (n_in > 16 || rnnf_graph_n_outputs(g) > 16) return;
    for (int i = 0; i < n_in; i++) {
        rnnf_graph_io_info info;
        rnnf_graph_input_info(g, i, &info);
        in[i].dtype = info.dtype;
        in[i].rank = info.rank;
        size_t n = ITEM[info.dtype];
        for (int a = 0; a < info.rank; a++) {
            in[i].dims[a] = info.dims[a] < 0 ? 2 : info.dims[a];
            n = in[i].dims[a] > (1 << 24) || n > (1 << 24) ? (size_t)1 << 30 : n * (size_t)in[i].dims[a];
        }
        in[i].data = n < (1 << 24) ? calloc(n + 1, 1) : NULL;
        if (!in[i].data) { /* a damaged fixed size: no input to run on */
            for (int k = 0; k < i; k++) free(in[k].data);
            return;
        }
    }
    if (run_once(g, in, out, 1) == RNNF_OK)
        for (int i = 0; i < rnnf_graph_n_outputs(g); i++) free(out[i].data);
    for (int i = 0; i < n_in; i++) free(in[i].data);
}

/* The file's format major version (bytes 4-5), or -1: only a version 1 file goes to the pipeline loader; a version 2
 * file with an op form the executor does not take is RNNF_ERR_UNSUPPORTED from the graph loader itself. */
static int major_version(const char *path)
{
    unsigned char head[6];
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    const size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    return got == sizeof head ? head[4] | head[5] << 8 : -1;
}

static int check_mode(int n, char **paths)
{
    for (int i = 0; i < n; i++) {
        rnnf_error err;
        rnnf_graph *g = NULL;
        rnnf_status s = rnnf_graph_load_file(paths[i], &g, &err);
        if (s == RNNF_ERR_UNSUPPORTED && major_version(paths[i]) == 1) { /* the pipeline loader's verdict */
            rnnf_pipeline *p = NULL;
            s = rnnf_pipeline_load_file(paths[i], &p, &err);
            rnnf_pipeline_free(p);
        }
        CHECK((s == RNNF_OK) == (g != NULL) || s == RNNF_OK, "a graph exactly on success");
        CHECK(s == RNNF_OK || strncmp(err.message, paths[i], strlen(paths[i])) == 0, "the message names the file");
        printf("%d %s\n", (int)s, err.message);
        if (g) run_briefly(g);
        rnnf_graph_free(g);
    }
    return failures != 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "run") == 0) return run_mode(argv[2], argv[3]);
    if (argc == 5 && strcmp(argv[1], "stream") == 0) return stream_mode(argv[2], argv[3], atoi(argv[4]));
    if (argc >= 2 && strcmp(argv[1], "check") == 0) return check_mode(argc - 2, argv + 2);
    fprintf(stderr, "usage: test_rnnf_graph run FILE DIR | stream FILE DIR N | check FILE...\n");
    return 2;
}
