/* rnnf.h: the public C API of rnnfast.
 *
 * Plain C99, no Python and no OpenMP types, so firmware and C programs can use the engine directly.
 * A model (rnnf_model) holds packed, immutable weights of one or more stacked recurrent layers; a state
 * (rnnf_state) holds everything that changes while running (recurrent state and scratch), so several
 * threads may run one model concurrently with one state each. Every function that can fail returns an
 * rnnf_status; none aborts on user input.
 *
 * Semantics are ONNX's (RNN / GRU / LSTM operators): gate order LSTM i,o,f,c and GRU z,r,h; weights
 * w_ih [n_dirs][n_gates*hidden][input], w_hh [n_dirs][n_gates*hidden][out], biases [n_dirs][n_gates*hidden],
 * peepholes [n_dirs][3*hidden] (i,o,f), projection w_hr [n_dirs][proj][hidden]; out = proj or hidden.
 */
#ifndef RNNF_H
#define RNNF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RNNF_VERSION_MAJOR 0
#define RNNF_VERSION_MINOR 1

typedef enum {
    RNNF_OK = 0,
    RNNF_ERR_ARG = 1,         /* a null pointer or an out-of-range argument */
    RNNF_ERR_SHAPE = 2,       /* dimensions that do not fit the model or each other */
    RNNF_ERR_NOMEM = 3,       /* an allocation failed */
    RNNF_ERR_FORMAT = 4,      /* a malformed or truncated model file */
    RNNF_ERR_ISA = 5,         /* the requested instruction set is not compiled in or not supported by this CPU */
    RNNF_ERR_UNSUPPORTED = 6, /* a valid request this build does not implement */
    RNNF_ERR_IO = 7,          /* a model file cannot be opened or read */
    RNNF_HOST = 8             /* not an error: rnnf_graph_run stopped at a node the caller runs (rnnf_graph_host_io) */
} rnnf_status;

const char *rnnf_status_str(rnnf_status status);

typedef enum { RNNF_CELL_RNN = 0, RNNF_CELL_GRU = 1, RNNF_CELL_LSTM = 2 } rnnf_cell;

/* How a layer stores w_ih, w_hh and w_hr; computation is float32 in every case. */
typedef enum { RNNF_WEIGHTS_F32 = 0, RNNF_WEIGHTS_F16 = 1, RNNF_WEIGHTS_I8 = 2 } rnnf_weight_dtype;

/* ONNX activation functions plus the Keras ones ONNX lacks. alpha/beta as in the ONNX spec. */
typedef enum {
    RNNF_ACT_RELU = 0,
    RNNF_ACT_TANH,
    RNNF_ACT_SIGMOID,
    RNNF_ACT_AFFINE,          /* alpha*x + beta */
    RNNF_ACT_LEAKYRELU,       /* x >= 0 ? x : alpha*x */
    RNNF_ACT_THRESHOLDEDRELU, /* x > alpha ? x : 0 */
    RNNF_ACT_SCALEDTANH,      /* alpha*tanh(beta*x) */
    RNNF_ACT_HARDSIGMOID,     /* clamp(alpha*x + beta, 0, 1) */
    RNNF_ACT_ELU,             /* x >= 0 ? x : alpha*(exp(x)-1) */
    RNNF_ACT_SOFTSIGN,        /* x/(1+|x|) */
    RNNF_ACT_SOFTPLUS,        /* log(1+exp(x)) */
    RNNF_ACT_SELU,            /* Keras selu */
    RNNF_ACT_SWISH,           /* x*sigmoid(x) */
    RNNF_ACT_GELU,            /* 0.5*x*(1+erf(x/sqrt(2))) */
    RNNF_ACT_EXP,             /* exp(x) */
    RNNF_ACT_COUNT
} rnnf_act_kind;

typedef struct {
    int kind; /* rnnf_act_kind */
    float alpha;
    float beta;
} rnnf_activation;

/* One layer as handed to rnnf_model_create. The weights are copied (packed); the caller keeps ownership. */
typedef struct {
    int cell;        /* rnnf_cell */
    int n_dirs;      /* 1 or 2 (bidirectional) */
    int reverse;     /* with n_dirs == 1: process t = T-1..0 (outputs stay aligned with inputs) */
    int input_size;
    int hidden_size;
    int proj_size;   /* LSTM projection size, 0 for none */
    const float *w_ih, *w_hh;
    const float *b_ih, *b_hh;   /* may be NULL: zeros */
    const float *peepholes;     /* LSTM only, may be NULL */
    const float *w_hr;          /* LSTM projection, NULL when proj_size == 0 */
    rnnf_activation act[2][3];  /* per direction: RNN f; GRU f,g; LSTM f,g,h */
    float clip;                 /* > 0: clamp every gate pre-activation to [-clip, clip]; <= 0: none */
    int input_forget;           /* LSTM: f = 1 - i */
    int linear_before_reset;    /* GRU */
    /* rnnf_weight_dtype; 0 (a zeroed desc) is float32 from w_ih/w_hh/w_hr. Otherwise those are ignored and
     * q_ih/q_hh/q_hr (same shapes) hold IEEE binary16 bit patterns (uint16_t) or int8 values, with, for
     * int8, one float32 scale per row in s_ih/s_hh/s_hr ([n_dirs][rows]): w[r][k] = s[r] * q[r][k]. */
    int weight_dtype;
    const void *q_ih, *q_hh, *q_hr;
    const float *s_ih, *s_hh, *s_hr;
} rnnf_layer_desc;

typedef struct rnnf_model rnnf_model;
typedef struct rnnf_state rnnf_state;

/* Layer k > 0 takes layer k-1's output, both directions concatenated: input_size == n_dirs * out. */
rnnf_status rnnf_model_create(const rnnf_layer_desc *layers, int n_layers, rnnf_model **out);
void rnnf_model_free(rnnf_model *model);
int rnnf_model_n_layers(const rnnf_model *model);
/* Sizes of one layer: returns RNNF_ERR_ARG for a bad index. Any output pointer may be NULL. */
rnnf_status rnnf_model_layer_info(const rnnf_model *model, int layer, int *cell, int *n_dirs, int *input_size,
                                  int *hidden_size, int *out_size);

/* A state for `batch` rows. Streaming (rnnf_step) keeps the recurrent state here between calls. */
rnnf_status rnnf_state_create(const rnnf_model *model, int batch, rnnf_state **out);
void rnnf_state_free(rnnf_state *state);
/* Zero the recurrent state of every layer, for all rows (rows == NULL) or for the n_rows listed. */
rnnf_status rnnf_state_reset(rnnf_state *state, const int32_t *rows, int n_rows);
/* Copy one layer's h [n_dirs][batch][out] or c [n_dirs][batch][hidden] out of / into the state. */
rnnf_status rnnf_state_get(const rnnf_state *state, int layer, int which_c, float *dst);
/* Threads: rnnf_run and rnnf_step on a state use one thread or the count asked (<= 0: rnnf_default_threads()),
 * whichever the state's recent calls measured faster per step (a stream stepped every few ms found its partner
 * thread asleep at every step; a busy machine makes a second thread a loss; the bits are the same either way). The
 * count in use now and the recent median seconds per step of each (0: not measured yet). */
rnnf_status rnnf_state_threads(const rnnf_state *state, int *n_threads, double *seconds_one, double *seconds_asked);
rnnf_status rnnf_state_set(rnnf_state *state, int layer, int which_c, const float *src);

/* How rnnf_run writes y: ONNX [seq][dir][batch][out], or merged [seq][batch][dir*out] (Keras / PyTorch). */
typedef enum { RNNF_Y_SEQ_DIR_BATCH = 0, RNNF_Y_SEQ_BATCH_DIR = 1 } rnnf_y_layout;

typedef struct {
    int seq_len;
    int batch;                      /* must equal the state's batch */
    const float *x;                 /* [seq_len][batch][input_size] */
    const int32_t *sequence_lens;   /* [batch] in [0, seq_len], or NULL. ONNX: steps past a row's length
                                       give zeros in y, the final state is the last valid step's, and a
                                       length of 0 gives a zero final state. */
    const uint8_t *mask;            /* [seq_len][batch], nonzero = real step, or NULL. Keras: a masked step
                                       keeps the state and repeats the previous output (zeros before the
                                       first real step), or gives zeros with mask_zero_output. */
    int mask_zero_output;
    const float *const *initial_h;  /* NULL, or per layer NULL (zeros) or [n_dirs][batch][out] */
    const float *const *initial_c;  /* likewise [n_dirs][batch][hidden] */
    float *y;                       /* last layer's output sequence, or NULL */
    int y_layout;                   /* rnnf_y_layout */
    float *const *y_h;              /* NULL, or per layer NULL or [n_dirs][batch][out] */
    float *const *y_c;              /* likewise [n_dirs][batch][hidden] (LSTM layers only) */
    int n_threads;                  /* <= 0: one per available core. A count is the most threads used: while
                                       per-step waits show the machine busy, calls use one (the same bits) */
} rnnf_run_args;

/* Run whole sequences from the given initial state; the state object only provides scratch and is left
 * holding each layer's final state (so a stream may continue from it). */
rnnf_status rnnf_run(const rnnf_model *model, rnnf_state *state, const rnnf_run_args *args);

/* One time step for every row, continuing from the state: x [batch][input_size], y [batch][out of the
 * last layer] (may be NULL). Allocates nothing. Bidirectional layers cannot stream: RNNF_ERR_UNSUPPORTED. */
rnnf_status rnnf_step(const rnnf_model *model, rnnf_state *state, const float *x, float *y, int n_threads);

/* ---- .rnnf model files (docs/format.md) and whole pipelines ----
 *
 * A .rnnf file holds a pipeline: an optional Embedding, stacks of recurrent layers, Dense stages. Loading
 * checks every offset, size, count and enum; a damaged or unsupported file gives RNNF_ERR_FORMAT (or
 * RNNF_ERR_UNSUPPORTED for a valid file this function cannot represent, RNNF_ERR_IO when the file cannot be
 * read) and, when `err` is not NULL, a message naming the file, the record and the field, e.g.
 * "m.rnnf: layer 1 (stage 1): w_hh (blob 5) has shape [1,20,4], expected [1,20,5]". No global error state:
 * the message lives in the caller's rnnf_error, so loading is thread-safe. `err` may be NULL.
 * Weights are copied out of the file or buffer, which the caller may free after loading. */
#define RNNF_ERROR_MESSAGE_SIZE 256
typedef struct {
    char message[RNNF_ERROR_MESSAGE_SIZE]; /* "" after success */
} rnnf_error;

/* The recurrent stack of a file whose only stage is one recurrent stage (what rnnf_run / rnnf_step run).
 * Any other file is RNNF_ERR_UNSUPPORTED: load it with rnnf_pipeline_load_*. */
rnnf_status rnnf_model_load_file(const char *path, rnnf_model **out, rnnf_error *err);
rnnf_status rnnf_model_load_buffer(const void *data, size_t size, rnnf_model **out, rnnf_error *err);

typedef struct rnnf_pipeline rnnf_pipeline;
typedef struct rnnf_pipeline_state rnnf_pipeline_state;

rnnf_status rnnf_pipeline_load_file(const char *path, rnnf_pipeline **out, rnnf_error *err);
rnnf_status rnnf_pipeline_load_buffer(const void *data, size_t size, rnnf_pipeline **out, rnnf_error *err);
void rnnf_pipeline_free(rnnf_pipeline *pipeline);

typedef struct {
    int n_stages;
    int takes_ids;         /* input is int32 token ids, else float features */
    int input_size;        /* features per step (1 with ids) */
    int vocab_size;        /* with ids: each must lie in [0, vocab_size) */
    int output_size;
    int returns_sequence;  /* output per step; else one [batch][output_size] (a stage kept the final state only) */
    int batch_first;       /* rnnf_pipeline_run's x and y are [batch][seq_len]... instead of [seq_len][batch]... */
    int can_step;          /* no bidirectional or reverse layer, so rnnf_pipeline_step works */
} rnnf_pipeline_info;
rnnf_status rnnf_pipeline_get_info(const rnnf_pipeline *pipeline, rnnf_pipeline_info *info);

/* Scratch and the recurrent state of every stage for `batch` rows. */
rnnf_status rnnf_pipeline_state_create(const rnnf_pipeline *pipeline, int batch, rnnf_pipeline_state **out);
void rnnf_pipeline_state_free(rnnf_pipeline_state *state);
rnnf_status rnnf_pipeline_state_reset(rnnf_pipeline_state *state);

/* Whole sequences from a zero state, as rnnfast.pipeline.run_pipeline: pass `ids` ([seq_len][batch] int32,
 * when info.takes_ids) or `x` ([seq_len][batch][input_size]), the other NULL; both layouts batch-first when
 * info.batch_first. With an Embedding's mask_zero, id 0 masks a step (Keras rules). y: [seq_len][batch][out]
 * (batch-first likewise) or [batch][out]. The state is left holding every stage's final state, so
 * rnnf_pipeline_step may continue the sequence. Ids out of range: RNNF_ERR_ARG. */
rnnf_status rnnf_pipeline_run(const rnnf_pipeline *pipeline, rnnf_pipeline_state *state, int seq_len, const float *x,
                              const int32_t *ids, float *y, int n_threads);

/* One step for every row from the state: ids [batch] or x [batch][input_size]; y [batch][out] is what
 * rnnf_pipeline_run would give for the sequence so far at its last step (its only output when the pipeline
 * returns no sequence). Allocates nothing. RNNF_ERR_UNSUPPORTED unless info.can_step. */
rnnf_status rnnf_pipeline_step(const rnnf_pipeline *pipeline, rnnf_pipeline_state *state, const float *x,
                               const int32_t *ids, float *y, int n_threads);

/* ---- Whole graphs (src_c/graph/) ----
 *
 * A graph is what every importer lowers a model to: tensors with shapes given as small programs over the graph
 * inputs' dimensions (so batch and time stay symbolic), and nodes (convolutions, matrix products, element-wise
 * and shape ops, recurrent layers, If). rnnf_graph_create checks and packs it once; a graph state plans one arena
 * per distinct set of input shapes (allocating only when they change) and runs every node in one call. */
#define RNNF_G_MAX_RANK 8

typedef enum {
    RNNF_DT_NONE = -1, /* an absent optional input or output */
    RNNF_DT_F32 = 0,
    RNNF_DT_I64 = 1,
    RNNF_DT_I32 = 2,
    RNNF_DT_U8 = 3, /* ONNX bool: 0 or 1 */
    RNNF_DT_I8 = 4
} rnnf_dtype;

/* A concrete tensor for one call: contiguous, row-major. rank 0 is a scalar (one element). */
typedef struct {
    int dtype;
    int rank;
    int64_t dims[RNNF_G_MAX_RANK];
    void *data;
} rnnf_tensor;

/* Dimension programs: 2 int64 words per instruction (opcode, operand), evaluated on a stack. */
typedef enum {
    RNNF_DIM_CONST = 0, /* push operand */
    RNNF_DIM_SYM,       /* push symbol `operand` (a graph input's dimension) */
    RNNF_DIM_ADD, RNNF_DIM_SUB, RNNF_DIM_MUL,
    RNNF_DIM_FLOORDIV,  /* floor division; a zero divisor is an error */
    RNNF_DIM_CEILDIV,
    RNNF_DIM_MAX, RNNF_DIM_MIN,
    RNNF_DIM_MOD        /* floor modulo */
} rnnf_dim_opcode;

typedef struct {
    int dtype;         /* rnnf_dtype */
    int rank;
    int dims_at;       /* dimension programs dims_at .. dims_at + rank - 1 */
    const void *data;  /* a constant's values (copied at create), else NULL */
    int alias_of;      /* a view (reshape) of that tensor's storage, or -1 */
    const char *name;
    /* A float32 constant stored by rnnfast's quantization rule (rnnfast/quantize.py, scope "all"): stored is
     * RNNF_WEIGHTS_F16 (data: IEEE halves, numel of them) or RNNF_WEIGHTS_I8 (data: int8 [K, N] and `scales`
     * float32 [N], w[k][n] = q[k][n] * scales[n]); 0 (a zeroed desc) for data of dtype. Only the constant B [K, N] of
     * a MATMUL may be stored: it is widened panel by panel into scratch at each run, so no float32 copy is kept. */
    int stored;
    const float *scales;
} rnnf_tensor_desc;

typedef struct {
    int op;            /* rnnf_op, src_c/graph/graph.h */
    const char *name;
    int n_in, n_out;
    const int32_t *in, *out; /* tensor ids, -1 = absent */
    int n_iattr, n_fattr;
    const int64_t *iattr;
    const float *fattr;
    const rnnf_layer_desc *layers; /* the recurrent node's layers (n_layers stacked), else NULL */
    int n_layers;
} rnnf_node_desc;

typedef struct rnnf_graph_desc {
    int n_tensors;
    const rnnf_tensor_desc *tensors;
    int n_nodes;
    const rnnf_node_desc *nodes;       /* in an order where every input is made before it is read */
    int n_inputs, n_outputs;
    const int32_t *inputs, *outputs;   /* tensor ids */
    int n_syms;
    const int32_t *sym_input, *sym_axis; /* symbol s is axis sym_axis[s] of graph input sym_input[s] */
    int n_dims;
    const int32_t *dim_start;          /* n_dims + 1 entries: program k is instructions [dim_start[k], dim_start[k+1]) */
    const int64_t *prog;
    int n_checks;                      /* dimension programs checked at run time, and the node that needs it */
    const int32_t *check_a, *check_b, *check_node;
    const int32_t *check_kind;         /* NULL or per check: 0 a == b; 1 a == b or one of them is 1 (broadcasting) */
    const char *const *check_name;     /* NULL or per check: what a failure names (NULL: the node's name), e.g. the
                                          Reshape, a view with no node of its own, whose size the check is about */
    int n_subgraphs;                   /* the branches of If nodes */
    const struct rnnf_graph_desc *subgraphs;
    /* NULL (every input required), or per input what an absent one (dtype RNNF_DT_NONE in the call) means:
     * RNNF_INPUT_REQUIRED, RNNF_INPUT_ZEROS (zeros of its shape, every size of which the other inputs give: it
     * defines no symbol), or the id of a constant tensor of its dtype and rank whose value it takes. */
    const int32_t *input_default;
} rnnf_graph_desc;

#define RNNF_INPUT_REQUIRED (-1)
#define RNNF_INPUT_ZEROS (-2)

typedef struct rnnf_graph rnnf_graph;
typedef struct rnnf_graph_state rnnf_graph_state;

rnnf_status rnnf_graph_create(const rnnf_graph_desc *desc, rnnf_graph **out, rnnf_error *err);
void rnnf_graph_free(rnnf_graph *graph);
rnnf_status rnnf_graph_state_create(const rnnf_graph *graph, rnnf_graph_state **out);
void rnnf_graph_state_free(rnnf_graph_state *state);
/* Check the inputs' dtypes and dims (data may be NULL), plan for them (allocating only when the shapes differ from
 * the last call's), and fill in every output's dtype, rank and dims. An input with a default (optional: see
 * rnnf_graph_input_default) may be left out by giving it dtype RNNF_DT_NONE: it is then its default, in this call
 * and in the rnnf_graph_run that follows (which must leave it out, or give it, the same way); a required input left
 * out is RNNF_ERR_ARG, naming it. */
rnnf_status rnnf_graph_prepare(rnnf_graph_state *state, const rnnf_tensor *inputs, rnnf_tensor *outputs,
                               rnnf_error *err);
/* Run the graph planned by the last rnnf_graph_prepare, on inputs of those shapes, into outputs (data set by the
 * caller, of the prepared sizes). Allocates nothing. */
rnnf_status rnnf_graph_run(rnnf_graph_state *state, const rnnf_tensor *inputs, rnnf_tensor *outputs, int n_threads,
                           rnnf_error *err);
/* After rnnf_graph_run or rnnf_graph_resume returned RNNF_HOST: the paused node's tensors (data pointing into the
 * state's arena or the caller's buffers: read `in`, write every `out`), at most RNNF_G_HOST_IO of each, and the host
 * index its description gave. Then rnnf_graph_resume runs the rest, on the inputs and outputs the run was given. */
#define RNNF_G_HOST_IO 16
rnnf_status rnnf_graph_host_io(const rnnf_graph_state *state, rnnf_tensor *in, int *n_in, rnnf_tensor *out, int *n_out,
                               int *host_index);
rnnf_status rnnf_graph_resume(rnnf_graph_state *state, int n_threads, rnnf_error *err);
/* No intermediate, output or arena may need more than `bytes` (0: the default, 4 GiB): rnnf_graph_prepare refuses
 * such input shapes with RNNF_ERR_NOMEM before allocating anything. */
rnnf_status rnnf_graph_state_set_memory_limit(rnnf_graph_state *state, size_t bytes);
/* Profiling: while ns_per_node (rnnf_graph_n_nodes entries, caller-owned) is set, every run adds the time spent in
 * each top-level node to it; NULL turns it off. */
rnnf_status rnnf_graph_state_profile(rnnf_graph_state *state, double *ns_per_node);
int rnnf_graph_n_nodes(const rnnf_graph *graph);
/* Threads: a run uses one thread or the count asked of rnnf_graph_run (<= 0: rnnf_default_threads()), whichever its
 * recent runs of the current plan measured faster (a busy machine makes a second thread a loss; results are the same
 * bits either way). The count in use now and the recent median seconds per run of each (0: not measured yet). */
rnnf_status rnnf_graph_state_threads(const rnnf_graph_state *state, int *n_threads, double *seconds_one,
                                     double *seconds_asked);

/* ---- .rnnf 2 files: whole graphs (docs/format.md, "Version 2"; src_c/rnnf_graph_file.c) ----
 *
 * A version 2 file holds a graph as rnnf_graph_create takes it, with the names and shapes of its inputs and outputs,
 * its state loops and where the model came from. Loading checks every offset, size, count, id, enum and dimension
 * program against the file first (RNNF_ERR_FORMAT and a message naming the file, the record and the field, e.g.
 * "m.rnnf: node 4 (graph 0): first_in 12 (+3): expected 11, ..."), then builds the graph; the buffer may be freed
 * after. A version 1 file (a pipeline) is RNNF_ERR_UNSUPPORTED here: load it with rnnf_pipeline_load_*. */
rnnf_status rnnf_graph_load_file(const char *path, rnnf_graph **out, rnnf_error *err);
rnnf_status rnnf_graph_load_buffer(const void *data, size_t size, rnnf_graph **out, rnnf_error *err);

typedef struct {
    const char *name;               /* the model's name for it (the tensor's for graphs not loaded from a file) */
    const char *shape;              /* e.g. "[batch, chunk]": named symbolic dims ("" when not loaded from a file) */
    int dtype;                      /* rnnf_dtype */
    int rank;
    int64_t dims[RNNF_G_MAX_RANK];  /* fixed sizes; -1 where the size depends on the inputs' */
} rnnf_graph_io_info;
int rnnf_graph_n_inputs(const rnnf_graph *graph);
int rnnf_graph_n_outputs(const rnnf_graph *graph);
/* Input or output i (RNNF_ERR_ARG when out of range); the strings live as long as the graph. */
rnnf_status rnnf_graph_input_info(const rnnf_graph *graph, int i, rnnf_graph_io_info *info);
rnnf_status rnnf_graph_output_info(const rnnf_graph *graph, int i, rnnf_graph_io_info *info);
/* State loops: output `output` of one run is input `input` of the next (a VAD's stateN -> state). */
int rnnf_graph_n_state_loops(const rnnf_graph *graph);
rnnf_status rnnf_graph_state_loop(const rnnf_graph *graph, int k, int *input, int *output);
const char *rnnf_graph_source(const rnnf_graph *graph); /* where the model came from; "" when unknown */
/* Whether input i may be left out (dtype RNNF_DT_NONE) and what it is then: RNNF_INPUT_REQUIRED, RNNF_INPUT_ZEROS,
 * or >= 0 when the graph holds its default value (a PyTorch h0/c0 is zeros; an ONNX input backed by an initializer
 * has the initializer's value). RNNF_INPUT_REQUIRED as well for i out of range. */
int rnnf_graph_input_default(const rnnf_graph *graph, int i);

/* A stream carries a graph's state loops in C: each step takes the inputs that are not states (in graph input order)
 * and gives the outputs that are not states (in graph output order); the states start at zero and stay in the
 * stream. Every state's dims must be fixed or the batch: the one symbol the states and the first step input share,
 * given here. rnnf_graph_stream_prepare fills in the step outputs' dtype, rank and dims for these input shapes
 * (allocating only when they differ from the last call's); rnnf_graph_stream_step then runs on inputs of those
 * shapes into outputs of those sizes and allocates nothing. A step computes exactly what rnnf_graph_run computes
 * on the same inputs and states. */
typedef struct rnnf_graph_stream rnnf_graph_stream;
rnnf_status rnnf_graph_stream_create(const rnnf_graph *graph, int64_t batch, rnnf_graph_stream **out,
                                     rnnf_error *err);
void rnnf_graph_stream_free(rnnf_graph_stream *stream);
int rnnf_graph_stream_n_inputs(const rnnf_graph_stream *stream);
int rnnf_graph_stream_n_outputs(const rnnf_graph_stream *stream);
rnnf_status rnnf_graph_stream_prepare(rnnf_graph_stream *stream, const rnnf_tensor *inputs, rnnf_tensor *outputs,
                                      rnnf_error *err);
rnnf_status rnnf_graph_stream_step(rnnf_graph_stream *stream, const rnnf_tensor *inputs, rnnf_tensor *outputs,
                                   int n_threads, rnnf_error *err);
/* Zero every state. */
rnnf_status rnnf_graph_stream_reset(rnnf_graph_stream *stream);
/* State loop k's current value (data points into the stream: read or overwrite it between steps). */
rnnf_status rnnf_graph_stream_state(const rnnf_graph_stream *stream, int k, rnnf_tensor *state);

/* y = act(x) for n values with the selected kernel table (what the gate kernels compute; used by tests). */
rnnf_status rnnf_activation_apply(const rnnf_activation *act, const float *x, float *y, int n);
/* The ONNX name of an rnnf_act_kind ("Relu", "ScaledTanh"...; .rnnf files store the kind), NULL out of range. */
const char *rnnf_activation_name(int kind);

/* Build and CPU information, for show_config(). */
const char *rnnf_isa_compiled(void);   /* e.g. "ref,avx2,avx512" */
const char *rnnf_isa_supported(void);  /* what this CPU can run of those */
const char *rnnf_isa_selected(void);   /* the kernel table in use */
/* Force a kernel table by name ("ref", "avx2", "avx512", "neon"); RNNF_ERR_ISA if unknown or unsupported here. Not thread-safe:
 * call before running. The RNNFAST_ISA environment variable does the same at first use. */
rnnf_status rnnf_isa_select(const char *name);
int rnnf_openmp_enabled(void);
/* The thread count of calls that pass n_threads <= 0: RNNFAST_NUM_THREADS (an integer >= 1, read once), else OpenMP's
 * (OMP_NUM_THREADS, else one per available core); 1 without OpenMP. */
int rnnf_default_threads(void);
/* Nonzero while recent recurrent calls found the machine busy (their per-step waits slept), so calls use one thread
 * for a while: the milliseconds left of that while (20 ms after the first busy call, doubling up to 1 s while the
 * machine stays busy). */
int rnnf_threads_backed_off(void);

#ifdef __cplusplus
}
#endif
#endif
