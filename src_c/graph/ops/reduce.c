/* reduce.c: ReduceSum / Mean / Max / Min / Prod / L2 / L1 / SumSquare over any set of axes (a bit mask).
 *
 * The shape is first reduced to the fewest axes (size-1 axes dropped, neighbours of the same kind merged), which
 * leaves two layouts: the innermost axis reduced (each output is a sum of contiguous runs) or kept (each output
 * row accumulates whole rows of x, vectorized along the row). Float sums accumulate in double, in eight
 * interleaved partial sums for contiguous runs so the loop is not one long dependency chain; the order depends
 * only on the shape, and threads split outputs, never a reduction, so any thread count gives the same bits.
 * Max and Min return NaN when any element is NaN (onnxruntime's answer depends on where the NaN sits; numpy's
 * and the float64 reference's does not). An empty reduction gives 0 (Sum, Mean as onnxruntime, L1, L2,
 * SumSquare), 1 (Prod), -inf / +inf (Max / Min; the integer extremes for integers). int64 and int32 inputs
 * accumulate in int64 with wrapping, Mean truncating and L2 the truncated square root, as onnxruntime.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "graph/graph.h"

/* Kept-innermost layout: columns per unit of work (the accumulator row lives in scratch, this many doubles). */
#define RED_COLS 512

typedef struct {
    int r;                          /* collapsed rank, >= 1 */
    int64_t d[RNNF_G_MAX_RANK];
    int64_t xs[RNNF_G_MAX_RANK];    /* element strides in x */
    int red[RNNF_G_MAX_RANK];
} layout;

/* An axis list with its sizes and strides, walked as an odometer. */
typedef struct {
    int n;
    int64_t d[RNNF_G_MAX_RANK], s[RNNF_G_MAX_RANK], idx[RNNF_G_MAX_RANK];
    int64_t count, off;
} walk;

static void walk_init(walk *w, const layout *L, int want_red, int skip)
{
    w->n = 0;
    w->count = 1;
    for (int i = 0; i < L->r; i++)
        if (L->red[i] == want_red && i != skip) {
            w->d[w->n] = L->d[i];
            w->s[w->n] = L->xs[i];
            w->count *= L->d[i];
            w->n++;
        }
}

static void walk_seek(walk *w, int64_t lin)
{
    w->off = 0;
    for (int i = w->n - 1; i >= 0; i--) {
        w->idx[i] = lin % w->d[i];
        lin /= w->d[i];
        w->off += w->idx[i] * w->s[i];
    }
}

static void walk_next(walk *w)
{
    for (int i = w->n - 1; i >= 0; i--) {
        w->off += w->s[i];
        if (++w->idx[i] < w->d[i]) return;
        w->off -= w->s[i] * w->d[i];
        w->idx[i] = 0;
    }
}

/* NaN-propagating max / min in a form the compiler vectorizes: a NaN accumulator stays NaN because both
 * comparisons are false against it */
static inline double max_nan(double m, double v)
{
    const double t = v > m ? v : m;
    return v != v ? v : t;
}
static inline double min_nan(double m, double v)
{
    const double t = v < m ? v : m;
    return v != v ? v : t;
}
static inline float max_nan_f(float m, float v)
{
    const float t = v > m ? v : m;
    return v != v ? v : t;
}
static inline float min_nan_f(float m, float v)
{
    const float t = v < m ? v : m;
    return v != v ? v : t;
}

static double init_f(int kind)
{
    switch (kind) {
    case RNNF_RED_PROD: return 1.0;
    case RNNF_RED_MAX: return -INFINITY;
    case RNNF_RED_MIN: return INFINITY;
    default: return 0.0;
    }
}

static float finish_f(int kind, double acc, int64_t count)
{
    switch (kind) {
    case RNNF_RED_MEAN: return count ? (float)(acc / (double)count) : 0.0f;
    case RNNF_RED_L2: return (float)sqrt(acc);
    default: return (float)acc;
    }
}

/* acc combined with the n contiguous values at x: eight partial results, combined in a fixed order */
static double run_f32(int kind, const float *x, int64_t n, double acc)
{
    double p[8];
    int64_t i = 0;
    const int64_t n8 = n / 8 * 8;
    switch (kind) {
    case RNNF_RED_SUM:
    case RNNF_RED_MEAN:
    case RNNF_RED_L1:
    case RNNF_RED_L2:
    case RNNF_RED_SUMSQUARE:
        for (int k = 0; k < 8; k++) p[k] = 0.0;
        if (kind == RNNF_RED_L1)
            for (; i < n8; i += 8)
                for (int k = 0; k < 8; k++) p[k] += fabs((double)x[i + k]);
        else if (kind == RNNF_RED_L2 || kind == RNNF_RED_SUMSQUARE)
            for (; i < n8; i += 8)
                for (int k = 0; k < 8; k++) p[k] += (double)x[i + k] * (double)x[i + k];
        else
            for (; i < n8; i += 8)
                for (int k = 0; k < 8; k++) p[k] += (double)x[i + k];
        acc += ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
        for (; i < n; i++) {
            const double v = x[i];
            acc += kind == RNNF_RED_L1 ? fabs(v) : (kind == RNNF_RED_L2 || kind == RNNF_RED_SUMSQUARE ? v * v : v);
        }
        return acc;
    case RNNF_RED_MAX:
    case RNNF_RED_MIN: {
        /* in float, which holds every value exactly; 32 running results updated element-wise, which the
         * compiler vectorizes where a single running maximum would stay scalar */
        const int mx = kind == RNNF_RED_MAX;
        float m = (float)acc;
        if (n >= 32) {
            float b[32];
            for (int k = 0; k < 32; k++) b[k] = x[k];
            if (mx)
                for (i = 32; i + 32 <= n; i += 32)
                    for (int k = 0; k < 32; k++) b[k] = max_nan_f(b[k], x[i + k]);
            else
                for (i = 32; i + 32 <= n; i += 32)
                    for (int k = 0; k < 32; k++) b[k] = min_nan_f(b[k], x[i + k]);
            for (int k = 0; k < 32; k++) m = mx ? max_nan_f(m, b[k]) : min_nan_f(m, b[k]);
        }
        for (; i < n; i++) m = mx ? max_nan_f(m, x[i]) : min_nan_f(m, x[i]);
        return m;
    }
    default:
        for (; i < n; i++) acc *= x[i];
        return acc;
    }
}

/* acc[j] combined with x[j] for j < n */
static void vec_f32(int kind, const float *x, int64_t n, double *acc)
{
    int64_t j;
    switch (kind) {
    case RNNF_RED_SUM:
    case RNNF_RED_MEAN:
        for (j = 0; j < n; j++) acc[j] += x[j];
        return;
    case RNNF_RED_L1:
        for (j = 0; j < n; j++) acc[j] += fabs((double)x[j]);
        return;
    case RNNF_RED_L2:
    case RNNF_RED_SUMSQUARE:
        for (j = 0; j < n; j++) acc[j] += (double)x[j] * (double)x[j];
        return;
    case RNNF_RED_MAX:
        for (j = 0; j < n; j++) acc[j] = max_nan(acc[j], x[j]);
        return;
    case RNNF_RED_MIN:
        for (j = 0; j < n; j++) acc[j] = min_nan(acc[j], x[j]);
        return;
    default:
        for (j = 0; j < n; j++) acc[j] *= x[j];
        return;
    }
}

/* ---- integers: one element at a time (shape arithmetic, rarely large) ---- */

static inline int64_t wrap64(uint64_t u) { return u <= (uint64_t)INT64_MAX ? (int64_t)u : -(int64_t)(~u) - 1; }

static int64_t init_i(int kind, int dtype)
{
    const int64_t lo = dtype == RNNF_DT_I64 ? INT64_MIN : INT32_MIN, hi = dtype == RNNF_DT_I64 ? INT64_MAX : INT32_MAX;
    switch (kind) {
    case RNNF_RED_PROD: return 1;
    case RNNF_RED_MAX: return lo;
    case RNNF_RED_MIN: return hi;
    default: return 0;
    }
}

static int64_t step_i(int kind, int64_t acc, int64_t v)
{
    switch (kind) {
    case RNNF_RED_MAX: return v > acc ? v : acc;
    case RNNF_RED_MIN: return v < acc ? v : acc;
    case RNNF_RED_PROD: return wrap64((uint64_t)acc * (uint64_t)v);
    case RNNF_RED_L1: return wrap64((uint64_t)acc + (v < 0 ? 0u - (uint64_t)v : (uint64_t)v));
    case RNNF_RED_L2:
    case RNNF_RED_SUMSQUARE: return wrap64((uint64_t)acc + (uint64_t)v * (uint64_t)v);
    default: return wrap64((uint64_t)acc + (uint64_t)v);
    }
}

static int64_t finish_i(int kind, int64_t acc, int64_t count)
{
    if (kind == RNNF_RED_MEAN) return count ? acc / count : 0;
    if (kind == RNNF_RED_L2) return acc > 0 ? (int64_t)sqrt((double)acc) : 0;
    return acc;
}

/* int32 results wrap to 32 bits: what accumulating in int32 gives for every kind but an overflowing Mean */
static void store_i(int dtype, void *y, int64_t o, int64_t v)
{
    if (dtype == RNNF_DT_I64) {
        ((int64_t *)y)[o] = v;
        return;
    }
    const uint32_t u = (uint32_t)(uint64_t)v;
    ((int32_t *)y)[o] = u <= (uint32_t)INT32_MAX ? (int32_t)u : -(int32_t)(~u) - 1;
}

static void reduce_int(int kind, int dtype, const layout *L, const void *x, void *y, int64_t o0, int64_t o1)
{
    walk kw, rw;
    walk_init(&kw, L, 0, -1);
    walk_init(&rw, L, 1, -1);
    walk_seek(&kw, o0);
    for (int64_t o = o0; o < o1; o++) {
        int64_t acc = init_i(kind, dtype);
        walk_seek(&rw, 0);
        for (int64_t k = 0; k < rw.count; k++) {
            const int64_t at = kw.off + rw.off;
            acc = step_i(kind, acc, dtype == RNNF_DT_I64 ? ((const int64_t *)x)[at] : ((const int32_t *)x)[at]);
            walk_next(&rw);
        }
        store_i(dtype, y, o, finish_i(kind, acc, rw.count));
        walk_next(&kw);
    }
}

/* ---- float layouts ---- */

/* innermost axis reduced: outputs [o0, o1), each over contiguous runs of the last axis */
static void reduce_last(int kind, const layout *L, const float *x, float *y, int64_t o0, int64_t o1)
{
    walk kw, rw;
    const int last = L->r - 1;
    const int64_t run = L->d[last];
    walk_init(&kw, L, 0, -1);
    walk_init(&rw, L, 1, last);
    walk_seek(&kw, o0);
    for (int64_t o = o0; o < o1; o++) {
        double acc = init_f(kind);
        walk_seek(&rw, 0);
        for (int64_t k = 0; k < rw.count; k++) {
            acc = run_f32(kind, x + kw.off + rw.off, run, acc);
            walk_next(&rw);
        }
        y[o] = finish_f(kind, acc, rw.count * run);
        walk_next(&kw);
    }
}

/* innermost axis kept: unit u = (output row, column chunk), accumulating whole row segments in acc */
static void reduce_kept(int kind, const layout *L, const float *x, float *y, int64_t u0, int64_t u1, double *acc)
{
    walk kw, rw;
    const int last = L->r - 1;
    const int64_t K = L->d[last], chunks = (K + RED_COLS - 1) / RED_COLS;
    walk_init(&kw, L, 0, last);
    walk_init(&rw, L, 1, -1);
    for (int64_t u = u0; u < u1; u++) {
        const int64_t row = u / chunks, c0 = (u % chunks) * RED_COLS, w = K - c0 < RED_COLS ? K - c0 : RED_COLS;
        walk_seek(&kw, row);
        const double a0 = init_f(kind);
        for (int64_t j = 0; j < w; j++) acc[j] = a0;
        walk_seek(&rw, 0);
        for (int64_t k = 0; k < rw.count; k++) {
            vec_f32(kind, x + kw.off + rw.off + c0, w, acc);
            walk_next(&rw);
        }
        float *yr = y + row * K + c0;
        for (int64_t j = 0; j < w; j++) yr[j] = finish_f(kind, acc[j], rw.count);
    }
}


static rnnf_status reduce_prepare(rnnf_gnode *node, const rnnf_tensor *const_in, char *message)
{
    (void)const_in;
    if (node->n_in != 1 || node->n_out != 1 || node->n_iattr != 2 || node->n_fattr != 0) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "reduce: %d inputs, %d outputs, %d integer and %d float "
                 "attributes, expected 1, 1, 2 and 0", node->n_in, node->n_out, node->n_iattr, node->n_fattr);
        return RNNF_ERR_FORMAT;
    }
    if (node->iattr[0] < 0 || node->iattr[0] >= RNNF_RED_COUNT || node->iattr[1] < 0 ||
        node->iattr[1] >= (1 << RNNF_G_MAX_RANK)) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "reduce: kind %" PRId64 ", axes mask %" PRId64, node->iattr[0],
                 node->iattr[1]);
        return RNNF_ERR_FORMAT;
    }
    return RNNF_OK;
}

/* The collapsed layout; returns 0 when the output is empty, -1 when the reduction is over nothing. */
static int make_layout(const rnnf_tensor *x, int mask, layout *L)
{
    int64_t stride[RNNF_G_MAX_RANK], s = 1;
    int empty_out = 0, empty_red = 0;
    for (int i = x->rank - 1; i >= 0; i--) {
        stride[i] = s;
        s *= x->dims[i];
        if (x->dims[i] == 0) {
            if ((mask >> i) & 1) empty_red = 1;
            else empty_out = 1;
        }
    }
    if (empty_out) return 0;
    if (empty_red) return -1;
    L->r = 0;
    for (int i = 0; i < x->rank; i++) {
        if (x->dims[i] == 1) continue;
        const int red = (mask >> i) & 1;
        if (L->r > 0 && L->red[L->r - 1] == red) {
            L->d[L->r - 1] *= x->dims[i];
            L->xs[L->r - 1] = stride[i];
        } else {
            L->d[L->r] = x->dims[i];
            L->xs[L->r] = stride[i];
            L->red[L->r] = red;
            L->r++;
        }
    }
    if (L->r == 0) {
        L->r = 1;
        L->d[0] = 1;
        L->xs[0] = 1;
        L->red[0] = 1;
    }
    return 1;
}

static size_t reduce_scratch(const rnnf_gnode *node, const rnnf_tensor *in, const rnnf_tensor *out, int n_threads)
{
    (void)node;
    (void)in;
    (void)out;
    return (size_t)n_threads * RED_COLS * sizeof(double);
}

static rnnf_status reduce_run(const rnnf_gnode *node, const rnnf_tensor *in, rnnf_tensor *out, rnnf_op_ctx *ctx)
{
    const int kind = (int)node->iattr[0], mask = (int)node->iattr[1];
    const rnnf_tensor *x = &in[0], *y = &out[0];
    const int dt = x->dtype;
    if ((dt != RNNF_DT_F32 && dt != RNNF_DT_I64 && dt != RNNF_DT_I32) || y->dtype != dt) {
        snprintf(ctx->message, RNNF_ERROR_MESSAGE_SIZE, "reduce: unsupported dtypes %d -> %d", dt, y->dtype);
        return RNNF_ERR_UNSUPPORTED;
    }
    int64_t want[RNNF_G_MAX_RANK];
    int ok = y->rank == x->rank && (mask >> x->rank) == 0;
    for (int i = 0; i < x->rank; i++) {
        want[i] = ((mask >> i) & 1) ? 1 : x->dims[i];
        ok = ok && y->dims[i] == want[i];
    }
    if (!ok) {
        char a[64], b[64];
        rnnf_dims_str(a, sizeof a, y->dims, y->rank);
        rnnf_dims_str(b, sizeof b, want, x->rank);
        snprintf(ctx->message, RNNF_ERROR_MESSAGE_SIZE, "reduce: output [%s], expected [%s] (axes mask %d over "
                 "rank %d; reduced axes keep size 1)", a, b, mask, x->rank);
        return RNNF_ERR_SHAPE;
    }
    layout L;
    const int st = make_layout(x, mask, &L);
    const int64_t n_out = rnnf_tensor_numel(y), n_in = rnnf_tensor_numel(x);
    if (st == 0) return RNNF_OK;
    if (st < 0) {
        for (int64_t o = 0; o < n_out; o++) {
            if (dt == RNNF_DT_F32) ((float *)y->data)[o] = finish_f(kind, init_f(kind), 0);
            else store_i(dt, y->data, o, finish_i(kind, init_i(kind, dt), 0));
        }
        return RNNF_OK;
    }
    const int last_red = L.red[L.r - 1];
    const int64_t K = L.d[L.r - 1];
    const int64_t units = dt != RNNF_DT_F32 || last_red ? n_out : n_out / K * ((K + RED_COLS - 1) / RED_COLS);
    const int nt = par_threads(n_in, ctx->n_threads, units);
    PARALLEL_TASKS(t, {
        const int64_t u0 = units * t / nt, u1 = units * (t + 1) / nt;
        if (dt != RNNF_DT_F32) reduce_int(kind, dt, &L, x->data, y->data, u0, u1);
        else if (last_red) reduce_last(kind, &L, x->data, y->data, u0, u1);
        else reduce_kept(kind, &L, x->data, y->data, u0, u1, (double *)ctx->scratch + (size_t)t * RED_COLS);
    });
    return RNNF_OK;
}

const rnnf_op_vtable rnnf_op_reduce = {"reduce", reduce_prepare, reduce_scratch, reduce_run, NULL};
