/* movement.c: the ops that only move elements: Copy, Transpose, Concat, Split, Slice, Gather, Pad, Expand, Fill.
 *
 * They are dtype-agnostic: an element is rnnf_dtype_size bytes, copied as a 1-, 4- or 8-byte integer. Each op
 * reduces its shape to the fewest axes that move alike and copies whole contiguous runs with memcpy wherever the
 * innermost axis allows (an embedding lookup is one row copy per index); Transpose of the innermost axis goes
 * through cache-sized tiles. Everything that depends on the data (indices) or on the concrete dims (slice bounds,
 * pads) is checked before the first write, so a failed run leaves no half-written output behind an error.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h> /* baseline on x86-64: no flags, no dispatch */
#endif

#include "graph/graph.h"

#define TILE 32

static int64_t prod(const int64_t *d, int a, int b)
{
    int64_t p = 1;
    for (int i = a; i < b; i++) p *= d[i];
    return p;
}


static rnnf_status counts(const rnnf_gnode *node, const char *op, int n_in, int n_out, char *message)
{
    if ((n_in >= 0 && node->n_in != n_in) || (n_out >= 0 && node->n_out != n_out)) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "%s: %d inputs and %d outputs, expected %d and %d", op,
                 node->n_in, node->n_out, n_in, n_out);
        return RNNF_ERR_FORMAT;
    }
    return RNNF_OK;
}

static rnnf_status no_attrs(rnnf_gnode *node, const char *op, int n_in, int n_out, char *message)
{
    rnnf_status st = counts(node, op, n_in, n_out, message);
    if (st != RNNF_OK) return st;
    if (node->n_iattr || node->n_fattr) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "%s: %d integer and %d float attributes, expected none", op,
                 node->n_iattr, node->n_fattr);
        return RNNF_ERR_FORMAT;
    }
    return RNNF_OK;
}

/* n elements of es bytes, each a copy of the one at v */
static void fill_elems(char *dst, const void *v, int64_t n, size_t es)
{
    if (es == 4) {
        uint32_t x;
        memcpy(&x, v, 4);
        uint32_t *d = (uint32_t *)(void *)dst;
        for (int64_t i = 0; i < n; i++) d[i] = x;
    } else if (es == 8) {
        uint64_t x;
        memcpy(&x, v, 8);
        uint64_t *d = (uint64_t *)(void *)dst;
        for (int64_t i = 0; i < n; i++) d[i] = x;
    } else if (es == 1) {
        memset(dst, *(const unsigned char *)v, (size_t)n);
    } else {
        for (int64_t i = 0; i < n; i++) memcpy(dst + (size_t)i * es, v, es);
    }
}

/* n elements from src with an element stride (may be negative) */
static void copy_strided(char *dst, const char *src, int64_t step, int64_t n, size_t es)
{
    if (step == 1) {
        memcpy(dst, src, (size_t)n * es);
        return;
    }
    if (es == 4) {
        uint32_t *d = (uint32_t *)(void *)dst;
        const uint32_t *s = (const uint32_t *)(const void *)src;
        for (int64_t i = 0; i < n; i++) d[i] = s[i * step];
    } else if (es == 8) {
        uint64_t *d = (uint64_t *)(void *)dst;
        const uint64_t *s = (const uint64_t *)(const void *)src;
        for (int64_t i = 0; i < n; i++) d[i] = s[i * step];
    } else if (es == 1) {
        for (int64_t i = 0; i < n; i++) dst[i] = src[i * step];
    } else {
        for (int64_t i = 0; i < n; i++) memcpy(dst + (size_t)i * es, src + i * step * (int64_t)es, es);
    }
}

/* ---- Copy ---- */

static rnnf_status copy_prepare(rnnf_gnode *node, const rnnf_tensor *const_in, char *message)
{
    (void)const_in;
    return no_attrs(node, "copy", 1, 1, message);
}

static rnnf_status copy_run(const rnnf_gnode *node, const rnnf_tensor *in, rnnf_tensor *out, rnnf_op_ctx *ctx)
{
    (void)node;
    const size_t es = rnnf_dtype_size(in[0].dtype);
    const int64_t n = rnnf_tensor_numel(&out[0]);
    if (!es || out[0].dtype != in[0].dtype || rnnf_tensor_numel(&in[0]) != n) {
        snprintf(ctx->message, RNNF_ERROR_MESSAGE_SIZE, "copy: input and output differ in dtype or size");
        return RNNF_ERR_SHAPE;
    }
    if (n == 0 || in[0].data == out[0].data) return RNNF_OK;
    const int nt = par_threads(n, ctx->n_threads, ctx->n_threads);
    if (nt <= 1) {
        memmove(out[0].data, in[0].data, (size_t)n * es);
        return RNNF_OK;
    }
    const char *X = in[0].data;
    char *Y = out[0].data;
    PARALLEL_TASKS(t, {
        const int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
        memcpy(Y + (size_t)lo * es, X + (size_t)lo * es, (size_t)(hi - lo) * es);
    });
    return RNNF_OK;
}

const rnnf_op_vtable rnnf_op_copy = {"copy", copy_prepare, NULL, copy_run, NULL};

/* ---- Transpose ---- */

static rnnf_status transpose_prepare(rnnf_gnode *node, const rnnf_tensor *const_in, char *message)
{
    (void)const_in;
    rnnf_status st = counts(node, "transpose", 1, 1, message);
    if (st != RNNF_OK) return st;
    int seen = 0, ok = node->n_iattr <= RNNF_G_MAX_RANK && node->n_fattr == 0;
    for (int i = 0; ok && i < node->n_iattr; i++) {
        const int64_t p = node->iattr[i];
        ok = p >= 0 && p < node->n_iattr && !((seen >> p) & 1);
        if (ok) seen |= 1 << p;
    }
    if (!ok) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "transpose: %d integer attributes are not a permutation of "
                 "0..%d (rank <= %d, no float attributes)", node->n_iattr, node->n_iattr - 1, RNNF_G_MAX_RANK);
        return RNNF_ERR_FORMAT;
    }
    return RNNF_OK;
}

/* The output's axes (after collapsing) with their input strides; the output is contiguous. */
typedef struct {
    int r;
    int64_t d[RNNF_G_MAX_RANK], is[RNNF_G_MAX_RANK], os[RNNF_G_MAX_RANK];
} tlayout;

#define DEF_TILE(name, T)                                                                                             \
    static void name(char *out_, const char *in_, int64_t na, int64_t os_a, int64_t nb, int64_t is_b)               \
    {                                                                                                                 \
        T *o = (T *)(void *)out_;                                                                                     \
        const T *x = (const T *)(const void *)in_;                                                                    \
        for (int64_t a = 0; a < na; a++)                                                                              \
            for (int64_t b = 0; b < nb; b++) o[a * os_a + b] = x[a + b * is_b];                                       \
    }

DEF_TILE(tile_1, uint8_t)
DEF_TILE(tile_4_scalar, uint32_t)
DEF_TILE(tile_8, uint64_t)

/* 4-byte elements in 4x4 blocks through SSE2 registers (bits moved as they are, NaN payloads included): the scalar
 * tile read one strided element per store, ~4.5 cycles each (the crnn's [2, 32, 10, 16] -> [2, 16, 32, 10]: 4.7 us
 * for 10k floats). The block's edges go element by element. */
static void tile_4(char *out_, const char *in_, int64_t na, int64_t os_a, int64_t nb, int64_t is_b)
{
#ifdef __SSE2__
    float *o = (float *)(void *)out_;
    const float *x = (const float *)(const void *)in_;
    const int64_t na4 = na / 4 * 4, nb4 = nb / 4 * 4;
    for (int64_t a = 0; a < na4; a += 4) {
        for (int64_t b = 0; b < nb4; b += 4) {
            __m128 r0 = _mm_loadu_ps(x + a + b * is_b), r1 = _mm_loadu_ps(x + a + (b + 1) * is_b);
            __m128 r2 = _mm_loadu_ps(x + a + (b + 2) * is_b), r3 = _mm_loadu_ps(x + a + (b + 3) * is_b);
            _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
            _mm_storeu_ps(o + a * os_a + b, r0);
            _mm_storeu_ps(o + (a + 1) * os_a + b, r1);
            _mm_storeu_ps(o + (a + 2) * os_a + b, r2);
            _mm_storeu_ps(o + (a + 3) * os_a + b, r3);
        }
        if (nb4 < nb) tile_4_scalar(out_ + (size_t)(a * os_a + nb4) * 4, in_ + (size_t)(a + nb4 * is_b) * 4, 4, os_a,
                                    nb - nb4, is_b);
    }
    if (na4 < na) tile_4_scalar(out_ + (size_t)(na4 * os_a) * 4, in_ + (size_t)na4 * 4, na - na4, os_a, nb, is_b);
#else
    tile_4_scalar(out_, in_, na, os_a, nb, is_b);
#endif
}

typedef void (*tile_fn)(char *, const char *, int64_t, int64_t, int64_t, int64_t);

/* Units [u0, u1) of the tiled transpose: the output axis b (innermost) against the input's innermost axis a;
 * a unit is one combination of the other axes and one tile row along a. */
static void transpose_tiles(const tlayout *L, int a, const char *X, char *Y, size_t es, int64_t u0, int64_t u1)
{
    const int b = L->r - 1;
    const tile_fn fn = es == 1 ? tile_1 : es == 4 ? tile_4 : tile_8;
    const int64_t ta = (L->d[a] + TILE - 1) / TILE;
    for (int64_t u = u0; u < u1; u++) {
        int64_t rest = u / ta, ioff = 0, ooff = 0;
        const int64_t a0 = (u % ta) * TILE, na = L->d[a] - a0 < TILE ? L->d[a] - a0 : TILE;
        for (int i = L->r - 1; i >= 0; i--) {
            if (i == a || i == b) continue;
            const int64_t k = rest % L->d[i];
            rest /= L->d[i];
            ioff += k * L->is[i];
            ooff += k * L->os[i];
        }
        ioff += a0;
        ooff += a0 * L->os[a];
        for (int64_t b0 = 0; b0 < L->d[b]; b0 += TILE) {
            const int64_t nb = L->d[b] - b0 < TILE ? L->d[b] - b0 : TILE;
            fn(Y + (size_t)(ooff + b0) * es, X + (size_t)(ioff + b0 * L->is[b]) * es, na, L->os[a], nb, L->is[b]);
        }
    }
}

/* Output rows [r0, r1) when the innermost output axis is also the input's: contiguous runs. */
static void transpose_runs(const tlayout *L, const char *X, char *Y, size_t es, int64_t r0, int64_t r1)
{
    const int64_t run = L->d[L->r - 1];
    for (int64_t row = r0; row < r1; row++) {
        int64_t rest = row, ioff = 0;
        for (int i = L->r - 2; i >= 0; i--) {
            ioff += (rest % L->d[i]) * L->is[i];
            rest /= L->d[i];
        }
        memcpy(Y + (size_t)(row * run) * es, X + (size_t)ioff * es, (size_t)run * es);
    }
}

static rnnf_status transpose_run(const rnnf_gnode *node, const rnnf_tensor *in, rnnf_tensor *out, rnnf_op_ctx *ctx)
{
    const rnnf_tensor *x = &in[0], *y = &out[0];
    const size_t es = rnnf_dtype_size(x->dtype);
    const int R = x->rank;
    int ok = es && y->dtype == x->dtype && R == node->n_iattr && y->rank == R;
    for (int i = 0; ok && i < R; i++) ok = y->dims[i] == x->dims[node->iattr[i]];
    if (!ok) {
        char a[64], b[64];
        rnnf_dims_str(a, sizeof a, x->dims, x->rank);
        rnnf_dims_str(b, sizeof b, y->dims, y->rank);
        snprintf(ctx->message, RNNF_ERROR_MESSAGE_SIZE, "transpose: output [%s] is not input [%s] permuted by "
                 "the %d-axis perm", b, a, node->n_iattr);
        return RNNF_ERR_SHAPE;
    }
    const int64_t n = rnnf_tensor_numel(y);
    if (n == 0) return RNNF_OK;
    int64_t xs[RNNF_G_MAX_RANK], s = 1;
    for (int i = R - 1; i >= 0; i--) {
        xs[i] = s;
        s *= x->dims[i];
    }
    tlayout L;
    L.r = 0;
    for (int i = 0; i < R; i++) {
        const int64_t d = y->dims[i], st = xs[node->iattr[i]];
        if (d == 1) continue;
        if (L.r > 0 && L.is[L.r - 1] == st * d) {
            L.d[L.r - 1] *= d;
            L.is[L.r - 1] = st;
        } else {
            L.d[L.r] = d;
            L.is[L.r] = st;
            L.r++;
        }
    }
    if (L.r <= 1) {
        if (x->data != y->data) memcpy(y->data, x->data, (size_t)n * es);
        return RNNF_OK;
    }
    s = 1;
    for (int i = L.r - 1; i >= 0; i--) {
        L.os[i] = s;
        s *= L.d[i];
    }
    if (L.is[L.r - 1] == 1) {
        const int64_t rows = n / L.d[L.r - 1];
        const int nt = par_threads(n, ctx->n_threads, rows);
        PARALLEL_TASKS(t, {
            transpose_runs(&L, x->data, y->data, es, rows * t / nt, rows * (t + 1) / nt);
        });
        return RNNF_OK;
    }
    int a = 0;
    while (L.is[a] != 1) a++;
    const int64_t units = n / (L.d[a] * L.d[L.r - 1]) * ((L.d[a] + TILE - 1) / TILE);
    const int nt = par_threads(n, ctx->n_threads, units);
    PARALLEL_TASKS(t, {
        transpose_tiles(&L, a, x->data, y->data, es, units * t / nt, units * (t + 1) / nt);
    });
    return RNNF_OK;
}

const rnnf_op_vtable rnnf_op_transpose = {"transpose", transpose_prepare, NULL, transpose_run, NULL};

/* ---- Concat and Split: the same walk, one direction each ---- */

static rnnf_status axis_prepare(rnnf_gnode *node, const char *op, int n_in, int n_out, char *message)
{
    rnnf_status st = counts(node, op, n_in, n_out, message);
    if (st != RNNF_OK) return st;
    if (node->n_iattr != 1 || node->n_fattr != 0 || node->iattr[0] < 0 || node->iattr[0] >= RNNF_G_MAX_RANK) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "%s: %d integer and %d float attributes, expected one axis in "
                 "[0, %d)", op, node->n_iattr, node->n_fattr, RNNF_G_MAX_RANK);
        return RNNF_ERR_FORMAT;
    }
    return RNNF_OK;
}

/* parts[k] against whole along axis: same dtype and rank, equal dims off the axis, sizes summing to whole's */
static rnnf_status check_parts(const char *op, const rnnf_tensor *whole, const rnnf_tensor *parts, int n, int axis,
                               char *message)
{
    if (axis >= whole->rank || !rnnf_dtype_size(whole->dtype)) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "%s: axis %d of a rank-%d tensor", op, axis, whole->rank);
        return RNNF_ERR_SHAPE;
    }
    int64_t sum = 0;
    for (int k = 0; k < n; k++) {
        const rnnf_tensor *p = &parts[k];
        int ok = p->dtype == whole->dtype && p->rank == whole->rank;
        for (int i = 0; ok && i < p->rank; i++) ok = i == axis || p->dims[i] == whole->dims[i];
        if (!ok) {
            char a[64], b[64];
            rnnf_dims_str(a, sizeof a, p->dims, p->rank);
            rnnf_dims_str(b, sizeof b, whole->dims, whole->rank);
            snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "%s: part %d [%s] (dtype %d) does not fit [%s] (dtype %d) "
                     "along axis %d", op, k, a, p->dtype, b, whole->dtype, axis);
            return RNNF_ERR_SHAPE;
        }
        sum += p->dims[axis];
    }
    if (sum != whole->dims[axis]) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "%s: parts sum to %" PRId64 " along axis %d, the whole has %" PRId64,
                 op, sum, axis, whole->dims[axis]);
        return RNNF_ERR_SHAPE;
    }
    return RNNF_OK;
}

/* Outer rows [o0, o1): whole row o is the parts' rows side by side. */
static void parts_move(int to_whole, const rnnf_tensor *whole, const rnnf_tensor *parts, int n, int axis, int64_t o0,
                       int64_t o1)
{
    const size_t es = rnnf_dtype_size(whole->dtype);
    const int64_t inner = prod(whole->dims, axis + 1, whole->rank);
    const size_t wrow = (size_t)(whole->dims[axis] * inner) * es;
    for (int64_t o = o0; o < o1; o++) {
        char *w = (char *)whole->data + (size_t)o * wrow;
        for (int k = 0; k < n; k++) {
            const size_t bytes = (size_t)(parts[k].dims[axis] * inner) * es;
            char *p = (char *)parts[k].data + (size_t)o * bytes;
            if (to_whole) memcpy(w, p, bytes);
            else memcpy(p, w, bytes);
            w += bytes;
        }
    }
}

static rnnf_status parts_run(int to_whole, const rnnf_gnode *node, const rnnf_tensor *whole,
                             const rnnf_tensor *parts, int n, rnnf_op_ctx *ctx)
{
    const char *op = to_whole ? "concat" : "split";
    const int axis = (int)node->iattr[0];
    rnnf_status st = check_parts(op, whole, parts, n, axis, ctx->message);
    if (st != RNNF_OK) return st;
    const int64_t total = rnnf_tensor_numel(whole);
    if (total == 0) return RNNF_OK;
    const int64_t outer = prod(whole->dims, 0, axis);
    const int nt = par_threads(total, ctx->n_threads, outer);
    PARALLEL_TASKS(t, {
        parts_move(to_whole, whole, parts, n, axis, outer * t / nt, outer * (t + 1) / nt);
    });
    return RNNF_OK;
}

static rnnf_status concat_prepare(rnnf_gnode *node, const rnnf_tensor *const_in, char *message)
{
    (void)const_in;
    if (node->n_in < 1) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "concat: no inputs");
        return RNNF_ERR_FORMAT;
    }
    return axis_prepare(node, "concat", node->n_in, 1, message);
}

static rnnf_status concat_run(const rnnf_gnode *node, const rnnf_tensor *in, rnnf_tensor *out, rnnf_op_ctx *ctx)
{
    return parts_run(1, node, &out[0], in, node->n_in, ctx);
}

const rnnf_op_vtable rnnf_op_concat = {"concat", concat_prepare, NULL, concat_run, NULL};

static rnnf_status split_prepare(rnnf_gnode *node, const rnnf_tensor *const_in, char *message)
{
    (void)const_in;
    if (node->n_out < 1) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "split: no outputs");
        return RNNF_ERR_FORMAT;
    }
    return axis_prepare(node, "split", 1, node->n_out, message);
}

static rnnf_status split_run(const rnnf_gnode *node, const rnnf_tensor *in, rnnf_tensor *out, rnnf_op_ctx *ctx)
{
    return parts_run(0, node, &in[0], out, node->n_out, ctx);
}

const rnnf_op_vtable rnnf_op_split = {"split", split_prepare, NULL, split_run, NULL};

/* ---- Slice ---- */

static rnnf_status slice_prepare(rnnf_gnode *node, const rnnf_tensor *const_in, char *message)
{
    (void)const_in;
    rnnf_status st = counts(node, "slice", 1, 1, message);
    if (st != RNNF_OK) return st;
    if (node->n_iattr % 4 != 0 || node->n_iattr / 4 > RNNF_G_MAX_RANK || node->n_fattr != 0) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "slice: %d attributes, expected a multiple of 4 (at most %d "
                 "axes) and no float attributes", node->n_iattr, RNNF_G_MAX_RANK);
        return RNNF_ERR_FORMAT;
    }
    for (int k = 0; k < node->n_iattr / 4; k++) {
        const int64_t axis = node->iattr[4 * k], step = node->iattr[4 * k + 3];
        if (axis < -RNNF_G_MAX_RANK || axis >= RNNF_G_MAX_RANK || step == 0) {
            snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "slice: entry %d has axis %" PRId64 " and step %" PRId64
                     " (axis in [-%d, %d), step nonzero)", k, axis, step, RNNF_G_MAX_RANK, RNNF_G_MAX_RANK);
            return RNNF_ERR_FORMAT;
        }
    }
    return RNNF_OK;
}

static rnnf_status slice_run(const rnnf_gnode *node, const rnnf_tensor *in, rnnf_tensor *out, rnnf_op_ctx *ctx)
{
    const rnnf_tensor *x = &in[0], *y = &out[0];
    const size_t es = rnnf_dtype_size(x->dtype);
    const int R = x->rank;
    if (!es || y->dtype != x->dtype || y->rank != R) {
        snprintf(ctx->message, RNNF_ERROR_MESSAGE_SIZE, "slice: output rank %d / dtype %d for input rank %d / "
                 "dtype %d", y->rank, y->dtype, R, x->dtype);
        return RNNF_ERR_SHAPE;
    }
    int64_t start[RNNF_G_MAX_RANK], step[RNNF_G_MAX_RANK], len[RNNF_G_MAX_RANK];
    int seen = 0;
    for (int i = 0; i < R; i++) {
        start[i] = 0;
        step[i] = 1;
        len[i] = x->dims[i];
    }
    for (int k = 0; k < node->n_iattr / 4; k++) {
        const int64_t *e = node->iattr + 4 * k;
        const int64_t axis = e[0] < 0 ? e[0] + R : e[0];
        if (axis < 0 || axis >= R || ((seen >> axis) & 1)) {
            snprintf(ctx->message, RNNF_ERROR_MESSAGE_SIZE, "slice: axis %" PRId64 " %s for rank %d", e[0],
                     axis < 0 || axis >= R ? "is out of range" : "is sliced twice", R);
            return RNNF_ERR_ARG;
        }
        seen |= 1 << axis;
        const int64_t d = x->dims[axis], st = e[3];
        int64_t b = e[1], f = e[2];
        if (b < 0) b += d;
        if (f < 0) f += d;
        if (st > 0) {
            b = b < 0 ? 0 : (b > d ? d : b);
            f = f < 0 ? 0 : (f > d ? d : f);
            len[axis] = f > b ? (f - b - 1) / st + 1 : 0;
        } else {
            /* onnxruntime reads an end of INT64_MAX as "to the end" in either direction; ONNX's clamping alone
             * would make a backward slice to INT64_MAX empty */
            b = b < 0 ? 0 : (b > d - 1 ? d - 1 : b);
            f = e[2] == INT64_MAX || f < -1 ? -1 : (f > d - 1 ? d - 1 : f);
            /* -INT64_MIN overflows; any step beyond the axis takes one element either way */
            len[axis] = b > f ? (b - f - 1) / (st == INT64_MIN ? INT64_MAX : -st) + 1 : 0;
        }
        start[axis] = b;
        step[axis] = st;
    }
    int ok = 1;
    for (int i = 0; i < R; i++) ok = ok && y->dims[i] == len[i];
    if (!ok) {
        char a[64], b[64];
        rnnf_dims_str(a, sizeof a, y->dims, R);
        rnnf_dims_str(b, sizeof b, len, R);
        snprintf(ctx->message, RNNF_ERROR_MESSAGE_SIZE, "slice: output dims [%s], but the slice gives [%s]", a, b);
        return RNNF_ERR_SHAPE;
    }
    const int64_t n = rnnf_tensor_numel(y);
    if (n == 0) return RNNF_OK;
    if (R == 0) {
        memcpy(y->data, x->data, es);
        return RNNF_OK;
    }
    int64_t xs[RNNF_G_MAX_RANK], s = 1;
    for (int i = R - 1; i >= 0; i--) {
        xs[i] = s;
        s *= x->dims[i];
    }
    int64_t base = 0;
    for (int i = 0; i < R; i++) base += start[i] * xs[i];
    const int64_t inner = len[R - 1], rows = n / inner, istep = step[R - 1];
    const char *X = x->data;
    char *Y = y->data;
    const int nt = par_threads(n, ctx->n_threads, rows);
    PARALLEL_TASKS(t, {
        for (int64_t row = rows * t / nt; row < rows * (t + 1) / nt; row++) {
            int64_t rest = row, off = base;
            for (int i = R - 2; i >= 0; i--) {
                off += (rest % len[i]) * step[i] * xs[i];
                rest /= len[i];
            }
            copy_strided(Y + (size_t)(row * inner) * es, X + off * (int64_t)es, istep, inner, es);
        }
    });
    return RNNF_OK;
}

const rnnf_op_vtable rnnf_op_slice = {"slice", slice_prepare, NULL, slice_run, NULL};

/* ---- Gather ---- */

static rnnf_status gather_prepare(rnnf_gnode *node, const rnnf_tensor *const_in, char *message)
{
    (void)const_in;
    return axis_prepare(node, "gather", 2, 1, message);
}

static inline int64_t index_at(const rnnf_tensor *idx, int64_t j)
{
    return idx->dtype == RNNF_DT_I64 ? ((const int64_t *)idx->data)[j] : ((const int32_t *)idx->data)[j];
}

static rnnf_status gather_run(const rnnf_gnode *node, const rnnf_tensor *in, rnnf_tensor *out, rnnf_op_ctx *ctx)
{
    const rnnf_tensor *data = &in[0], *idx = &in[1], *y = &out[0];
    const int axis = (int)node->iattr[0];
    const size_t es = rnnf_dtype_size(data->dtype);
    int ok = es && y->dtype == data->dtype && (idx->dtype == RNNF_DT_I64 || idx->dtype == RNNF_DT_I32) &&
             axis < data->rank && y->rank == data->rank - 1 + idx->rank;
    for (int i = 0; ok && i < y->rank; i++) {
        const int64_t want = i < axis ? data->dims[i]
                             : i < axis + idx->rank ? idx->dims[i - axis] : data->dims[i - idx->rank + 1];
        ok = y->dims[i] == want;
    }
    if (!ok) {
        char a[64], b[64];
        rnnf_dims_str(a, sizeof a, data->dims, data->rank);
        rnnf_dims_str(b, sizeof b, y->dims, y->rank);
        snprintf(ctx->message, RNNF_ERROR_MESSAGE_SIZE, "gather: output [%s] does not fit data [%s] (dtype %d), "
                 "indices of rank %d (dtype %d) on axis %d", b, a, data->dtype, idx->rank, idx->dtype, axis);
        return RNNF_ERR_SHAPE;
    }
    const int64_t ni = rnnf_tensor_numel(idx), d = data->dims[axis];
    for (int64_t j = 0; j < ni; j++) {
        const int64_t v = index_at(idx, j);
        if (v < -d || v >= d) {
            snprintf(ctx->message, RNNF_ERROR_MESSAGE_SIZE, "gather: index %" PRId64 " (element %" PRId64
                     ") is out of range for size %" PRId64 " on axis %d", v, j, d, axis);
            return RNNF_ERR_ARG;
        }
    }
    const int64_t n = rnnf_tensor_numel(y);
    if (n == 0) return RNNF_OK;
    const int64_t outer = prod(data->dims, 0, axis), inner = prod(data->dims, axis + 1, data->rank);
    const size_t chunk = (size_t)inner * es;
    const char *X = data->data;
    char *Y = y->data;
    const int64_t units = outer * ni;
    const int nt = par_threads(n, ctx->n_threads, units);
    PARALLEL_TASKS(t, {
        const int64_t u0 = units * t / nt, u1 = units * (t + 1) / nt;
        if (chunk == 4) {
            for (int64_t u = u0; u < u1; u++) {
                const int64_t o = u / ni, v = index_at(idx, u % ni);
                memcpy(Y + (size_t)u * 4, X + (size_t)(o * d + (v < 0 ? v + d : v)) * 4, 4);
            }
        } else if (chunk == 8) {
            for (int64_t u = u0; u < u1; u++) {
                const int64_t o = u / ni, v = index_at(idx, u % ni);
                memcpy(Y + (size_t)u * 8, X + (size_t)(o * d + (v < 0 ? v + d : v)) * 8, 8);
            }
        } else {
            for (int64_t u = u0; u < u1; u++) {
                const int64_t o = u / ni, v = index_at(idx, u % ni);
                memcpy(Y + (size_t)u * chunk, X + (size_t)(o * d + (v < 0 ? v + d : v)) * chunk, chunk);
            }
        }
    });
    return RNNF_OK;
}

const rnnf_op_vtable rnnf_op_gather = {"gather", gather_prepare, NULL, gather_run, NULL};

/* ---- Pad ---- */

enum { PAD_CONSTANT = 0, PAD_REFLECT = 1, PAD_EDGE = 2 };

static rnnf_status pad_prepare(rnnf_gnode *node, const rnnf_tensor *const_in, char *message)
{
    (void)const_in;
    rnnf_status st = counts(node, "pad", 1, 1, message);
    if (st != RNNF_OK) return st;
    if (node->n_iattr < 1 || node->n_iattr % 2 != 1 || node->n_iattr / 2 > RNNF_G_MAX_RANK || node->n_fattr != 1) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "pad: %d integer and %d float attributes, expected 1 + 2*rank "
                 "and 1", node->n_iattr, node->n_fattr);
        return RNNF_ERR_FORMAT;
    }
    if (node->iattr[0] < PAD_CONSTANT || node->iattr[0] > PAD_EDGE) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "pad: mode %" PRId64 ", expected 0 (constant), 1 (reflect) or "
                 "2 (edge)", node->iattr[0]);
        return RNNF_ERR_FORMAT;
    }
    for (int i = 1; i < node->n_iattr; i++)
        if (node->iattr[i] < 0) {
            snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "pad: negative pad %" PRId64 " (attribute %d)",
                     node->iattr[i], i);
            return RNNF_ERR_FORMAT;
        }
    return RNNF_OK;
}

/* Source index along an axis of size d for output index o with `before` padding; -1 = the constant. */
static inline int64_t pad_src(int mode, int64_t o, int64_t before, int64_t d)
{
    const int64_t j = o - before;
    if (j >= 0 && j < d) return j;
    if (mode == PAD_CONSTANT) return -1;
    if (mode == PAD_EDGE) return j < 0 ? 0 : d - 1;
    return j < 0 ? -j : 2 * (d - 1) - j;
}

/* The constant in the tensor's dtype (float to integer as Cast would, within range). */
static void pad_value(int dtype, float v, void *out)
{
    switch (dtype) {
    case RNNF_DT_F32: memcpy(out, &v, 4); return;
    case RNNF_DT_I64: {
        const int64_t i = v >= -9223372036854775808.0f && v < 9223372036854775808.0f ? (int64_t)v : INT64_MIN;
        memcpy(out, &i, 8);
        return;
    }
    case RNNF_DT_I32: {
        const int32_t i = v >= -2147483648.0f && v < 2147483648.0f ? (int32_t)v : INT32_MIN;
        memcpy(out, &i, 4);
        return;
    }
    case RNNF_DT_U8: *(uint8_t *)out = v != 0.0f; return;
    default: *(int8_t *)out = v >= -128.0f && v < 128.0f ? (int8_t)v : 0; return;
    }
}

static rnnf_status pad_run(const rnnf_gnode *node, const rnnf_tensor *in, rnnf_tensor *out, rnnf_op_ctx *ctx)
{
    const rnnf_tensor *x = &in[0], *y = &out[0];
    const int R = x->rank, mode = (int)node->iattr[0];
    const int64_t *bef = node->iattr + 1, *aft = node->iattr + 1 + R;
    const size_t es = rnnf_dtype_size(x->dtype);
    int ok = es && y->dtype == x->dtype && y->rank == R && node->n_iattr == 1 + 2 * R;
    for (int i = 0; ok && i < R; i++) ok = y->dims[i] == x->dims[i] + bef[i] + aft[i];
    if (!ok) {
        char a[64], b[64];
        rnnf_dims_str(a, sizeof a, x->dims, R);
        rnnf_dims_str(b, sizeof b, y->dims, y->rank);
        snprintf(ctx->message, RNNF_ERROR_MESSAGE_SIZE, "pad: output [%s] is not input [%s] with the %d pads", b, a,
                 node->n_iattr - 1);
        return RNNF_ERR_SHAPE;
    }
    for (int i = 0; i < R && mode != PAD_CONSTANT; i++) {
        const int64_t d = x->dims[i];
        if ((mode == PAD_REFLECT && (bef[i] >= d || aft[i] >= d) && (bef[i] || aft[i])) ||
            (mode == PAD_EDGE && d == 0 && (bef[i] || aft[i]))) {
            snprintf(ctx->message, RNNF_ERROR_MESSAGE_SIZE, "pad: %s pads %" PRId64 ", %" PRId64 " on axis %d of "
                     "size %" PRId64 "%s", mode == PAD_REFLECT ? "reflect" : "edge", bef[i], aft[i], i, d,
                     mode == PAD_REFLECT ? " (reflect needs pads below the size)" : "");
            return RNNF_ERR_ARG;
        }
    }
    const int64_t n = rnnf_tensor_numel(y);
    if (n == 0) return RNNF_OK;
    if (R == 0) {
        memcpy(y->data, x->data, es);
        return RNNF_OK;
    }
    unsigned char cval[8];
    pad_value(x->dtype, node->fattr[0], cval);
    int64_t xs[RNNF_G_MAX_RANK], s = 1;
    for (int i = R - 1; i >= 0; i--) {
        xs[i] = s;
        s *= x->dims[i];
    }
    const int64_t W = y->dims[R - 1], d = x->dims[R - 1], b = bef[R - 1], rows = n / W;
    const char *X = x->data;
    char *Y = y->data;
    const int nt = par_threads(n, ctx->n_threads, rows);
    PARALLEL_TASKS(t, {
        for (int64_t row = rows * t / nt; row < rows * (t + 1) / nt; row++) {
            char *yr = Y + (size_t)(row * W) * es;
            int64_t rest = row, off = 0;
            int constant_row = 0;
            for (int i = R - 2; i >= 0; i--) {
                const int64_t j = pad_src(mode, rest % y->dims[i], bef[i], x->dims[i]);
                rest /= y->dims[i];
                if (j < 0) constant_row = 1;
                else off += j * xs[i];
            }
            if (constant_row || d == 0) {
                fill_elems(yr, cval, W, es);
                continue;
            }
            const char *xr = X + (size_t)off * es;
            memcpy(yr + (size_t)b * es, xr, (size_t)d * es);
            const int64_t a = W - b - d;
            if (mode == PAD_CONSTANT) {
                fill_elems(yr, cval, b, es);
                fill_elems(yr + (size_t)(b + d) * es, cval, a, es);
            } else if (mode == PAD_EDGE) {
                fill_elems(yr, xr, b, es);
                fill_elems(yr + (size_t)(b + d) * es, xr + (size_t)(d - 1) * es, a, es);
            } else {
                /* left: x[b], x[b-1], ..., x[1]; right: x[d-2], x[d-3], ... */
                copy_strided(yr, xr + (size_t)b * es, -1, b, es);
                copy_strided(yr + (size_t)(b + d) * es, xr + (size_t)(d - 2 >= 0 ? d - 2 : 0) * es, -1, a, es);
            }
        }
    });
    return RNNF_OK;
}

const rnnf_op_vtable rnnf_op_pad = {"pad", pad_prepare, NULL, pad_run, NULL};

/* ---- Expand ---- */

static rnnf_status expand_prepare(rnnf_gnode *node, const rnnf_tensor *const_in, char *message)
{
    (void)const_in;
    return no_attrs(node, "expand", 1, 1, message);
}

static rnnf_status expand_run(const rnnf_gnode *node, const rnnf_tensor *in, rnnf_tensor *out, rnnf_op_ctx *ctx)
{
    (void)node;
    const rnnf_tensor *x = &in[0], *y = &out[0];
    const size_t es = rnnf_dtype_size(x->dtype);
    const int R = y->rank;
    int ok = es && y->dtype == x->dtype && x->rank <= R;
    int64_t d[RNNF_G_MAX_RANK], st[RNNF_G_MAX_RANK], s = 1;
    int r = 0;
    for (int i = R - 1; ok && i >= 0; i--) {
        const int j = i - (R - x->rank);
        const int64_t xd = j >= 0 ? x->dims[j] : 1;
        ok = xd == 1 || xd == y->dims[i];
        if (!ok || y->dims[i] == 1) continue;
        const int64_t stride = xd == 1 ? 0 : s;
        s *= xd;
        /* axes collected innermost first; merge with the previous (inner) one when they step as one */
        if (r > 0 && stride == st[r - 1] * d[r - 1]) {
            d[r - 1] *= y->dims[i];
        } else {
            d[r] = y->dims[i];
            st[r] = stride;
            r++;
        }
    }
    if (!ok) {
        char a[64], b[64];
        rnnf_dims_str(a, sizeof a, x->dims, x->rank);
        rnnf_dims_str(b, sizeof b, y->dims, y->rank);
        snprintf(ctx->message, RNNF_ERROR_MESSAGE_SIZE, "expand: input [%s] does not broadcast to [%s]", a, b);
        return RNNF_ERR_SHAPE;
    }
    const int64_t n = rnnf_tensor_numel(y);
    if (n == 0) return RNNF_OK;
    if (r == 0) {
        fill_elems(y->data, x->data, n, es);
        return RNNF_OK;
    }
    /* d[0] / st[0] is now the innermost axis */
    const int64_t inner = d[0], rows = n / inner;
    const char *X = x->data;
    char *Y = y->data;
    const int nt = par_threads(n, ctx->n_threads, rows);
    PARALLEL_TASKS(t, {
        for (int64_t row = rows * t / nt; row < rows * (t + 1) / nt; row++) {
            int64_t rest = row, off = 0;
            for (int i = 1; i < r; i++) {
                off += (rest % d[i]) * st[i];
                rest /= d[i];
            }
            char *yr = Y + (size_t)(row * inner) * es;
            if (st[0]) memcpy(yr, X + (size_t)off * es, (size_t)inner * es);
            else fill_elems(yr, X + (size_t)off * es, inner, es);
        }
    });
    return RNNF_OK;
}

const rnnf_op_vtable rnnf_op_expand = {"expand", expand_prepare, NULL, expand_run, NULL};

/* ---- Fill ---- */

static rnnf_status fill_prepare(rnnf_gnode *node, const rnnf_tensor *const_in, char *message)
{
    (void)const_in;
    rnnf_status st = counts(node, "fill", 0, 1, message);
    if (st != RNNF_OK) return st;
    if (node->n_iattr > 1 || node->n_fattr > 1 || node->n_iattr + node->n_fattr < 1) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "fill: %d integer and %d float attributes, expected one value",
                 node->n_iattr, node->n_fattr);
        return RNNF_ERR_FORMAT;
    }
    return RNNF_OK;
}

static rnnf_status fill_run(const rnnf_gnode *node, const rnnf_tensor *in, rnnf_tensor *out, rnnf_op_ctx *ctx)
{
    (void)in;
    const rnnf_tensor *y = &out[0];
    const size_t es = rnnf_dtype_size(y->dtype);
    const int is_f = y->dtype == RNNF_DT_F32;
    if (!es || (is_f ? node->n_fattr : node->n_iattr) != 1) {
        snprintf(ctx->message, RNNF_ERROR_MESSAGE_SIZE, "fill: output dtype %d needs its value in the %s attribute",
                 y->dtype, is_f ? "float" : "integer");
        return RNNF_ERR_FORMAT;
    }
    unsigned char v[8];
    if (is_f) {
        memcpy(v, &node->fattr[0], 4);
    } else {
        const int64_t i = node->iattr[0];
        const int32_t i32 = (int32_t)(uint32_t)(uint64_t)i;
        switch (y->dtype) {
        case RNNF_DT_I64: memcpy(v, &i, 8); break;
        case RNNF_DT_I32: memcpy(v, &i32, 4); break;
        case RNNF_DT_U8: v[0] = i != 0; break;
        default: v[0] = (unsigned char)(uint64_t)i; break;
        }
    }
    const int64_t n = rnnf_tensor_numel(y);
    const int nt = par_threads(n, ctx->n_threads, ctx->n_threads);
    char *Y = y->data;
    PARALLEL_TASKS(t, {
        const int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
        fill_elems(Y + (size_t)lo * es, v, hi - lo, es);
    });
    return RNNF_OK;
}

const rnnf_op_vtable rnnf_op_fill = {"fill", fill_prepare, NULL, fill_run, NULL};
