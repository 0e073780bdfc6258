/* api.c: the rnnf_* entry points that take user input: argument checks, state set-up and read-back.
 *
 * Everything here validates before touching memory, and reports problems as status codes; the driver
 * (recurrent.c) and kernels assume valid arguments.
 */
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"

const char *rnnf_status_str(rnnf_status s)
{
    switch (s) {
    case RNNF_OK: return "ok";
    case RNNF_ERR_ARG: return "invalid argument";
    case RNNF_ERR_SHAPE: return "shape mismatch";
    case RNNF_ERR_NOMEM: return "out of memory";
    case RNNF_ERR_FORMAT: return "malformed model file";
    case RNNF_ERR_ISA: return "instruction set not available";
    case RNNF_ERR_UNSUPPORTED: return "not supported";
    case RNNF_ERR_IO: return "cannot read the file";
    case RNNF_HOST: return "paused at a node the caller runs";
    }
    return "unknown status";
}

int rnnf_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

#ifdef _OPENMP
/* RNNFAST_NUM_THREADS as a count >= 1, or 0 when unset or not such a count (rnnfast.config names the bad value). */
static int env_threads(void)
{
    const char *v = getenv("RNNFAST_NUM_THREADS");
    if (!v || !*v) return 0;
    char *end = NULL;
    const long n = strtol(v, &end, 10);
    return (*end == 0 && n >= 1 && n <= 4096) ? (int)n : 0;
}

int rnnf_default_threads(void)
{
    /* Read once: the environment is the process's setting, and getenv on every call would race a setenv. */
    static int from_env = -1;
    int n = __atomic_load_n(&from_env, __ATOMIC_RELAXED);
    if (n < 0) {
        n = env_threads();
        __atomic_store_n(&from_env, n, __ATOMIC_RELAXED);
    }
    if (n > 0) return n;
    return omp_get_max_threads();
}
#else
/* Without OpenMP there is one thread whatever RNNFAST_NUM_THREADS says, and no setting to keep in a global (export-c's
 * runtime has no writable one). */
int rnnf_default_threads(void) { return 1; }
#endif

/* Set every layer's h (and c) from the caller's arrays, or zeros; padding columns stay zero. */
static void load_initial_state(const rnnf_model *m, rnnf_state *st, const float *const *h0, const float *const *c0)
{
    const int B = st->batch;
    for (int l = 0; l < m->n_layers; l++) {
        const rnnf_layer *L = &m->layers[l];
        rnnf_layer_state *S = &st->ls[l];
        for (int d = 0; d < L->n_dirs; d++) {
            S->cur[d] = 0;
            float *h = S->h[d][0];
            memset(h, 0, (size_t)B * L->hstride * sizeof(float));
            memset(S->h[d][1], 0, (size_t)B * L->hstride * sizeof(float));
            if (h0 && h0[l])
                for (int b = 0; b < B; b++)
                    memcpy(h + (size_t)b * L->hstride, h0[l] + ((size_t)d * B + b) * L->out_size,
                           (size_t)L->out_size * sizeof(float));
            if (L->cell == RNNF_CELL_LSTM) {
                float *c = S->c[d];
                memset(c, 0, (size_t)B * L->hpad * sizeof(float));
                if (c0 && c0[l])
                    for (int b = 0; b < B; b++)
                        memcpy(c + (size_t)b * L->hpad, c0[l] + ((size_t)d * B + b) * L->hidden_size,
                               (size_t)L->hidden_size * sizeof(float));
            }
        }
    }
}

static void zero_row(const rnnf_layer *L, rnnf_layer_state *S, int d, int b)
{
    memset(S->h[d][S->cur[d]] + (size_t)b * L->hstride, 0, (size_t)L->hstride * sizeof(float));
    if (L->cell == RNNF_CELL_LSTM) memset(S->c[d] + (size_t)b * L->hpad, 0, (size_t)L->hpad * sizeof(float));
}

rnnf_status rnnf_state_get(const rnnf_state *st, int l, int which_c, float *dst)
{
    if (!st || !dst || l < 0 || l >= st->model->n_layers) return RNNF_ERR_ARG;
    const rnnf_layer *L = &st->model->layers[l];
    const rnnf_layer_state *S = &st->ls[l];
    if (which_c && L->cell != RNNF_CELL_LSTM) return RNNF_ERR_ARG;
    const int B = st->batch, n = which_c ? L->hidden_size : L->out_size;
    for (int d = 0; d < L->n_dirs; d++)
        for (int b = 0; b < B; b++) {
            const float *src = which_c ? S->c[d] + (size_t)b * L->hpad : S->h[d][S->cur[d]] + (size_t)b * L->hstride;
            memcpy(dst + ((size_t)d * B + b) * n, src, (size_t)n * sizeof(float));
        }
    return RNNF_OK;
}

rnnf_status rnnf_state_set(rnnf_state *st, int l, int which_c, const float *src)
{
    if (!st || !src || l < 0 || l >= st->model->n_layers) return RNNF_ERR_ARG;
    const rnnf_layer *L = &st->model->layers[l];
    rnnf_layer_state *S = &st->ls[l];
    if (which_c && L->cell != RNNF_CELL_LSTM) return RNNF_ERR_ARG;
    const int B = st->batch, n = which_c ? L->hidden_size : L->out_size;
    for (int d = 0; d < L->n_dirs; d++)
        for (int b = 0; b < B; b++) {
            float *dst = which_c ? S->c[d] + (size_t)b * L->hpad : S->h[d][S->cur[d]] + (size_t)b * L->hstride;
            memcpy(dst, src + ((size_t)d * B + b) * n, (size_t)n * sizeof(float));
        }
    return RNNF_OK;
}

rnnf_status rnnf_state_reset(rnnf_state *st, const int32_t *rows, int n_rows)
{
    if (!st || (rows && n_rows < 0)) return RNNF_ERR_ARG;
    if (rows)
        for (int i = 0; i < n_rows; i++)
            if (rows[i] < 0 || rows[i] >= st->batch) return RNNF_ERR_ARG;
    for (int l = 0; l < st->model->n_layers; l++) {
        const rnnf_layer *L = &st->model->layers[l];
        for (int d = 0; d < L->n_dirs; d++) {
            if (rows)
                for (int i = 0; i < n_rows; i++) zero_row(L, &st->ls[l], d, rows[i]);
            else
                for (int b = 0; b < st->batch; b++) zero_row(L, &st->ls[l], d, b);
        }
    }
    return RNNF_OK;
}

/* A call on a state chooses its threads as a graph run does (adapt.c), timed per step: a real-time stream steps
 * every 20-30 ms, and its two threads' step then waited for the partner's vCPU to wake: 18 us in a tight loop, 0.1
 * to 6 ms paced, one thread 0.1 ms. */
rnnf_status rnnf_run(const rnnf_model *m, rnnf_state *st, const rnnf_run_args *a)
{
    if (!m || !st || !a || st->model != m || a->seq_len <= 0) return rnnf_run_as_asked(m, st, a);
    rnnf_run_args mine = *a;
    mine.n_threads = rnnf_thread_choice_start(&st->threads, a->n_threads);
    const rnnf_status s = rnnf_run_as_asked(m, st, &mine);
    if (s == RNNF_OK) rnnf_thread_choice_finish(&st->threads, a->seq_len);
    return s;
}

rnnf_status rnnf_run_as_asked(const rnnf_model *m, rnnf_state *st, const rnnf_run_args *a)
{
    if (!m || !st || !a || st->model != m) return RNNF_ERR_ARG;
    if (a->seq_len <= 0 || !a->x) return RNNF_ERR_ARG;
    if (a->batch != st->batch) return RNNF_ERR_SHAPE;
    if (a->y_layout != RNNF_Y_SEQ_DIR_BATCH && a->y_layout != RNNF_Y_SEQ_BATCH_DIR) return RNNF_ERR_ARG;
    if (a->sequence_lens)
        for (int b = 0; b < st->batch; b++)
            if (a->sequence_lens[b] < 0 || a->sequence_lens[b] > a->seq_len) return RNNF_ERR_ARG;
    if (a->y_c)
        for (int l = 0; l < m->n_layers; l++)
            if (a->y_c[l] && m->layers[l].cell != RNNF_CELL_LSTM) return RNNF_ERR_ARG;

    rnnf_status s = rnnf_state_reserve(st, a->seq_len);
    if (s != RNNF_OK) return s;
    load_initial_state(m, st, a->initial_h, a->initial_c);
    s = rnnf_run_layers(m, st, a->seq_len, a->x, a->sequence_lens, a->mask, a->mask_zero_output, a->y, a->y_layout,
                        a->n_threads);
    if (s != RNNF_OK) return s;

    for (int l = 0; l < m->n_layers; l++) {
        const rnnf_layer *L = &m->layers[l];
        if (a->sequence_lens)  /* ONNX: a row of length 0 ends with a zero state, not its initial state */
            for (int b = 0; b < st->batch; b++)
                if (a->sequence_lens[b] == 0)
                    for (int d = 0; d < L->n_dirs; d++) zero_row(L, &st->ls[l], d, b);
        if (a->y_h && a->y_h[l]) rnnf_state_get(st, l, 0, a->y_h[l]);
        if (a->y_c && a->y_c[l]) rnnf_state_get(st, l, 1, a->y_c[l]);
    }
    return RNNF_OK;
}

/* Indexed by the enum's own constants, so a name cannot drift from its kind; the count is checked at compile time
 * and the Python side (rnnf_spec.ACTIVATIONS, which .rnnf files and the engine use) is compared with it by a test. */
static const char *const ACTIVATION_NAMES[] = {
    [RNNF_ACT_RELU] = "Relu",           [RNNF_ACT_TANH] = "Tanh",
    [RNNF_ACT_SIGMOID] = "Sigmoid",     [RNNF_ACT_AFFINE] = "Affine",
    [RNNF_ACT_LEAKYRELU] = "LeakyRelu", [RNNF_ACT_THRESHOLDEDRELU] = "ThresholdedRelu",
    [RNNF_ACT_SCALEDTANH] = "ScaledTanh", [RNNF_ACT_HARDSIGMOID] = "HardSigmoid",
    [RNNF_ACT_ELU] = "Elu",             [RNNF_ACT_SOFTSIGN] = "Softsign",
    [RNNF_ACT_SOFTPLUS] = "Softplus",   [RNNF_ACT_SELU] = "Selu",
    [RNNF_ACT_SWISH] = "Swish",         [RNNF_ACT_GELU] = "Gelu",
    [RNNF_ACT_EXP] = "Exp",
};
/* C99 has no _Static_assert: an array of size -1 fails the build when a kind lacks its name */
typedef char every_activation_kind_has_a_name[sizeof ACTIVATION_NAMES / sizeof ACTIVATION_NAMES[0] == RNNF_ACT_COUNT
                                              ? 1 : -1];

const char *rnnf_activation_name(int kind)
{
    return kind >= 0 && kind < RNNF_ACT_COUNT ? ACTIVATION_NAMES[kind] : NULL;
}

rnnf_status rnnf_activation_apply(const rnnf_activation *act, const float *x, float *y, int n)
{
    if (!act || act->kind < 0 || act->kind >= RNNF_ACT_COUNT || n < 0 || (n > 0 && (!x || !y))) return RNNF_ERR_ARG;
    rnnf_kernels_get()->activation(act, x, y, n);
    return RNNF_OK;
}

rnnf_status rnnf_state_threads(const rnnf_state *st, int *n_threads, double *seconds_one, double *seconds_asked)
{
    if (!st || !n_threads) return RNNF_ERR_ARG;
    *n_threads = rnnf_thread_choice_current(&st->threads, seconds_one, seconds_asked);
    return RNNF_OK;
}

rnnf_status rnnf_step(const rnnf_model *m, rnnf_state *st, const float *x, float *y, int n_threads)
{
    if (!m || !st || !x || st->model != m) return RNNF_ERR_ARG;
    for (int l = 0; l < m->n_layers; l++)
        if (m->layers[l].n_dirs != 1 || m->layers[l].reverse) return RNNF_ERR_UNSUPPORTED;
    const int n = rnnf_thread_choice_start(&st->threads, n_threads);
    const rnnf_status s = rnnf_run_layers(m, st, 1, x, NULL, NULL, 0, y, RNNF_Y_SEQ_BATCH_DIR, n);
    if (s == RNNF_OK) rnnf_thread_choice_finish(&st->threads, 1);
    return s;
}
