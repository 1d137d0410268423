#!/usr/bin/python3
"""Dream's unmask schedule, count for count: for every (max_new_tokens, steps) below, the
number of tokens the policy commits at each step (sched_dump) must equal
transfer_count() of tests/ref/dream_generate_ref.py in its default float32 mode
(torch.linspace's CUDA formula without FMA, float32 1 - s/t and masked * (1 - s/t)).

The configurations: all max_new_tokens 1..80 with steps 1..80 (steps <= 2 x tokens),
the common ones (128/256/512/1024/2048 tokens at steps = tokens, /2, /4) with eps 1e-3 and
0.05, and 80 configurations where the float64 (F64) or the fused-multiply-add (FMA)
variants of the schedule give DIFFERENT counts (found once by scanning 300..1100 tokens
with the reference's three modes; the script re-checks that they still differ), so a C
build that computed the schedule in double, or let the compiler contract start + step * i
into an FMA, fails here.
usage: check_schedule.py SCHED_DUMP
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))
import dream_generate_ref as g  # noqa: E402


F64 = [(633, 499), (672, 333), (675, 333), (678, 499), (717, 333), (720, 499), (723, 499), (744, 494),
       (747, 494), (753, 496), (756, 497), (759, 497), (762, 333), (762, 498), (765, 499), (768, 500),
       (771, 500), (774, 490), (777, 491), (780, 503), (786, 493), (789, 494), (792, 495), (795, 495),
       (798, 496), (801, 332), (801, 497), (804, 333), (804, 498), (807, 498), (810, 488), (810, 499),
       (813, 489), (816, 490), (819, 490), (822, 491), (825, 492), (828, 493), (831, 493), (834, 494)]
FMA = [(677, 333), (678, 333), (679, 499), (680, 333), (680, 499), (681, 333), (681, 499), (681, 500),
       (682, 333), (682, 499), (682, 500), (683, 499), (683, 500), (684, 333), (684, 499), (684, 500),
       (685, 333), (685, 500), (686, 333), (687, 333), (688, 333), (689, 500), (692, 333), (693, 333),
       (694, 500), (697, 333), (698, 333), (698, 500), (699, 333), (699, 500), (702, 500), (703, 500),
       (704, 333), (706, 500), (707, 333), (707, 500), (709, 333), (710, 333), (711, 333), (712, 333)]


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
    tricky = [(G, st, 1e-3) for G, st in F64 + FMA]
    for G, st, _ in tricky[:len(F64)]:
        assert ref_counts(G, st, 1e-3) != ref_counts(G, st, 1e-3, "f64"), (G, st)
    for G, st, _ in tricky[len(F64):]:
        assert ref_counts(G, st, 1e-3) != ref_counts(G, st, 1e-3, "f32fma"), (G, st)
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
