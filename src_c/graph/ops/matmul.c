/* matmul.c: RNNF_OP_MATMUL, Y = act(A @ B + bias) with numpy broadcasting of the batch dimensions.
 *
 * Everything goes through the kernel table's gemm_packed. The case that matters (a dense layer on [T, B, K]
 * activations times a constant [K, N] weight) flattens every leading dimension into rows and makes one pass
 * over them with B packed once at load. A variable B is packed into scratch per call, and so is a constant B stored
 * as int8 or float16 (export-c: widened there, so no float32 copy of it is kept); a B with its own batch
 * dimensions is packed per batch, each batch a task of its own.
 *
 * Work is cut into units (a block of rows times a block of panels) chosen from the shapes alone, never from
 * the thread count: the epilogue (bias, activation) runs per unit, and an activation's vector tail may round
 * differently from its body, so fixed units are what keeps 1 and N threads bit-identical. Panels that fall
 * entirely inside N are written straight into Y; a last partial panel goes through a 16-column scratch tile,
 * because the microkernel always stores full panels.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "graph/graph.h"

#define UB RNNF_UB
#define ROW_CHUNK 96          /* rows per gemm call: the AVX2 kernel's L2 row block */
#define B_BLOCK_FLOATS 65536  /* a column block's packed B (256 KiB) stays in L2 while its rows stream by */
#define MIN_UNITS 8           /* units to aim for, so two or more threads can balance */
#define PAR_MIN_FMAS 200000   /* below this a parallel region's start-up (several us) costs more than it saves */

void rnnf_pack_b_strided(const float *b, int64_t K, int64_t N, int64_t ldk, int64_t ldn, float *dst);
void rnnf_pack_b_stored(const void *b, int stored, const float *scales, int64_t K, int64_t N, float *dst);

typedef struct {
    int64_t K, N;
    float *bp; /* B packed at load (constant 2-D B), else NULL */
} mm_prep;

enum { BIAS_NONE = 0, BIAS_COLUMNS, BIAS_FULL };

typedef struct {
    int64_t M, K, N, np;
    int64_t nb;      /* batches of Y */
    int flat;        /* B has no batch extent: all nb*M rows share one packed B */
    int64_t rows;    /* rows of one gemm problem: nb*M when flat, M otherwise */
    int br;          /* batch rank of Y */
    int64_t bdims[RNNF_G_MAX_RANK], astr[RNNF_G_MAX_RANK], bstr[RNNF_G_MAX_RANK]; /* in matrices; 0 = broadcast */
    int bias_kind;
    int64_t bias_sm, bias_sn;
    int64_t ch, cbp, nrc, ncb; /* rows per unit, panels per unit, and their counts */
    size_t off_colbias, off_bshared, off_thread, thread_bytes, total;
} mm_shape;

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

static rnnf_status fail(char *msg, rnnf_status st, const char *text, long long a, long long b)
{
    if (msg) snprintf(msg, RNNF_ERROR_MESSAGE_SIZE, text, a, b);
    return st;
}

static rnnf_status mm_shape_of(const rnnf_gnode *node, const rnnf_tensor *in, const rnnf_tensor *out, int n_threads,
                               mm_shape *s, char *msg)
{
    const rnnf_tensor *A = &in[0], *B = &in[1], *Y = &out[0];
    const rnnf_tensor *bias = node->n_in > 2 && in[2].dtype != RNNF_DT_NONE ? &in[2] : NULL;
    memset(s, 0, sizeof(*s));
    if (A->dtype != RNNF_DT_F32 || B->dtype != RNNF_DT_F32 || Y->dtype != RNNF_DT_F32 ||
        (bias && bias->dtype != RNNF_DT_F32))
        return fail(msg, RNNF_ERR_UNSUPPORTED, "matmul: float32 only", 0, 0);
    if (A->rank < 1 || B->rank < 1)
        return fail(msg, RNNF_ERR_SHAPE, "matmul: inputs of rank %lld and %lld (scalars are not matrices)", A->rank,
                    B->rank);
    const int ar = A->rank >= 2 ? A->rank - 2 : 0, bbr = B->rank >= 2 ? B->rank - 2 : 0;
    s->M = A->rank >= 2 ? A->dims[A->rank - 2] : 1;
    s->K = A->dims[A->rank - 1];
    const int64_t kb = B->rank >= 2 ? B->dims[B->rank - 2] : B->dims[0];
    s->N = B->rank >= 2 ? B->dims[B->rank - 1] : 1;
    if (kb != s->K) return fail(msg, RNNF_ERR_SHAPE, "matmul: A has %lld columns but B has %lld rows", s->K, kb);
    if (s->K > INT_MAX / UB || s->N > INT_MAX - UB || s->M < 0 || s->K < 0 || s->N < 0)
        return fail(msg, RNNF_ERR_SHAPE, "matmul: a matrix of %lld x %lld is too large", s->K, s->N);
    s->np = cdiv(s->N, UB);

    /* numpy broadcasting of the batch dimensions, right-aligned; strides counted in whole matrices */
    s->br = ar > bbr ? ar : bbr;
    int64_t sa = 1, sb = 1;
    for (int i = s->br - 1; i >= 0; i--) {
        const int ia = i - (s->br - ar), ib = i - (s->br - bbr);
        const int64_t da = ia >= 0 ? A->dims[ia] : 1, db = ib >= 0 ? B->dims[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return fail(msg, RNNF_ERR_SHAPE, "matmul: batch dimensions %lld and %lld do not broadcast", da, db);
        s->bdims[i] = da > db ? da : db;
        if (da == 0 || db == 0) s->bdims[i] = 0;
        s->astr[i] = da == 1 ? 0 : sa;
        s->bstr[i] = db == 1 ? 0 : sb;
        sa *= da;
        sb *= db;
    }
    s->nb = 1;
    for (int i = 0; i < s->br; i++) s->nb *= s->bdims[i];

    /* the output must be exactly the broadcast batch dims, then M unless A is 1-D, then N unless B is 1-D */
    int64_t expect[RNNF_G_MAX_RANK + 2];
    int er = 0;
    for (int i = 0; i < s->br; i++) expect[er++] = s->bdims[i];
    if (A->rank >= 2) expect[er++] = s->M;
    if (B->rank >= 2) expect[er++] = s->N;
    int same = er == Y->rank;
    for (int i = 0; same && i < er; i++) same = expect[i] == Y->dims[i];
    if (!same) {
        if (msg) {
            int n = snprintf(msg, RNNF_ERROR_MESSAGE_SIZE, "matmul: the output's dims are not A @ B's [");
            for (int i = 0; i < er && n > 0 && n < RNNF_ERROR_MESSAGE_SIZE; i++)
                n += snprintf(msg + n, RNNF_ERROR_MESSAGE_SIZE - (size_t)n, i ? ", %lld" : "%lld",
                              (long long)expect[i]);
            if (n > 0 && n < RNNF_ERROR_MESSAGE_SIZE) snprintf(msg + n, RNNF_ERROR_MESSAGE_SIZE - (size_t)n, "]");
        }
        return RNNF_ERR_SHAPE;
    }

    s->flat = sb == 1;
    s->rows = s->flat ? s->nb * s->M : s->M;

    if (bias) {
        const int rb = bias->rank;
        const int64_t dn = rb >= 1 ? bias->dims[rb - 1] : 1, dm = rb >= 2 ? bias->dims[rb - 2] : 1;
        int lead_ones = 1;
        for (int i = 0; i + 2 < rb; i++) lead_ones &= bias->dims[i] == 1;
        if (!lead_ones || (dn != 1 && dn != s->N) || (dm != 1 && dm != s->M))
            return fail(msg, RNNF_ERR_SHAPE, "matmul: a bias of rank %lld does not broadcast as [M, N] (last dim %lld)",
                        rb, dn);
        s->bias_kind = dm == s->M && s->M > 1 ? BIAS_FULL : BIAS_COLUMNS;
        s->bias_sm = dn;
        s->bias_sn = dn == 1 ? 0 : 1;
    }

    /* units, from the shapes only */
    s->cbp = s->np;
    if (s->K > 0 && s->np * UB * s->K > B_BLOCK_FLOATS) {
        s->cbp = B_BLOCK_FLOATS / (UB * s->K);
        if (s->cbp < 1) s->cbp = 1;
    }
    s->ch = ROW_CHUNK;
    const double fmas = (double)s->nb * (double)s->M * (double)s->K * (double)(s->np * UB);
    if (s->flat && fmas >= PAR_MIN_FMAS) {
        while (s->ch > 12 && cdiv(s->rows, s->ch) * cdiv(s->np, s->cbp) < MIN_UNITS) s->ch /= 2;
        while (s->cbp > 1 && cdiv(s->rows, s->ch) * cdiv(s->np, s->cbp) < MIN_UNITS) s->cbp = cdiv(s->cbp, 2);
    }
    s->nrc = s->rows > 0 ? cdiv(s->rows, s->ch) : 0;
    s->ncb = s->np > 0 ? cdiv(s->np, s->cbp) : 0;
    /* the same size for every unit: rows in whole microkernel groups of 6 */
    if (s->nrc > 1) s->ch = cdiv(cdiv(s->rows, s->nrc), 6) * 6;
    if (s->ncb > 1) s->cbp = cdiv(s->np, s->ncb);
    s->nrc = s->rows > 0 ? cdiv(s->rows, s->ch) : 0;
    s->ncb = s->np > 0 ? cdiv(s->np, s->cbp) : 0;

    /* scratch: [padded column bias][B packed once per call][per thread: tail tile, B packed per batch] */
    const mm_prep *prep = node->prep;
    const size_t packed = (size_t)s->np * UB * (size_t)s->K * sizeof(float);
    size_t off = 0;
    s->off_colbias = off;
    if (s->bias_kind == BIAS_COLUMNS) off += align64((size_t)s->np * UB * sizeof(float));
    s->off_bshared = off;
    if (s->flat && !prep) off += align64(packed);
    s->off_thread = off;
    s->thread_bytes = align64((size_t)s->ch * UB * sizeof(float)) + (s->flat ? 0 : align64(packed));
    s->total = off + (size_t)(n_threads > 0 ? n_threads : 1) * s->thread_bytes;
    return RNNF_OK;
}

static rnnf_status mm_prepare(rnnf_gnode *node, const rnnf_tensor *ci, char *msg)
{
    if (node->n_in < 2 || node->n_in > 3 || node->n_out != 1)
        return fail(msg, RNNF_ERR_FORMAT, "matmul: expects 2 or 3 inputs and 1 output, got %lld and %lld", node->n_in,
                    node->n_out);
    if (node->n_iattr < 1 || node->n_fattr < 2)
        return fail(msg, RNNF_ERR_FORMAT, "matmul: expects 1 integer and 2 float attributes, got %lld and %lld",
                    node->n_iattr, node->n_fattr);
    if (node->iattr[0] < 0 || node->iattr[0] >= RNNF_UN_COUNT)
        return fail(msg, RNNF_ERR_FORMAT, "matmul: unknown activation %lld", (long long)node->iattr[0], 0);
    node->prep = NULL;
    const rnnf_tensor *B = &ci[1];
    if (!B->data || node->b_stored) return RNNF_OK; /* a stored B is widened into scratch at each run instead */
    if (B->dtype != RNNF_DT_F32) return fail(msg, RNNF_ERR_UNSUPPORTED, "matmul: float32 only", 0, 0);
    /* a constant B with no batch extent ([K, N], [1, .., K, N] or a vector [K]) is packed once, here */
    int64_t lead = 1;
    for (int i = 0; i + 2 < B->rank; i++) lead *= B->dims[i];
    if (B->rank >= 1 && lead == 1) {
        const int64_t K = B->rank >= 2 ? B->dims[B->rank - 2] : B->dims[0], N = B->rank >= 2 ? B->dims[B->rank - 1] : 1;
        if (K > INT_MAX / UB || N > INT_MAX - UB)
            return fail(msg, RNNF_ERR_FORMAT, "matmul: a constant B of %lld x %lld is too large", K, N);
        mm_prep *p = rnnf_mem_alloc_raw(node->pool, sizeof(mm_prep));
        if (!p) return fail(msg, RNNF_ERR_NOMEM, "matmul: out of memory packing B", 0, 0);
        p->K = K;
        p->N = N;
        p->bp = rnnf_pack_b(node->pool, B->data, p->K, p->N);
        if (!p->bp) {
            rnnf_mem_free(node->pool, p);
            return fail(msg, RNNF_ERR_NOMEM, "matmul: out of memory packing B", 0, 0);
        }
        node->prep = p;
    }
    return RNNF_OK;
}

static void mm_release(rnnf_gnode *node)
{
    mm_prep *p = node->prep;
    if (p) {
        rnnf_mem_free(node->pool, p->bp);
        rnnf_mem_free(node->pool, p);
    }
    node->prep = NULL;
}

static size_t mm_scratch(const rnnf_gnode *node, const rnnf_tensor *in, const rnnf_tensor *out, int n_threads)
{
    mm_shape s;
    return mm_shape_of(node, in, out, n_threads, &s, NULL) == RNNF_OK ? s.total : 0;
}

typedef struct {
    const mm_shape *s;
    void (*gemm)(int, int, const float *, int, const float *, int, int, const float *, float *, int);
    const float *A, *B, *bias, *colbias, *bp_shared;
    float *Y;
    char *scratch;
    int act;
    float alpha, beta;
} mm_job;

/* Rows [r0, r1) x panels [p0, p1) of one problem (A, packed B, Y at their problem offsets), then the epilogue. */
static void mm_unit(const mm_job *j, const float *A, const float *bp, float *Y, int64_t r0, int64_t r1, int64_t p0,
                    int64_t p1, float *tile)
{
    const mm_shape *s = j->s;
    const int R = (int)(r1 - r0), K = (int)s->K, N = (int)s->N;
    const float *a = A + (size_t)r0 * (size_t)K;
    float *y = Y + (size_t)r0 * (size_t)N;
    const int64_t pfull = p1 == s->np && N % UB ? p1 - 1 : p1;
    if (pfull > p0) j->gemm(R, K, a, K, bp, (int)p0, (int)pfull, j->colbias, y, N);
    if (pfull < p1) {
        j->gemm(R, K, a, K, bp + (size_t)pfull * (size_t)K * UB, 0, 1, j->colbias ? j->colbias + pfull * UB : NULL,
                tile, UB);
        const int w = N - (int)pfull * UB;
        for (int r = 0; r < R; r++)
            memcpy(y + (size_t)r * N + pfull * UB, tile + (size_t)r * UB, (size_t)w * sizeof(float));
    }
    const int64_t c0 = p0 * UB, c1 = p1 * UB < N ? p1 * UB : N;
    if (s->bias_kind == BIAS_FULL)
        for (int r = 0; r < R; r++) {
            const float *b = j->bias + (size_t)(((r0 + r) % s->M) * s->bias_sm);
            float *yr = y + (size_t)r * N;
            if (s->bias_sn)
                for (int64_t c = c0; c < c1; c++) yr[c] += b[c];
            else
                for (int64_t c = c0; c < c1; c++) yr[c] += b[0];
        }
    if (j->act != RNNF_UN_NONE && j->act != RNNF_UN_IDENTITY) {
        if (c0 == 0 && c1 == N)
            rnnf_unary_apply(j->act, j->alpha, j->beta, y, y, (int64_t)R * N);
        else
            for (int r = 0; r < R; r++) {
                float *seg = y + (size_t)r * N + c0;
                rnnf_unary_apply(j->act, j->alpha, j->beta, seg, seg, c1 - c0);
            }
    }
}

static void mm_units(const mm_job *j, const float *A, const float *bp, float *Y, int64_t u, float *tile)
{
    const mm_shape *s = j->s;
    const int64_t cb = u / s->nrc, rc = u % s->nrc;
    const int64_t r0 = rc * s->ch, r1 = r0 + s->ch < s->rows ? r0 + s->ch : s->rows;
    const int64_t p0 = cb * s->cbp, p1 = p0 + s->cbp < s->np ? p0 + s->cbp : s->np;
    mm_unit(j, A, bp, Y, r0, r1, p0, p1, tile);
}

/* A task: one unit of the flat problem, or one whole batch (its B packed into this thread's scratch). */
static void mm_task(const mm_job *j, int64_t t, int tid)
{
    const mm_shape *s = j->s;
    char *mine = j->scratch + s->off_thread + (size_t)tid * s->thread_bytes;
    float *tile = (float *)mine;
    if (s->flat) {
        mm_units(j, j->A, j->bp_shared, j->Y, t, tile);
        return;
    }
    int64_t ia = 0, ib = 0, rest = t;
    for (int i = s->br - 1; i >= 0; i--) {
        const int64_t idx = rest % s->bdims[i];
        rest /= s->bdims[i];
        ia += idx * s->astr[i];
        ib += idx * s->bstr[i];
    }
    float *bp = (float *)(mine + align64((size_t)s->ch * UB * sizeof(float)));
    const size_t mk = (size_t)s->M * (size_t)s->K, kn = (size_t)s->K * (size_t)s->N;
    rnnf_pack_b_strided(j->B + (size_t)ib * kn, s->K, s->N, s->N, 1, bp);
    const float *A = j->A + (size_t)ia * mk;
    float *Y = j->Y + (size_t)t * (size_t)s->M * (size_t)s->N;
    for (int64_t u = 0; u < s->nrc * s->ncb; u++) mm_units(j, A, bp, Y, u, tile);
}

static rnnf_status mm_run(const rnnf_gnode *node, const rnnf_tensor *in, rnnf_tensor *out, rnnf_op_ctx *ctx)
{
    mm_shape s;
    rnnf_status st = mm_shape_of(node, in, out, ctx->n_threads, &s, ctx->message);
    if (st != RNNF_OK) return st;
    if (s.nb == 0 || s.M == 0 || s.N == 0) return RNNF_OK;
    const mm_prep *prep = node->prep;
    if (prep && (prep->K != s.K || prep->N != s.N))
        return fail(ctx->message, RNNF_ERR_SHAPE, "matmul: B changed shape since load (%lld x %lld)", s.K, s.N);
    mm_job j;
    j.s = &s;
    j.gemm = ctx->K->gemm_packed;
    j.A = in[0].data;
    j.B = in[1].data;
    j.bias = s.bias_kind != BIAS_NONE ? in[2].data : NULL;
    j.Y = out[0].data;
    j.scratch = ctx->scratch;
    j.act = (int)node->iattr[0];
    j.alpha = node->fattr[0];
    j.beta = node->fattr[1];
    j.colbias = NULL;
    if (s.bias_kind == BIAS_COLUMNS) {
        float *cb = (float *)(j.scratch + s.off_colbias);
        for (int64_t c = 0; c < s.np * UB; c++) cb[c] = c < s.N ? j.bias[c * s.bias_sn] : 0.0f;
        j.colbias = cb;
    }
    j.bp_shared = NULL;
    if (s.flat) {
        if (prep) {
            j.bp_shared = prep->bp;
        } else {
            float *bp = (float *)(j.scratch + s.off_bshared);
            if (node->b_stored)
                rnnf_pack_b_stored(in[1].data, node->b_stored, node->b_scales, s.K, s.N, bp);
            else
                rnnf_pack_b_strided(j.B, s.K, s.N, s.N, 1, bp);
            j.bp_shared = bp;
        }
    }
    const int64_t n_tasks = s.flat ? s.nrc * s.ncb : s.nb;
    const double fmas = (double)s.nb * (double)s.M * (double)s.K * (double)(s.np * UB);
    int nt = ctx->n_threads;
    if (fmas < PAR_MIN_FMAS || n_tasks < 2) nt = 1;
    if (nt > n_tasks) nt = (int)n_tasks;
#ifdef _OPENMP
    if (nt > 1) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t t = 0; t < n_tasks; t++) mm_task(&j, t, omp_get_thread_num());
        return RNNF_OK;
    }
#endif
    for (int64_t t = 0; t < n_tasks; t++) mm_task(&j, t, 0);
    return RNNF_OK;
}

const rnnf_op_vtable rnnf_op_matmul = {"matmul", mm_prepare, mm_scratch, mm_run, mm_release};
