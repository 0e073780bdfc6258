/* test_kernels.c: the selected kernel table on its own, for checking a table on a machine without Python (the
 * aarch64 build under qemu-user, tests/test_c_aarch64.py). Python writes the inputs and compares what this
 * program writes with float64 numpy; tolerances live in Python.
 *
 *   test_kernels isa                                print the compiled, supported and selected tables
 *   test_kernels act KIND ALPHA BETA IN OUT         y = act(x) over the float32 file IN, through the public API
 *   test_kernels gemm M K P SPLIT IN OUT            IN: A [M][K], packed B [P][K][16], bias [P*16] (float32);
 *       OUT: C = A*B + bias from two calls over panels [0, SPLIT) and [SPLIT, P), then C = A*B from one call.
 *       A and C are copied into wider rows so the leading dimensions differ from the widths.
 *   test_kernels gru F G CLIP N IN OUT              GRU (linear_before_reset = 1) gates of N rows of one 16-unit
 *       block, activations F and G (rnnf_act_kind), clip CLIP: IN holds gx [N][48], gh [N][48], h_prev [N][16] and
 *       active [N] (0 or 1) as float32; OUT: h_new [N][16] from the table's row kernel (rows at strides 48 and 16,
 *       as the blocks of one row are passed), then h_new from the block kernel row by row; rows not active keep
 *       the value 7 in both.
 * Exit status 0 when the arguments and files were usable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "rnnfast/rnnf.h"

static float *read_floats(const char *path, size_t count)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    float *buf = malloc((count ? count : 1) * sizeof(float));
    if (buf && fread(buf, sizeof(float), count, f) != count) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

static int write_floats(const char *path, const float *y, size_t count)
{
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(y, sizeof(float), count, f) == count;
    return fclose(f) == 0 && ok;
}

static int act_mode(char **argv)
{
    rnnf_activation act = {atoi(argv[0]), (float)atof(argv[1]), (float)atof(argv[2])};
    FILE *f = fopen(argv[3], "rb");
    if (!f) return 1;
    fseek(f, 0, SEEK_END);
    size_t n = (size_t)ftell(f) / sizeof(float);
    fclose(f);
    float *x = read_floats(argv[3], n), *y = malloc((n ? n : 1) * sizeof(float));
    int ok = x && y && rnnf_activation_apply(&act, x, y, (int)n) == RNNF_OK && write_floats(argv[4], y, n);
    free(x);
    free(y);
    return ok ? 0 : 1;
}

static int gemm_mode(char **argv)
{
    const int M = atoi(argv[0]), K = atoi(argv[1]), P = atoi(argv[2]), split = atoi(argv[3]);
    if (M < 1 || K < 1 || P < 1 || split < 0 || split > P) return 1;
    const int lda = K + 3, ldc = P * RNNF_UB + 5, N = P * RNNF_UB;
    const size_t in_count = (size_t)M * K + (size_t)P * K * RNNF_UB + (size_t)N;
    float *in = read_floats(argv[4], in_count);
    float *a = calloc((size_t)M * lda, sizeof(float));
    float *c = calloc((size_t)M * ldc, sizeof(float)), *out = malloc(2 * (size_t)M * N * sizeof(float));
    void *bp = NULL;
    /* packed weights are 64-byte aligned in the engine (model.c), and the kernels may rely on it */
    if (!in || !a || !c || !out || posix_memalign(&bp, 64, (size_t)P * K * RNNF_UB * sizeof(float)) != 0) return 1;
    for (int m = 0; m < M; m++) memcpy(a + (size_t)m * lda, in + (size_t)m * K, (size_t)K * sizeof(float));
    memcpy(bp, in + (size_t)M * K, (size_t)P * K * RNNF_UB * sizeof(float));
    const float *bias = in + (size_t)M * K + (size_t)P * K * RNNF_UB;
    const rnnf_kernels *k = rnnf_kernels_get();
    k->gemm_packed(M, K, a, lda, bp, 0, split, bias, c, ldc);
    k->gemm_packed(M, K, a, lda, bp, split, P, bias, c, ldc);
    for (int m = 0; m < M; m++) memcpy(out + (size_t)m * N, c + (size_t)m * ldc, (size_t)N * sizeof(float));
    k->gemm_packed(M, K, a, lda, bp, 0, P, NULL, c, ldc);
    for (int m = 0; m < M; m++)
        memcpy(out + (size_t)(M + m) * N, c + (size_t)m * ldc, (size_t)N * sizeof(float));
    int ok = write_floats(argv[5], out, 2 * (size_t)M * N);
    free(in);
    free(a);
    free(c);
    free(out);
    free(bp);
    return ok ? 0 : 1;
}

static int gru_mode(char **argv)
{
    const rnnf_activation f = {atoi(argv[0]), 0.2f, 0.5f}, g = {atoi(argv[1]), 0.2f, 0.5f}, h = {RNNF_ACT_TANH, 0, 0};
    const rnnf_gate_params gp = {f, g, h, (float)atof(argv[2]), 0};
    const int N = atoi(argv[3]), W = 3 * RNNF_UB;
    if (N < 1 || N > 4096) return 1;
    float *in = read_floats(argv[4], (size_t)N * (2 * W + RNNF_UB + 1));
    float *out = malloc(2 * (size_t)N * RNNF_UB * sizeof(float));
    uint8_t *active = malloc((size_t)N);
    if (!in || !out || !active) return 1;
    const float *gx = in, *gh = in + (size_t)N * W, *hp = gh + (size_t)N * W, *act = hp + (size_t)N * RNNF_UB;
    for (int b = 0; b < N; b++) active[b] = act[b] != 0.0f;
    for (size_t i = 0; i < 2 * (size_t)N * RNNF_UB; i++) out[i] = 7.0f;
    const rnnf_kernels *k = rnnf_kernels_get();
    float *rows = out, *blocks = out + (size_t)N * RNNF_UB;
    for (int b = 0; b < N; b++)
        if (active[b])
            k->gru_lbr_block(gx + (size_t)b * W, gh + (size_t)b * W, hp + b * RNNF_UB, blocks + b * RNNF_UB, &gp);
    if (k->gru_lbr_rows)
        k->gru_lbr_rows(N, active, gx, gh, W, hp, rows, RNNF_UB, &gp);
    else /* the table has no row kernel (ref, neon): the engine loops over the block kernel, so do that */
        memcpy(rows, blocks, (size_t)N * RNNF_UB * sizeof(float));
    int ok = write_floats(argv[5], out, 2 * (size_t)N * RNNF_UB);
    free(in);
    free(out);
    free(active);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "isa") == 0) {
        printf("compiled %s\nsupported %s\nselected %s\n", rnnf_isa_compiled(), rnnf_isa_supported(),
               rnnf_isa_selected());
        return 0;
    }
    if (argc == 7 && strcmp(argv[1], "act") == 0) return act_mode(argv + 2);
    if (argc == 8 && strcmp(argv[1], "gemm") == 0) return gemm_mode(argv + 2);
    if (argc == 8 && strcmp(argv[1], "gru") == 0) return gru_mode(argv + 2);
    fprintf(stderr, "usage: test_kernels isa | act KIND ALPHA BETA IN OUT | gemm M K P SPLIT IN OUT | "
            "gru F G CLIP N IN OUT\n");
    return 2;
}
