/* rnnf_graph_file.c: the .rnnf 2 reader (docs/format.md, "Version 2"): file or buffer -> rnnf_graph, with the
 * names, shapes, state loops and source the file records for its users (rnnf_graph_meta).
 *
 * It makes rnnfast/importers/rnnf_graph.py's checks in the same order with the same record and field names, so both
 * readers give one verdict on any file (tests/test_c_rnnf_graph.py). Every count is checked against the file size
 * in the header before anything is allocated, every (first, count) pair against its table and the position the
 * previous record left, every id, enum, rank and dimension program before it reaches rnnf_graph_create, which then
 * checks what the ops need. Values are assembled from little-endian bytes, so any host and alignment works.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"
#include "kernels/kernels_q.h"
#include "graph/plan.h"
#include "pool.h"
#include "rnnf_read.h"

#define HEADER2_SIZE 128u
#define N_TABLES 14
enum { T_GRAPHS, T_TENSORS, T_NODES, T_LAYERS, T_BLOBS, T_SYMS, T_DIMS, T_CHECKS, T_IO, T_LOOPS, T_INTS, T_IDS,
       T_FLOATS, T_STRINGS };
static const uint32_t RECORD_SIZE[N_TABLES] = {64, 32, 64, LAYER_SIZE, BLOB_SIZE, 16, 8, 24, 16, 8, 8, 4, 4, 1};
static const char *const RECORD_NAME[N_TABLES] = {"graph", "tensor", "node", "layer", "blob", "sym", "dim",
                                                  "check", "io", "loop", "int", "id", "float", "string"};
#define DIM_OPCODES 10
#define DIM_STACK 32
#define MAX_NODE_IO 64
#define MAX_RANK 8
/* the readers and the executor recurse over nested branch graphs: a bounded count bounds the depth */
#define MAX_GRAPHS 256

typedef struct {
    rnnf_reader r;
    uint32_t count[N_TABLES];
    uint64_t at[N_TABLES];
    uint32_t cur[N_TABLES]; /* the next record each (first, count) pair must start at */
    /* what the description points into (freed after rnnf_graph_create copied it) */
    rnnf_graph_desc *graphs;
    rnnf_tensor_desc *tensors;
    rnnf_node_desc *nodes;
    rnnf_layer_desc *layers;
    rnnf_layer_build *builds;
    int32_t *ids, *sym_input, *sym_axis, *check_a, *check_b, *check_node, *check_kind, *dim_start;
    int32_t *input_default; /* at each graph input's id slot: rnnf_graph_desc.input_default */
    int64_t *ints;
    float *floats;
    const char **check_name;
    char **owned; /* names and constants */
    size_t n_owned;
    uint32_t n_dim_starts;
} gfile;

static const unsigned char *rec(gfile *f, int table, uint32_t k)
{
    return f->r.d + f->at[table] + (uint64_t)RECORD_SIZE[table] * k;
}

static void *own(gfile *f, size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (p) f->owned[f->n_owned++] = p;
    return p;
}

/* A (name_off, name_len) pair as a new NUL-terminated string (after rnnf_rd_name checked it). */
static rnnf_status str_at(gfile *f, const char *where, const unsigned char *at, char **out)
{
    rnnf_status s = rnnf_rd_name(&f->r, where, at);
    if (s != RNNF_OK) return s;
    const uint32_t off = rd32(at), len = rd32(at + 4);
    char *p = own(f, (size_t)len + 1);
    if (!p) return RNNF_ERR_NOMEM;
    memcpy(p, f->r.d + f->r.strings_at + off, len);
    p[len] = 0;
    *out = p;
    return RNNF_OK;
}

static rnnf_status read_header(gfile *f)
{
    rnnf_reader *r = &f->r;
    const unsigned char *d = r->d;
    if (r->size < HEADER2_SIZE)
        return rnnf_rd_fail(r, "header", "the file is %llu bytes, shorter than the 128-byte header",
                            (unsigned long long)r->size);
    if (memcmp(d, "RNNF", 4) != 0) return rnnf_rd_fail(r, "header", "magic is not RNNF: not a .rnnf file");
    const uint32_t major = rd16(d + 4), minor = rd16(d + 6);
    r->major = major;
    r->minor = minor;
    if (major != GRAPH_MAJOR || minor > GRAPH_MINOR)
        return rnnf_rd_fail(r, "header", "format version %u.%u is not readable by this reader (it reads %u.0 to %u.%u "
                            "and %u.0 to %u.%u)", major, minor, VERSION_MAJOR, VERSION_MAJOR, VERSION_MINOR,
                            GRAPH_MAJOR, GRAPH_MAJOR, GRAPH_MINOR);
    if (rd32(d + 8) != HEADER2_SIZE) return rnnf_rd_fail(r, "header", "header_size %u, expected 128", rd32(d + 8));
    if (rd32(d + 12)) return rnnf_rd_fail(r, "header", "flags 0x%x has unknown bits", rd32(d + 12));
    const uint64_t file_size = rd64(d + 16);
    if (file_size != r->size)
        return rnnf_rd_fail(r, "header", "file_size says %llu bytes, the file has %llu (truncated or padded)",
                            (unsigned long long)file_size, (unsigned long long)r->size);
    for (unsigned k = 104; k < HEADER2_SIZE; k += 4)
        if (rd32(d + k)) return rnnf_rd_fail(r, "header", "reserved field is not zero");
    const uint64_t table_offset = rd64(d + 24);
    if (table_offset < HEADER2_SIZE || table_offset % 8 || table_offset > file_size)
        return rnnf_rd_fail(r, "header", "table_offset %llu must be a multiple of 8 in [128, %llu]",
                            (unsigned long long)table_offset, (unsigned long long)file_size);
    for (int t = 0; t < N_TABLES; t++) f->count[t] = rd32(d + 32 + 4 * t);
    if (!f->count[T_GRAPHS] || f->count[T_GRAPHS] > MAX_GRAPHS)
        return rnnf_rd_fail(r, "header", "n_graphs is %u, expected 1 to %u", f->count[T_GRAPHS], MAX_GRAPHS);
    /* table_offset <= file_size < 2^63 and each table < 2^40 bytes: no overflow */
    uint64_t at = table_offset;
    for (int t = 0; t < N_TABLES; t++) {
        at = (at + 7) / 8 * 8;
        f->at[t] = at;
        at += (uint64_t)RECORD_SIZE[t] * f->count[t];
    }
    if (at > file_size)
        return rnnf_rd_fail(r, "header", "tables end at %llu, past the end of the %llu-byte file",
                            (unsigned long long)at, (unsigned long long)file_size);
    r->n_blobs = f->count[T_BLOBS];
    r->blobs_at = f->at[T_BLOBS];
    r->n_layers = f->count[T_LAYERS];
    r->layers_at = f->at[T_LAYERS];
    r->strings_at = f->at[T_STRINGS];
    r->strings_size = f->count[T_STRINGS];
    r->table_end = at;
    rnnf_status s = rnnf_rd_name(r, "header", d + 88);
    return s != RNNF_OK ? s : rnnf_rd_name(r, "header", d + 96);
}

/* A (first, count) pair: it must start where the previous record of its table ended and fit in the table. */
static rnnf_status span(gfile *f, const char *where, const char *field, uint32_t first, uint32_t n, int table)
{
    if (first != f->cur[table] || (uint64_t)first + n > f->count[table])
        return rnnf_rd_fail(&f->r, where, "%s %u (+%u): expected %u, within the file's %u", field, first, n,
                            f->cur[table], f->count[table]);
    f->cur[table] += n;
    return RNNF_OK;
}

static rnnf_status ids(gfile *f, const char *where, const char *field, uint32_t first, uint32_t n,
                       uint32_t n_tensors, int absent)
{
    for (uint32_t k = 0; k < n; k++) {
        const uint32_t t = rd32(rec(f, T_IDS, first + k));
        if (t == NONE && absent) {
            f->ids[first + k] = -1;
        } else if (t >= n_tensors) {
            return rnnf_rd_fail(&f->r, where, "%s %u is tensor %u, the graph has %u", field, k, t, n_tensors);
        } else {
            f->ids[first + k] = (int32_t)t;
        }
    }
    return RNNF_OK;
}

static rnnf_status read_dim(gfile *f, uint32_t k, uint32_t g, uint32_t n_syms)
{
    char where[48];
    snprintf(where, sizeof where, "dim %u (graph %u)", k, g);
    const uint32_t first = rd32(rec(f, T_DIMS, k)), n = rd32(rec(f, T_DIMS, k) + 4);
    if (first != f->cur[T_INTS] || n < 1 || (uint64_t)first + 2 * (uint64_t)n > f->count[T_INTS])
        return rnnf_rd_fail(&f->r, where, "program at int %u (+%u instructions): expected %u, 1 or more instructions "
                            "within the file's %u ints", first, n, f->cur[T_INTS], f->count[T_INTS]);
    f->cur[T_INTS] += 2 * n;
    int depth = 0;
    for (uint32_t i = 0; i < n; i++) {
        const int64_t op = (int64_t)rd64(rec(f, T_INTS, first + 2 * i));
        const int64_t arg = (int64_t)rd64(rec(f, T_INTS, first + 2 * i + 1));
        f->ints[first + 2 * i] = op;
        f->ints[first + 2 * i + 1] = arg;
        if (op == RNNF_DIM_CONST || (op == RNNF_DIM_SYM && arg >= 0 && arg < (int64_t)n_syms)) {
            depth++;
        } else if (op >= RNNF_DIM_ADD && op < DIM_OPCODES && depth >= 2) {
            depth--;
        } else {
            return rnnf_rd_fail(&f->r, where, "instruction %u (%lld, %lld) is unknown, reads a symbol the graph lacks "
                                "(%u) or has too few operands", i, (long long)op, (long long)arg, n_syms);
        }
        if (depth > DIM_STACK)
            return rnnf_rd_fail(&f->r, where, "the program needs more than %d stack entries", DIM_STACK);
    }
    if (depth != 1) return rnnf_rd_fail(&f->r, where, "the program leaves %d values, not 1", depth);
    return RNNF_OK;
}

/* A float32 constant stored by the quantization rule (rnnfast/quantize.py quantize_channels): float16 [numel], or
 * int8 [outer, channels, inner] with float32 [channels] scales; dequantized here, at load, into float32 (the values
 * every kernel computes with: (float)q * scale, as numpy's float32 product). */
static rnnf_status read_stored_constant(gfile *f, const char *where, rnnf_blob_info *b, uint32_t index,
                                        uint64_t numel, const void **out)
{
    rnnf_reader *r = &f->r;
    const char *name = rnnf_rd_dtype_name(b->dtype);
    if (r->minor < QUANTIZED_CONSTANTS_MINOR)
        return rnnf_rd_fail(r, where, "data (blob %u) is %s: a quantized constant needs format %u.%u, the file says "
                            "%u.%u", index, name, GRAPH_MAJOR, QUANTIZED_CONSTANTS_MINOR, r->major, r->minor);
    uint64_t n = 1;
    for (uint32_t a = 0; a < b->ndim; a++) n *= b->dims[a]; /* dims < 2^32 each, 3 at most: no overflow */
    if ((b->dtype == DTYPE_F16 && b->ndim != 1) || (b->dtype == DTYPE_I8 && b->ndim != 3) || n != numel) {
        if (b->dtype == DTYPE_F16)
            return rnnf_rd_fail(r, where, "data (blob %u) is %s of %u axes, expected float16 [%llu]", index, name,
                                b->ndim, (unsigned long long)numel);
        return rnnf_rd_fail(r, where, "data (blob %u) is %s of %u axes, expected int8 [outer, channels, inner] of "
                            "%llu elements", index, name, b->ndim, (unsigned long long)numel);
    }
    float *v = own(f, (size_t)numel * sizeof(float));
    if (!v) return RNNF_ERR_NOMEM;
    const unsigned char *p = r->d + b->offset;
    if (b->dtype == DTYPE_F16) {
        for (uint64_t i = 0; i < numel; i++) v[i] = rnnf_half_to_float((uint16_t)rd16(p + 2 * i));
        *out = v;
        return RNNF_OK;
    }
    rnnf_blob_info *sb = &r->blobs[b->scale_blob]; /* rnnf_rd_blobs: another blob of the file */
    if (sb->used) return rnnf_rd_fail(r, where, "data scales reuse blob %u, already used", b->scale_blob);
    sb->used = 1;
    if (sb->dtype != DTYPE_F32 || sb->ndim != 1 || sb->dims[0] != b->dims[1])
        return rnnf_rd_fail(r, where, "data scales (blob %u) are %s of %u axes, expected float32 [%u] (one per "
                            "channel of the int8 data)", b->scale_blob, rnnf_rd_dtype_name(sb->dtype), sb->ndim,
                            b->dims[1]);
    const unsigned char *sp = r->d + sb->offset;
    for (uint32_t c = 0; c < b->dims[1]; c++) {
        const uint32_t bits = rd32(sp + 4 * (size_t)c);
        float s;
        memcpy(&s, &bits, 4);
        if (!isfinite(s))
            return rnnf_rd_fail(r, where, "data scales (blob %u) are not all finite", b->scale_blob);
    }
    const uint64_t channels = b->dims[1], inner = b->dims[2];
    for (uint64_t i = 0; i < numel; i++) {
        const uint32_t bits = rd32(sp + 4 * (size_t)(i / inner % channels));
        float s;
        memcpy(&s, &bits, 4);
        v[i] = (float)(int8_t)p[i] * s;
    }
    *out = v;
    return RNNF_OK;
}

/* A constant's elements: blob `index`, 1-D, of the tensor's dtype and numel elements, copied out little-endian. */
static rnnf_status read_constant(gfile *f, const char *where, uint32_t index, uint32_t dtype, uint64_t numel,
                                 const void **out)
{
    static const uint32_t BLOB_OF[5] = {DTYPE_F32, DTYPE_I64, DTYPE_I32, DTYPE_U8, DTYPE_I8_RAW};
    rnnf_reader *r = &f->r;
    if (index >= r->n_blobs) return rnnf_rd_fail(r, where, "data names blob %u, the file has %u", index, r->n_blobs);
    rnnf_blob_info *b = &r->blobs[index];
    if (b->used) return rnnf_rd_fail(r, where, "data reuses blob %u, already used", index);
    b->used = 1;
    if (dtype == RNNF_DT_F32 && (b->dtype == DTYPE_F16 || b->dtype == DTYPE_I8))
        return read_stored_constant(f, where, b, index, numel, out);
    const uint32_t want = BLOB_OF[dtype];
    if (b->dtype != want || b->ndim != 1 || b->dims[0] != numel)
        return rnnf_rd_fail(r, where, "data (blob %u) is %s of %u axes, expected %s [%llu]", index,
                            rnnf_rd_dtype_name(b->dtype), b->ndim, rnnf_rd_dtype_name(want), (unsigned long long)numel);
    const size_t item = rnnf_dtype_size((int)dtype);
    unsigned char *v = own(f, (size_t)numel * item);
    if (!v) return RNNF_ERR_NOMEM;
    const unsigned char *p = r->d + b->offset;
    for (uint64_t i = 0; i < numel; i++) {
        if (item == 8) {
            const uint64_t x = rd64(p + 8 * i);
            memcpy(v + 8 * i, &x, 8);
        } else if (item == 4) {
            const uint32_t x = rd32(p + 4 * i);
            memcpy(v + 4 * i, &x, 4);
        } else {
            if (dtype == RNNF_DT_U8 && p[i] > 1)
                return rnnf_rd_fail(r, where, "data (blob %u): a bool constant holds a value other than 0 and 1",
                                    index);
            v[i] = p[i];
        }
    }
    *out = v;
    return RNNF_OK;
}

static rnnf_status read_tensor(gfile *f, uint32_t k, uint32_t local, uint32_t g, uint32_t n_tensors, uint32_t d0,
                               uint32_t n_dims, const int32_t *inputs, uint32_t n_inputs)
{
    char where[48];
    snprintf(where, sizeof where, "tensor %u (graph %u)", k, g);
    const unsigned char *at = rec(f, T_TENSORS, k);
    const uint32_t dtype = rd32(at), rank = rd32(at + 4), dims_at = rd32(at + 8), alias_of = rd32(at + 12);
    const uint32_t blob = rd32(at + 16);
    rnnf_tensor_desc *td = &f->tensors[k];
    char *name;
    rnnf_status s = str_at(f, where, at + 24, &name);
    if (s != RNNF_OK) return s;
    if (dtype > RNNF_DT_I8)
        return rnnf_rd_fail(&f->r, where, "dtype %u is unknown (0 float32, 1 int64, 2 int32, 3 bool, 4 int8)", dtype);
    if (rank > MAX_RANK || (uint64_t)dims_at + rank > n_dims)
        return rnnf_rd_fail(&f->r, where, "rank %u and dims_at %u: rank at most %d, dims within the graph's %u", rank,
                            dims_at, MAX_RANK, n_dims);
    const uint32_t def = rd32(at + 20);
    if (def) {
        if (f->r.minor < DEFAULT_MINOR)
            return rnnf_rd_fail(&f->r, where, "default %u needs format %u.%u", def, GRAPH_MAJOR, DEFAULT_MINOR);
        int is_input = 0;
        for (uint32_t i = 0; i < n_inputs; i++) is_input |= (uint32_t)inputs[i] == local;
        if (g != 0 || !is_input) return rnnf_rd_fail(&f->r, where, "default %u: only an input of graph 0 has one", def);
        if (def >= DEFAULT_CONSTANT && (def - DEFAULT_CONSTANT >= n_tensors || def - DEFAULT_CONSTANT == local))
            return rnnf_rd_fail(&f->r, where, "default %u: tensor %u is not another of the graph's %u tensors", def,
                                def - DEFAULT_CONSTANT, n_tensors);
    }
    if (alias_of != NONE && (alias_of >= n_tensors || alias_of == local))
        return rnnf_rd_fail(&f->r, where, "alias_of %u: another of the graph's %u tensors, or NONE", alias_of,
                            n_tensors);
    if (blob != NONE && alias_of != NONE)
        return rnnf_rd_fail(&f->r, where, "both a view (alias_of) and a constant (data blob)");
    td->dtype = (int)dtype;
    td->rank = (int)rank;
    td->dims_at = (int)dims_at;
    td->alias_of = alias_of == NONE ? -1 : (int)alias_of;
    td->name = name;
    td->data = NULL;
    if (blob == NONE) return RNNF_OK;
    uint64_t numel = 1;
    for (uint32_t a = 0; a < rank; a++) {
        const unsigned char *dim = rec(f, T_DIMS, d0 + dims_at + a);
        const uint32_t first = rd32(dim), n = rd32(dim + 4);
        const int64_t op = (int64_t)rd64(rec(f, T_INTS, first)), value = (int64_t)rd64(rec(f, T_INTS, first + 1));
        if (n != 1 || op != RNNF_DIM_CONST || value < 0)
            return rnnf_rd_fail(&f->r, where, "a constant's dim %u must be one CONST instruction of a size >= 0", a);
        /* numel stops at file size + 1: no overflow, and no blob that big fits in the file */
        if (numel && (uint64_t)value > (f->r.size + 1) / numel) numel = f->r.size + 1;
        else numel *= (uint64_t)value;
    }
    return read_constant(f, where, blob, dtype, numel, &td->data);
}

static rnnf_status read_node(gfile *f, uint32_t k, uint32_t g, uint32_t n_tensors)
{
    char where[48];
    snprintf(where, sizeof where, "node %u (graph %u)", k, g);
    const unsigned char *at = rec(f, T_NODES, k);
    const uint32_t op = rd32(at), i0 = rd32(at + 16), ni = rd32(at + 20), o0 = rd32(at + 24), no = rd32(at + 28);
    const uint32_t a0 = rd32(at + 32), na = rd32(at + 36), f0 = rd32(at + 40), nf = rd32(at + 44);
    const uint32_t l0 = rd32(at + 48), nl = rd32(at + 52);
    rnnf_node_desc *nd = &f->nodes[k];
    char *name;
    rnnf_status s = str_at(f, where, at + 8, &name);
    if (s != RNNF_OK) return s;
    if (op >= RNNF_OP_COUNT || op == RNNF_OP_HOST)
        return rnnf_rd_fail(&f->r, where, "op %u is unknown or runs outside C (0..%d but %d)", op, RNNF_OP_COUNT - 1,
                            RNNF_OP_HOST);
    if (rd32(at + 4) || rd64(at + 56)) return rnnf_rd_fail(&f->r, where, "reserved field is not zero");
    if (ni > MAX_NODE_IO || no < 1 || no > MAX_NODE_IO)
        return rnnf_rd_fail(&f->r, where, "%u inputs and %u outputs (0..%d and 1..%d)", ni, no, MAX_NODE_IO,
                            MAX_NODE_IO);
    if ((s = span(f, where, "first_in", i0, ni, T_IDS)) != RNNF_OK ||
        (s = span(f, where, "first_out", o0, no, T_IDS)) != RNNF_OK ||
        (s = span(f, where, "first_iattr", a0, na, T_INTS)) != RNNF_OK ||
        (s = span(f, where, "first_fattr", f0, nf, T_FLOATS)) != RNNF_OK)
        return s;
    if ((op == RNNF_OP_RECURRENT) != (nl > 0) || (nl == 0 && l0 != 0))
        return rnnf_rd_fail(&f->r, where, "%u layers: a recurrent node has 1 or more, any other none (first_layer 0)",
                            nl);
    if (nl && (s = span(f, where, "first_layer", l0, nl, T_LAYERS)) != RNNF_OK) return s;
    if ((s = ids(f, where, "input", i0, ni, n_tensors, 1)) != RNNF_OK ||
        (s = ids(f, where, "output", o0, no, n_tensors, 1)) != RNNF_OK)
        return s;
    for (uint32_t i = 0; i < na; i++) f->ints[a0 + i] = (int64_t)rd64(rec(f, T_INTS, a0 + i));
    for (uint32_t i = 0; i < nf; i++) {
        const uint32_t bits = rd32(rec(f, T_FLOATS, f0 + i));
        memcpy(&f->floats[f0 + i], &bits, 4);
    }
    char owner[32];
    snprintf(owner, sizeof owner, "node %u", k);
    for (uint32_t j = 0; j < nl; j++) {
        if ((s = rnnf_rd_layer(&f->r, l0 + j, owner, &f->builds[l0 + j])) != RNNF_OK) return s;
        f->layers[l0 + j] = f->builds[l0 + j].desc;
        if (j) {
            const rnnf_layer_desc *prev = &f->layers[l0 + j - 1];
            const int gives = prev->n_dirs * (prev->proj_size ? prev->proj_size : prev->hidden_size);
            if (f->layers[l0 + j].input_size != gives) {
                char w[48];
                snprintf(w, sizeof w, "layer %u (node %u)", l0 + j, k);
                return rnnf_rd_fail(&f->r, w, "input_size %d, the layer before gives %d",
                                    f->layers[l0 + j].input_size, gives);
            }
        }
    }
    nd->op = (int)op;
    nd->name = name;
    nd->n_in = (int)ni;
    nd->n_out = (int)no;
    nd->in = f->ids + i0;
    nd->out = f->ids + o0;
    nd->n_iattr = (int)na;
    nd->n_fattr = (int)nf;
    nd->iattr = f->ints + a0;
    nd->fattr = f->floats + f0;
    nd->layers = nl ? f->layers + l0 : NULL;
    nd->n_layers = (int)nl;
    return RNNF_OK;
}

static rnnf_status read_graph(gfile *f, uint32_t g)
{
    char where[32];
    snprintf(where, sizeof where, "graph %u", g);
    const unsigned char *at = rec(f, T_GRAPHS, g);
    uint32_t v[16];
    for (int k = 0; k < 16; k++) v[k] = rd32(at + 4 * k);
    const uint32_t t0 = v[0], nt = v[1], n0 = v[2], nn = v[3], i0 = v[4], ni = v[5], o0 = v[6], no = v[7];
    const uint32_t s0 = v[8], ns = v[9], d0 = v[10], nd = v[11], c0 = v[12], nc = v[13], g0 = v[14], ng = v[15];
    rnnf_status s;
    if ((s = span(f, where, "first_tensor", t0, nt, T_TENSORS)) != RNNF_OK ||
        (s = span(f, where, "first_node", n0, nn, T_NODES)) != RNNF_OK ||
        (s = span(f, where, "first_input", i0, ni, T_IDS)) != RNNF_OK ||
        (s = span(f, where, "first_output", o0, no, T_IDS)) != RNNF_OK ||
        (s = span(f, where, "first_sym", s0, ns, T_SYMS)) != RNNF_OK ||
        (s = span(f, where, "first_dim", d0, nd, T_DIMS)) != RNNF_OK ||
        (s = span(f, where, "first_check", c0, nc, T_CHECKS)) != RNNF_OK)
        return s;
    if (g0 != f->cur[T_GRAPHS] || (uint64_t)g0 + ng > f->count[T_GRAPHS] || (ng && g0 <= g))
        return rnnf_rd_fail(&f->r, where, "first_subgraph %u (+%u): expected %u, within the file's %u", g0, ng,
                            f->cur[T_GRAPHS], f->count[T_GRAPHS]);
    f->cur[T_GRAPHS] += ng;
    if (no < 1) return rnnf_rd_fail(&f->r, where, "n_outputs is 0");
    if ((s = ids(f, where, "input", i0, ni, nt, 0)) != RNNF_OK || (s = ids(f, where, "output", o0, no, nt,
                 0)) != RNNF_OK)
        return s;
    /* this graph's programs lie consecutively in the ints, from the first dim's */
    int32_t *starts = f->dim_start + f->n_dim_starts;
    f->n_dim_starts += nd + 1;
    const uint32_t prog_at = f->cur[T_INTS];
    starts[0] = 0;
    for (uint32_t k = 0; k < nd; k++) {
        if ((s = read_dim(f, d0 + k, g, ns)) != RNNF_OK) return s;
        starts[k + 1] = (int32_t)((f->cur[T_INTS] - prog_at) / 2);
    }
    for (uint32_t k = 0; k < nt; k++)
        if ((s = read_tensor(f, t0 + k, k, g, nt, d0, nd, f->ids + i0, ni)) != RNNF_OK) return s;
    for (uint32_t i = 0; i < ni; i++) { /* an input's default: none, zeros, or a constant of its dtype and rank */
        const uint32_t t = (uint32_t)f->ids[i0 + i], def = rd32(rec(f, T_TENSORS, t0 + t) + 20);
        f->input_default[i0 + i] = def == DEFAULT_ZEROS ? RNNF_INPUT_ZEROS : RNNF_INPUT_REQUIRED;
        if (def < DEFAULT_CONSTANT) continue;
        const uint32_t c = def - DEFAULT_CONSTANT;
        const rnnf_tensor_desc *tc = &f->tensors[t0 + c], *ti = &f->tensors[t0 + t];
        if (!tc->data || tc->dtype != ti->dtype || tc->rank != ti->rank) {
            char w[48];
            snprintf(w, sizeof w, "tensor %u (graph %u)", t0 + t, g);
            return rnnf_rd_fail(&f->r, w, "default %u: tensor %u is not a constant of the input's dtype and rank",
                                def, c);
        }
        f->input_default[i0 + i] = (int32_t)c;
    }
    for (uint32_t k = s0; k < s0 + ns; k++) {
        char w[48];
        snprintf(w, sizeof w, "symbol %u (graph %u)", k, g);
        const unsigned char *sr = rec(f, T_SYMS, k);
        const uint32_t inp = rd32(sr), axis = rd32(sr + 4);
        if (inp >= ni) return rnnf_rd_fail(&f->r, w, "input %u, the graph has %u inputs", inp, ni);
        const int rank = f->tensors[t0 + (uint32_t)f->ids[i0 + inp]].rank;
        if (axis >= (uint32_t)rank)
            return rnnf_rd_fail(&f->r, w, "axis %u of input %u, which has rank %d", axis, inp, rank);
        if ((s = rnnf_rd_name(&f->r, w, sr + 8)) != RNNF_OK) return s;
        f->sym_input[k] = (int32_t)inp;
        f->sym_axis[k] = (int32_t)axis;
    }
    for (uint32_t k = 0; k < nn; k++)
        if ((s = read_node(f, n0 + k, g, nt)) != RNNF_OK) return s;
    for (uint32_t k = c0; k < c0 + nc; k++) {
        char w[48];
        snprintf(w, sizeof w, "check %u (graph %u)", k, g);
        const unsigned char *cr = rec(f, T_CHECKS, k);
        const uint32_t a = rd32(cr), b = rd32(cr + 4), node = rd32(cr + 8), kind = rd32(cr + 12);
        if (a >= nd || b >= nd || node >= nn || kind > 1)
            return rnnf_rd_fail(&f->r, w, "dims %u and %u, node %u and kind %u: the graph has %u dims and %u nodes; "
                                "kinds are 0 and 1", a, b, node, kind, nd, nn);
        char *label;
        if ((s = str_at(f, w, cr + 16, &label)) != RNNF_OK) return s;
        f->check_a[k] = (int32_t)a;
        f->check_b[k] = (int32_t)b;
        f->check_node[k] = (int32_t)node;
        f->check_kind[k] = (int32_t)kind;
        f->check_name[k] = label[0] ? label : NULL;
    }
    rnnf_graph_desc *gd = &f->graphs[g];
    gd->n_tensors = (int)nt;
    gd->tensors = f->tensors + t0;
    gd->n_nodes = (int)nn;
    gd->nodes = f->nodes + n0;
    gd->n_inputs = (int)ni;
    gd->n_outputs = (int)no;
    gd->inputs = f->ids + i0;
    gd->input_default = f->input_default + i0;
    gd->outputs = f->ids + o0;
    gd->n_syms = (int)ns;
    gd->sym_input = f->sym_input + s0;
    gd->sym_axis = f->sym_axis + s0;
    gd->n_dims = (int)nd;
    gd->dim_start = starts;
    gd->prog = f->ints + prog_at;
    gd->n_checks = (int)nc;
    gd->check_a = f->check_a + c0;
    gd->check_b = f->check_b + c0;
    gd->check_node = f->check_node + c0;
    gd->check_kind = f->check_kind + c0;
    gd->check_name = f->check_name + c0;
    gd->n_subgraphs = (int)ng;
    gd->subgraphs = f->graphs + g0;
    return RNNF_OK;
}

/* The names, shapes and state loops of graph 0's inputs and outputs. */
static rnnf_status read_interface(gfile *f, rnnf_graph_meta *m)
{
    const rnnf_graph_desc *g = &f->graphs[0];
    const uint32_t n_in = (uint32_t)g->n_inputs, n_out = (uint32_t)g->n_outputs;
    rnnf_status s;
    if (f->count[T_IO] != n_in + n_out)
        return rnnf_rd_fail(&f->r, "io", "%u records, graph 0 has %u inputs and %u outputs", f->count[T_IO], n_in,
                            n_out);
    /* heap blocks of pool.h, as graph/info.c frees them */
    m->names = rnnf_mem_alloc(NULL, ((size_t)n_in + n_out + 1) * sizeof(char *));
    m->shapes = rnnf_mem_alloc(NULL, ((size_t)n_in + n_out + 1) * sizeof(char *));
    m->loop_in = rnnf_mem_alloc(NULL, ((size_t)f->count[T_LOOPS] + 1) * sizeof(int32_t));
    m->loop_out = rnnf_mem_alloc(NULL, ((size_t)f->count[T_LOOPS] + 1) * sizeof(int32_t));
    if (!m->names || !m->shapes || !m->loop_in || !m->loop_out) return RNNF_ERR_NOMEM;
    for (uint32_t k = 0; k < n_in + n_out; k++) {
        char w[24];
        snprintf(w, sizeof w, "io %u", k);
        const unsigned char *at = rec(f, T_IO, k);
        if ((s = rnnf_rd_name(&f->r, w, at)) != RNNF_OK) return s;
        const uint32_t off = rd32(at), len = rd32(at + 4);
        for (uint32_t j = k < n_in ? 0 : n_in; j < k; j++)
            if (strlen(m->names[j]) == len && !memcmp(m->names[j], f->r.d + f->r.strings_at + off, len))
                return rnnf_rd_fail(&f->r, w, "name '%s' repeats", m->names[j]);
        /* an output may pass an input through under its name, but then it is that input's tensor */
        for (uint32_t j = 0; k >= n_in && j < n_in; j++)
            if (strlen(m->names[j]) == len && !memcmp(m->names[j], f->r.d + f->r.strings_at + off, len) &&
                g->outputs[k - n_in] != g->inputs[j])
                return rnnf_rd_fail(&f->r, w, "output name '%s' is an input's, but names another tensor",
                                    m->names[j]);
        for (int which = 0; which < 2; which++) {
            if ((s = rnnf_rd_name(&f->r, w, at + 8 * which)) != RNNF_OK) return s;
            const uint32_t o = rd32(at + 8 * which), l = rd32(at + 8 * which + 4);
            char *p = rnnf_mem_alloc(NULL, (size_t)l + 1);
            if (!p) return RNNF_ERR_NOMEM;
            memcpy(p, f->r.d + f->r.strings_at + o, l);
            p[l] = 0;
            (which ? m->shapes : m->names)[k] = p;
        }
    }
    for (uint32_t k = 0; k < f->count[T_LOOPS]; k++) {
        char w[24];
        snprintf(w, sizeof w, "loop %u", k);
        const uint32_t i = rd32(rec(f, T_LOOPS, k)), o = rd32(rec(f, T_LOOPS, k) + 4);
        int seen = 0;
        for (uint32_t j = 0; j < k; j++) seen |= (uint32_t)m->loop_in[j] == i || (uint32_t)m->loop_out[j] == o;
        if (i >= n_in || o >= n_out || seen)
            return rnnf_rd_fail(&f->r, w, "input %u -> output %u: each of the %u inputs and %u outputs at most once", i,
                                o, n_in, n_out);
        const rnnf_tensor_desc *ti = &g->tensors[g->inputs[i]], *to = &g->tensors[g->outputs[o]];
        if (ti->dtype != to->dtype || ti->rank != to->rank)
            return rnnf_rd_fail(&f->r, w, "input %u (dtype %d, rank %d) and output %u (dtype %d, rank %d) differ", i,
                                ti->dtype, ti->rank, o, to->dtype, to->rank);
        m->loop_in[k] = (int32_t)i;
        m->loop_out[k] = (int32_t)o;
        m->n_loops = (int)k + 1;
    }
    return RNNF_OK;
}

static rnnf_status read_graphs(gfile *f)
{
    const uint32_t *c = f->count;
    /* every count was checked against the file size in the header: these sizes are bounded by it */
    f->graphs = calloc(c[T_GRAPHS], sizeof(rnnf_graph_desc));
    f->tensors = calloc((size_t)c[T_TENSORS] + 1, sizeof(rnnf_tensor_desc));
    f->nodes = calloc((size_t)c[T_NODES] + 1, sizeof(rnnf_node_desc));
    f->layers = calloc((size_t)c[T_LAYERS] + 1, sizeof(rnnf_layer_desc));
    f->builds = calloc((size_t)c[T_LAYERS] + 1, sizeof(rnnf_layer_build));
    f->ids = calloc((size_t)c[T_IDS] + 1, sizeof(int32_t));
    f->input_default = calloc((size_t)c[T_IDS] + 1, sizeof(int32_t));
    f->ints = calloc((size_t)c[T_INTS] + 1, sizeof(int64_t));
    f->floats = calloc((size_t)c[T_FLOATS] + 1, sizeof(float));
    f->sym_input = calloc((size_t)c[T_SYMS] + 1, sizeof(int32_t));
    f->sym_axis = calloc((size_t)c[T_SYMS] + 1, sizeof(int32_t));
    f->dim_start = calloc((size_t)c[T_DIMS] + c[T_GRAPHS], sizeof(int32_t));
    f->check_a = calloc((size_t)c[T_CHECKS] + 1, sizeof(int32_t));
    f->check_b = calloc((size_t)c[T_CHECKS] + 1, sizeof(int32_t));
    f->check_node = calloc((size_t)c[T_CHECKS] + 1, sizeof(int32_t));
    f->check_kind = calloc((size_t)c[T_CHECKS] + 1, sizeof(int32_t));
    f->check_name = calloc((size_t)c[T_CHECKS] + 1, sizeof(char *));
    /* a name per tensor, node and check, and a constant per tensor */
    f->owned = calloc(2 * (size_t)c[T_TENSORS] + c[T_NODES] + c[T_CHECKS] + 1, sizeof(char *));
    if (!f->graphs || !f->tensors || !f->nodes || !f->layers || !f->builds || !f->ids || !f->input_default ||
        !f->ints || !f->floats ||
        !f->sym_input || !f->sym_axis || !f->dim_start || !f->check_a || !f->check_b || !f->check_node ||
        !f->check_kind || !f->check_name || !f->owned)
        return RNNF_ERR_NOMEM;
    f->cur[T_GRAPHS] = 1;
    rnnf_status s;
    for (uint32_t g = 0; g < c[T_GRAPHS]; g++)
        if ((s = read_graph(f, g)) != RNNF_OK) return s;
    static const int USED[] = {T_GRAPHS, T_TENSORS, T_NODES, T_SYMS, T_DIMS, T_CHECKS, T_IDS, T_INTS, T_FLOATS,
                               T_LAYERS};
    for (unsigned k = 0; k < sizeof USED / sizeof USED[0]; k++)
        if (f->cur[USED[k]] != c[USED[k]])
            return rnnf_rd_fail(&f->r, "graphs", "use %u of the %u %s records", f->cur[USED[k]], c[USED[k]],
                                RECORD_NAME[USED[k]]);
    for (uint32_t i = 0; i < f->r.n_blobs; i++)
        if (!f->r.blobs[i].used) {
            char w[32];
            snprintf(w, sizeof w, "blob %u", i);
            return rnnf_rd_fail(&f->r, w, "not used by any record");
        }
    return RNNF_OK;
}

static void free_gfile(gfile *f)
{
    if (f->builds)
        for (uint32_t k = 0; k < f->count[T_LAYERS]; k++) rnnf_rd_free_layer(&f->builds[k]);
    for (size_t k = 0; k < f->n_owned; k++) free(f->owned[k]);
    void *arrays[] = {f->graphs, f->tensors, f->nodes, f->layers, f->builds, f->ids, f->input_default, f->ints,
                      f->floats,
                      f->sym_input, f->sym_axis, f->dim_start, f->check_a, f->check_b, f->check_node, f->check_kind,
                      (void *)f->check_name, f->owned, f->r.blobs};
    for (unsigned k = 0; k < sizeof arrays / sizeof arrays[0]; k++) free(arrays[k]);
}

static rnnf_status load(const unsigned char *data, uint64_t size, const char *name, rnnf_graph **out,
                        rnnf_error *err)
{
    gfile f;
    memset(&f, 0, sizeof f);
    f.r.d = data;
    f.r.size = size;
    f.r.name = name;
    f.r.err = err;
    rnnf_graph_meta *meta = rnnf_mem_alloc(NULL, sizeof *meta);
    rnnf_status s = meta ? RNNF_OK : RNNF_ERR_NOMEM;
    if (s == RNNF_OK && size >= 8 && !memcmp(data, "RNNF", 4) && rd16(data + 4) == VERSION_MAJOR) {
        if (err)
            snprintf(err->message, RNNF_ERROR_MESSAGE_SIZE, "%s: a .rnnf 1 file holds a pipeline: load it with "
                     "rnnf_pipeline_load_file or rnnf_pipeline_load_buffer", name);
        s = RNNF_ERR_UNSUPPORTED;
    }
    if (s == RNNF_OK) s = read_header(&f);
    if (s == RNNF_OK) s = rnnf_rd_blobs(&f.r);
    if (s == RNNF_OK) s = read_graphs(&f);
    if (s == RNNF_OK) s = read_interface(&f, meta);
    if (s == RNNF_OK) {
        const unsigned char *d = f.r.d;
        meta->source = rnnf_mem_alloc(NULL, (size_t)rd32(d + 92) + 1);
        if (!meta->source) s = RNNF_ERR_NOMEM;
        else {
            memcpy(meta->source, d + f.r.strings_at + rd32(d + 88), rd32(d + 92));
            meta->source[rd32(d + 92)] = 0;
        }
    }
    rnnf_graph *g = NULL;
    if (s == RNNF_OK) {
        rnnf_error inner;
        inner.message[0] = 0;
        s = rnnf_graph_create(&f.graphs[0], &g, &inner);
        if (s != RNNF_OK && s != RNNF_ERR_NOMEM && err)
            snprintf(err->message, RNNF_ERROR_MESSAGE_SIZE, "%s: graph: %s", name,
                     inner.message[0] ? inner.message : rnnf_status_str(s));
    }
    free_gfile(&f);
    if (s != RNNF_OK) {
        if (s == RNNF_ERR_NOMEM && err) snprintf(err->message, RNNF_ERROR_MESSAGE_SIZE, "%s: out of memory", name);
        rnnf_graph_meta_free(meta);
        return s;
    }
    g->meta = meta;
    *out = g;
    return RNNF_OK;
}

static rnnf_status parse_graph(const unsigned char *data, uint64_t size, const char *name, void *out,
                               rnnf_error *err)
{
    return load(data, size, name, (rnnf_graph **)out, err);
}

rnnf_status rnnf_graph_load_buffer(const void *data, size_t size, rnnf_graph **out, rnnf_error *err)
{
    if (!out) return RNNF_ERR_ARG;
    *out = NULL;
    return rnnf_rd_load(NULL, data, size, parse_graph, out, err);
}

rnnf_status rnnf_graph_load_file(const char *path, rnnf_graph **out, rnnf_error *err)
{
    if (!out) return RNNF_ERR_ARG;
    *out = NULL;
    return rnnf_rd_load(path, NULL, 0, parse_graph, out, err); /* a NULL path is an argument error */
}
