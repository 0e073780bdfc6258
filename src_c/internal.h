/* internal.h: the model and state objects shared by the C files, and the per-cell step interface.
 *
 * A model is immutable after rnnf_model_create: packed weights (kernels.h layout) and derived sizes.
 * A state owns everything that changes: recurrent h (double-buffered, because every unit's update reads the
 * whole previous h) and c, and scratch that grows with seq_len in rnnf_run but never in rnnf_step.
 */
#ifndef RNNF_INTERNAL_H
#define RNNF_INTERNAL_H

#include <stdint.h>

#include "kernels/kernels.h"
#include "pool.h"
#include "rnnfast/rnnf.h"

typedef struct {
    int cell, n_dirs, reverse;
    int input_size, hidden_size, proj_size, out_size;
    int n_gates;
    int n_blocks;   /* unit blocks of RNNF_UB */
    int hpad;       /* n_blocks * RNNF_UB */
    int gh_cols;    /* n_gates * hpad: width of every packed-row vector */
    int n_qpanels;  /* projection panels (rows of w_hr padded to RNNF_UB) */
    int hstride;    /* row stride of the h state: max(hpad, n_qpanels * RNNF_UB) */
    int linear_before_reset;
    int weight_dtype; /* rnnf_weight_dtype: w_ih/w_hh/w_hr point at kernels_q.h panels unless float32 */
    float *w_ih[2]; /* packed: n_blocks*n_gates panels of [input_size][UB] */
    float *w_hh[2]; /* packed: n_blocks*n_gates panels of [out_size][UB] */
    float *w_hr[2]; /* packed: n_qpanels panels of [hidden_size][UB], or NULL */
    float *bias_x[2]; /* [gh_cols]: every bias that can be added to the input projection */
    float *bias_h[2]; /* [gh_cols] or NULL: GRU lbr=1 keeps Rb_h inside r*(...) */
    float *peep[2];   /* [n_blocks][3][UB] or NULL */
    rnnf_gate_params gp[2];
} rnnf_layer;

struct rnnf_model {
    int n_layers;
    rnnf_layer *layers;
    rnnf_pool *pool; /* where its memory came from (NULL: the heap) */
};

typedef struct {
    float *h[2][2];  /* [dir][buffer]: [batch][hstride] */
    float *c[2];     /* [dir]: [batch][hpad], LSTM only */
    int cur[2];      /* which h buffer holds the current state, per direction */
    float *gh[2];    /* [batch][gh_cols] scratch */
    float *m[2];     /* [batch][hpad]: LSTM o*h(c) before projection, GRU r*h */
    float *z[2];     /* [batch][hpad]: GRU update gate between the two halves */
} rnnf_layer_state;

/* adapt.c: per graph state and per recurrent state, the thread count of each run, chosen between 1 and the asked count from measured times. */
#define RNNF_ADAPT_RING 7     /* run times kept per arm: the median of 7 takes 4 slow runs to move */
#define RNNF_ADAPT_TRY_RUNS 3 /* timed runs of a try of the other arm (of the asked count after one untimed) */
typedef struct {
    int asked;            /* the count the times below were measured with; 0 = nothing measured */
    int arm;              /* in use: 0 one thread, 1 the asked count */
    int warm;             /* a run was made (the first of a plan or a state is not timed) */
    int trying;           /* runs left in the try in progress of the other arm (0: none) */
    int try_untimed;      /* that try began with an untimed run */
    int try_taken;        /* timed runs of that try so far, in try_times */
    double try_times[RNNF_ADAPT_TRY_RUNS];
    int explore_in;       /* runs until the next try */
    int interval;         /* runs between tries */
    double times[2][RNNF_ADAPT_RING]; /* the last run times of each arm, seconds */
    int next[2], count[2];
    int run_arm;          /* the run in progress (rnnf_thread_choice_start): its arm, -1 not a sample */
    long long run_t0_ns;  /* and when it began */
} rnnf_thread_choice;

void rnnf_thread_choice_reset(rnnf_thread_choice *c);
/* The thread count for this run (1 when asked <= 1), and which arm that is (-1: not to be recorded). */
int rnnf_thread_choice_begin(rnnf_thread_choice *c, int asked, int *arm);
void rnnf_thread_choice_end(rnnf_thread_choice *c, int arm, double seconds);
/* A run's thread count for a call that asked n_threads (<= 0: the default), one thread untimed while the recurrent
 * layers are backed off (threads.c); and, when it completed, its time per unit (a step, or a whole graph run) for the
 * choice. The pair that graph runs and rnnf_run / rnnf_step use. */
int rnnf_thread_choice_start(rnnf_thread_choice *c, int n_threads);
void rnnf_thread_choice_finish(rnnf_thread_choice *c, int units);
/* The count in use now, and the two arms' recent median times (0: none yet). */
int rnnf_thread_choice_current(const rnnf_thread_choice *c, double *seconds_one, double *seconds_asked);

struct rnnf_state {
    const rnnf_model *model;
    rnnf_pool *pool; /* where its memory came from (NULL: the heap) */
    int batch;
    rnnf_layer_state *ls;
    /* Grown on demand by rnnf_run; rnnf_step only uses the seq_len = 1 capacity made at creation. */
    int cap_steps;
    float *gx[2];      /* [cap_steps*batch][max gh_cols] per direction */
    float *inter[2];   /* ping-pong layer outputs [cap_steps][batch][max n_dirs*out] */
    uint8_t *active;   /* [cap_steps][batch] */
    int32_t *first_step[2]; /* [dir][batch]: first processing step that is real, for mask output repeat */
    rnnf_thread_choice threads; /* rnnf_run / rnnf_step: one thread or the asked count, per step time */
};

/* Everything one thread needs for one direction of one layer over one call. */
typedef struct {
    const rnnf_layer *L;
    rnnf_layer_state *S;
    const rnnf_kernels *K;
    int d, batch;  /* batch: the rows this thread steps, which start at row row0 of the state */
    int row0;
    int jb0, jb1;  /* this thread's unit blocks */
    int q0, q1;    /* this thread's projection panels */
    struct rnnf_barrier *barrier;
    int *sense;
    float *gx_blk, *gh_blk; /* rnnf_rows_block: this thread's [batch][n_gates*RNNF_UB] products of one unit block */
    int backwards;          /* this step walks the recurrent weights from the last panel (every other step) */
} rnnf_step_ctx;
/* The recurrent product of panels [p0, p1) for a step (gemm_packed's arguments), walked backwards when
 * ctx->backwards: the bits are the same either way. */
void rnnf_recurrent_product(const rnnf_step_ctx *ctx, int M, int K, const float *A, int lda, const float *Bp, int p0,
                            int p1, const float *bias, float *C, int ldc);

/* One time step of one direction for this thread's units: reads the current h buffer hp, the input
 * projection gx_t [batch][gh_cols], active [batch]; writes hn (and c in place). May wait on the barrier
 * (GRU lbr=0 and projection need the whole of an intermediate vector). */
typedef void (*rnnf_cell_step_fn)(const rnnf_step_ctx *ctx, const float *gx_t, const uint8_t *active,
                                  const float *hp, float *hn);
void rnnf_lstm_step(const rnnf_step_ctx *ctx, const float *gx_t, const uint8_t *active, const float *hp,
                    float *hn);
void rnnf_gru_step(const rnnf_step_ctx *ctx, const float *gx_t, const uint8_t *active, const float *hp, float *hn);
void rnnf_rnn_step(const rnnf_step_ctx *ctx, const float *gx_t, const uint8_t *active, const float *hp, float *hn);

/* Batch > 1 (rows_step.c): whether a layer runs rnnf_rows_block, and one unit block jb of one step: projects the
 * step's inputs x_t ([batch] rows of x_ld floats) for the block itself, then its recurrent product and gates, into
 * hn (and c) for the block's units, masked rows carried. x_t, active, hp and hn start at the context's first row;
 * the cell state is found from ctx->row0. */
int rnnf_rows_step_applies(const rnnf_layer *L, int batch);
void rnnf_rows_block(const rnnf_step_ctx *ctx, int jb, const float *x_t, int x_ld, const uint8_t *active,
                     const float *hp, float *hn);

/* Copy hp to hn over columns [c0, c1) for the rows that are not active: masked rows keep their state. */
void rnnf_carry_inactive(int batch, const uint8_t *active, const float *hp, float *hn, int stride, int c0, int c1);

/* Spin barrier for the threads of one group (OpenMP's barrier spans the whole team, and the two directions
 * of a bidirectional layer run as two independent groups). */
typedef struct rnnf_barrier {
    volatile int count;
    volatile int sense;
    volatile int sleepers; /* threads blocked in the kernel on `sense` (Linux futex), so the last arrival wakes them */
    volatile int sleeps;   /* waits that had to sleep since init: the sign of an oversubscribed machine */
    volatile int woke;     /* the last release woke sleepers: they are on their way, however slowly */
    int n;
} rnnf_barrier;
void rnnf_barrier_init(rnnf_barrier *b, int n);
/* Returns 1 when this wait slept in the kernel, else 0. */
int rnnf_barrier_wait(rnnf_barrier *b, int *local_sense);
/* A count that one thread raises and another waits for (the steps a pipelined layer has done, recurrent.c): the
 * waiter spins, then sleeps as a barrier waiter does. rnnf_progress_wait returns 1 when it had to sleep. */
typedef struct rnnf_progress {
    volatile int done;
    volatile int sleepers;
} rnnf_progress;
void rnnf_progress_init(rnnf_progress *p);
void rnnf_progress_publish(rnnf_progress *p, int done);
int rnnf_progress_wait(rnnf_progress *p, int at_least);
/* The thread count for a call that asked for `n_threads` (<= 0: the default, which backs off to one thread
 * while the machine is oversubscribed), and the bookkeeping after a call that ran `steps` barrier steps. */
int rnnf_threads_for_call(int n_threads);
void rnnf_threads_after_call(int threads, int steps, int sleeps);
/* CLOCK_MONOTONIC in nanoseconds: the one clock of the back-off and of the graph's run timings. */
long long rnnf_monotonic_ns(void);
/* One core's L2 in bytes (sysconf where it answers, else 512 KiB). */
size_t rnnf_core_l2_bytes(void);

/* rnnf_run with a->n_threads as the count (no choice of its own): a graph's recurrent node, whose run chose it. */
rnnf_status rnnf_run_as_asked(const rnnf_model *m, rnnf_state *st, const rnnf_run_args *a);
/* The driver: run `seq_len` steps of every layer from the state's current h/c (rnnf_run sets them first). */
rnnf_status rnnf_run_layers(const rnnf_model *model, rnnf_state *state, int seq_len, const float *x,
                            const int32_t *lens, const uint8_t *mask, int mask_zero_output, float *y, int y_layout,
                            int n_threads);
rnnf_status rnnf_state_reserve(rnnf_state *state, int seq_len);
/* rnnf_model_create and rnnf_state_create with their memory from a pool (pool.h; NULL: the heap). */
rnnf_status rnnf_model_create_in(const rnnf_layer_desc *layers, int n_layers, rnnf_pool *pool, rnnf_model **out);
rnnf_status rnnf_state_create_in(const rnnf_model *model, int batch, rnnf_pool *pool, rnnf_state **out);

#endif
