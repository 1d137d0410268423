"""checks.py — the assertion counter shared by the Python tests (the twin of
check.h): check() counts a pass or prints "FAIL <what>"; report() prints the
closing line "N passed, M failed" and returns the exit status."""

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL", what)


def report():
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0
