/* race_kernel_table.c: eight threads ask for the kernel table at once, before anything chose it. Built with
 * dispatch.c alone under -fsanitize=thread by tests/test_c_tsan.py: the first-use write of the table pointer must
 * not race the other threads' reads. The tables here are stand-ins; only their names are read. */
#include <pthread.h>
#include <stdio.h>

#include "kernels/kernels.h"

const rnnf_kernels rnnf_kernels_ref = {.name = "ref"};
#ifdef RNNF_HAVE_AVX2
const rnnf_kernels rnnf_kernels_avx2 = {.name = "avx2"};
#endif

static void *ask(void *out)
{
    *(const char **)out = rnnf_kernels_get()->name;
    return NULL;
}

int main(void)
{
    pthread_t threads[8];
    const char *names[8];
    for (int i = 0; i < 8; i++) pthread_create(&threads[i], NULL, ask, &names[i]);
    for (int i = 0; i < 8; i++) pthread_join(threads[i], NULL);
    for (int i = 1; i < 8; i++)
        if (names[i] != names[0]) return 1;
    printf("%s\n", names[0]);
    return 0;
}
