#!/bin/bash
# crash_resume_long.sh — the batch job's crash/resume check at full size (not
# a ctest test: a few minutes): 50 prompts x n=2 under `mpirun -np 2 ... --pp 2`
# on the tiny model, the job kill -9'd (every rank) at random moments 5 times
# and resumed each time; the final .jsonl.gz must hold exactly 100 records,
# each (id, sample) once, read alike by zcat and Python's gzip + json, every
# completion / generated id equal to an uninterrupted run's.
# (tests/job/check_generate_job.py does the work; ctest job_generate_pp2 is the
# short version: 16 prompts, 4 kills.)
#
# usage: tests/job/crash_resume_long.sh [DIFFU_BIN [WORK_DIR]] [-- extra check_generate_job.py flags, e.g. --seed S]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pos=()
while (($#)) && [[ $1 != -- ]]; do pos+=("$1"); shift; done
(($#)) && shift # the --
bin=${pos[0]:-$here/../../build/bin/diffu}
work=${pos[1]:-/tmp/diffu-crash-resume-long}
exec /usr/bin/python3 "$here/check_generate_job.py" "$bin" "$work" --prompts 50 --n 2 --kills 5 --mpi 2 --pp 2 "$@"
