#!/usr/bin/python3
"""Compare two float32 logits files [rows x vocab] (little-endian, as written by
dream_forward_ref.py).  A is the REFERENCE, B the candidate.

  compare_logits.py A.bin B.bin --vocab V [--tol 1e-4]

Prints max abs error, the reference scale (max |A|), their ratio, and argmax agreement
over rows.  Exit status 1 when max_abs_err > tol * scale, or when an argmax differs on a
row whose reference top-2 gap is >= 10 * tol * scale.  Argmax differences on rows whose
top-2 reference logits are closer than that are reported as near-ties and tolerated.
Exit status 2 on unusable input (size mismatch, NaN/Inf).
"""
import argparse
import sys

import numpy as np


def compare(A, B, tol=1e-4, out=sys.stdout, max_report=10):
    """A (reference), B: float arrays [rows, vocab]. Returns True on pass."""
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    if A.shape != B.shape:
        print("FAIL: shape mismatch %s vs %s" % (A.shape, B.shape), file=out)
        return False
    if not np.all(np.isfinite(A)) or not np.all(np.isfinite(B)):
        print("FAIL: non-finite values (A: %d, B: %d)" % ((~np.isfinite(A)).sum(),
                                                          (~np.isfinite(B)).sum()), file=out)
        return False
    rows, V = A.shape
    err = np.abs(A - B)
    max_err = float(err.max()) if err.size else 0.0
    scale = float(np.abs(A).max()) if A.size else 0.0
    ratio = max_err / scale if scale > 0 else (0.0 if max_err == 0 else np.inf)
    where = np.unravel_index(int(np.argmax(err)), err.shape) if err.size else (0, 0)
    ia = np.argmax(A, axis=1)
    ib = np.argmax(B, axis=1)
    if V >= 2:
        top2 = -np.partition(-A, 1, axis=1)[:, :2]
        gap = top2[:, 0] - top2[:, 1]
    else:
        gap = np.full(rows, np.inf)
    tie_thr = 10.0 * tol * scale
    diff = np.nonzero(ia != ib)[0]
    tied = [r for r in diff if gap[r] < tie_thr]
    hard = [r for r in diff if gap[r] >= tie_thr]
    print("rows %d  vocab %d" % (rows, V), file=out)
    print("max_abs_err %.6g  (row %d, col %d)" % (max_err, where[0], where[1]), file=out)
    print("scale(max|ref|) %.6g  ratio %.3g  tol %.3g" % (scale, ratio, tol), file=out)
    print("argmax agreement %d/%d rows" % (rows - len(diff), rows), file=out)
    for r in tied[:max_report]:
        print("  near-tie row %d: ref argmax %d, cand argmax %d, ref top-2 gap %.3g < %.3g"
              " (tolerated)" % (r, ia[r], ib[r], gap[r], tie_thr), file=out)
    if tied:
        print("argmax mismatches tolerated as near-ties (top-2 gap < 10*tol*scale): %d"
              % len(tied), file=out)
    for r in hard[:max_report]:
        print("  MISMATCH row %d: ref argmax %d (%.6g), cand argmax %d, ref top-2 gap %.3g"
              % (r, ia[r], A[r, ia[r]], ib[r], gap[r]), file=out)
    ok = (max_err <= tol * scale) and not hard
    print("PASS" if ok else "FAIL", file=out)
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description="compare two float32 logits files")
    ap.add_argument("ref")
    ap.add_argument("cand")
    ap.add_argument("--vocab", type=int, required=True)
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args(argv)
    A = np.fromfile(a.ref, dtype="<f4")
    B = np.fromfile(a.cand, dtype="<f4")
    if A.size % a.vocab or B.size % a.vocab:
        print("FAIL: file sizes %d / %d floats are not multiples of vocab %d"
              % (A.size, B.size, a.vocab))
        return 2
    if A.size != B.size:
        print("FAIL: %d rows vs %d rows" % (A.size // a.vocab, B.size // a.vocab))
        return 2
    A = A.reshape(-1, a.vocab)
    B = B.reshape(-1, a.vocab)
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(B))):
        compare(A, B, a.tol)
        return 2
    return 0 if compare(A, B, a.tol) else 1


if __name__ == "__main__":
    sys.exit(main())
