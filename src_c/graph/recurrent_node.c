/* recurrent_node.c: a stack of recurrent layers as one graph node, run by the engine's own drivers.
 *
 * The node owns an rnnf_model (weights packed once at load); the graph state owns the engine state for the
 * current plan's batch, made at plan time so a run allocates nothing. Inputs and outputs follow ONNX, with the
 * per-layer states of a stack of L layers stacked on the first axis as PyTorch does: initial_h / Y_h
 * [L*D, B, out], initial_c / Y_c [L*D, B, hidden]; Y is the last layer's, [T, D, B, out] as ONNX has it or, with
 * iattr[0] = 1, [T, B, D, out]: the layout a next layer or a Reshape to [T, B, D*out] reads, which the engine
 * writes directly instead of a Transpose after the node (graph/stack.py).
 * A fifth input, when present, is a Keras mask [T, B] (bool): a masked step keeps every layer's state and repeats
 * the previous output, or gives zeros with iattr[1] = 1 (zero_output_for_mask; Bidirectional's rule), as rnnf_run
 * implements it. Keras importers lower go_backwards as a time-reversed X and mask, so the mask is always aligned
 * with X here.
 */
#include <stdio.h>
#include <string.h>

#include "graph/plan.h"

#define MAX_LAYERS 64

static void release(rnnf_gnode *node)
{
    rnnf_model_free((rnnf_model *)node->prep);
    node->prep = NULL;
}

const rnnf_op_vtable rnnf_op_recurrent = {"recurrent", NULL, NULL, NULL, release};

rnnf_status rnnf_recurrent_node_create(rnnf_gnode *node, const rnnf_layer_desc *layers, int n_layers, char *message)
{
    if (!layers || n_layers < 1 || n_layers > MAX_LAYERS || (node->n_in != 4 && node->n_in != 5) ||
        node->n_out != 3) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "a recurrent node takes 4 inputs (5 with a mask), 3 outputs and "
                 "1..%d layers", MAX_LAYERS);
        return RNNF_ERR_FORMAT;
    }
    if (node->n_iattr > 2 || (node->n_iattr >= 1 && node->iattr[0] != 0 && node->iattr[0] != 1) ||
        (node->n_iattr == 2 && node->iattr[1] != 0 && node->iattr[1] != 1)) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "a recurrent node's attributes are its Y layout (0 or 1) and "
                 "zero_output_for_mask (0 or 1)");
        return RNNF_ERR_FORMAT;
    }
    rnnf_model *m = NULL;
    rnnf_status st = rnnf_model_create_in(layers, n_layers, node->pool, &m);
    if (st != RNNF_OK) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "the layers do not fit together (%s)", rnnf_status_str(st));
        return st == RNNF_ERR_NOMEM ? st : RNNF_ERR_FORMAT;
    }
    node->prep = m;
    return RNNF_OK;
}

rnnf_status rnnf_recurrent_node_plan(const rnnf_gnode *node, rnnf_recurrent_slot *slot, int64_t seq_len,
                                     int64_t batch, rnnf_pool *pool)
{
    if (batch > INT32_MAX || seq_len > INT32_MAX) return RNNF_ERR_SHAPE;
    if (!slot->st || slot->batch != batch) {
        rnnf_state_free(slot->st);
        slot->st = NULL;
        if (batch == 0) return RNNF_OK;
        rnnf_status st = rnnf_state_create_in((const rnnf_model *)node->prep, (int)batch, pool, &slot->st);
        if (st != RNNF_OK) return st;
        slot->batch = (int)batch;
    }
    return seq_len > 0 ? rnnf_state_reserve(slot->st, (int)seq_len) : RNNF_OK;
}

static int shape_is(const rnnf_tensor *t, int rank, int64_t d0, int64_t d1, int64_t d2)
{
    const int64_t want[3] = {d0, d1, d2};
    if (t->rank != rank || t->dtype != RNNF_DT_F32) return 0;
    for (int a = 0; a < rank; a++)
        if (t->dims[a] != want[a]) return 0;
    return 1;
}

/* "[16777217, 1, 4]" for messages. */
static const char *dims_text(const rnnf_tensor *t, char *buf, size_t size)
{
    size_t at = (size_t)snprintf(buf, size, "[");
    for (int a = 0; a < t->rank && at + 24 < size; a++)
        at += (size_t)snprintf(buf + at, size - at, "%s%lld", a ? ", " : "", (long long)t->dims[a]);
    snprintf(buf + at, size - at, "]");
    return buf;
}

/* Whether every layer has the first one's directions and output (and, for c, hidden) size: the stacked states
 * [L*D, B, size] are addressed layer by layer at l * D * B * size, so a stack of other sizes has no such tensor. */
static int uniform_states(const rnnf_model *m, int cell_state)
{
    const rnnf_layer *first = &m->layers[0];
    for (int l = 1; l < m->n_layers; l++) {
        const rnnf_layer *ly = &m->layers[l];
        if (ly->n_dirs != first->n_dirs || ly->out_size != first->out_size ||
            (cell_state && ly->hidden_size != first->hidden_size))
            return 0;
    }
    return 1;
}

/* Whether a stacked state tensor (initial_h / initial_c / Y_h / Y_c) is absent or float [LD, B, size]; else the
 * message says which and what it must be for X. */
static int state_fits(const rnnf_tensor *t, const char *name, int64_t LD, int64_t B, int size, const rnnf_tensor *x,
                      char *message)
{
    char got[64], xs[64];
    if (t->dtype == RNNF_DT_NONE || shape_is(t, 3, LD, B, size)) return 1;
    snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "%s is %s, must be float [%lld, %lld, %d] (layers x directions, "
             "batch, hidden) for X %s", name, dims_text(t, got, sizeof got), (long long)LD, (long long)B, size,
             dims_text(x, xs, sizeof xs));
    return 0;
}

rnnf_status rnnf_recurrent_node_check(const rnnf_gnode *node, const rnnf_tensor *in, const rnnf_tensor *out,
                                      char *message)
{
    const rnnf_model *m = (const rnnf_model *)node->prep;
    const rnnf_layer *first = &m->layers[0];
    char got[64], x[64];
    if (in[0].rank != 3 || in[0].dtype != RNNF_DT_F32 || in[0].dims[2] != first->input_size) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "X is %s, must be float [seq_len, batch, %d]",
                 dims_text(&in[0], x, sizeof x), first->input_size);
        return RNNF_ERR_SHAPE;
    }
    const int64_t T = in[0].dims[0], B = in[0].dims[1];
    const int64_t LD = (int64_t)m->n_layers * first->n_dirs;
    /* X's dims are written into a message only when there is one: snprintf on every run cost more than the rest
     * of the graph's per-run work for a small model */
    if (!state_fits(&in[2], "initial_h", LD, B, first->out_size, &in[0], message)) return RNNF_ERR_SHAPE;
    if (!state_fits(&in[3], "initial_c", LD, B, first->hidden_size, &in[0], message)) return RNNF_ERR_SHAPE;
    if (in[1].dtype != RNNF_DT_NONE && (in[1].dtype != RNNF_DT_I32 || in[1].rank != 1 || in[1].dims[0] != B)) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "sequence_lens is %s, must be int32 [%lld] (batch) for X %s",
                 dims_text(&in[1], got, sizeof got), (long long)B, dims_text(&in[0], x, sizeof x));
        return RNNF_ERR_SHAPE;
    }
    const int has_mask = node->n_in == 5 && in[4].dtype != RNNF_DT_NONE;
    if (has_mask && (in[4].dtype != RNNF_DT_U8 || in[4].rank != 2 || in[4].dims[0] != T || in[4].dims[1] != B)) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "mask is %s, must be bool [%lld, %lld] (steps, batch) for X %s",
                 dims_text(&in[4], got, sizeof got), (long long)T, (long long)B, dims_text(&in[0], x, sizeof x));
        return RNNF_ERR_SHAPE;
    }
    const int h_states = in[2].dtype != RNNF_DT_NONE || out[1].dtype != RNNF_DT_NONE;
    const int c_states = in[3].dtype != RNNF_DT_NONE || out[2].dtype != RNNF_DT_NONE;
    if ((h_states || c_states) && !uniform_states(m, c_states)) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "stacked initial or final states need layers of one size and "
                 "direction count");
        return RNNF_ERR_FORMAT;
    }
    if (!state_fits(&out[1], "Y_h", LD, B, first->out_size, &in[0], message)) return RNNF_ERR_SHAPE;
    if (!state_fits(&out[2], "Y_c", LD, B, first->hidden_size, &in[0], message)) return RNNF_ERR_SHAPE;
    const rnnf_layer *last = &m->layers[m->n_layers - 1];
    const int64_t D = last->n_dirs;
    const int batch_dir = node->n_iattr >= 1 && node->iattr[0] == 1;
    const int64_t y1 = batch_dir ? B : D, y2 = batch_dir ? D : B;
    /* [T, B, D*out] is the [T, B, D, out] layout with the last two axes merged (graph/stack.py names it so) */
    const int merged = out[0].rank == 3 && (batch_dir || D == 1) && out[0].dims[0] == T && out[0].dims[1] == B &&
                       out[0].dims[2] == D * last->out_size;
    if (out[0].dtype != RNNF_DT_NONE && (out[0].dtype != RNNF_DT_F32 ||
        (!merged && !(out[0].rank == 4 && out[0].dims[0] == T && out[0].dims[1] == y1 && out[0].dims[2] == y2 &&
                      out[0].dims[3] == last->out_size)))) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "Y is %s, must be float [%lld, %lld, %lld, %d] for X %s",
                 dims_text(&out[0], got, sizeof got), (long long)T, (long long)y1, (long long)y2, last->out_size,
                 dims_text(&in[0], x, sizeof x));
        return RNNF_ERR_SHAPE;
    }
    return RNNF_OK;
}

rnnf_status rnnf_recurrent_node_run(const rnnf_gnode *node, rnnf_recurrent_slot *slot, const rnnf_tensor *in,
                                    rnnf_tensor *out, int n_threads, char *message)
{
    const rnnf_model *m = (const rnnf_model *)node->prep;
    const int L = m->n_layers;
    const rnnf_status checked = rnnf_recurrent_node_check(node, in, out, message);
    if (checked != RNNF_OK) return checked;
    const int64_t T = in[0].dims[0], B = in[0].dims[1];
    const int has_mask = node->n_in == 5 && in[4].dtype != RNNF_DT_NONE;
    const int32_t *lens = in[1].dtype == RNNF_DT_NONE ? NULL : (const int32_t *)in[1].data;
    for (int64_t b = 0; lens && b < B; b++)
        if (lens[b] < 0 || lens[b] > T) {
            snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "sequence_lens values must lie in [0, %lld] (seq_len), got "
                     "%d in row %lld", (long long)T, lens[b], (long long)b);
            return RNNF_ERR_ARG;
        }
    if (T == 0 || B == 0) { /* no steps or no rows: zero outputs, as onnxruntime gives */
        for (int k = 0; k < 3; k++)
            if (out[k].dtype != RNNF_DT_NONE && rnnf_tensor_numel(&out[k]) > 0) /* empty: data may be NULL */
                memset(out[k].data, 0, (size_t)rnnf_tensor_numel(&out[k]) * 4);
        return RNNF_OK;
    }
    const float *h0[MAX_LAYERS], *c0[MAX_LAYERS];
    float *yh[MAX_LAYERS], *yc[MAX_LAYERS];
    for (int l = 0; l < L; l++) {
        const rnnf_layer *ly = &m->layers[l];
        const size_t hstep = (size_t)ly->n_dirs * (size_t)B * ly->out_size;
        const size_t cstep = (size_t)ly->n_dirs * (size_t)B * ly->hidden_size;
        h0[l] = in[2].dtype == RNNF_DT_NONE ? NULL : (const float *)in[2].data + l * hstep;
        c0[l] = in[3].dtype == RNNF_DT_NONE ? NULL : (const float *)in[3].data + l * cstep;
        yh[l] = out[1].dtype == RNNF_DT_NONE ? NULL : (float *)out[1].data + l * hstep;
        yc[l] = out[2].dtype == RNNF_DT_NONE || ly->cell != RNNF_CELL_LSTM ? NULL : (float *)out[2].data + l * cstep;
    }
    const int batch_dir = node->n_iattr >= 1 && node->iattr[0] == 1;
    rnnf_run_args a;
    memset(&a, 0, sizeof a);
    a.seq_len = (int)T;
    a.batch = (int)B;
    a.x = (const float *)in[0].data;
    a.sequence_lens = lens;
    a.mask = has_mask ? (const uint8_t *)in[4].data : NULL;
    a.mask_zero_output = node->n_iattr == 2 && node->iattr[1] == 1;
    a.initial_h = h0;
    a.initial_c = c0;
    a.y = out[0].dtype == RNNF_DT_NONE ? NULL : (float *)out[0].data;
    a.y_layout = batch_dir ? RNNF_Y_SEQ_BATCH_DIR : RNNF_Y_SEQ_DIR_BATCH;
    a.y_h = yh;
    a.y_c = yc;
    a.n_threads = n_threads;
    return rnnf_run_as_asked(m, slot->st, &a);
}
