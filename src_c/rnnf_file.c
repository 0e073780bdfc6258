/* rnnf_file.c: the .rnnf reader (docs/format.md) for C programs: file or buffer -> rnnf_pipeline or rnnf_model.
 *
 * It makes the same checks as rnnfast/importers/rnnf.py, so a file one accepts the other accepts (the tests
 * compare both readers on damaged files). Every count, offset and size is checked against the buffer before it
 * is used, in 64-bit arithmetic that cannot overflow for any buffer that fits in memory. Integers are assembled
 * byte by byte and floats through their bit patterns, so any host byte order and any buffer alignment works.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"

#define NONE 0xFFFFFFFFu
#define HEADER_SIZE 64u
#define STAGE_SIZE 32u
#define LAYER_SIZE 208u
#define LAYER_HEAD_SIZE 64u
#define ACT_SIZE 24u
#define BLOB_SIZE 48u
#define ALIGN 64u
#define DTYPE_F32 1u
#define DTYPE_F16 2u
#define DTYPE_I8 3u
#define VERSION_MAJOR 1u
#define VERSION_MINOR 1u
#define QUANTIZED_MINOR 1u /* the first minor version with float16 / int8 blobs */
/* The engine's int sizes; a file past them is valid but too large for this library. */
#define MAX_LAYER_DIM (1u << 24)
#define MAX_TABLE_DIM 0x7FFFFFFFu

typedef struct {
    uint64_t offset, nbytes;
    uint32_t ndim, dims[4];
    uint32_t dtype, scale_blob;
    int used;
} blob_info;

typedef struct {
    const unsigned char *d;
    uint64_t size;
    const char *name;
    rnnf_error *err;
    uint32_t n_stages, n_layers, n_blobs, strings_size;
    uint64_t stages_at, layers_at, blobs_at, strings_at, table_end;
    int batch_first;
    uint32_t minor;
    blob_info *blobs;
} reader;

static uint32_t rd16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static double rdf64(const unsigned char *p)
{
    uint64_t bits = rd64(p);
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static rnnf_status fail(reader *r, const char *where, const char *fmt, ...)
{
    if (r->err) {
        char *msg = r->err->message;
        int n = snprintf(msg, RNNF_ERROR_MESSAGE_SIZE, "%s: %s: ", r->name, where);
        if (n >= 0 && n < (int)RNNF_ERROR_MESSAGE_SIZE) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(msg + n, RNNF_ERROR_MESSAGE_SIZE - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return RNNF_ERR_FORMAT;
}

/* Strict UTF-8, as Python's decoder: no overlong forms, surrogates or code points past U+10FFFF. */
static int utf8_valid(const unsigned char *s, uint64_t n)
{
    uint64_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        uint32_t cp, min;
        unsigned len;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (n - i < len) return 0;
        for (unsigned k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += len;
    }
    return 1;
}

static rnnf_status check_name(reader *r, const char *where, const unsigned char *at)
{
    uint64_t off = rd32(at), len = rd32(at + 4);
    if (off + len > r->strings_size)
        return fail(r, where, "name at %llu (+%llu bytes) is outside the %u-byte strings table",
                    (unsigned long long)off, (unsigned long long)len, r->strings_size);
    if (!utf8_valid(r->d + r->strings_at + off, len)) return fail(r, where, "name is not valid UTF-8");
    return RNNF_OK;
}

static rnnf_status read_header(reader *r)
{
    const unsigned char *d = r->d;
    if (r->size < HEADER_SIZE)
        return fail(r, "header", "the file is %llu bytes, shorter than the 64-byte header", (unsigned long long)r->size);
    if (memcmp(d, "RNNF", 4) != 0) return fail(r, "header", "magic is not RNNF: not a .rnnf file");
    uint32_t major = rd16(d + 4), minor = rd16(d + 6);
    r->minor = minor;
    if (major != VERSION_MAJOR || minor > VERSION_MINOR)
        return fail(r, "header", "format version %u.%u is not readable by this reader (it reads %u.0 to %u.%u)", major,
                    minor, VERSION_MAJOR, VERSION_MAJOR, VERSION_MINOR);
    if (rd32(d + 8) != HEADER_SIZE) return fail(r, "header", "header_size %u, expected 64", rd32(d + 8));
    uint32_t flags = rd32(d + 12);
    if (flags & ~1u) return fail(r, "header", "flags 0x%x has unknown bits", flags);
    uint64_t file_size = rd64(d + 16);
    if (file_size != r->size)
        return fail(r, "header", "file_size says %llu bytes, the file has %llu (truncated or padded)",
                    (unsigned long long)file_size, (unsigned long long)r->size);
    if (rd64(d + 56) != 0) return fail(r, "header", "reserved field is not zero");
    uint64_t table_offset = rd64(d + 24);
    if (table_offset < HEADER_SIZE || table_offset % 8 || table_offset > file_size)
        return fail(r, "header", "table_offset %llu must be a multiple of 8 in [64, %llu]",
                    (unsigned long long)table_offset, (unsigned long long)file_size);
    r->n_stages = rd32(d + 32);
    r->n_layers = rd32(d + 36);
    r->n_blobs = rd32(d + 40);
    r->strings_size = rd32(d + 44);
    if (!r->n_stages) return fail(r, "header", "n_stages is 0");
    if (!r->n_layers) return fail(r, "header", "n_layers is 0");
    if (!r->n_blobs) return fail(r, "header", "n_blobs is 0");
    /* table_offset <= file_size < 2^63 and each term < 2^40: no overflow */
    r->stages_at = table_offset;
    r->layers_at = r->stages_at + (uint64_t)STAGE_SIZE * r->n_stages;
    r->blobs_at = r->layers_at + (uint64_t)LAYER_SIZE * r->n_layers;
    r->strings_at = r->blobs_at + (uint64_t)BLOB_SIZE * r->n_blobs;
    r->table_end = r->strings_at + r->strings_size;
    if (r->table_end > file_size)
        return fail(r, "header", "tables of %u stages, %u layers, %u blobs and %u string bytes end at %llu, past the "
                    "end of the %llu-byte file", r->n_stages, r->n_layers, r->n_blobs, r->strings_size,
                    (unsigned long long)r->table_end, (unsigned long long)file_size);
    r->batch_first = (int)(flags & 1u);
    return check_name(r, "header", d + 48);
}

static int cmp_span(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

static const char *dtype_name(uint32_t dtype)
{
    return dtype == DTYPE_F32 ? "float32" : dtype == DTYPE_F16 ? "float16" : "int8";
}

static rnnf_status read_blobs(reader *r)
{
    char where[48];
    r->blobs = calloc(r->n_blobs, sizeof(blob_info));
    uint64_t *spans = malloc((size_t)r->n_blobs * 3 * sizeof(uint64_t)); /* begin, end, index */
    if (!r->blobs || !spans) {
        free(spans);
        return RNNF_ERR_NOMEM;
    }
    rnnf_status s = RNNF_OK;
    for (uint32_t i = 0; i < r->n_blobs && s == RNNF_OK; i++) {
        const unsigned char *b = r->d + r->blobs_at + (uint64_t)BLOB_SIZE * i;
        blob_info *info = &r->blobs[i];
        snprintf(where, sizeof where, "blob %u", i);
        info->offset = rd64(b);
        info->nbytes = rd64(b + 8);
        uint32_t dtype = rd32(b + 16);
        info->ndim = rd32(b + 20);
        for (int k = 0; k < 4; k++) info->dims[k] = rd32(b + 24 + 4 * k);
        if (dtype == 0 || dtype > 3) {
            s = fail(r, where, "unknown dtype code %u (known: 1 float32, 2 float16, 3 int8)", dtype);
            break;
        }
        info->dtype = dtype;
        info->scale_blob = rd32(b + 40);
        if (dtype != DTYPE_F32 && r->minor < QUANTIZED_MINOR) {
            s = fail(r, where, "dtype %s needs format 1.%u, the file says 1.%u", dtype_name(dtype), QUANTIZED_MINOR,
                     r->minor);
            break;
        }
        if (info->ndim < 1 || info->ndim > 4) {
            s = fail(r, where, "ndim %u, expected 1 to 4", info->ndim);
            break;
        }
        /* count stops at file size + 1, so it never overflows */
        uint64_t count = 1;
        int dims_ok = 1;
        for (uint32_t k = 0; k < 4; k++) {
            if (k < info->ndim) {
                if (info->dims[k] < 1) dims_ok = 0;
                else if (count > r->size / info->dims[k]) count = r->size + 1;
                else count *= info->dims[k];
            } else if (info->dims[k]) {
                dims_ok = 0;
            }
        }
        if (!dims_ok) {
            s = fail(r, where, "dims [%u,%u,%u,%u] with ndim %u: the first ndim must be >= 1, the rest 0",
                     info->dims[0], info->dims[1], info->dims[2], info->dims[3], info->ndim);
            break;
        }
        if (rd32(b + 44) != 0) {
            s = fail(r, where, "reserved must be 0");
            break;
        }
        if (dtype == DTYPE_I8) {
            if (info->ndim < 2 || info->scale_blob >= r->n_blobs || info->scale_blob == i) {
                s = fail(r, where, "int8 blob of %u axes with scale_blob %u: needs 2 or more axes and another of the "
                         "file's %u blobs for its scales", info->ndim, info->scale_blob, r->n_blobs);
                break;
            }
        } else if (info->scale_blob != NONE) {
            s = fail(r, where, "scale_blob must be NONE for a %s blob", dtype_name(dtype));
            break;
        }
        const uint64_t itemsize = dtype == DTYPE_F32 ? 4 : dtype == DTYPE_F16 ? 2 : 1;
        if (count > r->size || info->nbytes != count * itemsize) {
            s = fail(r, where, "nbytes %llu does not match its dims of %s", (unsigned long long)info->nbytes,
                     dtype_name(dtype));
            break;
        }
        if (info->offset % ALIGN || info->offset < r->table_end || info->offset > r->size ||
            info->nbytes > r->size - info->offset) {
            s = fail(r, where, "offset %llu (+%llu bytes) must be 64-byte aligned, after the tables (end %llu) and "
                     "inside the %llu-byte file", (unsigned long long)info->offset,
                     (unsigned long long)info->nbytes, (unsigned long long)r->table_end,
                     (unsigned long long)r->size);
            break;
        }
        spans[3 * i] = info->offset;
        spans[3 * i + 1] = info->offset + info->nbytes;
        spans[3 * i + 2] = i;
    }
    if (s == RNNF_OK) {
        qsort(spans, r->n_blobs, 3 * sizeof(uint64_t), cmp_span);
        for (uint32_t i = 1; i < r->n_blobs && s == RNNF_OK; i++)
            if (spans[3 * i] < spans[3 * (i - 1) + 1]) {
                snprintf(where, sizeof where, "blob %llu", (unsigned long long)spans[3 * i + 2]);
                s = fail(r, where, "data at %llu overlaps blob %llu (which ends at %llu)",
                         (unsigned long long)spans[3 * i], (unsigned long long)spans[3 * (i - 1) + 2],
                         (unsigned long long)spans[3 * (i - 1) + 1]);
            }
    }
    free(spans);
    return s;
}

/* Blob `index` as a new float array of the expected shape (0 entries: any size); NONE gives NULL when optional.
 * dims_out (may be NULL) receives the blob's dims. */
/* Marks blob `index` used by `field` after checking it exists, is unused and has the expected shape (0: any). */
static rnnf_status claim(reader *r, const char *where, const char *field, uint32_t index, uint32_t ndim,
                         const uint32_t *shape)
{
    if (index >= r->n_blobs) return fail(r, where, "%s names blob %u, the file has %u", field, index, r->n_blobs);
    blob_info *b = &r->blobs[index];
    if (b->used) return fail(r, where, "%s reuses blob %u, already used", field, index);
    b->used = 1;
    int ok = b->ndim == ndim;
    for (uint32_t k = 0; ok && k < ndim; k++) ok = !shape[k] || shape[k] == b->dims[k];
    if (!ok) {
        char want[64] = "", got[64] = "";
        for (uint32_t k = 0; k < ndim; k++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%u", k ? "," : "", shape[k]);
        for (uint32_t k = 0; k < b->ndim; k++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%u", k ? "," : "", b->dims[k]);
        return fail(r, where, "%s (blob %u) has shape [%s], expected [%s] (0: any)", field, index, got, want);
    }
    return RNNF_OK;
}

static rnnf_status take(reader *r, const char *where, const char *field, uint32_t index, uint32_t ndim,
                        const uint32_t *shape, int optional, float **out, uint32_t *dims_out)
{
    *out = NULL;
    if (index == NONE) return optional ? RNNF_OK : fail(r, where, "%s is missing (blob NONE)", field);
    rnnf_status s = claim(r, where, field, index, ndim, shape);
    if (s != RNNF_OK) return s;
    const blob_info *b = &r->blobs[index];
    if (b->dtype != DTYPE_F32)
        return fail(r, where, "%s (blob %u) is %s: only the recurrent weights w_ih, w_hh and w_hr may be stored as "
                    "float16 or int8", field, index, dtype_name(b->dtype));
    if (dims_out) memcpy(dims_out, b->dims, sizeof b->dims);
    size_t n = (size_t)(b->nbytes / 4);
    float *v = malloc(n ? n * sizeof(float) : 1);
    if (!v) return RNNF_ERR_NOMEM;
    const unsigned char *p = r->d + b->offset;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits = rd32(p + 4 * i);
        memcpy(&v[i], &bits, sizeof bits);
    }
    *out = v;
    return RNNF_OK;
}

/* A recurrent weight as stored: float32 (into *f32), or float16 / int8 values (into *q, with row scales for int8).
 * *dtype receives the blob's dtype, or 0 for an optional NONE. */
static rnnf_status take_weight(reader *r, const char *where, const char *field, uint32_t index, const uint32_t *shape,
                               int optional, uint32_t *dtype, float **f32, void **q, float **scales)
{
    *dtype = 0;
    *f32 = NULL;
    *q = NULL;
    *scales = NULL;
    if (index == NONE) return optional ? RNNF_OK : fail(r, where, "%s is missing (blob NONE)", field);
    if (index < r->n_blobs && r->blobs[index].dtype == DTYPE_F32) {
        *dtype = DTYPE_F32;
        return take(r, where, field, index, 3, shape, optional, f32, NULL);
    }
    rnnf_status s = claim(r, where, field, index, 3, shape);
    if (s != RNNF_OK) return s;
    const blob_info *b = &r->blobs[index];
    *dtype = b->dtype;
    const unsigned char *p = r->d + b->offset;
    if (b->dtype == DTYPE_F16) {
        size_t n = (size_t)(b->nbytes / 2);
        uint16_t *v = malloc(n ? n * sizeof(uint16_t) : 1);
        if (!v) return RNNF_ERR_NOMEM;
        for (size_t i = 0; i < n; i++) v[i] = (uint16_t)rd16(p + 2 * i);
        *q = v;
        return RNNF_OK;
    }
    int8_t *v = malloc(b->nbytes ? (size_t)b->nbytes : 1);
    if (!v) return RNNF_ERR_NOMEM;
    memcpy(v, p, (size_t)b->nbytes);
    *q = v;
    char sfield[32];
    snprintf(sfield, sizeof sfield, "%s scales", field);
    s = take(r, where, sfield, b->scale_blob, 2, b->dims, 0, scales, NULL);
    if (s != RNNF_OK) return s;
    const size_t rows = (size_t)b->dims[0] * b->dims[1];
    for (size_t i = 0; i < rows; i++)
        if (!isfinite((*scales)[i]))
            return fail(r, where, "%s scales (blob %u) are not all finite", field, b->scale_blob);
    return RNNF_OK;
}

typedef struct {
    rnnf_layer_desc desc;
    float *owned[6];
    void *qowned[3];
    float *sowned[3];
} layer_build;

static void free_layer_build(layer_build *lb)
{
    for (int k = 0; k < 6; k++) free(lb->owned[k]);
    for (int k = 0; k < 3; k++) {
        free(lb->qowned[k]);
        free(lb->sowned[k]);
    }
}

static rnnf_status read_activation(reader *r, const char *where, const unsigned char *at, int used,
                                   rnnf_activation *act)
{
    if (!used) {
        for (unsigned k = 0; k < ACT_SIZE; k++)
            if (at[k]) return fail(r, where, "an unused activation slot is not all zero");
        return RNNF_OK;
    }
    uint32_t kind = rd32(at);
    double alpha = rdf64(at + 8), beta = rdf64(at + 16);
    if (kind >= RNNF_ACT_COUNT) return fail(r, where, "activation kind %u is unknown (0..%d)", kind, RNNF_ACT_COUNT - 1);
    if (rd32(at + 4) || !isfinite(alpha) || !isfinite(beta))
        return fail(r, where, "activation reserved field must be 0 and alpha, beta finite");
    act->kind = (int)kind;
    act->alpha = (float)alpha;
    act->beta = (float)beta;
    return RNNF_OK;
}

static rnnf_status read_layer(reader *r, uint32_t index, uint32_t stage, layer_build *lb)
{
    const unsigned char *at = r->d + r->layers_at + (uint64_t)LAYER_SIZE * index;
    char where[64];
    snprintf(where, sizeof where, "layer %u (stage %u)", index, stage);
    rnnf_layer_desc *d = &lb->desc;
    memset(lb, 0, sizeof(*lb));
    uint32_t cell = rd32(at), direction = rd32(at + 4), input_size = rd32(at + 8), hidden = rd32(at + 12);
    uint32_t proj = rd32(at + 16), flags = rd32(at + 20);
    double clip = rdf64(at + 24);
    uint32_t bw_ih = rd32(at + 40), bw_hh = rd32(at + 44), bb_ih = rd32(at + 48), bb_hh = rd32(at + 52);
    uint32_t bpeep = rd32(at + 56), bw_hr = rd32(at + 60);
    if (cell > 2) return fail(r, where, "cell %u is unknown (0 rnn, 1 gru, 2 lstm)", cell);
    if (direction > 2) return fail(r, where, "direction %u is unknown (0 forward, 1 reverse, 2 bidirectional)", direction);
    rnnf_status s = check_name(r, where, at + 32);
    if (s != RNNF_OK) return s;
    if (input_size < 1 || hidden < 1)
        return fail(r, where, "input_size %u and hidden_size %u must be >= 1", input_size, hidden);
    if (proj && cell != RNNF_CELL_LSTM) return fail(r, where, "proj_size %u on a non-LSTM: projection is LSTM only", proj);
    if (flags & ~7u) return fail(r, where, "flags 0x%x has unknown bits", flags);
    if ((flags & 1u) && cell != RNNF_CELL_LSTM) return fail(r, where, "input_forget on a non-LSTM: LSTM only");
    if ((flags & 2u) && cell != RNNF_CELL_GRU) return fail(r, where, "linear_before_reset on a non-GRU: GRU only");
    if (flags & 4u) {
        if (!(isfinite(clip) && clip > 0)) return fail(r, where, "clip %g must be finite and > 0", clip);
    } else if (clip != 0) {
        return fail(r, where, "clip %g without the has-clip flag (must be 0)", clip);
    }
    if (bpeep != NONE && cell != RNNF_CELL_LSTM) return fail(r, where, "peepholes on a non-LSTM: LSTM only");
    if ((bw_hr != NONE) != (proj > 0))
        return fail(r, where, "w_hr blob %u does not agree with proj_size %u (NONE iff 0)", bw_hr, proj);
    if (input_size > MAX_LAYER_DIM || hidden > MAX_LAYER_DIM || proj > MAX_LAYER_DIM)
        return fail(r, where, "sizes past %u are too large for this library", MAX_LAYER_DIM);
    const uint32_t D = direction == 2 ? 2 : 1, G = cell == RNNF_CELL_LSTM ? 4 : cell == RNNF_CELL_GRU ? 3 : 1;
    const uint32_t n_act = cell == RNNF_CELL_LSTM ? 3 : cell == RNNF_CELL_GRU ? 2 : 1;
    const uint32_t H = hidden, P = proj ? proj : hidden;
    for (uint32_t dir = 0; dir < 2; dir++)
        for (uint32_t k = 0; k < 3; k++) {
            char w[128];
            snprintf(w, sizeof w, "%s activation [%u][%u]", where, dir, k);
            s = read_activation(r, w, at + LAYER_HEAD_SIZE + (3 * dir + k) * ACT_SIZE, dir < D && k < n_act,
                                &d->act[dir][k]);
            if (s != RNNF_OK) return s;
        }
    if ((uint64_t)G * H > MAX_LAYER_DIM) return fail(r, where, "n_gates*hidden_size is too large for this library");
    const uint32_t s_ih[3] = {D, G * H, input_size}, s_hh[3] = {D, G * H, P}, s_b[2] = {D, G * H};
    const uint32_t s_peep[2] = {D, 3 * H}, s_hr[3] = {D, P, H};
    uint32_t dt[3];
    if ((s = take_weight(r, where, "w_ih", bw_ih, s_ih, 0, &dt[0], &lb->owned[0], &lb->qowned[0], &lb->sowned[0])) !=
        RNNF_OK)
        return s;
    if ((s = take_weight(r, where, "w_hh", bw_hh, s_hh, 0, &dt[1], &lb->owned[1], &lb->qowned[1], &lb->sowned[1])) !=
        RNNF_OK)
        return s;
    if ((s = take_weight(r, where, "w_hr", bw_hr, s_hr, 1, &dt[2], &lb->owned[5], &lb->qowned[2], &lb->sowned[2])) !=
        RNNF_OK)
        return s;
    if (dt[0] != dt[1] || (dt[2] && dt[2] != dt[0]))
        return fail(r, where, "w_ih, w_hh and w_hr are stored in different dtypes (w_ih %s, w_hh %s%s%s): a layer "
                    "has one", dtype_name(dt[0]), dtype_name(dt[1]), dt[2] ? ", w_hr " : "",
                    dt[2] ? dtype_name(dt[2]) : "");
    if ((s = take(r, where, "b_ih", bb_ih, 2, s_b, 0, &lb->owned[2], NULL)) != RNNF_OK) return s;
    if ((s = take(r, where, "b_hh", bb_hh, 2, s_b, 0, &lb->owned[3], NULL)) != RNNF_OK) return s;
    if ((s = take(r, where, "peepholes", bpeep, 2, s_peep, 1, &lb->owned[4], NULL)) != RNNF_OK) return s;
    d->weight_dtype = dt[0] == DTYPE_F16 ? RNNF_WEIGHTS_F16 : dt[0] == DTYPE_I8 ? RNNF_WEIGHTS_I8 : RNNF_WEIGHTS_F32;
    d->q_ih = lb->qowned[0];
    d->q_hh = lb->qowned[1];
    d->q_hr = lb->qowned[2];
    d->s_ih = lb->sowned[0];
    d->s_hh = lb->sowned[1];
    d->s_hr = lb->sowned[2];
    d->cell = (int)cell;
    d->n_dirs = (int)D;
    d->reverse = direction == 1;
    d->input_size = (int)input_size;
    d->hidden_size = (int)hidden;
    d->proj_size = (int)proj;
    d->w_ih = lb->owned[0];
    d->w_hh = lb->owned[1];
    d->b_ih = lb->owned[2];
    d->b_hh = lb->owned[3];
    d->peepholes = lb->owned[4];
    d->w_hr = lb->owned[5];
    d->clip = (flags & 4u) ? (float)clip : 0.0f;
    d->input_forget = (flags & 1u) != 0;
    d->linear_before_reset = (flags & 2u) != 0;
    return RNNF_OK;
}

static rnnf_status read_recurrent(reader *r, uint32_t index, uint32_t first, uint32_t count, rnnf_stage *st)
{
    char where[64];
    snprintf(where, sizeof where, "stage %u (Recurrent)", index);
    layer_build *lbs = calloc(count, sizeof(layer_build));
    rnnf_layer_desc *descs = calloc(count, sizeof(rnnf_layer_desc));
    rnnf_status s = lbs && descs ? RNNF_OK : RNNF_ERR_NOMEM;
    for (uint32_t k = 0; k < count && s == RNNF_OK; k++) {
        s = read_layer(r, first + k, index, &lbs[k]);
        descs[k] = lbs[k].desc;
        if (s == RNNF_OK && k > 0) {
            const rnnf_layer_desc *prev = &descs[k - 1];
            int gives = prev->n_dirs * (prev->proj_size ? prev->proj_size : prev->hidden_size);
            if (descs[k].input_size != gives) {
                char w[64];
                snprintf(w, sizeof w, "layer %u (stage %u)", first + k, index);
                s = fail(r, w, "input_size %d, the layer before gives %d", descs[k].input_size, gives);
            }
        }
    }
    if (s == RNNF_OK) {
        s = rnnf_model_create(descs, (int)count, &st->model);
        if (s != RNNF_OK && s != RNNF_ERR_NOMEM)
            s = fail(r, where, "the engine refuses its layers (%s)", rnnf_status_str(s));
    }
    if (s == RNNF_OK) {
        const rnnf_layer_desc *last = &descs[count - 1];
        st->in_size = descs[0].input_size;
        st->out_size = last->n_dirs * (last->proj_size ? last->proj_size : last->hidden_size);
    }
    if (lbs)
        for (uint32_t k = 0; k < count; k++) free_layer_build(&lbs[k]);
    free(lbs);
    free(descs);
    return s;
}

static rnnf_status read_stage(reader *r, uint32_t index, uint32_t *next_layer, rnnf_stage *st)
{
    const unsigned char *at = r->d + r->stages_at + (uint64_t)STAGE_SIZE * index;
    static const char *kinds[] = {"", "Embedding", "Recurrent", "Dense"};
    char where[48];
    uint32_t kind = rd32(at), flags = rd32(at + 4), arg0 = rd32(at + 16), arg1 = rd32(at + 20), arg2 = rd32(at + 24);
    snprintf(where, sizeof where, "stage %u", index);
    if (kind < 1 || kind > 3) return fail(r, where, "kind %u is unknown (1 Embedding, 2 Recurrent, 3 Dense)", kind);
    snprintf(where, sizeof where, "stage %u (%s)", index, kinds[kind]);
    rnnf_status s = check_name(r, where, at + 8);
    if (s != RNNF_OK) return s;
    if (rd32(at + 28)) return fail(r, where, "reserved field is not zero");
    st->kind = (int)kind;
    if (kind == RNNF_STAGE_EMBEDDING) {
        if ((flags & ~1u) || arg1 || arg2)
            return fail(r, where, "flags 0x%x, arg1 %u, arg2 %u: only flag bit 0 may be set, args 1 and 2 must be 0",
                        flags, arg1, arg2);
        const uint32_t any[2] = {0, 0};
        uint32_t dims[4];
        if ((s = take(r, where, "table", arg0, 2, any, 0, &st->table, dims)) != RNNF_OK) return s;
        if (dims[0] > MAX_TABLE_DIM || dims[1] > MAX_LAYER_DIM) return fail(r, where, "table too large for this library");
        st->vocab = (int)dims[0];
        st->in_size = 1;
        st->out_size = (int)dims[1];
        st->mask_zero = (int)(flags & 1u);
        return RNNF_OK;
    }
    if (kind == RNNF_STAGE_DENSE) {
        if (flags || arg2 >= RNNF_DENSE_COUNT)
            return fail(r, where, "flags 0x%x must be 0 and activation %u one of 0 linear, 1 relu, 2 tanh, 3 sigmoid, "
                        "4 softmax", flags, arg2);
        const uint32_t any[2] = {0, 0};
        uint32_t dims[4];
        if ((s = take(r, where, "weight", arg0, 2, any, 0, &st->weight, dims)) != RNNF_OK) return s;
        if (dims[0] > MAX_LAYER_DIM || dims[1] > MAX_LAYER_DIM)
            return fail(r, where, "weight too large for this library");
        if ((s = take(r, where, "bias", arg1, 1, dims, 1, &st->bias, NULL)) != RNNF_OK) return s;
        st->out_size = (int)dims[0];
        st->in_size = (int)dims[1];
        st->activation = (int)arg2;
        return RNNF_OK;
    }
    if ((flags & ~3u) || arg2) return fail(r, where, "flags 0x%x has unknown bits or arg2 %u is not 0", flags, arg2);
    if (arg0 != *next_layer || arg1 < 1 || (uint64_t)arg0 + arg1 > r->n_layers)
        return fail(r, where, "layers %u..%lld: expected 1 or more layers starting at %u, within the file's %u", arg0,
                    (long long)arg0 + arg1 - 1, *next_layer, r->n_layers);
    st->return_sequences = (int)(flags & 1u);
    st->mask_zero_output = (int)((flags >> 1) & 1u);
    *next_layer = arg0 + arg1;
    return read_recurrent(r, index, arg0, arg1, st);
}

/* The Pipeline rules: one recurrent stage at least, an Embedding only first, widths that chain, no recurrent
 * stage after one that returned no sequence. */
static rnnf_status check_chain(reader *r, const rnnf_pipeline *p)
{
    static const char *kinds[] = {"", "Embedding", "Recurrent", "Dense"};
    int any_recurrent = 0, width = -1, sequence = 1;
    char where[48];
    for (int i = 0; i < p->n_stages; i++) any_recurrent |= p->stages[i].kind == RNNF_STAGE_RECURRENT;
    if (!any_recurrent) return fail(r, "stages", "no recurrent stage");
    for (int i = 0; i < p->n_stages; i++) {
        const rnnf_stage *s = &p->stages[i];
        snprintf(where, sizeof where, "stage %d (%s)", i, kinds[s->kind]);
        if (s->kind == RNNF_STAGE_EMBEDDING && i) return fail(r, where, "an Embedding can only be stage 0");
        if (s->kind == RNNF_STAGE_RECURRENT && !sequence) return fail(r, where, "follows a stage that returned no sequence");
        if (s->kind != RNNF_STAGE_EMBEDDING && width >= 0 && s->in_size != width)
            return fail(r, where, "takes %d features, stage %d gives %d", s->in_size, i - 1, width);
        width = s->out_size;
        if (s->kind == RNNF_STAGE_RECURRENT && !s->return_sequences) sequence = 0;
    }
    return RNNF_OK;
}

void rnnf_pipeline_free(rnnf_pipeline *p)
{
    if (!p) return;
    if (p->stages)
        for (int i = 0; i < p->n_stages; i++) {
            rnnf_stage *s = &p->stages[i];
            free(s->table);
            free(s->weight);
            free(s->bias);
            rnnf_model_free(s->model);
        }
    free(p->stages);
    free(p);
}

static rnnf_status load_pipeline(const unsigned char *data, uint64_t size, const char *name, rnnf_pipeline **out,
                                 rnnf_error *err)
{
    reader r;
    memset(&r, 0, sizeof r);
    r.d = data;
    r.size = size;
    r.name = name;
    r.err = err;
    rnnf_status s = read_header(&r);
    if (s == RNNF_OK) s = read_blobs(&r);
    rnnf_pipeline *p = NULL;
    if (s == RNNF_OK) {
        p = calloc(1, sizeof(*p));
        if (p) p->stages = calloc(r.n_stages, sizeof(rnnf_stage));
        if (!p || !p->stages) s = RNNF_ERR_NOMEM;
    }
    uint32_t next_layer = 0;
    for (uint32_t i = 0; s == RNNF_OK && i < r.n_stages; i++) {
        p->n_stages = (int)i + 1;
        s = read_stage(&r, i, &next_layer, &p->stages[i]);
    }
    if (s == RNNF_OK && next_layer != r.n_layers)
        s = fail(&r, "stages", "use %u of the %u layer records", next_layer, r.n_layers);
    for (uint32_t i = 0; s == RNNF_OK && i < r.n_blobs; i++)
        if (!r.blobs[i].used) {
            char where[32];
            snprintf(where, sizeof where, "blob %u", i);
            s = fail(&r, where, "not used by any record");
        }
    if (s == RNNF_OK) s = check_chain(&r, p);
    free(r.blobs);
    if (s != RNNF_OK) {
        if (s == RNNF_ERR_NOMEM && err) snprintf(err->message, RNNF_ERROR_MESSAGE_SIZE, "%s: out of memory", name);
        rnnf_pipeline_free(p);
        return s;
    }
    p->batch_first = r.batch_first;
    p->max_width = 1;
    for (int i = 0; i < p->n_stages; i++) {
        if (p->stages[i].in_size > p->max_width) p->max_width = p->stages[i].in_size;
        if (p->stages[i].out_size > p->max_width) p->max_width = p->stages[i].out_size;
    }
    *out = p;
    return RNNF_OK;
}

rnnf_status rnnf_pipeline_load_buffer(const void *data, size_t size, rnnf_pipeline **out, rnnf_error *err)
{
    if (err) err->message[0] = '\0';
    if (!out) return RNNF_ERR_ARG;
    *out = NULL;
    if (!data) return RNNF_ERR_ARG;
    return load_pipeline(data, size, "<buffer>", out, err);
}

static rnnf_status read_file(const char *path, unsigned char **data, size_t *size, rnnf_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (err) snprintf(err->message, RNNF_ERROR_MESSAGE_SIZE, "%s: cannot open: %s", path, strerror(errno));
        return RNNF_ERR_IO;
    }
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        unsigned char *bigger = cap <= ((size_t)-1) / 2 ? realloc(buf, cap * 2) : NULL;
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    int bad = !buf || ferror(f);
    fclose(f);
    if (!buf) {
        if (err) snprintf(err->message, RNNF_ERROR_MESSAGE_SIZE, "%s: out of memory reading the file", path);
        return RNNF_ERR_NOMEM;
    }
    if (bad) {
        free(buf);
        if (err) snprintf(err->message, RNNF_ERROR_MESSAGE_SIZE, "%s: read error", path);
        return RNNF_ERR_IO;
    }
    *data = buf;
    *size = n;
    return RNNF_OK;
}

rnnf_status rnnf_pipeline_load_file(const char *path, rnnf_pipeline **out, rnnf_error *err)
{
    if (err) err->message[0] = '\0';
    if (!out) return RNNF_ERR_ARG;
    *out = NULL;
    if (!path) return RNNF_ERR_ARG;
    unsigned char *data = NULL;
    size_t size = 0;
    rnnf_status s = read_file(path, &data, &size, err);
    if (s != RNNF_OK) return s;
    s = load_pipeline(data, size, path, out, err);
    free(data);
    return s;
}

/* Keep the model of a file that is exactly one recurrent stage; anything else needs the pipeline API. */
static rnnf_status single_model(rnnf_status s, rnnf_pipeline *p, const char *name, rnnf_model **out, rnnf_error *err)
{
    if (s != RNNF_OK) return s;
    if (p->n_stages != 1 || p->stages[0].kind != RNNF_STAGE_RECURRENT) {
        if (err)
            snprintf(err->message, RNNF_ERROR_MESSAGE_SIZE, "%s: the file has %d stages (%s first), not a single "
                     "recurrent stage: load it with rnnf_pipeline_load_*", name, p->n_stages,
                     p->stages[0].kind == RNNF_STAGE_EMBEDDING ? "an Embedding" : "a Recurrent");
        rnnf_pipeline_free(p);
        return RNNF_ERR_UNSUPPORTED;
    }
    *out = p->stages[0].model;
    p->stages[0].model = NULL;
    rnnf_pipeline_free(p);
    return RNNF_OK;
}

rnnf_status rnnf_model_load_buffer(const void *data, size_t size, rnnf_model **out, rnnf_error *err)
{
    rnnf_pipeline *p = NULL;
    if (!out) return RNNF_ERR_ARG;
    *out = NULL;
    rnnf_status s = rnnf_pipeline_load_buffer(data, size, &p, err);
    return single_model(s, p, "<buffer>", out, err);
}

rnnf_status rnnf_model_load_file(const char *path, rnnf_model **out, rnnf_error *err)
{
    rnnf_pipeline *p = NULL;
    if (!out) return RNNF_ERR_ARG;
    *out = NULL;
    rnnf_status s = rnnf_pipeline_load_file(path, &p, err);
    return single_model(s, p, path ? path : "", out, err);
}
