# Declarations of the public C API (include/rnnfast/rnnf.h) for the Cython binding.
from libc.stdint cimport int32_t, int64_t, uint8_t

cdef extern from "rnnfast/rnnf.h" nogil:
    ctypedef enum rnnf_status:
        RNNF_OK
        RNNF_ERR_ARG
        RNNF_ERR_SHAPE
        RNNF_ERR_NOMEM
        RNNF_ERR_FORMAT
        RNNF_ERR_ISA
        RNNF_ERR_UNSUPPORTED
        RNNF_HOST

    const char *rnnf_status_str(rnnf_status status)

    ctypedef struct rnnf_activation:
        int kind
        float alpha
        float beta

    ctypedef struct rnnf_layer_desc:
        int cell
        int n_dirs
        int reverse
        int input_size
        int hidden_size
        int proj_size
        const float *w_ih
        const float *w_hh
        const float *b_ih
        const float *b_hh
        const float *peepholes
        const float *w_hr
        rnnf_activation act[2][3]
        float clip
        int input_forget
        int linear_before_reset
        int weight_dtype
        const void *q_ih
        const void *q_hh
        const void *q_hr
        const float *s_ih
        const float *s_hh
        const float *s_hr

    ctypedef struct rnnf_model:
        pass
    ctypedef struct rnnf_state:
        pass

    rnnf_status rnnf_model_create(const rnnf_layer_desc *layers, int n_layers, rnnf_model **out)
    void rnnf_model_free(rnnf_model *model)

    rnnf_status rnnf_state_create(const rnnf_model *model, int batch, rnnf_state **out)
    void rnnf_state_free(rnnf_state *state)
    rnnf_status rnnf_state_reset(rnnf_state *state, const int32_t *rows, int n_rows)
    rnnf_status rnnf_state_get(const rnnf_state *state, int layer, int which_c, float *dst)
    rnnf_status rnnf_state_threads(const rnnf_state *state, int *n_threads, double *seconds_one, double *seconds_asked)
    rnnf_status rnnf_state_set(rnnf_state *state, int layer, int which_c, const float *src)

    ctypedef struct rnnf_run_args:
        int seq_len
        int batch
        const float *x
        const int32_t *sequence_lens
        const uint8_t *mask
        int mask_zero_output
        const float *const *initial_h
        const float *const *initial_c
        float *y
        int y_layout
        float *const *y_h
        float *const *y_c
        int n_threads

    rnnf_status rnnf_run(const rnnf_model *model, rnnf_state *state, const rnnf_run_args *args)
    rnnf_status rnnf_step(const rnnf_model *model, rnnf_state *state, const float *x, float *y, int n_threads)

    rnnf_status rnnf_activation_apply(const rnnf_activation *act, const float *x, float *y, int n)
    const char *rnnf_activation_name(int kind)

    const char *rnnf_isa_compiled()
    const char *rnnf_isa_supported()
    const char *rnnf_isa_selected()
    rnnf_status rnnf_isa_select(const char *name)
    int rnnf_openmp_enabled()
    int rnnf_default_threads()
    int rnnf_threads_backed_off()

    # ---- whole graphs ----
    ctypedef struct rnnf_error:
        char message[256]

    ctypedef struct rnnf_tensor:
        int dtype
        int rank
        int64_t dims[8]
        void *data

    ctypedef struct rnnf_tensor_desc:
        int dtype
        int rank
        int dims_at
        const void *data
        int alias_of
        const char *name
        int stored
        const float *scales

    ctypedef struct rnnf_node_desc:
        int op
        const char *name
        int n_in
        int n_out
        const int32_t *in_ "in"
        const int32_t *out
        int n_iattr
        int n_fattr
        const int64_t *iattr
        const float *fattr
        const rnnf_layer_desc *layers
        int n_layers

    ctypedef struct rnnf_graph_desc:
        int n_tensors
        const rnnf_tensor_desc *tensors
        int n_nodes
        const rnnf_node_desc *nodes
        int n_inputs
        int n_outputs
        const int32_t *inputs
        const int32_t *outputs
        int n_syms
        const int32_t *sym_input
        const int32_t *sym_axis
        int n_dims
        const int32_t *dim_start
        const int64_t *prog
        int n_checks
        const int32_t *check_a
        const int32_t *check_b
        const int32_t *check_node
        const int32_t *check_kind
        const char *const *check_name
        int n_subgraphs
        const rnnf_graph_desc *subgraphs
        const int32_t *input_default

    ctypedef struct rnnf_graph:
        pass
    ctypedef struct rnnf_graph_state:
        pass

    rnnf_status rnnf_graph_create(const rnnf_graph_desc *desc, rnnf_graph **out, rnnf_error *err)
    void rnnf_graph_free(rnnf_graph *graph)
    rnnf_status rnnf_graph_state_create(const rnnf_graph *graph, rnnf_graph_state **out)
    void rnnf_graph_state_free(rnnf_graph_state *state)
    rnnf_status rnnf_graph_prepare(rnnf_graph_state *state, const rnnf_tensor *inputs, rnnf_tensor *outputs,
                                   rnnf_error *err)
    rnnf_status rnnf_graph_run(rnnf_graph_state *state, const rnnf_tensor *inputs, rnnf_tensor *outputs,
                               int n_threads, rnnf_error *err)
    rnnf_status rnnf_graph_state_profile(rnnf_graph_state *state, double *ns_per_node)
    int rnnf_graph_n_nodes(const rnnf_graph *graph)
    rnnf_status rnnf_graph_state_threads(const rnnf_graph_state *state, int *n_threads, double *seconds_one,
                                         double *seconds_asked)
    rnnf_status rnnf_graph_state_set_memory_limit(rnnf_graph_state *state, size_t bytes)
    rnnf_status rnnf_graph_host_io(const rnnf_graph_state *state, rnnf_tensor *inp, int *n_in, rnnf_tensor *out,
                                   int *n_out, int *host_index)
    rnnf_status rnnf_graph_resume(rnnf_graph_state *state, int n_threads, rnnf_error *err)


cdef extern from "pool.h":
    ctypedef struct rnnf_pool:
        unsigned char *base
        size_t size
        size_t used
        size_t short_by

cdef extern from "graph/plan.h":
    rnnf_status rnnf_graph_create_in(const rnnf_graph_desc *desc, rnnf_pool *pool, rnnf_graph **out, rnnf_error *err)
    rnnf_status rnnf_graph_state_create_in(const rnnf_graph *graph, rnnf_pool *pool, rnnf_graph_state **out)
