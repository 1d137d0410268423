#!/usr/bin/python3
"""Dream's unmask schedule, count for count: for every (max_new_tokens, steps) below, the
number of tokens the policy commits at each step (sched_dump) must equal
transfer_count() of tests/ref/dream_generate_ref.py in its default float32 mode
(torch.linspace's CUDA formula without FMA, float32 1 - s/t and masked * (1 - s/t)).

The configurations: all max_new_tokens 1..80 with steps 1..80 (steps <= 2 x tokens),
the common ones (128/256/512/1024/2048 tokens at steps = tokens, /2, /4), eps 1e-3 and
0.05, and 400 configurations (found by scanning 300..1100 tokens) where the float64 or
the fused-multiply-add variants of the schedule give DIFFERENT counts, so a C build that
computed the schedule in double or let the compiler contract start + step * i into an FMA
would fail here.
usage: check_schedule.py SCHED_DUMP
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))
import dream_generate_ref as g  # noqa: E402


def ref_counts(G, steps, eps, mode="f32"):
    ts = g.timesteps(eps, steps, mode)
    M, out = G, []
    for i in range(steps):
        if M == 0:
            out.append(0)
            continue
        n = g.transfer_count(M, 1, ts[i], ts[i + 1], i == steps - 1, mode != "f64")
        out.append(n)
        M -= n
    return out


def main():
    dump = sys.argv[1]
    cfgs = []
    for G in range(1, 81):
        for steps in range(1, min(80, 2 * G) + 1):
            cfgs.append((G, steps, 1e-3))
    for G in (128, 256, 512, 1024, 2048):
        for steps in (G, G // 2, G // 4):
            cfgs.append((G, steps, 1e-3))
            cfgs.append((G, steps, 0.05))
    # configurations where the float32 schedule differs from float64 or from FMA
    tricky = []
    G = 300
    while len(tricky) < 400 and G <= 1100:
        for steps in range(max(1, G // 4), G + 1, 7):
            a = ref_counts(G, steps, 1e-3, "f32")
            if a != ref_counts(G, steps, 1e-3, "f64") or a != ref_counts(G, steps, 1e-3, "f32fma"):
                tricky.append((G, steps, 1e-3))
        G += 13
    cfgs += tricky
    inp = "".join("%d %d %.17g\n" % c for c in cfgs)
    r = subprocess.run([dump], input=inp, stdout=subprocess.PIPE, text=True, check=True)
    lines = r.stdout.splitlines()
    assert len(lines) == len(cfgs), (len(lines), len(cfgs))
    bad = 0
    for (G, steps, eps), line in zip(cfgs, lines):
        ours = [int(x) for x in line.split()]
        want = ref_counts(G, steps, eps)
        if ours != want:
            bad += 1
            if bad <= 5:
                d = [i for i in range(steps) if ours[i] != want[i]]
                print("FAIL %d tokens / %d steps / eps %g: first differing steps %s: ours %s ref %s"
                      % (G, steps, eps, d[:5], [ours[i] for i in d[:5]], [want[i] for i in d[:5]]))
    print("%d configurations (%d where float64 or FMA would differ): %d mismatches"
          % (len(cfgs), len(tricky), bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
