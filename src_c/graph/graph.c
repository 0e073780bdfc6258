/* graph.c: loading a graph description (rnnf_graph_create) and running it (rnnf_graph_prepare / rnnf_graph_run).
 *
 * Load copies and checks everything the description says (ids in range, programs well formed, every input made
 * before it is read) and lets each op prepare itself from its constant inputs, so a bad description is refused
 * once, by name, and a run never meets it. Prepare evaluates every tensor's dimension programs for the inputs'
 * dims, checks what must be equal, and re-plans the arena only when some dimension changed; run then walks the
 * nodes with concrete tensors and no allocation. If nodes run one of two subgraphs, each with its own state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"
#include "graph/plan.h"

size_t rnnf_dtype_size(int dtype)
{
    switch (dtype) {
    case RNNF_DT_F32: return 4;
    case RNNF_DT_I64: return 8;
    case RNNF_DT_I32: return 4;
    case RNNF_DT_U8: return 1;
    case RNNF_DT_I8: return 1;
    default: return 0;
    }
}

static const rnnf_op_vtable *const OPS[RNNF_OP_COUNT] = {
    [RNNF_OP_COPY] = &rnnf_op_copy,
    [RNNF_OP_UNARY] = &rnnf_op_unary,
    [RNNF_OP_BINARY] = &rnnf_op_binary,
    [RNNF_OP_WHERE] = &rnnf_op_where,
    [RNNF_OP_CAST] = &rnnf_op_cast,
    [RNNF_OP_MATMUL] = &rnnf_op_matmul,
    [RNNF_OP_CONV] = &rnnf_op_conv,
    [RNNF_OP_CONV_TRANSPOSE] = &rnnf_op_conv_transpose,
    [RNNF_OP_MAXPOOL] = &rnnf_op_maxpool,
    [RNNF_OP_AVGPOOL] = &rnnf_op_avgpool,
    [RNNF_OP_SOFTMAX] = &rnnf_op_softmax,
    [RNNF_OP_LAYERNORM] = &rnnf_op_layernorm,
    [RNNF_OP_CHANNEL_AFFINE] = &rnnf_op_channel_affine,
    [RNNF_OP_REDUCE] = &rnnf_op_reduce,
    [RNNF_OP_TRANSPOSE] = &rnnf_op_transpose,
    [RNNF_OP_CONCAT] = &rnnf_op_concat,
    [RNNF_OP_SPLIT] = &rnnf_op_split,
    [RNNF_OP_SLICE] = &rnnf_op_slice,
    [RNNF_OP_GATHER] = &rnnf_op_gather,
    [RNNF_OP_PAD] = &rnnf_op_pad,
    [RNNF_OP_EXPAND] = &rnnf_op_expand,
    [RNNF_OP_FILL] = &rnnf_op_fill,
    [RNNF_OP_RECURRENT] = &rnnf_op_recurrent,
    [RNNF_OP_IF] = NULL,   /* run by the executor itself */
    [RNNF_OP_HOST] = NULL, /* run by the caller */
};

void rnnf_dims_str(char *buf, size_t size, const int64_t *d, int rank)
{
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < rank && at + 1 < size; i++) {
        const int w = snprintf(buf + at, size - at, "%s%lld", i ? "," : "", (long long)d[i]);
        if (w < 0) break;
        at += (size_t)w;
    }
}

const rnnf_op_vtable *rnnf_graph_op(int op) { return op >= 0 && op < RNNF_OP_COUNT ? OPS[op] : NULL; }

static rnnf_status fail(rnnf_error *err, rnnf_status st, const char *fmt, const char *a, const char *b)
{
    if (err) snprintf(err->message, sizeof err->message, fmt, a ? a : "", b ? b : "");
    return st;
}

static char *dup_str(rnnf_pool *pool, const char *s)
{
    s = s ? s : "";
    char *d = rnnf_mem_alloc_raw(pool, strlen(s) + 1);
    if (d) strcpy(d, s);
    return d;
}

void rnnf_graph_free(rnnf_graph *g)
{
    if (!g) return;
    for (int i = 0; i < g->n_nodes; i++) {
        rnnf_gnode *n = &g->nodes[i];
        const rnnf_op_vtable *vt = n->op >= 0 && n->op < RNNF_OP_COUNT ? OPS[n->op] : NULL;
        if (vt && vt->release && n->prep) vt->release(n);
        rnnf_mem_free(g->pool, (void *)n->in);
        rnnf_mem_free(g->pool, (void *)n->out);
        rnnf_mem_free(g->pool, (void *)n->iattr);
        rnnf_mem_free(g->pool, (void *)n->fattr);
        rnnf_mem_free(g->pool, (void *)n->name);
    }
    for (int i = 0; i < g->n_tensors; i++) {
        if (g->tensors[i].owns_data) rnnf_mem_free(g->pool, g->tensors[i].const_data);
        rnnf_mem_free(g->pool, g->tensors[i].name);
    }
    for (int i = 0; i < g->n_subgraphs; i++) rnnf_graph_free(g->subgraphs[i]);
    rnnf_mem_free(g->pool, g->subgraphs);
    rnnf_mem_free(g->pool, g->nodes);
    rnnf_mem_free(g->pool, g->tensors);
    rnnf_mem_free(g->pool, g->inputs);
    rnnf_mem_free(g->pool, g->outputs);
    rnnf_mem_free(g->pool, g->input_default);
    rnnf_mem_free(g->pool, g->sym_input);
    rnnf_mem_free(g->pool, g->sym_axis);
    rnnf_mem_free(g->pool, g->dim_start);
    rnnf_mem_free(g->pool, g->prog);
    for (int c = 0; g->checks && c < g->n_checks; c++) rnnf_mem_free(g->pool, g->checks[c].name);
    rnnf_mem_free(g->pool, g->checks);
    rnnf_graph_meta_free(g->meta);
    rnnf_mem_free(g->pool, g);
}

/* A program must leave exactly one value on a stack that never underflows and reads only known symbols. */
static int program_ok(const int64_t *prog, int n, int n_syms)
{
    int depth = 0;
    for (int i = 0; i < n; i++) {
        const int64_t op = prog[2 * i], arg = prog[2 * i + 1];
        if (op == RNNF_DIM_CONST) depth++;
        else if (op == RNNF_DIM_SYM) {
            if (arg < 0 || arg >= n_syms) return 0;
            depth++;
        } else if (op >= RNNF_DIM_ADD && op <= RNNF_DIM_MOD) {
            if (depth < 2) return 0;
            depth--;
        } else
            return 0;
        if (depth > RNNF_DIM_STACK) return 0;
    }
    return depth == 1;
}

static rnnf_status copy_ids(rnnf_pool *pool, int32_t **dst, const int32_t *src, int n, int n_tensors,
                            int allow_absent)
{
    *dst = rnnf_mem_alloc(pool, (n > 0 ? (size_t)n : 1) * sizeof(int32_t));
    if (!*dst) return RNNF_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        if (src[i] < (allow_absent ? -1 : 0) || src[i] >= n_tensors) return RNNF_ERR_FORMAT;
        (*dst)[i] = src[i];
    }
    return RNNF_OK;
}

static rnnf_status load_tensors(rnnf_graph *g, const rnnf_graph_desc *d, rnnf_error *err)
{
    g->tensors = rnnf_mem_alloc(g->pool, (size_t)d->n_tensors * sizeof(rnnf_gtensor));
    if (!g->tensors) return RNNF_ERR_NOMEM;
    g->n_tensors = d->n_tensors;
    for (int t = 0; t < d->n_tensors; t++) {
        const rnnf_tensor_desc *td = &d->tensors[t];
        rnnf_gtensor *gt = &g->tensors[t];
        gt->name = dup_str(g->pool, td->name);
        if (!gt->name) return RNNF_ERR_NOMEM;
        gt->dtype = td->dtype;
        gt->rank = td->rank;
        gt->dims_at = td->dims_at;
        gt->alias_of = td->alias_of;
        gt->producer = -1;
        if (rnnf_dtype_size(td->dtype) == 0 || td->rank < 0 || td->rank > RNNF_G_MAX_RANK || td->dims_at < 0 ||
            td->dims_at + td->rank > d->n_dims || td->alias_of < -1 || td->alias_of >= d->n_tensors ||
            td->alias_of == t)
            return fail(err, RNNF_ERR_FORMAT, "tensor %s: bad dtype, rank, dimensions or alias%s", gt->name, NULL);
    }
    for (int t = 0; t < d->n_tensors; t++) {
        const rnnf_tensor_desc *td = &d->tensors[t];
        rnnf_gtensor *gt = &g->tensors[t];
        if (!td->data) continue;
        /* A constant's dims are programs of constants only: evaluate them without symbols. */
        int64_t numel = 1;
        for (int a = 0; a < td->rank; a++) {
            int64_t v;
            if (rnnf_dim_eval(g, td->dims_at + a, NULL, &v) != RNNF_OK || v < 0)
                return fail(err, RNNF_ERR_FORMAT, "constant %s: its dimensions are not constants%s", gt->name, NULL);
            gt->const_dims[a] = v;
            if (v && numel > INT64_MAX / v) return fail(err, RNNF_ERR_FORMAT, "constant %s: too large%s", gt->name, NULL);
            numel *= v;
        }
        size_t bytes = (size_t)numel * rnnf_dtype_size(td->dtype), scale_bytes = 0;
        if (td->stored) {
            if ((td->stored != RNNF_WEIGHTS_F16 && td->stored != RNNF_WEIGHTS_I8) || td->dtype != RNNF_DT_F32 ||
                td->rank != 2 || (td->stored == RNNF_WEIGHTS_I8 && !td->scales))
                return fail(err, RNNF_ERR_FORMAT, "constant %s: stored must be float16 (1) or int8 (2, with "
                            "scales) holding a float32 [K, N]%s", gt->name, NULL);
            gt->stored = td->stored;
            bytes = (size_t)numel * (td->stored == RNNF_WEIGHTS_I8 ? 1u : 2u);
            if (td->stored == RNNF_WEIGHTS_I8) scale_bytes = (size_t)gt->const_dims[1] * sizeof(float);
        }
        if (g->pool && ((uintptr_t)td->data & 63) == 0) {
            /* a pool's graph lives no longer than its description (export-c: static const data): read it there */
            gt->const_data = (void *)(uintptr_t)td->data;
            gt->scales = td->scales;
        } else {
            const size_t at = (bytes + 63) & ~(size_t)63; /* the scales after the values, in one block */
            gt->const_data = rnnf_mem_alloc_raw(g->pool, at + scale_bytes ? at + scale_bytes : 1);
            if (!gt->const_data) return RNNF_ERR_NOMEM;
            memcpy(gt->const_data, td->data, bytes);
            if (scale_bytes) {
                memcpy((char *)gt->const_data + at, td->scales, scale_bytes);
                gt->scales = (const float *)(const void *)((char *)gt->const_data + at);
            }
            gt->owns_data = 1;
        }
        gt->is_const = 1;
    }
    /* Views resolve to the tensor that owns the storage; a cycle of views is a malformed description. */
    for (int t = 0; t < d->n_tensors; t++) {
        int r = t, hops = 0;
        while (g->tensors[r].alias_of >= 0 && hops++ <= d->n_tensors) r = g->tensors[r].alias_of;
        if (hops > d->n_tensors) return fail(err, RNNF_ERR_FORMAT, "tensor %s: its views form a cycle%s",
                                             g->tensors[t].name, NULL);
        g->tensors[t].root = r;
        if (r != t && rnnf_dtype_size(g->tensors[r].dtype) != rnnf_dtype_size(g->tensors[t].dtype))
            return fail(err, RNNF_ERR_FORMAT, "tensor %s: a view of %s with another element size",
                        g->tensors[t].name, g->tensors[r].name);
    }
    return RNNF_OK;
}

static rnnf_status load_nodes(rnnf_graph *g, const rnnf_graph_desc *d, rnnf_error *err)
{
    g->nodes = rnnf_mem_alloc(g->pool, (d->n_nodes > 0 ? (size_t)d->n_nodes : 1) * sizeof(rnnf_gnode));
    if (!g->nodes) return RNNF_ERR_NOMEM;
    g->n_nodes = d->n_nodes;
    for (int i = 0; i < d->n_nodes; i++) {
        const rnnf_node_desc *nd = &d->nodes[i];
        rnnf_gnode *n = &g->nodes[i];
        n->name = dup_str(g->pool, nd->name);
        if (!n->name) return RNNF_ERR_NOMEM;
        n->pool = g->pool;
        n->op = nd->op;
        n->index = i;
        if (nd->op < 0 || nd->op >= RNNF_OP_COUNT || nd->n_in < 0 || nd->n_out < 1 || nd->n_iattr < 0 ||
            nd->n_fattr < 0 || nd->n_in > RNNF_G_MAX_IO || nd->n_out > RNNF_G_MAX_IO)
            return fail(err, RNNF_ERR_FORMAT, "%s: bad op code or input/output/attribute counts%s", n->name, NULL);
        n->n_in = nd->n_in;
        n->n_out = nd->n_out;
        int32_t *in = NULL, *out = NULL;
        rnnf_status st = copy_ids(g->pool, &in, nd->in, nd->n_in, g->n_tensors, 1);
        n->in = in;
        if (st == RNNF_OK) st = copy_ids(g->pool, &out, nd->out, nd->n_out, g->n_tensors, 1);
        n->out = out;
        if (st == RNNF_ERR_FORMAT) return fail(err, st, "%s: a tensor id out of range%s", n->name, NULL);
        if (st != RNNF_OK) return st;
        int64_t *ia = rnnf_mem_alloc_raw(g->pool, ((size_t)nd->n_iattr + 1) * sizeof(int64_t));
        float *fa = rnnf_mem_alloc_raw(g->pool, ((size_t)nd->n_fattr + 1) * sizeof(float));
        n->iattr = ia;
        n->fattr = fa;
        if (!ia || !fa) return RNNF_ERR_NOMEM;
        if (nd->n_iattr) memcpy(ia, nd->iattr, (size_t)nd->n_iattr * sizeof(int64_t));
        if (nd->n_fattr) memcpy(fa, nd->fattr, (size_t)nd->n_fattr * sizeof(float));
        n->n_iattr = nd->n_iattr;
        n->n_fattr = nd->n_fattr;
        /* Every input must exist before this node: a graph input, a constant, or an earlier node's output. */
        for (int k = 0; k < n->n_in; k++) {
            const int t = n->in[k];
            if (t >= 0 && !g->tensors[t].is_const && !g->tensors[t].is_input && g->tensors[t].producer < 0 &&
                g->tensors[g->tensors[t].root].producer < 0 && !g->tensors[g->tensors[t].root].is_input &&
                !g->tensors[g->tensors[t].root].is_const)
                return fail(err, RNNF_ERR_FORMAT, "%s: input %s is not made before it is read", n->name,
                            g->tensors[t].name);
        }
        for (int k = 0; k < n->n_out; k++) {
            const int t = n->out[k];
            if (t < 0) continue;
            if (g->tensors[t].producer >= 0 || g->tensors[t].is_const || g->tensors[t].is_input ||
                g->tensors[t].alias_of >= 0)
                return fail(err, RNNF_ERR_FORMAT, "%s: output %s is already defined", n->name,
                            g->tensors[t].name);
            g->tensors[t].producer = i;
        }
        for (int k = 0; k < n->n_in; k++) { /* a stored constant is only ever a MATMUL's own B */
            const int t = n->in[k];
            if (t < 0 || !g->tensors[g->tensors[t].root].stored) continue;
            if (n->op != RNNF_OP_MATMUL || k != 1 || g->tensors[t].root != t)
                return fail(err, RNNF_ERR_FORMAT, "%s: reads constant %s, stored quantized (only a MatMul's B may "
                            "be)", n->name, g->tensors[t].name);
            n->b_stored = g->tensors[t].stored;
            n->b_scales = g->tensors[t].scales;
        }
        if (n->op == RNNF_OP_IF) {
            if (n->n_iattr != 2 || n->n_in < 1 || n->iattr[0] < 0 || n->iattr[0] >= d->n_subgraphs ||
                n->iattr[1] < 0 || n->iattr[1] >= d->n_subgraphs)
                return fail(err, RNNF_ERR_FORMAT, "%s: If needs a condition and two subgraph indices%s",
                            n->name, NULL);
            for (int b = 0; b < 2; b++) {
                const rnnf_graph *sg = g->subgraphs[n->iattr[b]];
                if (sg->n_inputs != n->n_in - 1 || sg->n_outputs != n->n_out)
                    return fail(err, RNNF_ERR_FORMAT, "%s: a branch's inputs/outputs do not match the node%s",
                                n->name, NULL);
            }
            continue;
        }
        if (n->op == RNNF_OP_HOST) {
            if (n->n_iattr != 1 || n->iattr[0] < 0 || n->n_in > RNNF_G_HOST_IO || n->n_out > RNNF_G_HOST_IO)
                return fail(err, RNNF_ERR_FORMAT, "%s: a host node needs its host index and at most 16 inputs and "
                            "outputs%s", n->name, NULL);
            continue;
        }
        rnnf_tensor cin[RNNF_G_MAX_IO];
        for (int k = 0; k < n->n_in; k++) {
            memset(&cin[k], 0, sizeof cin[k]);
            cin[k].dtype = RNNF_DT_NONE;
            const int t = n->in[k];
            if (t < 0) continue;
            const rnnf_gtensor *gt = &g->tensors[g->tensors[t].root];
            cin[k].dtype = g->tensors[t].dtype;
            cin[k].rank = g->tensors[t].rank;
            if (gt->is_const) {
                memcpy(cin[k].dims, g->tensors[t].const_dims, sizeof cin[k].dims);
                if (g->tensors[t].root != t) /* a view of a constant: its own dims, evaluated at load */
                    for (int a = 0; a < cin[k].rank; a++)
                        if (rnnf_dim_eval(g, g->tensors[t].dims_at + a, NULL, &cin[k].dims[a]) != RNNF_OK)
                            return fail(err, RNNF_ERR_FORMAT, "%s: a view of constant %s has symbolic dims",
                                        n->name, g->tensors[t].name);
                cin[k].data = gt->const_data;
            }
        }
        char message[RNNF_ERROR_MESSAGE_SIZE] = "";
        const rnnf_op_vtable *vt = OPS[n->op];
        if (n->op == RNNF_OP_RECURRENT) {
            st = rnnf_recurrent_node_create(n, nd->layers, nd->n_layers, message);
        } else {
            st = vt->prepare ? vt->prepare(n, cin, message) : RNNF_OK;
        }
        if (st != RNNF_OK) {
            if (err) snprintf(err->message, sizeof err->message, "%s: %s", n->name, message);
            return st;
        }
    }
    return RNNF_OK;
}

/* What an absent input is: a constant of its dtype and rank, or zeros whose every size the other inputs give (so it
 * defines no symbol). */
static rnnf_status load_input_defaults(rnnf_graph *g, const rnnf_graph_desc *d, rnnf_error *err)
{
    g->input_default = rnnf_mem_alloc(g->pool, ((size_t)g->n_inputs + 1) * sizeof(int32_t));
    if (!g->input_default) return RNNF_ERR_NOMEM;
    for (int i = 0; i < g->n_inputs; i++) {
        const int32_t v = d->input_default ? d->input_default[i] : RNNF_INPUT_REQUIRED;
        const rnnf_gtensor *t = &g->tensors[g->inputs[i]];
        if (v >= 0) {
            const rnnf_gtensor *c = v < g->n_tensors ? &g->tensors[v] : NULL;
            if (!c || !c->is_const || c->dtype != t->dtype || c->rank != t->rank)
                return fail(err, RNNF_ERR_FORMAT, "graph input %s: its default is not a constant of its dtype and "
                            "rank%s", t->name, NULL);
        } else if (v == RNNF_INPUT_ZEROS) {
            for (int s = 0; s < g->n_syms; s++)
                if (g->sym_input[s] == i)
                    return fail(err, RNNF_ERR_FORMAT, "graph input %s: defaults to zeros but defines a symbol (its "
                                "sizes must come from the other inputs)%s", t->name, NULL);
        } else if (v != RNNF_INPUT_REQUIRED) {
            return fail(err, RNNF_ERR_FORMAT, "graph input %s: unknown default%s", t->name, NULL);
        }
        g->input_default[i] = v;
    }
    return RNNF_OK;
}

rnnf_status rnnf_graph_create(const rnnf_graph_desc *d, rnnf_graph **out, rnnf_error *err)
{
    return rnnf_graph_create_in(d, NULL, out, err);
}

rnnf_status rnnf_graph_create_in(const rnnf_graph_desc *d, rnnf_pool *pool, rnnf_graph **out, rnnf_error *err)
{
    if (err) err->message[0] = 0;
    if (!d || !out) return RNNF_ERR_ARG;
    *out = NULL;
    if (d->n_tensors < 0 || d->n_nodes < 0 || d->n_inputs < 0 || d->n_outputs < 1 || d->n_syms < 0 ||
        d->n_dims < 0 || d->n_checks < 0 || d->n_subgraphs < 0 || (d->n_tensors && !d->tensors) ||
        (d->n_nodes && !d->nodes) || !d->dim_start || !d->outputs)
        return fail(err, RNNF_ERR_FORMAT, "graph: bad counts or missing arrays%s%s", NULL, NULL);
    rnnf_graph *g = rnnf_mem_alloc(pool, sizeof *g);
    if (!g) return RNNF_ERR_NOMEM;
    g->pool = pool;
    rnnf_status st = RNNF_OK;
    /* dimension programs first: tensors' constant dims are evaluated while loading them */
    g->n_dims = d->n_dims;
    g->n_syms = d->n_syms;
    g->dim_start = rnnf_mem_alloc_raw(pool, ((size_t)d->n_dims + 1) * sizeof(int32_t));
    const int n_instr = d->dim_start[d->n_dims];
    g->prog = rnnf_mem_alloc_raw(pool, ((size_t)(n_instr > 0 ? n_instr : 0) + 1) * 2 * sizeof(int64_t));
    if (!g->dim_start || !g->prog) { st = RNNF_ERR_NOMEM; goto done; }
    if (n_instr < 0 || d->dim_start[0] != 0 || (n_instr && !d->prog)) {
        st = fail(err, RNNF_ERR_FORMAT, "graph: bad dimension programs%s%s", NULL, NULL);
        goto done;
    }
    memcpy(g->dim_start, d->dim_start, ((size_t)d->n_dims + 1) * sizeof(int32_t));
    if (n_instr) memcpy(g->prog, d->prog, (size_t)n_instr * 2 * sizeof(int64_t));
    for (int k = 0; k < d->n_dims; k++)
        if (g->dim_start[k + 1] <= g->dim_start[k] || g->dim_start[k + 1] > n_instr ||
            !program_ok(g->prog + 2 * (size_t)g->dim_start[k], g->dim_start[k + 1] - g->dim_start[k], d->n_syms)) {
            st = fail(err, RNNF_ERR_FORMAT, "graph: dimension program is malformed%s%s", NULL, NULL);
            goto done;
        }
    g->subgraphs = rnnf_mem_alloc(pool, (d->n_subgraphs > 0 ? (size_t)d->n_subgraphs : 1) * sizeof(rnnf_graph *));
    if (!g->subgraphs) { st = RNNF_ERR_NOMEM; goto done; }
    for (int i = 0; i < d->n_subgraphs; i++) {
        st = rnnf_graph_create_in(&d->subgraphs[i], pool, &g->subgraphs[i], err);
        g->n_subgraphs = i + 1;
        if (st != RNNF_OK) goto done;
    }
    if ((st = load_tensors(g, d, err)) != RNNF_OK) goto done;
    g->n_inputs = d->n_inputs;
    g->n_outputs = d->n_outputs;
    if ((st = copy_ids(pool, &g->inputs, d->inputs, d->n_inputs, g->n_tensors, 0)) != RNNF_OK ||
        (st = copy_ids(pool, &g->outputs, d->outputs, d->n_outputs, g->n_tensors, 0)) != RNNF_OK) {
        if (st == RNNF_ERR_FORMAT) fail(err, st, "graph: input or output id out of range%s%s", NULL, NULL);
        goto done;
    }
    for (int i = 0; i < g->n_inputs; i++) {
        rnnf_gtensor *t = &g->tensors[g->inputs[i]];
        if (t->is_const || t->alias_of >= 0 || t->is_input) {
            st = fail(err, RNNF_ERR_FORMAT, "graph input %s: a constant, a view or listed twice%s", t->name, NULL);
            goto done;
        }
        t->is_input = 1 + i;
    }
    g->sym_input = rnnf_mem_alloc(pool, (d->n_syms > 0 ? (size_t)d->n_syms : 1) * sizeof(int32_t));
    g->sym_axis = rnnf_mem_alloc(pool, (d->n_syms > 0 ? (size_t)d->n_syms : 1) * sizeof(int32_t));
    if (!g->sym_input || !g->sym_axis) { st = RNNF_ERR_NOMEM; goto done; }
    for (int s = 0; s < d->n_syms; s++) {
        if (d->sym_input[s] < 0 || d->sym_input[s] >= d->n_inputs || d->sym_axis[s] < 0 ||
            d->sym_axis[s] >= g->tensors[g->inputs[d->sym_input[s]]].rank) {
            st = fail(err, RNNF_ERR_FORMAT, "graph: symbol refers to no input axis%s%s", NULL, NULL);
            goto done;
        }
        g->sym_input[s] = d->sym_input[s];
        g->sym_axis[s] = d->sym_axis[s];
    }
    if ((st = load_input_defaults(g, d, err)) != RNNF_OK) goto done;
    g->n_checks = d->n_checks;
    g->checks = rnnf_mem_alloc(pool, (d->n_checks > 0 ? (size_t)d->n_checks : 1) * sizeof(rnnf_dim_check));
    if (!g->checks) { st = RNNF_ERR_NOMEM; goto done; }
    for (int c = 0; c < d->n_checks; c++) {
        if (d->check_a[c] < 0 || d->check_a[c] >= d->n_dims || d->check_b[c] < 0 || d->check_b[c] >= d->n_dims ||
            d->check_node[c] < 0 || d->check_node[c] >= d->n_nodes ||
            (d->check_kind && (d->check_kind[c] < 0 || d->check_kind[c] > 1))) {
            st = fail(err, RNNF_ERR_FORMAT, "graph: a dimension check out of range%s%s", NULL, NULL);
            goto done;
        }
        g->checks[c] = (rnnf_dim_check){d->check_a[c], d->check_b[c], d->check_node[c],
                                        d->check_kind ? d->check_kind[c] : 0, NULL};
        if (d->check_name && d->check_name[c] && !(g->checks[c].name = dup_str(pool, d->check_name[c]))) {
            st = RNNF_ERR_NOMEM;
            goto done;
        }
    }
    if ((st = load_nodes(g, d, err)) != RNNF_OK) goto done;
    for (int i = 0; i < g->n_outputs; i++) {
        const rnnf_gtensor *t = &g->tensors[g->outputs[i]];
        if (t->producer < 0 || t->alias_of >= 0) {
            st = fail(err, RNNF_ERR_FORMAT, "graph output %s: not made by a node (outputs are never views, inputs "
                      "or constants: the description copies them)%s", t->name, NULL);
            goto done;
        }
        g->tensors[g->outputs[i]].output_index = i + 1;
    }
done:
    if (st != RNNF_OK) {
        if (err && !err->message[0]) snprintf(err->message, sizeof err->message, "graph: %s", rnnf_status_str(st));
        rnnf_graph_free(g);
        return st;
    }
    *out = g;
    return RNNF_OK;
}
