/* sched_dump.c — test helper for check_schedule.py: for each line "G STEPS EPS"
 * on stdin, run the policy (alg entropy, a fake sampler preferring the left)
 * and print the number of tokens committed at each step, space-separated. */
#include <stdio.h>
#include <stdlib.h>

#include "denoise.h"

int main(void) {
    int G, steps;
    double eps;
    diffu_sample *smp = NULL;
    int cap = 0;
    while (scanf("%d %d %lf", &G, &steps, &eps) == 3) {
        diffu_denoise_params p;
        diffu_denoise_params_default(&p);
        p.max_new_tokens = G;
        p.steps = steps;
        p.eps = eps;
        p.mask_id = 1;
        int32_t prompt = 0;
        diffu_err err;
        diffu_denoise *d = diffu_denoise_create(&p, 2, &prompt, 1, 0, 0, &err);
        if (!d) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        if (G > cap) {
            cap = G;
            smp = realloc(smp, (size_t)cap * sizeof *smp);
        }
        while (!diffu_denoise_done(d)) {
            int n = diffu_denoise_prepare(d);
            const int32_t *pos = diffu_denoise_positions(d);
            for (int i = 0; i < n; i++) smp[i].token = 0, smp[i].conf = -pos[i];
            diffu_denoise_commit(d, n ? smp : NULL);
        }
        int *count = calloc((size_t)steps, sizeof *count);
        const int32_t *cs = diffu_denoise_commit_steps(d);
        for (int j = 0; j < G; j++) count[cs[j]]++;
        for (int s = 0; s < steps; s++) printf("%s%d", s ? " " : "", count[s]);
        putchar('\n');
        free(count);
        diffu_denoise_free(&d);
    }
    free(smp);
    return 0;
}
