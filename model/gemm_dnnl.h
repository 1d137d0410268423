/* gemm_dnnl.h — internal to model/gemm.c: the oneDNN engines (bf16, int8).
 * See gemm.h for the design; nothing outside gemm.c includes this. */
#ifndef DIFFU_GEMM_DNNL_H
#define DIFFU_GEMM_DNNL_H

#include "gemm.h"

typedef struct diffu_dnnl diffu_dnnl;

int diffu_dnnl_create(diffu_precision p, int n_threads, int max_rows, int max_k, diffu_dnnl **out, diffu_err *err);
void diffu_dnnl_free(diffu_dnnl *d);
int diffu_dnnl_pack(diffu_dnnl *d, diffu_mat *w, diffu_err *err);
void diffu_dnnl_run(diffu_dnnl *d, diffu_pool *pool, const diffu_matmul_job *jobs, int n_jobs);
double diffu_dnnl_convert_seconds(diffu_dnnl *d, int reset);
const char *diffu_dnnl_describe(const diffu_dnnl *d);
size_t diffu_dnnl_weight_bytes(const diffu_dnnl *d);
size_t diffu_dnnl_scratch_bytes(const diffu_dnnl *d);

#endif
