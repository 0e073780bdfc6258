/* rnnf_read.c: the parts of the .rnnf readers that versions 1 and 2 share (rnnf_read.h): messages, names, the
 * blob table and the recurrent layer records, checked as rnnfast/importers/rnnf.py checks them.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnnf_read.h"

rnnf_status rnnf_rd_fail(rnnf_reader *r, const char *where, const char *fmt, ...)
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

rnnf_status rnnf_rd_name(rnnf_reader *r, const char *where, const unsigned char *at)
{
    uint64_t off = rd32(at), len = rd32(at + 4);
    if (off + len > r->strings_size)
        return rnnf_rd_fail(r, where, "name at %llu (+%llu bytes) is outside the %u-byte strings table",
                    (unsigned long long)off, (unsigned long long)len, r->strings_size);
    if (!utf8_valid(r->d + r->strings_at + off, len)) return rnnf_rd_fail(r, where, "name is not valid UTF-8");
    return RNNF_OK;
}

static int cmp_span(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

const char *rnnf_rd_dtype_name(uint32_t dtype)
{
    static const char *const names[] = {"?", "float32", "float16", "int8", "int64", "int32", "bool", "int8 values"};
    return dtype < sizeof names / sizeof names[0] ? names[dtype] : "?";
}

rnnf_status rnnf_rd_blobs(rnnf_reader *r)
{
    char where[48];
    r->blobs = calloc(r->n_blobs, sizeof(rnnf_blob_info));
    uint64_t *spans = malloc((size_t)r->n_blobs * 3 * sizeof(uint64_t)); /* begin, end, index */
    if (!r->blobs || !spans) {
        free(spans);
        return RNNF_ERR_NOMEM;
    }
    rnnf_status s = RNNF_OK;
    for (uint32_t i = 0; i < r->n_blobs && s == RNNF_OK; i++) {
        const unsigned char *b = r->d + r->blobs_at + (uint64_t)BLOB_SIZE * i;
        rnnf_blob_info *info = &r->blobs[i];
        snprintf(where, sizeof where, "blob %u", i);
        info->offset = rd64(b);
        info->nbytes = rd64(b + 8);
        uint32_t dtype = rd32(b + 16);
        info->ndim = rd32(b + 20);
        for (int k = 0; k < 4; k++) info->dims[k] = rd32(b + 24 + 4 * k);
        if (dtype == 0 || dtype > (r->major == GRAPH_MAJOR ? DTYPE_I8_RAW : DTYPE_I8)) {
            s = rnnf_rd_fail(r, where, "unknown dtype code %u (known: 1 float32, 2 float16, 3 int8%s)", dtype,
                             r->major == GRAPH_MAJOR ? ", 4 int64, 5 int32, 6 bool, 7 int8 values" : "");
            break;
        }
        info->dtype = dtype;
        info->scale_blob = rd32(b + 40);
        if (dtype != DTYPE_F32 && r->major == VERSION_MAJOR && r->minor < QUANTIZED_MINOR) {
            s = rnnf_rd_fail(r, where, "dtype %s needs format 1.%u, the file says 1.%u", rnnf_rd_dtype_name(dtype),
                             QUANTIZED_MINOR,
                     r->minor);
            break;
        }
        if (info->ndim < 1 || info->ndim > 4) {
            s = rnnf_rd_fail(r, where, "ndim %u, expected 1 to 4", info->ndim);
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
            s = rnnf_rd_fail(r, where, "dims [%u,%u,%u,%u] with ndim %u: the first ndim must be >= 1, the rest 0",
                     info->dims[0], info->dims[1], info->dims[2], info->dims[3], info->ndim);
            break;
        }
        if (rd32(b + 44) != 0) {
            s = rnnf_rd_fail(r, where, "reserved must be 0");
            break;
        }
        if (dtype == DTYPE_I8) {
            if (info->ndim < 2 || info->scale_blob >= r->n_blobs || info->scale_blob == i) {
                s = rnnf_rd_fail(r, where,
                                 "int8 blob of %u axes with scale_blob %u: needs 2 or more axes and another of the "
                         "file's %u blobs for its scales", info->ndim, info->scale_blob, r->n_blobs);
                break;
            }
        } else if (info->scale_blob != NONE) {
            s = rnnf_rd_fail(r, where, "scale_blob must be NONE for a %s blob", rnnf_rd_dtype_name(dtype));
            break;
        }
        static const uint64_t itemsizes[] = {0, 4, 2, 1, 8, 4, 1, 1};
        const uint64_t itemsize = itemsizes[dtype];
        if (count > r->size || info->nbytes != count * itemsize) {
            s = rnnf_rd_fail(r, where, "nbytes %llu does not match its dims of %s", (unsigned long long)info->nbytes,
                     rnnf_rd_dtype_name(dtype));
            break;
        }
        if (info->offset % ALIGN || info->offset < r->table_end || info->offset > r->size ||
            info->nbytes > r->size - info->offset) {
            s = rnnf_rd_fail(r, where,
                             "offset %llu (+%llu bytes) must be 64-byte aligned, after the tables (end %llu) and "
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
                s = rnnf_rd_fail(r, where, "data at %llu overlaps blob %llu (which ends at %llu)",
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
rnnf_status rnnf_rd_claim(rnnf_reader *r, const char *where, const char *field, uint32_t index, uint32_t ndim,
                         const uint32_t *shape)
{
    if (index >= r->n_blobs)
        return rnnf_rd_fail(r, where, "%s names blob %u, the file has %u", field, index, r->n_blobs);
    rnnf_blob_info *b = &r->blobs[index];
    if (b->used) return rnnf_rd_fail(r, where, "%s reuses blob %u, already used", field, index);
    b->used = 1;
    int ok = b->ndim == ndim;
    for (uint32_t k = 0; ok && k < ndim; k++) ok = !shape[k] || shape[k] == b->dims[k];
    if (!ok) {
        char want[64] = "", got[64] = "";
        for (uint32_t k = 0; k < ndim; k++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%u", k ? "," : "", shape[k]);
        for (uint32_t k = 0; k < b->ndim; k++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%u", k ? "," : "", b->dims[k]);
        return rnnf_rd_fail(r, where, "%s (blob %u) has shape [%s], expected [%s] (0: any)", field, index, got, want);
    }
    return RNNF_OK;
}

rnnf_status rnnf_rd_take(rnnf_reader *r, const char *where, const char *field, uint32_t index, uint32_t ndim,
                        const uint32_t *shape, int optional, float **out, uint32_t *dims_out)
{
    *out = NULL;
    if (index == NONE) return optional ? RNNF_OK : rnnf_rd_fail(r, where, "%s is missing (blob NONE)", field);
    rnnf_status s = rnnf_rd_claim(r, where, field, index, ndim, shape);
    if (s != RNNF_OK) return s;
    const rnnf_blob_info *b = &r->blobs[index];
    if (b->dtype != DTYPE_F32)
        return rnnf_rd_fail(r, where,
                            "%s (blob %u) is %s: only the recurrent weights w_ih, w_hh and w_hr may be stored as "
                    "float16 or int8", field, index, rnnf_rd_dtype_name(b->dtype));
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
static rnnf_status rnnf_rd_weight(rnnf_reader *r, const char *where, const char *field, uint32_t index,
                                  const uint32_t *shape,
                               int optional, uint32_t *dtype, float **f32, void **q, float **scales)
{
    *dtype = 0;
    *f32 = NULL;
    *q = NULL;
    *scales = NULL;
    if (index == NONE) return optional ? RNNF_OK : rnnf_rd_fail(r, where, "%s is missing (blob NONE)", field);
    if (index < r->n_blobs && r->blobs[index].dtype == DTYPE_F32) {
        *dtype = DTYPE_F32;
        return rnnf_rd_take(r, where, field, index, 3, shape, optional, f32, NULL);
    }
    rnnf_status s = rnnf_rd_claim(r, where, field, index, 3, shape);
    if (s != RNNF_OK) return s;
    const rnnf_blob_info *b = &r->blobs[index];
    if (b->dtype != DTYPE_F16 && b->dtype != DTYPE_I8)
        return rnnf_rd_fail(r, where, "%s (blob %u) is %s: only the recurrent weights w_ih, w_hh and w_hr may be "
                            "stored as float16 or int8", field, index, rnnf_rd_dtype_name(b->dtype));
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
    s = rnnf_rd_take(r, where, sfield, b->scale_blob, 2, b->dims, 0, scales, NULL);
    if (s != RNNF_OK) return s;
    const size_t rows = (size_t)b->dims[0] * b->dims[1];
    for (size_t i = 0; i < rows; i++)
        if (!isfinite((*scales)[i]))
            return rnnf_rd_fail(r, where, "%s scales (blob %u) are not all finite", field, b->scale_blob);
    return RNNF_OK;
}



void rnnf_rd_free_layer(rnnf_layer_build *lb)
{
    for (int k = 0; k < 6; k++) free(lb->owned[k]);
    for (int k = 0; k < 3; k++) {
        free(lb->qowned[k]);
        free(lb->sowned[k]);
    }
}

static rnnf_status read_activation(rnnf_reader *r, const char *where, const unsigned char *at, int used,
                                   rnnf_activation *act)
{
    if (!used) {
        for (unsigned k = 0; k < ACT_SIZE; k++)
            if (at[k]) return rnnf_rd_fail(r, where, "an unused activation slot is not all zero");
        return RNNF_OK;
    }
    uint32_t kind = rd32(at);
    double alpha = rdf64(at + 8), beta = rdf64(at + 16);
    if (kind >= RNNF_ACT_COUNT) return rnnf_rd_fail(r, where, "activation kind %u is unknown (0..%d)", kind,
                                                    RNNF_ACT_COUNT - 1);
    if (rd32(at + 4) || !isfinite(alpha) || !isfinite(beta))
        return rnnf_rd_fail(r, where, "activation reserved field must be 0 and alpha, beta finite");
    act->kind = (int)kind;
    act->alpha = (float)alpha;
    act->beta = (float)beta;
    return RNNF_OK;
}

rnnf_status rnnf_rd_layer(rnnf_reader *r, uint32_t index, const char *owner, rnnf_layer_build *lb)
{
    const unsigned char *at = r->d + r->layers_at + (uint64_t)LAYER_SIZE * index;
    char where[64];
    snprintf(where, sizeof where, "layer %u (%s)", index, owner);
    rnnf_layer_desc *d = &lb->desc;
    memset(lb, 0, sizeof(*lb));
    uint32_t cell = rd32(at), direction = rd32(at + 4), input_size = rd32(at + 8), hidden = rd32(at + 12);
    uint32_t proj = rd32(at + 16), flags = rd32(at + 20);
    double clip = rdf64(at + 24);
    uint32_t bw_ih = rd32(at + 40), bw_hh = rd32(at + 44), bb_ih = rd32(at + 48), bb_hh = rd32(at + 52);
    uint32_t bpeep = rd32(at + 56), bw_hr = rd32(at + 60);
    if (cell > 2) return rnnf_rd_fail(r, where, "cell %u is unknown (0 rnn, 1 gru, 2 lstm)", cell);
    if (direction > 2)
        return rnnf_rd_fail(r, where, "direction %u is unknown (0 forward, 1 reverse, 2 bidirectional)", direction);
    rnnf_status s = rnnf_rd_name(r, where, at + 32);
    if (s != RNNF_OK) return s;
    if (input_size < 1 || hidden < 1)
        return rnnf_rd_fail(r, where, "input_size %u and hidden_size %u must be >= 1", input_size, hidden);
    if (proj && cell != RNNF_CELL_LSTM)
        return rnnf_rd_fail(r, where, "proj_size %u on a non-LSTM: projection is LSTM only", proj);
    if (flags & ~7u) return rnnf_rd_fail(r, where, "flags 0x%x has unknown bits", flags);
    if ((flags & 1u) && cell != RNNF_CELL_LSTM) return rnnf_rd_fail(r, where, "input_forget on a non-LSTM: LSTM only");
    if ((flags & 2u) && cell != RNNF_CELL_GRU)
        return rnnf_rd_fail(r, where, "linear_before_reset on a non-GRU: GRU only");
    if (flags & 4u) {
        if (!(isfinite(clip) && clip > 0)) return rnnf_rd_fail(r, where, "clip %g must be finite and > 0", clip);
    } else if (clip != 0) {
        return rnnf_rd_fail(r, where, "clip %g without the has-clip flag (must be 0)", clip);
    }
    if (bpeep != NONE && cell != RNNF_CELL_LSTM) return rnnf_rd_fail(r, where, "peepholes on a non-LSTM: LSTM only");
    if ((bw_hr != NONE) != (proj > 0))
        return rnnf_rd_fail(r, where, "w_hr blob %u does not agree with proj_size %u (NONE iff 0)", bw_hr, proj);
    if (input_size > MAX_LAYER_DIM || hidden > MAX_LAYER_DIM || proj > MAX_LAYER_DIM)
        return rnnf_rd_fail(r, where, "sizes past %u are too large for this library", MAX_LAYER_DIM);
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
    if ((uint64_t)G * H > MAX_LAYER_DIM)
        return rnnf_rd_fail(r, where, "n_gates*hidden_size is too large for this library");
    const uint32_t s_ih[3] = {D, G * H, input_size}, s_hh[3] = {D, G * H, P}, s_b[2] = {D, G * H};
    const uint32_t s_peep[2] = {D, 3 * H}, s_hr[3] = {D, P, H};
    uint32_t dt[3];
    if ((s = rnnf_rd_weight(r, where, "w_ih", bw_ih, s_ih, 0, &dt[0], &lb->owned[0], &lb->qowned[0], &lb->sowned[0])) !=
        RNNF_OK)
        return s;
    if ((s = rnnf_rd_weight(r, where, "w_hh", bw_hh, s_hh, 0, &dt[1], &lb->owned[1], &lb->qowned[1], &lb->sowned[1])) !=
        RNNF_OK)
        return s;
    if ((s = rnnf_rd_weight(r, where, "w_hr", bw_hr, s_hr, 1, &dt[2], &lb->owned[5], &lb->qowned[2], &lb->sowned[2])) !=
        RNNF_OK)
        return s;
    if (dt[0] != dt[1] || (dt[2] && dt[2] != dt[0]))
        return rnnf_rd_fail(r, where,
                            "w_ih, w_hh and w_hr are stored in different dtypes (w_ih %s, w_hh %s%s%s): a layer "
                    "has one", rnnf_rd_dtype_name(dt[0]), rnnf_rd_dtype_name(dt[1]), dt[2] ? ", w_hr " : "",
                    dt[2] ? rnnf_rd_dtype_name(dt[2]) : "");
    if ((s = rnnf_rd_take(r, where, "b_ih", bb_ih, 2, s_b, 0, &lb->owned[2], NULL)) != RNNF_OK) return s;
    if ((s = rnnf_rd_take(r, where, "b_hh", bb_hh, 2, s_b, 0, &lb->owned[3], NULL)) != RNNF_OK) return s;
    if ((s = rnnf_rd_take(r, where, "peepholes", bpeep, 2, s_peep, 1, &lb->owned[4], NULL)) != RNNF_OK) return s;
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

rnnf_status rnnf_rd_load(const char *path, const void *data, size_t size, rnnf_rd_parse parse, void *out,
                         rnnf_error *err)
{
    if (err) err->message[0] = '\0';
    if (!path) return data ? parse(data, size, "<buffer>", out, err) : RNNF_ERR_ARG; /* neither given */
    unsigned char *read = NULL;
    size_t n = 0;
    rnnf_status s = rnnf_rd_file(path, &read, &n, err);
    if (s != RNNF_OK) return s;
    s = parse(read, n, path, out, err);
    free(read);
    return s;
}

rnnf_status rnnf_rd_file(const char *path, unsigned char **data, size_t *size, rnnf_error *err)
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

