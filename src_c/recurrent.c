/* recurrent.c: the time loop shared by all cells: input projection hoisted out of the loop (batch 1, and the
 * layers rows_step.c does not cover; batch > 1 projects one unit block of one step at a time there), threads,
 * directions, sequence_lens and masks, and where each step's output goes.
 *
 * Threads split hidden-unit blocks (all gates of a unit stay together), or for a batch of many rows the rows,
 * never a reduction, so every thread count gives the same bits. A bidirectional layer with two or more threads
 * runs its directions in two independent groups, each with its own barrier.
 */
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"
#include "kernels/kernels_q.h"

/* Below this many multiply-adds per step a barrier costs more than splitting saves. */
#define RNNF_MIN_MACS_PER_THREAD 16384
/* From this many rows per thread a group splits the batch instead of the unit blocks (layers rows_step.c runs).
 * Rows are independent sequences, so each thread steps its rows through the whole sequence with no barrier
 * between steps: a step's wait for the slower partner (its variance, or a partner descheduled on a busy machine)
 * is paid once per call instead of once per step. Each thread reads all the weights every step instead of its
 * share, which the microkernel hides from L3 down to a few rows (LSTM-256, one thread: 87 % of the FMA peak per
 * step at 12 rows, 80 % at 8, 90 % at 64). */
#define RNNF_SPLIT_MIN_ROWS 8
/* ... while one direction's weights stay L3-resident: beyond that they stream from DRAM, and every thread reading
 * all of them could cost more than the barriers saved, so larger layers keep the unit-block split. */
#define RNNF_SPLIT_MAX_WEIGHT_BYTES ((size_t)8 << 20)
/* Up to this many inputs a sequence kernel projects each step's input itself, in the same loop as the recurrence
 * (a tiny LSTM's call 0.4 us faster than one GEMM first); a wider input is projected for every step first, by one
 * GEMM (an LSTM-32 on 32 inputs 0.4 us faster that way). */
#define RNNF_SEQ_MAX_STEP_INPUT 16

typedef struct {
    const int32_t *lens;
    const uint8_t *active;      /* [seq_len][batch] */
    int mask_zero_output;
    float *out;                 /* NULL: no output sequence wanted */
    size_t ys_t, ys_d, ys_b;    /* output strides in floats */
} rnnf_io;

static rnnf_cell_step_fn step_fn(int cell)
{
    return cell == RNNF_CELL_LSTM ? rnnf_lstm_step : cell == RNNF_CELL_GRU ? rnnf_gru_step : rnnf_rnn_step;
}

static int is_reverse(const rnnf_layer *L, int d) { return L->n_dirs == 2 ? d == 1 : L->reverse; }

/* Rows [b0, b1) of the step's output, columns [o0, o1); hn is the whole state buffer. */
static void write_output(const rnnf_layer *L, const rnnf_state *st, const rnnf_io *io, int d, int s, int t,
                         const float *hn, int o0, int o1, int b0, int b1)
{
    const int B = st->batch;
    const int32_t *first = st->first_step[is_reverse(L, d)];
    if (o1 <= o0) return;
    for (int b = b0; b < b1; b++) {
        float *dst = io->out + t * io->ys_t + d * io->ys_d + b * io->ys_b + o0;
        int keep = io->active[(size_t)t * B + b];
        if (!keep && !(io->lens && t >= io->lens[b]) && !io->mask_zero_output)
            keep = s >= first[b]; /* Keras: a masked step repeats the last output, zeros before any real step */
        if (keep)
            memcpy(dst, hn + (size_t)b * L->hstride + o0, (size_t)(o1 - o0) * sizeof(float));
        else
            memset(dst, 0, (size_t)(o1 - o0) * sizeof(float));
    }
}

/* Bytes of one weight as the layer stores it. */
static size_t weight_elem_bytes(const rnnf_layer *L)
{
    return L->weight_dtype == RNNF_WEIGHTS_F32 ? 4 : L->weight_dtype == RNNF_WEIGHTS_F16 ? 2 : 1;
}

/* A direction's recurrent weights in bytes as stored (the part every step reads again). */
static size_t recurrent_weight_bytes(const rnnf_layer *L)
{
    return weight_elem_bytes(L) * ((size_t)L->gh_cols * (size_t)L->out_size +
                   (size_t)L->n_qpanels * RNNF_UB * (size_t)(L->proj_size ? L->hidden_size : 0));
}

/* A direction's input and recurrent weights in bytes as stored. */
static size_t weight_bytes(const rnnf_layer *L)
{
    return recurrent_weight_bytes(L) + weight_elem_bytes(L) * (size_t)L->gh_cols * (size_t)L->input_size;
}

/* The table's sequence kernel (kernels.h) for steps [s0, s1) of a direction one thread runs alone at batch 1, when
 * the layer is small enough and each of those steps is real (a masked step repeats or zeroes outputs as write_output
 * decides); else NULL. */
static rnnf_seq_fn seq_kernel(const rnnf_kernels *K, const rnnf_layer *L, int batch, int gthreads,
                              const uint8_t *active, int rev, int T, int s0, int s1)
{
    if (batch != 1 || gthreads != 1 || L->proj_size || L->weight_dtype != RNNF_WEIGHTS_F32 ||
        L->gh_cols > RNNF_SEQ_MAX_COLS || memchr(active + (rev ? T - s1 : s0), 0, (size_t)(s1 - s0)))
        return NULL;
    if (L->cell == RNNF_CELL_LSTM) return K->lstm_seq;
    if (L->cell == RNNF_CELL_GRU) return L->linear_before_reset ? K->gru_lbr_seq : NULL;
    return K->rnn_seq;
}

/* Steps [s0, s1) of the direction through the sequence kernel, their input projection included (gx: made already);
 * 0 when it does not cover the layer (nothing done then). */
static int run_sequence(rnnf_seq_fn seq, const rnnf_layer *L, rnnf_layer_state *S, int d, int T, int s0, int s1,
                        const float *in, int in_ld, const float *gx, const rnnf_io *io)
{
    const int rev = is_reverse(L, d), t0 = rev ? T - 1 - s0 : s0, cur = S->cur[d] ^ (s0 & 1);
    const int ld = gx ? L->gh_cols : in_ld;
    rnnf_seq_args a;
    a.steps = s1 - s0;
    a.n_blocks = L->n_blocks;
    a.gx = gx ? gx + (size_t)t0 * (size_t)ld : NULL;
    a.x = in + (size_t)t0 * (size_t)in_ld;
    a.x_step = rev ? -(ptrdiff_t)ld : ld;
    a.input_size = L->input_size;
    a.w_ih = L->w_ih[d];
    a.bias_x = L->bias_x[d];
    a.depth = L->out_size;
    a.w_hh = L->w_hh[d];
    a.bias_h = L->cell == RNNF_CELL_GRU ? L->bias_h[d] : NULL;
    a.peep = L->peep[d];
    a.h[0] = S->h[d][cur];
    a.h[1] = S->h[d][cur ^ 1];
    a.c = S->c[d];
    a.y = io->out ? io->out + (size_t)t0 * io->ys_t + (size_t)d * io->ys_d : NULL;
    a.y_step = rev ? -(ptrdiff_t)io->ys_t : (ptrdiff_t)io->ys_t;
    a.out_len = L->out_size;
    a.gp = &L->gp[d];
    return seq(&a);
}

/* Processing steps [s0, s1) of T (step s is time T-1-s for a reverse direction), their input projection first;
 * gx: the projection buffer, [T*batch][gh_cols] where the input projection is hoisted.
 * sense: this thread's side of the barrier `bar`, kept by the caller across the directions it runs on it in turn
 * (after an odd number of steps the barrier's sense is flipped; a fresh local one would pass it unsynchronised). */
static void run_direction(const rnnf_layer *L, rnnf_layer_state *S, const rnnf_state *st, int d, int T, int s0,
                          int s1, float *gx, const float *in, int in_ld, const rnnf_io *io, rnnf_barrier *bar,
                          int *sense, int gtid, int gthreads)
{
    const rnnf_kernels *K = rnnf_kernels_get();
    rnnf_kernels KQ; /* a quantized layer runs the same drivers with its weights' GEMM in the table */
    if (L->weight_dtype != RNNF_WEIGHTS_F32) {
        KQ = *K;
        KQ.gemm_packed = rnnf_qgemm_get(K, L->weight_dtype);
        K = &KQ;
    }
    const int B = st->batch, G = L->n_gates, cols = L->gh_cols;
    const int by_unit_block = rnnf_rows_step_applies(L, B);
    const int by_rows = by_unit_block && gthreads > 1 && B / gthreads >= RNNF_SPLIT_MIN_ROWS &&
                        weight_bytes(L) <= RNNF_SPLIT_MAX_WEIGHT_BYTES;
    rnnf_step_ctx ctx = {L, S, K, d, B, 0,
                         L->n_blocks * gtid / gthreads, L->n_blocks * (gtid + 1) / gthreads,
                         L->n_qpanels * gtid / gthreads, L->n_qpanels * (gtid + 1) / gthreads,
                         bar, sense, NULL, NULL, 0};
    int b0 = 0, b1 = B;
    if (by_rows) {
        b0 = B * gtid / gthreads;
        b1 = B * (gtid + 1) / gthreads;
        ctx.batch = b1 - b0;
        ctx.row0 = b0;
        ctx.jb0 = 0;
        ctx.jb1 = L->n_blocks;
    }
    const size_t hrow = (size_t)b0 * L->hstride; /* this thread's first row in the h buffers */
    const rnnf_cell_step_fn step = step_fn(L->cell);
    int o0, o1;
    if (L->proj_size) {
        o0 = ctx.q0 * RNNF_UB;
        o1 = ctx.q1 * RNNF_UB;
    } else {
        o0 = ctx.jb0 * RNNF_UB;
        o1 = ctx.jb1 * RNNF_UB;
    }
    if (o1 > L->out_size) o1 = L->out_size;

    if (by_unit_block) {
        /* useful_threads gives a direction at most n_blocks threads, so gx and gh ([batch][gh_cols] each) hold one
         * [batch][G*UB] block buffer for every thread */
        ctx.gx_blk = gx + (size_t)gtid * B * cols / L->n_blocks;
        ctx.gh_blk = S->gh[d] + (size_t)gtid * B * cols / L->n_blocks;
    } else if (ctx.jb1 > ctx.jb0) {
        /* Each thread projects the inputs for its own gate panels only, so no barrier is needed before the loop. */
        const rnnf_seq_fn seq = seq_kernel(K, L, B, gthreads, io->active, is_reverse(L, d), T, s0, s1);
        const int project_in_steps = L->input_size <= RNNF_SEQ_MAX_STEP_INPUT;
        if (seq && project_in_steps && run_sequence(seq, L, S, d, T, s0, s1, in, in_ld, NULL, io)) return;
        const size_t t0 = (size_t)(is_reverse(L, d) ? T - s1 : s0) * B;
        K->gemm_packed((s1 - s0) * B, L->input_size, in + t0 * in_ld, in_ld, L->w_ih[d], ctx.jb0 * G, ctx.jb1 * G,
                       L->bias_x[d], gx + t0 * cols, cols);
        if (seq && !project_in_steps && run_sequence(seq, L, S, d, T, s0, s1, in, in_ld, gx, io)) return;
    }

    /* Walking backwards pays where this thread's share of the recurrent weights nears its L2 (rnnf_recurrent_product)
     * and costs where they sit in L2 anyway: its two-panel chunks leave a step at batch 1 or 2 too few accumulators
     * for the FMA latency (GRU-96 stack at batch 2: 196 -> 216 us, GRU-256 at batch 1: 870 -> 950 us, one thread). */
    const int walk_back =
        recurrent_weight_bytes(L) / (size_t)L->n_blocks * (size_t)(ctx.jb1 - ctx.jb0) > rnnf_core_l2_bytes() / 2;
    int cur = S->cur[d] ^ (s0 & 1);
    for (int s = s0; s < s1; s++) {
        int t = is_reverse(L, d) ? T - 1 - s : s;
        const float *hp = S->h[d][cur];
        float *hn = S->h[d][cur ^ 1];
        if (by_unit_block)
            /* every other step walks the blocks backwards, so it starts on the weights the last step left in L2 */
            for (int i = ctx.jb0; i < ctx.jb1; i++)
                rnnf_rows_block(&ctx, s & 1 ? ctx.jb1 - 1 - (i - ctx.jb0) : i,
                                in + ((size_t)t * B + b0) * in_ld, in_ld, io->active + (size_t)t * B + b0,
                                hp + hrow, hn + hrow);
        else {
            ctx.backwards = walk_back && (s & 1);
            step(&ctx, gx + (size_t)t * B * cols, io->active + (size_t)t * B, hp, hn);
        }
        if (io->out) write_output(L, st, io, d, s, t, hn, o0, o1, b0, b1);
        if (!by_rows) rnnf_barrier_wait(bar, sense);
        cur ^= 1;
    }
    /* S->cur[d] flips after the whole team is done (run_layer): a thread that never waits on a partner may end
     * before the partner has read it. */
}

/* A step reads every recurrent weight once, and a thread's share is often about the size of its core's L2 (an
 * LSTM-512's 4 MiB on two threads against a 2 MiB L2): walked the same way at every step, each weight was evicted
 * just before it was needed again, so every step came from L3. Every other step walks the panels backwards and
 * starts on the ones the last step left in L2. Every output is one chain over k whatever the panel range of a call,
 * so the order changes no bits; but a two-panel chunk gives a batch-1 or batch-2 step fewer accumulators than the
 * microkernel's eight or six panels, which is why run_direction walks back only where the weights overflow. */
#define RNNF_BACKWARDS_CHUNK 2

void rnnf_recurrent_product(const rnnf_step_ctx *ctx, int M, int K, const float *A, int lda, const float *Bp, int p0,
                            int p1, const float *bias, float *C, int ldc)
{
    if (!ctx->backwards) {
        ctx->K->gemm_packed(M, K, A, lda, Bp, p0, p1, bias, C, ldc);
        return;
    }
    for (int hi = p1; hi > p0; hi -= RNNF_BACKWARDS_CHUNK) {
        const int lo = hi - RNNF_BACKWARDS_CHUNK > p0 ? hi - RNNF_BACKWARDS_CHUNK : p0;
        ctx->K->gemm_packed(M, K, A, lda, Bp, lo, hi, bias, C, ldc);
    }
}

static int useful_threads(const rnnf_layer *L, int batch, int n_threads)
{
    long macs = (long)batch * L->gh_cols * (L->out_size + (L->proj_size ? L->hidden_size : 0));
    int per_dir = (int)(macs / RNNF_MIN_MACS_PER_THREAD);
    if (per_dir < 1) per_dir = 1;
    if (per_dir > L->n_blocks) per_dir = L->n_blocks;
    int useful = per_dir * L->n_dirs;
    return n_threads < useful ? n_threads : useful;
}


/* A bidirectional layer on two or more threads runs its directions in two groups; the team's threads are dealt
 * to them in turn, so group g has group_threads(team, groups, g) of them. Except when a direction's recurrent
 * weights overflow one core's L2 at a batch split by unit blocks (the step is a matrix-vector product that reads
 * them all): then every thread takes its share of each direction in turn, and each core keeps its half of one
 * direction in its L2 for the whole sequence instead of streaming a whole direction from L3 every step
 * (lat-h512 bilstm, 4 MiB per direction, 2 MiB of L2 per core: 15.9 ms one direction per thread, onnxruntime
 * 10.0 ms). */
static int n_groups(const rnnf_layer *L, int batch, int team)
{
    if (L->n_dirs != 2 || team < 2) return 1;
    if (batch < 2 * RNNF_SPLIT_MIN_ROWS && recurrent_weight_bytes(L) > rnnf_core_l2_bytes()) return 1;
    return 2;
}

static int group_threads(int team, int groups, int g) { return (team - g + groups - 1) / groups; }

/* Takes piece `which` (a bit of *claimed) for the calling thread: 1 unless another thread has it already. */
static int claim(int *claimed, int which)
{
    return !(__atomic_fetch_or(claimed, 1 << which, __ATOMIC_RELAXED) & (1 << which));
}

/* One thread's share of a layer in a team of `team` threads; bars are initialised by the caller.
 * With two threads and two directions, thread t claims direction t first and then the other one if nobody has
 * (`claimed`, a bit per direction): when a busy machine starts the partner late, the first thread runs both
 * directions instead of waiting (and says so in bars[0].sleeps, so the back-off in threads.c sees the contention);
 * on a quiet one a direction stays on its core from call to call, and its weights in that core's L2 (taken by
 * whichever thread came first, the directions changed cores between a stream's steps: 25 us steps took 60-116 us
 * after a swap). A direction runs on one thread either way, so the bits are the same. */
static void run_layer_thread(const rnnf_layer *L, rnnf_layer_state *S, const rnnf_state *st, int T, const float *in,
                             int in_ld, const rnnf_io *io, rnnf_barrier *bars, int tid, int team, int *claimed)
{
    const int groups = n_groups(L, st->batch, team);
    const int g = tid % groups, gtid = tid / groups, gthreads = group_threads(team, groups, g);
    int sense = 0;
    if (groups == 2 && team == 2) {
        int taken = 0;
        for (int k = 0; k < 2; k++) {
            const int d = tid ^ k;
            if (!claim(claimed, d)) continue;
            run_direction(L, S, st, d, T, 0, T, st->gx[d], in, in_ld, io, &bars[d], &sense, 0, 1);
            taken++;
        }
        if (taken == 2) __atomic_add_fetch(&bars[0].sleeps, 1, __ATOMIC_RELAXED);
    } else if (groups == 2) {
        run_direction(L, S, st, g, T, 0, T, st->gx[g], in, in_ld, io, &bars[g], &sense, gtid, gthreads);
    } else {
        for (int d = 0; d < L->n_dirs; d++)
            run_direction(L, S, st, d, T, 0, T, st->gx[d], in, in_ld, io, &bars[0], &sense, gtid, gthreads);
    }
}

static void init_barriers(const rnnf_layer *L, int batch, rnnf_barrier *bars, int team)
{
    const int groups = n_groups(L, batch, team);
    for (int g = 0; g < groups; g++) rnnf_barrier_init(&bars[g], group_threads(team, groups, g));
}

/* After T steps the current h of every direction is in the other buffer when T is odd. */
static void flip_states(const rnnf_layer *L, rnnf_layer_state *S, int T)
{
    for (int d = 0; d < L->n_dirs; d++) S->cur[d] ^= T & 1;
}

/* Returns how many barrier waits had to sleep (see threads.c). */
static int run_layer(const rnnf_layer *L, rnnf_layer_state *S, const rnnf_state *st, int T, const float *in,
                     int in_ld, const rnnf_io *io, int n_threads)
{
    rnnf_barrier bars[2];
    bars[0].sleeps = bars[1].sleeps = 0; /* read below even when the team has one group */
    int claimed = 0;
    int nt = useful_threads(L, st->batch, n_threads);
#ifndef _OPENMP
    nt = 1; /* without OpenMP the one thread runs every group */
#endif
    if (nt <= 1) {
        /* No parallel region for one thread: entering one costs libgomp a team allocation and futex calls, about
         * a microsecond per layer, which is most of a small model's stream step. */
        init_barriers(L, st->batch, bars, 1);
        run_layer_thread(L, S, st, T, in, in_ld, io, bars, 0, 1, &claimed);
        flip_states(L, S, T);
        return bars[0].sleeps;
    }
#ifdef _OPENMP
    /* Made before the region rather than by one of its threads: an `omp single` would make every thread wait for the
     * last to start, the very wait a busy machine makes long. */
    init_barriers(L, st->batch, bars, nt);
#pragma omp parallel num_threads(nt)
    {
        /* The team may be smaller than asked (nested regions, OMP_THREAD_LIMIT): size groups from it. */
        const int tid = omp_get_thread_num(), team = omp_get_num_threads();
        if (team != nt) {
#pragma omp single
            init_barriers(L, st->batch, bars, team);
        }
        run_layer_thread(L, S, st, T, in, in_ld, io, bars, tid, team, &claimed);
    }
    flip_states(L, S, T);
#endif
    return bars[0].sleeps + bars[1].sleeps;
}

/* ---- two stacked layers side by side ----
 * At a small batch a step takes microseconds, and splitting every step's units between two threads pays a barrier
 * per step: a round trip between the two vCPUs of the project's VM took 0.5-1 us, and a GRU-96 stack at batch 2
 * ran no faster on two threads than on one. Two stacked layers instead run side by side, one per thread, the
 * second a chunk of steps behind the first: it waits for the first layer's outputs (rnnf_progress), never the other
 * way round, and each core keeps its own layer's weights in its L2. Each layer projects its inputs a chunk at a time
 * (one GEMM of chunk * batch rows), so the second layer starts after the first chunk, not after the whole
 * sequence. Every step is the one-thread step and every projection output the same FMA chain (kernels.h), so the
 * bits are those of any other thread count. */

/* Rows of a chunk's projection GEMM: enough to fill the microkernel's 12-row block, few enough that the second
 * layer starts soon. */
#define RNNF_PIPE_CHUNK_ROWS 12
/* A layer needs this many multiply-adds in a call before a second thread pays for starting the region. With the
 * sequence kernels running each chunk (batch 1), two stacked LSTM-32 or GRU-32 layers on 8 inputs at batch 1 gain from
 * 50 steps (LSTM 256k multiply-adds per layer: 19.1 -> 14.6 us; GRU 192k: 15.2 -> 11.3 us, a C harness timing
 * rnnf_run on Zen 4) and break even at 26 (LSTM 133k: 10.1 us on one thread, 10.3 us on two). */
#define RNNF_PIPE_MIN_MACS 150000L

static int pipe_chunk(int batch) { return (RNNF_PIPE_CHUNK_ROWS + batch - 1) / batch; }

/* Two forward layers whose steps project their inputs up front (not rows_step.c's), each with weights that fit one
 * core's L2 (else splitting units keeps each core's half there) and enough work for a second thread. */
static int pipelines(const rnnf_model *m, int batch, int T, int n_threads)
{
    if (n_threads < 2 || m->n_layers != 2 || T < 2 * pipe_chunk(batch)) return 0;
    for (int l = 0; l < 2; l++) {
        const rnnf_layer *L = &m->layers[l];
        if (L->n_dirs != 1 || L->reverse || rnnf_rows_step_applies(L, batch) || weight_bytes(L) > rnnf_core_l2_bytes())
            return 0;
        if ((long)T * batch * L->gh_cols * (L->input_size + L->out_size) < RNNF_PIPE_MIN_MACS) return 0;
    }
    return 1;
}

/* Layer l of a pipelined pair, chunk by chunk; returns how many of its waits slept. */
static int pipelined_layer(const rnnf_model *m, rnnf_state *st, int l, int T, const float *x, const rnnf_io *io,
                           rnnf_progress *first)
{
    const rnnf_layer *L = &m->layers[l];
    rnnf_layer_state *S = &st->ls[l];
    const float *in = l ? io[0].out : x;
    const int in_ld = l ? m->layers[0].out_size : L->input_size, chunk = pipe_chunk(st->batch);
    rnnf_barrier solo;
    rnnf_barrier_init(&solo, 1);
    int sense = 0, sleeps = 0;
    for (int s0 = 0; s0 < T; s0 += chunk) {
        const int s1 = s0 + chunk < T ? s0 + chunk : T;
        if (l) sleeps += rnnf_progress_wait(first, s1);
        /* each layer its own projection buffer: gx[1] is free, the layers having one direction */
        run_direction(L, S, st, 0, T, s0, s1, st->gx[l], in, in_ld, &io[l], &solo, &sense, 0, 1);
        if (!l) rnnf_progress_publish(first, s1);
    }
    S->cur[0] ^= T & 1;
    return sleeps;
}

/* Thread t takes layer t, then the other if nobody has: when a busy machine starts the partner late, the first
 * thread runs both layers in turn (and says so in the count it returns, for the back-off in threads.c). */
static int run_pipelined(const rnnf_model *m, rnnf_state *st, int T, const float *x, const rnnf_io *io)
{
    rnnf_progress first;
    rnnf_progress_init(&first);
    int claimed = 0, sleeps = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(2) reduction(+ : sleeps)
#endif
    {
#ifdef _OPENMP
        const int tid = omp_get_thread_num();
#else
        const int tid = 0;
#endif
        int taken = 0;
        for (int k = 0; k < 2 && tid < 2; k++) {
            const int l = tid ^ k;
            if (!claim(&claimed, l)) continue;
            sleeps += pipelined_layer(m, st, l, T, x, io, &first);
            taken++;
        }
        if (taken == 2) sleeps++;
    }
    return sleeps;
}

static void find_first_steps(rnnf_state *st, int T)
{
    const int B = st->batch;
    for (int b = 0; b < B; b++) {
        int fwd = T, rev = T;
        for (int s = 0; s < T && fwd == T; s++)
            if (st->active[(size_t)s * B + b]) fwd = s;
        for (int s = 0; s < T && rev == T; s++)
            if (st->active[(size_t)(T - 1 - s) * B + b]) rev = s;
        st->first_step[0][b] = fwd;
        st->first_step[1][b] = rev;
    }
}

/* Where layer l's output sequence goes: the next layer's input buffer, or y in its layout for the last. */
static rnnf_io layer_io(const rnnf_model *model, const rnnf_state *st, int l, const int32_t *lens,
                        int mask_zero_output, float *y, int y_layout)
{
    const rnnf_layer *L = &model->layers[l];
    const size_t B = (size_t)st->batch, D = (size_t)L->n_dirs, P = (size_t)L->out_size;
    rnnf_io io = {lens, st->active, mask_zero_output, NULL, 0, 0, 0};
    const int last = l + 1 == model->n_layers;
    io.out = last ? y : st->inter[l % 2];
    if (!last || y_layout == RNNF_Y_SEQ_BATCH_DIR) {
        io.ys_t = B * D * P; io.ys_d = P; io.ys_b = D * P;
    } else {
        io.ys_t = D * B * P; io.ys_d = B * P; io.ys_b = P;
    }
    return io;
}

rnnf_status rnnf_run_layers(const rnnf_model *model, rnnf_state *st, int T, const float *x, const int32_t *lens,
                            const uint8_t *mask, int mask_zero_output, float *y, int y_layout, int n_threads)
{
    const int B = st->batch;
    int sleeps = 0;
    n_threads = rnnf_threads_for_call(n_threads);
    (void)rnnf_kernels_get(); /* choose the table before any parallel region reads it */
    rnnf_status status = rnnf_state_reserve(st, T);
    if (status != RNNF_OK) return status;
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++)
            st->active[(size_t)t * B + b] =
                (uint8_t)((!lens || t < lens[b]) && (!mask || mask[(size_t)t * B + b]));
    find_first_steps(st, T);

    if (pipelines(model, B, T, n_threads)) {
        rnnf_io io[2];
        for (int l = 0; l < 2; l++) io[l] = layer_io(model, st, l, lens, mask_zero_output, y, y_layout);
        sleeps = run_pipelined(model, st, T, x, io);
        /* judged per wait, as the barrier steps are: one wait a chunk */
        rnnf_threads_after_call(n_threads, (T + pipe_chunk(B) - 1) / pipe_chunk(B), sleeps);
        return RNNF_OK;
    }
    const float *in = x;
    int in_ld = model->layers[0].input_size;
    for (int l = 0; l < model->n_layers; l++) {
        const rnnf_layer *L = &model->layers[l];
        const rnnf_io io = layer_io(model, st, l, lens, mask_zero_output, y, y_layout);
        sleeps += run_layer(L, &st->ls[l], st, T, in, in_ld, &io, n_threads);
        in = io.out;
        in_ld = L->n_dirs * L->out_size;
    }
    rnnf_threads_after_call(n_threads, T * model->n_layers, sleeps);
    return RNNF_OK;
}
