"""Timing shared by the benchmark scripts."""

import statistics
import time


def interleaved_medians(fns, repeats, budget_s):
    """Median wall time of each callable, timed in turn (round robin) so that a burst of load
    from elsewhere on the machine falls on all of them alike; a callable stops being repeated
    (after at least one run) once its runs have taken ``budget_s``. Each callable must block
    until its work is done (e.g. ``jax.block_until_ready``)."""
    ts = [[] for _ in fns]
    for _ in range(repeats):
        for fn, t in zip(fns, ts):
            if t and sum(t) > budget_s:
                continue
            t0 = time.perf_counter()
            fn()
            t.append(time.perf_counter() - t0)
    return [statistics.median(t) for t in ts]
