"""How busy the machine is around a benchmark, from /proc/stat (Linux).

Benchmarks on a shared machine measure the other work on it as much as the code. Two
numbers tell how far to trust a row:

  busy_before    fraction of all CPUs' time in use during one second before the case,
                 while this process sleeps (what --wait-idle waits on)
  others_during  fraction of all CPUs' time that *other* processes used while the case
                 ran: the machine's busy time minus this process's own CPU time

A row with others_during near 0 was measured on a quiet machine; one with 0.5 on a
2-core machine had a core's worth of other work competing with it.
"""
import os
import time

try:
    _TICK = os.sysconf("SC_CLK_TCK")
except (ValueError, OSError, AttributeError):
    _TICK = 100


def _stat():
    """(total, busy) CPU time of the whole machine in seconds, or None."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    total = sum(v[:8])
    idle = v[3] + v[4]
    return total / _TICK, (total - idle) / _TICK


def busy_fraction(seconds=1.0):
    """Fraction of all CPUs' time in use during `seconds` while this process sleeps."""
    a = _stat()
    time.sleep(seconds)
    b = _stat()
    if a is None or b is None or b[0] <= a[0]:
        return None
    return (b[1] - a[1]) / (b[0] - a[0])


def wait_quiet(max_wait_s, threshold=0.10):
    """Wait up to max_wait_s for a second in which the CPUs are < threshold busy.

    Returns the busy fraction of the last second measured (None where /proc/stat is
    missing). With max_wait_s 0 it measures one second and returns.
    """
    deadline = time.monotonic() + max_wait_s
    while True:
        b = busy_fraction(1.0)
        if b is None or b < threshold or time.monotonic() >= deadline:
            return b


class OthersDuring:
    """Context manager: `.fraction` is the CPU share other processes used inside it."""

    def __enter__(self):
        self._a = _stat()
        self._own = time.process_time()
        return self

    def __exit__(self, *exc):
        b = _stat()
        own = time.process_time() - self._own
        self.fraction = None
        if self._a is not None and b is not None and b[0] > self._a[0]:
            others = (b[1] - self._a[1]) - own
            self.fraction = max(0.0, others / (b[0] - self._a[0]))
        return False
