/* stream.c: a graph's state loops carried in C (rnnf.h, rnnf_graph_stream_*), as rnnfast/graph/stream.py does in
 * Python: two buffers per state, the one read as the input and the one the output is written into, swapped after
 * every step, so a step copies nothing and allocates nothing once its input shapes are planned.
 *
 * A state's shape must be known before the first step: every dim fixed or the batch, the one symbol all states and
 * the first step input share (a VAD's state [2, batch, 64] beside its audio [batch, chunk]). Its blocks come from
 * the heap (pool.h): a stream is for the library, not for a heap-less export.
 */
#include <stdio.h>
#include <string.h>

#include "graph/plan.h"
#include "pool.h"

struct rnnf_graph_stream {
    const rnnf_graph *g;
    rnnf_graph_state *st;
    int n_loops, n_step_in, n_step_out;
    int *step_in, *step_out;  /* graph input / output positions of the step's inputs and outputs */
    rnnf_tensor *cur, *nxt;   /* per loop: the state read by the next step, and where it writes the one after */
    rnnf_tensor *in, *out;    /* every graph input and output of a step */
};

static int loop_of_input(const rnnf_graph *g, int i)
{
    for (int k = 0; k < g->meta->n_loops; k++)
        if (g->meta->loop_in[k] == i) return k;
    return -1;
}

static int loop_of_output(const rnnf_graph *g, int o)
{
    for (int k = 0; k < g->meta->n_loops; k++)
        if (g->meta->loop_out[k] == o) return k;
    return -1;
}

/* Bit s set when some dim of tensor t reads symbol s (symbols past 63 count as 63: then the batch is ambiguous). */
static uint64_t symbols_of(const rnnf_graph *g, int t)
{
    uint64_t mask = 0;
    const rnnf_gtensor *gt = &g->tensors[t];
    for (int a = 0; a < gt->rank; a++)
        for (int i = g->dim_start[gt->dims_at + a]; i < g->dim_start[gt->dims_at + a + 1]; i++)
            if (g->prog[2 * (size_t)i] == RNNF_DIM_SYM) {
                const int64_t s = g->prog[2 * (size_t)i + 1];
                mask |= (uint64_t)1 << (s < 63 ? s : 63);
            }
    return mask;
}

void rnnf_graph_stream_free(rnnf_graph_stream *s)
{
    if (!s) return;
    for (int k = 0; s->cur && k < s->n_loops; k++) {
        rnnf_mem_free(NULL, s->cur[k].data);
        rnnf_mem_free(NULL, s->nxt[k].data);
    }
    rnnf_graph_state_free(s->st);
    rnnf_mem_free(NULL, s->step_in);
    rnnf_mem_free(NULL, s->step_out);
    rnnf_mem_free(NULL, s->cur);
    rnnf_mem_free(NULL, s->nxt);
    rnnf_mem_free(NULL, s->in);
    rnnf_mem_free(NULL, s->out);
    rnnf_mem_free(NULL, s);
}

static rnnf_status refuse(rnnf_error *err, rnnf_status st, const char *fmt, const char *name)
{
    if (err) snprintf(err->message, RNNF_ERROR_MESSAGE_SIZE, fmt, name);
    return st;
}

rnnf_status rnnf_graph_stream_create(const rnnf_graph *g, int64_t batch, rnnf_graph_stream **out, rnnf_error *err)
{
    if (err) err->message[0] = 0;
    if (!g || !out || batch < 1) return RNNF_ERR_ARG;
    *out = NULL;
    if (!g->meta || !g->meta->n_loops)
        return refuse(err, RNNF_ERR_UNSUPPORTED, "%sthe graph has no state loop (an output fed back as an input)", "");
    rnnf_graph_stream *s = rnnf_mem_alloc(NULL, sizeof *s);
    if (!s) return RNNF_ERR_NOMEM;
    s->g = g;
    s->n_loops = g->meta->n_loops;
    s->step_in = rnnf_mem_alloc(NULL, ((size_t)g->n_inputs + 1) * sizeof(int));
    s->step_out = rnnf_mem_alloc(NULL, ((size_t)g->n_outputs + 1) * sizeof(int));
    s->cur = rnnf_mem_alloc(NULL, (size_t)s->n_loops * sizeof(rnnf_tensor));
    s->nxt = rnnf_mem_alloc(NULL, (size_t)s->n_loops * sizeof(rnnf_tensor));
    s->in = rnnf_mem_alloc(NULL, ((size_t)g->n_inputs + 1) * sizeof(rnnf_tensor));
    s->out = rnnf_mem_alloc(NULL, (size_t)g->n_outputs * sizeof(rnnf_tensor));
    rnnf_status st = s->step_in && s->step_out && s->cur && s->nxt && s->in && s->out ? RNNF_OK : RNNF_ERR_NOMEM;
    if (st == RNNF_OK) st = rnnf_graph_state_create(g, &s->st);
    if (st != RNNF_OK) {
        rnnf_graph_stream_free(s);
        return st;
    }
    for (int i = 0; i < g->n_inputs; i++)
        if (loop_of_input(g, i) < 0) s->step_in[s->n_step_in++] = i;
    for (int o = 0; o < g->n_outputs; o++)
        if (loop_of_output(g, o) < 0) s->step_out[s->n_step_out++] = o;
    /* the batch: the one symbol every state and the first step input read */
    uint64_t common = ~(uint64_t)0;
    for (int k = 0; k < s->n_loops; k++) common &= symbols_of(g, g->inputs[g->meta->loop_in[k]]);
    if (s->n_step_in) common &= symbols_of(g, g->inputs[s->step_in[0]]);
    int batch_sym = -1;
    if (common && !(common & (common - 1)) && !(common >> 63)) {
        batch_sym = 0;
        while (!(common >> batch_sym & 1)) batch_sym++;
    }
    int64_t sym_val[64];
    for (int k = 0; k < 64; k++) sym_val[k] = batch;
    for (int k = 0; k < s->n_loops && st == RNNF_OK; k++) {
        const int t = g->inputs[g->meta->loop_in[k]];
        const rnnf_gtensor *gt = &g->tensors[t];
        const uint64_t reads = symbols_of(g, t);
        if (reads && (batch_sym < 0 || reads != (uint64_t)1 << batch_sym)) {
            st = refuse(err, RNNF_ERR_UNSUPPORTED, "state %s has a size the stream cannot know before the first step "
                        "(each dim must be fixed or the batch)", g->meta->names[g->meta->loop_in[k]]);
            break;
        }
        rnnf_tensor *c = &s->cur[k], *n = &s->nxt[k];
        c->dtype = n->dtype = gt->dtype;
        c->rank = n->rank = gt->rank;
        int64_t numel = 1;
        for (int a = 0; a < gt->rank && st == RNNF_OK; a++) {
            int64_t v = 0;
            if (rnnf_dim_eval(g, gt->dims_at + a, sym_val, &v) != RNNF_OK || v < 0 || (v && numel > INT64_MAX / v) ||
                (v && (size_t)(numel * v) > s->st->memory_limit / rnnf_dtype_size(gt->dtype)))
                st = refuse(err, RNNF_ERR_SHAPE, "state %s: its size for this batch is negative or too large",
                            g->meta->names[g->meta->loop_in[k]]);
            c->dims[a] = n->dims[a] = v;
            numel *= v;
        }
        if (st != RNNF_OK) break;
        const size_t bytes = (size_t)numel * rnnf_dtype_size(gt->dtype);
        c->data = rnnf_mem_alloc(NULL, bytes ? bytes : 1);
        n->data = rnnf_mem_alloc(NULL, bytes ? bytes : 1);
        if (!c->data || !n->data) st = RNNF_ERR_NOMEM;
    }
    if (st != RNNF_OK) {
        rnnf_graph_stream_free(s);
        return st;
    }
    *out = s;
    return RNNF_OK;
}

int rnnf_graph_stream_n_inputs(const rnnf_graph_stream *s) { return s ? s->n_step_in : 0; }
int rnnf_graph_stream_n_outputs(const rnnf_graph_stream *s) { return s ? s->n_step_out : 0; }

/* The whole graph's inputs for a step (states from cur), planned; outputs[] gets the step outputs' shapes. */
static rnnf_status plan_step(rnnf_graph_stream *s, const rnnf_tensor *inputs, rnnf_tensor *outputs, rnnf_error *err)
{
    const rnnf_graph *g = s->g;
    for (int k = 0; k < s->n_step_in; k++) s->in[s->step_in[k]] = inputs[k];
    for (int k = 0; k < s->n_loops; k++) s->in[g->meta->loop_in[k]] = s->cur[k];
    rnnf_status st = rnnf_graph_prepare(s->st, s->in, s->out, err);
    if (st != RNNF_OK) return st;
    for (int k = 0; k < s->n_loops; k++) {
        const rnnf_tensor *o = &s->out[g->meta->loop_out[k]];
        int same = o->rank == s->nxt[k].rank;
        for (int a = 0; same && a < o->rank; a++) same = o->dims[a] == s->nxt[k].dims[a];
        if (!same)
            return refuse(err, RNNF_ERR_SHAPE, "state output %s: its shape for these inputs is not the state's",
                          g->meta->names[g->n_inputs + g->meta->loop_out[k]]);
    }
    for (int k = 0; k < s->n_step_out; k++) {
        void *data = outputs[k].data;
        outputs[k] = s->out[s->step_out[k]];
        outputs[k].data = data;
    }
    return RNNF_OK;
}

rnnf_status rnnf_graph_stream_prepare(rnnf_graph_stream *s, const rnnf_tensor *inputs, rnnf_tensor *outputs,
                                      rnnf_error *err)
{
    if (err) err->message[0] = 0;
    if (!s || (!inputs && s->n_step_in) || (!outputs && s->n_step_out)) return RNNF_ERR_ARG;
    return plan_step(s, inputs, outputs, err);
}

rnnf_status rnnf_graph_stream_step(rnnf_graph_stream *s, const rnnf_tensor *inputs, rnnf_tensor *outputs,
                                   int n_threads, rnnf_error *err)
{
    if (err) err->message[0] = 0;
    if (!s || (!inputs && s->n_step_in) || (!outputs && s->n_step_out)) return RNNF_ERR_ARG;
    rnnf_status st = plan_step(s, inputs, outputs, err);
    if (st != RNNF_OK) return st;
    for (int k = 0; k < s->n_step_out; k++) s->out[s->step_out[k]].data = outputs[k].data;
    for (int k = 0; k < s->n_loops; k++) s->out[s->g->meta->loop_out[k]].data = s->nxt[k].data;
    st = rnnf_graph_run(s->st, s->in, s->out, n_threads, err);
    if (st != RNNF_OK) return st;
    for (int k = 0; k < s->n_loops; k++) {
        void *d = s->cur[k].data;
        s->cur[k].data = s->nxt[k].data;
        s->nxt[k].data = d;
    }
    return RNNF_OK;
}

rnnf_status rnnf_graph_stream_reset(rnnf_graph_stream *s)
{
    if (!s) return RNNF_ERR_ARG;
    for (int k = 0; k < s->n_loops; k++)
        memset(s->cur[k].data, 0, (size_t)rnnf_tensor_numel(&s->cur[k]) * rnnf_dtype_size(s->cur[k].dtype));
    return RNNF_OK;
}

rnnf_status rnnf_graph_stream_state(const rnnf_graph_stream *s, int k, rnnf_tensor *state)
{
    if (!s || !state || k < 0 || k >= s->n_loops) return RNNF_ERR_ARG;
    *state = s->cur[k];
    return RNNF_OK;
}
