/* rnnf_file.c: the .rnnf 1 reader (docs/format.md) for C programs: file or buffer -> rnnf_pipeline or rnnf_model.
 * Blobs and layer records are read by rnnf_read.c, which version 2 (rnnf_graph_file.c) shares.
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

#include "rnnf_read.h"

static rnnf_status read_header(rnnf_reader *r)
{
    const unsigned char *d = r->d;
    if (r->size < HEADER_SIZE)
        return rnnf_rd_fail(r, "header", "the file is %llu bytes, shorter than the 64-byte header",
                            (unsigned long long)r->size);
    if (memcmp(d, "RNNF", 4) != 0) return rnnf_rd_fail(r, "header", "magic is not RNNF: not a .rnnf file");
    uint32_t major = rd16(d + 4), minor = rd16(d + 6);
    r->major = major;
    r->minor = minor;
    if (major == GRAPH_MAJOR)
        return rnnf_rd_fail(r, "header", "format version 2 holds a whole graph, not a pipeline: load it with "
                            "rnnf_graph_load_file or rnnf_graph_load_buffer");
    if (major != VERSION_MAJOR || minor > VERSION_MINOR)
        return rnnf_rd_fail(r, "header", "format version %u.%u is not readable by this reader (it reads %u.0 to %u.%u "
                            "and %u.0 to %u.%u)", major, minor, VERSION_MAJOR, VERSION_MAJOR, VERSION_MINOR,
                            GRAPH_MAJOR, GRAPH_MAJOR, GRAPH_MINOR);
    if (rd32(d + 8) != HEADER_SIZE) return rnnf_rd_fail(r, "header", "header_size %u, expected 64", rd32(d + 8));
    uint32_t flags = rd32(d + 12);
    if (flags & ~1u) return rnnf_rd_fail(r, "header", "flags 0x%x has unknown bits", flags);
    uint64_t file_size = rd64(d + 16);
    if (file_size != r->size)
        return rnnf_rd_fail(r, "header", "file_size says %llu bytes, the file has %llu (truncated or padded)",
                    (unsigned long long)file_size, (unsigned long long)r->size);
    if (rd64(d + 56) != 0) return rnnf_rd_fail(r, "header", "reserved field is not zero");
    uint64_t table_offset = rd64(d + 24);
    if (table_offset < HEADER_SIZE || table_offset % 8 || table_offset > file_size)
        return rnnf_rd_fail(r, "header", "table_offset %llu must be a multiple of 8 in [64, %llu]",
                    (unsigned long long)table_offset, (unsigned long long)file_size);
    r->n_stages = rd32(d + 32);
    r->n_layers = rd32(d + 36);
    r->n_blobs = rd32(d + 40);
    r->strings_size = rd32(d + 44);
    if (!r->n_stages) return rnnf_rd_fail(r, "header", "n_stages is 0");
    if (!r->n_layers) return rnnf_rd_fail(r, "header", "n_layers is 0");
    if (!r->n_blobs) return rnnf_rd_fail(r, "header", "n_blobs is 0");
    /* table_offset <= file_size < 2^63 and each term < 2^40: no overflow */
    r->stages_at = table_offset;
    r->layers_at = r->stages_at + (uint64_t)STAGE_SIZE * r->n_stages;
    r->blobs_at = r->layers_at + (uint64_t)LAYER_SIZE * r->n_layers;
    r->strings_at = r->blobs_at + (uint64_t)BLOB_SIZE * r->n_blobs;
    r->table_end = r->strings_at + r->strings_size;
    if (r->table_end > file_size)
        return rnnf_rd_fail(r, "header",
                            "tables of %u stages, %u layers, %u blobs and %u string bytes end at %llu, past the "
                    "end of the %llu-byte file", r->n_stages, r->n_layers, r->n_blobs, r->strings_size,
                    (unsigned long long)r->table_end, (unsigned long long)file_size);
    r->batch_first = (int)(flags & 1u);
    return rnnf_rd_name(r, "header", d + 48);
}

static rnnf_status read_recurrent(rnnf_reader *r, uint32_t index, uint32_t first, uint32_t count, rnnf_stage *st)
{
    char where[64];
    snprintf(where, sizeof where, "stage %u (Recurrent)", index);
    rnnf_layer_build *lbs = calloc(count, sizeof(rnnf_layer_build));
    rnnf_layer_desc *descs = calloc(count, sizeof(rnnf_layer_desc));
    rnnf_status s = lbs && descs ? RNNF_OK : RNNF_ERR_NOMEM;
    for (uint32_t k = 0; k < count && s == RNNF_OK; k++) {
        char owner[32];
        snprintf(owner, sizeof owner, "stage %u", index);
        s = rnnf_rd_layer(r, first + k, owner, &lbs[k]);
        descs[k] = lbs[k].desc;
        if (s == RNNF_OK && k > 0) {
            const rnnf_layer_desc *prev = &descs[k - 1];
            int gives = prev->n_dirs * (prev->proj_size ? prev->proj_size : prev->hidden_size);
            if (descs[k].input_size != gives) {
                char w[64];
                snprintf(w, sizeof w, "layer %u (stage %u)", first + k, index);
                s = rnnf_rd_fail(r, w, "input_size %d, the layer before gives %d", descs[k].input_size, gives);
            }
        }
    }
    if (s == RNNF_OK) {
        s = rnnf_model_create(descs, (int)count, &st->model);
        if (s != RNNF_OK && s != RNNF_ERR_NOMEM)
            s = rnnf_rd_fail(r, where, "the engine refuses its layers (%s)", rnnf_status_str(s));
    }
    if (s == RNNF_OK) {
        const rnnf_layer_desc *last = &descs[count - 1];
        st->in_size = descs[0].input_size;
        st->out_size = last->n_dirs * (last->proj_size ? last->proj_size : last->hidden_size);
    }
    if (lbs)
        for (uint32_t k = 0; k < count; k++) rnnf_rd_free_layer(&lbs[k]);
    free(lbs);
    free(descs);
    return s;
}

static rnnf_status read_stage(rnnf_reader *r, uint32_t index, uint32_t *next_layer, rnnf_stage *st)
{
    const unsigned char *at = r->d + r->stages_at + (uint64_t)STAGE_SIZE * index;
    static const char *kinds[] = {"", "Embedding", "Recurrent", "Dense"};
    char where[48];
    uint32_t kind = rd32(at), flags = rd32(at + 4), arg0 = rd32(at + 16), arg1 = rd32(at + 20), arg2 = rd32(at + 24);
    snprintf(where, sizeof where, "stage %u", index);
    if (kind < 1 || kind > 3)
        return rnnf_rd_fail(r, where, "kind %u is unknown (1 Embedding, 2 Recurrent, 3 Dense)", kind);
    snprintf(where, sizeof where, "stage %u (%s)", index, kinds[kind]);
    rnnf_status s = rnnf_rd_name(r, where, at + 8);
    if (s != RNNF_OK) return s;
    if (rd32(at + 28)) return rnnf_rd_fail(r, where, "reserved field is not zero");
    st->kind = (int)kind;
    if (kind == RNNF_STAGE_EMBEDDING) {
        if ((flags & ~1u) || arg1 || arg2)
            return rnnf_rd_fail(r, where,
                                "flags 0x%x, arg1 %u, arg2 %u: only flag bit 0 may be set, args 1 and 2 must be 0",
                        flags, arg1, arg2);
        const uint32_t any[2] = {0, 0};
        uint32_t dims[4];
        if ((s = rnnf_rd_take(r, where, "table", arg0, 2, any, 0, &st->table, dims)) != RNNF_OK) return s;
        if (dims[0] > MAX_TABLE_DIM || dims[1] > MAX_LAYER_DIM)
            return rnnf_rd_fail(r, where, "table too large for this library");
        st->vocab = (int)dims[0];
        st->in_size = 1;
        st->out_size = (int)dims[1];
        st->mask_zero = (int)(flags & 1u);
        return RNNF_OK;
    }
    if (kind == RNNF_STAGE_DENSE) {
        if (flags || arg2 >= RNNF_DENSE_COUNT)
            return rnnf_rd_fail(r, where,
                                "flags 0x%x must be 0 and activation %u one of 0 linear, 1 relu, 2 tanh, 3 sigmoid, "
                        "4 softmax", flags, arg2);
        const uint32_t any[2] = {0, 0};
        uint32_t dims[4];
        if ((s = rnnf_rd_take(r, where, "weight", arg0, 2, any, 0, &st->weight, dims)) != RNNF_OK) return s;
        if (dims[0] > MAX_LAYER_DIM || dims[1] > MAX_LAYER_DIM)
            return rnnf_rd_fail(r, where, "weight too large for this library");
        if ((s = rnnf_rd_take(r, where, "bias", arg1, 1, dims, 1, &st->bias, NULL)) != RNNF_OK) return s;
        st->out_size = (int)dims[0];
        st->in_size = (int)dims[1];
        st->activation = (int)arg2;
        return RNNF_OK;
    }
    if ((flags & ~3u) || arg2)
        return rnnf_rd_fail(r, where, "flags 0x%x has unknown bits or arg2 %u is not 0", flags, arg2);
    if (arg0 != *next_layer || arg1 < 1 || (uint64_t)arg0 + arg1 > r->n_layers)
        return rnnf_rd_fail(r, where,
                            "layers %u..%lld: expected 1 or more layers starting at %u, within the file's %u", arg0,
                    (long long)arg0 + arg1 - 1, *next_layer, r->n_layers);
    st->return_sequences = (int)(flags & 1u);
    st->mask_zero_output = (int)((flags >> 1) & 1u);
    *next_layer = arg0 + arg1;
    return read_recurrent(r, index, arg0, arg1, st);
}

/* The Pipeline rules: one recurrent stage at least, an Embedding only first, widths that chain, no recurrent
 * stage after one that returned no sequence. */
static rnnf_status check_chain(rnnf_reader *r, const rnnf_pipeline *p)
{
    static const char *kinds[] = {"", "Embedding", "Recurrent", "Dense"};
    int any_recurrent = 0, width = -1, sequence = 1;
    char where[48];
    for (int i = 0; i < p->n_stages; i++) any_recurrent |= p->stages[i].kind == RNNF_STAGE_RECURRENT;
    if (!any_recurrent) return rnnf_rd_fail(r, "stages", "no recurrent stage");
    for (int i = 0; i < p->n_stages; i++) {
        const rnnf_stage *s = &p->stages[i];
        snprintf(where, sizeof where, "stage %d (%s)", i, kinds[s->kind]);
        if (s->kind == RNNF_STAGE_EMBEDDING && i) return rnnf_rd_fail(r, where, "an Embedding can only be stage 0");
        if (s->kind == RNNF_STAGE_RECURRENT && !sequence)
            return rnnf_rd_fail(r, where, "follows a stage that returned no sequence");
        if (s->kind != RNNF_STAGE_EMBEDDING && width >= 0 && s->in_size != width)
            return rnnf_rd_fail(r, where, "takes %d features, stage %d gives %d", s->in_size, i - 1, width);
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
    rnnf_reader r;
    memset(&r, 0, sizeof r);
    r.d = data;
    r.size = size;
    r.name = name;
    r.err = err;
    rnnf_status s = read_header(&r);
    if (s == RNNF_OK) s = rnnf_rd_blobs(&r);
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
        s = rnnf_rd_fail(&r, "stages", "use %u of the %u layer records", next_layer, r.n_layers);
    for (uint32_t i = 0; s == RNNF_OK && i < r.n_blobs; i++)
        if (!r.blobs[i].used) {
            char where[32];
            snprintf(where, sizeof where, "blob %u", i);
            s = rnnf_rd_fail(&r, where, "not used by any record");
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

static rnnf_status parse_pipeline(const unsigned char *data, uint64_t size, const char *name, void *out,
                                  rnnf_error *err)
{
    return load_pipeline(data, size, name, (rnnf_pipeline **)out, err);
}

rnnf_status rnnf_pipeline_load_buffer(const void *data, size_t size, rnnf_pipeline **out, rnnf_error *err)
{
    if (!out) return RNNF_ERR_ARG;
    *out = NULL;
    return rnnf_rd_load(NULL, data, size, parse_pipeline, out, err);
}

rnnf_status rnnf_pipeline_load_file(const char *path, rnnf_pipeline **out, rnnf_error *err)
{
    if (!out) return RNNF_ERR_ARG;
    *out = NULL;
    return rnnf_rd_load(path, NULL, 0, parse_pipeline, out, err); /* a NULL path is an argument error */
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
