/* pool.h: where the load-time memory of the engine (models, states) and of the graph executor comes from.
 *
 * NULL pool: the heap, as the library always did. A pool: one caller-provided block, handed out by a bump pointer
 * and never given back (export-c places it inside the generated state struct, so the exported code needs no
 * malloc and a run never allocates). Built with RNNF_NO_HEAP, the heap path is compiled out: no malloc, calloc or
 * free is referenced at all, and anything without a pool fails with out-of-memory.
 */
#ifndef RNNF_POOL_H
#define RNNF_POOL_H

#include <stddef.h>

typedef struct rnnf_pool {
    unsigned char *base; /* 64-byte aligned */
    size_t size, used;
    /* set when a request did not fit: the bytes it asked for, so a caller sizing a block can tell the pool running
     * out from other out-of-memory failures (a size over a limit, the heap) and grow it by what was missing */
    size_t short_by;
} rnnf_pool;

/* 64-byte aligned, zero-filled; NULL when out of memory. Every block, pool or heap, is released by rnnf_mem_free. */
void *rnnf_mem_alloc(rnnf_pool *pool, size_t bytes);
/* The same, not zero-filled when it comes from the heap (the arena, scratch). */
void *rnnf_mem_alloc_raw(rnnf_pool *pool, size_t bytes);
/* Heap blocks only: a pool's blocks live as long as the pool (rnnf_pool_mark / rnnf_pool_release for temporaries). */
void rnnf_mem_free(rnnf_pool *pool, void *p);
static inline size_t rnnf_pool_mark(const rnnf_pool *pool) { return pool ? pool->used : 0; }
static inline void rnnf_pool_release(rnnf_pool *pool, size_t mark)
{
    if (pool) pool->used = mark;
}

#endif
