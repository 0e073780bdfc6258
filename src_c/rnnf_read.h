/* rnnf_read.h: what the .rnnf readers share (docs/format.md): the bounds-checked view of a file, its blob table,
 * strings and recurrent layer records, which version 1 (rnnf_file.c, pipelines) and version 2 (rnnf_graph_file.c,
 * whole graphs) store alike. Private to the library.
 */
#ifndef RNNF_READ_H
#define RNNF_READ_H

#include <stdint.h>
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
#define DTYPE_I64 4u /* version 2: graph constants */
#define DTYPE_I32 5u
#define DTYPE_U8 6u
#define DTYPE_I8_RAW 7u
#define VERSION_MAJOR 1u
#define VERSION_MINOR 1u
#define GRAPH_MAJOR 2u
#define GRAPH_MINOR 2u
#define QUANTIZED_CONSTANTS_MINOR 1u /* 2.1: float32 graph constants stored as float16, or int8 per channel */
#define DEFAULT_MINOR 2u    /* 2.2: graph inputs with a default (the tensor record's `default` field) */
#define DEFAULT_ZEROS 1u    /* tensor `default`: 0 none, 1 zeros, 2 + t the value of constant tensor t */
#define DEFAULT_CONSTANT 2u
#define QUANTIZED_MINOR 1u /* the first minor version with float16 / int8 blobs */
/* The engine's int sizes; a file past them is valid but too large for this library. */
#define MAX_LAYER_DIM (1u << 24)
#define MAX_TABLE_DIM 0x7FFFFFFFu

typedef struct {
    uint64_t offset, nbytes;
    uint32_t ndim, dims[4];
    uint32_t dtype, scale_blob;
    int used;
} rnnf_blob_info;

typedef struct {
    const unsigned char *d;
    uint64_t size;
    const char *name;
    rnnf_error *err;
    uint32_t n_stages, n_layers, n_blobs, strings_size;
    uint64_t stages_at, layers_at, blobs_at, strings_at, table_end;
    int batch_first;
    uint32_t major, minor;
    rnnf_blob_info *blobs;
} rnnf_reader;


typedef struct {
    rnnf_layer_desc desc;
    float *owned[6];
    void *qowned[3];
    float *sowned[3];
} rnnf_layer_build;

static inline uint32_t rd16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static inline uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static inline double rdf64(const unsigned char *p)
{
    uint64_t bits = rd64(p);
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}


/* Write "NAME: WHERE: message" into the caller's rnnf_error; returns RNNF_ERR_FORMAT. */
rnnf_status rnnf_rd_fail(rnnf_reader *r, const char *where, const char *fmt, ...);
/* A (name_off, name_len) pair at `at`: inside the strings table, valid UTF-8. */
rnnf_status rnnf_rd_name(rnnf_reader *r, const char *where, const unsigned char *at);
const char *rnnf_rd_dtype_name(uint32_t dtype);
/* The blob table (n_blobs records at blobs_at): dtypes of the file's version, shapes, sizes, alignment, overlaps. */
rnnf_status rnnf_rd_blobs(rnnf_reader *r);
/* Marks blob `index` used by `field` after checking it exists, is unused and has the expected shape (0: any). */
rnnf_status rnnf_rd_claim(rnnf_reader *r, const char *where, const char *field, uint32_t index, uint32_t ndim,
                          const uint32_t *shape);
/* A float32 blob as a new array (NONE: NULL when optional); dims_out (may be NULL) receives its dims. */
rnnf_status rnnf_rd_take(rnnf_reader *r, const char *where, const char *field, uint32_t index, uint32_t ndim,
                         const uint32_t *shape, int optional, float **out, uint32_t *dims_out);
/* Layer record `index` (at layers_at); `owner` names its user in messages ("stage 1", "node 4"). */
rnnf_status rnnf_rd_layer(rnnf_reader *r, uint32_t index, const char *owner, rnnf_layer_build *lb);
void rnnf_rd_free_layer(rnnf_layer_build *lb);
/* The whole file in a new buffer. */
rnnf_status rnnf_rd_file(const char *path, unsigned char **data, size_t *size, rnnf_error *err);

/* A reader's parse of a whole file's bytes into *out (an rnnf_pipeline ** or rnnf_graph **, passed as void *). */
typedef rnnf_status (*rnnf_rd_parse)(const unsigned char *data, uint64_t size, const char *name, void *out,
                                     rnnf_error *err);
/* What the public load_file / load_buffer pairs share: clear err, read the file when `path` is given (else parse
 * `data`, named "<buffer>"), parse, free what was read. The caller checked and cleared its own `out`. */
rnnf_status rnnf_rd_load(const char *path, const void *data, size_t size, rnnf_rd_parse parse, void *out,
                         rnnf_error *err);

#endif
