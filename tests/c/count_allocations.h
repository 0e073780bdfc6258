/* count_allocations.h: counts every allocation the program and librnnfast.a make, for the tests that prove a step
 * allocates nothing. The program is linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,
 * --wrap=posix_memalign,--wrap=aligned_alloc, so these wrappers see each call (libgomp's own allocations, inside
 * its shared library, do not pass here: that is OpenMP's business, not ours). Include it in one file only. */
#ifndef RNNF_TESTS_COUNT_ALLOCATIONS_H
#define RNNF_TESTS_COUNT_ALLOCATIONS_H

#include <stdlib.h>

static long allocations = 0;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
int __real_posix_memalign(void **p, size_t align, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
int __wrap_posix_memalign(void **p, size_t align, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);

void *__wrap_malloc(size_t n) { allocations++; return __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size) { allocations++; return __real_calloc(n, size); }
void *__wrap_realloc(void *p, size_t n) { allocations++; return __real_realloc(p, n); }
int __wrap_posix_memalign(void **p, size_t align, size_t n)
{
    allocations++;
    return __real_posix_memalign(p, align, n);
}
void *__wrap_aligned_alloc(size_t align, size_t n) { allocations++; return __real_aligned_alloc(align, n); }

#endif
