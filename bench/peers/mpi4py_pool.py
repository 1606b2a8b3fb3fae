#!/usr/bin/python3
"""pool_map_tiny/mpi4py_futures: mpi4py.futures.MPIPoolExecutor's map of
tiny tasks (x*2, chunksize 1), the Python peer of bench/mpi_pool_bench's
pool_map_tiny/mpi_pool. Prints Google Benchmark's JSON schema on stdout.

Run it the way mpi_pool_bench runs (rank 0 submits, the other ranks work):
  mpirun -n 3 /usr/bin/python3 -m mpi4py.futures bench/peers/mpi4py_pool.py --quick
(as root add --allow-run-as-root; on a small machine --oversubscribe
--bind-to none --mca mpi_yield_when_idle 1). --quick: 2 000 tasks, one
repetition; otherwise 20 000 tasks, the median of 3.
"""
import argparse
import json
import statistics
import sys
import time

from mpi4py.futures import MPIPoolExecutor


def twice(x):
    return x * 2


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 2000 if args.quick else 20000
    reps = 1 if args.quick else 3
    times = []
    cpu = []
    with MPIPoolExecutor() as pool:
        list(pool.map(twice, range(100)))  # warm-up: workers connected
        for _ in range(reps):
            start = time.perf_counter()
            cpu_start = time.process_time()
            out = list(pool.map(twice, range(n), chunksize=1))
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - cpu_start)
            if out[-1] != 2 * (n - 1):
                print("bad result", file=sys.stderr)
                return 1
        workers = pool._max_workers if hasattr(pool, "_max_workers") else None
    t = statistics.median(times)
    c = statistics.median(cpu)
    print(json.dumps({
        "context": {"executable": "mpi4py_pool.py", "tasks": n,
                    "repetitions": reps, "workers": workers},
        "benchmarks": [{
            "name": "pool_map_tiny/mpi4py_futures",
            "run_name": "pool_map_tiny/mpi4py_futures",
            "items_per_second": n / t,
            "run_type": "iteration",
            "iterations": 1,
            "real_time": t * 1e3,
            "cpu_time": c * 1e3,  # this process's (the dispatcher's) only
            "time_unit": "ms",
        }],
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
