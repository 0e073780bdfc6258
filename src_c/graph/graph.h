/* graph.h: the compiled graph shared by the planner (plan.c), the executor (graph.c) and the op kernels (ops/).
 *
 * The Python side (rnnfast/graph/) lowers every format to one IR, analyses it (folding, shapes in symbolic
 * dimensions, fusion) and hands C a flat description: tensors whose dimensions are small programs over the
 * graph inputs' dimensions, and nodes with an op code, integer and float attributes. At load each node's op
 * validates its attributes and constant inputs and precomputes what it can (packed weights); at run the
 * executor evaluates every shape once per distinct input shape, places every intermediate in one arena by
 * liveness, and runs the nodes in order with concrete, contiguous row-major tensors. Ops never allocate.
 *
 * Ops split work over rows or output channels, never over a reduction, so any thread count gives the same bits.
 */
#ifndef RNNF_GRAPH_H
#define RNNF_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "pool.h"
#include "rnnfast/rnnf.h"

/* rnnf_dtype, rnnf_tensor and RNNF_G_MAX_RANK are public: rnnf.h. */

/* Element-wise ops go parallel only from this many elements: entering a parallel region costs several us. */
#ifndef PAR_MIN_ELEMENTS
#define PAR_MIN_ELEMENTS (1 << 20)
#endif
/* Threads for a memory-bound op over n elements in `units` independent pieces: one below PAR_MIN_ELEMENTS, never
 * more than the pieces. */
static inline int par_threads(int64_t n, int n_threads, int64_t units)
{
    if (n < PAR_MIN_ELEMENTS || n_threads <= 1) return 1;
    return units < n_threads ? (int)units : n_threads;
}
/* for (int t = 0; t < nt; t++) followed by the statement given, the iterations split in static chunks over nt
 * threads when built with OpenMP. With nt <= 1 no parallel region is entered: libgomp makes a team even for one
 * thread (an if(0) clause too) and ends it with a futex wake syscall, which made a 1-thread VAD call (seven such
 * regions: Pad, Slices, Transposes) 15% slower. */
#ifdef _OPENMP
#define PARALLEL_TASKS(t, ...)                                                                                       \
    do {                                                                                                             \
        if (nt > 1) {                                                                                                \
            _Pragma("omp parallel for num_threads(nt) schedule(static)") for (int t = 0; t < nt; t++) __VA_ARGS__    \
        } else {                                                                                                     \
            for (int t = 0; t < nt; t++) __VA_ARGS__                                                                 \
        }                                                                                                            \
    } while (0)
#else
#define PARALLEL_TASKS(t, ...)                                                                                       \
    do {                                                                                                             \
        for (int t = 0; t < nt; t++) __VA_ARGS__                                                                     \
    } while (0)
#endif

size_t rnnf_dtype_size(int dtype);
/* "2,5,3": a shape for messages, cut to fit `size` bytes. */
void rnnf_dims_str(char *buf, size_t size, const int64_t *d, int rank);

static inline int64_t rnnf_tensor_numel(const rnnf_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->dims[i];
    return n;
}

/* Element-wise functions: the Unary op and every fused epilogue (Conv, MatMul) use the same codes.
 * alpha/beta as in ONNX. RNNF_UN_NONE = no activation. */
typedef enum {
    RNNF_UN_NONE = 0,
    RNNF_UN_RELU,
    RNNF_UN_TANH,
    RNNF_UN_SIGMOID,
    RNNF_UN_LEAKYRELU,   /* alpha */
    RNNF_UN_HARDSIGMOID, /* clamp(alpha*x + beta, 0, 1) */
    RNNF_UN_ELU,         /* alpha */
    RNNF_UN_SOFTPLUS,
    RNNF_UN_SOFTSIGN,
    RNNF_UN_GELU,        /* exact, with erf */
    RNNF_UN_GELU_TANH,   /* Gelu approximate="tanh" */
    RNNF_UN_ERF,
    RNNF_UN_EXP,
    RNNF_UN_LOG,
    RNNF_UN_SQRT,
    RNNF_UN_ABS,
    RNNF_UN_NEG,
    RNNF_UN_RECIPROCAL,
    RNNF_UN_CLIP,        /* clamp(x, alpha, beta): alpha = min, beta = max (ONNX: -FLT_MAX / FLT_MAX when absent) */
    RNNF_UN_AFFINE,      /* alpha*x + beta (Mul/Add by a scalar constant, folded) */
    RNNF_UN_IDENTITY,
    RNNF_UN_SELU,        /* ONNX Selu: alpha, gamma in beta */
    RNNF_UN_COUNT
} rnnf_unary_kind;

/* One output row of a MaxPool 2x2 stride 2 without padding: y[j] = max of r0[2j], r1[2j], r0[2j+1], r1[2j+1] for
 * j < n, folded as the MAXPOOL op folds them (pool.c), so the bits are the op's: the conv's fused pool uses it. */
void rnnf_maxpool_2x2_row(const float *r0, const float *r1, float *y, int64_t n);

/* y = f(x) for n floats (x == y allowed), with the selected kernel table where it has the function. */
void rnnf_unary_apply(int kind, float alpha, float beta, const float *x, float *y, int64_t n);

/* Binary element-wise codes (multidirectional broadcasting; the output's shape is given). */
typedef enum {
    RNNF_BIN_ADD = 0,
    RNNF_BIN_SUB,
    RNNF_BIN_MUL,
    RNNF_BIN_DIV,   /* integer Div truncates toward zero, as ONNX; division by zero is an error for integers */
    RNNF_BIN_POW,
    RNNF_BIN_MAX,
    RNNF_BIN_MIN,
    RNNF_BIN_EQUAL,   /* output u8 */
    RNNF_BIN_GREATER, /* output u8 */
    RNNF_BIN_LESS,    /* output u8 */
    RNNF_BIN_GREATER_EQUAL,
    RNNF_BIN_LESS_EQUAL,
    RNNF_BIN_AND,     /* u8 inputs */
    RNNF_BIN_OR,
    RNNF_BIN_MOD,     /* fmod=0 integer semantics (sign of the divisor) for ints; fmod for floats */
    RNNF_BIN_COUNT
} rnnf_binary_kind;

/* Op codes. Attribute layouts are listed per op: iattr[] (int64) and fattr[] (float) in this order.
 * "act" means three fields: iattr act kind (rnnf_unary_kind), fattr act alpha, fattr act beta. */
typedef enum {
    RNNF_OP_COPY = 0,      /* in: x; out: y (same shape, any dtype). no attrs */
    RNNF_OP_UNARY,         /* in: x f32; out: y f32. iattr: [kind]; fattr: [alpha, beta] */
    RNNF_OP_BINARY,        /* in: a, b (broadcast); out: y. iattr: [kind]. f32, i64, i32 inputs (same dtype) */
    RNNF_OP_WHERE,         /* in: cond u8, a, b (broadcast, a/b same dtype); out: y. no attrs */
    RNNF_OP_CAST,          /* in: x; out: y of the output tensor's dtype (float->int truncates). no attrs */
    RNNF_OP_MATMUL,        /* in: A [..., M, K], B [..., K, N] (broadcast batch dims), bias (optional, [N] or [M, N]
                              or scalar); out: Y [..., M, N] = act(A @ B + bias).
                              iattr: [act kind]; fattr: [act alpha, act beta]. A constant 2-D B is packed at load. */
    RNNF_OP_CONV,          /* in: x [N, C, *S], w [M, C/group, *K] constant, bias [M] constant (optional);
                              out: y [N, M, *S_out] = act(conv + bias). S is 1-D or 2-D.
                              iattr: [n_spatial, group, stride0, stride1, dil0, dil1, pad_begin0, pad_begin1,
                                      pad_end0, pad_end1, act kind (, pool)]; fattr: [act alpha, act beta].
                              1-D uses the *0 entries (the *1 entries are 1, 1, 0, 0). pool (optional, 2-D, act
                              none or relu): 1 = a MaxPool 2x2 stride 2 (no pads, floor) of act(conv + bias) follows,
                              fused: y is then [N, M, H_out/2, W_out/2], bit for bit the MaxPool's result. */
    RNNF_OP_CONV_TRANSPOSE,/* in: x [N, C, L], w [C, M/group, K] constant, bias [M] (optional); out: y [N, M, L_out]
                              (L_out given by the output tensor). iattr: [group, stride, dilation, pad_begin];
                              output position = l*stride + k*dilation - pad_begin, kept when in [0, L_out). */
    RNNF_OP_MAXPOOL,       /* in: x [N, C, *S]; out: y. iattr: [n_spatial, k0, k1, stride0, stride1, dil0, dil1,
                              pad_begin0, pad_begin1, pad_end0, pad_end1]; padding never wins the max. */
    RNNF_OP_AVGPOOL,       /* same iattr as MAXPOOL plus [count_include_pad] (dilations 1) */
    RNNF_OP_SOFTMAX,       /* in: x f32; out: y. iattr: [axis (>= 0), log (0 softmax, 1 log-softmax)] */
    RNNF_OP_LAYERNORM,     /* in: x, scale, bias (optional); out: y. Normalises over axes [axis, rank).
                              iattr: [axis (>= 0)]; fattr: [epsilon]. scale/bias have the normalised shape. */
    RNNF_OP_CHANNEL_AFFINE,/* in: x [N, C, ...], scale [C], shift [C]; out: y = x*scale[c] + shift[c] (BatchNorm
                              in inference, folded in Python). iattr: [act kind]; fattr: [act alpha, act beta] */
    RNNF_OP_REDUCE,        /* in: x; out: y. iattr: [kind (rnnf_reduce_kind), axes bit mask over x's rank].
                              The output has x's rank with reduced axes of size 1 (keepdims=0 is a view after). */
    RNNF_OP_TRANSPOSE,     /* in: x (any dtype); out: y. iattr: perm[rank] */
    RNNF_OP_CONCAT,        /* in: x0..x(n-1) (same dtype); out: y. iattr: [axis (>= 0)] */
    RNNF_OP_SPLIT,         /* in: x; out: y0..y(n-1), sizes given by the outputs' dims. iattr: [axis (>= 0)] */
    RNNF_OP_SLICE,         /* in: x; out: y. iattr: per sliced axis 4 values [axis, start, end, step] as in ONNX
                              (negative start/end count from the end, clamped per the ONNX rules, INT64_MAX/MIN
                              mean "to the end"), normalised against x's concrete dims at run time. */
    RNNF_OP_GATHER,        /* in: data (any dtype), indices (i64 or i32); out: y. iattr: [axis (>= 0)].
                              Negative indices count from the end; out of range is RNNF_ERR_ARG. */
    RNNF_OP_PAD,           /* in: x; out: y. iattr: [mode (0 constant, 1 reflect, 2 edge), begin[rank], end[rank]]
                              (non-negative); fattr: [constant value] */
    RNNF_OP_EXPAND,        /* in: x (any dtype); out: y, broadcast copy to y's shape. no attrs */
    RNNF_OP_FILL,          /* no inputs; out: y filled with one value: fattr[0] for f32, iattr[0] for ints */
    RNNF_OP_RECURRENT,     /* in: X [T, B, I], sequence_lens [B] (i32, optional), initial_h [L*D, B, H] (optional),
                              initial_c (optional)[, mask [T, B] (u8, optional: Keras masks)]; out: Y [T, D, B, H],
                              Y_h [L*D, B, H], Y_c [L*D, B, H] (each optional). iattr (optional): [Y layout: 0
                              [T, D, B, H], 1 [T, B, D, H][, zero_output_for_mask 0/1]]. The L layers come in the
                              graph description, not in attrs. */
    RNNF_OP_IF,            /* in: cond (u8/any, one element), then the captured tensors both branches read;
                              out: the branch's outputs. iattr: [then subgraph index, else subgraph index] */
    RNNF_OP_HOST,          /* in/out: any; run by the caller (rnnf_graph_run returns RNNF_HOST there, the caller fills the
                              outputs and calls rnnf_graph_resume): an operator outside the C set. iattr: [host index] */
    RNNF_OP_COUNT
} rnnf_op;

typedef enum {
    RNNF_RED_SUM = 0,
    RNNF_RED_MEAN,
    RNNF_RED_MAX,
    RNNF_RED_MIN,
    RNNF_RED_PROD,
    RNNF_RED_L2,        /* sqrt(sum x^2) */
    RNNF_RED_L1,
    RNNF_RED_SUMSQUARE,
    RNNF_RED_COUNT
} rnnf_reduce_kind;

typedef struct rnnf_gnode {
    int op; /* rnnf_op */
    int n_in, n_out;
    const int32_t *in, *out; /* tensor ids in the graph; -1 = absent */
    int n_iattr, n_fattr;
    const int64_t *iattr;
    const float *fattr;
    void *prep;         /* what the op precomputed at load (packed weights), immutable after; op-owned */
    rnnf_pool *pool;    /* where prep's memory comes from: rnnf_mem_alloc_raw(node->pool, ...) (pool.h) */
    const char *name;   /* for messages */
    int index;          /* position in the graph */
    int b_stored;       /* MATMUL: its constant B is stored (rnnf_tensor_desc.stored), widened at each run */
    const float *b_scales; /* and its int8 column scales */
} rnnf_gnode;

/* What an op's run gets besides its tensors. */
typedef struct {
    const rnnf_kernels *K; /* the selected table: gemm_packed, activation */
    int n_threads;         /* >= 1 */
    void *scratch;         /* scratch_bytes() bytes, 64-byte aligned, owned by the run state */
    char *message;         /* on failure, a message (RNNF_ERROR_MESSAGE_SIZE bytes) without the node's name */
} rnnf_op_ctx;

typedef struct {
    const char *name;
    /* At load: check the attributes and the input/output counts, precompute from constant inputs
     * (const_in[i].data != NULL when input i is a constant, with its concrete dims) into node->prep.
     * May be NULL. On failure, writes `message` and returns RNNF_ERR_FORMAT or RNNF_ERR_UNSUPPORTED. */
    rnnf_status (*prepare)(rnnf_gnode *node, const rnnf_tensor *const_in, char *message);
    /* Scratch bytes for these concrete shapes (in[i].data and out[i].data are NULL here). May be NULL. */
    size_t (*scratch_bytes)(const rnnf_gnode *node, const rnnf_tensor *in, const rnnf_tensor *out, int n_threads);
    /* The work. in[i].dtype == RNNF_DT_NONE for an absent optional input. Output dims are already set. */
    rnnf_status (*run)(const rnnf_gnode *node, const rnnf_tensor *in, rnnf_tensor *out, rnnf_op_ctx *ctx);
    void (*release)(rnnf_gnode *node); /* frees node->prep; may be NULL */
} rnnf_op_vtable;

extern const rnnf_op_vtable rnnf_op_copy, rnnf_op_unary, rnnf_op_binary, rnnf_op_where, rnnf_op_cast,
    rnnf_op_matmul, rnnf_op_conv, rnnf_op_conv_transpose, rnnf_op_maxpool, rnnf_op_avgpool, rnnf_op_softmax,
    rnnf_op_layernorm, rnnf_op_channel_affine, rnnf_op_reduce, rnnf_op_transpose, rnnf_op_concat, rnnf_op_split,
    rnnf_op_slice, rnnf_op_gather, rnnf_op_pad, rnnf_op_expand, rnnf_op_fill;

/* Pack a row-major [K][N] matrix (the B of a MatMul) into ceil(N/RNNF_UB) panels of [K][RNNF_UB], zero-padded,
 * for K->gemm_packed, in memory from `pool` (pool.h). Returns NULL when out of memory; free with rnnf_mem_free. */
float *rnnf_pack_b(rnnf_pool *pool, const float *b, int64_t K, int64_t N);

#endif
