# Declarations of the public C API (include/rnnfast/rnnf.h) for the Cython binding.
from libc.stdint cimport int32_t, uint8_t

cdef extern from "rnnfast/rnnf.h" nogil:
    ctypedef enum rnnf_status:
        RNNF_OK
        RNNF_ERR_ARG
        RNNF_ERR_SHAPE
        RNNF_ERR_NOMEM
        RNNF_ERR_FORMAT
        RNNF_ERR_ISA
        RNNF_ERR_UNSUPPORTED

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

    const char *rnnf_isa_compiled()
    const char *rnnf_isa_supported()
    const char *rnnf_isa_selected()
    rnnf_status rnnf_isa_select(const char *name)
    int rnnf_openmp_enabled()
    int rnnf_default_threads()
