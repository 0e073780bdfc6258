/* info.c: what a graph tells its users (rnnf.h, rnnf_graph_*_info, state loops, source): from the .rnnf 2 file's
 * records when it was loaded from one (rnnf_graph_meta, heap blocks of pool.h), else from the description's tensors.
 */
#include "graph/plan.h"
#include "pool.h"

void rnnf_graph_meta_free(rnnf_graph_meta *m)
{
    if (!m) return;
    for (int k = 0; m->names && m->names[k]; k++) rnnf_mem_free(NULL, m->names[k]);
    for (int k = 0; m->shapes && m->shapes[k]; k++) rnnf_mem_free(NULL, m->shapes[k]);
    rnnf_mem_free(NULL, m->names);
    rnnf_mem_free(NULL, m->shapes);
    rnnf_mem_free(NULL, m->source);
    rnnf_mem_free(NULL, m->loop_in);
    rnnf_mem_free(NULL, m->loop_out);
    rnnf_mem_free(NULL, m);
}

int rnnf_graph_n_inputs(const rnnf_graph *g) { return g ? g->n_inputs : 0; }
int rnnf_graph_n_outputs(const rnnf_graph *g) { return g ? g->n_outputs : 0; }

static rnnf_status io_info(const rnnf_graph *g, int is_output, int i, rnnf_graph_io_info *info)
{
    const int n = is_output ? g->n_outputs : g->n_inputs;
    if (!info || i < 0 || i >= n) return RNNF_ERR_ARG;
    const rnnf_gtensor *t = &g->tensors[is_output ? g->outputs[i] : g->inputs[i]];
    const int at = is_output ? g->n_inputs + i : i;
    info->name = g->meta ? g->meta->names[at] : t->name;
    info->shape = g->meta ? g->meta->shapes[at] : "";
    info->dtype = t->dtype;
    info->rank = t->rank;
    for (int a = 0; a < RNNF_G_MAX_RANK; a++) info->dims[a] = 0;
    for (int a = 0; a < t->rank; a++)
        if (rnnf_dim_eval(g, t->dims_at + a, NULL, &info->dims[a]) != RNNF_OK) info->dims[a] = -1;
    return RNNF_OK;
}

rnnf_status rnnf_graph_input_info(const rnnf_graph *g, int i, rnnf_graph_io_info *info)
{
    return g ? io_info(g, 0, i, info) : RNNF_ERR_ARG;
}

rnnf_status rnnf_graph_output_info(const rnnf_graph *g, int i, rnnf_graph_io_info *info)
{
    return g ? io_info(g, 1, i, info) : RNNF_ERR_ARG;
}

int rnnf_graph_n_state_loops(const rnnf_graph *g) { return g && g->meta ? g->meta->n_loops : 0; }

rnnf_status rnnf_graph_state_loop(const rnnf_graph *g, int k, int *input, int *output)
{
    if (!g || k < 0 || k >= rnnf_graph_n_state_loops(g)) return RNNF_ERR_ARG;
    if (input) *input = g->meta->loop_in[k];
    if (output) *output = g->meta->loop_out[k];
    return RNNF_OK;
}

const char *rnnf_graph_source(const rnnf_graph *g) { return g && g->meta ? g->meta->source : ""; }

int rnnf_graph_input_default(const rnnf_graph *g, int i)
{
    if (!g || i < 0 || i >= g->n_inputs || !g->input_default) return RNNF_INPUT_REQUIRED;
    return g->input_default[i];
}
