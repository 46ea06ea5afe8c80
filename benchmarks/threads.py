"""How the benchmarks pin their threads: before NumPy (and torch) load, since OpenBLAS, OpenMP and
MKL read their thread counts from the environment once, when they load; and how they time models
that take turns on those threads.

    from threads import pin_threads        # first, before anything that imports NumPy
    THREADS = pin_threads(default=1)       # --threads N from the command line, else the default
    ...
    wall, cpu = alternate({"numpy": step_a, "torch": step_b}, repeats=9)  # seconds of each call

Each script's argparse also declares --threads (so that --help shows it); this reads it earlier.
"""

import os
import sys
import time

# Before each timed call, when two models take turns: after a call, OpenBLAS's and OpenMP's worker
# threads keep spinning for a while and would take the cores from the next model (with 2 threads,
# the twin timed right after NumPy ran 1.9x slower than alone); a pause lets them go idle, so each
# model starts alike.
PAUSE_SECONDS = 0.25


def pin_threads(default: int) -> int:
    """Set OMP/OpenBLAS/MKL threads to --threads N (read from sys.argv) or `default`; return N."""
    threads = default
    if "--threads" in sys.argv:
        threads = int(sys.argv[sys.argv.index("--threads") + 1])
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(threads)
    return threads


def alternate(functions: dict, repeats: int, warmup: int = 2) -> tuple[dict, dict]:
    """Wall and CPU seconds (time.process_time: not counting the waits for a core) of each call,
    name -> list, the functions taking turns, each after a pause, the first `warmup` rounds
    dropped."""
    wall = {name: [] for name in functions}
    cpu = {name: [] for name in functions}
    for repeat in range(warmup + repeats):
        for name, function in functions.items():
            time.sleep(PAUSE_SECONDS)  # the other one's threads go idle
            start, cpu_start = time.perf_counter(), time.process_time()
            function()
            if repeat >= warmup:
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - cpu_start)
    return wall, cpu
