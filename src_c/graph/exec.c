/* exec.c: planning and running a loaded graph.
 *
 * rnnf_graph_prepare turns the inputs' dims into every tensor's dims (the dimension programs), checks them, and
 * when they differ from the last plan places every intermediate in one arena: tensors whose lifetimes overlap get
 * disjoint byte ranges (largest first, lowest free offset), views share their root's range, graph outputs live in
 * the caller's buffers. rnnf_graph_run then only resolves pointers and calls each node's kernel.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "graph/plan.h"

#define ALIGN 64

rnnf_status rnnf_dim_eval(const rnnf_graph *g, int k, const int64_t *sym_val, int64_t *out)
{
    int64_t stack[RNNF_DIM_STACK];
    int sp = 0;
    for (int i = g->dim_start[k]; i < g->dim_start[k + 1]; i++) {
        const int64_t op = g->prog[2 * (size_t)i], arg = g->prog[2 * (size_t)i + 1];
        if (op == RNNF_DIM_CONST) { stack[sp++] = arg; continue; }
        if (op == RNNF_DIM_SYM) {
            if (!sym_val) return RNNF_ERR_SHAPE;
            stack[sp++] = sym_val[arg];
            continue;
        }
        const int64_t b = stack[--sp], a = stack[sp - 1];
        int64_t r;
        switch (op) {
        /* sizes come from the caller's arrays: overflow is an error, never wrap-around */
        case RNNF_DIM_ADD: if (__builtin_add_overflow(a, b, &r)) return RNNF_ERR_SHAPE; break;
        case RNNF_DIM_SUB: if (__builtin_sub_overflow(a, b, &r)) return RNNF_ERR_SHAPE; break;
        case RNNF_DIM_MUL: if (__builtin_mul_overflow(a, b, &r)) return RNNF_ERR_SHAPE; break;
        case RNNF_DIM_FLOORDIV:
            if (b == 0 || (a == INT64_MIN && b == -1)) return RNNF_ERR_SHAPE;
            r = a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
            break;
        case RNNF_DIM_CEILDIV:
            if (b == 0 || a == INT64_MIN) return RNNF_ERR_SHAPE;
            r = -((-a) / b - (((-a) % b != 0) && (((-a) < 0) != (b < 0))));
            break;
        case RNNF_DIM_MAX: r = a > b ? a : b; break;
        case RNNF_DIM_MIN: r = a < b ? a : b; break;
        default: /* RNNF_DIM_MOD */
            if (b == 0 || b == -1) return RNNF_ERR_SHAPE;
            r = a % b;
            if (r != 0 && ((r < 0) != (b < 0))) r += b;
            break;
        }
        stack[sp - 1] = r;
    }
    *out = stack[0];
    return RNNF_OK;
}

void rnnf_graph_state_free(rnnf_graph_state *s)
{
    if (!s) return;
    const rnnf_graph *g = s->g;
    if (s->rec)
        for (int i = 0; i < g->n_nodes; i++) rnnf_state_free(s->rec[i].st);
    if (s->branch)
        for (int i = 0; i < 2 * g->n_nodes; i++) rnnf_graph_state_free(s->branch[i]);
    rnnf_mem_free(s->pool, s->rec);
    rnnf_mem_free(s->pool, s->branch);
    rnnf_mem_free(s->pool, s->sym_val);
    rnnf_mem_free(s->pool, s->dim_val);
    rnnf_mem_free(s->pool, s->offset);
    rnnf_mem_free(s->pool, s->tmp_out);
    rnnf_mem_free(s->pool, s->in);
    rnnf_mem_free(s->pool, s->zeros);
    rnnf_mem_free(s->pool, s->arena);
    rnnf_mem_free(s->pool, s->scratch);
    rnnf_mem_free(s->pool, s);
}

rnnf_status rnnf_graph_state_create(const rnnf_graph *g, rnnf_graph_state **out)
{
    return rnnf_graph_state_create_in(g, NULL, out);
}

rnnf_status rnnf_graph_state_create_in(const rnnf_graph *g, rnnf_pool *pool, rnnf_graph_state **out)
{
    if (!g || !out) return RNNF_ERR_ARG;
    rnnf_graph_state *s = rnnf_mem_alloc(pool, sizeof *s);
    if (!s) return RNNF_ERR_NOMEM;
    s->pool = pool;
    s->g = g;
    s->memory_limit = RNNF_GRAPH_DEFAULT_MEMORY_LIMIT;
    s->paused_at = -1;
    s->sym_val = rnnf_mem_alloc(pool, ((size_t)g->n_syms + 1) * sizeof(int64_t));
    s->dim_val = rnnf_mem_alloc(pool, ((size_t)g->n_dims + 1) * sizeof(int64_t));
    s->offset = rnnf_mem_alloc(pool, ((size_t)g->n_tensors + 1) * sizeof(int64_t));
    s->rec = rnnf_mem_alloc(pool, ((size_t)g->n_nodes + 1) * sizeof(rnnf_recurrent_slot));
    s->branch = rnnf_mem_alloc(pool, (2 * (size_t)g->n_nodes + 1) * sizeof(rnnf_graph_state *));
    s->tmp_out = rnnf_mem_alloc(pool, RNNF_G_MAX_IO * sizeof(rnnf_tensor));
    s->in = rnnf_mem_alloc(pool, ((size_t)g->n_inputs + 1) * sizeof(rnnf_tensor));
    if (!s->sym_val || !s->dim_val || !s->offset || !s->rec || !s->branch || !s->tmp_out || !s->in) {
        rnnf_graph_state_free(s);
        return RNNF_ERR_NOMEM;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].op != RNNF_OP_IF) continue;
        for (int b = 0; b < 2; b++) {
            const rnnf_graph *sg = g->subgraphs[g->nodes[i].iattr[b]];
            rnnf_status st = rnnf_graph_state_create_in(sg, pool, &s->branch[2 * i + b]);
            if (st != RNNF_OK) {
                rnnf_graph_state_free(s);
                return st;
            }
        }
    }
    *out = s;
    return RNNF_OK;
}

/* The concrete view of tensor t for this plan (data resolved at run). */
static void concrete(const rnnf_graph_state *s, int t, rnnf_tensor *v)
{
    const rnnf_gtensor *gt = &s->g->tensors[t];
    v->dtype = gt->dtype;
    v->rank = gt->rank;
    for (int a = 0; a < gt->rank; a++) v->dims[a] = s->dim_val[gt->dims_at + a];
    v->data = NULL;
}

/* Tensor id's concrete shape, or an absent optional one (id < 0) as dtype RNNF_DT_NONE. */
static void concrete_or_absent(const rnnf_graph_state *s, int id, rnnf_tensor *t)
{
    if (id >= 0) {
        concrete(s, id, t);
        return;
    }
    memset(t, 0, sizeof *t);
    t->dtype = RNNF_DT_NONE;
}

static void *data_of(const rnnf_graph_state *s, int t, const rnnf_tensor *inputs, rnnf_tensor *outputs)
{
    const rnnf_gtensor *r = &s->g->tensors[s->g->tensors[t].root];
    if (r->is_const) return r->const_data;
    if (r->is_input) return inputs[r->is_input - 1].data;
    if (r->output_index) return outputs[r->output_index - 1].data;
    return s->arena + s->offset[s->g->tensors[t].root];
}

/* Bytes of tensor t for this plan, or SIZE_MAX when the count overflows (absurd declared sizes). */
static size_t tensor_bytes(const rnnf_graph_state *s, int t)
{
    rnnf_tensor v;
    concrete(s, t, &v);
    size_t n = rnnf_dtype_size(v.dtype);
    for (int a = 0; a < v.rank; a++) {
        const size_t d = (size_t)v.dims[a];
        if (d && n > SIZE_MAX / 2 / d) return SIZE_MAX;
        n *= d;
    }
    return n;
}

static rnnf_status place_arena(rnnf_graph_state *s, rnnf_error *err)
{
    const rnnf_graph *g = s->g;
    const int n = g->n_tensors;
    /* temporaries: a pool gets back what they took (release to the mark) */
    const size_t mark = rnnf_pool_mark(s->pool);
    int *first = rnnf_mem_alloc_raw(s->pool, ((size_t)n + 1) * sizeof(int));
    int *last = rnnf_mem_alloc_raw(s->pool, ((size_t)n + 1) * sizeof(int));
    int *order = rnnf_mem_alloc_raw(s->pool, ((size_t)n + 1) * sizeof(int));
    size_t *bytes = rnnf_mem_alloc_raw(s->pool, ((size_t)n + 1) * sizeof(size_t));
#define FREE_TEMPS()                                                                                                   \
    do {                                                                                                               \
        rnnf_mem_free(s->pool, first), rnnf_mem_free(s->pool, last), rnnf_mem_free(s->pool, order);                    \
        rnnf_mem_free(s->pool, bytes), rnnf_pool_release(s->pool, mark);                                               \
    } while (0)
    if (!first || !last || !order || !bytes) {
        FREE_TEMPS();
        return RNNF_ERR_NOMEM;
    }
    for (int t = 0; t < n; t++) {
        first[t] = g->tensors[t].producer;
        last[t] = g->tensors[t].producer;
        bytes[t] = 0;
        s->offset[t] = -1;
    }
    /* A root lives from its producer to the last node that reads it or any of its views. */
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++) {
            const int t = g->nodes[i].in[k];
            if (t >= 0 && last[g->tensors[t].root] < i) last[g->tensors[t].root] = i;
        }
    int n_placed = 0;
    for (int t = 0; t < n; t++) {
        const rnnf_gtensor *gt = &g->tensors[t];
        if (gt->root != t || gt->is_const || gt->is_input || gt->output_index || gt->producer < 0) continue;
        /* Ops write every output they have; keep unread outputs alive through their producer only. */
        const size_t b = tensor_bytes(s, t);
        if (b > s->memory_limit) {
            if (err) snprintf(err->message, sizeof err->message, "tensor %s would need %s%zu bytes for these input "
                              "shapes, over the memory limit of %zu bytes", g->tensors[t].name,
                              b == SIZE_MAX ? "more than " : "", b == SIZE_MAX ? SIZE_MAX / 2 : b, s->memory_limit);
            FREE_TEMPS();
            return RNNF_ERR_NOMEM;
        }
        bytes[t] = (b + ALIGN - 1) / ALIGN * ALIGN;
        order[n_placed++] = t;
    }
    for (int i = 1; i < n_placed; i++) /* largest first */
        for (int j = i; j > 0 && bytes[order[j]] > bytes[order[j - 1]]; j--) {
            const int x = order[j];
            order[j] = order[j - 1];
            order[j - 1] = x;
        }
    size_t total = 0;
    for (int i = 0; i < n_placed; i++) {
        const int t = order[i];
        size_t off = 0;
        int moved = 1;
        while (moved) { /* lowest offset clear of every placed tensor that is alive at the same time */
            moved = 0;
            for (int j = 0; j < i; j++) {
                const int u = order[j];
                if (last[u] < first[t] || last[t] < first[u]) continue;
                const size_t uo = (size_t)s->offset[u];
                if (off < uo + bytes[u] && uo < off + bytes[t]) {
                    off = uo + bytes[u];
                    moved = 1;
                }
            }
        }
        s->offset[t] = (int64_t)off;
        if (off + bytes[t] > total) total = off + bytes[t];
    }
    FREE_TEMPS();
#undef FREE_TEMPS
    if (total > s->memory_limit) {
        if (err) snprintf(err->message, sizeof err->message, "the intermediates would need %zu bytes for these input "
                          "shapes, over the memory limit of %zu bytes", total, s->memory_limit);
        return RNNF_ERR_NOMEM;
    }
    if (total > s->arena_bytes) {
        rnnf_mem_free(s->pool, s->arena);
        s->arena = rnnf_mem_alloc_raw(s->pool, total);
        s->arena_bytes = s->arena ? total : 0;
        if (!s->arena) {
            if (err) snprintf(err->message, sizeof err->message, "graph: cannot allocate %zu bytes for the "
                              "intermediates", total);
            return RNNF_ERR_NOMEM;
        }
    }
    return RNNF_OK;
}

static rnnf_status plan_nodes(rnnf_graph_state *s, rnnf_error *err)
{
    const rnnf_graph *g = s->g;
    const int nt = rnnf_default_threads() > 1 ? rnnf_default_threads() : 1;
    size_t scratch = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const rnnf_gnode *n = &g->nodes[i];
        rnnf_tensor in[RNNF_G_MAX_IO], out[RNNF_G_MAX_IO];
        for (int k = 0; k < n->n_in; k++) concrete_or_absent(s, n->in[k], &in[k]);
        for (int k = 0; k < n->n_out; k++) concrete_or_absent(s, n->out[k], &out[k]);
        if (n->op == RNNF_OP_RECURRENT) {
            rnnf_status st = rnnf_recurrent_node_plan(n, &s->rec[i], in[0].dims[0], in[0].dims[1], s->pool);
            if (st != RNNF_OK) {
                if (err) snprintf(err->message, sizeof err->message, "%s: cannot make the recurrent state (%s)", n->name, rnnf_status_str(st));
                return st;
            }
            continue;
        }
        if (n->op == RNNF_OP_IF && s->pool) {
            /* a pool is placed once: both branches now, whichever the runs take */
            for (int b = 0; b < 2; b++) {
                rnnf_status st = rnnf_graph_prepare(s->branch[2 * i + b], in + 1, s->tmp_out, err);
                if (st != RNNF_OK) return st;
            }
            continue;
        }
        if (n->op == RNNF_OP_IF || n->op == RNNF_OP_HOST) continue;
        const rnnf_op_vtable *vt = rnnf_graph_op(n->op);
        if (vt && vt->scratch_bytes) {
            const size_t b = vt->scratch_bytes(n, in, out, nt);
            if (b > scratch) scratch = b;
        }
    }
    if (scratch > s->scratch_bytes || !s->scratch) {
        rnnf_mem_free(s->pool, s->scratch);
        s->scratch = rnnf_mem_alloc_raw(s->pool, scratch ? scratch : ALIGN);
        s->scratch_bytes = s->scratch ? scratch : 0;
        if (!s->scratch) {
            if (err) snprintf(err->message, sizeof err->message, "graph: cannot allocate %zu bytes of scratch",
                              scratch);
            return RNNF_ERR_NOMEM;
        }
    }
    s->scratch_threads = nt;
    return RNNF_OK;
}

/* "[2, 5], [7, 3]": the shapes of a node's inputs for this plan, for messages. */
static void node_shapes(const rnnf_graph_state *s, const rnnf_gnode *n, char *buf, size_t size)
{
    size_t at = 0;
    buf[0] = 0;
    for (int k = 0; k < n->n_in && at + 24 < size; k++) {
        if (n->in[k] < 0) continue;
        const rnnf_gtensor *t = &s->g->tensors[n->in[k]];
        at += (size_t)snprintf(buf + at, size - at, "%s[", at ? ", " : "");
        for (int a = 0; a < t->rank && at + 24 < size; a++)
            at += (size_t)snprintf(buf + at, size - at, "%s%lld", a ? ", " : "", (long long)s->dim_val[t->dims_at + a]);
        if (at + 2 < size) at += (size_t)snprintf(buf + at, size - at, "]");
    }
}

static const char *dtype_name(int dt)
{
    switch (dt) {
    case RNNF_DT_F32: return "float32";
    case RNNF_DT_I64: return "int64";
    case RNNF_DT_I32: return "int32";
    case RNNF_DT_U8: return "bool";
    case RNNF_DT_I8: return "int8";
    default: return "none";
    }
}

/* A recurrent node's states, lengths, mask and outputs checked against its X before the arena is placed: a file
 * whose initial state cannot fit must be refused before a ConstantOfShape fills gigabytes of it, and one that
 * declares a final state smaller than its layers write must be refused before the run writes past it. */
static rnnf_status check_recurrent_inputs(const rnnf_graph_state *s, rnnf_error *err)
{
    for (int i = 0; i < s->g->n_nodes; i++) {
        const rnnf_gnode *n = &s->g->nodes[i];
        if (n->op != RNNF_OP_RECURRENT) continue;
        rnnf_tensor in[RNNF_G_MAX_IO], out[RNNF_G_MAX_IO];
        char message[RNNF_ERROR_MESSAGE_SIZE] = "";
        for (int k = 0; k < n->n_in; k++) concrete_or_absent(s, n->in[k], &in[k]);
        for (int k = 0; k < n->n_out; k++) concrete_or_absent(s, n->out[k], &out[k]);
        const rnnf_status st = rnnf_recurrent_node_check(n, in, out, message);
        if (st != RNNF_OK) {
            if (err) snprintf(err->message, sizeof err->message, "%s: %s", n->name, message);
            return st;
        }
    }
    return RNNF_OK;
}

/* s->in: the call's inputs, each absent one (dtype RNNF_DT_NONE) replaced by its constant default; one that defaults
 * to zeros stays absent until the plan's dims give its shape (zeros_input). */
static rnnf_status with_defaults(rnnf_graph_state *s, const rnnf_tensor *inputs, rnnf_error *err)
{
    const rnnf_graph *g = s->g;
    for (int i = 0; i < g->n_inputs; i++) {
        s->in[i] = inputs[i];
        if (inputs[i].dtype != RNNF_DT_NONE) continue;
        const int32_t d = g->input_default ? g->input_default[i] : RNNF_INPUT_REQUIRED;
        if (d == RNNF_INPUT_REQUIRED) {
            if (err) snprintf(err->message, sizeof err->message, "input '%s' is required (it has no default)",
                              g->tensors[g->inputs[i]].name);
            return RNNF_ERR_ARG;
        }
        if (d >= 0) {
            const rnnf_gtensor *c = &g->tensors[d];
            s->in[i].dtype = c->dtype;
            s->in[i].rank = c->rank;
            for (int a = 0; a < c->rank; a++) s->in[i].dims[a] = c->const_dims[a];
            s->in[i].data = c->const_data;
        }
    }
    return RNNF_OK;
}

/* An absent zeros-default input as the plan's zeros: its dims are its dimension programs' values (they read only
 * other inputs' symbols). */
static void zeros_input(rnnf_graph_state *s, int i)
{
    const rnnf_gtensor *t = &s->g->tensors[s->g->inputs[i]];
    s->in[i].dtype = t->dtype;
    s->in[i].rank = t->rank;
    for (int a = 0; a < t->rank; a++) s->in[i].dims[a] = s->dim_val[t->dims_at + a];
    s->in[i].data = s->zeros;
}

/* Zero bytes for the largest zeros-default input of this plan, given or not (so a run that leaves one out after a
 * prepare that gave it allocates nothing); grown only when a plan needs more. */
static rnnf_status place_zeros(rnnf_graph_state *s, rnnf_error *err)
{
    const rnnf_graph *g = s->g;
    size_t need = 0;
    for (int i = 0; i < g->n_inputs; i++)
        if (g->input_default && g->input_default[i] == RNNF_INPUT_ZEROS) {
            const size_t b = tensor_bytes(s, g->inputs[i]);
            if (b > need) need = b;
        }
    if (need > s->memory_limit) {
        if (err) snprintf(err->message, sizeof err->message, "a zeros default would need %s%zu bytes for these "
                          "input shapes, over the memory limit of %zu bytes", need == SIZE_MAX ? "more than " : "",
                          need == SIZE_MAX ? SIZE_MAX / 2 : need, s->memory_limit);
        return RNNF_ERR_NOMEM;
    }
    if (need > s->zeros_bytes) {
        rnnf_mem_free(s->pool, s->zeros);
        s->zeros = rnnf_mem_alloc(s->pool, need); /* zero-filled, and never written */
        s->zeros_bytes = s->zeros ? need : 0;
        if (!s->zeros) {
            if (err) snprintf(err->message, sizeof err->message, "graph: cannot allocate %zu bytes of zeros", need);
            return RNNF_ERR_NOMEM;
        }
    }
    return RNNF_OK;
}

rnnf_status rnnf_graph_prepare(rnnf_graph_state *s, const rnnf_tensor *inputs, rnnf_tensor *outputs,
                               rnnf_error *err)
{
    if (err) err->message[0] = 0;
    if (!s || (!inputs && s->g->n_inputs) || !outputs) return RNNF_ERR_ARG;
    const rnnf_graph *g = s->g;
    rnnf_status dst = with_defaults(s, inputs, err);
    if (dst != RNNF_OK) return dst;
    inputs = s->in;
    for (int i = 0; i < g->n_inputs; i++) {
        const rnnf_gtensor *t = &g->tensors[g->inputs[i]];
        if (inputs[i].dtype == RNNF_DT_NONE) continue; /* zeros: its dims are the plan's, set below */
        if (inputs[i].dtype != t->dtype || inputs[i].rank != t->rank) {
            if (err) snprintf(err->message, sizeof err->message, "input '%s' is %s of rank %d, expected %s of "
                              "rank %d",
                              t->name, dtype_name(inputs[i].dtype), inputs[i].rank, dtype_name(t->dtype), t->rank);
            return RNNF_ERR_SHAPE;
        }
        for (int a = 0; a < t->rank; a++)
            if (inputs[i].dims[a] < 0) return RNNF_ERR_ARG;
    }
    int changed = !s->planned;
    for (int k = 0; k < g->n_syms; k++) {
        const int64_t v = inputs[g->sym_input[k]].dims[g->sym_axis[k]];
        if (v != s->sym_val[k]) changed = 1;
        s->sym_val[k] = v;
    }
    if (changed) {
        s->planned = 0;
        for (int k = 0; k < g->n_dims; k++)
            if (rnnf_dim_eval(g, k, s->sym_val, &s->dim_val[k]) != RNNF_OK) {
                if (err) snprintf(err->message, sizeof err->message, "graph: a dimension divides by zero or "
                                  "overflows for these input shapes");
                return RNNF_ERR_SHAPE;
            }
    }
    /* Every call, not only when a symbol changed: an input that does not define a symbol (a state [L, B, H] beside
     * x [T, B, F]) can change its shape alone, and the plan must never see sizes it was not made for. */
    for (int i = 0; i < g->n_inputs; i++)
        if (s->in[i].dtype == RNNF_DT_NONE) zeros_input(s, i);
    for (int i = 0; i < g->n_inputs; i++) {
        const rnnf_gtensor *t = &g->tensors[g->inputs[i]];
        for (int a = 0; a < t->rank; a++)
            if (s->dim_val[t->dims_at + a] != inputs[i].dims[a]) {
                if (err) snprintf(err->message, sizeof err->message, "input '%s' has size %lld on axis %d, "
                                  "expected %lld", t->name, (long long)inputs[i].dims[a], a,
                                  (long long)s->dim_val[t->dims_at + a]);
                return RNNF_ERR_SHAPE;
            }
    }
    if (changed) {
        for (int c = 0; c < g->n_checks; c++) {
            const rnnf_dim_check *ck = &g->checks[c];
            const int64_t a = s->dim_val[ck->a], b = s->dim_val[ck->b];
            if (a != b && !(ck->broadcast && (a == 1 || b == 1))) {
                if (err) {
                    char shapes[160];
                    node_shapes(s, &g->nodes[ck->node], shapes, sizeof shapes);
                    snprintf(err->message, sizeof err->message, "%s: sizes %lld and %lld %s (inputs %s)",
                             ck->name ? ck->name : g->nodes[ck->node].name, (long long)a, (long long)b,
                             ck->broadcast ? "do not broadcast" : "must be equal", shapes);
                }
                return RNNF_ERR_SHAPE;
            }
        }
        for (int t = 0; t < g->n_tensors; t++)
            for (int a = 0; a < g->tensors[t].rank; a++)
                if (s->dim_val[g->tensors[t].dims_at + a] < 0) {
                    if (err) snprintf(err->message, sizeof err->message, "tensor %s: negative size %lld on axis %d "
                                      "for these input shapes", g->tensors[t].name,
                                      (long long)s->dim_val[g->tensors[t].dims_at + a], a);
                    return RNNF_ERR_SHAPE;
                }
        rnnf_status st = check_recurrent_inputs(s, err);
        if (st == RNNF_OK) st = place_zeros(s, err);
        if (st == RNNF_OK) st = place_arena(s, err);
        if (st == RNNF_OK) st = plan_nodes(s, err);
        if (st != RNNF_OK) return st;
        s->planned = 1;
        rnnf_thread_choice_reset(&s->threads); /* other shapes: whether threads pay is measured again */
    }
    for (int i = 0; i < g->n_outputs; i++) {
        concrete(s, g->outputs[i], &outputs[i]);
        const size_t b = tensor_bytes(s, g->outputs[i]);
        if (b > s->memory_limit) {
            if (err) snprintf(err->message, sizeof err->message, "output %s would need %s%zu bytes for these input "
                              "shapes, over the memory limit of %zu bytes", g->tensors[g->outputs[i]].name,
                              b == SIZE_MAX ? "more than " : "", b == SIZE_MAX ? SIZE_MAX / 2 : b, s->memory_limit);
            s->planned = 0;
            return RNNF_ERR_NOMEM;
        }
    }
    return RNNF_OK;
}

static rnnf_status run_from(rnnf_graph_state *s, int first, const rnnf_tensor *inputs, rnnf_tensor *outputs,
                            rnnf_error *err);

/* The branch runs with the thread count its parent's run chose: one choice per run, not one per branch. */
static rnnf_status run_if(rnnf_graph_state *s, int i, const rnnf_tensor *in, rnnf_tensor *out, int n_threads,
                          rnnf_error *err)
{
    const rnnf_gnode *n = &s->g->nodes[i];
    const size_t es = rnnf_dtype_size(in[0].dtype);
    if (rnnf_tensor_numel(&in[0]) != 1 || es == 0) {
        if (err) snprintf(err->message, sizeof err->message, "%s: the condition must hold one value",
                          n->name);
        return RNNF_ERR_SHAPE;
    }
    int cond = 0;
    for (size_t b = 0; b < es; b++) cond |= ((const unsigned char *)in[0].data)[b] != 0;
    rnnf_graph_state *bs = s->branch[2 * i + (cond ? 0 : 1)];
    rnnf_tensor *tmp = s->tmp_out;
    rnnf_status st = rnnf_graph_prepare(bs, in + 1, tmp, err);
    if (st != RNNF_OK) return st;
    for (int k = 0; k < n->n_out; k++) {
        if (n->out[k] < 0) continue;
        int same = tmp[k].dtype == out[k].dtype && tmp[k].rank == out[k].rank;
        for (int a = 0; same && a < out[k].rank; a++) same = tmp[k].dims[a] == out[k].dims[a];
        if (!same) {
            if (err) snprintf(err->message, sizeof err->message, "%s: the %s branch's output %d has another "
                              "shape than the graph expects", n->name, cond ? "then" : "else", k);
            return RNNF_ERR_SHAPE;
        }
        tmp[k].data = out[k].data;
    }
    bs->paused_at = -1;
    bs->run_threads = n_threads;
    return run_from(bs, 0, in + 1, tmp, err);
}

rnnf_status rnnf_graph_state_set_memory_limit(rnnf_graph_state *s, size_t bytes)
{
    if (!s) return RNNF_ERR_ARG;
    s->memory_limit = bytes ? bytes : RNNF_GRAPH_DEFAULT_MEMORY_LIMIT;
    for (int i = 0; i < 2 * s->g->n_nodes; i++)
        if (s->branch[i]) rnnf_graph_state_set_memory_limit(s->branch[i], bytes);
    s->planned = 0;
    return RNNF_OK;
}

rnnf_status rnnf_graph_state_profile(rnnf_graph_state *s, double *ns_per_node)
{
    if (!s) return RNNF_ERR_ARG;
    s->profile_ns = ns_per_node;
    return RNNF_OK;
}

int rnnf_graph_n_nodes(const rnnf_graph *g) { return g ? g->n_nodes : 0; }

rnnf_status rnnf_graph_state_threads(const rnnf_graph_state *s, int *n_threads, double *seconds_one,
                                     double *seconds_asked)
{
    if (!s) return RNNF_ERR_ARG;
    const int n = rnnf_thread_choice_current(&s->threads, seconds_one, seconds_asked);
    if (n_threads) *n_threads = n;
    return RNNF_OK;
}

static double now_seconds(void) { return 1e-9 * (double)rnnf_monotonic_ns(); }

/* The concrete tensors of node n for this call. */
static void node_io(const rnnf_graph_state *s, const rnnf_gnode *n, const rnnf_tensor *inputs, rnnf_tensor *outputs,
                    rnnf_tensor *in, rnnf_tensor *out)
{
    for (int k = 0; k < n->n_in; k++) {
        if (n->in[k] < 0) { memset(&in[k], 0, sizeof in[k]); in[k].dtype = RNNF_DT_NONE; continue; }
        concrete(s, n->in[k], &in[k]);
        in[k].data = data_of(s, n->in[k], inputs, outputs);
    }
    for (int k = 0; k < n->n_out; k++) {
        if (n->out[k] < 0) { memset(&out[k], 0, sizeof out[k]); out[k].dtype = RNNF_DT_NONE; continue; }
        concrete(s, n->out[k], &out[k]);
        out[k].data = data_of(s, n->out[k], inputs, outputs);
    }
}

static rnnf_status run_from(rnnf_graph_state *s, int first, const rnnf_tensor *inputs, rnnf_tensor *outputs,
                            rnnf_error *err)
{
    const rnnf_graph *g = s->g;
    /* s->run_threads was chosen for the whole run (adapt.c): the ops and the recurrent nodes use it alike. */
    const int nt = s->run_threads < s->scratch_threads ? s->run_threads : s->scratch_threads;
    rnnf_op_ctx ctx;
    char message[RNNF_ERROR_MESSAGE_SIZE];
    ctx.K = rnnf_kernels_get();
    ctx.n_threads = nt > 0 ? nt : 1;
    ctx.scratch = s->scratch;
    ctx.message = message;
    for (int i = first; i < g->n_nodes; i++) {
        const rnnf_gnode *n = &g->nodes[i];
        if (n->op == RNNF_OP_HOST) {
            if (s->profile_ns) s->host_t0 = now_seconds();
            s->paused_at = i;
            s->run_in = inputs;
            s->run_out = outputs;
            return RNNF_HOST;
        }
        rnnf_tensor in[RNNF_G_MAX_IO], out[RNNF_G_MAX_IO];
        node_io(s, n, inputs, outputs, in, out);
        message[0] = 0;
        rnnf_status st;
        struct timespec t0, t1;
        if (s->profile_ns) clock_gettime(CLOCK_MONOTONIC, &t0);
        if (n->op == RNNF_OP_IF)
            st = run_if(s, i, in, out, s->run_threads, err);
        else if (n->op == RNNF_OP_RECURRENT)
            st = rnnf_recurrent_node_run(n, &s->rec[i], in, out, s->run_threads, message);
        else
            st = rnnf_graph_op(n->op)->run(n, in, out, &ctx);
        if (s->profile_ns) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            s->profile_ns[i] += (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
        }
        if (n->op == RNNF_OP_IF) {
            if (st != RNNF_OK) return st == RNNF_HOST ? RNNF_ERR_UNSUPPORTED : st; /* no host nodes in branches */
            continue;
        }
        if (st != RNNF_OK) {
            if (err) snprintf(err->message, sizeof err->message, "%s: %s", n->name,
                              message[0] ? message : rnnf_status_str(st));
            return st;
        }
    }
    return RNNF_OK;
}

/* A run that completed is timed for the thread choice (adapt.c; a paused one when it completes: host time counts for
 * both arms alike). */
static rnnf_status finish(rnnf_graph_state *s, rnnf_status st)
{
    if (st == RNNF_OK) rnnf_thread_choice_finish(&s->threads, 1);
    return st;
}

rnnf_status rnnf_graph_run(rnnf_graph_state *s, const rnnf_tensor *inputs, rnnf_tensor *outputs, int n_threads,
                           rnnf_error *err)
{
    if (err) err->message[0] = 0;
    if (!s || !s->planned || (!inputs && s->g->n_inputs) || !outputs) return RNNF_ERR_ARG;
    const rnnf_graph *g = s->g;
    rnnf_status dst = with_defaults(s, inputs, err);
    if (dst != RNNF_OK) return dst;
    inputs = s->in;
    for (int i = 0; i < g->n_inputs; i++) {
        if (inputs[i].dtype == RNNF_DT_NONE) zeros_input(s, i);
        if (!inputs[i].data && rnnf_tensor_numel(&inputs[i])) return RNNF_ERR_ARG;
    }
    for (int i = 0; i < g->n_outputs; i++)
        if (!outputs[i].data && rnnf_tensor_numel(&outputs[i])) return RNNF_ERR_ARG;
    s->paused_at = -1;
    s->run_threads = rnnf_thread_choice_start(&s->threads, n_threads);
    return finish(s, run_from(s, 0, inputs, outputs, err));
}

rnnf_status rnnf_graph_host_io(const rnnf_graph_state *s, rnnf_tensor *in, int *n_in, rnnf_tensor *out, int *n_out,
                               int *host_index)
{
    if (!s || s->paused_at < 0 || !in || !out || !n_in || !n_out || !host_index) return RNNF_ERR_ARG;
    const rnnf_gnode *n = &s->g->nodes[s->paused_at];
    node_io(s, n, s->run_in, s->run_out, in, out);
    *n_in = n->n_in;
    *n_out = n->n_out;
    *host_index = (int)n->iattr[0];
    return RNNF_OK;
}

rnnf_status rnnf_graph_resume(rnnf_graph_state *s, int n_threads, rnnf_error *err)
{
    if (err) err->message[0] = 0;
    if (!s || s->paused_at < 0) return RNNF_ERR_ARG;
    const int next = s->paused_at + 1;
    if (s->profile_ns) s->profile_ns[s->paused_at] += (now_seconds() - s->host_t0) * 1e9;
    s->paused_at = -1;
    (void)n_threads; /* the run keeps the count it began with */
    return finish(s, run_from(s, next, s->run_in, s->run_out, err));
}
