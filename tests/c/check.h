/* check.h: what every C test program here shares: the CHECK macro that counts failures instead of stopping at the
 * first one (a driver then sees every broken case in one run) and reading a whole file into memory (the programs
 * load models from a buffer as well as from a path). Header-only: each program is one translation unit. */
#ifndef RNNF_TESTS_CHECK_H
#define RNNF_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>

static int failures = 0;

#define CHECK(cond, what)                                                     \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "FAIL %s (line %d)\n", what, __LINE__);           \
            failures++;                                                       \
        }                                                                     \
    } while (0)

/* The file's bytes (NULL when it cannot be read); *size gets its length. */
static inline void *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

#endif
