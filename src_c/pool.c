/* pool.c: the heap-or-pool allocation of pool.h (64-byte alignment everywhere: panels are read with aligned loads). */
#include <stdint.h>
#include <string.h>
#ifndef RNNF_NO_HEAP
#include <stdlib.h>
#endif

#include "pool.h"

#define ALIGN ((size_t)64)

void *rnnf_mem_alloc_raw(rnnf_pool *pool, size_t bytes)
{
    if (bytes == 0) bytes = ALIGN;
    if (bytes > SIZE_MAX - (ALIGN - 1)) return NULL;
    bytes = (bytes + ALIGN - 1) & ~(ALIGN - 1);
    if (pool) {
        if (!pool->base || bytes > pool->size || pool->used > pool->size - bytes) {
            pool->short_by = bytes;
            return NULL;
        }
        void *p = pool->base + pool->used;
        pool->used += bytes;
        return p;
    }
#ifdef RNNF_NO_HEAP
    return NULL;
#else
    void *p = NULL;
    return posix_memalign(&p, ALIGN, bytes) == 0 ? p : NULL;
#endif
}

void *rnnf_mem_alloc(rnnf_pool *pool, size_t bytes)
{
    void *p = rnnf_mem_alloc_raw(pool, bytes);
    if (p) memset(p, 0, bytes ? bytes : 1);
    return p;
}

void rnnf_mem_free(rnnf_pool *pool, void *p)
{
#ifdef RNNF_NO_HEAP
    (void)pool;
    (void)p;
#else
    if (!pool) free(p);
#endif
}
