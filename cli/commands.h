/* commands.h — the diffu subcommands. Each lives in cli/cmd_<name>.c and is
 * listed once in the table in cli/main.c. A command returns the process exit
 * status: 0 success, 1 user error (message already printed), 2 usage error. */
#ifndef DIFFU_COMMANDS_H
#define DIFFU_COMMANDS_H

int cmd_mkmodel(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int bench_tokenize(int argc, char **argv); /* cli/bench_tokenize.c: `diffu bench tokenize` */
int cmd_layout(int argc, char **argv);
int cmd_logits_dist(int argc, char **argv); /* `logits --pp P --tp T` under mpirun (cmd_logits dispatches) */
int cmd_generate(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_jobcheck(int argc, char **argv); /* batch-job input validation and output repair (coordinator/job_*.h) */
int cmd_plan(int argc, char **argv); /* cluster planning: layouts that fit N nodes, the recommended one (cli/cmd_plan.c) */
int cmd_split(int argc, char **argv); /* batch input -> K shards for a job array (cli/cmd_split.c) */
int cmd_merge(int argc, char **argv); /* shard outputs -> one, each (id, sample) exactly once (cli/cmd_merge.c) */

#endif
