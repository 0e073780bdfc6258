/* plan.h: the loaded graph and its run state, shared by graph.c (load), exec.c (plan and run) and the recurrent
 * node. Not part of the op kernels' contract (graph.h): ops see only concrete tensors. */
#ifndef RNNF_GRAPH_PLAN_H
#define RNNF_GRAPH_PLAN_H

#include "graph/graph.h"
#include "internal.h"

#define RNNF_DIM_STACK 32 /* deepest stack a dimension program may use */
#define RNNF_G_MAX_IO 64  /* inputs or outputs of one node */
#define RNNF_GRAPH_DEFAULT_MEMORY_LIMIT ((size_t)4 << 30)

typedef struct {
    char *name;
    int dtype, rank, dims_at, alias_of;
    int root;         /* the tensor that owns the storage (itself unless a view) */
    int is_const, is_input;
    int producer;     /* node index, or -1 */
    int output_index; /* 1 + position among the graph outputs, or 0 */
    int64_t const_dims[RNNF_G_MAX_RANK];
    void *const_data;
    int owns_data;    /* const_data is a copy (else the description's own, borrowed: a pool's graph) */
    int stored;       /* rnnf_tensor_desc.stored: 0, or a float32 MATMUL B held as halves or int8 */
    const float *scales; /* int8: one per column, inside const_data's block when copied */
} rnnf_gtensor;

typedef struct {
    int a, b, node, broadcast;
    char *name; /* NULL: the node's */
} rnnf_dim_check;

/* What a .rnnf 2 file tells a graph's users besides the graph (rnnf_graph_file.c; queried in info.c). */
typedef struct {
    char **names;              /* n_inputs, then n_outputs: the model's names for them */
    char **shapes;             /* likewise: "[batch, 64]", named symbolic dims for messages */
    char *source;              /* where the model came from */
    int n_loops;
    int32_t *loop_in, *loop_out; /* state loops: output loop_out[k] is the next value of input loop_in[k] */
} rnnf_graph_meta;

void rnnf_graph_meta_free(rnnf_graph_meta *meta);

struct rnnf_graph {
    rnnf_graph_meta *meta;     /* NULL unless loaded from a file */
    int n_tensors, n_nodes, n_inputs, n_outputs, n_syms, n_dims, n_checks, n_subgraphs;
    rnnf_gtensor *tensors;
    rnnf_gnode *nodes;
    int32_t *inputs, *outputs;
    int32_t *input_default;    /* per input: RNNF_INPUT_REQUIRED, RNNF_INPUT_ZEROS or a constant tensor id */
    int32_t *sym_input, *sym_axis;
    int32_t *dim_start;
    int64_t *prog;
    rnnf_dim_check *checks;
    rnnf_graph **subgraphs;
    rnnf_pool *pool; /* where its memory came from (NULL: the heap) */
};

/* Per recurrent node: the engine's state for the batch of the current plan. */
typedef struct {
    rnnf_state *st;
    int batch;
} rnnf_recurrent_slot;
struct rnnf_graph_state {
    const rnnf_graph *g;
    rnnf_pool *pool;           /* where its memory comes from (NULL: the heap); with a pool, a plan also plans both
                                  branches of every If, so that nothing is placed after the first plan */
    int planned;               /* a plan exists for sym_val */
    int64_t *sym_val;          /* the symbols' values of the current plan */
    int64_t *dim_val;          /* every dimension program's value */
    int64_t *offset;           /* per tensor: byte offset of its root's storage in the arena, -1 if not there */
    unsigned char *arena;      /* intermediates */
    size_t arena_bytes;
    unsigned char *scratch;    /* one node's scratch at a time */
    size_t scratch_bytes;
    int scratch_threads;       /* the thread count the scratch was sized for */
    rnnf_recurrent_slot *rec;  /* per node (used by recurrent nodes) */
    rnnf_graph_state **branch; /* per node, two (If nodes) */
    rnnf_tensor *tmp_out;      /* a branch's outputs, per If node output */
    rnnf_tensor *in;           /* this call's inputs, absent ones replaced by their defaults (graph.h: ops never
                                  write an input, so the zeros below stay zeros) */
    unsigned char *zeros;      /* zero bytes for the largest zeros-default input of the current plan */
    size_t zeros_bytes;
    double *profile_ns;        /* NULL, or per node: nanoseconds spent in it, accumulated over runs */
    size_t memory_limit;       /* no tensor and no arena may need more (refused before allocating) */
    int paused_at;             /* the host node a run stopped at, or -1 */
    const rnnf_tensor *run_in; /* the paused run's inputs and outputs (the caller keeps them until it ends) */
    rnnf_tensor *run_out;
    double host_t0;            /* when the paused run stopped (seconds), for profiling the host node */
    rnnf_thread_choice threads; /* how many threads runs of this plan use */
    int run_threads;           /* this run's choice (resume continues with it) */
};

/* rnnf_graph_create and rnnf_graph_state_create with their memory from a pool (pool.h; NULL: the heap). With a
 * pool, constants 64-byte aligned in the description are read there, not copied: the description must outlive the
 * graph (export-c: static const data). */
rnnf_status rnnf_graph_create_in(const rnnf_graph_desc *desc, rnnf_pool *pool, rnnf_graph **out, rnnf_error *err);
rnnf_status rnnf_graph_state_create_in(const rnnf_graph *graph, rnnf_pool *pool, rnnf_graph_state **out);

/* Evaluate dimension program k with the symbols' values (NULL: constants only). */
rnnf_status rnnf_dim_eval(const rnnf_graph *g, int k, const int64_t *sym_val, int64_t *out);

/* The op table: the vtable of an op code (NULL for If, which the executor runs itself). */
const rnnf_op_vtable *rnnf_graph_op(int op);

extern const rnnf_op_vtable rnnf_op_recurrent;
rnnf_status rnnf_recurrent_node_create(rnnf_gnode *node, const rnnf_layer_desc *layers, int n_layers,
                                       char *message);
/* Make the engine state for this batch and sequence length (at plan time, so a run allocates nothing), in `pool`. */
rnnf_status rnnf_recurrent_node_plan(const rnnf_gnode *node, rnnf_recurrent_slot *slot, int64_t seq_len,
                                     int64_t batch, rnnf_pool *pool);
/* Its inputs' shapes against X [T, B, I] and the layers (initial_h/c [L*D, B, H], sequence_lens [B], mask [T, B]):
 * at plan time, before any node computes them, and again at run. */
rnnf_status rnnf_recurrent_node_check(const rnnf_gnode *node, const rnnf_tensor *in, const rnnf_tensor *out,
                                      char *message);
rnnf_status rnnf_recurrent_node_run(const rnnf_gnode *node, rnnf_recurrent_slot *slot, const rnnf_tensor *in,
                                    rnnf_tensor *out, int n_threads, char *message);

#endif
