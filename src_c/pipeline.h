/* pipeline.h: the pipeline object that rnnf_file.c builds from a .rnnf file and pipeline.c runs.
 *
 * Stage kinds and codes are the file's (docs/format.md). Embedding and Dense weights are owned float arrays in
 * the file's layout; a recurrent stage owns an rnnf_model (packed weights).
 */
#ifndef RNNF_PIPELINE_H
#define RNNF_PIPELINE_H

#include "internal.h"

enum { RNNF_STAGE_EMBEDDING = 1, RNNF_STAGE_RECURRENT = 2, RNNF_STAGE_DENSE = 3 };
enum { RNNF_DENSE_LINEAR = 0, RNNF_DENSE_RELU, RNNF_DENSE_TANH, RNNF_DENSE_SIGMOID, RNNF_DENSE_SOFTMAX,
       RNNF_DENSE_COUNT };

typedef struct {
    int kind;
    int in_size, out_size;  /* per step; an Embedding's in_size is 1 (one id) */
    float *table;           /* Embedding [vocab][out_size] */
    int vocab, mask_zero;
    rnnf_model *model;      /* Recurrent */
    int return_sequences, mask_zero_output;
    float *weight, *bias;   /* Dense [out_size][in_size], [out_size] or NULL */
    int activation;
} rnnf_stage;

struct rnnf_pipeline {
    int n_stages;
    rnnf_stage *stages;
    int batch_first;
    int max_width;          /* widest per-step vector between stages, input and output included */
};

#endif
