/* binary.c: the element-wise ops with broadcasting (Binary, Where) and Cast.
 *
 * Broadcasting is multidirectional (numpy): inputs align right against the output's given dims. The shapes are
 * first reduced to the fewest axes that iterate alike (size-1 output axes dropped, neighbours merged where every
 * input steps through both as one), so the common cases become one flat loop (same shape or a scalar), or rows
 * with one input a vector along the row or constant along it (a per-channel [C,1] against [N,C,L]). Each row is
 * then a loop specialised for unit or zero strides, which the compiler vectorizes.
 *
 * Results follow onnxruntime: Max/Min return NaN when either side is NaN; integer Div truncates toward zero and
 * integer Mod takes the divisor's sign, both refusing a zero divisor (INT_MIN / -1 wraps to INT_MIN, where the
 * hardware would trap); integer Pow is pow in double converted back, as onnxruntime does. Cast from float to an
 * integer truncates toward zero; NaN and out-of-range values give the x86 "integer indefinite" INT_MIN of the
 * destination (int8: of int32, wrapped), as onnxruntime does on x86-64, on every platform. Integer narrowing
 * wraps; casting to bool (u8) is x != 0.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "graph/graph.h"

#define MAX_IN 3

/* ---- broadcasting ---- */

typedef struct {
    int rank;                       /* >= 1 after collapsing */
    int64_t dims[RNNF_G_MAX_RANK];
    int64_t st[MAX_IN][RNNF_G_MAX_RANK]; /* element strides per input, 0 along broadcast axes */
} bcast;

static rnnf_status bcast_make(const char *op, const rnnf_tensor *out, const rnnf_tensor *const *ins, int n_in,
                              bcast *b, char *message)
{
    const int R = out->rank;
    int64_t st[MAX_IN][RNNF_G_MAX_RANK];
    for (int k = 0; k < n_in; k++) {
        const rnnf_tensor *t = ins[k];
        if (t->rank > R) {
            snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "%s: input %d has rank %d, above the output's %d", op, k,
                     t->rank, R);
            return RNNF_ERR_SHAPE;
        }
        int64_t s = 1;
        for (int i = R - 1; i >= 0; i--) {
            const int j = i - (R - t->rank);
            const int64_t d = j >= 0 ? t->dims[j] : 1;
            if (d != 1 && d != out->dims[i]) {
                snprintf(message, RNNF_ERROR_MESSAGE_SIZE,
                         "%s: input %d has size %" PRId64 " on axis %d, which does not broadcast to %" PRId64, op, k,
                         d, j, out->dims[i]);
                return RNNF_ERR_SHAPE;
            }
            st[k][i] = d == 1 ? 0 : s;
            s *= d;
        }
    }
    int r = 0;
    for (int i = 0; i < R; i++) {
        if (out->dims[i] == 1) continue;
        int merge = r > 0;
        for (int k = 0; k < n_in && merge; k++) merge = b->st[k][r - 1] == st[k][i] * out->dims[i];
        if (merge) {
            b->dims[r - 1] *= out->dims[i];
            for (int k = 0; k < n_in; k++) b->st[k][r - 1] = st[k][i];
        } else {
            b->dims[r] = out->dims[i];
            for (int k = 0; k < n_in; k++) b->st[k][r] = st[k][i];
            r++;
        }
    }
    if (r == 0) {
        b->dims[0] = 1;
        for (int k = 0; k < n_in; k++) b->st[k][0] = 0;
        r = 1;
    }
    b->rank = r;
    return RNNF_OK;
}

/* Element offsets of row `row` (all axes but the last) for each input. */
static void bcast_row_offsets(const bcast *b, int n_in, int64_t row, int64_t *idx, int64_t *off)
{
    for (int k = 0; k < n_in; k++) off[k] = 0;
    for (int i = b->rank - 2; i >= 0; i--) {
        idx[i] = row % b->dims[i];
        row /= b->dims[i];
        for (int k = 0; k < n_in; k++) off[k] += idx[i] * b->st[k][i];
    }
}

static void bcast_next_row(const bcast *b, int n_in, int64_t *idx, int64_t *off)
{
    for (int i = b->rank - 2; i >= 0; i--) {
        for (int k = 0; k < n_in; k++) off[k] += b->st[k][i];
        if (++idx[i] < b->dims[i]) return;
        for (int k = 0; k < n_in; k++) off[k] -= b->st[k][i] * b->dims[i];
        idx[i] = 0;
    }
}

/* ---- binary kernels: one row of n outputs, each input with stride 1 or 0 ---- */

typedef void (*bin_fn)(const void *a, int sa, const void *b, int sb, void *y, int64_t n);

#define DEF_BIN(name, T, TO, EXPR)                                                                                    \
    static void name(const void *a_, int sa, const void *b_, int sb, void *y_, int64_t n)                            \
    {                                                                                                                 \
        const T *A = a_, *B = b_;                                                                                     \
        TO *Y = y_;                                                                                                   \
        if (sa && sb)                                                                                                 \
            for (int64_t i = 0; i < n; i++) {                                                                         \
                const T a = A[i], b = B[i];                                                                           \
                Y[i] = (EXPR);                                                                                        \
            }                                                                                                         \
        else if (sa) {                                                                                                \
            const T b = B[0];                                                                                         \
            for (int64_t i = 0; i < n; i++) {                                                                         \
                const T a = A[i];                                                                                     \
                Y[i] = (EXPR);                                                                                        \
            }                                                                                                         \
        } else if (sb) {                                                                                              \
            const T a = A[0];                                                                                         \
            for (int64_t i = 0; i < n; i++) {                                                                         \
                const T b = B[i];                                                                                     \
                Y[i] = (EXPR);                                                                                        \
            }                                                                                                         \
        } else {                                                                                                      \
            const T a = A[0], b = B[0];                                                                               \
            const TO v = (EXPR);                                                                                      \
            for (int64_t i = 0; i < n; i++) Y[i] = v;                                                                 \
        }                                                                                                             \
    }

/* pow(x, 2) is x*x, and x*x is exactly rounded: the common LayerNorm decomposition stays vectorized */
static void pow_f32(const void *a_, int sa, const void *b_, int sb, void *y_, int64_t n)
{
    const float *A = a_, *B = b_;
    float *Y = y_;
    if (!sb && B[0] == 2.0f) {
        if (sa)
            for (int64_t i = 0; i < n; i++) Y[i] = A[i] * A[i];
        else
            for (int64_t i = 0; i < n; i++) Y[i] = A[0] * A[0];
        return;
    }
    for (int64_t i = 0; i < n; i++) Y[i] = powf(A[sa ? i : 0], B[sb ? i : 0]);
}

DEF_BIN(add_f32, float, float, a + b)
DEF_BIN(sub_f32, float, float, a - b)
DEF_BIN(mul_f32, float, float, a * b)
DEF_BIN(div_f32, float, float, a / b)
DEF_BIN(max_f32, float, float, a != a ? a : (a >= b ? a : b))
DEF_BIN(min_f32, float, float, a != a ? a : (a <= b ? a : b))
DEF_BIN(mod_f32, float, float, fmodf(a, b))
DEF_BIN(eq_f32, float, uint8_t, a == b)
DEF_BIN(gt_f32, float, uint8_t, a > b)
DEF_BIN(lt_f32, float, uint8_t, a < b)
DEF_BIN(ge_f32, float, uint8_t, a >= b)
DEF_BIN(le_f32, float, uint8_t, a <= b)

/* Integer arithmetic wraps (unsigned), as the hardware and onnxruntime do, without C's signed-overflow UB. */
static inline int64_t wrap64(uint64_t u) { return u <= (uint64_t)INT64_MAX ? (int64_t)u : -(int64_t)(~u) - 1; }
static inline int32_t wrap32(uint32_t u) { return u <= (uint32_t)INT32_MAX ? (int32_t)u : -(int32_t)(~u) - 1; }

static inline int64_t div64(int64_t a, int64_t b) { return b == -1 ? wrap64(0u - (uint64_t)a) : a / b; }
static inline int32_t div32(int32_t a, int32_t b) { return b == -1 ? wrap32(0u - (uint32_t)a) : a / b; }
static inline int64_t mod64(int64_t a, int64_t b)
{
    if (b == -1) return 0;
    const int64_t r = a % b;
    return r != 0 && (r < 0) != (b < 0) ? r + b : r;
}
static inline int32_t mod32(int32_t a, int32_t b)
{
    if (b == -1) return 0;
    const int32_t r = a % b;
    return r != 0 && (r < 0) != (b < 0) ? r + b : r;
}
static inline int64_t pow64(int64_t a, int64_t b)
{
    const double v = pow((double)a, (double)b);
    return v >= -9223372036854775808.0 && v < 9223372036854775808.0 ? (int64_t)v : INT64_MIN;
}
static inline int32_t pow32(int32_t a, int32_t b)
{
    const double v = pow((double)a, (double)b);
    return v >= -2147483648.0 && v < 2147483648.0 ? (int32_t)v : INT32_MIN;
}

#define DEF_BIN_INT(S, T, U, WRAP)                                                                                    \
    DEF_BIN(add_##S, T, T, WRAP((U)a + (U)b))                                                                         \
    DEF_BIN(sub_##S, T, T, WRAP((U)a - (U)b))                                                                         \
    DEF_BIN(mul_##S, T, T, WRAP((U)a * (U)b))                                                                         \
    DEF_BIN(max_##S, T, T, a >= b ? a : b)                                                                            \
    DEF_BIN(min_##S, T, T, a <= b ? a : b)                                                                            \
    DEF_BIN(eq_##S, T, uint8_t, a == b)                                                                               \
    DEF_BIN(gt_##S, T, uint8_t, a > b)                                                                                \
    DEF_BIN(lt_##S, T, uint8_t, a < b)                                                                                \
    DEF_BIN(ge_##S, T, uint8_t, a >= b)                                                                               \
    DEF_BIN(le_##S, T, uint8_t, a <= b)

DEF_BIN_INT(i64, int64_t, uint64_t, wrap64)
DEF_BIN_INT(i32, int32_t, uint32_t, wrap32)
DEF_BIN(div_i64, int64_t, int64_t, div64(a, b))
DEF_BIN(div_i32, int32_t, int32_t, div32(a, b))
DEF_BIN(mod_i64, int64_t, int64_t, mod64(a, b))
DEF_BIN(mod_i32, int32_t, int32_t, mod32(a, b))
DEF_BIN(pow_i64, int64_t, int64_t, pow64(a, b))
DEF_BIN(pow_i32, int32_t, int32_t, pow32(a, b))
DEF_BIN(and_u8, uint8_t, uint8_t, (uint8_t)(a && b))
DEF_BIN(or_u8, uint8_t, uint8_t, (uint8_t)(a || b))
DEF_BIN(eq_u8, uint8_t, uint8_t, (uint8_t)(!a == !b))

static const char *const BIN_NAMES[RNNF_BIN_COUNT] = {"add", "sub", "mul", "div", "pow", "max", "min", "equal",
                                                      "greater", "less", "greater_equal", "less_equal", "and", "or",
                                                      "mod"};

/* [kind][dtype] for f32, i64, i32, u8; NULL = not defined for that dtype */
static const bin_fn BIN_TABLE[RNNF_BIN_COUNT][4] = {
    [RNNF_BIN_ADD] = {add_f32, add_i64, add_i32, NULL},
    [RNNF_BIN_SUB] = {sub_f32, sub_i64, sub_i32, NULL},
    [RNNF_BIN_MUL] = {mul_f32, mul_i64, mul_i32, NULL},
    [RNNF_BIN_DIV] = {div_f32, div_i64, div_i32, NULL},
    [RNNF_BIN_POW] = {pow_f32, pow_i64, pow_i32, NULL},
    [RNNF_BIN_MAX] = {max_f32, max_i64, max_i32, NULL},
    [RNNF_BIN_MIN] = {min_f32, min_i64, min_i32, NULL},
    [RNNF_BIN_EQUAL] = {eq_f32, eq_i64, eq_i32, eq_u8},
    [RNNF_BIN_GREATER] = {gt_f32, gt_i64, gt_i32, NULL},
    [RNNF_BIN_LESS] = {lt_f32, lt_i64, lt_i32, NULL},
    [RNNF_BIN_GREATER_EQUAL] = {ge_f32, ge_i64, ge_i32, NULL},
    [RNNF_BIN_LESS_EQUAL] = {le_f32, le_i64, le_i32, NULL},
    [RNNF_BIN_AND] = {NULL, NULL, NULL, and_u8},
    [RNNF_BIN_OR] = {NULL, NULL, NULL, or_u8},
    [RNNF_BIN_MOD] = {mod_f32, mod_i64, mod_i32, NULL},
};

static int is_comparison(int kind)
{
    return kind == RNNF_BIN_EQUAL || kind == RNNF_BIN_GREATER || kind == RNNF_BIN_LESS ||
           kind == RNNF_BIN_GREATER_EQUAL || kind == RNNF_BIN_LESS_EQUAL || kind == RNNF_BIN_AND ||
           kind == RNNF_BIN_OR;
}

static rnnf_status check_counts(const rnnf_gnode *node, const char *op, int n_in, int n_out, int n_iattr,
                                char *message)
{
    if (node->n_in != n_in || node->n_out != n_out) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "%s: %d inputs and %d outputs, expected %d and %d", op,
                 node->n_in, node->n_out, n_in, n_out);
        return RNNF_ERR_FORMAT;
    }
    if (node->n_iattr != n_iattr || node->n_fattr != 0) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "%s: %d integer and %d float attributes, expected %d and 0", op,
                 node->n_iattr, node->n_fattr, n_iattr);
        return RNNF_ERR_FORMAT;
    }
    return RNNF_OK;
}

static rnnf_status binary_prepare(rnnf_gnode *node, const rnnf_tensor *const_in, char *message)
{
    (void)const_in;
    rnnf_status st = check_counts(node, "binary", 2, 1, 1, message);
    if (st != RNNF_OK) return st;
    if (node->iattr[0] < 0 || node->iattr[0] >= RNNF_BIN_COUNT) {
        snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "binary: unknown kind %" PRId64, node->iattr[0]);
        return RNNF_ERR_FORMAT;
    }
    return RNNF_OK;
}

static int dtype_slot(int dt)
{
    switch (dt) {
    case RNNF_DT_F32: return 0;
    case RNNF_DT_I64: return 1;
    case RNNF_DT_I32: return 2;
    case RNNF_DT_U8: return 3;
    default: return -1;
    }
}

/* Integer Div and Mod: a zero divisor is refused before any output is written. */
static rnnf_status check_divisor(const rnnf_tensor *b, const char *op, char *message)
{
    const int64_t n = rnnf_tensor_numel(b);
    int64_t bad = -1;
    if (b->dtype == RNNF_DT_I64) {
        const int64_t *p = b->data;
        for (int64_t i = 0; i < n && bad < 0; i++)
            if (p[i] == 0) bad = i;
    } else {
        const int32_t *p = b->data;
        for (int64_t i = 0; i < n && bad < 0; i++)
            if (p[i] == 0) bad = i;
    }
    if (bad < 0) return RNNF_OK;
    snprintf(message, RNNF_ERROR_MESSAGE_SIZE, "%s: integer division by zero (divisor element %" PRId64 ")", op, bad);
    return RNNF_ERR_ARG;
}

static void binary_rows(bin_fn fn, const bcast *b, const char *A, const char *B, char *Y, size_t ea, size_t eb,
                        size_t ey, int64_t r0, int64_t r1)
{
    int64_t idx[RNNF_G_MAX_RANK], off[2];
    const int64_t inner = b->dims[b->rank - 1];
    const int sa = b->st[0][b->rank - 1] != 0, sb = b->st[1][b->rank - 1] != 0;
    bcast_row_offsets(b, 2, r0, idx, off);
    for (int64_t r = r0; r < r1; r++) {
        fn(A + (size_t)off[0] * ea, sa, B + (size_t)off[1] * eb, sb, Y + (size_t)(r * inner) * ey, inner);
        bcast_next_row(b, 2, idx, off);
    }
}

static rnnf_status binary_run(const rnnf_gnode *node, const rnnf_tensor *in, rnnf_tensor *out, rnnf_op_ctx *ctx)
{
    const int kind = (int)node->iattr[0];
    const char *name = BIN_NAMES[kind];
    const int slot = dtype_slot(in[0].dtype);
    const int out_dt = is_comparison(kind) ? RNNF_DT_U8 : in[0].dtype;
    const bin_fn fn = slot >= 0 ? BIN_TABLE[kind][slot] : NULL;
    if (!fn || in[1].dtype != in[0].dtype || out[0].dtype != out_dt) {
        snprintf(ctx->message, RNNF_ERROR_MESSAGE_SIZE, "%s: unsupported dtypes %d, %d -> %d", name, in[0].dtype,
                 in[1].dtype, out[0].dtype);
        return RNNF_ERR_UNSUPPORTED;
    }
    const rnnf_tensor *ins[2] = {&in[0], &in[1]};
    bcast b;
    rnnf_status st = bcast_make(name, &out[0], ins, 2, &b, ctx->message);
    if (st != RNNF_OK) return st;
    const int64_t n = rnnf_tensor_numel(&out[0]);
    if (n == 0) return RNNF_OK;
    if ((kind == RNNF_BIN_DIV || kind == RNNF_BIN_MOD) && (slot == 1 || slot == 2)) {
        st = check_divisor(&in[1], name, ctx->message);
        if (st != RNNF_OK) return st;
    }
    const size_t ea = rnnf_dtype_size(in[0].dtype), ey = rnnf_dtype_size(out_dt);
    const int64_t inner = b.dims[b.rank - 1], rows = n / inner;
    const int nt = par_threads(n, ctx->n_threads, rows);
    if (nt <= 1) {
        binary_rows(fn, &b, in[0].data, in[1].data, out[0].data, ea, ea, ey, 0, rows);
        return RNNF_OK;
    }
    if (rows == 1) {
        /* one flat row: split it on 64-element boundaries */
        const int64_t per = (n / nt + 63) / 64 * 64;
        const int sa = b.st[0][0] != 0, sb = b.st[1][0] != 0;
        const char *A = in[0].data, *B = in[1].data;
        char *Y = out[0].data;
        PARALLEL_TASKS(t, {
            const int64_t lo = (int64_t)t * per, hi = lo + per < n ? lo + per : n;
            if (lo < hi)
                fn(A + (size_t)(sa ? lo : 0) * ea, sa, B + (size_t)(sb ? lo : 0) * ea, sb, Y + (size_t)lo * ey,
                   hi - lo);
        });
        return RNNF_OK;
    }
    PARALLEL_TASKS(t, {
        binary_rows(fn, &b, in[0].data, in[1].data, out[0].data, ea, ea, ey, rows * t / nt, rows * (t + 1) / nt);
    });
    return RNNF_OK;
}

const rnnf_op_vtable rnnf_op_binary = {"binary", binary_prepare, NULL, binary_run, NULL};

/* ---- Where ---- */

#define DEF_WHERE(name, T)                                                                                            \
    static void name(const uint8_t *C, int sc, const void *a_, int sa, const void *b_, int sb, void *y_, int64_t n)  \
    {                                                                                                                 \
        const T *A = a_, *B = b_;                                                                                     \
        T *Y = y_;                                                                                                    \
        if (sc && sa && sb)                                                                                           \
            for (int64_t i = 0; i < n; i++) Y[i] = C[i] ? A[i] : B[i];                                                \
        else if (!sc)                                                                                                 \
            for (int64_t i = 0; i < n; i++) Y[i] = C[0] ? A[sa ? i : 0] : B[sb ? i : 0];                              \
        else                                                                                                          \
            for (int64_t i = 0; i < n; i++) Y[i] = C[i] ? A[sa ? i : 0] : B[sb ? i : 0];                              \
    }

DEF_WHERE(where_1, uint8_t)
DEF_WHERE(where_4, uint32_t)
DEF_WHERE(where_8, uint64_t)

typedef void (*where_fn)(const uint8_t *, int, const void *, int, const void *, int, void *, int64_t);

static void where_rows(where_fn fn, const bcast *b, const uint8_t *C, const char *A, const char *B, char *Y,
                       size_t es, int64_t r0, int64_t r1)
{
    int64_t idx[RNNF_G_MAX_RANK], off[3];
    const int64_t inner = b->dims[b->rank - 1];
    const int sc = b->st[0][b->rank - 1] != 0, sa = b->st[1][b->rank - 1] != 0, sb = b->st[2][b->rank - 1] != 0;
    bcast_row_offsets(b, 3, r0, idx, off);
    for (int64_t r = r0; r < r1; r++) {
        fn(C + off[0], sc, A + (size_t)off[1] * es, sa, B + (size_t)off[2] * es, sb, Y + (size_t)(r * inner) * es,
           inner);
        bcast_next_row(b, 3, idx, off);
    }
}

static rnnf_status where_prepare(rnnf_gnode *node, const rnnf_tensor *const_in, char *message)
{
    (void)const_in;
    return check_counts(node, "where", 3, 1, 0, message);
}

static rnnf_status where_run(const rnnf_gnode *node, const rnnf_tensor *in, rnnf_tensor *out, rnnf_op_ctx *ctx)
{
    (void)node;
    const size_t es = rnnf_dtype_size(in[1].dtype);
    if (in[0].dtype != RNNF_DT_U8 || in[2].dtype != in[1].dtype || out[0].dtype != in[1].dtype || !es) {
        snprintf(ctx->message, RNNF_ERROR_MESSAGE_SIZE, "where: needs a bool condition and a, b, y of one dtype");
        return RNNF_ERR_UNSUPPORTED;
    }
    const rnnf_tensor *ins[3] = {&in[0], &in[1], &in[2]};
    bcast b;
    rnnf_status st = bcast_make("where", &out[0], ins, 3, &b, ctx->message);
    if (st != RNNF_OK) return st;
    const int64_t n = rnnf_tensor_numel(&out[0]);
    if (n == 0) return RNNF_OK;
    const where_fn fn = es == 1 ? where_1 : es == 4 ? where_4 : where_8;
    const int64_t rows = n / b.dims[b.rank - 1];
    const int nt = par_threads(n, ctx->n_threads, rows);
    if (nt <= 1) {
        where_rows(fn, &b, in[0].data, in[1].data, in[2].data, out[0].data, es, 0, rows);
        return RNNF_OK;
    }
    PARALLEL_TASKS(t, {
        where_rows(fn, &b, in[0].data, in[1].data, in[2].data, out[0].data, es, rows * t / nt, rows * (t + 1) / nt);
    });
    return RNNF_OK;
}

const rnnf_op_vtable rnnf_op_where = {"where", where_prepare, NULL, where_run, NULL};

/* ---- Cast ---- */

static inline int64_t f2i64(float x)
{
    return x >= -9223372036854775808.0f && x < 9223372036854775808.0f ? (int64_t)x : INT64_MIN;
}
static inline int32_t f2i32(float x) { return x >= -2147483648.0f && x < 2147483648.0f ? (int32_t)x : INT32_MIN; }
static inline int8_t wrap8(uint32_t v)
{
    const uint8_t u = (uint8_t)v;
    return u <= 127 ? (int8_t)u : (int8_t)((int)u - 256);
}

#define CAST_LOOP(TI, TO, EXPR)                                                                                       \
    do {                                                                                                              \
        const TI *X = x_;                                                                                             \
        TO *Y = y_;                                                                                                   \
        for (int64_t i = 0; i < n; i++) {                                                                             \
            const TI v = X[i];                                                                                        \
            Y[i] = (EXPR);                                                                                            \
        }                                                                                                             \
    } while (0)

/* Converts n values; returns 0 for a pair of dtypes it does not know. */
static int cast_range(int from, int to, const void *x_, void *y_, int64_t n)
{
    switch (from * 8 + to) {
    case RNNF_DT_F32 * 8 + RNNF_DT_F32: CAST_LOOP(float, float, v); return 1;
    case RNNF_DT_F32 * 8 + RNNF_DT_I64: CAST_LOOP(float, int64_t, f2i64(v)); return 1;
    case RNNF_DT_F32 * 8 + RNNF_DT_I32: CAST_LOOP(float, int32_t, f2i32(v)); return 1;
    case RNNF_DT_F32 * 8 + RNNF_DT_U8: CAST_LOOP(float, uint8_t, (uint8_t)(v != 0.0f)); return 1;
    case RNNF_DT_F32 * 8 + RNNF_DT_I8: CAST_LOOP(float, int8_t, wrap8((uint32_t)f2i32(v))); return 1;
    case RNNF_DT_I64 * 8 + RNNF_DT_F32: CAST_LOOP(int64_t, float, (float)v); return 1;
    case RNNF_DT_I64 * 8 + RNNF_DT_I64: CAST_LOOP(int64_t, int64_t, v); return 1;
    case RNNF_DT_I64 * 8 + RNNF_DT_I32: CAST_LOOP(int64_t, int32_t, wrap32((uint32_t)v)); return 1;
    case RNNF_DT_I64 * 8 + RNNF_DT_U8: CAST_LOOP(int64_t, uint8_t, (uint8_t)(v != 0)); return 1;
    case RNNF_DT_I64 * 8 + RNNF_DT_I8: CAST_LOOP(int64_t, int8_t, wrap8((uint32_t)v)); return 1;
    case RNNF_DT_I32 * 8 + RNNF_DT_F32: CAST_LOOP(int32_t, float, (float)v); return 1;
    case RNNF_DT_I32 * 8 + RNNF_DT_I64: CAST_LOOP(int32_t, int64_t, v); return 1;
    case RNNF_DT_I32 * 8 + RNNF_DT_I32: CAST_LOOP(int32_t, int32_t, v); return 1;
    case RNNF_DT_I32 * 8 + RNNF_DT_U8: CAST_LOOP(int32_t, uint8_t, (uint8_t)(v != 0)); return 1;
    case RNNF_DT_I32 * 8 + RNNF_DT_I8: CAST_LOOP(int32_t, int8_t, wrap8((uint32_t)v)); return 1;
    case RNNF_DT_U8 * 8 + RNNF_DT_F32: CAST_LOOP(uint8_t, float, (float)v); return 1;
    case RNNF_DT_U8 * 8 + RNNF_DT_I64: CAST_LOOP(uint8_t, int64_t, v); return 1;
    case RNNF_DT_U8 * 8 + RNNF_DT_I32: CAST_LOOP(uint8_t, int32_t, v); return 1;
    case RNNF_DT_U8 * 8 + RNNF_DT_U8: CAST_LOOP(uint8_t, uint8_t, (uint8_t)(v != 0)); return 1;
    case RNNF_DT_U8 * 8 + RNNF_DT_I8: CAST_LOOP(uint8_t, int8_t, wrap8(v)); return 1;
    case RNNF_DT_I8 * 8 + RNNF_DT_F32: CAST_LOOP(int8_t, float, (float)v); return 1;
    case RNNF_DT_I8 * 8 + RNNF_DT_I64: CAST_LOOP(int8_t, int64_t, v); return 1;
    case RNNF_DT_I8 * 8 + RNNF_DT_I32: CAST_LOOP(int8_t, int32_t, v); return 1;
    case RNNF_DT_I8 * 8 + RNNF_DT_U8: CAST_LOOP(int8_t, uint8_t, (uint8_t)(v != 0)); return 1;
    case RNNF_DT_I8 * 8 + RNNF_DT_I8: CAST_LOOP(int8_t, int8_t, v); return 1;
    default: return 0;
    }
}

static rnnf_status cast_prepare(rnnf_gnode *node, const rnnf_tensor *const_in, char *message)
{
    (void)const_in;
    return check_counts(node, "cast", 1, 1, 0, message);
}

static rnnf_status cast_run(const rnnf_gnode *node, const rnnf_tensor *in, rnnf_tensor *out, rnnf_op_ctx *ctx)
{
    (void)node;
    const int64_t n = rnnf_tensor_numel(&out[0]);
    const int from = in[0].dtype, to = out[0].dtype;
    if (rnnf_tensor_numel(&in[0]) != n) {
        snprintf(ctx->message, RNNF_ERROR_MESSAGE_SIZE, "cast: %" PRId64 " elements in, %" PRId64 " out",
                 rnnf_tensor_numel(&in[0]), n);
        return RNNF_ERR_SHAPE;
    }
    if (!rnnf_dtype_size(from) || !rnnf_dtype_size(to)) {
        snprintf(ctx->message, RNNF_ERROR_MESSAGE_SIZE, "cast: unsupported dtypes %d -> %d", from, to);
        return RNNF_ERR_UNSUPPORTED;
    }
    const int nt = par_threads(n, ctx->n_threads, n);
    if (nt <= 1) {
        cast_range(from, to, in[0].data, out[0].data, n);
        return RNNF_OK;
    }
    const size_t ei = rnnf_dtype_size(from), eo = rnnf_dtype_size(to);
    const char *X = in[0].data;
    char *Y = out[0].data;
    PARALLEL_TASKS(t, {
        const int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
        cast_range(from, to, X + (size_t)lo * ei, Y + (size_t)lo * eo, hi - lo);
    });
    return RNNF_OK;
}

const rnnf_op_vtable rnnf_op_cast = {"cast", cast_prepare, NULL, cast_run, NULL};
