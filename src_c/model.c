/* model.c: model creation (validation and weight packing) and the state object.
 *
 * Weights are copied into the panel layout of kernels.h once, here, so the time loop never reorders
 * anything. Every size a caller passes is checked before it is multiplied into an allocation.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kernels/kernels_q.h"

#define UB RNNF_UB
#define RNNF_MAX_DIM (1 << 24)

static void *alloc_zeroed(rnnf_pool *pool, size_t n_floats)
{
    return rnnf_mem_alloc(pool, n_floats * sizeof(float));
}

/* Gate-major source rows [G][H][K] -> panels (jb*G + g) of [K][UB]; rows past H stay zero. */
static float *pack_gates(rnnf_pool *pool, const float *src, int G, int H, int K, int n_blocks)
{
    float *dst = alloc_zeroed(pool, (size_t)n_blocks * G * UB * (size_t)K);
    if (!dst) return NULL;
    for (int jb = 0; jb < n_blocks; jb++)
        for (int g = 0; g < G; g++) {
            float *panel = dst + (size_t)(jb * G + g) * K * UB;
            for (int jj = 0; jj < UB; jj++) {
                int j = jb * UB + jj;
                if (j >= H) break;
                const float *row = src + ((size_t)g * H + j) * K;
                for (int k = 0; k < K; k++) panel[(size_t)k * UB + jj] = row[k];
            }
        }
    return dst;
}

/* Plain rows [R][K] -> panels of [K][UB]. */
static float *pack_rows(rnnf_pool *pool, const float *src, int R, int K, int n_panels)
{
    float *dst = alloc_zeroed(pool, (size_t)n_panels * UB * (size_t)K);
    if (!dst) return NULL;
    for (int r = 0; r < R; r++)
        for (int k = 0; k < K; k++) dst[(size_t)(r / UB) * K * UB + (size_t)k * UB + r % UB] = src[(size_t)r * K + k];
    return dst;
}

static int act_valid(const rnnf_activation *a) { return a->kind >= 0 && a->kind < RNNF_ACT_COUNT; }

static rnnf_status check_desc(const rnnf_layer_desc *d, int expected_input)
{
    if (d->cell < RNNF_CELL_RNN || d->cell > RNNF_CELL_LSTM) return RNNF_ERR_ARG;
    if (d->n_dirs != 1 && d->n_dirs != 2) return RNNF_ERR_ARG;
    if (d->input_size <= 0 || d->hidden_size <= 0 || d->proj_size < 0) return RNNF_ERR_SHAPE;
    if (d->input_size > RNNF_MAX_DIM || d->hidden_size > RNNF_MAX_DIM || d->proj_size > RNNF_MAX_DIM)
        return RNNF_ERR_SHAPE;
    if (expected_input > 0 && d->input_size != expected_input) return RNNF_ERR_SHAPE;
    if (d->weight_dtype == RNNF_WEIGHTS_F32) {
        if (!d->w_ih || !d->w_hh) return RNNF_ERR_ARG;
        if (d->proj_size > 0 && (d->cell != RNNF_CELL_LSTM || !d->w_hr)) return RNNF_ERR_ARG;
        if (d->proj_size == 0 && d->w_hr) return RNNF_ERR_ARG;
    } else if (d->weight_dtype == RNNF_WEIGHTS_F16 || d->weight_dtype == RNNF_WEIGHTS_I8) {
        const int i8 = d->weight_dtype == RNNF_WEIGHTS_I8;
        if (!d->q_ih || !d->q_hh || (i8 && (!d->s_ih || !d->s_hh))) return RNNF_ERR_ARG;
        if (d->proj_size > 0 && (d->cell != RNNF_CELL_LSTM || !d->q_hr || (i8 && !d->s_hr))) return RNNF_ERR_ARG;
        if (d->proj_size == 0 && d->q_hr) return RNNF_ERR_ARG;
    } else {
        return RNNF_ERR_ARG;
    }
    if (d->peepholes && d->cell != RNNF_CELL_LSTM) return RNNF_ERR_ARG;
    int n_act = d->cell == RNNF_CELL_LSTM ? 3 : d->cell == RNNF_CELL_GRU ? 2 : 1;
    for (int dir = 0; dir < d->n_dirs; dir++)
        for (int a = 0; a < n_act; a++)
            if (!act_valid(&d->act[dir][a])) return RNNF_ERR_ARG;
    return RNNF_OK;
}

static void free_layer(rnnf_pool *pool, rnnf_layer *L)
{
    for (int d = 0; d < 2; d++) {
        rnnf_mem_free(pool, L->w_ih[d]);
        rnnf_mem_free(pool, L->w_hh[d]);
        rnnf_mem_free(pool, L->w_hr[d]);
        rnnf_mem_free(pool, L->bias_x[d]);
        rnnf_mem_free(pool, L->bias_h[d]);
        rnnf_mem_free(pool, L->peep[d]);
    }
}

static rnnf_status build_layer(rnnf_pool *pool, rnnf_layer *L, const rnnf_layer_desc *d)
{
    const int G = d->cell == RNNF_CELL_LSTM ? 4 : d->cell == RNNF_CELL_GRU ? 3 : 1;
    const int H = d->hidden_size, I = d->input_size;
    memset(L, 0, sizeof(*L));
    L->cell = d->cell;
    L->n_dirs = d->n_dirs;
    L->reverse = d->n_dirs == 1 && d->reverse;
    L->input_size = I;
    L->hidden_size = H;
    L->proj_size = d->proj_size;
    L->out_size = d->proj_size ? d->proj_size : H;
    L->n_gates = G;
    L->n_blocks = (H + UB - 1) / UB;
    L->hpad = L->n_blocks * UB;
    L->gh_cols = G * L->hpad;
    L->n_qpanels = d->proj_size ? (d->proj_size + UB - 1) / UB : 0;
    L->hstride = L->n_qpanels * UB > L->hpad ? L->n_qpanels * UB : L->hpad;
    L->linear_before_reset = d->cell == RNNF_CELL_GRU && d->linear_before_reset;
    const int P = L->out_size;
    const size_t GH = (size_t)G * H;

    L->weight_dtype = d->weight_dtype;
    const size_t esize = d->weight_dtype == RNNF_WEIGHTS_I8 ? 1 : 2;
    for (int dir = 0; dir < d->n_dirs; dir++) {
        if (d->weight_dtype == RNNF_WEIGHTS_F32) {
            L->w_ih[dir] = pack_gates(pool, d->w_ih + dir * GH * I, G, H, I, L->n_blocks);
            L->w_hh[dir] = pack_gates(pool, d->w_hh + dir * GH * P, G, H, P, L->n_blocks);
        } else {
            const float *s_ih = d->s_ih ? d->s_ih + dir * GH : NULL, *s_hh = d->s_hh ? d->s_hh + dir * GH : NULL;
            L->w_ih[dir] = rnnf_pack_gates_q(pool, (const char *)d->q_ih + dir * GH * I * esize, s_ih, d->weight_dtype,
                                             G, H, I, L->n_blocks);
            L->w_hh[dir] = rnnf_pack_gates_q(pool, (const char *)d->q_hh + dir * GH * P * esize, s_hh, d->weight_dtype,
                                             G, H, P, L->n_blocks);
        }
        L->bias_x[dir] = alloc_zeroed(pool, (size_t)L->gh_cols);
        if (!L->w_ih[dir] || !L->w_hh[dir] || !L->bias_x[dir]) return RNNF_ERR_NOMEM;
        if (L->linear_before_reset && !(L->bias_h[dir] = alloc_zeroed(pool, (size_t)L->gh_cols))) return RNNF_ERR_NOMEM;
        for (int g = 0; g < G; g++)
            for (int j = 0; j < H; j++) {
                size_t pr = (size_t)((j / UB) * G + g) * UB + j % UB;
                float bi = d->b_ih ? d->b_ih[dir * GH + (size_t)g * H + j] : 0.0f;
                float bh = d->b_hh ? d->b_hh[dir * GH + (size_t)g * H + j] : 0.0f;
                if (L->linear_before_reset && g == 2) {
                    L->bias_x[dir][pr] = bi;
                    L->bias_h[dir][pr] = bh;
                } else {
                    L->bias_x[dir][pr] = bi + bh;
                }
            }
        if (d->peepholes) {
            if (!(L->peep[dir] = alloc_zeroed(pool, (size_t)L->n_blocks * 3 * UB))) return RNNF_ERR_NOMEM;
            for (int k = 0; k < 3; k++)
                for (int j = 0; j < H; j++)
                    L->peep[dir][(size_t)(j / UB) * 3 * UB + k * UB + j % UB] = d->peepholes[dir * 3 * (size_t)H + (size_t)k * H + j];
        }
        if (d->proj_size) {
            if (d->weight_dtype == RNNF_WEIGHTS_F32)
                L->w_hr[dir] = pack_rows(pool, d->w_hr + dir * (size_t)P * H, P, H, L->n_qpanels);
            else
                L->w_hr[dir] = rnnf_pack_gates_q(pool, (const char *)d->q_hr + dir * (size_t)P * H * esize,
                                                 d->s_hr ? d->s_hr + dir * (size_t)P : NULL, d->weight_dtype, 1, P,
                                                 H, L->n_qpanels);
            if (!L->w_hr[dir]) return RNNF_ERR_NOMEM;
        }
        rnnf_gate_params *gp = &L->gp[dir];
        gp->f = d->act[dir][0];
        gp->g = d->act[dir][G == 1 ? 0 : 1];
        gp->h = d->act[dir][G == 4 ? 2 : 0];
        gp->clip = d->clip > 0.0f ? d->clip : 0.0f;
        gp->input_forget = d->cell == RNNF_CELL_LSTM && d->input_forget;
    }
    return RNNF_OK;
}

rnnf_status rnnf_model_create(const rnnf_layer_desc *layers, int n_layers, rnnf_model **out)
{
    return rnnf_model_create_in(layers, n_layers, NULL, out);
}

rnnf_status rnnf_model_create_in(const rnnf_layer_desc *layers, int n_layers, rnnf_pool *pool, rnnf_model **out)
{
    if (!out) return RNNF_ERR_ARG;
    *out = NULL;
    if (!layers || n_layers <= 0) return RNNF_ERR_ARG;
    for (int l = 0; l < n_layers; l++) {
        const rnnf_layer_desc *prev = l ? &layers[l - 1] : NULL;
        int expected = prev ? prev->n_dirs * (prev->proj_size ? prev->proj_size : prev->hidden_size) : 0;
        rnnf_status s = check_desc(&layers[l], expected);
        if (s != RNNF_OK) return s;
    }
    rnnf_model *m = rnnf_mem_alloc(pool, sizeof(*m));
    if (!m) return RNNF_ERR_NOMEM;
    m->pool = pool;
    m->layers = rnnf_mem_alloc(pool, (size_t)n_layers * sizeof(rnnf_layer));
    if (!m->layers) {
        rnnf_mem_free(pool, m);
        return RNNF_ERR_NOMEM;
    }
    m->n_layers = n_layers;
    for (int l = 0; l < n_layers; l++) {
        rnnf_status s = build_layer(pool, &m->layers[l], &layers[l]);
        if (s != RNNF_OK) {
            rnnf_model_free(m);
            return s;
        }
    }
    *out = m;
    return RNNF_OK;
}

void rnnf_model_free(rnnf_model *m)
{
    if (!m) return;
    for (int l = 0; l < m->n_layers; l++) free_layer(m->pool, &m->layers[l]);
    rnnf_mem_free(m->pool, m->layers);
    rnnf_mem_free(m->pool, m);
}

int rnnf_model_n_layers(const rnnf_model *m) { return m ? m->n_layers : 0; }

rnnf_status rnnf_model_layer_info(const rnnf_model *m, int l, int *cell, int *n_dirs, int *input_size,
                                  int *hidden_size, int *out_size)
{
    if (!m || l < 0 || l >= m->n_layers) return RNNF_ERR_ARG;
    const rnnf_layer *L = &m->layers[l];
    if (cell) *cell = L->cell;
    if (n_dirs) *n_dirs = L->n_dirs;
    if (input_size) *input_size = L->input_size;
    if (hidden_size) *hidden_size = L->hidden_size;
    if (out_size) *out_size = L->out_size;
    return RNNF_OK;
}

/* ---- state ---- */

void rnnf_state_free(rnnf_state *st)
{
    if (!st) return;
    if (st->ls) {
        for (int l = 0; l < st->model->n_layers; l++) {
            rnnf_layer_state *S = &st->ls[l];
            for (int d = 0; d < 2; d++) {
                rnnf_mem_free(st->pool, S->h[d][0]);
                rnnf_mem_free(st->pool, S->h[d][1]);
                rnnf_mem_free(st->pool, S->c[d]);
                rnnf_mem_free(st->pool, S->gh[d]);
                rnnf_mem_free(st->pool, S->m[d]);
                rnnf_mem_free(st->pool, S->z[d]);
            }
        }
    }
    rnnf_mem_free(st->pool, st->ls);
    for (int d = 0; d < 2; d++) {
        rnnf_mem_free(st->pool, st->gx[d]);
        rnnf_mem_free(st->pool, st->inter[d]);
        rnnf_mem_free(st->pool, st->first_step[d]);
    }
    rnnf_mem_free(st->pool, st->active);
    rnnf_mem_free(st->pool, st);
}

rnnf_status rnnf_state_reserve(rnnf_state *st, int seq_len)
{
    if (seq_len <= st->cap_steps) return RNNF_OK;
    size_t max_cols = 0, max_out = 0;
    int hoisted = 0; /* a layer that projects every step's input before its time loop (rows_step.c needs one step) */
    for (int l = 0; l < st->model->n_layers; l++) {
        const rnnf_layer *L = &st->model->layers[l];
        if ((size_t)L->gh_cols > max_cols) max_cols = (size_t)L->gh_cols;
        if ((size_t)L->n_dirs * L->out_size > max_out) max_out = (size_t)L->n_dirs * L->out_size;
        hoisted |= !rnnf_rows_step_applies(L, st->batch);
    }
    const size_t rows = (size_t)seq_len * (size_t)st->batch, gx_rows = hoisted ? rows : (size_t)st->batch;
    if (rows / (size_t)st->batch != (size_t)seq_len || rows > ((size_t)1 << 40) / max_cols) return RNNF_ERR_NOMEM;
    rnnf_pool *pool = st->pool;
    float *gx[2] = {alloc_zeroed(pool, gx_rows * max_cols), alloc_zeroed(pool, gx_rows * max_cols)};
    float *inter[2] = {alloc_zeroed(pool, rows * max_out), alloc_zeroed(pool, rows * max_out)};
    uint8_t *active = rnnf_mem_alloc_raw(pool, rows);
    if (!gx[0] || !gx[1] || !inter[0] || !inter[1] || !active) {
        rnnf_mem_free(pool, gx[0]);
        rnnf_mem_free(pool, gx[1]);
        rnnf_mem_free(pool, inter[0]);
        rnnf_mem_free(pool, inter[1]);
        rnnf_mem_free(pool, active);
        return RNNF_ERR_NOMEM;
    }
    for (int d = 0; d < 2; d++) {
        rnnf_mem_free(pool, st->gx[d]);
        rnnf_mem_free(pool, st->inter[d]);
        st->gx[d] = gx[d];
        st->inter[d] = inter[d];
    }
    rnnf_mem_free(pool, st->active);
    st->active = active;
    st->cap_steps = seq_len;
    return RNNF_OK;
}

rnnf_status rnnf_state_create(const rnnf_model *model, int batch, rnnf_state **out)
{
    return rnnf_state_create_in(model, batch, NULL, out);
}

rnnf_status rnnf_state_create_in(const rnnf_model *model, int batch, rnnf_pool *pool, rnnf_state **out)
{
    if (!out) return RNNF_ERR_ARG;
    *out = NULL;
    if (!model || batch <= 0 || batch > RNNF_MAX_DIM) return RNNF_ERR_ARG;
    rnnf_state *st = rnnf_mem_alloc(pool, sizeof(*st));
    if (!st) return RNNF_ERR_NOMEM;
    st->pool = pool;
    st->model = model;
    st->batch = batch;
    rnnf_thread_choice_reset(&st->threads);
    st->ls = rnnf_mem_alloc(pool, (size_t)model->n_layers * sizeof(rnnf_layer_state));
    int ok = st->ls != NULL;
    for (int d = 0; d < 2 && ok; d++)
        ok = (st->first_step[d] = rnnf_mem_alloc(pool, (size_t)batch * sizeof(int32_t))) != NULL;
    for (int l = 0; l < model->n_layers && ok; l++) {
        const rnnf_layer *L = &model->layers[l];
        rnnf_layer_state *S = &st->ls[l];
        for (int d = 0; d < L->n_dirs && ok; d++) {
            S->h[d][0] = alloc_zeroed(pool, (size_t)batch * L->hstride);
            S->h[d][1] = alloc_zeroed(pool, (size_t)batch * L->hstride);
            S->gh[d] = alloc_zeroed(pool, (size_t)batch * L->gh_cols);
            S->m[d] = alloc_zeroed(pool, (size_t)batch * L->hpad);
            S->z[d] = alloc_zeroed(pool, (size_t)batch * L->hpad);
            S->c[d] = alloc_zeroed(pool, (size_t)batch * L->hpad);
            ok = S->h[d][0] && S->h[d][1] && S->gh[d] && S->m[d] && S->z[d] && S->c[d];
        }
    }
    if (ok) ok = rnnf_state_reserve(st, 1) == RNNF_OK;
    if (!ok) {
        rnnf_state_free(st);
        return RNNF_ERR_NOMEM;
    }
    *out = st;
    return RNNF_OK;
}
