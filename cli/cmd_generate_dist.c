/* cmd_generate_dist.c — `mpirun -np N diffu generate --pp P --tp T ...`: the
 * distributed back end of `diffu generate` (entered from cmd_generate.c).
 *
 *   1. every rank parses the same command line; rank 0 tokenizes the prompts
 *      and makes one denoising policy per (prompt, sample) (cli/generate.h);
 *   2. rank 0 broadcasts the JobPlan (capacities of one microbatch, state
 *      slots, the balance input); every rank makes the same layout from it,
 *      the handshake refuses mismatched ranks BEFORE anything loads, and every
 *      rank loads only its slices and starts a worker (node/runtime.h
 *      diffu_runtime_start);
 *   3. rank 0 runs the coordinator's loop (coordinator/engine.h) over the
 *      pipeline backend (node/pipeline.h: every rank its Control, rank 0's own
 *      stage-0 work, the StepResults from the last stage); the other ranks
 *      execute Controls until the Shutdown;
 *   4. every rank reports where its time and bytes went (RankStats); rank 0
 *      prints the per-stage summary and the results (as the single process).
 * MPI_THREAD_FUNNELED: MPI from the main thread only; the model's pool threads
 * compute. Exit status: 0; 1 user error or refused layout (one line from rank
 * 0); 2 usage; 3/4/5 and 128 + signal as in docs/distributed.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "comm.h"
#include "commands.h"
#include "diffu.pb-c.h"
#include "forward.h"
#include "generate.h"
#include "layout.h"
#include "pipeline.h"
#include "runtime.h"
#include "engine.h"
#include "signals.h"
#include "stage.h"
#include "threadpool.h"
#include "worker.h"

#define CMD "generate"

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

typedef struct {
    gen_opts o;
    gen_job j;
    diffu_comm *c;
    diffu_runtime_stages rt; /* layout, this rank's shard and worker */
    diffu_pipeline *pl;
    diffu_engine *e;
    int n_seq;        /* sequences: the prompts' (j.n_d) or the job's samples to do */
    /* the batch job (--input / --output; rank 0) */
    diffu_job *jr;
    gen_display dsp;
    int job_cache;    /* a request to do asks for a KV cache */
} dctx;

#define NOTHING_LEFT "every sample is already in the output"
#define JOB_ACTIVE 32 /* a batch job's default --max-active (at least 2 x microbatches) */

static int finish(dctx *x, int rc) {
    diffu_engine_free(&x->e);
    rc = diffu_job_close(&x->jr, rc);
    diffu_pipeline_free(&x->pl);
    diffu_runtime_stages_free(&x->rt);
    if (x->c) diffu_comm_finalize(x->c);
    gen_free(&x->o, &x->j);
    return rc;
}

/* Rank 0 of a batch job: the samples left to do as sequences, created when
 * the scheduler admits them (job_make) and freed once written, so that only
 * max_active policies exist at a time. 0, -1 nothing left, 1 after printing
 * the error. */
static int job_prepare(dctx *x) {
    int st = gen_job_start(&x->o, &x->j, &x->dsp, &x->jr);
    if (st) return st;
    gen_job *j = &x->j;
    int max_seq, max_new, cache;
    diffu_job_plan(x->jr, &max_seq, &max_new, &cache);
    diffu_job_sums(x->jr, &j->sum_tokens, &j->sum_rows);
    x->n_seq = (int)diffu_job_todo(x->jr);
    x->job_cache = cache;
    j->max_seq = max_seq;
    x->o.p.max_new_tokens = max_new; /* the plan's rows per sequence */
    return 0;
}

/* Rank 0: prompts (or the job's samples) -> sequences, and the packed
 * JobPlan every rank allocates from. 0, or 1 with msg (for the agreement). */
static int make_plan(dctx *x, int pp, int tp, int world, uint8_t **pbuf, size_t *plen, char *msg, size_t cap) {
    /* gen_prepare prints its error to stderr: rank 0 is the one that reports */
    int st = x->o.input ? job_prepare(x) : gen_prepare(&x->o, &x->j);
    if (!x->o.input) x->n_seq = x->j.n_d;
    if (st) {
        snprintf(msg, cap, "%s", st < 0 ? NOTHING_LEFT : "the prompts or options (see above)");
        return 1;
    }
    if (pp < 1 || tp < 1) {
        snprintf(msg, cap, "world size %d is not a multiple of --%s %d", world, x->o.pp ? "pp" : "tp",
                 x->o.pp ? x->o.pp : x->o.tp);
        return 1;
    }
    Diffu__JobPlan jp = DIFFU__JOB_PLAN__INIT;
    int M = x->o.microbatches ? x->o.microbatches : (pp == 1 ? 1 : 2 * pp);
    /* a job: a bounded window however long the dataset (memory and microbatch size do not grow
       with it); prompts on the command line: all at once */
    int active = x->o.max_active ? x->o.max_active : x->o.input ? (2 * M > JOB_ACTIVE ? 2 * M : JOB_ACTIVE) : x->n_seq;
    if (active > x->n_seq) active = x->n_seq;
    int per = ceil_div(active, M);
    jp.max_seq = (uint32_t)x->j.max_seq;
    jp.mb_max_seqs = (uint32_t)per;
    jp.mb_max_tokens = (uint32_t)(per * x->j.max_seq);
    jp.mb_max_rows = (uint32_t)(per * x->o.p.max_new_tokens);
    jp.max_active = (uint32_t)active;
    jp.microbatches = (uint32_t)M;
    double mean_tokens = (double)x->j.sum_tokens / (x->n_seq > 0 ? x->n_seq : 1);
    jp.head_row_frac = x->o.head_rows > 0 ? x->o.head_rows : diffu_denoise_head_rows(&x->o.p, mean_tokens, x->j.cfg.hidden);
    jp.vocab = (uint32_t)x->j.cfg.vocab;
    jp.kv_cache = x->o.p.cache || x->job_cache; /* (--cache, or a request's cache) */
    *plen = diffu__job_plan__get_packed_size(&jp);
    *pbuf = diffu_xmalloc(*plen + 1);
    diffu__job_plan__pack(&jp, *pbuf);
    return 0;
}

int cmd_generate_dist(int argc, char **argv) {
    dctx x;
    memset(&x, 0, sizeof x);
    int lrank = arg_launcher_rank();
    int rc = gen_parse(argc, argv, &x.o, lrank != 0);
    if (rc) {
        gen_free(&x.o, NULL);
        return rc < 0 ? 0 : rc;
    }
    if (x.o.watch || x.o.dump_path) {
        if (lrank == 0)
            fprintf(stderr, "diffu " CMD ": --watch and --dump-origin-uniforms are for the single process (no --pp /"
                    " --tp, one rank)\n");
        gen_free(&x.o, NULL);
        return 2;
    }
    /* a batch job's stop signals, from the start (base/signals.h; MPI start-up keeps them): rank 0 decides
       when to stop (it drains and writes what finishes), the others wait for its Shutdown */
    if (x.o.input) {
        if (lrank == 0) diffu_signals_graceful();
        else diffu_signals_ignore_stop();
    }
    diffu_err err;
    if (diffu_comm_init(&x.c, &err)) {
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        gen_free(&x.o, NULL);
        return 1;
    }
    diffu_comm *c = x.c;
    if (x.o.comm_timeout > 0) diffu_comm_set_timeout(c, x.o.comm_timeout);
    int rank = diffu_comm_rank(c), world = diffu_comm_size(c);
    int pp = x.o.pp, tp = x.o.tp;
    if (!pp && !tp) pp = world, tp = 1;
    else if (!pp) pp = world % tp ? 0 : world / tp;
    else if (!tp) tp = world % pp ? 0 : world / pp;
    int threads = x.o.threads ? x.o.threads : diffu_affinity_cpus();

    /* 1. rank 0: prompts -> sequences, and the plan every rank allocates */
    uint8_t *pbuf = NULL;
    size_t plen = 0;
    char msg[1024] = "";
    rc = rank == 0 ? make_plan(&x, pp, tp, world, &pbuf, &plen, msg, sizeof msg) : 0;
    if (diffu_comm_agree(c, rc, msg, &err)) {
        if (strstr(err.msg, NOTHING_LEFT)) {
            free(pbuf);
            return finish(&x, 0);
        }
        if (rank == 0 && !strstr(err.msg, "see above")) fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        free(pbuf);
        return finish(&x, 1);
    }
    diffu_comm_bcast_bytes(c, &pbuf, &plen);
    Diffu__JobPlan *plan = diffu__job_plan__unpack(NULL, plen, pbuf);
    free(pbuf);
    DIFFU_ASSERTF(plan, "rank 0's job plan does not parse");

    /* 2. layout + handshake, the memory check, this rank's shard and worker (node/runtime.h) */
    diffu_runtime_start_opts so = {x.o.model, pp, tp, x.o.pp, x.o.tp, threads, x.o.f32, x.o.verbose};
    if (diffu_runtime_start(c, plan, &so, &x.rt, &err)) {
        if (rank == 0) fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        diffu__job_plan__free_unpacked(plan, NULL);
        return finish(&x, 1);
    }
    diffu_layout *l = x.rt.l;
    int P = diffu_layout_pp(l), T = diffu_layout_tp(l);
    if (rank == 0) {
        int b, e;
        char stages[512] = "";
        size_t used = 0;
        for (int s = 0; s < P && used + 32 < sizeof stages; s++) {
            diffu_layout_stage_layers(l, s, &b, &e);
            used += (size_t)snprintf(stages + used, sizeof stages - used, "%s[%d,%d)", s ? " " : "", b, e);
        }
        DLOG_INFO("generate: %d sequence(s) on %d stage(s) x %d tp rank(s), stage layers %s (+head on the last; balance"
                  " input %.3f lm_head rows/token); %u microbatch(es) in flight of up to %u sequence(s), %u active at"
                  " once, phase spread %d", x.n_seq, P, T, stages, plan->head_row_frac, plan->microbatches,
                  plan->mb_max_seqs, plan->max_active, x.o.spread ? x.o.spread : (P > 1 ? 4 : 1));
    }
    diffu_comm_reset_stats(c);

    /* 3. the run: rank 0 the engine over the pipeline, the others their worker */
    int code = 0;
    if (rank == 0) {
        x.pl = diffu_pipeline_create(c, l, x.rt.w, (int)plan->microbatches);
        diffu_engine_opts eo = {
            .sched = {(int)plan->microbatches, (int)plan->max_active, x.o.spread ? x.o.spread : (P > 1 ? 4 : 1),
                      (int)plan->mb_max_seqs, (int)plan->mb_max_tokens, (int)plan->mb_max_rows, (int)plan->max_seq},
            .wire = diffu_pipeline_backend(x.pl), .kv_cache = plan->kv_cache};
        if (x.jr) {
            diffu_job_engine(x.jr, &eo);
        } else {
            eo.log_seconds = 10.0;
        }
        x.e = diffu_engine_create(&eo, x.jr ? NULL : x.j.ds, x.n_seq, &err);
        DIFFU_ASSERTF(x.e, "%s", err.msg); /* the plan was made for these sequences */
        if (x.jr) diffu_job_begin(x.jr); /* rates and ETA from here: loading excluded */
        DIFFU_ASSERTF(!diffu_engine_run(x.e, &err), "%s", err.msg); /* (a pipeline's failures end the job) */
        if (x.jr) gen_display_note(&x.dsp); /* the summary below starts on a clean line */
    } else {
        code = diffu_worker_loop(x.rt.w);
    }

    /* 4. where the time and bytes went */
    diffu_runtime_run run = {0, 0, 0, 0, 0};
    if (rank == 0) {
        const diffu_engine_stats *es = diffu_engine_get_stats(x.e);
        run = (diffu_runtime_run){es->wall, es->coord, es->wait, es->sched.microbatches, es->sched.seq_steps};
    }
    diffu_runtime_report(c, l, x.rt.w, &run);
    rc = code;
    if (rank == 0) {
        /* results: stdout, --out, per-sample lines, then timing (the batch job wrote them as they finished) */
        rc = x.jr ? gen_job_end(x.jr, &x.dsp, x.e) : gen_report(&x.o, &x.j);
        gen_timing(x.rt.t_load, diffu_engine_get_stats(x.e), (long)x.n_seq * x.o.p.max_new_tokens);
    }
    diffu__job_plan__free_unpacked(plan, NULL);
    if (diffu_comm_agree(c, rc, "writing the results failed", &err)) rc = 1;
    return finish(&x, rc);
}
