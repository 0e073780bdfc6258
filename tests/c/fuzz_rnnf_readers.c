/* fuzz_rnnf_readers.c: the C library's .rnnf readers (version 1 pipelines and version 2 graphs) as a fuzz target.
 *
 * With clang it is a libFuzzer target (docs/fuzzing.md):
 *     clang -fsanitize=fuzzer,address,undefined -Iinclude tests/c/fuzz_rnnf_readers.c src_c/build/librnnfast.a \
 *         -fopenmp -lm -o fuzz_rnnf && ./fuzz_rnnf corpus/
 * gcc has no libFuzzer, so -DRNNF_REPLAY adds a main that feeds each file named on the command line through the same
 * entry point once: the seed corpus and every finding then replay under ASan/UBSan in the test suite
 * (tests/test_c_fuzz_target.py). A reader may refuse any input; it must never read out of bounds or leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "rnnfast/rnnf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rnnf_error err;
    rnnf_graph *graph = NULL;
    if (rnnf_graph_load_buffer(data, size, &graph, &err) == RNNF_OK) rnnf_graph_free(graph);
    rnnf_pipeline *pipeline = NULL;
    if (rnnf_pipeline_load_buffer(data, size, &pipeline, &err) == RNNF_OK) rnnf_pipeline_free(pipeline);
    return 0;
}

#ifdef RNNF_REPLAY
int main(int argc, char **argv)
{
    int replayed = 0;
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            fprintf(stderr, "cannot open %s\n", argv[i]);
            return 2;
        }
        uint8_t *buf = NULL;
        size_t size = 0, cap = 0, got;
        do {
            if (size == cap) {
                cap = cap ? 2 * cap : 4096;
                uint8_t *grown = realloc(buf, cap);
                if (!grown) {
                    free(buf);
                    fclose(f);
                    return 2;
                }
                buf = grown;
            }
            got = fread(buf + size, 1, cap - size, f);
            size += got;
        } while (got > 0);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, size);
        free(buf);
        replayed++;
    }
    printf("replayed %d inputs\n", replayed);
    return 0;
}
#endif
