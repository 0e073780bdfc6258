/* pipeline.c: runs a loaded .rnnf pipeline in C with the semantics of rnnfast/pipeline.py's run_pipeline:
 * Embedding lookups (id 0 masks a step with mask_zero), recurrent stages on the engine (rnnf_run / the step
 * driver), Dense stages in scalar C with double accumulation (a head is a small part of the work).
 *
 * Stage outputs ping-pong between two buffers of the state, compact [rows][width]; rnnf_pipeline_run grows
 * them with seq_len, rnnf_pipeline_step only uses the one-step capacity made with the state.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"

#define MAX_BATCH (1 << 24)

struct rnnf_pipeline_state {
    const rnnf_pipeline *p;
    int batch;
    rnnf_state **rec;   /* per stage: the engine state of a recurrent stage, else NULL */
    float ***y_h;       /* per recurrent stage: n_layers pointers for rnnf_run, only the last one set */
    int cap_steps;
    float *buf[2];      /* [cap_steps * batch][max_width] */
    uint8_t *mask;      /* [cap_steps][batch] */
    float *hbuf;        /* [batch * max_width]: a stage's final state, [n_dirs][batch][out] */
};

static int stage_can_step(const rnnf_stage *s)
{
    if (s->kind != RNNF_STAGE_RECURRENT) return 1;
    for (int l = 0; l < s->model->n_layers; l++)
        if (s->model->layers[l].n_dirs != 1 || s->model->layers[l].reverse) return 0;
    return 1;
}

rnnf_status rnnf_pipeline_get_info(const rnnf_pipeline *p, rnnf_pipeline_info *info)
{
    if (!p || !info) return RNNF_ERR_ARG;
    const rnnf_stage *first = &p->stages[0];
    memset(info, 0, sizeof(*info));
    info->n_stages = p->n_stages;
    info->takes_ids = first->kind == RNNF_STAGE_EMBEDDING;
    info->input_size = first->in_size;
    info->vocab_size = info->takes_ids ? first->vocab : 0;
    info->output_size = p->stages[p->n_stages - 1].out_size;
    info->returns_sequence = 1;
    info->can_step = 1;
    for (int i = 0; i < p->n_stages; i++) {
        const rnnf_stage *s = &p->stages[i];
        if (s->kind == RNNF_STAGE_RECURRENT && !s->return_sequences) info->returns_sequence = 0;
        if (!stage_can_step(s)) info->can_step = 0;
    }
    info->batch_first = p->batch_first;
    return RNNF_OK;
}

void rnnf_pipeline_state_free(rnnf_pipeline_state *st)
{
    if (!st) return;
    for (int i = 0; i < st->p->n_stages; i++) {
        if (st->rec) rnnf_state_free(st->rec[i]);
        if (st->y_h) free(st->y_h[i]);
    }
    free(st->rec);
    free(st->y_h);
    free(st->buf[0]);
    free(st->buf[1]);
    free(st->mask);
    free(st->hbuf);
    free(st);
}

static rnnf_status reserve(rnnf_pipeline_state *st, int steps)
{
    if (steps <= st->cap_steps) return RNNF_OK;
    const size_t rows = (size_t)steps * (size_t)st->batch, width = (size_t)st->p->max_width;
    if (rows / (size_t)st->batch != (size_t)steps || rows > ((size_t)-1) / sizeof(float) / width)
        return RNNF_ERR_NOMEM;
    float *b0 = malloc(rows * width * sizeof(float)), *b1 = malloc(rows * width * sizeof(float));
    uint8_t *mask = malloc(rows);
    if (!b0 || !b1 || !mask) {
        free(b0);
        free(b1);
        free(mask);
        return RNNF_ERR_NOMEM;
    }
    free(st->buf[0]);
    free(st->buf[1]);
    free(st->mask);
    st->buf[0] = b0;
    st->buf[1] = b1;
    st->mask = mask;
    st->cap_steps = steps;
    return RNNF_OK;
}

rnnf_status rnnf_pipeline_state_create(const rnnf_pipeline *p, int batch, rnnf_pipeline_state **out)
{
    if (!out) return RNNF_ERR_ARG;
    *out = NULL;
    if (!p || batch <= 0 || batch > MAX_BATCH) return RNNF_ERR_ARG;
    rnnf_pipeline_state *st = calloc(1, sizeof(*st));
    if (!st) return RNNF_ERR_NOMEM;
    st->p = p;
    st->batch = batch;
    st->rec = calloc((size_t)p->n_stages, sizeof(rnnf_state *));
    st->y_h = calloc((size_t)p->n_stages, sizeof(float **));
    st->hbuf = malloc((size_t)batch * (size_t)p->max_width * sizeof(float));
    rnnf_status s = st->rec && st->y_h && st->hbuf ? RNNF_OK : RNNF_ERR_NOMEM;
    for (int i = 0; i < p->n_stages && s == RNNF_OK; i++) {
        const rnnf_stage *stage = &p->stages[i];
        if (stage->kind != RNNF_STAGE_RECURRENT) continue;
        s = rnnf_state_create(stage->model, batch, &st->rec[i]);
        if (s == RNNF_OK && !(st->y_h[i] = calloc((size_t)stage->model->n_layers, sizeof(float *))))
            s = RNNF_ERR_NOMEM;
        if (s == RNNF_OK) st->y_h[i][stage->model->n_layers - 1] = st->hbuf;
    }
    if (s == RNNF_OK) s = reserve(st, 1);
    if (s != RNNF_OK) {
        rnnf_pipeline_state_free(st);
        return s;
    }
    *out = st;
    return RNNF_OK;
}

rnnf_status rnnf_pipeline_state_reset(rnnf_pipeline_state *st)
{
    if (!st) return RNNF_ERR_ARG;
    for (int i = 0; i < st->p->n_stages; i++)
        if (st->rec[i]) rnnf_state_reset(st->rec[i], NULL, 0);
    return RNNF_OK;
}

static void dense(const rnnf_stage *s, const float *x, float *y, size_t rows)
{
    const int I = s->in_size, O = s->out_size;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * (size_t)I;
        float *yr = y + r * (size_t)O;
        double max = -HUGE_VAL, sum = 0.0;
        for (int o = 0; o < O; o++) {
            const float *w = s->weight + (size_t)o * I;
            double acc = s->bias ? s->bias[o] : 0.0;
            for (int k = 0; k < I; k++) acc += (double)w[k] * xr[k];
            switch (s->activation) {
            case RNNF_DENSE_RELU: acc = acc > 0.0 ? acc : 0.0; break;
            case RNNF_DENSE_TANH: acc = tanh(acc); break;
            case RNNF_DENSE_SIGMOID: acc = 1.0 / (1.0 + exp(-acc)); break;
            default: break;
            }
            yr[o] = (float)acc;
            if (acc > max) max = acc;
        }
        if (s->activation != RNNF_DENSE_SOFTMAX) continue;
        for (int o = 0; o < O; o++) sum += exp((double)yr[o] - max);
        for (int o = 0; o < O; o++) yr[o] = (float)(exp((double)yr[o] - max) / sum);
    }
}

/* Embedding rows for ids [steps][batch] (or [batch][steps] when batch_first) into out [steps][batch][dim];
 * the mask when the embedding asks for one. */
static rnnf_status embed(const rnnf_stage *s, const int32_t *ids, int steps, int batch, int batch_first, float *out,
                         uint8_t *mask)
{
    const size_t n = (size_t)steps * (size_t)batch, dim = (size_t)s->out_size;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= s->vocab) return RNNF_ERR_ARG;
    for (int t = 0; t < steps; t++)
        for (int b = 0; b < batch; b++) {
            int32_t id = batch_first ? ids[(size_t)b * steps + t] : ids[(size_t)t * batch + b];
            memcpy(out + ((size_t)t * batch + b) * dim, s->table + (size_t)id * dim, dim * sizeof(float));
            if (s->mask_zero) mask[(size_t)t * batch + b] = id != 0;
        }
    return RNNF_OK;
}

/* [a][b][w] -> [b][a][w] */
static void swap_outer(const float *src, float *dst, int a, int b, int w)
{
    for (int i = 0; i < a; i++)
        for (int j = 0; j < b; j++)
            memcpy(dst + ((size_t)j * a + i) * w, src + ((size_t)i * b + j) * w, (size_t)w * sizeof(float));
}

static int check_input(const rnnf_pipeline *p, const rnnf_pipeline_state *st, const float *x, const int32_t *ids,
                       const float *y)
{
    if (!p || !st || st->p != p || !y) return 0;
    int takes_ids = p->stages[0].kind == RNNF_STAGE_EMBEDDING;
    return takes_ids ? ids && !x : x && !ids;
}

rnnf_status rnnf_pipeline_run(const rnnf_pipeline *p, rnnf_pipeline_state *st, int T, const float *x,
                              const int32_t *ids, float *y, int n_threads)
{
    if (!check_input(p, st, x, ids, y) || T <= 0) return RNNF_ERR_ARG;
    rnnf_status s = reserve(st, T);
    if (s != RNNF_OK) return s;
    const int B = st->batch;
    float *cur = st->buf[0], *nxt = st->buf[1];
    const uint8_t *mask = NULL;
    int sequence = 1, first = 0, width = p->stages[0].in_size;
    if (ids) {
        const rnnf_stage *e = &p->stages[0];
        if ((s = embed(e, ids, T, B, p->batch_first, cur, st->mask)) != RNNF_OK) return s;
        if (e->mask_zero) mask = st->mask;
        width = e->out_size;
        first = 1;
    } else if (p->batch_first) {
        swap_outer(x, cur, B, T, width);
    } else {
        memcpy(cur, x, (size_t)T * B * width * sizeof(float));
    }
    for (int i = first; i < p->n_stages; i++) {
        const rnnf_stage *stage = &p->stages[i];
        if (stage->kind == RNNF_STAGE_RECURRENT) {
            rnnf_run_args a;
            memset(&a, 0, sizeof a);
            a.seq_len = T;
            a.batch = B;
            a.x = cur;
            a.mask = mask;
            a.mask_zero_output = stage->mask_zero_output;
            a.y = stage->return_sequences ? nxt : NULL;
            a.y_layout = RNNF_Y_SEQ_BATCH_DIR;
            a.y_h = stage->return_sequences ? NULL : (float *const *)st->y_h[i];
            a.n_threads = n_threads;
            if ((s = rnnf_run(stage->model, st->rec[i], &a)) != RNNF_OK) return s;
            if (!stage->return_sequences) {
                const rnnf_layer *L = &stage->model->layers[stage->model->n_layers - 1];
                swap_outer(st->hbuf, nxt, L->n_dirs, B, L->out_size);  /* [D][B][P] -> [B][D*P] */
                sequence = 0;
                mask = NULL;
            }
        } else {
            dense(stage, cur, nxt, sequence ? (size_t)T * B : (size_t)B);
        }
        width = stage->out_size;
        float *t = cur;
        cur = nxt;
        nxt = t;
    }
    if (sequence && p->batch_first)
        swap_outer(cur, y, T, B, width);
    else
        memcpy(y, cur, (sequence ? (size_t)T * B : (size_t)B) * width * sizeof(float));
    return RNNF_OK;
}

rnnf_status rnnf_pipeline_step(const rnnf_pipeline *p, rnnf_pipeline_state *st, const float *x, const int32_t *ids,
                               float *y, int n_threads)
{
    if (!check_input(p, st, x, ids, y)) return RNNF_ERR_ARG;
    for (int i = 0; i < p->n_stages; i++)
        if (!stage_can_step(&p->stages[i])) return RNNF_ERR_UNSUPPORTED;
    const int B = st->batch;
    const int threads = n_threads; /* <= 0: the default, resolved per call (rnnf_threads_for_call) */
    float *cur = st->buf[0], *nxt = st->buf[1];
    const uint8_t *mask = NULL;
    int first = 0, width = p->stages[0].in_size;
    rnnf_status s;
    if (ids) {
        const rnnf_stage *e = &p->stages[0];
        if ((s = embed(e, ids, 1, B, 0, cur, st->mask)) != RNNF_OK) return s;
        if (e->mask_zero) mask = st->mask;
        width = e->out_size;
        first = 1;
    } else {
        memcpy(cur, x, (size_t)B * width * sizeof(float));
    }
    for (int i = first; i < p->n_stages; i++) {
        const rnnf_stage *stage = &p->stages[i];
        if (stage->kind == RNNF_STAGE_RECURRENT) {
            const rnnf_model *m = stage->model;
            const int last = m->n_layers - 1, P = m->layers[last].out_size;
            if (mask) {
                s = rnnf_run_layers(m, st->rec[i], 1, cur, NULL, mask, stage->mask_zero_output, nxt,
                                    RNNF_Y_SEQ_BATCH_DIR, threads);
                if (s != RNNF_OK) return s;
                /* A masked step keeps the state; Keras repeats the previous output, which is that state (zero
                 * before any real step), unless mask_zero_output asks for zeros (what the driver wrote). */
                if (!stage->mask_zero_output) {
                    rnnf_state_get(st->rec[i], last, 0, st->hbuf);
                    for (int b = 0; b < B; b++)
                        if (!mask[b]) memcpy(nxt + (size_t)b * P, st->hbuf + (size_t)b * P, (size_t)P * sizeof(float));
                }
            } else if ((s = rnnf_step(m, st->rec[i], cur, nxt, threads)) != RNNF_OK) {
                return s;
            }
            if (!stage->return_sequences) {
                rnnf_state_get(st->rec[i], last, 0, nxt);  /* one direction: [1][B][P] is [B][P] */
                mask = NULL;
            }
        } else {
            dense(stage, cur, nxt, (size_t)B);
        }
        width = stage->out_size;
        float *t = cur;
        cur = nxt;
        nxt = t;
    }
    memcpy(y, cur, (size_t)B * width * sizeof(float));
    return RNNF_OK;
}
